//! `syslog-enabled yes`: the lines a syslog daemon would get, compared with
//! redis-server's.
//!
//! No syslog daemon runs in CI, and glibc's syslog(3) always writes to /dev/log. So each
//! server runs in a private mount namespace (`unshare --mount`, as root) whose /dev is a
//! tmpfs of links to the real /dev entries plus `log`, a link to a Unix datagram socket
//! this test bound: the test reads exactly what the server sent to "syslog", and nothing
//! outside the namespace sees a /dev/log. Where the namespace cannot be made (not root,
//! no mount privilege) the test says so and passes without checking.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrokv_tests::{Conn, Kind};

/// The shell that builds the namespace's /dev and then execs the server ("$0" "$@").
const SETUP: &str = r#"set -e
d="$FKV_SYSLOG_DIR"
mkdir -p "$d/olddev"
mount --rbind /dev "$d/olddev"
mount -t tmpfs tmpfs /dev
for f in "$d"/olddev/* "$d"/olddev/.[!.]*; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  ln -s "$f" "/dev/$(basename "$f")"
done
ln -s "$d/log.sock" /dev/log
exec "$0" "$@"
"#;

fn namespaces_work() -> bool {
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs tmpfs /mnt"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn scratch_dir(kind: Kind) -> PathBuf {
    // Short: a Unix socket's path has at most 107 bytes.
    let dir = PathBuf::from(format!("/tmp/fkv-syslog-{}-{}", std::process::id(), kind.name()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `kind` with syslog on (ident `fkvtest`, facility local3), logs a start, a
/// SHUTDOWN; returns every datagram /dev/log received, in order.
fn syslog_lines(kind: Kind) -> (Vec<String>, u32) {
    let dir = scratch_dir(kind);
    let sock = UnixDatagram::bind(dir.join("log.sock")).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let port = ferrokv_tests::server::free_port();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", SETUP])
        .arg(kind.binary())
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--daemonize", "no", "--loglevel", "notice", "--syslog-enabled", "yes"])
        .args(["--syslog-ident", "fkvtest", "--syslog-facility", "local3"])
        .arg("--dir")
        .arg(&data)
        .arg("--logfile")
        .arg(dir.join("server.log"))
        .env("FKV_SYSLOG_DIR", &dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run unshare");
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conn = loop {
        if let Ok(c) = Conn::connect(port) {
            break c;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{} exited at start: {status}", kind.name());
        }
        assert!(Instant::now() < deadline, "{} did not start", kind.name());
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = conn.try_send(&["SHUTDOWN", "NOSAVE"]);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{} did not exit after SHUTDOWN", kind.name());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{}: {status}", kind.name());
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = sock.recv(&mut buf) {
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    cleanup(&dir);
    (lines, pid)
}

fn cleanup(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// `<priority>Mmm dd hh:mm:ss ident[pid]: message` -> (priority, ident, message), with
/// the pid checked against the server's.
fn parse(line: &str, pid: u32) -> Option<(u32, String, String)> {
    let rest = line.strip_prefix('<')?;
    let (prio, rest) = rest.split_once('>')?;
    // RFC 3164's timestamp: 15 characters, then a space.
    let (stamp, rest) = (rest.get(..15)?, rest.get(16..)?);
    if stamp.as_bytes()[3] != b' ' || stamp.as_bytes()[9] != b':' {
        return None;
    }
    let (tag, msg) = rest.split_once(": ")?;
    let (ident, tag_pid) = tag.strip_suffix(']')?.split_once('[')?;
    // unshare execs sh, which execs the server: the same pid throughout.
    if tag_pid.parse::<u32>().ok()? != pid {
        return None;
    }
    Some((prio.parse().ok()?, ident.to_string(), msg.to_string()))
}

#[test]
fn syslog_lines_look_like_redis_servers() {
    if !namespaces_work() {
        eprintln!(
            "SKIPPED syslog test: cannot make a private mount namespace here (unshare --mount needs root); \
             syslog-enabled is unchecked"
        );
        return;
    }
    let mut seen = Vec::new();
    for kind in [Kind::Redis, Kind::Ferrokv] {
        let (lines, pid) = syslog_lines(kind);
        // Lines logged after openlog: those with our ident (redis-server logs a few
        // start-up lines before it reads syslog-ident).
        let ours: Vec<(u32, String, String)> = lines
            .iter()
            .filter(|l| l.contains("fkvtest["))
            .map(|l| parse(l, pid).unwrap_or_else(|| panic!("{}: {l:?}", kind.name())))
            .collect();
        assert!(!ours.is_empty(), "{}: no syslog line with the ident: {lines:?}", kind.name());
        let pick = |text: &str| ours.iter().find(|(_, _, m)| m.starts_with(text)).cloned();
        // local3 is facility 19: notice = 19*8+5 = 157, warning = 19*8+4 = 156.
        let running = pick("Running mode=standalone, port=").unwrap_or_else(|| panic!("{}: {ours:?}", kind.name()));
        let shutdown = pick("User requested shutdown...").unwrap_or_else(|| panic!("{}: {ours:?}", kind.name()));
        assert_eq!((running.0, running.1.as_str()), (157, "fkvtest"), "{}", kind.name());
        assert_eq!((shutdown.0, shutdown.1.as_str()), (156, "fkvtest"), "{}", kind.name());
        // One line per datagram, no trailing newline, no timestamp or level of the log
        // file's format inside the message.
        for (_, _, m) in &ours {
            let formatted = m.starts_with(|c: char| c.is_ascii_digit())
                || ["INFO ", "WARN ", "DEBUG ", "ERROR ", " INFO", " WARN"].iter().any(|p| m.starts_with(p));
            assert!(!m.ends_with('\n') && !formatted, "{}: {m:?}", kind.name());
        }
        seen.push((running.2.split(", port=").next().unwrap().to_string(), shutdown.2));
    }
    assert_eq!(seen[0], seen[1]);
}
