//! The load generator (`benches/loadgen`, binary `ferrokv-load`) against a real 3-node
//! cluster of ferrokv-server and of redis-server: it must issue exactly the requests it
//! was asked for, route every one to the node that serves its slot (no error, no miss
//! after a fill), learn the map from MOVED when told to start without it, and follow
//! ASK to a slot being imported, and reach the owning core when a node advertises a
//! port per shard. Brief runs; nothing is timed.
//!
//! Needs `ferrokv-load` next to ferrokv-server: `cargo build --release -p ferrokv-load`
//! (deploy/test.sh builds it).

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ferrokv_tests::cluster::{create_masters, key_slot, myid, state_ok, text, wait_until};
use ferrokv_tests::resp::Reply;
use ferrokv_tests::server::free_port;
use ferrokv_tests::{Kind, Server};

/// The tests of this file run one at a time: each generator opens dozens of client
/// sockets on ephemeral ports, and `ferrokv_core_ports` reserves ephemeral ports for the
/// server to bind a moment later.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn ferrokv_load() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let path = dir.join("ferrokv-load");
    assert!(path.is_file(), "{} missing: build it with `cargo build --release -p ferrokv-load`", path.display());
    path
}

/// The generator's JSON report, fields read as numbers or strings.
struct Report(String);

impl Report {
    fn num(&self, field: &str) -> f64 {
        let key = format!("\"{field}\":");
        let at = self.0.find(&key).unwrap_or_else(|| panic!("no {field} in {}", self.0)) + key.len();
        let rest = &self.0[at..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        rest[..end].parse().unwrap_or_else(|_| panic!("{field} is not a number in {}", self.0))
    }

    fn count(&self, field: &str) -> u64 {
        self.num(field) as u64
    }

    fn has(&self, text: &str) -> bool {
        self.0.contains(text)
    }
}

/// Runs ferrokv-load against `port` with `args` (plus `--json`); panics unless it exits
/// 0 with a report.
fn load(port: u16, args: &[&str]) -> Report {
    let out = Command::new(ferrokv_load())
        .args(["--port", &port.to_string(), "--json", "--timeout", "20"])
        .args(args)
        .output()
        .expect("run ferrokv-load");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ferrokv-load {args:?} failed: {stdout}{stderr}");
    let report = Report(stdout.trim().to_string());
    assert!(report.0.starts_with('{') && report.0.ends_with('}'), "not a JSON report: {stdout}{stderr}");
    report
}

fn dbsize(node: &Server) -> u64 {
    match node.conn().call(&["DBSIZE"]) {
        Reply::Int(n) => n as u64,
        other => panic!("DBSIZE: {other:?}"),
    }
}

/// The node of `nodes` whose CLUSTER NODES line says `myself` owns `slot`.
fn owner(nodes: &[Server], slot: u16) -> usize {
    nodes
        .iter()
        .position(|n| {
            let all = text(n, &["CLUSTER", "NODES"]);
            let me = all.lines().find(|l| l.contains("myself")).expect("myself line").to_string();
            me.split(' ').skip(8).any(|r| {
                let (a, b) = r.split_once('-').unwrap_or((r, r));
                matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a <= slot && slot <= b)
            })
        })
        .expect("a node owns the slot")
}

fn cluster_run(kind: Kind) {
    let nodes: Vec<Server> =
        (0..3).map(|_| Server::cluster_node(kind, &["--cluster-node-timeout", "5000", "--save", ""])).collect();
    create_masters(&nodes);
    let seed = nodes[0].port();

    // Fill: each of 3000 keys SET once, routed by CLUSTER SLOTS.
    let fill = load(
        seed,
        &["--distribution", "sequential", "--ratio", "1:0", "--keys", "3000", "-n", "3000", "-c", "8", "-P", "8"],
    );
    assert!(fill.has("\"mode\":\"cluster\""), "{}", fill.0);
    assert_eq!(fill.count("requests"), 3000, "{}", fill.0);
    assert_eq!(fill.count("sets"), 3000, "{}", fill.0);
    assert_eq!(fill.count("errors"), 0, "{}", fill.0);
    assert_eq!(fill.count("moved"), 0, "the map from CLUSTER SLOTS is exact: {}", fill.0);
    let sizes: Vec<u64> = nodes.iter().map(dbsize).collect();
    assert_eq!(sizes.iter().sum::<u64>(), 3000, "{sizes:?}");
    assert!(sizes.iter().all(|&s| s > 500), "keys spread over the masters: {sizes:?}");

    // Mixed load on two threads: every request counted, every GET finds its key.
    let mixed =
        load(seed, &["--ratio", "1:3", "--keys", "3000", "-n", "20000", "-c", "12", "-P", "4", "--threads", "2"]);
    assert_eq!(mixed.count("requests"), 20000, "{}", mixed.0);
    assert_eq!(mixed.count("sets") + mixed.count("gets"), 20000, "{}", mixed.0);
    assert_eq!(mixed.count("errors"), 0, "{}", mixed.0);
    assert_eq!(mixed.count("misses"), 0, "{}", mixed.0);
    assert!(mixed.count("gets") > 10000, "{}", mixed.0);
    assert!(mixed.num("rps") > 0.0 && mixed.num("p99") > 0.0, "{}", mixed.0);

    // A client that starts knowing only the seed learns the rest from MOVED.
    let learn = load(
        seed,
        &[
            "--learn-slots",
            "--ratio",
            "0:1",
            "--distribution",
            "zipf",
            "--keys",
            "3000",
            "-n",
            "5000",
            "-P",
            "3",
            "--client-window",
        ],
    );
    assert!(learn.has("\"window\":\"client\""), "{}", learn.0);
    assert_eq!(learn.count("requests"), 5000, "{}", learn.0);
    assert_eq!(learn.count("errors"), 0, "{}", learn.0);
    assert_eq!(learn.count("misses"), 0, "{}", learn.0);
    assert!(learn.count("moved") > 0, "{}", learn.0);
    for node in &nodes {
        assert!(learn.has(&format!("\"127.0.0.1:{}\"", node.port())), "every master learned: {}", learn.0);
    }

    // A standalone client on the same cluster sees MOVED as errors.
    let plain = load(seed, &["--no-cluster", "--ratio", "0:1", "--keys", "3000", "-n", "2000"]);
    assert!(plain.has("\"mode\":\"standalone\""), "{}", plain.0);
    assert_eq!(plain.count("requests"), 2000, "{}", plain.0);
    assert!(plain.count("errors") > 0 && plain.count("errors") < 2000, "{}", plain.0);
    assert!(plain.has("MOVED "), "{}", plain.0);

    // ASK: every key of hash tag {0} lives in one slot, which its owner is migrating to
    // another node while none of them exists yet: each SET is asked over to the
    // importing node (ASKING + SET), and each GET after it too.
    let slot = key_slot(b"{0}");
    let (from, to) = {
        let a = owner(&nodes, slot);
        (a, (a + 1) % 3)
    };
    let s = slot.to_string();
    assert_eq!(nodes[to].conn().send(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &myid(&nodes[from])]), b"+OK\r\n");
    assert_eq!(nodes[from].conn().send(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &myid(&nodes[to])]), b"+OK\r\n");
    let before = dbsize(&nodes[to]);
    let tagged = ["--hash-tags", "1", "--key-prefix", "tagged:", "--keys", "200", "-c", "4", "-P", "4"];
    let ask_fill =
        load(seed, &[&tagged[..], &["--distribution", "sequential", "--ratio", "1:0", "-n", "200"]].concat());
    assert_eq!(ask_fill.count("requests"), 200, "{}", ask_fill.0);
    assert_eq!(ask_fill.count("errors"), 0, "{}", ask_fill.0);
    assert_eq!(ask_fill.count("ask"), 200, "{}", ask_fill.0);
    assert_eq!(dbsize(&nodes[to]), before + 200);
    let ask_read = load(seed, &[&tagged[..], &["--ratio", "0:1", "-n", "500"]].concat());
    assert_eq!(ask_read.count("requests"), 500, "{}", ask_read.0);
    assert_eq!(ask_read.count("errors"), 0, "{}", ask_read.0);
    assert_eq!(ask_read.count("misses"), 0, "{}", ask_read.0);
    assert_eq!(ask_read.count("ask"), 500, "{}", ask_read.0);
}

#[test]
fn ferrokv_cluster() {
    let _serial = serial();
    cluster_run(Kind::Ferrokv);
}

#[test]
fn redis_cluster() {
    let _serial = serial();
    cluster_run(Kind::Redis);
}

/// Standalone servers: every request answered, the duration bound ends the run, a paced
/// run stays within its schedule.
#[test]
fn standalone_servers() {
    let _serial = serial();
    for server in [Server::ferrokv(&[]), Server::redis(&[])] {
        let r = load(server.port(), &["-n", "5000", "-c", "5", "-P", "3", "-d", "100"]);
        assert!(r.has("\"mode\":\"standalone\""), "{}", r.0);
        assert_eq!(r.count("requests"), 5000, "{}", r.0);
        assert_eq!(r.count("errors"), 0, "{}", r.0);
        let timed = load(server.port(), &["--duration", "0.3", "-c", "2"]);
        assert!(timed.count("requests") > 0, "{}", timed.0);
        assert_eq!(timed.count("errors"), 0, "{}", timed.0);
        assert_eq!(timed.count("sets") + timed.count("gets"), timed.count("requests"), "{}", timed.0);
        // Paced: never more than the schedule allows (one at the start, then 2000 a
        // second for half a second), whatever the machine's speed.
        let paced = load(server.port(), &["--rate", "2000", "--duration", "0.5", "-c", "4"]);
        assert!(paced.has("\"rate\":2000"), "{}", paced.0);
        assert!((1..=1001).contains(&paced.count("requests")), "{}", paced.0);
        assert_eq!(paced.count("errors"), 0, "{}", paced.0);
    }
}

/// With a port per shard (`core-ports`) advertised in CLUSTER SLOTS, the generator sends
/// every command to the owning core: nothing is forwarded between the node's shards,
/// while a standalone client on the node's port is.
#[test]
fn ferrokv_core_ports() {
    let _serial = serial();
    let cores = [free_port(), free_port()];
    let list = format!("{} {}", cores[0], cores[1]);
    let node = Server::cluster_node(Kind::Ferrokv, &["--server-threads", "2", "--core-ports", &list, "--save", ""]);
    assert_eq!(node.conn().send(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]), b"+OK\r\n");
    wait_until("cluster_state:ok", Duration::from_secs(20), || state_ok(&node));
    // Commands for another shard than the connection's: forwarded, or run under the
    // owning shard's lock (`shard-hop lock`, the default).
    let forwarded = || -> u64 {
        let info = text(&node, &["INFO", "shards"]);
        let counts: Vec<u64> = info
            .split([',', '\n'])
            .filter_map(|f| f.strip_prefix("forwarded=").or_else(|| f.strip_prefix("locked=")))
            .map(|n| n.trim().parse().expect("a count"))
            .collect();
        assert_eq!(counts.len(), 4, "{info}");
        counts.iter().sum()
    };

    let r = load(node.port(), &["--ratio", "1:1", "--keys", "2000", "-n", "10000", "-c", "6", "-P", "4"]);
    assert_eq!(r.count("requests"), 10000, "{}", r.0);
    assert_eq!(r.count("errors"), 0, "{}", r.0);
    assert_eq!(r.count("moved"), 0, "{}", r.0);
    for port in cores {
        assert!(r.has(&format!("\"127.0.0.1:{port}\"")), "both cores are endpoints: {}", r.0);
    }
    assert_eq!(forwarded(), 0, "a cluster client reaches the owning core");

    let plain = load(node.port(), &["--no-cluster", "--ratio", "1:1", "--keys", "2000", "-n", "2000", "-c", "2"]);
    assert_eq!(plain.count("errors"), 0, "{}", plain.0);
    assert!(forwarded() > 0, "the node's port hops to the owning shard");
}
