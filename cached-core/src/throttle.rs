//! Throttling: DRF's rate limits, exact in memory and across processes.
//!
//! A [`Rate`] says how many requests a client may make per period (`"10/minute"`). A
//! [`ThrottleStore`] keeps, per client key, the state of a throttle and decides
//! atomically whether the next request fits. By default that state is a sliding log of
//! the requests admitted (DRF's semantics): at most N requests in any trailing window,
//! refused requests not counted. [`MemoryThrottleStore`] does this for one process;
//! `cached_redis::throttle::RedisThrottleStore` across processes, with one round trip
//! per check on the Redis server's clock.
//!
//! # The public API
//!
//! | item | what |
//! |---|---|
//! | [`Rate`], [`ParseRateError`] | DRF's rates: `"10/minute"`, `"100/hr"`, `"10/5m"` |
//! | [`ThrottleStore`], [`Decision`], [`Gcra`], [`MemoryThrottleStore`], [`DEFAULT_MAX_KEYS`], [`store_from_url`] | where throttle state lives |
//! | [`Throttle`], [`Algorithm`], [`Scope`], [`ThrottleIdentity`] | what a throttle counts, and whom (axum) |
//! | [`ThrottleLayer`], [`ThrottleService`] | throttles on a router or service (axum) |
//! | [`ThrottleRates`], [`set_rates`], [`rates`], [`check_rates`], [`throttles_of`], [`ThrottledHandler`], [`THROTTLE_RATES`] | rates from configuration (axum) |
//! | [`Refusal`], [`set_refusal_response`] | the response to a refused request (axum) |
//! | [`ClientIp`], [`ProxyHeader`], [`DEFAULT_IPV6_PREFIX`], [`set_client_ip`], [`set_trusted_proxies`] | the client's address behind proxies (axum) |
//! | [`default_store`], [`set_default_store`], [`set_fail_closed`] | process-wide defaults of `#[throttle]` and layers (axum) |
//!
//! The `#[throttle]` attribute (in `cached-kit`) generates code against the
//! `#[doc(hidden)]` `__private::throttle` module (the extractor it adds to a handler);
//! that is not a public API.
//!
//! # Throttles
//!
//! With the `axum` feature, [`ThrottleLayer`] (tower) and the `#[throttle]` attribute
//! apply throttles to routes and handlers, with DRF's scopes ([`Scope`]: `user`,
//! `anon`, named). A refused request gets `429 Too Many Requests` with `Retry-After`
//! (whole seconds, rounded up, until a slot frees) and these headers, which admitted
//! responses from a [`ThrottleLayer`] carry too:
//!
//! | header | value |
//! |---|---|
//! | `RateLimit-Limit` | the rate's count (GCRA: the burst) |
//! | `RateLimit-Remaining` | requests left now |
//! | `RateLimit-Reset` | whole seconds (rounded up) until one more request is admitted: the oldest counted request leaves the window (GCRA: the bucket refills by one) |
//! | `RateLimit-Policy` | `{count};w={period seconds}` (GCRA: `;burst={burst}` added) |
//!
//! These are the separate fields of the IETF `RateLimit` header draft as most servers
//! and clients use them today. When several throttles apply, all are evaluated; a
//! refusal reports the throttle with the longest wait, and an admitted response the one
//! with the fewest requests left. The refusal response is the application's to shape:
//! a function from the [`Refusal`] (scope, rate, limit, remaining, retry-after) to a
//! response, per layer ([`ThrottleLayer::refusal_response`]) or for `#[throttle]` and
//! every other layer ([`set_refusal_response`]).
//!
//! Refusals are logged at DEBUG level with their scope (the client's key only at
//! TRACE); store failures at WARN, at most once a second.
//!
//! # Algorithms
//!
//! The sliding log ([`Algorithm::SlidingLog`], the default) is exact and keeps up to
//! `count` instants per client. GCRA ([`Throttle::gcra`], `#[throttle(algorithm =
//! "gcra", burst = N)]`) keeps one instant per client: a fresh client may make `burst`
//! requests at once, then one per `period / count`. It is what `governor` and most
//! gateways do; use it for high rates (`1000/second`), where a log per client is large.
//! The memory store and the Redis store (`cached_kit::redis::throttle::RedisThrottleStore`:
//! one string per client, its TAT on the Redis server's clock, expiring when the bucket
//! is full again) implement both; a store of another crate without GCRA answers with a
//! configuration error ([`ThrottleStore::check_gcra`]), which a throttle treats as
//! misconfiguration.
//!
//! # Rates from configuration
//!
//! As DRF's `DEFAULT_THROTTLE_RATES`, a throttle may be written without a rate
//! (`#[throttle(scope = "uploads")]`, [`Throttle::configured`]): its rate is the one
//! [`ThrottleRates`] gives its scope's name, from code ([`set_rates`]) or from the
//! `THROTTLE_RATES` environment variable
//! (`THROTTLE_RATES="anon=10/minute,user=1000/day,uploads=5/minute"`), read on first use
//! if nothing was set in code. A bad entry is an error quoting it.
//!
//! Which scopes are *used* is known only to the code that builds the app: nothing runs
//! before `main` and no registry is filled behind your back. So the check is one call
//! at start-up, [`check_rates`], given the throttles of the handlers
//! ([`throttles_of`]`(handler)`) and layers ([`ThrottleLayer::throttles`]) the app
//! serves; it returns an error naming every scope without a rate. A throttle that was
//! not checked and has no rate fails closed on the first request that reaches it:
//! `500 Internal Server Error`, and an ERROR log naming the scope. It is never
//! silently unthrottled.
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
mod check;
#[cfg(feature = "axum")]
mod client_ip;
#[cfg(feature = "axum")]
pub(crate) mod extract;
#[cfg(feature = "axum")]
mod forwarded;
#[cfg(feature = "axum")]
mod layer;
#[cfg(feature = "axum")]
mod rates;
#[cfg(feature = "axum")]
mod refusal;
#[cfg(feature = "axum")]
mod scope;
#[cfg(feature = "axum")]
mod settings;

pub use crate::config::registry::throttle_store_from_url as store_from_url;
pub use cached_backend::{Decision, Gcra, ParseRateError, Rate, ThrottleStore};
pub use memory::{MemoryThrottleStore, DEFAULT_MAX_KEYS};

#[cfg(feature = "axum")]
pub use check::{Algorithm, Throttle};
#[cfg(feature = "axum")]
pub use client_ip::{ClientIp, ProxyHeader, DEFAULT_IPV6_PREFIX};
#[cfg(feature = "axum")]
pub use extract::{throttles_of, ThrottledHandler};
#[cfg(feature = "axum")]
pub use layer::{ThrottleLayer, ThrottleService};
#[cfg(feature = "axum")]
pub use rates::{check_rates, rates, set_rates, ThrottleRates, THROTTLE_RATES};
#[cfg(feature = "axum")]
pub use refusal::Refusal;
#[cfg(feature = "axum")]
pub use scope::{Scope, ThrottleIdentity};
#[cfg(feature = "axum")]
pub use settings::{
    default_store, set_client_ip, set_default_store, set_fail_closed, set_refusal_response,
    set_trusted_proxies,
};
