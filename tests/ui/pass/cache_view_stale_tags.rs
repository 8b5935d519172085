//! `stale` and `tags` on `#[cache_view]`: owned extractors move into the refresh, a
//! handler tags its response with `CacheTags`, and the handler stays an axum handler.
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use cached_kit::cache_view;
use cached_kit::http::CacheTags;

#[derive(Clone)]
struct Db(Arc<Vec<String>>);

#[derive(serde::Deserialize)]
struct Page {
    page: Option<usize>,
}

#[cache_view(ttl = 60, stale = 600, tags = ["products", "catalog"])]
async fn list(State(db): State<Db>, Query(q): Query<Page>) -> (CacheTags, Json<Vec<String>>) {
    let page = q.page.unwrap_or(0);
    let names: Vec<String> = db.0.iter().skip(page * 20).take(20).cloned().collect();
    let tags = CacheTags::new((page * 20..page * 20 + names.len()).map(|i| format!("product:{i}")));
    (tags, Json(names))
}

#[cache_view(stale = std::time::Duration::from_secs(30), tags = "one")]
async fn one(Path(id): Path<u32>) -> Result<String, String> {
    if id == 0 {
        return Err("no such product".to_owned());
    }
    Ok(format!("product {id}"))
}

fn main() {
    let app: Router = Router::new()
        .route("/products", get(list))
        .route("/products/{id}", get(one))
        .with_state(Db(Arc::new(vec!["lamp".to_owned()])));
    let _ = app;
}
