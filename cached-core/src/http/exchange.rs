//! One request through the HTTP cache: look it up, and store its response when the
//! predicate allows. Shared by [`CacheLayer`](super::CacheLayer) and `#[cache_view]`.

use std::collections::VecDeque;
use std::future::Future;
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
use tokio::runtime::Handle;

use super::cacheable::{judge, may_look_up, request_no_store, NotStored, MAX_VARY};
use super::entry::{epoch_ms, now_ms, Entry, Manifest};
use super::flight::{Flights, Handoff, Joined, Lead, Outcome};
use super::headers::{self, add_cache_status, append_vary, if_none_match, Freshness, CACHE_STATUS};
use super::key::{Base, Label};
use super::CacheTags;
use crate::cache::fresh::Lookup as Read;
use crate::cache::tags::Stamps;
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
    /// How long past its lifetime an entry is served while one refresh runs.
    pub(crate) stale: Option<Duration>,
    /// The static tags of every stored response, as given.
    pub(crate) tags: Vec<String>,
    /// Derived by [`Options::derive`]: what every entry key varies on (the configured
    /// names and, unless shared, the credentials), sorted, without duplicates.
    names: Vec<HeaderName>,
    /// Derived: the same names as responses tell downstream caches in `Vary`: the
    /// configured ones as given, then, unless shared, `authorization` and `cookie`.
    downstream: Vec<HeaderName>,
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
    /// Misses running their handler, which concurrent misses of the key wait for.
    flights: Flights,
    /// Background refreshes of stale entries: one per key. Apart from `flights`, so a
    /// miss never waits for a refresh that nobody is waiting on.
    refreshes: Flights,
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
            stale: None,
            tags: Vec::new(),
            names: Vec::new(),
            downstream: Vec::new(),
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
        self.downstream = self.vary.clone();
        for name in extra {
            if !self.downstream.contains(name) {
                self.downstream.push(name.clone());
            }
        }
        self.label = Label::new(&self.namespace);
        self.stale = self.stale.filter(|s| !s.is_zero());
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

/// The outcome of looking a request up: the answer from the cache, a stale answer (and
/// perhaps the refresh to run), or the request to finish with the handler's response.
///
/// ```
/// use cached_core::http::view::{Lookup, Response};
/// fn describe<M>(lookup: &Lookup<M>) -> &'static str {
///     match lookup {
///         Lookup::Hit(_) => "answered from the cache",
///         Lookup::Stale(_) => "answered from the cache, stale, while one refresh runs",
///         Lookup::Miss(_) => "the handler runs",
///     }
/// }
/// assert_eq!(describe(&Lookup::<()>::Hit(Response::default())), "answered from the cache");
/// ```
#[derive(Debug)]
pub enum Lookup<M> {
    /// The response, from the cache.
    Hit(Response),
    /// The response, from the cache, past its lifetime but within the stale window.
    Stale(Stale<M>),
    /// Not answered from the cache: run the handler and finish this with its response.
    Miss(M),
}

/// A stale answer: the stored response, past its lifetime, and, when this request is the
/// one that refreshes its URL, the refresh to run in the background (its response is
/// stored, nobody waits for it).
///
/// ```
/// use cached_core::http::view::{Response, Stale};
/// fn answer<M, F: FnOnce(M)>(stale: Stale<M>, run: F) -> Response {
///     let (response, refresh) = stale.into_parts();
///     if let Some(refresh) = refresh {
///         run(refresh);
///     }
///     response
/// }
/// # let _ = answer::<(), fn(())>;
/// ```
#[derive(Debug)]
pub struct Stale<M> {
    response: Response,
    refresh: Option<M>,
}

impl<M> Stale<M> {
    /// The stale response, and the refresh when this request runs it.
    pub fn into_parts(self) -> (Response, Option<M>) {
        (self.response, self.refresh)
    }

    /// The stale response; a refresh it carried is dropped (another request runs one).
    pub fn serve(self) -> Response {
        self.response
    }

    pub(crate) fn map<N>(self, f: impl FnOnce(M) -> N) -> Stale<N> {
        Stale {
            response: self.response,
            refresh: self.refresh.map(f),
        }
    }
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
    /// Held while the handler runs, when other requests wait for this one (or, for a
    /// refresh, so that no other refresh of the key starts).
    lead: Option<Lead>,
    stamps: Stamping,
}

/// The versions of the tags a response will likely carry, read before its handler runs:
/// an invalidation that lands while it runs then makes the stored entry a miss (the
/// response may predate the change). Which tags: the view's static ones and those the
/// URL's last stored response carried (its manifest). Tags the response brings beyond
/// these are read after the handler ran.
enum Stamping {
    /// Not read yet: a refresh reads them when its task starts.
    Later,
    /// Read (`None`: no tag to read).
    Read(Option<Stamps>),
    /// The backend failed: a tagged response is not stored, since it could not be
    /// invalidated.
    Failed,
}

/// What a read found.
enum Found {
    /// A fresh entry, and the time (milliseconds since the epoch) it was found fresh at.
    Entry(Entry, u64),
    /// An entry past its lifetime, within the view's stale window: the time it was found
    /// at, and its stored key.
    Stale(Entry, u64, String),
    /// Nothing usable under this stored key; the tags the URL's last stored response
    /// carried, when its manifest was read.
    Missing(String, Vec<String>),
}

impl Found {
    /// This, with the tags of the manifest read along the way when it is a miss.
    fn learning(self, tags: Vec<String>) -> Found {
        match self {
            Found::Missing(key, _) => Found::Missing(key, tags),
            found => found,
        }
    }
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
                    stamps: Stamping::Read(None),
                };
                return Begun::Done(Lookup::Miss(exchange(State::Miss(Box::new(miss)))));
            }
        };
        let base = Base::new(method, target, request);
        // The first read is the one the cache's stats count: one lookup per request.
        let first = match find_now(opts, &cache, &base, request) {
            Some(Found::Entry(entry, now)) => {
                let mut response = hit(&entry, now, request, omit_body);
                // Near-tier hook: a hit read at once from a two-tier cache came from its
                // near tier.
                headers::detail_near(response.headers_mut(), cache.near_tier());
                return Begun::Done(Lookup::Hit(response));
            }
            Some(Found::Stale(entry, now, key)) => {
                let stale = stale(opts, (cache, base), key, &entry, now, request, omit_body);
                return Begun::Done(Lookup::Stale(stale));
            }
            first => first,
        };
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
            stamps,
        } = miss;
        let (response, handoff) = store(
            &self.opts,
            cache,
            &request,
            self.omit_body,
            stamps,
            response,
        )
        .await;
        if let Some(lead) = lead {
            lead.finish(match handoff {
                Some(handoff) => Outcome::Stored(handoff),
                None => Outcome::NotStored,
            });
        }
        response
    }
}

impl Exchange {
    /// Runs a refresh in a task of the current runtime: reads the versions of the tags
    /// its response will likely carry, then awaits `run` (the handler; `None` when it
    /// failed without a response) and stores what it answers. Nobody waits for it: its
    /// response is dropped. Whatever ends the task (a panic, the runtime shutting down)
    /// drops its lead, so the next stale request refreshes again.
    pub(crate) fn spawn_refresh<F, Fut>(mut self, run: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Option<Response>> + Send + 'static,
    {
        static NO_RUNTIME: RateLimited = RateLimited::new();
        let Ok(rt) = Handle::try_current() else {
            if let Some(suppressed) = NO_RUNTIME.allow() {
                tracing::warn!(
                    suppressed,
                    "a stale response was served but no tokio runtime can run its refresh"
                );
            }
            return;
        };
        rt.spawn(async move {
            static NOT_STORED: RateLimited = RateLimited::new();
            self.prepare().await;
            let Some(response) = run().await else {
                return;
            };
            let response = self.finish(response).await;
            let status = response.headers().get(CACHE_STATUS);
            if status.is_some_and(|s| s.as_bytes().ends_with(b"; stored")) {
                return;
            }
            if let Some(suppressed) = NOT_STORED.allow() {
                tracing::warn!(
                    status = response.status().as_u16(),
                    cache_status = ?status,
                    suppressed,
                    "a background refresh was not stored; the stale response is served until its window ends"
                );
            }
        });
    }

    /// Reads what a refresh reads before its handler runs: the versions of the view's
    /// static tags and of those its URL's last stored response carried.
    async fn prepare(&mut self) {
        let State::Miss(miss) = &mut self.state else {
            return;
        };
        if !matches!(miss.stamps, Stamping::Later) {
            return;
        }
        let Some((cache, base)) = &miss.cache else {
            miss.stamps = Stamping::Read(None);
            return;
        };
        let learned = manifest(&self.opts, cache, base).await;
        miss.stamps = stamp(&self.opts, cache, learned.tags).await;
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
        // The tags of the URL's manifest, from the last read that missed.
        let mut learned;
        let lead = loop {
            let key = match found {
                Found::Entry(entry, now) => {
                    return Lookup::Hit(hit(&entry, now, request, omit_body))
                }
                Found::Stale(entry, now, key) => {
                    let stale = stale(opts, (cache, base), key, &entry, now, request, omit_body);
                    return Lookup::Stale(stale);
                }
                Found::Missing(key, tags) => {
                    learned = tags;
                    key
                }
            };
            if request_no_store(request) {
                // Its response will not be stored: nobody waits for it.
                break None;
            }
            match opts.live.flights.join(key) {
                Joined::Lead(lead) => {
                    // A flight that ended between the read and the join stored first.
                    match find(opts, &cache, &base, request, false).await {
                        Found::Missing(_, tags) => learned = tags,
                        other => {
                            found = other;
                            continue;
                        }
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
        let stamps = match request_no_store(request) {
            true => Stamping::Read(None),
            false => stamp(opts, &cache, learned).await,
        };
        let miss = Miss {
            cache: Some((cache, base)),
            request: request.clone(),
            lead,
            stamps,
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
        let key = base.entry(
            cache,
            &opts.label,
            &merged(&opts.names, &learned.names),
            request,
        );
        return Some(read_now(opts, cache, key, true)?.learning(learned.tags));
    }
    let key = base.entry(cache, &opts.label, &opts.names, request);
    let found = read_now(opts, cache, key, true)?;
    let Found::Missing(key, _) = found else {
        return Some(found);
    };
    // As in `find`; a manifest that must be awaited is left to the miss (a guess that
    // finds nothing is safe).
    let Some(manifest) = cache.fetch_now(&base.manifest(cache, &opts.label), false) else {
        return Some(Found::Missing(key, Vec::new()));
    };
    let learned = learned(manifest);
    if !opts.adds_to_names(&learned.names) {
        return Some(Found::Missing(key, learned.tags));
    }
    opts.live.varies.store(true, Ordering::Relaxed);
    let key = base.entry(
        cache,
        &opts.label,
        &merged(&opts.names, &learned.names),
        request,
    );
    match read_now(opts, cache, key.clone(), false) {
        Some(found) => Some(found.learning(learned.tags)),
        None => Some(Found::Missing(key, learned.tags)),
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
        let key = base.entry(
            cache,
            &opts.label,
            &merged(&opts.names, &learned.names),
            request,
        );
        return read(opts, cache, key, count).await.learning(learned.tags);
    }
    let key = base.entry(cache, &opts.label, &opts.names, request);
    let found = read(opts, cache, key, count).await;
    let Found::Missing(key, _) = found else {
        return found;
    };
    let learned = manifest(opts, cache, base).await;
    if !opts.adds_to_names(&learned.names) {
        return Found::Missing(key, learned.tags);
    }
    opts.live.varies.store(true, Ordering::Relaxed);
    let key = base.entry(
        cache,
        &opts.label,
        &merged(&opts.names, &learned.names),
        request,
    );
    read(opts, cache, key, false).await.learning(learned.tags)
}

/// Reads the entry under the stored key `key`. Without a stale window this is a plain
/// read (an entry past its lifetime is a miss; its tags are checked); with one, a
/// stale-aware read.
async fn read(opts: &Options, cache: &Cache, key: String, count: bool) -> Found {
    match opts.stale {
        None => fresh(cache.fetch(&key, count).await, key),
        Some(_) => judged(opts, cache.lookup(&key, &[], count).await, key),
    }
}

/// [`read`] without waiting; `None` when the backend must be awaited.
fn read_now(opts: &Options, cache: &Cache, key: String, count: bool) -> Option<Found> {
    Some(match opts.stale {
        None => fresh(cache.fetch_now(&key, count)?, key),
        Some(_) => judged(opts, cache.lookup_now(&key, count)?, key),
    })
}

/// What a URL's manifest records (nothing when it is absent).
async fn manifest(opts: &Options, cache: &Cache, base: &Base) -> Learned {
    let key = base.manifest(cache, &opts.label);
    learned(cache.fetch(&key, false).await)
}

/// What a manifest told.
#[derive(Default)]
struct Learned {
    /// The header names the URL's responses vary on.
    names: Vec<HeaderName>,
    /// The tags of its last stored response.
    tags: Vec<String>,
}

/// What a manifest read found (nothing when it is absent or unusable: a foreign or
/// corrupt manifest makes lookups guess, which is safe, and stamps no tag early).
fn learned(read: Result<Option<Manifest>, CacheError>) -> Learned {
    let Ok(Some(manifest)) = read else {
        return Learned::default();
    };
    if manifest.vary.len() > MAX_VARY {
        return Learned::default();
    }
    let names = manifest
        .vary
        .iter()
        .map(|n| HeaderName::from_bytes(n.as_bytes()))
        .collect::<Result<_, _>>();
    match names {
        Ok(names) => Learned {
            names,
            tags: manifest.tags,
        },
        Err(_) => Learned::default(),
    }
}

/// What a plain entry read found, at the current time.
fn fresh(read: Result<Option<Entry>, CacheError>, key: String) -> Found {
    let Ok(Some(entry)) = read else {
        return Found::Missing(key, Vec::new());
    };
    let now = now_ms();
    match entry.remaining_ms(now) {
        0 => Found::Missing(key, Vec::new()),
        _ => Found::Entry(entry, now),
    }
}

/// What a stale-aware entry read found, at the current time: stale when the envelope
/// or the entry's own clock says so, and only within the view's window.
fn judged(opts: &Options, read: Read<Entry>, key: String) -> Found {
    let (entry, stale) = match read {
        Read::Fresh(entry) => (entry, false),
        Read::Stale(entry) => (entry, true),
        Read::Miss => return Found::Missing(key, Vec::new()),
    };
    let now = now_ms();
    if !stale && entry.remaining_ms(now) > 0 {
        return Found::Entry(entry, now);
    }
    match opts.stale {
        Some(window) if entry.within_stale(now, window) => Found::Stale(entry, now, key),
        _ => Found::Missing(key, Vec::new()),
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

/// The answer from a stale entry, and the refresh of its key when no other runs in this
/// process. The response's headers are those it was stored with: `Cache-Control` keeps
/// `max-age=<lifetime>` (and the `stale-while-revalidate` it was stored with), `Age` is
/// its true age, past that lifetime, so a downstream cache sees it stale too.
fn stale(
    opts: &Arc<Options>,
    (cache, base): (Cache, Base),
    key: String,
    entry: &Entry,
    now: u64,
    request: &HeaderMap,
    omit_body: bool,
) -> Stale<Exchange> {
    let (status, stored) = entry.parts();
    let mut headers = stored.clone();
    headers.insert(AGE, HeaderValue::from(entry.age_ms(now) / 1000));
    headers.insert(CACHE_STATUS, headers::stale_hit(entry.upstream()));
    let response = reply(*status, headers, &entry.body, request, omit_body);
    // A request whose response may not be stored cannot refresh: a later one will.
    let refresh = match request_no_store(request) {
        true => None,
        false => match opts.live.refreshes.join(key) {
            Joined::Lead(lead) => Some(Exchange {
                opts: Arc::clone(opts),
                omit_body: false,
                state: State::Miss(Box::new(Miss {
                    cache: Some((cache, base)),
                    request: refresh_headers(request),
                    lead: Some(lead),
                    stamps: Stamping::Later,
                })),
            }),
            // Another request's refresh runs.
            Joined::Follow(_) => None,
        },
    };
    Stale { response, refresh }
}

/// The request headers a refresh runs with: the stale request's, without what would make
/// its answer conditional or partial (a refresh is a plain `GET` whose 200 is stored).
pub(crate) fn refresh_headers(request: &HeaderMap) -> HeaderMap {
    use http::header::{
        IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
    };
    let mut headers = request.clone();
    for name in [
        IF_MATCH,
        IF_MODIFIED_SINCE,
        IF_NONE_MATCH,
        IF_RANGE,
        IF_UNMODIFIED_SINCE,
        RANGE,
    ] {
        headers.remove(name);
    }
    headers
}

/// Reads the versions of the view's static tags and of `learned` (those the URL's last
/// stored response carried), before the handler runs.
async fn stamp(opts: &Options, cache: &Cache, learned: Vec<String>) -> Stamping {
    let mut tags = learned;
    tags.extend(opts.tags.iter().cloned());
    tags.sort_unstable();
    tags.dedup();
    if tags.is_empty() {
        return Stamping::Read(None);
    }
    match cache.stamp_tags(tags).await {
        Ok(stamps) => Stamping::Read(Some(stamps)),
        // Recorded by the cache.
        Err(_) => Stamping::Failed,
    }
}

/// The versions an entry tagged `tags` records: those read before its handler ran, and
/// the others read now. `Err` when the backend failed: it is not stored.
async fn complete(
    cache: &Cache,
    before: Stamping,
    tags: Vec<String>,
) -> Result<Option<Stamps>, ()> {
    if tags.is_empty() {
        return Ok(None);
    }
    let before = match before {
        Stamping::Read(before) => before,
        Stamping::Later => None,
        Stamping::Failed => return Err(()),
    };
    let mut out = Stamps {
        generation: u64::MAX,
        tags: Vec::with_capacity(tags.len()),
        keys: Vec::with_capacity(tags.len()),
        versions: Vec::with_capacity(tags.len()),
    };
    let mut late = Vec::new();
    for tag in tags {
        let early = before.as_ref().and_then(|b| {
            let mut read = b.tags.iter().zip(&b.keys).zip(&b.versions);
            let ((_, key), version) = read.find(|((t, _), _)| **t == tag)?;
            Some((b.generation, key.clone(), version.clone()))
        });
        match early {
            Some((generation, key, version)) => {
                out.generation = out.generation.min(generation);
                out.keys.push(key);
                out.versions.push(version);
                out.tags.push(tag);
            }
            None => late.push(tag),
        }
    }
    if !late.is_empty() {
        // Recorded by the cache.
        let stamps = cache.stamp_tags(late).await.map_err(drop)?;
        out.generation = out.generation.min(stamps.generation);
        out.tags.extend(stamps.tags);
        out.keys.extend(stamps.keys);
        out.versions.extend(stamps.versions);
    }
    Ok(Some(out))
}

/// The tags of a response about to be stored: the view's static ones and its
/// [`CacheTags`], sorted, without duplicates.
fn response_tags(opts: &Options, extensions: &http::Extensions) -> Vec<String> {
    let mut tags: Vec<String> = opts.tags.clone();
    if let Some(own) = extensions.get::<CacheTags>() {
        tags.extend(own.iter().map(str::to_owned));
    }
    tags.sort_unstable();
    tags.dedup();
    tags
}

/// Stores the handler's response if allowed; returns it with the cache's headers, and
/// what the leader hands to its followers.
async fn store(
    opts: &Options,
    cache: Option<(Cache, Base)>,
    request: &HeaderMap,
    omit_body: bool,
    stamps: Stamping,
    response: Response,
) -> (Response, Option<Arc<Handoff>>) {
    let limit = opts.max_body as u64;
    let now = SystemTime::now();
    // A response that is not stored still says what the cache keys on.
    let passed = |response: Response, reason: NotStored| {
        let mut response = pass(response, reason, omit_body);
        append_vary(response.headers_mut(), &opts.downstream);
        (response, None)
    };
    let (mut parts, body) = response.into_parts();
    if let Err(reason) = judge(request, parts.status, &parts.headers, 0, limit, now) {
        return passed(Response::from_parts(parts, body), reason);
    }
    let Some((cache, base)) = cache else {
        return passed(Response::from_parts(parts, body), NotStored::CacheError);
    };
    let bytes = match read_limited(body, opts.max_body).await {
        Ok(bytes) => bytes,
        Err((body, reason)) => return passed(Response::from_parts(parts, body), reason),
    };
    let rejected =
        |parts, bytes, reason| passed(Response::from_parts(parts, Body::from(bytes)), reason);
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
    let tags = response_tags(opts, &parts.extensions);
    let Ok(stamps) = complete(&cache, stamps, tags.clone()).await else {
        return rejected(parts, bytes, NotStored::CacheError);
    };
    let stored_at_ms = epoch_ms(now);
    let freshness = Freshness {
        directives: &storable.directives,
        lifetime,
        private: !opts.shared
            && (request.contains_key(AUTHORIZATION) || request.contains_key(COOKIE)),
        stored_at_ms,
        vary: &opts.downstream,
        stale: opts.stale,
    };
    headers::patch(&mut parts.headers, &freshness, &bytes);
    let entry = Entry::new(parts.status, &parts.headers, bytes, stored_at_ms, lifetime);
    let key = base.entry(&cache, &opts.label, &names, request);
    let manifest = Manifest {
        vary: storable
            .vary
            .iter()
            .map(|n| n.as_str().to_owned())
            .collect(),
        tags,
    };
    // The entry first: a reader that finds the manifest finds the entry too. A plain
    // entry is written with the logical key (the stored key less the cache's head); one
    // with a stale window or tags in an envelope (`cache::fresh`), under the stored key.
    let head = cache.head().len();
    let written = match (&stamps, opts.stale) {
        (None, None) => cache.set(&key[head..], &entry, lifetime).await,
        (_, stale) => {
            cache
                .store_envelope(&key, &entry, lifetime, stale, stamps)
                .await
        }
    };
    let kept = lifetime.saturating_add(opts.stale.unwrap_or_default());
    let stored = written.is_ok()
        && cache
            .set(&base.manifest(&cache, &opts.label)[head..], &manifest, kept)
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

    /// A stale window's refreshes release their flight whatever ends them.
    #[cfg(feature = "memory")]
    mod refresh {
        use super::*;
        use crate::backend::memory::MemoryBackend;

        fn stale_options(cache: &Cache) -> Arc<Options> {
            let mut opts = Options::new(Source::Handle(cache.clone()), "refresh".to_owned());
            opts.ttl = Some(Duration::from_millis(50));
            opts.stale = Some(Duration::from_secs(60));
            opts.derive();
            Arc::new(opts)
        }

        fn target() -> (Method, Uri, HeaderMap) {
            (Method::GET, Uri::from_static("/page"), HeaderMap::new())
        }

        /// Stores `/page` and waits past its 50 ms lifetime.
        async fn stored_then_stale(opts: &Arc<Options>) {
            let (method, uri, headers) = target();
            let Begun::Pending(rest) = Exchange::begin_now(opts, &method, &uri, &headers) else {
                panic!("a cold key misses")
            };
            let Lookup::Miss(exchange) = rest.settle(opts, &headers).await else {
                panic!("a cold key misses")
            };
            let stored = exchange.finish(Response::new(Body::from("v1"))).await;
            assert_eq!(
                stored.headers()[CACHE_STATUS],
                "cached-kit; fwd=miss; stored"
            );
            tokio::time::sleep(Duration::from_millis(80)).await;
        }

        /// The stale answer of `/page`, and its refresh if this lookup won it.
        fn stale(opts: &Arc<Options>) -> (Response, Option<Exchange>) {
            let (method, uri, headers) = target();
            match Exchange::begin_now(opts, &method, &uri, &headers) {
                Begun::Done(Lookup::Stale(stale)) => stale.into_parts(),
                _ => panic!("a stale answer"),
            }
        }

        #[test]
        fn a_refresh_dropped_with_its_runtime_leaves_no_flight() {
            let cache = Cache::builder(MemoryBackend::default()).build();
            let opts = stale_options(&cache);
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async {
                stored_then_stale(&opts).await;
                let (response, refresh) = stale(&opts);
                assert_eq!(
                    response.headers()[CACHE_STATUS],
                    "cached-kit; hit; ttl=0; detail=stale"
                );
                let refresh = refresh.expect("the first stale request refreshes");
                refresh.spawn_refresh(std::future::pending::<Option<Response>>);
                assert!(stale(&opts).1.is_none(), "one refresh at a time");
                assert_eq!(opts.live.refreshes.len(), 1);
            });
            drop(rt);
            assert_eq!(opts.live.refreshes.len(), 0, "its lead was dropped");
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async {
                assert!(stale(&opts).1.is_some(), "the next stale request refreshes");
            });
        }

        #[tokio::test]
        async fn a_stale_answer_whose_refresh_never_ran_leaves_no_flight() {
            let cache = Cache::builder(MemoryBackend::default()).build();
            let opts = stale_options(&cache);
            stored_then_stale(&opts).await;
            let (_, refresh) = stale(&opts);
            assert!(refresh.is_some());
            drop(refresh);
            assert_eq!(opts.live.refreshes.len(), 0);
            let (_, refresh) = stale(&opts);
            assert!(refresh.is_some(), "the next stale request refreshes");
        }

        #[tokio::test]
        async fn a_request_that_may_not_store_never_refreshes() {
            let cache = Cache::builder(MemoryBackend::default()).build();
            let opts = stale_options(&cache);
            stored_then_stale(&opts).await;
            let (method, uri, mut headers) = target();
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            match Exchange::begin_now(&opts, &method, &uri, &headers) {
                Begun::Done(Lookup::Stale(stale)) => assert!(stale.into_parts().1.is_none()),
                _ => panic!("a stale answer"),
            }
            assert!(stale(&opts).1.is_some());
        }
    }
}
