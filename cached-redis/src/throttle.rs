//! [`RedisThrottleStore`]: throttle logs shared by every process that uses one Redis.
//!
//! Each check is one atomic round trip: a Lua script that reads the server's own clock
//! (`TIME`), drops the requests that left the window from the key's sorted set
//! (`ZREMRANGEBYSCORE`), counts the rest (`ZCARD`) and, only if there is room, records
//! this request (`ZADD` with a unique member) and sets the key to expire one period later
//! (`PEXPIRE`), so an idle client leaves nothing behind. Processes therefore agree on the
//! window whatever their own clocks say, and at most N requests are admitted in any
//! trailing window across all of them.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use cached_backend::{CacheError, CacheUrl, Decision, Rate, ThrottleStore};
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

/// A [`ThrottleStore`] in Redis: the budgets of every app instance that uses the same
/// server (and key prefix) are shared, exactly.
///
/// Keys are `{key_prefix}:throttle:{scope}:{rate}:{client}` (no prefix by default),
/// sorted sets of admission times in microseconds of the Redis server's clock, expiring
/// one period after the newest admission. Each check touches one key, so the store works
/// on one server, a primary, or Redis Cluster alike.
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
/// use cached_core::throttle::{Rate, ThrottleStore};
/// use cached_redis::throttle::RedisThrottleStore;
///
/// let store = RedisThrottleStore::from_url("redis://127.0.0.1:6379/0?key_prefix=shop")?;
/// let decision = store.check("throttle:user:10/minute:id:alice", Rate::parse("10/minute")?).await?;
/// assert!(decision.admitted);
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
}
