//! `#[cache_view]` and `#[throttle]` in a module that shadows the prelude and the
//! standard crates: the expansions name everything through `::cached_kit::__private`.
#![allow(dead_code, non_camel_case_types)]

mod handlers {
    use cached_kit::{cache_view, throttle};

    type Result<T> = ::core::result::Result<T, ()>;
    struct Option;
    struct Box;
    struct String;
    struct Vec;
    struct Ok;
    struct Err;
    struct Some;
    struct None;
    struct Response;
    trait Send {}
    trait Sync {}
    mod std {}
    mod core {}

    #[cache_view(ttl = 60, vary = ["Accept-Language"], max_body = 1024)]
    pub async fn page(axum::extract::Path(id): axum::extract::Path<u32>) -> ::std::string::String {
        #![allow(clippy::useless_format)]
        ::std::format!("{id}")
    }

    #[throttle(rate = "100/hr")]
    #[cache_view(ttl = ::std::time::Duration::from_secs(5))]
    pub async fn limited() -> &'static str {
        "ok"
    }
}

fn main() {
    use axum::routing::get;
    let _app: axum::Router = axum::Router::new()
        .route("/page/{id}", get(handlers::page))
        .route("/limited", get(handlers::limited));
}
