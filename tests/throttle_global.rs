//! The process-wide throttle settings that `#[throttle]` uses (a handler has no layer
//! to configure): the refusal response and the client address. Set once for this
//! binary; every test here expects both. Also: what refusals log, and at which level.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use cached_kit::throttle;
use cached_kit::throttle::{
    set_client_ip, set_refusal_response, ClientIp, MemoryThrottleStore, ProxyHeader, Refusal,
    Throttle, ThrottleLayer,
};
use cached_testing::http::{client, serve_with_connect_info};
use reqwest::StatusCode;

/// The tests of this binary run one at a time: the log test installs a thread-local
/// subscriber, and `tracing` caches whether a log line is enabled per call site, so a
/// test logging on another thread at the same moment could leave that line disabled.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

fn problem_details(refusal: &Refusal) -> Response {
    let body = serde_json::json!({
        "type": "https://example.com/problems/throttled",
        "title": "Too many requests",
        "status": 429,
        "scope": refusal.scope.name(),
        "retry_after": refusal.retry_after_secs(),
    });
    let mut response = (
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response();
    refusal.set_headers(response.headers_mut());
    response
}

/// The app's start-up: behind a proxy on this machine that writes RFC 7239
/// `Forwarded`, refusals as problem details.
fn configure() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        set_refusal_response(problem_details);
        set_client_ip(
            ClientIp::new()
                .trusted_networks(["127.0.0.1", "::1"])
                .expect("networks")
                .header(ProxyHeader::Forwarded),
        );
    });
}

#[throttle(rate = "1/minute", scope = "global-json")]
async fn limited() -> &'static str {
    "ok"
}

async fn get_for(client: &reqwest::Client, url: &str, client_addr: &str) -> reqwest::Response {
    client
        .get(url)
        .header("forwarded", format!("for={client_addr};proto=http"))
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn a_throttle_attribute_uses_the_global_refusal_response_and_client_address() {
    let _serial = one_at_a_time().await;
    configure();
    let url = format!(
        "{}/limited",
        serve_with_connect_info(Router::new().route("/limited", get(limited))).await
    );
    let client = client();
    assert_eq!(
        get_for(&client, &url, "203.0.113.1").await.status(),
        StatusCode::OK
    );
    let res = get_for(&client, &url, "203.0.113.1").await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(res.headers()["ratelimit-policy"], "1;w=60");
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    let body: serde_json::Value = res.json().await.expect("JSON");
    assert_eq!(body["scope"], "global-json");
    assert_eq!(body["retry_after"], retry_after);
    // Another client behind the same proxy has its own budget.
    assert_eq!(
        get_for(&client, &url, "203.0.113.2").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_layers_own_refusal_response_wins_over_the_global_one() {
    let _serial = one_at_a_time().await;
    configure();
    let own = ThrottleLayer::new()
        .store(MemoryThrottleStore::default())
        .throttle(Throttle::anon("1/minute").expect("rate"))
        .refusal_response(|r: &Refusal| {
            (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                format!("own: {}", r.scope.name()),
            )
                .into_response()
        });
    let global = ThrottleLayer::new()
        .store(MemoryThrottleStore::default())
        .throttle(Throttle::anon("1/minute").expect("rate"));
    let app = Router::new()
        .route("/own", get(|| async { "ok" }).layer(own))
        .route("/global", get(|| async { "ok" }).layer(global));
    let url = serve_with_connect_info(app).await;
    let client = client();
    for path in ["own", "global"] {
        let url = format!("{url}/{path}");
        assert_eq!(
            get_for(&client, &url, "198.51.100.1").await.status(),
            StatusCode::OK
        );
    }
    let own = get_for(&client, &format!("{url}/own"), "198.51.100.1").await;
    assert_eq!(own.text().await.expect("body"), "own: anon");
    let global = get_for(&client, &format!("{url}/global"), "198.51.100.1").await;
    assert_eq!(global.headers()["content-type"], "application/problem+json");
}

/// Collects what a subscriber writes.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

/// Runs `f` with `logs` collecting this thread's `cached_core` events at `level`.
fn subscriber(logs: &Logs, level: &str) -> impl tracing::Subscriber + Send + Sync {
    let logs = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
            "cached_core={level}"
        )))
        .with_writer(move || logs.clone())
        .with_ansi(false)
        .finish()
}

// One thread: the server, the client and the thread-local subscriber share it.
#[tokio::test(flavor = "current_thread")]
async fn refusals_are_logged_at_debug_with_the_scope_and_the_client_key_only_at_trace() {
    let _serial = one_at_a_time().await;
    configure();
    let layer = ThrottleLayer::new()
        .store(MemoryThrottleStore::default())
        .throttle(Throttle::scoped("logged", "1/minute").expect("rate"));
    let url =
        serve_with_connect_info(Router::new().route("/", get(|| async { "ok" }).layer(layer)))
            .await;
    let client = client();

    let debug = Logs::default();
    {
        let _guard = tracing::subscriber::set_default(subscriber(&debug, "debug"));
        assert_eq!(
            get_for(&client, &url, "192.0.2.77").await.status(),
            StatusCode::OK
        );
        assert_eq!(
            get_for(&client, &url, "192.0.2.77").await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let debug = debug.text();
    assert!(debug.contains("DEBUG"), "{debug}");
    assert!(debug.contains("throttle refused a request"), "{debug}");
    assert!(debug.contains("scope=logged"), "{debug}");
    assert!(
        !debug.contains("192.0.2.77"),
        "a client key above TRACE: {debug}"
    );

    let trace = Logs::default();
    {
        let _guard = tracing::subscriber::set_default(subscriber(&trace, "trace"));
        assert_eq!(
            get_for(&client, &url, "192.0.2.77").await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let trace = trace.text();
    assert!(
        trace.contains("TRACE") && trace.contains("key=throttle:logged:1/minute:ip:192.0.2.77"),
        "{trace}"
    );
}
