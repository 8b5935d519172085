//! Two real processes sharing one Redis: a value computed in one is a hit in the other,
//! and `lock(true)` makes a cold computation run once across processes.
//!
//! The test binary re-runs itself as the child process (`CACHED_REDIS_CHILD` selects
//! what the child does), so both sides are the same build, as two instances of one
//! service would be.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cached_core::backend::{Backend, Value};
use cached_core::{Cache, ComputeOptions};
use cached_redis::RedisBackend;
use cached_testing::process::{spawn_test, value_of};
use cached_testing::RedisServer;

const TTL: Duration = Duration::from_secs(60);

fn cache(url: &str) -> Cache {
    let backend = RedisBackend::from_url(url).expect("a valid Redis URL");
    Cache::builder(backend).key_prefix("procs").build()
}

/// The body of the memoized function: counts its runs in Redis (so every process sees
/// the count), takes a while, and returns a value that is the same in every process.
async fn expensive_report(
    counter: &Cache,
    id: u32,
) -> Result<Vec<String>, std::convert::Infallible> {
    counter.incr("runs", 1).await.expect("count the run");
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(vec![format!("report {id}"), "computed once".to_owned()])
}

/// What a child process does, chosen by `CACHED_REDIS_CHILD`; returns false when this
/// is not a child.
async fn run_child() -> bool {
    let Ok(role) = std::env::var("CACHED_REDIS_CHILD") else {
        return false;
    };
    let url = std::env::var("CACHED_REDIS_URL").expect("CACHED_REDIS_URL");
    if role == "take-lock" {
        take_the_lock_once_free(&url).await;
        return true;
    }
    let cache = cache(&url);
    // Start together: wait (bounded) for the parent's go signal.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.get::<u8>("go").await.ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "no go signal");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let lock = role == "locked";
    let opts = ComputeOptions::new(Some(TTL)).lock(lock);
    let value = cache
        .compute("report:7", &opts, || expensive_report(&cache, 7))
        .await
        .expect("infallible");
    println!("VALUE={}", value.join("|"));
    true
}

fn spawn_child(role: &str, url: &str, test: &str) -> std::process::Child {
    spawn_test(
        test,
        &[("CACHED_REDIS_CHILD", role), ("CACHED_REDIS_URL", url)],
    )
}

#[tokio::test]
async fn a_value_computed_in_one_process_is_a_hit_in_another() {
    if run_child().await {
        return;
    }
    let server = RedisServer::start();
    let parent = cache(&server.url());
    parent.set("go", &1u8, TTL).await.expect("set go");

    let child = spawn_child(
        "plain",
        &server.url(),
        "a_value_computed_in_one_process_is_a_hit_in_another",
    );
    let out = child.wait_with_output().expect("wait for the child");
    assert_eq!(value_of(&out), "report 7|computed once");
    assert_eq!(parent.get::<i64>("runs").await.expect("get"), Some(1));

    // This process computes the same call: it is a hit, the body does not run.
    let hits = parent.stats().hits;
    let opts = ComputeOptions::new(Some(TTL));
    let value = parent
        .compute("report:7", &opts, || expensive_report(&parent, 7))
        .await
        .expect("infallible");
    assert_eq!(value.join("|"), "report 7|computed once");
    assert_eq!(parent.stats().hits, hits + 1);
    assert_eq!(parent.get::<i64>("runs").await.expect("get"), Some(1));
}

#[tokio::test]
async fn with_lock_two_processes_run_a_cold_body_once() {
    if run_child().await {
        return;
    }
    let server = RedisServer::start();
    let parent = cache(&server.url());
    let test = "with_lock_two_processes_run_a_cold_body_once";
    let a = spawn_child("locked", &server.url(), test);
    let b = spawn_child("locked", &server.url(), test);
    // Both children are up and polling; let them go at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    parent.set("go", &1u8, TTL).await.expect("set go");
    let (a, b) = (
        a.wait_with_output().expect("child a"),
        b.wait_with_output().expect("child b"),
    );
    assert_eq!(value_of(&a), "report 7|computed once");
    assert_eq!(value_of(&b), "report 7|computed once");
    assert_eq!(
        parent.get::<i64>("runs").await.expect("get"),
        Some(1),
        "the body ran once across both processes"
    );
    // The lock is released after the computation.
    assert_eq!(
        server.cli(&["EXISTS", "procs:1:report:7:__lock"]).trim(),
        "0"
    );
}

#[tokio::test]
async fn without_lock_each_cold_process_runs_the_body() {
    // The control for the test above: it shows the two children really overlap.
    if run_child().await {
        return;
    }
    let server = RedisServer::start();
    let parent = cache(&server.url());
    let test = "without_lock_each_cold_process_runs_the_body";
    let a = spawn_child("plain", &server.url(), test);
    let b = spawn_child("plain", &server.url(), test);
    tokio::time::sleep(Duration::from_millis(200)).await;
    parent.set("go", &1u8, TTL).await.expect("set go");
    let (a, b) = (
        a.wait_with_output().expect("child a"),
        b.wait_with_output().expect("child b"),
    );
    assert_eq!(value_of(&a), value_of(&b));
    assert_eq!(parent.get::<i64>("runs").await.expect("get"), Some(2));
}

const LOCK: &str = "procs:1:report:9:__lock";

/// Holder B, in a child process: takes the lock as soon as it is free, then exits
/// holding it (as a process whose body is still running would).
async fn take_the_lock_once_free(url: &str) {
    let backend = RedisBackend::from_url(url).expect("a valid Redis URL");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !backend
        .add(
            LOCK,
            Value::Bytes(Bytes::from_static(b"token-b")),
            Some(TTL),
        )
        .await
        .expect("add")
    {
        assert!(Instant::now() < deadline, "the lock never became free");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("VALUE=took the lock");
}

#[tokio::test]
async fn a_holder_whose_lock_expired_never_releases_or_extends_the_next_holders() {
    if run_child().await {
        return;
    }
    let server = RedisServer::start();
    // Holder A, in this process, takes the lock for 300 ms and then runs too long.
    let a = RedisBackend::from_url(&server.url()).expect("a valid Redis URL");
    let token_a = b"token-a";
    assert!(a
        .add(
            LOCK,
            Value::Bytes(Bytes::from_static(token_a)),
            Some(Duration::from_millis(300))
        )
        .await
        .expect("add"));
    // Holder B, another process, waits for the lock to expire and takes it.
    let b = spawn_child(
        "take-lock",
        &server.url(),
        "a_holder_whose_lock_expired_never_releases_or_extends_the_next_holders",
    );
    let out = b.wait_with_output().expect("wait for holder B");
    assert_eq!(value_of(&out), "took the lock");
    assert_eq!(server.cli(&["GET", LOCK]).trim(), "token-b");

    // A's body finally ends: its extension and its release find B's token and do nothing.
    assert!(!a
        .expire_if_equals(LOCK, token_a, Duration::from_millis(1))
        .await
        .expect("expire_if_equals"));
    assert!(!a
        .delete_if_equals(LOCK, token_a)
        .await
        .expect("delete_if_equals"));
    assert_eq!(server.cli(&["GET", LOCK]).trim(), "token-b");
    let pttl: i64 = server.cli(&["PTTL", LOCK]).trim().parse().expect("PTTL");
    assert!(pttl > 50_000, "B's lock keeps its own ttl: {pttl}");
}
