//! Test harnesses of the cached-kit workspace (not published):
//!
//! - [`conformance`]: every behaviour of the `Backend` trait and the `Cache` handle,
//!   written once and run against every backend (memory, dummy, Redis, Redis Cluster)
//!   with [`backend_conformance!`].
//! - [`RedisServer`] and [`RedisCluster`]: real `redis-server` processes on free
//!   loopback ports, stopped (and their files removed) on drop. A missing
//!   `redis-server` is a panic with an install hint: tests never skip silently.

pub mod conformance;
mod redis_server;

pub use redis_server::{RedisCluster, RedisServer};

#[doc(hidden)]
pub mod __private {
    pub use cached_core::Backend;
}
