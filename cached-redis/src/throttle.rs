//! [`RedisThrottleStore`]: throttle state shared by every process that uses one Redis,
//! for both algorithms.
//!
//! Each check is one atomic round trip: a Lua script that reads the server's own clock
//! (`TIME`), so processes agree on time whatever their own clocks say.
//!
//! - The sliding log (the default): the script drops the requests that left the window
//!   from the key's sorted set (`ZREMRANGEBYSCORE`), counts the rest (`ZCARD`) and, only
//!   if there is room, records this request (`ZADD` with a unique member) and sets the
//!   key to expire one period later (`PEXPIRE`), so an idle client leaves nothing behind.
//!   At most N requests are admitted in any trailing window across all processes.
//! - GCRA (`algorithm = "gcra"`): the key is one string, the client's theoretical
//!   arrival time (TAT) in nanoseconds of the server's clock; the script applies
//!   [`Gcra::decide`] to it and, only if the request is admitted, stores the new TAT
//!   with an expiry at that instant, when the bucket is full again and the state means
//!   nothing (an idle client leaves nothing behind). Undoing an admission moves the TAT
//!   back one interval ([`Gcra::undo`]) in another script.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use cached_backend::{CacheError, CacheUrl, Decision, Gcra, Rate, ThrottleStore};
use redis::Script;

use crate::breaker::BreakerState;
use crate::config::{RedisConfig, THROTTLE_PARAMS};
use crate::connection::{Connection, RedisMetrics, NAME};
use crate::RedisBackend;

/// Parameters of a cache URL that mean nothing to throttle logs; accepted (and ignored)
/// so that a `CACHE_URL` configures a throttle store as it is.
const CACHE_ONLY_PARAMS: [&str; 3] = ["version", "default_ttl", "codec"];

/// `KEYS[1]` the log; `ARGV` limit, window in microseconds, this request's member.
/// Returns `{admitted (0/1), remaining, microseconds until the oldest entry leaves}`.
static CHECK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local admitted = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  admitted = 1
  count = count + 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = tonumber(oldest[2]) + window - now
return {admitted, limit - count, reset}
",
    )
});

/// The Lua helpers of the GCRA scripts. A theoretical arrival time (TAT) is an integer
/// of nanoseconds on the Redis server's clock (Unix epoch), the unit of [`Gcra`]; Lua's
/// numbers are doubles, exact only below 2^53, so an instant is handled as a pair
/// `{seconds, nanoseconds}` and only differences (a bucket's span at most) are single
/// numbers. The stored value is the TAT's decimal digits, written without a float.
const GCRA_LIB: &str = r"
local function now_pair()
  local t = redis.call('TIME')
  return {tonumber(t[1]), tonumber(t[2]) * 1000}
end
-- The stored TAT, or nil for a key without one (or holding something else, which the
-- next admission overwrites).
local function read_tat(key)
  local v = redis.call('GET', key)
  if not v or not string.match(v, '^%d+$') or #v > 20 then
    return nil
  end
  if #v <= 9 then
    return {0, tonumber(v)}
  end
  return {tonumber(string.sub(v, 1, -10)), tonumber(string.sub(v, -9))}
end
-- a - b in nanoseconds.
local function diff(a, b)
  return (a[1] - b[1]) * 1000000000 + (a[2] - b[2])
end
-- Stores now + ahead (nanoseconds, > 0), expiring when that instant has passed.
local function store_ahead(key, now, ahead)
  local n = now[2] + ahead
  local ns = math.fmod(n, 1000000000)
  local s = now[1] + (n - ns) / 1000000000
  local tat = string.format('%d%09d', s, ns)
  if s == 0 then
    tat = string.format('%d', ns)
  end
  redis.call('SET', key, tat, 'PX', math.ceil(ahead / 1000000))
  return tat
end
-- Durations returned as integers stay within an i64.
local function capped(ns)
  return math.min(ns, 4000000000000000000)
end
";

/// `KEYS[1]` the TAT; `ARGV` the interval and the bucket's span (interval × burst), in
/// nanoseconds. [`Gcra::decide`] on the server's clock: returns `{0, 0, wait, nil}` for
/// a refusal (nothing stored) or `{1, remaining, reset, tat}` for an admission, whose new
/// TAT is stored and expires when the bucket would be full again.
static CHECK_GCRA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{GCRA_LIB}{}",
        r"
local interval = tonumber(ARGV[1])
local span = tonumber(ARGV[2])
local now = now_pair()
local tat = read_tat(KEYS[1])
local ahead = 0
if tat then
  ahead = math.max(diff(tat, now), 0)
end
local delay = ahead + interval
if delay > span then
  return {0, 0, capped(delay - span), false}
end
local slack = span - delay
local partial = math.fmod(slack, interval)
local remaining = (slack - partial) / interval
local stored = store_ahead(KEYS[1], now, delay)
return {1, capped(remaining), capped(interval - partial), stored}
"
    ))
});

/// `KEYS[1]` the TAT; `ARGV[1]` the interval in nanoseconds. [`Gcra::undo`]: moves the
/// TAT back one interval; a TAT that is then not after now is the same as none, so the
/// key is deleted. Returns 1 if the key held a TAT.
static UNDO_GCRA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{GCRA_LIB}{}",
        r"
local interval = tonumber(ARGV[1])
local now = now_pair()
local tat = read_tat(KEYS[1])
if not tat then
  return 0
end
local ahead = diff(tat, now) - interval
if ahead > 0 then
  store_ahead(KEYS[1], now, ahead)
else
  redis.call('DEL', KEYS[1])
end
return 1
"
    ))
});

/// A [`ThrottleStore`] in Redis: the budgets of every app instance that uses the same
/// server (and key prefix) are shared, exactly.
///
/// Sliding-log keys are `{key_prefix}:throttle:{scope}:{rate}:{client}` (no prefix by
/// default), sorted sets of admission times in microseconds of the Redis server's clock,
/// expiring one period after the newest admission. GCRA keys are
/// `{key_prefix}:throttle:{scope}:gcra:{rate}:{burst}:{client}`, one string per client
/// (O(1) state): its theoretical arrival time in nanoseconds of the server's clock,
/// expiring at that instant, when the client's bucket is full again. Each check (and
/// each undo) is one script on one key, so the store works on one server, a primary, or
/// Redis Cluster alike (the cluster routes the script to the key's slot; no hash tag is
/// needed).
///
/// It reaches Redis exactly as [`RedisBackend`] does, through the same connection code:
/// one multiplexed, auto-reconnecting connection per Tokio runtime made on first use,
/// the connect and response timeouts, TLS (`rediss://`, `ca_cert`) and the circuit
/// breaker of its [`RedisConfig`]. Build it from a URL or a configuration, or
/// [from a backend](RedisThrottleStore::from_backend) to share that backend's
/// connection and breaker. A check that fails or times out is an error, which the
/// throttle turns into admitting (fail open, the default) or refusing the request;
/// while the breaker is open, checks fail at once, and the store recovers by itself
/// when Redis returns.
///
/// A cache's `clear()` deletes every key under its `{key_prefix}:`, so give the store a
/// prefix of its own ([`key_prefix`](RedisThrottleStore::key_prefix)) when it shares a
/// server with a cache that may be cleared under the same prefix.
///
/// Use it with `cached_kit::throttle::set_default_store(store)` (for `#[throttle]` and
/// every layer without its own store) or `ThrottleLayer::store(store)`.
///
/// ```no_run
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cached_core::throttle::{Gcra, Rate, ThrottleStore};
/// use cached_redis::throttle::RedisThrottleStore;
///
/// let store = RedisThrottleStore::from_url("redis://127.0.0.1:6379/0?key_prefix=shop")?;
/// let decision = store.check("throttle:user:10/minute:id:alice", Rate::parse("10/minute")?).await?;
/// assert!(decision.admitted);
/// // GCRA: bursts of 3, then one request every 6 seconds.
/// let gcra = Gcra::new(Rate::parse("10/minute")?, 3);
/// let decision = store.check_gcra("throttle:user:gcra:10/minute:3:id:alice", gcra).await?;
/// assert_eq!(decision.remaining, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct RedisThrottleStore {
    conn: Arc<Connection>,
    /// `"{key_prefix}:"`, or empty.
    prefix: Arc<str>,
    /// Makes this store's log entries unique across processes.
    nonce: u64,
    next: Arc<AtomicU64>,
}

impl std::fmt::Debug for RedisThrottleStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisThrottleStore")
            .field("prefix", &self.prefix)
            .field("config", self.conn.config())
            .field("breaker", &self.conn.breaker_state())
            .finish()
    }
}

impl RedisThrottleStore {
    /// A store for a `redis://`, `rediss://` or `redis+cluster://` URL, with every
    /// parameter of [`RedisConfig::from_url`] plus `key_prefix`. A cache URL is accepted
    /// as it is: its `version`, `default_ttl` and `codec` do not apply to throttle logs
    /// and are ignored. Does not connect.
    ///
    /// ```
    /// use cached_redis::throttle::RedisThrottleStore;
    /// let store = RedisThrottleStore::from_url(
    ///     "redis://127.0.0.1:6379/0?key_prefix=shop&response_timeout=200&default_ttl=60",
    /// )
    /// .unwrap();
    /// assert_eq!(store.config().get_response_timeout().as_millis(), 200);
    /// let err = RedisThrottleStore::from_url("http://x").unwrap_err();
    /// assert!(err.to_string().contains("`http://` is not a Redis URL scheme"), "{err}");
    /// ```
    pub fn from_url(url: &str) -> Result<Self, CacheError> {
        let mut url = CacheUrl::parse("RedisThrottleStore::from_url", url)?;
        let store = Self::from_cache_url(&mut url)?;
        url.finish(THROTTLE_PARAMS)?;
        Ok(store)
    }

    /// A store from a parsed URL, its parameters consumed (the throttle store factory of
    /// [`schemes`](crate::schemes)).
    pub(crate) fn from_cache_url(url: &mut CacheUrl) -> Result<Self, CacheError> {
        let prefix = url.take("key_prefix").unwrap_or_default();
        for name in CACHE_ONLY_PARAMS {
            url.take(name);
        }
        let config = RedisConfig::from_cache_url(url)?;
        Ok(Self::from_config(config)?.key_prefix(&prefix))
    }

    /// A store for the server (or cluster) `config` describes, with all its settings:
    /// timeouts, breaker, TLS roots. It has a connection of its own. Does not connect.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cached_redis::{throttle::RedisThrottleStore, RedisConfig};
    /// let config = RedisConfig::from_url("redis://127.0.0.1:6379/0?response_timeout=200")
    ///     .unwrap()
    ///     .breaker(3, Duration::from_millis(500));
    /// let store = RedisThrottleStore::from_config(config).unwrap();
    /// assert_eq!(store.config().get_response_timeout(), Duration::from_millis(200));
    /// ```
    pub fn from_config(config: RedisConfig) -> Result<Self, CacheError> {
        Ok(Self::on(Arc::new(Connection::new(config)?)))
    }

    /// A store that shares `backend`'s connection: the same server, settings, circuit
    /// breaker and counters ([`RedisBackend::metrics`] counts its checks too).
    ///
    /// ```
    /// use cached_redis::{throttle::RedisThrottleStore, RedisBackend};
    /// let backend = RedisBackend::from_url("redis://127.0.0.1:6379/0").unwrap();
    /// let store = RedisThrottleStore::from_backend(&backend).key_prefix("shop-throttle");
    /// assert_eq!(store.breaker_state(), backend.breaker_state());
    /// ```
    pub fn from_backend(backend: &RedisBackend) -> Self {
        Self::on(Arc::clone(backend.connection()))
    }

    fn on(conn: Arc<Connection>) -> Self {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            conn,
            prefix: Arc::from(""),
            nonce: RandomState::new().hash_one((std::process::id(), seed)),
            next: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Puts `prefix:` in front of every key, so apps sharing a server keep apart. The
    /// store keeps its connection.
    ///
    /// ```
    /// let store = cached_redis::throttle::RedisThrottleStore::from_url("redis://127.0.0.1/")
    ///     .unwrap()
    ///     .key_prefix("shop");
    /// # let _ = store;
    /// ```
    #[must_use]
    pub fn key_prefix(mut self, prefix: &str) -> Self {
        self.prefix = if prefix.is_empty() {
            Arc::from("")
        } else {
            Arc::from(format!("{prefix}:"))
        };
        self
    }

    /// How long to wait for a connection: the same as building the store
    /// [from a configuration](RedisThrottleStore::from_config) with this timeout, so the
    /// store gets a connection of its own (one made
    /// [from a backend](RedisThrottleStore::from_backend) stops sharing it).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let store = cached_redis::throttle::RedisThrottleStore::from_url("redis://127.0.0.1/")
    ///     .unwrap()
    ///     .connect_timeout(Duration::from_millis(250))
    ///     .response_timeout(Duration::from_millis(100));
    /// assert_eq!(store.config().get_connect_timeout(), Duration::from_millis(250));
    /// assert_eq!(store.config().get_response_timeout(), Duration::from_millis(100));
    /// ```
    #[must_use]
    pub fn connect_timeout(self, timeout: Duration) -> Self {
        self.reconfigured(|config| config.connect_timeout(timeout))
    }

    /// How long to wait for an answer; like
    /// [`connect_timeout`](RedisThrottleStore::connect_timeout), the store gets a
    /// connection of its own.
    #[must_use]
    pub fn response_timeout(self, timeout: Duration) -> Self {
        self.reconfigured(|config| config.response_timeout(timeout))
    }

    fn reconfigured(mut self, change: impl FnOnce(RedisConfig) -> RedisConfig) -> Self {
        let config = change(self.conn.config().clone());
        match Connection::new(config) {
            Ok(conn) => self.conn = Arc::new(conn),
            // Unreachable in practice: the same server and TLS settings built the
            // current connection, and only a timeout differs.
            Err(error) => tracing::error!(
                %error,
                "the Redis throttle store could not take new timeouts and keeps its connection"
            ),
        }
        self
    }

    /// Where the circuit breaker of this store's connection stands.
    ///
    /// ```
    /// use cached_redis::{throttle::RedisThrottleStore, BreakerState};
    /// let store = RedisThrottleStore::from_url("redis://127.0.0.1:6379/0").unwrap();
    /// assert_eq!(store.breaker_state(), BreakerState::Closed);
    /// ```
    pub fn breaker_state(&self) -> BreakerState {
        self.conn.breaker_state()
    }

    /// The counters of this store's connection (shared with the backend it was made
    /// from, if any).
    ///
    /// ```
    /// let store = cached_redis::throttle::RedisThrottleStore::from_url("redis://127.0.0.1/").unwrap();
    /// assert_eq!(store.metrics().calls, 0);
    /// ```
    pub fn metrics(&self) -> RedisMetrics {
        self.conn.metrics()
    }

    /// The configuration of this store's connection.
    ///
    /// ```
    /// let store = cached_redis::throttle::RedisThrottleStore::from_url("redis://127.0.0.1/").unwrap();
    /// assert!(!store.config().is_cluster());
    /// ```
    pub fn config(&self) -> &RedisConfig {
        self.conn.config()
    }

    fn key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        full
    }
}

fn member(token: u64) -> String {
    format!("{token:016x}")
}

/// `gcra`'s interval and bucket span (interval × burst), in nanoseconds.
fn gcra_nanos(gcra: Gcra) -> (u64, u64) {
    let interval = u64::try_from(gcra.interval().as_nanos()).unwrap_or(u64::MAX);
    (interval, interval.saturating_mul(u64::from(gcra.burst())))
}

/// A duration in nanoseconds from a script's answer (never negative; a negative one,
/// which a script does not return, reads as zero).
fn nanos(n: i64) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(0))
}

#[async_trait]
impl ThrottleStore for RedisThrottleStore {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn check(&self, key: &str, rate: Rate) -> Result<Decision, CacheError> {
        let token = self
            .nonce
            .wrapping_add(self.next.fetch_add(1, Ordering::Relaxed));
        let window_us = rate.period_secs().saturating_mul(1_000_000);
        let key = self.key(key);
        let (admitted, remaining, reset_us): (i64, i64, i64) = self
            .conn
            .call(|mut c| async move {
                CHECK
                    .key(&key)
                    .arg(rate.count())
                    .arg(window_us)
                    .arg(member(token))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let reset = Duration::from_micros(u64::try_from(reset_us).unwrap_or(0));
        Ok(if admitted == 1 {
            let remaining = u32::try_from(remaining).unwrap_or(0);
            Decision::admitted(rate.count(), remaining, reset, token)
        } else {
            Decision::refused(rate.count(), reset)
        })
    }

    async fn undo(&self, key: &str, decision: &Decision) -> Result<(), CacheError> {
        if !decision.admitted {
            return Ok(());
        }
        let key = self.key(key);
        let member = member(decision.token);
        self.conn
            .call(|mut c| async move {
                c.query::<i64>(redis::cmd("ZREM").arg(&key).arg(&member))
                    .await
            })
            .await
            .map(drop)
    }

    async fn check_gcra(&self, key: &str, gcra: Gcra) -> Result<Decision, CacheError> {
        let (interval, span) = gcra_nanos(gcra);
        let key = self.key(key);
        let (admitted, remaining, reset, tat): (i64, i64, i64, Option<String>) = self
            .conn
            .call(|mut c| async move {
                CHECK_GCRA
                    .key(&key)
                    .arg(interval)
                    .arg(span)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(if admitted == 1 {
            let remaining = u32::try_from(remaining).unwrap_or(0);
            // The token is the new TAT, as `Gcra::decide` makes it; undo does not need it.
            let token = tat.and_then(|t| t.parse().ok()).unwrap_or(0);
            Decision::admitted(gcra.burst(), remaining, nanos(reset), token)
        } else {
            Decision::refused(gcra.burst(), nanos(reset))
        })
    }

    async fn undo_gcra(
        &self,
        key: &str,
        gcra: Gcra,
        decision: &Decision,
    ) -> Result<(), CacheError> {
        if !decision.admitted {
            return Ok(());
        }
        let (interval, _) = gcra_nanos(gcra);
        let key = self.key(key);
        self.conn
            .call(|mut c| async move {
                UNDO_GCRA
                    .key(&key)
                    .arg(interval)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await
            .map(drop)
    }
}
