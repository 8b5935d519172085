//! Attribute macros of cached-kit (work in progress).
use proc_macro::TokenStream;

/// Memoizes a function.
#[proc_macro_attribute]
pub fn cache_fn(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Deletes cache entries after a successful call.
#[proc_macro_attribute]
pub fn cache_evict(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
