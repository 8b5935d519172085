//! The one error type of cached-kit.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// Everything that can go wrong in a cache operation.
///
/// Every message says what happened and what to do about it. Backend failures never
/// break a memoized function (the macros and `get_or_set_with` fail open); they reach
/// you only from the direct `Cache` methods.
///
/// ```
/// use cached_backend::CacheError;
/// let err = CacheError::config("CACHE_URL", "unknown scheme `mem`");
/// assert!(err.to_string().contains("CACHE_URL"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CacheError {
    /// The cache configuration (a URL, a builder setting) is invalid.
    Config {
        /// Where the bad setting came from (`CACHE_URL`, `CACHE_URL_SHARED`, a builder).
        origin: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The configuration needs a cargo feature of `cached-kit` that is not enabled.
    FeatureDisabled {
        /// What needed the feature (`the redis:// scheme`, `the postcard codec`).
        what: String,
        /// The cargo feature to enable.
        feature: &'static str,
    },
    /// No cache is configured under this alias.
    UnknownCache(String),
    /// The backend could not be reached or answered with an error.
    Backend {
        /// The backend's name (`memory`, `redis`).
        backend: &'static str,
        /// What failed, in words (the underlying error's message when there is one).
        message: String,
        /// The underlying error, when there is one (also [`std::error::Error::source`]).
        source: Option<Arc<dyn StdError + Send + Sync>>,
    },
    /// The backend did not answer in time.
    Timeout {
        /// The backend's name.
        backend: &'static str,
        /// How long it waited.
        millis: u64,
    },
    /// A value could not be encoded with the cache's codec.
    Encode {
        /// The key.
        key: String,
        /// The codec's name.
        codec: &'static str,
        /// The codec's error.
        message: String,
    },
    /// `incr`/`decr` on a value that is not an integer counter.
    NotACounter(String),
    /// `incr`/`decr` would overflow an `i64`.
    Overflow(String),
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::Config { origin, message } => {
                write!(f, "invalid cache configuration in {origin}: {message}")
            }
            CacheError::FeatureDisabled { what, feature } => write!(
                f,
                "{what} needs the `{feature}` feature of cached-kit: add `features = [\"{feature}\"]` to its entry in Cargo.toml"
            ),
            CacheError::UnknownCache(alias) => write!(
                f,
                "no cache named `{alias}`: set the CACHE_URL_{} environment variable, or register one in code with `caches().insert(Cache::from_url_as(\"{alias}\", ..))`",
                env_suffix(alias)
            ),
            CacheError::Backend {
                backend, message, ..
            } => write!(f, "cache backend `{backend}` failed: {message}"),
            CacheError::Timeout { backend, millis } => {
                write!(f, "cache backend `{backend}` timed out after {millis} ms")
            }
            CacheError::Encode {
                key,
                codec,
                message,
            } => write!(
                f,
                "could not encode the value for key `{key}` with the {codec} codec: {message}"
            ),
            CacheError::NotACounter(key) => write!(
                f,
                "the value under `{key}` is not an integer counter; `incr`/`decr` work on values created by them or set as an integer"
            ),
            CacheError::Overflow(key) => write!(f, "the counter under `{key}` would overflow i64"),
        }
    }
}

impl StdError for CacheError {
    /// The underlying error of a [`CacheError::Backend`], itself (not a wrapper), so
    /// that `downcast_ref` finds the backend's own error type.
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            CacheError::Backend {
                source: Some(source),
                ..
            } => Some(&**source as &(dyn StdError + 'static)),
            _ => None,
        }
    }
}

impl CacheError {
    /// A configuration error from `origin` (an env var name, a builder) saying `message`.
    pub fn config(origin: impl Into<String>, message: impl fmt::Display) -> Self {
        CacheError::Config {
            origin: origin.into(),
            message: message.to_string(),
        }
    }

    /// A backend failure caused by `err`, which stays reachable as the error's
    /// [`source`](std::error::Error::source).
    ///
    /// ```
    /// use std::error::Error;
    /// use cached_backend::CacheError;
    /// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    /// let err = CacheError::backend("redis", io);
    /// assert!(err.to_string().contains("refused"));
    /// let source = err.source().expect("kept");
    /// assert!(source.downcast_ref::<std::io::Error>().is_some());
    /// ```
    pub fn backend(backend: &'static str, err: impl StdError + Send + Sync + 'static) -> Self {
        CacheError::Backend {
            backend,
            message: err.to_string(),
            source: Some(Arc::new(err)),
        }
    }

    /// A backend failure described by `message` alone (no underlying error).
    ///
    /// ```
    /// use cached_backend::CacheError;
    /// let err = CacheError::backend_message("redis", "circuit breaker open");
    /// assert!(err.to_string().contains("circuit breaker open"));
    /// ```
    pub fn backend_message(backend: &'static str, message: impl fmt::Display) -> Self {
        CacheError::Backend {
            backend,
            message: message.to_string(),
            source: None,
        }
    }
}

/// The environment-variable suffix for a cache alias: `shared-api` → `SHARED_API`.
///
/// Aliases are names, not spellings: ASCII case and `-` versus `_` do not matter, so
/// `reports-v2`, `Reports_V2` and `REPORTS-V2` all read `CACHE_URL_REPORTS_V2`.
///
/// ```
/// assert_eq!(cached_backend::env_suffix("reports-v2"), "REPORTS_V2");
/// ```
pub fn env_suffix(alias: &str) -> String {
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
