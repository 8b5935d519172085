//! [`Rate`]: how many requests per period, written as DRF writes it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

// Shared with `cached-macros`, which compiles this same file into `#[throttle]`.
mod grammar;

/// A throttle rate: at most [`count`](Rate::count) requests in any trailing
/// [`period`](Rate::period).
///
/// Parsed from DRF's notation: `"10/second"`, `"10/minute"`, `"100/hour"`, `"1000/day"`.
/// As in DRF, the unit is read from its first letter (`"10/m"`, `"100/hr"`, `"5/sec"`,
/// `"10/minutes"`), and a multiple of the unit may precede it (`"10/5m"`: ten requests
/// per five minutes, `"2/30s"`, DRF's `"1/2-sec"`). Whitespace around the parts is
/// ignored. A bad rate is a [`ParseRateError`] that quotes it and says what to write:
/// a count of 0, an upper-case unit, a unit naming months or milliseconds, a period over
/// `u32::MAX` seconds. `#[throttle(rate = "...")]` checks its rate at compile time with
/// this same grammar.
///
/// ```
/// use std::time::Duration;
/// use cached_backend::Rate;
///
/// let rate: Rate = "100/hour".parse()?;
/// assert_eq!(rate.count(), 100);
/// assert_eq!(rate.period(), Duration::from_secs(3600));
/// assert_eq!(Rate::parse("10/5m")?.period(), Duration::from_secs(300));
///
/// let err = Rate::parse("10/fortnight").unwrap_err();
/// assert!(err.to_string().contains("`10/fortnight`"));
/// # Ok::<(), cached_backend::ParseRateError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    count: u32,
    period_secs: u64,
}

/// A rate that could not be parsed; its message quotes the rate and says what to write.
///
/// ```
/// use cached_backend::Rate;
/// let err = Rate::parse("ten/minute").unwrap_err();
/// assert_eq!(err.input(), "ten/minute");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", grammar::message(input, reason))]
pub struct ParseRateError {
    input: String,
    reason: &'static str,
}

impl ParseRateError {
    /// The rate as it was written.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl Rate {
    /// `count` requests per `period_secs` seconds.
    ///
    /// # Panics
    ///
    /// If `count` or `period_secs` is zero (in a `const`, a compile error). Use
    /// [`Rate::parse`] for rates that come from outside the program.
    ///
    /// ```
    /// use cached_backend::Rate;
    /// const BURST: Rate = Rate::new(10, 60);
    /// assert_eq!(BURST, Rate::parse("10/minute").unwrap());
    /// ```
    pub const fn new(count: u32, period_secs: u64) -> Rate {
        assert!(count > 0, "a throttle rate admits at least one request");
        assert!(period_secs > 0, "a throttle period is at least one second");
        Rate { count, period_secs }
    }

    /// Parses DRF's notation; see the [type docs](Rate).
    pub fn parse(input: &str) -> Result<Rate, ParseRateError> {
        match grammar::parse(input) {
            Ok(parsed) => Ok(Rate {
                count: parsed.count,
                period_secs: parsed.period_secs,
            }),
            Err(reason) => Err(ParseRateError {
                input: input.to_owned(),
                reason,
            }),
        }
    }

    /// How many requests are admitted per period.
    pub const fn count(&self) -> u32 {
        self.count
    }

    /// The length of the trailing window.
    pub const fn period(&self) -> Duration {
        Duration::from_secs(self.period_secs)
    }

    /// The period in whole seconds.
    pub const fn period_secs(&self) -> u64 {
        self.period_secs
    }
}

impl FromStr for Rate {
    type Err = ParseRateError;

    fn from_str(s: &str) -> Result<Rate, ParseRateError> {
        Rate::parse(s)
    }
}

impl TryFrom<&str> for Rate {
    type Error = ParseRateError;

    fn try_from(s: &str) -> Result<Rate, ParseRateError> {
        Rate::parse(s)
    }
}

/// Writes the rate back in DRF's notation: `10/minute`, or `10/300s` for a multiple.
impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period_secs {
            1 => "second",
            60 => "minute",
            3_600 => "hour",
            86_400 => "day",
            secs => return write!(f, "{}/{secs}s", self.count),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Serialized as its [`Display`](fmt::Display) string, so rates can live in
/// configuration files as DRF keeps them in `DEFAULT_THROTTLE_RATES`.
///
/// ```
/// use cached_backend::Rate;
/// use serde::de::{value::{Error, StrDeserializer}, Deserialize, IntoDeserializer};
///
/// let from_config: StrDeserializer<'_, Error> = "10/m".into_deserializer();
/// assert_eq!(Rate::deserialize(from_config), Ok(Rate::new(10, 60)));
/// let bad: StrDeserializer<'_, Error> = "10/fortnight".into_deserializer();
/// assert!(Rate::deserialize(bad).unwrap_err().to_string().contains("`10/fortnight`"));
/// ```
impl<'de> serde::Deserialize<'de> for Rate {
    // A `String`: rates are short, and this accepts every source (escaped JSON too).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Rate, D::Error> {
        let s = String::deserialize(deserializer)?;
        Rate::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared table (also run by `#[throttle]`'s tests), through `Rate::parse`.
    #[test]
    fn the_shared_table_of_spellings() {
        let table: &[grammar::TableRow] = include!("rate/grammar_table.rs");
        for &(input, expected) in table {
            match (Rate::parse(input), expected) {
                (Ok(rate), Ok(want)) => {
                    assert_eq!((rate.count(), rate.period_secs()), want, "{input:?}")
                }
                (Err(err), Err(why)) => {
                    let msg = err.to_string();
                    assert_eq!(err.input(), input);
                    assert!(msg.contains(&format!("`{input}`")), "{msg}");
                    assert!(msg.contains(why), "{input:?}: {msg}");
                    assert!(msg.contains("e.g. `10/minute`"), "{msg}");
                }
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "10/second",
            "10/minute",
            "100/hour",
            "1000/day",
            "2/2s",
            "10/5m",
        ] {
            let rate = Rate::parse(s).expect(s);
            assert_eq!(Rate::parse(&rate.to_string()), Ok(rate));
        }
        assert_eq!(
            Rate::parse("10/m").map(|r| r.to_string()).as_deref(),
            Ok("10/minute")
        );
        assert_eq!(
            Rate::parse("10/5m").map(|r| r.to_string()).as_deref(),
            Ok("10/300s")
        );
    }

    #[test]
    fn const_constructor_matches_parse() {
        const R: Rate = Rate::new(5, 60);
        assert_eq!(Ok(R), Rate::parse("5/minute"));
    }
}
