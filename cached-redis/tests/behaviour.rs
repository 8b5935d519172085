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

/// The `RedisError` behind a failure, if it has one.
fn redis_cause(err: &CacheError) -> Option<&cached_redis::RedisError> {
    std::error::Error::source(err)?.downcast_ref()
}

#[tokio::test]
async fn an_error_answer_keeps_its_cause_and_does_not_trip_the_breaker() {
    use cached_core::backend::Backend;
    use cached_core::throttle::{Rate, ThrottleStore};
    use cached_redis::throttle::RedisThrottleStore;
    use cached_redis::BreakerState;

    let server = RedisServer::start();
    let backend = RedisBackend::from_url(&format!("{}?breaker_threshold=1", server.url()))
        .expect("a valid Redis URL");
    // Another program keeps a list where the cache and the throttle expect their types.
    server.cli(&["RPUSH", "theirs", "x"]);
    for _ in 0..3 {
        let err = backend.get("theirs").await.expect_err("GET of a list");
        assert!(matches!(err, CacheError::Backend { .. }), "{err:?}");
        let cause = redis_cause(&err).expect("the RedisError is the source");
        assert_eq!(cause.code(), Some("WRONGTYPE"), "{cause:?}");
        assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    }
    let store = RedisThrottleStore::from_backend(&backend);
    let err = store
        .check("theirs", Rate::parse("1/minute").expect("rate"))
        .await
        .expect_err("a throttle check on a list");
    assert_eq!(
        redis_cause(&err).and_then(|e| e.code()),
        Some("WRONGTYPE"),
        "{err:?}"
    );
    // Redis answered each time: with a threshold of 1, one outage would have opened it.
    assert_eq!(backend.breaker_state(), BreakerState::Closed);
    let m = backend.metrics();
    assert_eq!((m.failures, m.rejected), (0, 0), "{m:?}");
    // And the list is left alone.
    assert_eq!(server.cli(&["LLEN", "theirs"]).trim(), "1");
}

#[tokio::test]
async fn an_unreachable_server_is_a_backend_error_whose_cause_is_the_io_failure() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let backend = RedisBackend::from_url(&url).expect("a valid Redis URL");
    let err = cached_core::backend::Backend::get(&backend, "k")
        .await
        .expect_err("nothing listens");
    let cause = redis_cause(&err).expect("the RedisError is the source");
    assert!(cause.is_io_error(), "{cause:?}");
    assert!(cause.is_connection_refusal(), "{cause:?}");
}

#[tokio::test]
async fn counters_that_cannot_count_are_reported_by_code_whatever_the_value_says() {
    let server = RedisServer::start();
    let cache = cache_on(&server, "codes");
    // Values whose text looks like the words of an error: what matters is the code the
    // script answers with, never the text.
    for (raw, what) in [
        ("overflow", "not a counter"),
        ("CKOVERFLOW", "not a counter"),
        ("99999999999999999999", "not a counter"),
        ("9223372036854775807", "overflow"),
    ] {
        server.cli(&["SET", "codes:1:n", raw]);
        match (cache.incr("n", 1).await, what) {
            (Err(CacheError::NotACounter(_)), "not a counter") => {}
            (Err(CacheError::Overflow(_)), "overflow") => {}
            (other, _) => panic!("{raw}: expected {what}, got {other:?}"),
        }
        // Left as it was.
        assert_eq!(server.cli(&["GET", "codes:1:n"]).trim(), raw);
    }
    server.cli(&["SET", "codes:1:n", "-9223372036854775808"]);
    assert!(matches!(
        cache.decr("n", 1).await,
        Err(CacheError::Overflow(_))
    ));
    assert_eq!(
        cache.stats().errors,
        0,
        "usage errors are not backend errors"
    );
}

#[tokio::test]
async fn keys_with_any_characters_are_stored_as_they_are() {
    use cached_core::backend::{Backend, Value};
    let server = RedisServer::start();
    let backend = RedisBackend::from_url(&server.url()).expect("a valid Redis URL");
    server.cli(&["SET", "bystander", "1"]);
    let long = "k".repeat(10_000);
    let keys = [
        "line\r\nbreak",
        "nul\0byte",
        "*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\ny\r\n",
        "x\r\n*1\r\n$8\r\nFLUSHALL\r\n",
        "glob*?[a]\\",
        "ключ 🔑",
        " ",
        long.as_str(),
    ];
    for (i, key) in keys.iter().enumerate() {
        let value = Value::Bytes(bytes::Bytes::from(vec![0xCA, 0, i as u8, 0xFF]));
        backend.set(key, value, Some(TTL)).await.expect("set");
    }
    for (i, key) in keys.iter().enumerate() {
        match backend.get(key).await.expect("get") {
            Some(Value::Bytes(b)) => assert_eq!(&b[..], &[0xCA, 0, i as u8, 0xFF], "{key:?}"),
            other => panic!("{key:?}: {other:?}"),
        }
    }
    // Nothing was injected: exactly these keys and the bystander exist.
    assert_eq!(server.cli(&["DBSIZE"]).trim(), (keys.len() + 1).to_string());
    assert_eq!(server.cli(&["GET", "x"]).trim(), "");
    assert_eq!(server.cli(&["EXISTS", "ключ 🔑"]).trim(), "1");
    let many: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    assert_eq!(
        backend.delete_many(&many).await.expect("delete_many"),
        keys.len()
    );
    assert_eq!(server.cli(&["DBSIZE"]).trim(), "1");
}

const TTL: Duration = Duration::from_secs(60);

#[tokio::test]
async fn huge_values_round_trip() {
    let server = RedisServer::start();
    let cache = cache_on(&server, "huge");
    let big: Vec<u8> = (0..32 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    cache.set("blob", &big, TTL).await.expect("set 32 MiB");
    let back: Option<Vec<u8>> = cache.get("blob").await.expect("get 32 MiB");
    assert!(
        back.as_ref() == Some(&big),
        "the 32 MiB value came back changed"
    );
    // The connection is still fine for small calls.
    cache.set("small", &1u8, TTL).await.expect("set");
    assert_eq!(cache.get::<u8>("small").await.expect("get"), Some(1));
}

#[tokio::test]
async fn a_value_the_server_refuses_is_an_error_and_later_calls_still_work() {
    // A server that holds at most 2 MiB: storing more is refused with an OOM answer.
    let server =
        RedisServer::start_with_args(&["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]);
    let backend = std::sync::Arc::new(RedisBackend::from_url(&server.url()).expect("url"));
    let cache = Cache::builder_arc(backend.clone())
        .key_prefix("oom")
        .build();
    let big = vec![7u8; 4 * 1024 * 1024];
    let err = cache
        .set("big", &big, TTL)
        .await
        .expect_err("the server has no room for 4 MiB");
    assert_eq!(
        redis_cause(&err).and_then(|e| e.code()),
        Some("OOM"),
        "{err:?}"
    );
    // A memoized call over it still returns the function's value.
    let v = cache
        .get_or_set_with("computed", TTL, || async { big.clone() })
        .await;
    assert_eq!(v.len(), big.len());
    // Refusals are answers, not outages: the breaker stays closed, and small values are
    // stored again once the server has released the refused requests' buffers (it
    // trims them in its periodic cron).
    assert_eq!(backend.breaker_state(), cached_redis::BreakerState::Closed);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = cache.set("small", &1u8, TTL).await {
        assert_eq!(redis_cause(&e).and_then(|e| e.code()), Some("OOM"), "{e:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "small values are still refused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cache.get::<u8>("small").await.expect("get"), Some(1));
    assert_eq!(backend.breaker_state(), cached_redis::BreakerState::Closed);
}

#[tokio::test]
async fn a_key_of_another_type_is_replaced_by_the_next_computation() {
    let server = RedisServer::start();
    let cache = cache_on(&server, "types");
    // Another program keeps a hash where the cache stores a value.
    server.cli(&["HSET", "types:1:product:1", "name", "theirs"]);
    let err = cache
        .get::<String>("product:1")
        .await
        .expect_err("GET of a hash");
    assert_eq!(redis_cause(&err).and_then(|e| e.code()), Some("WRONGTYPE"));
    let v = cache
        .get_or_set_with("product:1", TTL, || async { "lamp".to_string() })
        .await;
    assert_eq!(v, "lamp");
    assert_eq!(server.cli(&["TYPE", "types:1:product:1"]).trim(), "string");
    assert_eq!(
        cache
            .get::<String>("product:1")
            .await
            .expect("get")
            .as_deref(),
        Some("lamp")
    );
    // A counter over a hash is not a counter; deleting it works whatever its type.
    server.cli(&["HSET", "types:1:n", "a", "1"]);
    assert!(matches!(
        cache.incr("n", 1).await,
        Err(CacheError::NotACounter(_))
    ));
    assert!(cache.delete("n").await.expect("delete"));
}
