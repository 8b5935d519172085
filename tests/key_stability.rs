//! Default keys are identical across processes (SPEC §2): this test runs its own binary
//! twice as child processes, each computing the key of the same call, and compares the
//! keys with each other and with the one computed here. A `HashMap` argument is part of
//! the call: each process seeds its hasher differently, so its iteration order differs
//! between processes, and the key must not.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cached_kit::backend::{Backend, Ttl, Value};
use cached_kit::{cache_fn, caches, Cache, CacheError};
use serde::Serialize;

const CHILD_ENV: &str = "CACHED_KIT_KEY_STABILITY_CHILD";

/// Records the keys it is asked to store, and stores nothing.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl Backend for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    async fn get(&self, _: &str) -> Result<Option<Value>, CacheError> {
        Ok(None)
    }
    async fn set(&self, key: &str, _: Value, _: Ttl) -> Result<(), CacheError> {
        self.0.lock().expect("recorder lock").push(key.to_owned());
        Ok(())
    }
    async fn add(&self, _: &str, _: Value, _: Ttl) -> Result<bool, CacheError> {
        Ok(true)
    }
    async fn delete(&self, _: &str) -> Result<bool, CacheError> {
        Ok(false)
    }
    async fn incr(&self, _: &str, delta: i64, _: Ttl) -> Result<i64, CacheError> {
        Ok(delta)
    }
    async fn touch(&self, _: &str, _: Ttl) -> Result<bool, CacheError> {
        Ok(false)
    }
    async fn clear(&self, _: &str) -> Result<usize, CacheError> {
        Ok(0)
    }
    async fn delete_if_equals(&self, _: &str, _: &[u8]) -> Result<bool, CacheError> {
        Ok(false)
    }
    async fn expire_if_equals(
        &self,
        _: &str,
        _: &[u8],
        _: std::time::Duration,
    ) -> Result<bool, CacheError> {
        Ok(false)
    }
}

#[derive(Serialize)]
struct Filter {
    category: String,
    page: Option<u32>,
}

#[derive(Serialize)]
enum Sort {
    Price { descending: bool },
}

#[cache_fn(cache = "recorded")]
fn catalogue<T: Serialize>(
    shop: u32,
    filter: &Filter,
    weights: HashMap<String, u32>,
    tags: BTreeSet<&str>,
    sort: Sort,
    extra: T,
) -> u32 {
    let _ = (filter, weights, tags, sort, extra);
    shop
}

/// The stored key of one fixed call, computed in this process.
fn stored_key() -> String {
    // Tests of this binary run in parallel; one recorder at a time.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let recorder = Recorder::default();
    caches().insert(Cache::builder(recorder.clone()).alias("recorded").build());
    let weights: HashMap<String, u32> = (0..32).map(|i| (format!("w{i:02}"), i)).collect();
    let filter = Filter {
        category: "lamps".into(),
        page: Some(2),
    };
    let tags: BTreeSet<&str> = ["blue", "used"].into();
    catalogue(
        7,
        &filter,
        weights,
        tags,
        Sort::Price { descending: true },
        (1u8, 'x'),
    );
    let keys = recorder.0.lock().expect("recorder lock").clone();
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys[0].clone()
}

/// Run by the parent as a child process; prints the key. In a normal run it checks
/// the key's shape instead.
#[test]
fn child_prints_the_default_key() {
    let key = stored_key();
    if std::env::var_os(CHILD_ENV).is_some() {
        println!("KEY={key}");
        return;
    }
    let weights: Vec<String> = (0..32).map(|i| format!("\"w{i:02}\":{i}")).collect();
    let expected = format!(
        ":1:key_stability::catalogue<(u8, char)>(7,(\"lamps\",Some(2)),{{{}}},[\"blue\",\"used\"],Price(true),(1,'x'))",
        weights.join(",")
    );
    // Longer than 250 bytes: stored under a readable head and a digest of the whole key.
    assert!(expected.len() > 250);
    assert!(key.starts_with(":1:key_stability::catalogue<(u8"), "{key}");
    assert_eq!(
        key,
        Cache::builder(Recorder::default())
            .build()
            .make_key(&expected[3..])
    );
}

fn key_from_child() -> String {
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            "child_prints_the_default_key",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the test binary as a child");
    assert!(out.status.success(), "child failed: {out:?}");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    stdout
        .lines()
        .find_map(|l| l.split_once("KEY=").map(|(_, key)| key))
        .unwrap_or_else(|| panic!("no KEY= line in the child's output: {stdout}"))
        .to_owned()
}

#[test]
fn two_processes_compute_the_same_default_key() {
    let first = key_from_child();
    let second = key_from_child();
    assert_eq!(first, second);
    assert_eq!(first, stored_key(), "and the same as this process");
}
