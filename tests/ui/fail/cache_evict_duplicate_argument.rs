use cached_kit::cache_evict;

#[cache_evict(key = "a:{id}", key = "b:{id}", cache = "x", cache = "y", version = 1, version = 2)]
async fn update(id: u32) {}

fn main() {}
