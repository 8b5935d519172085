use cached_kit::cache_fn;

#[cache_fn(skip(database))]
async fn report(db: u32, month: u8) -> u32 {
    db + u32::from(month)
}

#[cache_fn(key = "k:{month}", skip(db))]
async fn keyed(db: u32, month: u8) -> u32 {
    db + u32::from(month)
}

#[cache_fn(cache_none = false)]
async fn plain(month: u8) -> u32 {
    u32::from(month)
}

#[cache_fn(cache = "", lock = "yes")]
async fn named(month: u8) -> u32 {
    u32::from(month)
}

#[cache_fn]
fn pattern((a, b): (u32, u32)) -> u32 {
    a + b
}

#[cache_fn]
fn opaque(n: u32) -> impl std::fmt::Display {
    n
}

fn main() {}
