//! Tags: invalidate every entry that shows an object, across processes, without SCAN.
//!
//! Each tag has a *version* stored in the backend under `{key_prefix}:tag:{tag}` (one
//! key per tag, unversioned: every key version of the cache shares it; a long or unsafe
//! tag is digested like a key). A version is a unique random token (`ck-tag:` and 128
//! bits), never a counter: a tag key that was evicted or invalidated and then created
//! again gets a version no entry ever recorded, so an old entry can never become valid
//! again (no ABA).
//!
//! - **Storing** a tagged entry first reads its tags' versions (creating a missing one
//!   with `add`), *before* the value is computed, and records them in the entry's
//!   envelope (`fresh.rs`). An invalidation that lands while the value is being computed
//!   therefore makes the stored entry a miss: the value may predate the change.
//! - **Invalidating** deletes the tags' keys (one `delete_many`, which Redis Cluster
//!   splits by slot) and bumps the process-wide [`GENERATION`].
//! - **Reading** a tagged entry compares the versions it recorded with the current ones:
//!   any that moved, or whose key is gone, make the read a miss. On a remote backend the
//!   versions are read on every hit (one `get_many`; a `#[cache_fn]` that knows its
//!   tags reads them in the same `get_many` as the entry). An in-process entry (an
//!   object) also records the generation it was last checked at: tag keys of an
//!   in-process backend change only through this process's `invalidate_tags`, so while
//!   the generation has not moved, a hit checks nothing but two integers.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::compute::lock::unique_token;
use super::Cache;
use crate::backend::Value;
use crate::key::push_safe_key;
use crate::CacheError;

/// Bumped by every [`Cache::invalidate_tags`] in this process, after its deletions.
/// In-process entries recheck their tags' versions only when it moved since their last
/// check.
pub(crate) static GENERATION: AtomicU64 = AtomicU64::new(1);

/// The generation an in-process entry records once one of its tags moved: it can never
/// be valid again (versions never come back), so it is a miss without a check.
pub(crate) const INVALID: u64 = u64::MAX;

/// The current generation.
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// The versions of an entry's tags, read before its value was computed.
#[derive(Debug, Clone)]
pub(crate) struct Stamps {
    /// The generation read before the versions.
    pub(crate) generation: u64,
    /// The tags, as given.
    pub(crate) tags: Vec<String>,
    /// Their keys (`{key_prefix}:tag:{tag}`).
    pub(crate) keys: Vec<String>,
    /// Their versions.
    pub(crate) versions: Vec<Bytes>,
}

/// Whether the versions `read` from the backend are exactly `recorded`.
pub(crate) fn versions_match<'a>(
    recorded: impl IntoIterator<Item = &'a [u8]>,
    read: &[Option<Value>],
) -> bool {
    let mut n = 0;
    for recorded in recorded {
        match read.get(n) {
            Some(Some(Value::Bytes(current))) if current.as_ref() == recorded => n += 1,
            _ => return false,
        }
    }
    n == read.len()
}

impl Cache {
    /// The backend key holding `tag`'s version: `{key_prefix}:tag:{tag}`.
    ///
    /// ```
    /// let cache = cached_core::Cache::builder(cached_core::DummyBackend::new())
    ///     .key_prefix("shop")
    ///     .build();
    /// assert_eq!(cache.tag_key("product:42"), "shop:tag:product:42");
    /// ```
    pub fn tag_key(&self, tag: &str) -> String {
        let prefix = &self.inner.key_prefix;
        let mut out = String::with_capacity(prefix.len() + 5 + tag.len());
        out.push_str(prefix);
        out.push_str(":tag:");
        push_safe_key(&mut out, tag);
        out
    }

    /// Invalidates every entry stored with any of `tags`, in every process sharing the
    /// backend and under every key version of this cache: their next reads miss.
    ///
    /// Entries are tagged by `#[cache_fn(tags = [..])]`, [`set_tagged`](Self::set_tagged)
    /// and [`ComputeOptions::tags`](crate::ComputeOptions::tags). One round trip (the
    /// tags' version keys are deleted; Redis Cluster included, no SCAN).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let cache = cached_core::cache();
    /// let ttl = Duration::from_secs(60);
    /// cache.set_tagged("page:1", &"lamp, desk".to_string(), ttl, &["product:42", "products"]).await?;
    /// cache.set_tagged("page:2", &"chair".to_string(), ttl, &["product:7", "products"]).await?;
    ///
    /// cache.invalidate_tags(&["product:42"]).await?;
    /// assert_eq!(cache.get::<String>("page:1").await?, None);
    /// assert_eq!(cache.get::<String>("page:2").await?.as_deref(), Some("chair"));
    ///
    /// cache.invalidate_tags(&["products"]).await?;
    /// assert_eq!(cache.get::<String>("page:2").await?, None);
    /// # Ok::<(), cached_core::CacheError>(())
    /// # }).unwrap();
    /// ```
    pub async fn invalidate_tags<S: AsRef<str>>(&self, tags: &[S]) -> Result<(), CacheError> {
        if tags.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = tags.iter().map(|t| self.tag_key(t.as_ref())).collect();
        let result = self.inner.backend.delete_many(&keys).await;
        // After the deletions: a reader that sees the new generation sees them too.
        GENERATION.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let key = keys.first().map_or("", String::as_str);
                Err(self.record_error("invalidate_tags", key, e))
            }
        }
    }

    /// The values under `keys` without waiting, when the backend answers every one at
    /// once (in-process backends); `None` means "ask [`read_keys`](Self::read_keys)".
    pub(crate) fn read_keys_now(
        &self,
        keys: &[String],
    ) -> Option<Result<Vec<Option<Value>>, CacheError>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match self.inner.backend.get_now(key)? {
                Ok(v) => out.push(v),
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(out))
    }

    /// The values under `keys`: at once when the backend can, else one `get_many`.
    pub(crate) async fn read_keys(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<Value>>, CacheError> {
        match self.read_keys_now(keys) {
            Some(read) => read,
            None => self.inner.backend.get_many(keys).await,
        }
    }

    /// Reads (creating where missing) the versions of `tags`, for an entry about to be
    /// computed. A backend failure is recorded and returned: the entry must then not be
    /// stored, since it could not be invalidated.
    pub(crate) async fn stamp_tags(&self, tags: Vec<String>) -> Result<Stamps, CacheError> {
        let generation = generation();
        let keys: Vec<String> = tags.iter().map(|t| self.tag_key(t)).collect();
        let read = match self.read_keys(&keys).await {
            Ok(read) => read,
            Err(e) => {
                let key = keys.first().map_or("", String::as_str);
                return Err(self.record_error("tags", key, e));
            }
        };
        let mut versions = Vec::with_capacity(keys.len());
        for (key, current) in keys.iter().zip(read) {
            let version = match current {
                Some(Value::Bytes(b)) if std::str::from_utf8(&b).is_ok() => b,
                other => match self.new_tag_version(key, other.is_some()).await {
                    Ok(v) => v,
                    Err(e) => return Err(self.record_error("tags", key, e)),
                },
            };
            versions.push(version);
        }
        Ok(Stamps {
            generation,
            tags,
            keys,
            versions,
        })
    }

    /// Creates a version for the tag key `key` (absent, or holding something that is
    /// not a version when `overwrite`), or reads the one a concurrent writer created.
    async fn new_tag_version(&self, key: &str, overwrite: bool) -> Result<Bytes, CacheError> {
        let token = Bytes::from(unique_token("ck-tag"));
        let backend = &self.inner.backend;
        if overwrite {
            backend.set(key, Value::Bytes(token.clone()), None).await?;
            return Ok(token);
        }
        if backend.add(key, Value::Bytes(token.clone()), None).await? {
            return Ok(token);
        }
        // Another writer created it first: record theirs. If it is gone again already
        // (invalidated, evicted), ours is recorded and the entry will simply miss.
        match backend.get(key).await? {
            Some(Value::Bytes(theirs)) => Ok(theirs),
            _ => Ok(token),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_match_only_when_every_one_is_equal() {
        let v = |s: &'static str| Some(Value::Bytes(Bytes::from_static(s.as_bytes())));
        let recorded: [&[u8]; 2] = [b"a", b"b"];
        assert!(versions_match(recorded, &[v("a"), v("b")]));
        assert!(!versions_match(recorded, &[v("a"), v("c")]));
        assert!(!versions_match(recorded, &[v("a"), None]));
        assert!(!versions_match(recorded, &[v("a"), Some(Value::Int(1))]));
        assert!(!versions_match(recorded, &[v("a")]));
        assert!(!versions_match(recorded, &[v("a"), v("b"), v("c")]));
    }

    #[test]
    fn tag_keys_are_unversioned_and_safe() {
        let cache = Cache::builder(crate::DummyBackend::new())
            .version(3)
            .build();
        assert_eq!(cache.tag_key("products"), ":tag:products");
        let long = cache.tag_key(&"x y".repeat(200));
        assert!(long.starts_with(":tag:") && long.len() < 120, "{long}");
    }
}
