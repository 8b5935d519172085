//! Misuses of `#[cache_view]`: each is an error on the offending token that says what
//! to write instead.
use cached_kit::cache_view;

#[cache_view(ttl = 60, timeout = 5)]
async fn unknown_argument() {}

#[cache_view(ttl = "10 minutes")]
async fn ttl_as_a_string() {}

#[cache_view(vary = ["Accept Language"])]
async fn bad_header_name() {}

#[cache_view(vary = "Accept-Language")]
async fn vary_not_a_list() {}

#[cache_view(shared = "yes")]
async fn shared_not_a_bool() {}

#[cache_view(cache = pages)]
async fn cache_not_a_string() {}

#[cache_view(ttl = 1, ttl = 2)]
async fn given_twice() {}

#[cache_view(ttl = 60)]
fn not_async() -> &'static str {
    "sync"
}

struct Handlers;

impl Handlers {
    #[cache_view(ttl = 60)]
    async fn with_self(&self) {}
}

fn main() {}
