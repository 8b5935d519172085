//! [`MemoryThrottleStore`]: exact sliding-window logs in this process.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Decision, Rate, ThrottleStore};
use crate::CacheError;

/// The default bound of a [`MemoryThrottleStore`], in keys (clients × throttles).
pub const DEFAULT_MAX_KEYS: usize = 100_000;

const SHARDS: usize = 64;
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Exact sliding-window logs for one process.
///
/// Each key holds the times of the requests it admitted within the last period
/// (at most `count` of them), behind one of 64 mutex-guarded shards, so a check is a
/// hash, a short lock and a few comparisons. Keys whose newest request is older than
/// their period are idle and are dropped (each shard sweeps itself at most once a
/// second). The store is bounded by `max_keys`: when a shard is full even after a sweep,
/// the eighth of its keys admitted least recently is forgotten, so exactness holds as
/// long as the active clients fit the bound ([`DEFAULT_MAX_KEYS`] by default).
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
    seed: u64,
    epoch: Instant,
    max_per_shard: usize,
}

#[derive(Default)]
struct Shard {
    logs: HashMap<String, Log>,
    last_sweep: u64,
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
            seed: RandomState::new().hash_one(0x7468_726f_7474_6c65_u64),
            epoch: Instant::now(),
            max_per_shard: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    /// How many keys the store holds now (idle ones included until they are swept).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).logs.len())
            .sum()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now(&self) -> u64 {
        nanos(self.epoch.elapsed())
    }

    /// The shard of `key`: a seeded multiply-rotate hash, 8 bytes at a time. Only spreads
    /// keys over the shards; each shard's map keeps std's DoS-resistant hasher.
    fn shard(&self, key: &str) -> &Mutex<Shard> {
        let mut h = self.seed;
        for chunk in key.as_bytes().chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        &self.shards[(h >> 58) as usize % SHARDS]
    }

    /// The check at `now` (nanoseconds since the epoch), without the async wrapper.
    pub(crate) fn check_at(&self, key: &str, rate: Rate, now: u64) -> Decision {
        let period = nanos(rate.period());
        let limit = rate.count();
        let mut guard = self
            .shard(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let shard = &mut *guard;
        if now.saturating_sub(shard.last_sweep) >= nanos(SWEEP_EVERY) {
            shard.logs.retain(|_, log| !log.idle(now));
            shard.last_sweep = now;
        }
        if let Some(log) = shard.logs.get_mut(key) {
            return log.check(limit, period, now);
        }
        if shard.logs.len() >= self.max_per_shard {
            shard.logs.retain(|_, log| !log.idle(now));
            shard.last_sweep = now;
            // Still full of active keys: forget the eighth admitted least recently at
            // once, so the next inserts are cheap again (amortized O(1) per key).
            if shard.logs.len() + self.max_per_shard / 8 > self.max_per_shard {
                let mut newest: Vec<u64> = shard.logs.values().map(Log::newest).collect();
                let cut = self.max_per_shard / 8;
                let (_, &mut threshold, _) = newest.select_nth_unstable(cut);
                shard.logs.retain(|_, log| log.newest() > threshold);
            }
        }
        let log = shard.logs.entry(key.to_owned()).or_insert_with(|| Log {
            times: VecDeque::new(),
            newest: 0,
            period,
        });
        log.check(limit, period, now)
    }

    fn undo_now(&self, key: &str, decision: &Decision) {
        if !decision.admitted {
            return;
        }
        let mut shard = self
            .shard(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(log) = shard.logs.get_mut(key) {
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

    async fn undo(&self, key: &str, decision: &Decision) -> Result<(), CacheError> {
        self.undo_now(key, decision);
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
}
