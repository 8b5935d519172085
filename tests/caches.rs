//! Named caches, `CACHE_URL_<ALIAS>` and the embedded default, through the facade.

use std::time::Duration;

use cached_kit::{cache, caches, Cache, CacheError};

#[tokio::test]
async fn the_default_cache_works_with_no_setup() {
    let cache = cache();
    assert_eq!(cache.alias(), "default");
    assert_eq!(cache.backend().name(), "memory");
    cache
        .set("setup:none", &5u8, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(cache.get::<u8>("setup:none").await.unwrap(), Some(5));
    // The same cache is returned every time: what one handle stores, another reads.
    assert_eq!(
        cached_kit::cache().get::<u8>("setup:none").await.unwrap(),
        Some(5)
    );
}

#[tokio::test]
async fn aliases_come_from_the_environment_or_from_code() {
    // One test sets every variable, so no other test of this binary races on them.
    std::env::set_var(
        "CACHE_URL_REPORTS_V2",
        "memory://?max_entries=50&key_prefix=rep&version=3",
    );
    std::env::set_var("CACHE_URL_BROKEN", "memory://?max_entries=many");
    let reports = caches().get("reports-v2").unwrap();
    assert_eq!(reports.make_key("k"), "rep:3:k");
    reports
        .set("k", &"v".to_string(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        caches()
            .get("reports-v2")
            .unwrap()
            .get::<String>("k")
            .await
            .unwrap()
            .as_deref(),
        Some("v")
    );

    let err = caches().get("broken").unwrap_err().to_string();
    assert!(err.contains("CACHE_URL_BROKEN"), "{err}");
    assert!(err.contains("max_entries=many"), "{err}");

    let err = caches().get("never-configured").unwrap_err();
    assert!(matches!(err, CacheError::UnknownCache(_)));
    assert!(
        err.to_string().contains("CACHE_URL_NEVER_CONFIGURED"),
        "{err}"
    );

    // configure_from_env turns the bad URL into a start-up error naming the variable.
    let err = caches().configure_from_env().unwrap_err().to_string();
    assert!(err.contains("CACHE_URL_BROKEN"), "{err}");
    std::env::remove_var("CACHE_URL_BROKEN");
    let configured = caches().configure_from_env().unwrap();
    assert!(
        configured.contains(&"reports_v2".to_string()),
        "{configured:?}"
    );

    // Code wins over the environment, and replaces what was resolved before.
    let before = caches().generation();
    caches().insert(Cache::from_url_as("reports-v2", "test", "memory://?key_prefix=code").unwrap());
    assert!(caches().generation() > before);
    assert_eq!(caches().get("reports-v2").unwrap().key_prefix(), "code");
    assert!(caches().all().iter().any(|c| c.alias() == "reports-v2"));
}

#[tokio::test]
async fn a_scheme_of_an_enabled_feature_builds_without_connecting() {
    // With the `redis` feature on, the scheme is known; connecting is lazy, so an
    // unreachable server is not a configuration error.
    if cfg!(feature = "redis") {
        let cache = Cache::from_url("redis://127.0.0.1:1/0?key_prefix=lazy").unwrap();
        assert_eq!(
            cached_kit::caches().get("default").unwrap().alias(),
            "default"
        );
        assert_eq!(cache.backend().name(), "redis");
    }
}
