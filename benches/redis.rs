//! P2: a `#[cache_fn]` hit in Redis against a raw `redis` crate `GET` of the same stored
//! key, with 1 task and with 64 concurrent tasks, and the `cached` crate's
//! `AsyncRedisCache` beside them. All against one real redis-server on loopback that the
//! bench starts itself.
//!
//! `cargo bench --bench redis --features redis -- --warm-up-time 1 --measurement-time 3`
//!
//! Two raw baselines: `raw redis GET` returns the stored bytes undecoded (the floor any
//! Redis cache pays: one round trip); `raw redis GET + decode` also decodes them with the
//! same codec, which is what a hand-written cache does to get the value;
//! `ConnectionManager GET + decode` does the same through the `redis` crate's
//! auto-reconnecting `ConnectionManager` (which the backend was built on before it kept
//! its own `MultiplexedConnection`); `RedisBackend::get + decode` calls the backend
//! alone (as `dyn Backend`, the way the `Cache` calls it), which separates what the Redis
//! path costs from what the `#[cache_fn]` and `Cache` layers add. Ours and `cached`'s
//! decode the value too.
//!
//! `P2_PROFILE=cache_fn` (any variant's name) runs that variant alone at 64 tasks for
//! `P2_READS` reads and prints its wall time and this process's CPU time per read, for
//! `perf record` and for comparing builds on a shared machine:
//!
//! `P2_PROFILE=cache_fn P2_READS=1000000 cargo bench --bench redis --features redis`
//!
//! After the criterion groups, an interleaved pass (every variant once per round, in an
//! order that rotates, `P2_ROUNDS` rounds, 9 by default) prints the P2 ratios: on a
//! shared machine, load drifts during a run, and interleaving exposes every variant to
//! the same drift.

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cached::ConcurrentCachedAsync;
use cached_kit::backend::Value;
use cached_kit::{cache_fn, caches, Backend, Cache, Codec};
use cached_testing::RedisServer;
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    CacheFn,
    RawGet,
    RawGetDecode,
    ManagerGetDecode,
    BackendGetDecode,
    CachedCrate,
}

const VARIANTS: [Variant; 6] = [
    Variant::CacheFn,
    Variant::RawGet,
    Variant::RawGetDecode,
    Variant::ManagerGetDecode,
    Variant::BackendGetDecode,
    Variant::CachedCrate,
];

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::CacheFn => "cache_fn",
            Variant::RawGet => "raw redis GET",
            Variant::RawGetDecode => "raw redis GET + decode",
            Variant::ManagerGetDecode => "ConnectionManager GET + decode",
            Variant::BackendGetDecode => "RedisBackend::get + decode",
            Variant::CachedCrate => "cached AsyncRedisCache",
        }
    }
}

/// What every variant reads: the same product, stored by each under its own key.
struct Ctx {
    raw: redis::aio::MultiplexedConnection,
    manager: redis::aio::ConnectionManager,
    /// The Redis backend alone, as the `Cache` calls it (`dyn Backend`): what the Redis
    /// path costs without the `#[cache_fn]` and `Cache` layers.
    backend: Arc<dyn Backend>,
    stored_key: String,
    theirs: cached::AsyncRedisCache<u64, Product>,
}

/// One read of product 42 by `variant`.
async fn one(variant: Variant, ctx: &Ctx) {
    match variant {
        Variant::CacheFn => {
            std::hint::black_box(product(42).await);
        }
        Variant::RawGet => {
            let v: Vec<u8> = redis::cmd("GET")
                .arg(&ctx.stored_key)
                .query_async(&mut ctx.raw.clone())
                .await
                .expect("GET");
            std::hint::black_box(v);
        }
        Variant::RawGetDecode => {
            let v: Vec<u8> = redis::cmd("GET")
                .arg(&ctx.stored_key)
                .query_async(&mut ctx.raw.clone())
                .await
                .expect("GET");
            let p: Product = Codec::default().decode(&v).expect("decode");
            std::hint::black_box(p);
        }
        Variant::ManagerGetDecode => {
            let v: Vec<u8> = redis::cmd("GET")
                .arg(&ctx.stored_key)
                .query_async(&mut ctx.manager.clone())
                .await
                .expect("GET");
            let p: Product = Codec::default().decode(&v).expect("decode");
            std::hint::black_box(p);
        }
        Variant::BackendGetDecode => {
            let Some(Value::Bytes(v)) = ctx.backend.get(&ctx.stored_key).await.expect("get") else {
                panic!("product 42 is stored as encoded bytes");
            };
            let p: Product = Codec::default().decode(&v).expect("decode");
            std::hint::black_box(p);
        }
        Variant::CachedCrate => {
            std::hint::black_box(ctx.theirs.async_cache_get(&42).await.expect("get"));
        }
    }
}

/// Runs `iters` reads in total, split over `tasks` concurrent tasks; the elapsed time.
async fn run(variant: Variant, ctx: Arc<Ctx>, iters: u64, tasks: usize) -> Duration {
    let per_task = iters.div_ceil(tasks as u64);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    one(variant, &ctx).await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("bench task");
    }
    start.elapsed()
}

/// The connections every variant reads through, made on `rt` (a connection's driver
/// task runs on the runtime that made it).
fn setup(rt: &tokio::runtime::Runtime, server: &RedisServer) -> Arc<Ctx> {
    let url = server.url();
    if caches().get("bench_redis").is_err() {
        caches()
            .insert(Cache::from_url_as("bench_redis", "bench", &url).expect("a valid Redis URL"));
    }
    let stored_key = caches()
        .get("bench_redis")
        .expect("configured")
        .make_key("product:42");
    rt.block_on(async {
        // Warm: the first call stores, every later call is a hit.
        assert_eq!(product(42).await, make_product(42));
        let client = redis::Client::open(url.as_str()).expect("client");
        let raw = client
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection");
        let manager = redis::aio::ConnectionManager::new(client)
            .await
            .expect("connection manager");
        let backend: Arc<dyn Backend> =
            Arc::new(cached_kit::redis::RedisBackend::from_url(&url).expect("a valid Redis URL"));
        let theirs: cached::AsyncRedisCache<u64, Product> =
            cached::AsyncRedisCache::builder("cached-crate-bench")
                .ttl(Duration::from_secs(3600))
                .connection_string(&url)
                .build()
                .await
                .expect("the cached crate's AsyncRedisCache");
        theirs
            .async_cache_set(42, make_product(42))
            .await
            .expect("cached crate set");
        Arc::new(Ctx {
            raw,
            manager,
            backend,
            stored_key,
            theirs,
        })
    })
}

/// 64 tasks run on a 2-worker multi-thread runtime. One task runs on a current-thread
/// runtime: on the multi-thread one its latency depends on whether the task and the
/// connection's driver share a worker (a cross-thread wake-up costs tens of µs here), which
/// changes from run to run and says nothing about the cache.
fn runtime(tasks: usize) -> tokio::runtime::Runtime {
    let mut builder = if tasks == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    };
    builder.enable_all().build().expect("runtime")
}

/// `P2_PROFILE=<variant name>` (e.g. `cache_fn`, `raw redis GET`): runs only that variant,
/// 64 tasks, `P2_READS` reads (default 1,000,000), then exits. For `perf stat` / `perf
/// record`, where instructions per read say more than wall time on a shared machine.
fn profile_only() -> bool {
    let Ok(name) = std::env::var("P2_PROFILE") else {
        return false;
    };
    let variant = VARIANTS
        .into_iter()
        .find(|v| v.name() == name)
        .unwrap_or_else(|| panic!("P2_PROFILE={name}: not one of the variants"));
    let reads: u64 = std::env::var("P2_READS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_000_000);
    let server = RedisServer::start();
    let rt = runtime(TASKS);
    let ctx = setup(&rt, &server);
    let cpu = process_cpu();
    let took = rt.block_on(run(variant, ctx, reads, TASKS));
    let cpu = process_cpu().saturating_sub(cpu);
    println!(
        "{name}: {reads} reads in {took:?}, {:.2} µs/read, this process's CPU {:.2} µs/read",
        took.as_secs_f64() * 1e6 / reads as f64,
        cpu.as_secs_f64() * 1e6 / reads as f64
    );
    true
}

/// CPU time (user + system) of this process so far, from `/proc/self/stat` (Linux; zero
/// elsewhere). Unlike wall time on a shared machine, it does not count the time other
/// processes (redis-server included) held the cores.
fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may hold spaces): state is field 3, utime
    // and stime are fields 14 and 15, in clock ticks (100 per second on Linux).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

fn bench(c: &mut Criterion) {
    if profile_only() {
        return;
    }
    let server = RedisServer::start();
    let setups: Vec<(usize, tokio::runtime::Runtime, Arc<Ctx>)> = [1, TASKS]
        .into_iter()
        .map(|tasks| {
            let rt = runtime(tasks);
            let ctx = setup(&rt, &server);
            (tasks, rt, ctx)
        })
        .collect();

    let mut group = c.benchmark_group("P2 redis hit");
    group.throughput(Throughput::Elements(1));
    for (tasks, rt, ctx) in &setups {
        let (tasks, rt) = (*tasks, rt);
        let label = if tasks == 1 {
            "1 task".to_owned()
        } else {
            format!("{tasks} tasks")
        };
        for variant in VARIANTS {
            group.bench_function(BenchmarkId::new(variant.name(), &label), |b| {
                b.to_async(rt)
                    .iter_custom(|iters| run(variant, ctx.clone(), iters, tasks));
            });
        }
    }
    group.finish();

    for (tasks, rt, ctx) in &setups {
        ratios(rt, ctx, *tasks);
    }
    drop(server);
}

/// The interleaved pass: per round, every variant runs the same number of reads, in an
/// order that rotates from round to round (so that no variant always runs first, or
/// always after the same one); the median time per read of each variant over the rounds
/// gives the P2 ratios, and the median of the rounds' own throughput ratios is printed
/// beside them (it cancels load that drifts between rounds). `P2_ROUNDS` sets the
/// number of rounds (9 by default).
fn ratios(rt: &tokio::runtime::Runtime, ctx: &Arc<Ctx>, tasks: usize) {
    let rounds: usize = std::env::var("P2_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(9);
    let reads: u64 = if tasks == 1 { 2_000 } else { 20_000 };
    {
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); VARIANTS.len()];
        for round in 0..rounds {
            for k in 0..VARIANTS.len() {
                let i = (round + k) % VARIANTS.len();
                times[i].push(rt.block_on(run(VARIANTS[i], ctx.clone(), reads, tasks)));
            }
        }
        // Per round, the throughput of cache_fn over each other variant's.
        let round_ratios: Vec<f64> = (1..VARIANTS.len())
            .map(|i| {
                let mut r: Vec<f64> = (0..rounds)
                    .map(|round| times[i][round].as_secs_f64() / times[0][round].as_secs_f64())
                    .collect();
                r.sort_by(f64::total_cmp);
                r[rounds / 2]
            })
            .collect();
        let per_read: Vec<f64> = times
            .iter_mut()
            .map(|t| {
                t.sort();
                t[rounds / 2].as_secs_f64() * 1e6 / reads as f64
            })
            .collect();
        println!("P2 interleaved, {tasks} task(s), median of {rounds} rounds of {reads} reads:");
        for (variant, us) in VARIANTS.iter().zip(&per_read) {
            println!(
                "  {:<32} {:>8.2} µs/read  {:>9.0} reads/s",
                variant.name(),
                us,
                1e6 / us
            );
        }
        let ours = per_read[0];
        for (i, variant) in VARIANTS.iter().enumerate().skip(1).take(4) {
            println!(
                "  cache_fn vs {}: latency {:.2}x, throughput {:.2}x (median of the rounds' ratios {:.2}x)",
                variant.name(),
                ours / per_read[i],
                per_read[i] / ours,
                round_ratios[i - 1]
            );
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
