//! What tags and a stale window cost a memory hit (SPEC §12): `#[cache_fn]` with two
//! tags, and with `stale`, against the same function without them; the `Cache` handle
//! reading a tagged entry against a plain one.
//!
//! Besides criterion's per-case times, the ratio is measured *interleaved*: rounds of
//! 20,000 plain hits then 20,000 tagged hits (the order alternating by round), and the
//! median of the per-round ratios is printed, so that load from other processes on the
//! machine hits both sides alike.
//!
//! `cargo bench --bench fresh -- --warm-up-time 1 --measurement-time 3`

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use cached_kit::cache_fn;
use criterion::{criterion_group, criterion_main, Criterion};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
    price_cents: u64,
    tags: Vec<String>,
}

fn make_product(id: u64) -> Product {
    Product {
        id,
        name: format!("desk lamp {id}"),
        price_cents: 1999,
        tags: vec!["light".into(), "home".into(), "office".into()],
    }
}

#[cache_fn(ttl = 3600, key = "bench:plain:{id}")]
async fn plain(id: u64) -> Product {
    make_product(id)
}

#[cache_fn(ttl = 3600, key = "bench:tagged:{id}", tags = ["product:{id}", "products"])]
async fn tagged(id: u64) -> Product {
    make_product(id)
}

#[cache_fn(ttl = 3600, stale = 600, key = "bench:stale:{id}")]
async fn stale(id: u64) -> Product {
    make_product(id)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

const ROUNDS: usize = 41;
const PER_ROUND: usize = 20_000;

/// The median over interleaved rounds of `time(b) / time(a)`, and the median
/// nanoseconds per call of each.
fn interleaved<A, B>(rt: &tokio::runtime::Runtime, a: A, b: B) -> (f64, f64, f64)
where
    A: AsyncFn() -> Product,
    B: AsyncFn() -> Product,
{
    let mut ratios = Vec::with_capacity(ROUNDS);
    let (mut ta, mut tb) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
    rt.block_on(async {
        for round in 0..ROUNDS {
            let time = async |which: bool| {
                let start = Instant::now();
                for _ in 0..PER_ROUND {
                    if which {
                        black_box(b().await);
                    } else {
                        black_box(a().await);
                    }
                }
                start.elapsed()
            };
            let (da, db) = if round % 2 == 0 {
                let da = time(false).await;
                (da, time(true).await)
            } else {
                let db = time(true).await;
                (time(false).await, db)
            };
            ratios.push(db.as_secs_f64() / da.as_secs_f64());
            ta.push(da.as_secs_f64() * 1e9 / PER_ROUND as f64);
            tb.push(db.as_secs_f64() * 1e9 / PER_ROUND as f64);
        }
    });
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut ratios), median(&mut ta), median(&mut tb))
}

fn memory_hit(c: &mut Criterion) {
    let rt = runtime();
    let cache = cached_kit::cache();
    rt.block_on(async {
        assert_eq!(plain(42).await, make_product(42));
        assert_eq!(tagged(42).await, make_product(42));
        assert_eq!(stale(42).await, make_product(42));
        let ttl = Duration::from_secs(3600);
        cache
            .set("bench:get:plain", &make_product(42), ttl)
            .await
            .expect("set");
        cache
            .set_tagged(
                "bench:get:tagged",
                &make_product(42),
                ttl,
                &["product:42", "products"],
            )
            .await
            .expect("set_tagged");
        // An invalidation elsewhere moves the generation once: the tagged entries
        // check their versions on their next hit, then are plain hits again.
        cache
            .invalidate_tags(&["unrelated"])
            .await
            .expect("invalidate");
        let hits = cache.stats().hits;
        assert_eq!(tagged(42).await, make_product(42));
        assert_eq!(cache.stats().hits, hits + 1, "still a hit");
    });

    let (ratio, p, t) = interleaved(&rt, async || plain(42).await, async || tagged(42).await);
    println!(
        "interleaved: #[cache_fn] memory hit with two tags / without: {ratio:.3} (median of {ROUNDS} rounds; {t:.0} vs {p:.0} ns)"
    );
    let (ratio, p, s) = interleaved(&rt, async || plain(42).await, async || stale(42).await);
    println!(
        "interleaved: #[cache_fn] memory hit with stale / without: {ratio:.3} (median of {ROUNDS} rounds; {s:.0} vs {p:.0} ns)"
    );
    let (ratio, p, t) = interleaved(
        &rt,
        async || {
            cache
                .get::<Product>("bench:get:plain")
                .await
                .expect("get")
                .expect("hit")
        },
        async || {
            cache
                .get::<Product>("bench:get:tagged")
                .await
                .expect("get")
                .expect("hit")
        },
    );
    println!(
        "interleaved: Cache::get of a two-tag entry / a plain one: {ratio:.3} (median of {ROUNDS} rounds; {t:.0} vs {p:.0} ns)"
    );

    let mut group = c.benchmark_group("freshness: memory hit");
    group.bench_function("#[cache_fn]", |b| b.to_async(&rt).iter(|| plain(42)));
    group.bench_function("#[cache_fn(tags = [two])]", |b| {
        b.to_async(&rt).iter(|| tagged(42))
    });
    group.bench_function("#[cache_fn(stale = 600)]", |b| {
        b.to_async(&rt).iter(|| stale(42))
    });
    group.bench_function("Cache::get, plain entry", |b| {
        b.to_async(&rt)
            .iter(|| async { cache.get::<Product>("bench:get:plain").await })
    });
    group.bench_function("Cache::get, two-tag entry", |b| {
        b.to_async(&rt)
            .iter(|| async { cache.get::<Product>("bench:get:tagged").await })
    });
    group.finish();
}

criterion_group!(benches, memory_hit);
criterion_main!(benches);
