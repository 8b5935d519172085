use std::rc::Rc;

use cached_kit::cache_fn;

#[cache_fn(stale = 60, key = "shared:{id}")]
async fn shared(handle: Rc<u32>, id: u32) -> u32 {
    *handle + id
}

fn main() {}
