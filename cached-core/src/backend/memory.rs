//! [`MemoryBackend`]: an in-process cache on moka (TinyLFU admission, per-entry TTL).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::notification::RemovalCause;
use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache as Moka;
use moka::Expiry;

use super::{Backend, Ttl, Value};
use crate::CacheError;

/// The default bound of a memory cache, in entries.
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;

#[derive(Clone)]
struct Entry {
    value: Value,
    ttl: Ttl,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, entry: &Entry, _now: Instant) -> Option<Duration> {
        entry.ttl
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        entry.ttl
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

/// The in-memory backend, built on [moka](https://docs.rs/moka).
///
/// Every operation completes without waiting (moka's synchronous cache: no I/O, only
/// short per-key locks), so reads take the [`Backend::get_now`] path and a hit costs no
/// future at all.
///
/// Entries expire exactly at their TTL (a read after the deadline misses, to the
/// millisecond); when full, moka's TinyLFU policy chooses what to evict, which keeps
/// hit ratios close to optimal on skewed workloads. Bounded by entry count (default
/// [`DEFAULT_MAX_ENTRIES`], values never serialized) or by bytes.
///
/// ```
/// use cached_core::backend::memory::{Bound, MemoryBackend};
/// let small = MemoryBackend::new(Bound::Entries(1_000));
/// let sized = MemoryBackend::new(Bound::Bytes(64 * 1024 * 1024));
/// # let _ = (small, sized);
/// ```
pub struct MemoryBackend {
    cache: Moka<String, Entry>,
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
        let counter = Arc::clone(&evictions);
        let builder = Moka::builder().expire_after(PerEntryTtl).eviction_listener(
            move |_key, _value, cause| {
                if cause == RemovalCause::Size {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            },
        );
        let (cache, stores_objects) = match bound {
            Bound::Entries(n) => (builder.max_capacity(n).build(), true),
            Bound::Bytes(n) => (
                builder
                    .max_capacity(n)
                    .weigher(|key: &String, entry: &Entry| {
                        u32::try_from(key.len() + entry.value.weight()).unwrap_or(u32::MAX)
                    })
                    .build(),
                false,
            ),
        };
        Self {
            cache,
            stores_objects,
            evictions,
        }
    }

    /// Applies pending maintenance (evictions, expirations) now; useful in tests.
    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }

    /// The approximate number of live entries.
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }
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
        Some(Ok(self.cache.get(key).map(|e| e.value)))
    }

    async fn get(&self, key: &str) -> Result<Option<Value>, CacheError> {
        Ok(self.cache.get(key).map(|e| e.value))
    }

    async fn set(&self, key: &str, value: Value, ttl: Ttl) -> Result<(), CacheError> {
        self.cache.insert(key.to_owned(), Entry { value, ttl });
        Ok(())
    }

    async fn add(&self, key: &str, value: Value, ttl: Ttl) -> Result<bool, CacheError> {
        let result = self
            .cache
            .entry_by_ref(key)
            .and_compute_with(|existing| match existing {
                Some(_) => Op::Nop,
                None => Op::Put(Entry { value, ttl }),
            });
        Ok(matches!(result, CompResult::Inserted(_)))
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        Ok(self.cache.remove(key).is_some())
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Ttl) -> Result<i64, CacheError> {
        let mut failure = None;
        let result = self.cache.entry_by_ref(key).and_compute_with(|existing| {
            match existing.map(|e| e.into_value()) {
                None => Op::Put(Entry {
                    value: Value::Int(delta),
                    ttl,
                }),
                Some(Entry {
                    value: Value::Int(n),
                    ttl,
                }) => match n.checked_add(delta) {
                    Some(sum) => Op::Put(Entry {
                        value: Value::Int(sum),
                        ttl,
                    }),
                    None => {
                        failure = Some(CacheError::Overflow(key.to_owned()));
                        Op::Nop
                    }
                },
                Some(_) => {
                    failure = Some(CacheError::NotACounter(key.to_owned()));
                    Op::Nop
                }
            }
        });
        if let Some(err) = failure {
            return Err(err);
        }
        match result {
            CompResult::Inserted(e) | CompResult::ReplacedWith(e) => match e.into_value().value {
                Value::Int(n) => Ok(n),
                _ => Err(CacheError::NotACounter(key.to_owned())),
            },
            _ => Err(CacheError::NotACounter(key.to_owned())),
        }
    }

    async fn touch(&self, key: &str, ttl: Ttl) -> Result<bool, CacheError> {
        let result = self
            .cache
            .entry_by_ref(key)
            .and_compute_with(|existing| match existing {
                Some(e) => Op::Put(Entry {
                    value: e.into_value().value,
                    ttl,
                }),
                None => Op::Nop,
            });
        Ok(matches!(result, CompResult::ReplacedWith(_)))
    }

    async fn clear(&self, prefix: &str) -> Result<usize, CacheError> {
        let keys: Vec<Arc<String>> = self
            .cache
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k)
            .collect();
        let mut n = 0;
        for key in keys {
            n += usize::from(self.cache.remove(key.as_str()).is_some());
        }
        Ok(n)
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, CacheError> {
        let result = self
            .cache
            .entry_by_ref(key)
            .and_compute_with(|existing| match existing {
                Some(e) if holds(e.value(), expected) => Op::Remove,
                _ => Op::Nop,
            });
        Ok(matches!(result, CompResult::Removed(_)))
    }

    async fn expire_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let result = self
            .cache
            .entry_by_ref(key)
            .and_compute_with(|existing| match existing {
                Some(e) if holds(e.value(), expected) => Op::Put(Entry {
                    value: e.into_value().value,
                    ttl: Some(ttl),
                }),
                _ => Op::Nop,
            });
        Ok(matches!(result, CompResult::ReplacedWith(_)))
    }

    fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

/// Whether `entry` holds exactly the bytes `expected`.
fn holds(entry: &Entry, expected: &[u8]) -> bool {
    matches!(&entry.value, Value::Bytes(b) if b.as_ref() == expected)
}
