//! [`CacheService`], the service [`CacheLayer`] wraps around another, and its
//! [`ResponseFuture`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::body::{Body, HttpBody};
use axum::response::Response;
use axum::BoxError;
use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request};
use pin_project_lite::pin_project;
use tower::Service;

use super::exchange::{refresh_headers, Begun, Exchange, Lookup, Options};
use super::CacheLayer;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The service [`CacheLayer`] wraps around another: answers from the cache, or calls the
/// inner service and stores what it answers, by the rules of the [`http`](crate::http)
/// module.
///
/// ```
/// use axum::{routing::get, Router};
/// use cached_core::http::{CacheLayer, CacheService};
///
/// let router: Router = Router::new().route("/", get(|| async { "hi" }));
/// let mut service = CacheService::new(router, CacheLayer::new());
/// let _router: &mut Router = service.get_mut();
/// let _router: Router = service.into_inner();
/// ```
#[derive(Clone)]
pub struct CacheService<S> {
    inner: S,
    opts: Arc<Options>,
}

impl<S> CacheService<S> {
    /// Wraps `inner` with the cache `layer` configures.
    pub fn new(inner: S, layer: CacheLayer) -> Self {
        Self {
            inner,
            opts: Arc::clone(layer.options()),
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for CacheService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheService")
            .field("inner", &self.inner)
            .field("namespace", &self.opts.namespace)
            .finish_non_exhaustive()
    }
}

/// The bounds beyond `Clone` are those of a refresh ([`CacheLayer::stale`]), which
/// calls a clone of the inner service in a spawned task with an empty request body;
/// every axum route and router meets them.
impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CacheService<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Default + Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The inner service is called once the lookup missed: take the one that was
        // driven to readiness and leave a clone (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (mut parts, body) = request.into_parts();
        // A hit in a backend that answers at once needs no future at all.
        let begun = Exchange::begin_now(&self.opts, &parts.method, &parts.uri, &parts.headers);
        let state = match begun {
            Begun::Done(Lookup::Hit(response)) => State::Ready {
                response: Some(response),
            },
            Begun::Done(Lookup::Stale(stale)) => State::Ready {
                response: Some(revalidate(stale, inner, &parts)),
            },
            Begun::Done(Lookup::Miss(exchange)) => {
                if exchange.runs_as_get() {
                    // Run the GET the entry is stored for; the body is dropped for HEAD.
                    parts.method = Method::GET;
                }
                let future = inner.call(Request::from_parts(parts, body));
                State::Call { future, exchange }
            }
            Begun::Pending(rest) => {
                let opts = Arc::clone(&self.opts);
                let lookup = Box::pin(async move {
                    let lookup = rest.settle(&opts, &parts.headers).await;
                    (lookup, parts)
                });
                State::Look {
                    lookup,
                    inner,
                    body,
                }
            }
        };
        ResponseFuture { state }
    }
}

pin_project! {
    /// The response future of [`CacheService`]: the lookup (ready at once for a hit in
    /// a backend that answers at once), then on a miss the inner service's future, then
    /// storing its response.
    ///
    /// ```
    /// use axum::{body::Body, routing::get, Router};
    /// use cached_core::http::{CacheLayer, CacheService, ResponseFuture};
    /// use http::Request;
    /// use tower::Service;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let router: Router = Router::new().route("/", get(|| async { "hi" }));
    /// let mut service = CacheService::new(router, CacheLayer::new());
    /// let request = Request::get("/").body(Body::empty()).unwrap();
    /// let future: ResponseFuture<Router, Body> = service.call(request);
    /// assert_eq!(future.await.unwrap().status(), 200);
    /// # });
    /// ```
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateOwned]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Ready {
            response: Option<Response>,
        },
        Look {
            lookup: BoxFuture<(Lookup<Exchange>, Parts)>,
            inner: S,
            body: B,
        },
        Call {
            #[pin]
            future: S::Future,
            exchange: Exchange,
        },
        Finish {
            future: BoxFuture<Response>,
        },
        Done,
    }
}

impl<S, B> std::fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Ready { .. } => "answered from the cache",
            State::Look { .. } => "looking up",
            State::Call { .. } => "calling the inner service",
            State::Finish { .. } => "storing",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = http::Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    B: Default + Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Ready { response } => match response.take() {
                    Some(response) => return Poll::Ready(Ok(response)),
                    None => panic!("ResponseFuture polled after it completed"),
                },
                StateProj::Look { lookup, .. } => {
                    let (lookup, mut parts) = ready!(lookup.as_mut().poll(cx));
                    let StateOwned::Look {
                        mut inner, body, ..
                    } = state.as_mut().project_replace(State::Done)
                    else {
                        unreachable!("the state was Look");
                    };
                    let exchange = match lookup {
                        Lookup::Hit(response) => return Poll::Ready(Ok(response)),
                        Lookup::Stale(stale) => {
                            return Poll::Ready(Ok(revalidate(stale, inner, &parts)))
                        }
                        Lookup::Miss(exchange) => exchange,
                    };
                    if exchange.runs_as_get() {
                        // Run the GET the entry is stored for; the body is dropped for HEAD.
                        parts.method = Method::GET;
                    }
                    let future = inner.call(Request::from_parts(parts, body));
                    state.set(State::Call { future, exchange });
                }
                StateProj::Call { future, .. } => {
                    let result = ready!(future.poll(cx));
                    let StateOwned::Call { exchange, .. } =
                        state.as_mut().project_replace(State::Done)
                    else {
                        unreachable!("the state was Call");
                    };
                    // On an error the exchange is dropped: requests waiting for this one
                    // run their own.
                    let response = result?;
                    let future = Box::pin(exchange.finish(response.map(Body::new)));
                    state.set(State::Finish { future });
                }
                StateProj::Finish { future } => {
                    let response = ready!(future.as_mut().poll(cx));
                    state.set(State::Done);
                    return Poll::Ready(Ok(response));
                }
                StateProj::Done => panic!("ResponseFuture polled after it completed"),
            }
        }
    }
}

/// Answers with the stale response and, when this request won its URL's refresh, calls
/// `inner` in a spawned task with the request's head as a plain `GET` (no body, no
/// conditional or `Range` header), storing its response.
fn revalidate<S, B, ResBody>(
    stale: super::view::Stale<Exchange>,
    inner: S,
    parts: &Parts,
) -> Response
where
    S: Service<Request<B>, Response = http::Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    B: Default + Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let (response, refresh) = stale.into_parts();
    if let Some(exchange) = refresh {
        let mut head = parts.clone();
        head.method = Method::GET;
        head.headers = refresh_headers(&parts.headers);
        exchange.spawn_refresh(move || call(inner, head));
    }
    response
}

/// The inner service's response to `head` with an empty body; `None` when it failed.
async fn call<S, B, ResBody>(mut inner: S, head: Parts) -> Option<Response>
where
    S: Service<Request<B>, Response = http::Response<ResBody>>,
    B: Default,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    std::future::poll_fn(|cx| inner.poll_ready(cx)).await.ok()?;
    let response = inner
        .call(Request::from_parts(head, B::default()))
        .await
        .ok()?;
    Some(response.map(Body::new))
}
