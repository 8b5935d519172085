//! The attribute macros of [cached-kit](https://docs.rs/cached-kit). Use them through the
//! `cached-kit` crate, which re-exports them and provides the runtime they expand to
//! (`::cached_kit::__private`); this crate has no features of its own.
//!
//! Modules: one per macro (`cache_fn`, `cache_evict`, ...), each with its argument
//! parsing (`args.rs`) apart from its expansion (`expand.rs`); `common` holds the parsing
//! every macro shares (error collection, `ttl`, signatures, return kinds) and
//! `template` the key templates (`"product:{id}"`).

use proc_macro::TokenStream;

mod cache_evict;
mod cache_fn;
mod cache_view;
mod common;
mod template;
mod throttle;

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
/// of `cached-kit`.
///
/// ```ignore
/// #[cache_view(ttl = 600)]
/// async fn list_products(State(db): State<Db>, Query(q): Query<Page>) -> Json<Vec<Product>> { /* ... */ }
/// ```
#[proc_macro_attribute]
pub fn cache_view(args: TokenStream, item: TokenStream) -> TokenStream {
    cache_view::cache_view(args.into(), item.into()).into()
}

/// Throttles an axum handler (DRF's throttle classes). Needs the `axum` feature of
/// `cached-kit`.
///
/// ```ignore
/// #[throttle(rate = "10/minute", scope = "user")]
/// #[throttle(rate = "1000/day", scope = "user")]
/// async fn search(Query(q): Query<Search>) -> Json<Vec<Hit>> { /* ... */ }
/// ```
///
/// The rate is checked at compile time. The expansion adds a first argument (an
/// extractor that checks before any other runs); see the `cached-kit` crate docs.
#[proc_macro_attribute]
pub fn throttle(args: TokenStream, item: TokenStream) -> TokenStream {
    throttle::throttle(args.into(), item.into()).into()
}
