//! The one error type of the runtime.

use std::fmt;

/// Everything that can go wrong in a cache operation.
///
/// Every message says what happened and what to do about it. Backend failures never
/// break a memoized function (the macros and `get_or_set_with` fail open); they reach
/// you only from the direct `Cache` methods.
///
/// ```
/// use cached_core::CacheError;
/// let err = CacheError::config("CACHE_URL", "unknown scheme `mem`");
/// assert!(err.to_string().contains("CACHE_URL"));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The cache configuration (a URL, a builder setting) is invalid.
    #[error("invalid cache configuration in {origin}: {message}")]
    Config {
        /// Where the bad setting came from (`CACHE_URL`, `CACHE_URL_SHARED`, a builder).
        origin: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The configuration needs a cargo feature of `cached-kit` that is not enabled.
    #[error("{what} needs the `{feature}` feature of cached-kit: add `features = [\"{feature}\"]` to its entry in Cargo.toml")]
    FeatureDisabled {
        /// What needed the feature (`the redis:// scheme`, `the postcard codec`).
        what: String,
        /// The cargo feature to enable.
        feature: &'static str,
    },
    /// No cache is configured under this alias.
    #[error("no cache named `{0}`: configure it with `caches().insert(\"{0}\", ...)` or the CACHE_URL_{env} environment variable", env = env_suffix(.0))]
    UnknownCache(String),
    /// The backend could not be reached or answered with an error.
    #[error("cache backend `{backend}` failed: {message}")]
    Backend {
        /// The backend's name (`memory`, `redis`).
        backend: &'static str,
        /// The underlying error.
        message: String,
    },
    /// The backend did not answer in time.
    #[error("cache backend `{backend}` timed out after {millis} ms")]
    Timeout {
        /// The backend's name.
        backend: &'static str,
        /// How long it waited.
        millis: u64,
    },
    /// A value could not be encoded with the cache's codec.
    #[error("could not encode the value for key `{key}` with the {codec} codec: {message}")]
    Encode {
        /// The key.
        key: String,
        /// The codec's name.
        codec: &'static str,
        /// The codec's error.
        message: String,
    },
    /// `incr`/`decr` on a value that is not an integer counter.
    #[error("the value under `{0}` is not an integer counter; `incr`/`decr` work on values created by them or set as an integer")]
    NotACounter(String),
    /// `incr`/`decr` would overflow an `i64`.
    #[error("the counter under `{0}` would overflow i64")]
    Overflow(String),
}

impl CacheError {
    /// A configuration error from `origin` (an env var name, a builder) saying `message`.
    pub fn config(origin: impl Into<String>, message: impl fmt::Display) -> Self {
        CacheError::Config {
            origin: origin.into(),
            message: message.to_string(),
        }
    }

    /// A backend failure, with the backend's name and the underlying error.
    pub fn backend(backend: &'static str, err: impl fmt::Display) -> Self {
        CacheError::Backend {
            backend,
            message: err.to_string(),
        }
    }
}

/// The environment-variable suffix for a cache alias: `shared-api` → `SHARED_API`.
pub(crate) fn env_suffix(alias: &str) -> String {
    alias
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}
