//! TLS (feature `tls`): a real TLS-only redis-server with a test CA made by openssl.
#![cfg(feature = "tls")]

use std::time::Duration;

use cached_core::Cache;
use cached_redis::RedisBackend;
use cached_testing::RedisServer;

#[tokio::test]
async fn rediss_urls_talk_tls_to_a_server_with_a_private_ca() {
    let server = RedisServer::start_tls();
    let url = format!(
        "{}?ca_cert={}&key_prefix=tls",
        server.url(),
        server.ca_path().display()
    );
    assert!(url.starts_with("rediss://"));
    let cache = Cache::from_url(&url).expect("a valid rediss:// URL");
    cache
        .set("product:1", &"lamp".to_string(), Duration::from_secs(60))
        .await
        .expect("set over TLS");
    assert_eq!(
        cache
            .get::<String>("product:1")
            .await
            .expect("get")
            .as_deref(),
        Some("lamp")
    );
    assert_eq!(server.cli(&["EXISTS", "tls:1:product:1"]).trim(), "1");
    assert_eq!(cache.incr("n", 3).await.expect("incr over TLS"), 3);
}

#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_refused() {
    let server = RedisServer::start_tls();
    // Without `ca_cert` the system roots are used, which do not know the test CA.
    let backend = RedisBackend::from_url(&format!("{}?connect_timeout=500", server.url()))
        .expect("a valid rediss:// URL");
    let cache = Cache::builder(backend).build();
    let err = cache
        .set("k", &1u8, Duration::from_secs(60))
        .await
        .expect_err("an untrusted certificate must fail the handshake");
    let text = err.to_string().to_lowercase();
    assert!(
        text.contains("certificate")
            || text.contains("unknownissuer")
            || text.contains("invalid peer"),
        "{err}"
    );
}

#[test]
fn plain_redis_urls_do_not_accept_ca_cert() {
    let err = RedisBackend::from_url("redis://127.0.0.1:6379/0?ca_cert=/tmp/ca.pem").unwrap_err();
    assert!(
        err.to_string().contains("only applies to rediss://"),
        "{err}"
    );
}

#[tokio::test]
async fn a_throttle_store_built_from_the_cache_url_trusts_its_ca_cert() {
    use cached_core::throttle::{store_from_url, Rate};
    let server = RedisServer::start_tls();
    // The same URL a TLS cache is configured with, cache-only parameters included.
    let url = format!(
        "{}?ca_cert={}&key_prefix=tls&default_ttl=60&connect_timeout=2000",
        server.url(),
        server.ca_path().display()
    );
    let store = store_from_url(&url).expect("a valid rediss:// throttle store URL");
    let rate = Rate::parse("2/minute").expect("rate");
    for admitted in [true, true, false] {
        let decision = store
            .check("throttle:anon:2/minute:ip:10.0.0.1", rate)
            .await
            .expect("a check over TLS with the private CA");
        assert_eq!(decision.admitted, admitted, "{decision:?}");
    }
    assert_eq!(
        server
            .cli(&["ZCARD", "tls:throttle:anon:2/minute:ip:10.0.0.1"])
            .trim(),
        "2"
    );
}
