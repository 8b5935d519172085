use cached_kit::throttle;

#[throttle(rate = "10/minute", scop = "user")]
async fn misspelled() -> &'static str {
    "ok"
}

#[throttle]
async fn no_rate_no_scope() -> &'static str {
    "ok"
}

#[throttle(algorithm = "gcra", burst = 5)]
async fn still_no_rate_no_scope() -> &'static str {
    "ok"
}

#[throttle(rate = "10/minute")]
fn not_async() -> &'static str {
    "ok"
}

fn main() {}
