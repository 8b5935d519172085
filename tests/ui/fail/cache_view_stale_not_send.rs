//! With `stale`, a refresh runs the handler's body in a spawned task with the extracted
//! arguments moved into it: an argument that is not `Send + 'static` is an error on its
//! type, and so is a body that holds something not `Send` across an `.await`.
use std::rc::Rc;

use cached_kit::cache_view;

#[cache_view(ttl = 60, stale = 600)]
async fn not_send_argument(counter: Rc<u32>) -> String {
    counter.to_string()
}

#[cache_view(ttl = 60, stale = 600)]
async fn not_send_body() -> String {
    let local = Rc::new(1u32);
    tokio::task::yield_now().await;
    local.to_string()
}

fn main() {}
