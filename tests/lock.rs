//! The cross-process computation lock of `#[cache_fn(lock = true)]` against a real
//! `redis-server` (SPEC §10.2, §10.3): it is owned, extended while the body runs, and
//! released when the computation is cancelled.
//!
//! The test binary re-runs itself as child processes (`CACHED_KIT_LOCK_CHILD` says
//! which), like several instances of one service sharing Redis.

use std::time::{Duration, Instant};

use cached_kit::{cache, cache_fn};
use cached_testing::process::{shared_cache_url, spawn_test, stdout_of};

/// Counts a body's runs in Redis, where every process sees the count.
async fn count_run(name: &str) {
    cache()
        .incr(&format!("runs:{name}"), 1)
        .await
        .expect("count the run in Redis");
}

async fn runs(name: &str) -> i64 {
    cache()
        .get::<i64>(&format!("runs:{name}"))
        .await
        .expect("read the run count")
        .unwrap_or(0)
}

/// Three seconds of work under a lock that lives one second unless extended.
#[cache_fn(ttl = 60, key = "slow-report", lock = true, lock_ttl = 1)]
async fn slow_report() -> String {
    count_run("slow").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    "slow report".to_owned()
}

/// A body that never finishes unless the test lets it (it is cancelled instead).
#[cache_fn(ttl = 60, key = "cancelled-report", lock = true)]
async fn stuck_report(wait: bool) -> String {
    count_run("stuck").await;
    if wait {
        std::future::pending::<()>().await;
    }
    "computed".to_owned()
}

/// In a child: waits for the go signal, calls `slow_report`, prints its value.
async fn run_child() -> bool {
    if std::env::var("CACHED_KIT_LOCK_CHILD").is_err() {
        return false;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while cache().get::<u8>("go:slow").await.ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "no go signal");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("\nVALUE={}", slow_report().await);
    true
}

#[tokio::test]
async fn a_body_slower_than_lock_ttl_still_runs_once_across_three_processes() {
    if run_child().await {
        return;
    }
    let url = shared_cache_url();
    let test = "a_body_slower_than_lock_ttl_still_runs_once_across_three_processes";
    let children: Vec<_> = (0..3)
        .map(|_| spawn_test(test, &[("CACHED_KIT_LOCK_CHILD", "1"), ("CACHE_URL", url)]))
        .collect();
    // Let all three start and poll, then go at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cache()
        .set("go:slow", &1u8, Duration::from_secs(60))
        .await
        .expect("set go");
    for child in children {
        let out = child.wait_with_output().expect("wait for a child");
        let stdout = stdout_of(&out);
        assert!(stdout.contains("VALUE=slow report"), "{stdout}");
    }
    // The lock lived 1 s but was extended while the 3 s body ran: the two waiting
    // processes never got in (before, the lock expired under the body and they did).
    assert_eq!(runs("slow").await, 1);
}

#[tokio::test]
async fn a_cancelled_lock_holder_does_not_stall_the_next_caller() {
    if run_child().await {
        return;
    }
    shared_cache_url();
    // The first call takes the lock (10 s unless extended) and is cancelled mid-body,
    // as a timeout or a disconnected client would.
    let cancelled = tokio::time::timeout(Duration::from_millis(300), stuck_report(true)).await;
    assert!(cancelled.is_err(), "the first call was cancelled");
    assert_eq!(runs("stuck").await, 1);
    // The cancelled holder's guard released the lock: the next caller takes it and runs
    // its body at once. Before, it waited out the ~10 s lock (the margin here is half).
    let next = tokio::time::timeout(Duration::from_secs(5), stuck_report(false))
        .await
        .expect("the next caller is not stalled by the cancelled holder's lock");
    assert_eq!(next, "computed");
    assert_eq!(runs("stuck").await, 2);
}
