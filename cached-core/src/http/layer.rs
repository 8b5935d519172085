//! [`CacheLayer`]: the HTTP cache as a tower layer (Django's per-site cache middleware).

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use tower::Layer;

use super::exchange::{Options, Resolver, Source};
use super::service::CacheService;
use crate::{Cache, CacheSlot};

/// Caches the responses of every route it wraps, by the rules of the
/// [`http`](crate::http) module (Django's per-site cache).
///
/// Cheap to clone; configure it with the builder methods.
///
/// ```
/// use std::time::Duration;
/// use axum::{routing::get, Router};
/// use cached_core::http::CacheLayer;
///
/// async fn catalog() -> &'static str {
///     "lamps, chairs"
/// }
///
/// let app: Router = Router::new().route("/catalog", get(catalog)).layer(
///     CacheLayer::new()
///         .ttl(Duration::from_secs(600))
///         .cache("default")
///         .vary(["Accept-Language"]),
/// );
/// # let _ = app;
/// ```
#[derive(Clone)]
pub struct CacheLayer {
    opts: Arc<Options>,
}

impl std::fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLayer")
            .field("namespace", &self.opts.namespace)
            .field("ttl", &self.opts.ttl)
            .field("vary", &self.opts.vary)
            .field("shared", &self.opts.shared)
            .field("max_body", &self.opts.max_body)
            .field("stale", &self.opts.stale)
            .field("tags", &self.opts.tags)
            .finish_non_exhaustive()
    }
}

impl Default for CacheLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl CacheLayer {
    /// A layer over the `"default"` cache, with its default ttl, varying on nothing but
    /// the URL, credentials and the responses' `Vary`, storing bodies up to
    /// [`DEFAULT_MAX_BODY`](super::DEFAULT_MAX_BODY).
    pub fn new() -> Self {
        let source = Source::Alias {
            slot: Arc::new(CacheSlot::new("default")),
            resolve: None,
        };
        Self {
            opts: Arc::new(Options::new(source, "layer".to_owned())),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Options)) -> Self {
        let opts = Arc::make_mut(&mut self.opts);
        f(opts);
        opts.derive();
        self
    }

    /// How long responses are stored (default: the cache's default ttl).
    ///
    /// ```
    /// let layer = cached_core::http::CacheLayer::new().ttl(std::time::Duration::from_secs(60));
    /// # let _ = layer;
    /// ```
    pub fn ttl(self, ttl: Duration) -> Self {
        self.with(|o| o.ttl = Some(ttl))
    }

    /// Store in the named cache `alias` (see [`caches`](crate::caches)), resolved on each
    /// request so a later [`Caches::insert`](crate::Caches::insert) takes effect.
    ///
    /// A cache configured by `CACHE_URL` with a backend of another crate (`redis://`)
    /// needs that backend registered: through the `cached-kit` facade, call
    /// `cached_kit::caches().configure_from_env()` at start-up (which also makes a bad
    /// URL a start-up error). Until then requests are served uncached, never failed.
    ///
    /// ```
    /// let layer = cached_core::http::CacheLayer::new().cache("pages");
    /// # let _ = layer;
    /// ```
    pub fn cache(self, alias: &'static str) -> Self {
        self.with(|o| {
            o.source = Source::Alias {
                slot: Arc::new(CacheSlot::new(alias)),
                resolve: None,
            };
        })
    }

    /// Store in this cache.
    ///
    /// ```
    /// use cached_core::{http::CacheLayer, Cache, DummyBackend};
    /// let layer = CacheLayer::new().cache_handle(Cache::builder(DummyBackend::new()).build());
    /// # let _ = layer;
    /// ```
    pub fn cache_handle(self, cache: Cache) -> Self {
        self.with(|o| o.source = Source::Handle(cache))
    }

    /// Also key responses by these request headers (added to what the responses' own
    /// `Vary` lists).
    ///
    /// A name that is not a valid header name disables the layer's caching (every
    /// response passes through uncached, and the mistake is logged): varying on a header
    /// it cannot read would risk serving one variant for another.
    /// (`#[cache_view(vary = [...])]` checks the names at compile time.)
    ///
    /// ```
    /// let layer = cached_core::http::CacheLayer::new().vary(["Accept-Language", "Accept"]);
    /// # let _ = layer;
    /// ```
    pub fn vary<I>(self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut valid = Vec::new();
        let mut invalid = None;
        for name in names {
            let name = name.as_ref();
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(n) => valid.push(n),
                Err(_) => invalid = Some(name.to_owned()),
            }
        }
        self.with(|o| {
            o.vary.extend(valid);
            if invalid.is_some() {
                o.invalid_vary = invalid;
            }
        })
    }

    /// Serve one stored response to every client whatever its `Authorization` and
    /// `Cookie` (default `false`: credentials are part of the key). Only for responses
    /// that do not depend on who asks.
    ///
    /// ```
    /// let layer = cached_core::http::CacheLayer::new().shared(true);
    /// # let _ = layer;
    /// ```
    pub fn shared(self, shared: bool) -> Self {
        self.with(|o| o.shared = shared)
    }

    /// The largest body stored, in bytes (default [`DEFAULT_MAX_BODY`](super::DEFAULT_MAX_BODY), 8 MiB). Larger
    /// bodies are streamed through whole and not stored; at most this much is buffered.
    ///
    /// ```
    /// let layer = cached_core::http::CacheLayer::new().max_body(64 * 1024);
    /// # let _ = layer;
    /// ```
    pub fn max_body(self, bytes: usize) -> Self {
        self.with(|o| o.max_body = bytes)
    }

    /// Serve a response for `stale` past its lifetime (stale-while-revalidate, SPEC §12):
    /// in that window a request is answered at once with the stored response
    /// (`Cache-Status: cached-kit; hit; ttl=0; detail=stale`) while one refresh per URL
    /// key runs in the background, in this process: a clone of the inner service called
    /// with the request's head as a `GET` without a body (and without its conditional and
    /// `Range` headers). A refresh whose response is not stored (an error status, a
    /// failure) leaves the stale response served until the window ends; a later request
    /// tries again. A response whose tags were invalidated is a miss, never stale.
    ///
    /// Stored responses tell downstream caches `stale-while-revalidate=<stale>` unless
    /// the handler wrote its own, and a stale response keeps its `max-age` with its true
    /// `Age`, past it: a CDN sees it stale and may serve it so only within the same
    /// window.
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = cached_core::http::CacheLayer::new()
    ///     .ttl(Duration::from_secs(60))
    ///     .stale(Duration::from_secs(600));
    /// # let _ = layer;
    /// ```
    pub fn stale(self, stale: Duration) -> Self {
        self.with(|o| o.stale = Some(stale))
    }

    /// Tag every stored response with these (added to the [`CacheTags`](super::CacheTags)
    /// a handler puts in its response): after
    /// [`Cache::invalidate_tags`](crate::Cache::invalidate_tags) of one of them on this
    /// layer's cache, the responses stored with it are misses, in every process sharing
    /// the backend.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let layer = cached_core::http::CacheLayer::new().tags(["catalog"]);
    /// // After a change to the catalog:
    /// cached_core::cache().invalidate_tags(&["catalog"]).await?;
    /// # let _ = layer;
    /// # Ok::<(), cached_core::CacheError>(())
    /// # }).unwrap();
    /// ```
    pub fn tags<I>(self, tags: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let tags: Vec<String> = tags.into_iter().map(Into::into).collect();
        self.with(|o| o.tags.extend(tags))
    }

    /// A name that keeps this layer's entries apart from other layers' and views' sharing
    /// the cache (default `"layer"`).
    ///
    /// ```
    /// let layer = cached_core::http::CacheLayer::new().namespace("api");
    /// # let _ = layer;
    /// ```
    pub fn namespace(self, namespace: impl Into<String>) -> Self {
        let namespace = namespace.into();
        self.with(|o| o.namespace = namespace)
    }

    /// Resolve the named cache with `resolve` (used by the facade so its backends are
    /// registered first). Not a stable API.
    #[doc(hidden)]
    pub fn resolver(self, resolve: Resolver) -> Self {
        self.with(|o| {
            if let Source::Alias { resolve: r, .. } = &mut o.source {
                *r = Some(resolve);
            }
        })
    }

    pub(crate) fn options(&self) -> &Arc<Options> {
        &self.opts
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = CacheService<S>;

    fn layer(&self, inner: S) -> CacheService<S> {
        CacheService::new(inner, self.clone())
    }
}
