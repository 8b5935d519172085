//! One cold key runs its body once per process, even for a caller whose read of the
//! key missed before the leader stored and that joins after the leader has left.
//!
//! On a backend that must be awaited (Redis, a cluster) a read's answer can arrive long
//! after it was taken. Here a backend holds one caller's read (taken while the key was
//! still absent) until the leader has stored its value and finished: that caller then
//! finds no computation to wait for, and must read again before running the body.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cached_kit::backend::{Backend, Ttl, Value};
use cached_kit::{Cache, CacheError, MemoryBackend};
use tokio::sync::Notify;

/// The memory backend, except that the first `get` after `hold_next` was set answers
/// what it read only once `release` is notified.
struct LateRead {
    inner: MemoryBackend,
    gates: Arc<Gates>,
}

struct Gates {
    hold_next: AtomicBool,
    read_taken: Notify,
    release: Notify,
}

#[async_trait]
impl Backend for LateRead {
    fn name(&self) -> &'static str {
        "late-read"
    }
    async fn get(&self, key: &str) -> Result<Option<Value>, CacheError> {
        let read = self.inner.get(key).await;
        let gates = &self.gates;
        if gates.hold_next.swap(false, Ordering::SeqCst) {
            gates.read_taken.notify_one();
            gates.release.notified().await;
        }
        read
    }
    async fn set(&self, key: &str, value: Value, ttl: Ttl) -> Result<(), CacheError> {
        self.inner.set(key, value, ttl).await
    }
    async fn add(&self, key: &str, value: Value, ttl: Ttl) -> Result<bool, CacheError> {
        self.inner.add(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.inner.delete(key).await
    }
    async fn incr(&self, key: &str, delta: i64, ttl: Ttl) -> Result<i64, CacheError> {
        self.inner.incr(key, delta, ttl).await
    }
    async fn touch(&self, key: &str, ttl: Ttl) -> Result<bool, CacheError> {
        self.inner.touch(key, ttl).await
    }
    async fn clear(&self, prefix: &str) -> Result<usize, CacheError> {
        self.inner.clear(prefix).await
    }
    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, CacheError> {
        self.inner.delete_if_equals(key, expected).await
    }
    async fn expire_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        self.inner.expire_if_equals(key, expected, ttl).await
    }
}

#[tokio::test]
async fn a_caller_whose_miss_arrives_after_the_leader_left_does_not_run_the_body_again() {
    let backend = Arc::new(Gates {
        hold_next: AtomicBool::new(false),
        read_taken: Notify::new(),
        release: Notify::new(),
    });
    let cache = Cache::builder(LateRead {
        inner: MemoryBackend::default(),
        gates: Arc::clone(&backend),
    })
    .build();
    let runs = Arc::new(AtomicUsize::new(0));
    let call = |cache: Cache, runs: Arc<AtomicUsize>| async move {
        cache
            .get_or_set_with("cold", Duration::from_secs(60), || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                "lamp".to_string()
            })
            .await
    };

    // The leader reads a miss and runs its body, which waits for `body_gate`.
    let (body_started, body_gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let leader = {
        let (cache, runs) = (cache.clone(), Arc::clone(&runs));
        let (gates, started, gate) = (
            Arc::clone(&backend),
            Arc::clone(&body_started),
            Arc::clone(&body_gate),
        );
        tokio::spawn(async move {
            cache
                .get_or_set_with("cold", Duration::from_secs(60), || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    gates.hold_next.store(true, Ordering::SeqCst);
                    started.notify_one();
                    gate.notified().await;
                    "lamp".to_string()
                })
                .await
        })
    };
    let within = Duration::from_secs(10);
    tokio::time::timeout(within, body_started.notified())
        .await
        .expect("the leader's body started");
    // The late caller's read is taken while the key is absent, and held.
    let late = tokio::spawn(call(cache.clone(), Arc::clone(&runs)));
    tokio::time::timeout(within, backend.read_taken.notified())
        .await
        .expect("the late caller's read was taken");
    // The leader computes, stores and leaves; then the late caller's miss arrives.
    body_gate.notify_one();
    let led = tokio::time::timeout(within, leader)
        .await
        .expect("the leader returns");
    assert_eq!(led.expect("leader"), "lamp");
    backend.release.notify_one();
    assert_eq!(
        tokio::time::timeout(within, late)
            .await
            .expect("the late caller returns")
            .expect("late"),
        "lamp"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the body ran once");
}
