//! `#[cache_evict]`: the rendered keys are deleted after a successful call, and only then.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cached_kit::{cache, cache_evict, cache_fn, caches, Cache, MemoryBackend};

static PRODUCT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache_fn(ttl = 300, key = "evict-product:{id}")]
async fn product(id: i64) -> Option<String> {
    let n = PRODUCT_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    Some(format!("product {id} v{n}"))
}

#[derive(Debug, PartialEq)]
struct DbError;

#[cache_evict(key = "evict-product:{id}")]
async fn update_product(id: i64, name: String, fail: bool) -> Result<(), DbError> {
    let _ = (id, name);
    if fail {
        return Err(DbError);
    }
    Ok(())
}

#[tokio::test]
async fn a_successful_call_deletes_the_entry_a_failed_one_keeps_it() {
    assert_eq!(product(1).await.as_deref(), Some("product 1 v1"));
    assert_eq!(product(1).await.as_deref(), Some("product 1 v1"));

    assert_eq!(update_product(1, "x".into(), true).await, Err(DbError));
    assert_eq!(
        product(1).await.as_deref(),
        Some("product 1 v1"),
        "an Err leaves the entry"
    );

    assert_eq!(update_product(1, "x".into(), false).await, Ok(()));
    assert_eq!(
        cache()
            .get::<Option<String>>("evict-product:1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        product(1).await.as_deref(),
        Some("product 1 v2"),
        "recomputed after eviction"
    );
}

#[tokio::test]
async fn several_keys_in_a_named_cache() {
    caches().insert(
        Cache::builder(MemoryBackend::default())
            .alias("evict-named")
            .build(),
    );
    let named = caches().get("evict-named").unwrap();
    let ttl = Duration::from_secs(60);
    for key in ["user:5", "user:5:orders", "user:6", "user:5:extra"] {
        named.set(key, &1u8, ttl).await.unwrap();
    }
    cache().set("user:5", &1u8, ttl).await.unwrap();

    #[cache_evict(key = ["user:{user_id}", "user:{user_id}:orders"], cache = "evict-named")]
    fn rename_user(user_id: u32, name: &str) -> usize {
        name.len()
    }
    assert_eq!(rename_user(5, "ann"), 3);

    assert_eq!(named.get::<u8>("user:5").await.unwrap(), None);
    assert_eq!(named.get::<u8>("user:5:orders").await.unwrap(), None);
    assert_eq!(named.get::<u8>("user:6").await.unwrap(), Some(1));
    assert_eq!(named.get::<u8>("user:5:extra").await.unwrap(), Some(1));
    assert_eq!(
        cache().get::<u8>("user:5").await.unwrap(),
        Some(1),
        "another cache is untouched"
    );
}

struct Store {
    writes: usize,
}

impl Store {
    /// `&mut self` is fine for eviction: the body always runs.
    #[cache_evict(key = "store-item:{id}")]
    async fn put(&mut self, id: u32) -> Result<usize, String> {
        self.writes += 1;
        if id == 0 {
            return Err("id 0 is reserved".into());
        }
        Ok(self.writes)
    }
}

#[tokio::test]
async fn methods_with_mut_self_and_early_returns() {
    let ttl = Duration::from_secs(60);
    cache()
        .set("store-item:0", &"a".to_string(), ttl)
        .await
        .unwrap();
    cache()
        .set("store-item:3", &"b".to_string(), ttl)
        .await
        .unwrap();
    let mut store = Store { writes: 0 };
    assert!(store.put(0).await.is_err());
    assert_eq!(store.put(3).await, Ok(2));
    assert!(cache()
        .get::<String>("store-item:0")
        .await
        .unwrap()
        .is_some());
    assert!(cache()
        .get::<String>("store-item:3")
        .await
        .unwrap()
        .is_none());
}

#[test]
fn a_sync_evict_works_outside_any_runtime() {
    #[cache_evict(key = "sync-evict:{k}")]
    fn forget(k: &str) {
        let _ = k;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(cache().set("sync-evict:a", &1u8, Duration::from_secs(60)))
        .unwrap();
    forget("a");
    assert_eq!(
        rt.block_on(cache().get::<u8>("sync-evict:a")).unwrap(),
        None
    );
}

#[tokio::test]
async fn version_evicts_what_cache_fn_stored_under_that_version() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cache_fn(key = "evict-versioned:{id}", version = 4)]
    async fn versioned(id: u32) -> usize {
        let _ = id;
        RUNS.fetch_add(1, Ordering::SeqCst) + 1
    }
    #[cache_evict(key = "evict-versioned:{id}", version = 4)]
    async fn update(id: u32) {
        let _ = id;
    }
    // The same key under the cache's own version is another entry, left alone.
    cache()
        .set("evict-versioned:1", &7usize, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(versioned(1).await, 1);
    assert_eq!(versioned(1).await, 1);
    update(1).await;
    assert_eq!(
        cache()
            .with_version(4)
            .get::<usize>("evict-versioned:1")
            .await
            .unwrap(),
        None,
        "the version 4 entry is gone"
    );
    assert_eq!(versioned(1).await, 2, "recomputed after eviction");
    assert_eq!(
        cache().get::<usize>("evict-versioned:1").await.unwrap(),
        Some(7),
        "the version 1 entry is untouched"
    );
}
