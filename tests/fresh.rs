//! SPEC §12 through the macros, on a real runtime: `#[cache_fn(tags = [..])]`,
//! `#[cache_evict(tags = [..])]`, `Cache::invalidate_tags`, and
//! `#[cache_fn(stale = N)]` (stale-while-revalidate). The same suite runs against a
//! memory cache and (feature `redis`) a real `redis-server`, each under its own alias.
//!
//! Ordering is asserted with flags and gates (a refresh waits on a gate the test
//! opens), never with a timing threshold; waits for a ttl have margins.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cached_kit::{cache_evict, cache_fn, caches, Cache, MemoryBackend};

/// Waits, with a generous deadline, until `done()`.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `fut`'s output, which must come at once: a read that waited for the refresh (which
/// waits for a gate the test has not opened) fails here instead of hanging.
async fn at_once<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("answered at once, without waiting for the refresh")
}

/// A gate a body waits on until the test opens it.
struct Gate(tokio::sync::Semaphore);

impl Gate {
    const fn new() -> Self {
        Gate(tokio::sync::Semaphore::const_new(0))
    }

    async fn pass(&self) {
        let _ = self.0.acquire().await.map(|permit| permit.forget());
    }

    fn open(&self, n: usize) {
        self.0.add_permits(n);
    }
}

macro_rules! fresh_suite {
    ($alias:tt, $setup:expr) => {
        use super::*;

        fn setup() -> Cache {
            static ONCE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
            ONCE.get_or_init(|| {
                let cache: Cache = $setup;
                caches().insert(cache.clone());
                cache
            })
            .clone()
        }

        // -------------------------------------------------------------------- tags

        static PRODUCT_RUNS: AtomicUsize = AtomicUsize::new(0);

        #[cache_fn(ttl = 600, cache = $alias, key = "product:{id}", tags = ["product:{id}", "products"])]
        async fn product(id: u32) -> String {
            let n = PRODUCT_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
            format!("product {id}, run {n}")
        }

        #[cache_evict(cache = $alias, tags = ["product:{id}"])]
        async fn rename_product(id: u32, name: String) -> Result<(), String> {
            let _ = name;
            Ok(())
        }

        #[cache_evict(cache = $alias, tags = "product:{id}")]
        async fn failing_update(id: u32) -> Result<(), String> {
            Err(format!("product {id} not saved"))
        }

        fn runs() -> usize {
            PRODUCT_RUNS.load(Ordering::SeqCst)
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn tags_invalidate_cache_fn_entries_through_cache_evict_and_the_handle() {
            let cache = setup();
            let one = product(1).await;
            let two = product(2).await;
            let before = runs();
            assert_eq!(product(1).await, one, "a hit");
            assert_eq!(product(2).await, two, "a hit");
            assert_eq!(runs(), before);
            // Stored under the key as written, readable through the handle.
            assert_eq!(cache.get::<String>("product:1").await.unwrap(), Some(one.clone()));

            // A failed call invalidates nothing.
            assert!(failing_update(1).await.is_err());
            assert_eq!(product(1).await, one);
            assert_eq!(runs(), before);

            // `#[cache_evict(tags = ..)]` after a successful call: only product 1 moved.
            rename_product(1, "lamp".into()).await.unwrap();
            let one_again = product(1).await;
            assert_ne!(one_again, one, "recomputed");
            assert_eq!(product(2).await, two, "untouched");
            assert_eq!(runs(), before + 1);

            // The handle: one tag shared by both.
            cache.invalidate_tags(&["products"]).await.unwrap();
            assert_ne!(product(1).await, one_again);
            assert_ne!(product(2).await, two);
            assert_eq!(runs(), before + 3);
            assert_eq!(cache.stats().decode_errors, 0);
        }

        static REFRESHED_RUNS: AtomicUsize = AtomicUsize::new(0);

        #[cache_fn(ttl = 600, cache = $alias, key = "refreshed:{id}", tags = ["refreshed:{id}"])]
        async fn refreshed(id: u32) -> usize {
            let _ = id;
            REFRESHED_RUNS.fetch_add(1, Ordering::SeqCst) + 1
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn name_refresh_stores_a_tagged_entry() {
            let cache = setup();
            let first = refreshed(1).await;
            let second = refreshed_refresh(1).await;
            assert_eq!(second, first + 1);
            assert_eq!(refreshed(1).await, second, "the refreshed value is a hit");
            cache.invalidate_tags(&["refreshed:1"]).await.unwrap();
            assert_eq!(refreshed(1).await, second + 1, "and it was tagged");
        }

        // Tags on a sync fn with borrowed arguments (only `stale` needs owned ones).
        static LABEL_RUNS: AtomicUsize = AtomicUsize::new(0);

        #[cache_fn(ttl = 600, cache = $alias, key = "label:{name}", tags = ["label:{name}"])]
        fn label(prefix: &str, name: &str) -> String {
            LABEL_RUNS.fetch_add(1, Ordering::SeqCst);
            format!("{prefix}{name}")
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn tags_work_on_sync_fns_with_borrowed_arguments() {
            let cache = setup();
            assert_eq!(label("a-", "desk"), "a-desk");
            assert_eq!(label("b-", "desk"), "a-desk", "a hit");
            assert_eq!(LABEL_RUNS.load(Ordering::SeqCst), 1);
            cache.invalidate_tags(&["label:desk"]).await.unwrap();
            assert_eq!(label("b-", "desk"), "b-desk");
            assert_eq!(LABEL_RUNS.load(Ordering::SeqCst), 2);
        }

        // ------------------------------------------------------------------- stale

        const TTL: Duration = Duration::from_millis(400);

        /// Waits until an entry stored now is past its ttl (with a margin).
        async fn past_ttl() {
            tokio::time::sleep(TTL + Duration::from_millis(200)).await;
        }

        static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);
        static SLOW_GATE: Gate = Gate::new();
        static SLOW_REFRESH_DONE: AtomicBool = AtomicBool::new(false);

        /// The first run is quick; a refresh takes a second, and waits for the gate.
        #[cache_fn(ttl = TTL, stale = 60, cache = $alias, key = "slow:{id}")]
        async fn slow(id: u32) -> String {
            let n = SLOW_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
            if n > 1 {
                SLOW_GATE.pass().await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                SLOW_REFRESH_DONE.store(true, Ordering::SeqCst);
            }
            format!("slow {id}, run {n}")
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_stale_read_returns_the_old_value_while_the_refresh_runs_then_the_next_read_is_fresh(
        ) {
            let cache = setup();
            let old = slow(1).await;
            assert_eq!(old, "slow 1, run 1");
            past_ttl().await;

            let stale_hits = cache.stats().stale_hits;
            // The refresh cannot finish before the gate opens: the value came back
            // while it ran.
            assert_eq!(at_once(slow(1)).await, old);
            assert!(!SLOW_REFRESH_DONE.load(Ordering::SeqCst));
            assert_eq!(cache.stats().stale_hits, stale_hits + 1);
            until("the refresh to start", || SLOW_RUNS.load(Ordering::SeqCst) == 2).await;
            assert_eq!(at_once(slow(1)).await, old, "still stale while it runs");
            SLOW_GATE.open(1);
            until("the refresh to finish", || SLOW_REFRESH_DONE.load(Ordering::SeqCst)).await;

            // The refresh stores before it returns; its value is then a fresh hit.
            let mut fresh = slow(1).await;
            while fresh == old {
                tokio::time::sleep(Duration::from_millis(5)).await;
                fresh = slow(1).await;
            }
            assert_eq!(fresh, "slow 1, run 2");
            assert_eq!(slow(1).await, fresh);
            assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 2, "one refresh");
        }

        static CROWD_RUNS: AtomicUsize = AtomicUsize::new(0);
        static CROWD_GATE: Gate = Gate::new();

        #[cache_fn(ttl = TTL, stale = 60, cache = $alias, key = "crowd:{id}")]
        async fn crowd(id: u32) -> usize {
            let _ = id;
            let n = CROWD_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
            if n > 1 {
                CROWD_GATE.pass().await;
            }
            n
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn fifty_concurrent_stale_readers_start_exactly_one_refresh() {
            setup();
            assert_eq!(crowd(7).await, 1);
            past_ttl().await;
            let start = Arc::new(tokio::sync::Barrier::new(50));
            let readers: Vec<_> = (0..50)
                .map(|_| {
                    let start = Arc::clone(&start);
                    tokio::spawn(async move {
                        start.wait().await;
                        at_once(crowd(7)).await
                    })
                })
                .collect();
            for reader in readers {
                assert_eq!(reader.await.unwrap(), 1, "every reader got the stale value");
            }
            // All fifty returned while the one refresh waits at the gate.
            until("the refresh to start", || CROWD_RUNS.load(Ordering::SeqCst) == 2).await;
            CROWD_GATE.open(100);
            let mut v = crowd(7).await;
            while v == 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                v = crowd(7).await;
            }
            assert_eq!(v, 2);
            assert_eq!(CROWD_RUNS.load(Ordering::SeqCst), 2, "exactly one refresh");
        }

        static FLAKY_FAIL: AtomicBool = AtomicBool::new(false);
        static FLAKY_RUNS: AtomicUsize = AtomicUsize::new(0);

        #[cache_fn(ttl = TTL, stale = std::time::Duration::from_millis(2500), cache = $alias, key = "flaky:{id}")]
        async fn flaky(id: u32) -> Result<String, String> {
            let n = FLAKY_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
            if FLAKY_FAIL.load(Ordering::SeqCst) {
                return Err(format!("run {n} failed"));
            }
            Ok(format!("flaky {id}, run {n}"))
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_failed_refresh_keeps_serving_the_stale_value_until_the_window_ends() {
            setup();
            let stored_at = Instant::now();
            let old = flaky(1).await.unwrap();
            past_ttl().await;
            FLAKY_FAIL.store(true, Ordering::SeqCst);
            for attempt in 1..=3 {
                assert_eq!(at_once(flaky(1)).await.as_ref(), Ok(&old), "stale served, attempt {attempt}");
                until("the refresh to fail", || FLAKY_RUNS.load(Ordering::SeqCst) > attempt).await;
                // Let the failed refresh end (it stores nothing) before the next read.
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            assert!(
                stored_at.elapsed() < TTL + Duration::from_millis(2500),
                "the test ran too slowly to mean anything"
            );
            // The window is over: a miss; the body runs in line, and its error is the
            // caller's.
            let end = TTL + Duration::from_millis(2500) + Duration::from_millis(300);
            tokio::time::sleep(end.saturating_sub(stored_at.elapsed())).await;
            assert!(flaky(1).await.is_err());
            FLAKY_FAIL.store(false, Ordering::SeqCst);
            let new = flaky(1).await.unwrap();
            assert_ne!(new, old);
            assert_eq!(flaky(1).await.unwrap(), new, "stored again");
        }

        // `stale` with tags, on a sync fn and on a method taking `self: Arc<Self>`.
        static SYNC_RUNS: AtomicUsize = AtomicUsize::new(0);
        static SYNC_GATE: Gate = Gate::new();

        #[cache_fn(ttl = TTL, stale = 60, cache = $alias, key = "sync:{id}", tags = ["sync:{id}"])]
        fn sync_report(id: u32) -> usize {
            let _ = id;
            let n = SYNC_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
            if n == 2 {
                // The refresh runs on the blocking pool: block until the test lets go.
                tokio::runtime::Handle::current().block_on(SYNC_GATE.pass());
            }
            n
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_sync_fn_serves_stale_while_its_body_refreshes_on_a_blocking_thread() {
            let cache = setup();
            assert_eq!(sync_report(3), 1);
            past_ttl().await;
            let stale = at_once(tokio::task::spawn_blocking(|| sync_report(3))).await;
            assert_eq!(stale.unwrap(), 1, "stale, at once");
            until("the refresh to start", || SYNC_RUNS.load(Ordering::SeqCst) == 2).await;
            SYNC_GATE.open(1);
            let mut v = sync_report(3);
            while v == 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                v = sync_report(3);
            }
            assert_eq!(v, 2);
            // Tags hold for stale entries too.
            cache.invalidate_tags(&["sync:3"]).await.unwrap();
            assert_eq!(sync_report(3), 3);
        }

        struct Catalog {
            name: String,
            runs: AtomicUsize,
        }

        impl Catalog {
            #[cache_fn(ttl = TTL, stale = 60, cache = $alias, key = "catalog:{self.name}:{page}")]
            async fn page(self: Arc<Self>, page: u32) -> String {
                let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
                format!("{} page {page}, run {n}", self.name)
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_method_taking_an_arc_self_refreshes_in_the_background() {
            setup();
            let catalog = Arc::new(Catalog {
                name: format!("catalog-{}", std::process::id()),
                runs: AtomicUsize::new(0),
            });
            let first = Arc::clone(&catalog).page(1).await;
            past_ttl().await;
            assert_eq!(at_once(Arc::clone(&catalog).page(1)).await, first, "stale");
            until("the refresh", || catalog.runs.load(Ordering::SeqCst) == 2).await;
            let mut v = Arc::clone(&catalog).page(1).await;
            while v == first {
                tokio::time::sleep(Duration::from_millis(5)).await;
                v = Arc::clone(&catalog).page(1).await;
            }
            assert!(v.ends_with("run 2"), "{v}");
        }
    };
}

mod memory {
    fresh_suite!(
        "fresh-memory",
        Cache::builder(MemoryBackend::default())
            .alias("fresh-memory")
            .build()
    );
}

#[cfg(feature = "redis")]
mod redis {
    fresh_suite!(
        "fresh-redis",
        Cache::from_url_as(
            "fresh-redis",
            "a test",
            &cached_testing::RedisServer::shared().url()
        )
        .expect("a Redis cache")
    );
}
