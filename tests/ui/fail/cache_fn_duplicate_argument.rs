use cached_kit::cache_fn;

#[cache_fn(ttl = 60, key = "a:{id}", ttl = 30)]
async fn product(id: u32) -> u32 {
    id
}

fn main() {}
