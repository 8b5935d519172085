//! Throttling: DRF's rate limits, exact in memory and across processes.
//!
//! A [`Rate`] says how many requests a client may make per period (`"10/minute"`). A
//! [`ThrottleStore`] keeps, per client key, a sliding log of the requests it admitted
//! and decides atomically whether the next one fits: at most N requests in any trailing
//! window, refused requests not counted. [`MemoryThrottleStore`] does this for one
//! process; `cached_redis::throttle::RedisThrottleStore` across processes, with one
//! round trip per check on the Redis server's clock.
//!
//! With the `axum` feature, [`ThrottleLayer`] (tower) and the `#[throttle]` attribute
//! apply throttles to routes and handlers, with DRF's scopes ([`Scope`]: `user`, `anon`,
//! named). A refused request gets `429 Too Many Requests` with `Retry-After` (whole
//! seconds, rounded up, until a slot frees) and these headers, which admitted responses
//! from a [`ThrottleLayer`] carry too:
//!
//! | header | value |
//! |---|---|
//! | `RateLimit-Limit` | the rate's count |
//! | `RateLimit-Remaining` | requests left in the window |
//! | `RateLimit-Reset` | whole seconds (rounded up) until the oldest counted request leaves the window, so that one more is admitted |
//! | `RateLimit-Policy` | `{count};w={period seconds}` |
//!
//! These are the separate fields of the IETF `RateLimit` header draft as most servers
//! and clients use them today. When several throttles apply, all are evaluated; a
//! refusal reports the throttle with the longest wait, and an admitted response the one
//! with the fewest requests left.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use cached_core::throttle::{MemoryThrottleStore, Rate, ThrottleStore};
//! let store = MemoryThrottleStore::default();
//! let rate = Rate::parse("1/day")?;
//! assert!(store.check("client", rate).await?.admitted);
//! let refused = store.check("client", rate).await?;
//! assert!(!refused.admitted);
//! assert_eq!(refused.retry_after_secs(), 86_400);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod memory;

#[cfg(feature = "axum")]
mod layer;
#[cfg(feature = "axum")]
mod scope;

pub use crate::config::registry::throttle_store_from_url as store_from_url;
pub use cached_backend::{Decision, ParseRateError, Rate, ThrottleStore};
pub use memory::{MemoryThrottleStore, DEFAULT_MAX_KEYS};

#[cfg(feature = "axum")]
pub use layer::{
    default_store, set_default_store, set_fail_closed, set_trusted_proxies, Throttle,
    ThrottleLayer, ThrottleService, ThrottleSpec, Throttled,
};
#[cfg(feature = "axum")]
pub use scope::{client_ip, Scope, ThrottleIdentity};
