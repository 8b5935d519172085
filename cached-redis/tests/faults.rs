//! Outages with a real redis-server, the same scenarios against both fronts of the one
//! connection module (the cache backend and the throttle store): Redis down at start-up,
//! killed mid-run and restarted, paused with SIGSTOP. Every call degrades to a
//! classified error, the circuit breaker opens and then fails calls without touching the
//! network, and the front recovers by itself once Redis is back.
//!
//! Waits are generous margins around the configured cool-down; nothing here asserts a
//! speed. "Fails fast" is checked by the counters instead: a call the breaker rejects
//! never reaches the network, so it never counts as a call.

use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cached_core::backend::{Backend, Value};
use cached_core::throttle::{Rate, ThrottleStore};
use cached_core::{Cache, CacheError};
use cached_redis::throttle::RedisThrottleStore;
use cached_redis::RedisError;
use cached_redis::{BreakerOpen, BreakerState, RedisBackend, RedisConfig, RedisMetrics};
use cached_testing::RedisServer;

const THRESHOLD: u32 = 3;
const COOLDOWN: Duration = Duration::from_millis(1000);
/// A cool-down plus a margin for a loaded machine.
const AFTER_COOLDOWN: Duration = Duration::from_millis(1600);
const TTL: Duration = Duration::from_secs(60);

fn config(url: &str) -> RedisConfig {
    RedisConfig::from_url(&format!("{url}?connect_timeout=200&response_timeout=200"))
        .expect("a valid Redis URL")
        .breaker(THRESHOLD, COOLDOWN)
}

/// One front over a Redis connection, driven the same way by every scenario.
#[derive(Clone)]
enum Front {
    Backend(Arc<RedisBackend>),
    Throttle(RedisThrottleStore),
}

impl Front {
    fn backend(url: &str) -> Front {
        Front::Backend(Arc::new(RedisBackend::new(config(url)).expect("a backend")))
    }

    fn throttle(url: &str) -> Front {
        Front::Throttle(RedisThrottleStore::from_config(config(url)).expect("a store"))
    }

    /// One ordinary operation: a read of a key, or a throttle check with room to spare.
    async fn call(&self) -> Result<(), CacheError> {
        match self {
            Front::Backend(b) => b.get("faults:k").await.map(drop),
            Front::Throttle(s) => {
                let rate = Rate::parse("1000000/hour").expect("rate");
                let decision = s.check("faults:k", rate).await?;
                assert!(decision.admitted, "{decision:?}");
                Ok(())
            }
        }
    }

    /// Writes something Redis keeps, for [`Front::remembers`].
    async fn remember(&self) {
        match self {
            Front::Backend(b) => b
                .set("faults:kept", Value::Int(7), Some(TTL))
                .await
                .expect("set"),
            Front::Throttle(s) => {
                let once = Rate::parse("1/hour").expect("rate");
                assert!(s.check("faults:kept", once).await.expect("check").admitted);
            }
        }
    }

    /// Whether Redis still holds what [`Front::remember`] wrote.
    async fn remembers(&self) -> bool {
        match self {
            Front::Backend(b) => matches!(b.get("faults:kept").await, Ok(Some(Value::Int(7)))),
            Front::Throttle(s) => {
                let once = Rate::parse("1/hour").expect("rate");
                matches!(s.check("faults:kept", once).await, Ok(d) if !d.admitted)
            }
        }
    }

    fn metrics(&self) -> RedisMetrics {
        match self {
            Front::Backend(b) => b.metrics(),
            Front::Throttle(s) => s.metrics(),
        }
    }

    fn breaker(&self) -> BreakerState {
        match self {
            Front::Backend(b) => b.breaker_state(),
            Front::Throttle(s) => s.breaker_state(),
        }
    }
}

/// How a failed call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Redis did not answer in time.
    Timeout,
    /// Redis could not be reached: the cause is the `redis` crate's error.
    Unreachable,
    /// The open breaker failed the call without trying.
    BreakerOpen,
}

/// Classifies an error; anything else than the three kinds above fails the test.
fn failure(err: &CacheError) -> Failure {
    match err {
        CacheError::Timeout { .. } => Failure::Timeout,
        CacheError::Backend { .. } => {
            let cause = err.source().expect("a backend error keeps its cause");
            if cause.is::<BreakerOpen>() {
                Failure::BreakerOpen
            } else {
                let redis = cause
                    .downcast_ref::<RedisError>()
                    .unwrap_or_else(|| panic!("the cause is a RedisError: {err:?}"));
                assert!(
                    redis.is_io_error() || redis.is_connection_dropped(),
                    "an outage is an I/O failure: {redis:?}"
                );
                Failure::Unreachable
            }
        }
        other => panic!("unexpected error during an outage: {other:?}"),
    }
}

/// Waits (at most 15 s) until calls succeed again.
async fn wait_for_recovery(front: &Front) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while front.call().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "no recovery after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn down_at_start_up_fails_fast_and_recovers_without_restart(make: fn(&str) -> Front) {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    // Building does not connect: Redis being down is not a start-up failure.
    let front = make(&url);

    let mut seen = Vec::new();
    for _ in 0..30 {
        let err = front.call().await.expect_err("Redis is down");
        seen.push(failure(&err));
    }
    let unreachable = seen.iter().filter(|f| **f == Failure::Unreachable).count();
    let rejected = seen.iter().filter(|f| **f == Failure::BreakerOpen).count();
    assert_eq!(unreachable + rejected, 30, "{seen:?}");
    // The first THRESHOLD calls tried; then the breaker failed the others at once (a
    // probe may have gone out if the machine stalled for a cool-down).
    assert_eq!(
        &seen[..THRESHOLD as usize],
        &[Failure::Unreachable; THRESHOLD as usize]
    );
    assert!(unreachable <= THRESHOLD as usize + 2, "{seen:?}");
    let m = front.metrics();
    assert_eq!(m.breaker, BreakerState::Open);
    assert_eq!(
        m.calls, unreachable as u64,
        "rejected calls never reach the network"
    );
    assert_eq!(m.rejected, rejected as u64);
    // Opened once, and again after each probe that failed.
    assert_eq!(
        m.breaker_opened,
        1 + (unreachable as u64 - u64::from(THRESHOLD)),
        "{m:?}"
    );

    server.restart();
    // After the cool-down the very first call is the probe, and it succeeds although
    // the connection's last attempt failed.
    tokio::time::sleep(AFTER_COOLDOWN).await;
    front
        .call()
        .await
        .expect("the first call after the cool-down reaches the restarted Redis");
    assert_eq!(front.breaker(), BreakerState::Closed);
}

async fn killed_mid_run_degrades_to_errors_and_recovers(make: fn(&str) -> Front) {
    let mut server = RedisServer::start();
    let front = make(&server.url());
    front.call().await.expect("Redis is up");

    let ok = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (front, ok) = (front.clone(), Arc::clone(&ok));
            tokio::spawn(async move {
                let mut failures = Vec::new();
                // Bounded: 150 calls per task, about 2 ms apart.
                for _ in 0..150 {
                    match front.call().await {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => failures.push(failure(&e)),
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                failures
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.restart();
    let mut failures = Vec::new();
    for task in tasks {
        failures.extend(task.await.expect("no call panicked"));
    }
    assert!(
        ok.load(Ordering::Relaxed) > 0,
        "calls succeeded before the kill"
    );
    assert!(!failures.is_empty(), "the kill was noticed");
    assert!(failures.contains(&Failure::BreakerOpen), "{failures:?}");
    let m = front.metrics();
    assert!(m.breaker_opened >= 1, "{m:?}");
    assert!(m.failures >= u64::from(THRESHOLD), "{m:?}");

    tokio::time::sleep(AFTER_COOLDOWN).await;
    wait_for_recovery(&front).await;
    assert_eq!(front.breaker(), BreakerState::Closed);
    front.remember().await;
    assert!(front.remembers().await);
}

async fn paused_times_out_then_fails_fast_and_recovers(make: fn(&str) -> Front) {
    let server = RedisServer::start();
    let front = make(&server.url());
    front.remember().await;

    server.pause();
    let mut seen = Vec::new();
    for _ in 0..20 {
        let err = front.call().await.expect_err("Redis is paused");
        seen.push(failure(&err));
    }
    // Only the calls until the breaker opened (and perhaps a probe) waited for an answer.
    let timeouts = seen.iter().filter(|f| **f == Failure::Timeout).count();
    assert!(timeouts >= 1, "calls to a paused Redis time out: {seen:?}");
    assert!(timeouts <= THRESHOLD as usize + 1, "{seen:?}");
    assert!(!seen.contains(&Failure::Unreachable), "{seen:?}");
    assert_eq!(front.breaker(), BreakerState::Open);
    let m = front.metrics();
    assert_eq!(m.rejected as usize, 20 - timeouts, "{m:?}");

    server.resume();
    tokio::time::sleep(AFTER_COOLDOWN).await;
    front
        .call()
        .await
        .expect("the first call after the cool-down reaches the resumed Redis");
    assert_eq!(front.breaker(), BreakerState::Closed);
    assert!(
        front.remembers().await,
        "Redis kept its data through the pause"
    );
}

/// The scenarios, for one front.
macro_rules! outage_suite {
    ($front:ident, $make:expr) => {
        mod $front {
            use super::*;

            #[tokio::test]
            async fn down_at_start_up_fails_fast_and_recovers_without_restart() {
                super::down_at_start_up_fails_fast_and_recovers_without_restart($make).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn killed_mid_run_degrades_to_errors_and_recovers() {
                super::killed_mid_run_degrades_to_errors_and_recovers($make).await;
            }

            #[tokio::test]
            async fn paused_times_out_then_fails_fast_and_recovers() {
                super::paused_times_out_then_fails_fast_and_recovers($make).await;
            }
        }
    };
}

outage_suite!(backend, Front::backend);
outage_suite!(throttle_store, Front::throttle);

#[tokio::test]
async fn a_store_made_from_a_backend_shares_its_breaker() {
    let mut server = RedisServer::start();
    let backend = RedisBackend::new(config(&server.url())).expect("a backend");
    let store = RedisThrottleStore::from_backend(&backend).key_prefix("shared");
    let rate = Rate::parse("5/minute").expect("rate");
    assert!(store.check("k", rate).await.expect("check").admitted);
    assert_eq!(
        backend.metrics().calls,
        1,
        "the store's check went through the backend's connection"
    );

    server.kill();
    for _ in 0..THRESHOLD {
        backend.get("k").await.expect_err("Redis is down");
    }
    assert_eq!(backend.breaker_state(), BreakerState::Open);
    assert_eq!(store.breaker_state(), BreakerState::Open);
    // The store fails at once, without a network call of its own.
    let calls = backend.metrics().calls;
    let err = store
        .check("k", rate)
        .await
        .expect_err("the breaker is open");
    assert_eq!(failure(&err), Failure::BreakerOpen);
    assert_eq!(backend.metrics().calls, calls);
}

#[tokio::test]
async fn memoized_calls_keep_answering_through_an_outage_and_are_cached_again() {
    let mut server = RedisServer::start();
    let backend = Arc::new(RedisBackend::new(config(&server.url())).expect("a backend"));
    let cache = Cache::builder_arc(backend.clone())
        .key_prefix("memo")
        .build();
    server.kill();

    let runs = AtomicUsize::new(0);
    for i in 0..50u64 {
        let v = cache
            .get_or_set_with(&format!("k{}", i % 5), TTL, || async {
                runs.fetch_add(1, Ordering::Relaxed);
                i * 2
            })
            .await;
        assert_eq!(v, i * 2, "a cached call returns the function's value");
    }
    assert_eq!(runs.load(Ordering::Relaxed), 50, "nothing could be cached");
    assert!(cache.stats().errors >= 90, "{:?}", cache.stats());
    assert_eq!(backend.breaker_state(), BreakerState::Open);

    server.restart();
    tokio::time::sleep(AFTER_COOLDOWN).await;
    let runs = AtomicUsize::new(0);
    for _ in 0..3 {
        let v = cache
            .get_or_set_with("after", TTL, || async {
                runs.fetch_add(1, Ordering::Relaxed);
                7u32
            })
            .await;
        assert_eq!(v, 7);
    }
    assert_eq!(
        runs.load(Ordering::Relaxed),
        1,
        "cached again after the restart"
    );
}

/// A caller dropped while it connects (its client went away, a timeout) does not fail
/// the calls that waited for its attempt: the next of them connects itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_cancelled_midway_does_not_fail_the_calls_that_waited_for_it() {
    let server = RedisServer::start();
    // A paused server accepts the TCP connection but never answers the handshake.
    let backend = Arc::new(
        RedisBackend::new(
            // Database 1: connecting sends `SELECT 1`, which a paused server leaves
            // unanswered.
            RedisConfig::from_url(&format!(
                "redis://127.0.0.1:{}/1?connect_timeout=5000&response_timeout=5000",
                server.port()
            ))
            .expect("a valid Redis URL"),
        )
        .expect("a backend"),
    );
    server.pause();
    let get = |backend: &Arc<RedisBackend>| {
        let backend = Arc::clone(backend);
        tokio::spawn(async move { backend.get("faults:cancelled").await })
    };
    let pace = Duration::from_millis(100);
    // One call connects; two more wait for its attempt.
    let first = get(&backend);
    tokio::time::sleep(pace).await;
    let second = get(&backend);
    let waiting = get(&backend);
    tokio::time::sleep(pace).await;
    // The connecting call is dropped mid-handshake: the second makes its own attempt,
    // and is dropped too.
    first.abort();
    tokio::time::sleep(pace).await;
    second.abort();
    for aborted in [first, second] {
        assert!(aborted.await.expect_err("aborted").is_cancelled());
    }
    // Redis answers again: the last caller connects.
    server.resume();
    let read = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting call returns")
        .expect("task");
    let value = read.expect("the waiting call connects itself, not failed by a cancelled attempt");
    assert!(value.is_none(), "nothing was stored under the key");
}
