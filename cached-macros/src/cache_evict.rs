//! `#[cache_evict]`: delete cache entries after a successful call.

mod args;
mod expand;

use proc_macro2::TokenStream;

/// Expands `#[cache_evict(args)] item`; on any error, the item as written plus the errors.
pub fn cache_evict(args: TokenStream, item: TokenStream) -> TokenStream {
    crate::item::expand_attribute::<args::Args>(args, item, expand::expand)
}
