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
use std::sync::{LazyLock, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use cached_backend::{CacheError, Decision, Rate, ThrottleStore};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use tokio::runtime::{Handle, Id};

use crate::breaker::{Admit, Breaker, BreakerState};
use crate::RedisConfig;
use crate::{DEFAULT_BREAKER_COOLDOWN, DEFAULT_BREAKER_THRESHOLD};

const NAME: &str = "redis";

/// Runtimes whose connections are kept at most; older ones are dropped first.
const MAX_RUNTIMES: usize = 16;

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
/// one period after the newest admission.
///
/// Building it does not connect; the connection (one multiplexed, auto-reconnecting
/// `ConnectionManager` per Tokio runtime) is made on first use. A check that fails or
/// takes longer than the connect plus response timeouts is an error, which the
/// throttle turns into admitting (fail open, the default) or refusing the request.
/// The same circuit breaker as [`RedisBackend`](crate::RedisBackend)'s stops paying
/// the timeout on every request while Redis is down (after 5 consecutive failures,
/// checks fail at once for a second, then one probe goes through), and the store
/// recovers by itself when Redis returns. One Redis server (or primary): not Redis
/// Cluster.
///
/// Use it with `cached_kit::throttle::set_default_store(store)` (for `#[throttle]` and
/// every layer without its own store) or `ThrottleLayer::store(store)`.
///
/// ```no_run
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cached_core::throttle::{Rate, ThrottleStore};
/// use cached_redis::throttle::RedisThrottleStore;
///
/// let store = RedisThrottleStore::from_url("redis://127.0.0.1:6379/0")?.key_prefix("shop");
/// let decision = store.check("throttle:user:10/minute:id:alice", Rate::parse("10/minute")?).await?;
/// assert!(decision.admitted);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct RedisThrottleStore {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    conns: RwLock<Vec<(Id, ConnectionManager)>>,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    nonce: u64,
    next: AtomicU64,
    breaker: Breaker,
}

fn breaker(connect_timeout: Duration, response_timeout: Duration) -> Breaker {
    Breaker::new(
        DEFAULT_BREAKER_THRESHOLD,
        DEFAULT_BREAKER_COOLDOWN,
        connect_timeout + response_timeout,
    )
}

impl std::fmt::Debug for RedisThrottleStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisThrottleStore")
            .field("prefix", &self.inner.prefix)
            .field("connect_timeout", &self.inner.connect_timeout)
            .field("response_timeout", &self.inner.response_timeout)
            .finish()
    }
}

impl RedisThrottleStore {
    /// A store on the Redis server at `url` (`redis://host:6379/0`), with 1 s connect
    /// and response timeouts. Does not connect.
    ///
    /// ```
    /// use cached_redis::throttle::RedisThrottleStore;
    /// assert!(RedisThrottleStore::from_url("redis://127.0.0.1:6379/0").is_ok());
    /// let err = RedisThrottleStore::from_url("http://x").unwrap_err();
    /// assert!(err.to_string().contains("http://x"));
    /// ```
    pub fn from_url(url: &str) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(|e| {
            CacheError::config(
                "RedisThrottleStore",
                format!("`{url}` is not a Redis URL: {e}"),
            )
        })?;
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ok(Self {
            inner: std::sync::Arc::new(Inner {
                client,
                conns: RwLock::new(Vec::new()),
                prefix: String::new(),
                connect_timeout: Duration::from_secs(1),
                response_timeout: Duration::from_secs(1),
                nonce: RandomState::new().hash_one((std::process::id(), seed)),
                next: AtomicU64::new(0),
                breaker: breaker(Duration::from_secs(1), Duration::from_secs(1)),
            }),
        })
    }

    /// A store for the server `config` describes, with its timeouts. One Redis server
    /// (or primary): a `redis+cluster://` configuration is an error.
    ///
    /// ```
    /// use cached_redis::{throttle::RedisThrottleStore, RedisConfig};
    /// let config = RedisConfig::from_url("redis://127.0.0.1:6379/0?response_timeout=200").unwrap();
    /// assert!(RedisThrottleStore::from_config(config).is_ok());
    /// ```
    pub fn from_config(config: RedisConfig) -> Result<Self, CacheError> {
        let Some(url) = config.single_url() else {
            return Err(CacheError::config(
                "RedisThrottleStore",
                "throttle logs need one Redis server (or primary): Redis Cluster is not supported for throttling",
            ));
        };
        Ok(Self::from_url(url)?
            .connect_timeout(config.connect_timeout)
            .response_timeout(config.response_timeout))
    }

    /// Puts `prefix:` in front of every key, so apps sharing a server keep apart.
    ///
    /// ```
    /// let store = cached_redis::throttle::RedisThrottleStore::from_url("redis://127.0.0.1/")
    ///     .unwrap()
    ///     .key_prefix("shop");
    /// # let _ = store;
    /// ```
    pub fn key_prefix(self, prefix: &str) -> Self {
        self.reconfigure(|inner| {
            inner.prefix = if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}:")
            };
        })
    }

    /// How long to wait for a connection (default 1 s).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let store = cached_redis::throttle::RedisThrottleStore::from_url("redis://127.0.0.1/")
    ///     .unwrap()
    ///     .connect_timeout(Duration::from_millis(250))
    ///     .response_timeout(Duration::from_millis(100));
    /// # let _ = store;
    /// ```
    pub fn connect_timeout(self, timeout: Duration) -> Self {
        self.reconfigure(|inner| inner.connect_timeout = timeout)
    }

    /// How long to wait for an answer (default 1 s).
    pub fn response_timeout(self, timeout: Duration) -> Self {
        self.reconfigure(|inner| inner.response_timeout = timeout)
    }

    fn reconfigure(self, f: impl FnOnce(&mut Inner)) -> Self {
        let old = &self.inner;
        let mut inner = Inner {
            client: old.client.clone(),
            conns: RwLock::new(Vec::new()),
            prefix: old.prefix.clone(),
            connect_timeout: old.connect_timeout,
            response_timeout: old.response_timeout,
            nonce: old.nonce,
            next: AtomicU64::new(old.next.load(Ordering::Relaxed)),
            breaker: breaker(old.connect_timeout, old.response_timeout),
        };
        f(&mut inner);
        inner.breaker = breaker(inner.connect_timeout, inner.response_timeout);
        Self {
            inner: std::sync::Arc::new(inner),
        }
    }

    /// The connection for the current Tokio runtime, made (lazily) if needed.
    fn conn(&self) -> Result<ConnectionManager, CacheError> {
        let handle = Handle::try_current().map_err(|_| {
            CacheError::backend_message(NAME, "the Redis throttle store needs a Tokio runtime")
        })?;
        let id = handle.id();
        let conns = self
            .inner
            .conns
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, conn)) = conns.iter().find(|(i, _)| *i == id) {
            return Ok(conn.clone());
        }
        drop(conns);
        let mut conns = self
            .inner
            .conns
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, conn)) = conns.iter().find(|(i, _)| *i == id) {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.inner.connect_timeout))
            .set_response_timeout(Some(self.inner.response_timeout))
            .set_number_of_retries(0);
        let conn = ConnectionManager::new_lazy_with_config(self.inner.client.clone(), config)
            .map_err(|e| CacheError::backend(NAME, e))?;
        if conns.len() >= MAX_RUNTIMES {
            conns.remove(0);
        }
        conns.push((id, conn.clone()));
        Ok(conn)
    }

    /// Where the circuit breaker stands.
    ///
    /// ```
    /// use cached_redis::{throttle::RedisThrottleStore, BreakerState};
    /// let store = RedisThrottleStore::from_url("redis://127.0.0.1:6379/0").unwrap();
    /// assert_eq!(store.breaker_state(), BreakerState::Closed);
    /// ```
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    /// Runs `op` through the breaker, within the connect plus response timeout.
    async fn call<T>(
        &self,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        let breaker = &self.inner.breaker;
        if breaker.admit() == Admit::Reject {
            return Err(CacheError::backend_message(
                NAME,
                "circuit breaker open after repeated failures: Redis is not called until a probe succeeds (it recovers by itself)",
            ));
        }
        let limit = self.inner.connect_timeout + self.inner.response_timeout;
        match tokio::time::timeout(limit, op).await {
            Ok(Ok(v)) => {
                breaker.success();
                Ok(v)
            }
            Ok(Err(e)) => {
                if is_outage(&e) {
                    breaker.failure();
                } else {
                    // Redis answered, with an error: it is up.
                    breaker.success();
                }
                Err(CacheError::backend(NAME, e))
            }
            Err(_) => {
                breaker.failure();
                Err(CacheError::Timeout {
                    backend: NAME,
                    millis: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                })
            }
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.prefix)
    }
}

/// Whether `e` means Redis is unreachable (rather than an answer that is an error).
fn is_outage(e: &redis::RedisError) -> bool {
    use redis::ErrorKind as K;
    use redis::ServerErrorKind as S;
    match e.kind() {
        K::Server(S::ClusterDown | S::MasterDown | S::TryAgain | S::BusyLoading) => true,
        K::Server(_) | K::Extension | K::UnexpectedReturnType | K::Parse => false,
        _ => true,
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
        let mut conn = self.conn()?;
        let token = self
            .inner
            .nonce
            .wrapping_add(self.inner.next.fetch_add(1, Ordering::Relaxed));
        let window_us = rate.period_secs().saturating_mul(1_000_000);
        let key = self.key(key);
        let (admitted, remaining, reset_us): (i64, i64, i64) = self
            .call(
                CHECK
                    .key(&key)
                    .arg(rate.count())
                    .arg(window_us)
                    .arg(member(token))
                    .invoke_async(&mut conn),
            )
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
        let mut conn = self.conn()?;
        let key = self.key(key);
        let member = member(decision.token);
        self.call(async move {
            redis::cmd("ZREM")
                .arg(&key)
                .arg(&member)
                .query_async::<i64>(&mut conn)
                .await
        })
        .await
        .map(drop)
    }
}
