//! `#[cache_view]` keeps handlers valid axum handlers: every extractor kind, every
//! argument, `?` and `return` in the body, and user code shadowing prelude names.
#![allow(dead_code, unused_macros)]

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use cached_kit::cache_view;

// Shadow what the expansion could have named without a path.
type Result<T> = std::result::Result<T, StatusCode>;
struct Option;
struct Box;
struct Ok;
struct Err;
struct Some;
struct None;
struct Response;
struct Duration;
macro_rules! concat {
    () => {};
}
macro_rules! module_path {
    () => {};
}

#[derive(Clone)]
struct Db;

#[derive(serde::Deserialize)]
struct Page {
    page: u32,
}

#[derive(serde::Deserialize, serde::Serialize)]
struct Search {
    q: std::string::String,
}

/// Docs and attributes are kept.
#[cache_view(ttl = 600)]
#[allow(unused_variables)]
pub async fn list(State(db): State<Db>, Query(q): Query<Page>) -> Json<Vec<u32>> {
    Json(vec![q.page])
}

#[cache_view(ttl = std::time::Duration::from_secs(60), cache = "default")]
async fn by_id(Path(id): Path<u64>) -> Result<std::string::String> {
    if id == 0 {
        return std::result::Result::Err(StatusCode::NOT_FOUND);
    }
    let n: u64 = id.to_string().parse().map_err(|_| StatusCode::BAD_REQUEST)?;
    std::result::Result::Ok(n.to_string())
}

#[cache_view(vary = ["Accept-Language", "X-Tenant"], shared = true, max_body = 1024)]
async fn opaque(headers: HeaderMap) -> impl IntoResponse {
    (StatusCode::OK, format!("{}", headers.len()))
}

#[cache_view]
async fn body(State(_db): State<Db>, Json(s): Json<Search>) -> Json<Search> {
    Json(s)
}

#[cache_view(ttl = 1)]
async fn whole(request: Request) -> std::string::String {
    request.uri().to_string()
}

#[cache_view()]
async fn unit() {}

#[cache_view(ttl = 5)]
async fn inner_attributes(Path(id): Path<u64>) -> std::string::String {
    #![allow(unused_variables)]
    let unused = id;
    std::string::String::new()
}

fn main() {
    let _app: Router = Router::new()
        .route("/", get(list))
        .route("/items/{id}", get(by_id))
        .route("/opaque", get(opaque))
        .route("/search", post(body).get(body))
        .route("/whole", get(whole))
        .route("/unit", get(unit))
        .route("/inner/{id}", get(inner_attributes))
        .with_state(Db);
}
