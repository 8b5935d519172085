//! SPEC §12 and §13 over real HTTP: concurrent misses of one cold URL run the handler
//! once, an uncacheable response sends each waiting request to its own handler, a
//! request whose client goes away while others wait for it does not stall them, and each
//! request counts once in the cache's stats.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing;
use axum::Router;
use cached_kit::backend::memory::{Bound, MemoryBackend};
use cached_kit::{cache_view, caches, Cache, CacheLayer};
use cached_testing::http::{client_builder, serve};
use serde::Deserialize;

/// What the handlers and the test share.
#[derive(Clone, Default)]
struct Gate {
    /// Requests that reached the server (counted before the cache looks them up).
    arrived: Arc<AtomicUsize>,
    /// Handler runs.
    runs: Arc<AtomicUsize>,
    /// Handler runs that were dropped before they finished.
    cancelled: Arc<AtomicUsize>,
}

#[derive(Deserialize)]
struct Burst {
    /// How many requests the handler waits for before it answers.
    #[serde(default)]
    wait_for: usize,
    /// Answer with a cookie, so the response is not stored.
    #[serde(default)]
    cookie: bool,
    /// The run with this number never answers (its client is expected to go away).
    #[serde(default)]
    hang: usize,
    /// Answer with `Vary: Accept-Language`.
    #[serde(default)]
    vary: bool,
}

/// Counts a dropped handler run.
struct Cancelled(Option<Arc<AtomicUsize>>);

impl Drop for Cancelled {
    fn drop(&mut self) {
        if let Some(counter) = self.0.take() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn burst_body(gate: &Gate, burst: &Burst) -> Response {
    let run = gate.runs.fetch_add(1, Ordering::SeqCst) + 1;
    let mut cancelled = Cancelled(Some(gate.cancelled.clone()));
    if burst.hang == run {
        std::future::pending::<()>().await;
    }
    // Hold the response until the whole burst has arrived, so every request of it misses
    // while this run is going on. Bounded, so a broken build fails instead of hanging.
    let deadline = Instant::now() + Duration::from_secs(10);
    while gate.arrived.load(Ordering::SeqCst) < burst.wait_for && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cancelled.0 = None;
    let mut response = format!("run={run}").into_response();
    let headers = response.headers_mut();
    if burst.cookie {
        headers.insert("set-cookie", HeaderValue::from_static("s=1"));
    }
    if burst.vary {
        headers.insert("vary", HeaderValue::from_static("Accept-Language"));
    }
    response
}

async fn layered(State(gate): State<Gate>, Query(burst): Query<Burst>) -> Response {
    burst_body(&gate, &burst).await
}

const VIEW_CACHE: &str = "http_coalesce_view";

#[cache_view(ttl = 60, cache = "http_coalesce_view")]
async fn viewed(State(gate): State<Gate>, Query(burst): Query<Burst>) -> Response {
    burst_body(&gate, &burst).await
}

async fn count_arrival(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    gate.arrived.fetch_add(1, Ordering::SeqCst);
    next.run(request).await
}

fn memory_cache() -> Cache {
    Cache::builder(MemoryBackend::new(Bound::Entries(10_000))).build()
}

/// The app: `/layer` behind a `CacheLayer` over `cache`, `/view` a `#[cache_view]`.
async fn start(cache: &Cache) -> (String, Gate) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        caches().insert(
            Cache::builder(MemoryBackend::new(Bound::Entries(10_000)))
                .alias(VIEW_CACHE)
                .build(),
        );
    });
    let gate = Gate::default();
    let layer = CacheLayer::new()
        .cache_handle(cache.clone())
        .ttl(Duration::from_secs(60));
    let app = Router::new()
        .route("/layer", routing::get(layered).layer(layer))
        .route("/view", routing::get(viewed))
        .layer(middleware::from_fn_with_state(gate.clone(), count_arrival))
        .with_state(gate.clone());
    (serve(app).await, gate)
}

/// No idle connections kept: each request of a burst opens its own, so they arrive
/// together rather than queueing behind one another on a pooled connection.
fn client() -> reqwest::Client {
    client_builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

struct Got {
    status: u16,
    cache_status: String,
    body: String,
}

async fn get(client: &reqwest::Client, url: &str) -> Got {
    get_with(client, url, &[]).await
}

async fn get_with(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Got {
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let res = request.send().await.expect("request");
    let status = res.status().as_u16();
    let cache_status = res
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = res.text().await.expect("body");
    Got {
        status,
        cache_status,
        body,
    }
}

/// Sends `n` concurrent requests to `url`; returns the answers.
async fn burst(url: &str, n: usize) -> Vec<Got> {
    let client = client();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let client = client.clone();
            let url = url.to_owned();
            tokio::spawn(async move { get(&client, &url).await })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for task in tasks {
        answers.push(task.await.expect("request task"));
    }
    answers
}

/// Waits (bounded) until `counter` reaches `n`.
async fn until(counter: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while counter.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "waited for {n}, got {counter:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_of_one_url_run_the_handler_once() {
    let cache = memory_cache();
    let (base, gate) = start(&cache).await;
    for path in ["view", "layer"] {
        let before = gate.runs.load(Ordering::SeqCst);
        let arrived = gate.arrived.load(Ordering::SeqCst);
        let url = format!("{base}/{path}?wait_for={}", arrived + 100);
        let answers = burst(&url, 100).await;
        assert_eq!(
            gate.runs.load(Ordering::SeqCst) - before,
            1,
            "{path}: the handler ran once for 100 concurrent misses"
        );
        let first = &answers[0].body;
        for got in &answers {
            assert_eq!(got.status, 200, "{path}");
            assert_eq!(
                &got.body, first,
                "{path}: every request got the one response"
            );
        }
        let stored = answers
            .iter()
            .filter(|g| g.cache_status == "cached-kit; fwd=miss; stored")
            .count();
        assert_eq!(
            stored, 1,
            "{path}: one stored it, the others were answered with it"
        );
        assert!(answers
            .iter()
            .all(|g| g.cache_status.starts_with("cached-kit; hit; ttl=")
                || g.cache_status == "cached-kit; fwd=miss; stored"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_response_is_not_stored_each_waiting_request_runs_its_own() {
    let cache = memory_cache();
    let (base, gate) = start(&cache).await;
    let n = 20;
    let url = format!("{base}/layer?cookie=true&wait_for={n}");
    let answers = burst(&url, n).await;
    assert_eq!(
        gate.runs.load(Ordering::SeqCst),
        n,
        "every request ran its own"
    );
    let mut bodies: Vec<&str> = answers.iter().map(|g| g.body.as_str()).collect();
    bodies.sort_unstable();
    bodies.dedup();
    assert_eq!(bodies.len(), n, "no request was given another's response");
    for got in &answers {
        assert_eq!(got.cache_status, "cached-kit; fwd=miss; detail=set-cookie");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_client_goes_away_does_not_stall_the_others() {
    let cache = memory_cache();
    let (base, gate) = start(&cache).await;
    for (i, path) in ["view", "layer"].into_iter().enumerate() {
        let runs = gate.runs.load(Ordering::SeqCst);
        // The leader's run hangs; the run that takes over waits until all 11 arrived.
        let url = format!(
            "{base}/{path}?hang={}&wait_for={}",
            runs + 1,
            gate.arrived.load(Ordering::SeqCst) + 11
        );
        // The first request leads, and its handler hangs.
        let leader = {
            let url = url.clone();
            tokio::spawn(async move { get(&client(), &url).await })
        };
        until(&gate.runs, runs + 1).await;
        // Others arrive and wait for it.
        let arrived = gate.arrived.load(Ordering::SeqCst);
        let followers = {
            let url = url.clone();
            tokio::spawn(async move { burst(&url, 10).await })
        };
        until(&gate.arrived, arrived + 10).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Its client goes away: the server drops the handler.
        leader.abort();
        until(&gate.cancelled, i + 1).await;
        let answers = followers.await.expect("the followers finished");
        for got in &answers {
            assert_eq!(got.status, 200, "{path}");
            assert_eq!(got.body, format!("run={}", runs + 2), "{path}");
        }
        assert_eq!(
            gate.runs.load(Ordering::SeqCst),
            runs + 2,
            "{path}: one follower took the lead; the others were answered with its response"
        );
        // Nothing is left behind: the next request is a plain hit.
        assert!(get(&client(), &url)
            .await
            .cache_status
            .starts_with("cached-kit; hit"));
    }
    assert_eq!(gate.cancelled.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_counts_once_in_the_stats() {
    let cache = memory_cache();
    let (base, _) = start(&cache).await;
    let client = client();
    let url = format!("{base}/layer?counted=1");
    assert_eq!(
        get(&client, &url).await.cache_status,
        "cached-kit; fwd=miss; stored"
    );
    for _ in 0..3 {
        assert!(get(&client, &url)
            .await
            .cache_status
            .starts_with("cached-kit; hit"));
    }
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (3, 1), "{stats:?}");
    assert_eq!(stats.sets, 2, "the entry and its manifest: {stats:?}");

    // A URL whose responses vary: the manifest is read too, and not counted.
    let url = format!("{base}/layer?vary=true");
    for (lang, expected) in [
        ("en", "stored"),
        ("en", "hit"),
        ("fr", "stored"),
        ("fr", "hit"),
        ("en", "hit"),
    ] {
        let got = get_with(&client, &url, &[("accept-language", lang)]).await;
        assert!(
            got.cache_status.contains(expected),
            "{lang}: {}",
            got.cache_status
        );
        assert_eq!(
            got.body,
            get_with(&client, &url, &[("accept-language", lang)])
                .await
                .body
        );
    }
    let after = cache.stats();
    assert_eq!(
        (after.hits - stats.hits, after.misses - stats.misses),
        (8, 2),
        "ten requests, two of them misses: {after:?}"
    );
}
