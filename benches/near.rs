//! P7 (SPEC §11, §15): a near hit (a Redis cache with `near_max_entries`) against a
//! `memory://` hit and a Redis hit, and the invalidation delay between two processes for
//! both mechanisms (client-side caching and pub/sub).
//!
//! `cargo bench --bench near --features redis` (starts its own `redis-server`)
//!
//! - The criterion groups time one `Cache::get` hit of each kind (a 100-byte `String`,
//!   1,000 keys, one task).
//! - The interleaved pass (`P7x` alone: `cargo bench --bench near --features redis --
//!   P7x`) makes a pass of 1,000 hits of each kind in turn, in an order that rotates per
//!   round, on one current-thread runtime; each ratio is the median over the rounds of
//!   that round's ratio, so load drifting on a shared machine hits both sides alike.
//!   `CACHED_KIT_P7_ROUNDS`, `CACHED_KIT_P7_PASSES` change its length.
//! - The delay pass (`P7d` alone) runs this binary again as a child process A that
//!   writes, while this process B holds the key in its near tier and spins on it until
//!   it is evicted: per write, the time from A's call to `Cache::set` (and from its
//!   return) to B's eviction, on the wall clock both processes share.
//!   `CACHED_KIT_P7_WRITES` sets the number of writes per mechanism.

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cached_kit::redis::{Invalidation, NearConfig, RedisBackend, RedisConfig};
use cached_kit::{Backend, Cache, MemoryBackend};
use cached_testing::RedisServer;
use criterion::{criterion_group, Criterion};

const KEYS: usize = 1_000;
const TTL: Duration = Duration::from_secs(3600);

fn value(x: usize) -> String {
    format!("{x:0>100}")
}

fn keys() -> Vec<String> {
    (0..KEYS).map(|x| format!("p7:{x}")).collect()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn percentile(xs: &mut [f64], p: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    let at = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs[at.min(xs.len() - 1)]
}

/// The three caches, filled, each read once so that every later read is a hit (and the
/// near tier holds every key).
struct Caches {
    memory: Cache,
    near: Cache,
    redis: Cache,
    near_backend: RedisBackend,
}

fn near_backend(url: &str, mode: Invalidation) -> RedisBackend {
    let config = RedisConfig::from_url(url)
        .expect("a Redis URL")
        .near(NearConfig::new(10_000).invalidation(mode));
    RedisBackend::new(config).expect("a backend")
}

/// Reads until the near tier is live (its invalidation connection up).
async fn until_live(cache: &Cache, backend: &RedisBackend) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !backend.near_status().is_some_and(|s| s.live) {
        let _ = cache.get::<String>("p7:warm-up").await;
        assert!(Instant::now() < deadline, "the near tier never went live");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn caches(rt: &tokio::runtime::Runtime, url: &str) -> Caches {
    let near_backend = near_backend(url, Invalidation::Tracking);
    let c = Caches {
        memory: Cache::builder(MemoryBackend::default()).build(),
        near: Cache::builder(near_backend.clone()).build(),
        redis: Cache::builder(RedisBackend::from_url(url).expect("a Redis URL")).build(),
        near_backend,
    };
    rt.block_on(async {
        until_live(&c.near, &c.near_backend).await;
        for (x, k) in keys().iter().enumerate() {
            c.memory.set(k, &value(x), TTL).await.expect("memory set");
            c.redis.set(k, &value(x), TTL).await.expect("redis set");
        }
        for k in keys() {
            // The first read fills the near tier; the second is a near hit.
            for cache in [&c.memory, &c.near, &c.near, &c.redis] {
                assert!(cache.get::<String>(&k).await.expect("get").is_some());
            }
        }
        let stats = c.near.stats();
        assert_eq!(stats.near_hits, KEYS as u64, "every second read a near hit");
    });
    c
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Memory,
    Near,
    Redis,
}

const VARIANTS: [Variant; 3] = [Variant::Memory, Variant::Near, Variant::Redis];

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Memory => "memory:// hit (Cache::get)",
            Variant::Near => "near hit (Cache::get)",
            Variant::Redis => "Redis hit (Cache::get)",
        }
    }

    fn cache(self, c: &Caches) -> &Cache {
        match self {
            Variant::Memory => &c.memory,
            Variant::Near => &c.near,
            Variant::Redis => &c.redis,
        }
    }
}

async fn pass(cache: &Cache, keys: &[String]) {
    for k in keys {
        black_box(cache.get::<String>(black_box(k)).await.ok());
    }
}

fn p7_hits(c: &mut Criterion) {
    let server = RedisServer::start();
    let rt = current_thread();
    let caches = caches(&rt, &server.url());
    let keys = keys();
    let mut group = c.benchmark_group("P7 hit");
    for v in VARIANTS {
        let cache = v.cache(&caches);
        let mut i = 0;
        group.bench_function(v.name(), |b| {
            b.to_async(&rt).iter(|| {
                i = (i + 1) % KEYS;
                let k = &keys[i];
                async move { black_box(cache.get::<String>(k).await.ok()) }
            })
        });
    }
    group.finish();
}

fn p7_interleaved() {
    let server = RedisServer::start();
    let rt = current_thread();
    let caches = caches(&rt, &server.url());
    let keys = keys();
    let rounds = env_usize("CACHED_KIT_P7_ROUNDS", 15).max(1);
    let passes = env_usize("CACHED_KIT_P7_PASSES", 10).max(1);
    let before = caches.near.stats();
    let mut per_round: Vec<[f64; 3]> = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let mut samples: [Vec<f64>; 3] = Default::default();
        for _ in 0..passes {
            for i in 0..VARIANTS.len() {
                let at = (i + round) % VARIANTS.len();
                let cache = VARIANTS[at].cache(&caches);
                let started = Instant::now();
                rt.block_on(pass(cache, &keys));
                samples[at].push(started.elapsed().as_nanos() as f64 / KEYS as f64);
            }
        }
        per_round.push(samples.map(median));
    }
    let after = caches.near.stats();
    let reads = after.hits - before.hits;
    assert_eq!(
        after.near_hits - before.near_hits,
        reads,
        "every near read was a near hit"
    );
    let column = |v: Variant| -> Vec<f64> {
        let at = VARIANTS.iter().position(|&w| w == v).expect("a variant");
        per_round.iter().map(|r| r[at]).collect()
    };
    let ratio = |a: Variant, b: Variant| -> (f64, f64, f64) {
        let rs: Vec<f64> = column(a)
            .iter()
            .zip(column(b))
            .map(|(x, y)| x / y)
            .collect();
        let lo = rs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rs.iter().copied().fold(0.0, f64::max);
        (median(rs), lo, hi)
    };
    println!(
        "P7 interleaved: current-thread runtime, {KEYS} keys, all hits, 100-byte String; \
         median of {rounds} rounds of {passes} passes"
    );
    for v in VARIANTS {
        println!("  {:<34} {:>10.1} ns/hit", v.name(), median(column(v)));
    }
    let (m, lo, hi) = ratio(Variant::Near, Variant::Memory);
    let verdict = if m <= 2.0 { "met" } else { "NOT met" };
    println!("  near / memory:// {m:>6.2}x  (rounds {lo:.2}-{hi:.2}; target <= 2: {verdict})");
    let (m, lo, hi) = ratio(Variant::Redis, Variant::Near);
    let verdict = if m >= 50.0 { "met" } else { "NOT met" };
    println!("  Redis / near     {m:>6.0}x  (rounds {lo:.0}-{hi:.0}; target >= 50: {verdict})");
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The child A: for each key read on stdin, stores a new value and prints the wall
/// clock just before the call and just after it returned.
fn writer(url: &str, mode: Invalidation) {
    let rt = current_thread();
    let backend = near_backend(url, mode);
    let cache = Cache::builder(backend).build();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines().map_while(Result::ok) {
        let key = line.trim();
        let started = unix_nanos();
        rt.block_on(cache.set(key, &"new".to_string(), TTL))
            .expect("the writer's set");
        let returned = unix_nanos();
        let _ = writeln!(out, "{started} {returned}");
        let _ = out.flush();
    }
}

/// B: the distribution of the delay from A's write to B's eviction, for `mode`.
fn delays(url: &str, mode: Invalidation, name: &str, writes: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let backend = near_backend(url, mode);
    let cache = Cache::builder(backend.clone()).build();
    rt.block_on(until_live(&cache, &backend));
    let mut child = Command::new(std::env::current_exe().expect("this bench"))
        .env("CACHED_KIT_P7_WRITER", format!("{name} {url}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the writer process");
    let mut to_a = child.stdin.take().expect("stdin");
    let mut from_a = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut from_call, mut write_time) = (Vec::new(), Vec::new());
    let mut before_return = 0usize;
    for i in 0..writes {
        let key = format!("p7d:{name}:{i}");
        let stored = cache.make_key(&key);
        rt.block_on(async {
            cache.set(&key, &"old".to_string(), TTL).await.expect("set");
            // Fill (a fill that races the notice of this very `set` is dropped: again).
            let deadline = Instant::now() + Duration::from_secs(5);
            while backend.get_now(&stored).is_none() {
                let _ = cache.get::<String>(&key).await;
                assert!(Instant::now() < deadline, "{key} never held near");
            }
        });
        writeln!(to_a, "{key}").expect("to the writer");
        to_a.flush().expect("flush");
        let spin_until = Instant::now() + Duration::from_secs(5);
        while backend.get_now(&stored).is_some() {
            assert!(Instant::now() < spin_until, "no invalidation for {key}");
            std::thread::yield_now();
        }
        let evicted = unix_nanos();
        let line = from_a
            .next()
            .and_then(Result::ok)
            .expect("the writer's times");
        let mut times = line.split(' ').filter_map(|t| t.parse::<u128>().ok());
        let (started, returned) = (times.next().unwrap_or(0), times.next().unwrap_or(0));
        from_call.push(evicted.saturating_sub(started) as f64 / 1e3);
        write_time.push(returned.saturating_sub(started) as f64 / 1e3);
        before_return += usize::from(evicted < returned);
    }
    drop(to_a);
    let _ = child.wait();
    let show = |label: &str, xs: &mut Vec<f64>| {
        let (p50, p99, max) = (
            percentile(xs, 0.5),
            percentile(xs, 0.99),
            percentile(xs, 1.0),
        );
        println!("  {name:<9} {label:<34} p50 {p50:>7.0} µs  p99 {p99:>7.0} µs  max {max:>7.0} µs");
    };
    show("A's write (Cache::set)", &mut write_time);
    show("from A's call to B's eviction", &mut from_call);
    println!(
        "  {name:<9} B evicted before A's call returned in {before_return} of {writes} writes"
    );
}

fn p7_delays() {
    let server = RedisServer::start();
    let writes = env_usize("CACHED_KIT_P7_WRITES", 1_000).max(1);
    println!("P7 invalidation delay between two processes, {writes} writes per mechanism (target: p99 <= 100 ms):");
    delays(&server.url(), Invalidation::Tracking, "tracking", writes);
    delays(&server.url(), Invalidation::PubSub, "pubsub", writes);
}

criterion_group!(benches, p7_hits);

fn main() {
    if let Ok(role) = std::env::var("CACHED_KIT_P7_WRITER") {
        let (name, url) = role.split_once(' ').expect("`<mode> <url>`");
        let mode = match name {
            "pubsub" => Invalidation::PubSub,
            _ => Invalidation::Tracking,
        };
        writer(url, mode);
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let only_x = args.iter().any(|a| a == "P7x");
    let only_d = args.iter().any(|a| a == "P7d");
    let test_mode = args.iter().any(|a| a == "--test");
    if !only_x && !only_d {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    // Not under `cargo test --benches` (criterion's test mode runs each group once).
    if test_mode {
        return;
    }
    if !only_d {
        p7_interleaved();
    }
    if !only_x {
        p7_delays();
    }
}
