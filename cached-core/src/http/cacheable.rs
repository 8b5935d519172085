//! The one audited predicate deciding which requests are looked up, which responses may
//! be stored, and for how long.
//!
//! Every rule is here: [`may_look_up`] for the request, [`may_store`] for the response
//! (it applies the request's rules too). The layer and `#[cache_view]` ask
//! [`may_store`] before buffering a body (with the announced `Content-Length`) and again
//! once the body is read (with its real length), and take the stored lifetime from the
//! same parse of the response's headers.
//!
//! # Why this module parses `Cache-Control` itself
//!
//! The `headers` crate's `CacheControl` is not in this workspace's dependency tree, and
//! it does not give what the rules need: the directives *as written* (to keep the
//! handler's own ones when the cache rewrites `max-age`), a refusal when a header cannot
//! be read, and the minimum of repeated `max-age` values (RFC 9111 §4.2.1). The parser
//! below is one loop over the header's characters; quoted values are skipped whole, so a
//! forbidden name inside one (`no-cache="private"`) is not mistaken for a directive.
//! HTTP dates are parsed with `httpdate`.

use std::time::{Duration, SystemTime};

use http::header::{CACHE_CONTROL, CONTENT_LENGTH, DATE, EXPIRES, HOST, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderName, Method, StatusCode, Uri};

/// The default body size limit: 8 MiB. Larger bodies pass through whole, unstored.
pub const DEFAULT_MAX_BODY: usize = 8 * 1024 * 1024;

/// The most header names a stored response may vary on (its `Vary` and the configured
/// names together). A response listing more passes through unstored: each name costs
/// every later request a header lookup, and no real page varies on that many.
pub const MAX_VARY: usize = 32;

/// Why a response was not stored (or a request not looked up).
///
/// Its [`detail`](NotStored::detail) is what the `Cache-Status` header reports.
///
/// ```
/// use cached_core::http::NotStored;
/// assert_eq!(NotStored::SetCookie.detail(), "set-cookie");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotStored {
    /// The method is not `GET` or `HEAD`: the request bypasses the cache.
    Method,
    /// The request's target names another authority than its `Host` header, or it has
    /// more than one `Host`: the request bypasses the cache, since the handler and the
    /// key could disagree on which site the response is for.
    Authority,
    /// The request said `Cache-Control: no-store`.
    RequestNoStore,
    /// The status is not 200.
    Status,
    /// The response sets a cookie.
    SetCookie,
    /// The response's `Cache-Control` has `private`, `no-store` or `no-cache`, or cannot
    /// be read.
    CacheControl,
    /// The response says `Vary: *`.
    VaryStar,
    /// The response's `Vary` cannot be read, names something that is not a header name,
    /// or names more than [`MAX_VARY`] headers.
    Vary,
    /// The response says it is stale at once: `max-age=0`, `s-maxage=0`, an unreadable
    /// `max-age`, or an `Expires` that is not after its `Date`.
    Expired,
    /// The body is larger than the limit.
    TooLarge,
    /// The body ends with trailers, which are not stored.
    Trailers,
    /// The response body failed while it was read; the error is passed on.
    BodyError,
    /// The cache backend failed; the response was served without it.
    CacheError,
}

impl NotStored {
    /// The RFC 9211 `detail` token for this reason.
    ///
    /// ```
    /// use cached_core::http::NotStored;
    /// assert_eq!(NotStored::CacheControl.detail(), "cache-control");
    /// assert_eq!(NotStored::Authority.detail(), "authority");
    /// ```
    pub fn detail(self) -> &'static str {
        match self {
            NotStored::Method => "method",
            NotStored::Authority => "authority",
            NotStored::RequestNoStore => "request-no-store",
            NotStored::Status => "status",
            NotStored::SetCookie => "set-cookie",
            NotStored::CacheControl => "cache-control",
            NotStored::VaryStar => "vary-star",
            NotStored::Vary => "vary",
            NotStored::Expired => "expired",
            NotStored::TooLarge => "too-large",
            NotStored::Trailers => "trailers",
            NotStored::BodyError => "body-error",
            NotStored::CacheError => "cache-error",
        }
    }

    /// Whether the request went around the cache (`fwd=bypass`) rather than missing it
    /// (`fwd=miss`).
    ///
    /// ```
    /// use cached_core::http::NotStored;
    /// assert!(NotStored::Method.is_bypass());
    /// assert!(!NotStored::Status.is_bypass());
    /// ```
    pub fn is_bypass(self) -> bool {
        matches!(self, NotStored::Method | NotStored::Authority)
    }
}

/// Whether a request may be looked up in the cache at all: only `GET` and `HEAD`, with
/// at most one `Host`, and an absolute-form target only when it names the same
/// authority as `Host` (ASCII case-insensitively).
///
/// ```
/// use cached_core::http::{cacheable::may_look_up, NotStored};
/// use http::{HeaderMap, HeaderValue, Method, Uri};
///
/// let mut request = HeaderMap::new();
/// request.insert("host", HeaderValue::from_static("shop.example"));
/// let origin: Uri = "/products".parse().unwrap();
/// assert_eq!(may_look_up(&Method::HEAD, &origin, &request), Ok(()));
/// assert_eq!(may_look_up(&Method::POST, &origin, &request), Err(NotStored::Method));
///
/// let same: Uri = "http://SHOP.example/products".parse().unwrap();
/// assert_eq!(may_look_up(&Method::GET, &same, &request), Ok(()));
/// let other: Uri = "http://evil.example/products".parse().unwrap();
/// assert_eq!(may_look_up(&Method::GET, &other, &request), Err(NotStored::Authority));
/// ```
pub fn may_look_up(method: &Method, target: &Uri, request: &HeaderMap) -> Result<(), NotStored> {
    if method != Method::GET && method != Method::HEAD {
        return Err(NotStored::Method);
    }
    let mut hosts = request.get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(NotStored::Authority);
    }
    match (target.authority(), host) {
        (Some(named), Some(host))
            if !named
                .as_str()
                .as_bytes()
                .eq_ignore_ascii_case(host.as_bytes()) =>
        {
            Err(NotStored::Authority)
        }
        _ => Ok(()),
    }
}

/// Whether the response to a request may be stored: every rule of the HTTP cache.
///
/// `body_len` is the body's length in bytes (before the body is read: its
/// `Content-Length`, or 0 when unknown); `limit` the largest body that may be stored.
/// The rules, in the order they are checked (the first that fails is the reason):
/// the request may be looked up ([`may_look_up`]) and did not say `no-store`; status
/// 200; no `Set-Cookie`; a readable `Cache-Control` without `private`, `no-store` or
/// `no-cache`; no `Vary: *` and at most [`MAX_VARY`] valid names; not stale at once
/// (`max-age=0`, `s-maxage=0`, an `Expires` not after `Date`); a body within `limit`.
///
/// ```
/// use cached_core::http::{cacheable::may_store, NotStored, DEFAULT_MAX_BODY};
/// use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
///
/// let target: Uri = "/".parse().unwrap();
/// let req = HeaderMap::new();
/// let mut res = HeaderMap::new();
/// let limit = DEFAULT_MAX_BODY as u64;
/// let ok = StatusCode::OK;
/// assert_eq!(may_store(&Method::GET, &target, &req, ok, &res, 5, limit), Ok(()));
/// res.insert("cache-control", HeaderValue::from_static("public, No-Cache=\"x\""));
/// assert_eq!(
///     may_store(&Method::GET, &target, &req, ok, &res, 5, limit),
///     Err(NotStored::CacheControl)
/// );
/// res.insert("cache-control", HeaderValue::from_static("max-age=0"));
/// assert_eq!(
///     may_store(&Method::GET, &target, &req, ok, &res, 5, limit),
///     Err(NotStored::Expired)
/// );
/// ```
pub fn may_store(
    method: &Method,
    target: &Uri,
    request: &HeaderMap,
    status: StatusCode,
    response: &HeaderMap,
    body_len: u64,
    limit: u64,
) -> Result<(), NotStored> {
    may_look_up(method, target, request)?;
    judge(
        request,
        status,
        response,
        body_len,
        limit,
        SystemTime::now(),
    )
    .map(drop)
}

/// What [`may_store`] learned about a response it allows.
#[derive(Debug)]
pub(crate) struct Storable {
    /// The response's `Cache-Control` directives, as written.
    pub(crate) directives: Vec<Directive>,
    /// The response's own freshness limit (`max-age`, `s-maxage`, or `Expires`), if any.
    pub(crate) cap: Option<Duration>,
    /// The header names its `Vary` lists: lowercase, sorted, without duplicates.
    pub(crate) vary: Vec<HeaderName>,
}

/// The response rules of [`may_store`] (the caller has applied [`may_look_up`]).
pub(crate) fn judge(
    request: &HeaderMap,
    status: StatusCode,
    response: &HeaderMap,
    body_len: u64,
    limit: u64,
    now: SystemTime,
) -> Result<Storable, NotStored> {
    if request_no_store(request) {
        return Err(NotStored::RequestNoStore);
    }
    if status != StatusCode::OK {
        return Err(NotStored::Status);
    }
    if response.contains_key(SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    let directives = match directives(response) {
        Some(d)
            if !d
                .iter()
                .any(|d| matches!(d.name.as_str(), "private" | "no-store" | "no-cache")) =>
        {
            d
        }
        _ => return Err(NotStored::CacheControl),
    };
    let vary = vary_names(response)?;
    let cap = cap(response, &directives, now);
    if cap == Some(Duration::ZERO) {
        return Err(NotStored::Expired);
    }
    let announced = content_length(response).unwrap_or(0);
    if body_len > limit || announced > limit {
        return Err(NotStored::TooLarge);
    }
    Ok(Storable {
        directives,
        cap,
        vary,
    })
}

/// Whether the request said `Cache-Control: no-store` (or sent one that cannot be read).
pub(crate) fn request_no_store(request: &HeaderMap) -> bool {
    request.contains_key(CACHE_CONTROL)
        && directives(request).is_none_or(|d| d.iter().any(|d| d.name == "no-store"))
}

/// The announced `Content-Length`, when there is exactly one valid one.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()?.trim().parse().ok()
}

/// The header names a response's `Vary` lists, lowercase, sorted, without duplicates.
fn vary_names(response: &HeaderMap) -> Result<Vec<HeaderName>, NotStored> {
    let mut names: Vec<HeaderName> = Vec::new();
    for value in response.get_all(VARY) {
        let text = value.to_str().map_err(|_| NotStored::Vary)?;
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return Err(NotStored::VaryStar);
            }
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| NotStored::Vary)?;
            if names.contains(&name) {
                continue;
            }
            // Checked as it grows, so a hostile list is never collected whole.
            if names.len() == MAX_VARY {
                return Err(NotStored::Vary);
            }
            names.push(name);
        }
    }
    names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(names)
}

/// One `Cache-Control` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive {
    /// The name, lowercase.
    pub(crate) name: String,
    /// The argument, unquoted, if any.
    pub(crate) value: Option<String>,
    /// The directive as written, trimmed.
    pub(crate) text: String,
}

/// The directives of every `Cache-Control` header, in order, or `None` when one cannot
/// be read (bytes outside visible ASCII): the caller must then be conservative.
///
/// Names are trimmed and lowercased, so any case and spacing match; quoted values are
/// read whole (with `\` escapes), so `no-cache="Set-Cookie, private"` yields `no-cache`
/// only.
pub(crate) fn directives(headers: &HeaderMap) -> Option<Vec<Directive>> {
    let mut out = Vec::new();
    for value in headers.get_all(CACHE_CONTROL) {
        let text = value.to_str().ok()?;
        let mut start = 0;
        let mut quoted = false;
        let mut escaped = false;
        for (i, c) in text.char_indices() {
            if quoted {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => quoted = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => quoted = true,
                ',' => {
                    push_directive(&mut out, &text[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        push_directive(&mut out, &text[start..]);
    }
    Some(out)
}

fn push_directive(out: &mut Vec<Directive>, written: &str) {
    let text = written.trim();
    let (name, value) = match text.split_once('=') {
        Some((name, value)) => (name.trim(), Some(unquote(value.trim()))),
        None => (text, None),
    };
    if name.is_empty() {
        return;
    }
    out.push(Directive {
        name: name.to_ascii_lowercase(),
        value,
        text: text.to_owned(),
    });
}

/// A directive's argument without its quotes and escapes.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"') else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        match (escaped, c) {
            (true, c) => {
                out.push(c);
                escaped = false;
            }
            (false, '\\') => escaped = true,
            (false, '"') => break,
            (false, c) => out.push(c),
        }
    }
    out
}

/// A `delta-seconds` argument; `None` when it is not one (RFC 9111 §1.2.2: too large a
/// number counts as the largest; a missing or malformed one makes the caller treat the
/// response as stale).
pub(crate) fn delta_seconds(value: Option<&str>) -> Option<u64> {
    let value = value?.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(value.parse().unwrap_or(u64::MAX))
}

/// The response's own freshness limit: the smallest `max-age` or `s-maxage` it states
/// (a malformed one counts as 0), or else `Expires` minus `Date` (or minus `now` when
/// there is no single readable `Date`; an unreadable `Expires` is in the past). `None`
/// when it states none.
fn cap(response: &HeaderMap, directives: &[Directive], now: SystemTime) -> Option<Duration> {
    let stated = directives
        .iter()
        .filter(|d| d.name == "max-age" || d.name == "s-maxage")
        .map(|d| delta_seconds(d.value.as_deref()).unwrap_or(0))
        .min();
    if let Some(secs) = stated {
        return Some(Duration::from_secs(secs));
    }
    let mut expires = None::<SystemTime>;
    for value in response.get_all(EXPIRES) {
        let at = value
            .to_str()
            .ok()
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let Some(at) = at else {
            return Some(Duration::ZERO);
        };
        expires = Some(expires.map_or(at, |e| e.min(at)));
    }
    let expires = expires?;
    let mut dates = response.get_all(DATE).iter();
    let date = match (dates.next(), dates.next()) {
        (Some(one), None) => one
            .to_str()
            .ok()
            .and_then(|v| httpdate::parse_http_date(v).ok()),
        _ => None,
    };
    Some(
        expires
            .duration_since(date.unwrap_or(now))
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cc(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CACHE_CONTROL, HeaderValue::from_static(v));
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<String> {
        directives(h)
            .expect("readable")
            .into_iter()
            .map(|d| d.name)
            .collect()
    }

    fn store(response: &HeaderMap) -> Result<(), NotStored> {
        let target = Uri::from_static("/");
        let request = HeaderMap::new();
        may_store(
            &Method::GET,
            &target,
            &request,
            StatusCode::OK,
            response,
            0,
            100,
        )
    }

    #[test]
    fn directives_are_case_and_space_insensitive_and_skip_quoted_values() {
        assert_eq!(
            names(&cc(&["  PUBLIC ,Max-Age = 5", "no-cache=\"a, private\""])),
            ["public", "max-age", "no-cache"]
        );
        assert_eq!(
            names(&cc(&["foo=\"x, private, \\\"y\"", "max-age=1"])),
            ["foo", "max-age"]
        );
        let parsed = directives(&cc(&["Max-Age = \"60\" , x=\"a\\\"b\""])).expect("readable");
        assert_eq!(parsed[0].value.as_deref(), Some("60"));
        assert_eq!(parsed[0].text, "Max-Age = \"60\"");
        assert_eq!(parsed[1].value.as_deref(), Some("a\"b"));
        assert_eq!(names(&cc(&[",, ,=5,"])), Vec::<String>::new());
    }

    #[test]
    fn forbidden_directives_in_any_shape() {
        for v in [
            "private",
            "PRIVATE",
            "public,private",
            "max-age=60 ,  No-Store",
            "no-cache=\"Set-Cookie\"",
            "No-Cache",
            "private=\"x\", max-age=1",
        ] {
            assert_eq!(store(&cc(&[v])), Err(NotStored::CacheControl), "{v}");
        }
        for v in [
            "public, max-age=60",
            "s-maxage=5",
            "x-private",
            "foo=\"private\"",
        ] {
            assert_eq!(store(&cc(&[v])), Ok(()), "{v}");
        }
    }

    #[test]
    fn unreadable_headers_are_refused() {
        let mut res = HeaderMap::new();
        res.insert(
            CACHE_CONTROL,
            HeaderValue::from_bytes(b"max-age=5, \xffprivate").expect("obs-text is allowed"),
        );
        assert_eq!(store(&res), Err(NotStored::CacheControl));
        let mut res = HeaderMap::new();
        res.insert(VARY, HeaderValue::from_static("Accept, *"));
        assert_eq!(store(&res), Err(NotStored::VaryStar));
        res.insert(
            VARY,
            HeaderValue::from_bytes(b"Accept, \xffx").expect("obs-text is allowed"),
        );
        assert_eq!(store(&res), Err(NotStored::Vary));
        res.insert(VARY, HeaderValue::from_static("Accept, not a name"));
        assert_eq!(store(&res), Err(NotStored::Vary));
    }

    #[test]
    fn vary_is_bounded() {
        let list = |n: usize| {
            let names: Vec<String> = (0..n).map(|i| format!("x-h{i}")).collect();
            let mut res = HeaderMap::new();
            res.insert(
                VARY,
                HeaderValue::from_str(&names.join(", ")).expect("valid"),
            );
            res
        };
        assert_eq!(store(&list(MAX_VARY)), Ok(()));
        assert_eq!(store(&list(MAX_VARY + 1)), Err(NotStored::Vary));
        assert_eq!(store(&list(100_000)), Err(NotStored::Vary));
        // Repeats of one name are one name.
        let mut res = HeaderMap::new();
        for _ in 0..10_000 {
            res.append(VARY, HeaderValue::from_static("Accept, ACCEPT ,accept"));
        }
        assert_eq!(store(&res), Ok(()));
    }

    #[test]
    fn a_response_stale_at_once_is_not_stored() {
        for v in [
            "max-age=0",
            "public, MAX-AGE=0",
            "s-maxage=0, max-age=60",
            "max-age=60, max-age=0",
            "max-age=abc",
            "max-age=-1",
            "max-age",
            "max-age=\"\"",
        ] {
            assert_eq!(store(&cc(&[v])), Err(NotStored::Expired), "{v}");
        }
        let mut res = HeaderMap::new();
        res.insert(EXPIRES, HeaderValue::from_static("0"));
        assert_eq!(store(&res), Err(NotStored::Expired));
        res.insert(
            EXPIRES,
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        assert_eq!(store(&res), Err(NotStored::Expired));
        // Date and Expires equal: stale at once, whatever the clock says.
        res.insert(
            EXPIRES,
            HeaderValue::from_static("Sun, 06 Nov 2094 08:49:37 GMT"),
        );
        res.insert(
            DATE,
            HeaderValue::from_static("Sun, 06 Nov 2094 08:49:37 GMT"),
        );
        assert_eq!(store(&res), Err(NotStored::Expired));
        // max-age wins over Expires (RFC 9111 §5.3).
        res.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        assert_eq!(store(&res), Ok(()));
    }

    #[test]
    fn the_cap_is_the_smallest_stated_lifetime() {
        let now = SystemTime::now();
        let capped = |values: &[&'static str]| {
            let h = cc(values);
            cap(&h, &directives(&h).expect("readable"), now)
        };
        assert_eq!(capped(&["public"]), None);
        assert_eq!(capped(&["max-age=5"]), Some(Duration::from_secs(5)));
        assert_eq!(
            capped(&["max-age=300, s-maxage=30"]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            capped(&["max-age=\"7\"", "max-age=9"]),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            capped(&["max-age=99999999999999999999999"]),
            Some(Duration::from_secs(u64::MAX))
        );
        let mut h = HeaderMap::new();
        h.insert(
            DATE,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        h.insert(
            EXPIRES,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:50:07 GMT"),
        );
        assert_eq!(cap(&h, &[], now), Some(Duration::from_secs(30)));
    }

    #[test]
    fn sizes_methods_statuses() {
        let target = Uri::from_static("/");
        let h = HeaderMap::new();
        let check = |m: &Method, req: &HeaderMap, s: StatusCode, res: &HeaderMap, len| {
            may_store(m, &target, req, s, res, len, 10)
        };
        assert_eq!(check(&Method::GET, &h, StatusCode::OK, &h, 10), Ok(()));
        assert_eq!(
            check(&Method::GET, &h, StatusCode::OK, &h, 11),
            Err(NotStored::TooLarge)
        );
        let mut announced = HeaderMap::new();
        announced.insert(CONTENT_LENGTH, HeaderValue::from_static("11"));
        assert_eq!(
            check(&Method::GET, &h, StatusCode::OK, &announced, 0),
            Err(NotStored::TooLarge)
        );
        assert_eq!(
            check(&Method::PUT, &h, StatusCode::OK, &h, 0),
            Err(NotStored::Method)
        );
        for s in [
            StatusCode::CREATED,
            StatusCode::NOT_FOUND,
            StatusCode::NO_CONTENT,
        ] {
            assert_eq!(check(&Method::GET, &h, s, &h, 0), Err(NotStored::Status));
        }
        assert_eq!(
            check(&Method::GET, &cc(&["No-Store"]), StatusCode::OK, &h, 0),
            Err(NotStored::RequestNoStore)
        );
        assert!(request_no_store(&cc(&["max-age=0, no-store"])));
        assert!(!request_no_store(&cc(&["no-cache"])));
        assert!(!request_no_store(&h));
    }

    #[test]
    fn odd_hosts_bypass() {
        let target = Uri::from_static("/");
        let mut two = HeaderMap::new();
        two.append(HOST, HeaderValue::from_static("a.example"));
        two.append(HOST, HeaderValue::from_static("a.example"));
        assert_eq!(
            may_look_up(&Method::GET, &target, &two),
            Err(NotStored::Authority)
        );
        // HTTP/2 carries the authority in the target and no Host: looked up.
        let absolute = Uri::from_static("https://a.example/p");
        assert_eq!(
            may_look_up(&Method::GET, &absolute, &HeaderMap::new()),
            Ok(())
        );
        let mut odd = HeaderMap::new();
        odd.insert(
            HOST,
            HeaderValue::from_bytes(b"a.example\xff").expect("obs-text"),
        );
        assert_eq!(
            may_look_up(&Method::GET, &absolute, &odd),
            Err(NotStored::Authority)
        );
        assert_eq!(may_look_up(&Method::GET, &target, &odd), Ok(()));
    }

    /// Property tests: the predicate's invariants over generated requests and responses.
    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A `Cache-Control` piece and whether it forbids storing.
        fn piece() -> impl Strategy<Value = (String, bool)> {
            let forbidden = prop_oneof![
                Just("private"),
                Just("no-store"),
                Just("no-cache"),
                Just("private=\"set-cookie\""),
                Just("no-cache=\"x, y\""),
            ]
            .prop_flat_map(|name| {
                // Any case, any spacing around it.
                (
                    proptest::collection::vec(any::<bool>(), name.len()),
                    "[ \t]{0,2}",
                    "[ \t]{0,2}",
                )
                    .prop_map(move |(upper, before, after)| {
                        let cased: String = name
                            .chars()
                            .zip(upper)
                            .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
                            .collect();
                        (format!("{before}{cased}{after}"), true)
                    })
            });
            let allowed = prop_oneof![
                Just("public".to_owned()),
                Just("must-revalidate".to_owned()),
                Just("x-private".to_owned()),
                Just("foo=\"private, no-store\"".to_owned()),
                (1u64..100_000).prop_map(|n| format!("max-age={n}")),
                (1u64..100_000).prop_map(|n| format!("S-MaxAge = {n}")),
                "[a-z][a-z0-9-]{0,8}(=[a-z0-9]{1,4})?",
            ]
            .prop_filter("not a forbidden name", |t| {
                let name = t.split('=').next().unwrap_or_default().trim();
                !matches!(
                    name,
                    "private" | "no-store" | "no-cache" | "max-age" | "s-maxage"
                ) || t.contains('"')
                    || t.starts_with("max-age=")
                    || t.starts_with("S-MaxAge")
            })
            .prop_map(|t| (t, false));
            prop_oneof![1 => forbidden, 3 => allowed]
        }

        /// A response's `Cache-Control` lines, and whether any forbids storing.
        fn cache_control() -> impl Strategy<Value = (Vec<String>, bool)> {
            proptest::collection::vec(proptest::collection::vec(piece(), 1..4), 0..3).prop_map(
                |lines| {
                    let forbidden = lines.iter().flatten().any(|(_, f)| *f);
                    let lines = lines
                        .into_iter()
                        .map(|pieces| {
                            pieces
                                .into_iter()
                                .map(|(t, _)| t)
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .collect();
                    (lines, forbidden)
                },
            )
        }

        fn vary() -> impl Strategy<Value = Vec<String>> {
            proptest::collection::vec(
                prop_oneof![
                    Just("*".to_owned()),
                    Just("Accept, *".to_owned()),
                    Just("accept-language".to_owned()),
                    Just("Accept , Cookie".to_owned()),
                    "[ -~]{0,20}",
                ],
                0..3,
            )
        }

        /// Any header value bytes `HeaderValue` accepts: visible ASCII, space, tab and
        /// obs-text.
        fn bytes() -> impl Strategy<Value = Vec<u8>> {
            proptest::collection::vec(prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff], 0..40)
        }

        fn method() -> impl Strategy<Value = Method> {
            prop_oneof![
                3 => Just(Method::GET),
                1 => Just(Method::HEAD),
                1 => Just(Method::POST),
                1 => Just(Method::PUT),
                1 => Just(Method::DELETE),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 2000,
                // A failure is reported with its minimal input; no file is written.
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            #[test]
            fn may_store_never_allows_what_a_rule_forbids(
                method in method(),
                status in prop_oneof![4 => Just(200u16), 1 => 100u16..600],
                set_cookie in any::<bool>(),
                (cc, forbidden) in cache_control(),
                vary in vary(),
                request_cc in prop_oneof![
                    3 => Just(None),
                    1 => Just(Some("no-store")),
                    1 => Just(Some("No-Cache, max-age=0")),
                ],
                announced in prop_oneof![Just(None), (0u64..200).prop_map(Some)],
                body_len in 0u64..200,
                limit in 0u64..200,
            ) {
                let target = Uri::from_static("/");
                let mut request = HeaderMap::new();
                if let Some(v) = request_cc {
                    request.insert(CACHE_CONTROL, HeaderValue::from_static(v));
                }
                let mut response = HeaderMap::new();
                if set_cookie {
                    response.insert(SET_COOKIE, HeaderValue::from_static("s=1"));
                }
                for line in &cc {
                    response.append(CACHE_CONTROL, HeaderValue::from_str(line).expect("ascii"));
                }
                for line in &vary {
                    response.append(VARY, HeaderValue::from_str(line).expect("ascii"));
                }
                if let Some(n) = announced {
                    response.insert(CONTENT_LENGTH, HeaderValue::from(n));
                }
                let status = StatusCode::from_u16(status).expect("a status");
                let verdict = may_store(&method, &target, &request, status, &response, body_len, limit);
                if verdict.is_ok() {
                    prop_assert!(method == Method::GET || method == Method::HEAD);
                    prop_assert!(request_cc != Some("no-store"));
                    prop_assert_eq!(status, StatusCode::OK);
                    prop_assert!(!set_cookie);
                    prop_assert!(!forbidden, "stored with {:?}", cc);
                    prop_assert!(!vary.iter().any(|v| v.split(',').any(|t| t.trim() == "*")));
                    prop_assert!(body_len <= limit && announced.unwrap_or(0) <= limit);
                    let storable = judge(&request, status, &response, body_len, limit, SystemTime::now());
                    prop_assert!(storable.is_ok_and(|s| s.cap != Some(Duration::ZERO)));
                } else if forbidden && (method == Method::GET || method == Method::HEAD)
                    && request_cc != Some("no-store") && status == StatusCode::OK && !set_cookie
                {
                    prop_assert_eq!(verdict, Err(NotStored::CacheControl));
                }
            }

            #[test]
            fn no_header_bytes_make_the_rules_panic(
                cc in proptest::collection::vec(bytes(), 0..3),
                vary in proptest::collection::vec(bytes(), 0..3),
                expires in proptest::collection::vec(bytes(), 0..2),
                date in proptest::collection::vec(bytes(), 0..2),
                host in proptest::collection::vec(bytes(), 0..3),
                authority in prop_oneof![Just(None), Just(Some("http://a.example/")), Just(Some("https://B.example:8443/x?y"))],
            ) {
                let mut response = HeaderMap::new();
                let mut request = HeaderMap::new();
                let add = |map: &mut HeaderMap, name: HeaderName, values: &[Vec<u8>]| {
                    for v in values {
                        if let Ok(v) = HeaderValue::from_bytes(v) {
                            map.append(name.clone(), v);
                        }
                    }
                };
                add(&mut response, CACHE_CONTROL, &cc);
                add(&mut response, VARY, &vary);
                add(&mut response, EXPIRES, &expires);
                add(&mut response, DATE, &date);
                add(&mut request, HOST, &host);
                add(&mut request, CACHE_CONTROL, &cc);
                let target = match authority {
                    Some(a) => Uri::from_static(a),
                    None => Uri::from_static("/"),
                };
                let verdict = may_store(&Method::GET, &target, &request, StatusCode::OK, &response, 1, 10);
                if request.get_all(HOST).iter().count() > 1 {
                    prop_assert_eq!(verdict, Err(NotStored::Authority));
                }
                if response.get_all(CACHE_CONTROL).iter().any(|v| v.to_str().is_err()) {
                    prop_assert!(verdict.is_err());
                }
            }
        }
    }
}
