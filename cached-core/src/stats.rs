//! Counters every cache keeps, and its rate-limited error log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::log::RateLimited;
use crate::observe::CacheMetrics;

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
    /// Of the `hits`, the fresh ones served from the near tier of a two-tier cache (a
    /// Redis cache with `near_max_entries`): in process, without a round trip (a stale
    /// value served from there is a `stale_hits`). Always 0 for
    /// other backends (an in-memory cache has one tier: its hits are plain `hits`).
    pub near_hits: u64,
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

/// A cache's counters, striped: each thread counts in a stripe of its own (its own cache
/// line, which no other thread writes), so that threads hitting one cache neither
/// contend on a shared counter nor pay a locked instruction per count; a snapshot sums
/// the stripes. Threads beyond the number of stripes share one more stripe, counted
/// with atomic increments. The sum is exact once the counting threads are done (and
/// always for the thread that reads it).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// `STRIPES` owned stripes, then the shared one.
    stripes: Box<[Stripe; STRIPES + 1]>,
    /// Backend errors are logged at most once a second per cache.
    pub errors_log: RateLimited,
    /// Every event counted here is also a metric (feature `metrics`, `observe.rs`).
    metrics: Arc<CacheMetrics>,
}

/// How many threads at a time count in a stripe of their own.
const STRIPES: usize = 16;

/// What a cache counts. Each read counts as one of `Hits`, `NearHits`, `StaleHits` and
/// `Misses` (a stale or near hit is not also a hit here: [`Counters::snapshot`] adds
/// them up, as `CacheStats::hits` says), so that the lookups metric sums to the reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Hits,
    StaleHits,
    NearHits,
    Misses,
    Sets,
    Deletes,
    Errors,
    DecodeErrors,
    CoalescedWaits,
}

impl Counter {
    /// The counter of a fresh hit: read from a near tier (`near`) or not.
    #[inline]
    pub(crate) fn hit(near: bool) -> Counter {
        if near {
            Counter::NearHits
        } else {
            Counter::Hits
        }
    }
}

/// One thread's counters, by [`Counter`]: 72 bytes, alone on a 128-byte line pair (x86
/// prefetches lines in pairs).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe([AtomicU64; 9]);

/// The stripes threads own: bit `i` set while a thread owns stripe `i`.
static OWNED: AtomicU64 = AtomicU64::new(0);

/// A thread's stripe number; an owned one is given back when the thread ends.
struct Owner(usize);

impl Owner {
    fn claim() -> Owner {
        let all = (1u64 << STRIPES) - 1;
        let mut owned = OWNED.load(Ordering::Relaxed);
        loop {
            let free = !owned & all;
            if free == 0 {
                return Owner(STRIPES);
            }
            let i = free.trailing_zeros() as usize;
            // Acquire: this thread continues the counts of the stripe's last owner.
            match OWNED.compare_exchange_weak(
                owned,
                owned | (1 << i),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Owner(i),
                Err(now) => owned = now,
            }
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if self.0 < STRIPES {
            // Release: the next owner sees every count this thread made.
            OWNED.fetch_and(!(1u64 << self.0), Ordering::Release);
        }
    }
}

thread_local! {
    static OWNER: Owner = Owner::claim();
}

impl Counters {
    /// The counters of the cache whose metric handles are `metrics`.
    pub fn new(metrics: Arc<CacheMetrics>) -> Counters {
        Counters {
            stripes: Box::default(),
            errors_log: RateLimited::new(),
            metrics,
        }
    }

    /// The cache's metric handles.
    pub fn metrics(&self) -> &CacheMetrics {
        &self.metrics
    }

    /// Counts one `counter` event.
    #[inline]
    pub fn bump(&self, counter: Counter) {
        self.add(counter, 1);
    }

    /// Counts `n` `counter` events.
    #[inline]
    pub fn add(&self, counter: Counter, n: u64) {
        // A thread past its thread-locals' end counts in the shared stripe.
        let stripe = OWNER.try_with(|o| o.0).unwrap_or(STRIPES);
        let cell = &self.stripes[stripe].0[counter as usize];
        let before = if stripe < STRIPES {
            // This thread is the stripe's only writer: no locked instruction needed.
            let before = cell.load(Ordering::Relaxed);
            cell.store(before.wrapping_add(n), Ordering::Relaxed);
            before
        } else {
            cell.fetch_add(n, Ordering::Relaxed)
        };
        // Metrics hook (`observe.rs`): the same event, through the cache's handles.
        self.metrics.counted(counter, n, before);
    }

    pub fn snapshot(&self, evictions: u64) -> CacheStats {
        let sum = |c: Counter| -> u64 {
            self.stripes
                .iter()
                .map(|s| s.0[c as usize].load(Ordering::Relaxed))
                .fold(0, u64::wrapping_add)
        };
        CacheStats {
            hits: sum(Counter::Hits)
                .wrapping_add(sum(Counter::StaleHits))
                .wrapping_add(sum(Counter::NearHits)),
            stale_hits: sum(Counter::StaleHits),
            near_hits: sum(Counter::NearHits),
            misses: sum(Counter::Misses),
            sets: sum(Counter::Sets),
            deletes: sum(Counter::Deletes),
            evictions,
            errors: sum(Counter::Errors),
            decode_errors: sum(Counter::DecodeErrors),
            coalesced_waits: sum(Counter::CoalescedWaits),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_every_thread_are_summed_exactly() {
        let counters = std::sync::Arc::new(Counters::default());
        // More threads at once than stripes: some share the last one.
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(40));
        let threads: Vec<_> = (0..40)
            .map(|_| {
                let c = std::sync::Arc::clone(&counters);
                let barrier = std::sync::Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    for _ in 0..1_000 {
                        c.bump(Counter::Hits);
                    }
                    c.add(Counter::Sets, 3);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a counting thread");
        }
        // And threads that come after them, on stripes given back.
        for _ in 0..20 {
            let c = std::sync::Arc::clone(&counters);
            std::thread::spawn(move || c.bump(Counter::Hits))
                .join()
                .expect("a counting thread");
        }
        counters.bump(Counter::Misses);
        let stats = counters.snapshot(0);
        assert_eq!(stats.hits, 40_020);
        assert_eq!(stats.sets, 120);
        assert_eq!(stats.misses, 1);
    }
}
