//! The flagship example: an axum product API over a real SQLite database, showing every
//! caching strategy of cached-kit.
//!
//! ```sh
//! cargo run --example products                       # in memory, on 127.0.0.1:3000
//! PORT=8080 cargo run --example products
//! CACHE_URL=redis://127.0.0.1:6379/0 cargo run --example products --features redis
//! # with a near tier in front of Redis (view hits from it say `detail=near`):
//! CACHE_URL='redis://127.0.0.1:6379/0?near_max_entries=1000' cargo run --example products --features redis
//! ```
//!
//! `GET /metrics` needs the `metrics` feature, which is on by default.
//!
//! | route | shows |
//! |---|---|
//! | `GET /products?category=C&page=N` | per-view caching (`#[cache_view]`), stale-while-revalidate, pages tagged with the products they show |
//! | `GET /products/{id}` | per-object caching (`#[cache_fn]`), 404 when absent |
//! | `PUT /products/{id}` | invalidation: `#[cache_evict]` deletes `product:{id}`; `invalidate_tags(["product:{id}"])` makes exactly the list pages showing it miss |
//! | `GET /stats/categories` | low-level caching (`get_or_set_with`) of an aggregate |
//! | `GET /uncached/stats/categories` | the same aggregate, never cached |
//! | `GET /limited` | throttling: 10/minute per user (`Authorization: Bearer <name>`) or IP |
//! | `GET /cache/stats` | each cache's counters |
//! | `GET /metrics` | the same and more in Prometheus text format: lookups, errors, backend durations, view responses, throttle decisions |
//! | `GET /bench/reference-page?category=lamps&page=1` | page 1 of lamps from memory, uncached, through the same extractors as the list: the benchmark's reference |

mod db;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cached_kit::http::CacheTags;
use cached_kit::{cache_evict, cache_fn, cache_view, caches, throttle, Cache, CacheStats};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;

use db::{CategoryStat, Db, DbError, NewProduct, Product};

/// How many products a fresh database is seeded with.
const SEED_PRODUCTS: i64 = 100_000;

/// The alias of the cache holding the list pages: a write invalidates its tags.
const PAGES: &str = "pages";

#[derive(Clone)]
struct App {
    db: Db,
    /// The body of `GET /products?category=lamps&page=1`, computed at start-up: the
    /// "same bytes from memory" reference of the HTTP benchmark (P3).
    reference_page: axum::body::Bytes,
    /// Renders what the installed Prometheus recorder holds (`GET /metrics`).
    metrics: PrometheusHandle,
}

/// Per-object caching: one entry per product, under the readable key `product:{id}`.
/// `None` (no such product) is cached too, so repeated lookups of a missing id do not
/// reach the database.
#[cache_fn(ttl = 300, key = "product:{id}")]
async fn product(db: &Db, id: i64) -> Result<Option<Product>, DbError> {
    db.product(id).await
}

/// Invalidation: after a successful update, the entry `product:{id}` is deleted.
#[cache_evict(key = "product:{id}")]
async fn update_product(db: &Db, id: i64, p: NewProduct) -> Result<Option<Product>, DbError> {
    db.update(id, p).await
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    category: Option<String>,
    page: Option<i64>,
}

/// Per-view caching: the whole response (status, headers, body) is replayed for 600 s
/// per method, host, path and full query, then served stale for up to 300 s more while
/// one refresh runs in the background. Each page is tagged with the products it shows
/// (`product:{id}`) and its category (`category:{name}`, or `category:all`), and every
/// page with `products`: a write invalidates exactly the pages it changes.
#[cache_view(ttl = 600, stale = 300, cache = "pages", tags = ["products"])]
async fn list_products(
    State(app): State<App>,
    Query(q): Query<ListQuery>,
) -> Result<(CacheTags, Json<Vec<Product>>), AppError> {
    let category = format!("category:{}", q.category.as_deref().unwrap_or("all"));
    let products = app.db.list(q.category, q.page.unwrap_or(1)).await?;
    let mut tags: CacheTags = products
        .iter()
        .map(|p| format!("product:{}", p.id))
        .collect();
    tags.push(category);
    Ok((tags, Json(products)))
}

async fn get_product(State(app): State<App>, Path(id): Path<i64>) -> Result<Response, AppError> {
    Ok(match product(&app.db, id).await? {
        Some(p) => Json(p).into_response(),
        None => not_found(id),
    })
}

async fn put_product(
    State(app): State<App>,
    Path(id): Path<i64>,
    Json(body): Json<NewProduct>,
) -> Result<Response, AppError> {
    let Some(updated) = update_product(&app.db, id, body).await? else {
        return Ok(not_found(id));
    };
    invalidate_dependents(id).await;
    Ok(Json(updated).into_response())
}

/// The list pages that show product `id` (tagged `product:{id}`, in every process
/// sharing the cache) and the aggregate over prices are stale too; every other page
/// stays cached.
async fn invalidate_dependents(id: i64) {
    if let Ok(pages) = caches().get(PAGES) {
        if let Err(e) = pages.invalidate_tags(&[format!("product:{id}")]).await {
            tracing::warn!(error = %e, "could not invalidate the list pages showing the product");
        }
    }
    if let Err(e) = cached_kit::cache().delete("stats:categories").await {
        tracing::warn!(error = %e, "could not delete the category stats");
    }
}

/// Low-level caching: the expensive aggregate, computed once per minute (and once for
/// all concurrent callers of a cold entry).
async fn category_stats(State(app): State<App>) -> Result<Json<Vec<CategoryStat>>, AppError> {
    let db = app.db.clone();
    let stats = cached_kit::cache()
        .try_get_or_set_with("stats:categories", Duration::from_secs(60), || async move {
            db.category_stats().await
        })
        .await?;
    Ok(Json(stats))
}

async fn uncached_category_stats(
    State(app): State<App>,
) -> Result<Json<Vec<CategoryStat>>, AppError> {
    Ok(Json(app.db.category_stats().await?))
}

/// Throttling: 10 requests a minute per user, or per client IP for anonymous requests.
#[throttle(rate = "10/minute", scope = "user")]
async fn limited() -> &'static str {
    "you are within your rate\n"
}

/// The P3 reference: the bytes of a list page, served from memory with no cache at all.
/// It takes the same extractors as `list_products`, which a `#[cache_view]` hit still
/// runs, so the comparison measures the cache alone.
async fn reference_page(State(app): State<App>, Query(_q): Query<ListQuery>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        app.reference_page.clone(),
    )
        .into_response()
}

async fn cache_stats() -> Json<BTreeMap<String, CacheStats>> {
    Json(
        caches()
            .all()
            .into_iter()
            .map(|c| (c.alias().to_owned(), c.stats()))
            .collect(),
    )
}

/// Every metric in Prometheus text format, for a scraper: what cached-kit reports
/// through the `metrics` facade (its `cached_kit_*` series), with anything else the
/// application records.
async fn metrics(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

/// Installs the Prometheus recorder that `GET /metrics` renders, before any cache is
/// used (a cache used earlier would still find it, from its next events on). Backend
/// durations are kept as a real histogram, with buckets from 50 µs (a memory call) to
/// a second (a Redis call timing out), rather than the exporter's default summary.
fn install_metrics() -> Result<PrometheusHandle, Box<dyn std::error::Error>> {
    const SECONDS: [f64; 12] = [
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("cached_kit_backend_duration_seconds".into()),
            &SECONDS,
        )?
        .install_recorder()?;
    // The recorder keeps histogram samples until they are drained: drain them every few
    // seconds even when nobody scrapes.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// A stand-in for the application's auth layer: `Authorization: Bearer <name>` makes
/// the request authenticated as `<name>`, which is what `scope = "user"` throttles by.
async fn authenticate(mut req: Request, next: Next) -> Response {
    let user = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty());
    if let Some(user) = user {
        req.extensions_mut()
            .insert(cached_kit::throttle::ThrottleIdentity::new(user));
    }
    next.run(req).await
}

fn router(app: App) -> Router {
    Router::new()
        .route("/products", get(list_products))
        .route("/products/{id}", get(get_product).put(put_product))
        .route("/stats/categories", get(category_stats))
        .route("/uncached/stats/categories", get(uncached_category_stats))
        .route("/limited", get(limited))
        .route("/cache/stats", get(cache_stats))
        .route("/metrics", get(metrics))
        .route("/bench/reference-page", get(reference_page))
        .layer(middleware::from_fn(authenticate))
        .with_state(app)
}

fn not_found(id: i64) -> Response {
    let body = serde_json::json!({ "error": format!("no product with id {id}") });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// A database failure, as a 500 with a JSON body.
struct AppError(DbError);

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        AppError(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "request failed");
        let body = serde_json::json!({ "error": self.0.to_string() });
        (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
    }
}

/// The `pages` cache: `CACHE_URL_PAGES` if set, otherwise the default cache's backend
/// under its own key prefix (its entries and tag versions apart from the others).
fn configure_pages_cache() -> Result<(), cached_kit::CacheError> {
    if std::env::var_os("CACHE_URL_PAGES").is_some() {
        return caches().get(PAGES).map(|_| ());
    }
    let default = caches().get("default")?;
    let pages = Cache::builder_arc(default.backend().clone())
        .alias(PAGES)
        .key_prefix(format!("{}pages", default.key_prefix()))
        .version(default.version())
        .codec(default.codec())
        .build();
    caches().insert(pages);
    Ok(())
}

/// With the `redis` feature and the default cache in Redis, throttle through the same
/// Redis too, so every instance of the app shares one count per client. The store is
/// built from `CACHE_URL` as it is, with every setting it carries (TLS roots, timeouts,
/// circuit breaker; a cluster works too), under a key prefix of its own so that
/// clearing a cache never clears the throttle logs.
fn configure_throttle_store() -> Result<(), cached_kit::CacheError> {
    #[cfg(feature = "redis")]
    if cached_kit::cache().backend().name() == "redis" {
        if let Ok(url) = std::env::var("CACHE_URL") {
            let store = cached_kit::redis::throttle::RedisThrottleStore::from_url(&url)?
                .key_prefix("products-throttle");
            cached_kit::throttle::set_default_store(store);
            println!("throttling in Redis");
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("products: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,cached_core=warn".into()),
        )
        .init();

    // First, so that every cache reports from its first call.
    let metrics = install_metrics()?;

    // A bad CACHE_URL is a start-up error here, not a silent fallback.
    caches().configure_from_env()?;
    configure_pages_cache()?;
    configure_throttle_store()?;

    let path = std::env::var("DATABASE_PATH").unwrap_or_else(|_| "products.db".into());
    let started = Instant::now();
    let db = Db::open(&path, SEED_PRODUCTS).await?;
    println!(
        "database {path} ready in {:.1?} ({SEED_PRODUCTS} products seeded on first start)",
        started.elapsed()
    );

    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| format!("PORT={p} is not a port number"))?,
        Err(_) => 3000,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let cache = cached_kit::cache();
    println!(
        "cache: {} ({} backend)",
        cache.alias(),
        cache.backend().name()
    );
    println!("listening on http://{addr}");
    println!("try:");
    println!(
        "  curl -i 'http://{addr}/products?category=lamps&page=2'   # twice: Cache-Status hit"
    );
    println!("  curl -i http://{addr}/products/42");
    println!("  curl -i -X PUT -H 'content-type: application/json' -d '{{\"name\":\"brass lamp\",\"price\":12.5}}' http://{addr}/products/42");
    println!("  curl -i 'http://{addr}/products?category=tables&page=1'   # shows 42: a miss with the new name; page=2 stays a hit");
    println!("  curl http://{addr}/stats/categories      # vs /uncached/stats/categories");
    println!("  curl -i -H 'Authorization: Bearer alice' http://{addr}/limited   # 11th in a minute: 429");
    println!("  curl http://{addr}/cache/stats");
    println!("  curl http://{addr}/metrics               # Prometheus text format");

    let reference_page = serde_json::to_vec(&db.list(Some("lamps".into()), 1).await?)?.into();
    axum::serve(
        listener,
        router(App {
            db,
            reference_page,
            metrics,
        })
        .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
