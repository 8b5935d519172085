//! The backend conformance suite: every behaviour of [`Backend`] and [`Cache`], written
//! once and run against every backend of the workspace (memory, dummy, Redis).
//!
//! ```text
//! cached_testing::backend_conformance!(storing, || async {
//!     std::sync::Arc::new(MyBackend::new()) as std::sync::Arc<dyn cached_core::Backend>
//! });
//! ```
//!
//! `storing` runs the full expectations; `dummy` checks the store-nothing contract
//! of [`DummyBackend`](cached_core::DummyBackend) against the same cases. Every case works
//! under its own key prefix, so one backend (one Redis server) can serve all cases.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use cached_core::backend::{Backend, Value};
use cached_core::{Cache, CacheError, ComputeOptions};

/// Which contract a backend promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Stores values (memory, Redis).
    Storing,
    /// Stores nothing ([`DummyBackend`](cached_core::DummyBackend)).
    Dummy,
}

/// Generates one `#[tokio::test]` per conformance case for a backend constructor.
///
/// The first argument is `storing` or `dummy`; the second an expression callable with
/// no arguments that returns a future of `Arc<dyn Backend>`.
#[macro_export]
macro_rules! backend_conformance {
    (storing, $make:expr) => {
        $crate::backend_conformance!(@cases $crate::conformance::Profile::Storing, $make);
    };
    (dummy, $make:expr) => {
        $crate::backend_conformance!(@cases $crate::conformance::Profile::Dummy, $make);
    };
    (@cases $profile:expr, $make:expr) => {
        $crate::backend_conformance!(@each $profile, $make;
            get_of_a_missing_key_is_none,
            set_then_get_returns_the_value,
            set_replaces_the_value,
            add_stores_only_when_absent,
            delete_reports_whether_the_key_existed,
            get_many_keeps_the_order_of_keys,
            set_many_and_delete_many,
            incr_is_a_counter,
            incr_on_a_non_counter_is_an_error,
            incr_keeps_the_expiry,
            ttl_expiry_is_exact,
            no_ttl_means_no_expiry,
            touch_gives_a_new_ttl,
            clear_is_scoped_to_the_prefix,
            cache_round_trips_structs,
            cache_uses_django_key_layout,
            cache_versions_are_separate,
            cache_long_and_unsafe_keys,
            cache_single_flight,
            cache_failed_computations_are_not_stored,
            cache_undecodable_values_are_counted_misses,
            cache_counts_hits_misses_sets_deletes,
            cache_zero_ttl_deletes,
            cache_integers_are_counters,
            cache_many_operations,
            cache_clear_is_scoped,
            cache_tags_invalidate_tagged_entries,
            cache_tags_moved_during_a_computation_make_it_a_miss,
            cache_tags_gone_or_recreated_never_revalidate_an_entry,
            cache_tags_span_versions_and_get_many,
            cache_stale_values_are_served_while_one_refresh_runs,
            cache_failed_refresh_serves_stale_until_the_window_ends,
            cache_tagged_stale_entries_read_entry_and_versions_together,
            delete_if_equals_deletes_only_the_holders_token,
            expire_if_equals_extends_only_the_holders_token,
            an_expired_lock_is_gone_for_its_old_holder
        );
    };
    (@each $profile:expr, $make:expr; $($case:ident),*) => {$(
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let backend: ::std::sync::Arc<dyn $crate::__private::Backend> = ($make)().await;
            $crate::conformance::$case(backend, $profile).await;
        }
    )*};
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A key prefix no other case (in this or another process) uses.
fn unique_prefix(case: &str) -> String {
    format!(
        "conf-{}-{}-{case}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn cache_over(backend: &Arc<dyn Backend>, case: &str) -> Cache {
    Cache::builder_arc(Arc::clone(backend))
        .alias(case)
        .key_prefix(unique_prefix(case))
        .build()
}

fn bytes(s: &'static str) -> Value {
    Value::Bytes(bytes::Bytes::from_static(s.as_bytes()))
}

fn as_bytes(v: Option<Value>) -> Option<Vec<u8>> {
    match v {
        Some(Value::Bytes(b)) => Some(b.to_vec()),
        Some(other) => panic!("expected bytes, got {other:?}"),
        None => None,
    }
}

fn as_int(v: Option<Value>) -> Option<i64> {
    match v {
        Some(Value::Int(n)) => Some(n),
        Some(other) => panic!("expected an integer, got {other:?}"),
        None => None,
    }
}

const MINUTE: Option<Duration> = Some(Duration::from_secs(60));

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    id: i64,
    name: String,
    tags: Vec<String>,
    price: Option<f64>,
}

fn lamp() -> Product {
    Product {
        id: 42,
        name: "lamp".into(),
        tags: vec!["light".into(), "home".into()],
        price: Some(19.5),
    }
}

#[doc(hidden)]
pub async fn get_of_a_missing_key_is_none(b: Arc<dyn Backend>, _: Profile) {
    let k = format!("{}:missing", unique_prefix("missing"));
    assert!(b.get(&k).await.expect("get").is_none());
}

#[doc(hidden)]
pub async fn set_then_get_returns_the_value(b: Arc<dyn Backend>, p: Profile) {
    let k = format!("{}:k", unique_prefix("set_get"));
    b.set(&k, bytes("hello"), MINUTE).await.expect("set");
    let got = as_bytes(b.get(&k).await.expect("get"));
    match p {
        Profile::Storing => assert_eq!(got.as_deref(), Some(&b"hello"[..])),
        Profile::Dummy => assert_eq!(got, None),
    }
    let n = format!("{k}:n");
    b.set(&n, Value::Int(-7), MINUTE).await.expect("set int");
    let got = as_int(b.get(&n).await.expect("get int"));
    assert_eq!(got, (p == Profile::Storing).then_some(-7));
}

#[doc(hidden)]
pub async fn set_replaces_the_value(b: Arc<dyn Backend>, p: Profile) {
    let k = format!("{}:k", unique_prefix("replace"));
    b.set(&k, bytes("one"), MINUTE).await.expect("set");
    b.set(&k, bytes("two"), MINUTE).await.expect("set");
    let got = as_bytes(b.get(&k).await.expect("get"));
    assert_eq!(got, (p == Profile::Storing).then(|| b"two".to_vec()));
}

#[doc(hidden)]
pub async fn add_stores_only_when_absent(b: Arc<dyn Backend>, p: Profile) {
    let k = format!("{}:k", unique_prefix("add"));
    assert!(b.add(&k, bytes("first"), MINUTE).await.expect("add"));
    let second = b.add(&k, bytes("second"), MINUTE).await.expect("add");
    match p {
        Profile::Storing => {
            assert!(!second, "add on a present key must not store");
            assert_eq!(
                as_bytes(b.get(&k).await.expect("get")),
                Some(b"first".to_vec())
            );
        }
        Profile::Dummy => assert!(second),
    }
    // An expired key is absent for add.
    let e = format!("{k}:expiring");
    b.set(&e, bytes("old"), Some(Duration::from_millis(50)))
        .await
        .expect("set");
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(b
        .add(&e, bytes("new"), MINUTE)
        .await
        .expect("add after expiry"));
}

#[doc(hidden)]
pub async fn delete_reports_whether_the_key_existed(b: Arc<dyn Backend>, p: Profile) {
    let k = format!("{}:k", unique_prefix("delete"));
    b.set(&k, bytes("v"), MINUTE).await.expect("set");
    assert_eq!(b.delete(&k).await.expect("delete"), p == Profile::Storing);
    assert!(!b.delete(&k).await.expect("delete again"));
    assert!(b.get(&k).await.expect("get").is_none());
}

#[doc(hidden)]
pub async fn get_many_keeps_the_order_of_keys(b: Arc<dyn Backend>, p: Profile) {
    let pre = unique_prefix("get_many");
    let keys: Vec<String> = (0..5).map(|i| format!("{pre}:{i}")).collect();
    b.set(&keys[1], bytes("one"), MINUTE).await.expect("set");
    b.set(&keys[3], Value::Int(3), MINUTE).await.expect("set");
    let got = b.get_many(&keys).await.expect("get_many");
    assert_eq!(got.len(), 5);
    let present: Vec<bool> = got.iter().map(Option::is_some).collect();
    match p {
        Profile::Storing => {
            assert_eq!(present, [false, true, false, true, false]);
            assert!(matches!(&got[1], Some(Value::Bytes(v)) if &v[..] == b"one"));
            assert!(matches!(got[3], Some(Value::Int(3))));
        }
        Profile::Dummy => assert_eq!(present, [false; 5]),
    }
    assert!(b.get_many(&[]).await.expect("empty get_many").is_empty());
}

#[doc(hidden)]
pub async fn set_many_and_delete_many(b: Arc<dyn Backend>, p: Profile) {
    let pre = unique_prefix("set_many");
    let entries: Vec<(String, Value)> = (0..20)
        .map(|i| (format!("{pre}:{i}"), Value::Int(i)))
        .collect();
    let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
    b.set_many(entries, MINUTE).await.expect("set_many");
    let got = b.get_many(&keys).await.expect("get_many");
    for (i, v) in got.into_iter().enumerate() {
        let expected = (p == Profile::Storing).then_some(i as i64);
        assert_eq!(as_int(v), expected, "key {i}");
    }
    let mut some = keys[..10].to_vec();
    some.push(format!("{pre}:absent"));
    let deleted = b.delete_many(&some).await.expect("delete_many");
    assert_eq!(deleted, if p == Profile::Storing { 10 } else { 0 });
    let left = b.get_many(&keys).await.expect("get_many");
    let present = left.iter().filter(|v| v.is_some()).count();
    assert_eq!(present, if p == Profile::Storing { 10 } else { 0 });
    b.set_many(Vec::new(), MINUTE)
        .await
        .expect("empty set_many");
    assert_eq!(b.delete_many(&[]).await.expect("empty delete_many"), 0);
}

#[doc(hidden)]
pub async fn incr_is_a_counter(b: Arc<dyn Backend>, p: Profile) {
    let k = format!("{}:n", unique_prefix("incr"));
    assert_eq!(b.incr(&k, 5, MINUTE).await.expect("incr"), 5);
    let second = b.incr(&k, -2, MINUTE).await.expect("incr");
    assert_eq!(second, if p == Profile::Storing { 3 } else { -2 });
    if p == Profile::Dummy {
        return;
    }
    assert_eq!(as_int(b.get(&k).await.expect("get")), Some(3));
    // Concurrent increments are atomic.
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let b = Arc::clone(&b);
            let k = k.clone();
            tokio::spawn(async move { b.incr(&k, 2, MINUTE).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("incr");
    }
    assert_eq!(as_int(b.get(&k).await.expect("get")), Some(103));
    // Overflow is an error, and leaves the counter as it was.
    let big = format!("{k}:big");
    b.set(&big, Value::Int(i64::MAX - 1), MINUTE)
        .await
        .expect("set");
    assert!(b.incr(&big, 5, MINUTE).await.is_err());
    assert_eq!(as_int(b.get(&big).await.expect("get")), Some(i64::MAX - 1));
}

#[doc(hidden)]
pub async fn incr_on_a_non_counter_is_an_error(b: Arc<dyn Backend>, p: Profile) {
    let k = format!("{}:text", unique_prefix("incr_text"));
    b.set(&k, bytes("hello"), MINUTE).await.expect("set");
    let result = b.incr(&k, 1, MINUTE).await;
    match p {
        Profile::Storing => {
            assert!(
                matches!(result, Err(CacheError::NotACounter(_))),
                "{result:?}"
            );
            assert_eq!(
                as_bytes(b.get(&k).await.expect("get")),
                Some(b"hello".to_vec())
            );
        }
        Profile::Dummy => assert!(result.is_ok()),
    }
}

#[doc(hidden)]
pub async fn incr_keeps_the_expiry(b: Arc<dyn Backend>, p: Profile) {
    if p == Profile::Dummy {
        return;
    }
    let k = format!("{}:n", unique_prefix("incr_ttl"));
    b.incr(&k, 1, Some(Duration::from_millis(300)))
        .await
        .expect("incr");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A long ttl on a later incr does not extend the counter's life.
    b.incr(&k, 1, MINUTE).await.expect("incr");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        b.get(&k).await.expect("get").is_none(),
        "counter outlived its ttl"
    );
    // After expiry the counter starts again.
    assert_eq!(b.incr(&k, 1, MINUTE).await.expect("incr"), 1);
}

/// Entries are present before their ttl and gone after it, to the margin below.
const MARGIN: Duration = Duration::from_millis(60);

#[doc(hidden)]
pub async fn ttl_expiry_is_exact(b: Arc<dyn Backend>, p: Profile) {
    if p == Profile::Dummy {
        return;
    }
    let k = format!("{}:k", unique_prefix("ttl"));
    let ttl = Duration::from_millis(400);
    let start = Instant::now();
    b.set(&k, bytes("v"), Some(ttl)).await.expect("set");
    tokio::time::sleep((ttl - MARGIN).saturating_sub(start.elapsed())).await;
    let before = b.get(&k).await.expect("get");
    // Only meaningful if the read happened before the deadline (a stalled machine may
    // have slept longer); the miss after the deadline is always checked.
    if start.elapsed() < ttl {
        assert!(before.is_some(), "expired early (at {:?})", start.elapsed());
    }
    tokio::time::sleep((ttl + MARGIN).saturating_sub(start.elapsed())).await;
    assert!(
        b.get(&k).await.expect("get").is_none(),
        "still present after its ttl"
    );
}

#[doc(hidden)]
pub async fn no_ttl_means_no_expiry(b: Arc<dyn Backend>, p: Profile) {
    let k = format!("{}:k", unique_prefix("no_ttl"));
    b.set(&k, bytes("v"), None).await.expect("set");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        b.get(&k).await.expect("get").is_some(),
        p == Profile::Storing
    );
    b.delete(&k).await.expect("delete");
}

#[doc(hidden)]
pub async fn touch_gives_a_new_ttl(b: Arc<dyn Backend>, p: Profile) {
    let k = format!("{}:k", unique_prefix("touch"));
    assert!(!b.touch(&k, MINUTE).await.expect("touch absent"));
    b.set(&k, bytes("v"), Some(Duration::from_millis(200)))
        .await
        .expect("set");
    assert_eq!(
        b.touch(&k, MINUTE).await.expect("touch"),
        p == Profile::Storing
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        b.get(&k).await.expect("get").is_some(),
        p == Profile::Storing,
        "touch extended the ttl"
    );
    if p == Profile::Storing {
        assert!(b
            .touch(&k, Some(Duration::from_millis(100)))
            .await
            .expect("touch"));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            b.get(&k).await.expect("get").is_none(),
            "touch shortened the ttl"
        );
    }
}

#[doc(hidden)]
pub async fn clear_is_scoped_to_the_prefix(b: Arc<dyn Backend>, p: Profile) {
    let mine = unique_prefix("clear_mine");
    let other = unique_prefix("clear_other");
    for i in 0..30 {
        b.set(&format!("{mine}:{i}"), Value::Int(i), MINUTE)
            .await
            .expect("set");
    }
    b.set(&format!("{other}:keep"), bytes("v"), MINUTE)
        .await
        .expect("set");
    // A key that merely starts with the same characters, without the separator.
    b.set(&format!("{mine}x:keep"), bytes("v"), MINUTE)
        .await
        .expect("set");
    let cleared = b.clear(&format!("{mine}:")).await.expect("clear");
    match p {
        Profile::Storing => {
            assert_eq!(cleared, 30);
            assert!(b.get(&format!("{mine}:0")).await.expect("get").is_none());
            assert!(b
                .get(&format!("{other}:keep"))
                .await
                .expect("get")
                .is_some());
            assert!(b
                .get(&format!("{mine}x:keep"))
                .await
                .expect("get")
                .is_some());
        }
        Profile::Dummy => assert_eq!(cleared, 0),
    }
    // Glob characters in a prefix are literal.
    let glob = format!("{}*[a]?", unique_prefix("clear_glob"));
    b.set(&format!("{glob}:1"), bytes("v"), MINUTE)
        .await
        .expect("set");
    let sibling = format!("{}:1", glob.replace("*[a]?", "xab"));
    b.set(&sibling, bytes("v"), MINUTE).await.expect("set");
    b.clear(&format!("{glob}:")).await.expect("clear");
    assert_eq!(
        b.get(&sibling).await.expect("get").is_some(),
        p == Profile::Storing
    );
}

#[doc(hidden)]
pub async fn cache_round_trips_structs(b: Arc<dyn Backend>, p: Profile) {
    let cache = cache_over(&b, "structs");
    cache
        .set("product:42", &lamp(), Duration::from_secs(60))
        .await
        .expect("set");
    let got: Option<Product> = cache.get("product:42").await.expect("get");
    assert_eq!(got, (p == Profile::Storing).then(lamp));
    let none: Option<String> = None;
    cache
        .set("nothing", &none, Duration::from_secs(60))
        .await
        .expect("set none");
    let got: Option<Option<String>> = cache.get("nothing").await.expect("get none");
    assert_eq!(
        got,
        (p == Profile::Storing).then_some(None),
        "a stored None is a hit"
    );
    let text = "ünïcode ✓".to_string();
    cache
        .set("text", &text, Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(
        cache.get::<String>("text").await.expect("get"),
        (p == Profile::Storing).then_some(text)
    );
}

#[doc(hidden)]
pub async fn cache_uses_django_key_layout(b: Arc<dyn Backend>, p: Profile) {
    let cache = cache_over(&b, "layout");
    let stored = format!("{}:1:product:42", cache.key_prefix());
    assert_eq!(cache.make_key("product:42"), stored);
    cache
        .set("product:42", &7u32, Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(
        b.get(&stored).await.expect("raw get").is_some(),
        p == Profile::Storing
    );
    // Written raw under the stored key, read through the handle.
    b.set(
        &format!("{}:1:raw", cache.key_prefix()),
        Value::Int(9),
        MINUTE,
    )
    .await
    .expect("set");
    assert_eq!(
        cache.get::<u32>("raw").await.expect("get"),
        (p == Profile::Storing).then_some(9)
    );
}

#[doc(hidden)]
pub async fn cache_versions_are_separate(b: Arc<dyn Backend>, p: Profile) {
    let v1 = cache_over(&b, "versions");
    let v2 = v1.with_version(2);
    v1.set("k", &"one".to_string(), Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(v2.get::<String>("k").await.expect("get"), None);
    v2.set("k", &"two".to_string(), Duration::from_secs(60))
        .await
        .expect("set");
    if p == Profile::Dummy {
        assert_eq!(v1.incr_version("k", 1).await.expect("incr_version"), None);
        return;
    }
    assert_eq!(
        v1.get::<String>("k").await.expect("get").as_deref(),
        Some("one")
    );
    assert_eq!(
        v2.get::<String>("k").await.expect("get").as_deref(),
        Some("two")
    );
    let v3 = v1.with_version(3);
    v3.set("moving", &5u8, Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(
        v3.incr_version("moving", 1).await.expect("incr_version"),
        Some(4)
    );
    assert_eq!(v3.get::<u8>("moving").await.expect("get"), None);
    assert_eq!(
        v1.with_version(4).get::<u8>("moving").await.expect("get"),
        Some(5)
    );
    assert_eq!(
        v1.incr_version("absent", 1).await.expect("incr_version"),
        None
    );
}

#[doc(hidden)]
pub async fn cache_long_and_unsafe_keys(b: Arc<dyn Backend>, p: Profile) {
    let cache = cache_over(&b, "long_keys");
    let long_a = format!("report:{}", "a".repeat(400));
    let long_b = format!("report:{}b", "a".repeat(399));
    let spaced = "search:red lamp\n".to_string();
    cache
        .set(&long_a, &1u32, Duration::from_secs(60))
        .await
        .expect("set");
    cache
        .set(&long_b, &2u32, Duration::from_secs(60))
        .await
        .expect("set");
    cache
        .set(&spaced, &3u32, Duration::from_secs(60))
        .await
        .expect("set");
    for (key, value) in [(&long_a, 1u32), (&long_b, 2), (&spaced, 3)] {
        let stored = cache.make_key(key);
        assert!(stored.len() < 200, "{stored}");
        assert!(!stored.contains(char::is_whitespace), "{stored:?}");
        assert_eq!(
            cache.get::<u32>(key).await.expect("get"),
            (p == Profile::Storing).then_some(value)
        );
    }
    assert_eq!(
        cache.delete(&spaced).await.expect("delete"),
        p == Profile::Storing
    );
}

#[doc(hidden)]
pub async fn cache_single_flight(b: Arc<dyn Backend>, p: Profile) {
    let cache = cache_over(&b, "single_flight");
    let runs = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let cache = cache.clone();
            let runs = Arc::clone(&runs);
            tokio::spawn(async move {
                cache
                    .get_or_set_with("cold", Duration::from_secs(60), || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        lamp()
                    })
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task"), lamp());
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the body ran more than once"
    );
    if p == Profile::Storing {
        let stats = cache.stats();
        assert_eq!(stats.sets, 1);
        assert!(stats.coalesced_waits > 0, "{stats:?}");
    }
}

#[doc(hidden)]
pub async fn cache_failed_computations_are_not_stored(b: Arc<dyn Backend>, _: Profile) {
    let cache = cache_over(&b, "failed");
    let err: Result<u32, String> = cache
        .try_get_or_set_with("k", Duration::from_secs(60), || async {
            Err("db down".to_string())
        })
        .await;
    assert_eq!(err, Err("db down".to_string()));
    assert_eq!(cache.get::<u32>("k").await.expect("get"), None);
    assert_eq!(cache.stats().sets, 0);
    let ok: Result<u32, String> = cache
        .try_get_or_set_with("k", Duration::from_secs(60), || async { Ok(5) })
        .await;
    assert_eq!(ok, Ok(5));
}

#[doc(hidden)]
pub async fn cache_undecodable_values_are_counted_misses(b: Arc<dyn Backend>, p: Profile) {
    if p == Profile::Dummy {
        return;
    }
    let cache = cache_over(&b, "garbage");
    let stored = cache.make_key("product:1");
    // Another program's bytes, a value of another codec, and a value of another layout.
    let mut other_codec = cached_core::Codec::default()
        .encode("k", &lamp())
        .expect("encode");
    other_codec[3] = 200;
    let mut old_layout = cached_core::Codec::default()
        .encode("k", &lamp())
        .expect("encode");
    old_layout[2] = 0;
    let garbage = [
        Value::Bytes(bytes::Bytes::from_static(b"\x00\xffnot ours")),
        Value::Bytes(other_codec.into()),
        Value::Bytes(old_layout.into()),
        Value::Bytes(bytes::Bytes::from_static(b"hello")),
    ];
    for (i, g) in garbage.into_iter().enumerate() {
        b.set(&stored, g, MINUTE).await.expect("raw set");
        assert_eq!(cache.get::<Product>("product:1").await.expect("get"), None);
        assert_eq!(cache.stats().decode_errors, i as u64 + 1);
    }
    // A value of another type is a decode error too, not garbage.
    cache
        .set(
            "text",
            &"not a product".to_string(),
            Duration::from_secs(60),
        )
        .await
        .expect("set");
    assert_eq!(cache.get::<Product>("text").await.expect("get"), None);
    assert_eq!(cache.stats().decode_errors, 5);
    // The next computation overwrites it.
    let v = cache
        .get_or_set_with("product:1", Duration::from_secs(60), || async { lamp() })
        .await;
    assert_eq!(v, lamp());
    assert_eq!(
        cache.get::<Product>("product:1").await.expect("get"),
        Some(lamp())
    );
}

#[doc(hidden)]
pub async fn cache_counts_hits_misses_sets_deletes(b: Arc<dyn Backend>, p: Profile) {
    let cache = cache_over(&b, "stats");
    assert_eq!(cache.get::<u8>("a").await.expect("get"), None);
    cache
        .set("a", &1u8, Duration::from_secs(60))
        .await
        .expect("set");
    let _ = cache.get::<u8>("a").await.expect("get");
    let _ = cache.get::<u8>("a").await.expect("get");
    cache.delete("a").await.expect("delete");
    let s = cache.stats();
    assert_eq!(s.sets, 1);
    match p {
        Profile::Storing => {
            assert_eq!((s.hits, s.misses, s.deletes), (2, 1, 1));
            assert!((s.hit_ratio() - 2.0 / 3.0).abs() < 1e-9);
        }
        Profile::Dummy => assert_eq!((s.hits, s.misses, s.deletes), (0, 3, 0)),
    }
    assert_eq!(s.errors, 0);
    // Versioned views share the counters.
    let _ = cache.with_version(9).get::<u8>("a").await.expect("get");
    assert_eq!(cache.stats().misses, s.misses + 1);
}

#[doc(hidden)]
pub async fn cache_zero_ttl_deletes(b: Arc<dyn Backend>, _: Profile) {
    let cache = cache_over(&b, "zero_ttl");
    cache
        .set("k", &1u8, Duration::from_secs(60))
        .await
        .expect("set");
    cache
        .set("k", &2u8, Duration::ZERO)
        .await
        .expect("set zero");
    assert_eq!(cache.get::<u8>("k").await.expect("get"), None);
}

#[doc(hidden)]
pub async fn cache_integers_are_counters(b: Arc<dyn Backend>, p: Profile) {
    let cache = cache_over(&b, "counters");
    cache
        .set("n", &10u32, Duration::from_secs(60))
        .await
        .expect("set");
    let n = cache.incr("n", 5).await.expect("incr");
    assert_eq!(n, if p == Profile::Storing { 15 } else { 5 });
    let n = cache.decr("n", 1).await.expect("decr");
    assert_eq!(n, if p == Profile::Storing { 14 } else { -1 });
    if p == Profile::Storing {
        assert_eq!(cache.get::<u64>("n").await.expect("get"), Some(14));
        cache
            .set("s", &"text".to_string(), Duration::from_secs(60))
            .await
            .expect("set");
        assert!(matches!(
            cache.incr("s", 1).await,
            Err(CacheError::NotACounter(_))
        ));
        assert_eq!(
            cache.stats().errors,
            0,
            "NotACounter is a usage error, not a backend error"
        );
    }
}

#[doc(hidden)]
pub async fn cache_many_operations(b: Arc<dyn Backend>, p: Profile) {
    let cache = cache_over(&b, "many");
    let (one, two) = (lamp(), Product { id: 2, ..lamp() });
    cache
        .set_many([("p:1", &one), ("p:2", &two)], Duration::from_secs(60))
        .await
        .expect("set_many");
    let found = cache
        .get_many::<Product, _>(["p:1", "p:2", "p:3"])
        .await
        .expect("get_many");
    match p {
        Profile::Storing => {
            assert_eq!(found.len(), 2);
            assert_eq!(found["p:2"], two);
        }
        Profile::Dummy => assert!(found.is_empty()),
    }
    let deleted = cache
        .delete_many(["p:1", "p:3"])
        .await
        .expect("delete_many");
    assert_eq!(deleted, usize::from(p == Profile::Storing));
    assert_eq!(
        cache.has_key("p:2").await.expect("has_key"),
        p == Profile::Storing
    );
    assert!(!cache.has_key("p:1").await.expect("has_key"));
    assert_eq!(
        cache
            .add("p:2", &one, Duration::from_secs(60))
            .await
            .expect("add"),
        p == Profile::Dummy
    );
    assert_eq!(
        cache
            .touch("p:2", Duration::from_secs(5))
            .await
            .expect("touch"),
        p == Profile::Storing
    );
}

#[doc(hidden)]
pub async fn cache_clear_is_scoped(b: Arc<dyn Backend>, p: Profile) {
    let mine = cache_over(&b, "cache_clear_a");
    let other = cache_over(&b, "cache_clear_b");
    mine.set("k", &1u8, Duration::from_secs(60))
        .await
        .expect("set");
    mine.with_version(2)
        .set("k", &2u8, Duration::from_secs(60))
        .await
        .expect("set");
    other
        .set("k", &3u8, Duration::from_secs(60))
        .await
        .expect("set");
    let cleared = mine.clear().await.expect("clear");
    assert_eq!(cleared, if p == Profile::Storing { 2 } else { 0 });
    assert_eq!(mine.get::<u8>("k").await.expect("get"), None);
    assert_eq!(
        other.get::<u8>("k").await.expect("get"),
        (p == Profile::Storing).then_some(3)
    );
}

const HOUR: Duration = Duration::from_secs(3600);

#[doc(hidden)]
pub async fn cache_tags_invalidate_tagged_entries(b: Arc<dyn Backend>, p: Profile) {
    let cache = cache_over(&b, "tags");
    cache
        .set_tagged("page:1", &lamp(), HOUR, &["product:42", "products"])
        .await
        .expect("set_tagged");
    cache
        .set_tagged(
            "page:2",
            &"chair".to_string(),
            HOUR,
            &["product:7", "products"],
        )
        .await
        .expect("set_tagged");
    cache
        .set("untagged", &"desk".to_string(), HOUR)
        .await
        .expect("set");
    let page1 = || async { cache.get::<Product>("page:1").await.expect("get") };
    let page2 = || async { cache.get::<String>("page:2").await.expect("get") };
    if p == Profile::Dummy {
        assert_eq!(page1().await, None);
        cache
            .invalidate_tags(&["products"])
            .await
            .expect("invalidate");
        return;
    }
    assert_eq!(page1().await, Some(lamp()));
    assert_eq!(page2().await.as_deref(), Some("chair"));

    cache
        .invalidate_tags(&["product:42"])
        .await
        .expect("invalidate");
    assert_eq!(page1().await, None, "its tag moved");
    assert_eq!(page2().await.as_deref(), Some("chair"), "its tags did not");

    cache
        .invalidate_tags(&["products"])
        .await
        .expect("invalidate");
    assert_eq!(page2().await, None);
    assert_eq!(
        cache
            .get::<String>("untagged")
            .await
            .expect("get")
            .as_deref(),
        Some("desk"),
        "an untagged entry is untouched"
    );

    // Stored again after the invalidation: valid under the new version, and an
    // unrelated invalidation leaves it.
    cache
        .set_tagged("page:1", &lamp(), HOUR, &["product:42"])
        .await
        .expect("set_tagged");
    cache
        .invalidate_tags(&["product:999"])
        .await
        .expect("invalidate");
    assert_eq!(page1().await, Some(lamp()));
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.decode_errors), (2, 0), "{stats:?}");
}

#[doc(hidden)]
pub async fn cache_tags_moved_during_a_computation_make_it_a_miss(b: Arc<dyn Backend>, p: Profile) {
    let cache = cache_over(&b, "tags_race");
    let opts = ComputeOptions::new(Some(HOUR)).tags(["product:42"]);
    // The product changes while its name is being computed: the value may predate the
    // change, so the stored entry must not be served.
    let c = cache.clone();
    let old = cache
        .compute("name:42", &opts, || async move {
            c.invalidate_tags(&["product:42"])
                .await
                .expect("invalidate");
            Ok::<_, CacheError>("old name".to_string())
        })
        .await
        .expect("computed");
    assert_eq!(old, "old name");
    assert_eq!(cache.get::<String>("name:42").await.expect("get"), None);

    let new = cache
        .compute("name:42", &opts, || async {
            Ok::<_, CacheError>("new name".to_string())
        })
        .await
        .expect("computed");
    assert_eq!(new, "new name");
    assert_eq!(
        cache.get::<String>("name:42").await.expect("get"),
        (p == Profile::Storing).then(|| "new name".to_string())
    );
}

#[doc(hidden)]
pub async fn cache_tags_gone_or_recreated_never_revalidate_an_entry(
    b: Arc<dyn Backend>,
    p: Profile,
) {
    if p == Profile::Dummy {
        return;
    }
    let cache = cache_over(&b, "tags_aba");
    cache
        .set_tagged("a", &"A".to_string(), HOUR, &["t"])
        .await
        .expect("set_tagged");
    let tag_key = cache.tag_key("t");
    let recorded = as_bytes(b.get(&tag_key).await.expect("get"));
    assert!(
        recorded.is_some(),
        "the tag's version is stored under {tag_key}"
    );

    // The tag key is evicted. In process, entries recheck their tags after any
    // invalidation (the generation); remote ones on every read.
    assert!(b.delete(&tag_key).await.expect("delete"));
    cache
        .invalidate_tags(&["unrelated"])
        .await
        .expect("invalidate");
    assert_eq!(
        cache.get::<String>("a").await.expect("get"),
        None,
        "tag key gone"
    );

    // Recreated by the next tagged store, with a version no entry ever recorded.
    cache
        .set_tagged("b", &"B".to_string(), HOUR, &["t"])
        .await
        .expect("set_tagged");
    let recreated = as_bytes(b.get(&tag_key).await.expect("get"));
    assert!(recreated.is_some());
    assert_ne!(recreated, recorded, "versions are unique, not counters");
    assert_eq!(cache.get::<String>("a").await.expect("get"), None, "no ABA");
    assert_eq!(
        cache.get::<String>("b").await.expect("get").as_deref(),
        Some("B")
    );
}

#[doc(hidden)]
pub async fn cache_tags_span_versions_and_get_many(b: Arc<dyn Backend>, p: Profile) {
    let cache = cache_over(&b, "tags_many");
    let v2 = cache.with_version(2);
    for (c, n) in [(&cache, 1u64), (&v2, 2u64)] {
        c.set_tagged("count", &n, HOUR, &["product:1"])
            .await
            .expect("set_tagged");
    }
    cache
        .set_tagged("other", &9u64, HOUR, &["product:2"])
        .await
        .expect("set_tagged");
    cache.set("plain", &7u64, HOUR).await.expect("set");
    let many = || cache.get_many::<u64, _>(["count", "other", "plain", "absent"]);
    if p == Profile::Dummy {
        assert!(many().await.expect("get_many").is_empty());
        return;
    }
    let found = many().await.expect("get_many");
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!((found["count"], found["other"], found["plain"]), (1, 9, 7));
    assert_eq!(v2.get::<u64>("count").await.expect("get"), Some(2));

    // Tags are not versioned: one invalidation reaches every version.
    cache
        .invalidate_tags(&["product:1"])
        .await
        .expect("invalidate");
    assert_eq!(v2.get::<u64>("count").await.expect("get"), None);
    let found = many().await.expect("get_many");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(!found.contains_key("count"));
}

/// Polls until `cache.get(key)` is `want` (a refresh finishing in the background).
async fn eventually<T>(cache: &Cache, key: &str, want: T)
where
    T: cached_core::Cacheable + PartialEq + std::fmt::Debug,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = cache.get::<T>(key).await.expect("get");
        if got.as_ref() == Some(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {got:?}, waiting for {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[doc(hidden)]
pub async fn cache_stale_values_are_served_while_one_refresh_runs(b: Arc<dyn Backend>, p: Profile) {
    let cache = cache_over(&b, "stale");
    let opts = ComputeOptions::new(Some(Duration::from_millis(300))).stale(Duration::from_secs(60));
    let first = cache
        .compute_stale("report", &opts, || async { Ok::<_, CacheError>(1u32) })
        .await;
    assert_eq!(first.expect("computed"), 1);
    if p == Profile::Dummy {
        let again = cache
            .compute_stale("report", &opts, || async { Ok::<_, CacheError>(2u32) })
            .await;
        assert_eq!(again.expect("computed in line"), 2);
        return;
    }
    tokio::time::sleep(Duration::from_millis(450)).await;
    // Past its ttl: a plain read cannot refresh it, so it does not serve it.
    assert_eq!(cache.get::<u32>("report").await.expect("get"), None);

    // A stale read returns the stored value while its refresh is held.
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let started = Arc::new(tokio::sync::Notify::new());
    let s = Arc::clone(&started);
    let served = cache
        .compute_stale("report", &opts, move || async move {
            s.notify_one();
            let _ = held.await;
            Ok::<_, CacheError>(2u32)
        })
        .await;
    assert_eq!(served.expect("stale value"), 1);
    started.notified().await;
    assert_eq!(cache.stats().stale_hits, 1);

    // While it runs, other stale readers get the stale value and start nothing.
    let others = Arc::new(AtomicUsize::new(0));
    for _ in 0..5 {
        let o = Arc::clone(&others);
        let served = cache
            .compute_stale("report", &opts, move || async move {
                o.fetch_add(1, Ordering::SeqCst);
                Ok::<_, CacheError>(3u32)
            })
            .await;
        assert_eq!(served.expect("stale value"), 1);
    }
    assert_eq!(cache.stats().stale_hits, 6);
    let _ = release.send(());
    eventually(&cache, "report", 2u32).await;
    let fresh = cache
        .compute_stale("report", &opts, || async { Ok::<_, CacheError>(4u32) })
        .await;
    assert_eq!(fresh.expect("fresh"), 2);
    assert_eq!(others.load(Ordering::SeqCst), 0, "one refresh ran");
    assert_eq!(cache.stats().stale_hits, 6);
}

#[doc(hidden)]
pub async fn cache_failed_refresh_serves_stale_until_the_window_ends(
    b: Arc<dyn Backend>,
    p: Profile,
) {
    if p == Profile::Dummy {
        return;
    }
    let cache = cache_over(&b, "stale_failing");
    let (ttl, stale) = (Duration::from_millis(200), Duration::from_millis(1500));
    let opts = ComputeOptions::new(Some(ttl)).stale(stale);
    let stored_at = Instant::now();
    let first = cache
        .compute_stale("k", &opts, || async { Ok::<_, String>(1u32) })
        .await;
    assert_eq!(first, Ok(1));
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;

    let attempts = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let a = Arc::clone(&attempts);
        let before = a.load(Ordering::SeqCst);
        let served = cache
            .compute_stale("k", &opts, move || async move {
                a.fetch_add(1, Ordering::SeqCst);
                Err::<u32, String>("database down".into())
            })
            .await;
        assert_eq!(served, Ok(1), "the stale value, although refreshes fail");
        // Let the refresh run and fail before the next read.
        let deadline = Instant::now() + Duration::from_secs(5);
        while attempts.load(Ordering::SeqCst) == before {
            assert!(Instant::now() < deadline, "no refresh was attempted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        stored_at.elapsed() < ttl + stale,
        "the test ran too slowly to mean anything"
    );

    // Once the window is over, the value is gone: a miss, computed in line.
    tokio::time::sleep(
        (ttl + stale + Duration::from_millis(200)).saturating_sub(stored_at.elapsed()),
    )
    .await;
    let after = cache
        .compute_stale("k", &opts, || async { Ok::<_, String>(3u32) })
        .await;
    assert_eq!(after, Ok(3));
}

#[doc(hidden)]
pub async fn cache_tagged_stale_entries_read_entry_and_versions_together(
    b: Arc<dyn Backend>,
    p: Profile,
) {
    // `compute_stale` with tags reads the entry and its tags' versions in one
    // `get_many` on remote backends (keys in different slots on a cluster).
    let cache = cache_over(&b, "stale_tags");
    let opts = ComputeOptions::new(Some(HOUR))
        .stale(HOUR)
        .tags(["product:1", "category:lamps"]);
    let runs = Arc::new(AtomicUsize::new(0));
    let call = || {
        let runs = Arc::clone(&runs);
        cache.compute_stale("lamps", &opts, move || async move {
            Ok::<_, CacheError>(runs.fetch_add(1, Ordering::SeqCst) + 1)
        })
    };
    assert_eq!(call().await.expect("computed"), 1);
    let expected_hit = if p == Profile::Storing { 1 } else { 2 };
    assert_eq!(call().await.expect("read"), expected_hit);
    cache
        .invalidate_tags(&["category:lamps"])
        .await
        .expect("invalidate");
    let after = call().await.expect("read");
    assert_eq!(
        after,
        expected_hit + 1,
        "a moved tag is a miss, not a stale hit"
    );
    if p == Profile::Storing {
        assert_eq!(call().await.expect("read"), after);
        assert_eq!(cache.stats().stale_hits, 0);
    }
}

/// Lock tokens that are not the holder's: another holder's, a prefix of it, a longer
/// one, and the empty token.
const NOT_THE_HOLDERS: [&[u8]; 4] = [b"holder-b\x00\xff", b"holder-a", b"holder-a\x00\xff!", b""];
/// The holder's token, binary on purpose.
const HOLDERS: &[u8] = b"holder-a\x00\xff";

fn token(t: &'static [u8]) -> Value {
    Value::Bytes(bytes::Bytes::from_static(t))
}

#[doc(hidden)]
pub async fn delete_if_equals_deletes_only_the_holders_token(b: Arc<dyn Backend>, p: Profile) {
    let k = format!("{}:lock", unique_prefix("delete_if_equals"));
    assert!(b.add(&k, token(HOLDERS), MINUTE).await.expect("add"));
    for wrong in NOT_THE_HOLDERS {
        let deleted = b
            .delete_if_equals(&k, wrong)
            .await
            .expect("delete_if_equals");
        // A dummy cache reports success, as its `add` does.
        assert_eq!(deleted, p == Profile::Dummy, "token {wrong:?}");
    }
    if p == Profile::Storing {
        assert_eq!(
            as_bytes(b.get(&k).await.expect("get")).as_deref(),
            Some(HOLDERS),
            "another token deleted the lock"
        );
    }
    assert!(b
        .delete_if_equals(&k, HOLDERS)
        .await
        .expect("delete_if_equals"));
    assert!(b.get(&k).await.expect("get").is_none());
    let again = b.delete_if_equals(&k, HOLDERS).await.expect("again");
    assert_eq!(again, p == Profile::Dummy, "deleted an absent lock");
    // The lock is free for the next holder.
    assert!(b.add(&k, token(b"holder-b"), MINUTE).await.expect("add"));
}

#[doc(hidden)]
pub async fn expire_if_equals_extends_only_the_holders_token(b: Arc<dyn Backend>, p: Profile) {
    let pre = unique_prefix("expire_if_equals");
    let (held, other, short) = (
        format!("{pre}:held"),
        format!("{pre}:other"),
        format!("{pre}:short"),
    );
    let brief = Some(Duration::from_millis(300));
    for k in [&held, &other, &short] {
        assert!(b.add(k, token(HOLDERS), brief).await.expect("add"));
    }
    let long = Duration::from_secs(60);
    // The holder extends `held`; nobody else extends `other`.
    assert!(b
        .expire_if_equals(&held, HOLDERS, long)
        .await
        .expect("expire_if_equals"));
    for wrong in NOT_THE_HOLDERS {
        let extended = b
            .expire_if_equals(&other, wrong, long)
            .await
            .expect("expire_if_equals");
        assert_eq!(extended, p == Profile::Dummy, "token {wrong:?}");
    }
    // The holder may shorten too.
    assert!(b
        .expire_if_equals(&short, HOLDERS, Duration::from_millis(100))
        .await
        .expect("expire_if_equals"));
    tokio::time::sleep(Duration::from_millis(300) + 2 * MARGIN).await;
    let present = |k: String| {
        let b = Arc::clone(&b);
        async move { b.get(&k).await.expect("get").is_some() }
    };
    assert_eq!(
        present(held.clone()).await,
        p == Profile::Storing,
        "the holder's extension did not hold"
    );
    assert!(!present(other).await, "another token extended the lock");
    assert!(
        !present(short).await,
        "the holder's shorter ttl did not apply"
    );
    if p == Profile::Storing {
        assert_eq!(
            as_bytes(b.get(&held).await.expect("get")).as_deref(),
            Some(HOLDERS),
            "extending changed the value"
        );
    }
}

#[doc(hidden)]
pub async fn an_expired_lock_is_gone_for_its_old_holder(b: Arc<dyn Backend>, p: Profile) {
    let k = format!("{}:lock", unique_prefix("expired_lock"));
    assert!(b
        .add(&k, token(HOLDERS), Some(Duration::from_millis(150)))
        .await
        .expect("add"));
    tokio::time::sleep(Duration::from_millis(150) + 2 * MARGIN).await;
    // The old holder can neither bring it back nor release it.
    let extended = b
        .expire_if_equals(&k, HOLDERS, MINUTE.expect("a ttl"))
        .await
        .expect("expire_if_equals");
    assert_eq!(
        extended,
        p == Profile::Dummy,
        "an expired lock was extended"
    );
    assert!(
        b.get(&k).await.expect("get").is_none(),
        "an expired lock came back"
    );
    let released = b
        .delete_if_equals(&k, HOLDERS)
        .await
        .expect("delete_if_equals");
    assert_eq!(released, p == Profile::Dummy);
    // Another holder takes it; the old holder's release and extension leave it alone.
    let next: &[u8] = b"holder-b";
    assert!(b.add(&k, token(b"holder-b"), MINUTE).await.expect("add"));
    let released = b
        .delete_if_equals(&k, HOLDERS)
        .await
        .expect("delete_if_equals");
    assert_eq!(
        released,
        p == Profile::Dummy,
        "the old holder released the new lock"
    );
    let extended = b
        .expire_if_equals(&k, HOLDERS, Duration::from_millis(1))
        .await
        .expect("expire_if_equals");
    assert_eq!(
        extended,
        p == Profile::Dummy,
        "the old holder shortened the new lock"
    );
    if p == Profile::Storing {
        tokio::time::sleep(MARGIN).await;
        assert_eq!(
            as_bytes(b.get(&k).await.expect("get")).as_deref(),
            Some(next),
            "the new holder lost its lock"
        );
    }
    assert!(b
        .delete_if_equals(&k, next)
        .await
        .expect("delete_if_equals"));
}
