//! Two real processes throttling through one real `redis-server` admit exactly N in
//! total: the sliding log (or the GCRA arrival time) lives in Redis, checked in one
//! atomic script on the server's clock, so no process can admit on a count the other
//! has not seen.
//!
//! The test binary re-runs itself as each child (`CACHED_KIT_CHILD` says so), like two
//! instances of one service. Each child serves its own app (a `ThrottleLayer` over its
//! own `RedisThrottleStore`) on a loopback port, says it is ready, waits for the go
//! signal in Redis, fires its requests at itself, and prints how many were admitted.

use std::process::Child;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use cached_kit::redis::throttle::RedisThrottleStore;
use cached_kit::throttle::{Throttle, ThrottleLayer};
use cached_testing::http::serve_with_connect_info;
use cached_testing::process::{spawn_test, stdout_of};
use cached_testing::RedisServer;
use reqwest::StatusCode;

const TEST: &str = "two_processes_sharing_one_redis_admit_exactly_n_in_total";
const RATE: &str = "7/minute";
const N: usize = 7;
const REQUESTS_PER_CHILD: usize = 100;
const GCRA_TEST: &str = "two_processes_sharing_one_redis_admit_exactly_the_gcra_burst_in_total";
/// One every 15 minutes, in bursts of 4: nothing refills while the test runs.
const GCRA_RATE: &str = "4/hour";
const GCRA_BURST: u32 = 4;

/// In a child: serve, report ready, wait for go, fire, print the counts.
async fn run_child() -> bool {
    let Ok(redis_url) = std::env::var("CACHED_KIT_CHILD_REDIS") else {
        return false;
    };
    let store = RedisThrottleStore::from_url(&redis_url).expect("redis url");
    let throttle = match std::env::var_os("CACHED_KIT_CHILD_GCRA") {
        Some(_) => Throttle::anon(GCRA_RATE).expect("rate").gcra(GCRA_BURST),
        None => Throttle::anon(RATE).expect("rate"),
    };
    let layer = ThrottleLayer::new().store(store).throttle(throttle);
    let url = serve_with_connect_info(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(layer),
    )
    .await;

    let redis = redis::Client::open(redis_url.as_str()).expect("redis client");
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis");
    let _: i64 = redis::cmd("INCR")
        .arg("ready")
        .query_async(&mut conn)
        .await
        .expect("INCR ready");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let go: Option<String> = redis::cmd("GET")
            .arg("go")
            .query_async(&mut conn)
            .await
            .expect("GET go");
        if go.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "no go signal");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..REQUESTS_PER_CHILD {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move { client.get(&url).send().await.expect("request").status() });
    }
    let (mut admitted, mut refused) = (0, 0);
    while let Some(status) = tasks.join_next().await {
        match status.expect("task") {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    println!("\nADMITTED={admitted} REFUSED={refused}");
    true
}

fn spawn_child(redis_url: &str, test: &str) -> Child {
    let mut env = vec![("CACHED_KIT_CHILD_REDIS", redis_url)];
    if test == GCRA_TEST {
        env.push(("CACHED_KIT_CHILD_GCRA", "1"));
    }
    spawn_test(test, &env)
}

/// `(admitted, refused)` from a child's output.
fn counts(child: Child) -> (usize, usize) {
    let out = child.wait_with_output().expect("wait for the child");
    let stdout = stdout_of(&out);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ADMITTED="))
        .unwrap_or_else(|| panic!("no ADMITTED line in:\n{stdout}"));
    let (admitted, refused) = line.split_once(" REFUSED=").expect("two counts");
    (
        admitted.parse().expect("a count"),
        refused.parse().expect("a count"),
    )
}

/// Starts two children running `test`, lets them fire together; their counts.
async fn race(server: &RedisServer, test: &str) -> ((usize, usize), (usize, usize)) {
    let a = spawn_child(&server.url(), test);
    let b = spawn_child(&server.url(), test);
    // Both children serve and poll before either fires.
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.cli(&["GET", "ready"]).trim() != "2" {
        assert!(Instant::now() < deadline, "the children did not get ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.cli(&["SET", "go", "1"]);
    (counts(a), counts(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sharing_one_redis_admit_exactly_n_in_total() {
    if run_child().await {
        return;
    }
    let server = RedisServer::start();
    let (a, b) = race(&server, TEST).await;
    assert_eq!(a.0 + b.0, N, "admitted in total: {a:?} + {b:?}");
    assert_eq!(a.0 + a.1 + b.0 + b.1, 2 * REQUESTS_PER_CHILD);
    // One log, shared: N entries.
    let key = format!("throttle:anon:{RATE}:ip:127.0.0.1");
    assert_eq!(server.cli(&["ZCARD", &key]).trim(), N.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sharing_one_redis_admit_exactly_the_gcra_burst_in_total() {
    if run_child().await {
        return;
    }
    let server = RedisServer::start();
    let (a, b) = race(&server, GCRA_TEST).await;
    // The burst, in total.
    assert_eq!(
        a.0 + b.0,
        GCRA_BURST as usize,
        "admitted in total: {a:?} + {b:?}"
    );
    assert_eq!(a.0 + a.1 + b.0 + b.1, 2 * REQUESTS_PER_CHILD);
    // One arrival time, shared: a single string.
    let key = format!("throttle:anon:gcra:{GCRA_RATE}:{GCRA_BURST}:ip:127.0.0.1");
    assert_eq!(server.cli(&["TYPE", &key]).trim(), "string");
}
