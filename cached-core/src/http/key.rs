//! The request key of the HTTP cache.
//!
//! A URL's *base key* digests the method class (`HEAD` shares `GET`), the host, the
//! path and the full query string. Under it the cache keeps a *manifest*, the header
//! names the last stored response listed in `Vary` (Django's `learn_cache_key`), and the
//! responses themselves, each under the base key plus a digest of the request's values
//! of every varying header: the manifest's, the configured ones and, unless the view is
//! shared, `Authorization` and `Cookie`.
//!
//! Every piece is length-prefixed before hashing, so no two different requests can
//! produce the same input, and an absent header is encoded differently from an empty one.
//!
//! ```
//! use cached_core::http::key::{base_key, entry_key};
//! use http::{HeaderMap, HeaderValue, Method, Uri};
//!
//! let uri: Uri = "/products?page=2".parse().unwrap();
//! let mut headers = HeaderMap::new();
//! headers.insert("host", HeaderValue::from_static("shop.example"));
//! let base = base_key("list", &Method::GET, &uri, &headers);
//! assert_eq!(base, base_key("list", &Method::HEAD, &uri, &headers));
//!
//! let anonymous = entry_key(&base, &["authorization"], &headers);
//! headers.insert("authorization", HeaderValue::from_static(""));
//! assert_ne!(anonymous, entry_key(&base, &["authorization"], &headers));
//! ```

use http::header::{HOST, VARY};
use http::{HeaderMap, Method, Uri};

use crate::key::hex_digest;

/// Bytes of SHA-256 kept in a key digest (128 bits).
const DIGEST_BYTES: usize = 16;

/// The base key of a request: `view:{namespace}:{digest}` over method class, host, path
/// and query.
pub fn base_key(namespace: &str, method: &Method, uri: &Uri, headers: &HeaderMap) -> String {
    let mut input = Vec::with_capacity(128);
    // HEAD is answered from the GET entry; other methods never reach the cache.
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    field(&mut input, method.as_bytes());
    match uri
        .authority()
        .map(|a| a.as_str().as_bytes())
        .or_else(|| headers.get(HOST).map(|h| h.as_bytes()))
    {
        Some(host) => {
            input.push(b'P');
            field(&mut input, &host.to_ascii_lowercase());
        }
        None => input.push(b'A'),
    }
    field(&mut input, uri.path().as_bytes());
    match uri.query() {
        Some(q) => {
            input.push(b'P');
            field(&mut input, q.as_bytes());
        }
        None => input.push(b'A'),
    }
    format!("view:{namespace}:{}", hex_digest(&input, DIGEST_BYTES))
}

/// The key of the manifest of header names stored under `base`.
pub fn manifest_key(base: &str) -> String {
    format!("{base}:vary")
}

/// The key of the response stored under `base` for a request with `headers`, varying on
/// `names` (lowercase header names; order and duplicates do not matter).
pub fn entry_key(base: &str, names: &[&str], headers: &HeaderMap) -> String {
    let mut names: Vec<&str> = names.to_vec();
    names.sort_unstable();
    names.dedup();
    let mut input = Vec::with_capacity(64);
    for name in names {
        field(&mut input, name.as_bytes());
        let values = headers.get_all(name);
        let mut iter = values.iter().peekable();
        if iter.peek().is_none() {
            input.push(b'A');
            continue;
        }
        input.push(b'P');
        let n = values.iter().count() as u64;
        input.extend_from_slice(&n.to_be_bytes());
        for value in iter {
            field(&mut input, value.as_bytes());
        }
    }
    format!("{base}:{}", hex_digest(&input, DIGEST_BYTES))
}

/// The lowercased header names a response's `Vary` lists, sorted, without duplicates.
///
/// ```
/// use cached_core::http::key::vary_names;
/// use http::{HeaderMap, HeaderValue};
/// let mut h = HeaderMap::new();
/// h.append("vary", HeaderValue::from_static("Accept-Language, accept"));
/// h.append("vary", HeaderValue::from_static("ACCEPT"));
/// assert_eq!(vary_names(&h), ["accept", "accept-language"]);
/// ```
pub fn vary_names(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Appends `bytes` with its length in front.
fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn uri(s: &str) -> Uri {
        s.parse().expect("test uri")
    }

    #[test]
    fn host_path_and_full_query_are_in_the_key() {
        let mut a = HeaderMap::new();
        a.insert(HOST, HeaderValue::from_static("a.example"));
        let mut b = HeaderMap::new();
        b.insert(HOST, HeaderValue::from_static("b.example"));
        let none = HeaderMap::new();
        let k = |u: &str, h: &HeaderMap| base_key("ns", &Method::GET, &uri(u), h);
        assert_ne!(k("/p", &a), k("/p", &b));
        assert_ne!(k("/p", &a), k("/p", &none));
        assert_ne!(k("/p", &a), k("/q", &a));
        assert_ne!(k("/p?x=1", &a), k("/p?x=2", &a));
        assert_ne!(k("/p?x=1&y=2", &a), k("/p?y=2&x=1", &a));
        assert_ne!(k("/p?", &a), k("/p", &a));
        assert_ne!(
            base_key("one", &Method::GET, &uri("/p"), &a),
            base_key("two", &Method::GET, &uri("/p"), &a)
        );
        let mut upper = HeaderMap::new();
        upper.insert(HOST, HeaderValue::from_static("A.EXAMPLE"));
        assert_eq!(k("/p", &a), k("/p", &upper));
    }

    #[test]
    fn absent_empty_and_repeated_headers_differ() {
        let base = "b";
        let absent = HeaderMap::new();
        let mut empty = HeaderMap::new();
        empty.insert("cookie", HeaderValue::from_static(""));
        let mut one = HeaderMap::new();
        one.insert("cookie", HeaderValue::from_static("a=1; b=2"));
        let mut two = HeaderMap::new();
        two.append("cookie", HeaderValue::from_static("a=1"));
        two.append("cookie", HeaderValue::from_static("b=2"));
        let keys: Vec<String> = [&absent, &empty, &one, &two]
            .iter()
            .map(|h| entry_key(base, &["cookie"], h))
            .collect();
        for i in 0..keys.len() {
            for j in 0..i {
                assert_ne!(keys[i], keys[j], "{i} vs {j}");
            }
        }
        assert_eq!(
            entry_key(base, &["cookie", "accept"], &one),
            entry_key(base, &["accept", "cookie", "cookie"], &one)
        );
        assert_ne!(
            entry_key(base, &["cookie"], &absent),
            entry_key(base, &["cookie", "accept"], &absent),
            "the set of names is part of the key"
        );
    }
}
