//! Writing: `set`, `add`, `delete`, the `_many` variants, counters, `touch`,
//! `incr_version` and `clear`.

use std::time::Duration;

use super::value::backend_ttl;
use super::{Cache, Cacheable};
use crate::stats::Counter;
use crate::CacheError;

impl Cache {
    /// Stores `value` under `key` for `ttl`. A zero ttl deletes the key (Django's
    /// `timeout=0`); [`NO_EXPIRY`](crate::NO_EXPIRY) stores it until evicted or deleted.
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
                    self.counters().bump(Counter::Sets);
                }
                Ok(stored)
            }
            Err(e) => Err(self.record_error("add", &skey, e)),
        }
    }

    /// Deletes `key`; returns whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let skey = self.make_key(key);
        match self.inner.backend.delete(&skey).await {
            Ok(existed) => {
                if existed {
                    self.counters().bump(Counter::Deletes);
                }
                Ok(existed)
            }
            Err(e) => Err(self.record_error("delete", &skey, e)),
        }
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
                self.counters().add(Counter::Sets, n);
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

    pub(super) async fn delete_stored(&self, skeys: &[String]) -> Result<usize, CacheError> {
        match self.inner.backend.delete_many(skeys).await {
            Ok(n) => {
                self.counters().add(Counter::Deletes, n as u64);
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

    pub(super) async fn store<T: Cacheable>(
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
                self.counters().bump(Counter::Sets);
                Ok(())
            }
            Err(e) => Err(self.record_error("set", skey, e)),
        }
    }
}
