use cached_kit::cache_view;

#[cache_view(ttl = 1, vary = ["Accept"], ttl = 2, shared = true, vary = ["X-Tenant"], shared = false)]
async fn given_twice() {}

fn main() {}
