//! The execution core's guarantees, seen from a client: no command inside MULTI/EXEC
//! can hang a shard (a server or cluster command inside EXEC reads the keyspace
//! through the locks EXEC holds), standalone and in cluster mode, on one and two shard
//! threads, with and without WATCH.
//!
//! Each transaction is `[WATCH k] MULTI, SET k v, <command>, EXEC`; every reply must
//! arrive within a second, and the node must answer PING afterwards.

use std::time::{Duration, Instant};

use ferrokv_tests::resp::{show, show_command};
use ferrokv_tests::server::Kind;
use ferrokv_tests::Server;

/// The slot of `k` (CLUSTER KEYSLOT k).
const SLOT_OF_K: &str = "7629";

/// Commands to run inside a transaction. `{id}` is replaced with the node's ID in
/// cluster mode. None of them may end the connection or the server.
const COMMANDS: &[&str] = &[
    "CLUSTER KEYSLOT k",
    "CLUSTER COUNTKEYSINSLOT {slot}",
    "CLUSTER GETKEYSINSLOT {slot} 10",
    "CLUSTER SETSLOT {slot} STABLE",
    "CLUSTER SETSLOT {slot} NODE {id}",
    "CLUSTER MYID",
    "CLUSTER NODES",
    "CLUSTER INFO",
    "CLUSTER SLOTS",
    "CLUSTER SHARDS",
    "CLUSTER LINKS",
    "CLUSTER REPLICAS {id}",
    "CLUSTER COUNT-FAILURE-REPORTS {id}",
    "CLUSTER BUMPEPOCH",
    "CLUSTER SAVECONFIG",
    "CLUSTER ADDSLOTS {slot}",
    "CLUSTER REPLICATE {id}",
    "CLUSTER HELP",
    "CLIENT ID",
    "CLIENT GETNAME",
    "CLIENT SETNAME tx",
    "CLIENT LIST",
    "CLIENT INFO",
    "CLIENT KILL ID 999999",
    "CLIENT NO-EVICT off",
    "CONFIG GET maxclients",
    "CONFIG SET hz 10",
    "CONFIG RESETSTAT",
    "INFO",
    "INFO all",
    "DBSIZE",
    "KEYS *",
    "SCAN 0",
    "RANDOMKEY",
    "COMMAND COUNT",
    "COMMAND INFO get",
    "COMMAND GETKEYS set a b",
    "TIME",
    "PING",
    "ECHO hi",
    "SELECT 0",
    "READONLY",
    "READWRITE",
    "ASKING",
    "FLUSHDB",
    "FLUSHALL",
    "GET k",
];

fn line_args(line: &str, id: &str) -> Vec<String> {
    line.replace("{slot}", SLOT_OF_K).replace("{id}", id).split(' ').map(String::from).collect()
}

fn wait_cluster_ok(node: &Server) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = String::from_utf8_lossy(&node.conn().send(&["CLUSTER", "INFO"])).to_string();
        if info.contains("cluster_state:ok") {
            return;
        }
        assert!(Instant::now() < deadline, "cluster never became ok:\n{info}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn every_command_in_exec(node: &Server, cluster: bool) {
    let id = if cluster {
        let raw = node.conn().send(&["CLUSTER", "MYID"]);
        let text = String::from_utf8_lossy(&raw).to_string();
        text.lines().nth(1).unwrap_or_default().trim().to_string()
    } else {
        "0000000000000000000000000000000000000000".to_string()
    };
    for watch in [false, true] {
        for line in COMMANDS {
            let cmd = line_args(line, &id);
            let mut conn = node.conn();
            conn.set_timeout(Duration::from_secs(1));
            let what = format!("{} (watch: {watch}, cluster: {cluster})", show_command(&cmd));
            let mut step = |args: &[String]| -> Vec<u8> {
                conn.try_send(args)
                    .unwrap_or_else(|e| panic!("{what}: {} got no answer within 1 s: {e}", show_command(args)))
            };
            if watch {
                step(&["WATCH".into(), "k".into()]);
            }
            step(&["MULTI".into()]);
            step(&["SET".into(), "k".into(), "v".into()]);
            let queued = step(&cmd);
            let exec = step(&["EXEC".into()]);
            assert!(
                exec.starts_with(b"*") || exec.starts_with(b"-EXECABORT"),
                "{what}: EXEC answered {} (queued: {})",
                show(&exec),
                show(&queued)
            );
            let pong = step(&["PING".into()]);
            assert_eq!(pong, b"+PONG\r\n", "{what}: PING after EXEC");
        }
    }
    // The node still serves other connections and exits cleanly on SIGTERM.
    assert_eq!(node.conn().send(&["SET", "after", "1"]), b"+OK\r\n");
}

fn standalone(threads: &str) {
    let mut node = Server::ferrokv(&["--server-threads", threads]);
    every_command_in_exec(&node, false);
    let status = node.stop();
    assert!(status.is_some_and(|s| s.success()), "ferrokv did not exit cleanly on SIGTERM: {status:?}");
}

fn cluster(threads: &str) {
    let mut node = Server::cluster_node(Kind::Ferrokv, &["--server-threads", threads, "--save", ""]);
    assert_eq!(node.conn().send(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]), b"+OK\r\n");
    wait_cluster_ok(&node);
    every_command_in_exec(&node, true);
    let status = node.stop();
    assert!(status.is_some_and(|s| s.success()), "ferrokv did not exit cleanly on SIGTERM: {status:?}");
}

#[test]
fn every_command_answers_inside_exec_standalone_one_shard() {
    standalone("1");
}

#[test]
fn every_command_answers_inside_exec_standalone_two_shards() {
    standalone("2");
}

#[test]
fn every_command_answers_inside_exec_cluster_one_shard() {
    cluster("1");
}

#[test]
fn every_command_answers_inside_exec_cluster_two_shards() {
    cluster("2");
}

/// The case that hung a node: a transaction in cluster mode that counts the keys of
/// the slot it writes to, answered with the right count.
#[test]
fn countkeysinslot_inside_exec_counts_the_transactions_own_write() {
    let node = Server::cluster_node(Kind::Ferrokv, &["--server-threads", "2", "--save", ""]);
    assert_eq!(node.conn().send(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]), b"+OK\r\n");
    wait_cluster_ok(&node);
    let mut conn = node.conn();
    conn.set_timeout(Duration::from_secs(1));
    conn.send(&["MULTI"]);
    conn.send(&["SET", "k", "v"]);
    conn.send(&["CLUSTER", "COUNTKEYSINSLOT", SLOT_OF_K]);
    conn.send(&["CLUSTER", "GETKEYSINSLOT", SLOT_OF_K, "5"]);
    let exec = conn.send(&["EXEC"]);
    assert_eq!(show(&exec), show(b"*3\r\n+OK\r\n:1\r\n*1\r\n$1\r\nk\r\n"));
}

/// The `name:calls=..,rejected_calls=..,failed_calls=..` part of INFO commandstats
/// (without the times), and the errorstats lines.
fn stats_of(s: &Server) -> (Vec<String>, Vec<String>) {
    let raw = s.conn().send(&["INFO", "commandstats"]);
    let mut cmds: Vec<String> = String::from_utf8_lossy(&raw)
        .lines()
        .filter(|l| l.starts_with("cmdstat_"))
        .filter(|l| !l.starts_with("cmdstat_info:"))
        .map(|l| {
            let (name, fields) = l.split_once(':').unwrap();
            let keep: Vec<&str> =
                fields.split(',').filter(|f| !f.starts_with("usec=") && !f.starts_with("usec_per_call=")).collect();
            format!("{name}:{}", keep.join(","))
        })
        .collect();
    cmds.sort();
    let raw = s.conn().send(&["INFO", "errorstats"]);
    let errs =
        String::from_utf8_lossy(&raw).lines().filter(|l| l.starts_with("errorstat_")).map(String::from).collect();
    (cmds, errs)
}

/// INFO commandstats and errorstats count calls, rejections and failures as Redis
/// does, for inline, multi-key, transaction and server commands, and CONFIG RESETSTAT
/// clears them.
#[test]
fn commandstats_and_errorstats_count_as_redis() {
    let servers = [Server::ferrokv(&["--server-threads", "2"]), Server::redis(&[])];
    let mut seen = Vec::new();
    for s in &servers {
        let mut c = s.conn();
        c.send(&["CONFIG", "RESETSTAT"]);
        for cmd in [
            vec!["SET", "a", "x"],
            vec!["GET", "a"],
            vec!["INCR", "a"],
            vec!["GET"],
            vec!["NOSUCH", "x"],
            vec!["LPUSH", "a", "x"],
            vec!["MSET", "k1", "1", "k2", "2", "k3", "3"],
            vec!["MGET", "k1", "k2", "k3", "k4"],
            vec!["CLIENT", "ID"],
            vec!["CLIENT", "NOSUCH"],
            vec!["OBJECT", "ENCODING", "a"],
            vec!["MULTI"],
            vec!["SET", "b", "1"],
            vec!["INCR", "a"],
            vec!["EXEC"],
            vec!["MULTI"],
            vec!["GET"],
            vec!["EXEC"],
            vec!["AUTH", "nopass"],
            vec!["EXPIRE", "a", "x"],
        ] {
            c.send(&cmd);
        }
        seen.push(stats_of(s));
    }
    assert_eq!(seen[0], seen[1], "ferrokv's commandstats/errorstats (left) differ from redis-server's (right)");
    for s in &servers {
        s.conn().send(&["CONFIG", "RESETSTAT"]);
        let (cmds, errs) = stats_of(s);
        assert!(cmds.iter().all(|c| c.starts_with("cmdstat_config|resetstat:")), "{cmds:?}");
        assert!(errs.is_empty(), "{errs:?}");
    }
}

/// nodes.conf is written off the event loop, and a CLUSTER change answers only once the
/// file holds it (as Redis saves the config before replying): right after each reply,
/// the file on disk already has the change.
#[test]
fn cluster_changes_are_in_nodes_conf_when_they_are_answered() {
    let node = Server::cluster_node(Kind::Ferrokv, &["--server-threads", "2", "--save", ""]);
    let path = node.dir().join("nodes.conf");
    let mut conn = node.conn();
    for (i, slot) in ["100", "200", "300", "16383"].iter().enumerate() {
        assert_eq!(conn.send(&["CLUSTER", "ADDSLOTS", slot]), b"+OK\r\n");
        let text = std::fs::read_to_string(&path).expect("nodes.conf");
        let myself = text.lines().find(|l| l.contains("myself")).unwrap_or_else(|| panic!("no myself line:\n{text}"));
        for s in &["100", "200", "300", "16383"][..=i] {
            assert!(
                myself.split(' ').any(|w| w == *s),
                "slot {s} not in nodes.conf after its ADDSLOTS answered:\n{text}"
            );
        }
    }
    assert_eq!(conn.send(&["CLUSTER", "SAVECONFIG"]), b"+OK\r\n");
    let epoch_before = std::fs::read_to_string(&path).unwrap();
    assert!(epoch_before.contains("vars currentEpoch"), "{epoch_before}");
}

/// Two clients on (most likely) different shards change different options at the same
/// time, many times: neither change is lost (one owner of the live configuration).
#[test]
fn concurrent_config_sets_lose_no_change() {
    let node = Server::ferrokv(&["--server-threads", "2"]);
    let options = ["hash-max-listpack-entries", "set-max-intset-entries", "zset-max-listpack-entries", "hz"];
    let port = node.port();
    let threads: Vec<_> = options
        .iter()
        .map(|opt| {
            let opt = opt.to_string();
            std::thread::spawn(move || {
                let mut c = ferrokv_tests::Conn::connect(port).expect("connect");
                for i in 1..=300 {
                    let v = (i % 50 + 1).to_string();
                    assert_eq!(c.send(&["CONFIG", "SET", &opt, &v]), b"+OK\r\n");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let mut c = node.conn();
    for opt in options {
        let got = String::from_utf8_lossy(&c.send(&["CONFIG", "GET", opt])).to_string();
        assert!(got.ends_with("$2\r\n1\r\n") || got.ends_with("\r\n1\r\n"), "{opt} lost its last value (1): {got:?}");
    }
}
