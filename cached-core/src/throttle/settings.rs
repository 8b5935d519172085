//! The process-wide defaults of `#[throttle]` and of every [`ThrottleLayer`] not given
//! its own, and a layer's own settings.
//!
//! [`ThrottleLayer`]: super::ThrottleLayer

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use axum::response::Response;

use super::{ClientIp, MemoryThrottleStore, Refusal, ThrottleStore};

/// A function shaping the response to a refused request.
pub(crate) type RefusalFn = Arc<dyn Fn(&Refusal) -> Response + Send + Sync>;

static DEFAULT_STORE: RwLock<Option<Arc<dyn ThrottleStore>>> = RwLock::new(None);
static CLIENT_IP: RwLock<Option<Arc<ClientIp>>> = RwLock::new(None);
static FAIL_CLOSED: AtomicBool = AtomicBool::new(false);
static REFUSAL: RwLock<Option<RefusalFn>> = RwLock::new(None);

/// The store used by `#[throttle]` and by every [`ThrottleLayer`](super::ThrottleLayer)
/// not given its own: a [`MemoryThrottleStore`] unless [`set_default_store`] says
/// otherwise.
///
/// ```
/// let store = cached_core::throttle::default_store();
/// assert!(!store.name().is_empty());
/// ```
pub fn default_store() -> Arc<dyn ThrottleStore> {
    static MEMORY: LazyLock<Arc<dyn ThrottleStore>> =
        LazyLock::new(|| Arc::new(MemoryThrottleStore::default()));
    let configured = DEFAULT_STORE.read().unwrap_or_else(PoisonError::into_inner);
    match &*configured {
        Some(store) => Arc::clone(store),
        None => Arc::clone(&MEMORY),
    }
}

/// Sets the store of `#[throttle]` and of layers not given their own, e.g. Redis so
/// that every instance of the app shares the budgets.
///
/// ```
/// use cached_core::throttle::{set_default_store, MemoryThrottleStore};
/// set_default_store(MemoryThrottleStore::with_max_keys(1_000_000));
/// ```
pub fn set_default_store(store: impl ThrottleStore) {
    *DEFAULT_STORE
        .write()
        .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(store));
}

/// Sets how `#[throttle]` and layers that do not set their own find the client's
/// address: which proxies to trust (by hop count or by network), which header they
/// write, and how IPv6 addresses group into clients. See [`ClientIp`].
///
/// ```
/// use cached_core::throttle::{set_client_ip, ClientIp};
/// set_client_ip(ClientIp::new().trusted_networks(["10.0.0.0/8"])?);
/// # set_client_ip(ClientIp::new());
/// # Ok::<(), cached_core::CacheError>(())
/// ```
pub fn set_client_ip(client_ip: ClientIp) {
    *CLIENT_IP.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(client_ip));
}

/// Sets how many proxies in front of the app to trust with `X-Forwarded-For` (DRF's
/// `NUM_PROXIES`), for `#[throttle]` and layers that do not set their own: the same
/// as `set_client_ip(ClientIp::new().trusted_hops(n))`. Default 0: the client IP is the
/// socket's peer address and no header is believed.
///
/// ```
/// cached_core::throttle::set_trusted_proxies(0);
/// ```
pub fn set_trusted_proxies(n: usize) {
    set_client_ip(ClientIp::new().trusted_hops(n));
}

/// Sets whether `#[throttle]` and layers that do not set their own refuse requests
/// (`503 Service Unavailable`) when the store fails. Default false: they admit them,
/// and log the failure.
///
/// ```
/// cached_core::throttle::set_fail_closed(false);
/// ```
pub fn set_fail_closed(closed: bool) {
    FAIL_CLOSED.store(closed, Ordering::Relaxed);
}

/// Sets the response to a refused request for `#[throttle]` and every layer without
/// its own [`refusal_response`](super::ThrottleLayer::refusal_response). The default
/// is the [`Refusal`]'s own `429` (its `IntoResponse`).
///
/// ```
/// use axum::response::{IntoResponse, Response};
/// use cached_core::throttle::{set_refusal_response, Refusal};
///
/// set_refusal_response(|refusal: &Refusal| -> Response {
///     let mut response = (
///         http::StatusCode::TOO_MANY_REQUESTS,
///         format!("slow down: {} seconds", refusal.retry_after_secs()),
///     )
///         .into_response();
///     refusal.set_headers(response.headers_mut());
///     response
/// });
/// ```
pub fn set_refusal_response(f: impl Fn(&Refusal) -> Response + Send + Sync + 'static) {
    *REFUSAL.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(f));
}

/// A layer's own settings; `None` means the process-wide default.
#[derive(Clone, Default)]
pub(crate) struct Settings {
    pub(crate) store: Option<Arc<dyn ThrottleStore>>,
    pub(crate) client_ip: Option<Arc<ClientIp>>,
    pub(crate) fail_closed: Option<bool>,
    pub(crate) refusal: Option<RefusalFn>,
}

/// Settings with every default filled in, for one request.
pub(crate) struct Resolved {
    pub(crate) store: Arc<dyn ThrottleStore>,
    pub(crate) client_ip: Arc<ClientIp>,
    pub(crate) fail_closed: bool,
    pub(crate) refusal: Option<RefusalFn>,
}

impl Settings {
    pub(crate) fn resolve(&self) -> Resolved {
        static PEER_ONLY: LazyLock<Arc<ClientIp>> = LazyLock::new(|| Arc::new(ClientIp::new()));
        Resolved {
            store: self.store.clone().unwrap_or_else(default_store),
            client_ip: self.client_ip.clone().unwrap_or_else(|| {
                CLIENT_IP
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
                    .unwrap_or_else(|| Arc::clone(&PEER_ONLY))
            }),
            fail_closed: self
                .fail_closed
                .unwrap_or_else(|| FAIL_CLOSED.load(Ordering::Relaxed)),
            refusal: self.refusal.clone().or_else(|| {
                REFUSAL
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            }),
        }
    }
}
