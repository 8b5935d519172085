//! The near tier: an in-process copy of recently read Redis entries, in front of Redis,
//! kept coherent across processes by Redis itself.
//!
//! - **Reads** ask the near tier first ([`Near::get`], behind `Backend::get_now`, so a
//!   near hit costs no future and no round trip), then Redis, whose answer fills the
//!   near tier. The fill reads the entry's remaining time (`PTTL`) in the same round
//!   trip: a near entry never outlives its Redis entry, nor `near_ttl`.
//! - **Writes** go to Redis, and evict the key from this process's near tier before and
//!   after (the next read fills it again). Writing the new value through to the near
//!   tier would not survive: the invalidation of this very write reaches this process
//!   too, a moment later.
//! - **Other processes' writes** evict the key here through a dedicated connection (the
//!   *invalidation connection*): RESP3 client-side caching in broadcasting mode
//!   (`CLIENT TRACKING on BCAST PREFIX <key_prefix>:`, the default: Redis itself reports
//!   every change under the prefix, whoever makes it, expiries, evictions and `FLUSHDB`
//!   included), or a pub/sub channel on which every writer announces the keys it
//!   changed (`near_invalidation=pubsub`; the default on Redis Cluster, where
//!   `PUBLISH` reaches every node). docs/redis.md says how the two were measured.
//! - **Faults.** Until the invalidation connection is up, and from the moment it drops
//!   until it is up again, the near tier is empty and bypassed (invalidations may have
//!   been missed meanwhile): reads go to Redis, fail-open as without a near tier. A
//!   Redis restart drops the connection, so nothing read before it survives it.
//!
//! **The fill race.** A read that fetched a value just before another process changed
//! it must not put the old value in the near tier after the invalidation came and went.
//! Every key hashes to a *stripe* with a sequence number; an invalidation bumps it (and
//! a flush bumps them all) under the stripe's lock, then evicts. A read takes a
//! [`Ticket`] (the stripe's sequence) before sending its command, and fills only if the
//! sequence has not moved, checked under the same lock as it inserts. Any change that
//! Redis applies after it answered the read is reported after the read was sent, so
//! either it arrives before the fill (and the fill is dropped) or after (and evicts
//! it).

use std::collections::hash_map::DefaultHasher;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use cached_backend::{CacheError, Value};
use quanta::Instant;
use redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use redis::{AsyncConnectionConfig, PushInfo, PushKind};
use tokio::sync::Notify;

/// Stripes of the fill guard: an invalidation makes the fills in flight for the keys of
/// one stripe (1 in 256 of all keys) try again later.
const STRIPES: usize = 256;

/// The first wait before connecting the invalidation connection again; doubled up to
/// [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How the near tiers of the processes sharing a Redis hear of each other's writes.
///
/// ```
/// use cached_redis::{Invalidation, NearConfig};
/// let near = NearConfig::new(10_000).invalidation(Invalidation::PubSub);
/// assert_eq!(near.get_invalidation(), Some(Invalidation::PubSub));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidation {
    /// RESP3 client-side caching, broadcasting mode (`CLIENT TRACKING on BCAST PREFIX`):
    /// Redis reports every change of a key under the cache's prefix, whoever made it
    /// (`redis-cli`, another program, expiry, eviction, `FLUSHDB`). Needs Redis 6 or
    /// later. The default on a single server (`near_invalidation=tracking`).
    Tracking,
    /// A pub/sub channel per database (`cached-kit:near:{db}`; a channel per key prefix
    /// would not do, since caches of several prefixes share one backend and its
    /// processes, and a process drops announced keys it does not hold at the cost of a
    /// hash): each write of cached-kit publishes the keys it changed. Changes made by other programs, and
    /// writes cancelled after they were sent, are not announced. The default on Redis
    /// Cluster (`near_invalidation=pubsub`), where a `PUBLISH` reaches every node.
    PubSub,
}

impl Invalidation {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "tracking" => Some(Invalidation::Tracking),
            "pubsub" => Some(Invalidation::PubSub),
            _ => None,
        }
    }
}

/// The near tier of a Redis cache: how many entries it keeps, how long at most, which
/// keys, and how it hears of other processes' writes.
///
/// From a URL: `redis://host:6379/0?near_max_entries=10000&near_ttl=30` (`near_ttl` in
/// seconds; every key of the database is kept and tracked). In code, given to
/// [`RedisConfig::near`](crate::RedisConfig::near):
///
/// ```
/// use std::time::Duration;
/// use cached_redis::{NearConfig, RedisBackend, RedisConfig};
/// let config = RedisConfig::from_url("redis://127.0.0.1:6379/0")
///     .unwrap()
///     .near(NearConfig::new(10_000).ttl(Duration::from_secs(30)).key_prefix("shop"));
/// let backend = RedisBackend::new(config).unwrap();
/// assert!(cached_core::Backend::near_tier(&backend));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearConfig {
    max_entries: u64,
    ttl: Option<Duration>,
    key_prefix: Option<String>,
    invalidation: Option<Invalidation>,
}

impl NearConfig {
    /// A near tier of at most `max_entries` entries (at least 1), holding each entry as
    /// long as Redis does, tracking every key of the database, invalidated the default
    /// way ([`Invalidation::Tracking`] on a single server, [`Invalidation::PubSub`] on a
    /// cluster).
    ///
    /// ```
    /// assert_eq!(cached_redis::NearConfig::new(0).get_max_entries(), 1);
    /// ```
    pub fn new(max_entries: u64) -> Self {
        Self {
            max_entries: max_entries.max(1),
            ttl: None,
            key_prefix: None,
            invalidation: None,
        }
    }

    /// An upper bound on how long an entry stays in the near tier (its Redis expiry is
    /// one too). Also how long a process that cannot hear other processes' writes (a
    /// network partition that leaves its invalidation connection open) may serve a
    /// value changed elsewhere.
    ///
    /// ```
    /// use std::time::Duration;
    /// let near = cached_redis::NearConfig::new(100).ttl(Duration::from_secs(5));
    /// assert_eq!(near.get_ttl(), Some(Duration::from_secs(5)));
    /// ```
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl.max(Duration::from_millis(1)));
        self
    }

    /// Keeps (and tracks) only the keys of caches with this `key_prefix` (stored keys
    /// `{key_prefix}:...`): Redis then reports changes under that prefix only. Without
    /// it, or with the empty prefix, every key of the database is kept and tracked (so
    /// caches built in code over the same backend with prefixes of their own are served
    /// too, which is what a URL's near tier does).
    ///
    /// ```
    /// let near = cached_redis::NearConfig::new(100).key_prefix("shop");
    /// assert_eq!(near.tracked_prefix(), "shop:");
    /// ```
    #[must_use]
    pub fn key_prefix(mut self, key_prefix: impl Into<String>) -> Self {
        self.key_prefix = Some(key_prefix.into());
        self
    }

    /// How the near tier hears of other processes' writes.
    #[must_use]
    pub fn invalidation(mut self, invalidation: Invalidation) -> Self {
        self.invalidation = Some(invalidation);
        self
    }

    /// The bound in entries.
    pub fn get_max_entries(&self) -> u64 {
        self.max_entries
    }

    /// The bound on an entry's stay, if any.
    pub fn get_ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// The invalidation mechanism asked for (`None`: the default for the target).
    pub fn get_invalidation(&self) -> Option<Invalidation> {
        self.invalidation
    }

    /// The prefix of the stored keys kept and tracked (empty: all keys).
    ///
    /// ```
    /// assert_eq!(cached_redis::NearConfig::new(1).key_prefix("").tracked_prefix(), "");
    /// ```
    pub fn tracked_prefix(&self) -> String {
        match self.key_prefix.as_deref() {
            None | Some("") => String::new(),
            Some(p) => format!("{p}:"),
        }
    }

    /// The near parameters of a cache URL (`near_max_entries`, `near_ttl`,
    /// `near_invalidation`), taken. A URL's near tier keeps and tracks every key: the
    /// URL's `key_prefix` is the cache's, and caches built over the same backend in code
    /// may have others (the products example's `pages`).
    pub(crate) fn from_cache_url(
        url: &mut cached_backend::CacheUrl,
    ) -> Result<Option<Self>, CacheError> {
        let max =
            url.take_parsed::<u64>("near_max_entries", "a whole number of entries, at least 1")?;
        let ttl = url.take_parsed::<u64>("near_ttl", "whole seconds, at least 1")?;
        let invalidation = url.take("near_invalidation");
        let Some(max) = max else {
            if ttl.is_some() || invalidation.is_some() {
                return Err(CacheError::config(
                    url.origin(),
                    "`near_ttl` and `near_invalidation` configure a near tier: add `near_max_entries=N` to have one",
                ));
            }
            return Ok(None);
        };
        if max == 0 {
            return Err(CacheError::config(
                url.origin(),
                "`near_max_entries=0` is not valid: expected at least 1 (or leave it out for no near tier)",
            ));
        }
        let mut near = NearConfig::new(max);
        match ttl {
            Some(0) => {
                return Err(CacheError::config(
                    url.origin(),
                    "`near_ttl=0` is not valid: expected at least 1 second",
                ))
            }
            Some(secs) => near = near.ttl(Duration::from_secs(secs)),
            None => {}
        }
        if let Some(raw) = invalidation {
            let Some(mode) = Invalidation::parse(&raw) else {
                return Err(CacheError::config(
                    url.origin(),
                    format!(
                        "`near_invalidation={raw}` is not valid: expected `tracking` or `pubsub`"
                    ),
                ));
            };
            near = near.invalidation(mode);
        }
        Ok(Some(near))
    }
}

/// The state of a backend's near tier, from
/// [`RedisBackend::near_status`](crate::RedisBackend::near_status); for monitoring and
/// tests.
///
/// ```
/// let backend = cached_redis::RedisBackend::from_url("redis://127.0.0.1:1/0?near_max_entries=10").unwrap();
/// let status = backend.near_status().unwrap();
/// // Nothing connected yet: the near tier is bypassed until invalidations flow.
/// assert!(!status.live);
/// assert_eq!(status.entries, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearStatus {
    /// Whether invalidations flow, so that the near tier is used.
    pub live: bool,
    /// Entries held now (expired ones count until they are read or pushed out).
    pub entries: u64,
    /// Keys evicted because Redis reported them changed (or, with pub/sub, another
    /// writer announced them).
    pub invalidations: u64,
    /// Times the near tier was emptied as a whole: a disconnection, a reconnection, a
    /// `clear`, a `FLUSHDB`.
    pub flushes: u64,
    /// Times the invalidation connection was set up.
    pub connects: u64,
    /// The mechanism in use.
    pub invalidation: Invalidation,
}

#[derive(Clone)]
struct Entry {
    value: Value,
    /// `None`: until evicted or invalidated.
    expires: Option<Instant>,
}

/// What a read saw of its key's stripe before it was sent: it fills only if nothing
/// moved since.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    stripe: usize,
    seq: u64,
}

/// The near tier of one backend.
pub(crate) struct Near {
    entries: quick_cache::sync::Cache<Box<str>, Entry>,
    /// The fill guard's sequence numbers; `live` changes only with all of them locked.
    stripes: Box<[Mutex<u64>]>,
    live: AtomicBool,
    /// The invalidation connection that made the tier live (by number).
    current: AtomicU64,
    next_connection: AtomicU64,
    ttl: Option<Duration>,
    prefix: Box<str>,
    mode: Invalidation,
    /// The pub/sub channel (`Invalidation::PubSub`).
    channel: String,
    /// Whether a watcher task runs.
    watching: AtomicBool,
    /// Tells the watcher task to end (the backend is gone).
    stop: Arc<Notify>,
    /// Where to open the invalidation connection (RESP3): the server, or every seed
    /// node of a cluster (tried in turn).
    clients: Vec<redis::Client>,
    connect_timeout: Duration,
    invalidations: AtomicU64,
    flushes: AtomicU64,
    connects: AtomicU64,
}

impl std::fmt::Debug for Near {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Near")
            .field("prefix", &self.prefix)
            .field("mode", &self.mode)
            .field("live", &self.live.load(Ordering::Relaxed))
            .finish()
    }
}

impl Drop for Near {
    fn drop(&mut self) {
        // The watcher holds only a weak reference: tell it to close its connection.
        self.stop.notify_one();
    }
}

fn lock(m: &Mutex<u64>) -> MutexGuard<'_, u64> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Near {
    pub(crate) fn new(
        config: &NearConfig,
        mode: Invalidation,
        clients: Vec<redis::Client>,
        connect_timeout: Duration,
    ) -> Self {
        let items = usize::try_from(config.max_entries).unwrap_or(usize::MAX);
        let prefix = config.tracked_prefix();
        let db = clients
            .first()
            .map_or(0, |c| c.get_connection_info().redis_settings().db());
        Self {
            entries: quick_cache::sync::Cache::new(items),
            stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
            live: AtomicBool::new(false),
            current: AtomicU64::new(0),
            next_connection: AtomicU64::new(0),
            ttl: config.ttl,
            channel: format!("cached-kit:near:{db}"),
            prefix: prefix.into(),
            mode,
            watching: AtomicBool::new(false),
            stop: Arc::new(Notify::new()),
            clients,
            connect_timeout,
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            connects: AtomicU64::new(0),
        }
    }

    pub(crate) fn status(&self) -> NearStatus {
        NearStatus {
            live: self.live.load(Ordering::Acquire),
            entries: self.entries.len() as u64,
            invalidations: self.invalidations.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            connects: self.connects.load(Ordering::Relaxed),
            invalidation: self.mode,
        }
    }

    /// Whether writers must announce their keys (pub/sub).
    pub(crate) fn publishes(&self) -> bool {
        self.mode == Invalidation::PubSub
    }

    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// The live value under `key`, if the near tier holds one.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<Value> {
        let entry = self.entries.get(key)?;
        match entry.expires {
            Some(at) if Instant::now() >= at => {
                self.entries.remove(key);
                None
            }
            _ => Some(entry.value),
        }
    }

    fn stripe(key: &str) -> usize {
        // Deterministic within the process (SipHash with fixed keys); off the hit path.
        let hasher = BuildHasherDefault::<DefaultHasher>::default();
        (hasher.hash_one(key) as usize) % STRIPES
    }

    /// A ticket for a read of `key` about to be sent; `None` when the near tier is not
    /// to be filled (not live, or a key outside the tracked prefix).
    pub(crate) fn ticket(&self, key: &str) -> Option<Ticket> {
        if !key.starts_with(&*self.prefix) {
            return None;
        }
        let stripe = Self::stripe(key);
        let seq = lock(&self.stripes[stripe]);
        // `live` changes only with every stripe locked.
        self.live
            .load(Ordering::Acquire)
            .then_some(Ticket { stripe, seq: *seq })
    }

    /// Puts what a read with `ticket` found in the near tier, unless anything moved
    /// since the ticket was taken. `pttl_ms`: Redis's `PTTL` of the key (-1: no expiry,
    /// -2: gone).
    pub(crate) fn fill(&self, key: &str, ticket: Ticket, value: Value, pttl_ms: i64) {
        let redis_ttl = match pttl_ms {
            -1 => None,
            ms if ms > 0 => Some(Duration::from_millis(ms.unsigned_abs())),
            // Gone, or expiring this very millisecond.
            _ => return,
        };
        let ttl = match (redis_ttl, self.ttl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Beyond the clock's range is as good as never.
        let expires = ttl.and_then(|ttl| Instant::now().checked_add(ttl));
        let seq = lock(&self.stripes[ticket.stripe]);
        if *seq == ticket.seq {
            self.entries.insert(key.into(), Entry { value, expires });
        }
    }

    /// Evicts `key` and makes the fills in flight for its stripe give up.
    pub(crate) fn invalidate(&self, key: &str) {
        let stripe = Self::stripe(key);
        let mut seq = lock(&self.stripes[stripe]);
        *seq = seq.wrapping_add(1);
        self.entries.remove(key);
    }

    /// Empties the near tier; `live` becomes `now_live` when given.
    fn reset(&self, now_live: Option<bool>) {
        let mut all: Vec<MutexGuard<'_, u64>> = self.stripes.iter().map(lock).collect();
        for seq in &mut all {
            **seq = seq.wrapping_add(1);
        }
        if let Some(live) = now_live {
            self.live.store(live, Ordering::Release);
        }
        self.entries.clear();
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// Empties the near tier (a `clear`, a `FLUSHDB`, an announcement that cannot be
    /// read).
    pub(crate) fn flush(&self) {
        self.reset(None);
    }

    fn go_live(&self, connection: u64) {
        self.current.store(connection, Ordering::Release);
        self.connects.fetch_add(1, Ordering::Relaxed);
        self.reset(Some(true));
    }

    /// Bypasses and empties the near tier, if `connection` is the one that made it live
    /// (a late notice from an older connection changes nothing).
    fn go_dark(&self, connection: Option<u64>) {
        if connection.is_some_and(|c| c != self.current.load(Ordering::Acquire)) {
            return;
        }
        self.reset(Some(false));
    }

    /// Starts the watcher task on the current Tokio runtime unless one runs. It opens
    /// the invalidation connection, makes the near tier live, and keeps it so until the
    /// connection drops (then opens it again). Without a runtime, nothing starts: the
    /// near tier stays bypassed.
    pub(crate) fn watch(self: &Arc<Self>) {
        if self.watching.load(Ordering::Acquire) || self.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.watching.store(false, Ordering::Release);
            return;
        };
        // The guard is made here, not in the task: a task dropped before its first poll
        // (its runtime shutting down) still marks the watcher gone.
        let watching = Watching(Arc::downgrade(self));
        runtime.spawn(watcher(
            watching,
            Arc::downgrade(self),
            Arc::clone(&self.stop),
        ));
    }

    /// What a push message on the invalidation connection means.
    fn on_push(&self, connection: u64, info: PushInfo) {
        match info.kind {
            PushKind::Invalidate => {
                for data in info.data {
                    match data {
                        redis::Value::Array(keys) => {
                            for key in keys {
                                self.invalidate_reported(&key);
                            }
                        }
                        // `FLUSHDB`/`FLUSHALL`, or a shape this version does not know.
                        _ => self.flush(),
                    }
                }
            }
            PushKind::Message if self.mode == Invalidation::PubSub => match info.data.get(1) {
                Some(redis::Value::BulkString(payload)) => match announced(payload) {
                    Some(Announced::All) | None => self.flush(),
                    Some(Announced::Keys(keys)) => {
                        for key in keys {
                            self.invalidations.fetch_add(1, Ordering::Relaxed);
                            self.invalidate(key);
                        }
                    }
                },
                _ => self.flush(),
            },
            PushKind::Disconnection => self.go_dark(Some(connection)),
            _ => {}
        }
    }

    fn invalidate_reported(&self, key: &redis::Value) {
        let text = match key {
            redis::Value::BulkString(b) => std::str::from_utf8(b).ok(),
            redis::Value::SimpleString(s) => Some(s.as_str()),
            // Not a key at all: everything may have changed.
            _ => return self.flush(),
        };
        // A key that is not UTF-8 was never stored here.
        if let Some(key) = text {
            self.invalidations.fetch_add(1, Ordering::Relaxed);
            self.invalidate(key);
        }
    }
}

/// What a pub/sub announcement says changed.
#[derive(Debug, PartialEq, Eq)]
enum Announced<'a> {
    /// Every key (a `clear`).
    All,
    Keys(Vec<&'a str>),
}

/// The announcement of `keys` changed: each as `{length}:{key}`, so that any text may
/// be a key; `*` for all keys.
pub(crate) fn announcement<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for key in keys {
        out.extend_from_slice(key.len().to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(key.as_bytes());
    }
    out
}

/// The announcement meaning "every key changed".
pub(crate) const ANNOUNCE_ALL: &[u8] = b"*";

/// Reads an announcement; `None` when it is malformed (then everything is flushed).
fn announced(payload: &[u8]) -> Option<Announced<'_>> {
    if payload == ANNOUNCE_ALL {
        return Some(Announced::All);
    }
    let text = std::str::from_utf8(payload).ok()?;
    let mut keys = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (len, after) = rest.split_once(':')?;
        let len: usize = len.parse().ok()?;
        let key = after.get(..len)?;
        keys.push(key);
        rest = &after[len..];
    }
    Some(Announced::Keys(keys))
}

/// The push sender of one invalidation connection: handles each message as the
/// connection's driver reads it.
struct Pushes {
    near: Weak<Near>,
    connection: u64,
    disconnected: Arc<Notify>,
}

impl AsyncPushSender for Pushes {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        if info.kind == PushKind::Disconnection {
            self.disconnected.notify_one();
        }
        if let Some(near) = self.near.upgrade() {
            near.on_push(self.connection, info);
        }
        Ok(())
    }
}

/// Marks the watcher gone when its task ends (the runtime shut down, the backend was
/// dropped), leaving the near tier bypassed until another starts.
struct Watching(Weak<Near>);

impl Drop for Watching {
    fn drop(&mut self) {
        if let Some(near) = self.0.upgrade() {
            near.go_dark(None);
            near.watching.store(false, Ordering::Release);
        }
    }
}

/// The watcher task: keeps an invalidation connection open, and the near tier live
/// while it is.
async fn watcher(_watching: Watching, near: Weak<Near>, stop: Arc<Notify>) {
    let mut backoff = MIN_BACKOFF;
    let mut attempt = 0usize;
    loop {
        let disconnected = Arc::new(Notify::new());
        let Some((connection, client, config, mode, target)) = near.upgrade().map(|n| {
            let connection = n.next_connection.fetch_add(1, Ordering::Relaxed) + 1;
            let client = n.clients[attempt % n.clients.len().max(1)].clone();
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(n.connect_timeout))
                .set_response_timeout(Some(n.connect_timeout))
                .set_push_sender(Pushes {
                    near: near.clone(),
                    connection,
                    disconnected: Arc::clone(&disconnected),
                });
            let target = match n.mode {
                Invalidation::Tracking => n.prefix.to_string(),
                Invalidation::PubSub => n.channel.clone(),
            };
            (connection, client, config, n.mode, target)
        }) else {
            return;
        };
        attempt = attempt.wrapping_add(1);
        let opened = tokio::select! {
            opened = open(&client, &config, mode, &target) => opened,
            () = stop.notified() => return,
        };
        match opened {
            Ok(conn) => {
                let Some(n) = near.upgrade() else { return };
                n.go_live(connection);
                drop(n);
                backoff = MIN_BACKOFF;
                tracing::debug!(mode = ?mode, "near tier: invalidations flow");
                tokio::select! {
                    () = disconnected.notified() => {}
                    () = stop.notified() => return,
                }
                drop(conn);
                if let Some(n) = near.upgrade() {
                    n.go_dark(Some(connection));
                }
                tracing::debug!(
                    "near tier: the invalidation connection dropped; bypassed until it is back"
                );
            }
            Err(e) => {
                tracing::debug!(error = %e, "near tier: cannot open the invalidation connection; bypassed");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.notified() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Opens an invalidation connection and subscribes it.
async fn open(
    client: &redis::Client,
    config: &AsyncConnectionConfig,
    mode: Invalidation,
    target: &str,
) -> redis::RedisResult<MultiplexedConnection> {
    let mut conn = client
        .get_multiplexed_async_connection_with_config(config)
        .await?;
    match mode {
        Invalidation::Tracking => {
            let mut cmd = redis::cmd("CLIENT");
            cmd.arg("TRACKING").arg("ON").arg("BCAST");
            if !target.is_empty() {
                cmd.arg("PREFIX").arg(target);
            }
            cmd.query_async::<()>(&mut conn).await?;
        }
        Invalidation::PubSub => conn.subscribe(target).await?,
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near() -> Near {
        Near::new(
            &NearConfig::new(100).key_prefix("p"),
            Invalidation::Tracking,
            Vec::new(),
            Duration::from_secs(1),
        )
    }

    #[test]
    fn fills_only_while_live_and_only_under_the_prefix() {
        let near = near();
        assert!(near.ticket("p:1:k").is_none(), "not live yet");
        near.go_live(1);
        assert!(near.ticket("q:1:k").is_none(), "another prefix");
        let t = near.ticket("p:1:k").expect("a ticket");
        near.fill("p:1:k", t, Value::Int(7), -1);
        assert!(matches!(near.get("p:1:k"), Some(Value::Int(7))));
        near.go_dark(Some(1));
        assert!(near.get("p:1:k").is_none(), "emptied when dark");
        assert!(near.ticket("p:1:k").is_none());
    }

    #[test]
    fn an_invalidation_during_a_read_drops_its_fill() {
        let near = near();
        near.go_live(1);
        let t = near.ticket("p:1:k").expect("a ticket");
        near.invalidate("p:1:k");
        near.fill("p:1:k", t, Value::Int(1), -1);
        assert!(near.get("p:1:k").is_none());
        // A reconnection in between too.
        let t = near.ticket("p:1:k").expect("a ticket");
        near.go_dark(Some(1));
        near.go_live(2);
        near.fill("p:1:k", t, Value::Int(1), -1);
        assert!(near.get("p:1:k").is_none());
        // A late notice from the old connection changes nothing.
        near.go_dark(Some(1));
        assert!(near.status().live);
    }

    #[test]
    fn entries_never_outlive_redis_or_near_ttl() {
        let near = Near::new(
            &NearConfig::new(10).ttl(Duration::from_millis(30)),
            Invalidation::Tracking,
            Vec::new(),
            Duration::from_secs(1),
        );
        near.go_live(1);
        let t = near.ticket("a").expect("ticket");
        near.fill("a", t, Value::Int(1), 60_000);
        let t = near.ticket("b").expect("ticket");
        near.fill("b", t, Value::Int(1), -2);
        assert!(near.get("b").is_none(), "gone in Redis");
        assert!(near.get("a").is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(near.get("a").is_none(), "near_ttl bounds it");
    }

    #[test]
    fn reported_changes_evict_and_flushes_empty() {
        let near = near();
        near.go_live(3);
        for k in ["p:1:a", "p:1:b"] {
            let t = near.ticket(k).expect("ticket");
            near.fill(k, t, Value::Int(1), -1);
        }
        near.on_push(
            3,
            PushInfo {
                kind: PushKind::Invalidate,
                data: vec![redis::Value::Array(vec![redis::Value::BulkString(
                    b"p:1:a".to_vec(),
                )])],
            },
        );
        assert!(near.get("p:1:a").is_none());
        assert!(near.get("p:1:b").is_some());
        near.on_push(
            3,
            PushInfo {
                kind: PushKind::Invalidate,
                data: vec![redis::Value::Nil],
            },
        );
        assert!(near.get("p:1:b").is_none(), "FLUSHDB empties");
        near.on_push(
            3,
            PushInfo {
                kind: PushKind::Disconnection,
                data: vec![],
            },
        );
        assert!(!near.status().live);
    }

    #[test]
    fn announcements_round_trip_and_garbage_flushes() {
        let keys = ["p:1:a", "p:1:with:colons", "", "p:1:\u{e9}"];
        let payload = announcement(keys);
        assert_eq!(announced(&payload), Some(Announced::Keys(keys.to_vec())));
        assert_eq!(announced(ANNOUNCE_ALL), Some(Announced::All));
        for garbage in [
            &b"5:abc"[..],
            b"x:abc",
            b"3",
            b"\xff",
            b"99999999999999999999999:a",
        ] {
            assert_eq!(announced(garbage), None, "{garbage:?}");
        }
    }

    proptest::proptest! {
        /// Whatever another program publishes on the channel, reading it never panics.
        #[test]
        fn announcements_never_panic(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = announced(&payload);
        }
    }
}
