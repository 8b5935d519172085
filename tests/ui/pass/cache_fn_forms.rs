//! Every function shape `#[cache_fn]` supports, with signatures, attributes, docs and
//! visibility kept as written.
#![deny(missing_docs, unused)]
//! A crate whose lints are strict.

use std::fmt::Debug;
use std::time::Duration;

use cached_kit::cache_fn;
use serde::{Deserialize, Serialize};

/// A stored value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// The count.
    pub n: u64,
}

/// Generic, with a where clause and a reference argument.
#[cache_fn(ttl = 30)]
pub async fn generic<T, U: Serialize>(label: &str, value: T, extra: &U) -> Vec<Stat>
where
    T: Serialize + Debug + Send + Sync,
{
    let _ = (label, extra);
    vec![Stat { n: format!("{value:?}").len() as u64 }]
}

/// An io::Result alias, `?` inside, a `mut` argument.
#[cache_fn(key = "io:{path}")]
pub(crate) fn read_len(mut path: String) -> std::io::Result<u64> {
    path.push_str(".missing");
    let meta = std::fs::metadata(&path)?;
    Ok(meta.len())
}

/// No return type at all: "run at most once per ttl".
#[cache_fn(ttl = Duration::from_millis(10))]
#[inline]
pub fn warm_up(level: u8) {
    let _ = level;
}

/// Lifetimes in arguments, a const generic.
#[cache_fn]
pub async fn sized<'a, const N: usize>(words: &'a [&'a str]) -> usize {
    words.len() + N
}

/// A raw identifier as the name: the companions are `type_invalidate`, `type_refresh`.
#[cache_fn]
pub fn r#type(code: u8) -> u8 {
    code
}

/// A service with cached methods.
pub struct Service {
    /// Part of the key templates.
    pub tenant: String,
}

impl Service {
    /// A method keyed by a template over a field of `self`.
    #[cache_fn(key = "svc:{self.tenant}:{id}", version = 2, lock = true)]
    pub async fn stat(&self, id: u64) -> Result<Option<Stat>, String> {
        Ok(Some(Stat { n: id }))
    }

    /// A method with a default key.
    #[cache_fn(cache_none = false, ttl = 5)]
    pub fn find(&self, id: u64) -> Option<Stat> {
        (id > 0).then_some(Stat { n: id })
    }

    /// `impl Trait` arguments are keyed by value and by type.
    #[cache_fn]
    pub async fn total(&self, items: impl IntoIterator<Item = u64> + Serialize + Send) -> u64 {
        items.into_iter().sum()
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        assert_eq!(generic("x", 5u8, &()).await, vec![Stat { n: 1 }]);
        assert_eq!(generic_refresh("x", 5u8, &()).await.len(), 1);
        assert_eq!(sized::<1>(&["a", "b"]).await, 3);
        let svc = Service { tenant: "t".into() };
        assert_eq!(svc.stat(4).await, Ok(Some(Stat { n: 4 })));
        assert!(svc.stat_invalidate(4).await.unwrap());
        assert_eq!(svc.total(vec![1, 2]).await, 3);
        assert!(svc.total_invalidate(vec![1, 2]).await.unwrap());
    });
    assert!(read_len("nowhere".into()).is_err());
    warm_up(1);
    assert_eq!(r#type(3), 3);
    assert!(type_invalidate(3).unwrap());
    assert_eq!(type_refresh(3), 3);
    assert!(warm_up_invalidate(1).is_ok());
    let svc = Service { tenant: "t".into() };
    assert_eq!(svc.find(0), None);
    assert_eq!(svc.find_refresh(2), Some(Stat { n: 2 }));
}
