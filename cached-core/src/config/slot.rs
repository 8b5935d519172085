//! [`CacheSlot`]: a per-call-site handle on a named cache, for generated code.

use std::sync::{OnceLock, PoisonError, RwLock};

use cached_backend::CacheError;

use super::caches::caches;
use crate::cache::Cache;

/// A per-call-site handle on a named cache, for generated code (not a stable API): it
/// resolves the alias
/// once, and again only after [`Caches::insert`](crate::Caches::insert) changed the registry.
///
/// ```
/// static SLOT: cached_core::__private::CacheSlot = cached_core::__private::CacheSlot::new("default");
/// assert_eq!(SLOT.get().unwrap().alias(), "default");
/// ```
#[doc(hidden)]
pub struct CacheSlot {
    alias: &'static str,
    /// The first resolution: read without a lock while the registry is unchanged since.
    first: OnceLock<(u64, Cache)>,
    /// Any later resolution (the registry changed after the first).
    later: RwLock<Option<(u64, Cache)>>,
}

impl CacheSlot {
    /// A slot for `alias`.
    pub const fn new(alias: &'static str) -> Self {
        Self {
            alias,
            first: OnceLock::new(),
            later: RwLock::new(None),
        }
    }

    /// The cache, borrowed, when the first resolution still stands (the registry has not
    /// changed since): an atomic load, no reference count touched. `None` means "ask
    /// [`get`](Self::get)".
    ///
    /// ```
    /// static SLOT: cached_core::__private::CacheSlot = cached_core::__private::CacheSlot::new("default");
    /// assert!(SLOT.current().is_none(), "not resolved yet");
    /// let _ = SLOT.get();
    /// assert_eq!(SLOT.current().map(|c| c.alias()), Some("default"));
    /// ```
    #[inline]
    pub fn current(&self) -> Option<&Cache> {
        match self.first.get() {
            Some((g, cache)) if *g == caches().generation() => Some(cache),
            _ => None,
        }
    }

    /// The cache, resolved through [`caches()`](crate::caches).
    pub fn get(&self) -> Result<Cache, CacheError> {
        let generation = caches().generation();
        if let Some((g, cache)) = self.first.get() {
            if *g == generation {
                return Ok(cache.clone());
            }
        }
        if let Some((g, cache)) = &*self.later.read().unwrap_or_else(PoisonError::into_inner) {
            if *g == generation {
                return Ok(cache.clone());
            }
        }
        let cache = if self.alias == "default" {
            caches().get_or_broken("default")
        } else {
            caches().get(self.alias)?
        };
        if self.first.set((generation, cache.clone())).is_err() {
            *self.later.write().unwrap_or_else(PoisonError::into_inner) =
                Some((generation, cache.clone()));
        }
        Ok(cache)
    }
}
