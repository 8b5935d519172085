//! Scopes and client identity: who a request counts against.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Once;

use axum::extract::ConnectInfo;
use http::{Extensions, HeaderMap};

/// The identity of an authenticated client, as your auth layer puts it in the request
/// extensions. Throttles with the [`Scope::User`] scope count requests per identity;
/// [`Scope::Anon`] throttles skip requests that carry one.
///
/// Insert it in a middleware (or an extractor) that runs before the throttle:
///
/// ```
/// use axum::{extract::Request, middleware::Next, response::Response};
/// use cached_core::throttle::ThrottleIdentity;
///
/// /// Treats `Authorization: Bearer <name>` as the user `<name>` (a real app verifies it).
/// async fn authenticate(mut req: Request, next: Next) -> Response {
///     let user = req
///         .headers()
///         .get("authorization")
///         .and_then(|v| v.to_str().ok())
///         .and_then(|v| v.strip_prefix("Bearer "))
///         .map(str::to_owned);
///     if let Some(user) = user {
///         req.extensions_mut().insert(ThrottleIdentity::new(user));
///     }
///     next.run(req).await
/// }
///
/// # fn app() -> Result<(), cached_core::throttle::ParseRateError> {
/// use axum::{middleware, routing::get, Router};
/// use cached_core::throttle::{Throttle, ThrottleLayer};
///
/// let app: Router = Router::new()
///     .route("/limited", get(|| async { "ok" }))
///     .layer(ThrottleLayer::new().throttle(Throttle::user("10/minute")?))
///     .layer(middleware::from_fn(authenticate)); // added last, runs first
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ThrottleIdentity(pub String);

impl ThrottleIdentity {
    /// The identity `id` (a user id, an API key's id: anything stable and unique).
    pub fn new(id: impl Into<String>) -> Self {
        ThrottleIdentity(id.into())
    }
}

/// Whom a throttle counts requests against (DRF's throttle classes).
///
/// | scope | authenticated request ([`ThrottleIdentity`]) | anonymous request |
/// |---|---|---|
/// | `User` (`UserRateThrottle`) | per identity | per client IP |
/// | `Anon` (`AnonRateThrottle`) | not throttled | per client IP |
/// | `Named` (`ScopedRateThrottle`) | per identity | per client IP |
///
/// The client IP is the socket's peer address (serve the app with
/// `into_make_service_with_connect_info::<SocketAddr>()`); `X-Forwarded-For` counts only
/// when the throttle is told how many proxies in front of the app to trust.
///
/// Throttles with the same scope and rate share their counts wherever they are used,
/// across routes and handlers: a named scope is how several routes share one budget.
///
/// ```
/// use cached_core::throttle::Scope;
/// assert_eq!(Scope::named("uploads").name(), "uploads");
/// assert_eq!(Scope::User.name(), "user");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Authenticated clients by identity, anonymous ones by IP.
    User,
    /// Anonymous clients only, by IP.
    Anon,
    /// A named budget: by identity, or by IP for anonymous clients.
    Named(Cow<'static, str>),
}

impl Scope {
    /// A named scope.
    pub fn named(name: impl Into<Cow<'static, str>>) -> Scope {
        Scope::Named(name.into())
    }

    /// `user`, `anon`, or the scope's name.
    pub fn name(&self) -> &str {
        match self {
            Scope::User => "user",
            Scope::Anon => "anon",
            Scope::Named(name) => name,
        }
    }

    /// The scope for a name as the `#[throttle]` attribute writes it: `user`, `anon`,
    /// anything else is a named scope.
    pub fn from_name(name: &str) -> Scope {
        match name {
            "user" => Scope::User,
            "anon" => Scope::Anon,
            other => Scope::Named(Cow::Owned(other.to_owned())),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who the request is, for `scope`: `None` when the scope does not throttle it.
pub(crate) fn client_ident(
    scope: &Scope,
    headers: &HeaderMap,
    extensions: &Extensions,
    trusted_proxies: usize,
) -> Option<String> {
    let identity = extensions.get::<ThrottleIdentity>();
    match (scope, identity) {
        (Scope::Anon, Some(_)) => None,
        (Scope::User | Scope::Named(_), Some(ThrottleIdentity(id))) => Some(format!("id:{id}")),
        (_, None) => Some(match client_ip(headers, extensions, trusted_proxies) {
            Some(ip) => format!("ip:{ip}"),
            None => {
                static WARN: Once = Once::new();
                WARN.call_once(|| {
                    tracing::warn!(
                        "throttle: the request has no client address, so every such request shares one budget; \
                         serve the app with `into_make_service_with_connect_info::<SocketAddr>()`"
                    );
                });
                "ip:unknown".to_owned()
            }
        }),
    }
}

/// The client's IP address: the socket peer, or with `trusted_proxies > 0` the address
/// that many hops from the right of `X-Forwarded-For` (DRF's `NUM_PROXIES`).
///
/// With one trusted proxy, the proxy appends the address it saw, so the last entry is
/// the client and whatever a client wrote in front of it is ignored.
///
/// ```
/// use std::net::SocketAddr;
/// use axum::extract::ConnectInfo;
/// use cached_core::throttle::client_ip;
///
/// let mut req = http::Request::new(());
/// req.headers_mut().insert("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse().unwrap());
/// req.extensions_mut().insert(ConnectInfo("10.0.0.2:4000".parse::<SocketAddr>().unwrap()));
/// let (h, e) = (req.headers(), req.extensions());
/// assert_eq!(client_ip(h, e, 0).unwrap().to_string(), "10.0.0.2");
/// assert_eq!(client_ip(h, e, 1).unwrap().to_string(), "203.0.113.9");
/// assert_eq!(client_ip(h, e, 2).unwrap().to_string(), "6.6.6.6");
/// ```
pub fn client_ip(
    headers: &HeaderMap,
    extensions: &Extensions,
    trusted_proxies: usize,
) -> Option<IpAddr> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if trusted_proxies == 0 {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .collect();
    let Some(hop) = hops.get(hops.len().saturating_sub(trusted_proxies)) else {
        return peer;
    };
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or(peer)
}
