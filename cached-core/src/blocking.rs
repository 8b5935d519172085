//! How a plain (non-`async`) `#[cache_fn]` reaches the async [`Cache`](crate::Cache).
//!
//! The function's body always runs on the calling thread, as written. Only the cache
//! operations around it are futures, driven to completion right there by [`block_on`],
//! which picks the way that cannot panic and cannot starve the caller's runtime:
//!
//! | called from | how the cache future is driven |
//! |---|---|
//! | no tokio runtime (a plain thread, `main` without `#[tokio::main]`) | a small process-wide runtime (one worker thread), shared by every such caller, so timers and Redis I/O work |
//! | a multi-thread tokio runtime (a task, `#[tokio::main]`) | `block_in_place` + the runtime's own handle: the worker hands its other tasks off while it waits |
//! | a current-thread tokio runtime (`#[tokio::test]`, `flavor = "current_thread"`) | polled on the calling thread inside the context of that same process-wide runtime |
//!
//! The last case needs care: the caller's runtime has a single thread and the caller is
//! blocking it, so nothing driven by that runtime (its timers, its sockets) can make
//! progress. The cache operations therefore run in the context of the process-wide
//! runtime, whose worker drives their timers and connections (a Redis backend opens a
//! connection for that runtime), and the blocked runtime is never waited on.
//!
//! ```
//! let v = cached_core::__private::block_on(async { 40 + 2 });
//! assert_eq!(v, 42);
//! ```

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

/// Drives `future` to completion on the calling thread, in the way that cannot panic and
/// cannot starve the caller's runtime (the `blocking` module docs of cached-core say how).
pub fn block_on<F: Future>(future: F) -> F::Output {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(future))
        }
        Ok(_) => match fallback() {
            Some(rt) => {
                let _context = rt.enter();
                park_on(future)
            }
            None => park_on(future),
        },
        Err(_) => match fallback() {
            Some(rt) => rt.block_on(future),
            None => park_on(future),
        },
    }
}

/// The runtime for callers outside any runtime or on a current-thread one; `None` if the
/// OS refused to build one.
fn fallback() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .thread_name("cached-kit-sync")
                .build()
                .map_err(|e| {
                    tracing::warn!(error = %e, "could not build the runtime for sync cached functions; using a plain executor");
                })
                .ok()
        })
        .as_ref()
}

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread, parking between wake-ups.
fn park_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn cross_thread_wakeup() -> u32 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        thread::spawn(move || {
            thread::sleep(std::time::Duration::from_millis(20));
            let _ = tx.send(7);
        });
        rx.await.unwrap_or(0)
    }

    #[test]
    fn outside_a_runtime() {
        assert_eq!(block_on(cross_thread_wakeup()), 7);
        // Timers work: the fallback runtime drives them (the sleep is created inside it).
        block_on(async { tokio::time::sleep(std::time::Duration::from_millis(5)).await });
    }

    #[tokio::test(flavor = "current_thread")]
    async fn inside_a_current_thread_runtime() {
        assert_eq!(block_on(cross_thread_wakeup()), 7);
        // Timers work although the caller's own runtime is blocked: the process-wide
        // runtime drives them (this waited forever before).
        block_on(async { tokio::time::sleep(std::time::Duration::from_millis(5)).await });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inside_a_multi_thread_runtime() {
        assert_eq!(block_on(cross_thread_wakeup()), 7);
        block_on(tokio::time::sleep(std::time::Duration::from_millis(5)));
    }
}
