//! [`Refusal`]: what a throttle says about a request it refused, and the default `429`.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, StatusCode};

use super::{Algorithm, Decision, Rate, Scope};

pub(crate) const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// A request a throttle refused: which throttle, and how long to wait.
///
/// When several throttles refuse one request, this is the one with the longest wait.
/// The default response is its [`IntoResponse`]: `429 Too Many Requests` with
/// `Retry-After` and the `RateLimit-*` headers of [the module docs](super) and a short
/// text body. To answer otherwise, give a function from `&Refusal` to a response to
/// [`ThrottleLayer::refusal_response`](super::ThrottleLayer::refusal_response) or, for
/// `#[throttle]` and every layer without its own,
/// [`set_refusal_response`](super::set_refusal_response);
/// [`set_headers`](Refusal::set_headers) keeps the standard headers on it.
///
/// ```
/// use std::time::Duration;
/// use axum::response::{IntoResponse, Response};
/// use cached_core::throttle::{Rate, Refusal, Scope};
///
/// /// RFC 9457 problem details.
/// fn problem(refusal: &Refusal) -> Response {
///     let body = format!(
///         r#"{{"type":"https://example.com/problems/throttled","title":"Too many requests","status":429,"detail":"Try again in {} seconds."}}"#,
///         refusal.retry_after_secs(),
///     );
///     let mut response = (
///         http::StatusCode::TOO_MANY_REQUESTS,
///         [(http::header::CONTENT_TYPE, "application/problem+json")],
///         body,
///     )
///         .into_response();
///     refusal.set_headers(response.headers_mut());
///     response
/// }
///
/// let refusal = Refusal::new(Scope::named("uploads"), Rate::parse("5/minute")?, Duration::from_millis(1_200));
/// let response = problem(&refusal);
/// assert_eq!(response.headers()["retry-after"], "2");
/// assert_eq!(response.headers()["ratelimit-policy"], "5;w=60");
/// assert_eq!(refusal.into_response().status(), 429);
/// # Ok::<(), cached_core::throttle::ParseRateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// The refusing throttle's scope.
    pub scope: Scope,
    /// Its rate (for a scope whose rate is configured, the configured one).
    pub rate: Rate,
    /// Its algorithm, a GCRA burst resolved to a number.
    pub algorithm: Algorithm,
    /// Requests a window admits (sliding log: the rate's count; GCRA: the burst).
    pub limit: u32,
    /// Requests left now: 0.
    pub remaining: u32,
    /// How long until the throttle admits a request from this client again.
    pub retry_after: Duration,
}

impl Refusal {
    /// A refusal by a sliding-log throttle of `scope` at `rate`, for `retry_after`.
    pub fn new(scope: Scope, rate: Rate, retry_after: Duration) -> Refusal {
        Refusal {
            scope,
            rate,
            algorithm: Algorithm::SlidingLog,
            limit: rate.count(),
            remaining: 0,
            retry_after,
        }
    }

    pub(crate) fn from_decision(
        scope: Scope,
        rate: Rate,
        algorithm: Algorithm,
        d: &Decision,
    ) -> Refusal {
        Refusal {
            scope,
            rate,
            algorithm,
            limit: d.limit,
            remaining: d.remaining,
            retry_after: d.reset,
        }
    }

    /// [`retry_after`](Refusal::retry_after) in whole seconds, rounded up, at least 1:
    /// the value of `Retry-After`.
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }

    /// The `RateLimit-Policy` value: `{count};w={period seconds}`, and `;burst={burst}`
    /// for GCRA.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cached_core::throttle::{Rate, Refusal, Scope};
    /// let r = Refusal::new(Scope::User, Rate::new(100, 3600), Duration::from_secs(1));
    /// assert_eq!(r.policy(), "100;w=3600");
    /// ```
    pub fn policy(&self) -> String {
        policy(self.rate, self.algorithm)
    }

    /// Sets `Retry-After` and the `RateLimit-*` headers on a response of your own.
    pub fn set_headers(&self, headers: &mut HeaderMap) {
        headers.insert(RETRY_AFTER, HeaderValue::from(self.retry_after_secs()));
        set_ratelimit_headers(
            headers,
            self.limit,
            self.remaining,
            self.retry_after_secs(),
            &self.policy(),
        );
    }
}

/// The default refusal: `429 Too Many Requests`, `Retry-After`, `RateLimit-*`, and a
/// text body saying how long to wait (DRF's wording).
impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let wait = self.retry_after_secs();
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            format!("Request was throttled. Expected available in {wait} seconds.\n"),
        )
            .into_response();
        self.set_headers(response.headers_mut());
        response
    }
}

pub(crate) fn policy(rate: Rate, algorithm: Algorithm) -> String {
    match algorithm {
        Algorithm::Gcra { burst: Some(burst) } => {
            format!("{};w={};burst={burst}", rate.count(), rate.period_secs())
        }
        _ => format!("{};w={}", rate.count(), rate.period_secs()),
    }
}

pub(crate) fn set_ratelimit_headers(
    headers: &mut HeaderMap,
    limit: u32,
    remaining: u32,
    reset_secs: u64,
    policy: &str,
) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(remaining));
    headers.insert(RATELIMIT_RESET, HeaderValue::from(reset_secs));
    if let Ok(policy) = HeaderValue::from_str(policy) {
        headers.insert(RATELIMIT_POLICY, policy);
    }
}
