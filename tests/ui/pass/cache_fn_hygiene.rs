//! User code that shadows prelude and standard names must not break the generated code:
//! every path the expansions name is absolute, through `::cached_kit::__private`.
#![allow(dead_code, unused_macros, non_camel_case_types)]

use cached_kit::{cache_evict, cache_fn};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct MyError;

// Shadow everything the expansion could have named without a path.
type Result<T> = ::std::result::Result<T, MyError>;
struct Option;
struct Box;
struct String;
struct Vec;
struct Duration;
struct Ok;
struct Some;
struct None;
struct Infallible;
trait Send {}
trait Sync {}
trait Fn {}
trait Future {}
mod std {}
mod core {}
mod alloc {}
fn format() {}
macro_rules! format {
    () => {};
}
macro_rules! format_args {
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
    ::std::result::Result::Ok(id)
}

#[cache_fn(ttl = ::std::time::Duration::from_secs(5), cache_none = false, version = 2)]
fn maybe(id: u32) -> ::std::option::Option<u32> {
    ::std::option::Option::Some(id)
}

#[cache_fn(lock = true, lock_ttl = 20)]
async fn named(name: &str) -> ::std::string::String {
    name.to_owned()
}

#[cache_fn]
fn listed(items: ::std::vec::Vec<u8>) -> ::std::vec::Vec<u8> {
    items
}

#[cache_fn(ttl = 60, key = "hygiene:t:{id}", tags = ["t:{id}"], unless = |v: &u32| *v == 0)]
async fn tagged(id: u32) -> Result<u32> {
    ::std::result::Result::Ok(id)
}

#[cache_fn(stale = 30, tags = ["s:{id}"], cache_none = false, unless = |v| v.is_none())]
fn stale_sync(id: u32) -> ::std::option::Option<u32> {
    ::std::option::Option::Some(id)
}

#[cache_fn(stale = 30)]
async fn stale_async(items: ::std::vec::Vec<u8>) -> Result<::std::vec::Vec<u8>> {
    ::std::result::Result::Ok(items)
}

#[cache_evict(tags = ["t:{id}", "s:{id}"])]
async fn evict_tags(id: u32) -> Result<()> {
    let _ = id;
    ::std::result::Result::Ok(())
}

#[cache_evict(key = ["hygiene:{id}", "other:{id}"], version = 1)]
async fn update(id: u32) -> Result<()> {
    let _ = id;
    ::std::result::Result::Ok(())
}

fn main() {
    let _ = (Option, Box, String, Vec, Duration, Ok, Some, None, Infallible);
    let _ = format;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        assert_eq!(by_id(3).await.ok(), ::std::option::Option::Some(3));
        assert_eq!(named("a").await, "a");
        assert!(update(3).await.is_ok());
        assert!(by_id_invalidate(3).await.is_ok());
        assert!(by_id_refresh(3).await.is_ok());
        assert_eq!(tagged(3).await.ok(), ::std::option::Option::Some(3));
        assert!(tagged_refresh(3).await.is_ok());
        assert!(stale_async(::std::vec![1]).await.is_ok());
        assert!(stale_async_refresh(::std::vec![1]).await.is_ok());
        assert!(evict_tags(3).await.is_ok());
    });
    assert_eq!(stale_sync(2), ::std::option::Option::Some(2));
    assert_eq!(stale_sync_refresh(2), ::std::option::Option::Some(2));
    assert_eq!(maybe(2), ::std::option::Option::Some(2));
    assert_eq!(listed(::std::vec![1]), ::std::vec![1]);
}
