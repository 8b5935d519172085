//! The arguments of `#[cache_fn(...)]`.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitStr, Token};

use crate::common::{expect_bool, expect_str, unknown_argument, Errors};

/// The arguments, in the order error messages list them.
const VALID: &[&str] = &[
    "ttl",
    "key",
    "cache",
    "skip",
    "version",
    "unless",
    "cache_none",
    "lock",
];

mod kw {
    syn::custom_keyword!(ttl);
    syn::custom_keyword!(key);
    syn::custom_keyword!(cache);
    syn::custom_keyword!(skip);
    syn::custom_keyword!(version);
    syn::custom_keyword!(unless);
    syn::custom_keyword!(cache_none);
    syn::custom_keyword!(lock);
}

/// `#[cache_fn(ttl = .., key = "..", cache = "..", skip(a, b), version = .., unless = |v| ..,
/// cache_none = false, lock = true)]`, every argument optional and given at most once.
#[derive(Default)]
pub struct Args {
    pub ttl: Option<Expr>,
    pub key: Option<LitStr>,
    pub cache: Option<LitStr>,
    /// The `skip` keyword's span and the names it lists.
    pub skip: Option<(Span, Vec<Ident>)>,
    pub version: Option<Expr>,
    pub unless: Option<Expr>,
    /// The value and the span of its literal.
    pub cache_none: Option<(bool, Span)>,
    pub lock: Option<bool>,
    /// Duplicates and bad values, reported together with the rest of the expansion.
    pub errors: Errors,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::skip) {
                let kw: kw::skip = input.parse()?;
                let content;
                syn::parenthesized!(content in input);
                let names = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                if args.skip.is_some() {
                    args.errors.spanned(kw, "duplicate argument `skip`: list every skipped argument in one `skip(a, b)`");
                } else {
                    args.skip = Some((kw.span, names.into_iter().collect()));
                }
            } else if lookahead.peek(kw::ttl)
                || lookahead.peek(kw::key)
                || lookahead.peek(kw::cache)
                || lookahead.peek(kw::version)
                || lookahead.peek(kw::unless)
                || lookahead.peek(kw::cache_none)
                || lookahead.peek(kw::lock)
            {
                let name: Ident = input.call(syn::ext::IdentExt::parse_any)?;
                input.parse::<Token![=]>()?;
                let value: Expr = input.parse()?;
                args.set(&name, value);
            } else {
                return Err(unknown_argument(input, "cache_fn", VALID));
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}

impl Args {
    fn set(&mut self, name: &Ident, value: Expr) {
        let dup = match name.to_string().as_str() {
            "ttl" => self.ttl.replace(value).is_some(),
            "version" => self.version.replace(value).is_some(),
            "unless" => self.unless.replace(value).is_some(),
            "key" => match expect_str(&value, "key") {
                Ok(s) => self.key.replace(s).is_some(),
                Err(e) => {
                    self.errors.push(e);
                    false
                }
            },
            "cache" => match expect_str(&value, "cache") {
                Ok(s) => self.cache.replace(s).is_some(),
                Err(e) => {
                    self.errors.push(e);
                    false
                }
            },
            "cache_none" => match expect_bool(&value, "cache_none") {
                Ok(b) => self
                    .cache_none
                    .replace((b, syn::spanned::Spanned::span(&value)))
                    .is_some(),
                Err(e) => {
                    self.errors.push(e);
                    false
                }
            },
            "lock" => match expect_bool(&value, "lock") {
                Ok(b) => self.lock.replace(b).is_some(),
                Err(e) => {
                    self.errors.push(e);
                    false
                }
            },
            _ => false,
        };
        if dup {
            self.errors
                .spanned(name, format!("duplicate argument `{name}`: give it once"));
        }
    }
}
