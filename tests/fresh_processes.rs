//! Tags across two real processes sharing a real `redis-server`: an entry one process
//! stored is a hit in another, until a third process invalidates one of its tags; then
//! it is a miss everywhere. The test binary re-runs itself as the children
//! (`CACHED_KIT_CHILD` names the role), like instances of one service.

use cached_kit::{cache, cache_fn};
use cached_testing::process::{shared_cache_url, spawn_test, value_of};

/// Counts the body's runs in Redis, where every process sees them.
#[cache_fn(ttl = 600, key = "tagged-product:{id}", tags = ["product:{id}"])]
async fn product(id: u32) -> String {
    let run = cache()
        .incr(&format!("product-runs:{id}"), 1)
        .await
        .expect("count the run in Redis");
    format!("product {id}, run {run}")
}

async fn runs(id: u32) -> Option<i64> {
    cache()
        .get(&format!("product-runs:{id}"))
        .await
        .expect("read the run count")
}

/// In a child process: plays its role, prints its result.
async fn run_child() -> bool {
    let Ok(role) = std::env::var("CACHED_KIT_CHILD") else {
        return false;
    };
    let value = match role.as_str() {
        "read" => product(5).await,
        "invalidate" => {
            cache()
                .invalidate_tags(&["product:5"])
                .await
                .expect("invalidate");
            "invalidated".to_owned()
        }
        other => panic!("unknown child role {other}"),
    };
    println!("\nVALUE={value}");
    true
}

fn child(role: &str) -> String {
    let out = spawn_test(
        "tags_invalidated_in_one_process_make_another_process_read_miss",
        &[
            ("CACHED_KIT_CHILD", role),
            ("CACHE_URL", shared_cache_url()),
        ],
    )
    .wait_with_output()
    .expect("run the child process");
    value_of(&out)
}

#[tokio::test]
async fn tags_invalidated_in_one_process_make_another_process_read_miss() {
    if run_child().await {
        return;
    }
    shared_cache_url();
    assert_eq!(cache().backend().name(), "redis", "CACHE_URL selects Redis");

    // Another process computes and stores the entry; here it is a hit.
    assert_eq!(child("read"), "product 5, run 1");
    assert_eq!(product(5).await, "product 5, run 1");
    assert_eq!(runs(5).await, Some(1));

    // A third process invalidates the tag: this process's next read misses.
    assert_eq!(child("invalidate"), "invalidated");
    assert_eq!(product(5).await, "product 5, run 2");
    assert_eq!(runs(5).await, Some(2));

    // The new entry is shared again: another process reads it as a hit.
    assert_eq!(child("read"), "product 5, run 2");
    assert_eq!(runs(5).await, Some(2));
}
