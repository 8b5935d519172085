//! A bad `CACHE_URL` never panics and never breaks the program: the default cache
//! reports the configuration error on every operation, and memoized code runs uncached.
//! (Its own test binary: the default cache is resolved once per process.)

use std::time::Duration;

#[tokio::test]
async fn a_bad_cache_url_is_reported_and_survived() {
    std::env::set_var("CACHE_URL", "memcached://localhost:11211");
    let cache = cached_kit::cache();
    let err = cache.get::<u8>("k").await.unwrap_err().to_string();
    assert!(err.contains("CACHE_URL"), "{err}");
    assert!(err.contains("memcached"), "{err}");

    let value = cache
        .get_or_set_with("k", Duration::from_secs(60), || async { 42u8 })
        .await;
    assert_eq!(value, 42);
    assert!(cache.stats().errors >= 2, "{:?}", cache.stats());

    let err = cached_kit::caches()
        .configure_from_env()
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown scheme `memcached://`"), "{err}");
}
