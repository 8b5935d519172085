//! [`DummyBackend`]: stores nothing, like Django's `DummyCache`.

use async_trait::async_trait;

use super::{Backend, Ttl, Value};
use crate::CacheError;

/// A backend that stores nothing: every read misses, every write succeeds.
///
/// Use it in tests and in development to run code that caches without caching
/// anything, as Django's `DummyCache`. `CACHE_URL=dummy://` selects it.
///
/// ```
/// # tokio_test_block_on(async {
/// use std::time::Duration;
/// use cached_core::{Cache, backend::dummy::DummyBackend};
/// let cache = Cache::builder(DummyBackend::new()).build();
/// cache.set("k", &1u8, Duration::from_secs(60)).await.unwrap();
/// assert_eq!(cache.get::<u8>("k").await.unwrap(), None);
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Default, Clone)]
pub struct DummyBackend {
    _private: (),
}

impl DummyBackend {
    /// A new dummy backend.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Backend for DummyBackend {
    fn name(&self) -> &'static str {
        "dummy"
    }

    async fn get(&self, _key: &str) -> Result<Option<Value>, CacheError> {
        Ok(None)
    }

    async fn set(&self, _key: &str, _value: Value, _ttl: Ttl) -> Result<(), CacheError> {
        Ok(())
    }

    async fn add(&self, _key: &str, _value: Value, _ttl: Ttl) -> Result<bool, CacheError> {
        Ok(true)
    }

    async fn delete(&self, _key: &str) -> Result<bool, CacheError> {
        Ok(false)
    }

    async fn incr(&self, _key: &str, delta: i64, _ttl: Ttl) -> Result<i64, CacheError> {
        Ok(delta)
    }

    async fn touch(&self, _key: &str, _ttl: Ttl) -> Result<bool, CacheError> {
        Ok(false)
    }

    async fn clear(&self, _prefix: &str) -> Result<usize, CacheError> {
        Ok(0)
    }

    /// Reports success, as [`add`](Backend::add) does: a lock taken on a dummy cache
    /// is released without complaint.
    async fn delete_if_equals(&self, _key: &str, _expected: &[u8]) -> Result<bool, CacheError> {
        Ok(true)
    }

    /// Reports success, as [`add`](Backend::add) does: a lock holder on a dummy cache
    /// never believes it lost its lock.
    async fn expire_if_equals(
        &self,
        _key: &str,
        _expected: &[u8],
        _ttl: std::time::Duration,
    ) -> Result<bool, CacheError> {
        Ok(true)
    }
}
