//! [`ThrottleRates`]: DRF's `DEFAULT_THROTTLE_RATES`, from `THROTTLE_RATES` or code.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use super::{Rate, Throttle};
use crate::CacheError;

/// The environment variable holding the configured rates.
pub const THROTTLE_RATES: &str = "THROTTLE_RATES";

/// Rates by scope name, for throttles written without a rate (DRF's
/// `DEFAULT_THROTTLE_RATES`): `#[throttle(scope = "uploads")]`,
/// [`Throttle::configured`].
///
/// From the environment, `THROTTLE_RATES="anon=10/minute,user=1000/day,uploads=5/minute"`
/// (entries `scope=rate`, separated by commas, whitespace around the parts ignored,
/// scope names exact), or from code; [`set_rates`] installs them. A bad entry is a
/// [`CacheError::Config`] that quotes it.
///
/// ```
/// use cached_core::throttle::{Rate, ThrottleRates};
///
/// let rates = ThrottleRates::parse("anon=10/minute, user=1000/day,uploads=5/m")?
///     .rate("search", "30/minute")?;
/// assert_eq!(rates.get("uploads"), Some(Rate::new(5, 60)));
/// assert_eq!(rates.get("search"), Some(Rate::new(30, 60)));
/// assert_eq!(rates.get("reports"), None);
///
/// let err = ThrottleRates::parse("anon=10/minute,uploads=5/fortnight").unwrap_err();
/// assert!(err.to_string().contains("`uploads=5/fortnight`"));
/// # Ok::<(), cached_core::CacheError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ThrottleRates {
    rates: BTreeMap<String, Rate>,
}

impl fmt::Debug for ThrottleRates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.rates.iter().map(|(k, v)| (k, v.to_string())))
            .finish()
    }
}

/// Writes the rates as `THROTTLE_RATES` takes them: `anon=10/minute,user=1000/day`.
impl fmt::Display for ThrottleRates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (scope, rate)) in self.rates.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{scope}={rate}")?;
        }
        Ok(())
    }
}

impl ThrottleRates {
    /// No rates.
    pub fn new() -> ThrottleRates {
        ThrottleRates::default()
    }

    /// Parses `THROTTLE_RATES`'s notation: `scope=rate` entries separated by commas.
    /// Empty entries (a trailing comma) are ignored; an entry without `=`, with an
    /// empty scope, with a bad rate, or naming a scope twice is an error quoting it.
    pub fn parse(spec: &str) -> Result<ThrottleRates, CacheError> {
        ThrottleRates::parse_from("ThrottleRates::parse", spec)
    }

    /// The rates in the `THROTTLE_RATES` environment variable: none if it is unset,
    /// an error quoting the bad entry (and naming the variable) if it does not parse.
    ///
    /// ```
    /// let rates = cached_core::throttle::ThrottleRates::from_env()?;
    /// # let _ = rates;
    /// # Ok::<(), cached_core::CacheError>(())
    /// ```
    pub fn from_env() -> Result<ThrottleRates, CacheError> {
        match std::env::var(THROTTLE_RATES) {
            Ok(spec) => ThrottleRates::parse_from(THROTTLE_RATES, &spec),
            Err(std::env::VarError::NotPresent) => Ok(ThrottleRates::new()),
            Err(std::env::VarError::NotUnicode(_)) => Err(CacheError::config(
                THROTTLE_RATES,
                "the value is not UTF-8; write entries like `anon=10/minute,user=1000/day`",
            )),
        }
    }

    fn parse_from(origin: &str, spec: &str) -> Result<ThrottleRates, CacheError> {
        let mut rates = ThrottleRates::new();
        for entry in spec.split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let bad = |why: &dyn fmt::Display| {
                CacheError::config(
                    origin,
                    format!(
                        "entry `{entry}`: {why}; write `scope=rate` entries separated by commas, e.g. `anon=10/minute,user=1000/day,uploads=5/minute`"
                    ),
                )
            };
            let Some((scope, rate)) = entry.split_once('=') else {
                return Err(bad(&"there is no `=` between the scope and its rate"));
            };
            let scope = scope.trim();
            if scope.is_empty() {
                return Err(bad(&"the scope is empty"));
            }
            let rate = Rate::parse(rate.trim()).map_err(|e| bad(&e))?;
            if rates.rates.insert(scope.to_owned(), rate).is_some() {
                return Err(bad(&format_args!("the scope `{scope}` is given twice")));
            }
        }
        Ok(rates)
    }

    /// Adds (or replaces) the rate of `scope`, parsed from `rate`; a bad rate is an
    /// error quoting it.
    pub fn rate(self, scope: &str, rate: &str) -> Result<ThrottleRates, CacheError> {
        let parsed = Rate::parse(rate).map_err(|e| {
            CacheError::config("ThrottleRates::rate", format!("scope `{scope}`: {e}"))
        })?;
        Ok(self.with(scope, parsed))
    }

    /// Adds (or replaces) the rate of `scope`.
    ///
    /// ```
    /// use cached_core::throttle::{Rate, ThrottleRates};
    /// let rates = ThrottleRates::new().with("uploads", Rate::new(5, 60));
    /// assert_eq!(rates.to_string(), "uploads=5/minute");
    /// ```
    pub fn with(mut self, scope: impl Into<String>, rate: Rate) -> ThrottleRates {
        self.rates.insert(scope.into(), rate);
        self
    }

    /// The rate of `scope`.
    pub fn get(&self, scope: &str) -> Option<Rate> {
        self.rates.get(scope).copied()
    }

    /// Every scope and its rate, by scope name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Rate)> + '_ {
        self.rates
            .iter()
            .map(|(scope, rate)| (scope.as_str(), *rate))
    }

    /// Whether no scope has a rate.
    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }
}

/// The installed rates; `None` until set or first read (then `THROTTLE_RATES`).
static RATES: RwLock<Option<Result<Arc<ThrottleRates>, CacheError>>> = RwLock::new(None);

/// Installs the rates of every throttle written without one, replacing any earlier
/// rates (`THROTTLE_RATES` included). Call it at start-up, before the first request.
///
/// ```
/// use cached_core::throttle::{set_rates, ThrottleRates};
/// // THROTTLE_RATES, and one scope more from code.
/// let rates = ThrottleRates::from_env()?.rate("uploads", "5/minute")?;
/// set_rates(rates);
/// assert_eq!(cached_core::throttle::rates()?.get("uploads").unwrap().count(), 5);
/// # Ok::<(), cached_core::CacheError>(())
/// ```
pub fn set_rates(rates: ThrottleRates) {
    *RATES.write().unwrap_or_else(PoisonError::into_inner) = Some(Ok(Arc::new(rates)));
}

/// The rates throttles without a rate use: those given to [`set_rates`], else those of
/// `THROTTLE_RATES` (read once, on first use). An error if `THROTTLE_RATES` does not
/// parse (and nothing was set in code).
pub fn rates() -> Result<Arc<ThrottleRates>, CacheError> {
    if let Some(rates) = &*RATES.read().unwrap_or_else(PoisonError::into_inner) {
        return rates.clone();
    }
    let mut slot = RATES.write().unwrap_or_else(PoisonError::into_inner);
    slot.get_or_insert_with(|| ThrottleRates::from_env().map(Arc::new))
        .clone()
}

/// Checks at start-up that every throttle written without a rate has one in the
/// configured [`rates`]: an error naming every scope that has none, or quoting a bad
/// `THROTTLE_RATES` entry (checked even when no throttle needs it). Give it the throttles of your handlers
/// ([`throttles_of`](super::throttles_of)) and layers
/// ([`ThrottleLayer::throttles`](super::ThrottleLayer::throttles)).
///
/// Without this call, a throttle whose scope has no rate is found on the first request
/// that reaches it, which is then refused with `500 Internal Server Error` (fail closed:
/// never unthrottled) and logged at ERROR level naming the scope.
///
/// ```
/// use cached_core::throttle::{check_rates, set_rates, Scope, Throttle, ThrottleRates};
///
/// const UPLOADS: Throttle = Throttle::configured(Scope::from_static("uploads"));
/// const REPORTS: Throttle = Throttle::configured(Scope::from_static("reports"));
/// set_rates(ThrottleRates::new().rate("uploads", "5/minute")?);
/// assert!(check_rates(&[&[UPLOADS]]).is_ok());
/// let err = check_rates(&[&[UPLOADS, REPORTS]]).unwrap_err();
/// assert!(err.to_string().contains("`reports`"));
/// # Ok::<(), cached_core::CacheError>(())
/// ```
pub fn check_rates(throttles: &[&[Throttle]]) -> Result<(), CacheError> {
    // Read even when no throttle needs it: a bad THROTTLE_RATES is an error at start-up.
    let rates = rates()?;
    let mut missing: Vec<&str> = throttles
        .iter()
        .flat_map(|group| group.iter())
        .filter(|t| t.rate().is_none())
        .map(|t| t.scope().name())
        .filter(|scope| rates.get(scope).is_none())
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    Err(missing_rates(&missing))
}

/// The error for scopes without a configured rate.
pub(crate) fn missing_rates(scopes: &[&str]) -> CacheError {
    let names: Vec<String> = scopes.iter().map(|s| format!("`{s}`")).collect();
    let example = scopes.first().copied().unwrap_or("uploads");
    CacheError::config(
        THROTTLE_RATES,
        format!(
            "no rate for the throttle scope{} {}, which a throttle without `rate` uses: add `{example}=10/minute` (your rate) to THROTTLE_RATES, or install rates in code with `set_rates(ThrottleRates::new().rate(\"{example}\", \"10/minute\")?)`",
            if scopes.len() == 1 { "" } else { "s" },
            names.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn entries_parse_with_spaces_and_drf_spellings() {
        let rates =
            ThrottleRates::parse(" anon = 10/minute ,user=1000/day,,uploads=5/m,burst-y=1/2-sec,")
                .expect("rates");
        assert_eq!(
            rates.iter().collect::<Vec<_>>(),
            [
                ("anon", Rate::new(10, 60)),
                ("burst-y", Rate::new(1, 2)),
                ("uploads", Rate::new(5, 60)),
                ("user", Rate::new(1000, 86_400)),
            ]
        );
        assert_eq!(
            ThrottleRates::parse(&rates.to_string()).expect("again"),
            rates
        );
        assert!(ThrottleRates::parse("").expect("empty").is_empty());
        assert!(ThrottleRates::parse(" , ").expect("empty").is_empty());
    }

    #[test]
    fn bad_entries_are_errors_quoting_them() {
        for (spec, entry, why) in [
            ("anon=10/minute,uploads", "uploads", "no `=`"),
            ("=10/minute", "=10/minute", "scope is empty"),
            ("anon=10/fortnight", "anon=10/fortnight", "`10/fortnight`"),
            ("anon=", "anon=", "invalid throttle rate ``"),
            ("anon=10/m,anon=5/m", "anon=5/m", "given twice"),
            (
                "anon=10/minute;user=5/m",
                "anon=10/minute;user=5/m",
                "invalid throttle rate",
            ),
        ] {
            let err = ThrottleRates::parse(spec).expect_err(spec);
            let msg = err.to_string();
            assert!(matches!(err, CacheError::Config { .. }), "{spec}: {msg}");
            assert!(msg.contains(&format!("entry `{entry}`")), "{spec}: {msg}");
            assert!(msg.contains(why), "{spec}: {msg}");
            assert!(msg.contains("e.g. `anon=10/minute,user=1000/day"), "{msg}");
        }
        let err = ThrottleRates::new()
            .rate("uploads", "5/ms")
            .expect_err("ms");
        assert!(err.to_string().contains("scope `uploads`"), "{err}");
        assert!(err.to_string().contains("`5/ms`"), "{err}");
    }

    #[test]
    fn missing_scopes_are_all_named_once() {
        let msg = missing_rates(&["reports", "uploads"]).to_string();
        assert!(msg.contains("THROTTLE_RATES"), "{msg}");
        assert!(msg.contains("scopes `reports`, `uploads`"), "{msg}");
        assert!(msg.contains("`reports=10/minute`"), "{msg}");
        let msg = missing_rates(&["uploads"]).to_string();
        assert!(msg.contains("scope `uploads`,"), "{msg}");
    }

    proptest! {
        /// Any string parses or is an error quoting an entry of it; never a panic.
        #[test]
        fn any_spec_parses_or_quotes_the_bad_entry(spec in "\\PC{0,200}") {
            if let Err(err) = ThrottleRates::parse(&spec) {
                let msg = err.to_string();
                let quoted = spec.split(',').map(str::trim).any(|e| !e.is_empty() && msg.contains(&format!("entry `{e}`")));
                prop_assert!(quoted, "{}", msg);
            }
        }

        #[test]
        fn rate_shaped_specs_never_panic(
            spec in "([a-z_ -]{0,6}=?[ 0-9]{0,4}/?[0-9]{0,3}[smhd]{0,2},?){0,30}"
        ) {
            let _ = ThrottleRates::parse(&spec);
        }

        #[test]
        fn many_entries_round_trip(n in 0usize..2_000) {
            let spec: Vec<String> = (0..n).map(|i| format!("scope{i}={}/minute", i + 1)).collect();
            let rates = ThrottleRates::parse(&spec.join(",")).expect("valid");
            prop_assert_eq!(rates.iter().count(), n);
        }
    }
}
