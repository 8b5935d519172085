//! Counters every cache keeps, and its rate-limited error log.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::log::RateLimited;

use serde::Serialize;

/// A snapshot of a cache's counters, from [`Cache::stats`](crate::Cache::stats).
///
/// ```
/// let stats = cached_core::CacheStats::default();
/// assert_eq!(stats.hit_ratio(), 0.0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads that found a value (stale values served while they are refreshed
    /// included: see `stale_hits`).
    pub hits: u64,
    /// Of the `hits`, those that served a value past its ttl, within its stale window,
    /// while one refresh ran in the background (`stale = ..`). A plain `get` never
    /// serves a stale value: it counts a miss.
    pub stale_hits: u64,
    /// Reads that found nothing (including decode errors).
    pub misses: u64,
    /// Values stored.
    pub sets: u64,
    /// Keys deleted (that existed).
    pub deletes: u64,
    /// Entries the backend evicted to respect its size bound.
    pub evictions: u64,
    /// Backend errors (unreachable, timed out), each one survived.
    pub errors: u64,
    /// Stored values that could not be decoded (treated as misses and overwritten).
    pub decode_errors: u64,
    /// Callers that waited for another caller's computation instead of running it.
    pub coalesced_waits: u64,
}

impl CacheStats {
    /// hits / (hits + misses), or 0 when nothing was read.
    pub fn hit_ratio(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            self.hits as f64 / reads as f64
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub hits: AtomicU64,
    pub stale_hits: AtomicU64,
    pub misses: AtomicU64,
    pub sets: AtomicU64,
    pub deletes: AtomicU64,
    pub errors: AtomicU64,
    pub decode_errors: AtomicU64,
    pub coalesced_waits: AtomicU64,
    /// Backend errors are logged at most once a second per cache.
    pub errors_log: RateLimited,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub fn snapshot(&self, evictions: u64) -> CacheStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            hits: get(&self.hits),
            stale_hits: get(&self.stale_hits),
            misses: get(&self.misses),
            sets: get(&self.sets),
            deletes: get(&self.deletes),
            evictions,
            errors: get(&self.errors),
            decode_errors: get(&self.decode_errors),
            coalesced_waits: get(&self.coalesced_waits),
        }
    }
}
