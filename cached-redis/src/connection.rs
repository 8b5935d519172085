//! The one way to Redis, shared by both fronts ([`RedisBackend`](crate::RedisBackend) and
//! [`RedisThrottleStore`](crate::throttle::RedisThrottleStore)): a multiplexed,
//! auto-reconnecting connection per Tokio runtime (or a cluster connection), the connect
//! and response timeouts, TLS, the circuit breaker, and how a failure becomes a
//! [`CacheError`].
//!
//! A front builds its commands and hands them to [`Connection::call`]; everything about
//! reaching Redis and failing well is decided here, once.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use cached_backend::CacheError;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, FromRedisValue, Pipeline, RedisError, RedisFuture,
    RedisResult,
};
use tokio::runtime::{Handle, Id};
use tokio::task::AbortHandle;

use crate::breaker::{Admit, Breaker, BreakerOpen, BreakerState};
use crate::config::{RedisConfig, Target};
use crate::counter::Counter;

/// The backend name in errors and logs.
pub(crate) const NAME: &str = "redis";

/// Runtimes whose connections are kept at most; older ones are dropped first.
const MAX_RUNTIMES: usize = 16;

/// Counters of a Redis connection, shared by the backend and the throttle stores that
/// use it; for monitoring and tests.
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

/// Where Redis is and how to reach it: the client, one connection per Tokio runtime,
/// the breaker and the counters. Shared (`Arc`) by every front built on it.
pub(crate) struct Connection {
    config: RedisConfig,
    client: Client,
    /// One connection per Tokio runtime: a connection's driver task lives on the runtime
    /// that made it and dies with it. The first runtime's is read without a lock.
    first: OnceLock<(Id, Conn)>,
    others: RwLock<Vec<(Id, Conn)>>,
    breaker: Breaker,
    /// The bound on one whole call (connecting plus answering) where the connection
    /// does not bound it itself (a cluster).
    call_timeout: Duration,
    /// Bumped by every call from every worker thread: striped, so the threads do not
    /// contend for one cache line on the hot path.
    calls: Counter,
    failures: AtomicU64,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("config", &self.config)
            .field("breaker", &self.breaker.state())
            .finish()
    }
}

// One per connection, so the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Client {
    Single(redis::Client),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster::ClusterClient),
}

#[derive(Clone)]
enum Conn {
    Single(Arc<Single>),
    #[cfg(feature = "cluster")]
    Cluster(Arc<tokio::sync::OnceCell<redis::cluster_async::ClusterConnection>>),
}

/// The auto-reconnecting connection to a single server, for one runtime: the `redis`
/// crate's `MultiplexedConnection`, replaced when it breaks.
///
/// It does what the `redis` crate's `ConnectionManager` does with no retries (the
/// breaker decides when to try again), with less per call: a call clones the current
/// connection out of an `ArcSwap` (no reference count of a shared object is touched,
/// unlike the manager's shared connection future, and no guard is held across the
/// request, which with many tasks per thread exhausts `arc-swap`'s fast slots), then
/// sends on it. A request that fails in a way that leaves the connection unusable
/// (`RedisError::is_unrecoverable_error`, the manager's own test) drops it, and the
/// next call connects again, bounded by the connect timeout; calls that arrive while
/// one connects wait for that attempt and share its outcome.
///
/// **The response timeout is the connection's, not each request's.** A plain `redis://`
/// connection is made here (the TCP stream, then the `redis` crate's handshake and
/// multiplexer on it), so its driver task is this crate's to stop, and a watchdog task
/// bounds the wait for answers: every quarter of `response_timeout` in which a request
/// was pending, it sends a `PING` behind it, and when that `PING` is not answered within
/// `response_timeout` (Redis answers in order, so nothing sent before it was either) it
/// stops the connection: every request still waiting on it fails as a timeout, and the
/// next call connects again. A request therefore waits at most `response_timeout` plus a
/// quarter of it for a Redis that stopped answering, and a request pays no timer of its
/// own (the `redis` crate's per-request timer was 11 % of a Redis hit's CPU; P2 in
/// BENCHMARKS.md). A `rediss://` connection is the `redis` crate's own (it brings TLS),
/// with its per-request timer.
struct Single {
    client: redis::Client,
    /// For a connection the `redis` crate makes (TLS): with its per-request timeout.
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    response_timeout: Duration,
    current: ArcSwapOption<Live>,
    /// Held while connecting: one attempt at a time.
    connecting: tokio::sync::Mutex<()>,
    /// Connection attempts made so far (a connection's number).
    attempts: AtomicU64,
    /// Connection attempts that failed; tells a caller that waited for an attempt that it
    /// failed. An attempt that was cancelled (its caller dropped) did not fail: the next
    /// waiting caller makes its own.
    failures: AtomicU64,
    /// Whether a request was pending since the watchdog last looked: set by calls
    /// (a load, and a store only when it was clear), cleared by the watchdog.
    busy: AtomicBool,
    /// The number of the last connection the watchdog stopped because Redis did not
    /// answer: its requests failed as timeouts, not as a dropped connection.
    stalled: AtomicU64,
}

/// A connection that worked when it was made, and its attempt number.
struct Live {
    conn: MultiplexedConnection,
    attempt: u64,
    /// The driver and watchdog of a connection made here; stopped when it is dropped
    /// (which fails the requests still waiting on it).
    tasks: Option<[AbortHandle; 2]>,
}

impl Drop for Live {
    fn drop(&mut self) {
        for task in self.tasks.iter().flatten() {
            task.abort();
        }
    }
}

impl Single {
    /// The current connection (a clone), and its attempt number to report it broken by.
    async fn link(self: &Arc<Self>) -> RedisResult<(MultiplexedConnection, u64)> {
        if let Some(live) = &*self.current.load() {
            return Ok((live.conn.clone(), live.attempt));
        }
        // Rare (first use, after a failure): boxed, so that the future of an ordinary
        // call does not hold the connect future's space.
        Box::pin(self.connect()).await
    }

    #[cold]
    async fn connect(self: &Arc<Self>) -> RedisResult<(MultiplexedConnection, u64)> {
        let seen = self.failures.load(Ordering::Acquire);
        let _one = self.connecting.lock().await;
        if let Some(live) = &*self.current.load() {
            return Ok((live.conn.clone(), live.attempt));
        }
        if self.failures.load(Ordering::Acquire) != seen {
            // An attempt failed while this call waited for it: fail as it did, rather
            // than making every waiting call pay a connect timeout in turn.
            return Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "Redis could not be reached (a concurrent connection attempt failed)",
            )));
        }
        let attempt = self.attempts.fetch_add(1, Ordering::AcqRel) + 1;
        let live = match tokio::time::timeout(self.connect_timeout, self.open(attempt)).await {
            Ok(Ok(live)) => live,
            Ok(Err(e)) => {
                self.failures.fetch_add(1, Ordering::AcqRel);
                return Err(e);
            }
            Err(elapsed) => {
                self.failures.fetch_add(1, Ordering::AcqRel);
                return Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    elapsed,
                )));
            }
        };
        let conn = live.conn.clone();
        self.current.store(Some(Arc::new(live)));
        Ok((conn, attempt))
    }

    /// Makes connection number `attempt`: on a TCP stream of its own, driven and watched
    /// here, or (TLS) the `redis` crate's.
    async fn open(self: &Arc<Self>, attempt: u64) -> RedisResult<Live> {
        let info = self.client.get_connection_info();
        let ConnectionAddr::Tcp(host, port) = info.addr() else {
            let conn = self
                .client
                .get_multiplexed_async_connection_with_config(&self.config)
                .await?;
            return Ok(Live {
                conn,
                attempt,
                tasks: None,
            });
        };
        let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
        stream.set_nodelay(info.tcp_settings().nodelay())?;
        // No per-request timer: the watchdog bounds the answers.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let (conn, driver) =
            MultiplexedConnection::new_with_config(info.redis_settings(), stream, config).await?;
        let driver = tokio::spawn(driver).abort_handle();
        let watchdog = tokio::spawn(watch(
            Arc::downgrade(self),
            conn.clone(),
            driver.clone(),
            attempt,
            self.response_timeout,
        ))
        .abort_handle();
        Ok(Live {
            conn,
            attempt,
            tasks: Some([driver, watchdog]),
        })
    }

    /// A call's request is waiting for its answer: the watchdog sends a `PING` behind it
    /// at its next look. Cheap when it is set already (a load, no write), as it is under
    /// load.
    fn busy(&self) {
        if !self.busy.load(Ordering::Relaxed) {
            self.busy.store(true, Ordering::Release);
        }
    }

    /// Whether a newer connection than that of `attempt` is the current one.
    fn replaced(&self, attempt: u64) -> bool {
        self.current
            .load()
            .as_ref()
            .is_some_and(|live| live.attempt != attempt)
    }

    /// Whether the connection of `attempt` was stopped because Redis did not answer.
    fn stalled(&self, attempt: u64) -> bool {
        self.stalled.load(Ordering::Acquire) == attempt
    }

    /// A request on the connection of `attempt` failed with `e`: drops that connection
    /// when `e` left it unusable (and it is still the current one).
    fn failed(&self, attempt: u64, e: &RedisError) {
        if e.is_unrecoverable_error() {
            self.forget(attempt);
        }
    }

    /// Drops the connection of `attempt` if it is still the current one: the next call
    /// connects again.
    fn forget(&self, attempt: u64) {
        let current = self.current.load();
        if current.as_ref().is_some_and(|live| live.attempt == attempt) {
            self.current.compare_and_swap(&*current, None);
        }
    }
}

/// The watchdog of connection number `attempt` (see [`Single`]): every quarter of
/// `limit` in which a request was pending, a `PING` that must be answered within
/// `limit`, or the connection is stopped. Ends with the connection (its driver gone, or
/// the backend dropped).
async fn watch(
    single: Weak<Single>,
    conn: MultiplexedConnection,
    driver: AbortHandle,
    attempt: u64,
    limit: Duration,
) {
    let every = (limit / 4).max(Duration::from_millis(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(owner) = single.upgrade() else {
            return;
        };
        if owner.replaced(attempt) {
            // The flag is the new connection's watchdog's now (this one is normally
            // stopped with its connection already).
            return;
        }
        if driver.is_finished() {
            // Redis closed it: connect again on the next call rather than fail it.
            owner.forget(attempt);
            return;
        }
        if !owner.busy.swap(false, Ordering::AcqRel) {
            continue;
        }
        drop(owner);
        // Each `PING` is a task of its own, so that a slow one does not hold back the
        // next look: a request sent after it still gets a `PING` within a quarter of
        // `limit`.
        let (single, mut conn, driver) = (single.clone(), conn.clone(), driver.clone());
        tokio::spawn(async move {
            let ping = redis::cmd("PING");
            let answer = tokio::time::timeout(limit, conn.send_packed_command(&ping)).await;
            if answer.is_err() {
                if let Some(owner) = single.upgrade() {
                    owner.stalled.store(attempt, Ordering::Release);
                    owner.forget(attempt);
                }
                driver.abort();
            }
        });
    }
}

/// A ready connection: what a front sends its commands on.
#[derive(Clone)]
pub(crate) enum Link {
    Single(MultiplexedConnection),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Link {
    /// Sends `cmd` and converts the answer, as `Cmd::query_async` does.
    ///
    /// The request future of the `redis` crate (about 1.2 KB for a multiplexed
    /// connection) is boxed, once, where it is made (`req_packed_command`): every
    /// future around it (this one, the call's, the `Backend` trait's box) then holds a
    /// pointer to it rather than its bytes, so they are small, and it is not copied as
    /// each of them is made and moved (several kilobytes of copies per call when it was
    /// awaited inline).
    pub(crate) async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        let value = self.req_packed_command(cmd).await?;
        Ok(redis::from_redis_value(value.extract_error()?)?)
    }
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

impl Connection {
    /// A connection to what `config` names. Does not connect: that happens on first use.
    pub(crate) fn new(config: RedisConfig) -> Result<Self, CacheError> {
        let client = make_client(&config)?;
        let call_timeout = config.connect_timeout + config.response_timeout;
        Ok(Self {
            // The longest a probe waits: a connect, then an answer the watchdog gives up
            // on a quarter of the response timeout late at most.
            breaker: Breaker::new(
                config.breaker_threshold,
                config.breaker_cooldown,
                call_timeout + config.response_timeout / 4,
            ),
            config,
            client,
            first: OnceLock::new(),
            others: RwLock::new(Vec::new()),
            call_timeout,
            calls: Counter::default(),
            failures: AtomicU64::new(0),
        })
    }

    pub(crate) fn config(&self) -> &RedisConfig {
        &self.config
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    pub(crate) fn metrics(&self) -> RedisMetrics {
        RedisMetrics {
            calls: self.calls.get(),
            failures: self.failures.load(Ordering::Relaxed),
            rejected: self.breaker.rejected(),
            breaker_opened: self.breaker.opened(),
            breaker: self.breaker.state(),
        }
    }

    /// Runs `op` on a connection, through the breaker and within the timeouts.
    ///
    /// Every failure is a [`CacheError`]: [`CacheError::Timeout`] when Redis did not
    /// answer in time, otherwise [`CacheError::Backend`] whose
    /// [`source`](std::error::Error::source) is the [`RedisError`] (or [`BreakerOpen`]
    /// when the breaker failed the call without trying).
    pub(crate) async fn call<T, F, Fut>(&self, op: F) -> Result<T, CacheError>
    where
        F: FnOnce(Link) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let admit = self.breaker.admit();
        if admit == Admit::Reject {
            return Err(CacheError::backend(NAME, BreakerOpen));
        }
        let conn = self.conn()?;
        self.calls.add();
        // What is rare (a probe, making a connection, bounding a cluster call) is boxed
        // apart, so that the future of an ordinary call, which the `Backend` trait boxes
        // and moves on every call, holds little more than the request itself.
        let single = match &*conn {
            Conn::Single(single) => Some(single),
            #[cfg(feature = "cluster")]
            Conn::Cluster(_) => None,
        };
        // The attempt number of the single-server connection the call used, to drop it
        // if the call broke it.
        let mut used = None;
        let run = async {
            let mut link = match &*conn {
                Conn::Single(single) => {
                    let (c, attempt) = single.link().await?;
                    used = Some(attempt);
                    Link::Single(c)
                }
                #[cfg(feature = "cluster")]
                Conn::Cluster(cell) => self.cluster_link(cell).await?,
            };
            if admit == Admit::Probe {
                Box::pin(probe(single, &mut link, &mut used)).await?;
            }
            op(link).await
        };
        // A single-server connection bounds connecting and answering itself (its
        // watchdog, told here that a request waits): a timer per call would only cost.
        // A cluster connection is bounded here as a whole.
        let result = match single {
            Some(single) => Ok(watched(run, single).await),
            None => Box::pin(tokio::time::timeout(self.call_timeout, run)).await,
        };
        match result {
            Ok(Ok(v)) => {
                self.breaker.success();
                Ok(v)
            }
            Ok(Err(mut e)) => {
                if let (Some(single), Some(attempt)) = (single, used) {
                    single.failed(attempt, &e);
                    if single.stalled(attempt) && e.is_connection_dropped() {
                        // The watchdog stopped the connection: Redis did not answer.
                        e = std::io::Error::from(std::io::ErrorKind::TimedOut).into();
                    }
                }
                Err(self.failed(e))
            }
            Err(_elapsed) => {
                self.outage();
                Err(timeout(self.call_timeout))
            }
        }
    }

    /// The error for a call that failed with `e`, counted by the breaker when it means
    /// Redis is unreachable.
    fn failed(&self, e: RedisError) -> CacheError {
        if !is_outage(&e) {
            // Redis answered, with an error: it is up.
            self.breaker.success();
            return CacheError::backend(NAME, e);
        }
        self.outage();
        if e.is_timeout() {
            timeout(self.config.response_timeout)
        } else {
            CacheError::backend(NAME, e)
        }
    }

    fn outage(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.breaker.failure();
    }

    /// The connection for the current Tokio runtime, made (lazily) if needed: borrowed
    /// for the first runtime (no reference count touched on the hot path), shared for
    /// the others.
    fn conn(&self) -> Result<ConnRef<'_>, CacheError> {
        let handle = Handle::try_current().map_err(|_| {
            CacheError::backend_message(
                NAME,
                "Redis is reached through Tokio: call it from within a Tokio runtime",
            )
        })?;
        let id = handle.id();
        // The common case, one runtime: a lock-free read.
        if let Some((first, conn)) = self.first.get() {
            if *first == id {
                return Ok(ConnRef::First(conn));
            }
        }
        let others = self.others.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, conn)) = others.iter().find(|(i, _)| *i == id) {
            return Ok(ConnRef::Other(conn.clone()));
        }
        drop(others);
        let mut others = self.others.write().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, conn)) = others.iter().find(|(i, _)| *i == id) {
            return Ok(ConnRef::Other(conn.clone()));
        }
        let conn = self.new_conn()?;
        if self.first.set((id, conn.clone())).is_ok() {
            if let Some((_, conn)) = self.first.get() {
                return Ok(ConnRef::First(conn));
            }
        }
        if others.len() >= MAX_RUNTIMES {
            others.remove(0);
        }
        others.push((id, conn.clone()));
        Ok(ConnRef::Other(conn))
    }

    /// A connection for the current runtime; it connects on first use.
    fn new_conn(&self) -> Result<Conn, CacheError> {
        Ok(match &self.client {
            Client::Single(client) => {
                // The connect timeout bounds the whole attempt (`Single::connect`).
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(None)
                    .set_response_timeout(Some(self.config.response_timeout));
                Conn::Single(Arc::new(Single {
                    client: client.clone(),
                    config,
                    connect_timeout: self.config.connect_timeout,
                    response_timeout: self.config.response_timeout,
                    current: ArcSwapOption::empty(),
                    connecting: tokio::sync::Mutex::new(()),
                    attempts: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    busy: AtomicBool::new(false),
                    stalled: AtomicU64::new(0),
                }))
            }
            #[cfg(feature = "cluster")]
            Client::Cluster(_) => Conn::Cluster(Arc::new(tokio::sync::OnceCell::new())),
        })
    }

    #[cfg(feature = "cluster")]
    async fn cluster_link(
        &self,
        cell: &tokio::sync::OnceCell<redis::cluster_async::ClusterConnection>,
    ) -> RedisResult<Link> {
        let Client::Cluster(client) = &self.client else {
            return Err(not_cluster());
        };
        let c = match cell.get() {
            Some(c) => c,
            None => Box::pin(cell.get_or_try_init(|| client.get_async_connection())).await?,
        };
        Ok(Link::Cluster(c.clone()))
    }
}

/// The connection of the current runtime: borrowed for the first runtime, shared for
/// the others.
enum ConnRef<'a> {
    First(&'a Conn),
    Other(Conn),
}

impl std::ops::Deref for ConnRef<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        match self {
            ConnRef::First(conn) => conn,
            ConnRef::Other(conn) => conn,
        }
    }
}

/// A probe's first call after the breaker opened. The connection may still hold the
/// failure from before Redis came back: a failed `PING` drops a single-server connection
/// (`used`: its attempt number, updated to the new one's) and the second connects again,
/// so one probe is enough to recover.
async fn probe(
    single: Option<&Arc<Single>>,
    link: &mut Link,
    used: &mut Option<u64>,
) -> RedisResult<()> {
    let ping = redis::cmd("PING");
    if link.query::<()>(&ping).await.is_ok() {
        return Ok(());
    }
    if let (Some(single), Some(attempt)) = (single, *used) {
        single.forget(attempt);
        let (c, attempt) = single.link().await?;
        *used = Some(attempt);
        *link = Link::Single(c);
    }
    link.query::<()>(&ping).await
}

/// Runs a call's future, telling the connection's watchdog whenever it waits (see
/// [`Single`]): by then its request is queued on the connection, so a `PING` the
/// watchdog sends after that is answered after it.
async fn watched<F: Future>(call: F, single: &Single) -> F::Output {
    let mut call = std::pin::pin!(call);
    std::future::poll_fn(|cx| {
        let poll = call.as_mut().poll(cx);
        if poll.is_pending() {
            single.busy();
        }
        poll
    })
    .await
}

/// The [`RedisError`] behind a failure, if Redis (or reaching it) caused it.
pub(crate) fn redis_cause(err: &CacheError) -> Option<&RedisError> {
    std::error::Error::source(err)?.downcast_ref::<RedisError>()
}

fn timeout(after: Duration) -> CacheError {
    CacheError::Timeout {
        backend: NAME,
        millis: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
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

/// Clients for the near tier's invalidation connection: RESP3 (push messages), same
/// server, credentials and TLS as the data connections; for a cluster, one per seed node
/// (a pub/sub subscription on any node hears every `PUBLISH`).
pub(crate) fn push_clients(config: &RedisConfig) -> Result<Vec<redis::Client>, CacheError> {
    let urls: Vec<&String> = match &config.target {
        Target::Single(url) => vec![url],
        Target::Cluster(nodes) => nodes.iter().collect(),
    };
    urls.into_iter()
        .map(|url| {
            let bad = |e: RedisError| CacheError::config("the Redis URL", e);
            let info =
                redis::IntoConnectionInfo::into_connection_info(url.as_str()).map_err(bad)?;
            let settings = info
                .redis_settings()
                .clone()
                .set_protocol(redis::ProtocolVersion::RESP3);
            let info = info.set_redis_settings(settings);
            #[cfg(feature = "tls")]
            if let Some(root) = &config.ca_cert {
                crate::tls::install_crypto_provider();
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root.clone()),
                };
                return redis::Client::build_with_tls(info, certs).map_err(bad);
            }
            #[cfg(feature = "tls")]
            if url.starts_with("rediss:") {
                crate::tls::install_crypto_provider();
            }
            redis::Client::open(info).map_err(bad)
        })
        .collect()
}

/// The error for a cluster-only operation that reached a single-server connection (a
/// bug of this crate, reported rather than panicking).
#[cfg(feature = "cluster")]
pub(crate) fn not_cluster() -> RedisError {
    RedisError::from((
        redis::ErrorKind::Client,
        "internal: a cluster operation reached a single-server connection",
    ))
}

/// Whether an error means Redis could not be reached or did not answer (an outage the
/// breaker counts), rather than Redis answering with an error. Decided by the error's
/// kind, never its text.
fn is_outage(e: &RedisError) -> bool {
    use redis::ErrorKind as K;
    use redis::ServerErrorKind as S;
    match e.kind() {
        K::Server(S::ClusterDown | S::MasterDown | S::TryAgain | S::BusyLoading) => true,
        K::Server(_) | K::Extension | K::UnexpectedReturnType | K::Parse => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_not_outages_but_unreachable_servers_are() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_outage(&refused));
        let wrong_type = redis::make_extension_error("WRONGTYPE".into(), None);
        assert!(!is_outage(&wrong_type));
        let mismatch = RedisError::from((redis::ErrorKind::UnexpectedReturnType, "type"));
        assert!(!is_outage(&mismatch));
    }

    #[test]
    fn the_cause_of_a_backend_error_is_the_redis_error() {
        let err = CacheError::backend(NAME, redis::make_extension_error("WRONGTYPE".into(), None));
        assert_eq!(
            redis_cause(&err).and_then(RedisError::code),
            Some("WRONGTYPE")
        );
        assert!(redis_cause(&CacheError::backend(NAME, BreakerOpen)).is_none());
        assert!(redis_cause(&CacheError::backend_message(NAME, "words")).is_none());
    }
}
