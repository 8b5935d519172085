//! The arguments of `#[throttle]`: `rate`, `scope`, `algorithm` and `burst`.

use syn::{Expr, ExprLit, Lit, LitInt, LitStr};

use crate::attr::{self, Arg, Attr};
use crate::ctxt::Ctxt;
use crate::grammar;
use crate::value;

/// How the throttle counts (`algorithm = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `"sliding_log"`, the default.
    SlidingLog,
    /// `"gcra"`.
    Gcra,
}

/// One `#[throttle(...)]`.
#[derive(Default)]
pub struct Args {
    /// The rate, checked: count and period in seconds. Absent: configured by scope.
    pub rate: Attr<(u32, u64)>,
    /// `user`, `anon` or a scope name.
    pub scope: Attr<LitStr>,
    /// The algorithm, with the literal that named it.
    pub algorithm: Attr<(Algorithm, LitStr)>,
    /// The GCRA burst (at least 1), with its literal.
    pub burst: Attr<(u32, LitInt)>,
}

impl attr::Args for Args {
    const MACRO: &'static str = "throttle";
    const NAMES: &'static [&'static str] = &["rate", "scope", "algorithm", "burst"];

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
            "algorithm" => {
                let algorithm = value::string(cx, &arg, "gcra").and_then(|lit| {
                    match lit.value().as_str() {
                        "gcra" => Some((Algorithm::Gcra, lit)),
                        "sliding_log" => Some((Algorithm::SlidingLog, lit)),
                        other => {
                            cx.error_spanned_by(
                                &lit,
                                format!("unknown algorithm `{other}`: write `algorithm = \"sliding_log\"` (the default: DRF's exact sliding window) or `algorithm = \"gcra\"` (bursts, O(1) state per client)"),
                            );
                            None
                        }
                    }
                });
                self.algorithm.set(cx, &arg, algorithm)
            }
            "burst" => self.burst.set(cx, &arg, burst(cx, &arg)),
            _ => attr::unknown::<Self>(cx, &arg),
        }
    }
}

/// `burst = 5`: a whole number from 1 to 4294967295.
fn burst(cx: &Ctxt, arg: &Arg) -> Option<(u32, LitInt)> {
    let expr = arg.expr(cx, "5")?;
    let help = "`burst` is how many requests a full GCRA bucket admits at once: a whole number from 1, e.g. `burst = 5`";
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => match int.base10_parse::<u32>() {
            Ok(0) | Err(_) => {
                cx.error_spanned_by(int, help);
                None
            }
            Ok(n) if matches!(int.suffix(), "" | "u32") => Some((n, int.clone())),
            Ok(_) => {
                cx.error_spanned_by(int, help);
                None
            }
        },
        other => {
            cx.error_spanned_by(other, help);
            None
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
            "`rate` must be a string literal such as \"10/minute\", checked at compile time; for a rate read at start-up leave `rate` out and configure the scope's rate (`THROTTLE_RATES=\"uploads=10/minute\"` or `set_rates`)",
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
