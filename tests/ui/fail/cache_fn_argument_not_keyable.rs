use cached_kit::cache_fn;

struct Db;

#[cache_fn(ttl = 60)]
async fn report(db: &Db, month: u8) -> u32 {
    let _ = db;
    u32::from(month)
}

fn main() {}
