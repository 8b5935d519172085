//! One request through the HTTP cache: look it up, and store its response when the
//! predicate allows. Shared by [`CacheLayer`](super::CacheLayer) and `#[cache_view]`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_LOCATION, DATE, ETAG, EXPIRES, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use http_body::{Frame, SizeHint};

use super::cacheable::{may_look_up, may_store, NotStored};
use super::headers::{self, add_cache_status, ascii, if_none_match, strong_etag, CACHE_STATUS};
use super::key::{base_key, entry_key, manifest_key, vary_names};
use super::response::{now_ms, CachedResponse};
use crate::{Cache, CacheError, CacheSlot};

/// The request headers that carry credentials: always in the key unless shared.
const CREDENTIALS: [&str; 2] = ["authorization", "cookie"];

/// Resolves a named cache (the facade's `slot_get`).
pub(crate) type Resolver = fn(&CacheSlot) -> Result<Cache, CacheError>;

/// Where the HTTP cache finds its [`Cache`].
#[derive(Clone)]
pub(crate) enum Source {
    /// A named cache, resolved on each request (so `caches().insert` takes effect):
    /// through `resolve` when given (the facade's, which registers its backends first),
    /// else straight from the registry, which never records a failed resolution, so a
    /// backend registered later is picked up.
    Alias {
        alias: &'static str,
        slot: Arc<CacheSlot>,
        resolve: Option<Resolver>,
    },
    /// A given handle.
    Handle(Cache),
}

/// The options of one [`CacheLayer`](super::CacheLayer) or `#[cache_view]`.
#[derive(Clone)]
pub(crate) struct Options {
    pub(crate) source: Source,
    pub(crate) ttl: Option<Duration>,
    pub(crate) vary: Vec<HeaderName>,
    /// A `vary` name that is not a header name: caching is off (see `CacheLayer::vary`).
    pub(crate) invalid_vary: Option<String>,
    pub(crate) shared: bool,
    pub(crate) max_body: usize,
    pub(crate) namespace: String,
}

impl Options {
    fn cache(&self) -> Result<Cache, CacheError> {
        if let Some(name) = &self.invalid_vary {
            return Err(CacheError::config(
                "CacheLayer::vary",
                format!("`{name}` is not a header name; nothing is cached until it is fixed"),
            ));
        }
        match &self.source {
            Source::Alias {
                slot,
                resolve: Some(resolve),
                ..
            } => resolve(slot),
            Source::Alias { alias, .. } => crate::caches().get(alias),
            Source::Handle(cache) => Ok(cache.clone()),
        }
    }

    /// Every header name the entry key varies on, for a response that listed `learned`.
    fn key_names<'a>(&'a self, learned: &'a [String]) -> Vec<&'a str> {
        let mut names: Vec<&str> = learned.iter().map(String::as_str).collect();
        names.extend(self.vary.iter().map(HeaderName::as_str));
        if !self.shared {
            names.extend(CREDENTIALS);
        }
        names
    }
}

/// A request that was not answered from the cache: pass its response to
/// [`finish`](Exchange::finish).
pub(crate) struct Exchange {
    opts: Arc<Options>,
    state: State,
}

enum State {
    Bypass(NotStored),
    Miss {
        cache: Option<Cache>,
        head: bool,
        base: String,
        request: HeaderMap,
    },
}

impl Exchange {
    /// Looks the request up: `Ok` is the answer from the cache, `Err` the exchange to
    /// finish with the handler's response.
    pub(crate) async fn begin(
        opts: &Arc<Options>,
        method: &Method,
        uri: &Uri,
        request: &HeaderMap,
    ) -> Result<Response, Exchange> {
        if let Err(reason) = may_look_up(method) {
            return Err(Exchange {
                opts: Arc::clone(opts),
                state: State::Bypass(reason),
            });
        }
        let head = method == Method::HEAD;
        let base = base_key(&opts.namespace, method, uri, request);
        let cache = match opts.cache() {
            Ok(cache) => Some(cache),
            Err(e) => {
                if may_log() {
                    tracing::warn!(error = %e, "the HTTP cache's backend is unavailable; serving uncached");
                }
                None
            }
        };
        if let Some(cache) = &cache {
            if let Some(hit) = look_up(opts, cache, &base, request, head).await {
                return Ok(hit);
            }
        }
        Err(Exchange {
            opts: Arc::clone(opts),
            state: State::Miss {
                cache,
                head,
                base,
                request: request.clone(),
            },
        })
    }

    /// Whether the request was a `HEAD` (the handler is then called as for `GET`).
    pub(crate) fn is_head(&self) -> bool {
        matches!(self.state, State::Miss { head: true, .. })
    }

    /// Stores the handler's response if the predicate allows, and returns it with the
    /// cache's headers.
    pub(crate) async fn finish(self, response: Response) -> Response {
        let (cache, head, base, request) = match self.state {
            State::Bypass(reason) => return pass(response, reason, false),
            State::Miss {
                cache,
                head,
                base,
                request,
            } => (cache, head, base, request),
        };
        let opts = &self.opts;
        let limit = opts.max_body as u64;
        let (mut parts, body) = response.into_parts();
        let check = |headers: &HeaderMap, len: u64| {
            may_store(&Method::GET, &request, parts.status, headers, len, limit)
        };
        if let Err(reason) = check(&parts.headers, 0) {
            return pass(Response::from_parts(parts, body), reason, head);
        }
        let Some(cache) = cache else {
            return pass(
                Response::from_parts(parts, body),
                NotStored::CacheError,
                head,
            );
        };
        let bytes = match read_limited(body, opts.max_body).await {
            Ok(bytes) => bytes,
            Err((body, reason)) => return pass(Response::from_parts(parts, body), reason, head),
        };
        if let Err(reason) = check(&parts.headers, bytes.len() as u64) {
            return pass(Response::from_parts(parts, Body::from(bytes)), reason, head);
        }
        let ttl = opts.ttl.unwrap_or_else(|| cache.default_ttl());
        let etag = match parts.headers.get(ETAG) {
            Some(tag) => tag.clone(),
            None => strong_etag(&bytes),
        };
        let entry = CachedResponse::new(parts.status, &parts.headers, bytes, etag, ttl);
        let learned = vary_names(&parts.headers);
        let key = entry_key(&base, &opts.key_names(&learned), &request);
        // The entry first: a reader that finds the manifest finds the entry too.
        let stored = cache.set(&key, &entry, ttl).await.is_ok()
            && cache.set(&manifest_key(&base), &learned, ttl).await.is_ok();
        let status = match stored {
            true => headers::stored(),
            false => headers::not_stored(NotStored::CacheError),
        };
        // Fresh: it states the whole ttl, however long the store took.
        decorate(&mut parts.headers, &entry, status, None, entry.stored_at_ms);
        respond(
            parts.status,
            parts.headers,
            &entry,
            &request,
            head,
            Some(parts.extensions),
        )
    }
}

/// Whether to log an unavailable cache now: at most once every 10 seconds.
fn may_log() -> bool {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_ms();
    let last = LAST.load(Ordering::Relaxed);
    (last == 0 || now.saturating_sub(last) >= 10_000)
        && LAST
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// The cached answer to a request, if any.
async fn look_up(
    opts: &Options,
    cache: &Cache,
    base: &str,
    request: &HeaderMap,
    head: bool,
) -> Option<Response> {
    let learned: Vec<String> = cache.get(&manifest_key(base)).await.ok()??;
    let key = entry_key(base, &opts.key_names(&learned), request);
    let entry: CachedResponse = cache.get(&key).await.ok()??;
    let now = now_ms();
    let remaining = entry.remaining_ms(now);
    if remaining == 0 {
        return None;
    }
    let (status, mut headers) = entry.header_map();
    let age = entry.age_ms(now) / 1000;
    decorate(
        &mut headers,
        &entry,
        headers::hit(remaining / 1000),
        Some(age),
        now,
    );
    Some(respond(status, headers, &entry, request, head, None))
}

/// Adds `ETag`, `Cache-Control`, `Expires`, `Age` (on hits) and `Cache-Status`.
fn decorate(
    headers: &mut HeaderMap,
    entry: &CachedResponse,
    status: HeaderValue,
    age: Option<u64>,
    now: u64,
) {
    if !headers.contains_key(ETAG) {
        if let Some(tag) = entry.etag() {
            headers.insert(ETAG, tag);
        }
    }
    if !headers.contains_key(CACHE_CONTROL) {
        let max_age = entry.remaining_ms(now) / 1000;
        headers.insert(CACHE_CONTROL, ascii(format!("max-age={max_age}")));
    }
    if !headers.contains_key(EXPIRES) {
        if let Some(expires) = entry.expires_header() {
            headers.insert(EXPIRES, expires);
        }
    }
    if let Some(age) = age {
        headers.insert(http::header::AGE, HeaderValue::from(age));
    }
    add_cache_status(headers, status);
}

/// The response for a stored entry: `304` when `If-None-Match` matches, no body for
/// `HEAD`, the stored body otherwise.
fn respond(
    status: StatusCode,
    mut headers: HeaderMap,
    entry: &CachedResponse,
    request: &HeaderMap,
    head: bool,
    extensions: Option<http::Extensions>,
) -> Response {
    let matched = headers
        .get(ETAG)
        .is_some_and(|tag| if_none_match(request, tag));
    let mut response = if matched {
        // RFC 9110 §15.4.5: only the validators and caching metadata of the 200.
        let mut kept = HeaderMap::new();
        for name in [CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, VARY] {
            for v in headers.get_all(&name) {
                kept.append(name.clone(), v.clone());
            }
        }
        for name in [http::header::AGE, HeaderName::from_static(CACHE_STATUS)] {
            if let Some(v) = headers.get(&name) {
                kept.insert(name, v.clone());
            }
        }
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        *r.headers_mut() = kept;
        r
    } else if head {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(entry.body.len()));
        let mut r = Response::new(Body::empty());
        *r.status_mut() = status;
        *r.headers_mut() = headers;
        r
    } else {
        let mut r = Response::new(Body::from(entry.body.clone()));
        *r.status_mut() = status;
        *r.headers_mut() = headers;
        r
    };
    if let Some(ext) = extensions {
        *response.extensions_mut() = ext;
    }
    response
}

/// A response that is not stored: unchanged but for `Cache-Status` (and no body for `HEAD`).
fn pass(mut response: Response, reason: NotStored, head: bool) -> Response {
    add_cache_status(response.headers_mut(), headers::not_stored(reason));
    if head {
        *response.body_mut() = Body::empty();
    }
    response
}

/// Reads `body` whole if it ends within `limit` bytes with no trailers. Otherwise gives
/// back a body replaying what was read followed by the rest, and why it is not stored.
async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, (Body, NotStored)> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        let (pending, reason) = match frame {
            None => return Ok(concat(chunks, len)),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    len = len.saturating_add(data.len());
                    chunks.push(data);
                    if len <= limit {
                        continue;
                    }
                    (None, NotStored::TooLarge)
                }
                Err(trailers) => (Some(Ok(trailers)), NotStored::Trailers),
            },
            Some(Err(e)) => (Some(Err(e)), NotStored::BodyError),
        };
        let replay = Replay {
            chunks: chunks.into(),
            pending,
            rest: Some(body),
        };
        return Err((Body::new(replay), reason));
    }
}

fn concat(mut chunks: Vec<Bytes>, len: usize) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut out = BytesMut::with_capacity(len);
    for c in chunks {
        out.extend_from_slice(&c);
    }
    out.freeze()
}

/// A body that replays frames already read, then streams the rest of the original.
struct Replay {
    chunks: VecDeque<Bytes>,
    pending: Option<Result<Frame<Bytes>, axum::Error>>,
    rest: Option<Body>,
}

impl HttpBody for Replay {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Some(chunk) = this.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if let Some(pending) = this.pending.take() {
            if pending.is_err() {
                this.rest = None;
            }
            return Poll::Ready(Some(pending));
        }
        match &mut this.rest {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
            && self.pending.is_none()
            && self.rest.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self.chunks.iter().map(|c| c.len() as u64).sum();
        let mut hint = match (&self.rest, &self.pending) {
            (Some(rest), None) => rest.size_hint(),
            _ => SizeHint::new(),
        };
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper.saturating_add(buffered));
        }
        hint.set_lower(hint.lower().saturating_add(buffered));
        hint
    }
}
