//! The arguments of `#[cache_fn(...)]`.

use proc_macro2::{Span, TokenStream};
use syn::{Expr, Ident, LitStr};

use crate::attr::{self, Arg, Attr};
use crate::ctxt::Ctxt;
use crate::value;

/// `#[cache_fn(ttl = .., key = "..", cache = "..", skip(a, b), version = .., unless = |v| ..,
/// cache_none = false, lock = true, lock_ttl = .., stale = .., tags = ["..", ..])]`, every
/// argument optional and given at most once.
#[derive(Default)]
pub struct Args {
    /// A `Duration` expression.
    pub ttl: Attr<TokenStream>,
    pub key: Attr<LitStr>,
    pub cache: Attr<LitStr>,
    /// The `skip` keyword (for errors) and the names it lists.
    pub skip: Attr<(Ident, Vec<Ident>)>,
    /// A `u32` expression.
    pub version: Attr<TokenStream>,
    pub unless: Attr<Expr>,
    /// The value and the span of its literal.
    pub cache_none: Attr<(bool, Span)>,
    pub lock: Attr<(bool, Span)>,
    /// The `lock_ttl` keyword (for errors) and a `Duration` expression.
    pub lock_ttl: Attr<(Ident, TokenStream)>,
    /// The `stale` keyword (for errors) and a `Duration` expression.
    pub stale: Attr<(Ident, TokenStream)>,
    /// Tag templates.
    pub tags: Attr<Vec<LitStr>>,
}

impl attr::Args for Args {
    const MACRO: &'static str = "cache_fn";
    const NAMES: &'static [&'static str] = &[
        "ttl",
        "key",
        "cache",
        "skip",
        "version",
        "unless",
        "cache_none",
        "lock",
        "lock_ttl",
        "stale",
        "tags",
    ];

    fn set(&mut self, cx: &Ctxt, arg: Arg) {
        match arg.name.to_string().as_str() {
            "ttl" => self.ttl.set(cx, &arg, value::duration(cx, &arg, 600)),
            "key" => self
                .key
                .set(cx, &arg, value::string(cx, &arg, "product:{id}")),
            "cache" => self.cache.set(cx, &arg, value::alias(cx, &arg)),
            "skip" => {
                let names = value::idents(cx, &arg, "db, conn");
                self.skip
                    .set(cx, &arg, names.map(|names| (arg.name.clone(), names)))
            }
            "version" => self.version.set(cx, &arg, value::version(cx, &arg)),
            "unless" => self
                .unless
                .set(cx, &arg, value::expr(cx, &arg, "|v| v.is_empty()")),
            "cache_none" => self.cache_none.set(cx, &arg, value::boolean(cx, &arg)),
            "lock" => self.lock.set(cx, &arg, value::boolean(cx, &arg)),
            "lock_ttl" => {
                let ttl = value::nonzero_duration(
                    cx,
                    &arg,
                    10,
                    "`lock_ttl = 0` would let the lock expire at once: give at least 1 second (the default is 10)",
                );
                self.lock_ttl
                    .set(cx, &arg, ttl.map(|ttl| (arg.name.clone(), ttl)))
            }
            "stale" => {
                let stale = value::nonzero_duration(
                    cx,
                    &arg,
                    60,
                    "`stale = 0` would serve nothing stale: give the seconds a value may be served past its ttl while it is refreshed, or remove `stale`",
                );
                self.stale
                    .set(cx, &arg, stale.map(|stale| (arg.name.clone(), stale)))
            }
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
