//! Concurrent checks for the throttle tests: many clients, each checked several times at
//! once, and how many of each client's checks were admitted.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let clients = ["a".to_owned(), "b".to_owned()];
//! // A "store" that admits every client's checks.
//! let admitted = cached_testing::concurrent::admitted_per_client(&clients, 3, |_| async { true }).await;
//! assert_eq!(admitted["a"], 3);
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;

/// Runs `check(client)` `each` times for every client in `clients`, all at once in
/// spawned tasks; returns how many of each client's checks answered `true` (admitted).
pub async fn admitted_per_client<F, Fut>(
    clients: &[String],
    each: usize,
    check: F,
) -> HashMap<String, u32>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let tasks: Vec<_> = clients
        .iter()
        .flat_map(|client| std::iter::repeat_n(client, each))
        .map(|client| {
            let check = check(client.clone());
            let client = client.clone();
            tokio::spawn(async move { (client, check.await) })
        })
        .collect();
    let mut admitted = HashMap::<String, u32>::new();
    for task in tasks {
        let (client, ok) = task.await.expect("a check task");
        *admitted.entry(client).or_default() += u32::from(ok);
    }
    admitted
}
