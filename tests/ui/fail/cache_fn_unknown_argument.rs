use cached_kit::cache_fn;

#[cache_fn(ttl = 60, expires = 10)]
async fn product(id: u32) -> u32 {
    id
}

fn main() {}
