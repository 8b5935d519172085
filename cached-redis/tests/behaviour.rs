//! What the Redis backend stores, as another Redis client (redis-cli) sees it.

use std::sync::Arc;
use std::time::Duration;

use cached_core::{Cache, CacheError};
use cached_redis::RedisBackend;
use cached_testing::RedisServer;

fn cache_on(server: &RedisServer, prefix: &str) -> Cache {
    let backend = RedisBackend::from_url(&server.url()).expect("a valid Redis URL");
    Cache::builder(backend).key_prefix(prefix).build()
}

#[tokio::test]
async fn ttls_are_set_in_milliseconds() {
    let server = RedisServer::start();
    let cache = cache_on(&server, "ms");
    cache
        .set("short", &"v".to_string(), Duration::from_millis(1500))
        .await
        .expect("set");
    let pttl: i64 = server
        .cli(&["PTTL", "ms:1:short"])
        .trim()
        .parse()
        .expect("PTTL is an integer");
    // Whole seconds would give 1000 or 2000; milliseconds give just under 1500.
    assert!(pttl > 1000 && pttl <= 1500, "PTTL {pttl}");

    cache
        .set("brief", &"v".to_string(), Duration::from_millis(150))
        .await
        .expect("set");
    assert!(cache.get::<String>("brief").await.expect("get").is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(cache.get::<String>("brief").await.expect("get"), None);

    // No expiry means no TTL at all in Redis.
    cache
        .set("forever", &1u8, cached_core::NO_EXPIRY)
        .await
        .expect("set");
    assert_eq!(server.cli(&["PTTL", "ms:1:forever"]).trim(), "-1");
}

#[tokio::test]
async fn clear_deletes_only_its_own_prefix_and_never_flushes() {
    let server = RedisServer::start();
    let a = cache_on(&server, "a");
    // A prefix full of glob characters must match only itself.
    let glob = cache_on(&server, "a*");
    let ab = cache_on(&server, "ab");
    let unprefixed = cache_on(&server, "");
    for (cache, n) in [(&a, 3), (&glob, 2), (&ab, 2), (&unprefixed, 2)] {
        for i in 0..n {
            cache
                .set(&format!("k{i}"), &i, Duration::from_secs(60))
                .await
                .expect("set");
        }
    }
    // Written by another program, outside any cache's layout.
    server.cli(&["SET", "foreign", "x"]);
    assert_eq!(server.cli(&["DBSIZE"]).trim(), "10");

    assert_eq!(a.clear().await.expect("clear"), 3);
    assert_eq!(server.cli(&["DBSIZE"]).trim(), "7");
    assert_eq!(glob.clear().await.expect("clear"), 2);
    assert_eq!(ab.get::<i32>("k1").await.expect("get"), Some(1));

    // The empty prefix stores under ":1:..." and clears only keys starting with ":".
    assert_eq!(unprefixed.clear().await.expect("clear"), 2);
    let mut left: Vec<String> = server
        .cli(&["KEYS", "*"])
        .lines()
        .map(str::to_owned)
        .collect();
    left.sort();
    assert_eq!(left, ["ab:1:k0", "ab:1:k1", "foreign"]);
}

#[tokio::test]
async fn clear_walks_every_scan_batch() {
    let server = RedisServer::start();
    let cache = cache_on(&server, "many");
    let entries: Vec<(String, u32)> = (0..1_234).map(|i| (format!("k{i}"), i)).collect();
    cache
        .set_many(
            entries.iter().map(|(k, v)| (k.as_str(), v)),
            Duration::from_secs(60),
        )
        .await
        .expect("set_many");
    server.cli(&["SET", "other:1:k", "x"]);
    assert_eq!(cache.clear().await.expect("clear"), 1_234);
    assert_eq!(server.cli(&["DBSIZE"]).trim(), "1");
}

#[tokio::test]
async fn garbage_from_another_program_is_a_counted_miss_and_is_overwritten() {
    let server = RedisServer::start();
    let cache = cache_on(&server, "g");
    server.cli(&["SET", "g:1:product:1", "{\"name\": \"written by PHP\"}"]);

    assert_eq!(cache.get::<String>("product:1").await.expect("get"), None);
    assert_eq!(cache.stats().decode_errors, 1);

    let v = cache
        .get_or_set_with("product:1", Duration::from_secs(60), || async {
            "lamp".to_string()
        })
        .await;
    assert_eq!(v, "lamp");
    assert_eq!(cache.stats().decode_errors, 2);
    // Overwritten with an encoded value (the header's magic byte is 0xCA).
    let raw = server.cli(&["--no-raw", "GET", "g:1:product:1"]);
    assert!(raw.starts_with("\"\\xca"), "{raw}");
    assert_eq!(
        cache
            .get::<String>("product:1")
            .await
            .expect("get")
            .as_deref(),
        Some("lamp")
    );

    // And a counter operation on garbage is a clear error, not a panic.
    server.cli(&["SET", "g:1:hits", "lots"]);
    match cache.incr("hits", 1).await {
        Err(CacheError::NotACounter(key)) => assert!(key.contains("hits"), "{key}"),
        other => panic!("expected NotACounter, got {other:?}"),
    }
}

#[tokio::test]
async fn counters_are_plain_integers_other_clients_can_increment() {
    let server = RedisServer::start();
    let cache = cache_on(&server, "c");
    assert_eq!(cache.incr("hits", 5).await.expect("incr"), 5);
    assert_eq!(server.cli(&["GET", "c:1:hits"]).trim(), "5");
    assert_eq!(server.cli(&["INCRBY", "c:1:hits", "10"]).trim(), "15");
    assert_eq!(cache.decr("hits", 1).await.expect("decr"), 14);
    assert_eq!(cache.get::<i64>("hits").await.expect("get"), Some(14));
    // An integer set through the cache is a counter too.
    cache
        .set("views", &41i64, Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(server.cli(&["GET", "c:1:views"]).trim(), "41");
    assert_eq!(cache.incr("views", 1).await.expect("incr"), 42);
    // A counter created by incr gets the default ttl, in milliseconds.
    let pttl: i64 = server
        .cli(&["PTTL", "c:1:hits"])
        .trim()
        .parse()
        .expect("PTTL");
    assert!(pttl > 290_000 && pttl <= 300_000, "PTTL {pttl}");
    // Overflow is reported as such.
    server.cli(&["SET", "c:1:big", &i64::MAX.to_string()]);
    assert!(matches!(
        cache.incr("big", 1).await,
        Err(CacheError::Overflow(_))
    ));
}

#[tokio::test]
async fn cache_urls_build_a_lazy_redis_cache() {
    let server = RedisServer::start();
    let url = format!(
        "{}?key_prefix=shop&connect_timeout=300&response_timeout=300",
        server.url()
    );
    let cache = Cache::from_url(&url).expect("a valid CACHE_URL");
    assert_eq!(cache.backend().name(), "redis");
    cache
        .set("product:1", &"lamp".to_string(), Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(server.cli(&["EXISTS", "shop:1:product:1"]).trim(), "1");

    let err = Cache::from_url("redis://127.0.0.1:1/0?colour=blue").unwrap_err();
    assert!(
        err.to_string().contains("unknown parameter `colour`"),
        "{err}"
    );
    let err = Cache::from_url("redis://127.0.0.1:1/0?connect_timeout=soon").unwrap_err();
    assert!(err.to_string().contains("connect_timeout=soon"), "{err}");
}

#[tokio::test]
async fn one_backend_serves_several_runtimes() {
    // A cache kept in a static outlives the runtime that first used it; the next
    // runtime must get a working connection of its own.
    let server = RedisServer::start();
    let backend = Arc::new(RedisBackend::from_url(&server.url()).expect("url"));
    let cache = Cache::builder_arc(backend).key_prefix("rt").build();
    for round in 0..3u32 {
        let cache = cache.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                cache
                    .set("k", &round, Duration::from_secs(60))
                    .await
                    .expect("set on a new runtime");
                assert_eq!(cache.get::<u32>("k").await.expect("get"), Some(round));
            });
        })
        .join()
        .expect("the runtime thread");
    }
    assert_eq!(cache.get::<u32>("k").await.expect("get"), Some(2));
}
