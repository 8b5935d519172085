//! The arguments of `#[throttle]`: `rate` (required) and `scope`, and the rate grammar.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, LitStr, Token};

use crate::common::expect_str;

mod kw {
    syn::custom_keyword!(rate);
    syn::custom_keyword!(scope);
}

/// One parsed `#[throttle(...)]`.
pub struct ThrottleArgs {
    /// The rate's count.
    pub count: u32,
    /// The rate's period in seconds.
    pub period_secs: u64,
    /// `user`, `anon` or a scope name.
    pub scope: LitStr,
}

impl Parse for ThrottleArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut rate: Option<(u32, u64)> = None;
        let mut scope: Option<LitStr> = None;
        let mut seen: Vec<&str> = Vec::new();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            let (name, span) = if lookahead.peek(kw::rate) {
                let k: kw::rate = input.parse()?;
                input.parse::<Token![=]>()?;
                let lit = expect_rate_literal(&input.parse::<Expr>()?)?;
                let parsed = parse_rate(&lit.value()).map_err(|reason| {
                    syn::Error::new_spanned(&lit, rate_error(&lit.value(), reason))
                })?;
                rate = Some(parsed);
                ("rate", k.span)
            } else if lookahead.peek(kw::scope) {
                let k: kw::scope = input.parse()?;
                input.parse::<Token![=]>()?;
                let lit = expect_str(&input.parse::<Expr>()?, "scope")?;
                if lit.value().trim().is_empty() {
                    return Err(syn::Error::new_spanned(
                        &lit,
                        "the scope is empty: write `scope = \"user\"`, `scope = \"anon\"` or a name like `scope = \"uploads\"`",
                    ));
                }
                scope = Some(lit);
                ("scope", k.span)
            } else {
                return Err(lookahead.error());
            };
            if seen.contains(&name) {
                return Err(syn::Error::new(
                    span,
                    format!("`{name}` is given twice; keep one"),
                ));
            }
            seen.push(name);
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        let Some((count, period_secs)) = rate else {
            return Err(syn::Error::new(
                Span::call_site(),
                "#[throttle] needs a rate: write `#[throttle(rate = \"10/minute\")]` (scope `user` by default)",
            ));
        };
        Ok(ThrottleArgs {
            count,
            period_secs,
            scope: scope.unwrap_or_else(|| LitStr::new("user", Span::call_site())),
        })
    }
}

fn expect_rate_literal(expr: &Expr) -> syn::Result<LitStr> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => Ok(s.clone()),
        other => Err(syn::Error::new_spanned(
            other,
            "`rate` must be a string literal such as \"10/minute\", checked at compile time; for a rate read at run time use `ThrottleLayer` with `Throttle::user(&rate)?`",
        )),
    }
}

/// The same message as the runtime's `ParseRateError`.
fn rate_error(input: &str, reason: &str) -> String {
    format!("invalid throttle rate `{input}`: {reason}; write `<count>/<period>`, e.g. `10/minute`, `100/hour`, `1000/day`, `10/m` or `10/5m`")
}

/// DRF's rate notation, the grammar of `cached_core::throttle::Rate::parse` (kept in
/// step with it by the tests of both): `count/[multiple]unit`, unit `second`, `minute`,
/// `hour`, `day`, their plural or first letter (also `sec`, `min`).
pub fn parse_rate(input: &str) -> Result<(u32, u64), &'static str> {
    let (count, period) = input
        .split_once('/')
        .ok_or("there is no `/` between the count and the period")?;
    let count = count.trim();
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the count is not a whole number");
    }
    let count: u32 = count.parse().map_err(|_| "the count is too large")?;
    if count == 0 {
        return Err("a count of 0 admits nothing");
    }
    let period = period.trim();
    let digits = period.bytes().take_while(u8::is_ascii_digit).count();
    let (multiple, unit) = period.split_at(digits);
    let multiple: u64 = if multiple.is_empty() {
        1
    } else {
        multiple
            .parse()
            .map_err(|_| "the multiple of the unit is too large")?
    };
    if multiple == 0 {
        return Err("a period of 0 is not a period");
    }
    let unit = unit.trim_start();
    let (secs, word) = match unit.as_bytes().first() {
        Some(b's') => (1, "second"),
        Some(b'm') => (60, "minute"),
        Some(b'h') => (3_600, "hour"),
        Some(b'd') => (86_400, "day"),
        _ => return Err("the unit is not one of second, minute, hour, day (or s, m, h, d)"),
    };
    let singular = unit
        .strip_suffix('s')
        .filter(|_| unit.len() > 1)
        .unwrap_or(unit);
    let accepted = unit.len() == 1
        || singular == word
        || (secs == 1 && matches!(unit, "sec" | "secs"))
        || (secs == 60 && matches!(unit, "min" | "mins"));
    if !accepted {
        return Err("the unit is not one of second, minute, hour, day (or s, m, h, d)");
    }
    let period_secs = multiple.checked_mul(secs).ok_or("the period is too long")?;
    Ok((count, period_secs))
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn the_grammar_of_the_runtime() {
        assert_eq!(parse_rate("10/minute"), Ok((10, 60)));
        assert_eq!(parse_rate("10/m"), Ok((10, 60)));
        assert_eq!(parse_rate("100/hour"), Ok((100, 3_600)));
        assert_eq!(parse_rate("1000/day"), Ok((1_000, 86_400)));
        assert_eq!(parse_rate("10/second"), Ok((10, 1)));
        assert_eq!(parse_rate("10/5m"), Ok((10, 300)));
        assert_eq!(parse_rate("2/2s"), Ok((2, 2)));
        assert_eq!(parse_rate("3/10 seconds"), Ok((3, 10)));
        for bad in [
            "10",
            "ten/minute",
            "0/m",
            "10/fortnight",
            "10/0m",
            "10/mx",
            "10/5",
            "10/ms",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
