//! Counters every cache keeps, and its rate-limited error log.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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
    /// Reads that found a value.
    pub hits: u64,
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

/// A cache's counters, striped: each thread counts in its own stripe (its own cache
/// line), so that threads hitting one cache do not contend on a shared counter; a
/// snapshot sums the stripes. Every count is an atomic increment, so the sum is exact
/// once the counting threads are done (and always for the thread that reads it).
#[derive(Debug)]
pub(crate) struct Counters {
    stripes: Box<[Stripe; STRIPES]>,
    /// Backend errors are logged at most once a second per cache.
    pub errors_log: RateLimited,
}

/// How many stripes a cache's counters have (threads beyond share them, round-robin).
const STRIPES: usize = 16;

/// One thread's counters: 56 bytes, alone on a 128-byte line pair (x86 prefetches lines
/// in pairs).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Stripe {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub sets: AtomicU64,
    pub deletes: AtomicU64,
    pub errors: AtomicU64,
    pub decode_errors: AtomicU64,
    pub coalesced_waits: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            stripes: Box::default(),
            errors_log: RateLimited::default(),
        }
    }
}

/// This thread's stripe number, given out round-robin on first use.
fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX
        .try_with(|i| {
            if i.get() == usize::MAX {
                i.set(NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES);
            }
            i.get()
        })
        .unwrap_or(0)
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    /// The calling thread's stripe, to count in.
    pub fn local(&self) -> &Stripe {
        &self.stripes[stripe_index() % STRIPES]
    }

    pub fn snapshot(&self, evictions: u64) -> CacheStats {
        let sum = |c: fn(&Stripe) -> &AtomicU64| -> u64 {
            self.stripes
                .iter()
                .map(|s| c(s).load(Ordering::Relaxed))
                .fold(0, u64::wrapping_add)
        };
        CacheStats {
            hits: sum(|s| &s.hits),
            misses: sum(|s| &s.misses),
            sets: sum(|s| &s.sets),
            deletes: sum(|s| &s.deletes),
            evictions,
            errors: sum(|s| &s.errors),
            decode_errors: sum(|s| &s.decode_errors),
            coalesced_waits: sum(|s| &s.coalesced_waits),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_every_thread_are_summed_exactly() {
        let counters = std::sync::Arc::new(Counters::default());
        let threads: Vec<_> = (0..40)
            .map(|_| {
                let c = std::sync::Arc::clone(&counters);
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        bump(&c.local().hits);
                    }
                    add(&c.local().sets, 3);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a counting thread");
        }
        bump(&counters.local().misses);
        let stats = counters.snapshot(0);
        assert_eq!(stats.hits, 40_000);
        assert_eq!(stats.sets, 120);
        assert_eq!(stats.misses, 1);
    }
}
