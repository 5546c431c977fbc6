//! DEBUG behind `enable-debug-command` (Redis 7.0), against redis-server 7.0.15: refused
//! with Redis's words by default (after the arity check, before authentication),
//! allowed with `yes` and with `local` from 127.0.0.1; the subcommands ferrokv has
//! (SLEEP, SET-ACTIVE-EXPIRE, LOG, ERROR, CHANGE-REPL-ID) answer as Redis's.

use std::time::{Duration, Instant};

use ferrokv_tests::{Kind, Server};

fn show(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).replace("\r\n", " ").trim().to_string()
}

fn transcript(kind: Kind, args: &[&str], lines: &[&[&str]]) -> Vec<String> {
    let server = Server::start(kind, args).unwrap_or_else(|e| panic!("{e}"));
    let mut c = server.conn();
    lines.iter().map(|l| format!("{} -> {}", l.join(" "), show(&c.send(l)))).collect()
}

#[test]
fn debug_is_refused_unless_enabled() {
    let lines: &[&[&str]] = &[
        &["DEBUG"],
        &["DEBUG", "SLEEP", "0"],
        &["debug", "help"],
        &["CONFIG", "GET", "enable-debug-command"],
        &["CONFIG", "SET", "enable-debug-command", "yes"],
    ];
    assert_eq!(transcript(Kind::Ferrokv, &[], lines), transcript(Kind::Redis, &[], lines));
    // Before authentication: the DEBUG refusal, not NOAUTH.
    let auth: &[&[&str]] = &[&["DEBUG", "SLEEP", "0"], &["GET", "k"]];
    let args = ["--requirepass", "pw"];
    assert_eq!(transcript(Kind::Ferrokv, &args, auth), transcript(Kind::Redis, &args, auth));
}

#[test]
fn debug_subcommands_as_redis() {
    let lines: &[&[&str]] = &[
        &["CONFIG", "GET", "enable-debug-command"],
        &["DEBUG", "SLEEP", "0"],
        &["DEBUG", "SLEEP", "0.05"],
        &["DEBUG", "SLEEP"],
        &["DEBUG", "ERROR", "MYERR something\nhappened"],
        &["DEBUG", "LOG", "hello from the test"],
        &["DEBUG", "SET-ACTIVE-EXPIRE", "1"],
        &["DEBUG", "NOSUCHSUB", "x"],
        &["DEBUG", "CHANGE-REPL-ID"],
    ];
    for mode in ["yes", "local"] {
        let args = ["--enable-debug-command", mode];
        assert_eq!(transcript(Kind::Ferrokv, &args, lines), transcript(Kind::Redis, &args, lines), "{mode}");
    }
}

/// SET-ACTIVE-EXPIRE 0 keeps an expired key that nothing reads (DBSIZE counts it), 1
/// lets the cycle delete it; CHANGE-REPL-ID gives a new replication id; LOG writes the
/// line to the log.
fn effects(kind: Kind) -> String {
    let server = Server::start(kind, &["--enable-debug-command", "yes"]).unwrap_or_else(|e| panic!("{e}"));
    let mut c = server.conn();
    let replid = |c: &mut ferrokv_tests::Conn| {
        let info = String::from_utf8_lossy(&c.send(&["INFO", "replication"])).into_owned();
        info.lines().find_map(|l| l.strip_prefix("master_replid:")).map(str::to_string).unwrap()
    };
    let mut out = Vec::new();
    out.push(show(&c.send(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"])));
    out.push(show(&c.send(&["SET", "k", "v", "PX", "20"])));
    // Well past the expiry and several active expiry cycles (hz 10).
    std::thread::sleep(Duration::from_millis(500));
    out.push(format!("dbsize with the cycle off: {}", show(&c.send(&["DBSIZE"]))));
    out.push(show(&c.send(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"])));
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.send(&["DBSIZE"]) != b":0\r\n" {
        assert!(Instant::now() < deadline, "{}: the cycle did not delete the key", kind.name());
        std::thread::sleep(Duration::from_millis(20));
    }
    out.push("deleted once on".into());
    let before = replid(&mut c);
    c.send(&["DEBUG", "CHANGE-REPL-ID"]);
    out.push(format!("replid changed: {}", before != replid(&mut c)));
    c.send(&["DEBUG", "LOG", "a line from the test"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.output().contains("DEBUG LOG: a line from the test") {
        assert!(Instant::now() < deadline, "{}: DEBUG LOG not in the log", kind.name());
        std::thread::sleep(Duration::from_millis(20));
    }
    out.push("logged".into());
    out.join("; ")
}

#[test]
fn debug_set_active_expire_change_repl_id_and_log_take_effect() {
    assert_eq!(effects(Kind::Ferrokv), effects(Kind::Redis));
}
