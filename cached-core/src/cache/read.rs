//! Reading: `get`, `has_key`, `get_many`, and the decode-and-count step every read
//! shares.

use std::collections::HashMap;

use super::{Cache, Cacheable};
use crate::backend::Value;
use crate::stats::bump;
use crate::CacheError;

impl Cache {
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
            // Freshness hook: envelopes may need their tags' versions (`fresh.rs`).
            let found = match &value {
                Some(v) if self.is_envelope::<T>(v) => {
                    self.read_envelope(skey, v, true).await.flatten()
                }
                _ => self.decode_counted(skey, value),
            };
            if let Some(v) = found {
                out.insert(key, v);
            }
        }
        Ok(out)
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
        // Freshness hook: an envelope may need its tags' versions (`fresh.rs`).
        if let Ok(Some(value)) = &read {
            if self.is_envelope::<T>(value) {
                return Ok(self.read_envelope(skey, value, count).await.flatten());
            }
        }
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

    pub(super) fn decoded<T: Cacheable>(
        &self,
        skey: &str,
        count: bool,
        read: Result<Option<Value>, CacheError>,
    ) -> Result<Option<T>, CacheError> {
        match read {
            Ok(value) if count => Ok(self.decode_counted(skey, value)),
            Ok(value) => Ok(value.and_then(|v| match self.decode_value(&v) {
                Ok(v) => Some(v),
                // Freshness hook: an envelope (`fresh.rs`).
                Err(_) => self.read_envelope_now(skey, &v, false).flatten(),
            })),
            Err(e) => Err(self.record_error("get", skey, e)),
        }
    }

    pub(super) fn decode_counted<T: Cacheable>(
        &self,
        skey: &str,
        value: Option<Value>,
    ) -> Option<T> {
        let counters = self.counters();
        let Some(value) = value else {
            bump(&counters.misses);
            tracing::trace!(cache = %self.inner.alias, key = skey, "cache miss");
            return None;
        };
        match self.decode_value(&value) {
            Ok(v) => {
                bump(&counters.hits);
                tracing::trace!(cache = %self.inner.alias, key = skey, "cache hit");
                Some(v)
            }
            Err(e) => {
                // Freshness hook: an envelope, which counts its own read (`fresh.rs`).
                if let Some(read) = self.read_envelope_now(skey, &value, true) {
                    return read;
                }
                bump(&counters.decode_errors);
                bump(&counters.misses);
                tracing::debug!(cache = %self.inner.alias, key = skey, error = %e,
                    "stored value does not decode; treated as a miss and overwritten");
                None
            }
        }
    }
}
