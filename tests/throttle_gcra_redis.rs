//! GCRA throttles on Redis over HTTP (SPEC 14): a real axum app on a loopback port, a
//! real HTTP client, a real `redis-server`. `ThrottleLayer` and `#[throttle]` with
//! `algorithm = "gcra"` admit the burst, then answer 429 with the wait on the server's
//! clock; app instances sharing one Redis share each client's bucket.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use cached_kit::redis::throttle::RedisThrottleStore;
use cached_kit::throttle;
use cached_kit::throttle::{Throttle, ThrottleLayer, ThrottleStore};
use cached_testing::http::{client, gcra, header, header_u64, serve_with_connect_info as serve};
use cached_testing::RedisServer;
use reqwest::StatusCode;

fn store(server: &RedisServer) -> RedisThrottleStore {
    RedisThrottleStore::from_url(&server.url())
        .expect("redis url")
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
}

fn app(layer: ThrottleLayer) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer)
}

async fn status(client: &reqwest::Client, url: &str) -> StatusCode {
    client.get(url).send().await.expect("request").status()
}

// The scenarios the memory store runs too (`tests/throttle.rs`), on Redis.

#[tokio::test]
async fn a_gcra_layer_on_redis_admits_the_burst_then_answers_429_with_the_wait() {
    let server = RedisServer::start();
    gcra::admits_the_burst_then_refuses_with_the_exact_wait(store(&server).key_prefix("app")).await;
    // The client's state in Redis: one string, expiring with its bucket (30 s ahead).
    let key = "app:throttle:anon:gcra:6/minute:3:ip:127.0.0.1";
    assert_eq!(server.cli(&["TYPE", key]).trim(), "string");
    let ttl: i64 = server.cli(&["PTTL", key]).trim().parse().expect("PTTL");
    assert!((20_000..=30_000).contains(&ttl), "PTTL {ttl}");
}

#[tokio::test]
async fn a_gcra_layer_on_redis_refills_one_request_per_interval() {
    let server = RedisServer::start();
    gcra::refills_one_request_per_interval(store(&server)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_app_instances_sharing_one_redis_admit_exactly_the_burst_in_total() {
    let server = RedisServer::start();
    // Two instances: separate stores, separate connections, one Redis.
    let mut urls = Vec::new();
    for _ in 0..2 {
        let layer = ThrottleLayer::new()
            .store(store(&server))
            .throttle(Throttle::anon("10/hour").expect("rate").gcra(5));
        urls.push(serve(app(layer)).await);
    }
    let client = client();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (client, url) = (client.clone(), urls[i % 2].clone());
        tasks.spawn(async move { client.get(&url).send().await.expect("request") });
    }
    let (mut ok, mut throttled) = (0, 0);
    while let Some(res) = tasks.join_next().await {
        let res = res.expect("task");
        match res.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                // One every 6 minutes: the next fits about 360 s after the first.
                let wait = header_u64(&res, "retry-after");
                assert!((350..=360).contains(&wait), "Retry-After {wait}");
                throttled += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, throttled), (5, 195));
}

#[tokio::test]
async fn a_request_another_throttle_refuses_gives_its_gcra_admission_back() {
    let server = RedisServer::start();
    let store: Arc<dyn ThrottleStore> = Arc::new(store(&server));
    let bursty = || {
        Throttle::scoped("bursty", "6/minute")
            .expect("rate")
            .gcra(2)
    };
    let strict = ThrottleLayer::new()
        .shared_store(Arc::clone(&store))
        .throttle(bursty())
        .throttle(Throttle::scoped("strict", "1/minute").expect("rate"));
    let only_bursty = ThrottleLayer::new().shared_store(store).throttle(bursty());
    let strict_url = serve(app(strict)).await;
    let bursty_url = serve(app(only_bursty)).await;
    let client = client();
    assert_eq!(status(&client, &strict_url).await, StatusCode::OK);
    // `strict` refuses these; `bursty` admitted each, then gave it back in Redis.
    for _ in 0..5 {
        assert_eq!(
            status(&client, &strict_url).await,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    // `bursty` counted only the one admitted request: one more fits, then it is full.
    assert_eq!(status(&client, &bursty_url).await, StatusCode::OK);
    assert_eq!(
        status(&client, &bursty_url).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[throttle(rate = "6/minute", scope = "redis-gcra", algorithm = "gcra", burst = 2)]
async fn bursty() -> &'static str {
    "ok"
}

#[tokio::test]
async fn a_gcra_attribute_on_the_default_redis_store_admits_the_burst_then_429() {
    // The only test of this file that uses the process-wide default store.
    let server = RedisServer::start();
    throttle::set_default_store(store(&server).key_prefix("attr"));
    let url = serve(Router::new().route("/", get(bursty))).await;
    let client = client();
    assert_eq!(status(&client, &url).await, StatusCode::OK);
    assert_eq!(status(&client, &url).await, StatusCode::OK);
    let res = client.get(&url).send().await.expect("request");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header_u64(&res, "retry-after"), 10);
    assert_eq!(
        header(&res, "ratelimit-policy").as_deref(),
        Some("6;w=60;burst=2")
    );
    // The bucket lives in Redis, not in this process.
    assert_eq!(
        server
            .cli(&[
                "EXISTS",
                "attr:throttle:redis-gcra:gcra:6/minute:2:ip:127.0.0.1"
            ])
            .trim(),
        "1"
    );
}
