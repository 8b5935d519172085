#![doc = include_str!("../docs/crate.md")]

#[cfg(all(
    feature = "redis",
    not(any(feature = "bincode", feature = "postcard", feature = "json"))
))]
compile_error!(
    "cached-kit: the `redis` feature stores encoded values and needs a codec: enable `bincode` (the default), `postcard` or `json`"
);

pub use cached_core::backend;
pub use cached_core::codec;
pub use cached_core::key;
pub use cached_core::throttle;
pub use cached_core::{
    Backend, Cache, CacheBuilder, CacheError, CacheSlot, CacheStats, CacheUrl, Cacheable, Caches,
    Codec, ComputeOptions, DummyBackend, DEFAULT_TTL, LOCK_TTL, NO_EXPIRY,
};

#[cfg(feature = "memory")]
pub use cached_core::MemoryBackend;

#[cfg(feature = "redis")]
pub use cached_redis as redis;

pub use cached_macros::{cache_evict, cache_fn};

/// The `"default"` cache: in memory unless `CACHE_URL` or [`caches().insert`](Caches::insert)
/// says otherwise.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// let cache = cached_kit::cache();
/// cache.set("product:42", &"lamp".to_string(), Duration::from_secs(300)).await?;
/// let name: Option<String> = cache.get("product:42").await?;
/// assert_eq!(name.as_deref(), Some("lamp"));
/// # Ok::<(), cached_kit::CacheError>(())
/// # }).unwrap();
/// ```
pub fn cache() -> Cache {
    register_backends();
    cached_core::cache()
}

/// The registry of named caches (Django's `CACHES`).
///
/// ```
/// use cached_kit::{caches, Cache};
/// caches().insert(Cache::from_url_as("reports", "code", "memory://?max_entries=100").unwrap());
/// assert_eq!(caches().get("reports").unwrap().alias(), "reports");
/// ```
pub fn caches() -> &'static Caches {
    register_backends();
    cached_core::caches()
}

/// Makes the URL schemes of the enabled backend features known to [`Cache::from_url`].
fn register_backends() {
    #[cfg(feature = "redis")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(cached_redis::register);
    }
}

/// Used by the code the macros generate. Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use cached_core;
    pub use std;

    // `#[cache_fn]` and `#[cache_evict]`.
    pub use cached_core::argkey::{ArgKey, KeyArg};
    pub use cached_core::memoize::{
        assert_cacheable, block_on, evict, infallible, invalidate, is_some, memoize, ready,
        ready_ok, refresh, succeeded, Spec,
    };
    pub use cached_core::{CacheError, CacheSlot};
    pub use std::convert::Infallible;

    /// Adds an argument to a default key (a function, so that a type that cannot be
    /// keyed is reported on the argument).
    pub fn key_arg<T: KeyArg + ?Sized>(key: &mut ArgKey, value: &T) {
        key.arg(value);
    }

    /// Resolves a named cache for generated code, with the facade's backends registered.
    pub fn slot_get(
        slot: &cached_core::CacheSlot,
    ) -> Result<cached_core::Cache, cached_core::CacheError> {
        super::register_backends();
        slot.get()
    }
}
