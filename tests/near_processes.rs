//! The near tier across two real processes on one real redis-server (SPEC §11).
//!
//! This process is B, the reader: a Redis cache with a near tier, built in code. The
//! writer A is this test binary run again as a child (`CACHED_KIT_NEAR_CHILD`),
//! configured the way a service is (`CACHE_URL=redis://...?near_max_entries=...`), and
//! driven line by line on its standard input. For every kind of write A makes, B first
//! holds the key in its near tier (a read counted in `near_hits`), then must read the
//! new state within 100 ms of A's write returning: without invalidations B would keep
//! serving the old value from its near tier.
//!
//! The fault cases use a server of their own: paused (SIGSTOP), B keeps serving what it
//! holds; killed and restarted, B never serves a value from before.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cached_kit::redis::{Invalidation, NearConfig, RedisBackend, RedisConfig};
use cached_kit::{cache, Cache, Cacheable};
use cached_testing::RedisServer;

/// The key prefix of both sides (A's from its URL, B's in code).
const PREFIX: &str = "near-it";
/// SPEC §11: a write in one process evicts the entry from the others within 100 ms.
const WITHIN: Duration = Duration::from_millis(100);
const TTL: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// A, the writer (a child process)

/// In the child: runs A's command loop and returns true; in the parent: false.
async fn run_child() -> bool {
    if std::env::var("CACHED_KIT_NEAR_CHILD").is_err() {
        return false;
    }
    let cache = cache();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match execute(&cache, &words).await {
            Ok(result) => format!("ok {result}"),
            Err(e) => format!("err {e}"),
        };
        println!("\nREPLY {reply}");
    }
    true
}

/// One of A's commands.
async fn execute(cache: &Cache, words: &[&str]) -> Result<String, cached_kit::CacheError> {
    let text = |s: &str| s.to_owned();
    Ok(match words {
        ["set", k, v] => format!("{:?}", cache.set(k, &text(v), TTL).await?),
        ["set_int", k, n] => format!(
            "{:?}",
            cache.set(k, &n.parse::<i64>().unwrap_or(0), TTL).await?
        ),
        ["add", k, v] => cache.add(k, &text(v), TTL).await?.to_string(),
        ["delete", k] => cache.delete(k).await?.to_string(),
        ["delete_many", keys @ ..] => cache.delete_many(keys.iter().copied()).await?.to_string(),
        ["set_many", k1, v1, k2, v2] => {
            let (v1, v2) = (text(v1), text(v2));
            format!("{:?}", cache.set_many([(*k1, &v1), (*k2, &v2)], TTL).await?)
        }
        ["incr", k, n] => cache.incr(k, n.parse().unwrap_or(0)).await?.to_string(),
        ["decr", k, n] => cache.decr(k, n.parse().unwrap_or(0)).await?.to_string(),
        ["touch", k, ms] => {
            let ttl = Duration::from_millis(ms.parse().unwrap_or(1));
            cache.touch(k, ttl).await?.to_string()
        }
        ["clear"] => cache.clear().await?.to_string(),
        ["incr_version", k] => format!("{:?}", cache.incr_version(k, 1).await?),
        ["set_tagged", k, v, tag] => {
            format!("{:?}", cache.set_tagged(k, &text(v), TTL, &[*tag]).await?)
        }
        ["invalidate_tags", tag] => format!("{:?}", cache.invalidate_tags(&[*tag]).await?),
        other => format!("unknown command {other:?}"),
    })
}

/// The parent's handle on A.
struct Writer {
    child: Child,
    stdin: ChildStdin,
    replies: mpsc::Receiver<String>,
}

impl Writer {
    fn spawn(test: &str, url: &str, mode: &str) -> Writer {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env("CACHED_KIT_NEAR_CHILD", "writer")
            .env(
                "CACHE_URL",
                format!("{url}?near_max_entries=1000&key_prefix={PREFIX}&near_invalidation={mode}"),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the writer process");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(reply) = line.strip_prefix("REPLY ") {
                    let _ = tx.send(reply.to_owned());
                }
            }
        });
        Writer {
            child,
            stdin,
            replies,
        }
    }

    /// Has A run `command`; returns once A's call returned.
    fn run(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("write to the writer");
        self.stdin.flush().expect("flush the writer's stdin");
        let reply =
            tokio::task::block_in_place(|| self.replies.recv_timeout(Duration::from_secs(30)))
                .unwrap_or_else(|_| panic!("the writer did not answer `{command}`"));
        assert!(
            reply.starts_with("ok"),
            "`{command}` failed in the writer: {reply}"
        );
        reply
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// B, the reader (this process)

fn reader(
    url: &str,
    mode: Invalidation,
    config: impl FnOnce(RedisConfig) -> RedisConfig,
) -> (Cache, RedisBackend) {
    let near = NearConfig::new(1_000).key_prefix(PREFIX).invalidation(mode);
    let redis = config(RedisConfig::from_url(url).expect("a Redis URL")).near(near);
    let backend = RedisBackend::new(redis).expect("a backend");
    let cache = Cache::builder(backend.clone()).key_prefix(PREFIX).build();
    (cache, backend)
}

/// Reads `key` until the read is a near hit of `expected`: from then on B holds it in
/// its near tier.
async fn held_near<T: Cacheable + PartialEq + std::fmt::Debug>(
    cache: &Cache,
    key: &str,
    expected: &T,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = cache.stats().near_hits;
        let got = cache.get::<T>(key).await.ok().flatten();
        if got.as_ref() == Some(expected) && cache.stats().near_hits > before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{key}` never became a near hit of {expected:?} (last read {got:?})"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Polls `key` until it reads `want`; fails after 100 ms.
async fn reads_within<T: Cacheable + PartialEq + std::fmt::Debug>(
    cache: &Cache,
    key: &str,
    want: Option<T>,
    after: &str,
) {
    let start = Instant::now();
    loop {
        let got = cache.get::<T>(key).await.ok().flatten();
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < WITHIN,
            "{after}: {:?} later this process still reads {got:?} under `{key}`, not {want:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn s(v: &str) -> String {
    v.to_owned()
}

/// Every write of SPEC §11 made in A evicts B's near entry within 100 ms.
async fn every_write_reaches_the_other_process(test: &str, mode: Invalidation, mode_name: &str) {
    // A server of its own: the other mode's `clear` (same key prefix) must not wipe
    // this test's keys while it reads them.
    let server = RedisServer::start();
    let url = server.url();
    let (b, _backend) = reader(&url, mode, |c| c);
    let mut a = Writer::spawn(test, &url, mode_name);
    let k = |name: &str| format!("{mode_name}:{name}");

    // set
    a.run(&format!("set {} v1", k("set")));
    held_near(&b, &k("set"), &s("v1")).await;
    a.run(&format!("set {} v2", k("set")));
    reads_within(&b, &k("set"), Some(s("v2")), "set").await;

    // add: refused on a held key (nothing changes), then stored once the key is gone
    a.run(&format!("set {} v1", k("add")));
    held_near(&b, &k("add"), &s("v1")).await;
    assert_eq!(a.run(&format!("add {} v9", k("add"))), "ok false");
    a.run(&format!("delete {}", k("add")));
    reads_within::<String>(&b, &k("add"), None, "delete before add").await;
    assert_eq!(a.run(&format!("add {} v2", k("add"))), "ok true");
    reads_within(&b, &k("add"), Some(s("v2")), "add").await;

    // delete
    a.run(&format!("set {} v1", k("delete")));
    held_near(&b, &k("delete"), &s("v1")).await;
    a.run(&format!("delete {}", k("delete")));
    reads_within::<String>(&b, &k("delete"), None, "delete").await;

    // delete_many and set_many
    let (m1, m2) = (k("many1"), k("many2"));
    a.run(&format!("set_many {m1} v1 {m2} v1"));
    held_near(&b, &m1, &s("v1")).await;
    held_near(&b, &m2, &s("v1")).await;
    a.run(&format!("set_many {m1} v2 {m2} v2"));
    reads_within(&b, &m1, Some(s("v2")), "set_many").await;
    reads_within(&b, &m2, Some(s("v2")), "set_many").await;
    held_near(&b, &m1, &s("v2")).await;
    held_near(&b, &m2, &s("v2")).await;
    a.run(&format!("delete_many {m1} {m2}"));
    reads_within::<String>(&b, &m1, None, "delete_many").await;
    reads_within::<String>(&b, &m2, None, "delete_many").await;

    // incr and decr
    a.run(&format!("set_int {} 5", k("counter")));
    held_near(&b, &k("counter"), &5i64).await;
    assert_eq!(a.run(&format!("incr {} 1", k("counter"))), "ok 6");
    reads_within(&b, &k("counter"), Some(6i64), "incr").await;
    held_near(&b, &k("counter"), &6i64).await;
    assert_eq!(a.run(&format!("decr {} 2", k("counter"))), "ok 4");
    reads_within(&b, &k("counter"), Some(4i64), "decr").await;

    // incr_version: the value moves to version 2, version 1 (B's) is gone
    a.run(&format!("set {} v1", k("versioned")));
    held_near(&b, &k("versioned"), &s("v1")).await;
    assert_eq!(
        a.run(&format!("incr_version {}", k("versioned"))),
        "ok Some(2)"
    );
    reads_within::<String>(&b, &k("versioned"), None, "incr_version").await;
    assert_eq!(
        b.with_version(2)
            .get::<String>(&k("versioned"))
            .await
            .ok()
            .flatten(),
        Some(s("v1"))
    );

    // invalidate_tags: the tagged entry and its tag's version are held near
    a.run(&format!("set_tagged {} v1 {}", k("tagged"), k("tag")));
    held_near(&b, &k("tagged"), &s("v1")).await;
    a.run(&format!("invalidate_tags {}", k("tag")));
    reads_within::<String>(&b, &k("tagged"), None, "invalidate_tags").await;

    // touch: a shorter ttl in A must end B's copy with it (B held it for 60 s)
    a.run(&format!("set {} v1", k("touch")));
    held_near(&b, &k("touch"), &s("v1")).await;
    assert_eq!(a.run(&format!("touch {} 300", k("touch"))), "ok true");
    tokio::time::sleep(Duration::from_millis(300) + Duration::from_millis(200)).await;
    reads_within::<String>(&b, &k("touch"), None, "touch (after the new ttl)").await;

    // clear: every key of the prefix
    a.run(&format!("set {} v1", k("clear")));
    held_near(&b, &k("clear"), &s("v1")).await;
    a.run("clear");
    reads_within::<String>(&b, &k("clear"), None, "clear").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_in_one_process_evicts_the_near_entry_of_another_tracking() {
    if run_child().await {
        return;
    }
    every_write_reaches_the_other_process(
        "every_write_in_one_process_evicts_the_near_entry_of_another_tracking",
        Invalidation::Tracking,
        "tracking",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_in_one_process_evicts_the_near_entry_of_another_pubsub() {
    if run_child().await {
        return;
    }
    every_write_reaches_the_other_process(
        "every_write_in_one_process_evicts_the_near_entry_of_another_pubsub",
        Invalidation::PubSub,
        "pubsub",
    )
    .await;
}

/// Redis paused (SIGSTOP): what B holds near is still served, at once; what it does not
/// hold fails open (a quick error, as without a near tier).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_near_tier_keeps_serving_while_redis_is_paused() {
    if run_child().await {
        return;
    }
    let server = RedisServer::start();
    let (b, backend) = reader(&server.url(), Invalidation::Tracking, |c| {
        c.response_timeout(Duration::from_millis(200))
    });
    b.set("held", &s("v1"), TTL).await.expect("set");
    held_near(&b, "held", &s("v1")).await;

    server.pause();
    let before = b.stats().near_hits;
    for _ in 0..5 {
        assert_eq!(
            b.get::<String>("held").await.expect("a near hit"),
            Some(s("v1"))
        );
    }
    assert_eq!(b.stats().near_hits, before + 5, "served from the near tier");
    let other = b.get::<String>("not-held").await;
    assert!(other.is_err(), "a key not held near fails open: {other:?}");
    assert!(backend.near_status().expect("a near tier").live);
    server.resume();

    assert_eq!(b.get::<String>("held").await.expect("read"), Some(s("v1")));
    b.set("held", &s("v2"), TTL)
        .await
        .expect("set after the pause");
    assert_eq!(b.get::<String>("held").await.expect("read"), Some(s("v2")));
}

/// Redis killed: B's near tier is emptied and bypassed (reads fail open); restarted
/// empty: B never serves a value read before, and the near tier comes back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_value_survives_a_redis_restart_in_the_near_tier() {
    if run_child().await {
        return;
    }
    let mut server = RedisServer::start();
    let (b, backend) = reader(&server.url(), Invalidation::Tracking, |c| {
        c.response_timeout(Duration::from_millis(200))
            .breaker(2, Duration::from_millis(100))
    });
    b.set("before", &s("v1"), TTL).await.expect("set");
    held_near(&b, "before", &s("v1")).await;
    let status = || backend.near_status().expect("a near tier");
    let flushes = status().flushes;

    server.kill();
    let deadline = Instant::now() + Duration::from_secs(5);
    while status().live {
        assert!(
            Instant::now() < deadline,
            "the near tier stayed live with Redis dead"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        status().flushes > flushes,
        "emptied when the connection dropped"
    );
    assert_eq!(status().entries, 0);
    assert_ne!(
        b.get::<String>("before").await.ok().flatten(),
        Some(s("v1"))
    );

    let server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .expect("restart");
    // Until the near tier is back, and after: never the value from before.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !status().live {
        assert_ne!(
            b.get::<String>("before").await.ok().flatten(),
            Some(s("v1"))
        );
        assert!(Instant::now() < deadline, "the near tier did not come back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The data connection's breaker may still be open a moment: read until it answers.
    loop {
        match b.get::<String>("before").await {
            Ok(read) => break assert_eq!(read, None),
            Err(_) => {
                assert!(Instant::now() < deadline, "Redis did not answer again");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    b.set("after", &s("v2"), TTL)
        .await
        .expect("set after the restart");
    held_near(&b, "after", &s("v2")).await;
    drop(server);
}
