//! The near tier on a real three-node Redis Cluster (feature `cluster`): invalidated by
//! pub/sub, the cluster's default (one subscription hears every node's `PUBLISH`).
#![cfg(feature = "cluster")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cached_core::{Backend, Cache};
use cached_redis::{Invalidation, RedisBackend};
use cached_testing::RedisCluster;

/// A near-tiered backend over the shared cluster, live before it is returned.
async fn live() -> RedisBackend {
    let url = format!("{}?near_max_entries=1000", RedisCluster::shared().url());
    let backend = RedisBackend::from_url(&url).expect("a valid cluster URL");
    assert_eq!(
        backend.near_status().map(|s| s.invalidation),
        Some(Invalidation::PubSub)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !backend.near_status().is_some_and(|s| s.live) {
        let _ = backend.get("near-cluster:warm-up").await;
        assert!(Instant::now() < deadline, "the near tier never went live");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    backend
}

async fn backend() -> Arc<dyn Backend> {
    Arc::new(live().await)
}

/// The whole conformance suite, against the cluster with a near tier.
mod conformance {
    use super::backend;
    cached_testing::backend_conformance!(storing, backend);
}

/// A write through one backend (a process's) reaches the other's near tier, for keys on
/// every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_any_node_evicts_the_other_near_tier() {
    let (a, b) = (live().await, live().await);
    let (a, b) = (Cache::builder(a).build(), Cache::builder(b).build());
    let ttl = Duration::from_secs(60);
    for i in 0..12 {
        let key = format!("near-cluster:{i}");
        a.set(&key, &1u32, ttl).await.expect("set");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let before = b.stats().near_hits;
            let v = b.get::<u32>(&key).await.ok().flatten();
            if v == Some(1) && b.stats().near_hits > before {
                break;
            }
            assert!(Instant::now() < deadline, "{key} never held near");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        a.set(&key, &2u32, ttl).await.expect("set");
        let written = Instant::now();
        while b.get::<u32>(&key).await.ok().flatten() != Some(2) {
            assert!(
                written.elapsed() < Duration::from_millis(100),
                "{key}: the other near tier still serves the old value"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
