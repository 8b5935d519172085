//! The memory backend's bounds: by entry count (objects) and by bytes (encoded).

use std::sync::Arc;
use std::time::Duration;

use cached_core::backend::memory::{Bound, MemoryBackend};
use cached_core::{Backend, Cache};

#[tokio::test]
async fn an_entry_bound_evicts_and_counts_evictions() {
    let backend = Arc::new(MemoryBackend::new(Bound::Entries(100)));
    let cache = Cache::builder_arc(backend.clone() as Arc<dyn Backend>).build();
    assert!(
        backend.stores_objects(),
        "entry-bounded caches keep objects"
    );
    for i in 0..2_000u32 {
        cache
            .set(
                &format!("k{i}"),
                &format!("value {i}"),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
    }
    backend.run_pending_tasks().await;
    assert!(
        backend.entry_count() <= 100,
        "{} entries",
        backend.entry_count()
    );
    assert!(cache.stats().evictions > 0, "{:?}", cache.stats());
}

#[tokio::test]
async fn a_byte_bound_limits_the_encoded_size() {
    let backend = Arc::new(MemoryBackend::new(Bound::Bytes(20_000)));
    assert!(
        !backend.stores_objects(),
        "byte-bounded caches store encoded values"
    );
    let cache = Cache::builder_arc(backend.clone() as Arc<dyn Backend>).build();
    let value = "x".repeat(1_000);
    for i in 0..200u32 {
        cache
            .set(&format!("k{i}"), &value, Duration::from_secs(60))
            .await
            .unwrap();
    }
    backend.run_pending_tasks().await;
    // Each entry weighs a little over 1,000 bytes: at most 20 fit.
    assert!(
        backend.entry_count() <= 20,
        "{} entries",
        backend.entry_count()
    );
    assert!(backend.entry_count() > 0);
    assert!(cache.stats().evictions >= 180, "{:?}", cache.stats());
}

#[tokio::test]
async fn objects_are_not_serialized_in_process() {
    // A type whose Serialize impl fails: the in-process path never calls it.
    #[derive(Clone, serde::Deserialize)]
    struct NoSerialize(u32);
    impl serde::Serialize for NoSerialize {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom(
                "serialized on the in-process path",
            ))
        }
    }
    let objects = Cache::builder(MemoryBackend::default()).build();
    objects
        .set("k", &NoSerialize(7), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        objects.get::<NoSerialize>("k").await.unwrap().map(|v| v.0),
        Some(7)
    );

    let encoded = Cache::builder(MemoryBackend::new(Bound::Bytes(1 << 20))).build();
    let err = encoded
        .set("k", &NoSerialize(7), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("could not encode"), "{err}");
}
