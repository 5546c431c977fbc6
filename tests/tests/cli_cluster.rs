//! `ferrokv-cli cluster` admin commands against real clusters (issue 11): reshard,
//! rebalance, add-node, del-node, fix, import and failover on a 6-node ferrokv cluster
//! (3 masters, 3 replicas, built by `ferrokv-cli cluster create`), and a reshard of a
//! redis-server 7.0 cluster. After each step both `ferrokv-cli cluster check` and
//! `redis-cli --cluster check` must find the cluster clean; data is read back through
//! a client that follows MOVED/ASK/TRYAGAIN. A SIGINT during a reshard exits 1 with no
//! slot left open.
//!
//! Needs target/release/ferrokv-cli (`cargo build --release -p ferrokv-cli`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferrokv_tests::cluster::{check_clean, create_masters, key_slot, myid, state_ok, text, wait_until, ClusterClient};
use ferrokv_tests::resp::Reply;
use ferrokv_tests::{Kind, Server};

fn ferrokv_cli() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let path = dir.join("ferrokv-cli");
    assert!(path.is_file(), "{} missing: build it with `cargo build --release -p ferrokv-cli`", path.display());
    path
}

/// Runs ferrokv-cli; (exit ok, stdout, stderr).
fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(ferrokv_cli()).args(args).output().expect("run ferrokv-cli");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_ok(args: &[&str]) -> String {
    let (ok, out, err) = cli(args);
    assert!(ok, "ferrokv-cli {} failed:\n{out}\n{err}", args.join(" "));
    out
}

fn nodes(kind: Kind, n: usize) -> Vec<Server> {
    (0..n).map(|_| Server::cluster_node(kind, &["--cluster-node-timeout", "2000", "--save", ""])).collect()
}

/// 3 masters and 3 replicas, by `ferrokv-cli cluster create --replicas 1`.
fn six_node_cluster() -> Vec<Server> {
    six_node_cluster_of(Kind::Ferrokv)
}

fn six_node_cluster_of(kind: Kind) -> Vec<Server> {
    let nodes = nodes(kind, 6);
    let mut args = vec!["cluster".to_string(), "create".to_string()];
    args.extend(nodes.iter().map(Server::addr));
    args.extend(["--replicas".to_string(), "1".to_string(), "--yes".to_string()]);
    cli_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    wait_until("every node knows 3 replicas", Duration::from_secs(30), || {
        nodes.iter().all(|n| state_ok(n) && text(n, &["CLUSTER", "NODES"]).matches("slave").count() == 3)
    });
    nodes
}

/// Both checkers find nothing wrong (the nodes agree, every slot is covered, none is open).
fn clean(node: &Server) {
    wait_until("ferrokv-cli cluster check passes", Duration::from_secs(20), || {
        cli(&["cluster", "check", &node.addr()]).0
    });
    let out = cli_ok(&["cluster", "check", &node.addr()]);
    assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
    assert!(!out.contains("[WARNING]") && !out.contains("[ERR]"), "{out}");
    check_clean(node);
}

fn masters(nodes: &[Server]) -> Vec<&Server> {
    nodes.iter().filter(|n| text(n, &["ROLE"]).contains("master")).collect()
}

fn slots_of(node: &Server) -> usize {
    let id = myid(node);
    let view = text(node, &["CLUSTER", "NODES"]);
    let line = view.lines().find(|l| l.starts_with(&id)).expect("own line").to_string();
    line.split(' ')
        .skip(8)
        .filter(|t| !t.starts_with('['))
        .map(|t| match t.split_once('-') {
            Some((a, b)) => b.parse::<usize>().expect("slot") - a.parse::<usize>().expect("slot") + 1,
            None => 1,
        })
        .sum()
}

/// DBSIZE, waiting (bounded) while the node loads a full sync.
fn dbsize(node: &Server) -> i64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match node.conn().call(&["DBSIZE"]) {
            Reply::Int(n) => return n,
            Reply::Error(e) if e.starts_with(b"LOADING") && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => panic!("DBSIZE: {other:?}"),
        }
    }
}

/// Each node's own CLUSTER NODES line, without the volatile fields (ping/pong times).
fn layout(nodes: &[Server]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| {
            let view = text(n, &["CLUSTER", "NODES"]);
            let me = view.lines().find(|l| l.contains("myself")).expect("myself").to_string();
            let f: Vec<&str> = me.split(' ').collect();
            format!("{} {} {} {}", f[0], f[2], f[3], f[8..].join(" "))
        })
        .collect()
}

// ---- A small JSON reader, enough to prove `--json` output parses. ----

#[derive(Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(fields) => &fields.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no {key}")).1,
            other => panic!("not an object: {other:?}"),
        }
    }

    fn num(&self) -> f64 {
        match self {
            Json::Num(n) => *n,
            other => panic!("not a number: {other:?}"),
        }
    }
}

fn parse_json(text: &str) -> Json {
    let b = text.trim().as_bytes();
    let mut at = 0;
    let v = json_value(b, &mut at);
    assert_eq!(at, b.len(), "trailing bytes after JSON: {text}");
    v
}

fn json_ws(b: &[u8], at: &mut usize) {
    while *at < b.len() && b[*at].is_ascii_whitespace() {
        *at += 1;
    }
}

fn json_value(b: &[u8], at: &mut usize) -> Json {
    json_ws(b, at);
    let v = match b[*at] {
        b'{' => {
            *at += 1;
            let mut fields = Vec::new();
            json_ws(b, at);
            if b[*at] == b'}' {
                *at += 1;
                return Json::Obj(fields);
            }
            loop {
                json_ws(b, at);
                let Json::Str(k) = json_value(b, at) else { panic!("object key") };
                json_ws(b, at);
                assert_eq!(b[*at], b':');
                *at += 1;
                fields.push((k, json_value(b, at)));
                json_ws(b, at);
                *at += 1;
                if b[*at - 1] == b'}' {
                    break Json::Obj(fields);
                }
                assert_eq!(b[*at - 1], b',');
            }
        }
        b'[' => {
            *at += 1;
            let mut items = Vec::new();
            json_ws(b, at);
            if b[*at] == b']' {
                *at += 1;
                return Json::Arr(items);
            }
            loop {
                items.push(json_value(b, at));
                json_ws(b, at);
                *at += 1;
                if b[*at - 1] == b']' {
                    break Json::Arr(items);
                }
                assert_eq!(b[*at - 1], b',');
            }
        }
        b'"' => {
            *at += 1;
            let mut s = String::new();
            while b[*at] != b'"' {
                if b[*at] == b'\\' {
                    *at += 1;
                }
                s.push(b[*at] as char);
                *at += 1;
            }
            *at += 1;
            Json::Str(s)
        }
        b't' if b[*at..].starts_with(b"true") => {
            *at += 4;
            Json::Bool(true)
        }
        b'f' if b[*at..].starts_with(b"false") => {
            *at += 5;
            Json::Bool(false)
        }
        b'n' if b[*at..].starts_with(b"null") => {
            *at += 4;
            Json::Null
        }
        _ => {
            let start = *at;
            while *at < b.len() && (b[*at].is_ascii_digit() || b"-+.eE".contains(&b[*at])) {
                *at += 1;
            }
            Json::Num(std::str::from_utf8(&b[start..*at]).expect("utf8").parse().expect("a JSON value"))
        }
    };
    json_ws(b, at);
    v
}

// ---- Traffic during migrations (as tests/migrate.rs) ----

struct Traffic {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    writer: std::thread::JoinHandle<Vec<i64>>,
    reader: std::thread::JoinHandle<()>,
}

const COUNTERS: usize = 300;
const FIXED: usize = 1500;

fn load_fixed(port: u16) {
    let mut c = ClusterClient::new(port);
    for n in 0..FIXED {
        let (k, v) = (format!("fixed:{n}"), format!("value:{n}"));
        assert_eq!(c.call(&[b"SET", k.as_bytes(), v.as_bytes()]), Reply::Simple(b"OK".to_vec()));
    }
}

fn check_fixed(port: u16) {
    let mut c = ClusterClient::new(port);
    for n in 0..FIXED {
        let k = format!("fixed:{n}");
        assert_eq!(c.call(&[b"GET", k.as_bytes()]), Reply::Bulk(Some(format!("value:{n}").into_bytes())), "{k}");
    }
}

fn start_traffic(port: u16) -> Traffic {
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let st = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut c = ClusterClient::new(port);
        let mut acked = vec![0i64; COUNTERS];
        let mut i = 0;
        while !st.load(Ordering::Relaxed) {
            let k = format!("counter:{}", i % COUNTERS);
            match c.call(&[b"INCR", k.as_bytes()]) {
                Reply::Int(n) => {
                    acked[i % COUNTERS] += 1;
                    assert_eq!(n, acked[i % COUNTERS], "{k}: an increment was lost or applied twice");
                }
                other => panic!("INCR {k}: {other:?}"),
            }
            i += 1;
        }
        acked
    });
    let (st, rd) = (stop.clone(), reads.clone());
    let reader = std::thread::spawn(move || {
        let mut c = ClusterClient::new(port);
        let mut i = 0usize;
        while !st.load(Ordering::Relaxed) {
            let n = (i * 7919) % FIXED;
            let k = format!("fixed:{n}");
            assert_eq!(c.call(&[b"GET", k.as_bytes()]), Reply::Bulk(Some(format!("value:{n}").into_bytes())), "{k}");
            rd.fetch_add(1, Ordering::Relaxed);
            i += 1;
        }
    });
    Traffic { stop, reads, writer, reader }
}

impl Traffic {
    fn wait_reads(&self, more: u64) {
        let before = self.reads.load(Ordering::Relaxed);
        wait_until("reads go on", Duration::from_secs(20), || self.reads.load(Ordering::Relaxed) > before + more);
    }

    fn finish(self, port: u16) {
        self.stop.store(true, Ordering::Relaxed);
        let acked = self.writer.join().expect("writer");
        self.reader.join().expect("reader");
        let mut c = ClusterClient::new(port);
        for (i, n) in acked.iter().enumerate() {
            let k = format!("counter:{i}");
            let want = if *n == 0 { Reply::Bulk(None) } else { Reply::Bulk(Some(n.to_string().into_bytes())) };
            assert_eq!(c.call(&[b"GET", k.as_bytes()]), want, "{k} after the migration");
        }
    }
}

#[test]
fn reshard_under_load_dry_run_and_json() {
    let nodes = six_node_cluster();
    let port = nodes[0].port();
    let m = masters(&nodes);
    let (a, b) = (m[0], m[1]);
    load_fixed(port);

    // --dry-run: the plan, and nothing changes.
    let before = layout(&nodes);
    let out = cli_ok(&[
        "cluster",
        "reshard",
        &a.addr(),
        "--from",
        &myid(a),
        "--to",
        &myid(b),
        "--slots",
        "50",
        "--dry-run",
        "--json",
    ]);
    let summary = parse_json(&out);
    assert_eq!(summary.get("dry_run"), &Json::Bool(true));
    assert_eq!(summary.get("slots_planned").num(), 50.0);
    assert_eq!(summary.get("slots_moved").num(), 0.0);
    assert_eq!(layout(&nodes), before, "a dry run changed the cluster");

    let traffic = start_traffic(port);
    traffic.wait_reads(200);
    let (slots_a, slots_b) = (slots_of(a), slots_of(b));
    let out = cli_ok(&[
        "cluster",
        "reshard",
        &a.addr(),
        "--cluster-from",
        &myid(a),
        "--cluster-to",
        &myid(b),
        "--cluster-slots",
        "300",
        "--cluster-yes",
        "--json",
        "--pipeline",
        "7",
    ]);
    let summary = parse_json(&out);
    assert_eq!(summary.get("slots_moved").num(), 300.0, "{out}");
    assert_eq!(summary.get("interrupted"), &Json::Bool(false));
    let Json::Arr(moves) = summary.get("moves") else { panic!("moves") };
    assert_eq!(moves.len(), 300);
    assert!(summary.get("keys_moved").num() > 0.0, "{out}");
    assert_eq!((slots_of(a), slots_of(b)), (slots_a - 300, slots_b + 300));
    clean(&nodes[0]);

    // From all the other masters to the third, human output.
    let c = m[2];
    let out = cli_ok(&["cluster", "reshard", &b.addr(), "--from", "all", "--to", &myid(c), "--slots", "200", "--yes"]);
    assert!(out.contains("Ready to move 200 slots.") && out.contains("Moving slot"), "{out}");
    traffic.wait_reads(100);
    traffic.finish(port);
    check_fixed(port);
    clean(&nodes[3]);
    let total: i64 = m.iter().map(|n| dbsize(n)).sum();
    assert_eq!(total, (FIXED + COUNTERS) as i64);
}

#[test]
fn add_node_rebalance_del_node() {
    let mut all = nodes(Kind::Ferrokv, 8);
    let spare = all.pop().expect("8");
    let new_master = all.pop().expect("7");
    let six = all;
    let mut args = vec!["cluster".to_string(), "create".to_string()];
    args.extend(six.iter().map(Server::addr));
    args.extend(["--replicas", "1", "--yes"].map(String::from));
    cli_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let port = six[0].port();
    load_fixed(port);

    cli_ok(&["cluster", "add-node", &new_master.addr(), &six[0].addr()]);
    let new_id = myid(&new_master);
    cli_ok(&["cluster", "add-node", &spare.addr(), &six[0].addr(), "--cluster-slave", "--cluster-master-id", &new_id]);
    wait_until("the new replica follows the new master", Duration::from_secs(30), || {
        text(&spare, &["ROLE"]).contains("connected")
    });
    wait_until("every node ok and knows 8 nodes", Duration::from_secs(30), || {
        six.iter()
            .chain([&new_master, &spare])
            .all(|n| state_ok(n) && text(n, &["CLUSTER", "INFO"]).contains("cluster_known_nodes:8"))
    });
    clean(&six[0]);

    // A balanced cluster with an empty master: nothing to do without --use-empty-masters.
    let out = cli_ok(&["cluster", "rebalance", &six[0].addr()]);
    assert!(out.contains("No rebalancing needed"), "{out}");
    let sim = cli_ok(&["cluster", "rebalance", &six[0].addr(), "--use-empty-masters", "--simulate"]);
    assert!(sim.contains(&format!("to {}", new_master.addr())), "{sim}");
    assert_eq!(slots_of(&new_master), 0, "--simulate moved slots");

    let traffic = start_traffic(port);
    let out = cli_ok(&["cluster", "rebalance", &six[0].addr(), "--cluster-use-empty-masters", "--json"]);
    let summary = parse_json(&out);
    assert_eq!(summary.get("slots_moved").num(), 4096.0, "{out}");
    assert_eq!(slots_of(&new_master), 4096);
    clean(&new_master);
    wait_until("the new replica has its master's keys", Duration::from_secs(30), || {
        dbsize(&spare) == dbsize(&new_master) && dbsize(&spare) > 0
    });

    // Empty it again (weight 0), then remove it and its replica.
    let weight = format!("{}=0", &new_id[..10]);
    cli_ok(&["cluster", "rebalance", &six[0].addr(), "--weight", &weight]);
    traffic.finish(port);
    assert_eq!(slots_of(&new_master), 0);
    // The keys of slots a node gave away are deleted in the background; a master left
    // without slots becomes a replica of the one that took its last slots (as in
    // Redis) and then holds that master's keys.
    wait_until("the emptied master drops its keys or follows", Duration::from_secs(10), || {
        text(&new_master, &["ROLE"]).contains("slave") || dbsize(&new_master) == 0
    });
    clean(&six[1]);
    check_fixed(port);

    let (ok, _, err) = cli(&["cluster", "del-node", &six[0].addr(), &myid(m0(&six))]);
    assert!(!ok && err.contains("is not empty"), "deleting a master with slots: {err}");
    cli_ok(&["cluster", "del-node", &six[0].addr(), &myid(&spare)]);
    cli_ok(&["cluster", "del-node", &six[0].addr(), &new_id]);
    wait_until("six nodes left", Duration::from_secs(20), || {
        six.iter().all(|n| text(n, &["CLUSTER", "INFO"]).contains("cluster_known_nodes:6"))
    });
    clean(&six[0]);
    check_fixed(six[2].port());
}

/// The first master among `nodes`.
fn m0(nodes: &[Server]) -> &Server {
    masters(nodes)[0]
}

#[test]
fn fix_closes_an_open_slot() {
    let nodes = six_node_cluster();
    let slot = key_slot(b"{open}");
    let m = masters(&nodes);
    let owner = m.iter().position(|n| !text(n, &["GET", "{open}"]).starts_with("-MOVED")).expect("an owner");
    let (a, b) = (m[owner], m[(owner + 1) % 3]);
    let mut c = ClusterClient::new(a.port());
    for i in 0..60 {
        let k = format!("{{open}}:{i}");
        c.call(&[b"SET", k.as_bytes(), format!("v{i}").as_bytes()]);
    }
    // Half a migration, as an admin tool killed mid-reshard leaves it.
    let s = slot.to_string();
    assert_eq!(b.conn().send(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &myid(a)]), b"+OK\r\n");
    assert_eq!(a.conn().send(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &myid(b)]), b"+OK\r\n");
    let mut cmd: Vec<String> =
        ["MIGRATE", "127.0.0.1", &b.port().to_string(), "", "0", "5000", "KEYS"].map(String::from).to_vec();
    cmd.extend((0..30).map(|i| format!("{{open}}:{i}")));
    assert_eq!(a.conn().send(&cmd), b"+OK\r\n");

    let (ok, out, _) = cli(&["cluster", "check", &a.addr()]);
    assert!(!ok && out.contains("The following slots are open"), "check should fail on the open slot:\n{out}");
    let out = cli_ok(&["cluster", "fix", &a.addr()]);
    // Both nodes hold keys of the slot and only `a` claims it: as redis-cli, the one
    // with the most keys (a tie: the first) keeps it and the other's keys go back.
    assert!(out.contains(&format!("Fixing open slot {slot}")) && out.contains("Case 2"), "{out}");
    clean(a);
    let mut c = ClusterClient::new(a.port());
    for i in 0..60 {
        let k = format!("{{open}}:{i}");
        assert_eq!(c.call(&[b"GET", k.as_bytes()]), Reply::Bulk(Some(format!("v{i}").into_bytes())), "{k}");
    }

    // An importing marker alone (a tool that died after the first SETSLOT): Case 2.
    let slot2 = key_slot(b"{other}");
    let owner2 = m.iter().position(|n| !text(n, &["GET", "{other}"]).starts_with("-MOVED")).expect("owner");
    let (o2, i2) = (m[owner2], m[(owner2 + 1) % 3]);
    assert_eq!(i2.conn().send(&["CLUSTER", "SETSLOT", &slot2.to_string(), "IMPORTING", &myid(o2)]), b"+OK\r\n");
    let out = cli_ok(&["cluster", "fix", &a.addr(), "--yes"]);
    assert!(out.contains(&format!("Fixing open slot {slot2}")), "{out}");
    clean(&nodes[0]);
}

#[test]
fn import_from_a_standalone_node() {
    let nodes = six_node_cluster();
    let standalone = Server::ferrokv(&["--save", ""]);
    let mut sc = standalone.conn();
    for i in 0..300 {
        sc.send(&["SET", &format!("imported:{i}"), &format!("i{i}")]);
    }
    sc.send(&["RPUSH", "list", "a", "b"]);
    cli_ok(&["cluster", "import", &nodes[0].addr(), "--from", &standalone.addr(), "--copy", "--pipeline", "25"]);
    assert_eq!(sc.send(&["DBSIZE"]), b":301\r\n", "--copy keeps the source's keys");
    let mut c = ClusterClient::new(nodes[0].port());
    for i in 0..300 {
        let k = format!("imported:{i}");
        assert_eq!(c.call(&[b"GET", k.as_bytes()]), Reply::Bulk(Some(format!("i{i}").into_bytes())), "{k}");
    }
    assert_eq!(c.call(&[b"LLEN", b"list"]), Reply::Int(2));
    // Again without --copy or --replace: every key exists already (BUSYKEY), so it fails;
    // with --replace the source is emptied.
    let (ok, _, _) = cli(&["cluster", "import", &nodes[0].addr(), "--from", &standalone.addr()]);
    assert!(!ok, "importing existing keys without --replace must fail");
    cli_ok(&["cluster", "import", &nodes[0].addr(), "--cluster-from", &standalone.addr(), "--cluster-replace"]);
    assert_eq!(sc.send(&["DBSIZE"]), b":0\r\n");
    // A cluster node is not a source.
    let (ok, _, err) = cli(&["cluster", "import", &nodes[0].addr(), "--from", &nodes[1].addr()]);
    assert!(!ok && err.contains("should not be a cluster node"), "{err}");
    clean(&nodes[0]);
}

#[test]
fn failover_swaps_roles() {
    failover_round_trip(Kind::Ferrokv);
}

#[test]
fn failover_swaps_roles_redis() {
    failover_round_trip(Kind::Redis);
}

fn failover_round_trip(kind: Kind) {
    let nodes = six_node_cluster_of(kind);
    let replica = nodes.iter().find(|n| text(n, &["ROLE"]).starts_with("*5") || text(n, &["ROLE"]).contains("slave"));
    let replica = replica.expect("a replica");
    let master_port = match replica.conn().call(&["ROLE"]) {
        Reply::Array(Some(r)) => match &r[2] {
            Reply::Int(p) => *p as u16,
            other => panic!("ROLE port: {other:?}"),
        },
        other => panic!("ROLE: {other:?}"),
    };
    let old = nodes.iter().find(|n| n.port() == master_port).expect("its master");
    wait_until("the replica is in sync", Duration::from_secs(20), || text(replica, &["ROLE"]).contains("connected"));
    // A master is refused.
    let (ok, _, err) = cli(&["cluster", "failover", &old.addr()]);
    assert!(!ok && err.contains("is not a replica"), "{err}");
    let out = cli_ok(&["cluster", "failover", &replica.addr(), "--force"]);
    assert!(out.contains("is now a master"), "{out}");
    assert!(text(replica, &["ROLE"]).contains("master"));
    wait_until("the old master replicates, in sync", Duration::from_secs(30), || {
        let role = text(old, &["ROLE"]);
        role.contains("slave") && role.contains("connected")
    });
    clean(&nodes[0]);
    // And back, with the master's agreement.
    cli_ok(&["cluster", "failover", &old.addr()]);
    wait_until("roles restored", Duration::from_secs(30), || text(replica, &["ROLE"]).contains("slave"));
    clean(old);
}

#[test]
fn reshard_a_redis_server_cluster() {
    let nodes = nodes(Kind::Redis, 3);
    create_masters(&nodes);
    let port = nodes[0].port();
    let mut c = ClusterClient::new(port);
    for n in 0..500 {
        let (k, v) = (format!("k:{n}"), format!("v:{n}"));
        c.call(&[b"SET", k.as_bytes(), v.as_bytes()]);
    }
    let out = cli_ok(&[
        "--cluster",
        "reshard",
        &nodes[0].addr(),
        "--cluster-from",
        &myid(&nodes[0]),
        "--cluster-to",
        &myid(&nodes[2]),
        "--cluster-slots",
        "150",
        "--cluster-yes",
    ]);
    assert!(out.contains("Moving slot"), "{out}");
    clean(&nodes[1]);
    let out = cli_ok(&["cluster", "rebalance", &nodes[0].addr(), "--threshold", "1"]);
    assert!(out.contains("Rebalancing across 3 nodes"), "{out}");
    clean(&nodes[2]);
    let mut c = ClusterClient::new(port);
    for n in 0..500 {
        let k = format!("k:{n}");
        assert_eq!(c.call(&[b"GET", k.as_bytes()]), Reply::Bulk(Some(format!("v:{n}").into_bytes())), "{k}");
    }
}

/// (Legacy MIGRATE, slot by slot: whole-slot migration tasks are canceled as a whole.)
#[test]
fn ctrl_c_during_a_reshard_leaves_no_open_slot() {
    let nodes = six_node_cluster();
    let port = nodes[0].port();
    load_fixed(port);
    let m = masters(&nodes);
    let (a, b) = (m[0], m[1]);
    let slots_a = slots_of(a);
    // Batches of one key: the reshard of every slot of `a` takes a while.
    let child = Command::new(ferrokv_cli())
        .args(["cluster", "reshard", &a.addr(), "--from", &myid(a), "--to", &myid(b)])
        .args(["--slots", &slots_a.to_string(), "--yes", "--pipeline", "1", "--json", "--legacy"])
        .stdout(std::process::Stdio::piped())
        // The plan alone (a line per slot) would fill a pipe nobody reads yet.
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn ferrokv-cli");
    wait_until("some slots moved", Duration::from_secs(30), || slots_of(a) < slots_a - 20);
    // SAFETY: kill(2) takes no pointer; the pid is our own child, not yet reaped.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(rc, 0);
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "an interrupted reshard exits 1:\n{stdout}");
    let summary = parse_json(&stdout);
    assert_eq!(summary.get("interrupted"), &Json::Bool(true));
    let moved = summary.get("slots_moved").num() as usize;
    assert!(moved > 0 && moved < slots_a, "{moved} of {slots_a}");
    assert_eq!(slots_of(a), slots_a - moved);
    for n in &nodes {
        let view = text(n, &["CLUSTER", "NODES"]);
        assert!(!view.contains("->-") && !view.contains("-<-"), "open slot left:\n{view}");
    }
    clean(&nodes[0]);
    check_fixed(port);
}

/// `rebalance --by load`: with slot statistics on, a few hot slots on one master move
/// to the others (not thousands of slots by count), keys intact; without recorded load
/// it says what to enable.
#[test]
fn rebalance_by_load_moves_the_hot_slots() {
    let nodes = nodes(Kind::Ferrokv, 3);
    let mut args = vec!["cluster".to_string(), "create".to_string()];
    args.extend(nodes.iter().map(Server::addr));
    args.extend(["--replicas".to_string(), "0".to_string(), "--yes".to_string()]);
    cli_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    wait_until("cluster_state:ok", Duration::from_secs(20), || nodes.iter().all(state_ok));
    let (ok, _, err) = cli(&["cluster", "rebalance", &nodes[0].addr(), "--by", "load"]);
    assert!(!ok && err.contains("cluster-slot-stats-enabled"), "{err}");
    for n in &nodes {
        assert_eq!(n.conn().call(&["CONFIG", "SET", "cluster-slot-stats-enabled", "yes"]), Reply::Simple("OK".into()));
    }
    // Six hot keys in six slots of the first master (slots 0..5460), many INCRs each;
    // a little traffic everywhere else.
    let hot: Vec<String> = (0..)
        .map(|i| format!("hot:{i}"))
        .filter(|k| key_slot(k.as_bytes()) < 5000)
        .scan(Vec::new(), |seen: &mut Vec<u16>, k| {
            let s = key_slot(k.as_bytes());
            Some(if seen.contains(&s) {
                None
            } else {
                seen.push(s);
                Some(k)
            })
        })
        .flatten()
        .take(6)
        .collect();
    let mut c = ClusterClient::new(nodes[0].port());
    for round in 0..3000 {
        for k in &hot {
            c.call(&[b"INCR", k.as_bytes()]);
        }
        let cold = format!("cold:{round}");
        c.call(&[b"SET", cold.as_bytes(), b"v"]);
    }
    let out = cli_ok(&["cluster", "rebalance", &nodes[0].addr(), "--by", "load", "--threshold", "10"]);
    assert!(out.contains("Rebalancing across 3 nodes"), "{out}");
    clean(&nodes[0]);
    // A few slots move (not thousands by count). The hot master may also get some
    // back: with the hot slots gone it can be the least loaded, and the cold slots'
    // CPU time is noisy on a busy machine.
    let moved: usize =
        out.lines().filter_map(|l| l.strip_prefix("Moved ")?.split(' ').next()?.parse::<usize>().ok()).sum();
    assert!((1..=200).contains(&moved), "{moved} slots moved:\n{out}");
    let moved_away = hot.iter().filter(|k| nodes[0].conn().send(&["GET", k.as_str()]).starts_with(b"-MOVED")).count();
    assert!(moved_away >= 1, "no hot slot moved:\n{out}");
    for k in &hot {
        assert_eq!(c.call(&[b"GET", k.as_bytes()]), Reply::Bulk(Some(b"3000".to_vec())), "{k}");
    }
}
