//! The arguments of `#[throttle]`: `rate` (required) and `scope`.

use syn::{Expr, ExprLit, Lit, LitStr};

use crate::attr::{self, Arg, Attr};
use crate::ctxt::Ctxt;
use crate::grammar;
use crate::value;

/// One `#[throttle(...)]`.
#[derive(Default)]
pub struct Args {
    /// The rate, checked: count and period in seconds.
    pub rate: Attr<(u32, u64)>,
    /// `user`, `anon` or a scope name.
    pub scope: Attr<LitStr>,
}

impl attr::Args for Args {
    const MACRO: &'static str = "throttle";
    const NAMES: &'static [&'static str] = &["rate", "scope"];

    fn set(&mut self, cx: &Ctxt, arg: Arg) {
        match arg.name.to_string().as_str() {
            "rate" => self.rate.set(cx, &arg, rate(cx, &arg)),
            "scope" => {
                let scope = value::string(cx, &arg, "user").filter(|lit| {
                    let empty = lit.value().trim().is_empty();
                    if empty {
                        cx.error_spanned_by(
                            lit,
                            "the scope is empty: write `scope = \"user\"`, `scope = \"anon\"` or a name like `scope = \"uploads\"`",
                        );
                    }
                    !empty
                });
                self.scope.set(cx, &arg, scope)
            }
            _ => attr::unknown::<Self>(cx, &arg),
        }
    }
}

/// `rate = "10/minute"`: a string literal in the rate grammar, checked here so that a
/// bad rate is a compile error on the literal.
fn rate(cx: &Ctxt, arg: &Arg) -> Option<(u32, u64)> {
    let expr = arg.expr(cx, "\"10/minute\"")?;
    let Expr::Lit(ExprLit {
        lit: Lit::Str(lit), ..
    }) = expr
    else {
        cx.error_spanned_by(
            expr,
            "`rate` must be a string literal such as \"10/minute\", checked at compile time; for a rate read at run time use `ThrottleLayer` with `Throttle::user(&rate)?`",
        );
        return None;
    };
    rate_of(cx, lit)
}

/// The count and period of the rate `lit`, or an error on it.
fn rate_of(cx: &Ctxt, lit: &LitStr) -> Option<(u32, u64)> {
    let text = lit.value();
    match grammar::parse(&text) {
        Ok(parsed) => Some((parsed.count, parsed.period_secs)),
        Err(reason) => {
            cx.error_spanned_by(lit, grammar::message(&text, reason));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::Span;
    use proptest::prelude::*;
    use syn::LitStr;

    use super::rate_of;
    use crate::ctxt::Ctxt;

    /// What `#[throttle(rate = "<input>")]` makes of the rate: its count and period, or
    /// the compile error's message.
    fn macro_side(input: &str) -> Result<(u32, u64), String> {
        let cx = Ctxt::default();
        let parsed = rate_of(&cx, &LitStr::new(input, Span::call_site()));
        match cx.check() {
            Ok(()) => parsed.ok_or_else(|| "no value and no error".to_owned()),
            Err(err) => Err(err.to_string()),
        }
    }

    /// What the runtime's `Rate::parse` makes of it.
    fn runtime_side(input: &str) -> Result<(u32, u64), String> {
        cached_kit::__private::cached_core::throttle::Rate::parse(input)
            .map(|rate| (rate.count(), rate.period_secs()))
            .map_err(|err| err.to_string())
    }

    /// The shared table (also run by `Rate::parse`'s tests), through the macro's parser.
    #[test]
    fn the_shared_table_of_spellings() {
        let table: &[crate::grammar::TableRow] =
            include!("../../../cached-backend/src/rate/grammar_table.rs");
        for &(input, expected) in table {
            match (macro_side(input), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{input:?}"),
                (Err(msg), Err(why)) => {
                    assert!(msg.contains(&format!("`{input}`")), "{msg}");
                    assert!(msg.contains(why), "{input:?}: {msg}");
                    assert!(msg.contains("e.g. `10/minute`"), "{msg}");
                }
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    proptest! {
        /// The macro and the runtime agree on every string: the same rate, or the same
        /// error message.
        #[test]
        fn the_macro_and_the_runtime_agree(input in "\\PC{0,24}") {
            prop_assert_eq!(macro_side(&input), runtime_side(&input));
        }

        /// Also on strings shaped like rates, where the interesting cases are.
        #[test]
        fn the_macro_and_the_runtime_agree_on_rate_shapes(
            input in "[ \\t]?[0-9+-]{0,11}[ \\t]?/?[ \\t]?[0-9]{0,11}[ -]?[a-zA-Z]{0,8}[ !/]?"
        ) {
            prop_assert_eq!(macro_side(&input), runtime_side(&input));
        }
    }

    #[test]
    fn every_name_is_handled() {
        crate::attr::tests::every_name_is_handled::<super::Args>();
    }
}
