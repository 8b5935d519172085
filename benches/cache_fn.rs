//! P1: a `#[cache_fn]` hit in the memory cache against a raw `moka` get of the same
//! value, with the `cached` crate's `#[cached]` hit beside them.
//! P5: 1,000 concurrent callers of one cold key: how many times the body runs (ours:
//! once; the `cached` crate's default: once per caller), and how long the burst takes.
//!
//! `cargo bench --bench cache_fn -- --warm-up-time 1 --measurement-time 3`

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cached::proc_macro::cached;
use cached_kit::cache_fn;
use criterion::{criterion_group, criterion_main, Criterion};
use serde::{Deserialize, Serialize};

const CALLERS: usize = 1_000;

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

#[cache_fn(ttl = 3600, key = "product:{id}")]
async fn product(id: u64) -> Product {
    make_product(id)
}

#[cached(ttl_secs = 3600)]
async fn cached_crate_product(id: u64) -> Product {
    make_product(id)
}

static OURS_RUNS: AtomicUsize = AtomicUsize::new(0);
static THEIRS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache_fn(ttl = 3600, key = "cold:{id}")]
async fn cold_ours(id: u64) -> u64 {
    OURS_RUNS.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1)).await;
    id
}

#[cached(ttl_secs = 3600)]
async fn cold_theirs(id: u64) -> u64 {
    THEIRS_RUNS.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1)).await;
    id
}

/// Per-entry expiry, configured as the memory backend configures moka.
struct PerEntry;

impl moka::Expiry<String, (Product, Duration)> for PerEntry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &(Product, Duration),
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.1)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn p1_hit(c: &mut Criterion) {
    let rt = runtime();
    let moka: moka::future::Cache<String, Product> = moka::future::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(3600))
        .build();
    let per_entry: moka::future::Cache<String, (Product, Duration)> =
        moka::future::Cache::builder()
            .max_capacity(10_000)
            .expire_after(PerEntry)
            .build();
    rt.block_on(async {
        moka.insert("product:42".to_owned(), make_product(42)).await;
        per_entry
            .insert(
                "product:42".to_owned(),
                (make_product(42), Duration::from_secs(3600)),
            )
            .await;
        assert_eq!(product(42).await, make_product(42));
        assert_eq!(cached_crate_product(42).await, make_product(42));
    });
    let mut group = c.benchmark_group("P1 memory hit");
    group.bench_function("raw moka get", |b| {
        b.to_async(&rt)
            .iter(|| async { moka.get("product:42").await.expect("present") });
    });
    // The same moka configured as the memory backend configures it (per-entry ttl).
    group.bench_function("raw moka get, per-entry expiry", |b| {
        b.to_async(&rt)
            .iter(|| async { per_entry.get("product:42").await.expect("present").0 });
    });
    group.bench_function("#[cache_fn]", |b| {
        b.to_async(&rt).iter(|| product(42));
    });
    group.bench_function("cached crate #[cached]", |b| {
        b.to_async(&rt).iter(|| cached_crate_product(42));
    });
    // The breakdown: the `Cache` handle alone, reading the entry the macro stored.
    let cache = cached_kit::cache();
    group.bench_function("Cache::get (no macro)", |b| {
        b.to_async(&rt)
            .iter(|| async { cache.get::<Product>("product:42").await });
    });
    group.finish();
}

/// 1,000 tasks call `f(id)` at once on a key nobody has computed; returns after all.
async fn burst<F, Fut>(f: F, id: u64)
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
    let tasks: Vec<_> = (0..CALLERS).map(|_| tokio::spawn(f(id))).collect();
    for t in tasks {
        assert_eq!(t.await.expect("task"), id);
    }
}

fn p5_stampede(c: &mut Criterion) {
    let rt = runtime();
    // One measured burst each, outside criterion, for the body counts.
    rt.block_on(async {
        burst(cold_ours, 0).await;
        burst(cold_theirs, 0).await;
    });
    println!(
        "P5: {CALLERS} concurrent callers of one cold key: body ran {} time(s) with #[cache_fn], {} time(s) with the cached crate's #[cached]",
        OURS_RUNS.load(Ordering::Relaxed),
        THEIRS_RUNS.load(Ordering::Relaxed),
    );
    // Each iteration uses a fresh key, so every burst is cold.
    let next = Arc::new(AtomicU64::new(1));
    let mut group = c.benchmark_group("P5 1000 callers, cold key");
    group.sample_size(10);
    group.bench_function("#[cache_fn]", |b| {
        b.to_async(&rt)
            .iter(|| burst(cold_ours, next.fetch_add(1, Ordering::Relaxed)));
    });
    group.bench_function("cached crate #[cached]", |b| {
        b.to_async(&rt)
            .iter(|| burst(cold_theirs, next.fetch_add(1, Ordering::Relaxed)));
    });
    group.finish();
    let (ours, theirs) = (
        OURS_RUNS.load(Ordering::Relaxed),
        THEIRS_RUNS.load(Ordering::Relaxed),
    );
    println!("P5: body runs over all bursts: #[cache_fn] {ours}, cached crate {theirs}");
}

criterion_group!(benches, p1_hit, p5_stampede);
criterion_main!(benches);
