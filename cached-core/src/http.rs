//! Per-view HTTP caching for axum (feature `axum`): Django's `cache_page` and per-site
//! cache middleware, as the [`CacheLayer`] tower layer and the `#[cache_view]` attribute.
//!
//! Both share one request key ([`key`]), one audited predicate deciding what
//! may be stored ([`cacheable::may_store`]) and one set of response headers
//! ([`headers`]).
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use cached_core::http::CacheLayer;
//!
//! async fn home() -> &'static str {
//!     "hello"
//! }
//!
//! let app: Router = Router::new()
//!     .route("/", get(home))
//!     .layer(CacheLayer::new().ttl(Duration::from_secs(600)).vary(["Accept-Language"]));
//! # let _ = app;
//! ```
//!
//! # What is stored
//!
//! A response is stored only when every rule of [`cacheable::may_store`] allows it: a
//! `GET` or `HEAD` request without `Cache-Control: no-store`, status 200, no
//! `Set-Cookie`, no `Cache-Control` `private`, `no-store` or `no-cache`, no `Vary: *`, no
//! trailers, and a body of at most [`DEFAULT_MAX_BODY`] bytes (configurable with
//! [`CacheLayer::max_body`]). Anything else passes through untouched, with a
//! `Cache-Status` header saying why it was not stored. A body over the limit is
//! streamed: at most the limit is held in memory.
//!
//! The request's own `Cache-Control: no-store` keeps its response out of the cache (RFC
//! 9111 §5.2.1.5) but may still be answered from the cache; a request's `no-cache` or
//! `max-age=0` is ignored, as Django and most shared caches do, so a client cannot force
//! the handler to run on every request.
//!
//! # The key
//!
//! The key holds the method (`HEAD` shares the `GET` entry), the host, the path and the
//! full query string as sent, the request headers named by the response's `Vary` and by
//! [`CacheLayer::vary`], and, unless [`CacheLayer::shared`] is set, the request's
//! `Authorization` and `Cookie` headers: a response produced for one set of credentials is
//! never served for another. An absent header and an empty one are different keys. Like
//! Django's `learn_cache_key`, the first response for a URL stores a small manifest of the
//! header names it varies on; later requests read it to build their full key. Header
//! values only enter the stored key as a SHA-256 digest: credentials are never written to
//! the backend in clear.
//!
//! # Response headers
//!
//! - `Cache-Status` (RFC 9211): `cached-kit; hit; ttl=N` on a hit,
//!   `cached-kit; fwd=miss; stored` when stored, `cached-kit; fwd=miss; detail=REASON` when
//!   the response could not be stored, `cached-kit; fwd=bypass; detail=method` for methods
//!   other than `GET` and `HEAD`.
//! - `Age` on hits; `Cache-Control: max-age=<remaining seconds>` when the handler set no
//!   `Cache-Control`, and `Expires` when it set no `Expires`.
//! - A strong `ETag` (a SHA-256 of the body) unless the handler set one; a request whose
//!   `If-None-Match` matches it is answered `304 Not Modified`.
//!
//! The ttl is the layer's ([`CacheLayer::ttl`]), or the cache's default ttl; a handler's
//! own `max-age` does not shorten it (as Django's `cache_page`).

pub mod cacheable;
mod exchange;
pub mod headers;
pub mod key;
mod layer;
mod response;
#[doc(hidden)]
pub mod view;

pub use cacheable::{NotStored, DEFAULT_MAX_BODY};
pub use layer::{CacheLayer, CacheService};
