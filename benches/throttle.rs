//! P4 and P8: memory throttle checks against `governor`'s keyed check.
//!
//! Every side limits client keys to `10/minute`: our sliding log (P4), our GCRA with a
//! burst of 10 (P8: `governor`'s own algorithm and default burst), and `governor`'s
//! `RateLimiter::keyed(Quota::per_minute(10))`. Keys are prebuilt strings of the shape
//! `ThrottleLayer` uses. Ours go through the `ThrottleStore` trait object exactly as
//! `ThrottleLayer` and `#[throttle]` call it: `check_now` / `check_gcra_now`, the
//! in-process answer without a future.
//!
//! Two cases: 1,000 keys, where after the first few thousand checks every check is a
//! refusal (the hot path under load), and 1,000,000 keys, where most checks admit and
//! record (a new key for the first pass).
//!
//! After the criterion groups, an interleaved pass (every variant once per round, the
//! median of the rounds) prints the ratios: on a shared machine load drifts during a
//! run, and interleaving exposes every variant to the same drift. Run:
//!
//! ```text
//! cargo bench --bench throttle -- --warm-up-time 1 --measurement-time 3
//! ```

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cached_kit::throttle::{Gcra, MemoryThrottleStore, Rate, ThrottleStore};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

fn keys(n: usize, algorithm: &str) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "throttle:anon:{algorithm}10/minute:ip:10.{}.{}.{}",
                i >> 16,
                (i >> 8) & 255,
                i & 255
            )
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    SlidingLog,
    Gcra,
    Governor,
}

const VARIANTS: [Variant; 3] = [Variant::SlidingLog, Variant::Gcra, Variant::Governor];

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::SlidingLog => "cached_kit_sliding_log",
            Variant::Gcra => "cached_kit_gcra",
            Variant::Governor => "governor_keyed",
        }
    }
}

/// One variant's state: its own limiter and keys, and where it is in them.
struct Bench {
    variant: Variant,
    store: Arc<dyn ThrottleStore>,
    governor: DefaultKeyedRateLimiter<String>,
    rate: Rate,
    gcra: Gcra,
    keys: Vec<String>,
    i: usize,
}

impl Bench {
    fn new(variant: Variant, n: usize) -> Bench {
        let rate = Rate::parse("10/minute").expect("rate");
        let quota = Quota::per_minute(NonZeroU32::new(10).expect("non-zero"));
        let prefix = if variant == Variant::Gcra {
            "gcra:"
        } else {
            ""
        };
        Bench {
            variant,
            store: Arc::new(MemoryThrottleStore::with_max_keys((2 * n).max(100_000))),
            governor: RateLimiter::keyed(quota),
            rate,
            gcra: Gcra::new(rate, 10),
            keys: keys(n, prefix),
            i: 0,
        }
    }

    /// One check of the next key; whether it was admitted.
    #[inline]
    fn check(&mut self) -> bool {
        self.i += 1;
        if self.i == self.keys.len() {
            self.i = 0;
        }
        let key = &self.keys[self.i];
        match self.variant {
            Variant::SlidingLog => {
                let answer = self.store.check_now(key, self.rate);
                answer.expect("in process").expect("never fails").admitted
            }
            Variant::Gcra => {
                let answer = self.store.check_gcra_now(key, self.gcra);
                answer.expect("in process").expect("never fails").admitted
            }
            Variant::Governor => self.governor.check_key(key).is_ok(),
        }
    }
}

const CASES: [(&str, usize); 2] = [
    ("1k_keys_refusing", 1_000),
    ("1m_keys_admitting", 1_000_000),
];

fn bench(c: &mut Criterion) {
    for (name, n) in CASES {
        let mut group = c.benchmark_group(format!("p4_p8_throttle_check/{name}"));
        group.throughput(Throughput::Elements(1));
        for variant in VARIANTS {
            let mut b = Bench::new(variant, n);
            group.bench_function(variant.name(), |bencher| {
                bencher.iter(|| black_box(b.check()))
            });
        }
        group.finish();
    }
    interleaved();
}

/// The interleaved pass: per round, every variant makes the same number of checks; the
/// median time per check of each variant over the rounds gives the ratios.
fn interleaved() {
    const ROUNDS: usize = 15;
    const CHECKS: usize = 1_000_000;
    for (name, n) in CASES {
        let mut benches: Vec<Bench> = VARIANTS.iter().map(|&v| Bench::new(v, n)).collect();
        // Warm up: every key exists, the hot case is refusing.
        for b in &mut benches {
            for _ in 0..n.max(20_000) {
                black_box(b.check());
            }
        }
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); VARIANTS.len()];
        let mut admitted = vec![0usize; VARIANTS.len()];
        for _ in 0..ROUNDS {
            for (i, b) in benches.iter_mut().enumerate() {
                let start = Instant::now();
                for _ in 0..CHECKS {
                    admitted[i] += usize::from(black_box(b.check()));
                }
                times[i].push(start.elapsed());
            }
        }
        let ns: Vec<f64> = times
            .iter_mut()
            .map(|t| {
                t.sort();
                t[ROUNDS / 2].as_secs_f64() * 1e9 / CHECKS as f64
            })
            .collect();
        println!("P4/P8 interleaved, {name}, median of {ROUNDS} rounds of {CHECKS} checks:");
        for (i, variant) in VARIANTS.iter().enumerate() {
            let share = admitted[i] as f64 / (ROUNDS * CHECKS) as f64;
            println!(
                "  {:<24} {:>8.1} ns/check  ({:>5.1}% admitted)",
                variant.name(),
                ns[i],
                share * 100.0
            );
        }
        let governor = ns[2];
        println!(
            "  P4 sliding log / governor: {:.2}x   P8 gcra / governor: {:.2}x",
            ns[0] / governor,
            ns[1] / governor
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
