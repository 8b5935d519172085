//! The stored form of a response: status, headers and body, plus what the cache needs
//! to answer from it (its `ETag` and when it expires). Serializable, so it is stored
//! through every backend and codec.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

/// A response as the HTTP cache stores it: cheap to clone (an in-memory hit clones
/// only a reference count), serialized as its [`Stored`] fields.
#[derive(Clone, Debug)]
pub(crate) struct CachedResponse(Arc<Stored>);

impl std::ops::Deref for CachedResponse {
    type Target = Stored;

    fn deref(&self) -> &Stored {
        &self.0
    }
}

impl Serialize for CachedResponse {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CachedResponse {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Stored::deserialize(deserializer).map(|stored| CachedResponse(Arc::new(stored)))
    }
}

/// The fields of a [`CachedResponse`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub(crate) status: u16,
    /// The handler's headers, in order, names lowercase.
    pub(crate) headers: Vec<(String, Bytes)>,
    pub(crate) body: Bytes,
    /// The `ETag` to validate against: the handler's own, or a strong SHA-256 of the body.
    pub(crate) etag: Bytes,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub(crate) stored_at_ms: u64,
    /// How long it is fresh, in milliseconds.
    pub(crate) ttl_ms: u64,
    /// Status and headers parsed once, on the first hit that needs them.
    #[serde(skip)]
    parsed: OnceLock<(StatusCode, HeaderMap)>,
    /// The `Expires` value, formatted once (it depends only on the entry).
    #[serde(skip)]
    expires: OnceLock<Option<HeaderValue>>,
}

impl CachedResponse {
    pub(crate) fn new(
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        etag: HeaderValue,
        ttl: Duration,
    ) -> Self {
        CachedResponse(Arc::new(Stored {
            status: status.as_u16(),
            headers: headers
                .iter()
                .filter(|(n, _)| !is_hop_by_hop(n, headers))
                .map(|(n, v)| (n.as_str().to_owned(), Bytes::copy_from_slice(v.as_bytes())))
                .collect(),
            body,
            etag: Bytes::copy_from_slice(etag.as_bytes()),
            stored_at_ms: now_ms(),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            parsed: OnceLock::new(),
            expires: OnceLock::new(),
        }))
    }
}

impl Stored {
    /// The stored status and headers; entries that no longer parse are dropped.
    pub(crate) fn header_map(&self) -> (StatusCode, HeaderMap) {
        let (status, map) = self.parsed.get_or_init(|| self.parse_headers());
        (*status, map.clone())
    }

    fn parse_headers(&self) -> (StatusCode, HeaderMap) {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut map = HeaderMap::with_capacity(self.headers.len() + 6);
        for (name, value) in &self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                map.append(n, v);
            }
        }
        (status, map)
    }

    pub(crate) fn etag(&self) -> Option<HeaderValue> {
        HeaderValue::from_bytes(&self.etag).ok()
    }

    /// Milliseconds since it was stored, at `now_ms`.
    pub(crate) fn age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.stored_at_ms)
    }

    /// Milliseconds it stays fresh, at `now_ms`.
    pub(crate) fn remaining_ms(&self, now_ms: u64) -> u64 {
        self.ttl_ms.saturating_sub(self.age_ms(now_ms))
    }

    /// The `Expires` header for this entry, formatted on first use.
    pub(crate) fn expires_header(&self) -> Option<HeaderValue> {
        self.expires
            .get_or_init(|| {
                let at = self.expires_at()?;
                HeaderValue::try_from(super::headers::http_date(at)).ok()
            })
            .clone()
    }

    /// When it expires, if that is representable.
    pub(crate) fn expires_at(&self) -> Option<SystemTime> {
        UNIX_EPOCH.checked_add(Duration::from_millis(
            self.stored_at_ms.checked_add(self.ttl_ms)?,
        ))
    }
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
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|listed| listed.trim().eq_ignore_ascii_case(name.as_str()))
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_not_stored() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, X-Hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        h.append("x-kept", HeaderValue::from_static("a"));
        h.append("x-kept", HeaderValue::from_static("b"));
        let entry = CachedResponse::new(
            StatusCode::OK,
            &h,
            Bytes::from_static(b"x"),
            HeaderValue::from_static("\"e\""),
            Duration::from_secs(1),
        );
        let (_, stored) = entry.header_map();
        let names: Vec<&str> = stored.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["content-type", "x-kept"]);
        assert_eq!(stored.get_all("x-kept").iter().count(), 2);
    }
}
