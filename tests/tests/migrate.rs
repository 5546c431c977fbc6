//! MIGRATE and legacy slot migration as `redis-cli --cluster` drives it.
//!
//! - MIGRATE from ferrokv to redis-server and from redis-server to ferrokv: the same
//!   script of commands (single key, KEYS, COPY, REPLACE, NOKEY, BUSYKEY, AUTH/AUTH2,
//!   SELECT, IOERR to a closed port, argument errors) gives byte-identical replies and
//!   the same data on both sides as the same script between two redis-servers.
//! - `redis-cli --cluster reshard` of hundreds of slots between ferrokv masters while a
//!   writer and a reader run (a client that follows MOVED/ASK/TRYAGAIN): no write lost,
//!   no wrong value read.
//! - `add-node` (master and `--cluster-slave --cluster-master-id`), `rebalance
//!   --cluster-use-empty-masters`, `rebalance --cluster-weight id=0`, `del-node`, `fix`
//!   of an open slot, `import`, `info`, `call`; `redis-cli --cluster check` clean after
//!   each, and a replica of a master that gave keys away loses them too (MIGRATE
//!   propagates as DEL).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferrokv_tests::cluster::{
    check_clean, create_masters, key_slot, myid, redis_cli, state_ok, text, wait_until, ClusterClient,
};
use ferrokv_tests::resp::{show, Reply};
use ferrokv_tests::{Kind, Server};

fn cluster_nodes(n: usize) -> Vec<Server> {
    (0..n).map(|_| Server::cluster_node(Kind::Ferrokv, &["--cluster-node-timeout", "2000", "--save", ""])).collect()
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Runs the MIGRATE script from `src` to `dst` (and `dst_auth`, which has requirepass
/// "pw"); returns every reply and every check of the data, as text. `other_db`: the
/// target has database 1.
fn script(src: &Server, dst: &Server, dst_auth: &Server, closed: u16, other_db: bool) -> Vec<String> {
    let (mut s, mut d) = (src.conn(), dst.conn());
    let mut da = dst_auth.conn();
    da.send(&["AUTH", "pw"]);
    for c in [&mut s, &mut d, &mut da] {
        c.send(&["FLUSHALL"]);
    }
    let host = "127.0.0.1";
    let (dp, dap, cp) = (dst.port().to_string(), dst_auth.port().to_string(), closed.to_string());
    let mut log = Vec::new();
    let mut step = |what: &str, reply: Vec<u8>| log.push(format!("{what}: {}", show(&reply)));

    s.send(&["SET", "k1", "v1"]);
    step("migrate k1", s.send(&["MIGRATE", host, &dp, "k1", "0", "1000"]));
    step("src exists k1", s.send(&["EXISTS", "k1"]));
    step("dst get k1", d.send(&["GET", "k1"]));
    step("dst ttl k1", d.send(&["PTTL", "k1"]));

    s.send(&["SET", "k2", "v2", "PX", "100000"]);
    step("migrate k2 with ttl", s.send(&["MIGRATE", host, &dp, "k2", "0", "1000"]));
    let ttl = match d.call(&["PTTL", "k2"]) {
        Reply::Int(t) => (90_000..=100_000).contains(&t),
        _ => false,
    };
    step("dst ttl k2 kept", format!("{ttl}").into_bytes());

    s.send(&["SET", "k1", "again"]);
    step("migrate k1 busy", s.send(&["MIGRATE", host, &dp, "k1", "0", "1000"]));
    step("src keeps k1", s.send(&["GET", "k1"]));
    step("migrate k1 replace", s.send(&["MIGRATE", host, &dp, "k1", "0", "1000", "REPLACE"]));
    step("dst get k1", d.send(&["GET", "k1"]));
    step("src exists k1", s.send(&["EXISTS", "k1"]));

    s.send(&["RPUSH", "l", "a", "b", "c"]);
    s.send(&["HSET", "h", "f", "v", "g", "w"]);
    s.send(&["ZADD", "z", "1", "a", "2.5", "b"]);
    s.send(&["SADD", "s", "1", "2", "3"]);
    s.send(&["SET", "n", "12345"]);
    let keys = ["l", "h", "z", "s", "n", "missing"];
    let mut copy = vec!["MIGRATE", host, &dp, "", "0", "1000", "COPY", "KEYS"];
    copy.extend(keys);
    step("migrate keys copy", s.send(&copy));
    for k in keys {
        step(&format!("src exists {k}"), s.send(&["EXISTS", k]));
        step(&format!("dst type {k}"), d.send(&["TYPE", k]));
    }
    step("dst lrange", d.send(&["LRANGE", "l", "0", "-1"]));
    step("dst hgetall", d.send(&["HGETALL", "h"]));
    step("dst zrange", d.send(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]));
    step("dst smembers", d.send(&["SMEMBERS", "s"]));
    step("dst encoding n", d.send(&["OBJECT", "ENCODING", "n"]));
    step("migrate keys copy busy", s.send(&copy));
    let mut moving = vec!["MIGRATE", host, &dp, "", "0", "1000", "REPLACE", "KEYS"];
    moving.extend(keys);
    step("migrate keys replace", s.send(&moving));
    for k in keys {
        step(&format!("src exists {k}"), s.send(&["EXISTS", k]));
    }
    step("migrate nokey", s.send(&["MIGRATE", host, &dp, "nokey", "0", "1000"]));
    step("migrate keys nokey", s.send(&["MIGRATE", host, &dp, "", "0", "1000", "KEYS", "x", "y"]));

    if other_db {
        s.send(&["SET", "k3", "db1"]);
        step("migrate to db 1", s.send(&["MIGRATE", host, &dp, "k3", "1", "1000"]));
        d.send(&["SELECT", "1"]);
        step("dst db1 get k3", d.send(&["GET", "k3"]));
        d.send(&["SELECT", "0"]);
        step("dst db0 get k3", d.send(&["GET", "k3"]));
        s.send(&["SET", "k3", "db0"]);
        step("migrate back to db 0", s.send(&["MIGRATE", host, &dp, "k3", "0", "1000"]));
        step("dst db0 get k3", d.send(&["GET", "k3"]));
    }

    s.send(&["SET", "a1", "x"]);
    step("no auth", s.send(&["MIGRATE", host, &dap, "a1", "0", "1000"]));
    step("wrong password", s.send(&["MIGRATE", host, &dap, "a1", "0", "1000", "AUTH", "nope"]));
    step("auth", s.send(&["MIGRATE", host, &dap, "a1", "0", "1000", "AUTH", "pw"]));
    step("dst auth get a1", da.send(&["GET", "a1"]));
    s.send(&["SET", "a2", "y"]);
    step("auth2", s.send(&["MIGRATE", host, &dap, "a2", "0", "1000", "AUTH2", "default", "pw"]));
    step("dst auth get a2", da.send(&["GET", "a2"]));

    s.send(&["SET", "c1", "z"]);
    step("closed port", s.send(&["MIGRATE", host, &cp, "c1", "0", "300"]));
    step("src keeps c1", s.send(&["EXISTS", "c1"]));
    step("bad option", s.send(&["MIGRATE", host, &dp, "c1", "0", "1000", "FOO"]));
    step("auth without password", s.send(&["MIGRATE", host, &dp, "c1", "0", "1000", "AUTH"]));
    step("auth2 without password", s.send(&["MIGRATE", host, &dp, "c1", "0", "1000", "AUTH2", "u"]));
    step("keys with a key", s.send(&["MIGRATE", host, &dp, "c1", "0", "1000", "KEYS", "c1"]));
    step("bad db", s.send(&["MIGRATE", host, &dp, "c1", "x", "1000"]));
    step("bad timeout", s.send(&["MIGRATE", host, &dp, "c1", "0", "1.5"]));
    step("arity", s.send(&["MIGRATE", host, &dp, "c1", "0"]));
    step("zero timeout", s.send(&["MIGRATE", host, &dp, "c1", "0", "0"]));
    step("dst get c1", d.send(&["GET", "c1"]));
    log
}

fn compare(what: &str, ours: &[String], redis: &[String]) {
    for (a, b) in ours.iter().zip(redis) {
        assert_eq!(a, b, "{what}: ferrokv's run differs from redis-server's");
    }
    assert_eq!(ours.len(), redis.len(), "{what}");
}

#[test]
fn migrate_from_ferrokv_to_redis_replies_as_redis() {
    let closed = closed_port();
    let ours = Server::ferrokv(&["--save", ""]);
    let reference = Server::redis(&["--save", ""]);
    let (dst1, dst2) = (Server::redis(&["--save", ""]), Server::redis(&["--save", ""]));
    let auth1 = Server::redis(&["--save", "", "--requirepass", "pw"]);
    let auth2 = Server::redis(&["--save", "", "--requirepass", "pw"]);
    let a = script(&ours, &dst1, &auth1, closed, true);
    let b = script(&reference, &dst2, &auth2, closed, true);
    compare("ferrokv -> redis vs redis -> redis", &a, &b);
    // Run again on the cached sockets (already authenticated, as Redis's stay).
    let a = script(&ours, &dst1, &auth1, closed, true);
    let b = script(&reference, &dst2, &auth2, closed, true);
    compare("second run", &a, &b);
}

#[test]
fn migrate_from_redis_to_ferrokv_restores_as_redis() {
    let closed = closed_port();
    let (src1, src2) = (Server::redis(&["--save", ""]), Server::redis(&["--save", ""]));
    let ours = Server::ferrokv(&["--save", ""]);
    let reference = Server::redis(&["--save", ""]);
    let ours_auth = Server::ferrokv(&["--save", "", "--requirepass", "pw"]);
    let ref_auth = Server::redis(&["--save", "", "--requirepass", "pw"]);
    let a = script(&src1, &ours, &ours_auth, closed, true);
    let b = script(&src2, &reference, &ref_auth, closed, true);
    compare("redis -> ferrokv vs redis -> redis", &a, &b);
    // A database the target does not have is the target's error, passed on.
    let mut s = src1.conn();
    s.send(&["SET", "k9", "v"]);
    let r = s.send(&["MIGRATE", "127.0.0.1", &ours.port().to_string(), "k9", "16", "1000"]);
    assert_eq!(r, b"-ERR Target instance replied with error: ERR DB index is out of range\r\n");
    assert_eq!(s.send(&["EXISTS", "k9"]), b":1\r\n");
}

#[test]
fn migrate_between_ferrokv_nodes_propagates_del() {
    // A replica of the source sees the moved keys disappear: MIGRATE went out as DEL.
    let src = Server::ferrokv(&["--save", ""]);
    let replica = Server::ferrokv(&["--save", "", "--replicaof", "127.0.0.1", &src.port().to_string()]);
    let dst = Server::ferrokv(&["--save", ""]);
    let mut s = src.conn();
    for i in 0..200 {
        s.send(&["SET", &format!("key:{i}"), &format!("v{i}")]);
    }
    wait_until("the replica has 200 keys", Duration::from_secs(20), || replica.conn().send(&["DBSIZE"]) == b":200\r\n");
    let dp = dst.port().to_string();
    for chunk in (0..150).collect::<Vec<_>>().chunks(10) {
        let mut cmd: Vec<String> = ["MIGRATE", "127.0.0.1", &dp, "", "0", "5000", "KEYS"].map(String::from).to_vec();
        cmd.extend(chunk.iter().map(|i| format!("key:{i}")));
        assert_eq!(s.send(&cmd), b"+OK\r\n");
    }
    assert_eq!(s.send(&["DBSIZE"]), b":50\r\n");
    assert_eq!(dst.conn().send(&["DBSIZE"]), b":150\r\n");
    wait_until("the replica has 50 keys", Duration::from_secs(20), || replica.conn().send(&["DBSIZE"]) == b":50\r\n");
    assert_eq!(dst.conn().send(&["GET", "key:7"]), b"$2\r\nv7\r\n");
}

/// Background traffic during a migration: a writer INCRs counters (remembering every
/// acknowledged increment), a reader checks values that never change.
struct Traffic {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    writer: std::thread::JoinHandle<(Vec<i64>, u64)>,
    reader: std::thread::JoinHandle<u64>,
}

const COUNTERS: usize = 400;
const FIXED: usize = 2000;

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
        (acked, c.asks + c.moved + c.tryagains)
    });
    let (st, rd) = (stop.clone(), reads.clone());
    let reader = std::thread::spawn(move || {
        let mut c = ClusterClient::new(port);
        let mut i = 0usize;
        while !st.load(Ordering::Relaxed) {
            let n = (i * 7919) % FIXED;
            let k = format!("fixed:{n}");
            let got = c.call(&[b"GET", k.as_bytes()]);
            assert_eq!(got, Reply::Bulk(Some(format!("value:{n}").into_bytes())), "GET {k}");
            rd.fetch_add(1, Ordering::Relaxed);
            i += 1;
        }
        c.asks + c.moved + c.tryagains
    });
    Traffic { stop, reads, writer, reader }
}

impl Traffic {
    /// Stops the traffic; checks every counter holds exactly its acknowledged increments.
    fn finish(self, port: u16) {
        self.stop.store(true, Ordering::Relaxed);
        let (acked, wr) = self.writer.join().expect("writer");
        let rr = self.reader.join().expect("reader");
        let mut c = ClusterClient::new(port);
        for (i, n) in acked.iter().enumerate() {
            let k = format!("counter:{i}");
            let got = c.call(&[b"GET", k.as_bytes()]);
            let want = if *n == 0 { Reply::Bulk(None) } else { Reply::Bulk(Some(n.to_string().into_bytes())) };
            assert_eq!(got, want, "{k} after the migration");
        }
        eprintln!(
            "writer: {} increments, {wr} redirects; reader: {} reads, {rr} redirects",
            acked.iter().sum::<i64>(),
            self.reads.load(Ordering::Relaxed)
        );
    }
}

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

fn total_keys(nodes: &[&Server]) -> i64 {
    nodes
        .iter()
        .map(|n| match n.conn().call(&["DBSIZE"]) {
            Reply::Int(k) => k,
            other => panic!("DBSIZE: {other:?}"),
        })
        .sum()
}

fn cli_ok(args: &[String]) -> String {
    let (ok, out) = redis_cli(args);
    assert!(ok, "redis-cli {} failed:\n{out}", args.join(" "));
    out
}

fn reshard(from: &Server, to: &Server, slots: usize) -> String {
    let args = [
        "--cluster",
        "reshard",
        &from.addr(),
        "--cluster-from",
        &myid(from),
        "--cluster-to",
        &myid(to),
        "--cluster-slots",
        &slots.to_string(),
        "--cluster-yes",
    ];
    cli_ok(&args.map(String::from))
}

#[test]
fn reshard_under_load_loses_no_write() {
    let nodes = cluster_nodes(3);
    create_masters(&nodes);
    let port = nodes[0].port();
    load_fixed(port);
    let traffic = start_traffic(port);
    // Let the traffic run on the first layout before slots move.
    wait_until("some reads", Duration::from_secs(10), || traffic.reads.load(Ordering::Relaxed) > 200);
    let out = reshard(&nodes[0], &nodes[1], 400);
    assert!(out.contains("Moving slot"), "{out}");
    check_clean(&nodes[0]);
    reshard(&nodes[1], &nodes[2], 300);
    check_clean(&nodes[2]);
    let before = traffic.reads.load(Ordering::Relaxed);
    wait_until("reads after the reshards", Duration::from_secs(10), || {
        traffic.reads.load(Ordering::Relaxed) > before + 100
    });
    traffic.finish(port);
    check_fixed(nodes[2].port());
    assert_eq!(total_keys(&nodes.iter().collect::<Vec<_>>()), (FIXED + COUNTERS) as i64);
    for n in &nodes {
        let nodes_text = text(n, &["CLUSTER", "NODES"]);
        assert!(!nodes_text.contains("->-") && !nodes_text.contains("-<-"), "open slot left:\n{nodes_text}");
    }
}

#[test]
fn add_node_rebalance_del_node() {
    let mut nodes = cluster_nodes(5);
    let spare_replica = nodes.pop().expect("5 nodes");
    let new_master = nodes.pop().expect("4 nodes");
    create_masters(&nodes);
    let port = nodes[0].port();
    load_fixed(port);

    // A new empty master, and a replica of the first master.
    cli_ok(&["--cluster", "add-node", &new_master.addr(), &nodes[0].addr()].map(String::from));
    // add-node returns once it sent the MEET; the next add-node checks the cluster first
    // and refuses until every node, the new one included, has the same slots
    // configuration (the new master learns the others' slots from their pings): wait for
    // what its check waits for, as with Redis.
    wait_until("the nodes agree about the slots configuration", Duration::from_secs(30), || {
        redis_cli(&["--cluster", "check", &nodes[0].addr()]).1.contains("[OK] All nodes agree")
    });
    let id0 = myid(&nodes[0]);
    let args = [
        "--cluster",
        "add-node",
        &spare_replica.addr(),
        &nodes[0].addr(),
        "--cluster-slave",
        "--cluster-master-id",
        &id0,
    ];
    cli_ok(&args.map(String::from));
    let all: Vec<&Server> = nodes.iter().chain([&new_master, &spare_replica]).collect();
    wait_until("every node ok", Duration::from_secs(30), || all.iter().all(|n| state_ok(n)));
    wait_until("the replica follows its master", Duration::from_secs(30), || {
        text(&spare_replica, &["ROLE"]).contains("connected")
            && spare_replica.conn().send(&["DBSIZE"]) == nodes[0].conn().send(&["DBSIZE"])
    });
    check_clean(&nodes[0]);

    let traffic = start_traffic(port);
    let out = cli_ok(&["--cluster", "rebalance", &nodes[0].addr(), "--cluster-use-empty-masters"].map(String::from));
    assert!(out.contains(&format!("to {}", new_master.addr())), "{out}");
    check_clean(&new_master);
    assert!(total_keys(&[&new_master]) > 0, "the new master got no keys");
    // The first master gave keys away: its replica must lose them too (DEL propagated).
    wait_until("the replica matches its master after the rebalance", Duration::from_secs(30), || {
        spare_replica.conn().send(&["DBSIZE"]) == nodes[0].conn().send(&["DBSIZE"])
    });

    // Empty the new master again, then remove it and the replica.
    let id_new = myid(&new_master);
    let weight = format!("{id_new}=0");
    cli_ok(&["--cluster", "rebalance", &nodes[0].addr(), "--cluster-weight", &weight].map(String::from));
    traffic.finish(port);
    assert_eq!(new_master.conn().send(&["CLUSTER", "COUNTKEYSINSLOT", "0"]), b":0\r\n");
    check_clean(&nodes[1]);
    check_fixed(port);
    let id_replica = myid(&spare_replica);
    cli_ok(&["--cluster", "del-node", &nodes[0].addr(), &id_replica].map(String::from));
    cli_ok(&["--cluster", "del-node", &nodes[0].addr(), &id_new].map(String::from));
    wait_until("three nodes left", Duration::from_secs(20), || {
        nodes.iter().all(|n| text(n, &["CLUSTER", "INFO"]).contains("cluster_known_nodes:3"))
    });
    check_clean(&nodes[0]);
    check_fixed(nodes[2].port());

    let info = cli_ok(&["--cluster", "info", &nodes[0].addr()].map(String::from));
    assert!(info.contains(&format!("{} keys in 3 masters", FIXED + COUNTERS)), "{info}");
    let call = cli_ok(&["--cluster", "call", &nodes[0].addr(), "DBSIZE"].map(String::from));
    assert_eq!(call.lines().filter(|l| l.contains("127.0.0.1:")).count(), 3, "{call}");
}

#[test]
fn fix_closes_an_open_slot_and_import_copies_a_standalone_node() {
    let nodes = cluster_nodes(3);
    create_masters(&nodes);
    let slot = key_slot(b"{open}");
    let owner = nodes
        .iter()
        .position(|n| !text(n, &["GET", "{open}"]).starts_with("-MOVED"))
        .expect("one node serves the slot");
    let (a, b) = (&nodes[owner], &nodes[(owner + 1) % 3]);
    let mut c = ClusterClient::new(a.port());
    for i in 0..60 {
        let k = format!("{{open}}:{i}");
        c.call(&[b"SET", k.as_bytes(), format!("v{i}").as_bytes()]);
    }
    // Half a migration, as a redis-cli killed mid-reshard leaves it.
    let s = slot.to_string();
    assert_eq!(b.conn().send(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &myid(a)]), b"+OK\r\n");
    assert_eq!(a.conn().send(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &myid(b)]), b"+OK\r\n");
    let mut cmd: Vec<String> =
        ["MIGRATE", "127.0.0.1", &b.port().to_string(), "", "0", "5000", "KEYS"].map(String::from).to_vec();
    cmd.extend((0..30).map(|i| format!("{{open}}:{i}")));
    assert_eq!(a.conn().send(&cmd), b"+OK\r\n");
    // Redirects during the migration: ASK for a moved key, served for a key still here.
    let moved = a.conn().send(&["GET", "{open}:3"]);
    assert_eq!(String::from_utf8_lossy(&moved), format!("-ASK {slot} {}\r\n", b.addr()));
    assert_eq!(a.conn().send(&["GET", "{open}:40"]), b"$3\r\nv40\r\n");
    let mut asking = b.conn();
    asking.send(&["ASKING"]);
    assert_eq!(asking.send(&["GET", "{open}:3"]), b"$2\r\nv3\r\n");
    assert_eq!(
        String::from_utf8_lossy(&b.conn().send(&["GET", "{open}:3"])),
        format!("-MOVED {slot} {}\r\n", a.addr())
    );
    asking.send(&["ASKING"]);
    assert_eq!(
        asking.send(&["MGET", "{open}:3", "{open}:40"]),
        b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"
    );
    let nodes_text = text(a, &["CLUSTER", "NODES"]);
    assert!(nodes_text.contains(&format!("[{slot}->-{}]", myid(b))), "{nodes_text}");

    let (ok, out) = redis_cli(&["--cluster", "check", &a.addr()]);
    assert!(!ok || out.contains("open"), "check should report the open slot:\n{out}");
    let out = cli_ok(&["--cluster", "fix", &a.addr(), "--cluster-yes"].map(String::from));
    assert!(out.contains(&format!("Fixing open slot {slot}")), "{out}");
    check_clean(a);
    let mut c = ClusterClient::new(a.port());
    for i in 0..60 {
        let k = format!("{{open}}:{i}");
        assert_eq!(c.call(&[b"GET", k.as_bytes()]), Reply::Bulk(Some(format!("v{i}").into_bytes())), "{k}");
    }

    // import: every key of a standalone ferrokv into the cluster (COPY keeps the source).
    let standalone = Server::ferrokv(&["--save", ""]);
    let mut sc = standalone.conn();
    for i in 0..300 {
        sc.send(&["SET", &format!("imported:{i}"), &format!("i{i}")]);
    }
    let args = ["--cluster", "import", &a.addr(), "--cluster-from", &standalone.addr(), "--cluster-copy"];
    cli_ok(&args.map(String::from));
    assert_eq!(sc.send(&["DBSIZE"]), b":300\r\n");
    let mut c = ClusterClient::new(a.port());
    for i in 0..300 {
        let k = format!("imported:{i}");
        assert_eq!(c.call(&[b"GET", k.as_bytes()]), Reply::Bulk(Some(format!("i{i}").into_bytes())), "{k}");
    }
    check_clean(b);
}
