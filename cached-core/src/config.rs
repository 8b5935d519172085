//! Named caches, `CACHE_URL` parsing and the embedded default.
//!
//! Nothing configured means the `"default"` cache is an in-memory cache: it works with
//! no set-up. Otherwise a cache comes from, in order:
//!
//! 1. [`Caches::insert`] of a [`Cache`] you built in code;
//! 2. the environment: `CACHE_URL` for `"default"`, `CACHE_URL_<ALIAS>` for any other
//!    alias (upper-cased, `-` as `_`: alias `"shared-api"` reads `CACHE_URL_SHARED_API`).
//!
//! URLs:
//!
//! | URL | backend |
//! |---|---|
//! | `memory://?max_entries=10000` or `memory://?max_bytes=67108864` | in-memory (moka), feature `memory` |
//! | `dummy://` | stores nothing |
//! | `redis://[user:pass@]host:6379/0` | Redis, feature `redis` |
//! | `rediss://host:6380/0` | Redis over TLS, feature `redis-tls` |
//! | `redis+cluster://host1:7000,host2:7001` | Redis Cluster, feature `redis-cluster` |
//!
//! Every URL takes `key_prefix`, `version`, `default_ttl` (whole seconds, or `none`) and
//! `codec` (`bincode`, `postcard`, `json`) as query parameters:
//! `redis://cache:6379/0?key_prefix=shop&version=2&default_ttl=600`.
//!
//! A malformed URL, an unknown scheme or parameter, or a scheme whose feature is off is
//! an error naming the variable and the bad part.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::{Backend, Ttl, Value};
use crate::cache::{Cache, NO_EXPIRY};
use crate::codec::Codec;
use crate::error::env_suffix;
use crate::CacheError;

/// A parsed cache URL: scheme, the part after `://`, and the query parameters that
/// the backend has not consumed yet.
///
/// ```
/// use cached_core::CacheUrl;
/// let mut url = CacheUrl::parse("CACHE_URL", "redis://localhost:6379/0?key_prefix=shop").unwrap();
/// assert_eq!(url.scheme(), "redis");
/// assert_eq!(url.location(), "localhost:6379/0");
/// assert_eq!(url.take("key_prefix").as_deref(), Some("shop"));
/// ```
#[derive(Debug, Clone)]
pub struct CacheUrl {
    origin: String,
    scheme: String,
    location: String,
    params: Vec<(String, String)>,
}

impl CacheUrl {
    /// Parses `url`; `origin` names where it came from, for error messages.
    pub fn parse(origin: &str, url: &str) -> Result<CacheUrl, CacheError> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(CacheError::config(
                origin,
                format!("`{url}` is not a URL: expected `scheme://...`, e.g. `memory://` or `redis://localhost:6379/0`"),
            ));
        };
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return Err(CacheError::config(
                origin,
                format!("`{scheme}` in `{url}` is not a valid URL scheme"),
            ));
        }
        let (location, query) = match rest.split_once('?') {
            Some((l, q)) => (l, Some(q)),
            None => (rest, None),
        };
        let mut params = Vec::new();
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(origin, k)?;
            if params.iter().any(|(existing, _)| *existing == key) {
                return Err(CacheError::config(
                    origin,
                    format!("the parameter `{key}` is given twice in `{url}`"),
                ));
            }
            params.push((key, percent_decode(origin, v)?));
        }
        Ok(CacheUrl {
            origin: origin.to_owned(),
            scheme: scheme.to_ascii_lowercase(),
            location: location.to_owned(),
            params,
        })
    }

    /// Where the URL came from (`CACHE_URL`, `CACHE_URL_SHARED`, `Cache::from_url`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The scheme, lower-cased: `memory`, `redis`, ...
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Everything between `://` and `?`: host, port, path, credentials.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Removes and returns the query parameter `name`.
    pub fn take(&mut self, name: &str) -> Option<String> {
        let i = self.params.iter().position(|(k, _)| k == name)?;
        Some(self.params.remove(i).1)
    }

    /// Removes `name` and parses it, with an error naming the parameter.
    pub fn take_parsed<T: std::str::FromStr>(
        &mut self,
        name: &str,
        expected: &str,
    ) -> Result<Option<T>, CacheError> {
        match self.take(name) {
            None => Ok(None),
            Some(raw) => raw.parse().map(Some).map_err(|_| {
                CacheError::config(
                    &self.origin,
                    format!("`{name}={raw}` is not valid: expected {expected}"),
                )
            }),
        }
    }

    /// The parameters not consumed yet.
    pub fn remaining(&self) -> &[(String, String)] {
        &self.params
    }

    /// An error if parameters remain that nobody understood.
    pub fn finish(&self, known: &str) -> Result<(), CacheError> {
        match self.params.first() {
            None => Ok(()),
            Some((k, _)) => Err(CacheError::config(
                &self.origin,
                format!(
                    "unknown parameter `{k}` for a {}:// cache; known parameters: {known}",
                    self.scheme
                ),
            )),
        }
    }
}

fn percent_decode(origin: &str, s: &str) -> Result<String, CacheError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(b) = hex else {
                    return Err(CacheError::config(
                        origin,
                        format!("bad percent-escape in `{s}`"),
                    ));
                };
                out.push(b);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| CacheError::config(origin, format!("`{s}` is not UTF-8 once decoded")))
}

/// Builds a backend from a parsed URL, consuming the parameters it understands.
pub type BackendFactory = fn(&mut CacheUrl) -> Result<Arc<dyn Backend>, CacheError>;

static FACTORIES: RwLock<Vec<(&'static str, BackendFactory)>> = RwLock::new(Vec::new());

/// Registers the backend for a URL scheme (the facade registers Redis's schemes when
/// its `redis` feature is on). A later registration of a scheme replaces the earlier.
pub fn register_backend(scheme: &'static str, factory: BackendFactory) {
    let mut factories = FACTORIES.write().unwrap_or_else(PoisonError::into_inner);
    factories.retain(|(s, _)| *s != scheme);
    factories.push((scheme, factory));
    drop(factories);
    // Call sites that resolved a cache before this scheme was known resolve again.
    CACHES.generation.fetch_add(1, Ordering::Release);
}

/// Schemes that exist but need a cargo feature.
const FEATURE_SCHEMES: &[(&str, &str)] = &[
    ("redis", "redis"),
    ("rediss", "redis-tls"),
    ("redis+cluster", "redis-cluster"),
    ("redis-cluster", "redis-cluster"),
];

const COMMON_PARAMS: &str = "key_prefix, version, default_ttl, codec";

impl Cache {
    /// The cache a URL describes, under the alias `"default"`.
    ///
    /// Schemes of optional backends (`redis://`, ...) are registered by the `cached-kit`
    /// facade on its first entry point (`cached_kit::cache()`, `cached_kit::caches()`,
    /// any macro). If this is the program's very first cache call, call
    /// `cached_kit::caches()` before it; otherwise the scheme reports its feature as off.
    ///
    /// ```
    /// use cached_core::Cache;
    /// let cache = Cache::from_url("memory://?max_entries=1000&key_prefix=shop&version=2").unwrap();
    /// assert_eq!(cache.make_key("k"), "shop:2:k");
    ///
    /// let err = Cache::from_url("memcached://localhost").unwrap_err();
    /// assert!(err.to_string().contains("memcached"));
    /// ```
    pub fn from_url(url: &str) -> Result<Cache, CacheError> {
        Self::from_url_as("default", "Cache::from_url", url)
    }

    /// The cache a URL describes, under `alias`; `origin` names the URL's source in errors.
    pub fn from_url_as(alias: &str, origin: &str, url: &str) -> Result<Cache, CacheError> {
        let mut url = CacheUrl::parse(origin, url)?;
        let key_prefix = url.take("key_prefix").unwrap_or_default();
        let version = url
            .take_parsed::<u32>("version", "a whole number")?
            .unwrap_or(1);
        let default_ttl = match url.take("default_ttl") {
            None => crate::cache::DEFAULT_TTL,
            Some(v) if v.eq_ignore_ascii_case("none") => NO_EXPIRY,
            Some(v) => Duration::from_secs(v.parse().map_err(|_| {
                CacheError::config(
                    origin,
                    format!("`default_ttl={v}` is not valid: expected whole seconds or `none`"),
                )
            })?),
        };
        let codec = match url.take("codec") {
            None => Codec::default(),
            Some(name) => {
                let codec = Codec::from_name(&name).ok_or_else(|| {
                    CacheError::config(
                        origin,
                        format!("unknown codec `{name}`: use bincode, postcard or json"),
                    )
                })?;
                codec.check_enabled()?;
                codec
            }
        };
        let backend = backend_from_url(&mut url)?;
        Ok(Cache::builder_arc(backend)
            .alias(alias)
            .key_prefix(key_prefix)
            .version(version)
            .default_ttl(default_ttl)
            .codec(codec)
            .build())
    }
}

fn backend_from_url(url: &mut CacheUrl) -> Result<Arc<dyn Backend>, CacheError> {
    match url.scheme() {
        "memory" => memory_from_url(url),
        "dummy" => {
            url.finish(COMMON_PARAMS)?;
            Ok(Arc::new(crate::backend::dummy::DummyBackend::new()))
        }
        scheme => {
            let factory = FACTORIES
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .find(|(s, _)| *s == scheme)
                .map(|(_, f)| *f);
            if let Some(factory) = factory {
                return factory(url);
            }
            if let Some((_, feature)) = FEATURE_SCHEMES.iter().find(|(s, _)| *s == scheme) {
                return Err(CacheError::FeatureDisabled {
                    what: format!("the {scheme}:// URL in {}", url.origin()),
                    feature,
                });
            }
            Err(CacheError::config(
                url.origin(),
                format!("unknown scheme `{scheme}://`; use memory://, dummy://, redis://, rediss:// or redis+cluster://"),
            ))
        }
    }
}

#[cfg(feature = "memory")]
fn memory_from_url(url: &mut CacheUrl) -> Result<Arc<dyn Backend>, CacheError> {
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
fn memory_from_url(url: &mut CacheUrl) -> Result<Arc<dyn Backend>, CacheError> {
    Err(CacheError::FeatureDisabled {
        what: format!("the memory:// URL in {}", url.origin()),
        feature: "memory",
    })
}

/// The registry of named caches (Django's `CACHES`).
///
/// ```
/// use cached_core::{caches, Cache};
/// caches().insert(Cache::from_url_as("reports", "example", "memory://").unwrap());
/// let reports = caches().get("reports").unwrap();
/// assert_eq!(reports.alias(), "reports");
/// assert!(caches().get("nowhere").is_err());
/// ```
pub struct Caches {
    map: RwLock<HashMap<String, Cache>>,
    generation: AtomicU64,
}

static CACHES: LazyLock<Caches> = LazyLock::new(|| Caches {
    map: RwLock::new(HashMap::new()),
    generation: AtomicU64::new(1),
});

/// The process-wide registry of named caches.
pub fn caches() -> &'static Caches {
    &CACHES
}

/// The `"default"` cache.
///
/// With no configuration it is an in-memory cache. If `CACHE_URL` is set but invalid,
/// the error is logged once and every operation of the returned cache reports it (the
/// memoizing macros keep working, uncached); call [`Caches::configure_from_env`] at
/// start-up to turn such a mistake into a hard error instead.
pub fn cache() -> Cache {
    caches().get_or_broken("default")
}

impl Caches {
    /// The cache named `alias`, configured in code or from the environment. `"default"`
    /// falls back to the embedded in-memory cache.
    pub fn get(&self, alias: &str) -> Result<Cache, CacheError> {
        if let Some(cache) = self.read().get(alias) {
            return Ok(cache.clone());
        }
        let cache = Self::from_env(alias)?;
        let mut map = self.write();
        let cache = map.entry(alias.to_owned()).or_insert(cache).clone();
        Ok(cache)
    }

    /// Like [`get`](Self::get), but a configuration error yields a cache whose every
    /// operation reports it, after logging it once.
    pub fn get_or_broken(&self, alias: &str) -> Cache {
        match self.get(alias) {
            Ok(cache) => cache,
            // A scheme not registered yet may be registered later (the facade registers
            // Redis on first use): report it, but do not remember the broken cache.
            Err(err @ CacheError::FeatureDisabled { .. }) => {
                tracing::error!(cache = alias, error = %err, "cache is misconfigured; running uncached");
                Cache::builder(BrokenBackend(err)).alias(alias).build()
            }
            Err(err) => {
                tracing::error!(cache = alias, error = %err, "cache is misconfigured; running uncached");
                let cache = Cache::builder(BrokenBackend(err)).alias(alias).build();
                let mut map = self.write();
                map.entry(alias.to_owned()).or_insert(cache).clone()
            }
        }
    }

    /// Registers `cache` under its alias, replacing any cache of that alias.
    pub fn insert(&self, cache: Cache) {
        self.write().insert(cache.alias().to_owned(), cache);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Configures every cache named by `CACHE_URL` and `CACHE_URL_<ALIAS>` variables now,
    /// so that a bad URL is a start-up error. Returns the aliases configured.
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
    pub fn all(&self) -> Vec<Cache> {
        let mut all: Vec<Cache> = self.read().values().cloned().collect();
        all.sort_by(|a, b| a.alias().cmp(b.alias()));
        all
    }

    /// A number that changes whenever a cache is inserted or replaced.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn from_env(alias: &str) -> Result<Cache, CacheError> {
        let var = if alias == "default" {
            "CACHE_URL".to_owned()
        } else {
            format!("CACHE_URL_{}", env_suffix(alias))
        };
        match std::env::var(&var) {
            Ok(url) => Cache::from_url_as(alias, &var, &url),
            Err(_) if alias == "default" => {
                Cache::from_url_as(alias, "the embedded default", "memory://")
            }
            Err(_) => Err(CacheError::UnknownCache(alias.to_owned())),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Cache>> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Cache>> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A per-call-site handle on a named cache, for generated code: it resolves the alias
/// once and again only after [`Caches::insert`] changed the registry.
///
/// ```
/// static SLOT: cached_core::CacheSlot = cached_core::CacheSlot::new("default");
/// assert_eq!(SLOT.get().unwrap().alias(), "default");
/// ```
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

    /// The cache, resolved through [`caches()`].
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

/// The backend of a misconfigured cache: every operation reports the configuration error.
struct BrokenBackend(CacheError);

#[async_trait]
impl Backend for BrokenBackend {
    fn name(&self) -> &'static str {
        "misconfigured"
    }
    async fn get(&self, _: &str) -> Result<Option<Value>, CacheError> {
        Err(self.0.clone())
    }
    async fn set(&self, _: &str, _: Value, _: Ttl) -> Result<(), CacheError> {
        Err(self.0.clone())
    }
    async fn add(&self, _: &str, _: Value, _: Ttl) -> Result<bool, CacheError> {
        Err(self.0.clone())
    }
    async fn delete(&self, _: &str) -> Result<bool, CacheError> {
        Err(self.0.clone())
    }
    async fn incr(&self, _: &str, _: i64, _: Ttl) -> Result<i64, CacheError> {
        Err(self.0.clone())
    }
    async fn touch(&self, _: &str, _: Ttl) -> Result<bool, CacheError> {
        Err(self.0.clone())
    }
    async fn clear(&self, _: &str) -> Result<usize, CacheError> {
        Err(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(url: &str) -> String {
        match Cache::from_url_as("default", "CACHE_URL", url) {
            Ok(_) => panic!("{url} should be rejected"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn malformed_urls_name_the_problem() {
        assert!(err("localhost:6379").contains("not a URL"));
        assert!(err("memcached://x").contains("unknown scheme `memcached://`"));
        assert!(err("memory://?max_entries=lots").contains("`max_entries=lots` is not valid"));
        assert!(err("memory://?colour=blue").contains("unknown parameter `colour`"));
        assert!(err("memory://?version=-1").contains("`version=-1`"));
        assert!(err("memory://?default_ttl=5m").contains("`default_ttl=5m`"));
        assert!(err("memory://?codec=xml").contains("unknown codec `xml`"));
        assert!(err("memory://?max_entries=1&max_bytes=1").contains("not both"));
        assert!(err("memory://host").contains("takes no host"));
        assert!(err("memory://?a=%zz").contains("percent-escape"));
        assert!(err("memory://?a=1&a=2").contains("given twice"));
    }

    #[test]
    fn a_scheme_whose_feature_is_off_names_the_feature() {
        // No factory is registered in cached-core's own tests.
        let e = err("redis://localhost:6379/0");
        assert!(e.contains("`redis` feature"), "{e}");
        assert!(e.contains("CACHE_URL"), "{e}");
        assert!(err("rediss://localhost").contains("`redis-tls` feature"));
    }

    #[test]
    fn common_parameters_apply() {
        let cache =
            Cache::from_url("memory://?key_prefix=a%20b&version=3&default_ttl=60").expect("valid");
        assert_eq!(cache.key_prefix(), "a b");
        assert_eq!(cache.version(), 3);
        assert_eq!(cache.default_ttl(), Duration::from_secs(60));
        let forever = Cache::from_url("dummy://?default_ttl=none").expect("valid");
        assert_eq!(forever.default_ttl(), NO_EXPIRY);
    }

    #[test]
    fn a_scheme_registered_late_is_picked_up() {
        std::env::set_var("CACHE_URL_LATE", "redis-cluster://127.0.0.1:7000");
        let broken = caches().get_or_broken("late");
        assert_eq!(broken.backend().name(), "misconfigured");
        let slot = CacheSlot::new("late");
        assert!(slot.get().is_err());
        let before = caches().generation();
        register_backend("redis-cluster", |url| {
            url.finish("none")?;
            Ok(Arc::new(crate::backend::dummy::DummyBackend::new()))
        });
        assert!(
            caches().generation() > before,
            "registering re-resolves call sites"
        );
        assert_eq!(caches().get_or_broken("late").backend().name(), "dummy");
        assert_eq!(slot.get().expect("resolves now").backend().name(), "dummy");
    }

    #[test]
    fn unknown_aliases_are_errors_that_say_how_to_configure() {
        let e = caches().get("no-such-alias").unwrap_err().to_string();
        assert!(e.contains("CACHE_URL_NO_SUCH_ALIAS"), "{e}");
    }
}
