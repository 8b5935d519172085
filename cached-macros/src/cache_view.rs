//! `#[cache_view]`: per-view HTTP caching of an axum handler (Django's `cache_page`).
//!
//! The handler stays an ordinary axum handler with all its extractors: the expansion
//! adds a first argument, the `RequestHead` extractor (method, URI and headers, taken
//! before any other extractor, so a body extractor stays last), looks the request up
//! before the body runs, and stores the body's response when the rules allow. The
//! return type becomes `axum::response::Response`. See `cached_core::http::view`.

mod args;
mod expand;

use proc_macro2::TokenStream;

/// Expands `#[cache_view(args)] item`; on any error, the item as written plus the errors.
pub fn cache_view(args: TokenStream, item: TokenStream) -> TokenStream {
    crate::item::expand_attribute::<args::Args>(args, item, expand::expand)
}
