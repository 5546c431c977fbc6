//! Server processes for tests: ferrokv-server or redis-server on 127.0.0.1, a free
//! port and a private directory each, killed when the handle drops (also when the test
//! panics).
//!
//! A port is chosen by binding port 0 and releasing it; when the server then fails to
//! bind it (another process took it in between) or another process answers on it, the
//! start is retried on a new port.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::conn::Conn;

/// How long a server may take to answer its first PING.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server has to exit after SIGTERM before it gets SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
const PORT_ATTEMPTS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ferrokv,
    Redis,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ferrokv => "ferrokv-server",
            Kind::Redis => "redis-server",
        }
    }

    /// The executable: `FERROKV_SERVER` / `REDIS_SERVER` when set, else ferrokv-server
    /// next to the test binary's profile directory and redis-server from `PATH`.
    pub fn binary(self) -> PathBuf {
        match self {
            Kind::Ferrokv => ferrokv_binary(),
            Kind::Redis => std::env::var_os("REDIS_SERVER").map(PathBuf::from).unwrap_or_else(|| "redis-server".into()),
        }
    }
}

/// The server a test targets: ferrokv-server, or redis-server when `FERROKV_TARGET=redis`
/// (to check that the tests themselves hold against the reference).
pub fn target_kind() -> Kind {
    match std::env::var("FERROKV_TARGET").as_deref() {
        Ok("redis") | Ok("redis-server") => Kind::Redis,
        Ok("ferrokv") | Ok("ferrokv-server") | Ok("") | Err(_) => Kind::Ferrokv,
        Ok(other) => panic!("FERROKV_TARGET={other}: expected ferrokv or redis"),
    }
}

/// `<target>/release/ferrokv-server`, the target directory derived from this test
/// binary's path (`<target>/<profile>/deps/<test>-<hash>`), falling back to
/// `<target>/<profile>/ferrokv-server`.
fn ferrokv_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FERROKV_SERVER") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "FERROKV_SERVER={} is not a file", path.display());
        return path;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
    let mut candidates = Vec::new();
    if let Some(target) = profile_dir.parent() {
        candidates.push(target.join("release").join("ferrokv-server"));
    }
    candidates.push(profile_dir.join("ferrokv-server"));
    for candidate in &candidates {
        if candidate.is_file() {
            return candidate.clone();
        }
    }
    panic!(
        "ferrokv-server binary not found (looked at {}); build it with `cargo build --release -p ferrokv-server` \
         or set FERROKV_SERVER=/path/to/ferrokv-server",
        candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
    );
}

/// Ports handed to servers of this process, so that two tests never race for one port.
static PORTS_IN_USE: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

fn reserve_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        drop(listener);
        let mut guard = PORTS_IN_USE.lock().unwrap_or_else(|e| e.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// A free port of 127.0.0.1, reserved for this test process (e.g. for `core-ports`).
pub fn free_port() -> u16 {
    reserve_port()
}

/// A port in 20000..30000 whose cluster bus port (port + 10000) is free as well.
fn reserve_cluster_port() -> u16 {
    let mut seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    loop {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let port = 20000 + (seed % 10000) as u16;
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if !free(port) || !free(port + 10000) {
            continue;
        }
        let mut guard = PORTS_IN_USE.lock().unwrap_or_else(|e| e.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

fn release_port(port: u16) {
    let mut guard = PORTS_IN_USE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(set) = guard.as_mut() {
        set.remove(&port);
    }
}

/// Why a server did not come up.
#[derive(Debug)]
pub struct StartError {
    pub kind: Kind,
    pub command: String,
    /// Exit status when the process exited by itself.
    pub status: Option<ExitStatus>,
    pub reason: String,
    /// What the process printed (stdout and stderr).
    pub output: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} did not start: {}\n  command: {}\n", self.kind.name(), self.reason, self.command)?;
        if let Some(status) = self.status {
            writeln!(f, "  {status}")?;
        }
        write!(f, "  output:\n{}", indent(&self.output))
    }
}

fn indent(text: &str) -> String {
    if text.trim().is_empty() {
        return "    (nothing)".into();
    }
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

/// A running server. Dropping it stops the process (SIGTERM, then SIGKILL after
/// [`STOP_GRACE`]) and removes its directory unless the thread is panicking.
pub struct Server {
    kind: Kind,
    child: Child,
    port: u16,
    dir: PathBuf,
    command: String,
    exited: Option<ExitStatus>,
    /// The arguments given at start (for `restart`).
    args: Vec<String>,
}

impl Server {
    /// Starts ferrokv-server with `args` after `--port N --bind 127.0.0.1 --dir D`
    /// (a leading argument without `--` is a config file and goes first). Panics with
    /// the server's output when it does not answer PING within [`START_TIMEOUT`].
    #[track_caller]
    pub fn ferrokv(args: &[&str]) -> Server {
        match Server::start(Kind::Ferrokv, args) {
            Ok(server) => server,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts the server under test ([`target_kind`]) the same way.
    #[track_caller]
    pub fn under_test(args: &[&str]) -> Server {
        match Server::start(target_kind(), args) {
            Ok(server) => server,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts redis-server (no snapshots, no AOF) the same way.
    #[track_caller]
    pub fn redis(args: &[&str]) -> Server {
        match Server::start(Kind::Redis, args) {
            Ok(server) => server,
            Err(e) => panic!("{e}"),
        }
    }

    pub fn start(kind: Kind, args: &[&str]) -> Result<Server, StartError> {
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = reserve_port();
            match Server::start_on(kind, port, args) {
                Ok(server) => return Ok(server),
                Err((e, retry)) => {
                    release_port(port);
                    if !retry {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// Runs the server with `args` (plus port, bind and dir) and waits for it to exit by
    /// itself, for tests of start-up failures. Returns the exit status (None on
    /// timeout, after killing it) and what it printed.
    pub fn run_to_exit(kind: Kind, args: &[&str], timeout: Duration) -> (Option<ExitStatus>, String) {
        let port = reserve_port();
        let dir = make_dir(kind);
        let mut cmd = server_command(kind, port, &dir, args);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", kind.binary().display()));
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Some(status);
            }
            if Instant::now() > deadline {
                terminate(&mut child, STOP_GRACE);
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let output = read_output(&dir);
        release_port(port);
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&dir);
        }
        (status, output)
    }

    fn start_on(kind: Kind, port: u16, args: &[&str]) -> Result<Server, (StartError, bool)> {
        let dir = make_dir(kind);
        let mut cmd = server_command(kind, port, &dir, args);
        let command = format!("{cmd:?}");
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                let reason = format!("cannot execute {}: {e}", kind.binary().display());
                return Err((StartError { kind, command, status: None, reason, output: String::new() }, false));
            }
        };
        let args = args.iter().map(|a| a.to_string()).collect();
        let mut server = Server { kind, child, port, dir, command, exited: None, args };
        match server.wait_ready() {
            Ok(()) => Ok(server),
            Err(reason) => {
                let status = server.stop();
                let output = server.output();
                let lower = output.to_ascii_lowercase();
                let port_taken = reason.contains("another process")
                    || lower.contains("address already in use")
                    || lower.contains("eaddrinuse")
                    || lower.contains("addrinuse");
                let error = StartError {
                    kind,
                    command: server.command.clone(),
                    status: status.filter(|_| reason.contains("exited")),
                    reason,
                    output,
                };
                Err((error, port_taken))
            }
        }
    }

    /// Polls PING until it answers (or the process exits, or time runs out), then
    /// checks through INFO that the answering process is ours.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait() {
                return Err(format!("process exited with {status} before answering PING"));
            }
            if Instant::now() > deadline {
                return Err(format!("no reply to PING on port {} within {:?}", self.port, START_TIMEOUT));
            }
            if let Some(reply) = ping(self.port) {
                if reply.starts_with(b"+PONG") || reply.starts_with(b"-NOAUTH") {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(status) = self.try_wait() {
            return Err(format!("process exited with {status} although PING answered: another process on the port"));
        }
        if let Some(pid) = info_process_id(self.port) {
            if pid != self.child.id() {
                return Err(format!("another process (pid {pid}) answers on port {}", self.port));
            }
        }
        Ok(())
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:<port>`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:<port>/`, for client libraries.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's private working directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new raw RESP connection (panics when the server refuses it).
    pub fn conn(&self) -> Conn {
        Conn::connect(self.port).unwrap_or_else(|e| {
            panic!("cannot connect to {} on port {}: {e}\n{}", self.kind.name(), self.port, indent(&self.output()))
        })
    }

    /// A connection, or None when the server does not answer (killed, restarting).
    pub fn try_conn(&self) -> Option<Conn> {
        let mut c = Conn::connect(self.port).ok()?;
        c.set_timeout(Duration::from_secs(5));
        Some(c)
    }

    /// Everything the process printed so far (stdout, then stderr).
    pub fn output(&self) -> String {
        read_output(&self.dir)
    }

    /// The exit status if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A node with `--cluster-enabled yes`, on a port whose bus port (+10000) is free.
    pub fn cluster_node(kind: Kind, args: &[&str]) -> Server {
        let mut all = vec!["--cluster-enabled", "yes"];
        all.extend_from_slice(args);
        for _ in 0..20 {
            let port = reserve_cluster_port();
            match Server::start_on(kind, port, &all) {
                Ok(s) => return s,
                Err((e, taken)) => {
                    release_port(port);
                    if !taken {
                        panic!("{e}");
                    }
                }
            }
        }
        panic!("no free port pair for a cluster node after 20 tries");
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// Starts the same command again, on the same port and in the same directory (so a
    /// cluster node finds its nodes.conf), after the process exited or was killed.
    pub fn restart(&mut self) {
        self.kill();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut cmd = server_command(self.kind, self.port, &self.dir, &args);
        self.child = cmd.spawn().unwrap_or_else(|e| panic!("cannot restart {}: {e}", self.command));
        self.exited = None;
        if let Err(reason) = self.wait_ready() {
            panic!("restarted server did not come up: {reason}\n{}", self.output());
        }
    }

    /// Restarts with more arguments after the first start's (a later one wins, as on
    /// a command line).
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.args.extend(extra.iter().map(|s| s.to_string()));
        self.restart();
    }

    /// Sends SIGTERM, waits [`STOP_GRACE`], then SIGKILL. Returns the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if self.try_wait().is_none() {
            self.exited = terminate(&mut self.child, STOP_GRACE);
        }
        self.exited
    }

    /// Sends a signal to the process (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with the PID of our own child, which we have not reaped
        // yet unless `exited` is set (then the call is skipped).
        if self.exited.is_none() {
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, signal);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        release_port(self.port);
        if std::thread::panicking() {
            eprintln!("{} (port {}) left its files in {}", self.kind.name(), self.port, self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    // SAFETY: kill(2) on our own unreaped child: the PID cannot have been reused.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    child.wait().ok()
}

fn make_dir(kind: Kind) -> PathBuf {
    let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join("ferrokv-tests").join(format!("{}-{}-{n}", kind.name(), std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

fn server_command(kind: Kind, port: u16, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(kind.binary());
    let mut rest = args;
    if let Some(first) = args.first() {
        if !first.starts_with("--") {
            cmd.arg(first);
            rest = &args[1..];
        }
    }
    cmd.arg("--port").arg(port.to_string()).arg("--bind").arg("127.0.0.1").arg("--dir").arg(dir);
    if kind == Kind::Redis {
        cmd.args(["--save", "", "--appendonly", "no", "--daemonize", "no"]);
    } else if rest.len() == args.len() {
        // No snapshots unless a test asks (its own `--save` comes later and wins), so
        // that a restarted server starts empty as before, and as redis-server here.
        cmd.args(["--save", ""]);
    }
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        // ferrokv-only options are dropped when redis-server stands in for ferrokv.
        if kind == Kind::Redis && *arg == "--server-threads" {
            rest.next();
            continue;
        }
        cmd.arg(arg);
    }
    let stdout = File::create(dir.join("stdout.log")).expect("create stdout.log");
    let stderr = File::create(dir.join("stderr.log")).expect("create stderr.log");
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    cmd
}

fn read_output(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["stdout.log", "stderr.log"] {
        if let Ok(text) = fs::read(dir.join(name)) {
            out.push_str(&String::from_utf8_lossy(&text));
        }
    }
    out
}

/// One PING on a fresh connection: the raw reply line, or None.
fn ping(port: u16) -> Option<Vec<u8>> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    while !buf.ends_with(b"\r\n") {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let _ = stream.shutdown(Shutdown::Both);
    Some(buf)
}

/// `process_id` from `INFO server`, when the server reports it.
fn info_process_id(port: u16) -> Option<u32> {
    let mut conn = Conn::connect(port).ok()?;
    let reply = conn.try_send(&["INFO", "server"]).ok()?;
    let text = String::from_utf8_lossy(&reply);
    let line = text.lines().find_map(|l| l.strip_prefix("process_id:"))?;
    line.trim().parse().ok()
}
