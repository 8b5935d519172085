//! The `metrics` side of [`observe`](super) (feature `metrics`): each cache's handles,
//! bound to the recorder once there is one, and the handles of views and throttles.

use std::sync::OnceLock;

use ::metrics::{Counter, Histogram, Unit};

use super::{error_kind, Op};
use crate::stats::Counter as Event;
use crate::CacheError;

const LOOKUPS: &str = "cached_kit_cache_lookups_total";
const ERRORS: &str = "cached_kit_cache_errors_total";
const COALESCED: &str = "cached_kit_cache_coalesced_total";
const BACKEND_DURATION: &str = "cached_kit_backend_duration_seconds";
#[cfg(feature = "axum")]
const VIEW_RESPONSES: &str = "cached_kit_view_responses_total";
#[cfg(feature = "axum")]
const THROTTLE_DECISIONS: &str = "cached_kit_throttle_decisions_total";

/// An unbound cache asks whether a recorder has appeared at a thread's first event of a
/// kind, then every this many (a power of two).
const RECHECK: u64 = 1024;

/// The error kinds, as [`error_kind`] names them, plus `decode`.
const KINDS: [&str; 8] = [
    "backend",
    "timeout",
    "decode",
    "encode",
    "config",
    "not_a_counter",
    "overflow",
    "other",
];

/// Whether a recorder is installed (globally, or for this thread). The `metrics` crate
/// falls back to its no-op recorder, which has no size; any recorder with state does.
fn recorder_installed() -> bool {
    ::metrics::with_recorder(|r| std::mem::size_of_val(r) != 0)
}

/// Gives the recorder each metric's unit and help text (Prometheus' `# HELP`).
fn describe() {
    ::metrics::describe_counter!(
        LOOKUPS,
        Unit::Count,
        "Cache reads by what they found: hit (fresh), stale (served past its ttl while one refresh runs), miss (absent, expired, undecodable or invalidated)"
    );
    ::metrics::describe_counter!(
        ERRORS,
        Unit::Count,
        "Cache failures survived, by kind: backend, timeout, decode (a stored value that does not decode, read as a miss), encode, config, ..."
    );
    ::metrics::describe_counter!(
        COALESCED,
        Unit::Count,
        "Callers that waited for another caller's computation of the same key instead of running it"
    );
    ::metrics::describe_histogram!(
        BACKEND_DURATION,
        Unit::Seconds,
        "Time of the backend calls a cache awaited, by backend method (answers given without waiting, such as memory hits, are not timed)"
    );
    #[cfg(feature = "axum")]
    {
        ::metrics::describe_counter!(
            VIEW_RESPONSES,
            Unit::Count,
            "Responses of cached views (#[cache_view], CacheLayer): hit, miss, stored, uncacheable, passthrough"
        );
        ::metrics::describe_counter!(
            THROTTLE_DECISIONS,
            Unit::Count,
            "Throttle checks by scope and decision: admitted, refused, store_error"
        );
    }
}

/// One cache's metric handles, bound to the recorder the first time one is seen (see
/// the module's docs of [`observe`](super)).
#[derive(Debug, Default)]
pub(crate) struct CacheMetrics {
    alias: String,
    bound: OnceLock<Box<Handles>>,
}

/// The handles of a bound cache. Lookups that every cache makes are registered at once
/// (so they read 0 rather than being absent); the rest when first needed.
#[derive(Debug)]
struct Handles {
    hit: Counter,
    miss: Counter,
    coalesced: Counter,
    stale: OnceLock<Counter>,
    near: OnceLock<Counter>,
    errors: [OnceLock<Counter>; KINDS.len()],
    durations: [OnceLock<Histogram>; Op::COUNT],
}

impl CacheMetrics {
    /// The handles of the cache `alias`, not bound yet.
    pub(crate) fn new(alias: &str) -> CacheMetrics {
        CacheMetrics {
            alias: alias.to_owned(),
            bound: OnceLock::new(),
        }
    }

    /// Counts `n` `event`s that the cache's counters just counted; `before` is the
    /// thread's count of that event before them (it paces the look for a recorder).
    #[inline]
    pub(crate) fn counted(&self, event: Event, n: u64, before: u64) {
        match self.bound.get() {
            Some(handles) => handles.count(&self.alias, event, n),
            None if before.is_multiple_of(RECHECK) => self.counted_unbound(event, n),
            None => {}
        }
    }

    #[cold]
    #[inline(never)]
    fn counted_unbound(&self, event: Event, n: u64) {
        if let Some(handles) = self.bind() {
            handles.count(&self.alias, event, n);
        }
    }

    /// Counts a backend error survived.
    pub(crate) fn error(&self, err: &CacheError) {
        if let Some(handles) = self.handles() {
            handles.error(&self.alias, error_kind(err)).increment(1);
        }
    }

    /// The histogram of `op`'s durations, when a recorder is installed.
    pub(crate) fn timer(&self, op: Op) -> Option<&Histogram> {
        let handles = self.handles()?;
        Some(handles.durations[op as usize].get_or_init(|| {
            ::metrics::histogram!(BACKEND_DURATION, "cache" => self.alias.clone(), "op" => op.name())
        }))
    }

    fn handles(&self) -> Option<&Handles> {
        match self.bound.get() {
            Some(handles) => Some(handles),
            None => self.bind(),
        }
    }

    /// Binds the handles if a recorder is installed.
    fn bind(&self) -> Option<&Handles> {
        if !recorder_installed() {
            return None;
        }
        Some(self.bound.get_or_init(|| {
            describe();
            let lookup = |result: &'static str| {
                ::metrics::counter!(LOOKUPS, "cache" => self.alias.clone(), "result" => result)
            };
            Box::new(Handles {
                hit: lookup("hit"),
                miss: lookup("miss"),
                coalesced: ::metrics::counter!(COALESCED, "cache" => self.alias.clone()),
                stale: OnceLock::new(),
                near: OnceLock::new(),
                errors: Default::default(),
                durations: Default::default(),
            })
        }))
    }
}

impl Handles {
    #[inline]
    fn count(&self, alias: &str, event: Event, n: u64) {
        match event {
            Event::Hits => self.hit.increment(n),
            Event::Misses => self.miss.increment(n),
            Event::StaleHits => self
                .stale
                .get_or_init(|| {
                    ::metrics::counter!(LOOKUPS, "cache" => alias.to_owned(), "result" => "stale")
                })
                .increment(n),
            Event::NearHits => self
                .near
                .get_or_init(|| {
                    ::metrics::counter!(LOOKUPS, "cache" => alias.to_owned(), "result" => "near_hit")
                })
                .increment(n),
            Event::CoalescedWaits => self.coalesced.increment(n),
            Event::DecodeErrors => self.error(alias, "decode").increment(n),
            // Errors are counted with their kind by `error`; writes have no metric.
            Event::Errors | Event::Sets | Event::Deletes => {}
        }
    }

    fn error(&self, alias: &str, kind: &'static str) -> &Counter {
        let i = KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(KINDS.len() - 1);
        self.errors[i].get_or_init(
            || ::metrics::counter!(ERRORS, "cache" => alias.to_owned(), "kind" => KINDS[i]),
        )
    }
}

/// Counts one response of a cached view.
#[cfg(feature = "axum")]
pub(crate) fn view_response(status: super::ViewStatus) {
    use super::ViewStatus;
    static VIEWS: OnceLock<[Counter; 5]> = OnceLock::new();
    let handles = match VIEWS.get() {
        Some(handles) => handles,
        None if recorder_installed() => VIEWS.get_or_init(|| {
            describe();
            [
                ViewStatus::Hit,
                ViewStatus::Miss,
                ViewStatus::Stored,
                ViewStatus::Uncacheable,
                ViewStatus::Passthrough,
            ]
            .map(|s| ::metrics::counter!(VIEW_RESPONSES, "status" => s.label()))
        }),
        None => return,
    };
    handles[status as usize].increment(1);
}

/// Counts one throttle's decision on a request; `scope` is the throttle's scope name.
#[cfg(feature = "axum")]
pub(crate) fn throttle_decision(scope: &str, decision: super::ThrottleDecision) {
    use std::collections::HashMap;
    use std::sync::{LazyLock, PoisonError, RwLock};

    use super::ThrottleDecision;
    type Scopes = RwLock<HashMap<Box<str>, [Counter; 3]>>;
    static SCOPES: LazyLock<Scopes> = LazyLock::new(Scopes::default);
    if !recorder_installed() {
        return;
    }
    let i = decision as usize;
    if let Some(handles) = SCOPES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(scope)
    {
        handles[i].increment(1);
        return;
    }
    let mut scopes = SCOPES.write().unwrap_or_else(PoisonError::into_inner);
    let handles = scopes.entry(scope.into()).or_insert_with(|| {
        describe();
        [
            ThrottleDecision::Admitted,
            ThrottleDecision::Refused,
            ThrottleDecision::StoreError,
        ]
        .map(|d| {
            ::metrics::counter!(THROTTLE_DECISIONS, "scope" => scope.to_owned(), "decision" => d.label())
        })
    });
    handles[i].increment(1);
}
