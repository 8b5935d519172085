use cached_kit::throttle;

#[throttle(rate = "10/minute", scop = "user")]
async fn misspelled() -> &'static str {
    "ok"
}

#[throttle(scope = "user")]
async fn no_rate() -> &'static str {
    "ok"
}

#[throttle(rate = "10/minute")]
fn not_async() -> &'static str {
    "ok"
}

fn main() {}
