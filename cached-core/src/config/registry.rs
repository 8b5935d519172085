//! The one place a URL scheme becomes a backend or a throttle store.
//!
//! Resolution order: this crate's own schemes (`memory`, `dummy`), then schemes you
//! [registered](register_scheme), then the schemes of the backend crates that the
//! enabled cargo features pull in (`cached_features::schemes()`, a list fixed at compile
//! time: nothing needs to run first). A scheme that exists behind a feature that is off
//! is an error naming the feature (`cached_features::feature_for`); any other scheme an
//! error listing the known ones.

use std::sync::{Arc, PoisonError, RwLock};

use cached_backend::{Backend, CacheError, CacheUrl, Scheme, ThrottleStore};

use crate::throttle::MemoryThrottleStore;

/// The parameters every cache URL takes, for error messages.
pub(crate) const COMMON_PARAMS: &str = "key_prefix, version, default_ttl, codec";

static REGISTERED: RwLock<Vec<Scheme>> = RwLock::new(Vec::new());

/// Makes a scheme of your own known to every entry point (Django's custom cache
/// backends): `CACHE_URL=mystore://...` then builds your backend. Register before the
/// first use of a URL with that scheme; a later registration of a scheme replaces the
/// earlier. The built-in schemes (`memory`, `dummy`) cannot be replaced.
///
/// ```
/// use std::sync::Arc;
/// use cached_core::{register_scheme, Backend, Cache, CacheUrl, DummyBackend, Scheme};
///
/// fn nothing(url: &mut CacheUrl) -> Result<Arc<dyn Backend>, cached_core::CacheError> {
///     url.finish("none")?;
///     Ok(Arc::new(DummyBackend::new()))
/// }
/// register_scheme(Scheme { name: "nothing", backend: nothing, throttle_store: None });
/// assert_eq!(Cache::from_url("nothing://").unwrap().backend().name(), "dummy");
/// ```
pub fn register_scheme(scheme: Scheme) {
    let mut registered = REGISTERED.write().unwrap_or_else(PoisonError::into_inner);
    registered.retain(|s| s.name != scheme.name);
    registered.push(scheme);
}

/// The scheme called `name`, from those registered in code or provided by features.
fn find(name: &str) -> Option<Scheme> {
    let registered = REGISTERED.read().unwrap_or_else(PoisonError::into_inner);
    registered
        .iter()
        .chain(cached_features::schemes())
        .find(|s| s.name == name)
        .copied()
}

/// The error for a scheme nobody provides.
fn unknown(url: &CacheUrl, what: &str) -> CacheError {
    let scheme = url.scheme();
    if let Some(feature) = cached_features::feature_for(scheme) {
        return CacheError::FeatureDisabled {
            what: format!("the {scheme}:// URL in {}", url.origin()),
            feature,
        };
    }
    let mut known: Vec<String> = ["memory", "dummy"]
        .iter()
        .map(|s| format!("{s}://"))
        .collect();
    let registered = REGISTERED.read().unwrap_or_else(PoisonError::into_inner);
    known.extend(
        registered
            .iter()
            .chain(cached_features::schemes())
            .map(|s| format!("{}://", s.name)),
    );
    CacheError::config(
        url.origin(),
        format!(
            "unknown scheme `{scheme}://` for {what}; known schemes: {}",
            known.join(", ")
        ),
    )
}

/// The backend `url` describes, its parameters consumed (the common ones already taken).
pub(crate) fn backend_from_url(url: &mut CacheUrl) -> Result<Arc<dyn Backend>, CacheError> {
    match url.scheme() {
        "memory" => memory_backend(url),
        "dummy" => {
            url.finish(COMMON_PARAMS)?;
            Ok(Arc::new(crate::backend::dummy::DummyBackend::new()))
        }
        scheme => match find(scheme) {
            Some(s) => (s.backend)(url),
            None => Err(unknown(url, "a cache")),
        },
    }
}

/// The throttle store `url` describes: `memory://?max_keys=N` (one process) or the
/// store of a backend crate (`redis://...`: shared by every process using that server).
///
/// ```
/// let store = cached_core::throttle::store_from_url("memory://?max_keys=1000").unwrap();
/// assert_eq!(store.name(), "memory");
/// assert!(cached_core::throttle::store_from_url("dummy://").is_err());
/// ```
pub fn throttle_store_from_url(url: &str) -> Result<Arc<dyn ThrottleStore>, CacheError> {
    let mut url = CacheUrl::parse("a throttle store URL", url)?;
    match url.scheme() {
        "memory" => {
            if !url.location().is_empty() && url.location() != "/" {
                return Err(CacheError::config(
                    url.origin(),
                    format!("memory:// takes no host or path (got `{}`)", url.location()),
                ));
            }
            let max_keys = url.take_parsed::<usize>("max_keys", "a whole number of keys")?;
            url.finish("max_keys")?;
            Ok(Arc::new(match max_keys {
                Some(n) => MemoryThrottleStore::with_max_keys(n),
                None => MemoryThrottleStore::default(),
            }))
        }
        scheme => match find(scheme).and_then(|s| s.throttle_store) {
            Some(factory) => factory(&mut url),
            None if find(scheme).is_some() => Err(CacheError::config(
                url.origin(),
                format!("{scheme}:// caches cannot hold throttle logs; use memory:// or redis://"),
            )),
            None => Err(unknown(&url, "a throttle store")),
        },
    }
}

#[cfg(feature = "memory")]
fn memory_backend(url: &mut CacheUrl) -> Result<Arc<dyn Backend>, CacheError> {
    use crate::backend::memory::{Bound, MemoryBackend, DEFAULT_MAX_ENTRIES};
    if !url.location().is_empty() && url.location() != "/" {
        return Err(CacheError::config(
            url.origin(),
            format!(
                "memory:// takes no host or path (got `{}`); write `memory://?max_entries=N`",
                url.location()
            ),
        ));
    }
    let entries = url.take_parsed::<u64>("max_entries", "a whole number of entries")?;
    let bytes = url.take_parsed::<u64>("max_bytes", "a whole number of bytes")?;
    url.finish(&format!("max_entries, max_bytes, {COMMON_PARAMS}"))?;
    let bound = match (entries, bytes) {
        (Some(_), Some(_)) => {
            return Err(CacheError::config(
                url.origin(),
                "give either `max_entries` or `max_bytes`, not both",
            ))
        }
        (_, Some(b)) => Bound::Bytes(b),
        (e, None) => Bound::Entries(e.unwrap_or(DEFAULT_MAX_ENTRIES)),
    };
    Ok(Arc::new(MemoryBackend::new(bound)))
}

#[cfg(not(feature = "memory"))]
fn memory_backend(url: &mut CacheUrl) -> Result<Arc<dyn Backend>, CacheError> {
    Err(CacheError::FeatureDisabled {
        what: format!("the memory:// URL in {}", url.origin()),
        feature: "memory",
    })
}
