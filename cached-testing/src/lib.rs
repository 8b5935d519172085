//! Test harnesses of the cached-kit workspace (not published):
//!
//! - [`conformance`]: every behaviour of the `Backend` trait and the `Cache` handle,
//!   written once and run against every backend (memory, dummy, Redis, Redis Cluster)
//!   with [`backend_conformance!`].
//! - [`RedisServer`] and [`RedisCluster`]: real `redis-server` processes on free
//!   loopback ports, stopped (and their files removed) on drop. A missing
//!   `redis-server` is a panic with an install hint: tests never skip silently.
//! - [`process`]: a test that starts its own binary again as child processes, and
//!   reads what they print.
//! - [`http`] (feature `http`): an axum app on `127.0.0.1:0`, a client to call it, and
//!   the bearer-token identity layer of the throttle tests.

pub mod concurrent;
pub mod conformance;
#[cfg(feature = "http")]
pub mod http;
pub mod process;
mod redis_server;

pub use redis_server::{RedisCluster, RedisServer};

#[doc(hidden)]
pub mod __private {
    pub use cached_core::Backend;
}
