//! `#[throttle]` on handlers of every visibility, with extractors, stacked, in a module
//! that shadows the prelude names the expansion must not rely on.

#![allow(dead_code)]

mod handlers {
    use axum::extract::{Path, Query, State};
    use axum::http::StatusCode;
    use axum::Json;
    use cached_kit::throttle;

    type Result<T> = core::result::Result<T, ()>;
    struct Option;
    struct Box;
    struct Vec;
    mod std {}
    mod core_ {}

    #[derive(Clone)]
    pub struct Db;

    #[derive(serde::Deserialize)]
    pub struct Page {
        pub page: u32,
    }

    #[throttle(rate = "10/minute")]
    pub async fn plain() -> &'static str {
        "ok"
    }

    // DRF reads the unit from its first letter; its multiple is `2-sec`.
    #[throttle(rate = "100/hr")]
    #[throttle(rate = "5/sec", scope = "anon")]
    #[throttle(rate = "1/2-sec", scope = "bursts")]
    pub async fn drf_spellings() -> &'static str {
        #![allow(clippy::needless_return)]
        return "ok";
    }

    #[throttle(rate = "100/h", scope = "anon")]
    #[throttle(rate = "1000/day", scope = "listing")]
    pub(crate) async fn with_extractors(
        State(_db): State<Db>,
        Path(id): Path<u32>,
        Query(q): Query<Page>,
        Json(body): Json<serde_json::Value>,
    ) -> core::result::Result<String, StatusCode> {
        if id == 0 {
            return Err(StatusCode::NOT_FOUND);
        }
        Ok(format!("{id} {} {body}", q.page))
    }

    // Rates from configuration (THROTTLE_RATES or set_rates) and GCRA.
    #[throttle(scope = "uploads")]
    #[throttle(scope = "anon", algorithm = "gcra")]
    #[throttle(rate = "1000/second", algorithm = "gcra", burst = 50)]
    #[throttle(rate = "10/minute", algorithm = "sliding_log")]
    pub async fn configured_and_gcra(Path(id): Path<u32>) -> String {
        id.to_string()
    }

    #[cached_kit::throttle(rate = "2/30s", scope = "uploads")]
    pub(super) async fn returns_impl() -> impl axum::response::IntoResponse {
        let _: Result<()> = Ok(());
        "ok"
    }
}

fn main() {
    use axum::routing::{get, post};
    let _app: axum::Router = axum::Router::new()
        .route("/", get(handlers::plain))
        .route("/drf", get(handlers::drf_spellings))
        .route("/items/{id}", post(handlers::with_extractors))
        .route("/upload", post(handlers::returns_impl))
        .route("/configured/{id}", get(handlers::configured_and_gcra))
        .with_state(handlers::Db);
    // A #[throttle] handler's throttles, for the start-up check of configured rates.
    let throttles = cached_kit::throttle::throttles_of(handlers::configured_and_gcra);
    assert_eq!(throttles.len(), 4);
    let _ = cached_kit::throttle::check_rates(&[throttles]);
}
