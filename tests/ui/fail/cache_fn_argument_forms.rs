use cached_kit::cache_fn;

#[cache_fn(ttl(60), skip = db, key = 5, lock)]
async fn forms(db: u32, id: u32) -> u32 {
    db + id
}

#[cache_fn(skip(db.pool), version = "2", cache_none = 0)]
async fn values(db: u32, id: u32) -> Option<u32> {
    Some(db + id)
}

#[cache_fn(ttl = 60 key = "a")]
async fn missing_comma(id: u32) -> u32 {
    id
}

fn main() {}
