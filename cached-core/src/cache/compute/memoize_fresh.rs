//! The runtime of `#[cache_fn(tags = [..])]` and `#[cache_fn(stale = N)]`, beside the
//! plain [`memoize`](super::memoize::memoize), which functions without them keep using
//! untouched.
//!
//! Both take one `prepare` closure, which owns the call's arguments and, when called,
//! renders the tags and returns the computation (the body's call, the arguments moved
//! into it). It is called at most once, and only when needed: on a miss, on a stale hit
//! that starts a refresh, and before every read of a remote backend, whose tag versions
//! are read in the same `get_many` as the entry. An in-process hit never calls it: it
//! renders no tag (see `tags.rs`, the generation).
//!
//! - [`memoize_tagged`]: tags only; any arguments.
//! - [`memoize_stale`]: a stale window, with or without tags. The computation is
//!   `Send + 'static` (the macro requires owned `Send + 'static` arguments), since a
//!   stale hit runs it in the background, after the call returned; a miss runs it in
//!   line.
//!
//! Both fail open like `memoize`, and reach the same single flight and lock.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::convert::Infallible;
//! use cached_core::__private::memoize::{memoize_tagged, stored_key, Spec};
//! let spec = Spec { name: "doc::tagged", version: None, ttl: None, lock: false, lock_ttl: None, stale: None };
//! let cache = Ok(cached_core::cache());
//! let id = 1;
//! let key = stored_key(&cache, &spec, format_args!("tagged:{id}"));
//! let prepare = move || (vec![format!("product:{id}")], move || async move { Ok::<u32, Infallible>(id) });
//! let v = memoize_tagged(cache, key, &spec, None, prepare).await;
//! assert_eq!(v, Ok(1));
//! cached_core::cache().invalidate_tags(&["product:1"]).await.unwrap();
//! assert_eq!(cached_core::cache().get::<u32>("tagged:1").await.unwrap(), None);
//! # });
//! ```

use std::future::Future;

use super::memoize::{resolve, usable, Missed, Probe, Spec, StoreIf};
use super::revalidate::Refresh;
use super::{Cache, Cacheable, ComputeOptions, LOCK_TTL};
use crate::argkey::ArgKeyError;
use crate::cache::fresh::Lookup;
use crate::CacheError;

/// A call's tags and computation: still to prepare, or prepared.
enum Prepared<P, F> {
    Later(P),
    Now(Vec<String>, F),
}

impl<P: FnOnce() -> (Vec<String>, F), F> Prepared<P, F> {
    fn get(self) -> (Vec<String>, F) {
        match self {
            Prepared::Later(prepare) => prepare(),
            Prepared::Now(tags, f) => (tags, f),
        }
    }
}

/// Reads `skey`, preparing the call first only for a remote backend.
async fn read<T, P, F>(cache: &Cache, skey: &str, prepare: P) -> (Lookup<T>, Prepared<P, F>)
where
    T: Cacheable,
    P: FnOnce() -> (Vec<String>, F),
{
    if let Some(read) = cache.lookup_now::<T>(skey, true) {
        return (read, Prepared::Later(prepare));
    }
    let (tags, f) = prepare();
    let read = cache.lookup(skey, &tags, true).await;
    (read, Prepared::Now(tags, f))
}

/// [`Spec::options`] with the call's tags and the function's stale window.
fn options<'a, T>(
    spec: &Spec,
    store_if: StoreIf<'a, T>,
    tags: Vec<String>,
) -> ComputeOptions<'a, T> {
    let mut opts = spec.options(store_if).tags(tags);
    opts.stale = spec.stale.filter(|s| !s.is_zero());
    opts
}

/// [`memoize`](super::memoize::memoize) for a function with `tags`: the entry records
/// the versions of the tags `prepare` renders, and is a miss once one of them is
/// invalidated.
pub async fn memoize_tagged<T, E, P, F, Fut>(
    cache: Result<Cache, CacheError>,
    skey: Result<String, ArgKeyError>,
    spec: &Spec,
    store_if: StoreIf<'_, T>,
    prepare: P,
) -> Result<T, E>
where
    T: Cacheable,
    P: FnOnce() -> (Vec<String>, F),
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let Some((cache, skey)) = usable(cache, skey, spec) else {
        return prepare().1().await;
    };
    let (read, prepared) = read::<T, P, F>(&cache, &skey, prepare).await;
    if let Lookup::Fresh(v) = read {
        return Ok(v);
    }
    let (tags, f) = prepared.get();
    let opts = options(spec, store_if, tags);
    Box::pin(cache.compute_missed(&skey, &opts, f)).await
}

/// [`memoize_tagged`] after [`lookup`](super::memoize::lookup) missed: the hit path of
/// a tagged function is the plain one (an in-process entry's tags are checked there,
/// through the generation), and only a miss, or a backend that must be awaited, comes
/// here.
pub async fn memoize_tagged_missed<T, E, P, F, Fut>(
    missed: Missed,
    spec: &Spec,
    store_if: StoreIf<'_, T>,
    prepare: P,
) -> Result<T, E>
where
    T: Cacheable,
    P: FnOnce() -> (Vec<String>, F),
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let Some((cache, skey, read)) = missed.into_parts(spec) else {
        return prepare().1().await;
    };
    let prepared = if read {
        Prepared::Later(prepare)
    } else {
        // A remote backend: the entry and its tags' versions in one read.
        let (lookup, prepared) = self::read::<T, P, F>(&cache, &skey, prepare).await;
        if let Lookup::Fresh(v) = lookup {
            return Ok(v);
        }
        prepared
    };
    let (tags, f) = prepared.get();
    let opts = options(spec, store_if, tags);
    Box::pin(cache.compute_missed(&skey, &opts, f)).await
}

/// [`memoize`](super::memoize::memoize) for a function with `stale` (and maybe tags):
/// a stale value is returned at once and refreshed in the background by the
/// computation `prepare` returns (once per key in this process; once across processes
/// with `lock`); a miss runs it in line.
pub async fn memoize_stale<T, E, P, F, Fut, S>(
    cache: Result<Cache, CacheError>,
    skey: Result<String, ArgKeyError>,
    spec: &Spec,
    store_if: Option<S>,
    prepare: P,
) -> Result<T, E>
where
    T: Cacheable,
    P: FnOnce() -> (Vec<String>, F),
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    S: Fn(&T) -> bool + Send + Sync + 'static,
{
    let Some((cache, skey)) = usable(cache, skey, spec) else {
        return prepare().1().await;
    };
    let (read, prepared) = read::<T, P, F>(&cache, &skey, prepare).await;
    match read {
        Lookup::Fresh(v) => Ok(v),
        Lookup::Stale(v) => {
            let refresh = Refresh {
                skey,
                ttl: spec.ttl,
                stale: spec.stale,
                lock: spec.lock,
                lock_ttl: spec.lock_ttl.unwrap_or(LOCK_TTL),
            };
            cache.revalidate(refresh, store_if, || prepared.get());
            Ok(v)
        }
        Lookup::Miss => {
            let (tags, f) = prepared.get();
            let opts = options(spec, borrow_store_if(&store_if), tags);
            Box::pin(cache.compute_missed(&skey, &opts, f)).await
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

/// What a `stale` function's argument must be: it is moved into the computation that
/// a background refresh runs after the call returned.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be moved into a background refresh: with `stale`, every argument must be `Send + 'static`",
    label = "moved into the refresh, which runs after this call returns",
    note = "take an owned type: `String` for `&str`, `Arc<T>` for a shared resource (`self: Arc<Self>` for a method)"
)]
pub trait StaleArg: Send + 'static {}

impl<T: Send + 'static> StaleArg for T {}

/// Asserts that an argument of a `stale` function can move into its refresh (the one
/// readable error, spanned on the argument).
pub fn stale_arg<T: StaleArg>(_: &T) {}

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

// The signatures repeat in `UncachedFresh` for autoref specialization, as `ViaCache`'s
// do in `Uncached` (see there).
/// The real path of [`Probe`] for tags and `stale`: `T` is cacheable.
pub trait ViaCacheFresh<T> {
    /// [`memoize_tagged`].
    fn memoize_tagged<E, P, F, Fut>(
        &self,
        cache: Result<Cache, CacheError>,
        key: Result<String, ArgKeyError>,
        spec: &Spec,
        store_if: StoreIf<'_, T>,
        prepare: P,
    ) -> impl Future<Output = Result<T, E>>
    where
        P: FnOnce() -> (Vec<String>, F),
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>;

    /// [`memoize_tagged_missed`].
    fn memoize_tagged_missed<E, P, F, Fut>(
        &self,
        missed: Missed,
        spec: &Spec,
        store_if: StoreIf<'_, T>,
        prepare: P,
    ) -> impl Future<Output = Result<T, E>>
    where
        P: FnOnce() -> (Vec<String>, F),
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>;

    /// [`memoize_stale`].
    fn memoize_stale<E, P, F, Fut, S>(
        &self,
        cache: Result<Cache, CacheError>,
        key: Result<String, ArgKeyError>,
        spec: &Spec,
        store_if: Option<S>,
        prepare: P,
    ) -> impl Future<Output = Result<T, E>>
    where
        P: FnOnce() -> (Vec<String>, F),
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        S: Fn(&T) -> bool + Send + Sync + 'static;

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
    fn memoize_tagged<E, P, F, Fut>(
        &self,
        cache: Result<Cache, CacheError>,
        key: Result<String, ArgKeyError>,
        spec: &Spec,
        store_if: StoreIf<'_, T>,
        prepare: P,
    ) -> impl Future<Output = Result<T, E>>
    where
        P: FnOnce() -> (Vec<String>, F),
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        memoize_tagged(cache, key, spec, store_if, prepare)
    }

    fn memoize_tagged_missed<E, P, F, Fut>(
        &self,
        missed: Missed,
        spec: &Spec,
        store_if: StoreIf<'_, T>,
        prepare: P,
    ) -> impl Future<Output = Result<T, E>>
    where
        P: FnOnce() -> (Vec<String>, F),
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        memoize_tagged_missed(missed, spec, store_if, prepare)
    }

    fn memoize_stale<E, P, F, Fut, S>(
        &self,
        cache: Result<Cache, CacheError>,
        key: Result<String, ArgKeyError>,
        spec: &Spec,
        store_if: Option<S>,
        prepare: P,
    ) -> impl Future<Output = Result<T, E>>
    where
        P: FnOnce() -> (Vec<String>, F),
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        S: Fn(&T) -> bool + Send + Sync + 'static,
    {
        memoize_stale(cache, key, spec, store_if, prepare)
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
    /// Runs the computation `prepare` returns.
    fn memoize_tagged<E, P, F, Fut>(
        &self,
        cache: Result<Cache, CacheError>,
        key: Result<String, ArgKeyError>,
        spec: &Spec,
        store_if: StoreIf<'_, T>,
        prepare: P,
    ) -> impl Future<Output = Result<T, E>>
    where
        P: FnOnce() -> (Vec<String>, F),
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let _ = (cache, key, spec, store_if);
        prepare().1()
    }

    /// Runs the computation `prepare` returns.
    fn memoize_tagged_missed<E, P, F, Fut>(
        &self,
        missed: Missed,
        spec: &Spec,
        store_if: StoreIf<'_, T>,
        prepare: P,
    ) -> impl Future<Output = Result<T, E>>
    where
        P: FnOnce() -> (Vec<String>, F),
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let _ = (missed, spec, store_if);
        prepare().1()
    }

    /// Runs the computation `prepare` returns.
    fn memoize_stale<E, P, F, Fut, S>(
        &self,
        cache: Result<Cache, CacheError>,
        key: Result<String, ArgKeyError>,
        spec: &Spec,
        store_if: Option<S>,
        prepare: P,
    ) -> impl Future<Output = Result<T, E>>
    where
        P: FnOnce() -> (Vec<String>, F),
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        S: Fn(&T) -> bool + Send + Sync + 'static,
    {
        let _ = (cache, key, spec, store_if);
        prepare().1()
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
