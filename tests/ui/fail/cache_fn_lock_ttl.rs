use cached_kit::cache_fn;

#[cache_fn(lock_ttl = 30)]
async fn without_lock(id: u32) -> u32 {
    id
}

#[cache_fn(lock = false, lock_ttl = 30)]
async fn lock_off(id: u32) -> u32 {
    id
}

#[cache_fn(lock = true, lock_ttl = 0)]
async fn zero(id: u32) -> u32 {
    id
}

#[cache_fn(lock = true, lock_ttl = "10s")]
async fn text(id: u32) -> u32 {
    id
}

#[cache_fn(lock = true, lock_ttl = 10u32 as u64)]
async fn not_a_duration(id: u32) -> u32 {
    id
}

fn main() {}
