//! [`Rate`]: how many requests per period, written as DRF writes it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A throttle rate: at most [`count`](Rate::count) requests in any trailing
/// [`period`](Rate::period).
///
/// Parsed from DRF's notation: `"10/second"`, `"10/minute"`, `"100/hour"`, `"1000/day"`.
/// The first letter of the unit suffices (`"10/m"`), the plural is accepted
/// (`"10/minutes"`), and a multiple of the unit may precede it (`"10/5m"`: ten requests
/// per five minutes, `"2/30s"`). Whitespace around the parts is ignored. A bad rate is a
/// [`ParseRateError`] that quotes it.
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
#[error("invalid throttle rate `{input}`: {reason}; write `<count>/<period>`, e.g. `10/minute`, `100/hour`, `1000/day`, `10/m` or `10/5m`")]
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
        let err = |reason| ParseRateError {
            input: input.to_owned(),
            reason,
        };
        let (count, period) = input
            .split_once('/')
            .ok_or_else(|| err("there is no `/` between the count and the period"))?;
        let count = count.trim();
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("the count is not a whole number"));
        }
        let count: u32 = count.parse().map_err(|_| err("the count is too large"))?;
        if count == 0 {
            return Err(err("a count of 0 admits nothing"));
        }
        let period = period.trim();
        let digits = period.bytes().take_while(u8::is_ascii_digit).count();
        let (multiple, unit) = period.split_at(digits);
        let multiple: u64 = if multiple.is_empty() {
            1
        } else {
            multiple
                .parse()
                .map_err(|_| err("the multiple of the unit is too large"))?
        };
        if multiple == 0 {
            return Err(err("a period of 0 is not a period"));
        }
        let unit_secs = unit_seconds(unit.trim_start()).ok_or_else(|| {
            err("the unit is not one of second, minute, hour, day (or s, m, h, d)")
        })?;
        let period_secs = multiple
            .checked_mul(unit_secs)
            .ok_or_else(|| err("the period is too long"))?;
        Ok(Rate { count, period_secs })
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

/// Seconds in one `unit`: the full word, its plural, or its first letter.
fn unit_seconds(unit: &str) -> Option<u64> {
    let secs = match unit.as_bytes().first()? {
        b's' => 1,
        b'm' => 60,
        b'h' => 3_600,
        b'd' => 86_400,
        _ => return None,
    };
    let word = match secs {
        1 => "second",
        60 => "minute",
        3_600 => "hour",
        _ => "day",
    };
    let singular = unit
        .strip_suffix('s')
        .filter(|_| unit.len() > 1)
        .unwrap_or(unit);
    let accepted = unit.len() == 1
        || singular == word
        || (secs == 1 && matches!(unit, "sec" | "secs"))
        || (secs == 60 && matches!(unit, "min" | "mins"));
    accepted.then_some(secs)
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

    fn ok(s: &str) -> (u32, u64) {
        let rate = Rate::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        (rate.count(), rate.period_secs())
    }

    #[test]
    fn drf_units_and_first_letters() {
        assert_eq!(ok("10/second"), (10, 1));
        assert_eq!(ok("10/minute"), (10, 60));
        assert_eq!(ok("100/hour"), (100, 3_600));
        assert_eq!(ok("1000/day"), (1_000, 86_400));
        assert_eq!(ok("10/s"), (10, 1));
        assert_eq!(ok("10/m"), (10, 60));
        assert_eq!(ok("10/h"), (10, 3_600));
        assert_eq!(ok("10/d"), (10, 86_400));
        assert_eq!(ok("10/minutes"), (10, 60));
        assert_eq!(ok("10/min"), (10, 60));
        assert_eq!(ok("10/sec"), (10, 1));
        assert_eq!(ok(" 10 / minute "), (10, 60));
    }

    #[test]
    fn multiples() {
        assert_eq!(ok("10/5m"), (10, 300));
        assert_eq!(ok("2/2s"), (2, 2));
        assert_eq!(ok("5/12hours"), (5, 43_200));
        assert_eq!(ok("1/7d"), (1, 604_800));
        assert_eq!(ok("3/10 seconds"), (3, 10));
    }

    #[test]
    fn errors_quote_the_rate_and_say_why() {
        for (bad, why) in [
            ("10", "no `/`"),
            ("ten/minute", "not a whole number"),
            ("-1/minute", "not a whole number"),
            ("/minute", "not a whole number"),
            ("0/minute", "admits nothing"),
            ("10/fortnight", "unit"),
            ("10/", "unit"),
            ("10/0m", "period of 0"),
            ("10/mx", "unit"),
            ("10/5", "unit"),
            ("99999999999/m", "too large"),
            ("1/99999999999999999d", "too long"),
        ] {
            let err = Rate::parse(bad).expect_err(bad);
            let msg = err.to_string();
            assert!(msg.contains(&format!("`{bad}`")), "{msg}");
            assert!(msg.contains(why), "{bad}: {msg}");
            assert!(msg.contains("10/minute"), "{msg}");
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
