use cached_kit::cache_fn;

#[cache_fn(tags = ["product:{id}", "user:{user}"])]
async fn unknown(id: u32) -> u32 {
    id
}

#[cache_fn(tags = ["product:{id}", 5])]
async fn not_strings(id: u32) -> u32 {
    id
}

#[cache_fn(tags = "product:{id")]
async fn unclosed(id: u32) -> u32 {
    id
}

fn main() {}
