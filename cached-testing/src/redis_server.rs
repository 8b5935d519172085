//! Test helpers: real `redis-server` processes on free loopback ports, stopped on drop.
//!
//! For this workspace's tests and benches. Every helper
//! panics with an install hint when `redis-server` (or `redis-cli`, `openssl`) is
//! missing: tests that need Redis never skip silently.
//!
//! ```no_run
//! use cached_testing::RedisServer;
//! let mut server = RedisServer::start();
//! let url = server.url(); // redis://127.0.0.1:<port>/0
//! server.pause();         // SIGSTOP: calls now time out
//! server.resume();
//! server.kill();          // connection refused from now on
//! server.restart();       // same port, empty data
//! ```

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "install it with `apt-get install -y redis-server` (Debian/Ubuntu; it brings redis-cli too) or your system's package manager";

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A `redis-server` child process on `127.0.0.1`, killed (and its files removed) on drop.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    /// Kills the server if this test process dies without dropping it (statics).
    watcher: Option<Child>,
    tls: bool,
}

impl RedisServer {
    /// Starts a server on a free loopback port with persistence off and waits until it
    /// answers `PING`.
    pub fn start() -> Self {
        Self::start_with(&[], false)
    }

    /// Starts a server like [`start`](Self::start), with extra `redis-server` arguments
    /// (`["--maxmemory", "1mb"]`).
    pub fn start_with_args(args: &[&str]) -> Self {
        Self::start_with(args, false)
    }

    /// One server for the whole test process, started on first use; it is killed when
    /// the process exits. For tests that only need *a* Redis (each under its own prefix).
    pub fn shared() -> &'static RedisServer {
        static SHARED: OnceLock<RedisServer> = OnceLock::new();
        SHARED.get_or_init(RedisServer::start)
    }

    /// Starts a TLS-only server (a test CA and a certificate for `localhost` and
    /// `127.0.0.1` are generated with `openssl`); [`url`](Self::url) is `rediss://` and
    /// [`ca_path`](Self::ca_path) the CA to trust.
    pub fn start_tls() -> Self {
        let dir = fresh_dir();
        make_test_certificates(&dir);
        let p = |f: &str| dir.join(f).display().to_string();
        let args = vec![
            "--tls-cert-file".to_owned(),
            p("server.pem"),
            "--tls-key-file".to_owned(),
            p("server.key"),
            "--tls-ca-cert-file".to_owned(),
            p("ca.pem"),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        Self::start_in(dir, args, true)
    }

    fn start_with(extra: &[&str], tls: bool) -> Self {
        let args = extra.iter().map(|s| (*s).to_owned()).collect();
        Self::start_in(fresh_dir(), args, tls)
    }

    fn start_in(dir: PathBuf, args: Vec<String>, tls: bool) -> Self {
        check_binary("redis-server");
        let mut last_log = String::new();
        // Another process may take the port between probing and binding: try a few.
        for _ in 0..5 {
            let mut server = Self {
                port: free_port(),
                dir: dir.clone(),
                args: args.clone(),
                child: None,
                watcher: None,
                tls,
            };
            server.spawn();
            if server.wait_ready(Duration::from_secs(10)) {
                return server;
            }
            last_log = server.log();
            server.kill();
            // Keep the directory (and any certificates) for the next try.
            server.dir = PathBuf::new();
        }
        panic!("redis-server did not start; its log:\n{last_log}");
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join(format!("redis-{}.log", self.port)))
            .expect("create the redis-server log file");
        let mut cmd = Command::new("redis-server");
        let port = self.port.to_string();
        if self.tls {
            cmd.args(["--port", "0", "--tls-port", &port]);
        } else {
            cmd.args(["--port", &port]);
        }
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file handle"))
            .stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server ({e}): {INSTALL_HINT}"));
        // If this process ends without dropping the server (a static, a crash), the
        // watcher kills it within half a second and removes its directory.
        let watcher = Command::new("sh")
            .arg("-c")
            .arg("while kill -0 \"$0\" 2>/dev/null; do sleep 0.5; done; kill -9 \"$1\" 2>/dev/null; sleep 0.2; rm -rf \"$2\"")
            .arg(std::process::id().to_string())
            .arg(child.id().to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        self.child = Some(child);
        self.watcher = watcher;
    }

    fn wait_ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child {
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
            }
            let ready = if self.tls {
                self.cli(&["PING"]).trim() == "PONG"
            } else {
                ping(self.port)
            };
            if ready {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("redis-{}.log", self.port)))
            .unwrap_or_default()
    }

    /// The URL of database 0: `redis://127.0.0.1:<port>/0` (`rediss://localhost:...` for
    /// a TLS server).
    pub fn url(&self) -> String {
        if self.tls {
            format!("rediss://localhost:{}/0", self.port)
        } else {
            format!("redis://127.0.0.1:{}/0", self.port)
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM file of the CA that signed a TLS server's certificate.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL) and waits for it to exit. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut watcher) = self.watcher.take() {
            let _ = watcher.kill();
            let _ = watcher.wait();
        }
    }

    /// Stops the process with SIGSTOP: connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.pid().expect("the redis-server is not running");
        let status = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .expect("run `kill`");
        assert!(status.success(), "kill {sig} {pid} failed");
    }

    /// Kills the server if it runs and starts a new, empty one on the same port.
    pub fn restart(&mut self) {
        self.kill();
        // The port may linger in use a moment after the kill.
        for _ in 0..50 {
            self.spawn();
            if self.wait_ready(Duration::from_secs(5)) {
                return;
            }
            self.kill();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "redis-server did not restart on port {}; its log:\n{}",
            self.port,
            self.log()
        );
    }

    /// Runs `redis-cli` against this server with `args` and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, self.tls.then(|| self.ca_path()).as_deref(), args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A paused process still dies of SIGKILL.
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of primaries on loopback ports (no replicas), created with
/// `redis-cli --cluster create`, stopped on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `n` (at least 3) cluster-mode servers, creates the cluster and waits until
    /// every node reports `cluster_state:ok`.
    pub fn start(n: usize) -> Self {
        assert!(n >= 3, "a Redis Cluster needs at least 3 primaries");
        check_binary("redis-cli");
        let nodes: Vec<RedisServer> = (0..n)
            .map(|_| {
                RedisServer::start_with(
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ],
                    false,
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}): {INSTALL_HINT}"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = nodes
                .iter()
                .all(|s| s.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { nodes }
    }

    /// One 3-node cluster for the whole test process, started on first use; it is killed
    /// when the process exits.
    pub fn shared() -> &'static RedisCluster {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| RedisCluster::start(3))
    }

    /// `redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,...`
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        format!("redis+cluster://{}", addrs.join(","))
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Runs `redis-cli -c` (following redirections) against the first node.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut all = vec!["-c"];
        all.extend_from_slice(args);
        self.nodes[0].cli(&all)
    }
}

fn cli(port: u16, ca: Option<&Path>, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    if let Some(ca) = ca {
        cmd.args(["--tls", "--cacert"])
            .arg(ca)
            .args(["-h", "localhost"]);
    } else {
        cmd.args(["-h", "127.0.0.1"]);
    }
    let out = cmd
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}): {INSTALL_HINT}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port to find a free one")
}

fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "cached-redis-test-{}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory for redis-server");
    dir
}

fn check_binary(name: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(name).is_file()));
    assert!(found, "`{name}` is not on PATH: {INSTALL_HINT}");
}

/// A CA and a server certificate for `localhost` / `127.0.0.1` signed by it.
fn make_test_certificates(dir: &Path) {
    check_binary("openssl");
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write the certificate extensions file");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=cached-kit test CA",
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run openssl ({e}): install it with `apt-get install -y openssl`")
            });
        assert!(
            out.status.success(),
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
