//! A plain (sync) `#[cache_fn]` over Redis works wherever it is called: outside any
//! runtime, and on a current-thread runtime it is blocking (whose own driver cannot run).

use std::sync::atomic::{AtomicUsize, Ordering};

use cached_kit::{cache_fn, caches, Cache};
use cached_testing::RedisServer;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache_fn(ttl = 60, cache = "sync_redis", key = "square:{n}")]
fn square(n: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    n * n
}

#[test]
fn a_sync_cache_fn_over_redis_on_any_thread() {
    let server = RedisServer::start();
    let url = format!("{}?key_prefix=syncfn", server.url());
    caches().insert(Cache::from_url_as("sync_redis", "test", &url).unwrap());

    // Outside any runtime.
    assert_eq!(square(3), 9);
    assert_eq!(square(3), 9);
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        1,
        "the second call is a Redis hit"
    );

    // On a current-thread runtime that the call blocks.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(square(4), 16);
        assert_eq!(square(4), 16);
        assert_eq!(square(3), 9);
    });
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
    assert!(server.cli(&["--scan"]).contains("syncfn:1:square:4"));
    let stats = caches().get("sync_redis").unwrap().stats();
    assert_eq!((stats.hits, stats.errors), (3, 0), "{stats:?}");
}
