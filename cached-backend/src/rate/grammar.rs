//! The throttle rate grammar: one parser for `Rate::parse` at run
//! time and for `#[throttle(rate = "...")]` at compile time.
//!
//! This file has no dependencies, not even on the rest of this crate: `cached-macros`
//! compiles the same file into itself (`cached-macros/src/grammar.rs` is a symbolic
//! link to it, which `cargo package` copies as a file), so the macro and the runtime
//! accept exactly the same rates and word their errors alike.
//!
//! # Grammar
//!
//! ```text
//! rate     = count "/" period              ASCII whitespace around count and period is ignored
//! count    = digit+                        1 to 4294967295
//! period   = [multiple [ws* | "-"]] unit   "5m", "5 minutes", "2-sec" (DRF's spelling)
//! multiple = digit+                        at least 1
//! unit     = lower-case ASCII letter+      read from its first letter, as DRF does:
//!                                          s = second, m = minute, h = hour, d = day
//! ```
//!
//! So `10/second`, `10/s`, `5/sec`, `10/minute`, `10/min`, `10/m`, `100/hour`, `100/hr`,
//! `3/h`, `1000/day`, `1000/d`, `10/5m`, `1/2-sec` and `3/10 seconds` all parse.
//!
//! Decisions where DRF is silent or lax, each an error that says what to write:
//! - the count is at least 1 (`0/minute` would admit nothing);
//! - the multiple is at least 1, and the period at most `u32::MAX` seconds (136 years);
//! - the count fits a `u32`;
//! - the unit is lower case (`10/M` is an error, as in DRF: `M` reads as month as often
//!   as minute);
//! - a unit word that names another unit is an error instead of being read from its first
//!   letter: months (`mo`, `mon`, `month`) and milliseconds (`ms`, `msec`, `millisecond`),
//!   which DRF would silently read as minutes;
//! - nothing may follow the unit's letters (`10/minute!`, `10/m/s`).

/// A parsed rate: `count` requests per `multiple` × `unit_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedRate {
    /// Requests admitted per period.
    pub count: u32,
    /// How many units make the period (`5` in `10/5m`, `1` when none is written).
    pub multiple: u64,
    /// The unit in seconds: 1, 60, 3600 or 86400.
    pub unit_secs: u64,
    /// The period in seconds: `multiple * unit_secs`, at most `u32::MAX`.
    pub period_secs: u64,
}

/// What to write instead; the tail of every error message.
pub const EXPECTED: &str =
    "write `<count>/<period>`, e.g. `10/minute`, `100/hour`, `1000/day`, `10/m` or `10/5m`";

/// Parses `input`; on error, the reason (see [`message`] for the whole message).
pub fn parse(input: &str) -> Result<ParsedRate, &'static str> {
    let (count, period) = input
        .split_once('/')
        .ok_or("there is no `/` between the count and the period")?;
    let count = count.trim_ascii();
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the count is not a whole number");
    }
    let count: u32 = count
        .parse()
        .map_err(|_| "the count is too large (at most 4294967295)")?;
    if count == 0 {
        return Err("a count of 0 admits nothing");
    }

    let period = period.trim_ascii();
    let digits = period.bytes().take_while(u8::is_ascii_digit).count();
    let (multiple, rest) = period.split_at(digits);
    let multiple: u64 = if multiple.is_empty() {
        1
    } else {
        // Longer than any u64: a period far beyond the limit below.
        multiple
            .parse()
            .map_err(|_| "the period is too long (at most 4294967295 seconds)")?
    };
    if multiple == 0 {
        return Err("a period of 0 is not a period");
    }
    let unit = if digits > 0 {
        let rest = rest.trim_ascii_start();
        rest.strip_prefix('-').unwrap_or(rest)
    } else {
        rest
    };
    let unit_secs = unit_seconds(unit)?;
    let period_secs = multiple
        .checked_mul(unit_secs)
        .filter(|&secs| secs <= u64::from(u32::MAX))
        .ok_or("the period is too long (at most 4294967295 seconds)")?;
    Ok(ParsedRate {
        count,
        multiple,
        unit_secs,
        period_secs,
    })
}

/// Seconds in `unit`, read from its first letter.
fn unit_seconds(unit: &str) -> Result<u64, &'static str> {
    const UNKNOWN: &str = "the unit is not one of second, minute, hour, day (or s, m, h, d)";
    let first = *unit
        .as_bytes()
        .first()
        .ok_or("the period has no unit (second, minute, hour, day, or s, m, h, d)")?;
    if !unit.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(UNKNOWN);
    }
    if unit.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("the unit must be lower case (`minute`, `m`)");
    }
    if unit.starts_with("mo") {
        return Err("months are not a throttle period (count in days: `10/30d`)");
    }
    if unit.starts_with("ms") || unit.starts_with("mil") {
        return Err(
            "milliseconds are not a throttle period (the shortest unit is the second: `10/s`)",
        );
    }
    match first {
        b's' => Ok(1),
        b'm' => Ok(60),
        b'h' => Ok(3_600),
        b'd' => Ok(86_400),
        _ => Err(UNKNOWN),
    }
}

/// The whole error message for `input` and the `reason` [`parse`] gave: it quotes the
/// rate and says what to write.
pub fn message(input: &str, reason: &str) -> String {
    format!("invalid throttle rate `{input}`: {reason}; {EXPECTED}")
}

/// One row of the shared table of spellings (`grammar_table.rs`), which the tests of
/// both crates run: the rate, then its count and period in seconds, or a fragment of the
/// error's reason.
#[cfg(test)]
pub type TableRow = (&'static str, Result<(u32, u64), &'static str>);
