//! `#[cache_fn]`: every argument of SPEC §3 on async and sync functions, free functions
//! and methods, through the public facade. Each test uses its own keys: they share the
//! process-wide `"default"` cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cached_kit::backend::{Backend, Ttl, Value};
use cached_kit::{cache, cache_evict, cache_fn, caches, Cache, CacheError, MemoryBackend};
use serde::{Deserialize, Serialize};

fn count(counter: &AtomicUsize) -> usize {
    counter.fetch_add(1, Ordering::SeqCst) + 1
}

// ---------------------------------------------------------------- templates, Option

static PRODUCT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    id: i64,
    name: String,
}

/// A doc comment survives the macro.
#[cache_fn(ttl = 300, key = "product:{id}")]
pub async fn product(id: i64) -> Option<Product> {
    count(&PRODUCT_RUNS);
    (id > 0).then(|| Product {
        id,
        name: format!("lamp {id}"),
    })
}

#[tokio::test]
async fn a_template_key_is_stored_as_written_and_readable_through_the_handle() {
    let first = product(42).await;
    let second = product(42).await;
    assert_eq!(first, second);
    assert_eq!(
        PRODUCT_RUNS.load(Ordering::SeqCst),
        1,
        "the second call is a hit"
    );

    let stored: Option<Option<Product>> = cache().get("product:42").await.unwrap();
    assert_eq!(stored, Some(first.clone()), "stored under the rendered key");
    assert!(cache().make_key("product:42") == ":1:product:42");

    // Deleting through the handle removes what the macro stored.
    assert!(cache().delete("product:42").await.unwrap());
    assert_eq!(product(42).await, first);
    assert_eq!(
        PRODUCT_RUNS.load(Ordering::SeqCst),
        2,
        "recomputed after delete"
    );

    // `None` is cached by default (protects the database from missing rows).
    assert_eq!(product(-1).await, None);
    assert_eq!(product(-1).await, None);
    assert_eq!(PRODUCT_RUNS.load(Ordering::SeqCst), 3);
    let none: Option<Option<Product>> = cache().get("product:-1").await.unwrap();
    assert_eq!(none, Some(None));
}

#[test]
fn the_futures_are_send_so_they_fit_axum_handlers_and_spawn() {
    fn assert_send<F: std::future::Future + Send>(_: F) {}
    assert_send(product(1));
    assert_send(product_invalidate(1));
    assert_send(product_refresh(1));
    let repo = Repo {
        tenant: "t".into(),
        runs: AtomicUsize::new(0),
    };
    assert_send(repo.user(1));
    let user = User {
        id: 1,
        name: "a".into(),
    };
    assert_send(repo.page(&user, 1));
}

#[tokio::test]
async fn companions_invalidate_and_refresh_one_call() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cache_fn(key = "companion:{id}")]
    async fn label(id: u32) -> String {
        format!("{id}#{}", count(&RUNS))
    }
    assert_eq!(label(1).await, "1#1");
    assert_eq!(label(2).await, "2#2");
    assert_eq!(label(1).await, "1#1");
    assert!(label_invalidate(1).await.unwrap(), "the entry existed");
    assert!(!label_invalidate(1).await.unwrap(), "and is gone");
    assert_eq!(label(1).await, "1#3");
    assert_eq!(label(2).await, "2#2", "other arguments keep their entry");
    // refresh runs the body even though the value is cached, and stores the result.
    assert_eq!(label_refresh(2).await, "2#4");
    assert_eq!(label(2).await, "2#4");
    assert_eq!(RUNS.load(Ordering::SeqCst), 4);
}

// ---------------------------------------------------------------- Result / Option rules

#[tokio::test]
async fn only_ok_is_stored() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cache_fn(key = "flaky:{id}")]
    async fn flaky(id: u32) -> Result<u32, String> {
        match count(&RUNS) {
            1 => Err("database down".into()),
            n => Ok(id * 100 + n as u32),
        }
    }
    assert_eq!(flaky(7).await, Err("database down".to_string()));
    assert_eq!(cache().get::<u32>("flaky:7").await.unwrap(), None);
    assert_eq!(flaky(7).await, Ok(702));
    assert_eq!(flaky(7).await, Ok(702));
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        2,
        "the Err was not cached, the Ok was"
    );
    assert_eq!(cache().get::<u32>("flaky:7").await.unwrap(), Some(702));
}

#[tokio::test]
async fn early_return_and_question_mark_behave_as_written() {
    #[cache_fn(key = "parse:{s}")]
    async fn parse(s: &str) -> Result<u32, std::num::ParseIntError> {
        if s == "zero" {
            return Ok(0);
        }
        let n: u32 = s.parse()?;
        Ok(n + 1)
    }
    assert_eq!(parse("zero").await, Ok(0));
    assert_eq!(parse("41").await, Ok(42));
    assert!(parse("x").await.is_err());

    #[cache_fn(key = "sync-parse:{s}")]
    fn parse_sync(s: &str) -> Result<u32, std::num::ParseIntError> {
        if s == "zero" {
            return Ok(0);
        }
        Ok(s.parse::<u32>()? + 1)
    }
    assert_eq!(parse_sync("zero"), Ok(0));
    assert_eq!(parse_sync("41"), Ok(42));
    assert!(parse_sync("x").is_err());
}

#[tokio::test]
async fn cache_none_false_stores_only_some() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cache_fn(key = "maybe:{id}", cache_none = false)]
    async fn maybe(id: u32) -> Option<u32> {
        count(&RUNS);
        id.is_multiple_of(2).then_some(id)
    }
    assert_eq!(maybe(1).await, None);
    assert_eq!(maybe(1).await, None);
    assert_eq!(RUNS.load(Ordering::SeqCst), 2, "None is not cached");
    assert_eq!(maybe(2).await, Some(2));
    assert_eq!(maybe(2).await, Some(2));
    assert_eq!(RUNS.load(Ordering::SeqCst), 3, "Some is cached");
}

#[tokio::test]
async fn result_of_option_keeps_both_rules() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cache_fn(key = "row:{id}", cache_none = false)]
    async fn row(id: i64) -> Result<Option<String>, String> {
        count(&RUNS);
        match id {
            0 => Err("bad id".into()),
            1 => Ok(None),
            _ => Ok(Some(format!("row {id}"))),
        }
    }
    for _ in 0..2 {
        assert!(row(0).await.is_err());
        assert_eq!(row(1).await, Ok(None));
        assert_eq!(row(2).await, Ok(Some("row 2".into())));
    }
    // Err twice, Ok(None) twice, Ok(Some) once.
    assert_eq!(RUNS.load(Ordering::SeqCst), 5);
    assert_eq!(
        cache().get::<Option<String>>("row:2").await.unwrap(),
        Some(Some("row 2".into()))
    );

    static DEFAULT_RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cache_fn(key = "row-default:{id}")]
    async fn row_default(id: i64) -> Result<Option<String>, String> {
        count(&DEFAULT_RUNS);
        Ok((id > 1).then(|| id.to_string()))
    }
    assert_eq!(row_default(1).await, Ok(None));
    assert_eq!(row_default(1).await, Ok(None));
    assert_eq!(
        DEFAULT_RUNS.load(Ordering::SeqCst),
        1,
        "Ok(None) is cached by default"
    );
}

#[tokio::test]
async fn unless_skips_storing_but_returns_the_value() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cache_fn(key = "search:{q}", unless = |v: &Vec<String>| v.is_empty())]
    async fn search(q: &str) -> Vec<String> {
        count(&RUNS);
        if q == "nothing" {
            vec![]
        } else {
            vec![q.to_uppercase()]
        }
    }
    assert!(search("nothing").await.is_empty());
    assert!(search("nothing").await.is_empty());
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        2,
        "empty results are not stored"
    );
    assert_eq!(search("lamp").await, vec!["LAMP".to_string()]);
    assert_eq!(search("lamp").await, vec!["LAMP".to_string()]);
    assert_eq!(RUNS.load(Ordering::SeqCst), 3);

    // On a Result, `unless` sees the Ok value, and its parameter type may be inferred.
    static RESULT_RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cache_fn(key = "score:{x}", unless = |v| *v < 0)]
    async fn score(x: i32) -> Result<i32, String> {
        count(&RESULT_RUNS);
        Ok(x)
    }
    assert_eq!(score(-1).await, Ok(-1));
    assert_eq!(score(-1).await, Ok(-1));
    assert_eq!(score(5).await, Ok(5));
    assert_eq!(score(5).await, Ok(5));
    assert_eq!(RESULT_RUNS.load(Ordering::SeqCst), 3);
}

// ---------------------------------------------------------------- ttl, version, cache

#[tokio::test]
async fn ttl_as_seconds_and_as_a_duration_expression() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    const SHORT: Duration = Duration::from_millis(150);
    #[cache_fn(key = "short:{x}", ttl = SHORT)]
    async fn short(x: u8) -> usize {
        let _ = x;
        count(&RUNS)
    }
    assert_eq!(short(1).await, 1);
    assert_eq!(short(1).await, 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(short(1).await, 2, "the entry expired after its ttl");

    static SECS_RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cache_fn(key = "secs:{x}", ttl = 1)]
    async fn secs(x: u8) -> usize {
        let _ = x;
        count(&SECS_RUNS)
    }
    assert_eq!(secs(1).await, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(secs(1).await, 1, "still fresh well inside 1 s");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(secs(1).await, 2, "expired after 1 s");
}

#[tokio::test]
async fn version_selects_the_key_version() {
    #[cache_fn(key = "versioned:{x}", version = 3)]
    async fn versioned(x: u8) -> u8 {
        x + 1
    }
    assert_eq!(versioned(1).await, 2);
    assert_eq!(cache().get::<u8>("versioned:1").await.unwrap(), None);
    assert_eq!(
        cache()
            .with_version(3)
            .get::<u8>("versioned:1")
            .await
            .unwrap(),
        Some(2)
    );
    assert!(versioned_invalidate(1).await.unwrap());
    assert_eq!(
        cache()
            .with_version(3)
            .get::<u8>("versioned:1")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn cache_selects_a_named_cache() {
    caches().insert(
        Cache::builder(MemoryBackend::default())
            .alias("fn-reports")
            .key_prefix("rep")
            .build(),
    );
    #[cache_fn(key = "report:{month}", cache = "fn-reports")]
    async fn report(month: u8) -> String {
        format!("report {month}")
    }
    assert_eq!(report(3).await, "report 3");
    let reports = caches().get("fn-reports").unwrap();
    assert_eq!(
        reports.get::<String>("report:3").await.unwrap().as_deref(),
        Some("report 3")
    );
    assert_eq!(cache().get::<String>("report:3").await.unwrap(), None);
}

// ---------------------------------------------------------------- default keys

#[derive(Debug, Clone, Serialize)]
struct Filter {
    category: String,
    page: u32,
}

struct Db;

#[tokio::test]
async fn default_keys_hold_the_path_and_the_arguments() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cache_fn(skip(db))]
    async fn listing(db: &Db, filter: &Filter, tags: Vec<&str>) -> usize {
        let _ = db;
        let _ = (filter, tags);
        count(&RUNS)
    }
    let f = Filter {
        category: "lamps".into(),
        page: 2,
    };
    assert_eq!(listing(&Db, &f, vec!["a", "b"]).await, 1);
    assert_eq!(listing(&Db, &f, vec!["a", "b"]).await, 1);
    assert_eq!(listing(&Db, &f, vec!["a"]).await, 2);
    let key = r#"cache_fn::listing(("lamps",2),["a","b"])"#;
    assert_eq!(cache().get::<usize>(key).await.unwrap(), Some(1));
}

#[tokio::test]
async fn type_parameters_and_impl_trait_arguments_are_part_of_the_default_key() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cache_fn]
    async fn describe<T: Serialize + std::fmt::Debug + Send + Sync>(x: T) -> String {
        count(&RUNS);
        format!("{x:?}")
    }
    assert_eq!(describe(1u8).await, "1");
    assert_eq!(describe(1u16).await, "1");
    assert_eq!(describe(1u8).await, "1");
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        2,
        "u8 and u16 have their own entries"
    );
    assert_eq!(
        cache()
            .get::<String>("cache_fn::describe<u8>(1)")
            .await
            .unwrap()
            .as_deref(),
        Some("1")
    );

    #[cache_fn]
    fn shout(word: impl AsRef<str> + Serialize) -> String {
        word.as_ref().to_uppercase()
    }
    assert_eq!(shout("hi"), "HI");
    assert_eq!(shout(String::from("hi")), "HI");
    assert!(cache()
        .get::<String>("cache_fn::shout<&str>(\"hi\")")
        .await
        .unwrap()
        .is_some());
    assert!(cache()
        .get::<String>("cache_fn::shout<alloc::string::String>(\"hi\")")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_generic_return_type_is_cached() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cache_fn(key = "generic-default:{name}")]
    async fn default_of<T: cached_kit::Cacheable + Default>(name: &str) -> T {
        let _ = name;
        count(&RUNS);
        T::default()
    }
    assert_eq!(default_of::<u32>("a").await, 0);
    assert_eq!(default_of::<u32>("a").await, 0);
    assert_eq!(RUNS.load(Ordering::SeqCst), 1, "the second call is a hit");
    assert_eq!(
        cache().get::<u32>("generic-default:a").await.unwrap(),
        Some(0)
    );
}

#[tokio::test]
async fn a_hash_map_argument_keys_the_same_whatever_its_order() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cache_fn]
    async fn total(prices: HashMap<String, u32>) -> u32 {
        count(&RUNS);
        prices.values().sum()
    }
    let a: HashMap<String, u32> = (0..20).map(|i| (format!("k{i}"), i)).collect();
    let b: HashMap<String, u32> = (0..20).rev().map(|i| (format!("k{i}"), i)).collect();
    assert_eq!(total(a).await, total(b).await);
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn keys_with_spaces_are_digested_on_both_paths() {
    #[cache_fn(key = "q:{q}")]
    async fn query(q: &str) -> usize {
        q.len()
    }
    assert_eq!(query("red lamp").await, 8);
    assert!(!cache().make_key("q:red lamp").contains(' '));
    assert_eq!(cache().get::<usize>("q:red lamp").await.unwrap(), Some(8));
    assert!(cache().delete("q:red lamp").await.unwrap());
}

// ---------------------------------------------------------------- methods

struct Repo {
    tenant: String,
    runs: AtomicUsize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

impl Repo {
    #[cache_fn(key = "tenant:{self.tenant}:user:{id}")]
    async fn user(&self, id: u64) -> Option<User> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Some(User {
            id,
            name: format!("{}-{id}", self.tenant),
        })
    }

    #[cache_fn]
    fn double(&self, n: u32) -> u32 {
        self.runs.fetch_add(1, Ordering::SeqCst);
        n * 2
    }

    #[cache_fn(key = "page:{user.id}:{page}")]
    async fn page(&self, user: &User, page: u32) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        format!("{}:{page}", user.name)
    }
}

#[tokio::test]
async fn methods_key_self_fields_and_leave_self_out_of_the_default_key() {
    let repo = Repo {
        tenant: "acme".into(),
        runs: AtomicUsize::new(0),
    };
    assert_eq!(repo.user(7).await.map(|u| u.name), Some("acme-7".into()));
    assert_eq!(repo.user(7).await.map(|u| u.name), Some("acme-7".into()));
    assert_eq!(repo.runs.load(Ordering::SeqCst), 1);
    assert!(cache()
        .get::<Option<User>>("tenant:acme:user:7")
        .await
        .unwrap()
        .is_some());

    // `&self` is not in the default key: another instance shares the entry.
    let other = Repo {
        tenant: "other".into(),
        runs: AtomicUsize::new(0),
    };
    assert_eq!(repo.double(21), 42);
    assert_eq!(other.double(21), 42);
    assert_eq!(other.runs.load(Ordering::SeqCst), 0);
    assert_eq!(
        cache()
            .get::<u32>("cache_fn::Repo::double(21)")
            .await
            .unwrap(),
        Some(42)
    );
    assert!(repo.double_invalidate(21).unwrap());

    let user = User {
        id: 9,
        name: "ann".into(),
    };
    assert_eq!(repo.page(&user, 2).await, "ann:2");
    assert_eq!(
        cache().get::<String>("page:9:2").await.unwrap().as_deref(),
        Some("ann:2")
    );
    assert_eq!(repo.page_refresh(&user, 2).await, "ann:2");
}

// ---------------------------------------------------------------- sync functions

static SQUARES: AtomicUsize = AtomicUsize::new(0);

#[cache_fn(key = "square:{x}")]
fn square(x: u64) -> u64 {
    count(&SQUARES);
    x * x
}

#[test]
fn a_sync_fn_works_outside_any_runtime() {
    assert_eq!(square(3), 9);
    assert_eq!(square(3), 9);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let stored = runtime.block_on(cache().get::<u64>("square:3")).unwrap();
    assert_eq!(stored, Some(9));
}

#[tokio::test(flavor = "current_thread")]
async fn a_sync_fn_works_inside_a_current_thread_runtime() {
    assert_eq!(square(4), 16);
    assert_eq!(square(4), 16);
    assert_eq!(cache().get::<u64>("square:4").await.unwrap(), Some(16));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_fn_works_inside_a_multi_thread_runtime() {
    assert_eq!(square(5), 25);
    assert_eq!(square(5), 25);
    assert_eq!(cache().get::<u64>("square:5").await.unwrap(), Some(25));
    // And from a blocking thread of that runtime.
    let v = tokio::task::spawn_blocking(|| square(5)).await.unwrap();
    assert_eq!(v, 25);
    assert!(square_invalidate(5).unwrap());
}

#[test]
fn the_sync_body_runs_on_the_calling_thread() {
    #[cache_fn(key = "thread:{tag}")]
    fn thread_name(tag: u8) -> String {
        let _ = tag;
        std::thread::current().name().unwrap_or("").to_owned()
    }
    let name = std::thread::Builder::new()
        .name("caller-thread".into())
        .spawn(|| thread_name(1))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(name, "caller-thread");
}

// ---------------------------------------------------------------- stampede, lock

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_callers_of_a_cold_key_run_the_body_once() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cache_fn(key = "stampede:{x}")]
    async fn slow(x: u32) -> u32 {
        count(&RUNS);
        tokio::time::sleep(Duration::from_millis(100)).await;
        x + 1
    }
    let callers: Vec<_> = (0..1_000).map(|_| tokio::spawn(slow(1))).collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), 2);
    }
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    assert!(cache().stats().coalesced_waits >= 1);
}

/// Two caches over one shared backend stand for two processes sharing Redis: each has
/// its own in-process single-flight, so only the backend lock can coalesce them.
fn two_processes(prefix: &str) -> (String, String) {
    let shared: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
    let a = format!("{prefix}-a");
    let b = format!("{prefix}-b");
    caches().insert(Cache::builder_arc(shared.clone()).alias(a.clone()).build());
    caches().insert(Cache::builder_arc(shared).alias(b.clone()).build());
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_true_coalesces_across_caches_sharing_a_backend() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let (a, b) = two_processes("locked");
    assert_eq!((a.as_str(), b.as_str()), ("locked-a", "locked-b"));
    #[cache_fn(key = "locked:{x}", cache = "locked-a", lock = true)]
    async fn in_a(x: u32) -> u32 {
        count(&RUNS);
        tokio::time::sleep(Duration::from_millis(300)).await;
        x * 10
    }
    #[cache_fn(key = "locked:{x}", cache = "locked-b", lock = true)]
    async fn in_b(x: u32) -> u32 {
        count(&RUNS);
        tokio::time::sleep(Duration::from_millis(300)).await;
        x * 10
    }
    let (x, y) = tokio::join!(tokio::spawn(in_a(4)), tokio::spawn(in_b(4)));
    assert_eq!((x.unwrap(), y.unwrap()), (40, 40));
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        1,
        "one body ran for both processes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_lock_each_process_runs_its_own_body() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    two_processes("unlocked");
    #[cache_fn(key = "unlocked:{x}", cache = "unlocked-a")]
    async fn in_a(x: u32) -> u32 {
        count(&RUNS);
        tokio::time::sleep(Duration::from_millis(300)).await;
        x
    }
    #[cache_fn(key = "unlocked:{x}", cache = "unlocked-b")]
    async fn in_b(x: u32) -> u32 {
        count(&RUNS);
        tokio::time::sleep(Duration::from_millis(300)).await;
        x
    }
    let (x, y) = tokio::join!(tokio::spawn(in_a(4)), tokio::spawn(in_b(4)));
    assert_eq!((x.unwrap(), y.unwrap()), (4, 4));
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        2,
        "the control for the lock test"
    );
}

#[test]
fn lock_true_works_for_sync_fns_called_outside_any_runtime() {
    // The lock's waiters poll with tokio timers: outside a runtime, the blocking path
    // drives them on its own small runtime.
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    two_processes("sync-locked");
    #[cache_fn(key = "sync-locked:{x}", cache = "sync-locked-a", lock = true)]
    fn in_a(x: u32) -> u32 {
        count(&RUNS);
        std::thread::sleep(Duration::from_millis(300));
        x + 1
    }
    #[cache_fn(key = "sync-locked:{x}", cache = "sync-locked-b", lock = true)]
    fn in_b(x: u32) -> u32 {
        count(&RUNS);
        std::thread::sleep(Duration::from_millis(300));
        x + 1
    }
    let a = std::thread::spawn(|| in_a(1));
    let b = std::thread::spawn(|| in_b(1));
    assert_eq!((a.join().unwrap(), b.join().unwrap()), (2, 2));
    assert_eq!(RUNS.load(Ordering::SeqCst), 1, "one body ran for both");
}

// ---------------------------------------------------------------- failing caches

/// A backend whose every operation fails, like an unreachable Redis.
struct Failing;

#[async_trait]
impl Backend for Failing {
    fn name(&self) -> &'static str {
        "failing"
    }
    async fn get(&self, _: &str) -> Result<Option<Value>, CacheError> {
        Err(CacheError::backend_message("failing", "connection refused"))
    }
    async fn set(&self, _: &str, _: Value, _: Ttl) -> Result<(), CacheError> {
        Err(CacheError::backend_message("failing", "connection refused"))
    }
    async fn add(&self, _: &str, _: Value, _: Ttl) -> Result<bool, CacheError> {
        Err(CacheError::backend_message("failing", "connection refused"))
    }
    async fn delete(&self, _: &str) -> Result<bool, CacheError> {
        Err(CacheError::backend_message("failing", "connection refused"))
    }
    async fn incr(&self, _: &str, _: i64, _: Ttl) -> Result<i64, CacheError> {
        Err(CacheError::backend_message("failing", "connection refused"))
    }
    async fn touch(&self, _: &str, _: Ttl) -> Result<bool, CacheError> {
        Err(CacheError::backend_message("failing", "connection refused"))
    }
    async fn clear(&self, _: &str) -> Result<usize, CacheError> {
        Err(CacheError::backend_message("failing", "connection refused"))
    }
    async fn delete_if_equals(&self, _: &str, _: &[u8]) -> Result<bool, CacheError> {
        Err(CacheError::backend_message("failing", "connection refused"))
    }
    async fn expire_if_equals(
        &self,
        _: &str,
        _: &[u8],
        _: std::time::Duration,
    ) -> Result<bool, CacheError> {
        Err(CacheError::backend_message("failing", "connection refused"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backend_never_breaks_the_function() {
    caches().insert(Cache::builder(Failing).alias("fn-failing").build());
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cache_fn(key = "down:{x}", cache = "fn-failing", lock = true)]
    async fn down(x: u32) -> Result<u32, String> {
        count(&RUNS);
        Ok(x + 1)
    }
    #[cache_fn(cache = "fn-failing")]
    fn down_sync(x: u32) -> u32 {
        count(&RUNS);
        x + 2
    }
    assert_eq!(down(1).await, Ok(2));
    assert_eq!(down(1).await, Ok(2));
    assert_eq!(down_sync(1), 3);
    assert_eq!(RUNS.load(Ordering::SeqCst), 3, "every call ran the body");
    let stats = caches().get("fn-failing").unwrap().stats();
    // Each call: the read fails, the store fails (and the lock's `add` fails).
    assert!(stats.errors >= 6, "{stats:?}");
    assert!(
        down_invalidate(1).await.is_err(),
        "invalidate reports the failure"
    );
    assert_eq!(down_refresh(1).await, Ok(2));
}

#[tokio::test]
async fn an_unknown_cache_alias_runs_uncached() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cache_fn(cache = "no-such-cache-anywhere")]
    async fn orphan(x: u32) -> u32 {
        count(&RUNS);
        x
    }
    assert_eq!(orphan(1).await, 1);
    assert_eq!(orphan(1).await, 1);
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
    assert!(matches!(
        orphan_invalidate(1).await,
        Err(CacheError::UnknownCache(_))
    ));
}

#[tokio::test]
async fn a_key_argument_whose_serialize_fails_runs_uncached() {
    struct Refuses;
    impl Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("not today"))
        }
    }
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cache_fn]
    async fn picky(r: Refuses) -> usize {
        let _ = r;
        count(&RUNS)
    }
    assert_eq!(picky(Refuses).await, 1);
    assert_eq!(picky(Refuses).await, 2);
}

// ---------------------------------------------------------------- one body

#[tokio::test]
async fn the_body_exists_once_so_its_statics_are_shared_with_refresh() {
    // The memoized function and `name_refresh` run the same body: a `static` declared
    // inside it is one static, not one per generated function.
    #[cache_fn(key = "one-body:{x}")]
    async fn calls(x: u32) -> usize {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let _ = x;
        CALLS.fetch_add(1, Ordering::SeqCst) + 1
    }
    assert_eq!(calls(1).await, 1);
    assert_eq!(
        calls_refresh(1).await,
        2,
        "refresh counts on the same static"
    );
    assert_eq!(calls(1).await, 2, "and stored what it returned");
    assert_eq!(calls(2).await, 3);

    #[cache_fn(key = "one-body-sync:{x}")]
    fn calls_sync(x: u32) -> usize {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let _ = x;
        CALLS.fetch_add(1, Ordering::SeqCst) + 1
    }
    assert_eq!(calls_sync(1), 1);
    assert_eq!(calls_sync_refresh(1), 2);
    assert_eq!(calls_sync(1), 2);
}

#[tokio::test]
async fn inner_attributes_stay_with_the_body() {
    #[cache_fn(key = "inner-attr:{x}")]
    async fn inner(x: u32) -> u32 {
        #![allow(clippy::let_and_return)]
        let y = x + 1;
        y
    }
    assert_eq!(inner(1).await, 2);
    assert_eq!(inner_refresh(1).await, 2);

    #[cache_evict(key = "inner-attr:{x}")]
    fn forget(x: u32) {
        #![allow(unused_variables)]
        let unused = x;
    }
    forget(1);
    assert_eq!(cache().get::<u32>("inner-attr:1").await.unwrap(), None);
}

#[tokio::test]
async fn mut_arguments_self_fields_and_generics_reach_the_one_body() {
    struct Shop {
        name: String,
    }
    impl Shop {
        #[cache_fn(key = "shop:{self.name}:{n}")]
        async fn label<T: std::fmt::Display + Send + Sync>(&self, mut n: u32, extra: T) -> String {
            n += 1;
            format!("{}-{n}-{extra}", self.name)
        }

        #[cache_fn(key = "shop-assoc:{n}")]
        fn build(n: u32) -> Vec<u32> {
            let v: Vec<Self> = Vec::new();
            vec![n, v.len() as u32]
        }
    }
    let shop = Shop { name: "s".into() };
    assert_eq!(shop.label(1, 'x').await, "s-2-x");
    assert_eq!(shop.label_refresh(1, 'y').await, "s-2-y");
    assert_eq!(shop.label(1, 'z').await, "s-2-y", "stored by refresh");
    assert_eq!(Shop::build(4), vec![4, 0]);
    assert_eq!(Shop::build_refresh(4), vec![4, 0]);
}

#[tokio::test]
async fn a_free_fn_whose_body_has_its_own_impl_is_still_a_free_fn() {
    // `Self` inside an item nested in the body is that item's, not the function's.
    #[cache_fn(key = "nested-impl:{x}")]
    fn nested(x: u32) -> u32 {
        struct Twice(u32);
        impl Twice {
            fn new(x: u32) -> Self {
                Twice(x * 2)
            }
        }
        Twice::new(x).0
    }
    assert_eq!(nested(2), 4);
    assert_eq!(nested_refresh(2), 4);
    assert_eq!(cache().get::<u32>("nested-impl:2").await.unwrap(), Some(4));
}
