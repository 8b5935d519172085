//! The Redis backend of [cached-kit](https://docs.rs/cached-kit).
//!
//! Users reach it through the facade: enable its `redis` feature and set
//! `CACHE_URL=redis://host:6379/0` (or `CACHE_URL_<ALIAS>` for a named cache), or build a
//! [`RedisBackend`] in code. The guide is `docs/redis.md` in the repository.
//!
//! - One multiplexed, auto-reconnecting connection per backend (the `redis` crate's
//!   `ConnectionManager`, or its async cluster client), made on first use: Redis being
//!   down at start-up is not a start-up failure.
//! - Explicit timeouts (`connect_timeout`, `response_timeout`, milliseconds, 1000 by
//!   default) and a circuit breaker: after `breaker_threshold` (5) consecutive failures,
//!   calls fail at once for `breaker_cooldown` (1000 ms), then one probe goes through; the
//!   first success closes it. A memoized function therefore keeps answering (uncached) at
//!   full speed while Redis is down, and is cached again when Redis returns, without a
//!   restart.
//! - `get_many` is one `MGET`, `set_many` one pipeline, TTLs are `PX` milliseconds,
//!   `add` is `SET NX PX`, `incr` an atomic script (`INCRBY`, expiry set only when it
//!   created the key), `clear` is `SCAN MATCH <prefix>*` + `UNLINK`, never `FLUSHDB`.
//! - Counters are plain decimal strings (so `INCRBY` works and `redis-cli` shows them);
//!   every other value is codec-encoded bytes starting with a non-ASCII header.
//! - `rediss://` behind the `tls` feature (rustls; `ca_cert=/path.pem` to trust a private
//!   CA), `redis+cluster://h1:7000,h2:7001` behind the `cluster` feature.
//!
//! ```no_run
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use cached_core::Cache;
//! use cached_redis::RedisBackend;
//!
//! let backend = RedisBackend::from_url("redis://127.0.0.1:6379/0?connect_timeout=250")?;
//! let cache = Cache::builder(backend).key_prefix("shop").build();
//! cache.set("product:42", &"lamp".to_string(), Duration::from_secs(300)).await?;
//! let name: Option<String> = cache.get("product:42").await?;
//! # Ok::<(), cached_core::CacheError>(())
//! # }).unwrap();
//! ```

use std::sync::Arc;

use cached_core::{Backend, CacheError, CacheUrl};

mod backend;
mod breaker;
mod slot;
pub mod throttle;
#[cfg(feature = "tls")]
mod tls;
mod url;

#[cfg(feature = "_testing")]
#[doc(hidden)]
pub mod testing;

pub use backend::{RedisBackend, RedisMetrics};
pub use breaker::BreakerState;
pub use url::{
    RedisConfig, DEFAULT_BREAKER_COOLDOWN, DEFAULT_BREAKER_THRESHOLD, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_RESPONSE_TIMEOUT,
};

/// Registers the Redis URL schemes with `cached-core`, so that `CACHE_URL=redis://...`
/// works: `redis`, plus `rediss` (feature `tls`) and `redis+cluster` / `redis-cluster`
/// (feature `cluster`). The `cached-kit` facade calls it for you.
///
/// ```
/// cached_redis::register();
/// // Building a cache from a URL does not connect: this works with no Redis running.
/// let cache = cached_core::Cache::from_url("redis://127.0.0.1:1/0?key_prefix=shop").unwrap();
/// assert_eq!(cache.backend().name(), "redis");
/// ```
pub fn register() {
    cached_core::register_backend("redis", factory);
    #[cfg(feature = "tls")]
    cached_core::register_backend("rediss", factory);
    #[cfg(feature = "cluster")]
    {
        cached_core::register_backend("redis+cluster", factory);
        cached_core::register_backend("redis-cluster", factory);
    }
}

/// The `CACHE_URL` factory: synchronous and lazy (nothing connects here).
fn factory(url: &mut CacheUrl) -> Result<Arc<dyn Backend>, CacheError> {
    let config = RedisConfig::from_cache_url(url)?;
    url.finish(url::REDIS_PARAMS)?;
    Ok(Arc::new(RedisBackend::new(config)?))
}
