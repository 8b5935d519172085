//! The cross-process computation lock of `lock = true`: owned, extended, released.
//!
//! - **Owned**: the lock's value is a random token; it is taken with
//!   [`add`](crate::Backend::add) (`SET NX PX` on Redis) and released with
//!   [`delete_if_equals`](crate::Backend::delete_if_equals) (one compare-and-delete
//!   script), so a holder whose lock expired never deletes the next holder's.
//! - **Extended**: while the body runs, a task extends the lock every `lock_ttl / 3`
//!   ([`expire_if_equals`](crate::Backend::expire_if_equals)), so a body slower than
//!   `lock_ttl` never lets a second process in. A holder that dies stops extending, and
//!   its lock expires `lock_ttl` later, when a waiter takes it.
//! - **Released on every path**: [`HeldLock`] releases in its `Drop` when the computation
//!   is cancelled (a dropped future, a panic), on a task of the current runtime.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::backend::{Backend, Value};
use crate::log::RateLimited;

/// How often a waiter looks for the value or a free lock.
pub(crate) const LOCK_POLL: Duration = Duration::from_millis(25);

/// A lock this process holds; released when [`release`](HeldLock::release)d or dropped.
pub(crate) struct HeldLock {
    backend: Arc<dyn Backend>,
    key: String,
    token: Arc<[u8]>,
    extender: Option<JoinHandle<()>>,
    released: bool,
}

/// A fresh random token: 128 bits from the standard library's randomly seeded hasher,
/// with the process id, the time and a counter mixed in. Never a decimal integer (which
/// a backend would read back as a counter).
pub(crate) fn new_token() -> Arc<[u8]> {
    unique_token("ck-lock").into_bytes().into()
}

/// `{kind}:` and 128 random bits in hex: unique across processes and restarts (tag
/// versions use it too, so that a tag key recreated after eviction never holds a
/// version an old entry recorded).
pub(crate) fn unique_token(kind: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let a = RandomState::new().hash_one((std::process::id(), nanos, n));
    let b = RandomState::new().hash_one((a, n));
    format!("{kind}:{a:016x}{b:016x}")
}

/// Tries to take the lock `key` for `lock_ttl`: `Ok(Some(lock))` when taken,
/// `Ok(None)` when another holds it.
pub(crate) async fn try_lock(
    backend: &Arc<dyn Backend>,
    key: &str,
    lock_ttl: Duration,
) -> Result<Option<HeldLock>, crate::CacheError> {
    let token = new_token();
    let taken = backend
        .add(key, Value::Bytes(token.to_vec().into()), Some(lock_ttl))
        .await?;
    if !taken {
        return Ok(None);
    }
    let extender = Handle::try_current().ok().map(|rt| {
        rt.spawn(extend(
            Arc::clone(backend),
            key.to_owned(),
            Arc::clone(&token),
            lock_ttl,
        ))
    });
    Ok(Some(HeldLock {
        backend: Arc::clone(backend),
        key: key.to_owned(),
        token,
        extender,
        released: false,
    }))
}

/// Extends the lock every `lock_ttl / 3` for as long as it runs (it is aborted when
/// the lock is released or dropped).
async fn extend(backend: Arc<dyn Backend>, key: String, token: Arc<[u8]>, lock_ttl: Duration) {
    static LOG: RateLimited = RateLimited::new();
    let every = (lock_ttl / 3).max(Duration::from_millis(1));
    loop {
        tokio::time::sleep(every).await;
        match backend.expire_if_equals(&key, &token, lock_ttl).await {
            Ok(true) => {}
            Ok(false) => {
                if let Some(suppressed) = LOG.allow() {
                    tracing::warn!(key = %key, suppressed,
                        "a computation lock expired before its holder extended it; another process may compute too (raise lock_ttl)");
                }
                return;
            }
            Err(e) => {
                if let Some(suppressed) = LOG.allow() {
                    tracing::warn!(key = %key, error = %e, suppressed, "could not extend a computation lock");
                }
            }
        }
    }
}

impl HeldLock {
    /// Releases the lock (only if it is still this holder's).
    pub(crate) async fn release(mut self) {
        self.released = true;
        if let Some(extender) = self.extender.take() {
            extender.abort();
        }
        // A failure leaves the lock to expire by itself; the backend counts it.
        let _ = self.backend.delete_if_equals(&self.key, &self.token).await;
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if let Some(extender) = self.extender.take() {
            extender.abort();
        }
        if self.released {
            return;
        }
        // Cancelled: release on the runtime so the next caller is not stalled for
        // `lock_ttl`. Without a runtime the lock expires by itself.
        let backend = Arc::clone(&self.backend);
        let key = std::mem::take(&mut self.key);
        let token = Arc::clone(&self.token);
        if let Ok(rt) = Handle::try_current() {
            rt.spawn(async move {
                let _ = backend.delete_if_equals(&key, &token).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_never_counters() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert!(std::str::from_utf8(&a).is_ok_and(|t| t.parse::<i64>().is_err()));
    }
}
