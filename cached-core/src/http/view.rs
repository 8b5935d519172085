//! The runtime of `#[cache_view]`. Used by generated code only: not a stable API.
//!
//! The attribute keeps the handler an ordinary axum handler: it adds one first argument,
//! the [`RequestHead`] extractor (it reads the request's method, URI and headers, and
//! turns a `HEAD` into the `GET` whose entry answers it), and wraps the body:
//!
//! ```text
//! async fn list(__head: RequestHead, State(db): State<Db>, Query(q): Query<Page>) -> Response {
//!     static VIEW: ViewSlot = ViewSlot::new(|| CacheLayer::new()...);
//!     let body = move || async move { /* the handler's body */ };
//!     match VIEW.lookup(__head).await {
//!         Lookup::Hit(response) => response,
//!         Lookup::Stale(stale) => stale.revalidate(body), // with `stale`; else `serve()`
//!         Lookup::Miss(exchange) => exchange.finish(body().await).await,
//!     }
//! }
//! ```
//!
//! Because the cache is consulted inside the handler, every extractor, including a body
//! extractor such as `Json` (last, as axum requires), works as written, and extractors
//! (authentication, validation) still run and may still reject a request on a hit. Only
//! the handler's body is skipped.
//!
//! With `stale`, the request that finds its entry stale answers with it at once, and the
//! one that wins its URL's refresh moves the body, with the arguments it captured, into a
//! spawned task ([`Stale::revalidate`]): the arguments must be `Send + 'static`
//! ([`stale_view_arg`] says so on the offending argument).

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use axum::extract::FromRequestParts;
use axum::response::IntoResponse;
use http::request::Parts;
use http::{HeaderMap, Method, Uri};

pub use super::exchange::{Lookup, Stale};
pub use super::CacheLayer;
pub use axum::response::Response;

use super::exchange::{Begun, Exchange, Options};

/// What `#[cache_view]` needs from the request, taken before the other extractors run.
///
/// Boxed: it is an argument of the handler and of [`ViewSlot::lookup`], so its size is
/// part of both futures on every request.
#[derive(Debug)]
pub struct RequestHead(Box<Head>);

#[derive(Debug)]
struct Head {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestHead {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let head = RequestHead(Box::new(Head {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        }));
        if parts.method == Method::HEAD {
            // The handler computes the GET whose entry answers this HEAD; axum and the
            // exchange drop the body.
            parts.method = Method::GET;
        }
        Ok(head)
    }
}

/// The options of one `#[cache_view]` handler, built on first use.
pub struct ViewSlot {
    init: fn() -> CacheLayer,
    options: OnceLock<Arc<Options>>,
}

impl ViewSlot {
    /// A slot whose options `init` builds.
    pub const fn new(init: fn() -> CacheLayer) -> Self {
        Self {
            init,
            options: OnceLock::new(),
        }
    }

    /// Looks the request up: the answer from the cache, or the exchange to finish with
    /// the handler's response. Concurrent misses of one key wait for one handler run.
    pub async fn lookup(&self, head: RequestHead) -> Lookup<ViewExchange> {
        let options = self
            .options
            .get_or_init(|| Arc::clone((self.init)().options()));
        let Head {
            method,
            uri,
            headers,
        } = &*head.0;
        // A hit needs no waiting (in memory); the rest is boxed, so this future, part of
        // the handler's, stays small.
        let lookup = match Exchange::begin_now(options, method, uri, headers) {
            Begun::Done(lookup) => lookup,
            Begun::Pending(rest) => Box::pin(rest.settle(options, headers)).await,
        };
        match lookup {
            Lookup::Hit(response) => Lookup::Hit(response),
            Lookup::Stale(stale) => Lookup::Stale(stale.map(ViewExchange)),
            Lookup::Miss(exchange) => Lookup::Miss(ViewExchange(exchange)),
        }
    }

    /// [`lookup`](Self::lookup) as a `Result`: `Ok` is the cached answer (a stale one
    /// served without a refresh), `Err` the exchange to finish. Kept for code generated
    /// before `lookup`, which never asked for a stale window.
    pub async fn begin(&self, head: RequestHead) -> Result<Response, ViewExchange> {
        match self.lookup(head).await {
            Lookup::Hit(response) => Ok(response),
            Lookup::Stale(stale) => Ok(stale.serve()),
            Lookup::Miss(exchange) => Err(exchange),
        }
    }
}

impl Stale<ViewExchange> {
    /// Answers with the stale response; when this request won its URL's refresh, runs
    /// `body` (the handler's body, with the extracted arguments moved into it) in a task
    /// of the current runtime and stores its response if allowed. The request does not
    /// wait for it.
    pub fn revalidate<F, Fut>(self, body: F) -> Response
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoResponse,
    {
        let (response, refresh) = self.into_parts();
        if let Some(ViewExchange(exchange)) = refresh {
            exchange.spawn_refresh(move || async move { Some(body().await.into_response()) });
        }
        response
    }
}

/// What an argument of a `#[cache_view(stale = ..)]` handler must be: the refresh of a
/// stale response runs the handler's body in a spawned task, with the arguments moved
/// into it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be moved into a background refresh: with `stale`, every argument of a cached view must be `Send + 'static`",
    label = "moved into the refresh, which runs after the stale response was sent",
    note = "extract an owned, thread-safe value: `Arc<T>` (or `Arc<Mutex<T>>`) rather than `Rc<T>` or `RefCell<T>`"
)]
pub trait StaleViewArg: Send + 'static {}

impl<T: Send + 'static> StaleViewArg for T {}

/// Asserts that an argument of a `stale` view can move into its refresh (the one
/// readable error, spanned on the argument's type).
pub fn stale_view_arg<T: StaleViewArg>() {}

/// A `#[cache_view]` request that was not answered from the cache.
pub struct ViewExchange(Exchange);

impl ViewExchange {
    /// Stores the handler's response if allowed, and returns it with the cache's headers.
    pub async fn finish(self, response: impl IntoResponse) -> Response {
        // Boxed: storing is the miss path, and its future would otherwise be part of
        // every call of the handler, hits included.
        Box::pin(self.0.finish(response.into_response())).await
    }
}
