//! P2: a `#[cache_fn]` hit in Redis against a raw `redis` crate `GET` of the same stored
//! key, with 1 task and with 64 concurrent tasks, and the `cached` crate's
//! `AsyncRedisCache` beside them. All against one real redis-server on loopback that the
//! bench starts itself.
//!
//! `cargo bench --bench redis --features redis -- --warm-up-time 1 --measurement-time 3`
//!
//! Two raw baselines: `raw redis GET` returns the stored bytes undecoded (the floor any
//! Redis cache pays: one round trip); `raw redis GET + decode` also decodes them with the
//! same codec, which is what a hand-written cache does to get the value. Ours and
//! `cached`'s decode the value too.

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cached::ConcurrentCachedAsync;
use cached_kit::redis::testing::RedisServer;
use cached_kit::{cache_fn, caches, Cache, Codec};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::{Deserialize, Serialize};

const TASKS: usize = 64;

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

#[cache_fn(ttl = 3600, cache = "bench_redis", key = "product:{id}")]
async fn product(id: u64) -> Product {
    make_product(id)
}

/// The raw baseline a user would write to get the value itself: GET, then decode the
/// bytes with the same codec.
async fn get_and_decode(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Product {
    let v: Vec<u8> = redis::cmd("GET")
        .arg(key)
        .query_async(conn)
        .await
        .expect("GET");
    Codec::default().decode(&v).expect("decode")
}

/// Runs `op` `iters` times in total, split over `tasks` concurrent tasks.
async fn concurrently<F, Fut>(iters: u64, tasks: usize, op: F) -> Duration
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let per_task = iters.div_ceil(tasks as u64);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    op().await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("bench task");
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = RedisServer::start();
    let url = server.url();
    caches().insert(Cache::from_url_as("bench_redis", "bench", &url).expect("a valid Redis URL"));
    let stored_key = caches()
        .get("bench_redis")
        .expect("configured")
        .make_key("product:42");

    let raw = rt.block_on(async {
        // Warm: the first call stores, every later call is a hit.
        assert_eq!(product(42).await, make_product(42));
        let client = redis::Client::open(url.as_str()).expect("client");
        client
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection")
    });
    let theirs = rt.block_on(async {
        let store: cached::AsyncRedisCache<u64, Product> =
            cached::AsyncRedisCache::builder("cached-crate-bench")
                .ttl(Duration::from_secs(3600))
                .connection_string(&url)
                .build()
                .await
                .expect("the cached crate's AsyncRedisCache");
        store
            .async_cache_set(42, make_product(42))
            .await
            .expect("cached crate set");
        Arc::new(store)
    });

    let mut group = c.benchmark_group("P2 redis hit");
    group.throughput(Throughput::Elements(1));

    group.bench_function(BenchmarkId::new("cache_fn", "1 task"), |b| {
        b.to_async(&rt).iter(|| product(42));
    });
    group.bench_function(BenchmarkId::new("raw redis GET", "1 task"), |b| {
        let key = stored_key.clone();
        let conn = raw.clone();
        b.to_async(&rt).iter(|| {
            let mut conn = conn.clone();
            let key = key.clone();
            async move {
                let v: Vec<u8> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .expect("GET");
                v
            }
        });
    });
    group.bench_function(BenchmarkId::new("raw redis GET + decode", "1 task"), |b| {
        let key = stored_key.clone();
        let conn = raw.clone();
        b.to_async(&rt).iter(|| {
            let mut conn = conn.clone();
            let key = key.clone();
            async move { get_and_decode(&mut conn, &key).await }
        });
    });
    group.bench_function(BenchmarkId::new("cached AsyncRedisCache", "1 task"), |b| {
        let store = theirs.clone();
        b.to_async(&rt).iter(|| {
            let store = store.clone();
            async move { store.async_cache_get(&42).await.expect("get") }
        });
    });

    let tasks = format!("{TASKS} tasks");
    group.bench_function(BenchmarkId::new("cache_fn", &tasks), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            concurrently(iters, TASKS, || async {
                std::hint::black_box(product(42).await);
            })
        });
    });
    group.bench_function(BenchmarkId::new("raw redis GET", &tasks), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let conn = raw.clone();
            let key = stored_key.clone();
            concurrently(iters, TASKS, move || {
                let mut conn = conn.clone();
                let key = key.clone();
                async move {
                    let v: Vec<u8> = redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .expect("GET");
                    std::hint::black_box(v);
                }
            })
        });
    });
    group.bench_function(BenchmarkId::new("raw redis GET + decode", &tasks), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let conn = raw.clone();
            let key = stored_key.clone();
            concurrently(iters, TASKS, move || {
                let mut conn = conn.clone();
                let key = key.clone();
                async move {
                    std::hint::black_box(get_and_decode(&mut conn, &key).await);
                }
            })
        });
    });
    group.bench_function(BenchmarkId::new("cached AsyncRedisCache", &tasks), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let store = theirs.clone();
            concurrently(iters, TASKS, move || {
                let store = store.clone();
                async move {
                    std::hint::black_box(store.async_cache_get(&42).await.expect("get"));
                }
            })
        });
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
