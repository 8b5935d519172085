//! [`RedisBackend`]: the [`Backend`] trait over the shared [`Connection`].

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cached_backend::{Backend, CacheError, Ttl, Value};
use redis::{Cmd, RedisError, Script};

use crate::breaker::BreakerState;
use crate::config::RedisConfig;
#[cfg(feature = "cluster")]
use crate::connection::Link;
use crate::connection::{push_clients, redis_cause, Connection, RedisMetrics, NAME};
use crate::near::{announcement, Invalidation, Near, NearStatus, Ticket, ANNOUNCE_ALL};

/// How many keys one `SCAN` step asks for, and one `UNLINK` deletes, during `clear`.
const CLEAR_BATCH: usize = 500;

/// The error code of the `INCR` script for a value that is not an integer.
const NOT_A_COUNTER: &str = "CKNOTCOUNTER";
/// The error code of the `INCR` script for a sum outside `i64`.
const OVERFLOW: &str = "CKOVERFLOW";

/// `INCRBY`, plus the expiry only when this call created the key. A failed `INCRBY` is
/// told apart without reading Redis's error text: `INCRBY key 0` succeeds exactly when
/// the value is an integer, so then the sum overflowed (`CKOVERFLOW`), otherwise the
/// value is not a counter (`CKNOTCOUNTER`).
static INCR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local existed = redis.call('EXISTS', KEYS[1])
local ok, n = pcall(redis.call, 'INCRBY', KEYS[1], ARGV[1])
if not ok then
  if pcall(redis.call, 'INCRBY', KEYS[1], 0) then
    return redis.error_reply('CKOVERFLOW the counter would overflow a 64-bit integer')
  end
  return redis.error_reply('CKNOTCOUNTER the value is not an integer counter')
end
if existed == 0 and ARGV[2] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
",
    )
});

/// Removes the expiry of an existing key; 1 if it existed, 0 if not.
static PERSIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('PERSIST', KEYS[1])
return 1
",
    )
});

/// Deletes `KEYS[1]` only if it holds exactly `ARGV[1]`: releasing an owned lock.
static DELETE_IF_EQUALS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// Gives `KEYS[1]` the expiry `ARGV[2]` ms only if it holds exactly `ARGV[1]`:
/// extending an owned lock.
static EXPIRE_IF_EQUALS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// The Redis backend: one multiplexed, auto-reconnecting connection (a `redis` crate
/// `MultiplexedConnection`, made again when it breaks, or a cluster connection) per
/// Tokio runtime, explicit timeouts, and a circuit breaker.
///
/// Building it never connects: the connection is made on first use, so Redis being
/// down at start-up is not a start-up failure, only a series of misses. Clones share
/// the connection, and so does a
/// [`RedisThrottleStore::from_backend`](crate::throttle::RedisThrottleStore::from_backend).
///
/// With a [near tier](crate::NearConfig) (`near_max_entries=N` in the URL, or
/// [`RedisConfig::near`]), recently read entries are also kept in process and served
/// from there ([`Backend::get_now`]), kept coherent with every other process by Redis's
/// client-side caching (or pub/sub): see docs/redis.md.
///
/// ```no_run
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use cached_core::Cache;
/// use cached_redis::RedisBackend;
/// let backend = RedisBackend::from_url("redis://127.0.0.1:6379/0?response_timeout=200")?;
/// let cache = Cache::builder(backend).key_prefix("shop").build();
/// cache.set("product:42", &"lamp".to_string(), Duration::from_secs(300)).await?;
/// # Ok::<(), cached_core::CacheError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct RedisBackend {
    conn: Arc<Connection>,
    near: Option<Arc<Near>>,
}

/// What a write changes, for the near tiers.
enum Changed<'a> {
    Key(&'a str),
    Keys(&'a [String]),
    All,
}

/// Evicts what a write changes from this process's near tier when the write starts and
/// again when it ends, however it ends (a write cancelled after it was sent may still be
/// applied): a read that raced the write cannot leave the old value behind.
struct Evict<'a> {
    near: &'a Near,
    changed: &'a Changed<'a>,
}

impl Evict<'_> {
    fn now(&self) {
        match self.changed {
            Changed::Key(key) => self.near.invalidate(key),
            Changed::Keys(keys) => keys.iter().for_each(|k| self.near.invalidate(k)),
            Changed::All => self.near.flush(),
        }
    }
}

impl Drop for Evict<'_> {
    fn drop(&mut self) {
        self.now();
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("config", self.conn.config())
            .field("breaker", &self.conn.breaker_state())
            .finish()
    }
}

impl RedisBackend {
    /// A backend for a `redis://`, `rediss://` or `redis+cluster://` URL (see
    /// [`RedisConfig::from_url`] for its parameters). Does not connect.
    ///
    /// ```
    /// let backend = cached_redis::RedisBackend::from_url("redis://127.0.0.1:1/0").unwrap();
    /// // Nothing listens on port 1, and that is not an error until the first call.
    /// assert_eq!(cached_core::Backend::name(&backend), "redis");
    /// ```
    pub fn from_url(url: &str) -> Result<Self, CacheError> {
        Self::new(RedisConfig::from_url(url)?)
    }

    /// A backend for `config`. Does not connect.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cached_redis::{RedisBackend, RedisConfig};
    /// let config = RedisConfig::from_url("redis://127.0.0.1:6379/0")
    ///     .unwrap()
    ///     .response_timeout(Duration::from_millis(200));
    /// let backend = RedisBackend::new(config).unwrap();
    /// assert_eq!(backend.config().get_response_timeout(), Duration::from_millis(200));
    /// ```
    pub fn new(config: RedisConfig) -> Result<Self, CacheError> {
        let near = match &config.near {
            None => None,
            Some(near) => {
                let mode = near.get_invalidation().unwrap_or(if config.is_cluster() {
                    Invalidation::PubSub
                } else {
                    Invalidation::Tracking
                });
                let clients = push_clients(&config)?;
                Some(Arc::new(Near::new(
                    near,
                    mode,
                    clients,
                    config.connect_timeout,
                )))
            }
        };
        Ok(Self {
            conn: Arc::new(Connection::new(config)?),
            near,
        })
    }

    /// The state of the near tier, if this backend has one.
    ///
    /// ```
    /// let plain = cached_redis::RedisBackend::from_url("redis://127.0.0.1:6379").unwrap();
    /// assert!(plain.near_status().is_none());
    /// let tiered = cached_redis::RedisBackend::from_url("redis://127.0.0.1:6379?near_max_entries=100").unwrap();
    /// assert_eq!(tiered.near_status().map(|s| s.entries), Some(0));
    /// ```
    pub fn near_status(&self) -> Option<NearStatus> {
        self.near.as_ref().map(|n| n.status())
    }

    /// Runs the write `op`, which changes `changed`, keeping the near tiers coherent:
    /// this process's is evicted before and after; with pub/sub, the change is announced
    /// to the others once Redis applied it.
    async fn write<T>(
        &self,
        changed: Changed<'_>,
        op: impl Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        let Some(near) = self.near.as_deref() else {
            return op.await;
        };
        let evict = Evict {
            near,
            changed: &changed,
        };
        evict.now();
        let result = op.await;
        drop(evict);
        if near.publishes() && result.is_ok() {
            self.announce(near, &changed).await;
        }
        result
    }

    /// Publishes what changed on the near tiers' channel. A failure is logged: the other
    /// processes may then serve the old value until their `near_ttl` or the entry's
    /// expiry.
    async fn announce(&self, near: &Near, changed: &Changed<'_>) {
        let payload = match changed {
            Changed::Key(key) => announcement([*key]),
            Changed::Keys(keys) => announcement(keys.iter().map(String::as_str)),
            Changed::All => ANNOUNCE_ALL.to_vec(),
        };
        let channel = near.channel();
        let sent: Result<i64, CacheError> = self
            .conn
            .call(|mut c| async move {
                c.query(redis::cmd("PUBLISH").arg(channel).arg(&payload))
                    .await
            })
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "near tier: could not announce a write to the other processes");
        }
    }

    /// `GET` and `PTTL` in one round trip, filling the near tier with what it finds.
    async fn get_filling(
        &self,
        near: &Near,
        key: &str,
        ticket: Ticket,
    ) -> Result<Option<Value>, CacheError> {
        let (raw, pttl): (Option<Vec<u8>>, i64) = self
            .conn
            .call(|mut c| async move {
                let mut pipe = redis::pipe();
                pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
                pipe.query_async(&mut c).await
            })
            .await?;
        let value = raw.map(from_redis);
        if let Some(v) = &value {
            near.fill(key, ticket, v.clone(), pttl);
        }
        Ok(value)
    }

    /// `MGET` and each key's `PTTL` in one round trip, filling the near tier.
    async fn get_many_filling(
        &self,
        near: &Near,
        keys: &[String],
    ) -> Result<Vec<Option<Value>>, CacheError> {
        let tickets: Vec<Option<Ticket>> = keys.iter().map(|k| near.ticket(k)).collect();
        let replies: Vec<redis::Value> = self
            .conn
            .call(|mut c| async move {
                let mut pipe = redis::pipe();
                pipe.cmd("MGET").arg(keys);
                for key in keys {
                    pipe.cmd("PTTL").arg(key);
                }
                pipe.query_async(&mut c).await
            })
            .await?;
        let mut replies = replies.into_iter();
        let values: Vec<Option<Vec<u8>>> = match replies.next().map(redis::from_redis_value) {
            Some(Ok(values)) => values,
            _ => return Err(CacheError::backend_message(NAME, "MGET answered no values")),
        };
        if values.len() != keys.len() {
            return Err(CacheError::backend_message(
                NAME,
                format!(
                    "MGET of {} keys answered {} values",
                    keys.len(),
                    values.len()
                ),
            ));
        }
        let mut out = Vec::with_capacity(keys.len());
        for ((key, raw), ticket) in keys.iter().zip(values).zip(tickets) {
            let value = raw.map(from_redis);
            let pttl = replies
                .next()
                .and_then(|v| redis::from_redis_value::<i64>(v).ok());
            if let (Some(v), Some(ticket), Some(pttl)) = (&value, ticket, pttl) {
                near.fill(key, ticket, v.clone(), pttl);
            }
            out.push(value);
        }
        Ok(out)
    }

    /// `set_many` of encoded values: one pipeline (per slot, on a cluster).
    async fn set_many_encoded(
        &self,
        encoded: Vec<(String, Bytes)>,
        ttl: Ttl,
    ) -> Result<(), CacheError> {
        // A pipeline is one round trip; a cluster pipeline must stay within one slot.
        for group in pipeline_groups(self.conn.config(), encoded) {
            let mut pipe = redis::pipe();
            for (key, value) in &group {
                let cmd = pipe.cmd("SET").arg(key).arg(&value[..]);
                if let Some(ttl) = ttl {
                    cmd.arg("PX").arg(millis(ttl));
                }
                cmd.ignore();
            }
            self.conn
                .call(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                .await?;
        }
        Ok(())
    }

    /// One `MGET`, without the near tier.
    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Value>>, CacheError> {
        // One MGET; in a cluster the `redis` crate splits it by slot and reassembles it.
        let raw: Vec<Option<Vec<u8>>> = self
            .conn
            .call(|mut c| async move { c.query(redis::cmd("MGET").arg(keys)).await })
            .await?;
        if raw.len() != keys.len() {
            return Err(CacheError::backend_message(
                NAME,
                format!("MGET of {} keys answered {} values", keys.len(), raw.len()),
            ));
        }
        Ok(raw.into_iter().map(|v| v.map(from_redis)).collect())
    }

    /// Where the circuit breaker stands.
    ///
    /// ```
    /// use cached_redis::{BreakerState, RedisBackend};
    /// let backend = RedisBackend::from_url("redis://127.0.0.1:6379/0").unwrap();
    /// assert_eq!(backend.breaker_state(), BreakerState::Closed);
    /// ```
    pub fn breaker_state(&self) -> BreakerState {
        self.conn.breaker_state()
    }

    /// The counters of this backend's connection (shared with the throttle stores
    /// made [from it](crate::throttle::RedisThrottleStore::from_backend)).
    ///
    /// ```
    /// let backend = cached_redis::RedisBackend::from_url("redis://127.0.0.1:6379").unwrap();
    /// assert_eq!(backend.metrics().calls, 0);
    /// ```
    pub fn metrics(&self) -> RedisMetrics {
        self.conn.metrics()
    }

    /// The configuration this backend was built with.
    ///
    /// ```
    /// let backend = cached_redis::RedisBackend::from_url("redis://127.0.0.1:6379").unwrap();
    /// assert!(!backend.config().is_cluster());
    /// ```
    pub fn config(&self) -> &RedisConfig {
        self.conn.config()
    }

    /// The shared connection, for the other fronts.
    pub(crate) fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    #[cfg(feature = "cluster")]
    async fn clear_cluster(&self, pattern: &str) -> Result<usize, CacheError> {
        use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
        let primaries: redis::Value = self
            .conn
            .call(|mut c| async move { c.query(redis::cmd("CLUSTER").arg("SLOTS")).await })
            .await?;
        let mut nodes = primary_addresses(&primaries);
        nodes.sort();
        nodes.dedup();
        let mut deleted = 0;
        for (host, port) in nodes {
            let mut cursor: u64 = 0;
            loop {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port,
                });
                let (next, keys): (u64, Vec<Vec<u8>>) = self
                    .conn
                    .call(|c| async move {
                        let Link::Cluster(mut c) = c else {
                            return Err(crate::connection::not_cluster());
                        };
                        let mut scan = redis::cmd("SCAN");
                        scan.arg(cursor)
                            .arg("MATCH")
                            .arg(pattern)
                            .arg("COUNT")
                            .arg(CLEAR_BATCH);
                        let v = c.route_command(scan, route).await?;
                        redis::from_redis_value(v).map_err(RedisError::from)
                    })
                    .await?;
                deleted += self.unlink(keys).await?;
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    async fn unlink(&self, keys: Vec<Vec<u8>>) -> Result<usize, CacheError> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.conn
            .call(|mut c| async move { c.query(redis::cmd("UNLINK").arg(&keys)).await })
            .await
    }
}

#[async_trait]
impl Backend for RedisBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn near_tier(&self) -> bool {
        self.near.is_some()
    }

    #[inline]
    fn get_now(&self, key: &str) -> Option<Result<Option<Value>, CacheError>> {
        let value = self.near.as_deref()?.get(key)?;
        Some(Ok(Some(value)))
    }

    async fn get(&self, key: &str) -> Result<Option<Value>, CacheError> {
        if let Some(near) = &self.near {
            near.watch();
            if let Some(ticket) = near.ticket(key) {
                return self.get_filling(near, key, ticket).await;
            }
        }
        // The hit path: one command buffer sized once.
        let mut get = Cmd::with_capacity(2, 3 + key.len());
        get.arg("GET").arg(key);
        let raw: Option<Vec<u8>> = self
            .conn
            .call(|mut c| async move { c.query(&get).await })
            .await?;
        Ok(raw.map(from_redis))
    }

    async fn set(&self, key: &str, value: Value, ttl: Ttl) -> Result<(), CacheError> {
        let value = to_redis(value)?;
        let op = self.conn.call(|mut c| async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(&value[..]);
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(millis(ttl));
            }
            c.query::<()>(&cmd).await
        });
        self.write(Changed::Key(key), op).await
    }

    async fn add(&self, key: &str, value: Value, ttl: Ttl) -> Result<bool, CacheError> {
        let value = to_redis(value)?;
        let op = self.conn.call(|mut c| async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(&value[..]).arg("NX");
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(millis(ttl));
            }
            c.query(&cmd).await
        });
        let reply: redis::Value = self.write(Changed::Key(key), op).await?;
        Ok(!matches!(reply, redis::Value::Nil))
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let op = self
            .conn
            .call(|mut c| async move { c.query(redis::cmd("UNLINK").arg(key)).await });
        let n: usize = self.write(Changed::Key(key), op).await?;
        Ok(n > 0)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Value>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let Some(near) = self.near.as_deref() else {
            return self.mget(keys).await;
        };
        if let Some(near) = &self.near {
            near.watch();
        }
        // What the near tier holds, then the rest from Redis in one round trip.
        let mut out: Vec<Option<Value>> = keys.iter().map(|k| near.get(k)).collect();
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(out);
        }
        let rest: Vec<String> = missing.iter().map(|&i| keys[i].clone()).collect();
        // A cluster pipeline must stay within one slot: there, the rest is not filled.
        let fetched = if self.conn.config().is_cluster() {
            self.mget(&rest).await?
        } else {
            self.get_many_filling(near, &rest).await?
        };
        for (i, value) in missing.into_iter().zip(fetched) {
            out[i] = value;
        }
        Ok(out)
    }

    async fn set_many(&self, entries: Vec<(String, Value)>, ttl: Ttl) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut encoded = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            encoded.push((key, to_redis(value)?));
        }
        let keys: Vec<String> = match self.near {
            Some(_) => encoded.iter().map(|(k, _)| k.clone()).collect(),
            None => Vec::new(),
        };
        self.write(Changed::Keys(&keys), self.set_many_encoded(encoded, ttl))
            .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<usize, CacheError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let op = self
            .conn
            .call(|mut c| async move { c.query(redis::cmd("UNLINK").arg(keys)).await });
        self.write(Changed::Keys(keys), op).await
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Ttl) -> Result<i64, CacheError> {
        let expiry = ttl.map(|t| millis(t).to_string()).unwrap_or_default();
        let op = self.conn.call(|mut c| async move {
            INCR.key(key)
                .arg(delta)
                .arg(&expiry)
                .invoke_async::<i64>(&mut c)
                .await
        });
        let result = self.write(Changed::Key(key), op).await;
        result.map_err(|err| incr_error(key, err))
    }

    async fn touch(&self, key: &str, ttl: Ttl) -> Result<bool, CacheError> {
        self.write(Changed::Key(key), self.touch_redis(key, ttl))
            .await
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, CacheError> {
        let op = self.conn.call(|mut c| async move {
            DELETE_IF_EQUALS
                .key(key)
                .arg(expected)
                .invoke_async(&mut c)
                .await
        });
        let n: i64 = self.write(Changed::Key(key), op).await?;
        Ok(n == 1)
    }

    async fn expire_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let op = self.conn.call(|mut c| async move {
            EXPIRE_IF_EQUALS
                .key(key)
                .arg(expected)
                .arg(millis(ttl))
                .invoke_async(&mut c)
                .await
        });
        let n: i64 = self.write(Changed::Key(key), op).await?;
        Ok(n == 1)
    }

    async fn clear(&self, prefix: &str) -> Result<usize, CacheError> {
        self.write(Changed::All, self.clear_redis(prefix)).await
    }
}

impl RedisBackend {
    async fn touch_redis(&self, key: &str, ttl: Ttl) -> Result<bool, CacheError> {
        match ttl {
            Some(ttl) => {
                let n: i64 = self
                    .conn
                    .call(|mut c| async move {
                        c.query(redis::cmd("PEXPIRE").arg(key).arg(millis(ttl)))
                            .await
                    })
                    .await?;
                Ok(n == 1)
            }
            None => {
                let n: i64 = self
                    .conn
                    .call(|mut c| async move { PERSIST.key(key).invoke_async(&mut c).await })
                    .await?;
                Ok(n == 1)
            }
        }
    }

    async fn clear_redis(&self, prefix: &str) -> Result<usize, CacheError> {
        // SCAN + UNLINK under the prefix only: never FLUSHDB, even for the empty prefix.
        let pattern = format!("{}*", glob_escape(prefix));
        #[cfg(feature = "cluster")]
        if self.conn.config().is_cluster() {
            return self.clear_cluster(&pattern).await;
        }
        let mut deleted = 0;
        let mut cursor: u64 = 0;
        loop {
            let pattern = &pattern;
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .conn
                .call(|mut c| async move {
                    c.query(
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(pattern)
                            .arg("COUNT")
                            .arg(CLEAR_BATCH),
                    )
                    .await
                })
                .await?;
            deleted += self.unlink(keys).await?;
            cursor = next;
            if cursor == 0 {
                return Ok(deleted);
            }
        }
    }
}

/// What a failed `incr` means: the script's codes become the errors the `Backend`
/// trait promises; anything else (Redis unreachable, ...) stays as it is.
fn incr_error(key: &str, err: CacheError) -> CacheError {
    match redis_cause(&err).and_then(RedisError::code) {
        Some(NOT_A_COUNTER) => CacheError::NotACounter(key.to_owned()),
        Some(OVERFLOW) => CacheError::Overflow(key.to_owned()),
        _ => err,
    }
}

/// A value as Redis stores it: encoded bytes as they are, counters as decimal text (so
/// `INCRBY` works on them).
fn to_redis(value: Value) -> Result<Bytes, CacheError> {
    match value {
        Value::Bytes(b) => Ok(b),
        Value::Int(n) => Ok(Bytes::from(n.to_string())),
        _ => Err(CacheError::backend_message(
            NAME,
            "Redis stores encoded values only; the Cache encodes values for backends whose stores_objects() is false",
        )),
    }
}

/// Bytes read back: a plain decimal integer is a counter, anything else is bytes for the
/// codec to check (encoded values start with the non-ASCII magic 0xCA; what another
/// program wrote fails the header check and counts as a decode error).
fn from_redis(raw: Vec<u8>) -> Value {
    match parse_int(&raw) {
        Some(n) => Value::Int(n),
        None => Value::Bytes(Bytes::from(raw)),
    }
}

/// `raw` as an `i64` only if it is exactly how Redis (and `i64::to_string`) writes one.
fn parse_int(raw: &[u8]) -> Option<i64> {
    if raw.is_empty() || raw.len() > 20 {
        return None;
    }
    let text = std::str::from_utf8(raw).ok()?;
    let n: i64 = text.parse().ok()?;
    (n.to_string() == text).then_some(n)
}

/// A ttl in whole milliseconds, rounded up, at least 1 (Redis rejects `PX 0`).
fn millis(ttl: Duration) -> u64 {
    const MAX: u128 = 1 << 50;
    ttl.as_nanos().div_ceil(1_000_000).clamp(1, MAX) as u64
}

/// Escapes `*`, `?`, `[`, `]` and `\` so `prefix` matches only itself in `SCAN MATCH`.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 4);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The entries of a `set_many`, grouped so each group may be one pipeline: everything
/// for one server, one group per hash slot for a cluster.
fn pipeline_groups(
    config: &RedisConfig,
    entries: Vec<(String, Bytes)>,
) -> Vec<Vec<(String, Bytes)>> {
    if !config.is_cluster() {
        return vec![entries];
    }
    let mut groups: Vec<(u16, Vec<(String, Bytes)>)> = Vec::new();
    for (key, value) in entries {
        let slot = crate::slot::key_slot(key.as_bytes());
        match groups.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, group)) => group.push((key, value)),
            None => groups.push((slot, vec![(key, value)])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// The `(host, port)` of every primary in a `CLUSTER SLOTS` reply.
#[cfg(feature = "cluster")]
fn primary_addresses(reply: &redis::Value) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    let redis::Value::Array(ranges) = reply else {
        return out;
    };
    for range in ranges {
        let redis::Value::Array(parts) = range else {
            continue;
        };
        // [start, end, [host, port, id, ...], replicas...]
        let Some(redis::Value::Array(primary)) = parts.get(2) else {
            continue;
        };
        let host = match primary.first() {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(redis::Value::SimpleString(s)) => s.clone(),
            _ => continue,
        };
        let port = match primary.get(1) {
            Some(redis::Value::Int(p)) => u16::try_from(*p).ok(),
            _ => None,
        };
        if let Some(port) = port {
            out.push((host, port));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_decimal_integers_read_back_as_counters() {
        assert!(matches!(from_redis(b"42".to_vec()), Value::Int(42)));
        assert!(matches!(from_redis(b"-7".to_vec()), Value::Int(-7)));
        assert!(matches!(
            from_redis(i64::MIN.to_string().into_bytes()),
            Value::Int(i64::MIN)
        ));
        for not_int in [
            &b"007"[..],
            b"+1",
            b" 1",
            b"1 ",
            b"",
            b"1e3",
            b"99999999999999999999",
            b"\xCA\x4B\x01\x01",
        ] {
            assert!(
                matches!(from_redis(not_int.to_vec()), Value::Bytes(_)),
                "{not_int:?}"
            );
        }
    }

    #[test]
    fn ttls_round_up_to_whole_milliseconds() {
        assert_eq!(millis(Duration::from_micros(1)), 1);
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
        assert_eq!(millis(Duration::from_micros(1500)), 2);
        assert_eq!(millis(Duration::MAX), 1 << 50);
    }

    #[test]
    fn incr_errors_are_told_apart_by_their_code_not_their_text() {
        let code = |code: &str, detail: &str| {
            CacheError::backend(
                NAME,
                redis::make_extension_error(code.into(), Some(detail.into())),
            )
        };
        assert!(matches!(
            incr_error("k", code(NOT_A_COUNTER, "the value is not an integer counter")),
            CacheError::NotACounter(k) if k == "k"
        ));
        assert!(matches!(
            incr_error("k", code(OVERFLOW, "would overflow")),
            CacheError::Overflow(k) if k == "k"
        ));
        // Another error that merely mentions a code in its text stays what it is.
        let other = incr_error("k", code("ERR", "CKOVERFLOW CKNOTCOUNTER in a message"));
        assert_eq!(
            redis_cause(&other).and_then(RedisError::code),
            Some("ERR"),
            "{other:?}"
        );
        assert!(matches!(
            incr_error("k", CacheError::backend_message(NAME, "CKOVERFLOW")),
            CacheError::Backend { .. }
        ));
    }

    #[test]
    fn glob_characters_in_prefixes_match_only_themselves() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(glob_escape(":"), ":");
    }
}
