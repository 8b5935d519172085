//! [`CacheUrl`]: a cache (or throttle store) URL, parsed once, whose parameters each
//! backend consumes.
//!
//! `scheme://location?name=value&...`: the scheme picks the backend, the location is
//! what that backend makes of it (host, port, database; nothing for `memory://`), and
//! every parameter must be consumed by someone, so a misspelt parameter is an error
//! that names it rather than a setting silently ignored. Values are percent-decoded
//! (with the `percent-encoding` crate), `+` standing for a space as in HTML forms.

use percent_encoding::percent_decode_str;

use crate::CacheError;

/// A parsed cache URL: scheme, the part after `://`, and the query parameters that
/// the backend has not consumed yet.
///
/// ```
/// use cached_backend::CacheUrl;
/// let mut url = CacheUrl::parse("CACHE_URL", "redis://localhost:6379/0?key_prefix=shop").unwrap();
/// assert_eq!(url.scheme(), "redis");
/// assert_eq!(url.location(), "localhost:6379/0");
/// assert_eq!(url.take("key_prefix").as_deref(), Some("shop"));
/// ```
#[derive(Debug, Clone)]
pub struct CacheUrl {
    origin: String,
    scheme: String,
    location: String,
    params: Vec<(String, String)>,
}

impl CacheUrl {
    /// Parses `url`; `origin` names where it came from, for error messages.
    pub fn parse(origin: &str, url: &str) -> Result<CacheUrl, CacheError> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(CacheError::config(
                origin,
                format!("`{url}` is not a URL: expected `scheme://...`, e.g. `memory://` or `redis://localhost:6379/0`"),
            ));
        };
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return Err(CacheError::config(
                origin,
                format!("`{scheme}` in `{url}` is not a valid URL scheme"),
            ));
        }
        let (location, query) = match rest.split_once('?') {
            Some((l, q)) => (l, Some(q)),
            None => (rest, None),
        };
        let mut params = Vec::new();
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(origin, k)?;
            if params.iter().any(|(existing, _)| *existing == key) {
                return Err(CacheError::config(
                    origin,
                    format!("the parameter `{key}` is given twice in `{url}`"),
                ));
            }
            params.push((key, percent_decode(origin, v)?));
        }
        Ok(CacheUrl {
            origin: origin.to_owned(),
            scheme: scheme.to_ascii_lowercase(),
            location: location.to_owned(),
            params,
        })
    }

    /// Where the URL came from (`CACHE_URL`, `CACHE_URL_SHARED`, `Cache::from_url`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The scheme, lower-cased: `memory`, `redis`, ...
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Everything between `://` and `?`: host, port, path, credentials.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Removes and returns the query parameter `name`.
    pub fn take(&mut self, name: &str) -> Option<String> {
        let i = self.params.iter().position(|(k, _)| k == name)?;
        Some(self.params.remove(i).1)
    }

    /// Removes `name` and parses it, with an error naming the parameter.
    pub fn take_parsed<T: std::str::FromStr>(
        &mut self,
        name: &str,
        expected: &str,
    ) -> Result<Option<T>, CacheError> {
        match self.take(name) {
            None => Ok(None),
            Some(raw) => raw.parse().map(Some).map_err(|_| {
                CacheError::config(
                    &self.origin,
                    format!("`{name}={raw}` is not valid: expected {expected}"),
                )
            }),
        }
    }

    /// The parameters not consumed yet.
    pub fn remaining(&self) -> &[(String, String)] {
        &self.params
    }

    /// An error if parameters remain that nobody understood.
    pub fn finish(&self, known: &str) -> Result<(), CacheError> {
        match self.params.first() {
            None => Ok(()),
            Some((k, _)) => Err(CacheError::config(
                &self.origin,
                format!(
                    "unknown parameter `{k}` for a {}:// cache; known parameters: {known}",
                    self.scheme
                ),
            )),
        }
    }
}

fn percent_decode(origin: &str, s: &str) -> Result<String, CacheError> {
    // `+` is a space in query strings (application/x-www-form-urlencoded).
    let spaced = s.replace('+', " ");
    if let Some(i) = bad_escape(&spaced) {
        return Err(CacheError::config(
            origin,
            format!("bad percent-escape at byte {i} of `{s}`: write `%` as `%25`"),
        ));
    }
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| CacheError::config(origin, format!("`{s}` is not UTF-8 once decoded")))
}

/// Where a `%` is not followed by two hex digits (`percent-encoding` passes such a `%`
/// through unchanged; a cache URL treats it as the mistake it almost always is).
fn bad_escape(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    bytes.iter().enumerate().find_map(|(i, &b)| {
        let ok = b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit));
        (!ok).then_some(i)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parameters_are_decoded_and_consumed() {
        let mut url =
            CacheUrl::parse("T", "redis://h:1/0?key_prefix=a%20b+c&x=%E2%9C%93").expect("valid");
        assert_eq!(url.scheme(), "redis");
        assert_eq!(url.location(), "h:1/0");
        assert_eq!(url.take("key_prefix").as_deref(), Some("a b c"));
        assert_eq!(url.take("x").as_deref(), Some("\u{2713}"));
        assert!(url.finish("none").is_ok());
    }

    #[test]
    fn malformed_urls_name_the_problem() {
        let err = |u: &str| CacheUrl::parse("CACHE_URL", u).unwrap_err().to_string();
        assert!(err("localhost:6379").contains("not a URL"));
        assert!(err("memory://?a=%zz").contains("percent-escape"));
        assert!(err("memory://?a=%4").contains("percent-escape"));
        assert!(err("memory://?a=%ff").contains("not UTF-8"));
        assert!(err("memory://?a=1&a=2").contains("given twice"));
        assert!(err("me mory://").contains("not a valid URL scheme"));
    }

    proptest! {
        /// Whatever the text, parsing returns (never panics), and what it accepts keeps
        /// its parameters.
        #[test]
        fn parsing_never_panics(text in ".{0,64}") {
            let _ = CacheUrl::parse("P", &text);
        }

        #[test]
        fn encoded_values_round_trip(value in "\\PC{0,16}") {
            let encoded: String = percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC).to_string();
            let mut url = CacheUrl::parse("P", &format!("memory://?v={encoded}")).expect("valid");
            prop_assert_eq!(url.take("v"), Some(value));
        }
    }
}
