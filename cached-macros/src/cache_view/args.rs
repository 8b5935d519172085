//! The arguments of `#[cache_view]`: `ttl`, `cache`, `vary`, `shared`, `max_body`.

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{bracketed, Expr, LitStr, Token};

use crate::common::{expect_bool, expect_str, parse_ttl};

mod kw {
    syn::custom_keyword!(ttl);
    syn::custom_keyword!(cache);
    syn::custom_keyword!(vary);
    syn::custom_keyword!(shared);
    syn::custom_keyword!(max_body);
}

/// The parsed arguments.
#[derive(Default)]
pub struct ViewArgs {
    /// An `Option<Duration>` expression.
    pub ttl: Option<TokenStream>,
    /// The named cache.
    pub cache: Option<LitStr>,
    /// Extra request headers to vary on, checked to be header names.
    pub vary: Vec<LitStr>,
    /// Whether credentials are left out of the key.
    pub shared: Option<bool>,
    /// The body size limit, a `usize` expression.
    pub max_body: Option<Expr>,
}

impl Parse for ViewArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = ViewArgs::default();
        let mut seen: Vec<String> = Vec::new();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            let name = if lookahead.peek(kw::ttl) {
                let k: kw::ttl = input.parse()?;
                input.parse::<Token![=]>()?;
                args.ttl = Some(parse_ttl(&input.parse::<Expr>()?)?);
                ("ttl", k.span)
            } else if lookahead.peek(kw::cache) {
                let k: kw::cache = input.parse()?;
                input.parse::<Token![=]>()?;
                args.cache = Some(expect_str(&input.parse::<Expr>()?, "cache")?);
                ("cache", k.span)
            } else if lookahead.peek(kw::vary) {
                let k: kw::vary = input.parse()?;
                input.parse::<Token![=]>()?;
                args.vary = parse_vary(input)?;
                ("vary", k.span)
            } else if lookahead.peek(kw::shared) {
                let k: kw::shared = input.parse()?;
                input.parse::<Token![=]>()?;
                args.shared = Some(expect_bool(&input.parse::<Expr>()?, "shared")?);
                ("shared", k.span)
            } else if lookahead.peek(kw::max_body) {
                let k: kw::max_body = input.parse()?;
                input.parse::<Token![=]>()?;
                args.max_body = Some(input.parse::<Expr>()?);
                ("max_body", k.span)
            } else {
                return Err(lookahead.error());
            };
            if seen.iter().any(|s| s == name.0) {
                return Err(syn::Error::new(
                    name.1,
                    format!("`{}` is given twice; keep one", name.0),
                ));
            }
            seen.push(name.0.to_owned());
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}

/// `["Accept-Language", "Accept"]`: string literals that are valid header names.
fn parse_vary(input: ParseStream<'_>) -> syn::Result<Vec<LitStr>> {
    if !input.peek(syn::token::Bracket) {
        return Err(
            input.error("`vary` takes a list of header names, e.g. `vary = [\"Accept-Language\"]`")
        );
    }
    let content;
    bracketed!(content in input);
    let names = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
    for name in &names {
        let value = name.value();
        let valid = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid {
            return Err(syn::Error::new_spanned(
                name,
                format!("`{value}` is not a header name: use letters, digits and `-`, e.g. \"Accept-Language\""),
            ));
        }
    }
    Ok(names.into_iter().collect())
}
