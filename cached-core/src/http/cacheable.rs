//! The one audited predicate deciding which responses may be stored.
//!
//! Every rule is here, and [`may_store`] is the only place the HTTP cache asks: the
//! layer and `#[cache_view]` call it before buffering a body (with the announced
//! `Content-Length`) and again once the body is read (with its real length).

use http::header::{CACHE_CONTROL, CONTENT_LENGTH, SET_COOKIE, VARY};
use http::{HeaderMap, Method, StatusCode};

/// The default body size limit: 8 MiB. Larger bodies pass through whole, unstored.
pub const DEFAULT_MAX_BODY: usize = 8 * 1024 * 1024;

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
    /// The request said `Cache-Control: no-store`.
    RequestNoStore,
    /// The status is not 200.
    Status,
    /// The response sets a cookie.
    SetCookie,
    /// The response's `Cache-Control` has `private`, `no-store` or `no-cache`, or cannot
    /// be parsed.
    CacheControl,
    /// The response says `Vary: *`.
    VaryStar,
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
    /// ```
    pub fn detail(self) -> &'static str {
        match self {
            NotStored::Method => "method",
            NotStored::RequestNoStore => "request-no-store",
            NotStored::Status => "status",
            NotStored::SetCookie => "set-cookie",
            NotStored::CacheControl => "cache-control",
            NotStored::VaryStar => "vary-star",
            NotStored::TooLarge => "too-large",
            NotStored::Trailers => "trailers",
            NotStored::BodyError => "body-error",
            NotStored::CacheError => "cache-error",
        }
    }
}

/// Whether a request may be looked up in the cache at all: only `GET` and `HEAD`.
///
/// ```
/// use cached_core::http::{cacheable::may_look_up, NotStored};
/// use http::Method;
/// assert_eq!(may_look_up(&Method::HEAD), Ok(()));
/// assert_eq!(may_look_up(&Method::POST), Err(NotStored::Method));
/// ```
pub fn may_look_up(method: &Method) -> Result<(), NotStored> {
    if method == Method::GET || method == Method::HEAD {
        Ok(())
    } else {
        Err(NotStored::Method)
    }
}

/// Whether the response to a request may be stored: every rule of the HTTP cache.
///
/// `body_len` is the body's length in bytes (before the body is read: its
/// `Content-Length`, or 0 when unknown); `limit` the largest body that may be stored.
///
/// ```
/// use cached_core::http::{cacheable::may_store, NotStored, DEFAULT_MAX_BODY};
/// use http::{HeaderMap, HeaderValue, Method, StatusCode};
///
/// let req = HeaderMap::new();
/// let mut res = HeaderMap::new();
/// let limit = DEFAULT_MAX_BODY as u64;
/// assert_eq!(may_store(&Method::GET, &req, StatusCode::OK, &res, 5, limit), Ok(()));
/// res.insert("cache-control", HeaderValue::from_static("public, No-Cache=\"x\""));
/// assert_eq!(
///     may_store(&Method::GET, &req, StatusCode::OK, &res, 5, limit),
///     Err(NotStored::CacheControl)
/// );
/// ```
pub fn may_store(
    method: &Method,
    request: &HeaderMap,
    status: StatusCode,
    response: &HeaderMap,
    body_len: u64,
    limit: u64,
) -> Result<(), NotStored> {
    may_look_up(method)?;
    match directives(request) {
        Some(d) if !d.iter().any(|n| n == "no-store") => {}
        _ => return Err(NotStored::RequestNoStore),
    }
    if status != StatusCode::OK {
        return Err(NotStored::Status);
    }
    if response.contains_key(SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    match directives(response) {
        Some(d)
            if !d
                .iter()
                .any(|n| n == "private" || n == "no-store" || n == "no-cache") => {}
        _ => return Err(NotStored::CacheControl),
    }
    if vary_star(response) {
        return Err(NotStored::VaryStar);
    }
    let announced = content_length(response).unwrap_or(0);
    if body_len > limit || announced > limit {
        return Err(NotStored::TooLarge);
    }
    Ok(())
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

/// Whether any `Vary` header lists `*`.
fn vary_star(headers: &HeaderMap) -> bool {
    headers.get_all(VARY).iter().any(|v| {
        // Non-ASCII bytes in Vary cannot name headers: treat the whole value as `*`.
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim() == "*"))
            .unwrap_or(true)
    })
}

/// The lowercased directive names of every `Cache-Control` header, or `None` when one
/// cannot be read (non-ASCII bytes): the caller must then be conservative.
///
/// Quoted values are skipped whole, so `no-cache="Set-Cookie, private"` yields
/// `no-cache` only, and names are trimmed, so any spacing matches.
pub(crate) fn directives(headers: &HeaderMap) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for value in headers.get_all(CACHE_CONTROL) {
        let text = value.to_str().ok()?;
        let mut name = String::new();
        let mut in_name = true;
        let mut quoted = false;
        let mut escaped = false;
        for c in text.chars() {
            if quoted {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    quoted = false;
                }
                continue;
            }
            match c {
                '"' => quoted = true,
                ',' => {
                    push_name(&mut out, &name);
                    name.clear();
                    in_name = true;
                }
                '=' => in_name = false,
                _ if in_name => name.push(c),
                _ => {}
            }
        }
        push_name(&mut out, &name);
    }
    Some(out)
}

fn push_name(out: &mut Vec<String>, name: &str) {
    let name = name.trim();
    if !name.is_empty() {
        out.push(name.to_ascii_lowercase());
    }
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

    #[test]
    fn directives_are_case_and_space_insensitive_and_skip_quoted_values() {
        assert_eq!(
            directives(&cc(&["  PUBLIC ,Max-Age = 5", "no-cache=\"a, private\""])),
            Some(vec!["public".into(), "max-age".into(), "no-cache".into()])
        );
        assert_eq!(
            directives(&cc(&["foo=\"x, private, \\\"y\"", "max-age=1"])),
            Some(vec!["foo".into(), "max-age".into()])
        );
    }

    #[test]
    fn forbidden_directives_in_any_shape() {
        let limit = 100;
        for v in [
            "private",
            "PRIVATE",
            "public,private",
            "max-age=60 ,  No-Store",
            "no-cache=\"Set-Cookie\"",
            "No-Cache",
            "private=\"x\", max-age=1",
        ] {
            let r = may_store(
                &Method::GET,
                &HeaderMap::new(),
                StatusCode::OK,
                &cc(&[v]),
                0,
                limit,
            );
            assert_eq!(r, Err(NotStored::CacheControl), "{v}");
        }
        for v in [
            "public, max-age=60",
            "s-maxage=5",
            "x-private",
            "foo=\"private\"",
        ] {
            let r = may_store(
                &Method::GET,
                &HeaderMap::new(),
                StatusCode::OK,
                &cc(&[v]),
                0,
                limit,
            );
            assert_eq!(r, Ok(()), "{v}");
        }
    }

    #[test]
    fn unreadable_headers_are_refused() {
        let mut res = HeaderMap::new();
        res.insert(
            CACHE_CONTROL,
            HeaderValue::from_bytes(b"max-age=5, \xffprivate").expect("obs-text is allowed"),
        );
        let r = may_store(&Method::GET, &HeaderMap::new(), StatusCode::OK, &res, 0, 9);
        assert_eq!(r, Err(NotStored::CacheControl));
        let mut res = HeaderMap::new();
        res.insert(VARY, HeaderValue::from_static("Accept, *"));
        let r = may_store(&Method::GET, &HeaderMap::new(), StatusCode::OK, &res, 0, 9);
        assert_eq!(r, Err(NotStored::VaryStar));
    }

    #[test]
    fn sizes_methods_statuses() {
        let h = HeaderMap::new();
        assert_eq!(
            may_store(&Method::GET, &h, StatusCode::OK, &h, 10, 10),
            Ok(())
        );
        assert_eq!(
            may_store(&Method::GET, &h, StatusCode::OK, &h, 11, 10),
            Err(NotStored::TooLarge)
        );
        let mut announced = HeaderMap::new();
        announced.insert(CONTENT_LENGTH, HeaderValue::from_static("11"));
        assert_eq!(
            may_store(&Method::GET, &h, StatusCode::OK, &announced, 0, 10),
            Err(NotStored::TooLarge)
        );
        assert_eq!(
            may_store(&Method::PUT, &h, StatusCode::OK, &h, 0, 10),
            Err(NotStored::Method)
        );
        for s in [
            StatusCode::CREATED,
            StatusCode::NOT_FOUND,
            StatusCode::NO_CONTENT,
        ] {
            assert_eq!(
                may_store(&Method::GET, &h, s, &h, 0, 10),
                Err(NotStored::Status)
            );
        }
        assert_eq!(
            may_store(&Method::GET, &cc(&["No-Store"]), StatusCode::OK, &h, 0, 10),
            Err(NotStored::RequestNoStore)
        );
    }
}
