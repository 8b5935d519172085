//! The [`Cache`] handle: Django's low-level cache API over any [`Backend`].
//!
//! The handle itself is here; what it does lives beside it, one file per concern:
//! [`builder`](CacheBuilder) builds it, `read` and `write` are the low-level API,
//! `value` maps Rust values to what backends store, and `compute` is memoization
//! (single flight, owned cross-process locks, and the runtime of the memoizing macros).
//! `fresh` and `tags` are the freshness of an entry: a stale window and tags, recorded
//! in an envelope around the value that plain entries never pay for.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::Backend;
use crate::codec::Codec;
use crate::key::{key_head, push_safe_key};
use crate::observe::Observed;
use crate::stats::{CacheStats, Counter, Counters};
use crate::CacheError;

mod builder;
pub(crate) mod compute;
pub(crate) mod fresh;
pub(crate) mod read;
pub(crate) mod tags;
mod value;
mod write;

pub use builder::CacheBuilder;
use compute::flight::Flights;
pub use compute::{ComputeOptions, LOCK_TTL};

/// Django's default timeout: 300 seconds.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// A ttl meaning "never expires" (Django's `timeout=None`). Any ttl of 100 years or
/// more is treated the same way.
pub const NO_EXPIRY: Duration = Duration::MAX;

pub(crate) const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A value that can be cached: serde both ways, cloneable, shareable across tasks.
///
/// Implemented for every type with those traits; you never implement it by hand.
///
/// ```
/// fn assert_cacheable<T: cached_core::Cacheable>() {}
/// assert_cacheable::<Vec<(String, Option<u64>)>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: a cached value must be `Clone + Serialize + DeserializeOwned + Send + Sync + 'static`",
    label = "this type is not cacheable",
    note = "derive `Clone, serde::Serialize, serde::Deserialize` on it, or return an owned type (`String`, not `&str`)"
)]
pub trait Cacheable: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Cacheable for T {}

/// A handle on one cache: cheap to clone, shareable across tasks.
///
/// Get one with [`cache()`](crate::cache) (the `"default"` cache),
/// [`caches().get(alias)`](crate::Caches::get), or build one over a backend with
/// [`Cache::builder`].
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// let cache = cached_core::cache();
/// cache.set("product:42", &"lamp".to_string(), Duration::from_secs(300)).await?;
/// let v: Option<String> = cache.get("product:42").await?;
/// assert_eq!(v.as_deref(), Some("lamp"));
/// assert!(cache.delete("product:42").await?);
/// # Ok::<(), cached_core::CacheError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    alias: String,
    /// The backend every call goes through: `raw`, each call in a span and timed
    /// ([`Observed`](crate::observe::Observed)), a concrete type so that the hit path
    /// makes one dynamic call, the backend's own.
    backend: Arc<Observed>,
    /// The backend as it was given, which [`Cache::backend`] returns.
    raw: Arc<dyn Backend>,
    objects: bool,
    /// Whether the backend's `get_now` answers from a near tier (`Backend::near_tier`).
    near: bool,
    codec: Codec,
    key_prefix: String,
    version: u32,
    /// `{key_prefix}:{version}:`, computed once.
    head: String,
    default_ttl: Duration,
    /// Shared by every versioned view of this cache.
    shared: Arc<Shared>,
}

struct Shared {
    counters: Counters,
    flights: Arc<Flights>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("alias", &self.inner.alias)
            .field("backend", &self.inner.backend.name())
            .field("key_prefix", &self.inner.key_prefix)
            .field("version", &self.inner.version)
            .field("default_ttl", &self.inner.default_ttl)
            .finish()
    }
}

impl Cache {
    /// A builder over `backend`.
    pub fn builder(backend: impl Backend) -> CacheBuilder {
        Self::builder_arc(Arc::new(backend))
    }

    /// A builder over an already shared backend.
    pub fn builder_arc(backend: Arc<dyn Backend>) -> CacheBuilder {
        CacheBuilder {
            backend,
            alias: "default".into(),
            codec: Codec::default(),
            key_prefix: String::new(),
            version: 1,
            default_ttl: DEFAULT_TTL,
        }
    }

    /// The alias this cache is known by.
    pub fn alias(&self) -> &str {
        &self.inner.alias
    }

    /// The backend, as it was given to the builder (the cache's own calls go through
    /// spans and metrics around it; calls made on this directly do not).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.raw
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.inner.key_prefix
    }

    /// The key version.
    pub fn version(&self) -> u32 {
        self.inner.version
    }

    /// The ttl used when none is given.
    pub fn default_ttl(&self) -> Duration {
        self.inner.default_ttl
    }

    /// The codec for encoded values.
    pub fn codec(&self) -> Codec {
        self.inner.codec
    }

    /// A view of this cache under another key version (Django's `version=` argument).
    /// It shares the backend, the counters and the in-flight computations.
    ///
    /// ```
    /// let v2 = cached_core::cache().with_version(2);
    /// assert_eq!(v2.make_key("k"), ":2:k");
    /// ```
    pub fn with_version(&self, version: u32) -> Cache {
        let i = &self.inner;
        Cache {
            inner: Arc::new(Inner {
                alias: i.alias.clone(),
                backend: Arc::clone(&i.backend),
                raw: Arc::clone(&i.raw),
                objects: i.objects,
                near: i.near,
                codec: i.codec,
                key_prefix: i.key_prefix.clone(),
                version,
                head: key_head(&i.key_prefix, version),
                default_ttl: i.default_ttl,
                shared: Arc::clone(&i.shared),
            }),
        }
    }

    /// The observed backend as a `dyn Backend`, for code that keeps it (the computation
    /// lock's extender).
    pub(crate) fn dyn_backend(&self) -> Arc<dyn Backend> {
        Arc::clone(&self.inner.backend) as Arc<dyn Backend>
    }

    /// `{key_prefix}:{version}:`, the head of every stored key of this cache.
    pub(crate) fn head(&self) -> &str {
        &self.inner.head
    }

    /// The stored key for `key`: `{key_prefix}:{version}:{key}`, with long or unsafe
    /// keys digested (see [`key`](crate::key)).
    pub fn make_key(&self, key: &str) -> String {
        let mut out = String::with_capacity(self.inner.head.len() + key.len());
        out.push_str(&self.inner.head);
        push_safe_key(&mut out, key);
        out
    }

    /// Whether a hit that needed no waiting came from a near tier (a Redis cache with
    /// `near_max_entries`): the hook views use to say `detail=near`.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn near_tier(&self) -> bool {
        self.inner.near
    }

    /// A snapshot of this cache's counters.
    pub fn stats(&self) -> CacheStats {
        self.counters().snapshot(self.inner.backend.evictions())
    }

    fn counters(&self) -> &Counters {
        &self.inner.shared.counters
    }

    /// Counts and (rate-limited) logs a backend error; returns it for propagation.
    pub(crate) fn record_error(&self, op: &'static str, key: &str, err: CacheError) -> CacheError {
        let counters = self.counters();
        counters.bump(Counter::Errors);
        // Metrics hook (`observe.rs`): the error with its kind.
        counters.metrics().error(&err);
        tracing::trace!(cache = %self.inner.alias, op, key, error = %err, "cache operation failed");
        if let Some(suppressed) = counters.errors_log.allow() {
            // Keys stay out of WARN lines: they may hold user data.
            tracing::warn!(
                cache = %self.inner.alias,
                backend = self.inner.backend.name(),
                op,
                suppressed,
                error = %err,
                "cache operation failed; continuing without the cache"
            );
        }
        err
    }
}
