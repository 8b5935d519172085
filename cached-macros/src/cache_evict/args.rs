//! The arguments of `#[cache_evict(...)]`.

use proc_macro2::TokenStream;
use syn::LitStr;

use crate::attr::{self, Arg, Attr};
use crate::ctxt::Ctxt;
use crate::value;

/// `#[cache_evict(key = "a:{x}" | key = ["a:{x}", "b:{y}"], tags = ["t:{x}"], cache = "alias",
/// version = 2)]`: `key`, `tags` or both.
#[derive(Default)]
pub struct Args {
    /// The templates.
    pub key: Attr<Vec<LitStr>>,
    pub cache: Attr<LitStr>,
    /// A `u32` expression: the key version the entries were stored under.
    pub version: Attr<TokenStream>,
    /// Tag templates: the tags to invalidate.
    pub tags: Attr<Vec<LitStr>>,
}

impl attr::Args for Args {
    const MACRO: &'static str = "cache_evict";
    const NAMES: &'static [&'static str] = &["key", "tags", "cache", "version"];

    fn set(&mut self, cx: &Ctxt, arg: Arg) {
        match arg.name.to_string().as_str() {
            "key" => self
                .key
                .set(cx, &arg, value::string_or_strings(cx, &arg, "product:{id}")),
            "cache" => self.cache.set(cx, &arg, value::alias(cx, &arg)),
            "version" => self.version.set(cx, &arg, value::version(cx, &arg)),
            "tags" => self
                .tags
                .set(cx, &arg, value::string_or_strings(cx, &arg, "product:{id}")),
            _ => attr::unknown::<Self>(cx, &arg),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_name_is_handled() {
        crate::attr::tests::every_name_is_handled::<super::Args>();
    }
}
