//! `#[throttle]`: DRF's rate limits on an axum handler.
//!
//! The handler stays an ordinary axum handler with all its extractors: the expansion
//! adds a first argument, the `Throttled<Marker>` extractor, which checks the handler's
//! throttles before any other extractor runs (so a refused request's body is never
//! read) and rejects a refused request with `429 Too Many Requests`. `Marker` is a unit
//! struct generated beside the handler that carries its throttles as a constant. The
//! return type is unchanged. Several `#[throttle]` attributes on one handler become one
//! extractor, so every throttle is evaluated and the longest wait wins.
//!
//! Rates are string literals, parsed here: a bad rate is a compile error on the literal.
//! A throttle without `rate` becomes `Throttle::configured(scope)`, whose rate the
//! runtime looks up by scope name; `algorithm = "gcra"` (with `burst`) becomes
//! `.gcra(burst)`. The extractor and the marker's trait live in the facade's
//! `__private::throttle`; the throttles themselves are public types.

mod args;
mod expand;

use proc_macro2::TokenStream;

/// Expands `#[throttle(args)] item`; on any error, the item as written plus the errors.
pub fn throttle(args: TokenStream, item: TokenStream) -> TokenStream {
    crate::item::expand_attribute::<args::Args>(args, item, expand::expand)
}
