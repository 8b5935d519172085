//! The one rate limiter for log lines that could repeat on every call (a cache that is
//! down, a misconfigured alias): at most one line per second per call site, with the
//! number of lines suppressed since.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// How often a rate-limited line may be logged: once per this many milliseconds.
const INTERVAL_MS: u64 = 1_000;

/// A rate limit for one kind of log line; usually a `static` at its call site.
///
/// Crate-private, so the example is not a doctest:
///
/// ```text
/// static LOG: RateLimited = RateLimited::new();
/// if let Some(suppressed) = LOG.allow() {
///     tracing::warn!(suppressed, "cache unreachable; running uncached");
/// }
/// ```
#[derive(Debug, Default)]
pub(crate) struct RateLimited {
    /// Unix millis of the last line logged.
    last: AtomicU64,
    /// Lines not logged since.
    suppressed: AtomicU64,
}

impl RateLimited {
    /// A limiter that allows its first line at once.
    pub(crate) const fn new() -> Self {
        RateLimited {
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be logged now (`n` lines were suppressed since the
    /// last one); `None` when not, and this one is counted as suppressed.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .max(1);
        let last = self.last.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= INTERVAL_MS)
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_of_the_rest() {
        let log = RateLimited::new();
        assert_eq!(log.allow(), Some(0));
        assert_eq!(log.allow(), None);
        assert_eq!(log.allow(), None);
        log.last.store(1, Ordering::Relaxed); // long ago
        assert_eq!(log.allow(), Some(2));
    }
}
