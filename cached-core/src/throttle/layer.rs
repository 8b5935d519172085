//! [`ThrottleLayer`] for tower/axum, the [`Throttled`] extractor behind `#[throttle]`,
//! and the process-wide defaults they share.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use axum::BoxError;
use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::request::Parts;
use http::{Extensions, HeaderMap, Request, StatusCode};
use tower::{Layer, Service};

use super::scope::client_ident;
use super::{Decision, MemoryThrottleStore, ParseRateError, Rate, Scope, ThrottleStore};

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// One throttle: a [`Scope`] and a [`Rate`] (a DRF throttle class with its rate).
///
/// ```
/// use cached_core::throttle::{Rate, Scope, Throttle};
/// let burst = Throttle::user("10/minute")?;
/// let sustained = Throttle::user("1000/day")?;
/// let anon = Throttle::anon("5/minute")?;
/// let uploads = Throttle::scoped("uploads", "20/hour")?;
/// const SEARCH: Throttle = Throttle::new(Scope::User, Rate::new(30, 60));
/// assert_eq!(uploads.scope().name(), "uploads");
/// assert_eq!(SEARCH.rate(), Rate::parse("30/minute")?);
/// # let _ = (burst, sustained, anon);
/// # Ok::<(), cached_core::throttle::ParseRateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    scope: Scope,
    rate: Rate,
}

impl Throttle {
    /// A throttle of `scope` at `rate`.
    pub const fn new(scope: Scope, rate: Rate) -> Throttle {
        Throttle { scope, rate }
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

    /// The scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// The store key for the client `ident`: `throttle:{scope}:{rate}:{ident}`.
    fn key(&self, ident: &str) -> String {
        format!("throttle:{}:{}:{ident}", self.scope.name(), self.rate)
    }
}

static DEFAULT_STORE: RwLock<Option<Arc<dyn ThrottleStore>>> = RwLock::new(None);
static TRUSTED_PROXIES: AtomicUsize = AtomicUsize::new(0);
static FAIL_CLOSED: AtomicBool = AtomicBool::new(false);

/// The store used by `#[throttle]` and by every [`ThrottleLayer`] not given its own:
/// a [`MemoryThrottleStore`] unless [`set_default_store`] says otherwise.
///
/// ```
/// let store = cached_core::throttle::default_store();
/// assert!(!store.name().is_empty());
/// ```
pub fn default_store() -> Arc<dyn ThrottleStore> {
    static MEMORY: LazyLock<Arc<dyn ThrottleStore>> =
        LazyLock::new(|| Arc::new(MemoryThrottleStore::default()));
    let configured = DEFAULT_STORE.read().unwrap_or_else(PoisonError::into_inner);
    match &*configured {
        Some(store) => Arc::clone(store),
        None => Arc::clone(&MEMORY),
    }
}

/// Sets the store of `#[throttle]` and of layers not given their own, e.g. Redis so
/// that every instance of the app shares the budgets.
///
/// ```
/// use cached_core::throttle::{set_default_store, MemoryThrottleStore};
/// set_default_store(MemoryThrottleStore::with_max_keys(1_000_000));
/// ```
pub fn set_default_store(store: impl ThrottleStore) {
    *DEFAULT_STORE
        .write()
        .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(store));
}

/// Sets how many proxies in front of the app to trust with `X-Forwarded-For` (DRF's
/// `NUM_PROXIES`), for `#[throttle]` and layers that do not set their own. Default 0:
/// the client IP is the socket's peer address and `X-Forwarded-For` is ignored.
///
/// ```
/// cached_core::throttle::set_trusted_proxies(0);
/// ```
pub fn set_trusted_proxies(n: usize) {
    TRUSTED_PROXIES.store(n, Ordering::Relaxed);
}

/// Sets whether `#[throttle]` and layers that do not set their own refuse requests
/// (`503 Service Unavailable`) when the store fails. Default false: they admit them,
/// and log the failure.
///
/// ```
/// cached_core::throttle::set_fail_closed(false);
/// ```
pub fn set_fail_closed(closed: bool) {
    FAIL_CLOSED.store(closed, Ordering::Relaxed);
}

/// Per-layer settings; `None` means the process-wide default.
#[derive(Clone, Default)]
struct Settings {
    store: Option<Arc<dyn ThrottleStore>>,
    trusted_proxies: Option<usize>,
    fail_closed: Option<bool>,
}

/// What to do with a request.
enum Verdict {
    /// Let it through; the decision to report in headers, if any throttle applied.
    Admit(Option<(Decision, Rate)>),
    /// Answer with this response.
    Refuse(Response),
}

/// Checks every throttle (all of them, so that each store's view stays exact) and
/// decides. Admissions of a refused request are undone.
async fn evaluate(
    throttles: &[Throttle],
    settings: &Settings,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Verdict {
    let store = settings.store.clone().unwrap_or_else(default_store);
    let trusted_proxies = settings
        .trusted_proxies
        .unwrap_or_else(|| TRUSTED_PROXIES.load(Ordering::Relaxed));
    let fail_closed = settings
        .fail_closed
        .unwrap_or_else(|| FAIL_CLOSED.load(Ordering::Relaxed));

    let mut admitted: Vec<(String, Decision, Rate)> = Vec::with_capacity(throttles.len());
    let mut refusal: Option<(Decision, Rate)> = None;
    let mut failed = false;
    for throttle in throttles {
        let Some(ident) = client_ident(&throttle.scope, headers, extensions, trusted_proxies)
        else {
            continue;
        };
        let key = throttle.key(&ident);
        match store.check(&key, throttle.rate).await {
            Ok(d) if d.admitted => admitted.push((key, d, throttle.rate)),
            Ok(d) => {
                if refusal.is_none_or(|(r, _)| d.reset > r.reset) {
                    refusal = Some((d, throttle.rate));
                }
            }
            Err(err) => {
                log_store_error(store.name(), &err, fail_closed);
                failed = true;
            }
        }
    }
    if refusal.is_some() || (failed && fail_closed) {
        for (key, d, _) in &admitted {
            if let Err(err) = store.undo(key, d).await {
                log_store_error(store.name(), &err, fail_closed);
            }
        }
    }
    if let Some((d, rate)) = refusal {
        return Verdict::Refuse(too_many_requests(&d, rate));
    }
    if failed && fail_closed {
        return Verdict::Refuse(store_unavailable());
    }
    let tightest = admitted
        .into_iter()
        .map(|(_, d, rate)| (d, rate))
        .min_by(|(a, _), (b, _)| a.remaining.cmp(&b.remaining).then(b.reset.cmp(&a.reset)));
    Verdict::Admit(tightest)
}

/// Logs a store failure at most once a second, so a down store does not flood the logs.
fn log_store_error(store: &str, err: &dyn std::error::Error, fail_closed: bool) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if LAST.swap(now, Ordering::Relaxed) != now {
        let action = if fail_closed {
            "refusing requests (fail closed)"
        } else {
            "admitting requests (fail open)"
        };
        tracing::warn!(store, error = %err, "throttle store failed; {action}");
    }
}

fn set_ratelimit_headers(headers: &mut HeaderMap, d: &Decision, rate: Rate) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(d.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(d.remaining));
    headers.insert(RATELIMIT_RESET, HeaderValue::from(d.retry_after_secs()));
    let policy = format!("{};w={}", rate.count(), rate.period_secs());
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        headers.insert(RATELIMIT_POLICY, policy);
    }
}

fn too_many_requests(d: &Decision, rate: Rate) -> Response {
    let wait = d.retry_after_secs();
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        format!("Request was throttled. Expected available in {wait} seconds.\n"),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(RETRY_AFTER, HeaderValue::from(wait));
    set_ratelimit_headers(headers, d, rate);
    response
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

/// Applies throttles to every request of a router or service (DRF's
/// `DEFAULT_THROTTLE_CLASSES`).
///
/// Every throttle is checked on each request; if any refuses, the request gets `429`
/// with `Retry-After` for the longest wait, and what the other throttles recorded for
/// it is undone, so it counts nowhere. Admitted responses carry the `RateLimit-*`
/// headers (see [the module docs](super)). When the store fails the layer admits the
/// request and logs it, unless [`fail_closed`](ThrottleLayer::fail_closed) is set.
///
/// Identity comes from a [`ThrottleIdentity`](super::ThrottleIdentity) extension that
/// your auth layer inserts, so add that layer after this one (it then runs first);
/// client IPs from `ConnectInfo<SocketAddr>`.
///
/// ```
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::net::SocketAddr;
/// use axum::{routing::get, Router};
/// use cached_core::throttle::{Throttle, ThrottleLayer};
///
/// let app = Router::new()
///     .route("/api/search", get(|| async { "results" }))
///     .layer(
///         ThrottleLayer::new()
///             .throttle(Throttle::anon("100/day")?)
///             .throttle(Throttle::user("10/minute")?)
///             .trusted_proxies(1), // behind one reverse proxy
///     );
/// // The client IP comes from the connection: serve with
/// let service = app.into_make_service_with_connect_info::<SocketAddr>();
/// // axum::serve(listener, service).await?;
/// # let _ = service;
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct ThrottleLayer {
    throttles: Arc<[Throttle]>,
    settings: Settings,
}

impl ThrottleLayer {
    /// A layer with no throttle yet, using the default store and settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a throttle.
    pub fn throttle(mut self, throttle: Throttle) -> Self {
        let mut throttles = self.throttles.to_vec();
        throttles.push(throttle);
        self.throttles = throttles.into();
        self
    }

    /// Keeps the logs in `store` instead of the [default store](default_store).
    pub fn store(mut self, store: impl ThrottleStore) -> Self {
        self.settings.store = Some(Arc::new(store));
        self
    }

    /// Keeps the logs in a store shared with other layers.
    pub fn shared_store(mut self, store: Arc<dyn ThrottleStore>) -> Self {
        self.settings.store = Some(store);
        self
    }

    /// Trusts `X-Forwarded-For` through `n` proxies (DRF's `NUM_PROXIES`); 0 (the
    /// default) uses the socket's peer address only.
    pub fn trusted_proxies(mut self, n: usize) -> Self {
        self.settings.trusted_proxies = Some(n);
        self
    }

    /// When the store fails, refuse requests with `503` (true) or admit them (false,
    /// the default).
    pub fn fail_closed(mut self, closed: bool) -> Self {
        self.settings.fail_closed = Some(closed);
        self
    }
}

impl<S> Layer<S> for ThrottleLayer {
    type Service = ThrottleService<S>;

    fn layer(&self, inner: S) -> ThrottleService<S> {
        ThrottleService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of a [`ThrottleLayer`].
///
/// ```
/// use cached_core::throttle::{Throttle, ThrottleLayer, ThrottleService};
/// use tower::Layer;
/// let service: ThrottleService<axum::Router> = ThrottleLayer::new()
///     .throttle(Throttle::anon("1/s").unwrap())
///     .layer(axum::Router::new());
/// # let _ = service;
/// ```
#[derive(Clone)]
pub struct ThrottleService<S> {
    inner: S,
    layer: ThrottleLayer,
}

impl<S, B, ResBody> Service<Request<B>> for ThrottleService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The clone is the one that is not ready; the ready one serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let verdict = evaluate(
                &layer.throttles,
                &layer.settings,
                req.headers(),
                req.extensions(),
            )
            .await;
            match verdict {
                Verdict::Refuse(response) => Ok(response),
                Verdict::Admit(decision) => {
                    let mut response = inner.call(req).await?.map(Body::new);
                    if let Some((d, rate)) = decision {
                        let headers = response.headers_mut();
                        // An inner layer's tighter report stands.
                        if !headers.contains_key(RATELIMIT_LIMIT) {
                            set_ratelimit_headers(headers, &d, rate);
                        }
                    }
                    Ok(response)
                }
            }
        })
    }
}

/// The throttles of one `#[throttle]`-annotated handler. Implemented by code the
/// attribute generates; not meant to be implemented by hand.
///
/// ```
/// use cached_core::throttle::{Rate, Scope, Throttle, ThrottleSpec};
/// struct Search;
/// impl ThrottleSpec for Search {
///     const THROTTLES: &'static [Throttle] = &[Throttle::new(Scope::User, Rate::new(10, 60))];
/// }
/// # let _ = Search;
/// ```
pub trait ThrottleSpec: Send + Sync + 'static {
    /// The handler's throttles.
    const THROTTLES: &'static [Throttle];
}

/// The extractor `#[throttle]` puts first in a handler's arguments: it checks the
/// handler's throttles (with the process-wide [defaults](set_default_store)) before any
/// other extractor runs, and rejects a refused request with the `429` response.
///
/// ```
/// use axum::{routing::get, Router};
/// use cached_core::throttle::{Rate, Scope, Throttle, ThrottleSpec, Throttled};
///
/// struct Limited;
/// impl ThrottleSpec for Limited {
///     const THROTTLES: &'static [Throttle] = &[Throttle::new(Scope::Anon, Rate::new(5, 60))];
/// }
/// async fn limited(_: Throttled<Limited>) -> &'static str {
///     "ok"
/// }
/// let app: Router = Router::new().route("/limited", get(limited));
/// ```
pub struct Throttled<M>(PhantomData<fn() -> M>);

impl<M, S> FromRequestParts<S> for Throttled<M>
where
    M: ThrottleSpec,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        let settings = Settings::default();
        match evaluate(M::THROTTLES, &settings, &parts.headers, &parts.extensions).await {
            Verdict::Admit(_) => Ok(Throttled(PhantomData)),
            Verdict::Refuse(response) => Err(response),
        }
    }
}
