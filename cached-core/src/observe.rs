//! What the runtime shows outside: `tracing` spans around every backend call of a
//! [`Cache`](crate::Cache), and (feature `metrics`) counters and histograms through the
//! `metrics` crate facade. Everything observable is emitted from here; the rest of the
//! crate calls in at the points where it already counts:
//!
//! | hook | where | what it emits |
//! |---|---|---|
//! | [`Observed`], the backend every `Cache` calls through | `CacheBuilder::build` wraps the backend | a span per backend call; `cached_kit_backend_duration_seconds{cache, op}` |
//! | [`CacheMetrics::counted`] | `Counters::add` (`stats.rs`), so every event `stats()` counts | `cached_kit_cache_lookups_total{cache, result}`, `cached_kit_cache_coalesced_total{cache}`, `cached_kit_cache_errors_total{cache, kind="decode"}` |
//! | [`CacheMetrics::error`] | `Cache::record_error` (`cache.rs`) | `cached_kit_cache_errors_total{cache, kind}` |
//! | `view_response` | `http/exchange.rs`: `hit`, `pass`, `store` (one response each) | `cached_kit_view_responses_total{status}` |
//! | `throttle_decision` | `throttle/check.rs`: `evaluate`, per throttle checked | `cached_kit_throttle_decisions_total{scope, decision}` |
//!
//! Labels are bounded by the program, never by its traffic: a cache's alias, a backend
//! method, an error kind, a fixed status or decision word, a throttle's scope name.
//! Keys, client addresses and identities never become labels.
//!
//! **Cost.** Without a subscriber interested in a span, a backend call pays one
//! callsite check (an atomic load) for it. Without the `metrics` feature the metric
//! hooks are empty functions. With it and no recorder installed, a counted event pays a
//! load and a branch, and every 1,024th event of a thread on a cache asks whether a
//! recorder has appeared (below). With a recorder, a cache holds its handles (the
//! `metrics` crate's `Counter`s and `Histogram`s, registered once): an event is one
//! increment through a handle, never a registry lookup.
//!
//! **A recorder installed late.** A cache binds its handles to the recorder it first
//! sees. Until one is installed there is nothing to bind: a cache used before the
//! recorder was installed keeps looking for one, at its first event on each thread and
//! then every 1,024th, and binds when it finds it. Its events before that moment are in
//! its [`stats`](crate::Cache::stats) but not in the metrics. The `metrics` crate's own
//! stand-in for "no recorder" has no size, and that is how it is told apart: a recorder
//! of zero size (one keeping all its state in statics) is not seen.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::backend::{Backend, Ttl, Value};
use crate::CacheError;

#[cfg(feature = "metrics")]
mod handles;
#[cfg(feature = "metrics")]
pub(crate) use handles::CacheMetrics;
#[cfg(all(feature = "metrics", feature = "axum"))]
pub(crate) use handles::{throttle_decision, view_response};

/// A backend method: the `op` of spans and of `cached_kit_backend_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Get,
    GetMany,
    Set,
    SetMany,
    Add,
    Delete,
    DeleteMany,
    Incr,
    Touch,
    Clear,
    DeleteIfEquals,
    ExpireIfEquals,
}

impl Op {
    /// How many there are (an index bound for per-op handles).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const COUNT: usize = 12;

    /// The backend method's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::GetMany => "get_many",
            Op::Set => "set",
            Op::SetMany => "set_many",
            Op::Add => "add",
            Op::Delete => "delete",
            Op::DeleteMany => "delete_many",
            Op::Incr => "incr",
            Op::Touch => "touch",
            Op::Clear => "clear",
            Op::DeleteIfEquals => "delete_if_equals",
            Op::ExpireIfEquals => "expire_if_equals",
        }
    }

    /// The span's name for OpenTelemetry (`otel.name`): `cache get`, `cache set`, ...
    fn otel_name(self) -> &'static str {
        match self {
            Op::Get => "cache get",
            Op::GetMany => "cache get_many",
            Op::Set => "cache set",
            Op::SetMany => "cache set_many",
            Op::Add => "cache add",
            Op::Delete => "cache delete",
            Op::DeleteMany => "cache delete_many",
            Op::Incr => "cache incr",
            Op::Touch => "cache touch",
            Op::Clear => "cache clear",
            Op::DeleteIfEquals => "cache delete_if_equals",
            Op::ExpireIfEquals => "cache expire_if_equals",
        }
    }
}

/// The kind of a [`CacheError`]: the `kind` label of `cached_kit_cache_errors_total` and
/// the `error` field of a failed call's span. `decode` is counted where a stored value
/// does not decode (it is no `CacheError`: the read is a miss).
pub(crate) fn error_kind(err: &CacheError) -> &'static str {
    match err {
        CacheError::Backend { .. } => "backend",
        CacheError::Timeout { .. } => "timeout",
        CacheError::Encode { .. } => "encode",
        CacheError::Config { .. }
        | CacheError::FeatureDisabled { .. }
        | CacheError::UnknownCache(_) => "config",
        CacheError::NotACounter(_) => "not_a_counter",
        CacheError::Overflow(_) => "overflow",
        _ => "other",
    }
}

/// What a call's span says it found.
trait Outcome {
    fn outcome(&self) -> &'static str {
        "ok"
    }
}

impl Outcome for Option<Value> {
    fn outcome(&self) -> &'static str {
        match self {
            Some(_) => "hit",
            None => "miss",
        }
    }
}

impl Outcome for Vec<Option<Value>> {}
impl Outcome for () {}
impl Outcome for bool {}
impl Outcome for i64 {}
impl Outcome for usize {}

/// The span of one backend call, at `$level`: the cache's alias, the backend, the
/// operation, and, filled in when it ends, its outcome and duration. `otel.name` and
/// `otel.kind` are what `tracing-opentelemetry` names the span and its kind by.
macro_rules! call_span {
    ($level:ident, $kind:literal, $observed:expr, $op:expr) => {
        tracing::span!(
            tracing::Level::$level,
            "cache",
            otel.name = $op.otel_name(),
            otel.kind = $kind,
            cache = &*$observed.alias,
            backend = $observed.raw.name(),
            op = $op.name(),
            outcome = Empty,
            error = Empty,
            duration_us = Empty,
            key = Empty,
        )
    };
}

/// The backend a [`Cache`](crate::Cache) calls: its own backend, each call in a span and
/// timed (see the module's docs). It forwards every [`Backend`] method, those with a
/// default body too, so that the backend's own versions (a pipelined `get_many`, an
/// in-process `get_now`) are the ones that run: a method added to the trait must be
/// forwarded here as well.
///
/// Spans: a call that waits for a remote backend is an `INFO` span (it is I/O, which a
/// request's trace should show); a call to an in-process backend, and an answer given
/// without waiting (`get_now`: a memory hit), a `TRACE` span, since a span would cost
/// more than the call. The key is recorded only when `TRACE` is enabled for this module.
/// Durations are recorded for the calls that are awaited; `get_now` is not timed (a clock
/// read would cost as much as the hit).
pub(crate) struct Observed {
    raw: Arc<dyn Backend>,
    alias: Arc<str>,
    /// The backend keeps values in this process (its calls get `TRACE` spans).
    local: bool,
    #[cfg(feature = "metrics")]
    metrics: Arc<CacheMetrics>,
}

impl Observed {
    /// `raw`, observed as the cache `alias`.
    pub(crate) fn new(
        raw: Arc<dyn Backend>,
        alias: &str,
        #[cfg(feature = "metrics")] metrics: Arc<CacheMetrics>,
    ) -> Observed {
        Observed {
            local: raw.stores_objects(),
            raw,
            alias: alias.into(),
            #[cfg(feature = "metrics")]
            metrics,
        }
    }

    /// A span for `op` on `key`, disabled when nobody listens.
    fn span(&self, op: Op, key: &str) -> Span {
        let span = match self.local {
            true => call_span!(TRACE, "internal", self, op),
            false => call_span!(INFO, "client", self, op),
        };
        if !span.is_disabled() && tracing::enabled!(tracing::Level::TRACE) {
            span.record("key", key);
        }
        span
    }

    /// Awaits `call` (the backend's `op` on `key`), in its span, timed.
    async fn observe<T: Outcome>(
        &self,
        op: Op,
        key: &str,
        call: impl Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        #[cfg(feature = "metrics")]
        let timer = self.metrics.timer(op);
        #[cfg(not(feature = "metrics"))]
        let timer: Option<std::convert::Infallible> = None;
        let span = self.span(op, key);
        if span.is_disabled() && timer.is_none() {
            return call.await;
        }
        let start = Instant::now();
        let result = call.instrument(span.clone()).await;
        let elapsed = start.elapsed();
        #[cfg(feature = "metrics")]
        if let Some(histogram) = timer {
            histogram.record(elapsed.as_secs_f64());
        }
        ended(&span, &result, elapsed);
        result
    }
}

/// Whether any subscriber may want `TRACE` spans: the level `tracing` keeps as the
/// most verbose of every subscriber's (a load), checked before making a span at all.
#[inline(always)]
fn trace_wanted() -> bool {
    use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
    tracing::Level::TRACE <= STATIC_MAX_LEVEL && tracing::Level::TRACE <= LevelFilter::current()
}

/// Fills in a call's span once it ended.
fn ended<T: Outcome>(span: &Span, result: &Result<T, CacheError>, elapsed: Duration) {
    if span.is_disabled() {
        return;
    }
    match result {
        Ok(v) => span.record("outcome", v.outcome()),
        Err(e) => span
            .record("outcome", "error")
            .record("error", error_kind(e)),
    };
    span.record(
        "duration_us",
        u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
    );
}

/// The first key of a call on several, for its span.
fn first(keys: &[String]) -> &str {
    keys.first().map_or("", String::as_str)
}

/// The backend's methods, each observed. Inherent, so that the `Cache` calls them
/// without a dynamic call or a boxed future of its own (only the backend's); the
/// [`Backend`] impl below forwards to them for the code that needs a `dyn Backend`
/// (the computation lock).
impl Observed {
    pub(crate) fn name(&self) -> &'static str {
        self.raw.name()
    }

    pub(crate) fn stores_objects(&self) -> bool {
        self.local
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Value>, CacheError> {
        self.observe(Op::Get, key, self.raw.get(key)).await
    }

    #[inline]
    pub(crate) fn get_now(&self, key: &str) -> Option<Result<Option<Value>, CacheError>> {
        // The hit path: when no subscriber wants TRACE at all (one load), not even the
        // span's callsite is asked.
        match trace_wanted() {
            true => self.get_now_traced(key),
            false => self.raw.get_now(key),
        }
    }

    pub(crate) async fn set(&self, key: &str, value: Value, ttl: Ttl) -> Result<(), CacheError> {
        self.observe(Op::Set, key, self.raw.set(key, value, ttl))
            .await
    }

    pub(crate) async fn add(&self, key: &str, value: Value, ttl: Ttl) -> Result<bool, CacheError> {
        self.observe(Op::Add, key, self.raw.add(key, value, ttl))
            .await
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.observe(Op::Delete, key, self.raw.delete(key)).await
    }

    pub(crate) async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Value>>, CacheError> {
        self.observe(Op::GetMany, first(keys), self.raw.get_many(keys))
            .await
    }

    pub(crate) async fn set_many(
        &self,
        entries: Vec<(String, Value)>,
        ttl: Ttl,
    ) -> Result<(), CacheError> {
        // The first key, for a span at `TRACE` only (it would be copied for nothing).
        let key = match tracing::enabled!(tracing::Level::TRACE) {
            true => entries.first().map(|(k, _)| k.clone()).unwrap_or_default(),
            false => String::new(),
        };
        self.observe(Op::SetMany, &key, self.raw.set_many(entries, ttl))
            .await
    }

    pub(crate) async fn delete_many(&self, keys: &[String]) -> Result<usize, CacheError> {
        self.observe(Op::DeleteMany, first(keys), self.raw.delete_many(keys))
            .await
    }

    pub(crate) async fn incr(&self, key: &str, delta: i64, ttl: Ttl) -> Result<i64, CacheError> {
        self.observe(Op::Incr, key, self.raw.incr(key, delta, ttl))
            .await
    }

    pub(crate) async fn touch(&self, key: &str, ttl: Ttl) -> Result<bool, CacheError> {
        self.observe(Op::Touch, key, self.raw.touch(key, ttl)).await
    }

    pub(crate) async fn clear(&self, prefix: &str) -> Result<usize, CacheError> {
        self.observe(Op::Clear, prefix, self.raw.clear(prefix))
            .await
    }

    pub(crate) async fn delete_if_equals(
        &self,
        key: &str,
        expected: &[u8],
    ) -> Result<bool, CacheError> {
        let call = self.raw.delete_if_equals(key, expected);
        self.observe(Op::DeleteIfEquals, key, call).await
    }

    pub(crate) async fn expire_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let call = self.raw.expire_if_equals(key, expected, ttl);
        self.observe(Op::ExpireIfEquals, key, call).await
    }

    pub(crate) fn evictions(&self) -> u64 {
        self.raw.evictions()
    }
}

#[async_trait]
impl Backend for Observed {
    fn name(&self) -> &'static str {
        Observed::name(self)
    }

    fn stores_objects(&self) -> bool {
        Observed::stores_objects(self)
    }

    async fn get(&self, key: &str) -> Result<Option<Value>, CacheError> {
        Observed::get(self, key).await
    }

    fn get_now(&self, key: &str) -> Option<Result<Option<Value>, CacheError>> {
        Observed::get_now(self, key)
    }

    async fn set(&self, key: &str, value: Value, ttl: Ttl) -> Result<(), CacheError> {
        Observed::set(self, key, value, ttl).await
    }

    async fn add(&self, key: &str, value: Value, ttl: Ttl) -> Result<bool, CacheError> {
        Observed::add(self, key, value, ttl).await
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        Observed::delete(self, key).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Value>>, CacheError> {
        Observed::get_many(self, keys).await
    }

    async fn set_many(&self, entries: Vec<(String, Value)>, ttl: Ttl) -> Result<(), CacheError> {
        Observed::set_many(self, entries, ttl).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<usize, CacheError> {
        Observed::delete_many(self, keys).await
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Ttl) -> Result<i64, CacheError> {
        Observed::incr(self, key, delta, ttl).await
    }

    async fn touch(&self, key: &str, ttl: Ttl) -> Result<bool, CacheError> {
        Observed::touch(self, key, ttl).await
    }

    async fn clear(&self, prefix: &str) -> Result<usize, CacheError> {
        Observed::clear(self, prefix).await
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, CacheError> {
        Observed::delete_if_equals(self, key, expected).await
    }

    async fn expire_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        Observed::expire_if_equals(self, key, expected, ttl).await
    }

    fn evictions(&self) -> u64 {
        Observed::evictions(self)
    }
}

impl Observed {
    /// `get_now` when a subscriber may want its span (kept out of line, so that the
    /// hit path without one is a load, a branch and the backend's call).
    #[cold]
    #[inline(never)]
    fn get_now_traced(&self, key: &str) -> Option<Result<Option<Value>, CacheError>> {
        let span = call_span!(TRACE, "internal", self, Op::Get);
        if span.is_disabled() {
            return self.raw.get_now(key);
        }
        if tracing::enabled!(tracing::Level::TRACE) {
            span.record("key", key);
        }
        let start = Instant::now();
        let read = span.in_scope(|| self.raw.get_now(key));
        match &read {
            Some(read) => ended(&span, read, start.elapsed()),
            // The backend must be awaited: `get` has its own span.
            None => {
                span.record("outcome", "deferred");
            }
        }
        read
    }
}

/// What the rest of the crate calls without the `metrics` feature: nothing.
#[cfg(not(feature = "metrics"))]
mod off {
    use crate::stats::Counter;
    use crate::CacheError;

    /// A cache's metric handles: none without the `metrics` feature.
    #[derive(Debug, Default)]
    pub(crate) struct CacheMetrics;

    impl CacheMetrics {
        pub(crate) fn new(_alias: &str) -> CacheMetrics {
            CacheMetrics
        }

        #[inline(always)]
        pub(crate) fn counted(&self, _counter: Counter, _n: u64, _before: u64) {}

        #[inline(always)]
        pub(crate) fn error(&self, _err: &CacheError) {}
    }

    #[cfg(feature = "axum")]
    #[inline(always)]
    pub(crate) fn view_response(_status: super::ViewStatus) {}

    #[cfg(feature = "axum")]
    #[inline(always)]
    pub(crate) fn throttle_decision(_scope: &str, _decision: super::ThrottleDecision) {}
}

#[cfg(not(feature = "metrics"))]
pub(crate) use off::CacheMetrics;
#[cfg(all(not(feature = "metrics"), feature = "axum"))]
pub(crate) use off::{throttle_decision, view_response};

/// What a cached view answered a request with: the `status` label of
/// `cached_kit_view_responses_total`. Every request through `#[cache_view]` or
/// `CacheLayer` ends in exactly one.
#[cfg(feature = "axum")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ViewStatus {
    /// Answered from the cache (`Cache-Status: ...; hit`), a `304` included.
    Hit,
    /// Looked up and not found, and the response not stored for a reason of the request
    /// (`Cache-Control: no-store`) or of the cache (a backend error).
    Miss,
    /// Looked up, not found, and the handler's response stored.
    Stored,
    /// The handler's response may not be stored (its status, `Set-Cookie`,
    /// `Cache-Control`, `Vary`, its size...).
    Uncacheable,
    /// Not looked up at all (`fwd=bypass`: a method other than `GET`/`HEAD`, an
    /// authority that is not the `Host`).
    Passthrough,
}

#[cfg(feature = "axum")]
impl ViewStatus {
    /// The status of a response that was not stored, by why.
    pub(crate) fn not_stored(reason: crate::http::NotStored) -> ViewStatus {
        use crate::http::NotStored;
        match reason {
            r if r.is_bypass() => ViewStatus::Passthrough,
            NotStored::RequestNoStore | NotStored::CacheError => ViewStatus::Miss,
            _ => ViewStatus::Uncacheable,
        }
    }

    /// The label value.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn label(self) -> &'static str {
        match self {
            ViewStatus::Hit => "hit",
            ViewStatus::Miss => "miss",
            ViewStatus::Stored => "stored",
            ViewStatus::Uncacheable => "uncacheable",
            ViewStatus::Passthrough => "passthrough",
        }
    }
}

/// What one throttle decided for a request: the `decision` label of
/// `cached_kit_throttle_decisions_total`.
#[cfg(feature = "axum")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThrottleDecision {
    /// The throttle admitted the request (another throttle on the route may still
    /// refuse it: each throttle's decision is its own).
    Admitted,
    /// The throttle refused it.
    Refused,
    /// The throttle's store failed (the request then passes, or is refused when the
    /// throttle fails closed).
    StoreError,
}

#[cfg(feature = "axum")]
impl ThrottleDecision {
    /// The decision counted for a store's answer; `None` for a misconfigured throttle
    /// (no rate for its scope: refused with `500` and logged, not a decision).
    pub(crate) fn of(answer: &Result<crate::throttle::Decision, CacheError>) -> Option<Self> {
        match answer {
            Ok(d) if d.admitted => Some(ThrottleDecision::Admitted),
            Ok(_) => Some(ThrottleDecision::Refused),
            Err(CacheError::Config { .. }) => None,
            Err(_) => Some(ThrottleDecision::StoreError),
        }
    }

    /// The label value.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn label(self) -> &'static str {
        match self {
            ThrottleDecision::Admitted => "admitted",
            ThrottleDecision::Refused => "refused",
            ThrottleDecision::StoreError => "store_error",
        }
    }
}
