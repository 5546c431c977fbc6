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
