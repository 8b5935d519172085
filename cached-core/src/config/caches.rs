//! [`Caches`]: the process-wide registry of named caches (Django's `CACHES`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use cached_backend::{env_suffix, CacheError};

use super::broken::BrokenBackend;
use crate::cache::Cache;

/// The registry of named caches (Django's `CACHES`).
///
/// Aliases are names, not spellings: ASCII case and `-` versus `_` do not matter.
///
/// ```
/// use cached_core::{caches, Cache};
/// caches().insert(Cache::from_url_as("reports-v2", "example", "memory://").unwrap());
/// let reports = caches().get("Reports_V2").unwrap();
/// assert_eq!(reports.alias(), "reports-v2");
/// assert!(caches().get("nowhere").is_err());
/// ```
pub struct Caches {
    /// By canonical alias ([`canonical`]).
    map: RwLock<HashMap<String, Cache>>,
    generation: AtomicU64,
}

static CACHES: LazyLock<Caches> = LazyLock::new(|| Caches {
    map: RwLock::new(HashMap::new()),
    generation: AtomicU64::new(1),
});

/// The process-wide registry of named caches.
///
/// ```
/// assert_eq!(cached_core::caches().get("default").unwrap().alias(), "default");
/// ```
pub fn caches() -> &'static Caches {
    &CACHES
}

/// The `"default"` cache.
///
/// With no configuration it is an in-memory cache. If `CACHE_URL` is set but invalid,
/// the error is logged once and every operation of the returned cache reports it (the
/// memoizing macros keep working, uncached); call [`Caches::configure_from_env`] at
/// start-up to turn such a mistake into a hard error instead.
///
/// ```
/// assert_eq!(cached_core::cache().alias(), "default");
/// ```
pub fn cache() -> Cache {
    caches().get_or_broken("default")
}

/// The one spelling of an alias: ASCII lower case, `-` as `_`.
pub(crate) fn canonical(alias: &str) -> String {
    alias
        .chars()
        .map(|c| match c {
            '-' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

impl Caches {
    /// The cache named `alias`, configured in code or from the environment. `"default"`
    /// falls back to the embedded in-memory cache.
    ///
    /// ```
    /// let e = cached_core::caches().get("never-configured").unwrap_err();
    /// assert!(e.to_string().contains("CACHE_URL_NEVER_CONFIGURED"));
    /// ```
    pub fn get(&self, alias: &str) -> Result<Cache, CacheError> {
        let key = canonical(alias);
        if let Some(cache) = self.read().get(&key) {
            return Ok(cache.clone());
        }
        let cache = Self::from_env(alias)?;
        let mut map = self.write();
        Ok(map.entry(key).or_insert(cache).clone())
    }

    /// Like [`get`](Self::get), but a configuration error yields a cache whose every
    /// operation reports it, after logging it once.
    ///
    /// ```
    /// let c = cached_core::caches().get_or_broken("no-such-cache");
    /// assert_eq!(c.backend().name(), "misconfigured");
    /// ```
    pub fn get_or_broken(&self, alias: &str) -> Cache {
        match self.get(alias) {
            Ok(cache) => cache,
            Err(err) => {
                tracing::error!(cache = alias, error = %err, "cache is misconfigured; running uncached");
                let cache = Cache::builder(BrokenBackend(err)).alias(alias).build();
                let mut map = self.write();
                map.entry(canonical(alias)).or_insert(cache).clone()
            }
        }
    }

    /// Registers `cache` under its alias, replacing any cache of that alias (in any
    /// spelling).
    ///
    /// ```
    /// use cached_core::{caches, Cache};
    /// caches().insert(Cache::from_url_as("sessions", "code", "memory://").unwrap());
    /// assert_eq!(caches().get("SESSIONS").unwrap().alias(), "sessions");
    /// ```
    pub fn insert(&self, cache: Cache) {
        self.write().insert(canonical(cache.alias()), cache);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Configures every cache named by `CACHE_URL` and `CACHE_URL_<ALIAS>` variables now,
    /// so that a bad URL is a start-up error. Returns the aliases configured (lower
    /// case, as `caches().get` accepts them in any spelling).
    ///
    /// ```
    /// let configured = cached_core::caches().configure_from_env().unwrap();
    /// # let _ = configured;
    /// ```
    pub fn configure_from_env(&self) -> Result<Vec<String>, CacheError> {
        let mut aliases = Vec::new();
        for (var, url) in std::env::vars() {
            let alias = match var.as_str() {
                "CACHE_URL" => "default".to_owned(),
                _ => match var.strip_prefix("CACHE_URL_") {
                    Some(suffix) if !suffix.is_empty() => suffix.to_ascii_lowercase(),
                    _ => continue,
                },
            };
            let cache = Cache::from_url_as(&alias, &var, &url)?;
            self.insert(cache);
            aliases.push(alias);
        }
        aliases.sort();
        Ok(aliases)
    }

    /// Every configured cache, by alias.
    ///
    /// ```
    /// let all = cached_core::caches().all();
    /// # let _ = all;
    /// ```
    pub fn all(&self) -> Vec<Cache> {
        let mut all: Vec<Cache> = self.read().values().cloned().collect();
        all.sort_by(|a, b| a.alias().cmp(b.alias()));
        all
    }

    /// A number that changes whenever a cache is inserted or replaced (for
    /// [`CacheSlot`](super::CacheSlot)).
    #[doc(hidden)]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn from_env(alias: &str) -> Result<Cache, CacheError> {
        let var = if canonical(alias) == "default" {
            "CACHE_URL".to_owned()
        } else {
            format!("CACHE_URL_{}", env_suffix(alias))
        };
        match std::env::var(&var) {
            Ok(url) => Cache::from_url_as(alias, &var, &url),
            Err(_) if var == "CACHE_URL" => {
                Cache::from_url_as(alias, "the embedded default", "memory://")
            }
            Err(_) => Err(CacheError::UnknownCache(alias.to_owned())),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Cache>> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Cache>> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_names_not_spellings() {
        assert_eq!(canonical("Reports-V2"), "reports_v2");
        caches().insert(Cache::from_url_as("Spelling-Test", "t", "memory://").expect("valid"));
        let a = caches().get("spelling_test").expect("found");
        let b = caches().get("SPELLING-TEST").expect("found");
        // One cache, not two that happen to share a name.
        assert_eq!(a.alias(), "Spelling-Test");
        assert!(std::sync::Arc::ptr_eq(a.backend(), b.backend()));
    }

    #[test]
    fn unknown_aliases_are_errors_that_say_how_to_configure() {
        let e = caches().get("no-such-alias").unwrap_err().to_string();
        assert!(e.contains("CACHE_URL_NO_SUCH_ALIAS"), "{e}");
    }
}
