//! The Redis backend of cached-kit (work in progress).

/// Registers the Redis URL schemes with `cached-core`.
pub fn register() {}
