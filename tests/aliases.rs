//! Aliases are names, not spellings (SPEC §10.6): ASCII case and `-` versus `_` do not
//! matter, and every spelling reaches the one cache `CACHE_URL_<ALIAS>` configures.

use std::sync::Arc;

use cached_kit::{cache_fn, caches};

#[cache_fn(ttl = 60, cache = "reports-v2", key = "monthly:{month}")]
async fn monthly(month: u8) -> String {
    format!("report for month {month}")
}

#[tokio::test]
async fn every_spelling_of_an_alias_is_one_cache() {
    std::env::set_var("CACHE_URL_REPORTS_V2", "memory://?key_prefix=rep");
    // A service validates its configuration at start-up, which registers the alias as
    // the variable spells it (`reports_v2`)...
    let configured = caches().configure_from_env().expect("valid configuration");
    assert!(
        configured.contains(&"reports_v2".to_owned()),
        "{configured:?}"
    );
    // ...and the code uses another spelling.
    assert_eq!(monthly(3).await, "report for month 3");

    // Before, `reports-v2` and `reports_v2` were two in-memory caches: the value the
    // macro stored was not in the one `configure_from_env` registered.
    for alias in ["reports_v2", "reports-v2", "REPORTS_V2", "Reports-V2"] {
        let cache = caches().get(alias).expect("configured");
        assert_eq!(
            cache
                .get::<String>("monthly:3")
                .await
                .expect("read")
                .as_deref(),
            Some("report for month 3"),
            "{alias}"
        );
    }
    let a = caches().get("reports-v2").expect("configured");
    let b = caches().get("REPORTS_V2").expect("configured");
    assert!(Arc::ptr_eq(a.backend(), b.backend()));
    assert_eq!(a.key_prefix(), "rep");

    // Replacing it in code under yet another spelling replaces it for every spelling.
    caches().insert(
        cached_kit::Cache::from_url_as("Reports_V2", "test", "memory://?key_prefix=code")
            .expect("valid"),
    );
    assert_eq!(
        caches().get("reports-v2").expect("configured").key_prefix(),
        "code"
    );
}
