use cached_kit::cache_fn;

// Every duplicate is reported, on the second occurrence, along with other mistakes.
#[cache_fn(ttl = 60, key = "a:{id}", ttl = 30, skip(id), skip(id), expires = 5)]
async fn product(id: u32) -> u32 {
    id
}

#[cache_fn(lock = true, lock = false, lock_ttl = 5, lock_ttl = 6)]
async fn locked(id: u32) -> u32 {
    id
}

fn main() {}
