//! The shared backend conformance suite against a Redis backend with a near tier, live
//! (its invalidation connection up) before each case starts: every read that can be
//! answered in process is, and every write keeps it coherent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cached_core::Backend;
use cached_redis::{NearConfig, RedisBackend, RedisConfig};
use cached_testing::RedisServer;

async fn backend() -> Arc<dyn Backend> {
    let config = RedisConfig::from_url(&RedisServer::shared().url())
        .expect("a valid Redis URL")
        .near(NearConfig::new(1_000));
    let backend = RedisBackend::new(config).expect("a backend");
    // A read starts the invalidation connection; the near tier is used once it is up.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !backend.near_status().is_some_and(|s| s.live) {
        let _ = backend.get("near-conformance:warm-up").await;
        assert!(Instant::now() < deadline, "the near tier never went live");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Arc::new(backend)
}

cached_testing::backend_conformance!(storing, backend);
