//! Direct-to-core routing (`core-ports`): each shard of a node listens on a port of its
//! own, and cluster mode advertises, per slot, the endpoint of the core that owns it.
//!
//! Real processes and real clients: a cluster of three masters with two shards each,
//! built by `redis-cli --cluster create`; redis-py's RedisCluster, redis-rs's cluster
//! client and ioredis write and read keys, and each node's INFO shards counters show
//! that every data command ran on the core it arrived at (nothing forwarded). CLUSTER
//! NODES keeps one line per node with the main port, `redis-cli --cluster check` stays
//! clean and `redis-benchmark --cluster` works through the main ports. Redirects name
//! core endpoints: MOVED between the cores of one node, ASK and MOVED during a slot
//! migration; a replica's cores serve READONLY reads. One-shard nodes and nodes without
//! the option advertise their main port, exactly as before.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ferrokv_tests::cluster::{check_clean, create_masters, key_slot, myid, text, wait_until};
use ferrokv_tests::server::free_port;
use ferrokv_tests::{Kind, Reply, Server};

/// A cluster node with two shards, each on its own port; returns it and those ports.
fn two_core_node() -> (Server, [u16; 2]) {
    let ports = [free_port(), free_port()];
    let list = format!("{} {}", ports[0], ports[1]);
    let node = Server::cluster_node(
        Kind::Ferrokv,
        &["--server-threads", "2", "--core-ports", &list, "--cluster-node-timeout", "2000", "--save", ""],
    );
    (node, ports)
}

/// The core that owns `slot` on a two-shard node serving every slot (contiguous
/// halves); also where a node's slots it does not serve start.
fn core_of(slot: u16) -> usize {
    slot as usize * 2 / 16384
}

/// The core of a two-shard node that serves `slot`, the node serving the slots `owner`
/// gives it: its slots in ascending order, cut in two runs of near-equal length
/// (docs/architecture.md, "Spreading a node's slots over its cores").
fn spread_core(owner: &[usize], slot: u16) -> usize {
    let me = owner[slot as usize];
    let n = owner.iter().filter(|&&o| o == me).count();
    let i = owner[..slot as usize].iter().filter(|&&o| o == me).count();
    i * 2 / n
}

/// Slot owners (indexes into `nodes`) from CLUSTER NODES asked of `via`.
fn owners(via: &Server, nodes: &[Server]) -> Vec<usize> {
    let lines = text(via, &["CLUSTER", "NODES"]);
    let mut owner = vec![usize::MAX; 16384];
    for (i, n) in nodes.iter().enumerate() {
        let id = myid(n);
        let line = lines.lines().find(|l| l.starts_with(&id)).expect("a line per node");
        for range in line.split_whitespace().skip(8).filter(|r| !r.starts_with('[')) {
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            owner[a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()].fill(i);
        }
    }
    owner
}

/// CLUSTER SLOT-CORE of every slot of `node` (one pipeline).
fn slot_cores(node: &Server) -> Vec<usize> {
    let s: Vec<String> = (0..16384).map(|s| s.to_string()).collect();
    let cmds: Vec<Vec<&str>> = s.iter().map(|s| vec!["CLUSTER", "SLOT-CORE", s.as_str()]).collect();
    node.conn()
        .pipeline(&cmds)
        .iter()
        .map(|r| String::from_utf8_lossy(r).trim_start_matches(':').trim_end().parse().expect("a core"))
        .collect()
}

/// A key whose slot satisfies `f`.
fn key_where(prefix: &str, f: impl Fn(u16) -> bool) -> String {
    (0..100_000).map(|i| format!("{prefix}{i}")).find(|k| f(key_slot(k.as_bytes()))).expect("such a key")
}

fn int(r: &Reply) -> i64 {
    match r {
        Reply::Int(n) => *n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

/// CLUSTER SLOTS as (start, end, ports of master and replicas).
fn slots(port: u16) -> Vec<(u16, u16, Vec<u16>)> {
    let mut c = ferrokv_tests::Conn::connect(port).expect("connect");
    let Reply::Array(Some(ranges)) = c.call(&["CLUSTER", "SLOTS"]) else { panic!("CLUSTER SLOTS") };
    ranges
        .iter()
        .map(|r| {
            let Reply::Array(Some(r)) = r else { panic!("range {r:?}") };
            let ports = r[2..]
                .iter()
                .map(|n| match n {
                    Reply::Array(Some(n)) => int(&n[1]) as u16,
                    other => panic!("node {other:?}"),
                })
                .collect();
            (int(&r[0]) as u16, int(&r[1]) as u16, ports)
        })
        .collect()
}

/// The master port CLUSTER SHARDS advertises for each slot.
fn shards_ports(port: u16) -> HashMap<u16, u16> {
    let mut c = ferrokv_tests::Conn::connect(port).expect("connect");
    let Reply::Array(Some(shards)) = c.call(&["CLUSTER", "SHARDS"]) else { panic!("CLUSTER SHARDS") };
    let mut out = HashMap::new();
    for s in &shards {
        let Reply::Array(Some(kv)) = s else { panic!("shard {s:?}") };
        let (Reply::Array(Some(ranges)), Reply::Array(Some(nodes))) = (&kv[1], &kv[3]) else { panic!("{kv:?}") };
        let Reply::Array(Some(master)) = &nodes[0] else { panic!("{nodes:?}") };
        let p = master.iter().position(|f| matches!(f, Reply::Bulk(Some(b)) if b == b"port")).expect("port");
        let port = int(&master[p + 1]) as u16;
        for pair in ranges.chunks(2) {
            for slot in int(&pair[0])..=int(&pair[1]) {
                assert!(out.insert(slot as u16, port).is_none(), "slot {slot} in two shards");
            }
        }
    }
    out
}

/// INFO shards: one map of counters per shard.
fn shard_stats(node: &Server) -> Vec<HashMap<String, u64>> {
    let info = text(node, &["INFO", "shards"]);
    info.lines()
        .filter(|l| l.starts_with("shard"))
        .map(|l| {
            let (_, fields) = l.split_once(':').expect("shardN:fields");
            fields
                .split(',')
                .filter_map(|f| f.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim().parse().expect("a number")))
                .collect()
        })
        .collect()
}

/// Counter `what` of every shard of every node, `after` minus `before`.
fn delta(before: &[Vec<HashMap<String, u64>>], after: &[Vec<HashMap<String, u64>>], what: &str) -> Vec<Vec<u64>> {
    before.iter().zip(after).map(|(b, a)| b.iter().zip(a).map(|(b, a)| a[what] - b[what]).collect()).collect()
}

fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn cluster_clients_reach_the_owning_core() {
    let (nodes, cores): (Vec<Server>, Vec<[u16; 2]>) = (0..3).map(|_| two_core_node()).unzip();
    create_masters(&nodes);
    // Who owns each slot, from CLUSTER NODES (one line per node, main ports).
    let lines = text(&nodes[0], &["CLUSTER", "NODES"]);
    assert_eq!(lines.lines().filter(|l| l.contains(":")).count(), 3, "{lines}");
    for n in &nodes {
        let id = myid(n);
        let line = lines.lines().find(|l| l.contains(&id)).expect("a line per node");
        assert!(line.contains(&format!(" 127.0.0.1:{}@", n.port())), "main port in CLUSTER NODES: {line}");
    }
    let owner = owners(&nodes[0], &nodes);
    // Each node serves its slots from both cores (spread), advertised as such.
    let expected = |slot: u16| cores[owner[slot as usize]][spread_core(&owner, slot)];
    // Every node advertises every slot at its owning core, in CLUSTER SLOTS and SHARDS.
    wait_until("every node advertises the core endpoints", Duration::from_secs(10), || {
        nodes.iter().all(|n| {
            slots(n.port()).iter().all(|(a, b, p)| (*a..=*b).all(|s| p[0] == expected(s)))
                && shards_ports(n.port()).iter().all(|(s, p)| *p == expected(*s))
        })
    });
    let ranges = slots(nodes[1].port());
    assert_eq!(ranges.len(), 6, "every node's slots split by core: {ranges:?}");
    assert_eq!(shards_ports(nodes[2].port()).len(), 16384);

    // Redirects between the cores of one node; the main port serves every slot.
    let (n1, n1c) = (&nodes[owner[9000]], cores[owner[9000]]);
    let key = key_where("m:", |s| owner[s as usize] == owner[9000] && spread_core(&owner, s) == 1);
    let slot = key_slot(key.as_bytes());
    let moved = format!("-MOVED {slot} 127.0.0.1:{}\r\n", n1c[1]);
    let mut c0 = ferrokv_tests::Conn::connect(n1c[0]).expect("core 0's port");
    assert_eq!(String::from_utf8_lossy(&c0.send(&["SET", &key, "v"])), moved);
    let mut c1 = ferrokv_tests::Conn::connect(n1c[1]).expect("core 1's port");
    assert_eq!(c1.send(&["SET", &key, "v"]), b"+OK\r\n");
    assert_eq!(n1.conn().send(&["GET", &key]), b"$1\r\nv\r\n");
    let other = nodes.iter().position(|n| n.port() != n1.port()).expect("another node");
    let mut elsewhere = nodes[other].conn();
    assert_eq!(String::from_utf8_lossy(&elsewhere.send(&["GET", &key])), moved);

    // Three cluster clients build their maps from CLUSTER SLOTS and send each command
    // straight to the owning core: nothing is forwarded.
    let before: Vec<_> = nodes.iter().map(shard_stats).collect();
    let py = format!(
        r#"
from redis.cluster import RedisCluster
rc = RedisCluster(host="127.0.0.1", port={port})
for i in range(1500):
    rc.set(f"py:{{i}}", i)
for i in range(1500):
    assert rc.get(f"py:{{i}}") == str(i).encode(), i
print("ok")
"#,
        port = nodes[0].port()
    );
    run_ok(Command::new("python3").arg("-c").arg(&py), "redis-py RedisCluster");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js").join("cluster.js");
    let out = run_ok(Command::new("node").arg(&script).arg(nodes[2].port().to_string()).arg("1000"), "ioredis");
    assert!(out.contains("ok"), "{out}");
    let client = redis::cluster::ClusterClient::new(vec![nodes[1].url()]).expect("redis-rs cluster client");
    let mut con = client.get_connection().expect("redis-rs cluster connection");
    use redis::Commands;
    for i in 0..500 {
        let _: () = con.set(format!("rs:{i}"), i).expect("SET");
    }
    for i in 0..500 {
        let v: i64 = con.get(format!("rs:{i}")).expect("GET");
        assert_eq!(v, i);
    }
    drop(con);
    let after: Vec<_> = nodes.iter().map(shard_stats).collect();
    let forwarded = delta(&before, &after, "forwarded");
    let locked = delta(&before, &after, "locked");
    let multi = delta(&before, &after, "multi");
    let local = delta(&before, &after, "local");
    let on_core_ports = delta(&before, &after, "core_port_commands");
    assert!(forwarded.iter().flatten().all(|&n| n == 0), "forwarded: {forwarded:?}");
    assert!(locked.iter().flatten().all(|&n| n == 0), "run under another core's lock: {locked:?}");
    assert!(multi.iter().flatten().all(|&n| n == 0), "multi-shard: {multi:?}");
    let total: u64 = local.iter().flatten().sum();
    assert!(total >= 3000 + 2003 + 1000, "data commands run where they arrived: {local:?}");
    assert!(on_core_ports.iter().flatten().sum::<u64>() >= total, "{on_core_ports:?} vs {local:?}");
    // Each core that owns slots got its share.
    for (i, per_shard) in local.iter().enumerate() {
        for (core, &n) in per_shard.iter().enumerate() {
            assert!(n > 0, "node {i} core {core} serves slots: {local:?}");
        }
    }

    check_clean(&nodes[0]);
    // A CLUSTER NODES client (redis-benchmark) uses the main ports; they forward.
    let port = nodes[0].port().to_string();
    let args = ["--cluster", "-h", "127.0.0.1", "-p", &port, "-t", "set,get", "-n", "3000", "-c", "8", "-q"];
    let out = run_ok(Command::new("redis-benchmark").args(args), "redis-benchmark --cluster");
    assert!(out.contains("GET:") && out.contains("requests per second"), "{out}");

    // A slot migration: ASK and MOVED name the target's core for the slot.
    let source = owner[slot as usize];
    let target = (source + 1) % 3;
    let (sid, tid) = (myid(&nodes[source]), myid(&nodes[target]));
    let mut t = nodes[target].conn();
    let s = slot.to_string();
    assert_eq!(t.send(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &sid]), b"+OK\r\n");
    assert_eq!(nodes[source].conn().send(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &tid]), b"+OK\r\n");
    let absent = key_where("absent:", |x| x == slot);
    let ask = format!("-ASK {slot} 127.0.0.1:{}\r\n", cores[target][core_of(slot)]);
    assert_eq!(String::from_utf8_lossy(&c1.send(&["GET", &absent])), ask);
    assert_eq!(String::from_utf8_lossy(&nodes[source].conn().send(&["GET", &absent])), ask);
    let mut at = ferrokv_tests::Conn::connect(cores[target][core_of(slot)]).expect("target core");
    let r = at.pipeline(&[vec!["ASKING"], vec!["GET", &absent]]);
    assert_eq!(r[1], b"$-1\r\n");
    // Move the one key, then hand the slot over.
    let mig = nodes[source].conn().send(&[
        "MIGRATE",
        "127.0.0.1",
        &nodes[target].port().to_string(),
        "",
        "0",
        "5000",
        "KEYS",
        &key,
    ]);
    assert_eq!(mig, b"+OK\r\n");
    for n in [&nodes[target], &nodes[source]] {
        assert_eq!(n.conn().send(&["CLUSTER", "SETSLOT", &s, "NODE", &tid]), b"+OK\r\n");
    }
    // The target serves one more slot: its slots are spread again, the new one included.
    let mut owner = owner;
    owner[slot as usize] = target;
    let tcore = cores[target][spread_core(&owner, slot)];
    let moved = format!("-MOVED {slot} 127.0.0.1:{tcore}\r\n");
    wait_until("every node redirects the moved slot to the target's core", Duration::from_secs(10), || {
        nodes
            .iter()
            .filter(|n| n.port() != nodes[target].port())
            .all(|n| n.conn().send(&["GET", &key]) == moved.as_bytes())
    });
    assert_eq!(String::from_utf8_lossy(&c1.send(&["GET", &key])), moved);
    let mut at = ferrokv_tests::Conn::connect(tcore).expect("target core");
    assert_eq!(at.send(&["GET", &key]), b"$1\r\nv\r\n");
    wait_until("every node advertises the moved slot at the target's core", Duration::from_secs(10), || {
        nodes.iter().all(|n| slots(n.port()).iter().any(|(a, b, p)| (*a..=*b).contains(&slot) && p[0] == tcore))
    });
    check_clean(&nodes[1]);
}

#[test]
fn a_replica_serves_readonly_reads_on_its_cores() {
    let (master, mc) = two_core_node();
    let (replica, rc) = two_core_node();
    let mut m = master.conn();
    assert_eq!(m.send(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]), b"+OK\r\n");
    wait_until("cluster_state:ok", Duration::from_secs(10), || ferrokv_tests::cluster::state_ok(&master));
    let mp = master.port().to_string();
    assert_eq!(replica.conn().send(&["CLUSTER", "MEET", "127.0.0.1", &mp]), b"+OK\r\n");
    let mid = myid(&master);
    wait_until("the replica knows the master", Duration::from_secs(10), || {
        text(&replica, &["CLUSTER", "NODES"]).contains(&mid)
    });
    assert_eq!(replica.conn().send(&["CLUSTER", "REPLICATE", &mid]), b"+OK\r\n");
    let (k0, k1) = (key_where("r:", |s| core_of(s) == 0), key_where("r:", |s| core_of(s) == 1));
    assert_eq!(m.send(&["SET", &k0, "zero"]), b"+OK\r\n");
    assert_eq!(m.send(&["SET", &k1, "one"]), b"+OK\r\n");
    // Both sides list the master's and the replica's core for each half.
    let want = vec![(0, 8191, vec![mc[0], rc[0]]), (8192, 16383, vec![mc[1], rc[1]])];
    wait_until("CLUSTER SLOTS with the replica's cores", Duration::from_secs(20), || {
        slots(master.port()) == want && slots(replica.port()) == want
    });
    wait_until("the replica has the keys", Duration::from_secs(10), || {
        let r = replica.conn().pipeline(&[vec!["READONLY"], vec!["GET", &k1]]);
        r[1] == b"$3\r\none\r\n"
    });
    let mut c = ferrokv_tests::Conn::connect(rc[1]).expect("the replica's core 1");
    let (s0, s1) = (key_slot(k0.as_bytes()), key_slot(k1.as_bytes()));
    // Without READONLY: to the master's core.
    assert_eq!(String::from_utf8_lossy(&c.send(&["GET", &k1])), format!("-MOVED {s1} 127.0.0.1:{}\r\n", mc[1]));
    let before = shard_stats(&replica);
    assert_eq!(c.send(&["READONLY"]), b"+OK\r\n");
    assert_eq!(c.send(&["GET", &k1]), b"$3\r\none\r\n");
    // A replica never sends MOVED to one of its own cores (a client would take it for the
    // master): a slot of its other core is served there (`shard-hop`: under that core's
    // lock, or forwarded).
    assert_eq!(c.send(&["GET", &k0]), b"$4\r\nzero\r\n");
    let after = shard_stats(&replica);
    let d = |s: usize, what: &str| after[s][what] - before[s][what];
    assert_eq!(d(1, "local"), 1, "{after:?}");
    assert_eq!(d(1, "forwarded") + d(1, "locked"), 1, "{after:?}");
    assert_eq!(d(0, "received"), d(1, "forwarded"), "{after:?}");
    // Writes on the replica's core go to the master's core.
    assert_eq!(String::from_utf8_lossy(&c.send(&["SET", &k0, "x"])), format!("-MOVED {s0} 127.0.0.1:{}\r\n", mc[0]));
}

#[test]
fn one_core_nodes_and_nodes_without_core_ports_advertise_the_main_port() {
    let plain = Server::cluster_node(Kind::Ferrokv, &["--server-threads", "2", "--save", ""]);
    let lone = free_port();
    let one = Server::cluster_node(
        Kind::Ferrokv,
        &["--server-threads", "1", "--core-ports", &lone.to_string(), "--save", ""],
    );
    for n in [&plain, &one] {
        assert_eq!(n.conn().send(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]), b"+OK\r\n");
        wait_until("cluster_state:ok", Duration::from_secs(10), || ferrokv_tests::cluster::state_ok(n));
        assert_eq!(slots(n.port()), vec![(0, 16383, vec![n.port()])]);
        let shards = shards_ports(n.port());
        assert!(shards.values().all(|&p| p == n.port()));
        let key = "anything";
        assert_eq!(n.conn().send(&["SET", key, "1"]), b"+OK\r\n");
    }
    // One shard: the main port is that core's; no second listener.
    assert!(ferrokv_tests::Conn::connect(lone).is_err(), "a one-shard node opened its core port");
    assert!(text(&one, &["INFO", "shards"]).contains("shard0:core_port=0,"));
}

#[test]
fn bad_core_ports_stop_start_up() {
    for (args, words) in [
        (vec!["--server-threads", "2", "--core-ports", "7001 7002 7003"], "3 ports given for 2 shard threads"),
        (vec!["--server-threads", "2", "--core-ports", "7001 x"], "'x' is not a port number"),
        (vec!["--server-threads", "2", "--core-ports", "7001 7001"], "port 7001 is given twice"),
        (
            vec!["--server-threads", "2", "--cluster-announce-core-ports", "7001"],
            "cluster-announce-core-ports needs core-ports",
        ),
    ] {
        let (status, out) = Server::run_to_exit(Kind::Ferrokv, &args, Duration::from_secs(10));
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{args:?}: {out}");
        assert!(out.contains(words), "{args:?}: {out}");
    }
}

/// A key of tag `{tag}` for slot checks: the tag's slot.
fn tag_slot(tag: &str) -> u16 {
    key_slot(format!("{{{tag}}}").as_bytes())
}

/// Hands `slot` to `core` with CLUSTER SLOT-CORE.
fn hand(c: &mut ferrokv_tests::Conn, slot: u16, core: usize) {
    let (s, k) = (slot.to_string(), core.to_string());
    assert_eq!(c.send(&["CLUSTER", "SLOT-CORE", &s, &k]), b"+OK\r\n");
    assert_eq!(c.call(&["CLUSTER", "SLOT-CORE", &s]), Reply::Int(core as i64));
}

/// Hot slots between cores, by hand: a slot handed back and forth between the two
/// shards of a standalone node while clients pipeline writes to it (through either
/// shard, hop by lock and by forwarding), hold a WATCH on one of its keys, and block
/// in BLPOP on another. Nothing is lost or reordered, the watch still sees (only) real
/// changes, the blocked client is served from the slot's new shard, and the AOF,
/// written across the handoffs, loads back to the same keyspace.
#[test]
fn a_slot_handed_between_cores_keeps_writes_watches_and_blocked_clients() {
    let mut node = ferrokv_tests::Server::ferrokv(&["--server-threads", "2", "--appendonly", "yes", "--save", ""]);
    let slot = tag_slot("hot");
    let mut admin = node.conn();
    let first = int(&admin.call(&["CLUSTER", "SLOT-CORE", &slot.to_string()])) as usize;
    // Bad input: an honest error each.
    assert!(admin.send(&["CLUSTER", "SLOT-CORE", "16384", "0"]).starts_with(b"-ERR Invalid"));
    assert!(admin.send(&["CLUSTER", "SLOT-CORE", &slot.to_string(), "2"]).starts_with(b"-ERR Invalid core"));
    assert!(admin.send(&["CLUSTER", "SLOT-CORE", &slot.to_string(), "x"]).starts_with(b"-ERR Invalid core"));
    assert_eq!(admin.send(&["MULTI"]), b"+OK\r\n");
    assert!(admin.send(&["CLUSTER", "SLOT-CORE", &slot.to_string(), "0"]).starts_with(b"-ERR Command not allowed"));
    assert_eq!(admin.send(&["DISCARD"]), b"+OK\r\n");

    for c in 0..4 {
        assert_eq!(admin.send(&["SET", &format!("{{hot}}k{c}"), "v"]), b"+OK\r\n");
        assert_eq!(admin.send(&["RPUSH", &format!("{{hot}}big{c}"), "a", "b", "c"]), b":3\r\n");
    }
    let mut watcher = node.conn();
    assert_eq!(watcher.send(&["WATCH", "{hot}w"]), b"+OK\r\n");
    let mut blocked = node.conn();
    blocked.write_raw(b"*3\r\n$5\r\nBLPOP\r\n$9\r\n{hot}list\r\n$1\r\n0\r\n").expect("BLPOP");
    // Until the node has registered the blocked client.
    wait_until("the client blocks", Duration::from_secs(10), || {
        text(&node, &["INFO", "clients"]).contains("blocked_clients:1")
    });

    const WRITERS: usize = 4;
    const ROUNDS: usize = 40;
    const PIPE: usize = 20;
    for (round, mode) in ["lock", "forward"].into_iter().enumerate() {
        let start = (round * ROUNDS * PIPE / 2) as i64;
        assert_eq!(admin.send(&["CONFIG", "SET", "shard-hop", mode]), b"+OK\r\n");
        let port = node.port();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                std::thread::spawn(move || {
                    let mut c = ferrokv_tests::Conn::connect(port).expect("connect");
                    let key = format!("{{hot}}n{w}");
                    let mut last = start;
                    for _ in 0..ROUNDS {
                        let cmds: Vec<Vec<&str>> = (0..PIPE)
                            .map(|i| if i % 2 == 0 { vec!["INCR", &key] } else { vec!["GET", &key] })
                            .collect();
                        for (i, r) in c.pipeline(&cmds).iter().enumerate() {
                            let r = String::from_utf8_lossy(r);
                            // INCR answers one more than before, GET what INCR answered:
                            // the connection's own order holds through every handoff.
                            let n: i64 = if i % 2 == 0 {
                                r.trim_start_matches(':').trim().parse().expect("INCR's integer")
                            } else {
                                r.lines().nth(1).expect("GET's bulk").parse().expect("a number")
                            };
                            if i % 2 == 0 {
                                assert_eq!(n, last + 1, "INCR out of order ({mode})");
                                last = n;
                            } else {
                                assert_eq!(n, last, "GET out of order ({mode})");
                            }
                        }
                    }
                    last
                })
            })
            .collect();
        let mut core = first;
        let mut moves = 0;
        while writers.iter().any(|w| !w.is_finished()) || moves < 2 {
            core = 1 - core;
            hand(&mut admin, slot, core);
            moves += 1;
        }
        for w in writers {
            assert_eq!(w.join().expect("writer"), start + (ROUNDS * PIPE / 2) as i64);
        }
    }
    let total = (2 * ROUNDS * PIPE / 2).to_string();
    for w in 0..WRITERS {
        assert_eq!(admin.call(&["GET", &format!("{{hot}}n{w}")]), Reply::Bulk(Some(total.clone().into_bytes())));
    }
    for c in 0..4 {
        assert_eq!(admin.call(&["LLEN", &format!("{{hot}}big{c}")]), Reply::Int(3));
    }
    // The watch moved with its key: nothing changed it, so EXEC runs...
    assert_eq!(watcher.send(&["MULTI"]), b"+OK\r\n");
    assert_eq!(watcher.send(&["SET", "{hot}w", "mine"]), b"+QUEUED\r\n");
    assert_eq!(watcher.send(&["EXEC"]), b"*1\r\n+OK\r\n");
    // ...and a change on the slot's new shard aborts the next transaction.
    assert_eq!(watcher.send(&["WATCH", "{hot}w"]), b"+OK\r\n");
    let now = int(&admin.call(&["CLUSTER", "SLOT-CORE", &slot.to_string()])) as usize;
    hand(&mut admin, slot, 1 - now);
    assert_eq!(admin.send(&["SET", "{hot}w", "theirs"]), b"+OK\r\n");
    assert_eq!(watcher.send(&["MULTI"]), b"+OK\r\n");
    assert_eq!(watcher.send(&["SET", "{hot}w", "mine"]), b"+QUEUED\r\n");
    assert_eq!(watcher.send(&["EXEC"]), b"*-1\r\n");
    // The blocked client waits on the slot's new shard and is served from there.
    assert_eq!(admin.send(&["RPUSH", "{hot}list", "x"]), b":1\r\n");
    assert_eq!(blocked.read_reply().expect("BLPOP's reply"), b"*2\r\n$9\r\n{hot}list\r\n$1\r\nx\r\n");
    let stats = shard_stats(&node);
    let moved: u64 = stats.iter().map(|s| s["handoffs_in"]).sum();
    assert!(moved >= 5, "{stats:?}");
    assert_eq!(stats.iter().map(|s| s["slots"]).sum::<u64>(), 16384);
    let dbsize = admin.call(&["DBSIZE"]);
    // The AOF has every write in order across the handoffs: it loads back the same.
    let before: Vec<Reply> = (0..WRITERS).map(|w| admin.call(&["GET", &format!("{{hot}}n{w}")])).collect();
    drop((admin, watcher, blocked));
    // A clean shutdown (the AOF is written through), then the same command again.
    node.stop();
    node.restart();
    let mut c = node.conn();
    assert_eq!(c.call(&["DBSIZE"]), dbsize);
    let after: Vec<Reply> = (0..WRITERS).map(|w| c.call(&["GET", &format!("{{hot}}n{w}")])).collect();
    assert_eq!(after, before);
    assert_eq!(c.call(&["GET", "{hot}w"]), Reply::Bulk(Some(b"theirs".to_vec())));
}

/// In cluster mode a handed slot is advertised at its new core: the old core's port
/// answers MOVED to the new one at once (from the node's own table), CLUSTER SLOTS and
/// SHARDS follow, and a cluster client that follows the MOVED keeps working.
#[test]
fn a_cluster_client_follows_a_slot_to_its_new_core() {
    let (node, ports) = two_core_node();
    let mut admin = node.conn();
    assert_eq!(admin.send(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]), b"+OK\r\n");
    wait_until("cluster_state:ok", Duration::from_secs(10), || ferrokv_tests::cluster::state_ok(&node));
    let key = key_where("m:", |s| core_of(s) == 0);
    let slot = key_slot(key.as_bytes());
    let mut client = ferrokv_tests::cluster::ClusterClient::new(node.port());
    assert_eq!(client.call(&[b"SET", key.as_bytes(), b"v1"]), Reply::Simple(b"OK".to_vec()));
    assert_eq!(client.moved, 0);
    hand(&mut admin, slot, 1);
    let mut old = ferrokv_tests::Conn::connect(ports[0]).expect("core 0");
    // (A node alone has not learnt its address from a peer: Redis then names none.)
    let moved = String::from_utf8_lossy(&old.send(&["GET", &key])).into_owned();
    assert!(moved.starts_with(&format!("-MOVED {slot} ")) && moved.ends_with(&format!(":{}\r\n", ports[1])), "{moved}");
    assert_eq!(client.call(&[b"GET", key.as_bytes()]), Reply::Bulk(Some(b"v1".to_vec())));
    assert_eq!(client.moved, 1);
    // CLUSTER SLOTS and SHARDS follow with the bus's next tick.
    wait_until("CLUSTER SLOTS names the new core", Duration::from_secs(10), || {
        slots(node.port()).iter().any(|(a, b, p)| *a <= slot && slot <= *b && p[0] == ports[1])
    });
    assert_eq!(shards_ports(node.port())[&slot], ports[1]);
    let mut fresh = ferrokv_tests::cluster::ClusterClient::new(node.port());
    assert_eq!(fresh.call(&[b"SET", key.as_bytes(), b"v2"]), Reply::Simple(b"OK".to_vec()));
    assert_eq!(fresh.moved, 0);
    // The main port still serves it.
    assert_eq!(admin.call(&["GET", &key]), Reply::Bulk(Some(b"v2".to_vec())));
    check_clean(&node);
}

/// A node spreads the slots it serves over its cores, as they change: after `redis-cli
/// --cluster create` each of three two-core masters serves its third of the slots from
/// both cores (INFO shards, CLUSTER SLOT-CORE, as the model says); a reshard moves slots
/// with keys, and the nodes that gained or lost slots spread again without losing a key;
/// a replica spreads its master's slots. redis-cli sees a clean cluster throughout.
#[test]
fn each_node_spreads_its_slots_over_its_cores() {
    let (mut nodes, cores): (Vec<Server>, Vec<[u16; 2]>) = (0..3).map(|_| two_core_node()).unzip();
    create_masters(&nodes);
    let spread_as_modelled = |nodes: &[Server], owner: &[usize], first: usize| {
        nodes.iter().enumerate().skip(first).all(|(i, n)| {
            let stats = shard_stats(n);
            let served: Vec<u64> = stats.iter().map(|s| s["slots"]).collect();
            let mine = owner.iter().filter(|&&o| o == i).count() as u64;
            let table = slot_cores(n);
            served.iter().all(|&s| s > 0)
                && served.iter().sum::<u64>() == mine
                && served[0].abs_diff(served[1]) <= 1
                && (0..16384u16).filter(|&s| owner[s as usize] == i).all(|s| table[s as usize] == spread_core(owner, s))
        })
    };
    let owner = owners(&nodes[0], &nodes);
    wait_until("every node serves its slots from both cores", Duration::from_secs(20), || {
        spread_as_modelled(&nodes, &owner, 0)
    });
    // Keys everywhere, through a cluster client (it follows the core endpoints).
    let mut client = ferrokv_tests::cluster::ClusterClient::new(nodes[0].port());
    for i in 0..3000 {
        let k = format!("spread:{i}");
        assert_eq!(client.call(&[b"SET", k.as_bytes(), b"v"]), Reply::Simple(b"OK".to_vec()));
    }
    check_clean(&nodes[0]);

    // A reshard with keys: 2000 slots from the first node to the third.
    let (from, to) = (myid(&nodes[0]), myid(&nodes[2]));
    let addr = nodes[1].addr();
    let args = [
        "--cluster",
        "reshard",
        addr.as_str(),
        "--cluster-from",
        from.as_str(),
        "--cluster-to",
        to.as_str(),
        "--cluster-slots",
        "2000",
        "--cluster-yes",
    ];
    let (ok, out) = ferrokv_tests::cluster::redis_cli(&args);
    assert!(ok, "redis-cli --cluster reshard failed:\n{out}");
    let owner = owners(&nodes[1], &nodes);
    assert_eq!(owner.iter().filter(|&&o| o == 2).count(), 5461 + 2000, "the reshard moved 2000 slots");
    wait_until("the nodes spread their new slots", Duration::from_secs(20), || spread_as_modelled(&nodes, &owner, 0));
    let moved_in: u64 = shard_stats(&nodes[2]).iter().map(|s| s["handoffs_in"]).sum();
    assert!(moved_in > 0, "the third node handed slots between its cores");
    let mut client = ferrokv_tests::cluster::ClusterClient::new(nodes[1].port());
    for i in 0..3000 {
        let k = format!("spread:{i}");
        assert_eq!(client.call(&[b"GET", k.as_bytes()]), Reply::Bulk(Some(b"v".to_vec())), "{k}");
    }
    check_clean(&nodes[1]);

    // A replica of the third node spreads its master's slots the same way.
    let (replica, rc) = two_core_node();
    let tp = nodes[2].port().to_string();
    assert_eq!(replica.conn().send(&["CLUSTER", "MEET", "127.0.0.1", &tp]), b"+OK\r\n");
    wait_until("the replica knows the cluster", Duration::from_secs(10), || {
        text(&replica, &["CLUSTER", "NODES"]).contains(&to)
    });
    assert_eq!(replica.conn().send(&["CLUSTER", "REPLICATE", &to]), b"+OK\r\n");
    let mut all = std::mem::take(&mut nodes);
    all.push(replica);
    let mut owner_r = owner.clone();
    for o in owner_r.iter_mut().filter(|o| **o == 2) {
        *o = 3;
    }
    wait_until("the replica serves its master's slots from both cores", Duration::from_secs(20), || {
        spread_as_modelled(&all, &owner_r, 3)
    });
    // Its CLUSTER SLOTS lists, for each of the master's ranges, the replica's core too.
    let want = cores[2][spread_core(&owner, 16383)];
    let want_r = rc[spread_core(&owner, 16383)];
    wait_until("CLUSTER SLOTS names the replica's cores", Duration::from_secs(20), || {
        slots(all[0].port()).iter().any(|(a, b, p)| (*a..=*b).contains(&16383) && p[..] == [want, want_r])
    });
    check_clean(&all[0]);
}

/// nodes.conf keeps every node's core endpoints, its peers' included, and is saved when
/// they change: a node restarted while its peers are down advertises their cores (a
/// slot handed between cores after the cluster settled included) and its own in
/// CLUSTER SLOTS before any of them has sent a header.
#[test]
fn a_restarted_node_advertises_its_peers_cores_from_nodes_conf() {
    let (mut nodes, cores): (Vec<Server>, Vec<[u16; 2]>) = (0..3).map(|_| two_core_node()).unzip();
    create_masters(&nodes);
    let owner = owners(&nodes[0], &nodes);
    // The cluster settles first; then the third node hands its first slot to its other
    // core, which only its headers tell the others (nothing else changes to save).
    let spread = |slot: u16| cores[owner[slot as usize]][spread_core(&owner, slot)];
    let advertised_as =
        |n: &Server, f: &dyn Fn(u16) -> u16| slots(n.port()).iter().all(|(a, b, p)| (*a..=*b).all(|s| p[0] == f(s)));
    wait_until("the first node advertises every core", Duration::from_secs(20), || advertised_as(&nodes[0], &spread));
    let handed = (0..16384u16).find(|&s| owner[s as usize] == 2).expect("the third node serves slots");
    let mut admin = nodes[2].conn();
    assert_eq!(admin.send(&["CLUSTER", "SLOT-CORE", &handed.to_string(), "1"]), b"+OK\r\n");
    let expected = |slot: u16| if slot == handed { cores[2][1] } else { spread(slot) };
    let advertised = |n: &Server| advertised_as(n, &expected);
    wait_until("the first node advertises the handed slot", Duration::from_secs(20), || advertised(&nodes[0]));
    // What the third node advertises, as nodes.conf writes it (`last slot:core` runs of
    // its whole table: the slots it serves split in two, the others in halves).
    let mut runs: Vec<(u16, usize)> = Vec::new();
    for slot in 0..16384u16 {
        let core = if slot == handed {
            1
        } else if owner[slot as usize] == 2 {
            spread_core(&owner, slot)
        } else {
            core_of(slot)
        };
        match runs.last_mut() {
            Some((last, c)) if *c == core => *last = slot,
            _ => runs.push((slot, core)),
        }
    }
    let runs: Vec<String> = runs.iter().map(|(last, c)| format!("{last}:{c}")).collect();
    let third = format!("cores:{} {},{}/{}", myid(&nodes[2]), cores[2][0], cores[2][1], runs.join(","));
    let conf = nodes[0].dir().join("nodes.conf");
    wait_until("nodes.conf keeps the third node's cores", Duration::from_secs(20), || {
        std::fs::read_to_string(&conf).is_ok_and(|t| t.contains(&third))
    });
    nodes[1].kill();
    nodes[2].kill();
    nodes[0].restart();
    // No peer is up to send a header: what CLUSTER SLOTS says comes from nodes.conf.
    assert!(advertised(&nodes[0]), "after a restart: {:?}", slots(nodes[0].port()));
    let mine = owner.iter().filter(|&&o| o == 0).count() as u64;
    let served: Vec<u64> = shard_stats(&nodes[0]).iter().map(|s| s["slots"]).collect();
    assert_eq!(served, vec![mine - mine / 2, mine / 2]);
}

/// A manual `CLUSTER SLOT-CORE` held off by something that ends by itself (here a
/// BGSAVE: a snapshot walks each shard's slots, so no slot may move while it runs)
/// waits for it instead of answering an error: pipelined right behind BGSAVE, in the
/// same read (the snapshot of the connection's shard cannot have progressed), it
/// answers OK once the save is done and the slot is on its new core; the connection's
/// later commands wait for it, and other clients are served meanwhile.
#[test]
fn a_manual_handoff_waits_for_a_running_snapshot() {
    let node = ferrokv_tests::Server::ferrokv(&["--server-threads", "2", "--save", ""]);
    let mut admin = node.conn();
    for batch in 0..20 {
        let mut mset = vec!["MSET".to_string()];
        for i in 0..1000 {
            mset.push(format!("fill:{batch}:{i}"));
            mset.push("v".into());
        }
        assert_eq!(admin.send(&mset), b"+OK\r\n");
    }
    let slot = tag_slot("wait");
    let s = slot.to_string();
    assert_eq!(admin.send(&["SET", "{wait}k", "v"]), b"+OK\r\n");
    let to = 1 - int(&admin.call(&["CLUSTER", "SLOT-CORE", &s])) as usize;
    let t = to.to_string();
    let replies = admin.pipeline(&[
        vec!["BGSAVE"],
        vec!["CLUSTER", "SLOT-CORE", &s, &t],
        vec!["CLUSTER", "SLOT-CORE", &s],
        vec!["GET", "{wait}k"],
    ]);
    assert_eq!(replies[0], b"+Background saving started\r\n");
    assert_eq!(replies[1], b"+OK\r\n", "{}", String::from_utf8_lossy(&replies[1]));
    assert_eq!(replies[2], format!(":{to}\r\n").into_bytes(), "the next command saw the slot moved");
    assert_eq!(replies[3], b"$1\r\nv\r\n");
    assert!(text(&node, &["INFO", "persistence"]).contains("rdb_last_bgsave_status:ok"));
    assert_eq!(int(&node.conn().call(&["DBSIZE"])), 20001);
}

/// Spreading keeps the balancer's placement: with `shard-balance yes`, a slot handed
/// to the other core stays there when the node's served slots change (ADDSLOTS of
/// more slots), and only the new slots are placed, on their run's core. (Before,
/// every change of the served set put every slot back on its run.)
#[test]
fn spreading_leaves_slots_that_stay_served_where_they_are() {
    let (node, _) = two_core_node();
    let mut admin = node.conn();
    assert_eq!(admin.send(&["CONFIG", "SET", "shard-balance", "yes"]), b"+OK\r\n");
    // Half the slots (the cluster is down: the other half is served by no one).
    assert_eq!(admin.send(&["CLUSTER", "ADDSLOTSRANGE", "0", "8191"]), b"+OK\r\n");
    // Spread: 0..=4095 on core 0, 4096..=8191 on core 1.
    wait_until("the slots are spread", Duration::from_secs(10), || {
        let t = slot_cores(&node);
        (0..4096).all(|s| t[s] == 0) && (4096..8192).all(|s| t[s] == 1)
    });
    hand(&mut admin, 100, 1);
    hand(&mut admin, 7000, 0);
    // More slots: the served set changes. 0..=12287 spread anew would put 100 on
    // core 0 and 7000 on core 1 again (and 4096..=6143 on core 0).
    assert_eq!(admin.send(&["CLUSTER", "ADDSLOTSRANGE", "8192", "12287"]), b"+OK\r\n");
    wait_until("the new slots are placed", Duration::from_secs(10), || {
        let t = slot_cores(&node);
        (8192..12288).all(|s| t[s] == 1)
    });
    // Give the spreader a few more ticks to do anything else it would.
    std::thread::sleep(Duration::from_millis(500));
    let t = slot_cores(&node);
    assert_eq!((t[100], t[7000]), (1, 0), "the slots moved by hand stayed");
    assert!((0..4096).filter(|&s| s != 100).all(|s| t[s] == 0));
    assert!((4096..8192).filter(|&s| s != 7000).all(|s| t[s] == 1));
}
