//! The backend of a misconfigured cache: every operation reports the configuration error.

use std::time::Duration;

use async_trait::async_trait;
use cached_backend::{Backend, CacheError, Ttl, Value};

/// Stands in for the backend of a cache whose configuration is invalid, so that code
/// using the cache keeps running (uncached) and every direct call reports why.
pub(crate) struct BrokenBackend(pub(crate) CacheError);

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
    async fn delete_if_equals(&self, _: &str, _: &[u8]) -> Result<bool, CacheError> {
        Err(self.0.clone())
    }
    async fn expire_if_equals(&self, _: &str, _: &[u8], _: Duration) -> Result<bool, CacheError> {
        Err(self.0.clone())
    }
}
