use std::borrow::Cow;

use cached_kit::cache_fn;

struct Repo;

impl Repo {
    #[cache_fn(stale = 60)]
    async fn find(&self, id: u32) -> u32 {
        id
    }
}

#[cache_fn(stale = 60, key = "name:{name}")]
async fn by_name(name: &str) -> String {
    name.to_owned()
}

#[cache_fn(stale = 60)]
fn by_label<'a>(label: Cow<'a, str>, id: u32) -> u32 {
    let _ = label;
    id
}

#[cache_fn(stale = 0)]
async fn zero(id: u32) -> u32 {
    id
}

#[cache_fn(stale = "1m", tags = [])]
async fn text(id: u32) -> u32 {
    id
}

fn main() {}
