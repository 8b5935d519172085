//! The [`Cache`] handle: Django's low-level cache API over any [`Backend`].

use std::any::Any;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::value::{Error as ValueError, I64Deserializer};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::{Backend, Ttl, Value};
use crate::codec::{Codec, DecodeError};
use crate::flight::Flights;
use crate::key::{key_head, push_safe_key};
use crate::stats::{add, bump, CacheStats, Counters};
use crate::CacheError;

/// Django's default timeout: 300 seconds.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// A ttl meaning "never expires" (Django's `timeout=None`). Any ttl of 100 years or
/// more is treated the same way.
pub const NO_EXPIRY: Duration = Duration::MAX;

const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How long a cross-process computation lock (`lock = true`) is held at most; waiters
/// that see no value by then run the computation themselves.
pub const LOCK_TTL: Duration = Duration::from_secs(10);

const LOCK_POLL: Duration = Duration::from_millis(25);

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
    backend: Arc<dyn Backend>,
    objects: bool,
    codec: Codec,
    key_prefix: String,
    version: u32,
    /// `{key_prefix}:{version}:`, computed once.
    head: String,
    default_ttl: Duration,
    /// Shared by every versioned view of this cache.
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    counters: Counters,
    flights: Flights,
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

/// Builds a [`Cache`] over a backend.
///
/// ```
/// use std::time::Duration;
/// use cached_core::{Cache, backend::dummy::DummyBackend};
/// let cache = Cache::builder(DummyBackend::new())
///     .alias("shared")
///     .key_prefix("shop")
///     .version(2)
///     .default_ttl(Duration::from_secs(60))
///     .build();
/// assert_eq!(cache.make_key("product:1"), "shop:2:product:1");
/// ```
#[must_use]
pub struct CacheBuilder {
    backend: Arc<dyn Backend>,
    alias: String,
    codec: Codec,
    key_prefix: String,
    version: u32,
    default_ttl: Duration,
}

impl CacheBuilder {
    /// The alias this cache is known by (default `"default"`).
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = alias.into();
        self
    }

    /// The codec for values that are stored encoded (default: bincode).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Django's `KEY_PREFIX` (default empty).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Django's `VERSION` (default 1).
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// The ttl used when none is given (default 300 s).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// The cache.
    pub fn build(self) -> Cache {
        Cache {
            inner: Arc::new(Inner {
                objects: self.backend.stores_objects(),
                head: key_head(&self.key_prefix, self.version),
                alias: self.alias,
                backend: self.backend,
                codec: self.codec,
                key_prefix: self.key_prefix,
                version: self.version,
                default_ttl: self.default_ttl,
                shared: Arc::default(),
            }),
        }
    }
}

/// Options of [`Cache::compute`]: what the memoizing macros use.
///
/// ```
/// use std::time::Duration;
/// use cached_core::ComputeOptions;
/// let skip_empty = |v: &Vec<u8>| !v.is_empty();
/// let opts = ComputeOptions::new(Some(Duration::from_secs(60))).store_if(&skip_empty).lock(true);
/// # let _ = opts;
/// ```
pub struct ComputeOptions<'a, T> {
    ttl: Option<Duration>,
    lock: bool,
    lock_ttl: Duration,
    store_if: Option<&'a (dyn Fn(&T) -> bool + Send + Sync)>,
}

impl<'a, T> ComputeOptions<'a, T> {
    /// Store for `ttl` (`None`: the cache's default ttl).
    pub fn new(ttl: Option<Duration>) -> Self {
        Self {
            ttl,
            lock: false,
            lock_ttl: LOCK_TTL,
            store_if: None,
        }
    }

    /// Also coalesce across processes sharing a remote backend, with a short lock
    /// stored in the backend (see [`LOCK_TTL`]).
    pub fn lock(mut self, lock: bool) -> Self {
        self.lock = lock;
        self
    }

    /// How long the cross-process lock is held before the holder must extend it
    /// (default [`LOCK_TTL`]).
    pub fn lock_ttl(mut self, lock_ttl: Duration) -> Self {
        self.lock_ttl = lock_ttl;
        self
    }

    /// Store a computed value only when `pred` returns true (it is returned either way).
    pub fn store_if(mut self, pred: &'a (dyn Fn(&T) -> bool + Send + Sync)) -> Self {
        self.store_if = Some(pred);
        self
    }
}

enum Acquired<T> {
    /// Another process stored the value while we waited.
    Value(T),
    /// We hold the lock under this key.
    Lock(String),
    /// Run without a lock (no lock asked, the backend failed, or the wait timed out).
    Unlocked,
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

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
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
                objects: i.objects,
                codec: i.codec,
                key_prefix: i.key_prefix.clone(),
                version,
                head: key_head(&i.key_prefix, version),
                default_ttl: i.default_ttl,
                shared: Arc::clone(&i.shared),
            }),
        }
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

    /// The value under `key`, or `None` when absent, expired, or not decodable as `T`
    /// (a decode error counts in `stats().decode_errors` and the value is overwritten by
    /// the next store).
    pub async fn get<T: Cacheable>(&self, key: &str) -> Result<Option<T>, CacheError> {
        let skey = self.make_key(key);
        match self.fetch_now(&skey, true) {
            Some(read) => read,
            None => self.fetch(&skey, true).await,
        }
    }

    /// Whether a value is stored under `key` (Django's `has_key`).
    pub async fn has_key(&self, key: &str) -> Result<bool, CacheError> {
        let skey = self.make_key(key);
        match self.inner.backend.get(&skey).await {
            Ok(v) => Ok(v.is_some()),
            Err(e) => Err(self.record_error("has_key", &skey, e)),
        }
    }

    /// Stores `value` under `key` for `ttl`. A zero ttl deletes the key (Django's
    /// `timeout=0`); [`NO_EXPIRY`] stores it until evicted or deleted.
    pub async fn set<T: Cacheable>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let skey = self.make_key(key);
        self.store(&skey, value, ttl).await
    }

    /// Stores `value` only if `key` holds nothing; returns whether it stored.
    pub async fn add<T: Cacheable>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let skey = self.make_key(key);
        let v = self.encode_value(&skey, value)?;
        match self.inner.backend.add(&skey, v, backend_ttl(ttl)).await {
            Ok(stored) => {
                if stored {
                    bump(&self.counters().sets);
                }
                Ok(stored)
            }
            Err(e) => Err(self.record_error("add", &skey, e)),
        }
    }

    /// The value under `key`, or else the value of `f()`, stored for `ttl` and returned.
    ///
    /// Single-flight: concurrent callers of one missing key in this process run `f`
    /// once and all receive its value. A backend failure never fails the call: `f` runs,
    /// its value is returned, the error is logged and counted.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let cache = cached_core::cache();
    /// let total: u64 = cache
    ///     .get_or_set_with("stats:total", Duration::from_secs(60), || async { 40 + 2 })
    ///     .await;
    /// assert_eq!(total, 42);
    /// # });
    /// ```
    pub async fn get_or_set_with<T, F, Fut>(&self, key: &str, ttl: Duration, f: F) -> T
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let opts = ComputeOptions::new(Some(ttl));
        let result = self
            .compute(key, &opts, || async { Ok::<T, Infallible>(f().await) })
            .await;
        match result {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// Like [`get_or_set_with`](Self::get_or_set_with) for a fallible `f`: only `Ok`
    /// is stored; an `Err` is returned to the caller that ran `f` and never cached.
    pub async fn try_get_or_set_with<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        f: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.compute(key, &ComputeOptions::new(Some(ttl)), f).await
    }

    /// The memoization primitive under `get_or_set_with` and `#[cache_fn]`: read `key`,
    /// or run `f` once per process (once across processes with `lock`), store its `Ok`
    /// value if `store_if` allows, and return it. Backend failures are survived.
    pub async fn compute<T, E, F, Fut>(
        &self,
        key: &str,
        opts: &ComputeOptions<'_, T>,
        f: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let skey = self.make_key(key);
        if let Ok(Some(v)) = self.fetch::<T>(&skey, true).await {
            return Ok(v);
        }
        self.compute_missed(&skey, opts, f).await
    }

    /// The part of [`compute`](Self::compute) after a miss, for an already made stored
    /// key. The memoizing macros read first themselves (with a key rendered straight
    /// after the head, one allocation) and enter this, boxed, only on a miss, which
    /// keeps the hit path's future small.
    pub(crate) async fn compute_missed<T, E, F, Fut>(
        &self,
        skey: &str,
        opts: &ComputeOptions<'_, T>,
        f: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let skey = skey.to_owned();
        let flights = &self.inner.shared.flights;
        let (cell, leader) = flights.join::<T>(&skey);
        if !leader {
            bump(&self.counters().coalesced_waits);
        }
        let ttl = opts.ttl.unwrap_or(self.inner.default_ttl);
        let result = cell
            .get_or_try_init(|| async {
                let lock = match opts.lock {
                    true => self.acquire_or_wait::<T>(&skey).await,
                    false => Acquired::Unlocked,
                };
                let lock_key = match lock {
                    Acquired::Value(v) => return Ok(v),
                    Acquired::Lock(k) => Some(k),
                    Acquired::Unlocked => None,
                };
                let computed = f().await;
                if let Ok(value) = &computed {
                    if opts.store_if.is_none_or(|pred| pred(value)) {
                        // A failed store is recorded and survived: the value is returned.
                        let _ = self.store(&skey, value, ttl).await;
                    }
                }
                if let Some(k) = lock_key {
                    let _ = self.inner.backend.delete(&k).await;
                }
                computed
            })
            .await
            .cloned();
        flights.leave(&skey, &cell);
        result
    }

    /// Waits for another process's computation of `skey`, or takes the lock for it.
    async fn acquire_or_wait<T: Cacheable>(&self, skey: &str) -> Acquired<T> {
        let lock_key = format!("{skey}:__lock");
        let deadline = Instant::now() + LOCK_TTL;
        loop {
            match self
                .inner
                .backend
                .add(&lock_key, Value::Int(1), Some(LOCK_TTL))
                .await
            {
                Ok(true) => {
                    // The previous holder may have stored the value and released the
                    // lock since our last look: check before computing again.
                    if let Ok(Some(v)) = self.fetch::<T>(skey, false).await {
                        let _ = self.inner.backend.delete(&lock_key).await;
                        return Acquired::Value(v);
                    }
                    return Acquired::Lock(lock_key);
                }
                Ok(false) => {}
                Err(e) => {
                    self.record_error("lock", &lock_key, e);
                    return Acquired::Unlocked;
                }
            }
            if let Ok(Some(v)) = self.fetch::<T>(skey, false).await {
                return Acquired::Value(v);
            }
            if Instant::now() >= deadline {
                return Acquired::Unlocked;
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
    }

    /// Deletes `key`; returns whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let skey = self.make_key(key);
        match self.inner.backend.delete(&skey).await {
            Ok(existed) => {
                if existed {
                    bump(&self.counters().deletes);
                }
                Ok(existed)
            }
            Err(e) => Err(self.record_error("delete", &skey, e)),
        }
    }

    /// The values found under `keys`, by key (absent and undecodable keys are left out).
    /// One round trip on Redis (MGET).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let cache = cached_core::cache();
    /// cache.set_many([("gm:a", &1u32), ("gm:b", &2u32)], Duration::from_secs(60)).await?;
    /// let found = cache.get_many::<u32, _>(["gm:a", "gm:b", "gm:c"]).await?;
    /// assert_eq!(found.len(), 2);
    /// assert_eq!(found["gm:b"], 2);
    /// # Ok::<(), cached_core::CacheError>(())
    /// # }).unwrap();
    /// ```
    pub async fn get_many<T: Cacheable, K: AsRef<str>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<HashMap<String, T>, CacheError> {
        let keys: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_owned()).collect();
        let skeys: Vec<String> = keys.iter().map(|k| self.make_key(k)).collect();
        let values = match self.inner.backend.get_many(&skeys).await {
            Ok(v) => v,
            Err(e) => return Err(self.record_error("get_many", &self.inner.head, e)),
        };
        let mut out = HashMap::with_capacity(keys.len());
        for ((key, skey), value) in keys.into_iter().zip(&skeys).zip(values) {
            if let Some(v) = self.decode_counted(skey, value) {
                out.insert(key, v);
            }
        }
        Ok(out)
    }

    /// Stores every `(key, value)` for `ttl`. One round trip on Redis (a pipeline).
    pub async fn set_many<'v, T: Cacheable, K: AsRef<str>>(
        &self,
        entries: impl IntoIterator<Item = (K, &'v T)>,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let mut batch = Vec::new();
        for (key, value) in entries {
            let skey = self.make_key(key.as_ref());
            let v = self.encode_value(&skey, value)?;
            batch.push((skey, v));
        }
        if ttl.is_zero() {
            let keys: Vec<String> = batch.into_iter().map(|(k, _)| k).collect();
            return self.delete_stored(&keys).await.map(|_| ());
        }
        let n = batch.len() as u64;
        match self.inner.backend.set_many(batch, backend_ttl(ttl)).await {
            Ok(()) => {
                add(&self.counters().sets, n);
                Ok(())
            }
            Err(e) => Err(self.record_error("set_many", &self.inner.head, e)),
        }
    }

    /// Deletes every key; returns how many existed.
    pub async fn delete_many<K: AsRef<str>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<usize, CacheError> {
        let skeys: Vec<String> = keys
            .into_iter()
            .map(|k| self.make_key(k.as_ref()))
            .collect();
        self.delete_stored(&skeys).await
    }

    async fn delete_stored(&self, skeys: &[String]) -> Result<usize, CacheError> {
        match self.inner.backend.delete_many(skeys).await {
            Ok(n) => {
                add(&self.counters().deletes, n as u64);
                Ok(n)
            }
            Err(e) => Err(self.record_error("delete_many", &self.inner.head, e)),
        }
    }

    /// Atomically adds `delta` to the counter under `key` and returns the new value.
    /// An absent key starts at 0 with the cache's default ttl; an existing counter keeps
    /// its expiry. Integers stored with [`set`](Self::set) are counters too.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = cached_core::cache();
    /// assert_eq!(cache.incr("hits:doc", 1).await?, 1);
    /// assert_eq!(cache.incr("hits:doc", 5).await?, 6);
    /// assert_eq!(cache.decr("hits:doc", 2).await?, 4);
    /// assert_eq!(cache.get::<i64>("hits:doc").await?, Some(4));
    /// # Ok::<(), cached_core::CacheError>(())
    /// # }).unwrap();
    /// ```
    pub async fn incr(&self, key: &str, delta: i64) -> Result<i64, CacheError> {
        let skey = self.make_key(key);
        let ttl = backend_ttl(self.inner.default_ttl);
        match self.inner.backend.incr(&skey, delta, ttl).await {
            Ok(n) => Ok(n),
            Err(e @ (CacheError::NotACounter(_) | CacheError::Overflow(_))) => Err(e),
            Err(e) => Err(self.record_error("incr", &skey, e)),
        }
    }

    /// Atomically subtracts `delta`; see [`incr`](Self::incr).
    pub async fn decr(&self, key: &str, delta: i64) -> Result<i64, CacheError> {
        match delta.checked_neg() {
            Some(neg) => self.incr(key, neg).await,
            None => Err(CacheError::Overflow(key.to_owned())),
        }
    }

    /// Gives `key` a new ttl; returns whether it existed.
    pub async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        let skey = self.make_key(key);
        if ttl.is_zero() {
            return self.delete(key).await;
        }
        match self.inner.backend.touch(&skey, backend_ttl(ttl)).await {
            Ok(existed) => Ok(existed),
            Err(e) => Err(self.record_error("touch", &skey, e)),
        }
    }

    /// Moves the value under `key` from this cache's version to `version + delta`
    /// (Django's `incr_version`); returns the new version, or `None` if `key` is absent.
    /// The moved value gets the default ttl.
    pub async fn incr_version(&self, key: &str, delta: i32) -> Result<Option<u32>, CacheError> {
        let Some(new_version) = self.inner.version.checked_add_signed(delta) else {
            return Err(CacheError::Overflow(key.to_owned()));
        };
        let old = self.make_key(key);
        let value = match self.inner.backend.get(&old).await {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.record_error("incr_version", &old, e)),
        };
        let new = self.with_version(new_version).make_key(key);
        let ttl = backend_ttl(self.inner.default_ttl);
        if let Err(e) = self.inner.backend.set(&new, value, ttl).await {
            return Err(self.record_error("incr_version", &new, e));
        }
        if let Err(e) = self.inner.backend.delete(&old).await {
            return Err(self.record_error("incr_version", &old, e));
        }
        Ok(Some(new_version))
    }

    /// Deletes every key of this cache's prefix (all versions), and nothing else: other
    /// prefixes sharing the backend are untouched. Returns how many keys it deleted.
    pub async fn clear(&self) -> Result<usize, CacheError> {
        let prefix = format!("{}:", self.inner.key_prefix);
        match self.inner.backend.clear(&prefix).await {
            Ok(n) => Ok(n),
            Err(e) => Err(self.record_error("clear", &prefix, e)),
        }
    }

    /// A snapshot of this cache's counters.
    pub fn stats(&self) -> CacheStats {
        self.counters().snapshot(self.inner.backend.evictions())
    }

    fn counters(&self) -> &Counters {
        &self.inner.shared.counters
    }

    pub(crate) async fn fetch<T: Cacheable>(
        &self,
        skey: &str,
        count: bool,
    ) -> Result<Option<T>, CacheError> {
        if let Some(read) = self.fetch_now(skey, count) {
            return read;
        }
        let read = self.inner.backend.get(skey).await;
        self.decoded(skey, count, read)
    }

    /// [`fetch`](Self::fetch) without a future, for backends that answer at once
    /// ([`Backend::get_now`]); `None` means the backend must be awaited.
    pub(crate) fn fetch_now<T: Cacheable>(
        &self,
        skey: &str,
        count: bool,
    ) -> Option<Result<Option<T>, CacheError>> {
        let read = self.inner.backend.get_now(skey)?;
        Some(self.decoded(skey, count, read))
    }

    fn decoded<T: Cacheable>(
        &self,
        skey: &str,
        count: bool,
        read: Result<Option<Value>, CacheError>,
    ) -> Result<Option<T>, CacheError> {
        match read {
            Ok(value) if count => Ok(self.decode_counted(skey, value)),
            Ok(value) => Ok(value.and_then(|v| self.decode_value(v).ok())),
            Err(e) => Err(self.record_error("get", skey, e)),
        }
    }

    fn decode_counted<T: Cacheable>(&self, skey: &str, value: Option<Value>) -> Option<T> {
        let counters = self.counters();
        let Some(value) = value else {
            bump(&counters.misses);
            tracing::trace!(cache = %self.inner.alias, key = skey, "cache miss");
            return None;
        };
        match self.decode_value(value) {
            Ok(v) => {
                bump(&counters.hits);
                tracing::trace!(cache = %self.inner.alias, key = skey, "cache hit");
                Some(v)
            }
            Err(e) => {
                bump(&counters.decode_errors);
                bump(&counters.misses);
                tracing::debug!(cache = %self.inner.alias, key = skey, error = %e,
                    "stored value does not decode; treated as a miss and overwritten");
                None
            }
        }
    }

    async fn store<T: Cacheable>(
        &self,
        skey: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        if ttl.is_zero() {
            return match self.inner.backend.delete(skey).await {
                Ok(_) => Ok(()),
                Err(e) => Err(self.record_error("set", skey, e)),
            };
        }
        let v = match self.encode_value(skey, value) {
            Ok(v) => v,
            Err(e) => return Err(self.record_error("set", skey, e)),
        };
        match self.inner.backend.set(skey, v, backend_ttl(ttl)).await {
            Ok(()) => {
                bump(&self.counters().sets);
                Ok(())
            }
            Err(e) => Err(self.record_error("set", skey, e)),
        }
    }

    fn encode_value<T: Cacheable>(&self, skey: &str, value: &T) -> Result<Value, CacheError> {
        if let Some(n) = as_counter(value) {
            Ok(Value::Int(n))
        } else if self.inner.objects {
            Ok(Value::Object(Arc::new(value.clone())))
        } else {
            Ok(Value::Bytes(self.inner.codec.encode(skey, value)?.into()))
        }
    }

    fn decode_value<T: Cacheable>(&self, value: Value) -> Result<T, DecodeError> {
        match value {
            Value::Object(obj) => obj.downcast_ref::<T>().cloned().ok_or_else(|| {
                DecodeError::Payload(format!(
                    "the stored object is not a {}",
                    std::any::type_name::<T>()
                ))
            }),
            Value::Int(n) => T::deserialize(I64Deserializer::<ValueError>::new(n))
                .map_err(|e| DecodeError::Payload(e.to_string())),
            Value::Bytes(bytes) => self.inner.codec.decode(&bytes),
            other => Err(DecodeError::Payload(format!(
                "a value of a kind this version does not know: {other:?}"
            ))),
        }
    }

    /// Counts and (rate-limited) logs a backend error; returns it for propagation.
    fn record_error(&self, op: &'static str, key: &str, err: CacheError) -> CacheError {
        let counters = self.counters();
        bump(&counters.errors);
        if let Some(suppressed) = counters.may_log() {
            tracing::warn!(
                cache = %self.inner.alias,
                backend = self.inner.backend.name(),
                op,
                key,
                suppressed,
                error = %err,
                "cache operation failed; continuing without the cache"
            );
        }
        err
    }
}

fn backend_ttl(ttl: Duration) -> Ttl {
    if ttl >= FOREVER {
        None
    } else {
        Some(ttl)
    }
}

/// Integers are stored as counters, so `incr` works on them on every backend.
fn as_counter<T: Any>(value: &T) -> Option<i64> {
    let any = value as &dyn Any;
    macro_rules! int {
        ($($t:ty),*) => {$(
            if let Some(n) = any.downcast_ref::<$t>() {
                return i64::try_from(*n).ok();
            }
        )*};
    }
    int!(i64, i32, i16, i8, u64, u32, u16, u8, isize, usize);
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::dummy::DummyBackend;

    #[test]
    fn integers_become_counters() {
        assert_eq!(as_counter(&5u8), Some(5));
        assert_eq!(as_counter(&-5i64), Some(-5));
        assert_eq!(as_counter(&u64::MAX), None);
        assert_eq!(as_counter(&"5"), None);
    }

    #[test]
    fn huge_ttls_mean_no_expiry() {
        assert_eq!(backend_ttl(NO_EXPIRY), None);
        assert_eq!(
            backend_ttl(Duration::from_secs(1)),
            Some(Duration::from_secs(1))
        );
    }

    #[tokio::test]
    async fn flights_are_removed_when_done() {
        let cache = Cache::builder(DummyBackend::new()).build();
        let v = cache
            .get_or_set_with("k", Duration::from_secs(1), || async { 7u32 })
            .await;
        assert_eq!(v, 7);
        assert_eq!(cache.inner.shared.flights.len(), 0);
    }
}
