//! SPEC §5 over real HTTP: an axum app on 127.0.0.1:0, a real client, every rule of the
//! HTTP cache with its own test. The `CacheLayer` suite runs against the memory backend
//! and (feature `redis`) a real `redis-server`; `#[cache_view]` is tested with every
//! extractor kind.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cached_kit::backend::memory::{Bound, MemoryBackend};
use cached_kit::{cache_view, caches, Cache, CacheLayer};
use cached_testing::http::{client, serve};
use serde::Deserialize;

/// Counts handler runs.
#[derive(Clone, Default)]
struct Runs(Arc<AtomicUsize>);

impl Runs {
    fn next(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A response as the tests look at it.
struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_owned())
    }
    fn cache_status(&self) -> String {
        self.header("cache-status").unwrap_or_default()
    }
    fn is_hit(&self) -> bool {
        self.cache_status().starts_with("cached-kit; hit; ttl=")
    }
    fn is_stored(&self) -> bool {
        self.cache_status() == "cached-kit; fwd=miss; stored"
    }
    /// An HTTP-date header, parsed.
    fn date(&self, name: &str) -> std::time::SystemTime {
        let text = self
            .header(name)
            .unwrap_or_else(|| panic!("no {name} header"));
        httpdate::parse_http_date(&text).unwrap_or_else(|e| panic!("{name}: {text}: {e}"))
    }
    /// A whole-number header, parsed.
    fn number(&self, name: &str) -> u64 {
        let text = self
            .header(name)
            .unwrap_or_else(|| panic!("no {name} header"));
        text.parse()
            .unwrap_or_else(|e| panic!("{name}: {text}: {e}"))
    }
    /// The `ttl=N` of a hit's Cache-Status.
    fn ttl(&self) -> u64 {
        let status = self.cache_status();
        status
            .rsplit("ttl=")
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no ttl in {status}"))
    }
}

async fn send(req: reqwest::RequestBuilder) -> Got {
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.bytes().await.expect("body").to_vec();
    Got {
        status,
        headers,
        body,
    }
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> Got {
    let mut req = client().get(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    send(req).await
}

async fn fetch(url: &str) -> Got {
    get_with(url, &[]).await
}

fn memory_cache() -> Cache {
    Cache::builder(MemoryBackend::new(Bound::Entries(10_000))).build()
}

/// A memory cache storing encoded bytes, like a remote backend would.
fn memory_bytes_cache() -> Cache {
    Cache::builder(MemoryBackend::new(Bound::Bytes(64 * 1024 * 1024))).build()
}

#[cfg(feature = "redis")]
fn redis_cache() -> Cache {
    use cached_testing::RedisServer;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let server = RedisServer::shared();
    let backend =
        cached_kit::redis::RedisBackend::from_url(&server.url()).expect("a redis backend");
    let prefix = format!("http{}", NEXT.fetch_add(1, Ordering::SeqCst));
    Cache::builder(backend).key_prefix(prefix).build()
}

#[derive(Deserialize)]
struct Params {
    v: Option<String>,
    status: Option<u16>,
    len: Option<usize>,
}

/// One handler for every rule: what it answers is steered by the query string.
async fn rules_handler(
    State(runs): State<Runs>,
    Query(p): Query<Params>,
    req: Request,
) -> Response {
    let n = runs.next();
    let path = req.uri().path().to_owned();
    let echo = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| format!("{:?}", v))
            .unwrap_or_else(|| "absent".into())
    };
    let body = format!(
        "run={n} auth={} cookie={} lang={} tenant={}",
        echo("authorization"),
        echo("cookie"),
        echo("accept-language"),
        echo("x-tenant")
    );
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.append("x-custom", HeaderValue::from_static("one"));
    h.append("x-custom", HeaderValue::from_static("two"));
    match path.as_str() {
        "/status" => {
            *res.status_mut() = StatusCode::from_u16(p.status.unwrap_or(200)).expect("status")
        }
        "/cookie" => {
            h.insert(
                "set-cookie",
                HeaderValue::from_static("session=abc; HttpOnly"),
            );
        }
        "/cc" => {
            let v = p.v.unwrap_or_default();
            h.insert(
                "cache-control",
                HeaderValue::from_str(&v).expect("cc value"),
            );
        }
        "/vary" => {
            let v = p.v.unwrap_or_default();
            h.insert("vary", HeaderValue::from_str(&v).expect("vary value"));
        }
        "/upstream" => {
            h.insert(
                "cache-status",
                HeaderValue::from_static("origin; fwd=uri-miss"),
            );
        }
        "/etag" => {
            h.insert("etag", HeaderValue::from_static("\"v1\""));
        }
        "/expires" => {
            // Expires `v` seconds from now, no Cache-Control.
            let secs: u64 = p.v.as_deref().unwrap_or("0").parse().expect("seconds");
            let at = std::time::SystemTime::now() + Duration::from_secs(secs);
            let date = httpdate::fmt_http_date(at);
            h.insert("expires", HeaderValue::from_str(&date).expect("date"));
        }
        "/host" => {
            // The authority and forwarding headers a handler builds its links from.
            let body = format!(
                "run={n} host={} xfh={} xfp={} fwd={}",
                echo("host"),
                echo("x-forwarded-host"),
                echo("x-forwarded-proto"),
                echo("forwarded")
            );
            return body.into_response();
        }
        "/hostile" => hostile(h, p.v.as_deref().unwrap_or_default()),
        "/big" => {
            let len = p.len.unwrap_or(0);
            let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut res = Response::new(Body::from(body));
            res.headers_mut().insert("x-run", HeaderValue::from(n));
            return res;
        }
        "/stream" => {
            let len = p.len.unwrap_or(0);
            let mut res = Response::new(Body::new(Chunked::new(len, 1000)));
            res.headers_mut().insert("x-run", HeaderValue::from(n));
            return res;
        }
        _ => {}
    }
    res
}

/// Headers a careless or hostile handler could send, by name.
fn hostile(h: &mut HeaderMap, case: &str) {
    let raw = |bytes: &'static [u8]| HeaderValue::from_bytes(bytes).expect("obs-text is allowed");
    match case {
        "duplicated-max-age" => {
            h.append("cache-control", HeaderValue::from_static("max-age=60"));
            h.append(
                "cache-control",
                HeaderValue::from_static("public, max-age=1"),
            );
        }
        "non-ascii-cache-control" => {
            h.insert("cache-control", raw(b"max-age=60, \xe9private"));
        }
        "huge-vary" => {
            let names: Vec<String> = (0..1000).map(|i| format!("x-h{i}")).collect();
            h.insert(
                "vary",
                HeaderValue::from_str(&names.join(", ")).expect("vary"),
            );
        }
        "repeated-vary" => {
            // As many lines as an HTTP client accepts (hyper's limit is 100 headers).
            for _ in 0..60 {
                h.append(
                    "vary",
                    HeaderValue::from_static("Accept-Language, accept-language"),
                );
            }
        }
        "not-a-name-vary" => {
            h.insert("vary", HeaderValue::from_static("Accept, not a name"));
        }
        "non-ascii-vary" => {
            h.insert("vary", raw(b"Accept, \xffx"));
        }
        "expires-zero" => {
            h.insert("expires", HeaderValue::from_static("0"));
        }
        "expires-garbage-and-future" => {
            h.append(
                "expires",
                HeaderValue::from_static("Sun, 06 Nov 2094 08:49:37 GMT"),
            );
            h.append("expires", HeaderValue::from_static("tomorrow"));
        }
        other => panic!("no hostile case {other}"),
    }
}

/// Sends `request` as written over a raw TCP connection to `addr`; returns the
/// response as text (the request should say `Connection: close`).
async fn raw_request(addr: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request).await.expect("write");
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.expect("read");
        String::from_utf8_lossy(&out).into_owned()
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .expect("the server answered")
}

/// A body of `len` bytes in chunks of `chunk`, without a known length (so it is sent
/// chunked and the cache cannot know its size in advance).
struct Chunked {
    sent: usize,
    len: usize,
    chunk: usize,
}

impl Chunked {
    fn new(len: usize, chunk: usize) -> Self {
        Self {
            sent: 0,
            len,
            chunk,
        }
    }
}

impl HttpBody for Chunked {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.sent >= self.len {
            return Poll::Ready(None);
        }
        let end = (self.sent + self.chunk).min(self.len);
        let data: Vec<u8> = (self.sent..end).map(|i| (i % 251) as u8).collect();
        self.sent = end;
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(data)))))
    }
}

fn expected_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// The rules app behind a `CacheLayer` over `cache`.
async fn rules_app(layer: CacheLayer) -> (String, Runs) {
    let runs = Runs::default();
    let app = Router::new()
        .route(
            "/{*path}",
            get(rules_handler).post(rules_handler).put(rules_handler),
        )
        .with_state(runs.clone())
        .layer(layer);
    (serve(app).await, runs)
}

fn layer(cache: &Cache) -> CacheLayer {
    CacheLayer::new()
        .cache_handle(cache.clone())
        .ttl(Duration::from_secs(60))
}

/// Each rule of SPEC §5, as a function of the cache it runs against.
mod rules {
    use super::*;

    pub async fn get_200_is_stored_and_replayed_exactly(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache)).await;
        let first = fetch(&format!("{base}/plain")).await;
        assert_eq!(first.status, 200);
        assert!(first.is_stored(), "{}", first.cache_status());
        assert!(first.text().starts_with("run=1 "));
        let second = fetch(&format!("{base}/plain")).await;
        assert!(second.is_hit(), "{}", second.cache_status());
        assert_eq!(second.body, first.body, "the stored body is replayed");
        assert_eq!(runs.get(), 1, "the handler ran once");
        let customs: Vec<_> = second.headers.get_all("x-custom").iter().collect();
        assert_eq!(
            customs,
            ["one", "two"],
            "repeated headers replayed in order"
        );
        assert_eq!(second.header("content-type"), first.header("content-type"));
        assert_eq!(second.header("etag"), first.header("etag"));
        assert_eq!(second.header("expires"), first.header("expires"));
        assert!(first.header("age").is_none(), "no Age on a fresh response");
        let age: u64 = second
            .header("age")
            .expect("Age on a hit")
            .parse()
            .expect("Age is a number");
        assert!(age <= 5, "{age}");
        let ttl: u64 = second
            .cache_status()
            .trim_start_matches("cached-kit; hit; ttl=")
            .parse()
            .expect("ttl=N");
        assert!((50..=60).contains(&ttl), "{ttl}");
    }

    pub async fn head_is_answered_from_the_get_entry(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache)).await;
        let get = fetch(&format!("{base}/a")).await;
        assert!(get.is_stored());
        let head = send(client().head(format!("{base}/a"))).await;
        assert!(head.is_hit(), "{}", head.cache_status());
        assert!(head.body.is_empty(), "HEAD has no body");
        assert_eq!(
            head.header("content-length"),
            Some(get.body.len().to_string()),
            "HEAD announces the GET body's length"
        );
        assert_eq!(runs.get(), 1);

        // A HEAD miss stores the GET entry, which a GET then hits.
        let head = send(client().head(format!("{base}/b"))).await;
        assert!(head.is_stored(), "{}", head.cache_status());
        assert!(head.body.is_empty());
        let get = fetch(&format!("{base}/b")).await;
        assert!(get.is_hit());
        assert!(get.text().starts_with("run=2 "), "{}", get.text());
        assert_eq!(runs.get(), 2);
    }

    pub async fn other_methods_bypass_the_cache(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache)).await;
        assert!(fetch(&format!("{base}/m")).await.is_stored());
        for i in 0..2 {
            let post = send(client().post(format!("{base}/m"))).await;
            assert_eq!(post.cache_status(), "cached-kit; fwd=bypass; detail=method");
            assert!(post.text().starts_with(&format!("run={} ", i + 2)));
        }
        let put = send(client().put(format!("{base}/m"))).await;
        assert_eq!(put.cache_status(), "cached-kit; fwd=bypass; detail=method");
        assert_eq!(runs.get(), 4);
    }

    pub async fn only_status_200_is_stored(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache)).await;
        for status in [201u16, 203, 204, 301, 404, 500] {
            let before = runs.get();
            for _ in 0..2 {
                let got = fetch(&format!("{base}/status?status={status}")).await;
                assert_eq!(got.status, status);
                assert_eq!(got.cache_status(), "cached-kit; fwd=miss; detail=status");
            }
            assert_eq!(
                runs.get(),
                before + 2,
                "status {status} was served from cache"
            );
        }
    }

    pub async fn set_cookie_is_never_stored(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache)).await;
        for _ in 0..2 {
            let got = fetch(&format!("{base}/cookie")).await;
            assert_eq!(
                got.cache_status(),
                "cached-kit; fwd=miss; detail=set-cookie"
            );
            assert_eq!(
                got.header("set-cookie").as_deref(),
                Some("session=abc; HttpOnly")
            );
        }
        assert_eq!(runs.get(), 2);
    }

    pub async fn cache_control_private_no_store_no_cache_are_never_stored(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache)).await;
        let refused = [
            "private",
            "Private",
            "NO-STORE",
            "public,no-cache",
            "max-age=60 ,   no-store",
            "no-cache=\"Set-Cookie\"",
            "private=\"X-Secret, Y\", max-age=5",
            "\tNo-Cache\t",
        ];
        for (i, v) in refused.iter().enumerate() {
            let url = reqwest::Url::parse_with_params(
                &format!("{base}/cc"),
                &[("v", *v), ("i", &i.to_string())],
            )
            .expect("url");
            let before = runs.get();
            for _ in 0..2 {
                let got = fetch(url.as_str()).await;
                assert_eq!(
                    got.cache_status(),
                    "cached-kit; fwd=miss; detail=cache-control",
                    "{v}"
                );
                assert_eq!(
                    got.header("cache-control").as_deref(),
                    Some(v.trim()),
                    "{v}"
                );
            }
            assert_eq!(runs.get(), before + 2, "`{v}` was served from cache");
        }
        // Allowed directives are stored, and the handler's Cache-Control is kept.
        let url = format!("{base}/cc?v=public,%20max-age=30");
        assert!(fetch(&url).await.is_stored());
        let hit = fetch(&url).await;
        assert!(hit.is_hit());
        assert_eq!(
            hit.header("cache-control").as_deref(),
            Some("public, max-age=30")
        );
    }

    pub async fn vary_star_is_never_stored(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache)).await;
        for v in ["*", "Accept, *"] {
            let url =
                reqwest::Url::parse_with_params(&format!("{base}/vary"), &[("v", v)]).expect("url");
            let before = runs.get();
            for _ in 0..2 {
                let got = fetch(url.as_str()).await;
                assert_eq!(got.cache_status(), "cached-kit; fwd=miss; detail=vary-star");
            }
            assert_eq!(runs.get(), before + 2);
        }
    }

    pub async fn a_body_over_the_limit_passes_through_whole_and_unstored(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache).max_body(4096)).await;
        for path in ["big", "stream"] {
            // Over the limit, with and without a Content-Length.
            for _ in 0..2 {
                let got = fetch(&format!("{base}/{path}?len=50000")).await;
                assert_eq!(got.status, 200);
                assert_eq!(got.body, expected_bytes(50_000), "{path}: the whole body");
                assert_eq!(got.cache_status(), "cached-kit; fwd=miss; detail=too-large");
            }
            // Exactly at the limit: stored.
            let first = fetch(&format!("{base}/{path}?len=4096")).await;
            assert!(first.is_stored(), "{path}: {}", first.cache_status());
            let hit = fetch(&format!("{base}/{path}?len=4096")).await;
            assert!(hit.is_hit());
            assert_eq!(hit.body, expected_bytes(4096));
            assert_eq!(hit.header("x-run"), first.header("x-run"));
        }
        assert_eq!(runs.get(), 2 * (2 + 1));
        // The default limit is 8 MiB.
        let (base, _) = rules_app(layer(&cache)).await;
        let big = 8 * 1024 * 1024 + 1;
        let got = fetch(&format!("{base}/stream?len={big}")).await;
        assert_eq!(got.body.len(), big);
        assert_eq!(got.body, expected_bytes(big));
        assert_eq!(got.cache_status(), "cached-kit; fwd=miss; detail=too-large");
    }

    pub async fn credentials_never_cross(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache)).await;
        let url = format!("{base}/me");
        let alice = get_with(&url, &[("authorization", "Bearer alice")]).await;
        assert!(alice.is_stored());
        assert!(alice.text().contains("auth=\"Bearer alice\""));
        let bob = get_with(&url, &[("authorization", "Bearer bob")]).await;
        assert!(!bob.is_hit(), "bob got alice's page");
        assert!(bob.text().contains("auth=\"Bearer bob\""), "{}", bob.text());
        let anonymous = fetch(&url).await;
        assert!(!anonymous.is_hit());
        assert!(anonymous.text().contains("auth=absent"));
        let empty = get_with(&url, &[("authorization", "")]).await;
        assert!(
            !empty.is_hit(),
            "an empty Authorization is not an absent one"
        );
        assert!(empty.text().contains("auth=\"\""));
        let alice_again = get_with(&url, &[("authorization", "Bearer alice")]).await;
        assert!(alice_again.is_hit());
        assert_eq!(alice_again.body, alice.body);

        let c1 = get_with(&url, &[("cookie", "session=1")]).await;
        let c2 = get_with(&url, &[("cookie", "session=2")]).await;
        assert!(!c2.is_hit(), "a session got another session's page");
        assert!(c2.text().contains("cookie=\"session=2\""));
        let c1_again = get_with(&url, &[("cookie", "session=1")]).await;
        assert!(c1_again.is_hit());
        assert_eq!(c1_again.body, c1.body);
        assert_eq!(runs.get(), 6);
    }

    pub async fn shared_views_serve_one_response_to_everyone(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache).shared(true)).await;
        let url = format!("{base}/public");
        let alice = get_with(&url, &[("authorization", "Bearer alice")]).await;
        assert!(alice.is_stored());
        let bob = get_with(&url, &[("authorization", "Bearer bob"), ("cookie", "x=1")]).await;
        assert!(bob.is_hit());
        assert_eq!(bob.body, alice.body);
        assert_eq!(runs.get(), 1);
        // Credentials are not in the key: downstream caches may share it too.
        assert_eq!(alice.header("cache-control").as_deref(), Some("max-age=60"));
        assert_eq!(bob.header("cache-control").as_deref(), Some("max-age=60"));
    }

    pub async fn credentialed_responses_are_private_downstream(cache: Cache) {
        let (base, _) = rules_app(layer(&cache)).await;
        for (i, credentials) in [("authorization", "Bearer alice"), ("cookie", "s=1")]
            .into_iter()
            .enumerate()
        {
            let url = format!("{base}/private{i}");
            let miss = get_with(&url, &[credentials]).await;
            assert!(miss.is_stored(), "{}", miss.cache_status());
            assert_eq!(
                miss.header("cache-control").as_deref(),
                Some("private, max-age=60"),
                "{credentials:?}: the miss that stores it"
            );
            let hit = get_with(&url, &[credentials]).await;
            assert!(hit.is_hit());
            assert_eq!(
                hit.header("cache-control").as_deref(),
                Some("private, max-age=60"),
                "{credentials:?}: a hit"
            );
            let not_modified = get_with(
                &url,
                &[
                    credentials,
                    ("if-none-match", &hit.header("etag").expect("ETag")),
                ],
            )
            .await;
            assert_eq!(not_modified.status, 304);
            assert_eq!(
                not_modified.header("cache-control").as_deref(),
                Some("private, max-age=60"),
                "{credentials:?}: a 304"
            );
            // The same URL without credentials is another entry, and public.
            let anonymous = fetch(&url).await;
            assert!(anonymous.is_stored());
            assert_eq!(
                anonymous.header("cache-control").as_deref(),
                Some("max-age=60")
            );
        }
        // The handler's own directives stay, but not `public` or `s-maxage`.
        let url = format!("{base}/cc?v=public,%20s-maxage=600,%20max-age=30,%20must-revalidate");
        let own = get_with(&url, &[("authorization", "Bearer alice")]).await;
        assert!(own.is_stored(), "{}", own.cache_status());
        let expected = Some("private, max-age=30, must-revalidate");
        assert_eq!(own.header("cache-control").as_deref(), expected);
        let hit = get_with(&url, &[("authorization", "Bearer alice")]).await;
        assert!(hit.is_hit());
        assert_eq!(hit.header("cache-control").as_deref(), expected);
    }

    pub async fn hits_state_the_full_lifetime_and_their_age(cache: Cache) {
        let (base, _) = rules_app(layer(&cache)).await;
        let url = format!("{base}/lifetime");
        let first = fetch(&url).await;
        assert!(first.is_stored());
        assert!(first.header("age").is_none(), "no Age on a fresh response");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let hit = fetch(&url).await;
        assert!(hit.is_hit());
        assert_eq!(
            hit.header("cache-control").as_deref(),
            Some("max-age=60"),
            "max-age is the entry's lifetime, not what is left of it"
        );
        let age = hit.number("age");
        assert!((2..60).contains(&age), "Age {age}");
        assert_eq!(
            hit.date("expires"),
            first.date("expires"),
            "Expires is the store time plus the lifetime, on every hit"
        );
        // Cache-Status keeps what is left, so ttl + Age is the lifetime (within the
        // rounding of both down to whole seconds).
        let sum = hit.ttl() + age;
        assert!(sum == 59 || sum == 60, "ttl {} + Age {age}", hit.ttl());
    }

    pub async fn a_handlers_own_lifetime_caps_the_stored_one(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache)).await;
        let cases = [
            ("/cc", "max-age=2", "max-age=2"),
            (
                "/cc",
                "public, s-maxage=2, max-age=30",
                "public, s-maxage=2, max-age=2",
            ),
            ("/expires", "2", "max-age=1"),
        ];
        for (path, v, sent) in cases {
            let url = reqwest::Url::parse_with_params(&format!("{base}{path}"), &[("v", v)])
                .expect("url");
            let before = runs.get();
            let first = fetch(url.as_str()).await;
            assert!(first.is_stored(), "{v}: {}", first.cache_status());
            assert_eq!(first.header("cache-control").as_deref(), Some(sent), "{v}");
            let ahead = first
                .date("expires")
                .duration_since(first.date("date"))
                .unwrap_or_default();
            assert!(
                ahead <= Duration::from_secs(2),
                "{v}: Expires {ahead:?} ahead"
            );
            let hit = fetch(url.as_str()).await;
            assert!(hit.is_hit(), "{v}");
            assert!(hit.ttl() <= 2, "{v}: {}", hit.cache_status());
            assert_eq!(hit.header("cache-control").as_deref(), Some(sent), "{v}");
            assert_eq!(hit.date("expires"), first.date("expires"), "{v}");
            // The view's ttl is 60 s; the handler's 2 s win.
            tokio::time::sleep(Duration::from_millis(2600)).await;
            let after = fetch(url.as_str()).await;
            assert!(after.is_stored(), "{v}: {}", after.cache_status());
            assert_eq!(runs.get(), before + 2, "{v}");
        }
        // Stale at once: never stored, passed through as written.
        for v in ["max-age=0", "s-maxage=0, max-age=60", "max-age=soon"] {
            let url =
                reqwest::Url::parse_with_params(&format!("{base}/cc"), &[("v", v)]).expect("url");
            let before = runs.get();
            for _ in 0..2 {
                let got = fetch(url.as_str()).await;
                assert_eq!(
                    got.cache_status(),
                    "cached-kit; fwd=miss; detail=expired",
                    "{v}"
                );
                assert_eq!(got.header("cache-control").as_deref(), Some(v));
            }
            assert_eq!(runs.get(), before + 2, "{v} was served from cache");
        }
    }

    pub async fn the_key_is_the_authority_the_handler_sees(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache)).await;
        let addr = base.trim_start_matches("http://").to_owned();
        // The poisoning: an absolute-form target naming this server, a Host naming another.
        let poison = format!(
            "GET http://{addr}/host HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        );
        let answer = raw_request(&addr, poison.as_bytes()).await;
        assert!(answer.contains("host=\"evil.example\""), "{answer}");
        let plain = fetch(&format!("{base}/host")).await;
        assert!(
            !plain.text().contains("evil.example"),
            "poisoned: {}",
            plain.text()
        );
        assert!(plain.is_stored(), "{}", plain.cache_status());
        assert!(
            answer.contains("cache-status: cached-kit; fwd=bypass; detail=authority"),
            "{answer}"
        );
        // An absolute-form target that agrees with Host is looked up as usual.
        let agreeing =
            format!("GET http://{addr}/host HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        for _ in 0..2 {
            let answer = raw_request(&addr, agreeing.as_bytes()).await;
            assert!(!answer.contains("fwd=bypass"), "{answer}");
            assert!(!answer.contains("evil.example"), "{answer}");
        }
        // Two Host headers: refused by the server or passed through, never stored.
        let two = format!(
            "GET /host HTTP/1.1\r\nHost: {addr}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        );
        let answer = raw_request(&addr, two.as_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 400") || answer.contains("detail=authority"),
            "{answer}"
        );
        // A Host with bytes outside ASCII is a key like any other.
        let odd = [
            b"GET /host HTTP/1.1\r\nHost: \xff\xfe.example\r\nConnection: close\r\n\r\n".as_slice(),
            b"GET /host HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n".as_slice(),
        ];
        for request in odd {
            let answer = raw_request(&addr, request).await;
            assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
        }
        assert!(!fetch(&format!("{base}/host")).await.text().contains("evil"));

        // The forwarding headers a handler builds links from are part of the key.
        for name in ["x-forwarded-host", "x-forwarded-proto", "forwarded"] {
            let url = format!("{base}/host?via={name}");
            let forwarded = get_with(&url, &[(name, "evil.example")]).await;
            assert!(forwarded.is_stored(), "{name}");
            assert!(forwarded.text().contains("\"evil.example\""), "{name}");
            let plain = fetch(&url).await;
            assert!(!plain.is_hit(), "{name}: the forwarded page was served");
            assert!(!plain.text().contains("evil.example"), "{name}");
            let again = get_with(&url, &[(name, "evil.example")]).await;
            assert!(again.is_hit(), "{name}");
            assert_eq!(again.body, forwarded.body);
        }
        assert!(runs.get() >= 8);
    }

    pub async fn vary_learned_by_another_process_is_honoured(cache: Cache) {
        // Two layers over one cache stand for two processes: each learns on its own.
        let (first, _) = rules_app(layer(&cache)).await;
        let (second, runs) = rules_app(layer(&cache)).await;
        let get = |base: &str, lang: &'static str| {
            let url = format!("{base}/vary?v=Accept-Language");
            async move { get_with(&url, &[("host", "shop.example"), ("accept-language", lang)]).await }
        };
        let en = get(&first, "en").await;
        assert!(en.is_stored(), "{}", en.cache_status());
        // The second has never seen this URL vary: it finds the first's manifest.
        let en_there = get(&second, "en").await;
        assert!(en_there.is_hit(), "{}", en_there.cache_status());
        assert_eq!(en_there.body, en.body);
        let fr_there = get(&second, "fr").await;
        assert!(!fr_there.is_hit(), "fr got the en page");
        assert!(fr_there.text().contains("lang=\"fr\""));
        assert!(get(&first, "fr").await.is_hit());
        assert_eq!(runs.get(), 1, "the second ran its handler for fr only");
    }

    pub async fn hostile_response_headers_never_break_the_rules(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache)).await;
        let url = |case: &str| format!("{base}/hostile?v={case}");
        // Duplicated Cache-Control: the smallest max-age wins, and is sent once.
        let first = fetch(&url("duplicated-max-age")).await;
        assert!(first.is_stored(), "{}", first.cache_status());
        assert_eq!(
            first.header("cache-control").as_deref(),
            Some("max-age=1, public")
        );
        for (case, detail) in [
            ("non-ascii-cache-control", "cache-control"),
            ("huge-vary", "vary"),
            ("not-a-name-vary", "vary"),
            ("non-ascii-vary", "vary"),
            ("expires-zero", "expired"),
            ("expires-garbage-and-future", "expired"),
        ] {
            let before = runs.get();
            for _ in 0..2 {
                let got = fetch(&url(case)).await;
                assert_eq!(got.status, 200, "{case}");
                assert_eq!(
                    got.cache_status(),
                    format!("cached-kit; fwd=miss; detail={detail}"),
                    "{case}"
                );
            }
            assert_eq!(runs.get(), before + 2, "{case} was served from cache");
        }
        // Many Vary lines naming one header are one name.
        let en = get_with(&url("repeated-vary"), &[("accept-language", "en")]).await;
        assert!(en.is_stored(), "{}", en.cache_status());
        let fr = get_with(&url("repeated-vary"), &[("accept-language", "fr")]).await;
        assert!(!fr.is_hit(), "fr got the en page");
        assert!(
            get_with(&url("repeated-vary"), &[("accept-language", "en")])
                .await
                .is_hit()
        );
    }

    pub async fn vary_is_learned_from_the_response(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache)).await;
        let url = format!("{base}/vary?v=Accept-Language");
        let en = get_with(&url, &[("accept-language", "en")]).await;
        assert!(en.is_stored());
        let fr = get_with(&url, &[("accept-language", "fr")]).await;
        assert!(!fr.is_hit(), "fr got the en page");
        assert!(fr.text().contains("lang=\"fr\""));
        let absent = fetch(&url).await;
        assert!(!absent.is_hit());
        assert!(absent.text().contains("lang=absent"));
        let empty = get_with(&url, &[("accept-language", "")]).await;
        assert!(!empty.is_hit(), "an empty header is not an absent one");
        assert!(empty.text().contains("lang=\"\""));
        for (lang, page) in [("en", &en), ("fr", &fr)] {
            let again = get_with(&url, &[("accept-language", lang)]).await;
            assert!(again.is_hit(), "{lang}");
            assert_eq!(again.body, page.body, "{lang}");
        }
        let absent_again = fetch(&url).await;
        assert!(absent_again.is_hit());
        assert_eq!(absent_again.body, absent.body);
        assert_eq!(runs.get(), 4);
    }

    pub async fn configured_vary_headers_are_in_the_key(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache).vary(["X-Tenant"])).await;
        let url = format!("{base}/t");
        let a = get_with(&url, &[("x-tenant", "a")]).await;
        let b = get_with(&url, &[("x-tenant", "b")]).await;
        assert!(a.is_stored() && b.is_stored());
        assert!(b.text().contains("tenant=\"b\""));
        let a2 = get_with(&url, &[("x-tenant", "a")]).await;
        assert!(a2.is_hit());
        assert_eq!(a2.body, a.body);
        assert_eq!(runs.get(), 2);
    }

    pub async fn host_path_and_full_query_are_in_the_key(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache)).await;
        let urls = [
            "/k?x=1",
            "/k?x=2",
            "/k?x=1&y=2",
            "/k?y=2&x=1",
            "/k",
            "/k?",
            "/k2?x=1",
        ];
        let mut first = Vec::new();
        for u in urls {
            let got = fetch(&format!("{base}{u}")).await;
            assert!(got.is_stored(), "{u} was served another URL's entry");
            first.push(got.body);
        }
        for (u, body) in urls.iter().zip(&first) {
            let got = fetch(&format!("{base}{u}")).await;
            assert!(got.is_hit(), "{u}");
            assert_eq!(&got.body, body, "{u}");
        }
        let a = get_with(&format!("{base}/h"), &[("host", "a.example")]).await;
        let b = get_with(&format!("{base}/h"), &[("host", "b.example")]).await;
        assert!(a.is_stored() && b.is_stored(), "hosts share an entry");
        assert!(get_with(&format!("{base}/h"), &[("host", "a.example")])
            .await
            .is_hit());
        assert_eq!(runs.get(), urls.len() + 2);
    }

    pub async fn cache_control_expires_etag_and_not_modified(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache)).await;
        let url = format!("{base}/plain");
        let first = fetch(&url).await;
        assert_eq!(first.header("cache-control").as_deref(), Some("max-age=60"));
        let expires = first.date("expires");
        let ahead = expires
            .duration_since(first.date("date"))
            .expect("Expires after Date");
        assert!(
            (Duration::from_secs(59)..=Duration::from_secs(61)).contains(&ahead),
            "Expires is {ahead:?} after Date"
        );
        let etag = first.header("etag").expect("ETag");
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34,
            "strong: {etag}"
        );

        let not_modified = get_with(&url, &[("if-none-match", &etag)]).await;
        assert_eq!(not_modified.status, 304);
        assert!(not_modified.body.is_empty());
        assert!(not_modified.is_hit());
        assert_eq!(not_modified.header("etag").as_deref(), Some(etag.as_str()));
        let other = get_with(&url, &[("if-none-match", "\"nope\"")]).await;
        assert_eq!(other.status, 200);
        assert_eq!(other.body, first.body);
        let listed = get_with(&url, &[("if-none-match", &format!("\"x\", W/{etag}"))]).await;
        assert_eq!(listed.status, 304);
        assert_eq!(runs.get(), 1);

        // The handler's own ETag is kept and validated against.
        let url = format!("{base}/etag");
        let own = fetch(&url).await;
        assert_eq!(own.header("etag").as_deref(), Some("\"v1\""));
        let nm = get_with(&url, &[("if-none-match", "\"v1\"")]).await;
        assert_eq!(nm.status, 304);
    }

    pub async fn age_grows_and_entries_expire(cache: Cache) {
        let short = CacheLayer::new()
            .cache_handle(cache.clone())
            .ttl(Duration::from_secs(3));
        let (base, runs) = rules_app(short).await;
        let url = format!("{base}/ttl");
        assert!(fetch(&url).await.is_stored());
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let hit = fetch(&url).await;
        assert!(hit.is_hit());
        let age = hit.number("age");
        assert!(age >= 1, "Age {age}");
        assert_eq!(
            hit.header("cache-control").as_deref(),
            Some("max-age=3"),
            "a hit states the full lifetime; Age says how much of it is gone"
        );
        assert!(hit.ttl() <= 1, "{}", hit.cache_status());
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let after = fetch(&url).await;
        assert!(
            after.is_stored(),
            "expired entry was served: {}",
            after.cache_status()
        );
        assert_eq!(runs.get(), 2);
    }

    pub async fn a_request_no_store_is_not_stored_but_may_be_served(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache)).await;
        let url = format!("{base}/ns");
        let got = get_with(&url, &[("cache-control", "No-Store")]).await;
        assert_eq!(
            got.cache_status(),
            "cached-kit; fwd=miss; detail=request-no-store"
        );
        assert!(fetch(&url).await.is_stored());
        assert!(get_with(&url, &[("cache-control", "no-store")])
            .await
            .is_hit());
        assert!(get_with(&url, &[("cache-control", "no-cache")])
            .await
            .is_hit());
        assert_eq!(runs.get(), 2);
    }

    pub async fn cache_status_follows_an_upstream_one(cache: Cache) {
        let (base, _) = rules_app(layer(&cache)).await;
        let url = format!("{base}/upstream");
        let first = fetch(&url).await;
        assert_eq!(
            first.cache_status(),
            "origin; fwd=uri-miss, cached-kit; fwd=miss; stored"
        );
        let hit = fetch(&url).await;
        assert!(hit
            .cache_status()
            .starts_with("origin; fwd=uri-miss, cached-kit; hit; ttl="));
    }

    pub async fn no_response_for_one_credential_set_is_served_for_another(cache: Cache) {
        let (base, runs) = rules_app(layer(&cache)).await;
        property(&base, 0x5eed_cafe_f00d_0001, 400).await;
        assert!(runs.get() < 400, "some requests must have been hits");
    }
}

/// Deterministic xorshift generator: the property test is reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[(self.next() % options.len() as u64) as usize]
    }
}

/// Sends `n` generated requests (credentials, varying headers, URLs whose responses vary
/// on different headers or set a cookie) and checks that every body, whether from the
/// handler or the cache, was produced for exactly the credentials and varying header
/// values of the request it answers.
async fn property(base: &str, seed: u64, n: usize) {
    let mut rng = Rng(seed);
    let auths = ["", "Bearer alice", "Bearer bob", "bearer alice", "\"\""];
    let cookies = ["", "s=1", "s=2", "s=1; t=2"];
    let langs = ["", "en", "fr"];
    let paths = [
        "/p1",
        "/p2?x=1",
        "/vary?v=Accept-Language",
        "/vary?v=Cookie",
        "/vary?v=accept-language,%20x-tenant",
        "/cookie",
    ];
    let mut hits = 0;
    for i in 0..n {
        let path = rng.pick(&paths);
        let mut headers: Vec<(&str, &str)> = Vec::new();
        // "" means absent; "\"\"" stands for an empty value.
        for (name, options) in [
            ("authorization", &auths[..]),
            ("cookie", &cookies[..]),
            ("accept-language", &langs[..]),
            ("x-tenant", &["", "a", "b"][..]),
        ] {
            match rng.pick(options) {
                "" => {}
                "\"\"" => headers.push((name, "")),
                v => headers.push((name, v)),
            }
        }
        let got = get_with(&format!("{base}{path}"), &headers).await;
        if got.is_hit() {
            hits += 1;
        }
        let value = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| format!("{:?}", v))
                .unwrap_or_else(|| "absent".into())
        };
        let text = got.text();
        let what = format!("request {i} (seed {seed:#x}) {path} {headers:?} got {text}");
        // Credentials always match, whatever the URL.
        assert!(
            text.contains(&format!(" auth={} ", value("authorization"))),
            "{what}"
        );
        assert!(
            text.contains(&format!(" cookie={} ", value("cookie"))),
            "{what}"
        );
        // Headers a URL varies on match too.
        if path.contains("ccept-language") {
            assert!(
                text.contains(&format!(" lang={} ", value("accept-language"))),
                "{what}"
            );
        }
        if path.contains("x-tenant") {
            assert!(
                text.ends_with(&format!(" tenant={}", value("x-tenant"))),
                "{what}"
            );
        }
    }
    assert!(hits > 0, "the property run saw no hit: it tested nothing");
}

macro_rules! suite {
    ($backend:ident, $make:expr, [$($rule:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $rule() {
                    rules::$rule($make).await;
                }
            )*
        }
    };
}

macro_rules! all_rules {
    ($backend:ident, $make:expr) => {
        suite!(
            $backend,
            $make,
            [
                get_200_is_stored_and_replayed_exactly,
                head_is_answered_from_the_get_entry,
                other_methods_bypass_the_cache,
                only_status_200_is_stored,
                set_cookie_is_never_stored,
                cache_control_private_no_store_no_cache_are_never_stored,
                vary_star_is_never_stored,
                a_body_over_the_limit_passes_through_whole_and_unstored,
                credentials_never_cross,
                shared_views_serve_one_response_to_everyone,
                vary_is_learned_from_the_response,
                configured_vary_headers_are_in_the_key,
                host_path_and_full_query_are_in_the_key,
                cache_control_expires_etag_and_not_modified,
                age_grows_and_entries_expire,
                a_request_no_store_is_not_stored_but_may_be_served,
                no_response_for_one_credential_set_is_served_for_another,
                cache_status_follows_an_upstream_one,
                credentialed_responses_are_private_downstream,
                hits_state_the_full_lifetime_and_their_age,
                a_handlers_own_lifetime_caps_the_stored_one,
                the_key_is_the_authority_the_handler_sees,
                hostile_response_headers_never_break_the_rules,
                vary_learned_by_another_process_is_honoured,
            ]
        );
    };
}

all_rules!(memory, memory_cache());
all_rules!(memory_encoded, memory_bytes_cache());
#[cfg(feature = "redis")]
all_rules!(redis, redis_cache());

#[tokio::test]
async fn an_unreachable_cache_never_breaks_the_response_and_a_later_one_is_used() {
    let (base, runs) = rules_app(CacheLayer::new().cache("http_cache_no_such_alias")).await;
    for i in 1..=2 {
        let got = fetch(&format!("{base}/x")).await;
        assert_eq!(got.status, 200);
        assert!(got.text().starts_with(&format!("run={i} ")));
        assert_eq!(
            got.cache_status(),
            "cached-kit; fwd=miss; detail=cache-error"
        );
    }
    assert_eq!(runs.get(), 2);
    // The alias is resolved on each request: configuring it later takes effect.
    caches().insert(
        Cache::builder(MemoryBackend::new(Bound::Entries(100)))
            .alias("http_cache_no_such_alias")
            .build(),
    );
    assert!(fetch(&format!("{base}/x")).await.is_stored());
    assert!(fetch(&format!("{base}/x")).await.is_hit());
    assert_eq!(runs.get(), 3);
}

#[tokio::test]
async fn an_invalid_vary_name_turns_caching_off_without_panicking() {
    let (base, runs) =
        rules_app(layer(&memory_cache()).vary(["Accept-Language", "bad name"])).await;
    for i in 1..=2 {
        let got = fetch(&format!("{base}/x")).await;
        assert_eq!(got.status, 200);
        assert!(got.text().starts_with(&format!("run={i} ")));
        assert!(!got.is_hit() && !got.is_stored(), "{}", got.cache_status());
    }
    assert_eq!(runs.get(), 2, "nothing was served from the cache");
}

// ---------------------------------------------------------------------------------
// #[cache_view] on handlers with every kind of extractor.

#[derive(Deserialize)]
struct Page {
    page: u32,
}

#[derive(Deserialize, serde::Serialize)]
struct Search {
    q: String,
}

/// The handlers, generated once per backend so each uses its own named cache.
macro_rules! views {
    ($module:ident, $alias:tt) => {
        mod $module {
            use super::*;

            pub const ALIAS: &str = $alias;

            #[cache_view(ttl = 60, cache = $alias)]
            pub async fn state_path_query(
                State(runs): State<Runs>,
                Path(id): Path<u32>,
                Query(p): Query<Page>,
            ) -> String {
                format!("run={} id={id} page={}", runs.next(), p.page)
            }

            /// A JSON body extractor (last, as axum requires) and a JSON response.
            #[cache_view(ttl = std::time::Duration::from_secs(60), cache = $alias)]
            pub async fn json_body(
                State(runs): State<Runs>,
                Json(s): Json<Search>,
            ) -> Json<Vec<String>> {
                Json(vec![format!("run={}", runs.next()), s.q])
            }

            /// `?` and an early `return` behave as written; only `Ok` with 200 is stored.
            #[cache_view(ttl = 60, cache = $alias)]
            pub async fn fallible(
                State(runs): State<Runs>,
                Path(id): Path<u32>,
            ) -> Result<String, StatusCode> {
                let n = runs.next();
                if id == 0 {
                    return Err(StatusCode::BAD_REQUEST);
                }
                let parsed: u32 = id
                    .to_string()
                    .parse()
                    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
                if parsed > 100 {
                    Err(StatusCode::NOT_FOUND)?;
                }
                Ok(format!("run={n} id={parsed}"))
            }

            #[cache_view(cache = $alias, vary = ["Accept-Language"], shared = true)]
            pub async fn opaque(State(runs): State<Runs>, headers: HeaderMap) -> impl IntoResponse {
                let lang = headers
                    .get("accept-language")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned();
                (
                    StatusCode::OK,
                    [("x-lang", lang.clone())],
                    format!("run={} lang={lang}", runs.next()),
                )
            }

            #[cache_view(ttl = 60, cache = $alias, max_body = 10)]
            pub async fn small_limit(State(runs): State<Runs>) -> String {
                format!("run={} and some more bytes", runs.next())
            }

            /// No arguments but the state; the whole request as the last extractor.
            #[cache_view(cache = $alias)]
            pub async fn whole_request(State(runs): State<Runs>, request: Request) -> String {
                format!("run={} {}", runs.next(), request.method())
            }

            pub fn app(runs: Runs) -> Router {
                Router::new()
                    .route("/items/{id}", get(state_path_query))
                    .route("/search", get(json_body).post(json_body))
                    .route("/fallible/{id}", get(fallible))
                    .route("/opaque", get(opaque))
                    .route("/small", get(small_limit))
                    .route("/request", get(whole_request))
                    .with_state(runs)
            }
        }
    };
}

views!(memory_views, "http_cache_views_memory");
#[cfg(feature = "redis")]
views!(redis_views, "http_cache_views_redis");

macro_rules! view_tests {
    ($module:ident, $views:ident, $make:expr) => {
        mod $module {
            use super::*;

            async fn start() -> (String, Runs) {
                // Insert once: later tests must not replace the cache others use.
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| {
                    let cache: Cache = $make;
                    let cache = Cache::builder_arc(cache.backend().clone())
                        .alias($views::ALIAS)
                        .key_prefix(cache.key_prefix())
                        .build();
                    caches().insert(cache);
                });
                let runs = Runs::default();
                (serve($views::app(runs.clone())).await, runs)
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn state_path_and_query_extractors() {
                let (base, runs) = start().await;
                let first = fetch(&format!("{base}/items/7?page=2")).await;
                assert!(first.is_stored(), "{}", first.cache_status());
                assert!(first.text().ends_with("id=7 page=2"));
                let hit = fetch(&format!("{base}/items/7?page=2")).await;
                assert!(hit.is_hit());
                assert_eq!(hit.body, first.body);
                assert!(!fetch(&format!("{base}/items/8?page=2")).await.is_hit());
                assert!(!fetch(&format!("{base}/items/7?page=3")).await.is_hit());
                let head = send(client().head(format!("{base}/items/7?page=2"))).await;
                assert!(head.is_hit());
                assert!(head.body.is_empty());
                // A rejected extractor is answered by axum, never cached.
                let bad = fetch(&format!("{base}/items/7?page=x")).await;
                assert_eq!(bad.status, 400);
                assert_eq!(runs.get(), 3);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn json_body_extractor() {
                let (base, runs) = start().await;
                let search = Search { q: "lamp".into() };
                for i in 1..=2 {
                    let post = send(client().post(format!("{base}/search")).json(&search)).await;
                    assert_eq!(post.cache_status(), "cached-kit; fwd=bypass; detail=method");
                    assert_eq!(post.text(), format!("[\"run={i}\",\"lamp\"]"));
                }
                let get = send(client().get(format!("{base}/search")).json(&search)).await;
                assert!(get.is_stored());
                assert_eq!(
                    get.header("content-type").as_deref(),
                    Some("application/json")
                );
                let hit = send(client().get(format!("{base}/search")).json(&search)).await;
                assert!(hit.is_hit());
                assert_eq!(hit.body, get.body);
                assert_eq!(
                    hit.header("content-type").as_deref(),
                    Some("application/json")
                );
                assert_eq!(runs.get(), 3);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn result_handlers_store_only_ok() {
                let (base, runs) = start().await;
                for id in [0, 101] {
                    for _ in 0..2 {
                        let got = fetch(&format!("{base}/fallible/{id}")).await;
                        assert!(got.status == 400 || got.status == 404);
                        assert_eq!(got.cache_status(), "cached-kit; fwd=miss; detail=status");
                    }
                }
                assert!(fetch(&format!("{base}/fallible/5")).await.is_stored());
                let hit = fetch(&format!("{base}/fallible/5")).await;
                assert!(hit.is_hit());
                assert_eq!(hit.text(), "run=5 id=5");
                assert_eq!(runs.get(), 5);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn vary_and_shared_arguments() {
                let (base, runs) = start().await;
                let url = format!("{base}/opaque");
                let en = get_with(&url, &[("accept-language", "en"), ("authorization", "a")]).await;
                assert!(en.is_stored());
                assert_eq!(en.header("x-lang").as_deref(), Some("en"));
                // shared: another user gets the same page; vary: another language does not.
                let en_b =
                    get_with(&url, &[("accept-language", "en"), ("authorization", "b")]).await;
                assert!(en_b.is_hit());
                assert_eq!(en_b.body, en.body);
                let fr = get_with(&url, &[("accept-language", "fr"), ("authorization", "a")]).await;
                assert!(!fr.is_hit());
                assert_eq!(fr.header("x-lang").as_deref(), Some("fr"));
                assert_eq!(runs.get(), 2);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn max_body_argument() {
                let (base, runs) = start().await;
                for _ in 0..2 {
                    let got = fetch(&format!("{base}/small")).await;
                    assert_eq!(got.cache_status(), "cached-kit; fwd=miss; detail=too-large");
                    assert!(got.text().ends_with("and some more bytes"));
                }
                assert_eq!(runs.get(), 2);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn whole_request_extractor_and_head() {
                let (base, runs) = start().await;
                let head = send(client().head(format!("{base}/request"))).await;
                assert!(head.is_stored(), "{}", head.cache_status());
                assert!(head.body.is_empty());
                let get = fetch(&format!("{base}/request")).await;
                assert!(get.is_hit());
                assert_eq!(
                    get.text(),
                    "run=1 GET",
                    "the handler ran as the GET a HEAD shares"
                );
                assert_eq!(runs.get(), 1);
            }
        }
    };
}

view_tests!(memory_view_tests, memory_views, memory_cache());
#[cfg(feature = "redis")]
view_tests!(redis_view_tests, redis_views, redis_cache());
