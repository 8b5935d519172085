//! The shared backend conformance suite against a real redis-server.

use std::sync::Arc;

use cached_core::Backend;
use cached_redis::RedisBackend;
use cached_testing::RedisServer;

async fn backend() -> Arc<dyn Backend> {
    let url = RedisServer::shared().url();
    Arc::new(RedisBackend::from_url(&url).expect("a valid Redis URL"))
}

cached_testing::backend_conformance!(storing, backend);
