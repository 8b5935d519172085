//! Stale-while-revalidate: serve a value past its ttl at once, and refresh it once, in
//! the background.
//!
//! A stale read starts a refresh only if it becomes the leader of the key's
//! [flight](super::flight) in this process: while a refresh (or a miss's computation)
//! of the key runs, every other stale reader just takes the stale value, so exactly one
//! refresh runs per key and process. With `lock`, the refresher also takes the
//! cross-process [lock](super::lock) *without waiting*: when another process holds it,
//! that process is refreshing, and this one skips. Before computing, the refresher
//! reads the entry again: a refresh that finished between the stale read and the
//! flight leaves nothing to do.
//!
//! The refresh runs on a task of the current tokio runtime and outlives its caller,
//! hence a `Send + 'static` computation. Its closure is called on the runtime's
//! blocking pool (a sync `#[cache_fn]` body runs there, never on a worker); the future
//! it returns is awaited on the task. A refresh whose body fails stores nothing: the
//! stale value is served (and another refresh tried by a later read) until the window
//! ends. Dropped at any point (runtime shut down), its flight and lock guards release
//! what it held.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use tokio::runtime::Handle;

use super::flight::{Joined, Leader};
use super::lock::try_lock;
use super::{Cache, Cacheable, ComputeOptions};
use crate::cache::fresh::Lookup;
use crate::log::RateLimited;

/// The settings of one background refresh.
pub(crate) struct Refresh {
    pub(crate) skey: String,
    pub(crate) ttl: Option<Duration>,
    pub(crate) stale: Option<Duration>,
    pub(crate) lock: bool,
    pub(crate) lock_ttl: Duration,
}

impl Refresh {
    /// The refresh of `skey` with `opts`.
    pub(crate) fn of<T>(skey: &str, opts: &ComputeOptions<'_, T>) -> Refresh {
        Refresh {
            skey: skey.to_owned(),
            ttl: opts.ttl,
            stale: opts.stale,
            lock: opts.lock,
            lock_ttl: opts.lock_ttl,
        }
    }
}

impl Cache {
    /// [`compute`](Self::compute) with stale-while-revalidate: a value past its ttl but
    /// within [`ComputeOptions::stale`] is returned at once while `f` refreshes it in
    /// the background (once per key in this process; once across processes with
    /// [`lock`](ComputeOptions::lock)). A miss runs `f` in line, single-flight.
    ///
    /// `f` is called at most once per call: in line on a miss, on the runtime's blocking
    /// pool for a refresh, which outlives the caller; hence `Send + 'static`. A refresh
    /// whose `f` fails stores nothing, and the stale value keeps being served until its
    /// window ends. The options are `'static` for the same reason (a
    /// [`store_if`](ComputeOptions::store_if) predicate is a `fn` or a `static`).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::convert::Infallible;
    /// use std::time::Duration;
    /// use cached_core::ComputeOptions;
    /// let cache = cached_core::cache();
    /// let opts = ComputeOptions::new(Some(Duration::from_secs(60))).stale(Duration::from_secs(600));
    /// let report = cache
    ///     .compute_stale("report:daily", &opts, || async { Ok::<_, Infallible>(vec![1u32, 2, 3]) })
    ///     .await;
    /// assert_eq!(report, Ok(vec![1, 2, 3]));
    /// # });
    /// ```
    pub async fn compute_stale<T, E, F, Fut>(
        &self,
        key: &str,
        opts: &ComputeOptions<'static, T>,
        f: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let skey = self.make_key(key);
        match self.lookup::<T>(&skey, &opts.tags, true).await {
            Lookup::Fresh(v) => Ok(v),
            Lookup::Stale(v) => {
                let tags = opts.tags.clone();
                self.revalidate(Refresh::of(&skey, opts), opts.store_if, || (tags, f));
                Ok(v)
            }
            Lookup::Miss => self.compute_missed(&skey, opts, f).await,
        }
    }

    /// [`get_or_set_with`](Self::get_or_set_with) with stale-while-revalidate: for
    /// `stale` after `ttl`, the stored value is returned at once while `f` refreshes
    /// it in the background (see [`compute_stale`](Self::compute_stale)).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let cache = cached_core::cache();
    /// let total: u64 = cache
    ///     .get_or_set_stale_with("stats:sum", Duration::from_secs(60), Duration::from_secs(600), || async { 40 + 2 })
    ///     .await;
    /// assert_eq!(total, 42);
    /// # });
    /// ```
    pub async fn get_or_set_stale_with<T, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        stale: Duration,
        f: F,
    ) -> T
    where
        T: Cacheable,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let opts = ComputeOptions::new(Some(ttl)).stale(stale);
        let f = move || {
            let fut = f();
            async move { Ok::<T, Infallible>(fut.await) }
        };
        match self.compute_stale(key, &opts, f).await {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// Starts the background refresh of `refresh.skey`, unless one (or a miss's
    /// computation) already runs in this process or there is no runtime to run it on.
    /// `prepare` gives the entry's tags and the computation; it is called only when the
    /// refresh starts.
    pub(crate) fn revalidate<T, E, M, F, Fut, P>(
        &self,
        refresh: Refresh,
        store_if: Option<P>,
        prepare: M,
    ) where
        T: Cacheable,
        M: FnOnce() -> (Vec<String>, F),
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        P: Fn(&T) -> bool + Send + Sync + 'static,
    {
        static NO_RUNTIME: RateLimited = RateLimited::new();
        let Joined::Leader(leader) = self.inner.shared.flights.join::<T>(&refresh.skey) else {
            return;
        };
        let Ok(rt) = Handle::try_current() else {
            if let Some(suppressed) = NO_RUNTIME.allow() {
                tracing::warn!(cache = %self.inner.alias, suppressed,
                    "a stale value was served but no tokio runtime can run its refresh");
            }
            return;
        };
        let cache = self.clone();
        let (tags, f) = prepare();
        rt.spawn(async move {
            cache
                .refresh_in_background(leader, refresh, tags, store_if, f)
                .await
        });
    }

    async fn refresh_in_background<T, E, F, Fut, P>(
        self,
        leader: Leader<T>,
        refresh: Refresh,
        tags: Vec<String>,
        store_if: Option<P>,
        f: F,
    ) where
        T: Cacheable,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        P: Fn(&T) -> bool + Send + Sync + 'static,
    {
        static FAILED: RateLimited = RateLimited::new();
        let skey = &refresh.skey;
        // Dropping `leader` (an early return) tells any waiting caller to compute itself.
        let held = if refresh.lock {
            let lock_key = format!("{skey}:__lock");
            match try_lock(&self.dyn_backend(), &lock_key, refresh.lock_ttl).await {
                Ok(Some(held)) => Some(held),
                // Another process holds the lock: it is refreshing.
                Ok(None) => return,
                Err(e) => {
                    self.record_error("lock", &lock_key, e);
                    None
                }
            }
        } else {
            None
        };
        // A refresh that finished since our stale read leaves nothing to do.
        if let Lookup::Fresh(v) = self.lookup::<T>(skey, &tags, false).await {
            leader.finish(Some(v));
            if let Some(held) = held {
                held.release().await;
            }
            return;
        }
        let stamps = match tags.is_empty() {
            true => None,
            false => match self.stamp_tags(tags).await {
                Ok(stamps) => Some(stamps),
                // Recorded; computing a value that cannot be stored would be wasted.
                Err(_) => return,
            },
        };
        let Ok(fut) = tokio::task::spawn_blocking(f).await else {
            return;
        };
        // The body's error is dropped here, before any await: it need not be `Send`.
        let computed = leader.run(fut).await.ok();
        let value = match computed {
            Some(value) => value,
            None => {
                if let Some(suppressed) = FAILED.allow() {
                    tracing::warn!(cache = %self.inner.alias, suppressed,
                        "a background refresh failed; the stale value is served until its window ends");
                }
                leader.finish(None);
                if let Some(held) = held {
                    held.release().await;
                }
                return;
            }
        };
        if store_if.as_ref().is_none_or(|pred| pred(&value)) {
            let ttl = refresh.ttl.unwrap_or(self.inner.default_ttl);
            // A failed store is recorded by the cache.
            let _ = self
                .store_envelope(skey, &value, ttl, refresh.stale, stamps)
                .await;
        }
        leader.finish(Some(value));
        if let Some(held) = held {
            held.release().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::backend::memory::MemoryBackend;

    fn opts() -> ComputeOptions<'static, u32> {
        ComputeOptions::new(Some(Duration::from_millis(50))).stale(Duration::from_secs(60))
    }

    async fn stored_then_stale(cache: &Cache) {
        let v = cache
            .compute_stale("k", &opts(), || async { Ok::<_, Infallible>(1u32) })
            .await;
        assert_eq!(v, Ok(1));
        tokio::time::sleep(Duration::from_millis(80)).await;
    }

    #[test]
    fn a_refresh_dropped_with_its_runtime_leaves_no_flight() {
        let cache = Cache::builder(MemoryBackend::default()).build();
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            stored_then_stale(&cache).await;
            let served = cache
                .compute_stale("k", &opts(), || {
                    std::future::pending::<Result<u32, Infallible>>()
                })
                .await;
            assert_eq!(served, Ok(1));
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(cache.inner.shared.flights.len(), 1, "the refresh runs");
        });
        drop(rt);
        assert_eq!(cache.inner.shared.flights.len(), 0, "its guard left");
        // And the key is not stalled: the next stale read starts a refresh again.
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let served = cache
                .compute_stale("k", &opts(), || async { Ok::<_, Infallible>(2u32) })
                .await;
            assert_eq!(served, Ok(1));
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while cache.get::<u32>("k").await.ok().flatten() != Some(2) {
                assert!(std::time::Instant::now() < deadline, "refreshed");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refresh_outlives_its_cancelled_caller() {
        let cache = Cache::builder(MemoryBackend::default()).build();
        stored_then_stale(&cache).await;
        let c = cache.clone();
        let caller = tokio::spawn(async move {
            let served = c
                .compute_stale("k", &opts(), || async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, Infallible>(2u32)
                })
                .await;
            assert_eq!(served, Ok(1));
            std::future::pending::<()>().await;
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        caller.abort();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while cache.get::<u32>("k").await.ok().flatten() != Some(2) {
            assert!(std::time::Instant::now() < deadline, "refreshed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(cache.inner.shared.flights.len(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_lock_a_refresh_skips_when_another_process_holds_the_lock() {
        let cache = Cache::builder(MemoryBackend::default()).build();
        let opts = opts().lock(true);
        let v = cache
            .compute_stale("k", &opts, || async { Ok::<_, Infallible>(1u32) })
            .await;
        assert_eq!(v, Ok(1));
        tokio::time::sleep(Duration::from_millis(80)).await;
        // Another process is refreshing: it holds the lock.
        let lock_key = format!("{}:__lock", cache.make_key("k"));
        let other = try_lock(cache.backend(), &lock_key, Duration::from_secs(10))
            .await
            .expect("lock")
            .expect("free");
        let runs = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&runs);
        let served = cache
            .compute_stale("k", &opts, move || async move {
                r.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(2u32)
            })
            .await;
        assert_eq!(served, Ok(1));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while cache.inner.shared.flights.len() != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the refresher gave up"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            0,
            "skipped: the holder refreshes"
        );
        other.release().await;
        // Lock free: this process refreshes.
        let r = Arc::clone(&runs);
        let served = cache
            .compute_stale("k", &opts, move || async move {
                r.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(2u32)
            })
            .await;
        assert_eq!(served, Ok(1));
        while cache.get::<u32>("k").await.ok().flatten() != Some(2) {
            assert!(std::time::Instant::now() < deadline, "refreshed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
