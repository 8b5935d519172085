//! The runtime of `#[cache_fn(tags = [..])]` and `#[cache_fn(stale = N)]`, beside the
//! plain [`memoize`](super::memoize::memoize), which functions without them keep using
//! untouched.
//!
//! - [`memoize_tagged`]: tags only. The tags are rendered (a closure over the
//!   arguments) only when needed: on a miss, and on every read of a remote backend,
//!   whose tag versions are read in the same `get_many` as the entry. An in-process hit
//!   renders nothing (see `tags.rs`, the generation).
//! - [`memoize_stale`]: a stale window, with or without tags. A stale hit starts one
//!   background refresh through `make`, which clones the arguments into a
//!   `Send + 'static` computation (the macro requires owned `Clone + Send + 'static`
//!   arguments); a miss runs it in line.
//!
//! Both fail open like `memoize`, and reach the same single flight and lock.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::convert::Infallible;
//! use cached_core::__private::memoize::{memoize_tagged, stored_key, Spec};
//! let spec = Spec { name: "doc::tagged", version: None, ttl: None, lock: false, lock_ttl: None, stale: None };
//! let cache = Ok(cached_core::cache());
//! let key = stored_key(&cache, &spec, format_args!("tagged:{}", 1));
//! let tags = || vec!["product:1".to_string()];
//! let v = memoize_tagged(cache, key, &spec, None, tags, || async { Ok::<u32, Infallible>(1) }).await;
//! assert_eq!(v, Ok(1));
//! cached_core::cache().invalidate_tags(&["product:1"]).await.unwrap();
//! assert_eq!(cached_core::cache().get::<u32>("tagged:1").await.unwrap(), None);
//! # });
//! ```

use std::future::Future;

use super::memoize::{key_error, log_uncached, resolve, Probe, Spec, StoreIf};
use super::revalidate::Refresh;
use super::{Cache, Cacheable, ComputeOptions, LOCK_TTL};
use crate::argkey::ArgKeyError;
use crate::cache::fresh::Lookup;
use crate::CacheError;

/// The cache and stored key, or `None` (logged) when either cannot be had.
fn usable(
    cache: Result<Cache, CacheError>,
    skey: Result<String, ArgKeyError>,
    spec: &Spec,
) -> Option<(Cache, String)> {
    match (cache, skey) {
        (Ok(cache), Ok(skey)) => Some((cache, skey)),
        (Err(e), _) => {
            log_uncached(spec.name, &e);
            None
        }
        (Ok(_), Err(e)) => {
            log_uncached(spec.name, &key_error(spec.name, e));
            None
        }
    }
}

/// Reads `skey`; renders the tags only for a remote backend. Returns the read and the
/// tags, rendered now or still to render.
async fn read<T: Cacheable, G: FnOnce() -> Vec<String>>(
    cache: &Cache,
    skey: &str,
    tags: G,
) -> (Lookup<T>, Tags<G>) {
    if let Some(read) = cache.lookup_now::<T>(skey, true) {
        return (read, Tags::Later(tags));
    }
    let tags = tags();
    let read = cache.lookup(skey, &tags, true).await;
    (read, Tags::Rendered(tags))
}

/// A call's tags: the closure that renders them, or its result.
enum Tags<G> {
    Later(G),
    Rendered(Vec<String>),
}

impl<G: FnOnce() -> Vec<String>> Tags<G> {
    fn render(self) -> Vec<String> {
        match self {
            Tags::Later(g) => g(),
            Tags::Rendered(tags) => tags,
        }
    }
}

fn options<'a, T>(
    spec: &Spec,
    store_if: StoreIf<'a, T>,
    tags: Vec<String>,
) -> ComputeOptions<'a, T> {
    let mut opts = ComputeOptions::new(spec.ttl).lock(spec.lock).tags(tags);
    opts.stale = spec.stale.filter(|s| !s.is_zero());
    if let Some(lock_ttl) = spec.lock_ttl {
        opts = opts.lock_ttl(lock_ttl);
    }
    if let Some(pred) = store_if {
        opts = opts.store_if(pred);
    }
    opts
}

/// [`memoize`](super::memoize::memoize) for a function with `tags`: the entry records
/// the versions of the tags `tags()` renders, and is a miss once one of them is
/// invalidated.
pub async fn memoize_tagged<T, E, F, Fut, G>(
    cache: Result<Cache, CacheError>,
    skey: Result<String, ArgKeyError>,
    spec: &Spec,
    store_if: StoreIf<'_, T>,
    tags: G,
    f: F,
) -> Result<T, E>
where
    T: Cacheable,
    G: FnOnce() -> Vec<String>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let Some((cache, skey)) = usable(cache, skey, spec) else {
        return f().await;
    };
    let (read, tags) = read::<T, G>(&cache, &skey, tags).await;
    if let Lookup::Fresh(v) = read {
        return Ok(v);
    }
    let opts = options(spec, store_if, tags.render());
    Box::pin(cache.compute_missed(&skey, &opts, f)).await
}

/// [`memoize`](super::memoize::memoize) for a function with `stale` (and maybe tags):
/// a stale value is returned at once and refreshed in the background by the
/// computation `make()` returns (once per key in this process; once across processes
/// with `lock`); a miss runs it in line.
pub async fn memoize_stale<T, E, M, F, Fut, P, G>(
    cache: Result<Cache, CacheError>,
    skey: Result<String, ArgKeyError>,
    spec: &Spec,
    store_if: Option<P>,
    tags: G,
    make: M,
) -> Result<T, E>
where
    T: Cacheable,
    G: FnOnce() -> Vec<String>,
    M: FnOnce() -> F,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    P: Fn(&T) -> bool + Send + Sync + 'static,
{
    let Some((cache, skey)) = usable(cache, skey, spec) else {
        return make()().await;
    };
    let (read, tags) = read::<T, G>(&cache, &skey, tags).await;
    match read {
        Lookup::Fresh(v) => Ok(v),
        Lookup::Stale(v) => {
            let refresh = Refresh {
                skey,
                ttl: spec.ttl,
                stale: spec.stale,
                lock: spec.lock,
                lock_ttl: spec.lock_ttl.unwrap_or(LOCK_TTL),
                tags: tags.render(),
            };
            cache.revalidate(refresh, store_if, make);
            Ok(v)
        }
        Lookup::Miss => {
            let pred = store_if
                .as_ref()
                .map(|p| p as &(dyn Fn(&T) -> bool + Send + Sync));
            let opts = options(spec, pred, tags.render());
            Box::pin(cache.compute_missed(&skey, &opts, make())).await
        }
    }
}

/// `name_refresh` of a function with tags or `stale`: reads the tags' versions, runs
/// `fut` (the body), and stores its value in an envelope, whatever the cache held.
pub async fn refresh_fresh<T, E, Fut>(
    cache: Result<Cache, CacheError>,
    key: Result<String, ArgKeyError>,
    spec: &Spec,
    store_if: StoreIf<'_, T>,
    tags: Vec<String>,
    fut: Fut,
) -> Result<T, E>
where
    T: Cacheable,
    Fut: Future<Output = Result<T, E>>,
{
    let target = resolve(cache, key, spec);
    let stamps = match &target {
        Some((cache, _)) if !tags.is_empty() => Some(cache.stamp_tags(tags).await),
        _ => None,
    };
    let result = fut.await;
    if let (Ok(value), Some((cache, key))) = (&result, &target) {
        if store_if.is_none_or(|pred| pred(value)) {
            let skey = cache.make_key(key);
            let ttl = spec.ttl.unwrap_or_else(|| cache.default_ttl());
            // A failed store is recorded by the cache; tags that could not be read
            // leave the entry unstored (it could not be invalidated).
            let _ = match stamps {
                None => {
                    cache
                        .store_envelope(&skey, value, ttl, spec.stale, None)
                        .await
                }
                Some(Ok(stamps)) => {
                    cache
                        .store_envelope(&skey, value, ttl, spec.stale, Some(stamps))
                        .await
                }
                Some(Err(_)) => Ok(()),
            };
        }
    }
    result
}

/// What a `stale` function's argument must be: it is cloned into the background
/// refresh, which outlives the call.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cloned into a background refresh: with `stale`, every argument must be `Clone + Send + 'static`",
    label = "cloned into the refresh that runs after this call returns",
    note = "take an owned, cheaply cloned type: `String` for `&str`, `Arc<T>` for a shared resource (`self: Arc<Self>` for a method)"
)]
pub trait StaleArg: Clone + Send + 'static {}

impl<T: Clone + Send + 'static> StaleArg for T {}

/// Clones an argument into the background refresh of a `stale` function.
pub fn stale_clone<T: StaleArg>(value: &T) -> T {
    value.clone()
}

/// Gives an `unless` closure its argument type (`|v| ..` needs no annotation).
pub fn predicate<T, P: Fn(&T) -> bool>(pred: P) -> P {
    pred
}

/// The "store everything" predicate of a `stale` function.
pub fn no_store_if<T>() -> Option<fn(&T) -> bool> {
    None
}

/// An owned predicate, borrowed as [`StoreIf`].
pub fn borrow_store_if<T, P: Fn(&T) -> bool + Send + Sync>(pred: &Option<P>) -> StoreIf<'_, T> {
    pred.as_ref()
        .map(|p| p as &(dyn Fn(&T) -> bool + Send + Sync))
}

/// The real path of [`Probe`] for tags and `stale`: `T` is cacheable.
pub trait ViaCacheFresh<T> {
    /// [`memoize_tagged`].
    fn memoize_tagged<E, F, Fut, G>(
        &self,
        cache: Result<Cache, CacheError>,
        key: Result<String, ArgKeyError>,
        spec: &Spec,
        store_if: StoreIf<'_, T>,
        tags: G,
        f: F,
    ) -> impl Future<Output = Result<T, E>>
    where
        G: FnOnce() -> Vec<String>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>;

    /// [`memoize_stale`].
    #[allow(clippy::too_many_arguments)]
    fn memoize_stale<E, M, F, Fut, P, G>(
        &self,
        cache: Result<Cache, CacheError>,
        key: Result<String, ArgKeyError>,
        spec: &Spec,
        store_if: Option<P>,
        tags: G,
        make: M,
    ) -> impl Future<Output = Result<T, E>>
    where
        G: FnOnce() -> Vec<String>,
        M: FnOnce() -> F,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        P: Fn(&T) -> bool + Send + Sync + 'static;

    /// [`refresh_fresh`].
    fn refresh_fresh<E, Fut>(
        &self,
        cache: Result<Cache, CacheError>,
        key: Result<String, ArgKeyError>,
        spec: &Spec,
        store_if: StoreIf<'_, T>,
        tags: Vec<String>,
        fut: Fut,
    ) -> impl Future<Output = Result<T, E>>
    where
        Fut: Future<Output = Result<T, E>>;
}

impl<T: Cacheable> ViaCacheFresh<T> for Probe<T> {
    fn memoize_tagged<E, F, Fut, G>(
        &self,
        cache: Result<Cache, CacheError>,
        key: Result<String, ArgKeyError>,
        spec: &Spec,
        store_if: StoreIf<'_, T>,
        tags: G,
        f: F,
    ) -> impl Future<Output = Result<T, E>>
    where
        G: FnOnce() -> Vec<String>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        memoize_tagged(cache, key, spec, store_if, tags, f)
    }

    fn memoize_stale<E, M, F, Fut, P, G>(
        &self,
        cache: Result<Cache, CacheError>,
        key: Result<String, ArgKeyError>,
        spec: &Spec,
        store_if: Option<P>,
        tags: G,
        make: M,
    ) -> impl Future<Output = Result<T, E>>
    where
        G: FnOnce() -> Vec<String>,
        M: FnOnce() -> F,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        P: Fn(&T) -> bool + Send + Sync + 'static,
    {
        memoize_stale(cache, key, spec, store_if, tags, make)
    }

    fn refresh_fresh<E, Fut>(
        &self,
        cache: Result<Cache, CacheError>,
        key: Result<String, ArgKeyError>,
        spec: &Spec,
        store_if: StoreIf<'_, T>,
        tags: Vec<String>,
        fut: Fut,
    ) -> impl Future<Output = Result<T, E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        refresh_fresh(cache, key, spec, store_if, tags, fut)
    }
}

/// The stand-in path of [`Probe`] for tags and `stale` when `T` cannot be cached (never
/// compiled into a working program: `assert_cacheable` rejects it). Runs the body.
pub trait UncachedFresh<T> {
    /// Runs `f`.
    fn memoize_tagged<E, F, Fut, G>(
        &self,
        cache: Result<Cache, CacheError>,
        key: Result<String, ArgKeyError>,
        spec: &Spec,
        store_if: StoreIf<'_, T>,
        tags: G,
        f: F,
    ) -> impl Future<Output = Result<T, E>>
    where
        G: FnOnce() -> Vec<String>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let _ = (cache, key, spec, store_if, tags);
        f()
    }

    /// Runs the computation `make` returns.
    #[allow(clippy::too_many_arguments)]
    fn memoize_stale<E, M, F, Fut, P, G>(
        &self,
        cache: Result<Cache, CacheError>,
        key: Result<String, ArgKeyError>,
        spec: &Spec,
        store_if: Option<P>,
        tags: G,
        make: M,
    ) -> impl Future<Output = Result<T, E>>
    where
        G: FnOnce() -> Vec<String>,
        M: FnOnce() -> F,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        P: Fn(&T) -> bool + Send + Sync + 'static,
    {
        let _ = (cache, key, spec, store_if, tags);
        make()()
    }

    /// Runs `fut`.
    fn refresh_fresh<E, Fut>(
        &self,
        cache: Result<Cache, CacheError>,
        key: Result<String, ArgKeyError>,
        spec: &Spec,
        store_if: StoreIf<'_, T>,
        tags: Vec<String>,
        fut: Fut,
    ) -> impl Future<Output = Result<T, E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let _ = (cache, key, spec, store_if, tags);
        fut
    }
}

impl<T> UncachedFresh<T> for &Probe<T> {}
