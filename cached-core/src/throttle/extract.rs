//! The [`Throttled`] extractor behind `#[throttle]`, its [`ThrottleSpec`], and
//! [`throttles_of`], which reads a `#[throttle]` handler's throttles back.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::response::Response;
use http::request::Parts;

use super::check::{evaluate, Verdict};
use super::settings::Settings;
use super::Throttle;

/// The throttles of one `#[throttle]`-annotated handler. Implemented by code the
/// attribute generates; not a public API.
///
/// ```
/// use cached_core::__private::throttle::ThrottleSpec;
/// use cached_core::throttle::{Rate, Scope, Throttle};
/// struct Search;
/// impl ThrottleSpec for Search {
///     const THROTTLES: &'static [Throttle] = &[Throttle::new(Scope::User, Rate::new(10, 60))];
/// }
/// # let _ = Search;
/// ```
pub trait ThrottleSpec: Send + Sync + 'static {
    /// The handler's throttles.
    const THROTTLES: &'static [Throttle];
}

/// The extractor `#[throttle]` puts first in a handler's arguments: it checks the
/// handler's throttles (with the process-wide defaults) before any other extractor
/// runs, and rejects a refused request with the refusal response. Not a public API.
///
/// ```
/// use axum::{routing::get, Router};
/// use cached_core::__private::throttle::{ThrottleSpec, Throttled};
/// use cached_core::throttle::{Rate, Scope, Throttle};
///
/// struct Limited;
/// impl ThrottleSpec for Limited {
///     const THROTTLES: &'static [Throttle] = &[Throttle::new(Scope::Anon, Rate::new(5, 60))];
/// }
/// async fn limited(_: Throttled<Limited>) -> &'static str {
///     "ok"
/// }
/// let app: Router = Router::new().route("/limited", get(limited));
/// ```
pub struct Throttled<M>(PhantomData<fn() -> M>);

impl<M, S> FromRequestParts<S> for Throttled<M>
where
    M: ThrottleSpec,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        let settings = Settings::default();
        match evaluate(M::THROTTLES, &settings, &parts.headers, &parts.extensions).await {
            Verdict::Admit(_) => Ok(Throttled(PhantomData)),
            Verdict::Refuse(response) => Err(response),
        }
    }
}

/// A `#[throttle]` handler: a function whose first argument is the extractor the
/// attribute adds. `Args` is inferred (as axum's `Handler<T, S>` infers its `T`);
/// implemented for handlers of up to 16 arguments of their own.
pub trait ThrottledHandler<Args> {
    /// The handler's throttles, every `#[throttle]` on it.
    fn throttles(&self) -> &'static [Throttle];
}

macro_rules! throttled_handler {
    ($($t:ident),*) => {
        impl<F, Fut, M, $($t,)*> ThrottledHandler<(M, $($t,)*)> for F
        where
            F: FnOnce(Throttled<M>, $($t,)*) -> Fut,
            M: ThrottleSpec,
        {
            fn throttles(&self) -> &'static [Throttle] {
                M::THROTTLES
            }
        }
    };
}

throttled_handler!();
throttled_handler!(T1);
throttled_handler!(T1, T2);
throttled_handler!(T1, T2, T3);
throttled_handler!(T1, T2, T3, T4);
throttled_handler!(T1, T2, T3, T4, T5);
throttled_handler!(T1, T2, T3, T4, T5, T6);
throttled_handler!(T1, T2, T3, T4, T5, T6, T7);
throttled_handler!(T1, T2, T3, T4, T5, T6, T7, T8);
throttled_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9);
throttled_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10);
throttled_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11);
throttled_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12);
throttled_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13);
throttled_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14);
throttled_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14, T15);
throttled_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14, T15, T16);

/// The throttles of a `#[throttle]` handler, for [`check_rates`](super::check_rates) at
/// start-up. Pass the handler itself; a function without `#[throttle]` does not compile.
///
/// ```
/// use axum::extract::Path;
/// use cached_core::throttle::{check_rates, set_rates, throttles_of, ThrottleRates};
/// # use cached_core::__private::throttle::{ThrottleSpec, Throttled};
/// # use cached_core::throttle::{Scope, Throttle};
/// # #[allow(non_camel_case_types)]
/// # struct __upload;
/// # impl ThrottleSpec for __upload {
/// #     const THROTTLES: &'static [Throttle] = &[Throttle::configured(Scope::from_static("uploads"))];
/// # }
///
/// // #[throttle(scope = "uploads")], its rate from THROTTLE_RATES
/// async fn upload(
/// #   _: Throttled<__upload>,
///     Path(name): Path<String>,
///     body: String,
/// ) -> String {
///     format!("{name}: {} bytes", body.len())
/// }
///
/// assert_eq!(throttles_of(upload).len(), 1);
/// set_rates(ThrottleRates::new().rate("uploads", "5/minute")?);
/// check_rates(&[throttles_of(upload)])?;
/// # Ok::<(), cached_core::CacheError>(())
/// ```
pub fn throttles_of<H, Args>(handler: H) -> &'static [Throttle]
where
    H: ThrottledHandler<Args>,
{
    handler.throttles()
}
