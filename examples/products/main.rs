//! Placeholder until the flagship example lands: the low-level API on the embedded default.

use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), cached_kit::CacheError> {
    let cache = cached_kit::cache();
    cache
        .set("product:42", &"lamp".to_string(), Duration::from_secs(300))
        .await?;
    let name: Option<String> = cache.get("product:42").await?;
    println!("product:42 = {name:?}; stats: {:?}", cache.stats());
    Ok(())
}
