//! The headers the HTTP cache writes: `Cache-Status` (RFC 9211), `Age`, `Cache-Control`,
//! `Expires`, `ETag` and `Vary`, and the `If-None-Match` check.
//!
//! What a stored response says about its freshness is decided once, when it is stored
//! ([`patch`]), and kept in the entry; a hit adds only `Age` and `Cache-Status`.
//!
//! Dates are written with `httpdate`. `If-None-Match` is matched here (a split on commas
//! and the weak comparison of RFC 9110 §13.1.2) because the `headers` crate, whose
//! `IfNoneMatch` does the same, is not in this workspace's dependency tree, and a whole
//! crate for ten lines would not be lighter.

use std::time::{Duration, UNIX_EPOCH};

use http::header::{CACHE_CONTROL, ETAG, EXPIRES, IF_NONE_MATCH, VARY};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::cacheable::{delta_seconds, Directive};
use super::NotStored;
use crate::key::hex_digest;

/// The name of the `Cache-Status` header (RFC 9211).
pub(crate) const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The largest `max-age` sent, and the furthest `Expires`: 2^31 seconds (RFC 9111
/// §1.2.2), about 68 years.
const LONGEST: Duration = Duration::from_secs(1 << 31);

/// `Cache-Status` of a hit, with the seconds the entry stays fresh, after the entries
/// of caches nearer the origin (`upstream`, empty when none).
pub(crate) fn hit(upstream: &str, ttl_secs: u64) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    let ttl = digits.format(ttl_secs);
    let ours = "cached-kit; hit; ttl=";
    let mut out = String::with_capacity(upstream.len() + 2 + ours.len() + ttl.len());
    if !upstream.is_empty() {
        out.push_str(upstream);
        out.push_str(", ");
    }
    out.push_str(ours);
    out.push_str(ttl);
    ascii(out)
}

/// Adds `; detail=near` to this cache's `Cache-Status` entry (the last one) of a hit
/// served from a near tier, when `near`.
pub(crate) fn detail_near(headers: &mut HeaderMap, near: bool) {
    if !near {
        return;
    }
    if let Some(status) = headers.get(CACHE_STATUS).and_then(|v| v.to_str().ok()) {
        let marked = ascii(format!("{status}; detail=near"));
        headers.insert(CACHE_STATUS, marked);
    }
}

/// `Cache-Status` of a stale hit: served past its lifetime, within the view's stale
/// window, while one refresh runs in the background (SPEC §12).
pub(crate) fn stale_hit(upstream: &str) -> HeaderValue {
    let ours = "cached-kit; hit; ttl=0; detail=stale";
    if upstream.is_empty() {
        return HeaderValue::from_static(ours);
    }
    ascii(format!("{upstream}, {ours}"))
}

/// `Cache-Status` of a miss whose response was stored.
pub(crate) fn stored() -> HeaderValue {
    HeaderValue::from_static("cached-kit; fwd=miss; stored")
}

/// `Cache-Status` of a response that was not stored (or a request that bypassed the
/// cache), with the reason as `detail`.
pub(crate) fn not_stored(reason: NotStored) -> HeaderValue {
    let fwd = match reason.is_bypass() {
        true => "bypass",
        false => "miss",
    };
    ascii(format!("cached-kit; fwd={fwd}; detail={}", reason.detail()))
}

/// The `Cache-Status` entries of caches nearer the origin, joined (RFC 9211 §2: the list
/// runs from the origin towards the client); unreadable ones are dropped.
pub(crate) fn upstream(headers: &HeaderMap) -> String {
    let mut out = String::new();
    for v in headers.get_all(CACHE_STATUS) {
        if let Ok(v) = v.to_str() {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(v);
        }
    }
    out
}

/// Adds this cache's `Cache-Status` entry after any a cache nearer the origin set.
pub(crate) fn add_cache_status(headers: &mut HeaderMap, ours: HeaderValue) {
    if !headers.contains_key(CACHE_STATUS) {
        headers.insert(CACHE_STATUS, ours);
        return;
    }
    let mut joined = upstream(headers);
    if let Ok(ours) = ours.to_str() {
        if !joined.is_empty() {
            joined.push_str(", ");
        }
        joined.push_str(ours);
    }
    headers.insert(CACHE_STATUS, ascii(joined));
}

/// A header value from text built from visible ASCII only.
pub(crate) fn ascii(text: String) -> HeaderValue {
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static("cached-kit"))
}

/// A strong `ETag` for `body`: the first 128 bits of its SHA-256, quoted.
pub(crate) fn strong_etag(body: &[u8]) -> HeaderValue {
    ascii(format!("\"{}\"", hex_digest(body, 16)))
}

/// Whether the request's `If-None-Match` matches `etag` (weak comparison, RFC 9110
/// §13.1.2; `*` matches anything).
pub(crate) fn if_none_match(request: &HeaderMap, etag: &HeaderValue) -> bool {
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

/// An HTTP date (IMF-fixdate) `ms` milliseconds after the Unix epoch, kept within what
/// the format can write.
pub(crate) fn http_date(ms: u64) -> HeaderValue {
    // Before 10000-01-01, the last instant `httpdate` writes.
    const LAST: u64 = 253_402_300_799;
    let at = UNIX_EPOCH + Duration::from_secs((ms / 1000).min(LAST));
    ascii(httpdate::fmt_http_date(at))
}

/// What a stored response tells downstream caches.
pub(crate) struct Freshness<'a> {
    /// The handler's `Cache-Control` directives, as written.
    pub(crate) directives: &'a [Directive],
    /// How long the entry is stored.
    pub(crate) lifetime: Duration,
    /// Whether its key holds the request's credentials: `private` for downstream caches.
    pub(crate) private: bool,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub(crate) stored_at_ms: u64,
    /// The header names the cache varies on besides the response's own `Vary`: the
    /// configured ones and, unless the view is shared, the credentials.
    pub(crate) vary: &'a [HeaderName],
    /// The view's stale window, told downstream as `stale-while-revalidate`.
    pub(crate) stale: Option<Duration>,
}

/// Rewrites a response's headers to what the entry is sent with, on the miss that
/// stores it and on every hit:
///
/// - `Cache-Control`: the handler's directives as written, but every `max-age` and
///   `s-maxage` at most the lifetime (repeats after the first dropped), `max-age` added
///   when there is none; with credentials in the key, `private` first and no `public` or
///   `s-maxage`.
/// - `Expires`: the store time plus the lifetime, replacing the handler's.
/// - `ETag`: the handler's, else a strong digest of `body`.
///   With a stale window, `stale-while-revalidate=<window>` is added unless the handler
///   wrote one: a downstream cache may serve the response stale as long as this cache
///   does, while it revalidates.
/// - `Vary`: the names the cache varies on that the handler did not list, appended.
pub(crate) fn patch(headers: &mut HeaderMap, freshness: &Freshness<'_>, body: &[u8]) {
    let lifetime = freshness.lifetime.min(LONGEST);
    let stale = freshness.stale.map(|s| s.min(LONGEST).as_secs());
    headers.insert(
        CACHE_CONTROL,
        cache_control(
            freshness.directives,
            lifetime.as_secs(),
            freshness.private,
            stale,
        ),
    );
    let lifetime_ms = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
    headers.insert(
        EXPIRES,
        http_date(freshness.stored_at_ms.saturating_add(lifetime_ms)),
    );
    if !headers.contains_key(ETAG) {
        headers.insert(ETAG, strong_etag(body));
    }
    append_vary(headers, freshness.vary);
}

/// Appends to `Vary` the `names` it does not list (ASCII case-insensitively), as one
/// value; nothing when it says `*` (which already varies on everything).
pub(crate) fn append_vary(headers: &mut HeaderMap, names: &[HeaderName]) {
    let mut listed: Vec<&str> = Vec::new();
    for value in headers.get_all(VARY) {
        let Ok(text) = value.to_str() else {
            continue;
        };
        listed.extend(text.split(',').map(str::trim));
    }
    if listed.contains(&"*") {
        return;
    }
    let unlisted: Vec<&str> = names
        .iter()
        .map(HeaderName::as_str)
        .filter(|n| !listed.iter().any(|l| l.eq_ignore_ascii_case(n)))
        .collect();
    if !unlisted.is_empty() {
        let value = ascii(unlisted.join(", "));
        headers.append(VARY, value);
    }
}

/// The `Cache-Control` value [`patch`] writes.
fn cache_control(
    directives: &[Directive],
    lifetime: u64,
    private: bool,
    stale: Option<u64>,
) -> HeaderValue {
    let mut parts: Vec<String> = Vec::with_capacity(directives.len() + 2);
    if private {
        parts.push("private".to_owned());
    }
    let mut seen = [false; 2];
    for d in directives {
        let slot = match d.name.as_str() {
            "public" | "s-maxage" if private => continue,
            "max-age" => 0,
            "s-maxage" => 1,
            _ => {
                parts.push(d.text.clone());
                continue;
            }
        };
        if std::mem::replace(&mut seen[slot], true) {
            continue;
        }
        let stated = delta_seconds(d.value.as_deref()).unwrap_or(0);
        parts.push(format!("{}={}", d.name, stated.min(lifetime)));
    }
    if !seen[0] {
        parts.push(format!("max-age={lifetime}"));
    }
    if let Some(stale) = stale {
        if !directives
            .iter()
            .any(|d| d.name == "stale-while-revalidate")
        {
            parts.push(format!("stale-while-revalidate={stale}"));
        }
    }
    ascii(parts.join(", "))
}

/// When a response stored at `stored_at_ms` for `lifetime` expires, for tests.
#[cfg(test)]
pub(crate) fn expires_at(stored_at_ms: u64, lifetime: Duration) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_millis(stored_at_ms) + lifetime
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::cacheable::directives;

    const AUTHORIZATION_NAME: HeaderName = http::header::AUTHORIZATION;
    const COOKIE_NAME: HeaderName = http::header::COOKIE;

    fn written(values: &[&'static str]) -> Vec<Directive> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CACHE_CONTROL, HeaderValue::from_static(v));
        }
        directives(&h).expect("readable")
    }

    fn cc(values: &[&'static str], lifetime: u64, private: bool) -> String {
        cache_control(&written(values), lifetime, private, None)
            .to_str()
            .expect("ascii")
            .to_owned()
    }

    #[test]
    fn cache_control_keeps_the_handlers_directives_and_caps_freshness() {
        assert_eq!(cc(&[], 60, false), "max-age=60");
        assert_eq!(cc(&[], 60, true), "private, max-age=60");
        assert_eq!(cc(&["public, max-age=30"], 30, false), "public, max-age=30");
        assert_eq!(
            cc(&["public, max-age=300, must-revalidate"], 60, false),
            "public, max-age=60, must-revalidate"
        );
        assert_eq!(
            cc(&["max-age=300, s-maxage=30"], 30, false),
            "max-age=30, s-maxage=30"
        );
        assert_eq!(
            cc(&["Public, S-MaxAge=30, max-age=10, max-age=5"], 5, true),
            "private, max-age=5"
        );
        assert_eq!(
            cc(&["stale-while-revalidate=\"30\"", "immutable"], 60, false),
            "stale-while-revalidate=\"30\", immutable, max-age=60"
        );
    }

    #[test]
    fn a_stale_window_is_told_downstream_unless_the_handler_told_its_own() {
        let with = |values: &[&'static str], private| {
            cache_control(&written(values), 60, private, Some(300))
                .to_str()
                .expect("ascii")
                .to_owned()
        };
        assert_eq!(with(&[], false), "max-age=60, stale-while-revalidate=300");
        assert_eq!(
            with(&[], true),
            "private, max-age=60, stale-while-revalidate=300"
        );
        assert_eq!(
            with(&["Stale-While-Revalidate=5"], false),
            "Stale-While-Revalidate=5, max-age=60"
        );
    }

    #[test]
    fn vary_names_are_appended_once_and_never_to_a_star() {
        let names = [AUTHORIZATION_NAME, COOKIE_NAME];
        let varies = |h: &HeaderMap| -> Vec<String> {
            h.get_all(VARY)
                .iter()
                .map(|v| v.to_str().expect("ascii").to_owned())
                .collect()
        };
        let mut h = HeaderMap::new();
        append_vary(&mut h, &names);
        assert_eq!(varies(&h), ["authorization, cookie"]);
        append_vary(&mut h, &names);
        assert_eq!(varies(&h), ["authorization, cookie"], "listed already");

        let mut h = HeaderMap::new();
        h.insert(VARY, HeaderValue::from_static("Accept-Encoding, COOKIE"));
        append_vary(&mut h, &names);
        assert_eq!(varies(&h), ["Accept-Encoding, COOKIE", "authorization"]);

        let mut h = HeaderMap::new();
        h.insert(VARY, HeaderValue::from_static("*"));
        append_vary(&mut h, &names);
        assert_eq!(varies(&h), ["*"]);
    }

    #[test]
    fn patch_writes_expires_etag_and_vary() {
        let mut h = HeaderMap::new();
        h.insert(
            EXPIRES,
            HeaderValue::from_static("Thu, 01 Jan 2099 00:00:00 GMT"),
        );
        h.insert(VARY, HeaderValue::from_static("Accept"));
        let vary = [HeaderName::from_static("x-tenant")];
        let stored_at_ms = 784_111_777_000;
        patch(
            &mut h,
            &Freshness {
                directives: &[],
                lifetime: Duration::from_secs(30),
                private: false,
                stored_at_ms,
                vary: &vary,
                stale: None,
            },
            b"hello",
        );
        assert_eq!(h[EXPIRES], "Sun, 06 Nov 1994 08:50:07 GMT");
        assert_eq!(
            httpdate::parse_http_date(h[EXPIRES].to_str().expect("ascii")).ok(),
            Some(expires_at(stored_at_ms, Duration::from_secs(30)))
        );
        assert_eq!(h[CACHE_CONTROL], "max-age=30");
        let tag = h[ETAG].to_str().expect("ascii");
        assert!(tag.len() == 34 && tag.starts_with('"') && tag.ends_with('"'));
        let varies: Vec<_> = h.get_all(VARY).iter().collect();
        assert_eq!(varies, ["Accept", "x-tenant"]);

        // The handler's ETag is kept; a lifetime past 2^31 s is written as 2^31 s.
        let mut h = HeaderMap::new();
        h.insert(ETAG, HeaderValue::from_static("\"v1\""));
        patch(
            &mut h,
            &Freshness {
                directives: &[],
                lifetime: Duration::MAX,
                private: false,
                stored_at_ms: u64::MAX,
                vary: &[],
                stale: None,
            },
            b"",
        );
        assert_eq!(h[ETAG], "\"v1\"");
        assert_eq!(h[CACHE_CONTROL], "max-age=2147483648");
        assert_eq!(h[EXPIRES], "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn cache_status_values() {
        assert_eq!(hit("", 42), "cached-kit; hit; ttl=42");
        let mut near = HeaderMap::new();
        near.insert(CACHE_STATUS, hit("origin; fwd=uri-miss", 7));
        detail_near(&mut near, false);
        assert_eq!(
            near[CACHE_STATUS],
            "origin; fwd=uri-miss, cached-kit; hit; ttl=7"
        );
        detail_near(&mut near, true);
        assert_eq!(
            near[CACHE_STATUS],
            "origin; fwd=uri-miss, cached-kit; hit; ttl=7; detail=near"
        );
        assert_eq!(stale_hit(""), "cached-kit; hit; ttl=0; detail=stale");
        assert_eq!(
            stale_hit("origin; hit"),
            "origin; hit, cached-kit; hit; ttl=0; detail=stale"
        );
        assert_eq!(
            hit("origin; fwd=uri-miss", 0),
            "origin; fwd=uri-miss, cached-kit; hit; ttl=0"
        );
        assert_eq!(stored(), "cached-kit; fwd=miss; stored");
        assert_eq!(
            not_stored(NotStored::Method),
            "cached-kit; fwd=bypass; detail=method"
        );
        assert_eq!(
            not_stored(NotStored::Authority),
            "cached-kit; fwd=bypass; detail=authority"
        );
        assert_eq!(
            not_stored(NotStored::Status),
            "cached-kit; fwd=miss; detail=status"
        );
        let mut h = HeaderMap::new();
        h.insert(CACHE_STATUS, HeaderValue::from_static("origin-cache; hit"));
        add_cache_status(&mut h, stored());
        assert_eq!(
            h[CACHE_STATUS],
            "origin-cache; hit, cached-kit; fwd=miss; stored"
        );
    }

    #[test]
    fn etags_and_if_none_match() {
        let tag = strong_etag(b"hello");
        assert_eq!(tag.len(), 34);
        assert_ne!(tag, strong_etag(b"hello!"));
        let tag = HeaderValue::from_static("\"x\"");
        let mut req = HeaderMap::new();
        assert!(!if_none_match(&req, &tag));
        req.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match(&req, &tag));
        req.insert(IF_NONE_MATCH, HeaderValue::from_static("W/\"x\""));
        assert!(if_none_match(&req, &tag));
        req.insert(IF_NONE_MATCH, HeaderValue::from_static("\"a\", W/\"x\""));
        assert!(if_none_match(&req, &tag));
        req.insert(IF_NONE_MATCH, HeaderValue::from_static("\"xy\""));
        assert!(!if_none_match(&req, &tag));
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }
}
