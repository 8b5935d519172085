use cached_kit::cache_fn;

#[cache_fn(key = "product:{product_id}")]
async fn product(id: u32) -> u32 {
    id
}

#[cache_fn(key = "user:{user.id}:{self.tenant}")]
fn user(id: u32) -> u32 {
    id
}

#[cache_fn(key = "page:{}")]
fn page(n: u32) -> u32 {
    n
}

fn main() {}
