//! The arguments of `#[cache_view]`: `ttl`, `cache`, `vary`, `shared`, `max_body`,
//! `stale`, `tags`.

use proc_macro2::{Span, TokenStream};
use syn::{Expr, Ident, LitStr};

use crate::attr::{self, Arg, Attr};
use crate::ctxt::Ctxt;
use crate::value;

/// The parsed arguments, each optional and given at most once.
#[derive(Default)]
pub struct Args {
    /// A `Duration` expression.
    pub ttl: Attr<TokenStream>,
    /// The named cache.
    pub cache: Attr<LitStr>,
    /// Extra request headers to vary on, checked to be header names.
    pub vary: Attr<Vec<LitStr>>,
    /// Whether credentials are left out of the key.
    pub shared: Attr<(bool, Span)>,
    /// The body size limit, a `usize` expression.
    pub max_body: Attr<Expr>,
    /// The `stale` keyword (for errors) and a `Duration` expression.
    pub stale: Attr<(Ident, TokenStream)>,
    /// Static tags of every stored response.
    pub tags: Attr<Vec<LitStr>>,
}

impl attr::Args for Args {
    const MACRO: &'static str = "cache_view";
    const NAMES: &'static [&'static str] = &[
        "ttl", "cache", "vary", "shared", "max_body", "stale", "tags",
    ];

    fn set(&mut self, cx: &Ctxt, arg: Arg) {
        match arg.name.to_string().as_str() {
            "ttl" => self.ttl.set(cx, &arg, value::duration(cx, &arg, 600)),
            "cache" => self.cache.set(cx, &arg, value::alias(cx, &arg)),
            "vary" => {
                let names = value::strings(cx, &arg, "Accept-Language")
                    .and_then(|names| header_names(cx, names));
                self.vary.set(cx, &arg, names)
            }
            "shared" => self.shared.set(cx, &arg, value::boolean(cx, &arg)),
            "max_body" => self
                .max_body
                .set(cx, &arg, value::expr(cx, &arg, "1_048_576")),
            "stale" => {
                let stale = value::nonzero_duration(
                    cx,
                    &arg,
                    60,
                    "`stale = 0` would serve nothing stale: give the seconds a response may be served past its ttl while it is refreshed, or remove `stale`",
                );
                self.stale
                    .set(cx, &arg, stale.map(|stale| (arg.name.clone(), stale)))
            }
            "tags" => {
                let tags = value::string_or_strings(cx, &arg, "products")
                    .and_then(|tags| static_tags(cx, tags));
                self.tags.set(cx, &arg, tags)
            }
            _ => attr::unknown::<Self>(cx, &arg),
        }
    }
}

/// Keeps `tags` when none is a template: a view's arguments are extractors, so its static
/// tags are plain strings; the objects a response shows tag it through `CacheTags`.
fn static_tags(cx: &Ctxt, tags: Vec<LitStr>) -> Option<Vec<LitStr>> {
    let mut ok = true;
    for tag in &tags {
        let value = tag.value();
        if value.contains('{') || value.contains('}') {
            ok = false;
            cx.error_spanned_by(
                tag,
                format!("`{value}`: the tags of `#[cache_view]` are static strings, not templates; tag a response with the objects it shows by returning `cached_kit::http::CacheTags` with it, e.g. `(CacheTags::new([format!(\"product:{{id}}\")]), Json(product))`"),
            );
        } else if value.is_empty() {
            ok = false;
            cx.error_spanned_by(
                tag,
                "a tag cannot be empty: write a name such as \"products\"",
            );
        }
    }
    ok.then_some(tags)
}

/// Keeps `names` when every one is a valid header name (RFC 9110 token).
fn header_names(cx: &Ctxt, names: Vec<LitStr>) -> Option<Vec<LitStr>> {
    let mut ok = true;
    for name in &names {
        let value = name.value();
        let valid = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid {
            ok = false;
            cx.error_spanned_by(
                name,
                format!("`{value}` is not a header name: use letters, digits and `-`, e.g. \"Accept-Language\""),
            );
        }
    }
    ok.then_some(names)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_name_is_handled() {
        crate::attr::tests::every_name_is_handled::<super::Args>();
    }
}
