use cached_kit::throttle;

#[throttle(rate = "10/minute", burst = 5)]
async fn burst_without_gcra() -> &'static str {
    "ok"
}

#[throttle(rate = "10/minute", algorithm = "sliding_log", burst = 5)]
async fn burst_with_the_sliding_log() -> &'static str {
    "ok"
}

#[throttle(rate = "10/minute", algorithm = "leaky_bucket")]
async fn unknown_algorithm() -> &'static str {
    "ok"
}

#[throttle(rate = "10/minute", algorithm = gcra)]
async fn algorithm_not_a_string() -> &'static str {
    "ok"
}

#[throttle(rate = "10/minute", algorithm = "gcra", burst = 0)]
async fn zero_burst() -> &'static str {
    "ok"
}

#[throttle(rate = "10/minute", algorithm = "gcra", burst = "5")]
async fn burst_as_a_string() -> &'static str {
    "ok"
}

#[throttle(rate = "10/minute", algorithm = "gcra", burst = 5000000000)]
async fn burst_too_large() -> &'static str {
    "ok"
}

#[throttle(rate = "10/minute", algorithm = "gcra", burst = 5i64)]
async fn burst_with_a_signed_suffix() -> &'static str {
    "ok"
}

#[throttle(rate = "10/minute", algorithm = "gcra", algorithm = "gcra", burst = 1, burst = 2)]
async fn given_twice() -> &'static str {
    "ok"
}

fn main() {}
