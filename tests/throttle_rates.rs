//! Rates from configuration (DRF's `DEFAULT_THROTTLE_RATES`): `#[throttle(scope = "x")]`
//! and `Throttle::configured` take their rate from `THROTTLE_RATES` or from code;
//! `check_rates` names the scopes that have none, and such a route fails closed.
//!
//! `THROTTLE_RATES` is this process's own environment, set once before any test reads
//! it. The bad-entry case runs in a child process (this binary again) started with a
//! bad `THROTTLE_RATES`, as a misconfigured service would be.

use std::sync::OnceLock;

use axum::routing::get;
use axum::Router;
use cached_kit::throttle;
use cached_kit::throttle::{
    check_rates, set_rates, throttles_of, MemoryThrottleStore, Scope, Throttle, ThrottleLayer,
    ThrottleRates,
};
use cached_testing::http::{client, serve_with_connect_info};
use cached_testing::process::{spawn_test, stdout_of};
use reqwest::StatusCode;

const RATES: &str = "anon=2/minute, uploads=3/minute,bursty=6/minute";

/// Sets `THROTTLE_RATES` (in the parent; a child keeps the one it was started with).
fn configure() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if std::env::var("CACHED_KIT_CHILD").is_err() {
            std::env::set_var("THROTTLE_RATES", RATES);
        }
    });
}

#[throttle(scope = "uploads")]
async fn upload() -> &'static str {
    "stored"
}

#[throttle(scope = "reports")]
async fn reports() -> &'static str {
    "report"
}

#[throttle(scope = "audits")]
#[throttle(rate = "100/minute")]
async fn audits() -> &'static str {
    "audit"
}

#[throttle(scope = "bursty", algorithm = "gcra", burst = 2)]
async fn bursty() -> &'static str {
    "ok"
}

#[throttle(scope = "from-code")]
async fn from_code() -> &'static str {
    "ok"
}

fn anon_layer() -> ThrottleLayer {
    ThrottleLayer::new()
        .store(MemoryThrottleStore::default())
        .throttle(Throttle::configured(Scope::Anon))
}

fn routes() -> Router {
    Router::new()
        .route("/upload", get(upload))
        .route("/reports", get(reports))
        .route("/audits", get(audits))
        .route("/bursty", get(bursty))
        .route("/from-code", get(from_code))
        .route("/layered", get(|| async { "ok" }).layer(anon_layer()))
}

async fn status(client: &reqwest::Client, url: &str) -> StatusCode {
    client.get(url).send().await.expect("request").status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scope_without_a_rate_takes_it_from_throttle_rates() {
    configure();
    check_rates(&[
        throttles_of(upload),
        throttles_of(bursty),
        anon_layer().throttles(),
    ])
    .expect("every scope used here has a rate");
    let url = format!("{}/upload", serve_with_connect_info(routes()).await);
    let client = client();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move { client.get(&url).send().await.expect("request") });
    }
    let (mut ok, mut throttled) = (0, 0);
    while let Some(res) = tasks.join_next().await {
        let res = res.expect("task");
        match res.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(res.headers()["ratelimit-policy"], "3;w=60");
                throttled += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, throttled), (3, 47), "uploads=3/minute");
}

#[tokio::test]
async fn a_layer_throttle_without_a_rate_takes_its_scopes() {
    configure();
    let url = format!("{}/layered", serve_with_connect_info(routes()).await);
    let client = client();
    assert_eq!(status(&client, &url).await, StatusCode::OK);
    assert_eq!(status(&client, &url).await, StatusCode::OK);
    assert_eq!(status(&client, &url).await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_configured_gcra_scope_admits_its_burst_then_waits_one_interval() {
    configure();
    let url = format!("{}/bursty", serve_with_connect_info(routes()).await);
    let client = client();
    assert_eq!(status(&client, &url).await, StatusCode::OK);
    assert_eq!(status(&client, &url).await, StatusCode::OK);
    let res = client.get(&url).send().await.expect("request");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "10");
    assert_eq!(res.headers()["ratelimit-policy"], "6;w=60;burst=2");
}

#[tokio::test]
async fn check_rates_names_every_scope_without_a_rate_and_such_a_route_fails_closed() {
    configure();
    let err = check_rates(&[
        throttles_of(upload),
        throttles_of(reports),
        throttles_of(audits),
        throttles_of(reports),
    ])
    .expect_err("reports and audits have no rate");
    let msg = err.to_string();
    assert!(msg.contains("scopes `audits`, `reports`"), "{msg}");
    assert!(!msg.contains("uploads"), "{msg}");
    assert!(msg.contains("THROTTLE_RATES"), "{msg}");

    // Unchecked, the route is never served unthrottled.
    let url = serve_with_connect_info(routes()).await;
    let client = client();
    for _ in 0..3 {
        let res = client
            .get(format!("{url}/reports"))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(res.text().await.expect("body").contains("misconfigured"));
        assert_eq!(
            status(&client, &format!("{url}/audits")).await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}

#[tokio::test]
async fn rates_from_code_join_those_of_the_environment() {
    configure();
    // Installed while the other tests run: a superset of THROTTLE_RATES.
    set_rates(
        ThrottleRates::from_env()
            .expect("THROTTLE_RATES")
            .rate("from-code", "1/minute")
            .expect("rate"),
    );
    check_rates(&[throttles_of(from_code), throttles_of(upload)]).expect("both have rates");
    let url = format!("{}/from-code", serve_with_connect_info(routes()).await);
    let client = client();
    assert_eq!(status(&client, &url).await, StatusCode::OK);
    assert_eq!(status(&client, &url).await, StatusCode::TOO_MANY_REQUESTS);
}

/// In the child: the start-up check, then one request; prints both results.
async fn run_child() -> bool {
    if std::env::var("CACHED_KIT_CHILD").as_deref() != Ok("bad-env") {
        return false;
    }
    match check_rates(&[throttles_of(upload)]) {
        Ok(()) => println!("\nCHECK=ok"),
        Err(err) => println!("\nCHECK={err}"),
    }
    // Even an app whose throttles all have rates hears about a bad variable.
    let fixed: &[Throttle] = &[Throttle::anon("1/minute").expect("rate")];
    match check_rates(&[fixed]) {
        Ok(()) => println!("CHECK_FIXED=ok"),
        Err(err) => println!("CHECK_FIXED={err}"),
    }
    let url = format!("{}/upload", serve_with_connect_info(routes()).await);
    println!("STATUS={}", status(&client(), &url).await.as_u16());
    true
}

#[tokio::test]
async fn a_bad_throttle_rates_entry_is_an_error_quoting_it() {
    if run_child().await {
        return;
    }
    let out = spawn_test(
        "a_bad_throttle_rates_entry_is_an_error_quoting_it",
        &[
            ("CACHED_KIT_CHILD", "bad-env"),
            ("THROTTLE_RATES", "uploads=3/minute, reports=5/fortnight"),
        ],
    )
    .wait_with_output()
    .expect("run the child");
    let stdout = stdout_of(&out);
    let line = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} line in:\n{stdout}"))
            .to_owned()
    };
    let check = line("CHECK=");
    assert!(check.contains("THROTTLE_RATES"), "{check}");
    assert!(check.contains("entry `reports=5/fortnight`"), "{check}");
    assert!(check.contains("`5/fortnight`"), "{check}");
    assert_eq!(line("CHECK_FIXED="), check);
    // The throttle that needs THROTTLE_RATES fails closed, even for a scope whose own
    // entry was fine: the variable as a whole is wrong.
    assert_eq!(line("STATUS="), "500");
}
