//! The generation shortcut of tags in process: an in-memory hit of a tagged entry
//! checks its tags' versions only after an invalidation happened in this process.
//!
//! One test in its own binary, because the generation is process-wide: another test
//! invalidating tags in parallel would move it at any moment.

use std::time::Duration;

use cached_core::backend::memory::MemoryBackend;
use cached_core::Cache;

#[tokio::test]
async fn an_in_process_hit_rechecks_its_tags_only_after_an_invalidation() {
    let cache = Cache::builder(MemoryBackend::default()).build();
    cache
        .set_tagged("k", &5u64, Duration::from_secs(60), &["t"])
        .await
        .expect("set_tagged");
    // The tag key disappears behind the cache's back (as by an eviction). No
    // invalidation happened, so the entry is still valid and its hit reads nothing: it
    // is still a hit (a remote backend, which reads the versions on every hit, would
    // miss here).
    assert!(cache
        .backend()
        .delete(&cache.tag_key("t"))
        .await
        .expect("delete"));
    for _ in 0..3 {
        assert_eq!(cache.get::<u64>("k").await.expect("get"), Some(5));
    }
    // Any invalidation in this process moves the generation: the entry looks at its
    // tags again, finds its tag gone, and is a miss from then on.
    cache.invalidate_tags(&["other"]).await.expect("invalidate");
    assert_eq!(cache.get::<u64>("k").await.expect("get"), None);
    assert_eq!(cache.get::<u64>("k").await.expect("get"), None);

    // A new entry validated after that invalidation is a plain hit again.
    cache
        .set_tagged("k2", &6u64, Duration::from_secs(60), &["t"])
        .await
        .expect("set_tagged");
    assert_eq!(cache.get::<u64>("k2").await.expect("get"), Some(6));
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (4, 2));
}
