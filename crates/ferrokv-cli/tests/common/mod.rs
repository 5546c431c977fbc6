//! redis-server processes for the tests, and ways to run ferrokv-cli and redis-cli.
//!
//! Each server gets 127.0.0.1, a port below 55535 whose cluster bus port (port + 10000)
//! is free too, and a directory of its own; it is killed by PID when its handle drops,
//! also when the test panics. redis-server and redis-cli come from PATH (deploy/test.sh
//! installs them); a missing one fails the test with a message saying so.

#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const START_TIMEOUT: Duration = Duration::from_secs(10);
const START_ATTEMPTS: usize = 5;

static PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A pseudo-random number, different on every call and in every process.
fn random() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut x =
        nanos ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37);
    // splitmix64
    x = x.wrapping_add(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

/// A port in 20000..30000 that is free, with its bus port free too, and not handed to
/// another server of this process.
fn reserve_port() -> u16 {
    loop {
        let port = 20000 + (random() % 10000) as u16;
        let free =
            TcpListener::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok();
        if !free {
            continue;
        }
        let mut guard = PORTS.lock().unwrap_or_else(|e| e.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

fn require(program: &str) {
    assert!(
        on_path(program),
        "{program} is not on PATH: these tests run real Redis nodes and use redis-cli as the reference \
         (deploy/test.sh installs them; by hand: apt-get install redis-server redis-tools)"
    );
}

pub struct RedisNode {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl RedisNode {
    /// A node started with `--cluster-enabled yes`.
    pub fn cluster() -> RedisNode {
        RedisNode::start(true)
    }

    /// A standalone server.
    pub fn standalone() -> RedisNode {
        RedisNode::start(false)
    }

    fn start(cluster: bool) -> RedisNode {
        require("redis-server");
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = reserve_port();
            let dir = std::env::temp_dir().join(format!("ferrokv-cli-test-{}-{port}-{}", std::process::id(), random()));
            std::fs::create_dir_all(&dir).expect("create the node's directory");
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&dir)
                .arg("--logfile")
                .arg(dir.join("redis.log"));
            if cluster {
                cmd.args(["--cluster-enabled", "yes", "--cluster-config-file"]).arg(dir.join("nodes.conf"));
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut node = RedisNode { child, port, dir };
            match node.wait_ready() {
                Ok(()) => return node,
                Err(why) => last = why,
            }
        }
        panic!("redis-server did not start after {START_ATTEMPTS} attempts: {last}");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < START_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                return Err(format!("exited with {status}: {log}"));
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("no PONG on port {} within {START_TIMEOUT:?}", self.port))
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs redis-cli against this node; its stdout.
    pub fn redis_cli(&self, args: &[&str]) -> String {
        let out = redis_cli(&[&["-p", &self.port.to_string()], args].concat(), None);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `field` of CLUSTER INFO.
    pub fn cluster_info(&self, field: &str) -> String {
        let info = self.redis_cli(&["CLUSTER", "INFO"]);
        info.lines()
            .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut guard = PORTS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = guard.as_mut() {
            set.remove(&self.port);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn run(program: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

/// Runs ferrokv-cli (stdin empty unless given).
pub fn cli(args: &[&str], stdin: Option<&[u8]>) -> Output {
    run(env!("CARGO_BIN_EXE_ferrokv-cli"), args, stdin)
}

/// Runs redis-cli, the reference.
pub fn redis_cli(args: &[&str], stdin: Option<&[u8]>) -> Output {
    require("redis-cli");
    run("redis-cli", args, stdin)
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Polls `ok` every 50 ms until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if ok() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `n` cluster nodes, started in parallel.
pub fn cluster_nodes(n: usize) -> Vec<RedisNode> {
    let handles: Vec<_> = (0..n).map(|_| std::thread::spawn(RedisNode::cluster)).collect();
    handles.into_iter().map(|h| h.join().expect("start a node")).collect()
}
