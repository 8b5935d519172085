//! The backends that [cached-kit](https://docs.rs/cached-kit)'s cargo features enable,
//! in one place.
//!
//! The runtime (`cached-core`) resolves every `scheme://` URL, from every entry point
//! (`cache()`, `caches()`, `Cache::from_url`, `CacheLayer`, `ThrottleLayer`, the
//! macros), through [`schemes`]: a fixed list decided at compile time by the features
//! the facade forwards here. Nothing is registered at run time, so no entry point
//! depends on another having been called first, and the runtime itself names no
//! backend crate and no facade feature.
//!
//! | feature of `cached-kit` | feature here | schemes |
//! |---|---|---|
//! | `redis` | `redis` | `redis://` |
//! | `redis-tls` | `redis-tls` | `rediss://` |
//! | `redis-cluster` | `redis-cluster` | `redis+cluster://`, `redis-cluster://` |
//!
//! ```
//! // Whatever the features, a scheme is either provided or names the feature it needs.
//! for scheme in ["redis", "rediss", "redis+cluster"] {
//!     let provided = cached_features::schemes().iter().any(|s| s.name == scheme);
//!     assert!(provided || cached_features::feature_for(scheme).is_some());
//! }
//! ```

use std::sync::LazyLock;

use cached_backend::Scheme;

/// The URL schemes of every backend crate the enabled features pull in.
pub fn schemes() -> &'static [Scheme] {
    static SCHEMES: LazyLock<Vec<Scheme>> = LazyLock::new(|| {
        #[allow(unused_mut)]
        let mut schemes = Vec::new();
        #[cfg(feature = "redis")]
        schemes.extend(cached_redis::schemes());
        schemes
    });
    &SCHEMES
}

/// For a scheme that exists but whose feature is off, the `cached-kit` feature that
/// provides it (`rediss` → `redis-tls`); `None` for a scheme that is provided or that
/// no feature provides.
pub fn feature_for(scheme: &str) -> Option<&'static str> {
    if schemes().iter().any(|s| s.name == scheme) {
        return None;
    }
    match scheme {
        "redis" => Some("redis"),
        "rediss" => Some("redis-tls"),
        "redis+cluster" | "redis-cluster" => Some("redis-cluster"),
        _ => None,
    }
}
