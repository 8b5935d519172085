//! The runtime of [cached-kit](https://docs.rs/cached-kit): the [`Backend`] trait, the
//! [`Cache`] handle with Django's low-level cache API, named caches and `CACHE_URL`,
//! codecs, the in-memory backend, and (feature `axum`) HTTP caching and throttling.
//!
//! Users depend on the `cached-kit` facade, which re-exports all of this; this crate
//! is what backends (like `cached-redis`) and generated code build on.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! let cache = cached_core::cache();
//! cache.set("greeting", &"hello".to_string(), Duration::from_secs(60)).await?;
//! assert_eq!(cache.get::<String>("greeting").await?.as_deref(), Some("hello"));
//! # Ok::<(), cached_core::CacheError>(())
//! # }).unwrap();
//! ```

pub mod argkey;
pub mod backend;
pub mod blocking;
mod cache;
pub mod codec;
mod config;
mod flight;
#[cfg(feature = "axum")]
pub mod http;
pub mod key;
#[doc(hidden)]
pub mod memoize;
mod stats;
pub mod throttle;

pub use backend::{Backend, Ttl, Value};
pub use cache::{Cache, CacheBuilder, Cacheable, ComputeOptions, DEFAULT_TTL, LOCK_TTL, NO_EXPIRY};
pub use cached_backend::{BackendFactory, CacheError, CacheUrl, Scheme, ThrottleStoreFactory};
pub use codec::Codec;
pub use config::{cache, caches, register_scheme, CacheSlot, Caches};
pub use stats::CacheStats;

pub use backend::dummy::DummyBackend;
#[cfg(feature = "memory")]
pub use backend::memory::MemoryBackend;
