//! [`CacheBuilder`]: a [`Cache`] over a backend, with its alias, prefix, version,
//! default ttl and codec.

use std::sync::Arc;
use std::time::Duration;

use super::{Cache, Inner, Shared};
use crate::backend::Backend;
use crate::codec::Codec;
use crate::key::key_head;
use crate::observe::{CacheMetrics, Observed};
use crate::stats::Counters;

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
    pub(super) backend: Arc<dyn Backend>,
    pub(super) alias: String,
    pub(super) codec: Codec,
    pub(super) key_prefix: String,
    pub(super) version: u32,
    pub(super) default_ttl: Duration,
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
        // Observability hook (`observe.rs`): spans and metrics around every backend call
        // and counted event, under this alias.
        let metrics = Arc::new(CacheMetrics::new(&self.alias));
        let observed = Observed::new(
            Arc::clone(&self.backend),
            &self.alias,
            #[cfg(feature = "metrics")]
            Arc::clone(&metrics),
        );
        Cache {
            inner: Arc::new(Inner {
                objects: self.backend.stores_objects(),
                near: self.backend.near_tier(),
                head: key_head(&self.key_prefix, self.version),
                alias: self.alias,
                backend: Arc::new(observed),
                raw: self.backend,
                codec: self.codec,
                key_prefix: self.key_prefix,
                version: self.version,
                default_ttl: self.default_ttl,
                shared: Arc::new(Shared {
                    counters: Counters::new(metrics),
                    flights: Arc::default(),
                }),
            }),
        }
    }
}
