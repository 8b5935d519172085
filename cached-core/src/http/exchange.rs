//! One request through the HTTP cache: look it up, and store its response when the
//! predicate allows. Shared by [`CacheLayer`](super::CacheLayer) and `#[cache_view]`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::body::{Body, HttpBody};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use http::header::{
    AGE, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_LOCATION, COOKIE, DATE, ETAG,
    EXPIRES, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use http_body::{Frame, SizeHint};

use super::cacheable::{judge, may_look_up, request_no_store, NotStored, MAX_VARY};
use super::entry::{epoch_ms, now_ms, Entry};
use super::flight::{Flights, Handoff, Joined, Lead, Outcome};
use super::headers::{self, add_cache_status, if_none_match, Freshness, CACHE_STATUS};
use super::key::{Base, Label};
use crate::log::RateLimited;
use crate::observe::{self, ViewStatus};
use crate::{Cache, CacheError, CacheSlot};

/// Resolves a named cache (the facade's `slot_get`).
pub(crate) type Resolver = fn(&CacheSlot) -> Result<Cache, CacheError>;

/// Where the HTTP cache finds its [`Cache`].
#[derive(Clone)]
pub(crate) enum Source {
    /// A named cache, resolved on each request (so `caches().insert` takes effect):
    /// through `resolve` when given (the facade's, which registers its backends first),
    /// else through the slot, which rereads the registry only when it changed and never
    /// records a failed resolution, so a backend registered later is picked up.
    Alias {
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
    /// The configured names, as given.
    pub(crate) vary: Vec<HeaderName>,
    /// A `vary` name that is not a header name: caching is off (see `CacheLayer::vary`).
    pub(crate) invalid_vary: Option<String>,
    pub(crate) shared: bool,
    pub(crate) max_body: usize,
    pub(crate) namespace: String,
    /// Derived by [`Options::derive`]: what every entry key varies on (the configured
    /// names and, unless shared, the credentials), sorted, without duplicates.
    names: Vec<HeaderName>,
    /// Derived: the readable start of this cache's keys.
    label: Label,
    /// What this process learned while serving; a clone starts afresh.
    live: Live,
}

/// The per-process state of one layer or view.
#[derive(Default)]
struct Live {
    /// Whether a response here listed `Vary` names beyond [`Options::names`]: lookups then
    /// read the URL's manifest first. Until then they read the entry straight away.
    varies: AtomicBool,
    flights: Flights,
}

impl Clone for Live {
    fn clone(&self) -> Self {
        Live::default()
    }
}

impl Options {
    pub(crate) fn new(source: Source, namespace: String) -> Self {
        let mut opts = Options {
            source,
            ttl: None,
            vary: Vec::new(),
            invalid_vary: None,
            shared: false,
            max_body: super::DEFAULT_MAX_BODY,
            label: Label::new(&namespace),
            namespace,
            names: Vec::new(),
            live: Live::default(),
        };
        opts.derive();
        opts
    }

    /// Recomputes the derived fields after a change.
    pub(crate) fn derive(&mut self) {
        let credentials = [AUTHORIZATION, COOKIE];
        let extra = if self.shared {
            &[][..]
        } else {
            &credentials[..]
        };
        self.names = merged(&self.vary, extra);
        self.label = Label::new(&self.namespace);
    }

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
            Source::Alias { slot, .. } => slot.get(),
            Source::Handle(cache) => Ok(cache.clone()),
        }
    }

    /// Whether `learned` names a header the keys do not already vary on.
    fn adds_to_names(&self, learned: &[HeaderName]) -> bool {
        learned.iter().any(|n| !self.names.contains(n))
    }
}

/// `a` and `b` together, sorted, without duplicates.
fn merged(a: &[HeaderName], b: &[HeaderName]) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = a.iter().chain(b).cloned().collect();
    names.sort_unstable_by(|x, y| x.as_str().cmp(y.as_str()));
    names.dedup();
    names
}

/// The outcome of looking a request up: the answer from the cache, or the request to
/// finish with the handler's response.
///
/// ```
/// use cached_core::http::view::{Lookup, Response};
/// fn describe<M>(lookup: &Lookup<M>) -> &'static str {
///     match lookup {
///         Lookup::Hit(_) => "answered from the cache",
///         Lookup::Miss(_) => "the handler runs",
///     }
/// }
/// assert_eq!(describe(&Lookup::<()>::Hit(Response::default())), "answered from the cache");
/// ```
#[derive(Debug)]
pub enum Lookup<M> {
    /// The response, from the cache.
    Hit(Response),
    /// Not answered from the cache: run the handler and finish this with its response.
    Miss(M),
}

/// A request that was not answered from the cache: pass its response to
/// [`finish`](Exchange::finish).
pub(crate) struct Exchange {
    opts: Arc<Options>,
    /// A `HEAD` request: answered without a body, from the `GET` it shares an entry with.
    omit_body: bool,
    state: State,
}

enum State {
    Bypass(NotStored),
    Miss(Box<Miss>),
}

struct Miss {
    /// `None` when the cache could not be resolved.
    cache: Option<(Cache, Base)>,
    request: HeaderMap,
    /// Held while the handler runs, when other requests wait for this one.
    lead: Option<Lead>,
}

/// What a read found.
enum Found {
    /// A fresh entry, and the time (milliseconds since the epoch) it was found fresh at.
    Entry(Entry, u64),
    /// Nothing fresh under this stored key.
    Missing(String),
}

/// How far [`Exchange::begin_now`] got.
pub(crate) enum Begun {
    /// The lookup is done.
    Done(Lookup<Exchange>),
    /// The rest needs waiting: finish it with [`Rest::settle`].
    Pending(Rest),
}

/// What [`Exchange::begin_now`] could not finish without awaiting: a first read that
/// must be awaited, or a miss (which may wait for another request).
pub(crate) struct Rest {
    cache: Cache,
    base: Base,
    omit_body: bool,
    /// The counted first read, when it was done.
    first: Option<Found>,
}

impl Exchange {
    /// Looks the request up, as far as that needs no waiting: a bypass, a cache that
    /// cannot be resolved, and, with a backend that answers at once (in memory), the
    /// first read and so every hit. The rest ([`Rest::settle`]: an awaited backend, a
    /// miss, which joins or leads the flight of its key) is returned for the caller to
    /// box: the future of a hit, part of every cached handler's, stays small (a handler
    /// future over a kilobyte also costs the allocator a consolidation per request).
    pub(crate) fn begin_now(
        opts: &Arc<Options>,
        method: &Method,
        target: &Uri,
        request: &HeaderMap,
    ) -> Begun {
        let omit_body = method == Method::HEAD;
        let exchange = |state| Exchange {
            opts: Arc::clone(opts),
            omit_body,
            state,
        };
        if let Err(reason) = may_look_up(method, target, request) {
            return Begun::Done(Lookup::Miss(exchange(State::Bypass(reason))));
        }
        let cache = match opts.cache() {
            Ok(cache) => cache,
            Err(e) => {
                static LOG: RateLimited = RateLimited::new();
                if let Some(suppressed) = LOG.allow() {
                    tracing::warn!(error = %e, suppressed, "the HTTP cache's backend is unavailable; serving uncached");
                }
                let miss = Miss {
                    cache: None,
                    request: request.clone(),
                    lead: None,
                };
                return Begun::Done(Lookup::Miss(exchange(State::Miss(Box::new(miss)))));
            }
        };
        let base = Base::new(method, target, request);
        // The first read is the one the cache's stats count: one lookup per request.
        let first = find_now(opts, &cache, &base, request);
        if let Some(Found::Entry(entry, now)) = &first {
            return Begun::Done(Lookup::Hit(hit(entry, *now, request, omit_body)));
        }
        Begun::Pending(Rest {
            cache,
            base,
            omit_body,
            first,
        })
    }

    /// Whether the handler must run as `GET` (the request was a `HEAD` that shares the
    /// `GET` entry).
    pub(crate) fn runs_as_get(&self) -> bool {
        self.omit_body && matches!(self.state, State::Miss(_))
    }

    /// Stores the handler's response if the predicate allows, and returns it with the
    /// cache's headers.
    pub(crate) async fn finish(self, response: Response) -> Response {
        let miss = match self.state {
            State::Bypass(reason) => return pass(response, reason, self.omit_body),
            State::Miss(miss) => *miss,
        };
        let Miss {
            cache,
            request,
            lead,
        } = miss;
        let (response, handoff) =
            store(&self.opts, cache, &request, self.omit_body, response).await;
        if let Some(lead) = lead {
            lead.finish(match handoff {
                Some(handoff) => Outcome::Stored(handoff),
                None => Outcome::NotStored,
            });
        }
        response
    }
}

impl Rest {
    /// The rest of [`Exchange::begin_now`]: the first read if it was not done, then, on
    /// a miss, lead or follow the flight of its key.
    pub(crate) async fn settle(self, opts: &Arc<Options>, request: &HeaderMap) -> Lookup<Exchange> {
        let Rest {
            cache,
            base,
            omit_body,
            first,
        } = self;
        let mut found = match first {
            Some(found) => found,
            None => find(opts, &cache, &base, request, true).await,
        };
        let lead = loop {
            let key = match found {
                Found::Entry(entry, now) => {
                    return Lookup::Hit(hit(&entry, now, request, omit_body))
                }
                Found::Missing(key) => key,
            };
            if request_no_store(request) {
                // Its response will not be stored: nobody waits for it.
                break None;
            }
            match opts.live.flights.join(key) {
                Joined::Lead(lead) => {
                    // A flight that ended between the read and the join stored first.
                    if let Found::Entry(entry, now) =
                        find(opts, &cache, &base, request, false).await
                    {
                        return Lookup::Hit(hit(&entry, now, request, omit_body));
                    }
                    break Some(lead);
                }
                Joined::Follow(follow) => match follow.wait().await {
                    Some(Outcome::Stored(handoff)) => {
                        let names = merged(&opts.names, &handoff.learned);
                        if base.entry(&cache, &opts.label, &names, request) == handoff.key {
                            let entry = &handoff.entry;
                            return Lookup::Hit(hit(entry, now_ms(), request, omit_body));
                        }
                        // It varies on a header this request sends otherwise.
                        break None;
                    }
                    Some(_) => break None,
                    // The leader went away: look again, and lead if nobody does.
                    None => found = find(opts, &cache, &base, request, false).await,
                },
            }
        };
        let miss = Miss {
            cache: Some((cache, base)),
            request: request.clone(),
            lead,
        };
        Lookup::Miss(Exchange {
            opts: Arc::clone(opts),
            omit_body,
            state: State::Miss(Box::new(miss)),
        })
    }
}

/// [`find`]'s counted first read for a backend that answers at once; `None` when the
/// backend must be awaited (nothing was read or counted then).
fn find_now(opts: &Options, cache: &Cache, base: &Base, request: &HeaderMap) -> Option<Found> {
    if opts.live.varies.load(Ordering::Relaxed) {
        let learned = learned(cache.fetch_now(&base.manifest(cache, &opts.label), false)?);
        let key = base.entry(cache, &opts.label, &merged(&opts.names, &learned), request);
        let read = cache.fetch_now(&key, true)?;
        return Some(fresh(read, key));
    }
    let key = base.entry(cache, &opts.label, &opts.names, request);
    let found = fresh(cache.fetch_now(&key, true)?, key);
    let Found::Missing(key) = found else {
        return Some(found);
    };
    // As in `find`; a manifest that must be awaited is left to the miss (a guess that
    // finds nothing is safe).
    let Some(manifest) = cache.fetch_now(&base.manifest(cache, &opts.label), false) else {
        return Some(Found::Missing(key));
    };
    let learned = learned(manifest);
    if !opts.adds_to_names(&learned) {
        return Some(Found::Missing(key));
    }
    opts.live.varies.store(true, Ordering::Relaxed);
    let key = base.entry(cache, &opts.label, &merged(&opts.names, &learned), request);
    match cache.fetch_now(&key, false) {
        Some(read) => Some(fresh(read, key)),
        None => Some(Found::Missing(key)),
    }
}

/// Finds the entry for a request.
///
/// Until a response of this layer or view lists `Vary` names beyond the configured ones,
/// the entry is read straight away (one read per hit); the URL's manifest is read only
/// after a miss, in case another process learned names. After that, the manifest is read
/// first. Any guess is safe: an entry is stored under the names its response varies on,
/// so a key built from other names finds nothing rather than a wrong variant.
async fn find(
    opts: &Options,
    cache: &Cache,
    base: &Base,
    request: &HeaderMap,
    count: bool,
) -> Found {
    if opts.live.varies.load(Ordering::Relaxed) {
        let learned = manifest(opts, cache, base).await;
        let key = base.entry(cache, &opts.label, &merged(&opts.names, &learned), request);
        return fresh(cache.fetch(&key, count).await, key);
    }
    let key = base.entry(cache, &opts.label, &opts.names, request);
    let found = fresh(cache.fetch(&key, count).await, key);
    let Found::Missing(key) = found else {
        return found;
    };
    let learned = manifest(opts, cache, base).await;
    if !opts.adds_to_names(&learned) {
        return Found::Missing(key);
    }
    opts.live.varies.store(true, Ordering::Relaxed);
    let key = base.entry(cache, &opts.label, &merged(&opts.names, &learned), request);
    fresh(cache.fetch(&key, false).await, key)
}

/// The header names the URL's manifest lists.
async fn manifest(opts: &Options, cache: &Cache, base: &Base) -> Vec<HeaderName> {
    let key = base.manifest(cache, &opts.label);
    learned(cache.fetch(&key, false).await)
}

/// The header names a manifest read found (none when it is absent or unusable: a
/// foreign or corrupt manifest makes lookups guess, which is safe).
fn learned(read: Result<Option<Vec<String>>, CacheError>) -> Vec<HeaderName> {
    let Ok(Some(names)) = read else {
        return Vec::new();
    };
    if names.len() > MAX_VARY {
        return Vec::new();
    }
    names
        .iter()
        .map(|n| HeaderName::from_bytes(n.as_bytes()))
        .collect::<Result<_, _>>()
        .unwrap_or_default()
}

/// What an entry read found, at the current time.
fn fresh(read: Result<Option<Entry>, CacheError>, key: String) -> Found {
    let Ok(Some(entry)) = read else {
        return Found::Missing(key);
    };
    let now = now_ms();
    match entry.remaining_ms(now) {
        0 => Found::Missing(key),
        _ => Found::Entry(entry, now),
    }
}

/// The answer from a stored entry: its headers plus `Age` and `Cache-Status`.
fn hit(entry: &Entry, now: u64, request: &HeaderMap, omit_body: bool) -> Response {
    observe::view_response(ViewStatus::Hit);
    let (status, stored) = entry.parts();
    // The stored map holds placeholders for these two: replacing them does not grow it.
    let mut headers = stored.clone();
    headers.insert(AGE, HeaderValue::from(entry.age_ms(now) / 1000));
    headers.insert(
        CACHE_STATUS,
        headers::hit(entry.upstream(), entry.remaining_ms(now) / 1000),
    );
    reply(*status, headers, &entry.body, request, omit_body)
}

/// Stores the handler's response if allowed; returns it with the cache's headers, and
/// what the leader hands to its followers.
async fn store(
    opts: &Options,
    cache: Option<(Cache, Base)>,
    request: &HeaderMap,
    omit_body: bool,
    response: Response,
) -> (Response, Option<Arc<Handoff>>) {
    let limit = opts.max_body as u64;
    let now = SystemTime::now();
    let (mut parts, body) = response.into_parts();
    if let Err(reason) = judge(request, parts.status, &parts.headers, 0, limit, now) {
        return (
            pass(Response::from_parts(parts, body), reason, omit_body),
            None,
        );
    }
    let Some((cache, base)) = cache else {
        let response = Response::from_parts(parts, body);
        return (pass(response, NotStored::CacheError, omit_body), None);
    };
    let bytes = match read_limited(body, opts.max_body).await {
        Ok(bytes) => bytes,
        Err((body, reason)) => {
            return (
                pass(Response::from_parts(parts, body), reason, omit_body),
                None,
            )
        }
    };
    let rejected = |parts, bytes, reason| {
        let response = Response::from_parts(parts, Body::from(bytes));
        (pass(response, reason, omit_body), None)
    };
    let storable = match judge(
        request,
        parts.status,
        &parts.headers,
        bytes.len() as u64,
        limit,
        now,
    ) {
        Ok(storable) => storable,
        Err(reason) => return rejected(parts, bytes, reason),
    };
    let names = merged(&opts.names, &storable.vary);
    if names.len() > MAX_VARY {
        return rejected(parts, bytes, NotStored::Vary);
    }
    let ttl = opts.ttl.unwrap_or_else(|| cache.default_ttl());
    let lifetime = storable.cap.map_or(ttl, |cap| cap.min(ttl));
    if lifetime.is_zero() {
        return rejected(parts, bytes, NotStored::Expired);
    }
    let unlisted: Vec<HeaderName> = opts
        .vary
        .iter()
        .filter(|n| !storable.vary.contains(n))
        .cloned()
        .collect();
    let stored_at_ms = epoch_ms(now);
    let freshness = Freshness {
        directives: &storable.directives,
        lifetime,
        private: !opts.shared
            && (request.contains_key(AUTHORIZATION) || request.contains_key(COOKIE)),
        stored_at_ms,
        vary: &unlisted,
    };
    headers::patch(&mut parts.headers, &freshness, &bytes);
    let entry = Entry::new(parts.status, &parts.headers, bytes, stored_at_ms, lifetime);
    let key = base.entry(&cache, &opts.label, &names, request);
    let learned: Vec<String> = storable
        .vary
        .iter()
        .map(|n| n.as_str().to_owned())
        .collect();
    // The entry first: a reader that finds the manifest finds the entry too. Both are
    // written with the logical key (the stored key less the cache's head).
    let head = cache.head().len();
    let stored = cache.set(&key[head..], &entry, lifetime).await.is_ok()
        && cache
            .set(
                &base.manifest(&cache, &opts.label)[head..],
                &learned,
                lifetime,
            )
            .await
            .is_ok();
    if opts.adds_to_names(&storable.vary) {
        opts.live.varies.store(true, Ordering::Relaxed);
    }
    observe::view_response(match stored {
        true => ViewStatus::Stored,
        false => ViewStatus::not_stored(NotStored::CacheError),
    });
    let status = match stored {
        true => headers::stored(),
        false => headers::not_stored(NotStored::CacheError),
    };
    add_cache_status(&mut parts.headers, status);
    let mut response = reply(parts.status, parts.headers, &entry.body, request, omit_body);
    *response.extensions_mut() = parts.extensions;
    let handoff = stored.then(|| {
        Arc::new(Handoff {
            key,
            learned: storable.vary,
            entry,
        })
    });
    (response, handoff)
}

/// The response for a stored entry's status, headers and body: `304` when
/// `If-None-Match` matches its `ETag`, no body for `HEAD`, the body otherwise.
fn reply(
    status: StatusCode,
    mut headers: HeaderMap,
    body: &Bytes,
    request: &HeaderMap,
    omit_body: bool,
) -> Response {
    let matched = request.contains_key(http::header::IF_NONE_MATCH)
        && headers
            .get(ETAG)
            .is_some_and(|tag| if_none_match(request, tag));
    if matched {
        // RFC 9110 §15.4.5: only the validators and caching metadata of the 200.
        let mut kept = HeaderMap::new();
        for name in [
            CACHE_CONTROL,
            CONTENT_LOCATION,
            DATE,
            ETAG,
            EXPIRES,
            VARY,
            AGE,
            CACHE_STATUS,
        ] {
            for v in headers.get_all(&name) {
                kept.append(name.clone(), v.clone());
            }
        }
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.headers_mut() = kept;
        return response;
    }
    let body = match omit_body {
        true => {
            if !headers.contains_key(CONTENT_LENGTH) {
                headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            }
            Body::empty()
        }
        false => Body::from(body.clone()),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A response that is not stored: unchanged but for `Cache-Status` (and no body for
/// `HEAD`).
fn pass(mut response: Response, reason: NotStored, omit_body: bool) -> Response {
    observe::view_response(ViewStatus::not_stored(reason));
    add_cache_status(response.headers_mut(), headers::not_stored(reason));
    if omit_body {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DummyBackend;
    use proptest::prelude::*;

    fn options(shared: bool, vary: &[&'static str]) -> Options {
        let mut opts = Options::new(
            Source::Handle(Cache::builder(DummyBackend::new()).build()),
            "ns".to_owned(),
        );
        opts.shared = shared;
        opts.vary = vary.iter().map(|n| HeaderName::from_static(n)).collect();
        opts.derive();
        opts
    }

    #[test]
    fn credentials_are_in_every_key_unless_shared() {
        let names = |o: &Options| -> Vec<String> {
            o.names.iter().map(|n| n.as_str().to_owned()).collect()
        };
        assert_eq!(names(&options(false, &[])), ["authorization", "cookie"]);
        assert_eq!(
            names(&options(false, &["x-tenant", "cookie"])),
            ["authorization", "cookie", "x-tenant"]
        );
        assert_eq!(names(&options(true, &["x-tenant"])), ["x-tenant"]);
        assert_eq!(names(&options(true, &[])), Vec::<String>::new());
    }

    /// A request header's value: absent, or any bytes a header may hold.
    fn value() -> impl Strategy<Value = Option<Vec<u8>>> {
        proptest::option::of(proptest::collection::vec(
            prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff],
            0..12,
        ))
    }

    fn request(authorization: &Option<Vec<u8>>, cookie: &Option<Vec<u8>>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, HeaderValue::from_static("shop.example"));
        for (name, v) in [(AUTHORIZATION, authorization), (COOKIE, cookie)] {
            if let Some(v) = v {
                if let Ok(v) = HeaderValue::from_bytes(v) {
                    h.insert(name, v);
                }
            }
        }
        h
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 1000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Two requests for one URL with different credentials never share an entry
        /// unless the view is shared, whatever the Vary names learned; a shared view
        /// gives them one.
        #[test]
        fn credentials_never_share_an_entry_unless_shared(
            a in (value(), value()),
            b in (value(), value()),
            learned in proptest::sample::subsequence(vec!["accept", "accept-language", "cookie"], 0..3),
        ) {
            let cache = Cache::builder(DummyBackend::new()).build();
            let target = Uri::from_static("/products?page=1");
            let (ra, rb) = (request(&a.0, &a.1), request(&b.0, &b.1));
            let learned: Vec<HeaderName> = learned.into_iter().map(HeaderName::from_static).collect();
            let same_credentials = ra.get(AUTHORIZATION) == rb.get(AUTHORIZATION)
                && ra.get(COOKIE) == rb.get(COOKIE);
            for shared in [false, true] {
                let opts = options(shared, &[]);
                let names = merged(&opts.names, &learned);
                let key = |r: &HeaderMap| {
                    Base::new(&Method::GET, &target, r).entry(&cache, &opts.label, &names, r)
                };
                let (ka, kb) = (key(&ra), key(&rb));
                if !shared {
                    prop_assert_eq!(ka == kb, same_credentials);
                } else if !learned.contains(&COOKIE) {
                    prop_assert_eq!(&ka, &kb);
                }
            }
        }
    }
}
