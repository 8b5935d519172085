//! The arguments of `#[cache_view]`: `ttl`, `cache`, `vary`, `shared`, `max_body`.

use proc_macro2::{Span, TokenStream};
use syn::{Expr, LitStr};

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
}

impl attr::Args for Args {
    const MACRO: &'static str = "cache_view";
    const NAMES: &'static [&'static str] = &["ttl", "cache", "vary", "shared", "max_body"];

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
            _ => attr::unknown::<Self>(cx, &arg),
        }
    }
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
