//! Start-up as an operator meets it (issue 15): Debian's stock redis.conf, every config
//! problem at once, `daemonize`, `unixsocket`, `timeout`, `supervised systemd`, the
//! process title, `oom-score-adj`, `tcp-backlog`.
//!
//! `FERROKV_TARGET=redis` runs them against redis-server, which passes every one (the
//! tests of ferrokv-only behaviour say so and skip).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrokv_tests::server::{target_kind, Kind};
use ferrokv_tests::{Conn, Server};

const STOCK_CONF: &str = "/etc/redis/redis.conf";

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn config_get(c: &mut Conn, name: &str) -> String {
    let r = c.send(&["CONFIG", "GET", name]);
    let text = String::from_utf8_lossy(&r).to_string();
    text.split("\r\n").nth(4).unwrap_or_default().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ferrokv-startup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Debian's /etc/redis/redis.conf, with port, dir, daemonize, logfile and pidfile
/// overridden on the command line, starts and its values are in force.
#[test]
fn debian_stock_redis_conf_starts() {
    assert!(Path::new(STOCK_CONF).exists(), "{STOCK_CONF} is installed with Debian's redis-server (deploy/test.sh)");
    let dir = temp_dir("stock");
    let pidfile = dir.join("p.pid");
    let pid = pidfile.to_str().unwrap();
    let args = vec![STOCK_CONF, "--daemonize", "no", "--logfile", "", "--pidfile", pid];
    let server = Server::under_test(&args);
    let mut c = server.conn();
    assert_eq!(c.send(&["SET", "k", "v"]), b"+OK\r\n");
    assert_eq!(c.send(&["GET", "k"]), b"$1\r\nv\r\n");
    // `databases 16`: an application's SELECT 15 works, 16 does not.
    assert_eq!(c.send(&["SELECT", "15"]), b"+OK\r\n");
    assert_eq!(c.send(&["GET", "k"]), b"$-1\r\n");
    assert_eq!(c.send(&["SELECT", "16"]), b"-ERR DB index is out of range\r\n");
    for (name, value) in [
        ("tcp-backlog", "511"),
        ("tcp-keepalive", "300"),
        ("timeout", "0"),
        ("appendfsync", "everysec"),
        ("slowlog-max-len", "128"),
        ("proc-title-template", "{title} {listen-addr} {server-mode}"),
        ("client-output-buffer-limit", "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"),
        ("oom-score-adj-values", "0 200 800"),
        ("set-proc-title", "yes"),
        ("repl-diskless-sync-max-replicas", "0"),
    ] {
        assert_eq!(config_get(&mut c, name), value, "CONFIG GET {name}");
    }
    wait_for("the pidfile", || std::fs::read_to_string(&pidfile).is_ok_and(|t| t.trim().parse::<u32>().is_ok()));
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap().trim(), server.pid().to_string());
    if target_kind() == Kind::Ferrokv {
        // One warning lists the directives accepted without effect yet.
        let out = server.output();
        let warning =
            out.lines().find(|l| l.contains("have no effect in ferrokv yet")).unwrap_or_else(|| panic!("{out}"));
        for d in ["slowlog-max-len", "lazyfree-lazy-expire", "activerehashing", "jemalloc-bg-thread"] {
            assert!(warning.contains(d), "{d} in {warning}");
        }
        assert_eq!(out.matches("have no effect in ferrokv yet").count(), 1, "{out}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every problem of a configuration is reported at start-up, one line each — unknown
/// directives, bad values, and directives whose feature ferrokv lacks at a value the user
/// relies on (redis-server stops at the first: ferrokv only).
#[test]
fn every_config_problem_is_reported_at_once() {
    if target_kind() == Kind::Redis {
        return;
    }
    let dir = temp_dir("problems");
    let conf = dir.join("bad.conf");
    std::fs::write(
        &conf,
        "# a comment\nno-such-directive 1\nport 6379\nmaxclients lots\ntls-port 6380\naclfile /etc/users.acl\n\
         slowlog-max-len 5\nbind-source-addr 127.0.0.2\nrename-command FLUSHALL \"\"\nhz 10 20\n",
    )
    .unwrap();
    let (status, out) = Server::run_to_exit(Kind::Ferrokv, &[conf.to_str().unwrap()], Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{out}");
    for (line, why) in [
        (2, "Bad directive"),
        (4, "Invalid argument for 'maxclients'"),
        (5, "TLS is not supported"),
        (6, "ACL (aclfile) is not supported"),
        (8, "bind-source-addr (a source address for outgoing connections) is not supported"),
        (9, "rename-command is not supported"),
        (10, "wrong number of arguments"),
    ] {
        assert!(
            out.lines().any(|l| l.contains(&format!("line {line}:")) && l.contains(why)),
            "line {line} ({why}) in:\n{out}"
        );
    }
    assert!(!out.contains("line 7:"), "slowlog-max-len is accepted:\n{out}");
    // The default of a refused directive is fine, and CONFIG SET refuses the feature.
    let server = Server::ferrokv(&["--tls-port", "0", "--slowlog-max-len", "5"]);
    let mut c = server.conn();
    assert_eq!(config_get(&mut c, "slowlog-max-len"), "5");
    assert_eq!(c.send(&["CONFIG", "SET", "slowlog-max-len", "7"]), b"+OK\r\n");
    assert_eq!(config_get(&mut c, "slowlog-max-len"), "7");
    let r = String::from_utf8_lossy(&c.send(&["CONFIG", "SET", "bind-source-addr", "127.0.0.2"])).to_string();
    assert!(
        r.starts_with("-ERR CONFIG SET failed (possibly related to argument 'bind-source-addr') - bind-source-addr"),
        "{r}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `daemonize yes`: the command returns at once, the server runs in a session of its
/// own (not our child), writes its pid to `pidfile`, logs to `logfile`, and removes the
/// pidfile when it shuts down.
#[test]
fn daemonize_yes_detaches() {
    let dir = temp_dir("daemon");
    let (pidfile, logfile) = (dir.join("d.pid"), dir.join("d.log"));
    let port = free_port();
    let status = Command::new(target_kind().binary())
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--daemonize", "yes"])
        .arg("--dir")
        .arg(&dir)
        .arg("--pidfile")
        .arg(&pidfile)
        .arg("--logfile")
        .arg(&logfile)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
    wait_for("the pidfile", || std::fs::read_to_string(&pidfile).is_ok_and(|t| t.trim().parse::<u32>().is_ok()));
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // Fields 4 (ppid) and 6 (session) of /proc/pid/stat.
    assert_ne!(fields[1].parse::<u32>().unwrap(), std::process::id(), "not our child");
    assert_eq!(fields[3].parse::<i32>().unwrap(), pid, "a session of its own (setsid)");
    let mut c = None;
    wait_for("the daemon to answer", || {
        c = Conn::connect(port).ok();
        c.is_some()
    });
    let mut c = c.unwrap();
    c.set_timeout(Duration::from_secs(5));
    assert_eq!(c.send(&["PING"]), b"+PONG\r\n");
    let _ = c.try_send(&["SHUTDOWN", "NOSAVE"]);
    // Gone, or a zombie waiting for whoever adopted it.
    wait_for("the daemon to exit", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |s| s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
    });
    wait_for("the pidfile to go", || !pidfile.exists());
    let log = std::fs::read_to_string(&logfile).unwrap_or_default();
    assert!(log.to_ascii_lowercase().contains("ready to accept connections"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli").args(args).output().expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `unixsocket`/`unixsocketperm`: redis-cli -s reaches the same dataset as TCP; the
/// socket has the mode asked for, CLIENT LIST names it, and it is removed at exit.
#[test]
fn unixsocket_serves_redis_cli() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let dir = temp_dir("unix");
    let sock = dir.join("s.sock");
    let path = sock.to_str().unwrap();
    let mut server = Server::under_test(&["--unixsocket", path, "--unixsocketperm", "700", "--server-threads", "2"]);
    let meta = std::fs::metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(redis_cli(&["-s", path, "PING"]), "PONG");
    for i in 0..20 {
        assert_eq!(redis_cli(&["-s", path, "SET", &format!("k{i}"), &i.to_string()]), "OK");
    }
    let mut c = server.conn();
    for i in 0..20 {
        assert_eq!(c.send(&["GET", &format!("k{i}")]), format!("${}\r\n{i}\r\n", i.to_string().len()).into_bytes());
    }
    let list = redis_cli(&["-s", path, "CLIENT", "LIST"]);
    assert!(list.contains(&format!("addr={path}:0 laddr={path}:0")), "{list}");
    assert!(list.contains(" flags=U "), "{list}");
    assert_eq!(config_get(&mut c, "unixsocket"), path);
    assert_eq!(config_get(&mut c, "unixsocketperm"), "700");
    server.stop();
    assert!(!sock.exists(), "the socket file is removed at exit");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `timeout`: an idle client is closed; a client blocked in BLPOP is not (Redis's rule).
#[test]
fn timeout_closes_idle_clients_only() {
    let server = Server::under_test(&["--timeout", "1"]);
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    std::io::Write::write_all(&mut idle, b"PING\r\n").unwrap();
    let mut blocked = server.conn();
    blocked.set_timeout(Duration::from_secs(30));
    let mut buf = [0u8; 64];
    let n = idle.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"+PONG\r\n");
    // Blocked for longer than the timeout, then served.
    let waiter = std::thread::spawn(move || blocked.send(&["BLPOP", "q", "0"]));
    assert_eq!(idle.read(&mut buf).unwrap(), 0, "the idle client is closed");
    std::thread::sleep(Duration::from_millis(2500));
    let mut c = server.conn();
    assert_eq!(c.send(&["LPUSH", "q", "x"]), b":1\r\n");
    assert_eq!(waiter.join().unwrap(), b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n");
}

/// `supervised systemd`: READY=1 (after a STATUS line) on $NOTIFY_SOCKET once the server
/// accepts connections, STOPPING=1 when it shuts down.
#[test]
fn supervised_systemd_is_notified() {
    use std::os::unix::net::UnixDatagram;
    let dir = temp_dir("systemd");
    let notify = dir.join("notify");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let port = free_port();
    let mut child = Command::new(target_kind().binary())
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--supervised", "systemd"])
        .args(["--daemonize", "yes"]) // ignored when supervised, as Redis
        .arg("--dir")
        .arg(&dir)
        .env("NOTIFY_SOCKET", &notify)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 512];
    while !got.contains("READY=1") {
        let n = sock.recv(&mut buf).expect("a notification");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.ends_with("STATUS=Ready to accept connections\nREADY=1\n"), "{got:?}");
    // It stayed in the foreground: our child, serving.
    assert!(child.try_wait().unwrap().is_none());
    let mut c = Conn::connect(port).unwrap();
    assert_eq!(c.send(&["PING"]), b"+PONG\r\n");
    let _ = c.try_send(&["SHUTDOWN", "NOSAVE"]);
    let mut rest = String::new();
    while !rest.contains("STOPPING=1") {
        let n = sock.recv(&mut buf).expect("STOPPING=1");
        rest.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

fn read_proc(pid: u32, what: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{what}")).unwrap_or_default()
}

/// `set-proc-title` with Debian's template, `oom-score-adj` (at start, on a role change
/// and by CONFIG SET, back to the original with `no`), `tcp-backlog`, `disable-thp`.
#[test]
fn proc_title_oom_score_backlog_and_thp() {
    let base = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap().trim().parse::<i64>().unwrap();
    let server = Server::under_test(&[
        "--proc-title-template",
        "{title} {listen-addr} {server-mode}",
        "--oom-score-adj",
        "absolute",
        "--oom-score-adj-values",
        "11 22 33",
        "--tcp-backlog",
        "123",
    ]);
    let pid = server.pid();
    let cmdline = read_proc(pid, "cmdline").replace('\0', " ");
    let expected = format!("{} 127.0.0.1:{}", target_kind().binary().display(), server.port());
    assert_eq!(cmdline.trim(), expected);
    assert_eq!(read_proc(pid, "oom_score_adj").trim(), "11");
    let mut c = server.conn();
    // A replica takes the second value, a master the first again.
    let dead = free_port().to_string();
    assert_eq!(c.send(&["REPLICAOF", "127.0.0.1", &dead]), b"+OK\r\n");
    assert_eq!(read_proc(pid, "oom_score_adj").trim(), "22");
    assert_eq!(c.send(&["REPLICAOF", "NO", "ONE"]), b"+OK\r\n");
    assert_eq!(read_proc(pid, "oom_score_adj").trim(), "11");
    assert_eq!(c.send(&["CONFIG", "SET", "oom-score-adj-values", "12 22 33"]), b"+OK\r\n");
    assert_eq!(read_proc(pid, "oom_score_adj").trim(), "12");
    assert_eq!(c.send(&["CONFIG", "SET", "oom-score-adj", "relative"]), b"+OK\r\n");
    assert_eq!(read_proc(pid, "oom_score_adj").trim(), (base + 12).clamp(-1000, 1000).to_string());
    assert_eq!(c.send(&["CONFIG", "SET", "oom-score-adj", "no"]), b"+OK\r\n");
    assert_eq!(read_proc(pid, "oom_score_adj").trim(), base.to_string());
    // The listening socket's backlog (`ss` shows it as Send-Q), capped by somaxconn.
    let somaxconn: u64 = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim().parse().unwrap();
    let ss = Command::new("ss").args(["-ltnH", &format!("sport = :{}", server.port())]).output().expect("ss");
    let ss = String::from_utf8_lossy(&ss.stdout).to_string();
    let line = ss.lines().next().unwrap_or_else(|| panic!("no listener in ss: {ss}"));
    assert_eq!(line.split_whitespace().nth(2), Some(123.min(somaxconn).to_string().as_str()), "{ss}");
    // disable-thp yes (the default) turns THP off for the process only where it is
    // `always`, as Redis does.
    let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if let Some(line) = read_proc(pid, "status").lines().find(|l| l.starts_with("THP_enabled:")) {
        let want = if mode.contains("[always]") { "0" } else { "1" };
        assert_eq!(line.split_whitespace().nth(1), Some(want), "{mode}");
    }
}

/// CONFIG REWRITE of Debian's stock redis.conf after the same CONFIG SETs: the file keeps
/// its comments and order, changed options are rewritten in place, others appended under
/// the signature, orphaned lines dropped — as redis-server 7.0.15 writes it. (Redis
/// appends in its hash table's order, so the appended lines are compared as a set, blank
/// lines aside, and it adds a `user default ...` line for its ACL, which ferrokv does not
/// have.)
fn rewritten_stock_conf(kind: Kind, rounds: &[&[&[&str]]]) -> Vec<(String, Vec<String>)> {
    let dir = temp_dir(&format!("rewrite-{}", kind.name()));
    let conf = dir.join("redis.conf");
    std::fs::copy(STOCK_CONF, &conf).unwrap();
    let pidfile = dir.join("p.pid");
    let args = [conf.to_str().unwrap(), "--daemonize", "no", "--logfile", "", "--pidfile", pidfile.to_str().unwrap()];
    let server = Server::start(kind, &args).unwrap_or_else(|e| panic!("{e}"));
    let mut c = server.conn();
    let mut out = Vec::new();
    for round in rounds {
        for set in *round {
            let mut cmd = vec!["CONFIG", "SET"];
            cmd.extend_from_slice(set);
            assert_eq!(c.send(&cmd), b"+OK\r\n", "{kind:?} {set:?}");
        }
        assert_eq!(c.send(&["CONFIG", "REWRITE"]), b"+OK\r\n", "{kind:?}");
        let text = std::fs::read_to_string(&conf).unwrap();
        let text = text
            .replace(&format!("port {}\n", server.port()), "port PORT\n")
            .replace(server.dir().to_str().unwrap(), "DIR")
            .replace(dir.to_str().unwrap(), "CONFDIR");
        let (kept, appended) = match text.split_once("# Generated by CONFIG REWRITE\n") {
            Some((k, a)) => (
                k.to_string(),
                a.lines().filter(|l| !l.is_empty() && !l.starts_with("user ")).map(String::from).collect(),
            ),
            None => (text, Vec::new()),
        };
        let mut appended: Vec<String> = appended;
        appended.sort();
        out.push((kept, appended));
    }
    let server_dir = server.dir().to_path_buf();
    drop(server);
    // The rewritten file starts the server again, with the values set (its `dir` line
    // names the first server's directory, which Redis changes into while reading).
    std::fs::create_dir_all(&server_dir).unwrap();
    let again = Server::start(kind, &[conf.to_str().unwrap(), "--daemonize", "no", "--logfile", ""])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config_get(&mut again.conn(), "hz"), "20");
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&server_dir);
    out
}

#[test]
fn config_rewrite_of_the_stock_conf_matches_redis() {
    let first: &[&[&str]] = &[
        &["maxclients", "500"],
        &["timeout", "30"],
        &["save", "100 5 200 6"],
        &["slowlog-max-len", "200"],
        &["hz", "20"],
        &["client-output-buffer-limit", "pubsub 1mb 2mb 3"],
        &["appendfsync", "always"],
        &["hash-max-listpack-value", "128"],
        &["loglevel", "warning"],
        &["masterauth", "x\"y z"],
        &["replica-read-only", "no"],
        &["proto-max-bulk-len", "1gb"],
        &["repl-backlog-size", "3mb"],
        &["tcp-keepalive", "300"],
    ];
    // Fewer save points than lines, then none; a string back to empty.
    let second: &[&[&str]] = &[&["save", "50 1"], &["masterauth", ""]];
    let third: &[&[&str]] = &[&["save", ""], &["maxclients", "10000"]];
    let rounds = [first, second, third];
    let ours = rewritten_stock_conf(Kind::Ferrokv, &rounds);
    let theirs = rewritten_stock_conf(Kind::Redis, &rounds);
    for (n, ((ok, oa), (rk, ra))) in ours.iter().zip(&theirs).enumerate() {
        if ok != rk {
            let diff: Vec<String> = ok
                .lines()
                .zip(rk.lines())
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .take(10)
                .map(|(i, (a, b))| format!("line {}: ferrokv {a:?} redis {b:?}", i + 1))
                .collect();
            panic!(
                "round {n}: the kept part differs ({} vs {} lines):\n{}",
                ok.lines().count(),
                rk.lines().count(),
                diff.join("\n")
            );
        }
        assert_eq!(oa, ra, "round {n}: appended lines");
    }
}
