//! SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT] and SIGTERM, differential: the same
//! steps against ferrokv-server and redis-server give the same transcript (replies,
//! whether the process exited and how, whether dump.rdb was written).

use std::time::Duration;

use ferrokv_tests::server::Kind;
use ferrokv_tests::Server;

const EXIT_WAIT: Duration = Duration::from_secs(20);

fn show(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).replace("\r\n", " ").trim().to_string()
}

/// Replies to SHUTDOWN that does not shut down: bad flags and combinations, ABORT with no
/// shutdown in progress, SHUTDOWN inside MULTI.
fn refused_forms(kind: Kind) -> Vec<String> {
    let server = Server::start(kind, &[]).unwrap_or_else(|e| panic!("{e}"));
    let mut c = server.conn();
    let mut out = Vec::new();
    for args in [
        vec!["SHUTDOWN", "FOO"],
        vec!["SHUTDOWN", "NOSAVE", "SAVE"],
        vec!["SHUTDOWN", "SAVE", "NOSAVE", "NOW"],
        vec!["SHUTDOWN", "ABORT", "NOW"],
        vec!["SHUTDOWN", "FORCE", "ABORT"],
        vec!["SHUTDOWN", "ABORT"],
        vec!["shutdown", "abort"],
        vec!["MULTI"],
        vec!["SHUTDOWN", "NOSAVE"],
        vec!["EXEC"],
        vec!["PING"],
    ] {
        out.push(format!("{} -> {}", args.join(" "), show(&c.send(&args))));
    }
    out
}

#[test]
fn refused_forms_reply_as_redis() {
    assert_eq!(refused_forms(Kind::Ferrokv), refused_forms(Kind::Redis));
}

/// One shutdown: start with `args`, write a key, optionally break the directory so a
/// save fails, send `command` (or SIGTERM), and report what happened.
fn shutdown_case(kind: Kind, args: &[&str], command: &[&str], break_dir: bool) -> String {
    let mut server = Server::start(kind, args).unwrap_or_else(|e| panic!("{e}"));
    let mut c = server.conn();
    c.set_timeout(Duration::from_secs(20));
    assert_eq!(c.send(&["SET", "k", "v"]), b"+OK\r\n");
    let dump = server.dir().join("dump.rdb");
    if break_dir {
        std::fs::remove_dir_all(server.dir()).unwrap();
    }
    let reply = if command == ["SIGTERM"] {
        server.signal(libc::SIGTERM);
        // SIGTERM has no reply: the server either exits, or logs and stays up.
        String::new()
    } else {
        match c.try_send(command) {
            Ok(r) => show(&r),
            Err(_) => "(closed)".into(),
        }
    };
    let mut report = format!("{} -> {reply}", command.join(" "));
    let exited = if break_dir {
        // A failed save keeps the server up; prove it answers, then FORCE it down.
        let mut d = server.conn();
        d.set_timeout(Duration::from_secs(20));
        report.push_str(&format!("; still up: {}", show(&d.send(&["GET", "k"]))));
        let force = d.try_send(&["SHUTDOWN", "FORCE"]).map(|r| show(&r)).unwrap_or_else(|_| "(closed)".into());
        report.push_str(&format!("; SHUTDOWN FORCE -> {force}"));
        server.wait_exit(EXIT_WAIT)
    } else {
        server.wait_exit(EXIT_WAIT)
    };
    report.push_str(&format!("; exit code {:?}", exited.and_then(|s| s.code())));
    if !break_dir {
        report.push_str(&format!("; dump.rdb written: {}", dump.exists()));
    }
    report
}

fn both(args: &[&str], command: &[&str], break_dir: bool) {
    let ours = shutdown_case(Kind::Ferrokv, args, command, break_dir);
    let theirs = shutdown_case(Kind::Redis, args, command, break_dir);
    assert_eq!(ours, theirs);
}

#[test]
fn shutdown_saves_when_save_points_are_set() {
    both(&["--save", "3600 1"], &["SHUTDOWN"], false);
}

#[test]
fn shutdown_nosave_does_not_save() {
    both(&["--save", "3600 1"], &["SHUTDOWN", "NOSAVE"], false);
}

#[test]
fn shutdown_save_saves_without_save_points() {
    both(&["--save", ""], &["SHUTDOWN", "SAVE", "NOW"], false);
}

#[test]
fn shutdown_without_save_points_does_not_save() {
    both(&["--save", ""], &["SHUTDOWN", "NOW", "FORCE"], false);
}

#[test]
fn sigterm_saves_when_save_points_are_set() {
    both(&["--save", "3600 1"], &["SIGTERM"], false);
}

#[test]
fn a_failed_save_keeps_the_server_up_unless_force() {
    both(&["--save", "3600 1"], &["SHUTDOWN"], true);
    both(&["--save", ""], &["SHUTDOWN", "SAVE"], true);
}

#[test]
fn sigterm_with_a_failed_save_keeps_the_server_up() {
    both(&["--save", "3600 1"], &["SIGTERM"], true);
}

// ---- shutdown-timeout: waiting for replicas (Redis 7.0) ----

fn info_field(c: &mut ferrokv_tests::Conn, section: &str, name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(&c.send(&["INFO", section])).into_owned();
    text.lines().find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_string()))
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for: {what}");
}

/// A master (`master_args` after no save points and no sync delay) and one replica of
/// it, both `kind`, once the master lists the replica online.
fn pair(kind: Kind, master_args: &[&str]) -> (Server, Server) {
    let mut args = vec!["--repl-diskless-sync-delay", "0"];
    args.extend_from_slice(master_args);
    let master = Server::start(kind, &args).unwrap_or_else(|e| panic!("{e}"));
    let of = format!("127.0.0.1 {}", master.port());
    let port = master.port().to_string();
    let replica_args: Vec<&str> =
        if kind == Kind::Redis { vec!["--replicaof", &of] } else { vec!["--replicaof", "127.0.0.1", &port] };
    let replica = Server::start(kind, &replica_args).unwrap_or_else(|e| panic!("{e}"));
    let (mut m, mut r) = (master.conn(), replica.conn());
    eventually("the replica's link is up", || {
        info_field(&mut r, "replication", "master_link_status").as_deref() == Some("up")
    });
    eventually("the master lists its replica online", || {
        info_field(&mut m, "replication", "slave0").is_some_and(|v| v.contains("state=online"))
    });
    (master, replica)
}

/// Writes acknowledged just before SHUTDOWN are on the replica once the master has
/// exited: the replica is stopped (SIGSTOP) while ~13 MB of writes go to the master,
/// more than the sockets' buffers hold, so the master must still be sending when
/// SHUTDOWN comes; it waits for the replica's acknowledgement (the replica resumes once
/// INFO shows the shutdown waiting) before it exits.
fn last_write_reaches_the_replica(kind: Kind) -> String {
    let (mut master, replica) = pair(kind, &["--shutdown-timeout", "3600"]);
    let mut m = master.conn();
    let mut c = master.conn();
    let mut out = Vec::new();
    replica.signal(libc::SIGSTOP);
    let value = "x".repeat(64 * 1024);
    let mut bytes = Vec::new();
    for i in 0..200 {
        bytes.extend_from_slice(&ferrokv_tests::resp::encode_command(&["SET", &format!("k{i}"), &value]));
    }
    bytes.extend_from_slice(&ferrokv_tests::resp::encode_command(&["SET", "last", "1"]));
    bytes.extend_from_slice(&ferrokv_tests::resp::encode_command(&["SHUTDOWN"]));
    m.write_raw(&bytes).unwrap();
    eventually("INFO shows the shutdown waiting", || {
        info_field(&mut c, "server", "shutdown_in_milliseconds").is_some()
    });
    replica.signal(libc::SIGCONT);
    let (replies, closed) = m.read_until_closed(Duration::from_secs(30));
    out.push(format!("{} OKs, closed {closed}", String::from_utf8_lossy(&replies).matches("+OK").count()));
    out.push(format!("exit {:?}", master.wait_exit(EXIT_WAIT).and_then(|s| s.code())));
    let mut r = replica.conn();
    out.push(format!("replica last = {}", show(&r.send(&["GET", "last"]))));
    out.push(format!("replica dbsize = {}", show(&r.send(&["DBSIZE"]))));
    out.push(format!("replica k199 intact = {}", r.send(&["STRLEN", "k199"]) == b":65536\r\n"));
    let log = master.output();
    out.push(format!("in sync logged: {}", log.contains("1 of 1 replicas are in sync when shutting down.")));
    if std::env::var_os("SHOW_LOG").is_some() {
        eprintln!("{log}");
    }
    out.join("; ")
}

#[test]
fn shutdown_waits_for_the_replica_to_acknowledge_the_last_write() {
    let ours = last_write_reaches_the_replica(Kind::Ferrokv);
    assert_eq!(ours, last_write_reaches_the_replica(Kind::Redis));
    assert!(ours.contains("replica last = $1 1; replica dbsize = :201"), "{ours}");
}

/// With the replica stopped (SIGSTOP: it acknowledges nothing), SHUTDOWN waits: its
/// client blocks, INFO shows the countdown, other clients' writes are held, reads are
/// served; SHUTDOWN ABORT ends it (the blocked client gets Redis's error, the held write
/// runs); a second ABORT finds none.
fn abort_while_waiting(kind: Kind) -> String {
    let (master, replica) = pair(kind, &["--shutdown-timeout", "3600"]);
    let mut out = Vec::new();
    let (mut a, mut b, mut c) = (master.conn(), master.conn(), master.conn());
    assert_eq!(a.send(&["SET", "before", "1"]), b"+OK\r\n");
    replica.signal(libc::SIGSTOP);
    // A write the stopped replica cannot acknowledge: an acknowledgement it sent just
    // before the stop, arriving late, must not let the shutdown end its wait.
    assert_eq!(a.send(&["SET", "unacked", "1"]), b"+OK\r\n");
    a.write_raw(&ferrokv_tests::resp::encode_command(&["SHUTDOWN"])).unwrap();
    eventually("INFO shows the shutdown countdown", || {
        info_field(&mut c, "server", "shutdown_in_milliseconds").is_some()
    });
    let left: i64 = info_field(&mut c, "server", "shutdown_in_milliseconds").unwrap().parse().unwrap();
    out.push(format!("countdown within the timeout: {}", left > 0 && left <= 3_600_000));
    out.push(format!("read served: {}", show(&c.send(&["GET", "before"]))));
    b.write_raw(&ferrokv_tests::resp::encode_command(&["SET", "held", "1"])).unwrap();
    // The held write has no reply while the shutdown waits (it would have one at once).
    b.set_timeout(Duration::from_millis(500));
    out.push(format!("write held: {}", b.read_reply().is_err()));
    out.push(format!("second SHUTDOWN: {}", {
        let mut d = master.conn();
        d.write_raw(&ferrokv_tests::resp::encode_command(&["SHUTDOWN", "NOSAVE"])).unwrap();
        d.set_timeout(Duration::from_millis(300));
        let blocked = d.read_reply().is_err();
        d.set_timeout(Duration::from_secs(10));
        let r = c.send(&["SHUTDOWN", "ABORT"]);
        format!("blocked {blocked}; ABORT -> {}; then {}", show(&r), show(&d.read_reply().unwrap()))
    }));
    a.set_timeout(Duration::from_secs(10));
    out.push(format!("SHUTDOWN client: {}", show(&a.read_reply().unwrap())));
    b.set_timeout(Duration::from_secs(10));
    out.push(format!("held write: {}", show(&b.read_reply().unwrap())));
    out.push(format!("ABORT again: {}", show(&c.send(&["SHUTDOWN", "ABORT"]))));
    out.push(format!("countdown gone: {}", info_field(&mut c, "server", "shutdown_in_milliseconds").is_none()));
    let log = master.output();
    out.push(format!(
        "logged: {} {}",
        log.contains("Waiting for replicas before shutting down."),
        log.contains("Shutdown manually aborted.")
    ));
    replica.signal(libc::SIGCONT);
    out.join("; ")
}

#[test]
fn shutdown_abort_cancels_a_shutdown_waiting_for_replicas() {
    assert_eq!(abort_while_waiting(Kind::Ferrokv), abort_while_waiting(Kind::Redis));
}

/// NOW does not wait for a replica that acknowledges nothing; without NOW the node
/// exits once `shutdown-timeout` has passed, logging the lagging replica; SIGTERM
/// waits too (and ABORT cancels it), and with `shutdown-on-sigterm now` it does not.
fn lagging_replica(kind: Kind, how: &str) -> String {
    let timeout = if how == "timeout" { "1" } else { "3600" };
    let mut extra = vec!["--shutdown-timeout", timeout];
    if how == "sigterm-now" {
        extra.extend(["--shutdown-on-sigterm", "now"]);
    }
    let (mut master, replica) = pair(kind, &extra);
    let mut m = master.conn();
    assert_eq!(m.send(&["SET", "k", "v"]), b"+OK\r\n");
    replica.signal(libc::SIGSTOP);
    assert_eq!(m.send(&["SET", "k2", "v"]), b"+OK\r\n");
    let mut out = vec![how.to_string()];
    match how {
        "now" | "timeout" => {
            let args: &[&str] = if how == "now" { &["SHUTDOWN", "NOW"] } else { &["SHUTDOWN"] };
            m.set_timeout(Duration::from_secs(30));
            out.push(format!(
                "{} -> {}",
                args.join(" "),
                m.try_send(args).map(|r| show(&r)).unwrap_or("(closed)".into())
            ));
            out.push(format!("exit {:?}", master.wait_exit(EXIT_WAIT).and_then(|s| s.code())));
        }
        "sigterm" => {
            master.signal(libc::SIGTERM);
            let mut c = master.conn();
            eventually("INFO shows the shutdown countdown", || {
                info_field(&mut c, "server", "shutdown_in_milliseconds").is_some()
            });
            out.push(format!("ABORT -> {}", show(&c.send(&["SHUTDOWN", "ABORT"]))));
            out.push(format!("still up: {}", show(&c.send(&["GET", "k2"]))));
        }
        _ => {
            master.signal(libc::SIGTERM);
            out.push(format!("exit {:?}", master.wait_exit(EXIT_WAIT).and_then(|s| s.code())));
        }
    }
    let log = master.output();
    out.push(format!("lagging logged: {}", log.contains("0 of 1 replicas are in sync when shutting down.")));
    replica.signal(libc::SIGCONT);
    out.join("; ")
}

#[test]
fn shutdown_now_does_not_wait_and_the_timeout_ends_the_wait() {
    for how in ["now", "timeout", "sigterm", "sigterm-now"] {
        assert_eq!(lagging_replica(Kind::Ferrokv, how), lagging_replica(Kind::Redis, how));
    }
}

/// shutdown-timeout and shutdown-on-sig* as CONFIG GET/SET show them.
fn shutdown_config(kind: Kind) -> Vec<String> {
    let server = Server::start(kind, &[]).unwrap_or_else(|e| panic!("{e}"));
    let mut c = server.conn();
    let mut out = Vec::new();
    for line in [
        "CONFIG GET shutdown-timeout",
        "CONFIG GET shutdown-on-sigint",
        "CONFIG GET shutdown-on-sigterm",
        "CONFIG SET shutdown-on-sigterm now|save",
        "CONFIG GET shutdown-on-sigterm",
        "CONFIG SET shutdown-on-sigterm default|now",
        "CONFIG GET shutdown-on-sigterm",
        "CONFIG SET shutdown-on-sigint save|nosave",
        "CONFIG SET shutdown-on-sigint bogus",
        "CONFIG SET shutdown-on-sigint force",
        "CONFIG SET shutdown-timeout -1",
        "CONFIG SET shutdown-timeout 0",
        "CONFIG GET shutdown-timeout",
        "CONFIG GET shutdown-on-sigint",
    ] {
        let args: Vec<String> = line.split(' ').map(|a| a.replace('|', " ")).collect();
        out.push(format!("{line} -> {}", show(&c.send(&args))));
    }
    out
}

#[test]
fn shutdown_options_as_redis() {
    assert_eq!(shutdown_config(Kind::Ferrokv), shutdown_config(Kind::Redis));
}
