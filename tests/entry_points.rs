//! Every entry point sees every backend the enabled features provide, as the program's
//! first call (SPEC §10.5): each case runs in a fresh child process (this test binary,
//! re-run) whose very first cached-kit call is the entry point under test, configured
//! with a `redis://` URL of a real `redis-server`. The parent then looks in Redis.
//!
//! Before, Redis schemes were registered by the facade's own first entry points, so a
//! `Cache::from_url`, a `CacheLayer` or a `#[cache_view]` called first ran uncached
//! (or failed) with "needs the `redis` feature".

use std::process::{Command, Stdio};
use std::time::Duration;

use axum::{routing::get, Router};
use cached_kit::{cache_evict, cache_fn, cache_view, CacheLayer};
use cached_testing::RedisServer;

const ROLE: &str = "CACHED_KIT_ENTRY_POINT";

#[cache_fn(ttl = 60, cache = "fn-entry", key = "answer")]
async fn answer() -> u32 {
    42
}

#[cache_evict(cache = "evict-entry", key = "stale")]
async fn evict_stale() {}

#[cache_view(ttl = 60, cache = "view-entry")]
async fn view() -> &'static str {
    "a cached view"
}

async fn layer_page() -> &'static str {
    "a cached page"
}

/// Serves `app` on a free loopback port and GETs `path` once with a real client.
async fn get_once(app: Router, path: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    reqwest::get(format!("http://{addr}{path}"))
        .await
        .expect("request")
        .text()
        .await
        .expect("body")
}

/// The child: makes the one call its role names, first thing in the process.
async fn run_child() -> bool {
    let Ok(role) = std::env::var(ROLE) else {
        return false;
    };
    let url = std::env::var("REDIS_URL").expect("REDIS_URL");
    let minute = Duration::from_secs(60);
    match role.as_str() {
        "cache" => cached_kit::cache()
            .set("entry:cache", &1u8, minute)
            .await
            .expect("set through cache()"),
        "caches" => cached_kit::caches()
            .get("alias-entry")
            .expect("the alias resolves")
            .set("entry:caches", &1u8, minute)
            .await
            .expect("set through caches()"),
        "from_url" => cached_kit::Cache::from_url(&format!("{url}?key_prefix=fromurl"))
            .expect("a redis:// URL builds")
            .set("entry:from_url", &1u8, minute)
            .await
            .expect("set through Cache::from_url"),
        "cache_fn" => assert_eq!(answer().await, 42),
        "cache_evict" => evict_stale().await,
        "cache_view" => {
            let app = Router::new().route("/view", get(view));
            assert_eq!(get_once(app, "/view").await, "a cached view");
        }
        "cache_layer" => {
            let app = Router::new()
                .route("/page", get(layer_page))
                .layer(CacheLayer::new().cache("layer-entry"));
            assert_eq!(get_once(app, "/page").await, "a cached page");
        }
        "throttle_store" => {
            let store = cached_kit::throttle::store_from_url(&url).expect("a redis:// store");
            assert_eq!(store.name(), "redis");
            let rate = cached_kit::throttle::Rate::parse("5/minute").expect("rate");
            assert!(
                store
                    .check("entry:throttle", rate)
                    .await
                    .expect("check")
                    .admitted
            );
        }
        other => panic!("unknown role {other}"),
    }
    true
}

fn run_role(server: &RedisServer, role: &str) {
    let url = server.url();
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "every_entry_point_sees_redis_as_the_first_call",
            "--exact",
            "--nocapture",
        ])
        .env(ROLE, role)
        .env("REDIS_URL", &url)
        .env("CACHE_URL", &url)
        .env("CACHE_URL_ALIAS_ENTRY", format!("{url}?key_prefix=alias"))
        .env("CACHE_URL_FN_ENTRY", format!("{url}?key_prefix=fn"))
        .env("CACHE_URL_EVICT_ENTRY", format!("{url}?key_prefix=evict"))
        .env("CACHE_URL_VIEW_ENTRY", format!("{url}?key_prefix=view"))
        .env("CACHE_URL_LAYER_ENTRY", format!("{url}?key_prefix=layer"))
        .stdin(Stdio::null())
        .output()
        .expect("run the child");
    assert!(
        out.status.success(),
        "{role} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn keys(server: &RedisServer, pattern: &str) -> Vec<String> {
    server
        .cli(&["--raw", "KEYS", pattern])
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entry_point_sees_redis_as_the_first_call() {
    if run_child().await {
        return;
    }
    let server = RedisServer::start();
    server.cli(&["SET", "evict:1:stale", "x"]);
    for (role, pattern) in [
        ("cache", ":1:entry:cache"),
        ("caches", "alias:1:entry:caches"),
        ("from_url", "fromurl:1:entry:from_url"),
        ("cache_fn", "fn:1:answer"),
        ("cache_view", "view:1:view:*"),
        ("cache_layer", "layer:1:view:*"),
        ("throttle_store", "*entry:throttle*"),
    ] {
        run_role(&server, role);
        assert!(
            !keys(&server, pattern).is_empty(),
            "{role}: nothing under `{pattern}` in Redis; keys: {:?}",
            keys(&server, "*")
        );
    }
    run_role(&server, "cache_evict");
    assert!(
        keys(&server, "evict:1:stale").is_empty(),
        "cache_evict as the first call deleted the key in Redis"
    );
}
