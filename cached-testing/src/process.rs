//! Tests that run in several processes: the test binary starts itself again, running
//! one test whose child side an environment variable selects, and reads what the child
//! printed (a `VALUE=...` line).
//!
//! ```no_run
//! use cached_testing::process::{spawn_test, value_of};
//!
//! # fn demo() {
//! // In the child, the test sees CHILD_ROLE, prints "\nVALUE=42" and returns.
//! let child = spawn_test("the_test_itself", &[("CHILD_ROLE", "compute")]);
//! let out = child.wait_with_output().expect("wait for the child");
//! assert_eq!(value_of(&out), "42");
//! # }
//! ```

use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use crate::RedisServer;

/// Starts this test binary again running only `test` (`--exact`, one thread, output
/// not captured by the harness), with `env` set; stdin is empty, stdout and stderr are
/// piped for [`stdout_of`] and [`value_of`].
pub fn spawn_test(test: &str, env: &[(&str, &str)]) -> Child {
    Command::new(std::env::current_exe().expect("the test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child process")
}

/// A finished child's stdout; panics with its stdout and stderr if it failed.
pub fn stdout_of(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// What a successful child printed after `VALUE=` (the first such line; the test
/// harness may have written on the same line before it).
pub fn value_of(out: &Output) -> String {
    let stdout = stdout_of(out);
    stdout
        .lines()
        .find_map(|l| l.split_once("VALUE=").map(|(_, v)| v.to_owned()))
        .unwrap_or_else(|| panic!("no VALUE line in:\n{stdout}"))
}

/// The URL of [`RedisServer::shared`], set as `CACHE_URL` in this process on the first
/// call (call it before the first use of the default cache), and returned for the
/// children to get the same `CACHE_URL`.
pub fn shared_cache_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let url = RedisServer::shared().url();
        std::env::set_var("CACHE_URL", &url);
        url
    })
}
