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

fn main() {}
