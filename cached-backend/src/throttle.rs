//! [`ThrottleStore`]: where throttles keep their logs.

use std::time::Duration;

use async_trait::async_trait;

use crate::{CacheError, Rate};

/// What a [`ThrottleStore`] decided about one request for one key.
///
/// ```
/// use std::time::Duration;
/// use cached_backend::Decision;
/// let refused = Decision::refused(5, Duration::from_millis(1_500));
/// assert!(!refused.admitted);
/// assert_eq!(refused.retry_after_secs(), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// Whether the request was admitted (and recorded).
    pub admitted: bool,
    /// The rate's count.
    pub limit: u32,
    /// How many more requests the window admits right now (after this one).
    pub remaining: u32,
    /// How long until the oldest counted request leaves the window, so that one more
    /// request is admitted. For a refused request: how long to wait.
    pub reset: Duration,
    /// Identifies what an admitted request recorded, for [`ThrottleStore::undo`].
    pub token: u64,
}

impl Decision {
    /// An admitted request, leaving `remaining`, whose oldest counted request leaves
    /// the window after `reset`.
    pub fn admitted(limit: u32, remaining: u32, reset: Duration, token: u64) -> Decision {
        Decision {
            admitted: true,
            limit,
            remaining,
            reset,
            token,
        }
    }

    /// A refused request: a slot frees after `wait`.
    pub fn refused(limit: u32, wait: Duration) -> Decision {
        Decision {
            admitted: false,
            limit,
            remaining: 0,
            reset: wait,
            token: 0,
        }
    }

    /// [`reset`](Decision::reset) in whole seconds, rounded up, at least 1: the value
    /// of `Retry-After` and `RateLimit-Reset`.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.reset.as_secs() + u64::from(self.reset.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// A store of sliding-window logs, shared by every throttle that uses it.
///
/// Its one essential operation, [`check`](ThrottleStore::check), is atomic: it drops the
/// requests that left the window, and admits and records this request only if fewer
/// than `rate.count()` remain; a refused request is not recorded. So at most `count`
/// requests are admitted in any trailing window of `rate.period()`, under any
/// concurrency. Implementations: `cached_core::throttle::MemoryThrottleStore`
/// (one process) and `cached_redis::throttle::RedisThrottleStore` (shared).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use cached_core::throttle::{MemoryThrottleStore, Rate, ThrottleStore};
///
/// let store: Arc<dyn ThrottleStore> = Arc::new(MemoryThrottleStore::default());
/// let rate = Rate::parse("2/minute")?;
/// assert!(store.check("throttle:anon:2/minute:1.2.3.4", rate).await?.admitted);
/// assert!(store.check("throttle:anon:2/minute:1.2.3.4", rate).await?.admitted);
/// assert!(!store.check("throttle:anon:2/minute:1.2.3.4", rate).await?.admitted);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait ThrottleStore: Send + Sync + 'static {
    /// A short name for logs (`memory`, `redis`).
    fn name(&self) -> &'static str;

    /// Atomically: forget the requests under `key` older than `rate.period()`, then admit
    /// and record this one if fewer than `rate.count()` are left.
    async fn check(&self, key: &str, rate: Rate) -> Result<Decision, CacheError>;

    /// Forgets the request an admitted [`Decision`] recorded, so that a request that
    /// another throttle refused is not counted here either.
    async fn undo(&self, key: &str, decision: &Decision) -> Result<(), CacheError>;
}
