#![doc = include_str!("../README.md")]

#[cfg(all(
    feature = "redis",
    not(any(feature = "bincode", feature = "postcard", feature = "json"))
))]
compile_error!(
    "cached-kit: the `redis` feature stores encoded values and needs a codec: enable `bincode` (the default), `postcard` or `json`"
);

pub use cached_core::backend;
pub use cached_core::codec;
pub use cached_core::key;
pub use cached_core::throttle;
pub use cached_core::{
    cache, caches, register_scheme, Backend, Cache, CacheBuilder, CacheError, CacheStats, CacheUrl,
    Cacheable, Caches, Codec, ComputeOptions, DummyBackend, Scheme, DEFAULT_TTL, LOCK_TTL,
    NO_EXPIRY,
};

#[cfg(feature = "memory")]
pub use cached_core::MemoryBackend;

#[cfg(feature = "redis")]
pub use cached_redis as redis;

pub use cached_macros::{cache_evict, cache_fn};

/// Caches an axum handler's responses (feature `axum`; Django's `cache_page`).
///
/// Arguments, all optional: `ttl` (whole seconds, or a `Duration` expression; default the
/// cache's default ttl), `cache` (a named cache, default `"default"`), `vary` (request
/// headers to key on besides those the response's `Vary` names), `shared` (default
/// `false`: `Authorization` and `Cookie` are part of the key, and responses say
/// `Vary: Authorization, Cookie`), `max_body` (bytes, default 8 MiB), `stale` (seconds
/// past `ttl` a response is served at once while one refresh runs in the background),
/// `tags` (static tags of every stored response). The rules and headers are those of the
/// `http` module and `CacheLayer`.
///
/// With `stale`, the request that finds its page stale answers with it at once
/// (`Cache-Status: cached-kit; hit; ttl=0; detail=stale`), and the handler's body runs in
/// a spawned task with the extracted arguments moved into it: they must be
/// `Send + 'static` (an argument that is not is a compile error on its type). A handler
/// tags its response with the objects it shows by returning
/// [`http::CacheTags`] with it; `invalidate_tags` on the view's
/// cache then makes the pages showing an object miss.
///
/// The handler stays an ordinary axum handler with all its extractors (`State`, `Path`,
/// `Query`, `Json` bodies, your own): the attribute adds one first argument, an extractor
/// that reads the request's method, URI and headers, and consults the cache inside the
/// handler, before its body. Extractors therefore still run (and may reject) on a hit;
/// only the body is skipped. The return type becomes `axum::response::Response`, and a
/// handler keeps at most 15 arguments of its own.
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{extract::Query, routing::get, Router};
/// use cached_kit::cache_view;
///
/// #[derive(serde::Deserialize)]
/// struct Page {
///     page: u32,
/// }
///
/// #[cache_view(ttl = 600, vary = ["Accept-Language"])]
/// async fn list_products(Query(q): Query<Page>) -> String {
///     format!("page {}", q.page)
/// }
///
/// let app: Router = Router::new().route("/products", get(list_products));
/// # let _ = app;
/// # }
/// ```
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{extract::Query, routing::get, Json, Router};
/// use cached_kit::{cache_view, http::CacheTags};
///
/// #[derive(serde::Deserialize)]
/// struct Page {
///     page: u32,
/// }
///
/// // Fresh for a minute, then served stale for up to ten while it is refreshed; tagged
/// // "products" and with the ids it shows.
/// #[cache_view(ttl = 60, stale = 600, tags = ["products"])]
/// async fn list_products(Query(q): Query<Page>) -> (CacheTags, Json<Vec<u32>>) {
///     let ids: Vec<u32> = (q.page * 20..q.page * 20 + 20).collect();
///     (CacheTags::new(ids.iter().map(|id| format!("product:{id}"))), Json(ids))
/// }
///
/// let app: Router = Router::new().route("/products", get(list_products));
/// # let _ = app;
/// // After a write to product 7:
/// // cached_kit::cache().invalidate_tags(&["product:7"]).await?;
/// # }
/// ```
pub use cached_macros::cache_view;

/// Throttles an axum handler: DRF's throttle classes as an attribute (feature `axum`).
///
/// | argument | meaning | default |
/// |---|---|---|
/// | `rate` | a string literal in DRF's notation (`"10/minute"`, `"100/hr"`, `"10/5m"`), checked at compile time | the scope's configured rate |
/// | `scope` | `"user"` (per [`ThrottleIdentity`](throttle::ThrottleIdentity), anonymous clients per IP), `"anon"` (anonymous clients only) or a name (a budget shared by every handler with that scope and rate) | `"user"` |
/// | `algorithm` | `"sliding_log"` (exact: at most N in any trailing window) or `"gcra"` (bursts, one instant of state per client) | `"sliding_log"` |
/// | `burst` | with `"gcra"`, the bucket's size | the rate's count |
///
/// One of `rate` and `scope` is required. Without `rate`, the rate is the scope's in
/// [`throttle::rates`] (DRF's `DEFAULT_THROTTLE_RATES`: `THROTTLE_RATES` or
/// [`throttle::set_rates`]); call [`throttle::check_rates`] at start-up with
/// [`throttle::throttles_of`] each such handler to fail early, naming every scope
/// without a rate. Otherwise a request reaching a throttle without a rate is answered
/// `500` and the scope is logged: never unthrottled. Several `#[throttle]`s on one
/// handler are all evaluated; the longest wait wins.
///
/// The handler stays an axum handler with any extractors: the expansion adds a first
/// argument, an extractor that runs the check before any other extractor (a refused
/// request's body is never read) and answers a refused request with the
/// [refusal response](throttle::set_refusal_response) (by default `429`, `Retry-After`
/// and `RateLimit-*` headers). So the function takes one more argument than written:
/// call it through a router, not directly. It uses the process-wide
/// [store](throttle::set_default_store) (in memory unless set, e.g. to Redis),
/// [client address rules](throttle::set_client_ip) (trusted proxies by count or
/// network, `X-Forwarded-For` or `Forwarded`, IPv6 per /64) and
/// [failure mode](throttle::set_fail_closed). It goes on free functions.
///
/// ```
/// use axum::{extract::Path, routing::get, Router};
/// use cached_kit::throttle;
///
/// #[throttle(rate = "10/minute")]
/// #[throttle(rate = "1000/day")]
/// async fn search(Path(q): Path<String>) -> String {
///     format!("results for {q}")
/// }
///
/// #[throttle(scope = "uploads")] // rate: THROTTLE_RATES="uploads=5/minute", or code
/// #[throttle(rate = "50/second", algorithm = "gcra", burst = 5)]
/// async fn upload(body: String) -> String {
///     format!("{} bytes", body.len())
/// }
///
/// # fn main() -> Result<(), cached_kit::CacheError> {
/// throttle::set_rates(throttle::ThrottleRates::from_env()?.rate("uploads", "5/minute")?);
/// throttle::check_rates(&[throttle::throttles_of(search), throttle::throttles_of(upload)])?;
/// let app: Router = Router::new()
///     .route("/search/{q}", get(search))
///     .route("/upload", axum::routing::post(upload));
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
pub use cached_macros::throttle;

#[cfg(feature = "axum")]
pub use cached_core::http;
#[cfg(feature = "axum")]
pub use cached_core::http::{CacheLayer, CacheService};

/// Used by the code the macros generate. Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use cached_core;
    #[cfg(feature = "axum")]
    pub use cached_core::__private::throttle;
    #[cfg(feature = "axum")]
    pub use cached_core::http::view as http;
    pub use std;

    // `#[cache_fn]` and `#[cache_evict]`.
    pub use cached_core::__private::memoize::{
        assert_cacheable, block_on, evict, infallible, invalidate, is_some, lookup, memoize, ready,
        ready_ok, refresh, stored_key, succeeded, ttl, KeyPart, KeyPartDisplay, KeyPartPlain,
        Lookup, Missed, Probe, Spec, Uncached, ViaCache,
    };
    // `#[cache_fn(tags = .., stale = ..)]`.
    pub use cached_core::__private::memoize::{
        borrow_store_if, no_store_if, predicate, stale_arg, UncachedFresh, ViaCacheFresh,
    };
    pub use cached_core::__private::{ArgKey, ArgKeyError, CacheSlot, KeyArg};
    pub use cached_core::CacheError;

    /// Resolves a named cache for generated code.
    pub fn slot_get(
        slot: &cached_core::__private::CacheSlot,
    ) -> Result<cached_core::Cache, cached_core::CacheError> {
        slot.get()
    }
    pub use std::convert::Infallible;

    /// Adds an argument to a default key (a function, so that a type that cannot be
    /// keyed is reported on the argument).
    pub fn key_arg<O, T>(key: &mut ArgKey<O>, value: &T)
    where
        O: std::borrow::BorrowMut<String>,
        T: KeyArg + ?Sized,
    {
        key.arg(value);
    }
}

/// Checks, in `#[cache_view]`'s expansion, that the `axum` feature is on.
#[cfg(feature = "axum")]
#[doc(hidden)]
#[macro_export]
macro_rules! __cache_view_requires_axum {
    () => {};
}

/// Checks, in `#[cache_view]`'s expansion, that the `axum` feature is on.
#[cfg(not(feature = "axum"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __cache_view_requires_axum {
    () => {
        ::core::compile_error!(
            "#[cache_view] needs the `axum` feature of cached-kit: add `features = [\"axum\"]` to its entry in Cargo.toml"
        );
    };
}

#[cfg(feature = "axum")]
#[doc(hidden)]
#[macro_export]
macro_rules! __throttle_requires_axum {
    () => {};
}

/// Checks, in `#[throttle]`'s expansion, that the `axum` feature is on.
#[cfg(not(feature = "axum"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __throttle_requires_axum {
    () => {
        ::core::compile_error!(
            "#[throttle] needs the `axum` feature of cached-kit: add `features = [\"axum\"]` to its entry in Cargo.toml"
        );
    };
}
