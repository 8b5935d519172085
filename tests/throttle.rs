//! Throttling end to end: a real axum app on a loopback port, a real HTTP client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::middleware::{self};
use axum::routing::get;
use axum::Router;
use cached_kit::throttle::{
    ClientIp, Decision, MemoryThrottleStore, ProxyHeader, Rate, Refusal, Throttle, ThrottleLayer,
    ThrottleStore,
};
use cached_kit::CacheError;
use cached_testing::http::{
    bearer_identity, client, gcra, header, header_u64, serve_with_connect_info,
};
use reqwest::StatusCode;

fn app(layer: ThrottleLayer) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer)
        .layer(middleware::from_fn(bearer_identity))
}

async fn get_status(client: &reqwest::Client, url: &str, xff: Option<&str>) -> StatusCode {
    let mut req = client.get(url);
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.expect("request").status()
}

async fn get_with(client: &reqwest::Client, url: &str, header: &str, value: &str) -> StatusCode {
    client
        .get(url)
        .header(header, value)
        .send()
        .await
        .expect("request")
        .status()
}

/// Sends `n` requests at once, spread over the given base URLs; counts 200s and 429s.
async fn burst(urls: &[String], n: usize) -> (usize, usize) {
    let client = client();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (client, url) = (client.clone(), urls[i % urls.len()].clone());
        tasks.spawn(async move { client.get(&url).send().await.expect("request").status() });
    }
    let (mut ok, mut throttled) = (0, 0);
    while let Some(status) = tasks.join_next().await {
        match status.expect("task") {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    (ok, throttled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_requests_against_5_per_minute_admit_exactly_5() {
    let layer = ThrottleLayer::new()
        .store(MemoryThrottleStore::default())
        .throttle(Throttle::anon("5/minute").expect("rate"));
    let url = serve_with_connect_info(app(layer)).await;
    assert_eq!(burst(&[url], 200).await, (5, 195));
}

#[tokio::test]
async fn admitted_responses_count_down_and_refusals_say_how_long_to_wait() {
    let layer = ThrottleLayer::new()
        .store(MemoryThrottleStore::default())
        .throttle(Throttle::anon("3/10s").expect("rate"));
    let url = serve_with_connect_info(app(layer)).await;
    let client = client();
    let first = Instant::now();
    for remaining in [2, 1, 0] {
        let res = client.get(&url).send().await.expect("request");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header_u64(&res, "ratelimit-limit"), 3);
        assert_eq!(header_u64(&res, "ratelimit-remaining"), remaining);
        assert_eq!(header(&res, "ratelimit-policy").as_deref(), Some("3;w=10"));
        assert!((1..=10).contains(&header_u64(&res, "ratelimit-reset")));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let res = client.get(&url).send().await.expect("request");
    let elapsed = first.elapsed().as_secs_f64();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = header_u64(&res, "retry-after");
    let expected = 10.0 - elapsed; // the first request leaves the window at first + 10 s
    assert!(
        (retry_after as f64 - expected).abs() <= 1.0,
        "Retry-After {retry_after}, expected about {expected:.2}"
    );
    assert_eq!(header_u64(&res, "ratelimit-reset"), retry_after);
    assert_eq!(header_u64(&res, "ratelimit-remaining"), 0);
    assert_eq!(header_u64(&res, "ratelimit-limit"), 3);
    let body = res.text().await.expect("body");
    assert!(body.contains(&format!("{retry_after} seconds")), "{body}");
}

#[tokio::test]
async fn refused_requests_are_not_counted_and_the_window_slides() {
    let layer = ThrottleLayer::new()
        .store(MemoryThrottleStore::default())
        .throttle(Throttle::anon("2/3s").expect("rate"));
    let url = serve_with_connect_info(app(layer)).await;
    let client = client();
    let start = Instant::now();
    assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
    assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
    // Keep knocking while the window is full; none of these may count.
    while start.elapsed() < Duration::from_millis(2_000) {
        assert_eq!(
            get_status(&client, &url, None).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The two admitted requests leave the window at start + 3 s (plus their latency).
    tokio::time::sleep_until((start + Duration::from_millis(3_500)).into()).await;
    assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
    assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
    assert_eq!(
        get_status(&client, &url, None).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn spoofed_forwarded_for_does_not_change_the_key_by_default() {
    let layer = ThrottleLayer::new()
        .store(MemoryThrottleStore::default())
        .throttle(Throttle::anon("1/minute").expect("rate"));
    let url = serve_with_connect_info(app(layer)).await;
    let client = client();
    assert_eq!(
        get_status(&client, &url, Some("1.1.1.1")).await,
        StatusCode::OK
    );
    for spoof in ["2.2.2.2", "3.3.3.3, 4.4.4.4", "::1"] {
        assert_eq!(
            get_status(&client, &url, Some(spoof)).await,
            StatusCode::TOO_MANY_REQUESTS,
            "X-Forwarded-For {spoof} escaped the throttle"
        );
    }
    assert_eq!(
        get_status(&client, &url, None).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn forwarded_for_keys_clients_with_trusted_proxies() {
    let layer = ThrottleLayer::new()
        .store(MemoryThrottleStore::default())
        .trusted_proxies(1)
        .throttle(Throttle::anon("1/minute").expect("rate"));
    let url = serve_with_connect_info(app(layer)).await;
    let client = client();
    assert_eq!(
        get_status(&client, &url, Some("1.1.1.1")).await,
        StatusCode::OK
    );
    assert_eq!(
        get_status(&client, &url, Some("2.2.2.2")).await,
        StatusCode::OK
    );
    assert_eq!(
        get_status(&client, &url, Some("1.1.1.1")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // With one trusted proxy the last hop is the client; what the client wrote before
    // it is ignored.
    assert_eq!(
        get_status(&client, &url, Some("9.9.9.9, 2.2.2.2")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        get_status(&client, &url, Some("2.2.2.2, 5.5.5.5")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn users_are_keyed_by_identity_and_anon_throttles_skip_them() {
    let layer = ThrottleLayer::new()
        .store(MemoryThrottleStore::default())
        .throttle(Throttle::user("1/minute").expect("rate"))
        .throttle(Throttle::anon("2/minute").expect("rate"));
    let url = serve_with_connect_info(app(layer)).await;
    let client = client();
    let as_user = |user: &str| {
        client
            .get(&url)
            .header("authorization", format!("Bearer {user}"))
            .send()
    };
    assert_eq!(
        as_user("alice").await.expect("request").status(),
        StatusCode::OK
    );
    assert_eq!(
        as_user("alice").await.expect("request").status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        as_user("bob").await.expect("request").status(),
        StatusCode::OK
    );
    // Anonymous requests from the same IP have their own budget: the user throttle's
    // 1/minute per IP is the tighter one.
    assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
    assert_eq!(
        get_status(&client, &url, None).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn several_throttles_are_all_evaluated_and_the_longest_wait_wins() {
    let layer = ThrottleLayer::new()
        .store(MemoryThrottleStore::default())
        .throttle(Throttle::scoped("short", "1/10s").expect("rate"))
        .throttle(Throttle::scoped("long", "1/minute").expect("rate"))
        .throttle(Throttle::scoped("loose", "100/minute").expect("rate"));
    let url = serve_with_connect_info(app(layer)).await;
    let client = client();
    assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
    let res = client.get(&url).send().await.expect("request");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = header_u64(&res, "retry-after");
    assert!(
        (59..=60).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_eq!(header(&res, "ratelimit-policy").as_deref(), Some("1;w=60"));
}

#[tokio::test]
async fn a_request_one_throttle_refuses_counts_in_no_other() {
    let store: Arc<dyn ThrottleStore> = Arc::new(MemoryThrottleStore::default());
    let shared = Throttle::scoped("shared", "3/minute").expect("rate");
    let strict = ThrottleLayer::new()
        .shared_store(Arc::clone(&store))
        .throttle(shared.clone())
        .throttle(Throttle::scoped("strict", "1/minute").expect("rate"));
    let only_shared = ThrottleLayer::new().shared_store(store).throttle(shared);
    let strict_url = serve_with_connect_info(app(strict)).await;
    let shared_url = serve_with_connect_info(app(only_shared)).await;
    let client = client();
    assert_eq!(get_status(&client, &strict_url, None).await, StatusCode::OK);
    for _ in 0..5 {
        assert_eq!(
            get_status(&client, &strict_url, None).await,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    // `shared` counted only the one admitted request: two more fit, then it is full.
    assert_eq!(get_status(&client, &shared_url, None).await, StatusCode::OK);
    assert_eq!(get_status(&client, &shared_url, None).await, StatusCode::OK);
    assert_eq!(
        get_status(&client, &shared_url, None).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn gcra_admits_the_burst_then_refuses_with_the_exact_wait() {
    gcra::admits_the_burst_then_refuses_with_the_exact_wait(MemoryThrottleStore::default()).await;
}

#[tokio::test]
async fn gcra_refills_one_request_per_interval() {
    gcra::refills_one_request_per_interval(MemoryThrottleStore::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gcra_admits_exactly_the_burst_under_concurrency() {
    let layer = ThrottleLayer::new()
        .store(MemoryThrottleStore::default())
        .throttle(Throttle::anon("10/hour").expect("rate").gcra(5));
    let url = serve_with_connect_info(app(layer)).await;
    assert_eq!(burst(&[url], 200).await, (5, 195));
}

/// A store with sliding logs only (the trait's default GCRA methods), as a store of
/// another crate may be.
struct LogsOnly(MemoryThrottleStore);

#[async_trait::async_trait]
impl ThrottleStore for LogsOnly {
    fn name(&self) -> &'static str {
        "logs-only"
    }
    async fn check(&self, key: &str, rate: Rate) -> Result<Decision, CacheError> {
        self.0.check(key, rate).await
    }
    async fn undo(&self, key: &str, decision: &Decision) -> Result<(), CacheError> {
        self.0.undo(key, decision).await
    }
}

#[tokio::test]
async fn gcra_on_a_store_without_it_is_refused_as_misconfigured_not_failed_open() {
    let layer = ThrottleLayer::new()
        .store(LogsOnly(MemoryThrottleStore::default()))
        .throttle(Throttle::anon("100/minute").expect("rate").gcra(10));
    let url = serve_with_connect_info(app(layer)).await;
    let client = client();
    for _ in 0..3 {
        let res = client.get(&url).send().await.expect("request");
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(res.text().await.expect("body").contains("misconfigured"));
    }
    // The sliding log on the same store works.
    let layer = ThrottleLayer::new()
        .store(LogsOnly(MemoryThrottleStore::default()))
        .throttle(Throttle::anon("1/minute").expect("rate"));
    let url = serve_with_connect_info(app(layer)).await;
    assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
    assert_eq!(
        get_status(&client, &url, None).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// RFC 9457 problem details, with the standard headers kept.
fn problem_details(refusal: &Refusal) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = serde_json::json!({
        "type": "https://example.com/problems/throttled",
        "title": "Too many requests",
        "status": 429,
        "detail": format!("Try again in {} seconds.", refusal.retry_after_secs()),
        "scope": refusal.scope.name(),
        "limit": refusal.limit,
        "remaining": refusal.remaining,
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

#[tokio::test]
async fn the_refusal_response_is_the_applications_to_shape() {
    let layer = ThrottleLayer::new()
        .store(MemoryThrottleStore::default())
        .throttle(Throttle::scoped("uploads", "2/minute").expect("rate"))
        .refusal_response(problem_details);
    let url = serve_with_connect_info(app(layer)).await;
    let client = client();
    assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
    assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
    let res = client.get(&url).send().await.expect("request");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&res, "content-type").as_deref(),
        Some("application/problem+json")
    );
    let retry_after = header_u64(&res, "retry-after");
    assert!(
        (59..=60).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_eq!(header(&res, "ratelimit-policy").as_deref(), Some("2;w=60"));
    let body: serde_json::Value = res.json().await.expect("a JSON body");
    assert_eq!(body["status"], 429);
    assert_eq!(body["scope"], "uploads");
    assert_eq!(body["limit"], 2);
    assert_eq!(body["remaining"], 0);
    assert_eq!(body["retry_after"], retry_after);
}

#[tokio::test]
async fn trusted_networks_key_by_the_first_untrusted_address_from_the_right() {
    // The test client connects from 127.0.0.1: a trusted proxy here.
    let layer = ThrottleLayer::new()
        .store(MemoryThrottleStore::default())
        .client_ip(
            ClientIp::new()
                .trusted_networks(["127.0.0.0/8", "10.0.0.0/8"])
                .expect("networks"),
        )
        .throttle(Throttle::anon("1/minute").expect("rate"));
    let url = serve_with_connect_info(app(layer)).await;
    let client = client();
    let xff = |v: &'static str| get_status(&client, &url, Some(v));
    assert_eq!(xff("203.0.113.9, 10.0.0.7").await, StatusCode::OK);
    // Whatever the client writes left of its address, it is the same client.
    assert_eq!(
        xff("1.1.1.1, 203.0.113.9, 10.0.0.8").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(xff("203.0.113.10").await, StatusCode::OK);
    // Only trusted proxies: the leftmost, here 10.0.0.9.
    assert_eq!(xff("10.0.0.9").await, StatusCode::OK);
}

#[tokio::test]
async fn a_forwarded_header_from_an_untrusted_peer_is_ignored() {
    let layer = ThrottleLayer::new()
        .store(MemoryThrottleStore::default())
        .client_ip(
            ClientIp::new()
                .trusted_networks(["10.0.0.0/8"])
                .expect("networks"),
        )
        .throttle(Throttle::anon("1/minute").expect("rate"));
    let url = serve_with_connect_info(app(layer)).await;
    let client = client();
    // 127.0.0.1 is not a trusted proxy: every header names the peer.
    assert_eq!(
        get_status(&client, &url, Some("1.1.1.1")).await,
        StatusCode::OK
    );
    for spoof in ["2.2.2.2", "10.0.0.1", "3.3.3.3, 10.0.0.1"] {
        assert_eq!(
            get_status(&client, &url, Some(spoof)).await,
            StatusCode::TOO_MANY_REQUESTS,
            "X-Forwarded-For {spoof} escaped the throttle"
        );
    }
}

#[tokio::test]
async fn rfc_7239_forwarded_ipv6_clients_count_per_64() {
    let layer = ThrottleLayer::new()
        .store(MemoryThrottleStore::default())
        .client_ip(
            ClientIp::new()
                .trusted_networks(["127.0.0.1"])
                .expect("networks")
                .header(ProxyHeader::Forwarded),
        )
        .throttle(Throttle::anon("1/minute").expect("rate"));
    let url = serve_with_connect_info(app(layer)).await;
    let client = client();
    let fwd = |v: &'static str| get_with(&client, &url, "forwarded", v);
    assert_eq!(
        fwd("for=\"[2001:db8:1:2::1]:4711\";proto=https").await,
        StatusCode::OK
    );
    // Another address of the same /64: the same client.
    assert_eq!(
        fwd("for=\"[2001:db8:1:2:ffff::9]\"").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(fwd("for=\"[2001:db8:1:3::1]\"").await, StatusCode::OK);
    // An obfuscated identifier is not a key: the request counts as the proxy's.
    assert_eq!(fwd("for=_hidden").await, StatusCode::OK);
    assert_eq!(fwd("for=_other").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(fwd("for=unknown").await, StatusCode::TOO_MANY_REQUESTS);
}

/// `#[throttle]` handlers: extractors of every kind still work, the check runs first.
mod attribute {
    use super::*;
    use axum::extract::{Path, State};
    use axum::routing::post;
    use cached_kit::throttle;

    #[derive(Clone)]
    struct Greeting(&'static str);

    #[throttle(rate = "5/minute", scope = "attr-burst")]
    async fn greet(State(g): State<Greeting>, Path(name): Path<String>, body: String) -> String {
        format!("{} {name}{body}", g.0)
    }

    #[throttle(rate = "1/10s", scope = "attr-short")]
    #[cached_kit::throttle(rate = "1/minute", scope = "attr-long")]
    async fn stacked() -> &'static str {
        "ok"
    }

    #[throttle(rate = "1/minute")]
    pub(crate) async fn per_user() -> Result<&'static str, StatusCode> {
        Ok("ok")
    }

    #[throttle(rate = "6/minute", scope = "attr-gcra", algorithm = "gcra", burst = 2)]
    async fn gcra() -> &'static str {
        "ok"
    }

    fn routes() -> Router {
        Router::new()
            .route("/greet/{name}", post(greet))
            .route("/stacked", get(stacked))
            .route("/user", get(per_user))
            .route("/gcra", get(gcra))
            .with_state(Greeting("hello"))
            .layer(middleware::from_fn(bearer_identity))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_throttled_handler_keeps_its_extractors_and_admits_exactly_5() {
        let url = serve_with_connect_info(routes()).await;
        let client = client();
        let res = client
            .post(format!("{url}/greet/ada"))
            .body("!")
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.text().await.expect("body"), "hello ada!");
        let (ok, throttled) = {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..200 {
                let (client, url) = (client.clone(), format!("{url}/greet/ada"));
                tasks.spawn(
                    async move { client.post(&url).body("!").send().await.expect("request") },
                );
            }
            let (mut ok, mut throttled) = (0, 0);
            while let Some(res) = tasks.join_next().await {
                let res = res.expect("task");
                match res.status() {
                    StatusCode::OK => ok += 1,
                    StatusCode::TOO_MANY_REQUESTS => {
                        let wait = header_u64(&res, "retry-after");
                        assert!((1..=60).contains(&wait), "Retry-After {wait}");
                        assert_eq!(header_u64(&res, "ratelimit-limit"), 5);
                        throttled += 1;
                    }
                    other => panic!("unexpected status {other}"),
                }
            }
            (ok, throttled)
        };
        assert_eq!(
            (ok, throttled),
            (4, 196),
            "5 in total with the first request"
        );
    }

    #[tokio::test]
    async fn stacked_attributes_are_all_evaluated_and_the_longest_wait_wins() {
        let url = format!("{}/stacked", serve_with_connect_info(routes()).await);
        let client = client();
        assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
        let res = client.get(&url).send().await.expect("request");
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after = header_u64(&res, "retry-after");
        assert!(
            (59..=60).contains(&retry_after),
            "Retry-After {retry_after}"
        );
    }

    #[tokio::test]
    async fn the_user_scope_keys_by_the_identity_extension() {
        let url = format!("{}/user", serve_with_connect_info(routes()).await);
        let client = client();
        let as_user = |user: &'static str| {
            client
                .get(&url)
                .header("authorization", format!("Bearer {user}"))
                .send()
        };
        assert_eq!(
            as_user("carol").await.expect("request").status(),
            StatusCode::OK
        );
        assert_eq!(
            as_user("carol").await.expect("request").status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            as_user("dave").await.expect("request").status(),
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn algorithm_gcra_admits_the_burst_then_waits_one_interval() {
        let url = format!("{}/gcra", serve_with_connect_info(routes()).await);
        let client = client();
        assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
        assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
        let res = client.get(&url).send().await.expect("request");
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header_u64(&res, "retry-after"), 10);
        assert_eq!(
            header(&res, "ratelimit-policy").as_deref(),
            Some("6;w=60;burst=2")
        );
    }

    #[test]
    fn throttles_of_reads_a_handlers_throttles_back() {
        use cached_kit::throttle::{throttles_of, Algorithm, Scope};
        let stacked = throttles_of(stacked);
        assert_eq!(stacked.len(), 2);
        assert_eq!(stacked[0].scope(), &Scope::named("attr-short"));
        assert_eq!(stacked[1].rate(), Some(Rate::new(1, 60)));
        let gcra = throttles_of(gcra);
        assert_eq!(
            gcra[0].algorithm(),
            Algorithm::Gcra {
                burst: std::num::NonZeroU32::new(2)
            }
        );
        assert_eq!(throttles_of(greet)[0].rate(), Some(Rate::new(5, 60)));
    }
}

/// The same throttles in Redis, against a real `redis-server` the test starts.
#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use cached_kit::redis::throttle::RedisThrottleStore;
    use cached_kit::redis::BreakerState;
    use cached_testing::RedisServer;

    fn store(server: &RedisServer) -> RedisThrottleStore {
        RedisThrottleStore::from_url(&server.url())
            .expect("redis url")
            .connect_timeout(Duration::from_millis(300))
            .response_timeout(Duration::from_millis(300))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_app_instances_sharing_one_redis_admit_exactly_5_in_total() {
        let server = RedisServer::start();
        // Two instances: separate stores, separate connections, one Redis.
        let mut urls = Vec::new();
        for _ in 0..2 {
            let layer = ThrottleLayer::new()
                .store(store(&server))
                .throttle(Throttle::anon("5/minute").expect("rate"));
            urls.push(serve_with_connect_info(app(layer)).await);
        }
        assert_eq!(burst(&urls, 200).await, (5, 195));

        // The log expires one period after its newest entry: idle clients leave nothing.
        let key = "throttle:anon:5/minute:ip:127.0.0.1";
        assert_eq!(server.cli(&["ZCARD", key]).trim(), "5");
        let ttl: i64 = server.cli(&["PTTL", key]).trim().parse().expect("PTTL");
        assert!((50_000..=60_000).contains(&ttl), "PTTL {ttl}");
    }

    #[tokio::test]
    async fn the_redis_window_slides_and_retry_after_uses_the_servers_clock() {
        let server = RedisServer::start();
        let layer = ThrottleLayer::new()
            .store(store(&server).key_prefix("app"))
            .throttle(Throttle::anon("2/3s").expect("rate"));
        let url = serve_with_connect_info(app(layer)).await;
        let client = client();
        let start = Instant::now();
        assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
        assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
        let res = client.get(&url).send().await.expect("request");
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after = header_u64(&res, "retry-after");
        let expected = 3.0 - start.elapsed().as_secs_f64();
        assert!(
            (retry_after as f64 - expected).abs() <= 1.0,
            "Retry-After {retry_after}, expected about {expected:.2}"
        );
        assert_eq!(
            server
                .cli(&["EXISTS", "app:throttle:anon:2/3s:ip:127.0.0.1"])
                .trim(),
            "1"
        );
        tokio::time::sleep_until((start + Duration::from_millis(3_500)).into()).await;
        assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
        assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
        assert_eq!(
            get_status(&client, &url, None).await,
            StatusCode::TOO_MANY_REQUESTS
        );
    }

    #[tokio::test]
    async fn a_paused_redis_trips_the_breaker_and_throttling_recovers_by_itself() {
        let server = RedisServer::start();
        let store = store(&server);
        let layer = ThrottleLayer::new()
            .store(store.clone())
            .throttle(Throttle::anon("1/minute").expect("rate"));
        let url = serve_with_connect_info(app(layer)).await;
        let client = client();
        assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
        assert_eq!(
            get_status(&client, &url, None).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        server.pause();
        // Unanswered checks time out and fail open; after five the breaker opens.
        for _ in 0..6 {
            assert_eq!(get_status(&client, &url, None).await, StatusCode::OK);
        }
        assert_eq!(store.breaker_state(), BreakerState::Open);
        server.resume();
        // No restart: once the cool-down ends a probe reaches Redis, whose log still
        // holds the first admission, and the client is throttled again.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = get_status(&client, &url, None).await;
        while status != StatusCode::TOO_MANY_REQUESTS && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            status = get_status(&client, &url, None).await;
        }
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(store.breaker_state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_stopped_redis_fails_open_by_default_and_closed_when_configured() {
        let mut server = RedisServer::start();
        let rate = || Throttle::anon("1/minute").expect("rate");
        let open = serve_with_connect_info(app(ThrottleLayer::new()
            .store(store(&server))
            .throttle(rate())))
        .await;
        let closed = serve_with_connect_info(app(ThrottleLayer::new()
            .store(store(&server).key_prefix("closed"))
            .fail_closed(true)
            .throttle(rate())))
        .await;
        let client = client();
        // While Redis runs both throttle.
        for url in [&open, &closed] {
            assert_eq!(get_status(&client, url, None).await, StatusCode::OK);
            assert_eq!(
                get_status(&client, url, None).await,
                StatusCode::TOO_MANY_REQUESTS
            );
        }
        server.kill();
        for _ in 0..3 {
            assert_eq!(get_status(&client, &open, None).await, StatusCode::OK);
            let res = client.get(&closed).send().await.expect("request");
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(header(&res, "retry-after").as_deref(), Some("1"));
        }
    }
}
