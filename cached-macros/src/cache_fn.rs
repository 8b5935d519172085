//! `#[cache_fn]`: memoize a function in a named cache.

mod args;
mod expand;

use proc_macro2::TokenStream;

/// Expands `#[cache_fn(args)] item`; on any error, the item as written plus the errors.
pub fn cache_fn(args: TokenStream, item: TokenStream) -> TokenStream {
    crate::item::expand_attribute::<args::Args>(args, item, expand::expand)
}
