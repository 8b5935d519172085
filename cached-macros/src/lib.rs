//! The attribute macros of [cached-kit](https://docs.rs/cached-kit). Use them through the
//! `cached-kit` crate, which re-exports them and provides the runtime they expand to
//! (`::cached_kit::__private`); this crate has no features of its own.
//!
//! Modules: one per macro (`cache_fn`, `cache_evict`, `cache_view`, `throttle`), each
//! with its arguments (`args.rs`: a struct of `attr::Attr` fields) apart from its
//! expansion (`expand.rs`). What they share:
//!
//! - `attr`: the one parse loop of every macro's arguments (unknown and duplicate
//!   arguments reported alike), `value`: the parsers of their values (strings, booleans,
//!   lists, `ttl`-like durations, versions), `ctxt`: the error collector;
//! - `item`: the function as written (outer and inner attributes apart) and the error
//!   path that returns it unchanged beside the errors;
//! - `signature`: arguments, receiver and return kind; `template`: key templates
//!   (`"product:{id}"`); `grammar`: the throttle rate grammar, the very file the runtime
//!   compiles (`cached-backend/src/rate/grammar.rs`).

use proc_macro::TokenStream;

mod attr;
mod cache_evict;
mod cache_fn;
mod cache_view;
mod ctxt;
// A symbolic link to `cached-backend/src/rate/grammar.rs`: one grammar for the macro
// and the runtime (`cargo package` copies the file into the published crate).
mod grammar;
mod item;
mod signature;
mod template;
mod throttle;
mod value;

#[doc = include_str!("../docs/cache_fn.md")]
#[proc_macro_attribute]
pub fn cache_fn(args: TokenStream, item: TokenStream) -> TokenStream {
    cache_fn::cache_fn(args.into(), item.into()).into()
}

#[doc = include_str!("../docs/cache_evict.md")]
#[proc_macro_attribute]
pub fn cache_evict(args: TokenStream, item: TokenStream) -> TokenStream {
    cache_evict::cache_evict(args.into(), item.into()).into()
}

/// Caches an axum handler's responses (Django's `cache_page`). Needs the `axum` feature
/// of `cached-kit` (on by default).
///
/// Arguments: `ttl` (whole seconds or a `Duration`), `cache` (alias), `vary = [..]`
/// (request headers in the key), `shared = true` (serve one response across credentials),
/// `max_body` (bytes), `stale` (seconds past `ttl` a response is served while one
/// refresh runs the body in the background; the arguments move into it, so they must be
/// `Send + 'static`), `tags = [..]` (static tags of every stored response; a response
/// adds its own with `cached_kit::http::CacheTags`). The handler gets one extra leading
/// extractor and returns `Response`; it stays a valid axum handler with any extractors
/// after it.
///
/// ```
/// use axum::{extract::{Path, Query}, routing::get, Json, Router};
/// use cached_kit::cache_view;
///
/// #[derive(serde::Deserialize)]
/// struct Page {
///     page: Option<u32>,
/// }
///
/// #[cache_view(ttl = 600, vary = ["Accept-Language"])]
/// async fn list_products(Path(category): Path<String>, Query(q): Query<Page>) -> Json<Vec<String>> {
///     Json(vec![format!("{category} page {}", q.page.unwrap_or(1))])
/// }
///
/// let app: Router = Router::new().route("/products/{category}", get(list_products));
/// # let _ = app;
/// ```
///
/// Stale-while-revalidate and tags:
///
/// ```
/// use axum::{extract::Path, Json};
/// use cached_kit::{cache_view, http::CacheTags};
///
/// #[cache_view(ttl = 60, stale = 600, tags = ["products"])]
/// async fn product(Path(id): Path<u64>) -> (CacheTags, Json<u64>) {
///     (CacheTags::new([format!("product:{id}")]), Json(id))
/// }
/// # let _ = product;
/// ```
#[proc_macro_attribute]
pub fn cache_view(args: TokenStream, item: TokenStream) -> TokenStream {
    cache_view::cache_view(args.into(), item.into()).into()
}

/// Throttles an axum handler (DRF's throttle classes). Needs the `axum` feature of
/// `cached-kit` (on by default).
///
/// Arguments:
/// - `rate`: `"10/second"`, `"10/minute"`, `"100/hour"`, `"1000/day"`; as in DRF the unit
///   is read from its first letter, so `"10/m"`, `"100/hr"` and `"5/sec"` work too; a
///   multiple is `"10/5m"` or DRF's `"1/2-sec"`. Checked at compile time with the grammar
///   of `Rate::parse`: a bad rate is a compile error quoting it. Without `rate`, the
///   scope's rate is configured at start-up (`THROTTLE_RATES="uploads=5/minute"` or
///   `throttle::set_rates`), like DRF's `DEFAULT_THROTTLE_RATES`; check it with
///   `throttle::check_rates(&[throttle::throttles_of(handler)])`, or a request reaching a
///   throttle without a rate is answered `500` and logged.
/// - `scope`: `"user"` (the default: the `ThrottleIdentity` your auth layer inserts, else
///   the client IP), `"anon"`, or a name (a budget shared by the handlers naming it).
///   One of `rate` and `scope` is required.
/// - `algorithm`: `"sliding_log"` (the default: DRF's exact sliding window) or `"gcra"`
///   (bursts, then one request per `period / count`; one instant of state per client).
/// - `burst`: with `algorithm = "gcra"`, the bucket's size (default: the rate's count).
///
/// Stacked attributes are all evaluated; the longest wait wins. The expansion adds a
/// first argument (an extractor that checks before any other runs), so serve the router
/// with `into_make_service_with_connect_info::<SocketAddr>()`. The store, the client
/// address rules, the failure mode and the refusal response are the process-wide ones
/// of `cached_kit::throttle` (`set_default_store`, `set_client_ip`, `set_fail_closed`,
/// `set_refusal_response`).
///
/// ```
/// use axum::{extract::Query, routing::get, Json, Router};
/// use cached_kit::throttle;
///
/// #[derive(serde::Deserialize)]
/// struct Search {
///     q: String,
/// }
///
/// #[throttle(rate = "10/minute", scope = "user")]
/// #[throttle(rate = "1000/day", scope = "user")]
/// async fn search(Query(s): Query<Search>) -> Json<Vec<String>> {
///     Json(vec![s.q])
/// }
///
/// #[throttle(scope = "exports")] // the rate of `exports`, configured at start-up
/// #[throttle(rate = "100/second", algorithm = "gcra", burst = 10)]
/// async fn export() -> &'static str {
///     "csv"
/// }
///
/// throttle::set_rates(throttle::ThrottleRates::new().rate("exports", "2/minute").unwrap());
/// throttle::check_rates(&[throttle::throttles_of(search), throttle::throttles_of(export)])
///     .unwrap();
/// let app: Router = Router::new()
///     .route("/search", get(search))
///     .route("/export", get(export));
/// # let _ = app;
/// ```
#[proc_macro_attribute]
pub fn throttle(args: TokenStream, item: TokenStream) -> TokenStream {
    throttle::throttle(args.into(), item.into()).into()
}
