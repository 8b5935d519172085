use cached_kit::cache_evict;

#[cache_evict]
async fn no_key(id: u32) {}

#[cache_evict(key = ["user:{id}", "orders:{user}"])]
async fn unknown(id: u32) {}

#[cache_evict(key = "a:{id}", ttl = 5)]
async fn extra(id: u32) {}

#[cache_evict(key = [], version = "two")]
async fn empty(id: u32) {}

#[cache_evict(key = ["a:{id}", 5], cache = "")]
async fn not_strings(id: u32) {}

fn main() {}
