//! The arguments of `#[cache_evict(...)]`.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, LitStr, Token};

use crate::common::{expect_str, unknown_argument, Errors};

mod kw {
    syn::custom_keyword!(key);
    syn::custom_keyword!(cache);
}

/// `#[cache_evict(key = "a:{x}" | key = ["a:{x}", "b:{y}"], cache = "alias")]`.
#[derive(Default)]
pub struct Args {
    /// The templates, and the `key` keyword (for errors when it is missing or empty).
    pub keys: Option<Vec<LitStr>>,
    pub cache: Option<LitStr>,
    pub errors: Errors,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::key) {
                let kw: kw::key = input.parse()?;
                input.parse::<Token![=]>()?;
                let keys = if input.peek(syn::token::Bracket) {
                    let content;
                    syn::bracketed!(content in input);
                    let list = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
                    let mut keys = Vec::new();
                    for expr in &list {
                        if let Some(lit) = args.errors.take(expect_str(expr, "key")) {
                            keys.push(lit);
                        }
                    }
                    if list.is_empty() {
                        args.errors
                            .spanned(kw, "`key = []` lists no key: give at least one template");
                    }
                    keys
                } else {
                    let expr: Expr = input.parse()?;
                    args.errors
                        .take(expect_str(&expr, "key"))
                        .into_iter()
                        .collect()
                };
                if args.keys.replace(keys).is_some() {
                    args.errors.spanned(kw, "duplicate argument `key`: list several keys as `key = [\"a:{x}\", \"b:{y}\"]`");
                }
            } else if lookahead.peek(kw::cache) {
                let kw: kw::cache = input.parse()?;
                input.parse::<Token![=]>()?;
                let expr: Expr = input.parse()?;
                if let Some(lit) = args.errors.take(expect_str(&expr, "cache")) {
                    if args.cache.replace(lit).is_some() {
                        args.errors
                            .spanned(kw, "duplicate argument `cache`: give it once");
                    }
                }
            } else {
                return Err(unknown_argument(input, "cache_evict", &["key", "cache"]));
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}
