//! The response timeout of a single-server connection, with a real redis-server: it is
//! the connection's watchdog (a `PING` behind waiting requests every quarter of the
//! timeout), not a timer per request. What a user relies on: a request to a Redis that
//! stopped answering fails as a timeout, never much later than `response_timeout`; an
//! answer that is slow but within it is not cut; an idle connection is left alone; a
//! connection Redis closed is replaced before the next call needs it; and dropping the
//! backend closes its socket.
//!
//! Redis is made slow with `CLIENT PAUSE ... ALL` (in effect when `redis-cli` returns, so
//! nothing races) and stalled with `SIGSTOP`. Bounds are generous for a loaded machine (the upper one is 8× the timeout): they tell
//! a timeout from a hang, and assert no speed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cached_core::backend::{Backend, Value};
use cached_core::CacheError;
use cached_redis::{RedisBackend, RedisConfig};
use cached_testing::RedisServer;

/// A backend with `response_timeout` (ms) and a breaker that never opens, so every call
/// reaches Redis.
fn backend(server: &RedisServer, response_timeout: u64) -> Arc<RedisBackend> {
    let url = format!(
        "{}?connect_timeout=500&response_timeout={response_timeout}",
        server.url()
    );
    let config = RedisConfig::from_url(&url)
        .expect("a valid Redis URL")
        .breaker(1_000_000, Duration::from_millis(100));
    Arc::new(RedisBackend::new(config).expect("a backend"))
}

/// How many `PING`s the server has answered (from `INFO commandstats`).
fn pings(server: &RedisServer) -> u64 {
    let info = server.cli(&["INFO", "commandstats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("a count"))
}

/// Connected clients, the caller (`redis-cli`) included.
fn clients(server: &RedisServer) -> usize {
    server.cli(&["CLIENT", "LIST"]).lines().count()
}

/// Makes Redis hold every client's commands for `ms` milliseconds (`CLIENT PAUSE ... ALL`),
/// as a slow command or a busy server would: in effect when this returns, and the
/// answers come when it ends.
fn slow_redis(server: &RedisServer, ms: u64) {
    let ms = ms.to_string();
    assert_eq!(server.cli(&["CLIENT", "PAUSE", &ms, "ALL"]).trim(), "OK");
}

/// Waits (at most 5 s) until the PING count stops moving, and returns it.
async fn settled_pings(server: &RedisServer) -> u64 {
    let mut seen = pings(server);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = pings(server);
        if now == seen {
            break;
        }
        seen = now;
    }
    seen
}

async fn set(b: &RedisBackend, key: &str) {
    b.set(key, Value::Int(7), Some(Duration::from_secs(60)))
        .await
        .expect("Redis is up");
}

/// Whether a read found what [`set`] stored.
fn found(read: &Result<Option<Value>, CacheError>) -> bool {
    matches!(read, Ok(Some(Value::Int(7))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_waiting_on_a_paused_redis_fails_as_a_timeout_soon_after_the_timeout() {
    let server = RedisServer::start();
    let b = backend(&server, 200);
    set(&b, "rt:k").await;

    server.pause();
    let calls: Vec<_> = (0..32)
        .map(|_| {
            let b = Arc::clone(&b);
            tokio::spawn(async move {
                let started = Instant::now();
                let result = b.get("rt:k").await;
                (result, started.elapsed())
            })
        })
        .collect();
    let mut waited = Vec::new();
    for call in calls {
        let (result, elapsed) = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("a call to a paused Redis ends: it does not hang")
            .expect("the task");
        let err = result.expect_err("Redis is paused");
        assert!(
            matches!(err, CacheError::Timeout { millis: 200, .. }),
            "a call the watchdog gave up on is a timeout: {err:?}"
        );
        waited.push(elapsed);
    }
    let (least, most) = (waited.iter().min().unwrap(), waited.iter().max().unwrap());
    assert!(
        *least >= Duration::from_millis(195),
        "no call gave up before the response timeout: {waited:?}"
    );
    assert!(
        *most < Duration::from_millis(1600),
        "every call gave up soon after it (the bound is 250 ms): {waited:?}"
    );

    server.resume();
    let read = b.get("rt:k").await;
    assert!(
        found(&read),
        "a new connection once Redis answers: {read:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_slower_than_a_tick_but_within_the_timeout_is_not_cut() {
    let server = RedisServer::start();
    let b = backend(&server, 1000);
    set(&b, "rt:slow").await;

    // Redis answers nothing for 600 ms: two watchdog looks (every 250 ms) send their
    // `PING` behind the read, and both are answered in time.
    slow_redis(&server, 600);
    let started = Instant::now();
    let read = b.get("rt:slow").await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400),
        "the read waited for the pause: {waited:?}"
    );
    assert!(
        found(&read),
        "a slow answer within the response timeout: {read:?} after {waited:?}"
    );
    assert_eq!(b.metrics().failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_slower_than_the_timeout_fails_the_call_and_the_next_call_reconnects() {
    let server = RedisServer::start();
    let b = backend(&server, 200);
    set(&b, "rt:late").await;

    slow_redis(&server, 900);
    let err = b.get("rt:late").await.expect_err("Redis answers too late");
    assert!(matches!(err, CacheError::Timeout { .. }), "{err:?}");
    // Past the pause (a connect during it would wait for it too).
    tokio::time::sleep(Duration::from_millis(900)).await;
    let read = b.get("rt:late").await;
    assert!(found(&read), "Redis answers again: {read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_pings_behind_traffic_and_leaves_an_idle_connection_alone() {
    let server = RedisServer::start();
    // A look every 25 ms.
    let b = backend(&server, 100);
    set(&b, "rt:idle").await;
    // Let the look that follows the first call pass, and its `PING` land.
    let before = settled_pings(&server).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        pings(&server),
        before,
        "20 looks at an idle connection sent no PING"
    );

    // Traffic for about 300 ms (bounded in count too): a PING follows it.
    let until = Instant::now() + Duration::from_millis(300);
    for _ in 0..100_000 {
        if Instant::now() >= until {
            break;
        }
        b.get("rt:idle").await.expect("Redis is up");
    }
    assert!(
        settled_pings(&server).await > before,
        "the watchdog sent a PING behind the traffic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_redis_closed_is_replaced_before_the_next_call() {
    let server = RedisServer::start();
    let b = backend(&server, 100);
    set(&b, "rt:closed").await;

    // Redis closes every client connection (but `redis-cli`'s own): the backend's
    // is idle, so no call sees it go.
    server.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
    // The watchdog's next look (25 ms) finds its driver ended and forgets it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let read = b.get("rt:closed").await;
    assert!(
        found(&read),
        "the call after the close connects again: {read:?}"
    );
    assert_eq!(b.metrics().failures, 0, "{:?}", b.metrics());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_backend_closes_its_connection() {
    let server = RedisServer::start();
    let alone = clients(&server);
    let b = backend(&server, 100);
    set(&b, "rt:drop").await;
    assert_eq!(clients(&server), alone + 1, "the backend's connection");

    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while clients(&server) != alone {
        assert!(
            Instant::now() < deadline,
            "the dropped backend's connection was closed: {}",
            server.cli(&["CLIENT", "LIST"])
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
