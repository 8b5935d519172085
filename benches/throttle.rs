//! P4: a memory throttle check against `governor`'s keyed check.
//!
//! Both limit 1,000 client keys to 10 per minute; after the first few thousand checks
//! every check is a refusal (the hot path under load). A second pair spreads checks over
//! 1,000,000 keys, so most checks admit and record. Our check goes through the
//! `ThrottleStore` trait object exactly as `ThrottleLayer` calls it (an async-trait
//! future, polled once: it never waits). Run:
//!
//! ```text
//! cargo bench --bench throttle -- --warm-up-time 1 --measurement-time 3
//! ```

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use cached_kit::throttle::{Decision, MemoryThrottleStore, Rate, ThrottleStore};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use governor::{Quota, RateLimiter};

/// Polls a future that completes without waiting.
fn ready<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a memory throttle check never waits"),
    }
}

fn keys(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "throttle:anon:10/minute:ip:10.{}.{}.{}",
                i >> 16,
                (i >> 8) & 255,
                i & 255
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rate = Rate::parse("10/minute").expect("rate");
    let quota = Quota::per_minute(NonZeroU32::new(10).expect("non-zero"));
    for (name, n) in [
        ("1k_keys_refusing", 1_000),
        ("1m_keys_admitting", 1_000_000),
    ] {
        let keys = keys(n);
        let mut group = c.benchmark_group(format!("p4_throttle_check/{name}"));
        group.throughput(Throughput::Elements(1));

        let store: Arc<dyn ThrottleStore> =
            Arc::new(MemoryThrottleStore::with_max_keys(n.max(100_000)));
        let mut i = 0usize;
        group.bench_function("cached_kit_memory", |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                let d: Decision = ready(store.check(&keys[i], rate)).expect("memory never fails");
                black_box(d.admitted)
            })
        });

        let governor = RateLimiter::keyed(quota);
        let mut i = 0usize;
        group.bench_function("governor_keyed", |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                black_box(governor.check_key(&keys[i]).is_ok())
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
