use cached_kit::cache_fn;

#[cache_fn(ttl = "10m")]
async fn text(id: u32) -> u32 {
    id
}

#[cache_fn(ttl = 1.5)]
async fn fraction(id: u32) -> u32 {
    id
}

#[cache_fn(ttl = -5)]
async fn negative(id: u32) -> u32 {
    id
}

const TEN_MINUTES: u64 = 600;

#[cache_fn(ttl = TEN_MINUTES)]
async fn not_a_duration(id: u32) -> u32 {
    id
}

fn main() {}
