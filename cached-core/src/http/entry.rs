//! The stored forms: a response ([`Entry`]: status, the headers it is sent with, body,
//! and when it was stored for how long) and a URL's [`Manifest`]. Serializable, so they
//! are stored through every backend and codec; an entry is cheap to clone, so an
//! in-memory hit copies a reference count, not the body.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{AGE, CONNECTION, CONTENT_LENGTH};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

use super::headers::{self, CACHE_STATUS};

/// A response as the HTTP cache stores it, serialized as its [`Stored`] fields.
#[derive(Clone, Debug)]
pub(crate) struct Entry(Arc<Stored>);

impl std::ops::Deref for Entry {
    type Target = Stored;

    fn deref(&self) -> &Stored {
        &self.0
    }
}

impl Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Stored::deserialize(deserializer).map(|stored| Entry(Arc::new(stored)))
    }
}

/// The fields of an [`Entry`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Stored {
    status: u16,
    /// The headers it is sent with (`Cache-Control`, `Expires`, `ETag` as the cache
    /// wrote them), in order, names lowercase; no hop-by-hop header, `Age` or
    /// `Cache-Status`.
    headers: Vec<(String, Bytes)>,
    /// The `Cache-Status` entries of caches nearer the origin, joined; empty if none.
    upstream: String,
    pub(crate) body: Bytes,
    /// When it was stored, in milliseconds since the Unix epoch.
    stored_at_ms: u64,
    /// How long it is fresh, in milliseconds.
    lifetime_ms: u64,
    /// Status and headers parsed once, on the first hit that needs them.
    #[serde(skip)]
    parsed: OnceLock<(StatusCode, HeaderMap)>,
}

impl Entry {
    /// The entry for a response whose headers [`headers::patch`] wrote.
    pub(crate) fn new(
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        stored_at_ms: u64,
        lifetime: Duration,
    ) -> Self {
        Entry(Arc::new(Stored {
            status: status.as_u16(),
            headers: headers
                .iter()
                .filter(|(n, _)| **n != AGE && **n != CACHE_STATUS && !is_hop_by_hop(n, headers))
                .map(|(n, v)| (n.as_str().to_owned(), Bytes::copy_from_slice(v.as_bytes())))
                .collect(),
            upstream: headers::upstream(headers),
            body,
            stored_at_ms,
            lifetime_ms: u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX),
            parsed: OnceLock::new(),
        }))
    }
}

impl Stored {
    /// The stored status and the headers of a hit, parsed once: the stored headers
    /// (those that no longer parse are dropped), `Content-Length`, and placeholders for
    /// `Age` and `Cache-Status`, so that a hit clones this map and replaces two values
    /// without growing it.
    pub(crate) fn parts(&self) -> &(StatusCode, HeaderMap) {
        self.parsed.get_or_init(|| {
            let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
            let mut map = HeaderMap::with_capacity(self.headers.len() + 3);
            for (name, value) in &self.headers {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_bytes(value),
                ) {
                    if n != CONTENT_LENGTH {
                        map.append(n, v);
                    }
                }
            }
            map.insert(CONTENT_LENGTH, HeaderValue::from(self.body.len()));
            map.insert(AGE, HeaderValue::from_static("0"));
            map.insert(CACHE_STATUS, HeaderValue::from_static("cached-kit; hit"));
            (status, map)
        })
    }

    /// The `Cache-Status` entries of caches nearer the origin, joined.
    pub(crate) fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Milliseconds since it was stored, at `now_ms`.
    pub(crate) fn age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.stored_at_ms)
    }

    /// Milliseconds it stays fresh, at `now_ms`.
    pub(crate) fn remaining_ms(&self, now_ms: u64) -> u64 {
        self.lifetime_ms.saturating_sub(self.age_ms(now_ms))
    }

    /// Whether, at `now_ms`, it is past its lifetime by less than `window`.
    pub(crate) fn within_stale(&self, now_ms: u64, window: Duration) -> bool {
        let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        self.age_ms(now_ms) < self.lifetime_ms.saturating_add(window)
    }
}

/// What a URL's manifest records about the last response stored for it (Django's
/// `learn_cache_key`, plus tags): the request header names its `Vary` listed, and the
/// tags it was stored with. A lookup keys on the names; a miss reads the tags' versions
/// before its handler runs (see the exchange).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// Header names, lowercase.
    pub(crate) vary: Vec<String>,
    pub(crate) tags: Vec<String>,
}

/// Whether `name` is a hop-by-hop header, which a cache must not store (RFC 9111
/// §3.1): the fixed ones and any that `Connection` lists.
fn is_hop_by_hop(name: &HeaderName, headers: &HeaderMap) -> bool {
    const FIXED: [&str; 8] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    FIXED.contains(&name.as_str())
        || headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|listed| listed.trim().eq_ignore_ascii_case(name.as_str()))
}

/// Milliseconds since the Unix epoch at `at` (0 if the clock is before it).
pub(crate) fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    epoch_ms(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_age_and_cache_status_are_not_stored() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, X-Hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        h.insert("age", HeaderValue::from_static("5"));
        h.append("cache-status", HeaderValue::from_static("origin; hit"));
        h.append("cache-status", HeaderValue::from_static("edge; fwd=miss"));
        h.append("x-kept", HeaderValue::from_static("a"));
        h.append("x-kept", HeaderValue::from_static("b"));
        let entry = Entry::new(
            StatusCode::OK,
            &h,
            Bytes::from_static(b"x"),
            0,
            Duration::from_secs(1),
        );
        let (_, stored) = entry.parts();
        let names: Vec<&str> = stored.keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "x-kept",
                "content-length",
                "age",
                "cache-status"
            ],
            "the stored headers, then what a hit writes"
        );
        assert_eq!(stored["content-length"], "1");
        assert_eq!(stored.get_all("x-kept").iter().count(), 2);
        assert_eq!(entry.upstream(), "origin; hit, edge; fwd=miss");
    }

    #[test]
    fn age_and_remaining_freshness() {
        let entry = Entry::new(
            StatusCode::OK,
            &HeaderMap::new(),
            Bytes::new(),
            10_000,
            Duration::from_secs(60),
        );
        assert_eq!(entry.age_ms(12_500), 2_500);
        assert_eq!(entry.remaining_ms(12_500), 57_500);
        assert_eq!(entry.remaining_ms(100_000), 0);
        assert_eq!(entry.age_ms(0), 0, "a clock that went back");
    }
}
