//! A recorder installed after a cache was first used: the cache finds it by itself (at
//! a later event: its first on a thread, then every 1,024th), and from then on counts
//! every event. Alone in its binary, since it installs the process's recorder midway.

use std::time::Duration;

use cached_kit::{Cache, MemoryBackend};
use metrics_exporter_prometheus::PrometheusBuilder;

fn hits(text: &str) -> u64 {
    text.lines()
        .find(|l| {
            l.starts_with("cached_kit_cache_lookups_total{")
                && l.contains("cache=\"early\"")
                && l.contains("result=\"hit\"")
        })
        .and_then(|l| l.rsplit_once(' '))
        .map_or(0, |(_, v)| v.parse().expect("a count"))
}

// A current-thread runtime: every event is counted on this test's thread.
#[tokio::test]
async fn a_recorder_installed_after_a_cache_was_used_is_found() {
    let cache = Cache::builder(MemoryBackend::default())
        .alias("early")
        .build();
    cache
        .set("k", &1u32, Duration::from_secs(60))
        .await
        .unwrap();
    for _ in 0..10 {
        assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));
    }

    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder");
    assert_eq!(hits(&handle.render()), 0, "nothing was bound before");

    // Within 1,024 more hits on this thread the cache has found the recorder.
    for _ in 0..1_024 {
        assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));
    }
    let bound = hits(&handle.render());
    assert!((1..=1_024).contains(&bound), "{bound}");

    // From then on, every hit is counted.
    for _ in 0..100 {
        assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));
    }
    assert_eq!(hits(&handle.render()), bound + 100);
    assert_eq!(
        cache.stats().hits,
        10 + 1_024 + 100,
        "stats() counted them all"
    );
}
