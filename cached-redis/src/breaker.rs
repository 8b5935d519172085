//! A circuit breaker: stop paying the timeout on every call while Redis is down.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Where the circuit breaker of a Redis connection stands (shared by a
/// [`RedisBackend`](crate::RedisBackend) and the
/// [`RedisThrottleStore`](crate::throttle::RedisThrottleStore)s made from it).
///
/// ```
/// use cached_redis::{BreakerState, RedisBackend};
/// let backend = RedisBackend::from_url("redis://127.0.0.1:6379/0").unwrap();
/// // Nothing has failed yet: calls go through.
/// assert_eq!(backend.breaker_state(), BreakerState::Closed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go to Redis.
    Closed,
    /// Redis failed repeatedly: calls fail at once, without touching the network, until
    /// the cool-down ends.
    Open,
    /// The cool-down ended and one probe call is in flight; the others still fail fast.
    HalfOpen,
}

/// Why a call failed at once: the circuit breaker is open. The
/// [`source`](std::error::Error::source) of the `CacheError::Backend` such a call returns,
/// so callers can tell "Redis is known to be down" from a failure that just happened.
///
/// ```
/// use std::error::Error;
/// use cached_backend::CacheError;
/// use cached_redis::BreakerOpen;
///
/// fn failed_fast(err: &CacheError) -> bool {
///     err.source().is_some_and(|cause| cause.is::<BreakerOpen>())
/// }
/// assert!(failed_fast(&CacheError::backend("redis", BreakerOpen)));
/// assert!(!failed_fast(&CacheError::backend_message("redis", "other")));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerOpen;

impl std::fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("circuit breaker open after repeated failures: Redis is not called until a probe succeeds (it recovers by itself)")
    }
}

impl std::error::Error for BreakerOpen {}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { since: Instant },
}

/// Counts consecutive failures; opens at `threshold`, lets one probe through after
/// `cooldown`, closes on the first success. A probe that never reports back (its
/// future was dropped) is replaced by another after `probe_timeout`.
#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    probe_timeout: Duration,
    /// True while the state is `Closed { failures: 0 }`: the hot path reads only this.
    healthy: AtomicBool,
    state: Mutex<State>,
    rejected: AtomicU64,
    opened: AtomicU64,
}

/// Whether a call may go to Redis; a probe must report back to close or re-open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    Call,
    Probe,
    Reject,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration, probe_timeout: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            probe_timeout,
            healthy: AtomicBool::new(true),
            state: Mutex::new(State::Closed { failures: 0 }),
            rejected: AtomicU64::new(0),
            opened: AtomicU64::new(0),
        }
    }

    pub(crate) fn admit(&self) -> Admit {
        if self.healthy.load(Ordering::Acquire) {
            return Admit::Call;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let admit = match &*state {
            State::Closed { .. } => Admit::Call,
            State::Open { until } if now >= *until => Admit::Probe,
            State::HalfOpen { since } if now >= *since + self.probe_timeout => Admit::Probe,
            State::Open { .. } | State::HalfOpen { .. } => Admit::Reject,
        };
        match admit {
            Admit::Probe => *state = State::HalfOpen { since: now },
            Admit::Reject => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
            }
            Admit::Call => {}
        }
        admit
    }

    pub(crate) fn success(&self) {
        if self.healthy.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !matches!(*state, State::Closed { .. }) {
            tracing::info!("redis is reachable again; circuit breaker closed");
        }
        *state = State::Closed { failures: 0 };
        self.healthy.store(true, Ordering::Release);
    }

    pub(crate) fn failure(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.healthy.store(false, Ordering::Release);
        let open = match &mut *state {
            State::Closed { failures } => {
                *failures += 1;
                *failures >= self.threshold
            }
            State::HalfOpen { .. } => true,
            // A call admitted before the breaker opened failed late: keep the cool-down.
            State::Open { .. } => false,
        };
        if open {
            *state = State::Open {
                until: Instant::now() + self.cooldown,
            };
            self.opened.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                cooldown_ms = self.cooldown.as_millis() as u64,
                "redis keeps failing; circuit breaker open: calls fail fast until a probe succeeds"
            );
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        match &*self.state.lock().unwrap_or_else(PoisonError::into_inner) {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    pub(crate) fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_failures_and_rejects() {
        let b = Breaker::new(3, Duration::from_secs(3600), Duration::from_secs(3600));
        for _ in 0..2 {
            assert_eq!(b.admit(), Admit::Call);
            b.failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(), Admit::Call);
        b.failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit(), Admit::Reject);
        assert_eq!(b.rejected(), 1);
        assert_eq!(b.opened(), 1);
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breaker::new(2, Duration::from_secs(3600), Duration::from_secs(3600));
        b.failure();
        b.success();
        b.failure();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn after_the_cooldown_one_probe_goes_through() {
        let b = Breaker::new(1, Duration::ZERO, Duration::from_secs(3600));
        b.failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit(), Admit::Probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // While the probe is in flight, everyone else fails fast.
        assert_eq!(b.admit(), Admit::Reject);
        // A failed probe re-opens; a successful one closes.
        b.failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit(), Admit::Probe);
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(), Admit::Call);
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced() {
        let b = Breaker::new(1, Duration::ZERO, Duration::ZERO);
        b.failure();
        assert_eq!(b.admit(), Admit::Probe);
        // The probe's future was dropped: no success, no failure. Another probe may go.
        assert_eq!(b.admit(), Admit::Probe);
    }
}
