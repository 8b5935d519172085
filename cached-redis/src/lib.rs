//! The Redis backend and throttle store of [cached-kit](https://docs.rs/cached-kit).
//!
//! Users reach it through the facade: enable its `redis` feature and set
//! `CACHE_URL=redis://host:6379/0` (or `CACHE_URL_<ALIAS>` for a named cache), or build a
//! [`RedisBackend`] in code. The guide is `docs/redis.md` in the repository.
//!
//! Two fronts share one connection module: [`RedisBackend`] (the cache `Backend`) and
//! [`RedisThrottleStore`](throttle::RedisThrottleStore) (throttle state: sliding logs and
//! GCRA arrival times). Both are built from a [`RedisConfig`] (or a URL), and a store
//! made [from a backend](throttle::RedisThrottleStore::from_backend) shares its
//! connection.
//!
//! - One multiplexed, auto-reconnecting connection per Tokio runtime (the `redis` crate's
//!   `MultiplexedConnection`, made again when it breaks, or its async cluster client),
//!   made on first use: Redis being down at start-up is not a start-up failure.
//! - Explicit timeouts (`connect_timeout`, `response_timeout`, milliseconds, 1000 by
//!   default; on a single server the response timeout is kept by a watchdog per
//!   connection, not a timer per request, see `docs/redis.md`) and a circuit breaker: after `breaker_threshold` (5) consecutive failures,
//!   calls fail at once for `breaker_cooldown` (1000 ms), then one probe goes through; the
//!   first success closes it. A memoized function therefore keeps answering (uncached) at
//!   full speed while Redis is down, and is cached again when Redis returns, without a
//!   restart.
//! - Failures keep their cause: a `CacheError::Backend` whose
//!   [`source`](std::error::Error::source) is the [`RedisError`] (or
//!   [`BreakerOpen`]); timeouts are `CacheError::Timeout`.
//! - `get_many` is one `MGET`, `set_many` one pipeline, TTLs are `PX` milliseconds,
//!   `add` is `SET NX PX`, `incr` an atomic script (`INCRBY`, expiry set only when it
//!   created the key), `clear` is `SCAN MATCH <prefix>*` + `UNLINK`, never `FLUSHDB`.
//! - Counters are plain decimal strings (so `INCRBY` works and `redis-cli` shows them);
//!   every other value is codec-encoded bytes starting with a non-ASCII header.
//! - A near tier on request (`near_max_entries=N`, [`NearConfig`]): recently read entries
//!   also kept in process and served through `Backend::get_now` (no round trip, no
//!   future), kept coherent across processes by Redis's client-side caching (or pub/sub,
//!   [`Invalidation`]) on one more connection, bypassed while that connection is down.
//!   [`RedisBackend::near_status`] tells its state.
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

use cached_backend::{Backend, CacheError, CacheUrl, Scheme, ThrottleStore};

mod backend;
mod breaker;
mod config;
mod connection;
mod counter;
mod near;
mod slot;
pub mod throttle;
#[cfg(feature = "tls")]
mod tls;

pub use backend::RedisBackend;
pub use breaker::{BreakerOpen, BreakerState};
pub use config::{
    RedisConfig, DEFAULT_BREAKER_COOLDOWN, DEFAULT_BREAKER_THRESHOLD, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_RESPONSE_TIMEOUT,
};
pub use connection::RedisMetrics;
pub use near::{Invalidation, NearConfig, NearStatus};

/// The `redis` crate's error types, from the version this crate is built on. A Redis
/// failure reaches you as a `CacheError::Backend` whose
/// [`source`](std::error::Error::source) is a [`RedisError`]: downcast it through this
/// re-export (so the versions match) and match on its [`kind`](RedisError::kind) or
/// [`code`](RedisError::code), never its text.
///
/// ```
/// use std::error::Error;
/// use cached_backend::CacheError;
/// use cached_redis::RedisError;
///
/// fn redis_code(err: &CacheError) -> Option<&str> {
///     err.source()?.downcast_ref::<RedisError>()?.code()
/// }
/// let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// let refused = CacheError::backend("redis", RedisError::from(io));
/// assert_eq!(redis_code(&refused), None);
/// assert!(refused.source().is_some_and(|s| s.is::<RedisError>()));
/// ```
pub use redis::{ErrorKind, RedisError, ServerErrorKind};

/// The URL schemes this crate provides, for the runtime's one list of backends
/// (`cached-features`): `redis`, plus `rediss` (feature `tls`) and `redis+cluster` /
/// `redis-cluster` (feature `cluster`). Each builds a cache backend and a throttle
/// store. Nothing connects when they build: the connection is made on first use.
///
/// ```
/// let names: Vec<&str> = cached_redis::schemes().iter().map(|s| s.name).collect();
/// assert!(names.contains(&"redis"));
/// let mut url = cached_backend::CacheUrl::parse("CACHE_URL", "redis://127.0.0.1:1/0").unwrap();
/// let backend = (cached_redis::schemes()[0].backend)(&mut url).unwrap();
/// assert_eq!(backend.name(), "redis");
/// ```
pub fn schemes() -> Vec<Scheme> {
    let scheme = |name| Scheme {
        name,
        backend: backend_factory,
        throttle_store: Some(throttle_store_factory),
    };
    #[allow(unused_mut)]
    let mut schemes = vec![scheme("redis")];
    #[cfg(feature = "tls")]
    schemes.push(scheme("rediss"));
    #[cfg(feature = "cluster")]
    schemes.extend([scheme("redis+cluster"), scheme("redis-cluster")]);
    schemes
}

/// A cache backend from a URL: synchronous and lazy (nothing connects here).
fn backend_factory(url: &mut CacheUrl) -> Result<Arc<dyn Backend>, CacheError> {
    let config = RedisConfig::from_cache_url(url)?;
    url.finish(config::REDIS_PARAMS)?;
    Ok(Arc::new(RedisBackend::new(config)?))
}

/// A throttle store from a URL (a cache URL serves as it is; `key_prefix` keeps apps
/// sharing a server apart).
fn throttle_store_factory(url: &mut CacheUrl) -> Result<Arc<dyn ThrottleStore>, CacheError> {
    let store = throttle::RedisThrottleStore::from_cache_url(url)?;
    url.finish(config::THROTTLE_PARAMS)?;
    Ok(Arc::new(store))
}
