//! [`Throttle`] and [`Algorithm`], and the evaluation of a request against a list of
//! throttles that the layer and the `#[throttle]` extractor share.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::header::{HeaderValue, RETRY_AFTER};
use http::{Extensions, HeaderMap, StatusCode};

use super::rates::{missing_rates, ThrottleRates};
use super::refusal::{policy, set_ratelimit_headers};
use super::scope::client_ident;
use super::settings::Settings;
use super::{Decision, Gcra, ParseRateError, Rate, Refusal, Scope, ThrottleStore};
use crate::log::RateLimited;
use crate::observe::{self, ThrottleDecision};
use crate::CacheError;

/// How a throttle counts a client's requests.
///
/// ```
/// use std::num::NonZeroU32;
/// use cached_core::throttle::{Algorithm, Throttle};
/// let throttle = Throttle::user("10/minute")?.gcra(5);
/// assert_eq!(throttle.algorithm(), Algorithm::Gcra { burst: NonZeroU32::new(5) });
/// assert_eq!(Throttle::user("10/minute")?.algorithm(), Algorithm::SlidingLog);
/// # Ok::<(), cached_core::throttle::ParseRateError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Algorithm {
    /// DRF's exact sliding log (the default): at most `count` requests in any trailing
    /// period; state per client grows with `count`.
    #[default]
    SlidingLog,
    /// GCRA ([`Gcra`]): bursts of `burst` requests, then one per `period / count`;
    /// one instant of state per client. `burst: None` means the rate's count.
    Gcra {
        /// The bucket's size; `None`: the rate's count.
        burst: Option<NonZeroU32>,
    },
}

/// One throttle: a [`Scope`], a [`Rate`] (written in code, or configured by scope name
/// in [`ThrottleRates`]) and an [`Algorithm`]. A DRF throttle class with its rate.
///
/// ```
/// use cached_core::throttle::{Rate, Scope, Throttle};
/// let burst = Throttle::user("10/minute")?;
/// let sustained = Throttle::user("1000/day")?;
/// let anon = Throttle::anon("5/minute")?;
/// let uploads = Throttle::scoped("uploads", "20/hour")?.gcra(5);
/// let reports = Throttle::configured(Scope::named("reports")); // rate from THROTTLE_RATES
/// const SEARCH: Throttle = Throttle::new(Scope::User, Rate::new(30, 60));
/// assert_eq!(uploads.scope().name(), "uploads");
/// assert_eq!(SEARCH.rate(), Some(Rate::parse("30/minute")?));
/// assert_eq!(reports.rate(), None);
/// # let _ = (burst, sustained, anon);
/// # Ok::<(), cached_core::throttle::ParseRateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    scope: Scope,
    rate: Option<Rate>,
    algorithm: Algorithm,
}

impl Throttle {
    /// A throttle of `scope` at `rate`.
    pub const fn new(scope: Scope, rate: Rate) -> Throttle {
        Throttle {
            scope,
            rate: Some(rate),
            algorithm: Algorithm::SlidingLog,
        }
    }

    /// A throttle of `scope` whose rate is configured by the scope's name: the
    /// [`rates`](super::rates) installed with [`set_rates`](super::set_rates) or read from
    /// `THROTTLE_RATES`. Check at start-up that the rate exists with
    /// [`check_rates`](super::check_rates); otherwise a request reaching a throttle
    /// whose scope has no rate is refused with `500` and the scope is logged.
    ///
    /// ```
    /// use cached_core::throttle::{Scope, Throttle};
    /// const UPLOADS: Throttle = Throttle::configured(Scope::from_static("uploads"));
    /// const USERS: Throttle = Throttle::configured(Scope::User); // the rate of `user`
    /// # let _ = (UPLOADS, USERS);
    /// ```
    pub const fn configured(scope: Scope) -> Throttle {
        Throttle {
            scope,
            rate: None,
            algorithm: Algorithm::SlidingLog,
        }
    }

    /// DRF's `UserRateThrottle`: per identity, anonymous clients per IP.
    pub fn user(rate: &str) -> Result<Throttle, ParseRateError> {
        Ok(Throttle::new(Scope::User, Rate::parse(rate)?))
    }

    /// DRF's `AnonRateThrottle`: anonymous clients per IP; authenticated ones pass.
    pub fn anon(rate: &str) -> Result<Throttle, ParseRateError> {
        Ok(Throttle::new(Scope::Anon, Rate::parse(rate)?))
    }

    /// DRF's `ScopedRateThrottle`: a named budget, per identity or IP.
    pub fn scoped(name: &str, rate: &str) -> Result<Throttle, ParseRateError> {
        Ok(Throttle::new(
            Scope::named(name.to_owned()),
            Rate::parse(rate)?,
        ))
    }

    /// Counts with GCRA in bursts of `burst` (see [`Algorithm::Gcra`]) instead of the
    /// sliding log.
    ///
    /// # Panics
    ///
    /// If `burst` is 0 (in a `const`, a compile error).
    ///
    /// ```
    /// use cached_core::throttle::{Rate, Scope, Throttle};
    /// // 10 a minute on average, at most 3 at once.
    /// const API: Throttle = Throttle::new(Scope::User, Rate::new(10, 60)).gcra(3);
    /// # let _ = API;
    /// ```
    pub const fn gcra(self, burst: u32) -> Throttle {
        let Some(burst) = NonZeroU32::new(burst) else {
            panic!("a GCRA burst admits at least one request");
        };
        self.with_algorithm(Algorithm::Gcra { burst: Some(burst) })
    }

    /// Counts with `algorithm`.
    pub const fn with_algorithm(mut self, algorithm: Algorithm) -> Throttle {
        self.algorithm = algorithm;
        self
    }

    /// The scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The rate written in code; `None` when it is configured by scope name.
    pub fn rate(&self) -> Option<Rate> {
        self.rate
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The rate and algorithm to count with, the rate from `rates` when configured.
    fn limit(
        &self,
        rates: &mut Option<Result<Arc<ThrottleRates>, CacheError>>,
    ) -> Result<Limit, CacheError> {
        let rate = match self.rate {
            Some(rate) => rate,
            None => {
                let rates = rates
                    .get_or_insert_with(super::rates::rates)
                    .as_ref()
                    .map_err(Clone::clone)?;
                rates
                    .get(self.scope.name())
                    .ok_or_else(|| missing_rates(&[self.scope.name()]))?
            }
        };
        Ok(match self.algorithm {
            Algorithm::SlidingLog => Limit::Log(rate),
            Algorithm::Gcra { burst } => {
                let burst = burst.map_or(rate.count(), NonZeroU32::get);
                Limit::Gcra(Gcra::new(rate, burst))
            }
        })
    }
}

/// A throttle's rate and algorithm, resolved.
#[derive(Debug, Clone, Copy)]
enum Limit {
    Log(Rate),
    Gcra(Gcra),
}

impl Limit {
    fn rate(self) -> Rate {
        match self {
            Limit::Log(rate) => rate,
            Limit::Gcra(gcra) => gcra.rate(),
        }
    }

    /// The algorithm with the burst resolved.
    fn algorithm(self) -> Algorithm {
        match self {
            Limit::Log(_) => Algorithm::SlidingLog,
            Limit::Gcra(gcra) => Algorithm::Gcra {
                burst: NonZeroU32::new(gcra.burst()),
            },
        }
    }

    /// The store key for the client `ident`: `throttle:{scope}:{rate}:{ident}` for the
    /// sliding log, `throttle:{scope}:gcra:{rate}:{burst}:{ident}` for GCRA (so that a
    /// key never holds the other algorithm's state).
    fn key(self, scope: &Scope, ident: &str) -> String {
        match self {
            Limit::Log(rate) => format!("throttle:{}:{rate}:{ident}", scope.name()),
            Limit::Gcra(g) => format!(
                "throttle:{}:gcra:{}:{}:{ident}",
                scope.name(),
                g.rate(),
                g.burst()
            ),
        }
    }

    async fn check(self, store: &dyn ThrottleStore, key: &str) -> Result<Decision, CacheError> {
        match self {
            Limit::Log(rate) => match store.check_now(key, rate) {
                Some(answer) => answer,
                None => store.check(key, rate).await,
            },
            Limit::Gcra(gcra) => match store.check_gcra_now(key, gcra) {
                Some(answer) => answer,
                None => store.check_gcra(key, gcra).await,
            },
        }
    }

    async fn undo(
        self,
        store: &dyn ThrottleStore,
        key: &str,
        d: &Decision,
    ) -> Result<(), CacheError> {
        match self {
            Limit::Log(_) => store.undo(key, d).await,
            Limit::Gcra(gcra) => store.undo_gcra(key, gcra, d).await,
        }
    }
}

/// What to do with a request.
pub(crate) enum Verdict {
    /// Let it through; the headers to report, if any throttle applied.
    Admit(Option<Admitted>),
    /// Answer with this response.
    Refuse(Response),
}

/// The tightest admission of a request, for its `RateLimit-*` headers.
pub(crate) struct Admitted {
    decision: Decision,
    limit: Limit,
}

impl Admitted {
    pub(crate) fn set_headers(&self, headers: &mut HeaderMap) {
        let d = &self.decision;
        let policy = policy(self.limit.rate(), self.limit.algorithm());
        set_ratelimit_headers(headers, d.limit, d.remaining, d.retry_after_secs(), &policy);
    }
}

/// Checks every throttle (all of them, so that each store's view stays exact) and
/// decides. Admissions of a refused request are undone.
pub(crate) async fn evaluate(
    throttles: &[Throttle],
    settings: &Settings,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Verdict {
    let settings = settings.resolve();
    let store = &*settings.store;
    let mut rates = None;
    let mut admitted: Vec<(String, Decision, Limit)> = Vec::with_capacity(throttles.len());
    let mut refusal: Option<(Decision, Limit, &Throttle)> = None;
    let mut failed = false;
    let mut misconfigured = false;
    for throttle in throttles {
        let limit = match throttle.limit(&mut rates) {
            Ok(limit) => limit,
            Err(err) => {
                log_misconfigured(&throttle.scope, &err);
                misconfigured = true;
                continue;
            }
        };
        let Some(ident) = client_ident(&throttle.scope, headers, extensions, &settings.client_ip)
        else {
            continue;
        };
        let key = limit.key(&throttle.scope, &ident);
        let decision = limit.check(store, &key).await;
        // Metrics hook (`observe.rs`): each throttle's decision, by its scope's name.
        if let Some(counted) = ThrottleDecision::of(&decision) {
            observe::throttle_decision(throttle.scope.name(), counted);
        }
        match decision {
            Ok(d) if d.admitted => admitted.push((key, d, limit)),
            Ok(d) => {
                tracing::debug!(
                    scope = %throttle.scope,
                    limit = d.limit,
                    retry_after_ms = u64::try_from(d.reset.as_millis()).unwrap_or(u64::MAX),
                    "throttle refused a request"
                );
                tracing::trace!(scope = %throttle.scope, key = %key, "throttle refused this client");
                if refusal.is_none_or(|(r, _, _)| d.reset > r.reset) {
                    refusal = Some((d, limit, throttle));
                }
            }
            Err(err @ CacheError::Config { .. }) => {
                log_misconfigured(&throttle.scope, &err);
                misconfigured = true;
            }
            Err(err) => {
                log_store_error(store.name(), &err, settings.fail_closed);
                failed = true;
            }
        }
    }
    if refusal.is_some() || misconfigured || (failed && settings.fail_closed) {
        for (key, d, limit) in &admitted {
            if let Err(err) = limit.undo(store, key, d).await {
                log_store_error(store.name(), &err, settings.fail_closed);
            }
        }
    }
    if misconfigured {
        return Verdict::Refuse(misconfigured_response());
    }
    if let Some((d, limit, throttle)) = refusal {
        let refusal =
            Refusal::from_decision(throttle.scope.clone(), limit.rate(), limit.algorithm(), &d);
        return Verdict::Refuse(match &settings.refusal {
            Some(respond) => respond(&refusal),
            None => refusal.into_response(),
        });
    }
    if failed && settings.fail_closed {
        return Verdict::Refuse(store_unavailable());
    }
    let tightest = admitted
        .into_iter()
        .map(|(_, decision, limit)| Admitted { decision, limit })
        .min_by(|a, b| {
            (a.decision.remaining.cmp(&b.decision.remaining))
                .then(b.decision.reset.cmp(&a.decision.reset))
        });
    Verdict::Admit(tightest)
}

fn log_store_error(store: &str, err: &dyn std::error::Error, fail_closed: bool) {
    static LOG: RateLimited = RateLimited::new();
    if let Some(suppressed) = LOG.allow() {
        let action = if fail_closed {
            "refusing requests (fail closed)"
        } else {
            "admitting requests (fail open)"
        };
        tracing::warn!(store, error = %err, suppressed, "throttle store failed; {action}");
    }
}

fn log_misconfigured(scope: &Scope, err: &CacheError) {
    static LOG: RateLimited = RateLimited::new();
    if let Some(suppressed) = LOG.allow() {
        tracing::error!(
            scope = %scope,
            error = %err,
            suppressed,
            "throttle misconfigured; refusing its requests with 500 until it is fixed"
        );
    }
}

fn store_unavailable() -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        "The rate limiter is unavailable; try again shortly.\n",
    )
        .into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn misconfigured_response() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "The rate limiter of this endpoint is misconfigured.\n",
    )
        .into_response()
}
