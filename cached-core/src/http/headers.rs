//! The headers the HTTP cache adds: `Cache-Status` (RFC 9211), `Age`, `Cache-Control`,
//! `Expires` and `ETag`, and the `If-None-Match` check.

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::IF_NONE_MATCH;
use http::{HeaderMap, HeaderValue};

use crate::key::hex_digest;

use super::NotStored;

/// The name of the `Cache-Status` header (RFC 9211).
pub const CACHE_STATUS: &str = "cache-status";

/// `Cache-Status` of a hit, with the seconds the entry stays fresh.
///
/// ```
/// use cached_core::http::headers::hit;
/// assert_eq!(hit(42), "cached-kit; hit; ttl=42");
/// ```
pub fn hit(ttl_secs: u64) -> HeaderValue {
    ascii(format!("cached-kit; hit; ttl={ttl_secs}"))
}

/// `Cache-Status` of a miss whose response was stored.
///
/// ```
/// assert_eq!(cached_core::http::headers::stored(), "cached-kit; fwd=miss; stored");
/// ```
pub fn stored() -> HeaderValue {
    HeaderValue::from_static("cached-kit; fwd=miss; stored")
}

/// `Cache-Status` of a response that was not stored (or a request that bypassed the
/// cache), with the reason as `detail`.
///
/// ```
/// use cached_core::http::{headers::not_stored, NotStored};
/// assert_eq!(not_stored(NotStored::Method), "cached-kit; fwd=bypass; detail=method");
/// assert_eq!(not_stored(NotStored::Status), "cached-kit; fwd=miss; detail=status");
/// ```
pub fn not_stored(reason: NotStored) -> HeaderValue {
    let fwd = match reason {
        NotStored::Method => "bypass",
        _ => "miss",
    };
    ascii(format!("cached-kit; fwd={fwd}; detail={}", reason.detail()))
}

/// Adds this cache's `Cache-Status` entry after any a cache nearer the origin set
/// (RFC 9211 §2: the list runs from the origin towards the client).
///
/// ```
/// use cached_core::http::headers::{add_cache_status, stored};
/// use http::{HeaderMap, HeaderValue};
/// let mut h = HeaderMap::new();
/// h.insert("cache-status", HeaderValue::from_static("origin-cache; hit"));
/// add_cache_status(&mut h, stored());
/// assert_eq!(h["cache-status"], "origin-cache; hit, cached-kit; fwd=miss; stored");
/// ```
pub fn add_cache_status(headers: &mut HeaderMap, ours: HeaderValue) {
    let earlier: Vec<&str> = headers
        .get_all(CACHE_STATUS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let value = match earlier.is_empty() {
        true => ours,
        false => match ours.to_str() {
            Ok(ours) => ascii(format!("{}, {ours}", earlier.join(", "))),
            Err(_) => ours,
        },
    };
    headers.insert(CACHE_STATUS, value);
}

/// A header value from text this module built from visible ASCII only.
pub(crate) fn ascii(text: String) -> HeaderValue {
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static("cached-kit"))
}

/// A strong `ETag` for `body`: the first 128 bits of its SHA-256, quoted.
///
/// ```
/// let tag = cached_core::http::headers::strong_etag(b"hello");
/// assert_eq!(tag.len(), 34);
/// assert!(tag.to_str().unwrap().starts_with('"'));
/// ```
pub fn strong_etag(body: &[u8]) -> HeaderValue {
    let quoted = format!("\"{}\"", hex_digest(body, 16));
    HeaderValue::try_from(quoted).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// Whether the request's `If-None-Match` matches `etag` (weak comparison, RFC 9110
/// §13.1.2; `*` matches anything).
///
/// ```
/// use cached_core::http::headers::if_none_match;
/// use http::{HeaderMap, HeaderValue};
/// let mut req = HeaderMap::new();
/// req.insert("if-none-match", HeaderValue::from_static("\"a\", W/\"b\""));
/// assert!(if_none_match(&req, &HeaderValue::from_static("\"b\"")));
/// assert!(!if_none_match(&req, &HeaderValue::from_static("\"c\"")));
/// ```
pub fn if_none_match(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    let etag = opaque(etag);
    request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || opaque(candidate) == etag)
}

fn opaque(tag: &str) -> &str {
    tag.trim().strip_prefix("W/").unwrap_or(tag.trim())
}

/// An HTTP date (RFC 9110 IMF-fixdate), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use cached_core::http::headers::http_date;
/// let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
/// assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
/// ```
pub fn http_date(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31): Howard Hinnant's algorithm.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(http_date(leap), "Tue, 29 Feb 2000 00:00:00 GMT");
        let t = UNIX_EPOCH + Duration::from_secs(1_798_761_599); // 2026-12-31 23:59:59
        assert_eq!(http_date(t), "Thu, 31 Dec 2026 23:59:59 GMT");
    }

    #[test]
    fn if_none_match_star_and_weak() {
        let tag = HeaderValue::from_static("\"x\"");
        let mut req = HeaderMap::new();
        assert!(!if_none_match(&req, &tag));
        req.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match(&req, &tag));
        req.insert(IF_NONE_MATCH, HeaderValue::from_static("W/\"x\""));
        assert!(if_none_match(&req, &tag));
        req.insert(IF_NONE_MATCH, HeaderValue::from_static("\"xy\""));
        assert!(!if_none_match(&req, &tag));
    }
}
