//! Faults with a real redis-server: down at start-up, killed under load, paused with
//! SIGSTOP. Cached calls always return the function's value, the circuit breaker stops
//! calling Redis while it is down, and the cache recovers by itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cached_core::{Cache, CacheError};
use cached_redis::{BreakerState, RedisBackend};
use cached_testing::RedisServer;

const TTL: Duration = Duration::from_secs(60);
const THRESHOLD: u64 = 3;

fn backend_for(url: &str) -> Arc<RedisBackend> {
    let url = format!(
        "{url}?connect_timeout=200&response_timeout=200&breaker_threshold={THRESHOLD}&breaker_cooldown=300"
    );
    Arc::new(RedisBackend::from_url(&url).expect("a valid Redis URL"))
}

/// Waits (at most 15 s) until the cache stores and reads again.
async fn wait_for_recovery(cache: &Cache) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ok = cache.set("probe", &1u8, TTL).await.is_ok()
            && matches!(cache.get::<u8>("probe").await, Ok(Some(1)));
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the cache did not recover after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn redis_down_at_start_up_is_not_fatal_and_recovers_without_restart() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();

    // Building the cache (from a URL, as at start-up) does not connect.
    let backend = backend_for(&url);
    let cache = Cache::builder_arc(backend.clone())
        .key_prefix("down")
        .build();

    let runs = AtomicUsize::new(0);
    for i in 0..50u64 {
        let key = format!("k{}", i % 5);
        let v = cache
            .get_or_set_with(&key, TTL, || async {
                runs.fetch_add(1, Ordering::Relaxed);
                i * 2
            })
            .await;
        assert_eq!(v, i * 2, "a cached call returns the function's value");
    }
    // Nothing could be cached: every call ran its body.
    assert_eq!(runs.load(Ordering::Relaxed), 50);
    let m = backend.metrics();
    assert_eq!(m.breaker, BreakerState::Open);
    assert!(m.failures >= THRESHOLD, "{m:?}");
    // 50 calls are 100 backend operations; after the breaker opened, almost none of
    // them went to the network.
    assert!(m.calls <= THRESHOLD + 3, "{m:?}");
    assert!(m.rejected >= 90, "{m:?}");
    assert!(cache.stats().errors >= 90);

    server.restart();
    // Once the cool-down (300 ms, waited with a margin) is over, the very first call is
    // the probe, and it succeeds: a stale connection failure is retried within the probe.
    tokio::time::sleep(Duration::from_millis(700)).await;
    cache
        .set("back", &1u8, TTL)
        .await
        .expect("the first call after the cool-down reaches the restarted Redis");
    assert_eq!(backend.breaker_state(), BreakerState::Closed);

    // Cached again: the second call is a hit.
    let runs = AtomicUsize::new(0);
    for _ in 0..2 {
        let v = cache
            .get_or_set_with("after", TTL, || async {
                runs.fetch_add(1, Ordering::Relaxed);
                7u32
            })
            .await;
        assert_eq!(v, 7);
    }
    assert_eq!(runs.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_never_breaks_a_call() {
    let mut server = RedisServer::start();
    let backend = backend_for(&server.url());
    let cache = Cache::builder_arc(backend.clone())
        .key_prefix("load")
        .build();
    let calls = Arc::new(AtomicUsize::new(0));

    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let cache = cache.clone();
        let calls = calls.clone();
        tasks.push(tokio::spawn(async move {
            // Bounded: 150 calls per task, about 2 ms apart.
            for i in 0..150u64 {
                let k = (t * 7 + i) % 20;
                let v = cache
                    .get_or_set_with(&format!("k{k}"), TTL, || async move { k * 10 })
                    .await;
                assert_eq!(v, k * 10);
                calls.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.restart();
    for task in tasks {
        task.await.expect("no cached call panicked");
    }
    // After the cool-down (300 ms, waited with a margin) the first call is the probe,
    // and it reaches the restarted Redis although the connection's last attempt failed.
    tokio::time::sleep(Duration::from_millis(700)).await;
    cache
        .set("back", &1u8, TTL)
        .await
        .expect("the first call after the cool-down reaches the restarted Redis");
    assert_eq!(calls.load(Ordering::Relaxed), 8 * 150);
    let m = backend.metrics();
    assert!(m.failures >= 1, "the kill was noticed: {m:?}");
    assert!(m.breaker_opened >= 1, "{m:?}");

    wait_for_recovery(&cache).await;
    let v = cache.get_or_set_with("k3", TTL, || async { 30u64 }).await;
    assert_eq!(v, 30);
    assert_eq!(cache.get::<u64>("k3").await.expect("get"), Some(30));
}

#[tokio::test]
async fn a_paused_redis_times_out_then_the_breaker_fails_fast() {
    let server = RedisServer::start();
    let backend = backend_for(&server.url());
    let cache = Cache::builder_arc(backend.clone())
        .key_prefix("paused")
        .build();
    cache
        .set("warm", &"kept".to_string(), TTL)
        .await
        .expect("set");

    server.pause();
    let (mut timeouts, mut fast, mut other) = (0, 0, 0);
    for _ in 0..30 {
        match cache.get::<String>("warm").await {
            Err(CacheError::Timeout { .. }) => timeouts += 1,
            Err(CacheError::Backend { message, .. }) if message.contains("circuit breaker") => {
                fast += 1
            }
            r => {
                other += 1;
                eprintln!("unexpected: {r:?}");
            }
        }
    }
    assert_eq!(other, 0);
    assert!(timeouts >= 1, "calls to a paused Redis time out");
    // Only the calls until the breaker opened (and perhaps a probe) paid the timeout.
    assert!(timeouts <= THRESHOLD as usize + 1, "timeouts: {timeouts}");
    assert!(fast >= 30 - THRESHOLD as usize - 1, "fast: {fast}");
    assert_eq!(backend.breaker_state(), BreakerState::Open);

    // A memoized call still answers with the function's value.
    let v = cache.get_or_set_with("fresh", TTL, || async { 5u8 }).await;
    assert_eq!(v, 5);

    server.resume();
    tokio::time::sleep(Duration::from_millis(700)).await;
    cache
        .set("back", &1u8, TTL)
        .await
        .expect("the first call after the cool-down reaches the resumed Redis");
    // Redis kept its data through the pause.
    assert_eq!(
        cache.get::<String>("warm").await.expect("get").as_deref(),
        Some("kept")
    );
    assert_eq!(backend.breaker_state(), BreakerState::Closed);
}
