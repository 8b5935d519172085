//! The runtime of [cached-kit](https://docs.rs/cached-kit): the [`Backend`] trait, the
//! [`Cache`] handle with Django's low-level cache API, named caches and `CACHE_URL`,
//! codecs, the in-memory backend, and (feature `axum`) HTTP caching and throttling.
//!
//! Users depend on the `cached-kit` facade, which re-exports all of this; this crate
//! is what generated code builds on. Backend crates (like `cached-redis`) depend on
//! `cached-backend` only.
//!
//! # The public API
//!
//! | item | what |
//! |---|---|
//! | [`cache()`], [`caches()`], [`Caches`] | the `"default"` cache and the registry of named caches (`CACHE_URL`, `CACHE_URL_<ALIAS>`) |
//! | [`Cache`], [`CacheBuilder`], [`Cacheable`], [`ComputeOptions`], [`CacheStats`] | the handle: Django's low-level API, memoization, tags (`invalidate_tags`, `set_tagged`) and stale-while-revalidate (`compute_stale`), counters |
//! | [`DEFAULT_TTL`], [`NO_EXPIRY`], [`LOCK_TTL`] | the ttls with a meaning |
//! | [`Backend`], [`Value`], [`Ttl`], [`backend::memory`], [`backend::dummy`] | storages: the trait and the in-process ones |
//! | [`register_scheme`], [`Scheme`], [`CacheUrl`], [`BackendFactory`], [`ThrottleStoreFactory`] | URLs and backends of your own |
//! | [`CacheError`] | the one error type |
//! | [`codec`] | the codecs and the header of encoded values |
//! | [`key`] | Django's key layout and the rule for long or unsafe keys |
//! | [`throttle`] | rates, throttle stores, and (feature `axum`) `ThrottleLayer`, configured rates, client addresses; its docs list its API |
//! | `http` (feature `axum`) | per-view caching: `CacheLayer` and the storage rules |
//!
//! Everything else is private, or `#[doc(hidden)]` under `__private` for the code the
//! macros generate (no stability promise).
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

mod argkey;
pub mod backend;
mod blocking;
mod cache;
pub mod codec;
mod config;
#[cfg(feature = "axum")]
pub mod http;
pub mod key;
mod log;
mod observe;
mod stats;
pub mod throttle;

pub use backend::dummy::DummyBackend;
#[cfg(feature = "memory")]
pub use backend::memory::MemoryBackend;
pub use backend::{Backend, Ttl, Value};
pub use cache::{Cache, CacheBuilder, Cacheable, ComputeOptions, DEFAULT_TTL, LOCK_TTL, NO_EXPIRY};
pub use cached_backend::{BackendFactory, CacheError, CacheUrl, Scheme, ThrottleStoreFactory};
pub use codec::Codec;
#[allow(unused_imports)] // the http module resolves named caches through it
pub(crate) use config::CacheSlot;
pub use config::{cache, caches, register_scheme, Caches};
pub use stats::CacheStats;

/// What the code the `cached-kit` macros generate calls, re-exported by the facade's
/// own `__private`. Not a public API: it changes with the macros, in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::argkey::{encode, ArgKey, ArgKeyError, KeyArg};
    pub use crate::blocking::block_on;
    pub use crate::cache::compute::memoize;
    pub use crate::config::CacheSlot;

    /// What `#[throttle]` generates code against: the extractor it adds to a handler
    /// and the trait carrying the handler's throttles.
    #[cfg(feature = "axum")]
    pub mod throttle {
        pub use crate::throttle::extract::{ThrottleSpec, Throttled};
    }
}
