//! Per-view HTTP caching for axum (feature `axum`): Django's `cache_page` and per-site
//! cache middleware, as the [`CacheLayer`] tower layer and the `#[cache_view]` attribute.
//!
//! Both share one request key, one audited predicate deciding what may be stored
//! ([`cacheable::may_store`]) and one way of writing response headers.
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
//! # What is looked up, what is stored
//!
//! Only `GET` and `HEAD` requests are looked up ([`cacheable::may_look_up`]); a `HEAD`
//! is answered from the `GET` entry, without a body. A request with more than one `Host`,
//! or whose absolute-form target (`GET http://a.example/ HTTP/1.1`) names another
//! authority than its `Host`, bypasses the cache (`fwd=bypass; detail=authority`): the
//! handler could build its page for either, and the key must not guess.
//!
//! A response is stored only when every rule of [`cacheable::may_store`] allows it: the
//! request did not say `Cache-Control: no-store`, status 200, no `Set-Cookie`, a readable
//! `Cache-Control` without `private`, `no-store` or `no-cache`, no `Vary: *` and at most
//! [`cacheable::MAX_VARY`] valid names, not stale at once (`max-age=0`, `s-maxage=0`, an
//! `Expires` not after `Date`), no trailers, and a body of at most [`DEFAULT_MAX_BODY`]
//! bytes (configurable with [`CacheLayer::max_body`]). Anything else passes through
//! untouched, with a `Cache-Status` header saying why it was not stored. A body over the
//! limit is streamed: at most the limit is held in memory.
//!
//! The request's own `Cache-Control: no-store` keeps its response out of the cache (RFC
//! 9111 §5.2.1.5) but may still be answered from the cache; a request's `no-cache` or
//! `max-age=0` is ignored, as Django and most shared caches do, so a client cannot force
//! the handler to run on every request.
//!
//! # How long
//!
//! An entry lives for the layer's ttl ([`CacheLayer::ttl`], or the cache's default),
//! capped by the handler's own freshness: the smallest `max-age` or `s-maxage` its
//! `Cache-Control` states, or, when it states neither, its `Expires` (minus its `Date`,
//! or now). This is Django's `patch_cache_control` rule (the minimum wins); a handler's
//! `max-age` above the ttl does not lengthen it.
//!
//! # The key
//!
//! The key holds the method (`HEAD` shares the `GET` entry), the target's scheme when it
//! has one, the authority the handler sees (the `Host` header; without one, as in HTTP/2,
//! the target's authority), the path and the full query string as sent, the
//! `X-Forwarded-Host`, `X-Forwarded-Proto` and `Forwarded` headers, the request headers
//! named by the response's `Vary` and by [`CacheLayer::vary`], and, unless
//! [`CacheLayer::shared`] is set, the request's `Authorization` and `Cookie` headers: a
//! response produced for one set of credentials is never served for another. An absent
//! header and an empty one are different keys. Like Django's `learn_cache_key`, each
//! stored response also stores a small manifest of the header names it varies on. Until
//! a response of the layer or view has varied on more than the configured names, a hit
//! is one read (the manifest is read only after a miss, in case another process learned
//! names); after that, each lookup reads the manifest first. Header values only enter the stored key as a SHA-256
//! digest: credentials are never written to the backend in clear.
//!
//! # What downstream caches are told
//!
//! The headers a stored response is sent with are decided once, when it is stored, and
//! are the same on the miss that stores it and on every hit:
//!
//! - `Cache-Control`: the handler's own directives as it wrote them, except that every
//!   `max-age` and `s-maxage` is lowered to the entry's lifetime, and `max-age=<lifetime>`
//!   is added when it had none (with no `Cache-Control`, it is just that). When the key
//!   holds credentials (the request carried `Authorization` or `Cookie` and the view is
//!   not shared) the value starts with `private`, and `public` and `s-maxage` are
//!   dropped: a CDN or proxy must not give one user's page to another.
//! - `Expires`: the store time plus the lifetime, replacing the handler's.
//! - `ETag`: the handler's, else a strong SHA-256 of the body. A request whose
//!   `If-None-Match` matches it is answered `304 Not Modified` from the cache.
//! - `Vary`: the names the key holds besides the response's own `Vary` are appended
//!   when the handler did not list them: the configured [`CacheLayer::vary`] names and,
//!   unless the view is [`shared`](CacheLayer::shared), `authorization` and `cookie`.
//!   A downstream cache then varies as this one does: a CDN that stored the anonymous
//!   page never hands it to a request with a session cookie. Responses that are not
//!   stored (`fwd=miss`) say the same.
//! - With a stale window ([`CacheLayer::stale`]), `stale-while-revalidate=<window>`,
//!   unless the handler wrote its own.
//!
//! On a hit `Age` is the entry's age and `max-age` stays the full lifetime, so a
//! downstream cache computes the same expiry (RFC 9111 §4.2.3); `Cache-Status`
//! ([RFC 9211](https://www.rfc-editor.org/rfc/rfc9211)) says `cached-kit; hit; ttl=N`
//! with the seconds left, `cached-kit; fwd=miss; stored` when stored,
//! `cached-kit; fwd=miss; detail=REASON` when the response could not be stored, and
//! `cached-kit; fwd=bypass; detail=method` (or `authority`) when the request went around
//! the cache. Entries of caches nearer the origin come first.
//!
//! # Stale-while-revalidate
//!
//! With [`CacheLayer::stale`] (`#[cache_view(stale = N)]`), an entry is kept `N` seconds
//! past its lifetime. A request in that window is answered at once with it, with
//! `Cache-Status: cached-kit; hit; ttl=0; detail=stale`, and one refresh per URL key
//! runs in the background in this process (the layer calls a clone of its inner service
//! with the request's head as a plain `GET`; the macro runs the handler's body in a
//! spawned task with the extracted arguments moved into it). Other requests in the window
//! get the stale response without starting another. A refresh whose response is not
//! stored (an error, a status other than 200, a panic) changes nothing: the stale
//! response is served until the window ends, and a later request refreshes again. After
//! the window, a request is a miss.
//!
//! What a stale response tells downstream: its stored headers, unchanged (`max-age`
//! the full lifetime, `Expires` the end of it, `stale-while-revalidate` the window), and
//! its true `Age`, past `max-age`. A downstream cache therefore sees it as stale too,
//! and may serve it stale only within the same window while it revalidates, which is
//! exactly what this cache does; it is never told a stale response is fresh.
//!
//! # Tags
//!
//! A stored response carries the layer's static tags ([`CacheLayer::tags`],
//! `#[cache_view(tags = [..])]`) and those its handler put in its extensions
//! ([`CacheTags`]: the objects the page shows). [`Cache::invalidate_tags`](crate::Cache::invalidate_tags) on the
//! layer's cache makes every response stored with one of them a miss, in every process
//! sharing the backend (per-tag versions in the backend, no SCAN; see
//! [`Cache::invalidate_tags`](crate::Cache::invalidate_tags)); an invalidated response is never served stale.
//!
//! A tag's version must be read before the response is computed, or an invalidation
//! landing while the handler runs would be lost. The static tags, and the tags the URL's
//! last stored response carried (recorded in its manifest), are read before the handler
//! runs; tags a response brings that its URL never showed before are read after it ran,
//! so for that first response, an invalidation of such a tag that lands while its handler
//! runs can be missed (the page then lives out its ttl). On Redis a hit of a tagged
//! response reads its tags' versions in a second round trip; in memory it compares two
//! integers until an `invalidate_tags` runs in the process.
//!
//! # Concurrent misses
//!
//! Requests that miss one key while its handler runs wait for that run instead of
//! starting their own (SPEC §12): when its response is stored they are answered with it
//! (unless its `Vary` gives them another key), otherwise each runs its own handler. A
//! request whose client goes away while it runs the handler for others hands that role
//! to one of them. A request with `Cache-Control: no-store` never waits.
//!
//! # Counting
//!
//! Each request counts once in the cache's `stats()`: a hit or a miss of its first read
//! (a stale response counts as a hit and a `stale_hit`).
//! Reads of the manifest are not counted; a request answered with the response of a
//! concurrent miss counts as the miss it was. One exception: the first time a process
//! finds that a URL varies on names learned by another process, the request counts as a
//! miss even when the entry it then reads answers it.

pub mod cacheable;
mod entry;
mod exchange;
mod flight;
mod headers;
mod key;
mod layer;
mod service;
mod tags;
#[doc(hidden)]
pub mod view;

pub use cacheable::{NotStored, DEFAULT_MAX_BODY};
pub use layer::CacheLayer;
pub use service::{CacheService, ResponseFuture};
pub use tags::CacheTags;
