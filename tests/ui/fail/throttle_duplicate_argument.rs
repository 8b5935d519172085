use cached_kit::throttle;

#[throttle(rate = "10/minute", scope = "user", rate = "5/second", scope = "anon")]
async fn given_twice() -> &'static str {
    "ok"
}

// The same rule in a second `#[throttle]` of the same handler.
#[throttle(rate = "10/minute")]
#[throttle(rate = "1000/day", rate = "100/hour")]
async fn stacked() -> &'static str {
    "ok"
}

fn main() {}
