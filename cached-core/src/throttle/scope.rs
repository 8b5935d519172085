//! Scopes and client identity: who a request counts against.

use std::borrow::Cow;
use std::fmt;
use std::sync::Once;

use http::{Extensions, HeaderMap};

use super::ClientIp;

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
/// `into_make_service_with_connect_info::<SocketAddr>()`); a proxy header counts only
/// when the throttle is told which proxies to trust ([`ClientIp`]), and IPv6 clients
/// count per /64.
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

    /// A named scope, in a `const`.
    ///
    /// ```
    /// use cached_core::throttle::Scope;
    /// const UPLOADS: Scope = Scope::from_static("uploads");
    /// assert_eq!(UPLOADS, Scope::named("uploads"));
    /// ```
    pub const fn from_static(name: &'static str) -> Scope {
        Scope::Named(Cow::Borrowed(name))
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
    client_ip: &ClientIp,
) -> Option<String> {
    let identity = extensions.get::<ThrottleIdentity>();
    match (scope, identity) {
        (Scope::Anon, Some(_)) => None,
        (Scope::User | Scope::Named(_), Some(ThrottleIdentity(id))) => Some(format!("id:{id}")),
        (_, None) => Some(match client_ip.resolve(headers, extensions) {
            Some(ip) => format!("ip:{}", client_ip.client_key(ip)),
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
