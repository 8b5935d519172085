//! The [`Backend`] trait, where every storage meets the `Cache` handle of `cached-core`.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::CacheError;

/// A value as a backend stores it.
///
/// Remote backends only ever see [`Value::Bytes`] (a codec-encoded value with its
/// header) and [`Value::Int`] (a counter, stored as a plain integer so the server can
/// increment it atomically). In-process backends that report
/// [`Backend::stores_objects`] also receive [`Value::Object`]: the Rust value itself,
/// never serialized.
#[derive(Clone)]
#[non_exhaustive]
pub enum Value {
    /// A codec-encoded value, starting with the header of `cached_core::codec`.
    Bytes(Bytes),
    /// An integer counter (`incr`, `decr`, or any integer `set` through a `Cache`).
    Int(i64),
    /// An in-process value; only given to backends whose `stores_objects()` is true.
    Object(Arc<dyn Any + Send + Sync>),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bytes(b) => f.debug_tuple("Bytes").field(&b.len()).finish(),
            Value::Int(n) => f.debug_tuple("Int").field(n).finish(),
            Value::Object(_) => f.write_str("Object(..)"),
        }
    }
}

impl Value {
    /// The size in bytes this value counts for in a byte-bounded store.
    pub fn weight(&self) -> usize {
        match self {
            Value::Bytes(b) => b.len(),
            Value::Int(_) => 8,
            Value::Object(_) => std::mem::size_of::<usize>() * 2,
        }
    }
}

/// How long a backend keeps an entry: `None` means until it is evicted or deleted.
pub type Ttl = Option<Duration>;

/// A cache storage: in-memory, Redis, or your own.
///
/// Keys reaching a backend are already complete stored keys
/// (`{prefix}:{version}:{key}`, see `cached_core::key`). Every method is atomic for
/// its key. A backend is object safe and is used as `Arc<dyn Backend>`.
///
/// Every backend of this workspace runs the same conformance suite (the unpublished
/// `cached-testing` crate); a backend of your own should pass it too.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use async_trait::async_trait;
/// use cached_backend::{Backend, CacheError, Ttl, Value};
///
/// /// Stores nothing: every read misses.
/// struct Nothing;
///
/// #[async_trait]
/// impl Backend for Nothing {
///     fn name(&self) -> &'static str { "nothing" }
///     async fn get(&self, _: &str) -> Result<Option<Value>, CacheError> { Ok(None) }
///     async fn set(&self, _: &str, _: Value, _: Ttl) -> Result<(), CacheError> { Ok(()) }
///     async fn add(&self, _: &str, _: Value, _: Ttl) -> Result<bool, CacheError> { Ok(true) }
///     async fn delete(&self, _: &str) -> Result<bool, CacheError> { Ok(false) }
///     async fn incr(&self, _: &str, d: i64, _: Ttl) -> Result<i64, CacheError> { Ok(d) }
///     async fn touch(&self, _: &str, _: Ttl) -> Result<bool, CacheError> { Ok(false) }
///     async fn clear(&self, _: &str) -> Result<usize, CacheError> { Ok(0) }
///     async fn delete_if_equals(&self, _: &str, _: &[u8]) -> Result<bool, CacheError> { Ok(false) }
///     async fn expire_if_equals(&self, _: &str, _: &[u8], _: Duration) -> Result<bool, CacheError> { Ok(false) }
/// }
///
/// let backend: Arc<dyn Backend> = Arc::new(Nothing);
/// assert_eq!(backend.name(), "nothing");
/// ```
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A short name for logs and errors (`memory`, `redis`).
    fn name(&self) -> &'static str;

    /// Whether this backend keeps values in this process, so that the `Cache` may hand
    /// it [`Value::Object`] instead of encoding the value.
    fn stores_objects(&self) -> bool {
        false
    }

    /// The value under `key`, or `None` if it is absent or expired.
    async fn get(&self, key: &str) -> Result<Option<Value>, CacheError>;

    /// The same answer as [`get`](Backend::get), given without waiting, by backends that
    /// can (in-process ones); `None` means "ask `get`". The `Cache` tries this first, so
    /// an in-memory hit allocates no future.
    fn get_now(&self, _key: &str) -> Option<Result<Option<Value>, CacheError>> {
        None
    }

    /// Stores `value` under `key` for `ttl`, replacing any value.
    async fn set(&self, key: &str, value: Value, ttl: Ttl) -> Result<(), CacheError>;

    /// Stores `value` only if `key` is absent; returns whether it stored.
    async fn add(&self, key: &str, value: Value, ttl: Ttl) -> Result<bool, CacheError>;

    /// Deletes `key`; returns whether it existed.
    async fn delete(&self, key: &str) -> Result<bool, CacheError>;

    /// The values under `keys`, in the same order.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Value>>, CacheError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }

    /// Stores every entry for `ttl`.
    async fn set_many(&self, entries: Vec<(String, Value)>, ttl: Ttl) -> Result<(), CacheError> {
        for (key, value) in entries {
            self.set(&key, value, ttl).await?;
        }
        Ok(())
    }

    /// Deletes every key; returns how many existed.
    async fn delete_many(&self, keys: &[String]) -> Result<usize, CacheError> {
        let mut n = 0;
        for key in keys {
            n += usize::from(self.delete(key).await?);
        }
        Ok(n)
    }

    /// Atomically adds `delta` to the integer under `key` and returns the new value.
    ///
    /// An absent key starts at 0 and gets `ttl`; an existing counter keeps its expiry.
    /// A value that is not an integer is [`CacheError::NotACounter`].
    async fn incr(&self, key: &str, delta: i64, ttl: Ttl) -> Result<i64, CacheError>;

    /// Gives an existing `key` a new `ttl`; returns whether it existed.
    async fn touch(&self, key: &str, ttl: Ttl) -> Result<bool, CacheError>;

    /// Deletes every key starting with `prefix`, and nothing else; returns how many.
    async fn clear(&self, prefix: &str) -> Result<usize, CacheError>;

    /// Atomically: deletes `key` only if it holds exactly the bytes `expected` (stored
    /// with [`add`](Backend::add) as [`Value::Bytes`]); returns whether it deleted.
    ///
    /// This is how an owned lock is released (compare-and-delete): a holder whose lock
    /// expired and was taken by another never deletes the other's lock.
    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, CacheError>;

    /// Atomically: gives `key` the new `ttl` only if it holds exactly the bytes
    /// `expected`; returns whether it did. This is how a lock holder extends its lock
    /// while its work runs.
    async fn expire_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError>;

    /// Whether [`get_now`](Backend::get_now) answers from an in-process *near tier* in
    /// front of a remote store (a Redis cache with `near_max_entries`), rather than from
    /// the store itself. The `Cache` then counts those hits as `near_hits` too, and a view
    /// served by one says `Cache-Status: ...; detail=near`.
    ///
    /// ```
    /// # use cached_backend::Backend;
    /// fn tiered(backend: &dyn Backend) -> bool {
    ///     backend.near_tier()
    /// }
    /// # let _ = tiered;
    /// ```
    fn near_tier(&self) -> bool {
        false
    }

    /// How many entries the backend evicted to respect its size bound, if it knows.
    fn evictions(&self) -> u64 {
        0
    }
}
