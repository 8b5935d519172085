//! The near tier in one process, against a real redis-server: what other programs do to
//! Redis (tracked or not), tags whose versions it does not hold, hostile announcements,
//! cancelled reads and writes.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use cached_core::{Backend, Cache};
use cached_redis::{Invalidation, NearConfig, RedisBackend, RedisConfig};
use cached_testing::RedisServer;

const TTL: Duration = Duration::from_secs(60);

/// A live near tier (its invalidation connection up) over `server`.
async fn tiered(server: &RedisServer, mode: Invalidation) -> (Cache, RedisBackend) {
    let config = RedisConfig::from_url(&server.url())
        .expect("a Redis URL")
        .near(NearConfig::new(1_000).invalidation(mode));
    let backend = RedisBackend::new(config).expect("a backend");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !backend.near_status().is_some_and(|s| s.live) {
        let _ = backend.get("warm-up").await;
        assert!(Instant::now() < deadline, "the near tier never went live");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cache = Cache::builder(backend.clone()).build();
    (cache, backend)
}

/// Reads `key` until a read is a near hit of `expected`.
async fn held_near(cache: &Cache, key: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = cache.stats().near_hits;
        let got = cache.get::<String>(key).await.ok().flatten();
        if got.as_deref() == Some(expected) && cache.stats().near_hits > before {
            return;
        }
        assert!(Instant::now() < deadline, "`{key}` never became a near hit");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Client-side caching hears every change, whoever makes it: `redis-cli` here, and a
/// `FLUSHDB`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_hears_other_programs_and_flushdb() {
    let server = RedisServer::start();
    let (cache, backend) = tiered(&server, Invalidation::Tracking).await;
    cache.set("k", &"ours".to_string(), TTL).await.expect("set");
    held_near(&cache, "k", "ours").await;
    server.cli(&["DEL", ":1:k"]);
    eventually("a DEL from redis-cli evicts the near entry", async || {
        cache.get::<String>("k").await.ok().flatten().is_none()
    })
    .await;

    cache
        .set("k", &"again".to_string(), TTL)
        .await
        .expect("set");
    held_near(&cache, "k", "again").await;
    let flushes = backend.near_status().expect("near").flushes;
    server.cli(&["FLUSHDB"]);
    eventually("FLUSHDB empties the near tier", async || {
        backend.near_status().expect("near").flushes > flushes
    })
    .await;
    assert_eq!(cache.get::<String>("k").await.expect("get"), None);
}

/// A tagged entry held near whose tag version is not (Redis reported the tag key
/// touched, its version unchanged) is read the long way: still a hit, not a miss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tagged_entry_whose_tag_version_is_not_held_is_read_from_redis() {
    let server = RedisServer::start();
    let (cache, backend) = tiered(&server, Invalidation::Tracking).await;
    cache
        .set_tagged("page", &"v1".to_string(), TTL, &["t"])
        .await
        .expect("set_tagged");
    held_near(&cache, "page", "v1").await;
    let invalidations = backend.near_status().expect("near").invalidations;
    // A change notice for the tag key only (its version stays).
    server.cli(&["PEXPIRE", ":tag:t", "600000"]);
    eventually("the tag key's notice arrives", async || {
        backend.near_status().expect("near").invalidations > invalidations
    })
    .await;
    let misses = cache.stats().misses;
    assert_eq!(
        cache.get::<String>("page").await.expect("get").as_deref(),
        Some("v1")
    );
    assert_eq!(cache.stats().misses, misses, "a hit, not a miss");
    // And once the version is held again, a near hit.
    held_near(&cache, "page", "v1").await;
    cache.invalidate_tags(&["t"]).await.expect("invalidate");
    assert_eq!(cache.get::<String>("page").await.expect("get"), None);
}

/// Whatever another program publishes on the near tiers' channel, nothing panics; what
/// cannot be read empties the near tier (a safe answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_announcements_empty_the_near_tier() {
    let server = RedisServer::start();
    let (cache, backend) = tiered(&server, Invalidation::PubSub).await;
    cache.set("k", &"v".to_string(), TTL).await.expect("set");
    held_near(&cache, "k", "v").await;
    let flushes = backend.near_status().expect("near").flushes;
    server.cli(&["PUBLISH", "cached-kit:near:0", "99999999999:\u{1}garbage"]);
    eventually("a garbled announcement flushes", async || {
        backend.near_status().expect("near").flushes > flushes
    })
    .await;
    held_near(&cache, "k", "v").await;
    server.cli(&["PUBLISH", "cached-kit:near:0", "5:k"]);
    server.cli(&["PUBLISH", "cached-kit:near:0", "4::1:k"]);
    eventually("an announced key is evicted", async || {
        backend.near_status().expect("near").entries == 0
    })
    .await;
}

/// A read dropped after it was sent leaves nothing behind (no fill, no task), and a
/// write dropped after it was sent still evicts this process's copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_reads_and_writes_leave_no_stale_entry() {
    let server = RedisServer::start();
    let (cache, backend) = tiered(&server, Invalidation::Tracking).await;
    let backend: Arc<dyn Backend> = Arc::new(backend);
    cache.set("k", &"v1".to_string(), TTL).await.expect("set");
    held_near(&cache, "k", "v1").await;

    // A write polled once and dropped (sent or not): the copy is evicted at once, and
    // what this process reads next is what Redis holds.
    let v2 = "v2".to_string();
    let mut write = Box::pin(cache.set("k", &v2, TTL));
    let mut cx = Context::from_waker(Waker::noop());
    let _ = write.as_mut().poll(&mut cx);
    drop(write);
    assert!(
        backend.get_now(":1:k").is_none(),
        "evicted by the dropped write"
    );
    let truth = Cache::builder(RedisBackend::from_url(&server.url()).expect("plain")).build();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..3 {
        let ours = cache.get::<String>("k").await.expect("get");
        assert_eq!(ours, truth.get::<String>("k").await.expect("get"));
    }

    // Reads polled once and dropped, many times: nothing is left pending.
    for _ in 0..100 {
        let mut read = Box::pin(backend.get(":1:other"));
        let _ = read.as_mut().poll(&mut cx);
        drop(read);
    }
    assert_eq!(backend.get_now(":1:other").map(|r| r.is_ok()), None);
}

/// Dropping the last handle on a near-tiered backend ends its watcher and closes its
/// invalidation connection: nothing is left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_backend_closes_its_invalidation_connection() {
    let server = RedisServer::start();
    let tracking = || {
        server
            .cli(&["CLIENT", "LIST"])
            .lines()
            .filter(|l| l.contains("flags=t"))
            .count()
    };
    let (cache, backend) = tiered(&server, Invalidation::Tracking).await;
    assert_eq!(tracking(), 1, "{}", server.cli(&["CLIENT", "LIST"]));
    drop((cache, backend));
    eventually("the invalidation connection closes", async || {
        tracking() == 0
    })
    .await;
}

/// The watcher lives on the runtime that first needed it: when that runtime ends, the
/// near tier goes dark, and the next runtime to read starts a new watcher.
#[test]
fn a_backend_outliving_its_first_runtime_watches_again_from_the_next() {
    let server = RedisServer::start();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime")
    };
    let (cache, backend) = runtime().block_on(tiered(&server, Invalidation::Tracking));
    // The first runtime is gone: its watcher with it.
    assert!(!backend.near_status().expect("near").live);
    let second = runtime();
    second.block_on(async {
        let (cache2, backend2) = (cache.clone(), backend.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !backend2.near_status().is_some_and(|s| s.live) {
            let _ = cache2.get::<String>("again").await;
            assert!(
                Instant::now() < deadline,
                "no watcher on the second runtime"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cache2.set("k", &"v".to_string(), TTL).await.expect("set");
        held_near(&cache2, "k", "v").await;
    });
    assert!(backend.near_status().expect("near").connects >= 2);
}

/// The id of the invalidation connection in `CLIENT LIST`: the one with client-side
/// caching on (flag `t`) or subscribed (flag `P`).
fn invalidation_connection(server: &RedisServer, mode: Invalidation) -> String {
    let flag = match mode {
        Invalidation::PubSub => 'P',
        _ => 't',
    };
    let list = server.cli(&["CLIENT", "LIST"]);
    let line = list
        .lines()
        .find(|l| {
            l.split(' ')
                .find_map(|f| f.strip_prefix("flags="))
                .is_some_and(|flags| flags.contains(flag))
        })
        .unwrap_or_else(|| panic!("no connection with flag {flag}:\n{list}"));
    line.split(' ')
        .find_map(|f| f.strip_prefix("id="))
        .expect("an id")
        .to_owned()
}

/// When the invalidation connection drops (here killed by the server), the near tier
/// is emptied and bypassed: a write nobody could report meanwhile is read from Redis,
/// not from a stale near copy; once invalidations flow again the tier serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_invalidation_connection_empties_and_bypasses_the_near_tier() {
    let server = RedisServer::start();
    for mode in [Invalidation::Tracking, Invalidation::PubSub] {
        let (cache, backend) = tiered(&server, mode).await;
        // Another process's writes, through a cache without a near tier.
        let other =
            Cache::builder(RedisBackend::from_url(&server.url()).expect("a backend")).build();
        let key = format!("dropped-{mode:?}");
        cache
            .set(&key, &"before".to_string(), TTL)
            .await
            .expect("set");
        held_near(&cache, &key, "before").await;
        let status = backend.near_status().expect("near");

        let id = invalidation_connection(&server, mode);
        assert_eq!(server.cli(&["CLIENT", "KILL", "ID", &id]).trim(), "1");
        eventually("the drop is noticed and the tier emptied", async || {
            let now = backend.near_status().expect("near");
            now.flushes > status.flushes && now.entries == 0
        })
        .await;
        // Written while this process hears nothing (or just after it is back).
        other
            .set(&key, &"after".to_string(), TTL)
            .await
            .expect("set");
        assert_eq!(
            cache.get::<String>(&key).await.expect("get").as_deref(),
            Some("after"),
            "{mode:?}: a write made while the invalidation connection was down"
        );
        eventually("invalidations flow again", async || {
            let now = backend.near_status().expect("near");
            now.live && now.connects > status.connects
        })
        .await;
        held_near(&cache, &key, "after").await;
    }
}
