//! The expansions raise no warning in a crate that denies them all (SPEC §10.7): private
//! functions whose companions are never called, single-expression bodies, arguments the
//! key skips, inner attributes, `#[expect]`, every argument form.
#![deny(warnings)]

use std::time::Duration;

use cached_kit::{cache_evict, cache_fn};

struct Db;

impl Db {
    fn rows(&self) -> u32 {
        3
    }
}

const TTL: Duration = Duration::from_secs(5);
const VERSION: u32 = 2;

#[cache_fn]
fn single_expression(x: u32) -> u32 {
    x * 2
}

#[cache_fn(ttl = 60, skip(db))]
async fn skipped(db: &Db, month: u8) -> u32 {
    db.rows() + u32::from(month)
}

#[cache_fn(ttl = TTL, version = VERSION, key = "k:{x}", unless = |v: &u32| *v == 0)]
async fn every_argument(x: u32) -> u32 {
    x
}

#[cache_fn(lock = true, lock_ttl = 30, cache_none = false)]
async fn locked(x: u32) -> Option<u32> {
    (x > 0).then_some(x)
}

#[cache_fn(lock = true, lock_ttl = Duration::from_millis(1500))]
fn locked_sync(x: u32) -> Result<u32, String> {
    if x == 0 {
        return Err("zero".into());
    }
    Ok(x)
}

#[cache_fn]
fn unit(x: u32) {
    let _ = x;
}

#[cache_fn]
fn with_inner_attributes(x: u32) -> u32 {
    #![allow(unused_variables)]
    let unused = x;
    1
}

#[cache_fn]
#[expect(unused_variables)]
fn with_expect(x: u32) -> u32 {
    let unused = x;
    2
}

#[cache_fn]
fn mutated(mut x: u32) -> u32 {
    x += 1;
    x
}

// Every shape of template: text alone, a format spec alone, text and a string, a type
// that only has `Display`, a reference to an integer.
#[cache_fn(key = "all")]
fn no_placeholder(x: u32) -> u32 {
    x
}

#[cache_fn(key = "{x:05}")]
fn spec_only(x: u32) -> u32 {
    x
}

#[cache_fn(key = "name {name}:{n}")]
fn text_and_string(name: &str, n: &i64) -> usize {
    name.len() + usize::from(*n > 0)
}

#[cache_fn(key = "at:{addr}")]
fn display_only(addr: std::net::Ipv4Addr) -> u32 {
    u32::from(addr)
}

#[cache_evict(key = "k:{x}", version = VERSION)]
async fn evicts(x: u32) {}

#[cache_evict(key = ["k:{x}", "other:{x}"])]
fn evicts_sync(x: u32) -> Result<(), String> {
    #![allow(clippy::unnecessary_wraps)]
    let _ = x;
    Ok(())
}

// Tags and stale (SPEC §12): every form, never called companions, owned predicates.
#[cache_fn(ttl = 60, key = "p:{id}", tags = ["product:{id}", "products"])]
async fn tagged(db: &Db, id: u32) -> u32 {
    db.rows() + id
}

#[cache_fn(ttl = TTL, stale = 60, tags = "report:{month}", unless = |v| *v == 0)]
async fn stale_report(month: u8) -> Result<u32, String> {
    Ok(u32::from(month))
}

#[cache_fn(stale = Duration::from_secs(30), cache_none = false, lock = true)]
fn stale_sync(x: u32) -> Option<u32> {
    (x > 0).then_some(x)
}

#[cache_fn(stale = 10)]
fn stale_unit(x: u32) {
    let _ = x;
}

#[cache_evict(tags = ["product:{id}"])]
async fn evicts_tags(id: u32) {}

#[cache_evict(key = "p:{id}", tags = ["products"])]
fn evicts_both(id: u32) -> Result<(), String> {
    #![allow(clippy::unnecessary_wraps)]
    let _ = id;
    Ok(())
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Repo {
    tenant: String,
}

impl Repo {
    #[cache_fn(key = "{self.tenant}:{id}")]
    async fn find(&self, id: u64) -> Option<u64> {
        Some(id)
    }

    #[cache_fn]
    fn make(id: u64) -> Vec<Self> {
        let _ = id;
        Vec::new()
    }

    #[cache_fn(stale = 60, key = "{self.tenant}:all", tags = ["tenant:{self.tenant}"])]
    async fn all(self: std::sync::Arc<Self>) -> Vec<u64> {
        vec![self.tenant.len() as u64]
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        assert_eq!(skipped(&Db, 1).await, 4);
        assert_eq!(every_argument(1).await, 1);
        assert_eq!(locked(1).await, Some(1));
        evicts(1).await;
        let repo = Repo { tenant: "t".into() };
        assert_eq!(repo.find(1).await, Some(1));
        assert_eq!(tagged(&Db, 1).await, 4);
        assert_eq!(stale_report(2).await, Ok(2));
        evicts_tags(1).await;
        assert_eq!(std::sync::Arc::new(repo).all().await, vec![1]);
    });
    assert_eq!(stale_sync(1), Some(1));
    stale_unit(1);
    assert!(evicts_both(1).is_ok());
    assert_eq!(single_expression(2), 4);
    assert_eq!(locked_sync(1), Ok(1));
    unit(1);
    assert_eq!(with_inner_attributes(1), 1);
    assert_eq!(with_expect(1), 2);
    assert_eq!(mutated(1), 2);
    assert!(evicts_sync(1).is_ok());
    assert!(Repo::make(1).is_empty());
    assert_eq!(no_placeholder(3), 3);
    assert_eq!(no_placeholder(4), 3, "one key for every call");
    assert_eq!(spec_only(7), 7);
    assert_eq!(text_and_string("ab", &1), 3);
    assert_eq!(display_only(std::net::Ipv4Addr::new(0, 0, 1, 1)), 257);
}
