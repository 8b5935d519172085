//! `#[cache_fn]` over Redis across two real processes, configured the way a service is:
//! `CACHE_URL=redis://...` in the environment. A value computed in one process is a hit
//! in the other, and `lock = true` runs a cold body once across processes.
//!
//! The test binary re-runs itself as the child (`CACHED_KIT_CHILD` says which call to
//! make), so both sides are the same build, like two instances of one service.

use std::time::{Duration, Instant};

use cached_kit::{cache, cache_fn};
use cached_testing::process::{shared_cache_url, spawn_test, value_of};

/// Counts a body's runs in Redis, where every process sees the count.
async fn count_run(id: u32) {
    cache()
        .incr(&format!("runs:{id}"), 1)
        .await
        .expect("count the run in Redis");
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[cache_fn(ttl = 60, key = "report:{id}")]
async fn report(id: u32) -> Vec<String> {
    count_run(id).await;
    vec![format!("report {id}"), "computed once".into()]
}

#[cache_fn(ttl = 60, key = "locked-report:{id}", lock = true)]
async fn locked_report(id: u32) -> Vec<String> {
    count_run(id).await;
    vec![format!("locked report {id}"), "computed once".into()]
}

async fn runs(id: u32) -> Option<i64> {
    cache()
        .get(&format!("runs:{id}"))
        .await
        .expect("read the run count")
}

/// In a child process: waits for the go signal, makes the call, prints its value.
async fn run_child() -> bool {
    let Ok(role) = std::env::var("CACHED_KIT_CHILD") else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let go = format!("go:{role}");
    while cache().get::<u8>(&go).await.ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "no go signal");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let value = match role.as_str() {
        "report" => report(7).await,
        "locked" => locked_report(8).await,
        other => panic!("unknown child role {other}"),
    };
    println!("\nVALUE={}", value.join("|"));
    true
}

fn spawn_child(role: &str, test: &str) -> std::process::Child {
    spawn_test(
        test,
        &[
            ("CACHED_KIT_CHILD", role),
            ("CACHE_URL", shared_cache_url()),
        ],
    )
}

#[tokio::test]
async fn a_cache_fn_value_from_another_process_is_a_hit() {
    if run_child().await {
        return;
    }
    shared_cache_url();
    assert_eq!(cache().backend().name(), "redis", "CACHE_URL selects Redis");
    cache()
        .set("go:report", &1u8, Duration::from_secs(60))
        .await
        .expect("set go");
    let out = spawn_child("report", "a_cache_fn_value_from_another_process_is_a_hit")
        .wait_with_output()
        .expect("wait for the child");
    assert_eq!(value_of(&out), "report 7|computed once");
    assert_eq!(runs(7).await, Some(1));

    // Here, the same call is a hit: the body does not run again.
    assert_eq!(report(7).await, ["report 7", "computed once"]);
    assert_eq!(runs(7).await, Some(1));
}

#[tokio::test]
async fn lock_true_runs_a_cold_body_once_across_processes() {
    if run_child().await {
        return;
    }
    shared_cache_url();
    let test = "lock_true_runs_a_cold_body_once_across_processes";
    let a = spawn_child("locked", test);
    let b = spawn_child("locked", test);
    // Both children are up and polling; let them go at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cache()
        .set("go:locked", &1u8, Duration::from_secs(60))
        .await
        .expect("set go");
    let (a, b) = (
        a.wait_with_output().expect("child a"),
        b.wait_with_output().expect("child b"),
    );
    assert_eq!(value_of(&a), "locked report 8|computed once");
    assert_eq!(value_of(&b), "locked report 8|computed once");
    assert_eq!(runs(8).await, Some(1), "one run across both processes");
}
