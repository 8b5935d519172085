//! SPEC §12 and §5 for views, over real HTTP (an axum app on 127.0.0.1:0, a real
//! client): stale-while-revalidate on `CacheLayer` and `#[cache_view]`, tags (static and
//! `CacheTags`), and the `Vary` that keeps a CDN from handing an anonymous page to a
//! logged-in user. Each runs against the memory backend (objects and encoded bytes) and,
//! with the `redis` feature, a real `redis-server`.
//!
//! Nothing here asserts a duration: requests are ordered with counters and a gate that
//! holds a chosen handler run; the only waits are for a ttl to pass, with a margin.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use cached_kit::backend::memory::{Bound, MemoryBackend};
use cached_kit::http::CacheTags;
use cached_kit::{cache_view, caches, Cache, CacheLayer};
use cached_testing::http::{client, serve};
use serde::Deserialize;
use tokio::sync::Semaphore;

/// What a test steers its handler with, and what it counts.
#[derive(Clone, Default)]
struct Script(Arc<Steps>);

#[derive(Default)]
struct Steps {
    /// Handler runs started.
    runs: AtomicUsize,
    /// Handler runs that returned.
    finished: AtomicUsize,
    /// The run with this number waits for `gate` before it answers.
    hold: AtomicUsize,
    gate: Gate,
    /// The run with this number answers 500.
    fail: AtomicUsize,
    /// The run with this number panics.
    panic: AtomicUsize,
}

impl Script {
    fn runs(&self) -> usize {
        self.0.runs.load(Ordering::SeqCst)
    }
    fn finished(&self) -> usize {
        self.0.finished.load(Ordering::SeqCst)
    }
    fn hold(&self, run: usize) {
        self.0.hold.store(run, Ordering::SeqCst);
    }
    fn release(&self) {
        self.0.gate.0.add_permits(1);
    }
    fn fail(&self, run: usize) {
        self.0.fail.store(run, Ordering::SeqCst);
    }
    fn panic(&self, run: usize) {
        self.0.panic.store(run, Ordering::SeqCst);
    }
}

/// A semaphore with no permit until the test adds one.
struct Gate(Semaphore);

impl Default for Gate {
    fn default() -> Self {
        Gate(Semaphore::new(0))
    }
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    page: u32,
    /// Comma-separated product ids the page shows: its `CacheTags`.
    #[serde(default)]
    ids: String,
    /// A `Vary` the handler sets itself.
    #[serde(default)]
    vary: Option<String>,
    /// The status to answer with.
    #[serde(default)]
    status: Option<u16>,
}

/// The one handler body: `run=N page=P`, tagged `product:{id}` for each of `ids`.
async fn answer(script: &Script, page: &Page) -> Response {
    let steps = &script.0;
    let run = steps.runs.fetch_add(1, Ordering::SeqCst) + 1;
    if steps.hold.load(Ordering::SeqCst) == run {
        // Bounded, so a broken build fails instead of hanging.
        let held = tokio::time::timeout(Duration::from_secs(20), steps.gate.0.acquire()).await;
        if let Ok(Ok(permit)) = held {
            permit.forget();
        }
    }
    steps.finished.fetch_add(1, Ordering::SeqCst);
    if steps.fail.load(Ordering::SeqCst) == run {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("run={run} failed"),
        )
            .into_response();
    }
    assert_ne!(
        steps.panic.load(Ordering::SeqCst),
        run,
        "run {run} panics on purpose"
    );
    let tags: CacheTags = page
        .ids
        .split(',')
        .filter(|id| !id.is_empty())
        .map(|id| format!("product:{id}"))
        .collect();
    let mut response = (tags, format!("run={run} page={}", page.page)).into_response();
    if let Some(vary) = &page.vary {
        let value = HeaderValue::from_str(vary).expect("a header value");
        response.headers_mut().insert("vary", value);
    }
    if let Some(status) = page.status {
        *response.status_mut() = StatusCode::from_u16(status).expect("a status");
    }
    response
}

async fn layered(State(script): State<Script>, Query(page): Query<Page>) -> Response {
    answer(&script, &page).await
}

/// `#[cache_view]` handlers over the named cache `$alias`, with the same settings as
/// [`layers`] gives the layer.
macro_rules! views {
    ($module:ident, $alias:tt) => {
        mod $module {
            use super::*;

            pub const ALIAS: &str = $alias;

            /// Stale for a minute past a one-second ttl, tagged.
            #[cache_view(ttl = 1, stale = 60, tags = ["pages"], cache = $alias)]
            async fn stale(State(script): State<Script>, Query(page): Query<Page>) -> Response {
                answer(&script, &page).await
            }

            /// A one-second stale window.
            #[cache_view(ttl = 1, stale = 1, cache = $alias)]
            async fn short(State(script): State<Script>, Query(page): Query<Page>) -> Response {
                answer(&script, &page).await
            }

            /// No stale window, tagged.
            #[cache_view(ttl = 60, tags = ["pages"], cache = $alias)]
            async fn tagged(State(script): State<Script>, Query(page): Query<Page>) -> Response {
                answer(&script, &page).await
            }

            /// Shared across credentials.
            #[cache_view(ttl = 60, shared = true, cache = $alias)]
            async fn shared(State(script): State<Script>, Query(page): Query<Page>) -> Response {
                answer(&script, &page).await
            }

            pub fn app(script: Script) -> Router {
                Router::new()
                    .route("/stale", get(stale))
                    .route("/short", get(short))
                    .route("/tagged", get(tagged))
                    .route("/shared", get(shared))
                    .with_state(script)
            }
        }
    };
}

views!(memory_views, "http_fresh_memory");
views!(bytes_views, "http_fresh_bytes");
#[cfg(feature = "redis")]
views!(redis_views, "http_fresh_redis");

/// The layer's app over `cache`, with the routes the views have.
fn layers(cache: &Cache, script: Script) -> Router {
    let base = || CacheLayer::new().cache_handle(cache.clone());
    let secs = Duration::from_secs;
    let route = |layer: CacheLayer| get(layered).layer(layer);
    Router::new()
        .route(
            "/stale",
            route(base().ttl(secs(1)).stale(secs(60)).tags(["pages"])),
        )
        .route("/short", route(base().ttl(secs(1)).stale(secs(1))))
        .route("/tagged", route(base().ttl(secs(60)).tags(["pages"])))
        .route("/shared", route(base().ttl(secs(60)).shared(true)))
        .with_state(script)
}

/// A response as the tests look at it.
#[derive(Debug)]
struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_owned())
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ascii header").to_owned())
            .collect()
    }
    fn cache_status(&self) -> String {
        self.header("cache-status").unwrap_or_default()
    }
    fn is_stale(&self) -> bool {
        self.cache_status() == "cached-kit; hit; ttl=0; detail=stale"
    }
    fn is_fresh_hit(&self) -> bool {
        let status = self.cache_status();
        status.starts_with("cached-kit; hit; ttl=") && !status.contains("stale")
    }
    fn is_stored(&self) -> bool {
        self.cache_status() == "cached-kit; fwd=miss; stored"
    }
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> Got {
    let mut req = client().get(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.text().await.expect("body");
    Got {
        status,
        headers,
        body,
    }
}

async fn fetch(url: &str) -> Got {
    get_with(url, &[]).await
}

/// Waits for a one-second ttl to pass, with a margin.
async fn past_ttl() {
    tokio::time::sleep(Duration::from_millis(1300)).await;
}

/// Waits (bounded) until `f` holds.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "waited for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Fetches `url` until it answers a fresh hit (bounded); every answer before it must
/// be the stale one, `stale_body`.
async fn until_refreshed(url: &str, stale_body: &str) -> Got {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = fetch(url).await;
        if got.is_fresh_hit() {
            return got;
        }
        assert!(got.is_stale(), "{got:?}");
        assert_eq!(got.status, 200);
        assert_eq!(got.body, stale_body);
        assert!(Instant::now() < deadline, "never refreshed: {got:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Past its ttl, a response is served at once, stale, by every request, while exactly
/// one refresh runs (held here until every stale request was answered); then the
/// refreshed response is a fresh hit.
async fn stale_is_served_at_once_while_one_refresh_runs(base: &str, script: &Script) {
    let url = format!("{base}/stale?page=1");
    let first = fetch(&url).await;
    assert!(first.is_stored(), "{first:?}");
    assert_eq!(first.body, "run=1 page=1");
    assert_eq!(
        first.header("cache-control").as_deref(),
        Some("max-age=1, stale-while-revalidate=60"),
        "downstream caches may serve it stale as long as this one does"
    );
    past_ttl().await;

    script.hold(2);
    let stale: Vec<Got> = futures_join(8, || {
        let url = url.clone();
        async move { fetch(&url).await }
    })
    .await;
    for got in &stale {
        assert_eq!(got.status, 200);
        assert!(got.is_stale(), "{got:?}");
        assert_eq!(got.body, "run=1 page=1");
        // The stored headers, unchanged, with the true age: past max-age, so a
        // downstream cache sees it stale too.
        assert_eq!(
            got.header("cache-control").as_deref(),
            Some("max-age=1, stale-while-revalidate=60")
        );
        assert!(
            got.header("age")
                .expect("age")
                .parse::<u64>()
                .expect("secs")
                >= 1
        );
        assert_eq!(got.header("expires"), first.header("expires"));
        assert_eq!(got.header("etag"), first.header("etag"));
    }
    until("the refresh to start", || script.runs() == 2).await;
    assert_eq!(
        script.finished(),
        1,
        "every stale request was answered while the refresh was still held"
    );
    script.release();
    let fresh = until_refreshed(&url, "run=1 page=1").await;
    assert_eq!(fresh.body, "run=2 page=1", "the refresh ran for this URL");
    assert_eq!(
        script.runs(),
        2,
        "one refresh for 8 stale requests and more"
    );
}

/// A refresh that answers 500, then one that panics, store nothing: the stale response
/// keeps being served, each later stale request tries again, and the first refresh that
/// succeeds is stored.
async fn a_failed_refresh_keeps_the_stale_response(base: &str, script: &Script) {
    let url = format!("{base}/stale?page=2");
    assert!(fetch(&url).await.is_stored());
    past_ttl().await;
    script.fail(2);
    script.panic(3);
    let fresh = until_refreshed(&url, "run=1 page=2").await;
    assert_eq!(fresh.body, "run=4 page=2");
    assert_eq!(script.runs(), 4);
}

/// After the stale window, a request is a miss and runs the handler itself.
async fn after_the_window_a_request_misses(base: &str, script: &Script) {
    assert_eq!(script.runs(), 0);
    let url = format!("{base}/short?page=3");
    assert!(fetch(&url).await.is_stored());
    tokio::time::sleep(Duration::from_millis(2400)).await;
    let got = fetch(&url).await;
    assert!(got.is_stored(), "{got:?}");
    assert_eq!(got.body, "run=2 page=3");
}

/// A response tagged with the objects it shows misses once one of them is invalidated;
/// the others stay hits. The view's static tag invalidates all of them.
async fn tagged_responses_miss_after_their_invalidation(
    base: &str,
    route: &str,
    cache: &Cache,
    ids: [u32; 3],
) {
    let [a, b, c] = ids;
    let shows_ab = format!("{base}/{route}?page=4&ids={a},{b}");
    let shows_c = format!("{base}/{route}?page=5&ids={c}");
    assert!(fetch(&shows_ab).await.is_stored());
    assert!(fetch(&shows_c).await.is_stored());
    assert!(fetch(&shows_ab).await.is_fresh_hit());
    assert!(fetch(&shows_c).await.is_fresh_hit());

    cache
        .invalidate_tags(&[format!("product:{b}")])
        .await
        .expect("invalidate");
    let again = fetch(&shows_ab).await;
    assert!(again.is_stored(), "it shows product {b}: {again:?}");
    assert!(again.body.starts_with("run=3 "), "{again:?}");
    let other = fetch(&shows_c).await;
    assert!(
        other.is_fresh_hit(),
        "it does not show product {b}: {other:?}"
    );

    cache.invalidate_tags(&["pages"]).await.expect("invalidate");
    assert!(fetch(&shows_ab).await.is_stored());
    assert!(fetch(&shows_c).await.is_stored());
}

/// A URL's page showed product `id`; it was invalidated, and while the handler that
/// renders the page again runs (with the data of before), it is invalidated once more.
/// The stored page recorded the tag's version read before that run, so it misses.
async fn an_invalidation_while_the_handler_runs_is_not_lost(
    base: &str,
    script: &Script,
    route: &str,
    cache: &Cache,
    id: u32,
) {
    let url = format!("{base}/{route}?page=6&ids={id}");
    let tag = [format!("product:{id}")];
    assert!(fetch(&url).await.is_stored());
    cache.invalidate_tags(&tag).await.expect("invalidate");

    // Run 2 renders the page again; it is held while the product changes once more.
    let runs = script.runs();
    script.hold(runs + 1);
    let render = tokio::spawn({
        let url = url.clone();
        async move { fetch(&url).await }
    });
    until("the render to start", || script.runs() == runs + 1).await;
    cache.invalidate_tags(&tag).await.expect("invalidate");
    script.release();
    let rendered = render.await.expect("the request");
    assert!(rendered.is_stored(), "{rendered:?}");

    let after = fetch(&url).await;
    assert!(
        after.is_stored(),
        "the page rendered before the second invalidation is not served: {after:?}"
    );
}

/// A response whose tags were invalidated is a miss even within the stale window.
async fn an_invalidated_stale_response_is_a_miss(base: &str, cache: &Cache, id: u32) {
    let url = format!("{base}/stale?page=7&ids={id}");
    assert!(fetch(&url).await.is_stored());
    past_ttl().await;
    cache
        .invalidate_tags(&[format!("product:{id}")])
        .await
        .expect("invalidate");
    let got = fetch(&url).await;
    assert!(got.is_stored(), "invalidated, so not served stale: {got:?}");
    assert_eq!(got.body, "run=2 page=7");
}

/// A view that keys on credentials says so in `Vary` (after the handler's own), on the
/// miss, on the hit and on responses it does not store; a shared one does not.
async fn responses_vary_on_the_credentials_the_key_holds(base: &str) {
    let url = format!("{base}/tagged?page=9&vary=Accept-Encoding");
    let miss = fetch(&url).await;
    assert!(miss.is_stored());
    assert_eq!(
        miss.all("vary"),
        ["Accept-Encoding", "authorization, cookie"]
    );
    let hit = fetch(&url).await;
    assert!(hit.is_fresh_hit());
    assert_eq!(
        hit.all("vary"),
        ["Accept-Encoding", "authorization, cookie"]
    );
    let with_cookie = get_with(&url, &[("cookie", "session=1")]).await;
    assert!(with_cookie.is_stored(), "another key: {with_cookie:?}");
    assert_eq!(
        with_cookie.all("vary"),
        ["Accept-Encoding", "authorization, cookie"]
    );

    let plain = fetch(&format!("{base}/tagged?page=10")).await;
    assert_eq!(plain.all("vary"), ["authorization, cookie"]);
    let not_found = fetch(&format!("{base}/tagged?page=11&status=404")).await;
    assert_eq!(
        not_found.cache_status(),
        "cached-kit; fwd=miss; detail=status"
    );
    assert_eq!(not_found.all("vary"), ["authorization, cookie"]);
    let listed = fetch(&format!("{base}/tagged?page=12&vary=Cookie")).await;
    assert_eq!(listed.all("vary"), ["Cookie", "authorization"]);

    let shared = fetch(&format!("{base}/shared?page=13&vary=Accept-Encoding")).await;
    assert!(shared.is_stored());
    assert_eq!(shared.all("vary"), ["Accept-Encoding"]);
}

/// Runs `n` copies of `f()` concurrently.
async fn futures_join<F, Fut>(n: usize, f: F) -> Vec<Got>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Got> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(f())).collect();
    let mut out = Vec::with_capacity(n);
    for task in tasks {
        out.push(task.await.expect("request task"));
    }
    out
}

fn memory_cache() -> Cache {
    Cache::builder(MemoryBackend::new(Bound::Entries(10_000))).build()
}

/// A memory cache storing encoded bytes, like a remote backend would.
fn bytes_cache() -> Cache {
    Cache::builder(MemoryBackend::new(Bound::Bytes(64 * 1024 * 1024))).build()
}

#[cfg(feature = "redis")]
fn redis_cache() -> Cache {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let server = cached_testing::RedisServer::shared();
    let backend =
        cached_kit::redis::RedisBackend::from_url(&server.url()).expect("a redis backend");
    let prefix = format!("http-fresh{}", NEXT.fetch_add(1, Ordering::SeqCst));
    Cache::builder(backend).key_prefix(prefix).build()
}

/// The suite for one backend: every scenario through a `CacheLayer` over a fresh cache
/// and through the `#[cache_view]` handlers over the named cache `$views::ALIAS`.
macro_rules! suite {
    ($module:ident, $views:ident, $make:expr) => {
        mod $module {
            use super::*;

            /// A fresh layer app over a new cache.
            async fn layer_app() -> (String, Script, Cache) {
                let cache: Cache = $make;
                let script = Script::default();
                let base = serve(layers(&cache, script.clone())).await;
                (base, script, cache)
            }

            /// The views share one cache (their static `ViewSlot`s name it), and a test
            /// invalidates their static tag: they run one at a time.
            static VIEWS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

            /// A fresh view app; the views' cache is inserted once and shared.
            async fn view_app() -> (String, Script, Cache, tokio::sync::MutexGuard<'static, ()>) {
                let one_at_a_time = VIEWS.lock().await;
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| {
                    let cache: Cache = $make;
                    let cache = Cache::builder_arc(cache.backend().clone())
                        .alias($views::ALIAS)
                        .key_prefix(cache.key_prefix())
                        .build();
                    caches().insert(cache);
                });
                let script = Script::default();
                let base = serve($views::app(script.clone())).await;
                let cache = caches().get($views::ALIAS).expect("the views' cache");
                (base, script, cache, one_at_a_time)
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn layer_serves_stale_while_one_refresh_runs() {
                let (base, script, _) = layer_app().await;
                stale_is_served_at_once_while_one_refresh_runs(&base, &script).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn view_serves_stale_while_one_refresh_runs() {
                let (base, script, _, _views) = view_app().await;
                stale_is_served_at_once_while_one_refresh_runs(&base, &script).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn layer_keeps_stale_after_failed_refreshes() {
                let (base, script, _) = layer_app().await;
                a_failed_refresh_keeps_the_stale_response(&base, &script).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn view_keeps_stale_after_failed_refreshes() {
                let (base, script, _, _views) = view_app().await;
                a_failed_refresh_keeps_the_stale_response(&base, &script).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn layer_misses_after_the_window() {
                let (base, script, _) = layer_app().await;
                after_the_window_a_request_misses(&base, &script).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn view_misses_after_the_window() {
                let (base, script, _, _views) = view_app().await;
                after_the_window_a_request_misses(&base, &script).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn layer_tags() {
                let (base, _, cache) = layer_app().await;
                tagged_responses_miss_after_their_invalidation(&base, "tagged", &cache, [1, 2, 3])
                    .await;
                let (base, _, cache) = layer_app().await;
                tagged_responses_miss_after_their_invalidation(&base, "stale", &cache, [1, 2, 3])
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn view_tags() {
                let (base, _, cache, views) = view_app().await;
                tagged_responses_miss_after_their_invalidation(
                    &base,
                    "tagged",
                    &cache,
                    [11, 12, 13],
                )
                .await;
                drop(views);
                let (base, _, cache, _views) = view_app().await;
                tagged_responses_miss_after_their_invalidation(
                    &base,
                    "stale",
                    &cache,
                    [14, 15, 16],
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn layer_keeps_an_invalidation_during_a_render() {
                let (base, script, cache) = layer_app().await;
                an_invalidation_while_the_handler_runs_is_not_lost(
                    &base, &script, "tagged", &cache, 21,
                )
                .await;
                an_invalidation_while_the_handler_runs_is_not_lost(
                    &base, &script, "stale", &cache, 21,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn view_keeps_an_invalidation_during_a_render() {
                let (base, script, cache, _views) = view_app().await;
                an_invalidation_while_the_handler_runs_is_not_lost(
                    &base, &script, "tagged", &cache, 22,
                )
                .await;
                an_invalidation_while_the_handler_runs_is_not_lost(
                    &base, &script, "stale", &cache, 23,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn layer_never_serves_an_invalidated_response_stale() {
                let (base, _, cache) = layer_app().await;
                an_invalidated_stale_response_is_a_miss(&base, &cache, 31).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn view_never_serves_an_invalidated_response_stale() {
                let (base, _, cache, _views) = view_app().await;
                an_invalidated_stale_response_is_a_miss(&base, &cache, 32).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn layer_responses_vary_on_credentials() {
                let (base, _, _) = layer_app().await;
                responses_vary_on_the_credentials_the_key_holds(&base).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn view_responses_vary_on_credentials() {
                let (base, _, _, _views) = view_app().await;
                responses_vary_on_the_credentials_the_key_holds(&base).await;
            }
        }
    };
}

suite!(memory, memory_views, memory_cache());
suite!(bytes, bytes_views, bytes_cache());
#[cfg(feature = "redis")]
suite!(redis, redis_views, redis_cache());
