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
