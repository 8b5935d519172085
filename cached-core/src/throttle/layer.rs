//! [`ThrottleLayer`] and its [`ThrottleService`] for tower/axum.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::response::Response;
use axum::BoxError;
use http::Request;
use tower::{Layer, Service};

use super::check::{evaluate, Verdict};
use super::refusal::RATELIMIT_LIMIT;
use super::settings::Settings;
use super::{ClientIp, Refusal, Throttle, ThrottleStore};

/// Applies throttles to every request of a router or service (DRF's
/// `DEFAULT_THROTTLE_CLASSES`).
///
/// Every throttle is checked on each request; if any refuses, the request gets the
/// refusal response (by default `429` with `Retry-After` for the longest wait), and
/// what the other throttles recorded for it is undone, so it counts nowhere. Admitted
/// responses carry the `RateLimit-*` headers (see [the module docs](super)). When the
/// store fails the layer admits the request and logs it, unless
/// [`fail_closed`](ThrottleLayer::fail_closed) is set.
///
/// Identity comes from a [`ThrottleIdentity`](super::ThrottleIdentity) extension that
/// your auth layer inserts, so add that layer after this one (it then runs first);
/// client IPs from `ConnectInfo<SocketAddr>` and, behind trusted proxies, their header
/// ([`ClientIp`]).
///
/// ```
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::net::SocketAddr;
/// use axum::{routing::get, Router};
/// use cached_core::throttle::{ClientIp, Throttle, ThrottleLayer};
///
/// let app = Router::new()
///     .route("/api/search", get(|| async { "results" }))
///     .layer(
///         ThrottleLayer::new()
///             .throttle(Throttle::anon("100/day")?)
///             .throttle(Throttle::user("10/minute")?.gcra(3)) // bursts of 3
///             .client_ip(ClientIp::new().trusted_networks(["10.0.0.0/8"])?),
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

    /// The layer's throttles, e.g. for [`check_rates`](super::check_rates).
    ///
    /// ```
    /// use cached_core::throttle::{Scope, Throttle, ThrottleLayer};
    /// let layer = ThrottleLayer::new().throttle(Throttle::configured(Scope::Anon));
    /// assert_eq!(layer.throttles().len(), 1);
    /// ```
    pub fn throttles(&self) -> &[Throttle] {
        &self.throttles
    }

    /// Keeps the state in `store` instead of the [default store](super::default_store).
    pub fn store(mut self, store: impl ThrottleStore) -> Self {
        self.settings.store = Some(Arc::new(store));
        self
    }

    /// Keeps the state in a store shared with other layers.
    pub fn shared_store(mut self, store: Arc<dyn ThrottleStore>) -> Self {
        self.settings.store = Some(store);
        self
    }

    /// Trusts `X-Forwarded-For` through `n` proxies (DRF's `NUM_PROXIES`): the same as
    /// `client_ip(ClientIp::new().trusted_hops(n))`. 0 uses the socket's peer address
    /// only.
    pub fn trusted_proxies(self, n: usize) -> Self {
        self.client_ip(ClientIp::new().trusted_hops(n))
    }

    /// Finds the client's address as `client_ip` says (trusted proxies by hop count or
    /// network, `X-Forwarded-For` or `Forwarded`, IPv6 grouping) instead of the
    /// [process-wide setting](super::set_client_ip).
    pub fn client_ip(mut self, client_ip: ClientIp) -> Self {
        self.settings.client_ip = Some(Arc::new(client_ip));
        self
    }

    /// When the store fails, refuse requests with `503` (true) or admit them (false,
    /// the default).
    pub fn fail_closed(mut self, closed: bool) -> Self {
        self.settings.fail_closed = Some(closed);
        self
    }

    /// Answers refused requests with `f(&refusal)` instead of the
    /// [process-wide one](super::set_refusal_response) (by default the [`Refusal`]'s
    /// `429`).
    ///
    /// ```
    /// use axum::response::{IntoResponse, Response};
    /// use cached_core::throttle::{Refusal, Throttle, ThrottleLayer};
    ///
    /// let layer = ThrottleLayer::new()
    ///     .throttle(Throttle::anon("10/minute")?)
    ///     .refusal_response(|refusal: &Refusal| -> Response {
    ///         let mut response = (
    ///             http::StatusCode::TOO_MANY_REQUESTS,
    ///             [(http::header::CONTENT_TYPE, "application/problem+json")],
    ///             format!(r#"{{"title":"Too many requests","status":429,"retry_after":{}}}"#, refusal.retry_after_secs()),
    ///         )
    ///             .into_response();
    ///         refusal.set_headers(response.headers_mut());
    ///         response
    ///     });
    /// # let _ = layer;
    /// # Ok::<(), cached_core::throttle::ParseRateError>(())
    /// ```
    pub fn refusal_response(
        mut self,
        f: impl Fn(&Refusal) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.settings.refusal = Some(Arc::new(f));
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
/// let router: &axum::Router = service.get_ref();
/// # let _ = router;
/// ```
#[derive(Clone)]
pub struct ThrottleService<S> {
    inner: S,
    layer: ThrottleLayer,
}

impl<S> ThrottleService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
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
                Verdict::Admit(admitted) => {
                    let mut response = inner.call(req).await?.map(Body::new);
                    if let Some(admitted) = admitted {
                        let headers = response.headers_mut();
                        // An inner layer's tighter report stands.
                        if !headers.contains_key(RATELIMIT_LIMIT) {
                            admitted.set_headers(headers);
                        }
                    }
                    Ok(response)
                }
            }
        })
    }
}
