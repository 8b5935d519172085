//! [`RedisBackend`]: the [`Backend`] trait over the `redis` crate.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cached_backend::{Backend, CacheError, Ttl, Value};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Script};
use tokio::runtime::{Handle, Id};

use crate::breaker::{Admit, Breaker, BreakerState};
use crate::url::{RedisConfig, Target};

const NAME: &str = "redis";

/// How many keys one `SCAN` step asks for, and one `UNLINK` deletes, during `clear`.
const CLEAR_BATCH: usize = 500;

/// Runtimes whose connections are kept at most; older ones are dropped first.
const MAX_RUNTIMES: usize = 16;

/// `INCRBY`, plus the expiry only when this call created the key. A value that is not an
/// integer is reported with the code `CKNOTCOUNTER`, an overflow with `CKOVERFLOW`.
static INCR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local existed = redis.call('EXISTS', KEYS[1])
local ok, n = pcall(redis.call, 'INCRBY', KEYS[1], ARGV[1])
if not ok then
  local msg = tostring(type(n) == 'table' and n.err or n)
  if string.find(msg, 'overflow') then
    return redis.error_reply('CKOVERFLOW ' .. msg)
  end
  return redis.error_reply('CKNOTCOUNTER ' .. msg)
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
/// `ConnectionManager`, or a cluster connection) per backend, explicit timeouts, and a
/// circuit breaker.
///
/// Building it never connects: the connection is made on first use, so Redis being
/// down at start-up is not a start-up failure, only a series of misses.
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
pub struct RedisBackend {
    config: RedisConfig,
    client: Client,
    /// One connection per Tokio runtime: a connection's driver task lives on the runtime
    /// that made it and dies with it. The first runtime's is read without a lock.
    first: OnceLock<(Id, Conn)>,
    conns: RwLock<Vec<(Id, Conn)>>,
    breaker: Breaker,
    /// The bound on one whole call: connecting plus answering.
    call_timeout: Duration,
    calls: AtomicU64,
    failures: AtomicU64,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("cluster", &self.config.is_cluster())
            .field("connect_timeout", &self.config.connect_timeout)
            .field("response_timeout", &self.config.response_timeout)
            .field("breaker", &self.breaker.state())
            .finish()
    }
}

// One per backend, so the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Client {
    Single(redis::Client),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster::ClusterClient),
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(std::sync::Arc<tokio::sync::OnceCell<redis::cluster_async::ClusterConnection>>),
}

/// A ready connection, what commands are sent on.
#[derive(Clone)]
enum Link {
    Single(ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, redis::Value> {
        match self {
            Link::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Link::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Link::Single(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "cluster")]
            Link::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Single(c) => c.get_db(),
            #[cfg(feature = "cluster")]
            Link::Cluster(c) => c.get_db(),
        }
    }
}

/// Counters of a [`RedisBackend`], for monitoring and tests.
///
/// ```
/// let backend = cached_redis::RedisBackend::from_url("redis://127.0.0.1:6379").unwrap();
/// let m = backend.metrics();
/// assert_eq!((m.calls, m.failures, m.rejected), (0, 0, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisMetrics {
    /// Calls that went to Redis (or tried to connect to it).
    pub calls: u64,
    /// Calls that failed because Redis could not be reached or did not answer in time.
    pub failures: u64,
    /// Calls the open circuit breaker failed at once, without touching the network.
    pub rejected: u64,
    /// How many times the breaker opened.
    pub breaker_opened: u64,
    /// Where the breaker stands now.
    pub breaker: BreakerState,
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
    pub fn new(config: RedisConfig) -> Result<Self, CacheError> {
        let client = make_client(&config)?;
        let call_timeout = config.connect_timeout + config.response_timeout;
        Ok(Self {
            breaker: Breaker::new(
                config.breaker_threshold,
                config.breaker_cooldown,
                call_timeout,
            ),
            config,
            client,
            first: OnceLock::new(),
            conns: RwLock::new(Vec::new()),
            call_timeout,
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    /// Where the circuit breaker stands.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// This backend's counters.
    pub fn metrics(&self) -> RedisMetrics {
        RedisMetrics {
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            rejected: self.breaker.rejected(),
            breaker_opened: self.breaker.opened(),
            breaker: self.breaker.state(),
        }
    }

    /// The configuration this backend was built with.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The connection for the current Tokio runtime, made (lazily) if needed.
    fn conn(&self) -> Result<Conn, CacheError> {
        let handle = Handle::try_current().map_err(|_| {
            CacheError::backend_message(
                NAME,
                "the Redis backend needs a Tokio runtime: call it from within one",
            )
        })?;
        let id = handle.id();
        // The common case, one runtime: a lock-free read.
        if let Some((first, conn)) = self.first.get() {
            if *first == id {
                return Ok(conn.clone());
            }
        }
        let conns = self.conns.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, conn)) = conns.iter().find(|(i, _)| *i == id) {
            return Ok(conn.clone());
        }
        drop(conns);
        let mut conns = self.conns.write().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, conn)) = conns.iter().find(|(i, _)| *i == id) {
            return Ok(conn.clone());
        }
        let conn = self.new_conn()?;
        if self.first.set((id, conn.clone())).is_ok() {
            return Ok(conn);
        }
        if conns.len() >= MAX_RUNTIMES {
            conns.remove(0);
        }
        conns.push((id, conn.clone()));
        Ok(conn)
    }

    /// A connection for the current runtime; a `ConnectionManager` connects on first use.
    fn new_conn(&self) -> Result<Conn, CacheError> {
        Ok(match &self.client {
            Client::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.config.connect_timeout))
                    .set_response_timeout(Some(self.config.response_timeout))
                    // The breaker decides when to try again, not a retry loop per call.
                    .set_number_of_retries(0);
                let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
                    .map_err(|e| CacheError::backend(NAME, e))?;
                Conn::Single(manager)
            }
            #[cfg(feature = "cluster")]
            Client::Cluster(_) => Conn::Cluster(std::sync::Arc::new(tokio::sync::OnceCell::new())),
        })
    }

    async fn link(&self, conn: Conn) -> RedisResult<Link> {
        match conn {
            Conn::Single(manager) => Ok(Link::Single(manager)),
            #[cfg(feature = "cluster")]
            Conn::Cluster(cell) => {
                let Client::Cluster(client) = &self.client else {
                    return Err(not_cluster());
                };
                let c = cell
                    .get_or_try_init(|| client.get_async_connection())
                    .await?;
                Ok(Link::Cluster(c.clone()))
            }
        }
    }

    /// Runs `op` on a connection, through the breaker and within the call timeout.
    async fn call<T, F, Fut>(&self, op: F) -> Result<T, CacheError>
    where
        F: FnOnce(Link) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let admit = self.breaker.admit();
        if admit == Admit::Reject {
            return Err(CacheError::backend_message(
                NAME,
                "circuit breaker open after repeated failures: Redis is not called until a probe succeeds (it recovers by itself)",
            ));
        }
        let conn = self.conn()?;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let run = async {
            let mut link = self.link(conn).await?;
            if admit == Admit::Probe {
                // The connection may still hold the failure from before Redis came back:
                // a failed PING makes the manager reconnect, and the second waits for it,
                // so one probe is enough to recover.
                if redis::cmd("PING")
                    .query_async::<()>(&mut link)
                    .await
                    .is_err()
                {
                    redis::cmd("PING").query_async::<()>(&mut link).await?;
                }
            }
            op(link).await
        };
        // A ConnectionManager bounds connecting and answering itself: a second timer per
        // call would only cost. A cluster connection is bounded here as a whole.
        let result = if conn_is_bounded(&self.client) {
            Ok(run.await)
        } else {
            tokio::time::timeout(self.call_timeout, run).await
        };
        match result {
            Ok(Ok(v)) => {
                self.breaker.success();
                Ok(v)
            }
            Ok(Err(e)) if is_outage(&e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.breaker.failure();
                if e.is_timeout() {
                    Err(self.timeout_error())
                } else {
                    Err(CacheError::backend(NAME, e))
                }
            }
            Ok(Err(e)) => {
                // Redis answered, with an error: it is up.
                self.breaker.success();
                Err(CacheError::backend(NAME, e))
            }
            Err(_elapsed) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.breaker.failure();
                Err(self.timeout_error())
            }
        }
    }

    fn timeout_error(&self) -> CacheError {
        CacheError::Timeout {
            backend: NAME,
            millis: u64::try_from(self.config.response_timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    #[cfg(feature = "cluster")]
    async fn clear_cluster(&self, pattern: &str) -> Result<usize, CacheError> {
        use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
        let primaries: redis::Value = self
            .call(
                |mut c| async move { redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut c).await },
            )
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
                    .call(|c| async move {
                        let Link::Cluster(mut c) = c else {
                            return Err(not_cluster());
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
        self.call(|mut c| async move { redis::cmd("UNLINK").arg(&keys).query_async(&mut c).await })
            .await
    }
}

#[async_trait]
impl Backend for RedisBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn get(&self, key: &str) -> Result<Option<Value>, CacheError> {
        let raw: Option<Vec<u8>> = self
            .call(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await?;
        Ok(raw.map(from_redis))
    }

    async fn set(&self, key: &str, value: Value, ttl: Ttl) -> Result<(), CacheError> {
        let value = to_redis(value)?;
        self.call(|mut c| async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(&value[..]);
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(millis(ttl));
            }
            cmd.query_async::<()>(&mut c).await
        })
        .await
    }

    async fn add(&self, key: &str, value: Value, ttl: Ttl) -> Result<bool, CacheError> {
        let value = to_redis(value)?;
        let reply: redis::Value = self
            .call(|mut c| async move {
                let mut cmd = redis::cmd("SET");
                cmd.arg(key).arg(&value[..]).arg("NX");
                if let Some(ttl) = ttl {
                    cmd.arg("PX").arg(millis(ttl));
                }
                cmd.query_async(&mut c).await
            })
            .await?;
        Ok(!matches!(reply, redis::Value::Nil))
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let n: usize = self
            .call(|mut c| async move { redis::cmd("UNLINK").arg(key).query_async(&mut c).await })
            .await?;
        Ok(n > 0)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Value>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // One MGET; in a cluster the `redis` crate splits it by slot and reassembles it.
        let raw: Vec<Option<Vec<u8>>> = self
            .call(|mut c| async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await })
            .await?;
        if raw.len() != keys.len() {
            return Err(CacheError::backend_message(
                NAME,
                format!("MGET of {} keys answered {} values", keys.len(), raw.len()),
            ));
        }
        Ok(raw.into_iter().map(|v| v.map(from_redis)).collect())
    }

    async fn set_many(&self, entries: Vec<(String, Value)>, ttl: Ttl) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut encoded = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            encoded.push((key, to_redis(value)?));
        }
        // A pipeline is one round trip; a cluster pipeline must stay within one slot.
        for group in pipeline_groups(&self.config, encoded) {
            let mut pipe = redis::pipe();
            for (key, value) in &group {
                let cmd = pipe.cmd("SET").arg(key).arg(&value[..]);
                if let Some(ttl) = ttl {
                    cmd.arg("PX").arg(millis(ttl));
                }
                cmd.ignore();
            }
            self.call(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                .await?;
        }
        Ok(())
    }

    async fn delete_many(&self, keys: &[String]) -> Result<usize, CacheError> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.call(|mut c| async move { redis::cmd("UNLINK").arg(keys).query_async(&mut c).await })
            .await
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Ttl) -> Result<i64, CacheError> {
        let expiry = ttl.map(|t| millis(t).to_string()).unwrap_or_default();
        let result = self
            .call(|mut c| async move {
                INCR.key(key)
                    .arg(delta)
                    .arg(&expiry)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await;
        match result {
            Err(CacheError::Backend { message, .. }) if message.contains("CKNOTCOUNTER") => {
                Err(CacheError::NotACounter(key.to_owned()))
            }
            Err(CacheError::Backend { message, .. }) if message.contains("CKOVERFLOW") => {
                Err(CacheError::Overflow(key.to_owned()))
            }
            other => other,
        }
    }

    async fn touch(&self, key: &str, ttl: Ttl) -> Result<bool, CacheError> {
        match ttl {
            Some(ttl) => {
                let n: i64 = self
                    .call(|mut c| async move {
                        redis::cmd("PEXPIRE")
                            .arg(key)
                            .arg(millis(ttl))
                            .query_async(&mut c)
                            .await
                    })
                    .await?;
                Ok(n == 1)
            }
            None => {
                let n: i64 = self
                    .call(|mut c| async move { PERSIST.key(key).invoke_async(&mut c).await })
                    .await?;
                Ok(n == 1)
            }
        }
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, CacheError> {
        let n: i64 = self
            .call(|mut c| async move {
                DELETE_IF_EQUALS
                    .key(key)
                    .arg(expected)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(n == 1)
    }

    async fn expire_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let n: i64 = self
            .call(|mut c| async move {
                EXPIRE_IF_EQUALS
                    .key(key)
                    .arg(expected)
                    .arg(millis(ttl))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(n == 1)
    }

    async fn clear(&self, prefix: &str) -> Result<usize, CacheError> {
        // SCAN + UNLINK under the prefix only: never FLUSHDB, even for the empty prefix.
        let pattern = format!("{}*", glob_escape(prefix));
        #[cfg(feature = "cluster")]
        if self.config.is_cluster() {
            return self.clear_cluster(&pattern).await;
        }
        let mut deleted = 0;
        let mut cursor: u64 = 0;
        loop {
            let pattern = &pattern;
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .call(|mut c| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(CLEAR_BATCH)
                        .query_async(&mut c)
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

fn make_client(config: &RedisConfig) -> Result<Client, CacheError> {
    let bad = |e: RedisError| CacheError::config("the Redis URL", e);
    match &config.target {
        Target::Single(url) => {
            #[cfg(feature = "tls")]
            if let Some(root) = &config.ca_cert {
                crate::tls::install_crypto_provider();
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root.clone()),
                };
                return redis::Client::build_with_tls(url.as_str(), certs)
                    .map(Client::Single)
                    .map_err(bad);
            }
            #[cfg(feature = "tls")]
            if url.starts_with("rediss:") {
                crate::tls::install_crypto_provider();
            }
            redis::Client::open(url.as_str())
                .map(Client::Single)
                .map_err(bad)
        }
        Target::Cluster(nodes) => {
            #[cfg(feature = "cluster")]
            {
                redis::cluster::ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(config.connect_timeout)
                    .response_timeout(config.response_timeout)
                    .retries(0)
                    .build()
                    .map(Client::Cluster)
                    .map_err(bad)
            }
            #[cfg(not(feature = "cluster"))]
            {
                let _ = nodes;
                Err(CacheError::FeatureDisabled {
                    what: "a redis+cluster:// URL".to_owned(),
                    feature: "redis-cluster",
                })
            }
        }
    }
}

#[cfg(feature = "cluster")]
fn not_cluster() -> RedisError {
    RedisError::from((
        redis::ErrorKind::Client,
        "internal: a cluster operation reached a single-server connection",
    ))
}

/// Whether the connection applies the connect and response timeouts itself.
fn conn_is_bounded(client: &Client) -> bool {
    matches!(client, Client::Single(_))
}

/// Whether an error means Redis could not be reached or did not answer (an outage the
/// breaker counts), rather than Redis answering with an error.
fn is_outage(e: &RedisError) -> bool {
    use redis::ErrorKind as K;
    use redis::ServerErrorKind as S;
    match e.kind() {
        K::Server(S::ClusterDown | S::MasterDown | S::TryAgain | S::BusyLoading) => true,
        K::Server(_) | K::Extension | K::UnexpectedReturnType | K::Parse => false,
        _ => true,
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
    fn glob_characters_in_prefixes_match_only_themselves() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(glob_escape(":"), ":");
    }
}
