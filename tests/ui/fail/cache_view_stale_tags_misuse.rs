//! Misuses of `stale` and `tags` on `#[cache_view]`.
use cached_kit::cache_view;

#[cache_view(ttl = 60, stale = 0)]
async fn stale_zero() {}

#[cache_view(ttl = 60, stale = "10 minutes")]
async fn stale_as_a_string() {}

#[cache_view(tags = ["product:{id}"])]
async fn tag_template() {}

#[cache_view(tags = [""])]
async fn empty_tag() {}

#[cache_view(tags = [products])]
async fn tag_not_a_string() {}

fn main() {}
