//! The HTTP side of the integration tests (feature `http`): an axum app served on
//! `127.0.0.1:0`, a real client to call it, and the bearer-token auth layer the
//! throttle tests put in front of a `ThrottleLayer`.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//!
//! # async fn demo() {
//! let base = cached_testing::http::serve(Router::new().route("/", get(|| async { "ok" }))).await;
//! let body = cached_testing::http::client()
//!     .get(format!("{base}/"))
//!     .send()
//!     .await
//!     .unwrap()
//!     .text()
//!     .await
//!     .unwrap();
//! assert_eq!(body, "ok");
//! # }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use cached_core::throttle::ThrottleIdentity;

/// Serves `app` on a free loopback port in a spawned task; returns its base URL
/// (`http://127.0.0.1:PORT`, no trailing slash). The server lives as long as the runtime.
pub async fn serve(app: Router) -> String {
    let listener = bind().await;
    let addr = listener.local_addr().expect("the listener's address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    format!("http://{addr}")
}

/// [`serve`], with the client's address available to the app
/// (`ConnectInfo<SocketAddr>`, which throttles key anonymous clients by).
pub async fn serve_with_connect_info(app: Router) -> String {
    let listener = bind().await;
    let addr = listener.local_addr().expect("the listener's address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    format!("http://{addr}")
}

async fn bind() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port")
}

/// The tests' client settings: no proxy (a loopback server is called directly, whatever
/// `HTTP_PROXY` says) and a 30 s timeout, so a hung server fails the test instead of
/// hanging it. For a test that needs one more setting:
///
/// ```no_run
/// let client = cached_testing::http::client_builder()
///     .pool_max_idle_per_host(0)
///     .build()
///     .unwrap();
/// ```
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
}

/// A client with [`client_builder`]'s settings.
pub fn client() -> reqwest::Client {
    client_builder().build().expect("an HTTP client")
}

/// The application's auth layer in the throttle tests: `Authorization: Bearer <name>` is
/// the user `<name>` (a [`ThrottleIdentity`] in the request's extensions); no such header
/// is an anonymous request.
///
/// ```no_run
/// use axum::{middleware, routing::get, Router};
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "ok" }))
///     .layer(middleware::from_fn(cached_testing::http::bearer_identity));
/// ```
pub async fn bearer_identity(mut req: Request, next: Next) -> Response {
    let user = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    if let Some(user) = user {
        req.extensions_mut().insert(ThrottleIdentity::new(user));
    }
    next.run(req).await
}

/// A response header as text, `None` when it is absent.
pub fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii header").to_owned())
}

/// A response header that must be present and a whole number.
pub fn header_u64(res: &reqwest::Response, name: &str) -> u64 {
    header(res, name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a whole number"))
}

/// The GCRA scenarios of the throttle tests, run over each store (memory in
/// `tests/throttle.rs`, Redis in `tests/throttle_gcra_redis.rs`): a `ThrottleLayer` with
/// one anonymous GCRA throttle on `store`, in front of a route that answers "ok".
pub mod gcra {
    use std::time::Duration;

    use axum::routing::get;
    use axum::Router;
    use cached_core::throttle::{Throttle, ThrottleLayer, ThrottleStore};
    use reqwest::StatusCode;

    use super::{client, header, header_u64, serve_with_connect_info};

    async fn serve(store: impl ThrottleStore, throttle: Throttle) -> String {
        let layer = ThrottleLayer::new().store(store).throttle(throttle);
        serve_with_connect_info(
            Router::new()
                .route("/", get(|| async { "ok" }))
                .layer(layer),
        )
        .await
    }

    /// 6 a minute (one every 10 s) with bursts of 3: three requests pass with the
    /// `RateLimit` headers counting down, the fourth is a 429 whose wait is exactly 10 s
    /// (10 s less the milliseconds since the burst began, rounded up).
    pub async fn admits_the_burst_then_refuses_with_the_exact_wait(store: impl ThrottleStore) {
        let throttle = Throttle::anon("6/minute").expect("rate").gcra(3);
        let url = serve(store, throttle).await;
        let client = client();
        for remaining in [2, 1, 0] {
            let res = client.get(&url).send().await.expect("request");
            assert_eq!(res.status(), StatusCode::OK, "the store does GCRA");
            assert_eq!(header_u64(&res, "ratelimit-limit"), 3);
            assert_eq!(header_u64(&res, "ratelimit-remaining"), remaining);
            assert_eq!(
                header(&res, "ratelimit-policy").as_deref(),
                Some("6;w=60;burst=3")
            );
        }
        let res = client.get(&url).send().await.expect("request");
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header_u64(&res, "retry-after"), 10);
        assert_eq!(header_u64(&res, "ratelimit-reset"), 10);
        assert_eq!(header_u64(&res, "ratelimit-remaining"), 0);
        assert_eq!(header_u64(&res, "ratelimit-limit"), 3);
    }

    /// 2 a second (one every 500 ms), no burst beyond one: admitted, refused with a
    /// 1 s wait, admitted again 600 ms later, then refused.
    pub async fn refills_one_request_per_interval(store: impl ThrottleStore) {
        let throttle = Throttle::anon("2/second").expect("rate").gcra(1);
        let url = serve(store, throttle).await;
        let client = client();
        let status = |client: &reqwest::Client| {
            let req = client.get(&url).send();
            async move { req.await.expect("request").status() }
        };
        assert_eq!(status(&client).await, StatusCode::OK);
        let res = client.get(&url).send().await.expect("request");
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header_u64(&res, "retry-after"), 1);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(status(&client).await, StatusCode::OK);
        assert_eq!(status(&client).await, StatusCode::TOO_MANY_REQUESTS);
    }
}
