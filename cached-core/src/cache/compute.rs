//! Memoization: read a key, or compute its value once and store it.
//!
//! [`Cache::compute`] is the primitive under [`Cache::get_or_set_with`] and the
//! memoizing macros ([`memoize`]). A miss goes through one [flight](flight) per key and
//! value type in this process: concurrent callers run the body once; with
//! [`ComputeOptions::lock`] also once across processes, under an owned, extended
//! [lock](lock). Every piece of state a computation registers (its flight, its lock)
//! is released by a guard's `Drop`, so a computation cancelled at any `.await` leaks
//! nothing and stalls nobody.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use super::{Cache, Cacheable};
use crate::log::RateLimited;
use crate::stats::Counter;

pub(crate) mod flight;
pub(crate) mod lock;
pub mod memoize;
mod memoize_fresh;
mod revalidate;

use flight::{follow, Joined, Outcome};
use lock::{try_lock, HeldLock, LOCK_POLL};

/// How long a cross-process computation lock (`lock = true`) lives without being
/// extended: its holder extends it every third of this while the computation runs, so
/// it only expires when the holder is gone. Waiters then take it over.
pub const LOCK_TTL: Duration = Duration::from_secs(10);

/// Options of [`Cache::compute`]: what the memoizing macros use.
///
/// ```
/// use std::time::Duration;
/// use cached_core::ComputeOptions;
/// let skip_empty = |v: &Vec<u8>| !v.is_empty();
/// let opts = ComputeOptions::new(Some(Duration::from_secs(60))).store_if(&skip_empty).lock(true);
/// # let _ = opts;
/// ```
pub struct ComputeOptions<'a, T> {
    pub(crate) ttl: Option<Duration>,
    pub(crate) lock: bool,
    pub(crate) lock_ttl: Duration,
    pub(crate) store_if: Option<&'a (dyn Fn(&T) -> bool + Send + Sync)>,
    pub(crate) stale: Option<Duration>,
    pub(crate) tags: Vec<String>,
}

impl<'a, T> ComputeOptions<'a, T> {
    /// Store for `ttl` (`None`: the cache's default ttl).
    pub fn new(ttl: Option<Duration>) -> Self {
        Self {
            ttl,
            lock: false,
            lock_ttl: LOCK_TTL,
            store_if: None,
            stale: None,
            tags: Vec::new(),
        }
    }

    /// Keep a computed value `stale` longer than its ttl, to be served while it is
    /// refreshed (stale-while-revalidate). It takes effect through
    /// [`Cache::compute_stale`], whose computation can run in the background; the other
    /// entry points store the window but, unable to start a refresh, compute a stale
    /// entry again in line, as a miss.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cached_core::ComputeOptions;
    /// let opts = ComputeOptions::<u64>::new(Some(Duration::from_secs(60)))
    ///     .stale(Duration::from_secs(600));
    /// # let _ = opts;
    /// ```
    pub fn stale(mut self, stale: Duration) -> Self {
        self.stale = Some(stale).filter(|s| !s.is_zero());
        self
    }

    /// Tag the stored value: [`Cache::invalidate_tags`] with any of `tags` makes it a
    /// miss, in every process. The tags' versions are read before the computation
    /// runs, so an invalidation that lands while it runs is not lost.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::convert::Infallible;
    /// use std::time::Duration;
    /// use cached_core::ComputeOptions;
    /// let cache = cached_core::cache();
    /// let opts = ComputeOptions::new(Some(Duration::from_secs(60))).tags(["product:42"]);
    /// let name = cache.compute("name:42", &opts, || async { Ok::<_, Infallible>("lamp".to_string()) }).await;
    /// assert_eq!(name.as_deref(), Ok("lamp"));
    /// cache.invalidate_tags(&["product:42"]).await?;
    /// assert_eq!(cache.get::<String>("name:42").await?, None);
    /// # Ok::<(), cached_core::CacheError>(())
    /// # }).unwrap();
    /// ```
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Also coalesce across processes sharing a remote backend, with an owned lock
    /// stored in the backend and extended while the computation runs (see
    /// [`lock_ttl`](Self::lock_ttl)).
    pub fn lock(mut self, lock: bool) -> Self {
        self.lock = lock;
        self
    }

    /// How long the cross-process lock is held before the holder must extend it
    /// (default [`LOCK_TTL`]).
    pub fn lock_ttl(mut self, lock_ttl: Duration) -> Self {
        self.lock_ttl = lock_ttl;
        self
    }

    /// Store a computed value only when `pred` returns true (it is returned either way).
    pub fn store_if(mut self, pred: &'a (dyn Fn(&T) -> bool + Send + Sync)) -> Self {
        self.store_if = Some(pred);
        self
    }
}

/// What waiting for the cross-process lock ended with.
enum Acquired<T> {
    /// Another process stored the value while we waited.
    Value(T),
    /// We hold the lock.
    Lock(HeldLock),
    /// Run without a lock (no lock asked, or the backend failed).
    Unlocked,
}

impl Cache {
    /// The value under `key`, or else the value of `f()`, stored for `ttl` and returned.
    ///
    /// Single-flight: concurrent callers of one missing key in this process run `f`
    /// once and all receive its value. A backend failure never fails the call: `f` runs,
    /// its value is returned, the error is logged and counted.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let cache = cached_core::cache();
    /// let total: u64 = cache
    ///     .get_or_set_with("stats:total", Duration::from_secs(60), || async { 40 + 2 })
    ///     .await;
    /// assert_eq!(total, 42);
    /// # });
    /// ```
    pub async fn get_or_set_with<T, F, Fut>(&self, key: &str, ttl: Duration, f: F) -> T
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let opts = ComputeOptions::new(Some(ttl));
        let result = self
            .compute(key, &opts, || async { Ok::<T, Infallible>(f().await) })
            .await;
        match result {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// Like [`get_or_set_with`](Self::get_or_set_with) for a fallible `f`: only `Ok`
    /// is stored; an `Err` is returned to the caller that ran `f` and never cached.
    pub async fn try_get_or_set_with<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        f: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.compute(key, &ComputeOptions::new(Some(ttl)), f).await
    }

    /// The memoization primitive under `get_or_set_with` and `#[cache_fn]`: read `key`,
    /// or run `f` once per process (once across processes with `lock`), store its `Ok`
    /// value if `store_if` allows, and return it. Backend failures are survived.
    pub async fn compute<T, E, F, Fut>(
        &self,
        key: &str,
        opts: &ComputeOptions<'_, T>,
        f: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let skey = self.make_key(key);
        if let Ok(Some(v)) = self.fetch::<T>(&skey, true).await {
            return Ok(v);
        }
        self.compute_missed(&skey, opts, f).await
    }

    /// The part of [`compute`](Self::compute) after a miss, for an already made stored
    /// key. The memoizing macros read first themselves (with a key rendered straight
    /// after the head, one allocation) and enter this, boxed, only on a miss, which
    /// keeps the hit path's future small.
    pub(crate) async fn compute_missed<T, E, F, Fut>(
        &self,
        skey: &str,
        opts: &ComputeOptions<'_, T>,
        f: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        static REENTERED: RateLimited = RateLimited::new();
        let mut f = Some(f);
        loop {
            match self.inner.shared.flights.join::<T>(skey) {
                Joined::Leader(leader) => {
                    // This caller's miss may have been read before a previous leader
                    // stored the value and left (an awaited backend answers late): read
                    // once more, uncounted, so that a cold key runs its body once per
                    // process. In memory this is a lookup; on Redis, one GET per miss.
                    if let Ok(Some(v)) = self.fetch::<T>(skey, false).await {
                        leader.finish(Some(v.clone()));
                        return Ok(v);
                    }
                    let Some(f) = f.take() else {
                        unreachable!("the body is taken once")
                    };
                    let result = leader.run(self.lead(skey, opts, f)).await;
                    leader.finish(result.as_ref().ok().cloned());
                    return result;
                }
                Joined::Follower(rx) => {
                    self.counters().bump(Counter::CoalescedWaits);
                    match follow(rx).await {
                        Outcome::Value(v) => return Ok(v),
                        // The leader's error was its own: run this caller's body now,
                        // alongside the other followers, not one after another.
                        Outcome::Failed | Outcome::Running => {
                            let Some(f) = f.take() else {
                                unreachable!("the body is taken once")
                            };
                            return self.run_and_store(skey, opts, f).await;
                        }
                        // The leader was cancelled: join again (one of us leads).
                        Outcome::Abandoned => continue,
                    }
                }
                Joined::Reentered => {
                    if let Some(suppressed) = REENTERED.allow() {
                        tracing::warn!(cache = %self.inner.alias, key = skey, suppressed,
                            "a cached computation called itself (same key and type); the inner call runs uncached");
                    }
                    let Some(f) = f.take() else {
                        unreachable!("the body is taken once")
                    };
                    return f().await;
                }
            }
        }
    }

    /// The leader's computation: under the cross-process lock when asked, then stored.
    async fn lead<T, E, F, Fut>(
        &self,
        skey: &str,
        opts: &ComputeOptions<'_, T>,
        f: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let lock = match opts.lock {
            true => self.acquire_or_wait::<T>(skey, opts.lock_ttl).await,
            false => Acquired::Unlocked,
        };
        let held = match lock {
            Acquired::Value(v) => return Ok(v),
            Acquired::Lock(held) => Some(held),
            Acquired::Unlocked => None,
        };
        // `held` is released below, or by its Drop if this future is cancelled.
        let result = self.run_and_store(skey, opts, f).await;
        if let Some(held) = held {
            held.release().await;
        }
        result
    }

    /// Runs `f` and stores an `Ok` value that `store_if` allows.
    async fn run_and_store<T, E, F, Fut>(
        &self,
        skey: &str,
        opts: &ComputeOptions<'_, T>,
        f: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // Freshness hook (`fresh.rs`, `tags.rs`): tags' versions are read before the
        // body runs, and the value is stored in an envelope.
        let stamps = match opts.tags.is_empty() {
            true => None,
            false => Some(self.stamp_tags(opts.tags.clone()).await),
        };
        let computed = f().await;
        if let Ok(value) = &computed {
            if opts.store_if.is_none_or(|pred| pred(value)) {
                let ttl = opts.ttl.unwrap_or(self.inner.default_ttl);
                // A failed store is recorded and survived: the value is returned.
                let _ = match stamps {
                    None if opts.stale.is_none() => self.store(skey, value, ttl).await,
                    None => {
                        self.store_envelope(skey, value, ttl, opts.stale, None)
                            .await
                    }
                    Some(Ok(stamps)) => {
                        self.store_envelope(skey, value, ttl, opts.stale, Some(stamps))
                            .await
                    }
                    // The tags could not be read: an entry that could not be
                    // invalidated is not stored.
                    Some(Err(_)) => Ok(()),
                };
            }
        }
        computed
    }

    /// Waits for another process's computation of `skey`, or takes the lock for it.
    ///
    /// A live holder extends its lock, so waiting lasts as long as its computation
    /// does; a holder that died stops extending and its lock expires after `lock_ttl`.
    async fn acquire_or_wait<T: Cacheable>(&self, skey: &str, lock_ttl: Duration) -> Acquired<T> {
        let lock_key = format!("{skey}:__lock");
        loop {
            match try_lock(&self.dyn_backend(), &lock_key, lock_ttl).await {
                Ok(Some(held)) => {
                    // The previous holder may have stored the value and released the
                    // lock since our last look: check before computing again.
                    if let Ok(Some(v)) = self.fetch::<T>(skey, false).await {
                        held.release().await;
                        return Acquired::Value(v);
                    }
                    return Acquired::Lock(held);
                }
                Ok(None) => {}
                Err(e) => {
                    self.record_error("lock", &lock_key, e);
                    return Acquired::Unlocked;
                }
            }
            if let Ok(Some(v)) = self.fetch::<T>(skey, false).await {
                return Acquired::Value(v);
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::backend::dummy::DummyBackend;

    fn memory() -> Cache {
        Cache::builder(crate::backend::memory::MemoryBackend::default()).build()
    }

    #[tokio::test]
    async fn flights_are_removed_when_done() {
        let cache = Cache::builder(DummyBackend::new()).build();
        let v = cache
            .get_or_set_with("k", Duration::from_secs(1), || async { 7u32 })
            .await;
        assert_eq!(v, 7);
        assert_eq!(cache.inner.shared.flights.len(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_leaders_leave_nothing_behind() {
        let cache = memory();
        for i in 0..1_000 {
            let c = cache.clone();
            let task = tokio::spawn(async move {
                c.get_or_set_with(&format!("cancelled:{i}"), Duration::from_secs(60), || {
                    std::future::pending::<u32>()
                })
                .await
            });
            tokio::task::yield_now().await;
            task.abort();
            let _ = task.await;
        }
        // Every aborted leader removed its flight (this grew by one per call before).
        assert_eq!(cache.inner.shared.flights.len(), 0);
        // And a cancelled key is computed by the next caller, not stalled.
        let v = cache
            .get_or_set_with("cancelled:0", Duration::from_secs(60), || async { 5u32 })
            .await;
        assert_eq!(v, 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn followers_of_a_cancelled_leader_get_a_new_leader() {
        let cache = memory();
        let runs = Arc::new(AtomicUsize::new(0));
        let c = cache.clone();
        let leader = tokio::spawn(async move {
            c.get_or_set_with("orphaned", Duration::from_secs(60), || {
                std::future::pending::<u32>()
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let followers: Vec<_> = (0..10)
            .map(|_| {
                let c = cache.clone();
                let runs = Arc::clone(&runs);
                tokio::spawn(async move {
                    c.get_or_set_with("orphaned", Duration::from_secs(60), || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        9u32
                    })
                    .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        leader.abort();
        for f in followers {
            assert_eq!(f.await.expect("follower"), 9);
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "one follower took over, the rest waited for it"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn followers_of_a_failing_body_run_theirs_together_not_one_after_another() {
        let cache = memory();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let calls: Vec<_> = (0..10)
            .map(|_| {
                let c = cache.clone();
                let (running, most) = (Arc::clone(&running), Arc::clone(&most));
                tokio::spawn(async move {
                    c.try_get_or_set_with("failing", Duration::from_secs(60), || async move {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        Err::<u32, &str>("down")
                    })
                    .await
                })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.expect("call"), Err("down"));
        }
        // The leader failed alone, then the nine followers ran their bodies side by
        // side (before, each waiting follower retried after the previous one failed,
        // so at most one body ever ran: ten bodies' time in all).
        assert_eq!(most.load(Ordering::SeqCst), 9);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_that_calls_its_own_key_runs_uncached_instead_of_deadlocking() {
        let cache = memory();
        let c = cache.clone();
        let outer = cache.get_or_set_with("self-ref", Duration::from_secs(60), || async move {
            let inner = c
                .get_or_set_with("self-ref", Duration::from_secs(60), || async { 1u32 })
                .await;
            inner + 1
        });
        let v = tokio::time::timeout(Duration::from_secs(10), outer)
            .await
            .expect("re-entry must not deadlock");
        assert_eq!(v, 2);
    }
}
