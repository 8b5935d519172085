//! `#[cache_evict]`: delete cache entries after a successful call.

mod args;
mod expand;

use proc_macro2::TokenStream;

use crate::common::item_with_error;

/// Expands `#[cache_evict(args)] item`; on error, the item as written plus the errors.
pub fn cache_evict(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let e = syn::Error::new(e.span(), format!("#[cache_evict] goes on a function: {e}"));
            return item_with_error(item, e);
        }
    };
    let args: args::Args = match syn::parse2(args) {
        Ok(a) => a,
        Err(e) => return item_with_error(item, e),
    };
    match expand::expand(args, func) {
        Ok(tokens) => tokens,
        Err(e) => item_with_error(item, e),
    }
}
