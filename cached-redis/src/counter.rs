//! [`Counter`]: a count that every worker thread bumps on every call, without making the
//! threads fight over one cache line.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes per counter; threads are spread over them round-robin.
const STRIPES: usize = 8;

/// One stripe on a cache line (two, for adjacent-line prefetching) of its own.
#[repr(align(128))]
#[derive(Default)]
struct Stripe(AtomicU64);

/// A monotonic count bumped from many threads: each thread adds to its own stripe, and
/// reading sums them. Bumping is an uncontended atomic add; reading is rare (metrics).
#[derive(Default)]
pub(crate) struct Counter {
    stripes: [Stripe; STRIPES],
}

impl Counter {
    pub(crate) fn add(&self) {
        self.stripes[stripe()].0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// This thread's stripe.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_from_every_thread_add_up() {
        let counter = Arc::new(Counter::default());
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || (0..1000).for_each(|_| counter.add()))
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(counter.get(), 12_000);
    }
}
