//! Tags across two real processes sharing a real `redis-server`: an entry one process
//! stored is a hit in another, until a third process invalidates one of its tags; then
//! it is a miss everywhere. The test binary re-runs itself as the children
//! (`CACHED_KIT_CHILD` names the role), like instances of one service.

use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use cached_kit::{cache, cache_fn};
use cached_testing::RedisServer;

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

/// The parent's server, and `CACHE_URL` pointing at it, as the children get it.
fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let url = RedisServer::shared().url();
        // Before the first use of the default cache in this process.
        std::env::set_var("CACHE_URL", &url);
        url
    })
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
    let out: Output = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "tags_invalidated_in_one_process_make_another_process_read_miss",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CACHED_KIT_CHILD", role)
        .env("CACHE_URL", server_url())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run the child process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once("VALUE=").map(|(_, v)| v.to_owned()))
        .unwrap_or_else(|| panic!("no VALUE line in:\n{stdout}"))
}

#[tokio::test]
async fn tags_invalidated_in_one_process_make_another_process_read_miss() {
    if run_child().await {
        return;
    }
    server_url();
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
