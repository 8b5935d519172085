//! Reading: `get`, `has_key`, `get_many`, and the decode-and-count step every read
//! shares.

use std::collections::HashMap;
use std::ops::ControlFlow;

use super::{Cache, Cacheable};
use crate::backend::Value;
use crate::key::{push_safe_key, with_key_buf};
use crate::stats::Counter;
use crate::CacheError;

/// What [`Cache::read_now`] found.
pub(crate) enum ReadNow<T> {
    /// The value, counted as a hit.
    Hit(T),
    /// No value: absent, undecodable (counted as a miss) or a backend error (recorded).
    Miss,
    /// The backend must be awaited.
    Later,
}

impl Cache {
    /// The value under `key`, or `None` when absent, expired, or not decodable as `T`
    /// (a decode error counts in `stats().decode_errors` and the value is overwritten by
    /// the next store).
    pub async fn get<T: Cacheable>(&self, key: &str) -> Result<Option<T>, CacheError> {
        // The stored key is rendered into this thread's reused buffer and read at once
        // where the backend can (in-memory caches); it is copied out only for a backend
        // that must be awaited.
        let skey = with_key_buf(|skey| {
            skey.push_str(&self.inner.head);
            push_safe_key(skey, key);
            match self.fetch_now(skey, true) {
                Some(read) => ControlFlow::Break(read),
                None => ControlFlow::Continue(skey.clone()),
            }
        });
        match skey {
            ControlFlow::Break(read) => read,
            ControlFlow::Continue(skey) => {
                let read = self.inner.backend.get(&skey).await;
                self.awaited(&skey, true, read).await
            }
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
                _ => self.decode_counted(skey, value, false),
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
        self.awaited(skey, count, read).await
    }

    /// The value of a read from a backend that had to be awaited.
    async fn awaited<T: Cacheable>(
        &self,
        skey: &str,
        count: bool,
        read: Result<Option<Value>, CacheError>,
    ) -> Result<Option<T>, CacheError> {
        // Freshness hook: an envelope may need its tags' versions (`fresh.rs`).
        if let Ok(Some(value)) = &read {
            if self.is_envelope::<T>(value) {
                return Ok(self.read_envelope(skey, value, count).await.flatten());
            }
        }
        self.decoded(skey, count, read, false)
    }

    /// [`fetch`](Self::fetch) without a future, for backends that answer at once
    /// ([`Backend::get_now`]); `None` means the backend must be awaited.
    #[inline]
    pub(crate) fn fetch_now<T: Cacheable>(
        &self,
        skey: &str,
        count: bool,
    ) -> Option<Result<Option<T>, CacheError>> {
        let read = self.inner.backend.get_now(skey)?;
        if self.inner.near {
            // Near-tier hook: an envelope whose tags' versions the near tier does not
            // hold must be read the long way (the versions from Redis), not missed.
            if let Ok(Some(value)) = &read {
                if self.is_envelope::<T>(value) && self.envelope_waits::<T>(value) {
                    return None;
                }
            }
        }
        // Near-tier hook: a hit answered at once by a two-tier backend came from its
        // near tier, and is counted as a near hit.
        Some(self.decoded(skey, count, read, self.inner.near))
    }

    /// [`fetch_now`](Self::fetch_now) as the hit path of `#[cache_fn]` needs it: a hit,
    /// a miss (counted; a backend error recorded), or "ask later" (the backend must be
    /// awaited).
    #[inline]
    pub(crate) fn read_now<T: Cacheable>(&self, skey: &str) -> ReadNow<T> {
        match self.fetch_now::<T>(skey, true) {
            Some(Ok(Some(v))) => ReadNow::Hit(v),
            Some(_) => ReadNow::Miss,
            None => ReadNow::Later,
        }
    }

    /// The value of a read, counted when `count`; a backend error is recorded.
    ///
    /// A plain entry of an in-process cache is the stored object itself, of type `T`:
    /// that is checked first, with the object's type id, and is the whole of a hit. Any
    /// other entry (encoded bytes, a counter, an object of another type, and, for call
    /// sites that ask for stale-while-revalidate or tags, an envelope around the value)
    /// takes the general path, so plain entries pay nothing for the others. `near`: a
    /// hit is counted as a near hit (the read came from a near tier).
    #[inline]
    pub(super) fn decoded<T: Cacheable>(
        &self,
        skey: &str,
        count: bool,
        read: Result<Option<Value>, CacheError>,
        near: bool,
    ) -> Result<Option<T>, CacheError> {
        if let Ok(Some(Value::Object(obj))) = &read {
            if let Some(v) = obj.downcast_ref::<T>() {
                let v = v.clone();
                if count {
                    self.counters().bump(Counter::hit(near));
                    tracing::trace!(cache = %self.inner.alias, key = skey, "cache hit");
                }
                return Ok(Some(v));
            }
        }
        self.decoded_in_general(skey, count, read, near)
    }

    #[inline(never)]
    fn decoded_in_general<T: Cacheable>(
        &self,
        skey: &str,
        count: bool,
        read: Result<Option<Value>, CacheError>,
        near: bool,
    ) -> Result<Option<T>, CacheError> {
        match read {
            Ok(value) if count => Ok(self.decode_counted(skey, value, near)),
            Ok(value) => Ok(value.and_then(|v| match self.decode_value(&v) {
                Ok(v) => Some(v),
                // Freshness hook: an envelope (`fresh.rs`).
                Err(_) => self.read_envelope_now(skey, &v, false, false).flatten(),
            })),
            Err(e) => Err(self.record_error("get", skey, e)),
        }
    }

    pub(super) fn decode_counted<T: Cacheable>(
        &self,
        skey: &str,
        value: Option<Value>,
        near: bool,
    ) -> Option<T> {
        let counters = self.counters();
        let Some(value) = value else {
            counters.bump(Counter::Misses);
            tracing::trace!(cache = %self.inner.alias, key = skey, "cache miss");
            return None;
        };
        match self.decode_value(&value) {
            Ok(v) => {
                counters.bump(Counter::hit(near));
                tracing::trace!(cache = %self.inner.alias, key = skey, "cache hit");
                Some(v)
            }
            Err(e) => {
                // Freshness hook: an envelope, which counts its own read (`fresh.rs`).
                if let Some(read) = self.read_envelope_now(skey, &value, true, near) {
                    return read;
                }
                counters.bump(Counter::DecodeErrors);
                counters.bump(Counter::Misses);
                tracing::debug!(cache = %self.inner.alias, key = skey, error = %e,
                    "stored value does not decode; treated as a miss and overwritten");
                None
            }
        }
    }
}
