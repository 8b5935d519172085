//! Named caches, `CACHE_URL` and the embedded default.
//!
//! Nothing configured means the `"default"` cache is an in-memory cache: it works with
//! no set-up. Otherwise a cache comes from, in order:
//!
//! 1. [`Caches::insert`] of a [`Cache`](crate::Cache) you built in code;
//! 2. the environment: `CACHE_URL` for `"default"`, `CACHE_URL_<ALIAS>` for any other
//!    alias.
//!
//! Aliases are names, not spellings: ASCII case and `-` versus `_` do not matter, so
//! `caches().get("reports-v2")`, `caches().get("Reports_V2")` and
//! `#[cache_fn(cache = "reports-v2")]` all reach the cache that `CACHE_URL_REPORTS_V2`
//! configures.
//!
//! URLs:
//!
//! | URL | backend |
//! |---|---|
//! | `memory://?max_entries=10000` or `memory://?max_bytes=67108864` | in-memory (quick_cache), feature `memory` |
//! | `dummy://` | stores nothing |
//! | `redis://[user:pass@]host:6379/0` | Redis, feature `redis` |
//! | `rediss://host:6380/0` | Redis over TLS, feature `redis-tls` |
//! | `redis+cluster://host1:7000,host2:7001` | Redis Cluster, feature `redis-cluster` |
//!
//! Every URL takes `key_prefix`, `version`, `default_ttl` (whole seconds, or `none`) and
//! `codec` (`bincode`, `postcard`, `json`) as query parameters:
//! `redis://cache:6379/0?key_prefix=shop&version=2&default_ttl=600`.
//!
//! Every entry point (`cache()`, `caches()`, `Cache::from_url`, `CacheLayer`,
//! `ThrottleLayer`, the macros) resolves schemes through [one list](registry): the
//! schemes of this crate (`memory`, `dummy`), those the enabled cargo features provide
//! (the `cached-features` crate, fixed at compile time) and any you
//! [register](register_scheme) yourself. A malformed URL, an unknown scheme or
//! parameter, or a scheme whose feature is off is an error naming the variable and the
//! bad part.

mod broken;
mod caches;
mod from_url;
pub(crate) mod registry;
mod slot;

pub use caches::{cache, caches, Caches};
pub use registry::register_scheme;
pub use slot::CacheSlot;
