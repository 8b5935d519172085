//! The one parse loop behind every macro's arguments (serde_derive's `internals/attr.rs`).
//!
//! Each macro describes its arguments as a struct of [`Attr`] fields implementing
//! [`Args`]; [`parse`] reads `name = value` and `name(a, b)` items, rejects an unknown
//! name with the list of valid ones, and hands each known one to [`Args::set`], which
//! parses its value with the shared parsers of [`crate::value`]. Every error goes to the
//! [`Ctxt`] spanned on the offending token, with the same wording in every macro.

use proc_macro2::TokenStream;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Token};

use crate::ctxt::Ctxt;

/// One argument as written: `name = value`, `name(a, b)` or a bare `name`.
pub struct Arg {
    /// The name, without `r#`.
    pub name: Ident,
    /// What follows it.
    pub value: ArgValue,
}

/// The part of an [`Arg`] after its name.
pub enum ArgValue {
    /// `= value`.
    Expr(Expr),
    /// `(a, b)`.
    List(Punctuated<Expr, Token![,]>),
    /// Nothing.
    Flag,
}

impl Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Arg> {
        let name: Ident = input.call(syn::ext::IdentExt::parse_any)?;
        let name = syn::ext::IdentExt::unraw(&name);
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            ArgValue::Expr(input.parse()?)
        } else if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            ArgValue::List(Punctuated::parse_terminated(&content)?)
        } else {
            ArgValue::Flag
        };
        Ok(Arg { name, value })
    }

    /// The `value` of `name = value`; for any other form, an error showing how to write
    /// it (`example` is a typical value: `600`, `"shared"`).
    pub fn expr(&self, cx: &Ctxt, example: &str) -> Option<&Expr> {
        match &self.value {
            ArgValue::Expr(expr) => Some(expr),
            _ => {
                cx.error_spanned_by(
                    &self.name,
                    format!("`{0}` takes a value: write `{0} = {example}`", self.name),
                );
                None
            }
        }
    }
}

/// One argument's value: set at most once (serde_derive's `Attr<T>`).
pub struct Attr<T> {
    seen: bool,
    value: Option<T>,
}

impl<T> Default for Attr<T> {
    fn default() -> Self {
        Attr {
            seen: false,
            value: None,
        }
    }
}

impl<T> Attr<T> {
    /// Records `value` for `arg` (`None` when the value was invalid, already reported);
    /// a second occurrence of the argument is a "duplicate argument" error on its name.
    pub fn set(&mut self, cx: &Ctxt, arg: &Arg, value: Option<T>) {
        if self.seen {
            cx.error_spanned_by(
                &arg.name,
                format!("duplicate argument `{}`: give it once", arg.name),
            );
            return;
        }
        self.seen = true;
        self.value = value;
    }

    /// Whether the argument was written (even with an invalid value).
    pub fn is_set(&self) -> bool {
        self.seen
    }

    /// The value, if the argument was written with a valid one.
    pub fn get(&self) -> Option<&T> {
        self.value.as_ref()
    }

    /// The value, if the argument was written with a valid one.
    pub fn take(self) -> Option<T> {
        self.value
    }
}

/// The arguments of one macro.
pub trait Args: Default {
    /// The macro's name, for messages: `cache_fn`.
    const MACRO: &'static str;
    /// Every argument name, in the order messages list them.
    const NAMES: &'static [&'static str];
    /// Records one argument whose name is in [`NAMES`](Args::NAMES).
    fn set(&mut self, cx: &Ctxt, arg: Arg);
}

/// Parses `tokens` as the arguments of `A`. `None` when they are not even a
/// comma-separated list of arguments (the syntax error is in `cx`).
pub fn parse<A: Args>(cx: &Ctxt, tokens: TokenStream) -> Option<A> {
    let parser = |input: ParseStream<'_>| {
        Punctuated::<Arg, Token![,]>::parse_terminated_with(input, Arg::parse)
    };
    let list = match parser.parse2(tokens) {
        Ok(list) => list,
        Err(err) => {
            cx.syn_error(err);
            return None;
        }
    };
    let mut args = A::default();
    for arg in list {
        if A::NAMES.iter().any(|name| arg.name == name) {
            args.set(cx, arg);
        } else {
            unknown::<A>(cx, &arg);
        }
    }
    Some(args)
}

/// The error for an argument `A` does not take: it lists the ones it does.
pub fn unknown<A: Args>(cx: &Ctxt, arg: &Arg) {
    let valid: Vec<String> = A::NAMES.iter().map(|n| format!("`{n}`")).collect();
    cx.error_spanned_by(
        &arg.name,
        format!(
            "unknown argument `{}`: #[{}] takes {}",
            arg.name,
            A::MACRO,
            valid.join(", ")
        ),
    );
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Every name in `A::NAMES` reaches a branch of `A::set` (none is reported as
    /// unknown), whatever its value.
    pub fn every_name_is_handled<A: Args>() {
        for name in A::NAMES {
            for value in ["= 1", "= \"x\"", "= true", "(a)", ""] {
                let cx = Ctxt::default();
                let tokens: TokenStream = format!("{name} {value}").parse().expect("tokens");
                parse::<A>(&cx, tokens);
                if let Err(err) = cx.check() {
                    assert!(
                        !err.to_string().contains("unknown argument"),
                        "#[{}] lists `{name}` but does not handle it: {err}",
                        A::MACRO
                    );
                }
            }
        }
    }

    #[derive(Default)]
    struct Demo {
        ttl: Attr<()>,
    }

    impl Args for Demo {
        const MACRO: &'static str = "demo";
        const NAMES: &'static [&'static str] = &["ttl"];
        fn set(&mut self, cx: &Ctxt, arg: Arg) {
            match arg.name.to_string().as_str() {
                "ttl" => {
                    let value = arg.expr(cx, "600").map(|_| ());
                    self.ttl.set(cx, &arg, value)
                }
                _ => unknown::<Self>(cx, &arg),
            }
        }
    }

    fn errors(tokens: &str) -> Vec<String> {
        let cx = Ctxt::default();
        parse::<Demo>(&cx, tokens.parse().expect("tokens"));
        match cx.check() {
            Ok(()) => Vec::new(),
            Err(err) => err.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn duplicates_and_unknown_names_are_all_reported() {
        assert_eq!(
            errors("ttl = 1, expires = 2, ttl = 3, r#type = 4"),
            [
                "unknown argument `expires`: #[demo] takes `ttl`",
                "duplicate argument `ttl`: give it once",
                "unknown argument `type`: #[demo] takes `ttl`",
            ]
        );
        assert_eq!(errors("ttl(5)"), ["`ttl` takes a value: write `ttl = 600`"]);
        assert_eq!(errors(""), Vec::<String>::new());
        assert_eq!(errors("ttl = 1,"), Vec::<String>::new());
        assert_eq!(errors("ttl = 1 2").len(), 1, "a syntax error");
    }

    #[test]
    fn demo_handles_its_names() {
        every_name_is_handled::<Demo>();
    }
}
