use cached_kit::throttle;

#[throttle(rate = "10/fortnight")]
async fn unknown_unit() -> &'static str {
    "ok"
}

#[throttle(rate = "0/minute", scope = "anon")]
async fn zero() -> &'static str {
    "ok"
}

const RATE: &str = "10/minute";

#[throttle(rate = RATE)]
async fn not_a_literal() -> &'static str {
    "ok"
}

#[throttle(rate = "10/M")]
async fn upper_case() -> &'static str {
    "ok"
}

#[throttle(rate = "1000/month")]
async fn months() -> &'static str {
    "ok"
}

#[throttle(rate = "10/ms")]
async fn milliseconds() -> &'static str {
    "ok"
}

#[throttle(rate = "10/5")]
async fn no_unit() -> &'static str {
    "ok"
}

#[throttle(rate = "10 per minute")]
async fn no_slash() -> &'static str {
    "ok"
}

#[throttle(rate = "1/50000d")]
async fn too_long() -> &'static str {
    "ok"
}

#[throttle(rate = "10/minute")]
#[throttle(rate = "ten/minute")]
async fn in_a_stacked_attribute() -> &'static str {
    "ok"
}

fn main() {}
