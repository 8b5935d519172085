//! Backends: the [`Backend`] trait every storage implements (defined in
//! `cached-backend`, so that backend crates need not depend on the runtime), and the
//! in-process ones: [`memory`] (quick_cache) and [`dummy`] (stores nothing).

pub use cached_backend::{Backend, Ttl, Value};

#[cfg(feature = "memory")]
pub mod memory;

pub mod dummy;
