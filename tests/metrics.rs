//! Feature `metrics` with a real recorder: the Prometheus exporter's, installed once for
//! this binary before any cache is used, and its rendered text. Each test drives real
//! traffic (a memory cache, a real redis-server that is then killed, a real axum app on
//! a loopback port) and checks that exactly the series it should moved, by exactly as
//! much, and that no key, user id or client address ever shows in the text.
//!
//! Tests run in parallel in this binary: each works under cache aliases and throttle
//! scopes of its own, and looks only at its own series; the views' series (which have
//! no cache label) are moved by one test only.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::header;
use axum::middleware::{self};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use cached_kit::http::CacheLayer;
use cached_kit::throttle::{Throttle, ThrottleLayer};
use cached_kit::{cache_fn, caches, Cache, ComputeOptions, MemoryBackend};
use cached_testing::http::{bearer_identity, client, serve_with_connect_info};
use cached_testing::RedisServer;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

const LOOKUPS: &str = "cached_kit_cache_lookups_total";
const ERRORS: &str = "cached_kit_cache_errors_total";
const COALESCED: &str = "cached_kit_cache_coalesced_total";
const DURATION_COUNT: &str = "cached_kit_backend_duration_seconds_count";
const VIEWS: &str = "cached_kit_view_responses_total";
const DECISIONS: &str = "cached_kit_throttle_decisions_total";

/// The recorder of this binary, installed by the first test to get here (before it
/// uses a cache).
fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("this binary's only recorder")
    })
}

/// One rendering of the recorder: every sample by its series, written
/// `name{label="value",...}` with the labels sorted.
struct Scrape {
    text: String,
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .get(&series(name, labels))
            .copied()
            .unwrap_or(0.0)
    }
}

fn scrape() -> Scrape {
    let text = prometheus().render();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series_part, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = value.parse().expect("a number");
        let (name, labels) = match series_part.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series_part, ""),
        };
        let mut pairs: Vec<(&str, &str)> = labels
            .split("\",")
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once("=\"").expect("label=\"value\"");
                (k, v.trim_end_matches('"'))
            })
            .collect();
        pairs.sort_unstable();
        samples.insert(series(name, &pairs), value);
    }
    Scrape { text, samples }
}

fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels = labels.to_vec();
    labels.sort_unstable();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// The series that moved from `before` to `after` (a series not rendered reads 0),
/// among those `mine` selects; histograms by their sample count only.
fn moved(before: &Scrape, after: &Scrape, mine: impl Fn(&str) -> bool) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (series, value) in &after.samples {
        let histogram_part = series.starts_with("cached_kit_backend_duration_seconds")
            && !series.starts_with(DURATION_COUNT);
        if histogram_part || !mine(series) {
            continue;
        }
        let delta = value - before.samples.get(series).copied().unwrap_or(0.0);
        if delta != 0.0 {
            out.insert(series.clone(), delta);
        }
    }
    out
}

/// Selects the series of one cache.
fn of_cache(alias: &str) -> impl Fn(&str) -> bool {
    let label = format!("cache=\"{alias}\"");
    move |series| series.contains(&label)
}

/// A series' name, its labels, and how much it moved.
type Move<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

fn expect(moves: &[Move<'_>]) -> BTreeMap<String, f64> {
    moves
        .iter()
        .map(|(name, labels, n)| (series(name, labels), *n))
        .collect()
}

/// Fails if any of `secrets` is in the rendered text.
fn assert_none_of(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "`{secret}` is in the metrics:\n{text}"
        );
    }
}

fn memory(alias: &str) -> Cache {
    Cache::builder(MemoryBackend::default())
        .alias(alias)
        .build()
}

#[tokio::test]
async fn a_miss_a_set_a_hit_and_a_stale_read_each_move_their_own_series() {
    prometheus();
    let cache = memory("m-lookups");
    let mine = of_cache("m-lookups");

    let s0 = scrape();
    assert_eq!(cache.get::<u32>("secret-key-miss").await.unwrap(), None);
    let s1 = scrape();
    assert_eq!(
        moved(&s0, &s1, &mine),
        expect(&[(LOOKUPS, &[("cache", "m-lookups"), ("result", "miss")], 1.0)])
    );

    cache
        .set("secret-key-hit", &7u32, Duration::from_secs(60))
        .await
        .unwrap();
    let s2 = scrape();
    assert_eq!(
        moved(&s1, &s2, &mine),
        expect(&[(
            DURATION_COUNT,
            &[("cache", "m-lookups"), ("op", "set")],
            1.0
        )]),
        "a write is no lookup; the awaited call is timed"
    );

    assert_eq!(cache.get::<u32>("secret-key-hit").await.unwrap(), Some(7));
    let s3 = scrape();
    assert_eq!(
        moved(&s2, &s3, &mine),
        expect(&[(LOOKUPS, &[("cache", "m-lookups"), ("result", "hit")], 1.0)]),
        "a memory hit is answered without waiting: counted, not timed"
    );

    // A stale read: past its ttl, within its stale window. The refresh it starts fails
    // (so nothing more is stored while we look).
    let opts = ComputeOptions::new(Some(Duration::from_millis(200))).stale(Duration::from_secs(60));
    let first = cache
        .compute_stale("secret-key-stale", &opts, || async {
            Ok::<_, Infallible>(1u32)
        })
        .await;
    assert_eq!(first, Ok(1));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let stats_before = cache.stats();
    let s4 = scrape();
    let served = cache
        .compute_stale("secret-key-stale", &opts, || async {
            Err::<u32, &str>("the refresh fails")
        })
        .await;
    assert_eq!(served, Ok(1), "the stale value, at once");
    let s5 = scrape();
    let lookups = |s: &str| s.starts_with(LOOKUPS) && mine(s);
    assert_eq!(
        moved(&s4, &s5, lookups),
        expect(&[(LOOKUPS, &[("cache", "m-lookups"), ("result", "stale")], 1.0)]),
        "a stale read is one lookup, not also a hit"
    );
    let stats = cache.stats();
    assert_eq!(stats.stale_hits, stats_before.stale_hits + 1);
    assert_eq!(
        stats.hits,
        stats_before.hits + 1,
        "stats() still counts a stale hit in hits"
    );

    // Every lookup so far, in the metrics as in stats().
    let s = scrape();
    let read = |result| s.get(LOOKUPS, &[("cache", "m-lookups"), ("result", result)]);
    assert_eq!(read("hit") + read("stale"), stats.hits as f64);
    assert_eq!(read("stale"), stats.stale_hits as f64);
    assert_eq!(read("miss"), stats.misses as f64);
    assert_none_of(&s.text, &["secret-key"]);
}

static FN_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[cache_fn(ttl = 60, cache = "m-cache-fn", key = "user-id-3c9e:{n}")]
async fn squared(n: u64) -> u64 {
    FN_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    n * n
}

#[tokio::test]
async fn a_cache_fn_hit_is_counted_on_the_hit_path() {
    prometheus();
    caches().insert(memory("m-cache-fn"));
    let mine = of_cache("m-cache-fn");
    let s0 = scrape();
    assert_eq!(squared(12).await, 144);
    let s1 = scrape();
    assert_eq!(
        moved(&s0, &s1, &mine),
        expect(&[
            (LOOKUPS, &[("cache", "m-cache-fn"), ("result", "miss")], 1.0),
            (
                DURATION_COUNT,
                &[("cache", "m-cache-fn"), ("op", "set")],
                1.0
            ),
        ])
    );
    for _ in 0..5 {
        assert_eq!(squared(12).await, 144);
    }
    let s2 = scrape();
    assert_eq!(
        moved(&s1, &s2, &mine),
        expect(&[(LOOKUPS, &[("cache", "m-cache-fn"), ("result", "hit")], 5.0)])
    );
    assert_eq!(FN_RUNS.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_none_of(&s2.text, &["user-id-3c9e"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_wait_for_another_callers_computation_are_counted() {
    prometheus();
    let cache = memory("m-coalesced");
    let s0 = scrape();
    let stats0 = cache.stats();
    let callers: Vec<_> = (0..10)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_set_with("cold", Duration::from_secs(60), || async {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        5u32
                    })
                    .await
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), 5);
    }
    let s1 = scrape();
    let stats = cache.stats();
    let waits = stats.coalesced_waits - stats0.coalesced_waits;
    assert!(waits >= 1, "{stats:?}");
    let moves = moved(&s0, &s1, of_cache("m-coalesced"));
    assert_eq!(
        moves.get(&series(COALESCED, &[("cache", "m-coalesced")])),
        Some(&(waits as f64)),
        "{moves:?}"
    );
    assert_eq!(
        s1.get(LOOKUPS, &[("cache", "m-coalesced"), ("result", "miss")]),
        stats.misses as f64
    );
}

#[tokio::test]
async fn an_error_with_redis_killed_is_counted_by_kind() {
    prometheus();
    let mut server = RedisServer::start();
    let url = format!("{}?key_prefix=metrics", server.url());
    let cache = Cache::from_url_as("m-redis", "test", &url).unwrap();
    let mine = of_cache("m-redis");

    cache
        .set("secret-key-redis", &1u32, Duration::from_secs(60))
        .await
        .unwrap();
    let s0 = scrape();
    assert_eq!(cache.get::<u32>("secret-key-redis").await.unwrap(), Some(1));
    let s1 = scrape();
    assert_eq!(
        moved(&s0, &s1, &mine),
        expect(&[
            (LOOKUPS, &[("cache", "m-redis"), ("result", "hit")], 1.0),
            (DURATION_COUNT, &[("cache", "m-redis"), ("op", "get")], 1.0),
        ]),
        "a Redis read waits: counted and timed"
    );

    server.kill();
    let failed = cache.get::<u32>("secret-key-redis").await;
    assert!(failed.is_err(), "{failed:?}");
    let s2 = scrape();
    let moves = moved(&s1, &s2, &mine);
    let kind = match failed {
        Err(cached_kit::CacheError::Timeout { .. }) => "timeout",
        _ => "backend",
    };
    assert_eq!(
        moves,
        expect(&[
            (ERRORS, &[("cache", "m-redis"), ("kind", kind)], 1.0),
            (DURATION_COUNT, &[("cache", "m-redis"), ("op", "get")], 1.0),
        ]),
        "a failed read is an error of its kind, not a lookup"
    );
    assert_eq!(cache.stats().errors, 1);
    assert_none_of(&s2.text, &["secret-key", &server.port().to_string()]);
}

#[tokio::test]
async fn a_value_that_does_not_decode_is_a_miss_and_a_decode_error() {
    prometheus();
    let server = RedisServer::start();
    let url = format!("{}?key_prefix=metricsdecode", server.url());
    let cache = Cache::from_url_as("m-decode", "test", &url).unwrap();
    cache
        .set(
            "secret-key-type",
            &"text".to_string(),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let s0 = scrape();
    assert_eq!(cache.get::<u64>("secret-key-type").await.unwrap(), None);
    let s1 = scrape();
    assert_eq!(
        moved(&s0, &s1, of_cache("m-decode")),
        expect(&[
            (LOOKUPS, &[("cache", "m-decode"), ("result", "miss")], 1.0),
            (ERRORS, &[("cache", "m-decode"), ("kind", "decode")], 1.0),
            (DURATION_COUNT, &[("cache", "m-decode"), ("op", "get")], 1.0),
        ])
    );
    assert_eq!(cache.stats().decode_errors, 1);
}

#[tokio::test]
async fn a_429_counts_a_refusal_and_a_store_down_counts_a_store_error() {
    prometheus();
    let limited = ThrottleLayer::new().throttle(Throttle::scoped("m-scope", "2/minute").unwrap());
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(limited)
        .layer(middleware::from_fn(bearer_identity));
    let base = serve_with_connect_info(app).await;
    let client = client();
    let decisions = |s: &str| s.starts_with(DECISIONS) && s.contains("scope=\"m-scope\"");

    let s0 = scrape();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = client
            .get(&base)
            .bearer_auth("user-id-7d41")
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
    let s1 = scrape();
    assert_eq!(
        moved(&s0, &s1, decisions),
        expect(&[
            (
                DECISIONS,
                &[("scope", "m-scope"), ("decision", "admitted")],
                2.0
            ),
            (
                DECISIONS,
                &[("scope", "m-scope"), ("decision", "refused")],
                1.0
            ),
        ])
    );

    // A store that cannot be reached: the request passes (fail open), counted.
    let mut server = RedisServer::start();
    let store = cached_kit::redis::throttle::RedisThrottleStore::from_url(&server.url()).unwrap();
    server.kill();
    let down = ThrottleLayer::new()
        .throttle(Throttle::scoped("m-scope-down", "2/minute").unwrap())
        .store(store);
    let base =
        serve_with_connect_info(Router::new().route("/", get(|| async { "ok" })).layer(down)).await;
    let r = client.get(&base).send().await.unwrap();
    assert_eq!(r.status(), 200, "fail open");
    let s2 = scrape();
    let decisions = |s: &str| s.starts_with(DECISIONS) && s.contains("scope=\"m-scope-down\"");
    assert_eq!(
        moved(&s1, &s2, decisions),
        expect(&[(
            DECISIONS,
            &[("scope", "m-scope-down"), ("decision", "store_error")],
            1.0
        )])
    );
    assert_none_of(&s2.text, &["user-id-7d41", "127.0.0.1"]);
}

#[tokio::test]
async fn each_view_response_is_counted_once_by_status() {
    prometheus();
    let cache = memory("m-views");
    let app = Router::new()
        .route(
            "/page",
            get(|| async { "a page" }).post(|| async { "posted" }),
        )
        .route("/fresh", get(|| async { "fresh" }))
        .route(
            "/private",
            get(|| async { ([(header::CACHE_CONTROL, "private")], "mine").into_response() }),
        )
        .layer(
            CacheLayer::new()
                .cache_handle(cache.clone())
                .ttl(Duration::from_secs(60)),
        )
        .layer(middleware::from_fn(bearer_identity));
    let base = serve_with_connect_info(app).await;
    let client = client();
    let views = |s: &str| s.starts_with(VIEWS);
    let status = |s| series(VIEWS, &[("status", s)]);

    let s0 = scrape();
    let stats0 = cache.stats();
    let send = |req: reqwest::RequestBuilder| async move {
        let r = req.send().await.unwrap();
        let cache_status = r.headers()["cache-status"].to_str().unwrap().to_owned();
        (r.status().as_u16(), cache_status)
    };
    let page = format!("{base}/page?user=user-id-51aa");
    let (code, first) = send(client.get(&page)).await;
    assert!(code == 200 && first.contains("stored"), "{first}");
    let (_, second) = send(client.get(&page)).await;
    assert!(second.contains("hit"), "{second}");
    let (_, private) = send(client.get(format!("{base}/private"))).await;
    assert!(private.contains("detail=cache-control"), "{private}");
    let (_, posted) = send(client.post(&page)).await;
    assert!(posted.contains("fwd=bypass"), "{posted}");
    let (_, no_store) = send(
        client
            .get(format!("{base}/fresh"))
            .header(header::CACHE_CONTROL, "no-store"),
    )
    .await;
    assert!(no_store.contains("fwd=miss"), "{no_store}");
    let s1 = scrape();

    let moves = moved(&s0, &s1, views);
    let expected: BTreeMap<String, f64> = ["stored", "hit", "uncacheable", "passthrough", "miss"]
        .into_iter()
        .map(|s| (status(s), 1.0))
        .collect();
    assert_eq!(moves, expected, "five requests, five responses, one each");

    // The four requests that were looked up are one lookup each in the view's cache.
    let stats = cache.stats();
    let lookups = moved(&s0, &s1, |s| {
        s.starts_with(LOOKUPS) && of_cache("m-views")(s)
    });
    assert_eq!(
        lookups,
        expect(&[
            (LOOKUPS, &[("cache", "m-views"), ("result", "hit")], 1.0),
            (LOOKUPS, &[("cache", "m-views"), ("result", "miss")], 3.0),
        ])
    );
    assert_eq!(
        (stats.hits - stats0.hits, stats.misses - stats0.misses),
        (1, 3)
    );
    assert_none_of(&s1.text, &["user-id-51aa", "/page", "/private"]);
}

#[tokio::test]
async fn labels_are_bounded_whatever_the_traffic() {
    prometheus();
    let cache = memory("m-bounded");
    for i in 0..200 {
        let key = format!("bounded-key-{i}");
        let _ = cache.get::<u64>(&key).await;
        cache.set(&key, &i, Duration::from_secs(60)).await.unwrap();
        let _ = cache.get::<u64>(&key).await;
        let _ = cache.get::<String>(&key).await;
        cache.delete(&key).await.unwrap();
    }
    let s = scrape();
    let mine: Vec<&String> = s
        .samples
        .keys()
        .filter(|k| of_cache("m-bounded")(k))
        // A histogram once, by its count.
        .filter(|k| !k.contains("quantile=") && !k.contains("_sum{"))
        .collect();
    // hit, miss, coalesced, decode errors, and set and delete durations: nothing grew
    // with the 200 keys.
    assert_eq!(mine.len(), 6, "{mine:#?}");
    assert_none_of(&s.text, &["bounded-key"]);

    // Every cached_kit series of the whole binary has labels from a fixed vocabulary
    // (aliases and scopes are this binary's own).
    let allowed: &[(&str, &[&str])] = &[
        ("result", &["hit", "near_hit", "stale", "miss"]),
        (
            "kind",
            &[
                "backend",
                "timeout",
                "decode",
                "encode",
                "config",
                "not_a_counter",
                "overflow",
                "other",
            ],
        ),
        (
            "op",
            &[
                "get",
                "get_many",
                "set",
                "set_many",
                "add",
                "delete",
                "delete_many",
                "incr",
                "touch",
                "clear",
                "delete_if_equals",
                "expire_if_equals",
            ],
        ),
        (
            "status",
            &["hit", "miss", "stored", "uncacheable", "passthrough"],
        ),
        ("decision", &["admitted", "refused", "store_error"]),
        ("scope", &["m-scope", "m-scope-down"]),
        (
            "cache",
            &[
                "m-lookups",
                "m-cache-fn",
                "m-coalesced",
                "m-redis",
                "m-decode",
                "m-views",
                "m-bounded",
                "m-near",
            ],
        ),
    ];
    for series in s.samples.keys().filter(|k| k.starts_with("cached_kit_")) {
        let labels = series
            .split_once('{')
            .map(|(_, l)| l.trim_end_matches('}'))
            .unwrap_or_default();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap();
            let v = v.trim_matches('"');
            if k == "le" || k == "quantile" {
                continue;
            }
            let known = allowed
                .iter()
                .find(|(name, _)| *name == k)
                .unwrap_or_else(|| panic!("unknown label `{k}` in {series}"));
            assert!(known.1.contains(&v), "`{k}={v}` in {series}");
        }
    }
}

#[tokio::test]
async fn a_near_hit_is_its_own_lookup_result() {
    prometheus();
    let server = RedisServer::start();
    let url = format!(
        "{}?key_prefix=metricsnear&near_max_entries=100",
        server.url()
    );
    let cache = Cache::from_url_as("m-near", "test", &url).unwrap();
    cache
        .set("secret-key-near", &7u64, Duration::from_secs(60))
        .await
        .unwrap();
    // The near tier fills from the first reads (once its invalidation connection is up).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cache.stats().near_hits == 0 {
        assert_eq!(cache.get::<u64>("secret-key-near").await.unwrap(), Some(7));
        assert!(
            std::time::Instant::now() < deadline,
            "no near hit in 10 s: {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (stats0, s0) = (cache.stats(), scrape());
    assert_eq!(cache.get::<u64>("secret-key-near").await.unwrap(), Some(7));
    let (stats1, s1) = (cache.stats(), scrape());
    assert_eq!(
        moved(&s0, &s1, of_cache("m-near")),
        expect(&[(LOOKUPS, &[("cache", "m-near"), ("result", "near_hit")], 1.0)]),
        "a near hit is one lookup, counted as near_hit only"
    );
    assert_eq!(
        stats1.hits,
        stats0.hits + 1,
        "a near hit is a hit in stats()"
    );
    assert_eq!(stats1.near_hits, stats0.near_hits + 1);
    assert_none_of(&s1.text, &["secret-key"]);
}
