//! Redis Cluster (feature `cluster`): a real three-node cluster on loopback ports.
#![cfg(feature = "cluster")]

use std::sync::Arc;
use std::time::Duration;

use cached_core::{Backend, Cache};
use cached_redis::RedisBackend;
use cached_testing::RedisCluster;

async fn backend() -> Arc<dyn Backend> {
    let url = RedisCluster::shared().url();
    Arc::new(RedisBackend::from_url(&url).expect("a valid cluster URL"))
}

/// The whole conformance suite, against the cluster.
mod conformance {
    use super::backend;
    cached_testing::backend_conformance!(storing, backend);
}

fn slot_of(cluster: &RedisCluster, key: &str) -> u16 {
    cluster
        .cli(&["CLUSTER", "KEYSLOT", key])
        .trim()
        .parse()
        .expect("CLUSTER KEYSLOT answers a number")
}

/// The port of the node that owns `key`.
fn owner(cluster: &RedisCluster, key: &str) -> u16 {
    for node in cluster.nodes() {
        let reply = node.cli(&[
            "CLUSTER",
            "COUNTKEYSINSLOT",
            &slot_of(cluster, key).to_string(),
        ]);
        if reply.trim() != "0" {
            return node.port();
        }
    }
    panic!("no node holds {key}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_on_every_node_work_with_many_key_operations() {
    let cluster = RedisCluster::shared();
    let cache = Cache::from_url(&format!("{}?key_prefix=spread", cluster.url())).expect("url");
    let keys: Vec<String> = (0..60).map(|i| format!("item:{i}")).collect();
    let values: Vec<u32> = (0..60).collect();

    // One set_many across many slots (grouped per slot underneath).
    cache
        .set_many(
            keys.iter().map(String::as_str).zip(values.iter()),
            Duration::from_secs(60),
        )
        .await
        .expect("set_many across slots");
    let stored: Vec<String> = keys.iter().map(|k| cache.make_key(k)).collect();
    let slots: std::collections::HashSet<u16> =
        stored.iter().map(|k| slot_of(cluster, k)).collect();
    assert!(slots.len() > 30, "the keys spread over many slots");
    let owners: std::collections::HashSet<u16> =
        stored.iter().take(20).map(|k| owner(cluster, k)).collect();
    assert_eq!(owners.len(), 3, "the keys live on all three nodes");

    // get_many across slots (MGET split per slot) keeps the order and finds everything.
    let mut asked: Vec<&str> = keys.iter().map(String::as_str).collect();
    asked.push("missing:1");
    let got = cache.get_many::<u32, _>(&asked).await.expect("get_many");
    assert_eq!(got.len(), 60);
    for (k, v) in keys.iter().zip(&values) {
        assert_eq!(got.get(k.as_str()), Some(v), "{k}");
    }

    // delete_many across slots.
    let deleted = cache
        .delete_many(&keys[..10])
        .await
        .expect("delete_many across slots");
    assert_eq!(deleted, 10);

    // Counters and add on several nodes.
    for i in 0..6 {
        assert_eq!(
            cache.incr(&format!("counter:{i}"), 2).await.expect("incr"),
            2
        );
    }
    // clear walks every primary and leaves other prefixes alone.
    let other = Cache::from_url(&format!("{}?key_prefix=other", cluster.url())).expect("url");
    other
        .set("keep", &1u8, Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(cache.clear().await.expect("clear"), 50 + 6);
    assert_eq!(other.get::<u8>("keep").await.expect("get"), Some(1));
    assert!(cache
        .get_many::<u32, _>(&asked)
        .await
        .expect("get_many")
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_store_on_a_cluster_admits_exactly_the_rate_on_every_node() {
    use cached_core::throttle::{store_from_url, Rate};
    let cluster = RedisCluster::shared();
    let store = store_from_url(&format!("{}?key_prefix=limits", cluster.url()))
        .expect("a throttle store on a cluster");
    let rate = Rate::parse("3/minute").expect("rate");
    let clients: Vec<String> = (0..12)
        .map(|i| format!("throttle:anon:3/minute:ip:10.0.0.{i}"))
        .collect();
    let admitted = cached_testing::concurrent::admitted_per_client(&clients, 5, |client| {
        let store = Arc::clone(&store);
        async move {
            let decision = store.check(&client, rate).await;
            decision.expect("a check on the cluster").admitted
        }
    })
    .await;
    for client in &clients {
        assert_eq!(admitted[client], 3, "{client}");
    }
    let owners: std::collections::HashSet<u16> = clients
        .iter()
        .map(|c| owner(cluster, &format!("limits:{c}")))
        .collect();
    assert_eq!(owners.len(), 3, "the clients' logs live on all three nodes");
}
