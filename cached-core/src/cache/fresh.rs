//! Freshness: entries stored with a stale window (stale-while-revalidate) or with tags,
//! in an *envelope* around the value.
//!
//! A plain entry is the value itself (an object in process, codec bytes elsewhere); it
//! pays nothing for this module. An entry that needs freshness data is stored as:
//!
//! | backend | envelope | told apart from a plain value by |
//! |---|---|---|
//! | in process (objects) | [`Envelope<T>`]: the value, `fresh_until` (an `Instant`), and the tags' keys, recorded versions and the [generation](super::tags::GENERATION) they were last checked at | a downcast to `Envelope<T>` when the downcast to `T` fails |
//! | encoded (Redis, byte-bounded memory) | [`Wire<T>`] behind the codec header: `fresh_until_ms` (Unix milliseconds), `[(tag, version)]`, the value | the header's layout byte ([`ENVELOPE`](crate::codec::ENVELOPE) bit) and the fingerprint of `Wire<T>` |
//!
//! **Stale window.** With `stale`, the backend keeps the entry for `ttl + stale` and
//! the envelope says when the first `ttl` ends. Until then a read is *fresh*; after it,
//! *stale*: the memoizing entry points ([`Cache::compute_stale`], `#[cache_fn(stale =
//! ..)]`) serve it at once and refresh it in the background; every other read (a plain
//! [`Cache::get`], [`Cache::compute`]) treats it as a miss, since it cannot start a
//! refresh. The encoded `fresh_until_ms` is wall-clock time: processes sharing Redis
//! should keep their clocks in sync (a skew shifts the window by as much).
//!
//! **Tags.** See [`tags`](super::tags): a read whose tags' versions moved is a miss.
//!
//! The rest of the API sees an envelope as an entry: `has_key` answers whether it is
//! stored (stale or invalidated ones included, until the backend drops them), `delete`
//! and `clear` remove it, `touch` gives it a new backend expiry but keeps its fresh
//! window, `incr_version` moves it whole. An in-process envelope of an integer is not a
//! counter (`incr` on it is [`NotACounter`](crate::CacheError::NotACounter)).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::tags::{generation, versions_match, Stamps, INVALID};
use super::value::backend_ttl;
use super::{Cache, Cacheable, FOREVER};
use crate::backend::Value;
use crate::codec::{fingerprint, is_envelope, DecodeError, ENVELOPE, LAYOUT_VERSION};
use crate::stats::Counter;
use crate::CacheError;

/// An entry with freshness data, as in-process backends keep it.
pub(crate) struct Envelope<T> {
    value: T,
    /// When the value stops being fresh; `None`: no stale window (the backend's expiry
    /// is the end).
    fresh_until: Option<Instant>,
    tags: Option<Recorded>,
}

/// The tags of an in-process entry.
struct Recorded {
    keys: Box<[String]>,
    versions: Box<[Bytes]>,
    /// The generation the versions were last found current at, or [`INVALID`].
    checked: AtomicU64,
}

/// An entry with freshness data, as encoded for remote backends.
#[derive(Deserialize)]
pub(crate) struct Wire<T> {
    fresh_until_ms: Option<u64>,
    tags: Vec<(String, String)>,
    value: T,
}

/// The borrowing twin of [`Wire`] that is encoded (same fields, same order).
#[derive(Serialize)]
struct WireRef<'a, T> {
    fresh_until_ms: Option<u64>,
    tags: &'a [(String, String)],
    value: &'a T,
}

/// What a read of one entry found.
#[derive(Debug)]
pub(crate) enum Lookup<T> {
    /// A value within its ttl (tags current).
    Fresh(T),
    /// A value past its ttl, within its stale window (tags current).
    Stale(T),
    /// Nothing usable: absent, expired, undecodable, or a tag moved.
    Miss,
}

/// An envelope opened without waiting.
enum Opened<T> {
    Read(Lookup<T>),
    Undecodable(DecodeError),
    /// Its tags' versions must be read from the backend first.
    Pending(Pending<T>),
}

enum Pending<T> {
    Object(Arc<Envelope<T>>),
    Wire(Wire<T>),
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn by_time<T>(value: T, stale: bool) -> Lookup<T> {
    if stale {
        Lookup::Stale(value)
    } else {
        Lookup::Fresh(value)
    }
}

impl<T: Clone> Envelope<T> {
    /// The value, fresh or stale by the clock.
    fn by_time(&self) -> Lookup<T> {
        let stale = self.fresh_until.is_some_and(|t| Instant::now() >= t);
        by_time(self.value.clone(), stale)
    }
}

impl Recorded {
    /// Whether the recorded versions are current, without waiting; `None` when the
    /// backend cannot answer at once.
    fn current_now(&self, cache: &Cache) -> Option<bool> {
        let checked = self.checked.load(Ordering::Relaxed);
        if checked == INVALID {
            return Some(false);
        }
        let now = generation();
        if checked == now {
            return Some(true);
        }
        let read = cache.read_keys_now(&self.keys)?;
        Some(self.settle(cache, now, read))
    }

    /// Compares `read` (the versions read after generation `now` was) with the recorded
    /// ones, and remembers the answer.
    fn settle(
        &self,
        cache: &Cache,
        now: u64,
        read: Result<Vec<Option<Value>>, CacheError>,
    ) -> bool {
        match read {
            Ok(read) if versions_match(self.versions.iter().map(|v| v.as_ref()), &read) => {
                self.checked.fetch_max(now, Ordering::Relaxed);
                true
            }
            Ok(_) => {
                // Versions never come back: no later read needs to look.
                self.checked.store(INVALID, Ordering::Relaxed);
                false
            }
            Err(e) => {
                let key = self.keys.first().map_or("", String::as_str);
                cache.record_error("tags", key, e);
                false
            }
        }
    }
}

impl Cache {
    /// Stores `value` under the stored key `skey` in an envelope: `ttl` fresh, then
    /// `stale` more in the backend; `stamps` recorded.
    pub(crate) async fn store_envelope<T: Cacheable>(
        &self,
        skey: &str,
        value: &T,
        ttl: Duration,
        stale: Option<Duration>,
        stamps: Option<Stamps>,
    ) -> Result<(), CacheError> {
        if ttl.is_zero() {
            return match self.inner.backend.delete(skey).await {
                Ok(_) => Ok(()),
                Err(e) => Err(self.record_error("set", skey, e)),
            };
        }
        let forever = ttl >= FOREVER;
        let stale = stale.filter(|s| !forever && !s.is_zero());
        let lifetime = match stale {
            Some(stale) => backend_ttl(ttl.saturating_add(stale)),
            None => backend_ttl(ttl),
        };
        let encoded = if self.inner.objects {
            Value::Object(Arc::new(Envelope {
                value: value.clone(),
                fresh_until: stale.and_then(|_| Instant::now().checked_add(ttl)),
                tags: stamps.map(|s| Recorded {
                    keys: s.keys.into(),
                    versions: s.versions.into(),
                    checked: AtomicU64::new(s.generation),
                }),
            }))
        } else {
            let fresh_until_ms = stale.map(|_| {
                unix_ms(SystemTime::now())
                    .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            });
            let tags: Vec<(String, String)> = stamps
                .map(|s| {
                    s.tags
                        .into_iter()
                        .zip(s.versions)
                        .map(|(tag, v)| (tag, String::from_utf8_lossy(&v).into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let wire = WireRef {
                fresh_until_ms,
                tags: &tags,
                value,
            };
            let print = fingerprint::<Wire<T>>();
            match self
                .inner
                .codec
                .encode_as(skey, &wire, LAYOUT_VERSION | ENVELOPE, print)
            {
                Ok(bytes) => Value::Bytes(bytes.into()),
                Err(e) => return Err(self.record_error("set", skey, e)),
            }
        };
        match self.inner.backend.set(skey, encoded, lifetime).await {
            Ok(()) => {
                self.counters().bump(Counter::Sets);
                Ok(())
            }
            Err(e) => Err(self.record_error("set", skey, e)),
        }
    }

    /// Stores `value` under `key` for `ttl`, tagged with `tags`: the entry is a miss
    /// once any of them is [invalidated](Self::invalidate_tags), in any process.
    ///
    /// The tags' versions are read when this is called: a value computed *before* an
    /// invalidation and stored *after* it would be served. When you compute the value
    /// yourself, prefer [`compute`](Self::compute) with
    /// [`ComputeOptions::tags`](crate::ComputeOptions::tags), which reads them before
    /// running the computation.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let cache = cached_core::cache();
    /// cache.set_tagged("order:9", &vec![42u64, 7], Duration::from_secs(60), &["product:42"]).await?;
    /// assert_eq!(cache.get::<Vec<u64>>("order:9").await?, Some(vec![42, 7]));
    /// cache.invalidate_tags(&["product:42"]).await?;
    /// assert_eq!(cache.get::<Vec<u64>>("order:9").await?, None);
    /// # Ok::<(), cached_core::CacheError>(())
    /// # }).unwrap();
    /// ```
    pub async fn set_tagged<T: Cacheable, S: AsRef<str>>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
        tags: &[S],
    ) -> Result<(), CacheError> {
        let skey = self.make_key(key);
        if tags.is_empty() {
            return self.store(&skey, value, ttl).await;
        }
        let tags = tags.iter().map(|t| t.as_ref().to_owned()).collect();
        let stamps = self.stamp_tags(tags).await?;
        self.store_envelope(&skey, value, ttl, None, Some(stamps))
            .await
    }

    /// Whether `value` is an envelope (of `T`, for objects; of any type, for bytes).
    pub(super) fn is_envelope<T: Cacheable>(&self, value: &Value) -> bool {
        match value {
            Value::Bytes(b) => is_envelope(b),
            Value::Object(obj) => obj.is::<Envelope<T>>(),
            _ => false,
        }
    }

    /// Whether `value`, an envelope of `T`, needs its tags' versions read from the
    /// backend before it can be answered (a near tier held the entry but not them).
    pub(super) fn envelope_waits<T: Cacheable>(&self, value: &Value) -> bool {
        matches!(self.open_now::<T>(value), Some(Opened::Pending(_)))
    }

    /// Opens `value` if it is an envelope of `T`, without waiting.
    fn open_now<T: Cacheable>(&self, value: &Value) -> Option<Opened<T>> {
        match value {
            Value::Object(obj) => {
                let env = obj.downcast_ref::<Envelope<T>>()?;
                if let Some(tags) = &env.tags {
                    match tags.current_now(self) {
                        Some(true) => {}
                        Some(false) => return Some(Opened::Read(Lookup::Miss)),
                        None => {
                            let arc = Arc::clone(obj).downcast::<Envelope<T>>().ok()?;
                            return Some(Opened::Pending(Pending::Object(arc)));
                        }
                    }
                }
                Some(Opened::Read(env.by_time()))
            }
            Value::Bytes(bytes) if is_envelope(bytes) => {
                let wire = match self
                    .inner
                    .codec
                    .decode_as::<Wire<T>>(bytes, LAYOUT_VERSION | ENVELOPE)
                {
                    Ok(wire) => wire,
                    Err(e) => return Some(Opened::Undecodable(e)),
                };
                if wire.tags.is_empty() {
                    return Some(Opened::Read(wire.by_time()));
                }
                let keys = wire.tag_keys(self);
                match self.read_keys_now(&keys) {
                    Some(read) => Some(Opened::Read(wire.settle(self, read))),
                    None => Some(Opened::Pending(Pending::Wire(wire))),
                }
            }
            _ => None,
        }
    }

    /// Decides a pending envelope: reads its tags' versions (one `get_many`).
    /// `prefetched`: the versions of `tags`, read with the entry.
    async fn settle<T: Cacheable>(
        &self,
        pending: Pending<T>,
        prefetched: Option<(&[String], Vec<Option<Value>>)>,
    ) -> Lookup<T> {
        match pending {
            Pending::Object(env) => {
                let Some(tags) = &env.tags else {
                    return env.by_time();
                };
                let now = generation();
                let read = self.inner.backend.get_many(&tags.keys).await;
                if tags.settle(self, now, read) {
                    env.by_time()
                } else {
                    Lookup::Miss
                }
            }
            Pending::Wire(wire) => {
                if let Some((names, read)) = prefetched {
                    if wire.tags.iter().map(|(t, _)| t).eq(names.iter()) {
                        return wire.settle(self, Ok(read));
                    }
                }
                let read = self.inner.backend.get_many(&wire.tag_keys(self)).await;
                wire.settle(self, read)
            }
        }
    }

    /// Counts one read: a fresh value is a hit; a stale one a stale hit (which
    /// `stats()` counts in `hits` too) when `serve_stale`, else a miss.
    /// `near`: the read came from a near tier, and a fresh value is a near hit (which
    /// `stats()` counts in `hits` too).
    fn count_lookup<T>(&self, skey: &str, read: &Lookup<T>, serve_stale: bool, near: bool) {
        let counters = self.counters();
        match read {
            Lookup::Fresh(_) => {
                counters.bump(Counter::hit(near));
                tracing::trace!(cache = %self.inner.alias, key = skey, "cache hit");
            }
            Lookup::Stale(_) if serve_stale => {
                // Also a hit in `stats()` (the snapshot adds stale hits to hits).
                counters.bump(Counter::StaleHits);
                tracing::trace!(cache = %self.inner.alias, key = skey, "cache hit, stale");
            }
            Lookup::Stale(_) | Lookup::Miss => {
                counters.bump(Counter::Misses);
                tracing::trace!(cache = %self.inner.alias, key = skey, "cache miss");
            }
        }
    }

    fn count_undecodable(&self, skey: &str, e: &DecodeError) {
        let counters = self.counters();
        counters.bump(Counter::DecodeErrors);
        counters.bump(Counter::Misses);
        tracing::debug!(cache = %self.inner.alias, key = skey, error = %e,
            "stored value does not decode; treated as a miss and overwritten");
    }

    /// The read of `value` by a plain reader (fresh values only), if it is an envelope
    /// of `T`; without waiting. `Some(None)`: a miss (stale, a tag moved, undecodable,
    /// or tags that cannot be checked without waiting, which only a backend answering
    /// `get_now` for entries but not for tag keys leaves).
    pub(super) fn read_envelope_now<T: Cacheable>(
        &self,
        skey: &str,
        value: &Value,
        count: bool,
        near: bool,
    ) -> Option<Option<T>> {
        let read = match self.open_now::<T>(value)? {
            Opened::Read(read) => read,
            Opened::Pending(_) => Lookup::Miss,
            Opened::Undecodable(e) => {
                if count {
                    self.count_undecodable(skey, &e);
                }
                return Some(None);
            }
        };
        if count {
            self.count_lookup(skey, &read, false, near);
        }
        Some(match read {
            Lookup::Fresh(v) => Some(v),
            Lookup::Stale(_) | Lookup::Miss => None,
        })
    }

    /// [`read_envelope_now`](Self::read_envelope_now), reading the tags' versions from
    /// the backend when needed. `None` when `value` is not an envelope of `T`.
    pub(super) async fn read_envelope<T: Cacheable>(
        &self,
        skey: &str,
        value: &Value,
        count: bool,
    ) -> Option<Option<T>> {
        let read = match self.open_now::<T>(value)? {
            Opened::Read(read) => read,
            Opened::Pending(pending) => self.settle(pending, None).await,
            Opened::Undecodable(e) => {
                if count {
                    self.count_undecodable(skey, &e);
                }
                return Some(None);
            }
        };
        if count {
            self.count_lookup(skey, &read, false, false);
        }
        Some(match read {
            Lookup::Fresh(v) => Some(v),
            Lookup::Stale(_) | Lookup::Miss => None,
        })
    }

    /// The read of a stored key by a stale-aware reader, without waiting; `None` when
    /// the backend must be awaited. A backend error is recorded and read as a miss.
    pub(crate) fn lookup_now<T: Cacheable>(&self, skey: &str, count: bool) -> Option<Lookup<T>> {
        let read = match self.inner.backend.get_now(skey)? {
            Ok(read) => read,
            Err(e) => {
                self.record_error("get", skey, e);
                return Some(Lookup::Miss);
            }
        };
        let read = match read {
            None => Lookup::Miss,
            Some(value) => match self.open_now::<T>(&value) {
                Some(Opened::Read(read)) => read,
                Some(Opened::Pending(_)) => return None,
                Some(Opened::Undecodable(e)) => {
                    if count {
                        self.count_undecodable(skey, &e);
                    }
                    return Some(Lookup::Miss);
                }
                None => {
                    return Some(self.plain(skey, &value, count, self.inner.near));
                }
            },
        };
        if count {
            self.count_lookup(skey, &read, true, self.inner.near);
        }
        Some(read)
    }

    /// The read of a stored key by a stale-aware reader. `tags`: the tags the entry is
    /// expected to carry, read in the same round trip as the entry on remote backends.
    pub(crate) async fn lookup<T: Cacheable>(
        &self,
        skey: &str,
        tags: &[String],
        count: bool,
    ) -> Lookup<T> {
        if let Some(read) = self.lookup_now::<T>(skey, count) {
            return read;
        }
        let (entry, prefetched) = if tags.is_empty() {
            (self.inner.backend.get(skey).await, None)
        } else {
            let mut keys = Vec::with_capacity(tags.len() + 1);
            keys.push(skey.to_owned());
            keys.extend(tags.iter().map(|t| self.tag_key(t)));
            match self.inner.backend.get_many(&keys).await {
                Ok(mut read) if read.len() == keys.len() => {
                    let versions = read.split_off(1);
                    (Ok(read.pop().flatten()), Some((tags, versions)))
                }
                Ok(_) => (self.inner.backend.get(skey).await, None),
                Err(e) => (Err(e), None),
            }
        };
        let value = match entry {
            Ok(Some(value)) => value,
            Ok(None) => {
                if count {
                    self.count_lookup::<T>(skey, &Lookup::Miss, true, false);
                }
                return Lookup::Miss;
            }
            Err(e) => {
                self.record_error("get", skey, e);
                return Lookup::Miss;
            }
        };
        let read = match self.open_now::<T>(&value) {
            Some(Opened::Read(read)) => read,
            Some(Opened::Pending(pending)) => self.settle(pending, prefetched).await,
            Some(Opened::Undecodable(e)) => {
                if count {
                    self.count_undecodable(skey, &e);
                }
                return Lookup::Miss;
            }
            None => return self.plain(skey, &value, count, false),
        };
        if count {
            self.count_lookup(skey, &read, true, false);
        }
        read
    }

    /// A plain value (no envelope) read by a stale-aware reader.
    fn plain<T: Cacheable>(&self, skey: &str, value: &Value, count: bool, near: bool) -> Lookup<T> {
        match self.decode_value::<T>(value) {
            Ok(v) => {
                let read = Lookup::Fresh(v);
                if count {
                    self.count_lookup(skey, &read, true, near);
                }
                read
            }
            Err(e) => {
                if count {
                    self.count_undecodable(skey, &e);
                }
                Lookup::Miss
            }
        }
    }
}

impl<T> Wire<T> {
    fn by_time(self) -> Lookup<T> {
        let stale = self
            .fresh_until_ms
            .is_some_and(|t| unix_ms(SystemTime::now()) >= t);
        by_time(self.value, stale)
    }

    fn tag_keys(&self, cache: &Cache) -> Vec<String> {
        self.tags.iter().map(|(t, _)| cache.tag_key(t)).collect()
    }

    /// The value if `read` (its tags' current versions) matches what it recorded.
    fn settle(self, cache: &Cache, read: Result<Vec<Option<Value>>, CacheError>) -> Lookup<T> {
        match read {
            Ok(read) if versions_match(self.tags.iter().map(|(_, v)| v.as_bytes()), &read) => {
                self.by_time()
            }
            Ok(_) => Lookup::Miss,
            Err(e) => {
                let tag = self.tags.first().map_or("", |(t, _)| t.as_str());
                cache.record_error("tags", &cache.tag_key(tag), e);
                Lookup::Miss
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backend::memory::{Bound, MemoryBackend};

    fn objects() -> Cache {
        Cache::builder(MemoryBackend::default()).build()
    }

    #[tokio::test]
    async fn encoded_envelopes_carry_the_flag_and_the_envelope_fingerprint() {
        let cache = Cache::builder(MemoryBackend::new(Bound::Bytes(1 << 20))).build();
        cache
            .set_tagged("k", &"v".to_string(), Duration::from_secs(60), &["t"])
            .await
            .expect("set_tagged");
        let Some(Ok(Some(Value::Bytes(bytes)))) = cache.backend().get_now(&cache.make_key("k"))
        else {
            panic!("bytes")
        };
        assert!(is_envelope(&bytes));
        assert_eq!(bytes[2], LAYOUT_VERSION | ENVELOPE);
        assert_eq!(
            bytes[4..12],
            fingerprint::<Wire<String>>().to_le_bytes(),
            "the envelope's type, which names the value's"
        );
        // Read as another type: the fingerprint says no before decoding.
        assert_eq!(cache.get::<u64>("k").await.expect("get"), None);
        assert_eq!(cache.stats().decode_errors, 1);
    }

    #[tokio::test]
    async fn a_stale_entry_is_a_miss_for_plain_readers_and_stale_for_the_others() {
        for cache in [
            objects(),
            Cache::builder(MemoryBackend::new(Bound::Bytes(1 << 20))).build(),
        ] {
            let skey = cache.make_key("k");
            let ttl = Duration::from_millis(50);
            cache
                .store_envelope(&skey, &7u32, ttl, Some(Duration::from_secs(60)), None)
                .await
                .expect("store");
            assert!(matches!(
                cache.lookup::<u32>(&skey, &[], true).await,
                Lookup::Fresh(7)
            ));
            assert_eq!(cache.get::<u32>("k").await.expect("get"), Some(7));
            tokio::time::sleep(ttl + Duration::from_millis(30)).await;
            assert!(matches!(
                cache.lookup::<u32>(&skey, &[], true).await,
                Lookup::Stale(7)
            ));
            assert_eq!(cache.get::<u32>("k").await.expect("get"), None);
            let stats = cache.stats();
            assert_eq!((stats.hits, stats.stale_hits, stats.misses), (3, 1, 1));
        }
    }
}
