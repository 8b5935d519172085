//! [`MemoryThrottleStore`]: exact sliding-window logs, and GCRA arrival times, in this
//! process.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hashbrown::HashTable;

use super::{Decision, Gcra, Rate, ThrottleStore};
use crate::CacheError;

/// The default bound of a [`MemoryThrottleStore`], in keys (clients × throttles).
pub const DEFAULT_MAX_KEYS: usize = 100_000;

const SHARDS: usize = 64;
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Exact sliding-window logs and GCRA state for one process.
///
/// Each sliding-log key holds the times of the requests it admitted within the last
/// period (at most `count` of them); each GCRA key one instant, its theoretical arrival
/// time ([`Gcra`]). Keys live behind one of 64 mutex-guarded shards, so a check is one
/// hash (std's DoS-resistant SipHash, which picks the shard and the slot), a short
/// lock and a few comparisons, answered without a future
/// ([`check_now`](ThrottleStore::check_now)). Idle keys are dropped (a log whose newest
/// request is older than its period, a GCRA key whose bucket is full again; each shard
/// sweeps itself at most once a second). The store is bounded by `max_keys`: when a
/// shard is full even after a sweep, the eighth of its keys admitted least recently is
/// forgotten, so exactness holds as long as the active clients fit the bound
/// ([`DEFAULT_MAX_KEYS`] by default).
///
/// Not a moka cache on purpose: moka's admission policy may decline to keep a new key,
/// and a forgotten log would admit more than the rate allows.
///
/// ```
/// use cached_core::throttle::MemoryThrottleStore;
/// let store = MemoryThrottleStore::with_max_keys(10_000);
/// assert_eq!(store.len(), 0);
/// ```
pub struct MemoryThrottleStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    epoch: Instant,
    max_per_shard: usize,
}

/// Keys and their state, found by a hash computed once per check (the table only
/// needs it again to grow).
struct Table<V> {
    entries: HashTable<(Box<str>, V)>,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Table {
            entries: HashTable::new(),
        }
    }
}

impl<V> Table<V> {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn get_mut(&mut self, hash: u64, key: &str) -> Option<&mut V> {
        self.entries
            .find_mut(hash, |(k, _)| **k == *key)
            .map(|(_, v)| v)
    }

    /// Inserts a key known to be absent.
    fn insert(&mut self, hasher: &RandomState, hash: u64, key: &str, value: V) -> &mut V {
        let entry = self
            .entries
            .insert_unique(hash, (key.into(), value), |(k, _)| hasher.hash_one(&**k));
        &mut entry.into_mut().1
    }

    fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.entries.retain(|(_, v)| keep(v));
    }

    fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    #[cfg(test)]
    fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| &**k)
    }
}

#[derive(Default)]
struct Shard {
    logs: Table<Log>,
    /// GCRA keys: the theoretical arrival time (nanoseconds since the store's epoch).
    tats: Table<u64>,
    last_sweep: u64,
}

impl Shard {
    fn len(&self) -> usize {
        self.logs.len() + self.tats.len()
    }

    /// Drops idle keys: logs whose newest request left the window, GCRA keys whose
    /// bucket is full again (a TAT not after `now` is the same as no state).
    fn sweep(&mut self, now: u64) {
        self.logs.retain(|log| !log.idle(now));
        self.tats.retain(|tat| *tat > now);
        self.last_sweep = now;
    }

    /// Makes room for one new key: sweeps when it is time (or the shard is full), and
    /// if the shard is still full of active keys, forgets the eighth of them that were
    /// admitted least recently at once, so the next inserts are cheap again (amortized
    /// O(1) per key).
    fn make_room(&mut self, now: u64, max: usize) {
        if self.len() < max {
            return;
        }
        self.sweep(now);
        if self.len() + max / 8 <= max {
            return;
        }
        // A log's newest admission and a GCRA key's TAT (at or a little after its last
        // admission) both say how recently the key was admitted; close enough to choose
        // whom to forget.
        let mut recency: Vec<u64> = self
            .logs
            .values()
            .map(Log::newest)
            .chain(self.tats.values().copied())
            .collect();
        let cut = (max / 8).min(recency.len().saturating_sub(1));
        let (_, &mut threshold, _) = recency.select_nth_unstable(cut);
        self.logs.retain(|log| log.newest() > threshold);
        self.tats.retain(|tat| *tat > threshold);
    }
}

struct Log {
    /// Admission times, nanoseconds since the store's epoch, oldest first.
    times: VecDeque<u64>,
    /// The newest admission time (kept inline, so sweeps need not read `times`).
    newest: u64,
    period: u64,
}

impl Log {
    fn newest(&self) -> u64 {
        self.newest
    }

    fn idle(&self, now: u64) -> bool {
        now.saturating_sub(self.newest) >= self.period
    }

    /// Drops the times that left the window; admits and records `now` if there is room.
    fn check(&mut self, limit: u32, period: u64, now: u64) -> Decision {
        self.period = period;
        // Checks that read the clock before taking the lock may arrive out of order.
        let now = now.max(self.newest());
        while self
            .times
            .front()
            .is_some_and(|&t| now.saturating_sub(t) >= period)
        {
            self.times.pop_front();
        }
        let count = self.times.len();
        if count < limit as usize {
            self.times.push_back(now);
            self.newest = now;
            let oldest = self.times.front().copied().unwrap_or(now);
            let remaining = limit - u32::try_from(count + 1).unwrap_or(limit);
            Decision::admitted(limit, remaining, until(oldest + period, now), now)
        } else {
            let oldest = self.times.front().copied().unwrap_or(now);
            Decision::refused(limit, until(oldest + period, now))
        }
    }
}

impl Default for MemoryThrottleStore {
    fn default() -> Self {
        Self::with_max_keys(DEFAULT_MAX_KEYS)
    }
}

impl MemoryThrottleStore {
    /// A store holding at most about `max_keys` keys.
    pub fn with_max_keys(max_keys: usize) -> Self {
        MemoryThrottleStore {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            epoch: Instant::now(),
            max_per_shard: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    /// How many keys the store holds now (idle ones included until they are swept).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now(&self) -> u64 {
        nanos(self.epoch.elapsed())
    }

    /// The hash of `key` and its locked shard. The shard comes from bits that the
    /// table uses neither for the slot (low bits) nor for its tags (top 7 bits).
    fn lock(&self, key: &str) -> (u64, std::sync::MutexGuard<'_, Shard>) {
        let hash = self.hasher.hash_one(key);
        let shard = &self.shards[(hash >> 40) as usize % SHARDS];
        (hash, shard.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The sliding-log check at `now` (nanoseconds since the epoch).
    pub(crate) fn check_at(&self, key: &str, rate: Rate, now: u64) -> Decision {
        let period = nanos(rate.period());
        let limit = rate.count();
        let (hash, mut shard) = self.lock(key);
        if now.saturating_sub(shard.last_sweep) >= nanos(SWEEP_EVERY) {
            shard.sweep(now);
        }
        if let Some(log) = shard.logs.get_mut(hash, key) {
            return log.check(limit, period, now);
        }
        shard.make_room(now, self.max_per_shard);
        let log = Log {
            times: VecDeque::new(),
            newest: 0,
            period,
        };
        let log = shard.logs.insert(&self.hasher, hash, key, log);
        log.check(limit, period, now)
    }

    /// The GCRA check at `now` (nanoseconds since the epoch).
    pub(crate) fn check_gcra_at(&self, key: &str, gcra: Gcra, now: u64) -> Decision {
        let (hash, mut shard) = self.lock(key);
        if now.saturating_sub(shard.last_sweep) >= nanos(SWEEP_EVERY) {
            shard.sweep(now);
        }
        if let Some(tat) = shard.tats.get_mut(hash, key) {
            let (decision, next) = gcra.decide(*tat, now);
            *tat = next;
            return decision;
        }
        let (decision, next) = gcra.decide(0, now);
        if decision.admitted {
            shard.make_room(now, self.max_per_shard);
            shard.tats.insert(&self.hasher, hash, key, next);
        }
        decision
    }

    fn undo_gcra_now(&self, key: &str, gcra: Gcra, decision: &Decision) {
        if !decision.admitted {
            return;
        }
        let (hash, mut shard) = self.lock(key);
        if let Some(tat) = shard.tats.get_mut(hash, key) {
            *tat = gcra.undo(*tat);
        }
    }

    fn undo_now(&self, key: &str, decision: &Decision) {
        if !decision.admitted {
            return;
        }
        let (hash, mut shard) = self.lock(key);
        if let Some(log) = shard.logs.get_mut(hash, key) {
            if let Some(i) = log.times.iter().rposition(|&t| t == decision.token) {
                log.times.remove(i);
                log.newest = log.times.back().copied().unwrap_or(0);
            }
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn until(deadline: u64, now: u64) -> Duration {
    Duration::from_nanos(deadline.saturating_sub(now))
}

#[async_trait]
impl ThrottleStore for MemoryThrottleStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn check(&self, key: &str, rate: Rate) -> Result<Decision, CacheError> {
        Ok(self.check_at(key, rate, self.now()))
    }

    fn check_now(&self, key: &str, rate: Rate) -> Option<Result<Decision, CacheError>> {
        Some(Ok(self.check_at(key, rate, self.now())))
    }

    async fn undo(&self, key: &str, decision: &Decision) -> Result<(), CacheError> {
        self.undo_now(key, decision);
        Ok(())
    }

    async fn check_gcra(&self, key: &str, gcra: Gcra) -> Result<Decision, CacheError> {
        Ok(self.check_gcra_at(key, gcra, self.now()))
    }

    fn check_gcra_now(&self, key: &str, gcra: Gcra) -> Option<Result<Decision, CacheError>> {
        Some(Ok(self.check_gcra_at(key, gcra, self.now())))
    }

    async fn undo_gcra(
        &self,
        key: &str,
        gcra: Gcra,
        decision: &Decision,
    ) -> Result<(), CacheError> {
        self.undo_gcra_now(key, gcra, decision);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn admits_count_per_window_then_slides() {
        let store = MemoryThrottleStore::default();
        let rate = Rate::new(3, 10);
        let t0 = 100 * SEC;
        let d: Vec<_> = (0..3)
            .map(|i| store.check_at("k", rate, t0 + i * SEC))
            .collect();
        assert!(d.iter().all(|d| d.admitted));
        assert_eq!(d.iter().map(|d| d.remaining).collect::<Vec<_>>(), [2, 1, 0]);
        let refused = store.check_at("k", rate, t0 + 5 * SEC);
        assert!(!refused.admitted);
        assert_eq!(
            refused.reset,
            Duration::from_secs(5),
            "until the first leaves"
        );
        // Refused requests are not recorded: the first slot frees at t0 + 10 s exactly.
        assert!(!store.check_at("k", rate, t0 + 10 * SEC - 1).admitted);
        assert!(store.check_at("k", rate, t0 + 10 * SEC).admitted);
        assert!(!store.check_at("k", rate, t0 + 10 * SEC + 1).admitted);
        assert!(store.check_at("k", rate, t0 + 11 * SEC).admitted);
    }

    #[test]
    fn keys_are_independent_and_undo_frees_the_slot() {
        let store = MemoryThrottleStore::default();
        let rate = Rate::new(1, 60);
        let a = store.check_at("a", rate, SEC);
        assert!(a.admitted);
        assert!(store.check_at("b", rate, SEC).admitted);
        assert!(!store.check_at("a", rate, 2 * SEC).admitted);
        store.undo_now("a", &a);
        assert!(store.check_at("a", rate, 3 * SEC).admitted);
    }

    #[test]
    fn idle_keys_are_swept_and_the_bound_holds() {
        let store = MemoryThrottleStore::with_max_keys(SHARDS * 4);
        let rate = Rate::new(1, 1);
        for i in 0..1_000 {
            store.check_at(&format!("client-{i}"), rate, SEC);
        }
        assert!(store.len() <= SHARDS * 4, "bounded: {}", store.len());
        // Two seconds later every key is idle; the next check in each shard sweeps it.
        for i in 0..1_000 {
            store.check_at(&format!("other-{i}"), Rate::new(1, 60), 3 * SEC);
        }
        let shard_keys: usize = store.len();
        assert!(shard_keys <= SHARDS * 4);
        let stale = store
            .shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(PoisonError::into_inner);
                s.logs.keys().filter(|k| k.starts_with("client-")).count()
            })
            .sum::<usize>();
        assert_eq!(stale, 0, "idle keys are swept");
    }

    #[test]
    fn gcra_admits_the_burst_then_one_per_interval_with_exact_waits() {
        let store = MemoryThrottleStore::default();
        let gcra = Gcra::new(Rate::new(6, 60), 3);
        let t0 = 100 * SEC;
        for remaining in [2, 1, 0] {
            let d = store.check_gcra_at("k", gcra, t0);
            assert!(d.admitted);
            assert_eq!(d.remaining, remaining);
        }
        let refused = store.check_gcra_at("k", gcra, t0 + 4 * SEC);
        assert!(!refused.admitted);
        assert_eq!(refused.reset, Duration::from_secs(6));
        assert!(!store.check_gcra_at("k", gcra, t0 + 10 * SEC - 1).admitted);
        assert!(store.check_gcra_at("k", gcra, t0 + 10 * SEC).admitted);
        assert!(!store.check_gcra_at("k", gcra, t0 + 10 * SEC).admitted);
        // Another key, and a sliding log under the same name, are separate state.
        assert!(store.check_gcra_at("other", gcra, t0).admitted);
        assert!(store.check_at("k", Rate::new(1, 60), t0).admitted);
    }

    #[test]
    fn gcra_undo_returns_the_request_and_state_is_one_instant_per_key() {
        let store = MemoryThrottleStore::default();
        let gcra = Gcra::new(Rate::new(1, 60), 1);
        let d = store.check_gcra_at("k", gcra, SEC);
        assert!(d.admitted);
        assert!(!store.check_gcra_at("k", gcra, 2 * SEC).admitted);
        store.undo_gcra_now("k", gcra, &d);
        assert!(store.check_gcra_at("k", gcra, 3 * SEC).admitted);
        // Undoing a refusal changes nothing.
        let refused = store.check_gcra_at("k", gcra, 4 * SEC);
        store.undo_gcra_now("k", gcra, &refused);
        assert!(!store.check_gcra_at("k", gcra, 5 * SEC).admitted);
        // However many requests a client makes, its key holds one instant.
        let many = Gcra::new(Rate::new(1_000, 1), 1_000);
        for _ in 0..1_000 {
            store.check_gcra_at("busy", many, 10 * SEC);
        }
        let (hash, mut shard) = store.lock("busy");
        assert!(shard.tats.get_mut(hash, "busy").is_some());
        assert!(shard.logs.get_mut(hash, "busy").is_none());
    }

    #[test]
    fn gcra_keys_with_a_full_bucket_are_swept_and_the_bound_holds() {
        let store = MemoryThrottleStore::with_max_keys(SHARDS * 4);
        let gcra = Gcra::new(Rate::new(1, 1), 1);
        for i in 0..1_000 {
            store.check_gcra_at(&format!("client-{i}"), gcra, SEC);
        }
        assert!(store.len() <= SHARDS * 4, "bounded: {}", store.len());
        for i in 0..1_000 {
            store.check_gcra_at(
                &format!("other-{i}"),
                Gcra::new(Rate::new(1, 60), 1),
                3 * SEC,
            );
        }
        let stale = store
            .shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(PoisonError::into_inner);
                s.tats.keys().filter(|k| k.starts_with("client-")).count()
            })
            .sum::<usize>();
        assert_eq!(stale, 0, "full buckets are swept");
        assert!(store.len() <= SHARDS * 4);
    }
}
