use cached_kit::cache_evict;

#[cache_evict(tags = ["product:{product}"])]
async fn unknown(id: u32) {}

#[cache_evict(tags = [], key = "a:{id}")]
async fn empty(id: u32) {}

fn main() {}
