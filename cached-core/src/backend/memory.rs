//! [`MemoryBackend`]: an in-process cache on quick_cache (S3-FIFO eviction, per-entry
//! expiry checked on every read).
//!
//! # Why quick_cache and not moka
//!
//! Measured side by side (BENCHMARKS.md, P1 and P6): a raw moka hit costs about 1,200
//! instructions (its read log, its housekeeping, its epoch-protected map), more than the
//! `cached` crate's whole `#[cached]` hit, so no `#[cache_fn]` over moka can match
//! `#[cached]`; a quick_cache hit is a read lock on one shard, a hash probe and a clone.
//! On the hit-ratio side, quick_cache's S3-FIFO keeps more of a skewed workload than
//! moka's TinyLFU: 45.8% against 43.3% on Zipf(0.9), 100,000 keys, 1,000 entries (an
//! exact LRU: 34.3%). quick_cache has no expiry of its own: each entry carries its
//! deadline, a read past it is a miss (exact to the clock, not to a timer wheel), and an
//! expired entry is dropped when it is read, when its key is written, or when eviction
//! reaches it. The clock is quanta's (the TSC, calibrated once per process against the
//! monotonic clock, as moka used it), which a hit reads in a third of the time of
//! `std::time::Instant::now`.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
// The TSC, calibrated against the monotonic clock: a read costs a third of
// `std::time::Instant::now` (measured: the clock was a tenth of a hit's time), and it
// is the clock moka used before. Deadlines are only ever compared with this clock.
use quanta::Instant;
use quick_cache::sync::{Cache as Engine, EntryAction, EntryResult};
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};

use super::{Backend, Ttl, Value};
use crate::CacheError;

/// The default bound of a memory cache, in entries.
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;

/// A byte-bounded cache sizes its internals for entries of about this many bytes.
const TYPICAL_ENTRY_BYTES: u64 = 1024;

#[derive(Clone)]
struct Entry {
    value: Value,
    /// `None`: kept until evicted or deleted.
    expires: Option<Instant>,
}

impl Entry {
    fn new(value: Value, ttl: Ttl) -> Self {
        Self {
            value,
            expires: deadline(ttl),
        }
    }

    /// Whether the entry has not expired (the clock is read only for entries that expire).
    fn is_live(&self) -> bool {
        self.expires.is_none_or(|at| Instant::now() < at)
    }
}

/// When an entry stored now for `ttl` expires (`None`: never, or beyond `Instant`'s range).
fn deadline(ttl: Ttl) -> Option<Instant> {
    ttl.and_then(|ttl| Instant::now().checked_add(ttl))
}

/// How much an entry counts against the bound: 1 under an entry bound, its key and
/// value bytes under a byte bound.
#[derive(Clone)]
struct Weigh {
    bytes: bool,
}

impl Weighter<Key, Entry> for Weigh {
    fn weight(&self, key: &Key, entry: &Entry) -> u64 {
        if self.bytes {
            (key.len() + entry.value.weight()) as u64
        } else {
            1
        }
    }
}

/// Counts entries evicted to respect the bound (an entry already expired when it is
/// pushed out is not counted: it was dead already).
#[derive(Clone)]
struct CountEvictions(Arc<AtomicU64>);

impl Lifecycle<Key, Entry> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _: &mut (), _key: Key, entry: Entry) {
        if entry.is_live() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How a memory cache is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// At most this many entries. Values are kept as Rust objects, never serialized.
    Entries(u64),
    /// At most this many bytes of encoded values (plus their keys). Values are stored
    /// encoded by the cache's codec, so that their size is known exactly.
    Bytes(u64),
}

/// The in-memory backend, built on [quick_cache](https://docs.rs/quick_cache).
///
/// Every operation completes without waiting (short per-shard locks, no I/O, no
/// background work), so reads take the [`Backend::get_now`] path and a hit costs no
/// future at all.
///
/// Entries expire exactly at their TTL: each entry carries its deadline and a read after
/// it misses, to the clock's resolution. When full, quick_cache's S3-FIFO policy chooses
/// what to evict (new entries enter a small probationary queue and stay only if read
/// again; keys seen recently are remembered), which keeps hit ratios close to optimal on
/// skewed workloads and resists scans. Bounded by entry count (default
/// [`DEFAULT_MAX_ENTRIES`], values never serialized) or by bytes. The cache is split
/// into shards (a few per core, fewer for small bounds), each holding an equal share of
/// the bound; under a byte bound a value larger than one shard's share is not kept (it
/// counts as an eviction).
///
/// ```
/// use cached_core::backend::memory::{Bound, MemoryBackend};
/// let small = MemoryBackend::new(Bound::Entries(1_000));
/// let sized = MemoryBackend::new(Bound::Bytes(64 * 1024 * 1024));
/// # let _ = (small, sized);
/// ```
pub struct MemoryBackend {
    cache: Engine<Key, Entry, Weigh, DefaultHashBuilder, CountEvictions>,
    stores_objects: bool,
    evictions: Arc<AtomicU64>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new(Bound::Entries(DEFAULT_MAX_ENTRIES))
    }
}

impl MemoryBackend {
    /// A memory backend with the given bound.
    pub fn new(bound: Bound) -> Self {
        let evictions = Arc::new(AtomicU64::new(0));
        let (items, weight, bytes) = match bound {
            Bound::Entries(n) => (n, n, false),
            Bound::Bytes(n) => ((n / TYPICAL_ENTRY_BYTES).max(1), n, true),
        };
        let items = usize::try_from(items).unwrap_or(usize::MAX);
        let mut options = OptionsBuilder::new();
        options
            .estimated_items_capacity(items)
            .weight_capacity(weight);
        let cache = match options.build() {
            Ok(options) => Engine::with_options(
                options,
                Weigh { bytes },
                DefaultHashBuilder::default(),
                CountEvictions(Arc::clone(&evictions)),
            ),
            // Both settings are given, so this does not happen; a cache of the bound
            // with the engine's defaults is still the right answer.
            Err(_) => Engine::with(
                items,
                weight,
                Weigh { bytes },
                DefaultHashBuilder::default(),
                CountEvictions(Arc::clone(&evictions)),
            ),
        };
        Self {
            cache,
            stores_objects: !bytes,
            evictions,
        }
    }

    /// Drops the entries that have expired; useful in tests. (Bounds are kept on every
    /// write and expiry is checked on every read, so nothing else is ever pending.)
    pub async fn run_pending_tasks(&self) {
        let now = Instant::now();
        self.cache
            .retain(|_, e| e.expires.is_none_or(|at| now < at));
    }

    /// The number of entries held (an expired entry counts until it is dropped).
    pub fn entry_count(&self) -> u64 {
        self.cache.len() as u64
    }

    /// The live value under `key`; an expired entry is dropped.
    #[inline]
    fn read(&self, key: &str) -> Option<Value> {
        let entry = self.cache.get(&Lookup(key))?;
        if entry.is_live() {
            return Some(entry.value);
        }
        self.cache.remove_if(&Lookup(key), |e| !e.is_live());
        None
    }

    /// Atomically inspects the entry under `key` (a live one only: an expired entry is
    /// dropped first) and acts on it; `vacant` decides what to store when there is none.
    fn update<T>(
        &self,
        key: &str,
        occupied: impl FnOnce(&mut Entry) -> Update<T>,
        vacant: impl FnOnce() -> (Option<Entry>, T),
    ) -> T {
        let mut removed = None;
        let outcome = self.cache.entry(&Key::new(key), None, |_, entry| {
            if !entry.is_live() {
                return EntryAction::ReplaceWithGuard;
            }
            match occupied(entry) {
                Update::Keep(t) => EntryAction::Retain(t),
                Update::Remove(t) => {
                    removed = Some(t);
                    EntryAction::Remove
                }
            }
        });
        let guard = match outcome {
            EntryResult::Retained(t) => return t,
            EntryResult::Replaced(guard, _) | EntryResult::Vacant(guard) => guard,
            EntryResult::Removed(..) => match removed {
                Some(t) => return t,
                None => return vacant().1,
            },
            // No timeout is given, so this is not returned.
            EntryResult::Timeout => return vacant().1,
        };
        let (store, t) = vacant();
        if let Some(entry) = store {
            // An error means a plain `set` of the same key got in between: it replaced
            // what this operation stored, which is an order the caller could have seen.
            let _ = guard.insert(entry);
        }
        t
    }
}

/// A stored key, kept inside the entry when it is short (most are): a hit compares
/// the key it looks up with bytes on the entry's own cache lines, not with a separate
/// allocation that must be fetched first.
#[derive(Clone)]
enum Key {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Boxed(Box<str>),
}

/// The longest key kept inline (the enum is then 48 bytes).
const INLINE_KEY: usize = 46;

impl Key {
    fn new(key: &str) -> Self {
        match u8::try_from(key.len()) {
            Ok(len) if key.len() <= INLINE_KEY => {
                let mut bytes = [0; INLINE_KEY];
                bytes[..key.len()].copy_from_slice(key.as_bytes());
                Key::Inline { len, bytes }
            }
            _ => Key::Boxed(key.into()),
        }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Boxed(key) => key.as_bytes(),
        }
    }

    /// The key as text (it was made from a `&str`; `""` cannot happen).
    fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    fn len(&self) -> usize {
        self.as_bytes().len()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        same_bytes(self.as_bytes(), other.as_bytes())
    }
}

impl Eq for Key {}

/// Hashed as the text is, so that a [`Lookup`] finds it.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

/// A key looked up: hashed as the stored [`Key`] is, compared without a call to
/// `memcmp` (keys are short, and a hit compares one).
#[derive(Hash)]
struct Lookup<'a>(&'a str);

impl quick_cache::Equivalent<Key> for Lookup<'_> {
    #[inline]
    fn equivalent(&self, key: &Key) -> bool {
        same_bytes(self.0.as_bytes(), key.as_bytes())
    }
}

/// `a == b`, by 8-byte words (the last one overlapping the one before).
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    fn word(s: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_ne_bytes(w)
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a == b;
    }
    let mut at = 0;
    while at + 8 <= n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    at == n || word(a, n - 8) == word(b, n - 8)
}

/// What [`MemoryBackend::update`] does with a live entry.
enum Update<T> {
    /// Keep it (possibly changed in place) and answer `T`.
    Keep(T),
    /// Delete it and answer `T`.
    Remove(T),
}

#[async_trait]
impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn stores_objects(&self) -> bool {
        self.stores_objects
    }

    fn get_now(&self, key: &str) -> Option<Result<Option<Value>, CacheError>> {
        Some(Ok(self.read(key)))
    }

    async fn get(&self, key: &str) -> Result<Option<Value>, CacheError> {
        Ok(self.read(key))
    }

    async fn set(&self, key: &str, value: Value, ttl: Ttl) -> Result<(), CacheError> {
        self.cache.insert(Key::new(key), Entry::new(value, ttl));
        Ok(())
    }

    async fn add(&self, key: &str, value: Value, ttl: Ttl) -> Result<bool, CacheError> {
        Ok(self.update(
            key,
            |_| Update::Keep(false),
            || (Some(Entry::new(value, ttl)), true),
        ))
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        Ok(self
            .cache
            .remove(&Lookup(key))
            .is_some_and(|(_, e)| e.is_live()))
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Ttl) -> Result<i64, CacheError> {
        self.update(
            key,
            |entry| match entry.value {
                // Changed in place: the counter keeps its expiry.
                Value::Int(n) => Update::Keep(match n.checked_add(delta) {
                    Some(sum) => {
                        entry.value = Value::Int(sum);
                        Ok(sum)
                    }
                    None => Err(CacheError::Overflow(key.to_owned())),
                }),
                _ => Update::Keep(Err(CacheError::NotACounter(key.to_owned()))),
            },
            || (Some(Entry::new(Value::Int(delta), ttl)), Ok(delta)),
        )
    }

    async fn touch(&self, key: &str, ttl: Ttl) -> Result<bool, CacheError> {
        Ok(self.update(
            key,
            |entry| {
                entry.expires = deadline(ttl);
                Update::Keep(true)
            },
            || (None, false),
        ))
    }

    async fn clear(&self, prefix: &str) -> Result<usize, CacheError> {
        let removed = Cell::new(0usize);
        let now = Instant::now();
        self.cache.retain(|key, entry| {
            if !key.as_bytes().starts_with(prefix.as_bytes()) {
                return true;
            }
            if entry.expires.is_none_or(|at| now < at) {
                removed.set(removed.get() + 1);
            }
            false
        });
        Ok(removed.get())
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, CacheError> {
        Ok(self.update(
            key,
            |entry| match holds(entry, expected) {
                true => Update::Remove(true),
                false => Update::Keep(false),
            },
            || (None, false),
        ))
    }

    async fn expire_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        Ok(self.update(
            key,
            |entry| match holds(entry, expected) {
                true => {
                    entry.expires = deadline(Some(ttl));
                    Update::Keep(true)
                }
                false => Update::Keep(false),
            },
            || (None, false),
        ))
    }

    fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

/// Whether `entry` holds exactly the bytes `expected`.
fn holds(entry: &Entry, expected: &[u8]) -> bool {
    matches!(&entry.value, Value::Bytes(b) if b.as_ref() == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &'static str) -> Value {
        Value::Bytes(s.as_bytes().into())
    }

    #[tokio::test]
    async fn an_expired_entry_is_absent_to_every_operation() {
        let b = MemoryBackend::default();
        let short = Some(Duration::from_millis(30));
        b.set("k", bytes("v"), short).await.unwrap();
        b.incr("n", 5, short).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(b.get("k").await.unwrap().is_none());
        assert!(!b.touch("k", None).await.unwrap());
        assert!(!b.delete_if_equals("k", b"v").await.unwrap());
        assert!(b.add("k", bytes("w"), None).await.unwrap(), "added over it");
        assert_eq!(b.incr("n", 1, None).await.unwrap(), 1, "a fresh counter");
        assert_eq!(b.clear("").await.unwrap(), 2, "the two live ones");
    }

    #[test]
    fn the_word_comparison_is_equality() {
        let keys = [
            "",
            "a",
            "ab",
            ":1:f:7",
            ":1:f:70",
            ":1:f:700",
            ":1:f:7000",
            ":1:product:42",
            ":1:cache_fn::ours_default(123)",
            ":1:cache_fn::ours_default(124)",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(
                    same_bytes(a.as_bytes(), b.as_bytes()),
                    a == b,
                    "{a:?} {b:?}"
                );
            }
        }
        let long = "k".repeat(300);
        let mut other = long.clone();
        other.replace_range(150..151, "j");
        assert!(same_bytes(long.as_bytes(), long.as_bytes()));
        assert!(!same_bytes(long.as_bytes(), other.as_bytes()));
    }

    #[tokio::test]
    async fn run_pending_tasks_drops_expired_entries() {
        let b = MemoryBackend::default();
        b.set("a", bytes("v"), Some(Duration::from_millis(10)))
            .await
            .unwrap();
        b.set("b", bytes("v"), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        b.run_pending_tasks().await;
        assert_eq!(b.entry_count(), 1);
    }
}
