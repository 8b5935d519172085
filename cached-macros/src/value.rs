//! The value parsers every macro shares: strings, booleans, lists, durations (`ttl`,
//! `lock_ttl`), versions and argument names. Each reports a bad value on the value's
//! own tokens, with a message that says what to write, and returns `None`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitStr};

use crate::attr::{Arg, ArgValue};
use crate::ctxt::Ctxt;

/// `name = "..."`.
pub fn string(cx: &Ctxt, arg: &Arg, example: &str) -> Option<LitStr> {
    let expr = arg.expr(cx, &format!("\"{example}\""))?;
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.clone()),
        _ => {
            cx.error_spanned_by(
                expr,
                format!(
                    "`{0}` takes a string literal: write `{0} = \"{example}\"`",
                    arg.name
                ),
            );
            None
        }
    }
}

/// `name = true` or `name = false`, with the span of the literal.
pub fn boolean(cx: &Ctxt, arg: &Arg) -> Option<(bool, Span)> {
    let expr = arg.expr(cx, "true")?;
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Some((b.value, b.span)),
        _ => {
            cx.error_spanned_by(expr, format!("`{}` takes `true` or `false`", arg.name));
            None
        }
    }
}

/// `name = ["a", "b"]`: a non-empty list of string literals.
pub fn strings(cx: &Ctxt, arg: &Arg, example: &str) -> Option<Vec<LitStr>> {
    let expr = arg.expr(cx, &format!("[\"{example}\"]"))?;
    let Expr::Array(array) = expr else {
        cx.error_spanned_by(
            expr,
            format!(
                "`{0}` takes a list of string literals: write `{0} = [\"{example}\"]`",
                arg.name
            ),
        );
        return None;
    };
    strings_of(cx, arg, array, example)
}

/// `name = "a"` or `name = ["a", "b"]`: one string literal or a non-empty list of them.
pub fn string_or_strings(cx: &Ctxt, arg: &Arg, example: &str) -> Option<Vec<LitStr>> {
    let expr = arg.expr(cx, &format!("\"{example}\""))?;
    match expr {
        Expr::Array(array) => strings_of(cx, arg, array, example),
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(vec![s.clone()]),
        _ => {
            cx.error_spanned_by(
                expr,
                format!(
                    "`{0}` takes a string literal or a list of them: write `{0} = \"{example}\"` or `{0} = [\"{example}\", ...]`",
                    arg.name
                ),
            );
            None
        }
    }
}

fn strings_of(cx: &Ctxt, arg: &Arg, array: &syn::ExprArray, example: &str) -> Option<Vec<LitStr>> {
    if array.elems.is_empty() {
        cx.error_spanned_by(
            array,
            format!(
                "`{0} = []` lists nothing: give at least one, e.g. `{0} = [\"{example}\"]`",
                arg.name
            ),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for elem in &array.elems {
        match elem {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => out.push(s.clone()),
            other => {
                ok = false;
                cx.error_spanned_by(
                    other,
                    format!("`{}` lists string literals, e.g. `\"{example}\"`", arg.name),
                );
            }
        }
    }
    ok.then_some(out)
}

/// `name(a, b)`: a list of names (`skip(db, conn)`).
pub fn idents(cx: &Ctxt, arg: &Arg, example: &str) -> Option<Vec<Ident>> {
    let ArgValue::List(items) = &arg.value else {
        cx.error_spanned_by(
            &arg.name,
            format!(
                "`{0}` lists names in parentheses: write `{0}({example})`",
                arg.name
            ),
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for item in items {
        match item {
            Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                if let Some(ident) = p.path.get_ident() {
                    out.push(syn::ext::IdentExt::unraw(ident));
                }
            }
            other => {
                ok = false;
                cx.error_spanned_by(
                    other,
                    format!(
                        "`{}` lists argument names, e.g. `{}({example})`",
                        arg.name, arg.name
                    ),
                );
            }
        }
    }
    ok.then_some(out)
}

/// Any expression (`unless = |v| ...`, `max_body = LIMIT`).
pub fn expr(cx: &Ctxt, arg: &Arg, example: &str) -> Option<Expr> {
    arg.expr(cx, example).cloned()
}

/// `ttl = 600` or `lock_ttl = 10` (an integer literal: whole seconds) or any expression
/// of type `std::time::Duration`. Returns an expression of type `Duration`, spanned on
/// the user's value so that a type error points at it.
///
/// A string, a float, a negative number or a suffix other than an unsigned one is a
/// compile error that says what to write.
pub fn duration(cx: &Ctxt, arg: &Arg, example_secs: u64) -> Option<TokenStream> {
    let name = &arg.name;
    let help = format!(
        "write whole seconds (`{name} = {example_secs}`) or a `std::time::Duration` (`{name} = Duration::from_secs({example_secs})`)"
    );
    let expr = arg.expr(cx, &example_secs.to_string())?;
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => {
            if !matches!(int.suffix(), "" | "u64" | "u32" | "u16" | "u8" | "usize") {
                cx.error_spanned_by(
                    int,
                    format!("`{name}` seconds take no `{}` suffix: {help}", int.suffix()),
                );
                return None;
            }
            let Ok(secs) = int.base10_parse::<u64>() else {
                cx.error_spanned_by(
                    int,
                    format!("`{name}` is not a whole number of seconds: {help}"),
                );
                return None;
            };
            Some(quote_spanned! {int.span()=>
                ::cached_kit::__private::std::time::Duration::from_secs(#secs)
            })
        }
        Expr::Lit(ExprLit { lit, .. }) => {
            let found = match lit {
                Lit::Str(_) => "a string",
                Lit::Float(_) => "a fractional number",
                Lit::Bool(_) => "a boolean",
                _ => "this literal",
            };
            cx.error_spanned_by(lit, format!("`{name}` cannot be {found}: {help}"));
            None
        }
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr: inner,
            ..
        }) if matches!(&**inner, Expr::Lit(_)) => {
            cx.error_spanned_by(expr, format!("`{name}` cannot be negative: {help}"));
            None
        }
        other => Some(quote_spanned! {other.span()=>
            ::cached_kit::__private::ttl(#other)
        }),
    }
}

/// A [`duration`] that cannot be the literal `0` (`stale`, `lock_ttl`): `0` is the error
/// `zero` (what it would do, and what to write), spanned on the argument's name.
pub fn nonzero_duration(
    cx: &Ctxt,
    arg: &Arg,
    example_secs: u64,
    zero: &str,
) -> Option<TokenStream> {
    let duration = duration(cx, arg, example_secs)?;
    if is_zero(arg.expr(cx, &example_secs.to_string())) {
        cx.error_spanned_by(&arg.name, zero);
        return None;
    }
    Some(duration)
}

/// Whether `expr` is the integer literal `0`.
fn is_zero(expr: Option<&Expr>) -> bool {
    matches!(expr, Some(Expr::Lit(ExprLit { lit: Lit::Int(int), .. }))
        if int.base10_parse::<u64>().ok() == Some(0))
}

/// `version = 2` or an expression of type `u32`. Returns an expression of type `u32`.
pub fn version(cx: &Ctxt, arg: &Arg) -> Option<TokenStream> {
    let expr = arg.expr(cx, "2")?;
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => match int.base10_parse::<u32>() {
            Ok(v) => Some(quote!(#v)),
            Err(_) => {
                cx.error_spanned_by(int, "`version` is a whole number from 0 to 4294967295");
                None
            }
        },
        Expr::Lit(lit) => {
            cx.error_spanned_by(
                lit,
                "`version` is a whole number (`version = 2`) or an expression of type `u32`",
            );
            None
        }
        other => Some(quote_spanned! {other.span()=>
            {
                let __cache_version: ::cached_kit::__private::std::primitive::u32 = #other;
                __cache_version
            }
        }),
    }
}

/// `cache = "alias"`: a non-empty alias.
pub fn alias(cx: &Ctxt, arg: &Arg) -> Option<LitStr> {
    let lit = string(cx, arg, "shared")?;
    if lit.value().is_empty() {
        cx.error_spanned_by(
            &lit,
            "`cache` names a cache alias, e.g. `cache = \"shared\"`; it cannot be empty",
        );
        return None;
    }
    Some(lit)
}
