//! The runtime of `#[cache_view]`. Used by generated code only: not a stable API.
//!
//! The attribute keeps the handler an ordinary axum handler: it adds one first argument,
//! the [`RequestHead`] extractor (it reads the request's method, URI and headers, and
//! turns a `HEAD` into the `GET` whose entry answers it), and wraps the body:
//!
//! ```text
//! async fn list(__head: RequestHead, State(db): State<Db>, Query(q): Query<Page>) -> Response {
//!     static VIEW: ViewSlot = ViewSlot::new(|| CacheLayer::new()...);
//!     let exchange = match VIEW.lookup(__head).await {
//!         Lookup::Hit(response) => return response,
//!         Lookup::Miss(exchange) => exchange,
//!     };
//!     let response = async move { /* the handler's body */ }.await;
//!     exchange.finish(response).await
//! }
//! ```
//!
//! Because the cache is consulted inside the handler, every extractor, including a body
//! extractor such as `Json` (last, as axum requires), works as written, and extractors
//! (authentication, validation) still run and may still reject a request on a hit. Only
//! the handler's body is skipped.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

use axum::extract::FromRequestParts;
use axum::response::IntoResponse;
use http::request::Parts;
use http::{HeaderMap, Method, Uri};

pub use super::exchange::Lookup;
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
            Lookup::Miss(exchange) => Lookup::Miss(ViewExchange(exchange)),
        }
    }

    /// [`lookup`](Self::lookup) as a `Result`: `Ok` is the cached answer, `Err` the
    /// exchange to finish. Kept for code generated before `lookup`.
    pub async fn begin(&self, head: RequestHead) -> Result<Response, ViewExchange> {
        match self.lookup(head).await {
            Lookup::Hit(response) => Ok(response),
            Lookup::Miss(exchange) => Err(exchange),
        }
    }
}

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
