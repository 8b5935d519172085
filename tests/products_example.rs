//! The flagship example as a user runs it: a real process on a free port, over a real
//! SQLite file, checked route by route with a real HTTP client.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

struct Example {
    child: Child,
    base: String,
    db: PathBuf,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.db.display()));
        }
    }
}

/// `target/<profile>/examples/products`, which `cargo test` (all targets) builds beside
/// this test with the same features. `cargo test --test products_example` alone does not
/// build examples: build it first with the same features (`cargo build --example products`).
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir
        .join("examples")
        .join(format!("products{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: `cargo test` builds it; run `cargo build --example products` first",
        bin.display()
    );
    bin
}

fn start() -> Example {
    start_with(None)
}

fn start_with(cache_url: Option<&str>) -> Example {
    let name = match cache_url {
        Some(_) => "redis",
        None => "memory",
    };
    let db = fresh_database(name);
    launch(cache_url, db)
}

/// A path for a new SQLite file (removed if a previous run left one).
fn fresh_database(name: &str) -> PathBuf {
    let db = std::env::temp_dir().join(format!(
        "cached-kit-products-{}-{name}.db",
        std::process::id()
    ));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    db
}

/// Runs the example over the database `db` (seeded on first start).
fn launch(cache_url: Option<&str>, db: PathBuf) -> Example {
    let mut command = Command::new(example_binary());
    match cache_url {
        Some(url) => command.env("CACHE_URL", url),
        None => command.env_remove("CACHE_URL"),
    };
    let mut child = command
        .env("PORT", "0")
        .env("DATABASE_PATH", &db)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the example starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    // Seeding 100,000 rows takes a second or two in a debug build; allow for a slow machine.
    let base = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the example prints `listening on http://...`");
    Example { child, base, db }
}

fn cache_status(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn get_json(client: &reqwest::Client, url: impl reqwest::IntoUrl) -> Value {
    let resp = client.get(url).send().await.expect("the example answers");
    resp.json().await.expect("a JSON body")
}

async fn stats(client: &reqwest::Client, base: &str) -> Value {
    get_json(client, format!("{base}/cache/stats")).await
}

#[tokio::test]
async fn every_route_of_the_flagship_example() {
    let example = start();
    let base = example.base.as_str();
    let client = reqwest::Client::new();

    // Per-view caching: the second read of a list page is a hit.
    let page = format!("{base}/products?category=tables&page=1");
    let first = client.get(&page).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(
        cache_status(&first).contains("stored"),
        "{}",
        cache_status(&first)
    );
    // Served stale for 300 s past its 600 while it is refreshed, and it says so; the
    // anonymous page tells a CDN it varies on credentials.
    assert_eq!(
        header(&first, "cache-control"),
        "max-age=600, stale-while-revalidate=300"
    );
    assert_eq!(header(&first, "vary"), "authorization, cookie");
    let first_body: Value = first.json().await.unwrap();
    assert_eq!(first_body.as_array().map(Vec::len), Some(20));
    let second = client.get(&page).send().await.unwrap();
    assert!(
        cache_status(&second).contains("hit"),
        "{}",
        cache_status(&second)
    );
    assert_eq!(second.json::<Value>().await.unwrap(), first_body);

    // The benchmark's reference serves the same bytes as the cached view, uncached.
    let lamps = client
        .get(format!("{base}/products?category=lamps&page=1"))
        .send()
        .await
        .unwrap();
    let lamps = lamps.bytes().await.unwrap();
    let reference = client
        .get(format!("{base}/bench/reference-page"))
        .send()
        .await
        .unwrap();
    assert!(reference.headers().get("cache-status").is_none());
    assert_eq!(reference.bytes().await.unwrap(), lamps);

    // Per-object caching, and 404 for a missing product (cached as None).
    let p42: Value = get_json(&client, format!("{base}/products/42")).await;
    assert_eq!(p42["id"], 42);
    assert_eq!(p42["category"], "tables");
    for _ in 0..2 {
        let missing = client
            .get(format!("{base}/products/0"))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
    }
    let before = stats(&client, base).await;
    let again: Value = get_json(&client, format!("{base}/products/42")).await;
    assert_eq!(again, p42);
    let after = stats(&client, base).await;
    assert_eq!(
        after["default"]["hits"].as_u64().unwrap(),
        before["default"]["hits"].as_u64().unwrap() + 1,
        "the second read of product 42 is a hit: {after}"
    );

    // Pages that do not show product 42: stored now, and still hits after the write.
    let unrelated = [
        format!("{base}/products?category=tables&page=2"),
        format!("{base}/products?category=chairs&page=1"),
    ];
    for url in &unrelated {
        let r = client.get(url).send().await.unwrap();
        assert!(cache_status(&r).contains("stored"), "{}", cache_status(&r));
        let ids: Vec<Value> = r.json().await.unwrap();
        assert!(ids.iter().all(|p| p["id"] != 42), "{url} does not show 42");
    }

    // Invalidation: the write shows on the next read of the object and of the list page
    // that shows it (its tag `product:42` was invalidated); the others stay hits.
    let put = client
        .put(format!("{base}/products/42"))
        .json(&serde_json::json!({"name": "brass table", "price": 12.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let p42: Value = get_json(&client, format!("{base}/products/42")).await;
    assert_eq!(p42["name"], "brass table");
    assert_eq!(p42["price"], 12.5);
    let listed = client.get(&page).send().await.unwrap();
    assert_eq!(cache_status(&listed), "cached-kit; fwd=miss; stored");
    let listed: Value = listed.json().await.unwrap();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == 42)
        .expect("product 42 is on page 1 of tables");
    assert_eq!(row["name"], "brass table");
    for url in &unrelated {
        let r = client.get(url).send().await.unwrap();
        assert!(
            cache_status(&r).starts_with("cached-kit; hit; ttl="),
            "{url} does not show product 42, so it is still a hit: {}",
            cache_status(&r)
        );
    }
    let put_missing = client
        .put(format!("{base}/products/0"))
        .json(&serde_json::json!({"name": "x", "price": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(put_missing.status(), 404);

    // Low-level caching of the aggregate: same answer as the uncached route, and a hit
    // the second time.
    let uncached: Value = get_json(&client, format!("{base}/uncached/stats/categories")).await;
    assert_eq!(uncached.as_array().map(Vec::len), Some(10));
    let cached: Value = get_json(&client, format!("{base}/stats/categories")).await;
    assert_eq!(cached, uncached);
    let before = stats(&client, base).await;
    let cached_again: Value = get_json(&client, format!("{base}/stats/categories")).await;
    assert_eq!(cached_again, uncached);
    let after = stats(&client, base).await;
    assert_eq!(
        after["default"]["hits"].as_u64().unwrap(),
        before["default"]["hits"].as_u64().unwrap() + 1,
        "{after}"
    );

    // Throttling: 10 a minute per user; the 11th is refused, another user is not.
    for i in 0..10 {
        let r = client
            .get(format!("{base}/limited"))
            .bearer_auth("alice")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {}", i + 1);
    }
    let refused = client
        .get(format!("{base}/limited"))
        .bearer_auth("alice")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    let bob = client
        .get(format!("{base}/limited"))
        .bearer_auth("bob")
        .send()
        .await
        .unwrap();
    assert_eq!(bob.status(), 200, "users are throttled separately");

    // The counters saw all of it.
    let s = stats(&client, base).await;
    assert!(s["pages"]["hits"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["default"]["sets"].as_u64().unwrap() >= 3, "{s}");
    assert!(s["default"]["deletes"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["default"]["errors"], 0, "{s}");

    // And so did the metrics, served in Prometheus text format: the same lookups as the
    // counters, each view response once, each throttle decision; no key, no user.
    let scrape = metrics(&client, base).await;
    let s = stats(&client, base).await;
    for cache in ["default", "pages"] {
        let hits = s[cache]["hits"].as_u64().unwrap() - s[cache]["stale_hits"].as_u64().unwrap();
        let lookup = |result| {
            sample(
                &scrape,
                "cached_kit_cache_lookups_total",
                &[("cache", cache), ("result", result)],
            )
        };
        assert_eq!(lookup("hit"), hits, "{cache}: {scrape}");
        assert_eq!(
            lookup("miss"),
            s[cache]["misses"].as_u64().unwrap(),
            "{cache}: {scrape}"
        );
    }
    let views = |status| {
        sample(
            &scrape,
            "cached_kit_view_responses_total",
            &[("status", status)],
        )
    };
    // Through #[cache_view]: page 1 of tables stored, then a hit; lamps stored; the two
    // pages without product 42 stored; page 1 of tables stored again after the PUT (its
    // tag moved), and the other two hits: five stored, three hits.
    assert_eq!((views("stored"), views("hit")), (5, 3), "{scrape}");
    let decisions = |decision| {
        sample(
            &scrape,
            "cached_kit_throttle_decisions_total",
            &[("scope", "user"), ("decision", decision)],
        )
    };
    assert_eq!(
        (decisions("admitted"), decisions("refused")),
        (11, 1),
        "{scrape}"
    );
    assert!(
        sample(
            &scrape,
            "cached_kit_backend_duration_seconds_count",
            &[("cache", "default"), ("op", "set")]
        ) >= 3,
        "{scrape}"
    );
    for secret in ["alice", "bob", "product:42", "tables", "127.0.0.1"] {
        assert!(!scrape.contains(secret), "`{secret}` in {scrape}");
    }
}

/// `GET /metrics`, checked to be Prometheus' text format.
async fn metrics(client: &reqwest::Client, base: &str) -> String {
    let resp = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("the example answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4",
        "Prometheus' text exposition format"
    );
    let text = resp.text().await.expect("a text body");
    assert!(
        text.contains("# TYPE cached_kit_cache_lookups_total counter"),
        "{text}"
    );
    text
}

/// The value of one sample of a scrape (0 when absent): the series `name` whose labels
/// include `labels`, whatever their order.
fn sample(scrape: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    scrape
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit_once(' '))
        .map_or(0, |(_, v)| v.parse().expect("a whole count"))
}

/// With the `redis` feature and `CACHE_URL=redis://...`, the same binary caches and
/// throttles in Redis: the entries and the throttle's log are in the server.
#[cfg(feature = "redis")]
#[tokio::test]
async fn the_example_caches_and_throttles_in_redis() {
    let server = cached_testing::RedisServer::start();
    let example = start_with(Some(&server.url()));
    let base = example.base.as_str();
    let client = reqwest::Client::new();

    let page = format!("{base}/products?category=rugs&page=1");
    let first = client.get(&page).send().await.unwrap();
    assert!(
        cache_status(&first).contains("stored"),
        "{}",
        cache_status(&first)
    );
    let second = client.get(&page).send().await.unwrap();
    assert!(
        cache_status(&second).contains("hit"),
        "{}",
        cache_status(&second)
    );
    let p7: Value = get_json(&client, format!("{base}/products/7")).await;
    assert_eq!(p7["id"], 7);
    for _ in 0..10 {
        let r = client.get(format!("{base}/limited")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let refused = client.get(format!("{base}/limited")).send().await.unwrap();
    assert_eq!(refused.status(), 429);

    // Redis reads wait: they are timed, under the cache's alias.
    let scrape = metrics(&client, base).await;
    assert!(
        sample(
            &scrape,
            "cached_kit_backend_duration_seconds_count",
            &[("cache", "default"), ("op", "get")]
        ) >= 1,
        "{scrape}"
    );

    let keys = server.cli(&["--scan"]);
    assert!(keys.lines().any(|k| k == ":1:product:7"), "{keys}");
    assert!(
        keys.lines().any(|k| k.starts_with("pages:1:view:")),
        "{keys}"
    );
    assert!(
        keys.lines().any(|k| k.starts_with("products-throttle:")),
        "{keys}"
    );
}

/// Two instances of the example on one redis-server (and one SQLite file), behind one
/// site name (`Host`), as behind a load balancer: a page one stored is a hit in the
/// other, and a write through the other invalidates, in both, exactly the pages that
/// show the product (per-tag versions in Redis, no SCAN).
#[cfg(feature = "redis")]
#[tokio::test]
async fn two_instances_share_pages_and_their_invalidation_through_redis() {
    let server = cached_testing::RedisServer::start();
    let db = fresh_database("two-instances");
    let a = launch(Some(&server.url()), db.clone());
    // Started after `a` seeded the database.
    let b = launch(Some(&server.url()), db);
    let client = reqwest::Client::new();
    let get = |base: &str, path: &str| {
        client
            .get(format!("{base}{path}"))
            .header("host", "shop.example")
            .send()
    };
    let shows_7 = "/products?category=mirrors&page=1";
    let unrelated = "/products?category=clocks&page=1";

    for path in [shows_7, unrelated] {
        let stored = get(&a.base, path).await.unwrap();
        assert_eq!(cache_status(&stored), "cached-kit; fwd=miss; stored");
        let shared = get(&b.base, path).await.unwrap();
        assert!(
            cache_status(&shared).starts_with("cached-kit; hit; ttl="),
            "instance b reads what instance a stored: {}",
            cache_status(&shared)
        );
        let page: Vec<Value> = shared.json().await.unwrap();
        assert_eq!(page.iter().any(|p| p["id"] == 7), path == shows_7);
    }

    let put = client
        .put(format!("{}/products/7", b.base))
        .json(&serde_json::json!({"name": "silver mirror", "price": 99.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);

    let again = get(&a.base, shows_7).await.unwrap();
    assert_eq!(
        cache_status(&again),
        "cached-kit; fwd=miss; stored",
        "instance a sees instance b's invalidation"
    );
    let page: Vec<Value> = again.json().await.unwrap();
    let row = page.iter().find(|p| p["id"] == 7).expect("product 7");
    assert_eq!(row["name"], "silver mirror");
    for base in [&a.base, &b.base] {
        let r = get(base, unrelated).await.unwrap();
        assert!(
            cache_status(&r).starts_with("cached-kit; hit; ttl="),
            "{}",
            cache_status(&r)
        );
    }
    let keys = server.cli(&["--scan", "--pattern", "pages:tag:*"]);
    assert!(keys.lines().any(|k| k == "pages:tag:product:7"), "{keys}");
}

/// With `near_max_entries`, the same binary keeps a near tier in front of Redis: a view
/// hit from it says `detail=near`, `/cache/stats` counts `near_hits`, and a `PUT` on one
/// instance shows on another instance (same database, same Redis) within 100 ms.
#[cfg(feature = "redis")]
#[tokio::test]
async fn the_example_keeps_a_coherent_near_tier_in_front_of_redis() {
    use std::time::Instant;

    let server = cached_testing::RedisServer::start();
    let url = format!("{}?near_max_entries=1000", server.url());
    let one = launch(Some(&url), fresh_database("near"));
    // The second instance shares the first one's (seeded) database and Redis.
    let two = launch(Some(&url), one.db.clone());
    let client = reqwest::Client::new();

    // A view hit, then (once the near tier holds it) a near hit.
    let page = format!("{}/products?category=tables&page=1", two.base);
    let first = client.get(&page).send().await.unwrap();
    assert!(
        cache_status(&first).contains("stored"),
        "{}",
        cache_status(&first)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = client.get(&page).send().await.unwrap();
        let status = cache_status(&again);
        assert!(status.contains("hit"), "{status}");
        if status.ends_with("; detail=near") {
            break;
        }
        assert!(Instant::now() < deadline, "no near hit: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = stats(&client, &two.base).await;
    assert!(s["pages"]["near_hits"].as_u64().unwrap() >= 1, "{s}");

    // The object, held near in instance two.
    let object = format!("{}/products/42", two.base);
    let before: Value = get_json(&client, &object).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s0 = stats(&client, &two.base).await["default"]["near_hits"]
            .as_u64()
            .unwrap();
        let _: Value = get_json(&client, &object).await;
        let s1 = stats(&client, &two.base).await["default"]["near_hits"]
            .as_u64()
            .unwrap();
        if s1 > s0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "product 42 never became a near hit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A write on instance one.
    let put = client
        .put(format!("{}/products/42", one.base))
        .json(&serde_json::json!({"name": "near table", "price": 99.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    assert_ne!(before["name"], "near table");
    let written = Instant::now();
    loop {
        let now: Value = get_json(&client, &object).await;
        let listed: Value = get_json(&client, &page).await;
        let row = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == 42)
            .cloned();
        if now["name"] == "near table" && row.is_some_and(|r| r["name"] == "near table") {
            break;
        }
        assert!(
            written.elapsed() < Duration::from_millis(100),
            "instance two still shows {now} after {:?}",
            written.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(stats(&client, &two.base).await["default"]["errors"], 0);
}
