//! User code that shadows prelude names must not break the generated code.
#![allow(dead_code, unused_macros)]

use cached_kit::{cache_evict, cache_fn};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct MyError;

// Shadow everything the expansion could have named without a path.
type Result<T> = std::result::Result<T, MyError>;
struct Option;
struct Box;
struct String;
struct Vec;
struct Duration;
struct Ok;
struct Some;
struct None;
mod std_ {}
mod core {}
fn format() {}
macro_rules! format {
    () => {};
}
macro_rules! concat {
    () => {};
}
macro_rules! module_path {
    () => {};
}

#[cache_fn(ttl = 60, key = "hygiene:{id}", unless = |v: &u32| *v == 0)]
async fn by_id(id: u32) -> Result<u32> {
    std::result::Result::Ok(id)
}

#[cache_fn(ttl = std::time::Duration::from_secs(5), cache_none = false)]
fn maybe(id: u32) -> std::option::Option<u32> {
    std::option::Option::Some(id)
}

#[cache_fn]
async fn named(name: &str) -> std::string::String {
    name.to_owned()
}

#[cache_evict(key = ["hygiene:{id}", "other:{id}"])]
async fn update(id: u32) -> Result<()> {
    let _ = id;
    std::result::Result::Ok(())
}

fn main() {
    let _ = (Option, Box, String, Vec, Duration, Ok, Some, None);
    let _ = format;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        assert_eq!(by_id(3).await.ok(), std::option::Option::Some(3));
        assert_eq!(named("a").await, "a");
        assert!(update(3).await.is_ok());
        assert!(by_id_invalidate(3).await.is_ok());
    });
    assert_eq!(maybe(2), std::option::Option::Some(2));
}
