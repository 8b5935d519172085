//! What a storage implements to plug into [cached-kit](https://docs.rs/cached-kit).
//!
//! The runtime (`cached-core`) and every backend crate (`cached-redis`, or one of your
//! own) meet here, so that a backend crate depends on these few types and not on the
//! runtime:
//!
//! - [`Backend`], with [`Value`] and [`Ttl`]: a cache storage.
//! - [`ThrottleStore`], with [`Decision`], [`Rate`] and [`Gcra`]: where throttles keep
//!   their state.
//! - [`CacheError`]: the one error type.
//! - [`CacheUrl`] and [`Scheme`]: how a `scheme://...` URL becomes a backend or a
//!   throttle store. The `cached-features` crate lists the schemes the enabled cargo
//!   features provide, and the runtime resolves every URL through that one list.
//!
//! Users of cached-kit never need this crate directly: the facade re-exports it all.
//!
//! ```
//! use cached_backend::{CacheUrl, Rate};
//! let mut url = CacheUrl::parse("CACHE_URL", "redis://cache:6379/0?key_prefix=shop").unwrap();
//! assert_eq!(url.take("key_prefix").as_deref(), Some("shop"));
//! assert_eq!(Rate::parse("10/minute").unwrap().count(), 10);
//! ```

mod backend;
mod error;
mod rate;
mod throttle;
mod url;

use std::sync::Arc;

pub use backend::{Backend, Ttl, Value};
pub use error::{env_suffix, CacheError};
pub use rate::{ParseRateError, Rate};
pub use throttle::{Decision, Gcra, ThrottleStore};
pub use url::CacheUrl;

/// Builds a cache backend from a parsed URL, consuming the parameters it understands.
pub type BackendFactory = fn(&mut CacheUrl) -> Result<Arc<dyn Backend>, CacheError>;

/// Builds a throttle store from a parsed URL, consuming the parameters it understands.
pub type ThrottleStoreFactory = fn(&mut CacheUrl) -> Result<Arc<dyn ThrottleStore>, CacheError>;

/// One URL scheme a backend crate provides: how to build a cache backend for it, and a
/// throttle store when the storage can hold one.
///
/// ```
/// use std::sync::Arc;
/// use cached_backend::{Backend, CacheUrl, Scheme};
/// fn nothing(url: &mut CacheUrl) -> Result<Arc<dyn Backend>, cached_backend::CacheError> {
///     url.finish("none")?;
///     Err(cached_backend::CacheError::config(url.origin(), "this example builds nothing"))
/// }
/// let scheme = Scheme { name: "example", backend: nothing, throttle_store: None };
/// assert_eq!(scheme.name, "example");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Scheme {
    /// The scheme, lower case, without `://` (`redis`, `rediss`).
    pub name: &'static str,
    /// Builds a cache backend.
    pub backend: BackendFactory,
    /// Builds a throttle store, if this storage has one.
    pub throttle_store: Option<ThrottleStoreFactory>,
}
