//! [`ThrottleStore`]: where throttles keep their logs, and [`Gcra`], the arithmetic of
//! the `gcra` algorithm that every store implementing it shares.

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
    /// How long until one more request is admitted than now: for the sliding log, until
    /// the oldest counted request leaves the window; for GCRA, until the bucket refills
    /// by one. For a refused request: how long to wait.
    pub reset: Duration,
    /// Identifies what an admitted request recorded, for [`ThrottleStore::undo`] (the
    /// store's to define: a log entry's id, a GCRA arrival time).
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

/// The generic cell rate algorithm (GCRA) of one throttle: a bucket of
/// [`burst`](Gcra::burst) requests that refills one request every
/// [`interval`](Gcra::interval) (the rate's period divided by its count).
///
/// A client's whole state is one instant, its *theoretical arrival time* (TAT): O(1)
/// per client, where the sliding log keeps up to `count` instants. A fresh client may
/// make `burst` requests at once, then one per interval. Unlike the sliding log, GCRA
/// does not bound the count in *every* trailing window of the period exactly (a full
/// bucket plus the refill can exceed `count` in one period when `burst > 1`); it bounds
/// the long-run rate and the burst. This is the algorithm of `governor` and of most
/// API gateways.
///
/// [`decide`](Gcra::decide) is the whole algorithm on integer instants of any one clock
/// (the memory store uses nanoseconds of its own monotonic clock); a store that
/// implements [`ThrottleStore::check_gcra`] keeps one TAT per key and applies exactly
/// this arithmetic atomically (on Redis: a script on the server's clock).
///
/// ```
/// use std::time::Duration;
/// use cached_backend::{Gcra, Rate};
///
/// // 6 a minute (one every 10 s), bursts of 3.
/// let gcra = Gcra::new(Rate::parse("6/minute")?, 3);
/// assert_eq!(gcra.interval(), Duration::from_secs(10));
/// const S: u64 = 1_000_000_000; // nanoseconds
/// let (mut tat, now) = (0, 100 * S);
/// for remaining in [2, 1, 0] {
///     let (d, next) = gcra.decide(tat, now);
///     assert!(d.admitted);
///     assert_eq!(d.remaining, remaining);
///     tat = next;
/// }
/// let (refused, unchanged) = gcra.decide(tat, now);
/// assert!(!refused.admitted);
/// assert_eq!(unchanged, tat, "a refused request is not recorded");
/// assert_eq!(refused.reset, Duration::from_secs(10), "one more after one interval");
/// assert!(gcra.decide(tat, now + 10 * S).0.admitted);
/// # Ok::<(), cached_backend::ParseRateError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gcra {
    rate: Rate,
    burst: u32,
}

impl Gcra {
    /// GCRA at `rate` with a bucket of `burst` requests.
    ///
    /// # Panics
    ///
    /// If `burst` is zero (in a `const`, a compile error).
    ///
    /// ```
    /// use cached_backend::{Gcra, Rate};
    /// const UPLOADS: Gcra = Gcra::new(Rate::new(10, 60), 5);
    /// assert_eq!(UPLOADS.burst(), 5);
    /// ```
    pub const fn new(rate: Rate, burst: u32) -> Gcra {
        assert!(burst > 0, "a GCRA burst admits at least one request");
        Gcra { rate, burst }
    }

    /// The rate: its count per period is the sustained rate.
    pub const fn rate(&self) -> Rate {
        self.rate
    }

    /// How many requests a full bucket admits at once.
    pub const fn burst(&self) -> u32 {
        self.burst
    }

    /// The rate's period divided by its count, rounded up to the nanosecond (so the
    /// long-run rate never exceeds the rate): one request refills per interval.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cached_backend::{Gcra, Rate};
    /// let gcra = Gcra::new(Rate::new(3, 1), 3);
    /// assert_eq!(gcra.interval(), Duration::from_nanos(333_333_334));
    /// ```
    pub const fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_nanos())
    }

    const fn interval_nanos(&self) -> u64 {
        let period = self.rate.period_secs().saturating_mul(1_000_000_000);
        period.div_ceil(self.rate.count() as u64)
    }

    /// The decision for a request at `now`, for a key whose stored theoretical arrival
    /// time is `tat` (nanoseconds on one clock; any value not after `now`, such as 0, for
    /// a key without state), and the TAT to store: the new one if the request is
    /// admitted, `tat` unchanged if it is refused.
    ///
    /// The decision's `limit` is the burst, `remaining` how many more requests the
    /// bucket admits right now, and `reset` how long until it admits one more (for a
    /// refusal: how long to wait). The token is the stored TAT, for
    /// [`undo`](Gcra::undo).
    pub fn decide(&self, tat: u64, now: u64) -> (Decision, u64) {
        let interval = self.interval_nanos();
        let span = interval.saturating_mul(u64::from(self.burst));
        let new_tat = tat.max(now).saturating_add(interval);
        // Differences from `now` only: a clock that starts near 0 (a store's own
        // epoch) must not saturate `new_tat - span` and lose the burst.
        let delay = new_tat - now;
        if delay > span {
            let wait = Duration::from_nanos(delay - span);
            return (Decision::refused(self.burst, wait), tat);
        }
        let slack = span - delay;
        let remaining = u32::try_from(slack / interval).unwrap_or(u32::MAX);
        let reset = Duration::from_nanos(interval - slack % interval);
        (
            Decision::admitted(self.burst, remaining, reset, new_tat),
            new_tat,
        )
    }

    /// The TAT after forgetting one admitted request: `tat` less one interval.
    ///
    /// ```
    /// use cached_backend::{Gcra, Rate};
    /// let gcra = Gcra::new(Rate::new(1, 60), 1);
    /// let (admitted, tat) = gcra.decide(0, 1_000);
    /// assert!(admitted.admitted);
    /// assert!(!gcra.decide(tat, 2_000).0.admitted);
    /// assert!(gcra.decide(gcra.undo(tat), 2_000).0.admitted);
    /// ```
    pub fn undo(&self, tat: u64) -> u64 {
        tat.saturating_sub(self.interval_nanos())
    }
}

/// The error of a store that does not implement `algorithm = "gcra"`: a configuration
/// error (the throttle answers `500` and logs it), never an outage to fail open on.
fn gcra_unsupported(store: &str) -> CacheError {
    CacheError::config(
        format!("the `{store}` throttle store"),
        "this store does not support algorithm = \"gcra\": use the sliding log (the default) with it, or a store that implements GCRA (memory://, redis://)",
    )
}

/// A store of throttle state, shared by every throttle that uses it.
///
/// Its one essential operation, [`check`](ThrottleStore::check), is atomic: it drops the
/// requests that left the window, and admits and records this request only if fewer
/// than `rate.count()` remain; a refused request is not recorded. So at most `count`
/// requests are admitted in any trailing window of `rate.period()`, under any
/// concurrency. Implementations: `cached_core::throttle::MemoryThrottleStore`
/// (one process) and `cached_redis::throttle::RedisThrottleStore` (shared).
///
/// Stores may also implement the `gcra` algorithm ([`check_gcra`](ThrottleStore::check_gcra)
/// and [`undo_gcra`](ThrottleStore::undo_gcra), one [`Gcra`] TAT per key), as both of
/// this project's stores do; a store of another crate that does not answers with a
/// configuration error saying so (the default methods). In-process stores also
/// answer without a future through [`check_now`](ThrottleStore::check_now) and
/// [`check_gcra_now`](ThrottleStore::check_gcra_now), which throttles try first.
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

    /// The same as [`check`](ThrottleStore::check), answered without waiting by stores
    /// that can (in-process ones); `None` (the default) means "call `check`". Throttles
    /// try this first, so an in-memory check allocates no future.
    fn check_now(&self, _key: &str, _rate: Rate) -> Option<Result<Decision, CacheError>> {
        None
    }

    /// Forgets the request an admitted [`Decision`] recorded, so that a request that
    /// another throttle refused is not counted here either.
    async fn undo(&self, key: &str, decision: &Decision) -> Result<(), CacheError>;

    /// Atomically, for the `gcra` algorithm: read the theoretical arrival time (TAT)
    /// stored under `key` (none: the bucket is full), [decide](Gcra::decide) at the
    /// store's clock, and store the new TAT if the request is admitted, expiring when the
    /// bucket would be full again (the TAT itself). Keys of GCRA throttles never name
    /// sliding logs (they hold `:gcra:`).
    ///
    /// The default answers with a [`CacheError::Config`] saying that this store does not
    /// support GCRA.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use cached_core::throttle::{Gcra, MemoryThrottleStore, Rate, ThrottleStore};
    /// let store = MemoryThrottleStore::default();
    /// let gcra = Gcra::new(Rate::parse("10/minute")?, 2);
    /// assert!(store.check_gcra("k", gcra).await?.admitted);
    /// assert!(store.check_gcra("k", gcra).await?.admitted);
    /// let refused = store.check_gcra("k", gcra).await?;
    /// assert!(!refused.admitted);
    /// assert_eq!(refused.retry_after_secs(), 6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    async fn check_gcra(&self, key: &str, gcra: Gcra) -> Result<Decision, CacheError> {
        let _ = (key, gcra);
        Err(gcra_unsupported(self.name()))
    }

    /// The same as [`check_gcra`](ThrottleStore::check_gcra) without waiting, by stores
    /// that can; `None` (the default) means "call `check_gcra`".
    fn check_gcra_now(&self, _key: &str, _gcra: Gcra) -> Option<Result<Decision, CacheError>> {
        None
    }

    /// Forgets the request an admitted GCRA [`Decision`] recorded: moves the TAT under
    /// `key` back by one [interval](Gcra::interval) ([`Gcra::undo`]).
    ///
    /// The default answers with the same error as the default
    /// [`check_gcra`](ThrottleStore::check_gcra).
    async fn undo_gcra(
        &self,
        key: &str,
        gcra: Gcra,
        decision: &Decision,
    ) -> Result<(), CacheError> {
        let _ = (key, gcra, decision);
        Err(gcra_unsupported(self.name()))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const S: u64 = 1_000_000_000;

    /// Runs requests at the given instants; returns each decision.
    fn run(gcra: Gcra, times: &[u64]) -> Vec<Decision> {
        let mut tat = 0;
        times
            .iter()
            .map(|&now| {
                let (d, next) = gcra.decide(tat, now);
                tat = next;
                d
            })
            .collect()
    }

    #[test]
    fn admits_the_burst_then_one_per_interval() {
        // 6 a minute: one every 10 s; bursts of 3.
        let gcra = Gcra::new(Rate::new(6, 60), 3);
        let t0 = 1_000 * S;
        let d = run(
            gcra,
            &[t0, t0, t0, t0, t0 + 10 * S - 1, t0 + 10 * S, t0 + 10 * S],
        );
        let admitted: Vec<bool> = d.iter().map(|d| d.admitted).collect();
        assert_eq!(admitted, [true, true, true, false, false, true, false]);
        assert_eq!(
            d.iter().map(|d| d.remaining).collect::<Vec<_>>(),
            [2, 1, 0, 0, 0, 0, 0]
        );
        assert!(d.iter().all(|d| d.limit == 3));
        // Exact waits: one interval after the burst, one nanosecond before it.
        assert_eq!(d[3].reset, Duration::from_secs(10));
        assert_eq!(d[4].reset, Duration::from_nanos(1));
        assert_eq!(d[6].reset, Duration::from_secs(10));
        assert_eq!(d[3].retry_after_secs(), 10);
        // Admitted: the bucket gains one back one interval after it was last full.
        assert_eq!(d[0].reset, Duration::from_secs(10));
        assert_eq!(d[2].reset, Duration::from_secs(10));
    }

    #[test]
    fn a_clock_that_starts_at_zero_still_gives_the_whole_burst() {
        // A store's clock counts from its creation: the first requests come at about 0.
        let gcra = Gcra::new(Rate::new(6, 60), 3);
        for start in [0, 1, 5 * S] {
            let d = run(gcra, &[start, start, start, start]);
            let remaining: Vec<u32> = d.iter().map(|d| d.remaining).collect();
            assert_eq!(remaining, [2, 1, 0, 0], "from {start}");
            assert!(!d[3].admitted);
            assert_eq!(d[3].reset, Duration::from_secs(10), "from {start}");
        }
    }

    #[test]
    fn an_idle_client_gets_its_whole_burst_back_and_no_more() {
        let gcra = Gcra::new(Rate::new(6, 60), 3);
        let t0 = 1_000 * S;
        let later = t0 + 3_600 * S;
        let d = run(gcra, &[t0, t0, t0, later, later, later, later]);
        let admitted: Vec<bool> = d.iter().map(|d| d.admitted).collect();
        assert_eq!(admitted, [true, true, true, true, true, true, false]);
        // Half an interval after the bucket emptied, the wait is the other half.
        let d = run(gcra, &[t0, t0, t0, t0 + 5 * S]);
        assert_eq!(d[3].reset, Duration::from_secs(5));
    }

    #[test]
    fn a_burst_of_one_spaces_requests_by_the_interval() {
        let gcra = Gcra::new(Rate::new(2, 1), 1);
        let d = run(gcra, &[S, S + S / 2 - 1, S + S / 2, 2 * S]);
        let admitted: Vec<bool> = d.iter().map(|d| d.admitted).collect();
        assert_eq!(admitted, [true, false, true, true]);
    }

    #[test]
    fn undo_returns_one_request_to_the_bucket() {
        let gcra = Gcra::new(Rate::new(1, 60), 2);
        let (a, tat) = gcra.decide(0, S);
        let (b, tat) = gcra.decide(tat, S);
        assert!(a.admitted && b.admitted);
        assert!(!gcra.decide(tat, S).0.admitted);
        assert_eq!(b.token, tat);
        let tat = gcra.undo(tat);
        assert!(gcra.decide(tat, S).0.admitted);
    }

    #[tokio::test]
    async fn stores_without_gcra_say_so_in_a_configuration_error() {
        struct LogsOnly;
        #[async_trait]
        impl ThrottleStore for LogsOnly {
            fn name(&self) -> &'static str {
                "logs-only"
            }
            async fn check(&self, _: &str, rate: Rate) -> Result<Decision, CacheError> {
                Ok(Decision::refused(rate.count(), Duration::ZERO))
            }
            async fn undo(&self, _: &str, _: &Decision) -> Result<(), CacheError> {
                Ok(())
            }
        }
        let gcra = Gcra::new(Rate::new(1, 1), 1);
        let err = LogsOnly.check_gcra("k", gcra).await.unwrap_err();
        assert!(matches!(err, CacheError::Config { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("`logs-only`") && msg.contains("gcra"), "{msg}");
        let d = Decision::admitted(1, 0, Duration::ZERO, 0);
        assert!(LogsOnly.undo_gcra("k", gcra, &d).await.is_err());
        assert!(LogsOnly.check_now("k", Rate::new(1, 1)).is_none());
        assert!(LogsOnly.check_gcra_now("k", gcra).is_none());
    }

    proptest! {
        /// Whatever the rate, burst and clock values (a corrupted TAT included), a
        /// decision never panics and waits at most one bucket's span.
        #[test]
        fn decide_never_panics(
            count in 1..=u32::MAX,
            period in 1..=u64::from(u32::MAX),
            burst in 1..=u32::MAX,
            tat: u64,
            now: u64,
        ) {
            let gcra = Gcra::new(Rate::new(count, period), burst);
            let (d, next) = gcra.decide(tat, now);
            if d.admitted {
                prop_assert!(next >= tat);
                prop_assert!(d.remaining < burst);
            } else {
                prop_assert_eq!(next, tat);
            }
            let _ = gcra.undo(next);
        }

        /// Over any run of requests, a client is admitted at most `burst` plus one per
        /// interval elapsed since its first request.
        #[test]
        fn admissions_never_exceed_burst_plus_refill(
            count in 1u32..20,
            period in 1u64..120,
            burst in 1u32..10,
            gaps in proptest::collection::vec(0u64..3 * S, 1..200),
        ) {
            let gcra = Gcra::new(Rate::new(count, period), burst);
            let interval = gcra.interval().as_nanos() as u64;
            let (mut tat, mut now, start) = (0, S, S);
            let mut admitted = 0u64;
            for gap in gaps {
                now += gap;
                let (d, next) = gcra.decide(tat, now);
                tat = next;
                admitted += u64::from(d.admitted);
                prop_assert!(admitted <= u64::from(burst) + (now - start) / interval);
            }
        }
    }
}
