//! Cluster mode with real tools: `redis-cli --cluster create` and `ferrokv-cli cluster
//! create` build 6-node clusters (3 masters, 3 replicas) that reach `cluster_state:ok`
//! and pass `redis-cli --cluster check`; redis-py's RedisCluster writes and reads back
//! 10,000 keys; redirects and errors as Redis words them; a killed node is flagged
//! `fail` and a restarted one rejoins from its nodes.conf.
//!
//! `FERROKV_TARGET=redis` runs the same tests against redis-server nodes.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ferrokv_tests::resp::show;
use ferrokv_tests::server::target_kind;
use ferrokv_tests::Server;

const NODE_TIMEOUT_MS: &str = "2000";

fn nodes(n: usize) -> Vec<Server> {
    (0..n)
        .map(|_| Server::cluster_node(target_kind(), &["--cluster-node-timeout", NODE_TIMEOUT_MS, "--save", ""]))
        .collect()
}

fn addrs(nodes: &[Server]) -> Vec<String> {
    nodes.iter().map(|n| n.addr()).collect()
}

fn text(nodes: &Server, args: &[&str]) -> String {
    let raw = nodes.conn().send(args);
    String::from_utf8_lossy(&raw).to_string()
}

/// Waits (bounded) until `f` holds.
fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn all_ok(nodes: &[Server]) -> bool {
    nodes.iter().all(|n| text(n, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
}

fn redis_cli(args: &[String]) -> (bool, String) {
    let out = Command::new("redis-cli").args(args).output().expect("redis-cli is installed (deploy/test.sh)");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn create_with_redis_cli(nodes: &[Server]) {
    let mut args = vec!["--cluster".to_string(), "create".to_string()];
    args.extend(addrs(nodes));
    args.extend(["--cluster-replicas", "1", "--cluster-yes"].map(String::from));
    let (ok, out) = redis_cli(&args);
    assert!(ok && out.contains("[OK] All 16384 slots covered."), "redis-cli --cluster create failed:\n{out}");
    wait_until("cluster_state:ok on every node", Duration::from_secs(20), || all_ok(nodes));
}

/// `redis-cli --cluster create` with masters only, then waits for `cluster_state:ok`.
fn create_masters(nodes: &[Server]) {
    let mut args = vec!["--cluster".to_string(), "create".to_string()];
    args.extend(addrs(nodes));
    args.push("--cluster-yes".into());
    let (ok, out) = redis_cli(&args);
    assert!(ok, "redis-cli --cluster create failed:\n{out}");
    wait_until("cluster_state:ok", Duration::from_secs(20), || all_ok(nodes));
}

fn check_with_redis_cli(node: &Server) {
    let (ok, out) = redis_cli(&["--cluster".into(), "check".into(), node.addr()]);
    assert!(ok, "redis-cli --cluster check failed:\n{out}");
    assert!(out.contains("[OK] All nodes agree about slots configuration."), "{out}");
    assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
}

fn ferrokv_cli() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let path = dir.join("ferrokv-cli");
    assert!(path.is_file(), "{} missing: build it with `cargo build --release -p ferrokv-cli`", path.display());
    path
}

#[test]
fn redis_cli_creates_a_six_node_cluster() {
    let nodes = nodes(6);
    create_with_redis_cli(&nodes);
    // redis-cli waits for the slot configuration to agree; full membership follows by gossip.
    wait_until("every node knows 6 nodes and 3 masters with slots", Duration::from_secs(20), || {
        nodes.iter().all(|n| {
            let info = text(n, &["CLUSTER", "INFO"]);
            info.contains("cluster_known_nodes:6") && info.contains("cluster_size:3")
        })
    });
    // Replica roles reach the other nodes by gossip after redis-cli has returned.
    wait_until("3 replicas seen by the first node", Duration::from_secs(20), || {
        text(&nodes[0], &["CLUSTER", "NODES"]).matches("slave").count() == 3
    });
    check_with_redis_cli(&nodes[3]);
}

#[test]
fn ferrokv_cli_creates_a_six_node_cluster() {
    let nodes = nodes(6);
    let mut cmd = Command::new(ferrokv_cli());
    cmd.args(["cluster", "create"]).args(addrs(&nodes)).args(["--replicas", "1", "--yes"]);
    let out = cmd.output().expect("run ferrokv-cli");
    let text_out = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ferrokv-cli cluster create failed:\n{text_out}");
    wait_until("cluster_state:ok on every node", Duration::from_secs(20), || all_ok(&nodes));
    check_with_redis_cli(&nodes[0]);
    let check = Command::new(ferrokv_cli()).args(["cluster", "check", &nodes[1].addr()]).output().expect("check");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}

#[test]
fn redis_py_cluster_client_reads_back_10000_keys() {
    let nodes = nodes(6);
    create_with_redis_cli(&nodes);
    let script = format!(
        r#"
from redis.cluster import RedisCluster
rc = RedisCluster(host="127.0.0.1", port={port})
pipe = rc.pipeline()
for i in range(10000):
    pipe.set(f"key:{{i}}", f"value:{{i}}")
pipe.execute()
got = rc.mget_nonatomic([f"key:{{i}}" for i in range(10000)])
bad = [i for i, v in enumerate(got) if v != f"value:{{i}}".encode()]
assert not bad, f"{{len(bad)}} keys read back wrong, first {{bad[:5]}}"
assert rc.get("key:42") == b"value:42"
print("ok")
"#,
        port = nodes[0].port()
    );
    let out = Command::new("python3").arg("-c").arg(&script).output().expect("python3 with redis-py (deploy/test.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok"),
        "redis-py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total: i64 =
        nodes.iter().map(|n| text(n, &["DBSIZE"]).trim_start_matches(':').trim().parse::<i64>().unwrap_or(0)).sum();
    // Replicas hold no data (no replication yet), so the masters hold every key once.
    assert_eq!(total, 10000);
}

#[test]
fn redis_rs_cluster_client_follows_the_slot_map() {
    let nodes = nodes(3);
    create_masters(&nodes);
    let client = redis::cluster::ClusterClient::new(vec![nodes[0].url()]).expect("cluster client");
    let mut con = client.get_connection().expect("cluster connection");
    use redis::Commands;
    for i in 0..1000 {
        let _: () = con.set(format!("rs:{i}"), i).expect("SET through the cluster client");
    }
    for i in 0..1000 {
        let v: i64 = con.get(format!("rs:{i}")).expect("GET through the cluster client");
        assert_eq!(v, i);
    }
    let per_node: Vec<i64> =
        nodes.iter().map(|n| text(n, &["DBSIZE"]).trim_start_matches(':').trim().parse().unwrap_or(0)).collect();
    assert_eq!(per_node.iter().sum::<i64>(), 1000);
    assert!(per_node.iter().all(|&n| n > 0), "keys on every master: {per_node:?}");
}

#[test]
fn ioredis_cluster_client_reads_back_keys() {
    let nodes = nodes(3);
    create_masters(&nodes);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js").join("cluster.js");
    let out = Command::new("node")
        .arg(&script)
        .arg(nodes[1].port().to_string())
        .arg("1000")
        .output()
        .expect("node is installed, and ioredis in tests/js (deploy/test.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok"),
        "ioredis failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_node_without_slots_reports_them_unserved_then_down() {
    let node = &nodes(1)[0];
    let mut c = node.conn();
    assert_eq!(c.send(&["SET", "a", "1"]), b"-CLUSTERDOWN Hash slot not served\r\n");
    // "a" hashes to 15495: once that slot is ours, the cluster is still down (no coverage).
    assert_eq!(c.send(&["CLUSTER", "ADDSLOTS", "15495"]), b"+OK\r\n");
    assert_eq!(c.send(&["SET", "a", "1"]), b"-CLUSTERDOWN The cluster is down\r\n");
    assert_eq!(c.send(&["SET", "b", "1"]), b"-CLUSTERDOWN Hash slot not served\r\n");
}

#[test]
fn keyslots_redirects_and_errors() {
    let nodes = nodes(3);
    create_masters(&nodes);
    let mut c = nodes[0].conn();
    assert_eq!(c.send(&["CLUSTER", "KEYSLOT", "foo"]), b":12182\r\n");
    assert_eq!(c.send(&["CLUSTER", "KEYSLOT", ""]), b":0\r\n");
    assert_eq!(c.send(&["CLUSTER", "KEYSLOT", "{user1000}.following"]), c.send(&["CLUSTER", "KEYSLOT", "user1000"]));
    assert_eq!(c.send(&["CLUSTER", "KEYSLOT", "foo{}{bar}"]), c.send(&["CLUSTER", "KEYSLOT", "foo{}{bar}"]));
    assert_eq!(c.send(&["CLUSTER", "KEYSLOT", "foo{bar}{zap}"]), c.send(&["CLUSTER", "KEYSLOT", "bar"]));
    // Slot 12182 belongs to the third master (10923-16383) after an even split.
    let owner = &nodes[2];
    let moved = format!("-MOVED 12182 127.0.0.1:{}\r\n", owner.port());
    let reply = c.send(&["GET", "foo"]);
    assert_eq!(reply, moved.as_bytes(), "got {}", show(&reply));
    assert_eq!(owner.conn().send(&["SET", "foo", "bar"]), b"+OK\r\n");
    assert_eq!(owner.conn().send(&["GET", "foo"]), b"$3\r\nbar\r\n");
    assert_eq!(c.send(&["MSET", "a", "1", "b", "2"]), b"-CROSSSLOT Keys in request don't hash to the same slot\r\n");
    assert_eq!(c.send(&["SELECT", "1"]), b"-ERR SELECT is not allowed in cluster mode\r\n");
    let count = owner.conn().send(&["CLUSTER", "COUNTKEYSINSLOT", "12182"]);
    assert_eq!(count, b":1\r\n");
    assert_eq!(owner.conn().send(&["CLUSTER", "GETKEYSINSLOT", "12182", "10"]), b"*1\r\n$3\r\nfoo\r\n");
    // Each of the two peers has a link we opened (`to`) and one it opened (`from`).
    wait_until("two links per peer in CLUSTER LINKS", Duration::from_secs(10), || {
        let links = text(&nodes[0], &["CLUSTER", "LINKS"]);
        links.matches("direction").count() == 4 && links.matches("\r\nto\r\n").count() == 2
    });
}

#[test]
fn killed_node_is_flagged_failed_and_rejoins_after_restart() {
    let mut nodes = nodes(3);
    create_masters(&nodes);
    let id = text(&nodes[1], &["CLUSTER", "MYID"]);
    let id = id.lines().nth(1).unwrap_or("").to_string();
    assert_eq!(id.len(), 40, "node id: {id:?}");
    nodes[1].kill();
    let flagged = |n: &Server| {
        text(n, &["CLUSTER", "NODES"]).lines().any(|l| l.starts_with(&id) && l.contains("fail") && !l.contains("fail?"))
    };
    // A few node timeouts: PFAIL after one, then FAIL once a majority reports it.
    wait_until("the killed node flagged fail", Duration::from_secs(15), || flagged(&nodes[0]) && flagged(&nodes[2]));
    nodes[1].restart();
    let again = text(&nodes[1], &["CLUSTER", "MYID"]);
    assert!(again.contains(&id), "restarted node has a new id: {again} (was {id})");
    wait_until("cluster_state:ok after the restart", Duration::from_secs(20), || all_ok(&nodes));
    wait_until("fail flag cleared", Duration::from_secs(20), || !flagged(&nodes[0]));
    check_with_redis_cli(&nodes[0]);
}
