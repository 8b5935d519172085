//! P1: a `#[cache_fn]` hit in the memory cache against the same function memoized by
//! hand over a raw `moka::future::Cache`, and by the `cached` crate's `#[cached]`; and
//! `Cache::get` with a `&str` key against a raw moka get with the same key.
//! P5: 1,000 concurrent callers of one cold key: how many times the body runs (ours:
//! once; the `cached` crate's default: once per caller), and how long the burst takes.
//!
//! `cargo bench --bench cache_fn -- --warm-up-time 1 --measurement-time 3`
//!
//! P1's figures are the interleaved pass printed after the criterion groups: every
//! variant makes a pass over the same 1,000 keys (all hits) in turn, in an order that
//! rotates per round, on one current-thread runtime; a variant's time in a round is the
//! median of its passes, and each ratio is the median over the rounds of that round's
//! ratio, so that load drifting on a shared machine hits both sides of a ratio alike. `CACHED_KIT_P1_ROUNDS` and `CACHED_KIT_P1_PASSES` (passes over the 1,000 keys
//! per variant and round) change its length; `cargo bench --bench cache_fn -- P1x`
//! runs only that pass (criterion's filter matches none of its groups).
//!
//! For instruction counts, `CACHED_KIT_P1_PROFILE=<variant>` (and optionally
//! `CACHED_KIT_P1_CALLS=<n>`) makes the binary fill the caches, call one variant `n`
//! times in `measured` and exit: under
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect=cache_fn::measured`
//! only those hits are counted (the fill, and one-time set-up such as the clock's
//! calibration, are not), so the total divided by `n` is the cost of one hit.

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use cached::proc_macro::cached;
use cached_kit::cache_fn;
use criterion::{criterion_group, Criterion};

const CALLERS: usize = 1_000;
/// P1's key space: every call is a hit on one of these.
const KEYS: u64 = 1_000;

/// The memoized function's value: a 100-byte string.
fn value(x: u64) -> String {
    format!("{x:0>100}")
}

/// The default key: `cache_fn::ours_default(x)`, the arguments encoded.
#[cache_fn(ttl = 3600)]
async fn ours_default(x: u64) -> String {
    value(x)
}

/// A key template.
#[cache_fn(ttl = 3600, key = "f:{x}")]
async fn ours_template(x: u64) -> String {
    value(x)
}

#[cached(ttl_secs = 3600)]
async fn theirs(x: u64) -> String {
    value(x)
}

/// The same function memoized by hand over moka, keyed by the argument.
static MOKA: LazyLock<moka::future::Cache<u64, String>> = LazyLock::new(|| {
    moka::future::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(3600))
        .build()
});

async fn raw_moka(x: u64) -> String {
    if let Some(v) = MOKA.get(&x).await {
        return v;
    }
    let v = value(x);
    MOKA.insert(x, v.clone()).await;
    v
}

/// The `&str`-keyed anchor of `Cache::get`.
static MOKA_STR: LazyLock<moka::future::Cache<String, String>> = LazyLock::new(|| {
    moka::future::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(3600))
        .build()
});

/// The keys `Cache::get` and its anchor read, built once.
static STR_KEYS: LazyLock<Vec<String>> =
    LazyLock::new(|| (0..KEYS).map(|x| format!("get:{x}")).collect());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    RawMoka,
    Cached,
    OursDefault,
    OursTemplate,
    RawMokaStr,
    CacheGet,
}

const VARIANTS: [Variant; 6] = [
    Variant::RawMoka,
    Variant::Cached,
    Variant::OursDefault,
    Variant::OursTemplate,
    Variant::RawMokaStr,
    Variant::CacheGet,
];

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::RawMoka => "raw moka (by hand, u64 key)",
            Variant::Cached => "cached crate #[cached]",
            Variant::OursDefault => "#[cache_fn], default key",
            Variant::OursTemplate => "#[cache_fn], key = \"f:{x}\"",
            Variant::RawMokaStr => "raw moka get(&str)",
            Variant::CacheGet => "Cache::get(&str)",
        }
    }

    fn id(self) -> &'static str {
        match self {
            Variant::RawMoka => "raw_moka",
            Variant::Cached => "cached",
            Variant::OursDefault => "ours_default",
            Variant::OursTemplate => "ours_template",
            Variant::RawMokaStr => "raw_moka_str",
            Variant::CacheGet => "cache_get",
        }
    }

    /// One pass: a hit on each of the keys.
    async fn pass(self, cache: &cached_kit::Cache) {
        match self {
            Variant::RawMoka => {
                for x in 0..KEYS {
                    black_box(raw_moka(black_box(x)).await);
                }
            }
            Variant::Cached => {
                for x in 0..KEYS {
                    black_box(theirs(black_box(x)).await);
                }
            }
            Variant::OursDefault => {
                for x in 0..KEYS {
                    black_box(ours_default(black_box(x)).await);
                }
            }
            Variant::OursTemplate => {
                for x in 0..KEYS {
                    black_box(ours_template(black_box(x)).await);
                }
            }
            Variant::RawMokaStr => {
                for k in STR_KEYS.iter() {
                    black_box(MOKA_STR.get(black_box(k.as_str())).await);
                }
            }
            Variant::CacheGet => {
                for k in STR_KEYS.iter() {
                    black_box(cache.get::<String>(black_box(k.as_str())).await.ok());
                }
            }
        }
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Stores every key on every side, and checks that each side then hits.
fn fill(rt: &tokio::runtime::Runtime, cache: &cached_kit::Cache) {
    rt.block_on(async {
        for x in 0..KEYS {
            assert_eq!(raw_moka(x).await, value(x));
            assert_eq!(theirs(x).await, value(x));
            assert_eq!(ours_default(x).await, value(x));
            assert_eq!(ours_template(x).await, value(x));
            let k = &STR_KEYS[x as usize];
            MOKA_STR.insert(k.clone(), value(x)).await;
            cache
                .set(k, &value(x), Duration::from_secs(3600))
                .await
                .expect("stored");
        }
        let before = cache.stats();
        for v in VARIANTS {
            v.pass(cache).await;
        }
        let after = cache.stats();
        assert_eq!(after.misses, before.misses, "every P1 read is a hit");
        assert_eq!(after.hits - before.hits, 3 * KEYS, "hits counted");
    });
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

/// The interleaved pass: per round, every variant makes the same number of hits, in a
/// rotating order; each ratio is the median over the rounds of the round's ratio.
fn p1_interleaved() {
    let rt = current_thread();
    let cache = cached_kit::cache();
    fill(&rt, &cache);
    let rounds = env_usize("CACHED_KIT_P1_ROUNDS", 31).max(1);
    let passes = env_usize("CACHED_KIT_P1_PASSES", 20).max(1);
    // ns per hit, by variant, by round: the median of the round's passes, which run
    // variant after variant (a pass is about a third of a millisecond, so a preemption
    // spoils a few passes, not a whole round).
    let mut per_round: Vec<[f64; VARIANTS.len()]> = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let mut samples: [Vec<f64>; VARIANTS.len()] = Default::default();
        for _ in 0..passes {
            for i in 0..VARIANTS.len() {
                let at = (i + round) % VARIANTS.len();
                let v = VARIANTS[at];
                let started = Instant::now();
                rt.block_on(v.pass(&cache));
                samples[at].push(started.elapsed().as_nanos() as f64 / KEYS as f64);
            }
        }
        per_round.push(samples.map(median));
    }
    let column = |v: Variant| -> Vec<f64> {
        let at = VARIANTS.iter().position(|&w| w == v).expect("a variant");
        per_round.iter().map(|r| r[at]).collect()
    };
    let ratio = |a: Variant, b: Variant| -> (f64, f64, f64) {
        let (xs, ys) = (column(a), column(b));
        let rs: Vec<f64> = xs.iter().zip(&ys).map(|(x, y)| x / y).collect();
        let lo = rs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rs.iter().copied().fold(0.0, f64::max);
        (median(rs), lo, hi)
    };
    println!(
        "P1 interleaved: current-thread runtime, {KEYS} keys, all hits, 100-byte String; \
         median of {rounds} rounds of {passes} passes"
    );
    for v in VARIANTS {
        println!("  {:<34} {:>8.1} ns/hit", v.name(), median(column(v)));
    }
    let show = |label: &str, a: Variant, b: Variant, target: f64| {
        let (m, lo, hi) = ratio(a, b);
        let verdict = if m <= target { "met" } else { "NOT met" };
        println!(
            "  {label:<44} {m:>5.2}x  (rounds {lo:.2}-{hi:.2}; target <= {target:.2}: {verdict})"
        );
    };
    println!("P1 ratios (median of per-round ratios):");
    show(
        "#[cache_fn] default key / #[cached]",
        Variant::OursDefault,
        Variant::Cached,
        1.0,
    );
    show(
        "#[cache_fn] default key / raw moka",
        Variant::OursDefault,
        Variant::RawMoka,
        1.3,
    );
    show(
        "#[cache_fn] key template / #[cached]",
        Variant::OursTemplate,
        Variant::Cached,
        1.0,
    );
    show(
        "#[cache_fn] key template / raw moka",
        Variant::OursTemplate,
        Variant::RawMoka,
        1.3,
    );
    show(
        "Cache::get(&str) / raw moka get(&str)",
        Variant::CacheGet,
        Variant::RawMokaStr,
        1.15,
    );
    println!(
        "  (#[cached] / raw moka: {:.2}x)",
        ratio(Variant::Cached, Variant::RawMoka).0
    );
}

/// `CACHED_KIT_P1_PROFILE=<variant id>`: fill, then `CACHED_KIT_P1_CALLS` hits of one
/// variant, for callgrind or perf.
fn p1_profile(id: &str) {
    let Some(v) = VARIANTS.into_iter().find(|v| v.id() == id) else {
        let ids: Vec<&str> = VARIANTS.iter().map(|v| v.id()).collect();
        panic!("CACHED_KIT_P1_PROFILE={id}: expected one of {ids:?}");
    };
    let rt = current_thread();
    let cache = cached_kit::cache();
    fill(&rt, &cache);
    let passes = env_usize("CACHED_KIT_P1_CALLS", 100_000) / KEYS as usize;
    measured(&rt, v, &cache, passes);
    println!("{}: {} hits", v.name(), passes as u64 * KEYS);
}

/// The hits that callgrind counts (`--toggle-collect=cache_fn::measured`).
#[inline(never)]
fn measured(rt: &tokio::runtime::Runtime, v: Variant, cache: &cached_kit::Cache, passes: usize) {
    rt.block_on(async {
        for _ in 0..passes {
            v.pass(cache).await;
        }
    });
}

fn p1_hit(c: &mut Criterion) {
    let rt = current_thread();
    let cache = cached_kit::cache();
    fill(&rt, &cache);
    let mut group = c.benchmark_group("P1 memory hit, 1000 keys");
    for v in VARIANTS {
        group.bench_function(v.name(), |b| {
            b.to_async(&rt).iter(|| v.pass(&cache));
        });
    }
    group.finish();
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

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
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
    let rt = multi_thread();
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

fn main() {
    if let Ok(id) = std::env::var("CACHED_KIT_P1_PROFILE") {
        p1_profile(&id);
        return;
    }
    let filter_is_p1x = std::env::args().any(|a| a == "P1x");
    if !filter_is_p1x {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    // Not under `cargo test --benches` (criterion's test mode runs each group once).
    if filter_is_p1x || !std::env::args().any(|a| a == "--test") {
        p1_interleaved();
    }
}
