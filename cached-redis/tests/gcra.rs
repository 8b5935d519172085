//! GCRA in Redis (`algorithm = "gcra"`, SPEC 14): the throttle-store conformance of
//! [`Gcra::decide`] against a real `redis-server` (and a real three-node cluster):
//! bursts, refills, undo, expiry of idle clients, and exactness across stores that
//! share one server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cached_core::throttle::{Decision, Gcra, Rate, ThrottleStore};
use cached_redis::throttle::RedisThrottleStore;
use cached_redis::{BreakerState, RedisBackend};
use cached_testing::RedisServer;

fn store(server: &RedisServer) -> RedisThrottleStore {
    RedisThrottleStore::from_url(&server.url()).expect("a valid Redis URL")
}

fn gcra(rate: &str, burst: u32) -> Gcra {
    Gcra::new(Rate::parse(rate).expect("rate"), burst)
}

async fn check(store: &RedisThrottleStore, key: &str, gcra: Gcra) -> Decision {
    store.check_gcra(key, gcra).await.expect("a GCRA check")
}

/// The key's remaining time to live, in milliseconds (-2: no key; -1: no expiry).
fn pttl(server: &RedisServer, key: &str) -> i64 {
    server.cli(&["PTTL", key]).trim().parse().expect("PTTL")
}

/// The stored theoretical arrival time, in nanoseconds of the server's clock.
fn tat(server: &RedisServer, key: &str) -> u64 {
    let value = server.cli(&["GET", key]);
    value
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{key} holds a TAT in nanoseconds, not {value:?}"))
}

/// The server's clock, in nanoseconds.
fn server_now(server: &RedisServer) -> u64 {
    let time = server.cli(&["TIME"]);
    let mut parts = time.lines().map(|l| l.trim().parse::<u64>().expect("TIME"));
    let (secs, micros) = (parts.next().expect("seconds"), parts.next().expect("µs"));
    secs * 1_000_000_000 + micros * 1_000
}

#[tokio::test]
async fn admits_the_burst_at_once_then_refuses_until_one_interval_later() {
    let server = RedisServer::start();
    let store = store(&server);
    // 6 a minute is one every 10 s; bursts of 3.
    let g = gcra("6/minute", 3);
    let start = Instant::now();
    for remaining in [2, 1, 0] {
        let d = check(&store, "k", g).await;
        assert!(d.admitted);
        assert_eq!((d.limit, d.remaining), (3, remaining));
        assert!(d.reset <= Duration::from_secs(10), "{:?}", d.reset);
    }
    // The bucket refills one request 10 s after the first: the wait is 10 s less what
    // has passed since, on the server's clock.
    let refused = check(&store, "k", g).await;
    assert!(!refused.admitted);
    assert_eq!((refused.limit, refused.remaining), (3, 0));
    let upper = Duration::from_secs(10);
    let lower = upper.saturating_sub(start.elapsed() + Duration::from_millis(50));
    assert!(
        (lower..=upper).contains(&refused.reset),
        "wait {:?}, expected about 10 s",
        refused.reset
    );
    assert_eq!(refused.retry_after_secs(), 10);
    // Refused requests are not recorded, and other clients have their own buckets.
    assert!(!check(&store, "k", g).await.admitted);
    assert!(check(&store, "other", g).await.admitted);
    // The token of an admission is the TAT it stored; one key, one string per client.
    let d = check(&store, "third", g).await;
    assert_eq!(d.token, tat(&server, "third"));
    assert_eq!(server.cli(&["TYPE", "k"]).trim(), "string");
}

#[tokio::test]
async fn refills_one_request_per_interval_on_the_servers_clock() {
    let server = RedisServer::start();
    let store = store(&server).key_prefix("app");
    // 5 a second is one every 200 ms; bursts of 2.
    let g = gcra("5/second", 2);
    let interval = Duration::from_millis(200);
    let start = Instant::now();
    assert!(check(&store, "k", g).await.admitted);
    assert!(check(&store, "k", g).await.admitted);
    let refused = check(&store, "k", g).await;
    assert!(!refused.admitted);
    assert!(
        refused.reset > Duration::ZERO && refused.reset <= interval,
        "wait {:?}",
        refused.reset
    );
    assert_eq!(refused.retry_after_secs(), 1);
    // Each time the wait is over, a request fits again, and after the refilled ones the
    // next waits at most one interval.
    let (mut admitted, mut wait) = (2u32, refused.reset);
    for _ in 0..3 {
        tokio::time::sleep(wait + Duration::from_millis(30)).await;
        let mut refilled = 0;
        let refusal = loop {
            let d = check(&store, "k", g).await;
            if !d.admitted {
                break d;
            }
            refilled += 1;
            assert!(refilled <= g.burst(), "never more than a full bucket");
        };
        assert!(refilled >= 1, "the wait was over: a request refilled");
        assert!(
            refusal.reset > Duration::ZERO && refusal.reset <= interval,
            "wait {:?}",
            refusal.reset
        );
        admitted += refilled;
        wait = refusal.reset;
    }
    // GCRA's bound, whatever the scheduling: the burst plus one per interval elapsed
    // (here about 3; more only if the test was stalled for whole intervals).
    let bound = g.burst() + (start.elapsed().as_nanos() / interval.as_nanos()) as u32;
    assert!(admitted <= bound, "{admitted} admitted, at most {bound}");
    // The prefix is part of the key.
    assert_eq!(server.cli(&["EXISTS", "app:k"]).trim(), "1");
    assert_eq!(server.cli(&["EXISTS", "k"]).trim(), "0");
}

#[tokio::test]
async fn undo_gives_back_exactly_one_admission() {
    let server = RedisServer::start();
    let store = store(&server);
    let g = gcra("6/minute", 2);
    let first = check(&store, "k", g).await;
    let second = check(&store, "k", g).await;
    assert!(first.admitted && second.admitted);
    assert!(!check(&store, "k", g).await.admitted);
    // Undo moves the TAT back exactly one interval (10 s, in nanoseconds).
    let before = tat(&server, "k");
    store.undo_gcra("k", g, &second).await.expect("undo");
    assert_eq!(tat(&server, "k"), before - 10_000_000_000);
    let again = check(&store, "k", g).await;
    assert!(again.admitted, "the undone admission is free again");
    assert_eq!(again.remaining, 0);
    assert!(!check(&store, "k", g).await.admitted, "and only that one");

    // Undoing a refusal gives nothing back.
    let refused = check(&store, "k", g).await;
    assert!(!refused.admitted);
    let before = tat(&server, "k");
    store.undo_gcra("k", g, &refused).await.expect("undo");
    assert_eq!(tat(&server, "k"), before);
    assert!(!check(&store, "k", g).await.admitted);

    // Undoing the only admission of a client leaves no state; undoing on a missing
    // key creates none.
    let only = check(&store, "single", g).await;
    store.undo_gcra("single", g, &only).await.expect("undo");
    assert_eq!(server.cli(&["EXISTS", "single"]).trim(), "0");
    store.undo_gcra("single", g, &only).await.expect("undo");
    assert_eq!(server.cli(&["EXISTS", "single"]).trim(), "0");
    for remaining in [1, 0] {
        assert_eq!(check(&store, "single", g).await.remaining, remaining);
    }
}

#[tokio::test]
async fn the_key_expires_when_the_bucket_is_full_again() {
    let server = RedisServer::start();
    let store = store(&server);
    let g = gcra("6/minute", 3);
    // One admission: the TAT is one interval (10 s) ahead of the server's clock, and
    // so is the expiry.
    let before = server_now(&server);
    check(&store, "k", g).await;
    let after = server_now(&server);
    let stored = tat(&server, "k");
    assert!(
        (before + 10_000_000_000..=after + 10_000_000_000).contains(&stored),
        "TAT {stored} not 10 s after [{before}, {after}]"
    );
    let ttl = pttl(&server, "k");
    assert!((9_000..=10_000).contains(&ttl), "PTTL {ttl}");
    // A full burst: three intervals ahead.
    check(&store, "k", g).await;
    check(&store, "k", g).await;
    let ttl = pttl(&server, "k");
    assert!((29_000..=30_000).contains(&ttl), "PTTL {ttl}");
    // A refusal changes neither the TAT nor the expiry.
    let stored = tat(&server, "k");
    assert!(!check(&store, "k", g).await.admitted);
    assert_eq!(tat(&server, "k"), stored);
    assert!(pttl(&server, "k") <= ttl);

    // At 10 a second with bursts of 3, an idle client's key is gone about 300 ms after
    // its burst: idle clients cost nothing.
    let fast = gcra("10/second", 3);
    for _ in 0..3 {
        assert!(check(&store, "idle", fast).await.admitted);
    }
    let ttl = pttl(&server, "idle");
    assert!((1..=300).contains(&ttl), "PTTL {ttl}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.cli(&["EXISTS", "idle"]).trim() != "0" {
        assert!(Instant::now() < deadline, "the idle key did not expire");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And the client has its whole burst back.
    for remaining in [2, 1, 0] {
        assert_eq!(check(&store, "idle", fast).await.remaining, remaining);
    }
}

#[tokio::test]
async fn state_is_one_short_string_however_many_requests() {
    let server = RedisServer::start();
    let store = store(&server);
    let g = gcra("1000/second", 1000);
    for _ in 0..300 {
        check(&store, "busy", g).await;
    }
    assert_eq!(server.cli(&["DBSIZE"]).trim(), "1");
    assert_eq!(server.cli(&["TYPE", "busy"]).trim(), "string");
    let len: usize = server
        .cli(&["STRLEN", "busy"])
        .trim()
        .parse()
        .expect("STRLEN");
    assert!(len <= 20, "{len} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_sharing_one_redis_admit_exactly_the_burst_in_total() {
    let server = RedisServer::start();
    // Two app instances: separate stores and connections, one Redis.
    let stores = [Arc::new(store(&server)), Arc::new(store(&server))];
    let g = gcra("10/hour", 5);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let store = Arc::clone(&stores[i % 2]);
        tasks.spawn(async move { store.check_gcra("shared", g).await });
    }
    let mut admitted = 0;
    while let Some(d) = tasks.join_next().await {
        let d = d.expect("task").expect("a GCRA check");
        admitted += usize::from(d.admitted);
        if !d.admitted {
            // The next request fits one interval (6 minutes) after the first.
            assert!(d.reset <= Duration::from_secs(360), "{:?}", d.reset);
            assert!(d.reset > Duration::from_secs(350), "{:?}", d.reset);
        }
    }
    assert_eq!(admitted, 5);
}

#[tokio::test]
async fn foreign_values_are_overwritten_and_foreign_types_are_errors() {
    let server = RedisServer::start();
    let backend = RedisBackend::from_url(&format!("{}?breaker_threshold=1", server.url()))
        .expect("a valid Redis URL");
    let store = RedisThrottleStore::from_backend(&backend);
    let g = gcra("6/minute", 2);
    // Not a TAT (another program's string, a number too long for one): no state, so the
    // bucket is full, and the next admission stores a TAT over it.
    for (key, value) in [("text", "hello"), ("long", "123456789012345678901234")] {
        server.cli(&["SET", key, value]);
        let d = check(&store, key, g).await;
        assert!(d.admitted);
        assert_eq!(d.remaining, 1, "{key}");
        assert_eq!(d.token, tat(&server, key));
    }
    // A list is Redis's WRONGTYPE error; Redis answered, so the breaker stays closed.
    server.cli(&["RPUSH", "list", "x"]);
    let err = store
        .check_gcra("list", g)
        .await
        .expect_err("a GCRA check on a list");
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    let admitted = Decision::admitted(2, 1, Duration::from_secs(1), 1);
    assert!(store.undo_gcra("list", g, &admitted).await.is_err());
    assert_eq!(server.cli(&["LLEN", "list"]).trim(), "1");
    assert_eq!(backend.breaker_state(), BreakerState::Closed);
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_to_fail_open_on_not_a_configuration_error() {
    let mut server = RedisServer::start();
    let store = RedisThrottleStore::from_url(&server.url())
        .expect("a valid Redis URL")
        .connect_timeout(Duration::from_millis(200))
        .response_timeout(Duration::from_millis(200));
    let g = gcra("6/minute", 2);
    assert!(check(&store, "k", g).await.admitted);
    server.kill();
    let err = store.check_gcra("k", g).await.expect_err("Redis is down");
    assert!(
        !matches!(err, cached_core::CacheError::Config { .. }),
        "{err:?}"
    );
}

/// The same on a real three-node Redis Cluster.
#[cfg(feature = "cluster")]
mod cluster {
    use std::collections::HashSet;

    use cached_core::throttle::store_from_url;
    use cached_testing::concurrent::admitted_per_client;
    use cached_testing::RedisCluster;

    use super::*;

    /// The port of the node that holds `key`.
    fn owner(cluster: &RedisCluster, key: &str) -> u16 {
        let slot = cluster.cli(&["CLUSTER", "KEYSLOT", key]);
        for node in cluster.nodes() {
            if node
                .cli(&["CLUSTER", "COUNTKEYSINSLOT", slot.trim()])
                .trim()
                != "0"
            {
                return node.port();
            }
        }
        panic!("no node holds {key}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gcra_on_a_cluster_admits_exactly_the_burst_on_every_node_and_undoes() {
        let cluster = RedisCluster::shared();
        let store = store_from_url(&format!("{}?key_prefix=gcra", cluster.url()))
            .expect("a throttle store on a cluster");
        let g = gcra("3/minute", 2);
        let clients: Vec<String> = (0..12)
            .map(|i| format!("throttle:anon:gcra:3/minute:2:ip:10.0.0.{i}"))
            .collect();
        let admitted = admitted_per_client(&clients, 5, |client| {
            let store = Arc::clone(&store);
            async move {
                let decision = store.check_gcra(&client, g).await;
                decision.expect("a GCRA check on the cluster").admitted
            }
        })
        .await;
        for client in &clients {
            assert_eq!(admitted[client], 2, "{client}");
        }
        let owners: HashSet<u16> = clients
            .iter()
            .map(|c| owner(cluster, &format!("gcra:{c}")))
            .collect();
        assert_eq!(owners.len(), 3, "the clients' TATs live on all three nodes");
        // Each is one string expiring with its bucket (two intervals of 20 s ahead).
        let key = format!("gcra:{}", clients[0]);
        assert_eq!(cluster.cli(&["TYPE", &key]).trim(), "string");
        let ttl: i64 = cluster.cli(&["PTTL", &key]).trim().parse().expect("PTTL");
        assert!((30_000..=40_000).contains(&ttl), "PTTL {ttl}");
        // Undo on the cluster gives one admission back.
        let fresh = "throttle:anon:gcra:3/minute:2:ip:10.0.1.1";
        let a = store.check_gcra(fresh, g).await.expect("check");
        let b = store.check_gcra(fresh, g).await.expect("check");
        assert!(a.admitted && b.admitted);
        assert!(!store.check_gcra(fresh, g).await.expect("check").admitted);
        store
            .undo_gcra(fresh, g, &b)
            .await
            .expect("undo on the cluster");
        assert!(store.check_gcra(fresh, g).await.expect("check").admitted);
        assert!(!store.check_gcra(fresh, g).await.expect("check").admitted);
    }
}
