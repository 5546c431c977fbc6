//! Whole-slot migration between ferrokv nodes (`CLUSTER MIGRATION IMPORT|STATUS|CANCEL`,
//! Redis 8.4's surface): a range of slots holding every type moves under a concurrent
//! writer and reader with nothing lost and nothing wrong read; STATUS reports the task;
//! the source answers MOVED for the moved slots; `redis-cli --cluster check` is clean.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferrokv_tests::cluster::{check_clean, create_masters, key_slot, myid, text, wait_until, ClusterClient};
use ferrokv_tests::resp::{show, Reply};
use ferrokv_tests::{Kind, Server};

fn cluster_nodes(n: usize) -> Vec<Server> {
    (0..n).map(|_| Server::cluster_node(Kind::Ferrokv, &["--cluster-node-timeout", "2000", "--save", ""])).collect()
}

/// Nodes as [`cluster_nodes`], with DEBUG enabled (for SLOT-MIGRATION-HOLD).
fn debug_cluster_nodes(n: usize) -> Vec<Server> {
    let args = ["--cluster-node-timeout", "2000", "--save", "", "--enable-debug-command", "yes"];
    (0..n).map(|_| Server::cluster_node(Kind::Ferrokv, &args)).collect()
}

/// `CLUSTER MIGRATION IMPORT <ranges>` on `c`: the task id.
fn import(c: &mut ferrokv_tests::conn::Conn, ranges: &[&str]) -> String {
    let mut args = vec!["CLUSTER", "MIGRATION", "IMPORT"];
    args.extend(ranges);
    match c.call(&args) {
        Reply::Bulk(Some(id)) => String::from_utf8_lossy(&id).into_owned(),
        other => panic!("IMPORT {ranges:?}: {other:?}"),
    }
}

/// `CLUSTER MIGRATION STATUS ID id` as text, whole.
fn status(node: &Server, id: &str) -> String {
    text(node, &["CLUSTER", "MIGRATION", "STATUS", "ID", id])
}

/// One field of a task's STATUS (empty when the task or field is not there).
fn status_field(c: &mut ferrokv_tests::conn::Conn, id: &str, name: &str) -> String {
    let Reply::Array(Some(tasks)) = c.call(&["CLUSTER", "MIGRATION", "STATUS", "ID", id]) else { return String::new() };
    let Some(Reply::Array(Some(kv))) = tasks.first() else { return String::new() };
    kv.chunks(2)
        .find(|f| f[0] == Reply::Bulk(Some(name.as_bytes().to_vec())))
        .and_then(
            |f| if let Reply::Bulk(Some(v)) = &f[1] { Some(String::from_utf8_lossy(v).into_owned()) } else { None },
        )
        .unwrap_or_default()
}

/// Keys `k:<i>` whose slot is below 1000 (owned by the first master).
fn low_keys(n: usize) -> Vec<String> {
    (0..).map(|i| format!("k:{i}")).filter(|k| key_slot(k.as_bytes()) < 1000).take(n).collect()
}

#[test]
fn import_moves_slots_of_every_type_under_writes() {
    let nodes = cluster_nodes(3);
    create_masters(&nodes);
    let (src, dst) = (&nodes[0], &nodes[1]);
    let keys = low_keys(600);
    let mut s = src.conn();
    for (i, k) in keys.iter().enumerate() {
        let r = match i % 6 {
            0 => s.send(&["SET", k, "v"]),
            1 => s.send(&["RPUSH", k, "a", "b", "c"]),
            2 => s.send(&["HSET", k, "f", "1", "g", "2"]),
            3 => s.send(&["SADD", k, "x", "y"]),
            4 => s.send(&["ZADD", k, "1", "m", "2", "n"]),
            _ => s.send(&["SET", k, "t", "PX", "600000"]),
        };
        assert!(!r.starts_with(b"-"), "{k}: {}", show(&r));
    }
    // A writer increments counters in the moving slots and checks every reply; a reader
    // checks the static keys.
    let stop = Arc::new(AtomicBool::new(false));
    let port = src.port();
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = ClusterClient::new(port);
            let counters = low_keys(650)[600..].to_vec();
            let mut expect = vec![0i64; counters.len()];
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) || round < 20 {
                for (j, k) in counters.iter().enumerate() {
                    expect[j] += 1;
                    match c.call(&[b"INCR", k.as_bytes()]) {
                        Reply::Int(n) => assert_eq!(n, expect[j], "INCR {k}"),
                        other => panic!("INCR {k}: {other:?}"),
                    }
                }
                round += 1;
            }
            (counters, expect)
        })
    };
    let reader = {
        let stop = stop.clone();
        let keys = keys.clone();
        std::thread::spawn(move || {
            let mut c = ClusterClient::new(port);
            while !stop.load(Ordering::Relaxed) {
                for k in keys.iter().step_by(6) {
                    assert_eq!(c.call(&[b"GET", k.as_bytes()]), Reply::Bulk(Some(b"v".to_vec())), "GET {k}");
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let id = import(&mut dst.conn(), &["0", "499", "500", "999"]);
    wait_until("the task completes", Duration::from_secs(60), || status(dst, &id).contains("completed"));
    let st = status(dst, &id);
    for field in ["id", "slots", "source", "dest", "state", "write_pause_ms", "progress", "end_time"] {
        assert!(st.contains(field), "{field} in {st}");
    }
    // Adjacent ranges merge, as Redis 8.4 shows them.
    assert!(st.contains("0-999") && !st.contains("0-499"), "{st}");
    // The source keeps a record of its side, same id (operation `migrate`).
    let theirs = status(src, &id);
    assert!(theirs.contains("migrate") && theirs.contains("completed"), "{theirs}");
    assert!(st.contains("1000/1000 slots"), "{st}");
    // "<done>/<total> slots, <keys> keys, <bytes> bytes": 600 keys and their payloads.
    let bytes: u64 = st
        .split_once(" bytes")
        .and_then(|(before, _)| before.rsplit(", ").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("bytes in {st}"));
    assert!(bytes > 600 * 10, "{bytes} bytes in {st}");
    stop.store(true, Ordering::Relaxed);
    let (counters, expect) = writer.join().expect("writer");
    reader.join().expect("reader");
    // Everything is on the target, nothing lost, and the source redirects.
    let mut d = dst.conn();
    d.send(&["READWRITE"]);
    for (k, n) in counters.iter().zip(&expect) {
        assert_eq!(d.call(&["GET", k]), Reply::Bulk(Some(n.to_string().into_bytes())), "{k}");
    }
    for (i, k) in keys.iter().enumerate() {
        let t = show(&d.send(&["TYPE", k]));
        let want = ["string", "list", "hash", "set", "zset", "string"][i % 6];
        assert!(t.contains(want), "{k}: {t}");
    }
    let ttl = show(&d.send(&["PTTL", &keys[5]]));
    assert!(!ttl.contains("-1") && !ttl.contains("-2"), "{ttl}");
    let moved = show(&src.conn().send(&["GET", &keys[0]]));
    assert!(moved.contains("MOVED") && moved.contains(&dst.port().to_string()), "{moved}");
    assert!(text(dst, &["CLUSTER", "NODES"]).contains(&myid(dst)));
    wait_until("the source deletes the moved keys", Duration::from_secs(10), || {
        (0..1000).all(|s| src.conn().call(&["CLUSTER", "COUNTKEYSINSLOT", &s.to_string()]) == Reply::Int(0))
    });
    // Redis 8.4's CLUSTER INFO fields: the source trimmed the slots it lost, as jobs
    // that all completed; no task is active on either side any more.
    let field = |node: &Server, cmd: &[&str], name: &str| -> u64 {
        let t = text(node, cmd);
        let line = t.lines().find(|l| l.starts_with(&format!("{name}:"))).unwrap_or_else(|| panic!("{name} in {t}"));
        line[name.len() + 1..].trim().parse().expect("a number")
    };
    let info = ["CLUSTER", "INFO"];
    wait_until("the trim jobs end", Duration::from_secs(10), || {
        field(src, &info, "cluster_slot_migration_active_trim_running") == 0
    });
    let started = field(src, &info, "cluster_slot_migration_stats_active_trim_started");
    assert!(started >= 1 && started <= 1000, "{started} trim jobs");
    assert_eq!(field(src, &info, "cluster_slot_migration_stats_active_trim_completed"), started);
    assert_eq!(field(src, &info, "cluster_slot_migration_active_trim_current_job_keys"), 0);
    assert_eq!(field(src, &info, "cluster_slot_migration_active_tasks"), 0);
    assert_eq!(field(dst, &["INFO", "cluster"], "cluster_slot_migration_active_tasks"), 0);
    assert_eq!(field(dst, &["INFO", "cluster"], "cluster_slot_migration_import_slots_total"), 0);
    wait_until("check is clean", Duration::from_secs(20), || std::panic::catch_unwind(|| check_clean(src)).is_ok());
}

#[test]
fn cancel_leaves_the_source_owning_everything() {
    let nodes = cluster_nodes(3);
    create_masters(&nodes);
    let (src, dst) = (&nodes[0], &nodes[1]);
    let mut s = src.conn();
    // Enough keys that the snapshot takes a while.
    for chunk in 0..50 {
        let cmds: Vec<Vec<String>> =
            (0..2000).map(|i| vec!["SET".into(), format!("{{b}}{chunk}:{i}"), "v".into()]).collect();
        s.pipeline(&cmds);
    }
    let tag_slot = key_slot(b"b");
    let id = import(&mut dst.conn(), &["0", "5460"]);
    assert_eq!(dst.conn().call(&["CLUSTER", "MIGRATION", "CANCEL", "ID", &id]), Reply::Int(1));
    wait_until("the task ends", Duration::from_secs(30), || status(dst, &id).contains("canceled"));
    // The source still owns and serves everything; the target holds nothing.
    let r = show(&src.conn().send(&["GET", "{b}0:0"]));
    assert!(r.contains('v') && !r.contains("MOVED"), "{r}");
    assert_eq!(src.conn().call(&["SET", "{b}new", "1"]), Reply::Simple(b"OK".to_vec()));
    assert_eq!(dst.conn().call(&["CLUSTER", "COUNTKEYSINSLOT", &tag_slot.to_string()]), Reply::Int(0));
    check_clean(src);
}

/// Big keys travel in pieces (`CHUNK`), each under a shard lock only for its own
/// elements: a list, hash, set and sorted set of 20k elements and a 1.5 MB string, one
/// with a TTL, arrive whole, also while a writer appends to two of them during the move
/// (a key changed while its pieces travel is sent again).
#[test]
fn big_keys_travel_in_pieces_under_writes() {
    let nodes = cluster_nodes(3);
    create_masters(&nodes);
    let (src, dst) = (&nodes[0], &nodes[1]);
    let tag = (0..).map(|i| format!("{{big{i}}}")).find(|t| key_slot(t.as_bytes()) < 1000).expect("a tag");
    let key = |name: &str| format!("{tag}{name}");
    let n = 20_000;
    let mut s = src.conn();
    let ok = |r: Vec<u8>| assert!(!r.starts_with(b"-"), "{}", show(&r));
    for batch in (0..n).collect::<Vec<_>>().chunks(2000) {
        let mut list = vec!["RPUSH".to_string(), key("list")];
        let mut hash = vec!["HSET".to_string(), key("hash")];
        let mut set = vec!["SADD".to_string(), key("set")];
        let mut zset = vec!["ZADD".to_string(), key("zset")];
        for i in batch {
            list.push(format!("e{i}"));
            hash.extend([format!("f{i}"), format!("v{i}")]);
            set.push(format!("m{i}"));
            zset.extend([format!("{}", *i as f64 / 7.0), format!("z{i}")]);
        }
        for c in [list, hash, set, zset] {
            ok(s.send(&c.iter().map(|x| x.as_str()).collect::<Vec<_>>()));
        }
    }
    let big_string = "s".repeat(1_500_000);
    ok(s.send(&["SET", &key("str"), &big_string]));
    ok(s.send(&["PEXPIRE", &key("hash"), "600000"]));
    // The writer appends to the list and adds fields to the hash until the move is done,
    // and keeps what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let port = src.port();
    let writer = {
        let stop = stop.clone();
        let (list, hash) = (key("list"), key("hash"));
        std::thread::spawn(move || {
            let mut c = ClusterClient::new(port);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) || i < 200 {
                let e = format!("w{i}");
                match c.call(&[b"RPUSH", list.as_bytes(), e.as_bytes()]) {
                    Reply::Int(len) => assert_eq!(len, n as i64 + i + 1, "RPUSH {e}"),
                    other => panic!("RPUSH: {other:?}"),
                }
                assert_eq!(c.call(&[b"HSET", hash.as_bytes(), e.as_bytes(), b"x"]), Reply::Int(1), "HSET {e}");
                i += 1;
            }
            i
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let id = import(&mut dst.conn(), &["0", "999"]);
    wait_until("the task completes", Duration::from_secs(60), || status(dst, &id).contains("completed"));
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("writer");
    let mut d = dst.conn();
    let strings = |r: Reply| -> Vec<Vec<u8>> {
        match r {
            Reply::Array(Some(items)) => items
                .into_iter()
                .map(|x| match x {
                    Reply::Bulk(Some(b)) => b,
                    other => panic!("{other:?}"),
                })
                .collect(),
            other => panic!("{other:?}"),
        }
    };
    let mut want_list: Vec<Vec<u8>> = (0..n).map(|i| format!("e{i}").into_bytes()).collect();
    want_list.extend((0..written).map(|i| format!("w{i}").into_bytes()));
    assert!(strings(d.call(&["LRANGE", &key("list"), "0", "-1"])) == want_list, "the list");
    let mut hash: Vec<Vec<u8>> = strings(d.call(&["HGETALL", &key("hash")]));
    let mut want_hash: Vec<(Vec<u8>, Vec<u8>)> =
        (0..n).map(|i| (format!("f{i}").into_bytes(), format!("v{i}").into_bytes())).collect();
    want_hash.extend((0..written).map(|i| (format!("w{i}").into_bytes(), b"x".to_vec())));
    want_hash.sort();
    let mut got_hash: Vec<(Vec<u8>, Vec<u8>)> = hash.chunks_mut(2).map(|p| (p[0].clone(), p[1].clone())).collect();
    got_hash.sort();
    assert!(got_hash == want_hash, "the hash");
    let ttl = show(&d.send(&["PTTL", &key("hash")]));
    assert!(!ttl.contains("-1") && !ttl.contains("-2"), "{ttl}");
    assert_eq!(d.call(&["TTL", &key("list")]), Reply::Int(-1));
    assert_eq!(d.call(&["SCARD", &key("set")]), Reply::Int(n as i64));
    assert_eq!(d.call(&["SISMEMBER", &key("set"), "m19999"]), Reply::Int(1));
    let z = strings(d.call(&["ZRANGE", &key("zset"), "0", "-1", "WITHSCORES"]));
    assert_eq!(z.len(), 2 * n);
    for (i, pair) in z.chunks(2).enumerate() {
        assert_eq!(pair[0], format!("z{i}").into_bytes());
        let score: f64 = String::from_utf8_lossy(&pair[1]).parse().expect("a score");
        assert_eq!(score, i as f64 / 7.0, "z{i}");
    }
    assert_eq!(d.call(&["GET", &key("str")]), Reply::Bulk(Some(big_string.into_bytes())));
    wait_until("the source deletes the moved keys", Duration::from_secs(10), || {
        src.conn().call(&["CLUSTER", "COUNTKEYSINSLOT", &key_slot(tag.as_bytes()).to_string()]) == Reply::Int(0)
    });
    wait_until("check is clean", Duration::from_secs(20), || std::panic::catch_unwind(|| check_clean(src)).is_ok());
}

/// The source's side when the target goes silent after PAUSE (driven by hand here):
/// writes to the paused slot are held, other slots are served, and the hold ends
/// after `cluster-slot-migration-write-pause-timeout` with the source still the owner.
#[test]
fn a_silent_target_does_not_hold_the_sources_writes_forever() {
    let nodes = cluster_nodes(3);
    create_masters(&nodes);
    let src = &nodes[0];
    let key = low_keys(1).remove(0);
    let slot = key_slot(key.as_bytes()).to_string();
    let mut admin = src.conn();
    assert_eq!(
        admin.call(&["CONFIG", "SET", "cluster-slot-migration-write-pause-timeout", "700"]),
        Reply::Simple(b"OK".to_vec())
    );
    assert_eq!(admin.call(&["SET", &key, "before"]), Reply::Simple(b"OK".to_vec()));
    let id = "0123456789abcdef0123456789abcdef01234567";
    let dest = myid(&nodes[1]);
    let start = ["CLUSTER", "MIGRATION-SYNC", id, "START", &dest, &slot, &slot];
    assert_eq!(admin.call(&start), Reply::Simple(b"OK".to_vec()));
    match admin.call(&["CLUSTER", "MIGRATION-SYNC", id, "BEGIN", &slot]) {
        Reply::Array(Some(items)) => assert_eq!(items.len(), 3, "one key: {items:?}"),
        other => panic!("BEGIN: {other:?}"),
    }
    assert_eq!(admin.call(&["CLUSTER", "MIGRATION-SYNC", id, "PAUSE"]), Reply::Simple(b"OK".to_vec()));
    // A write to another slot of the same node is served at once.
    let other = (0..).map(|i| format!("o:{i}")).find(|k| {
        let s = key_slot(k.as_bytes());
        s < 5461 && s.to_string() != slot
    });
    let other = other.expect("a key");
    assert_eq!(src.conn().call(&["SET", &other, "x"]), Reply::Simple(b"OK".to_vec()));
    // The held write completes once the pause runs out, on the source.
    let started = std::time::Instant::now();
    assert_eq!(src.conn().call(&["SET", &key, "after"]), Reply::Simple(b"OK".to_vec()));
    assert!(started.elapsed() >= Duration::from_millis(300), "the write was held");
    assert_eq!(src.conn().call(&["GET", &key]), Reply::Bulk(Some(b"after".to_vec())));
    // The export is over: its commands are refused.
    let r = show(&admin.send(&["CLUSTER", "MIGRATION-SYNC", id, "DELTA"]));
    assert!(r.contains("No such slot migration"), "{r}");
    // Its record says why, as Redis 8.4's source does.
    let st = status(src, id);
    assert!(st.contains("migrate") && st.contains("failed") && st.contains("Server paused timeout"), "{st}");
    check_clean(src);
}

/// CLUSTER SLOT-STATS: key counts always, CPU and bytes with cluster-slot-stats-enabled;
/// SLOTSRANGE covers only this node's slots; ORDERBY sorts with slot ties ascending.
#[test]
fn slot_stats_show_hot_slots() {
    let nodes = cluster_nodes(3);
    create_masters(&nodes);
    let src = &nodes[0];
    let mut c = src.conn();
    let keys = low_keys(3);
    let slots: Vec<u16> = keys.iter().map(|k| key_slot(k.as_bytes())).collect();
    assert_eq!(c.call(&["SET", &keys[0], "x"]), Reply::Simple(b"OK".to_vec()));
    // Only key-count while disabled; an ORDERBY of another metric is refused.
    let r = show(&c.send(&["CLUSTER", "SLOT-STATS", "SLOTSRANGE", &slots[0].to_string(), &slots[0].to_string()]));
    assert_eq!(r, format!("\"*1\\r\\n*2\\r\\n:{}\\r\\n*2\\r\\n$9\\r\\nkey-count\\r\\n:1\\r\\n\"", slots[0]), "{r}");
    let r = show(&c.send(&["CLUSTER", "SLOT-STATS", "ORDERBY", "cpu-usec"]));
    assert!(r.contains("Unrecognized sort metric for ORDERBY"), "{r}");
    // Slots of other nodes are left out of a range.
    match c.call(&["CLUSTER", "SLOT-STATS", "SLOTSRANGE", "5000", "6000"]) {
        Reply::Array(Some(rows)) => assert_eq!(rows.len(), 461, "slots 5000-5460 are this node's"),
        other => panic!("{other:?}"),
    }
    // Enabled: the slot hammered most comes first by cpu and by bytes in.
    assert_eq!(c.call(&["CONFIG", "SET", "cluster-slot-stats-enabled", "yes"]), Reply::Simple(b"OK".to_vec()));
    let big = "v".repeat(1000);
    for _ in 0..200 {
        c.call(&["SET", &keys[1], &big]);
    }
    c.call(&["GET", &keys[2]]);
    for metric in ["network-bytes-in", "network-bytes-out", "cpu-usec"] {
        match c.call(&["CLUSTER", "SLOT-STATS", "ORDERBY", metric, "LIMIT", "1"]) {
            Reply::Array(Some(rows)) => {
                let Reply::Array(Some(row)) = &rows[0] else { panic!("{rows:?}") };
                if metric != "network-bytes-out" {
                    assert_eq!(row[0], Reply::Int(slots[1] as i64), "{metric}: {rows:?}");
                }
            }
            other => panic!("{other:?}"),
        }
    }
    match c.call(&["CLUSTER", "SLOT-STATS", "ORDERBY", "key-count", "LIMIT", "2", "DESC"]) {
        Reply::Array(Some(rows)) => assert_eq!(rows.len(), 2),
        other => panic!("{other:?}"),
    }
    for bad in [
        vec!["CLUSTER", "SLOT-STATS", "ORDERBY", "key-count", "LIMIT", "0"],
        vec!["CLUSTER", "SLOT-STATS", "ORDERBY", "key-count", "ASC", "DESC"],
        vec!["CLUSTER", "SLOT-STATS", "SLOTSRANGE", "10", "5"],
        vec!["CLUSTER", "SLOT-STATS", "ORDERBY", "key-count", "bogus"],
    ] {
        assert!(c.send(&bad).starts_with(b"-ERR"), "{bad:?}");
    }
}

/// Nodes with `requirepass`: the task authenticates to the source with `masterauth`
/// and to its own node with `requirepass`; without `masterauth` it fails with the
/// source's error and the source keeps its slots and keys.
#[test]
fn a_task_authenticates_to_the_source_with_masterauth() {
    let start = |extra: &[&str]| {
        let mut args = vec!["--cluster-node-timeout", "2000", "--save", "", "--requirepass", "pw"];
        args.extend_from_slice(extra);
        Server::cluster_node(Kind::Ferrokv, &args)
    };
    let nodes = [start(&["--masterauth", "pw"]), start(&[])];
    let authed = |n: &Server| {
        let mut c = n.conn();
        assert_eq!(c.call(&["AUTH", "pw"]), Reply::Simple("OK".into()));
        c
    };
    let (mut a, mut b) = (authed(&nodes[0]), authed(&nodes[1]));
    assert_eq!(a.call(&["CLUSTER", "ADDSLOTSRANGE", "0", "8191"]), Reply::Simple("OK".into()));
    assert_eq!(b.call(&["CLUSTER", "ADDSLOTSRANGE", "8192", "16383"]), Reply::Simple("OK".into()));
    let bus = |n: &Server| (n.port() + 10000).to_string();
    assert_eq!(
        a.call(&["CLUSTER", "MEET", "127.0.0.1", &nodes[1].port().to_string(), &bus(&nodes[1])]),
        Reply::Simple("OK".into())
    );
    wait_until("both nodes agree", Duration::from_secs(20), || {
        [&mut a, &mut b].into_iter().all(|c| show(&c.send(&["CLUSTER", "INFO"])).contains("cluster_state:ok"))
    });
    // Keys in slots 0..99 (node 0) and 8192..8291 (node 1).
    let keys_in = |lo: u16| -> Vec<String> {
        (0..).map(|i| format!("a:{i}")).filter(|k| (lo..lo + 100).contains(&key_slot(k.as_bytes()))).take(50).collect()
    };
    let (low, high) = (keys_in(0), keys_in(8192));
    for k in &low {
        assert_eq!(a.call(&["SET", k, k]), Reply::Simple("OK".into()));
    }
    for k in &high {
        assert_eq!(b.call(&["SET", k, k]), Reply::Simple("OK".into()));
    }
    let status_of = |c: &mut ferrokv_tests::conn::Conn, id: &str| {
        String::from_utf8_lossy(&c.send(&["CLUSTER", "MIGRATION", "STATUS", "ID", id])).into_owned()
    };
    // Node 1 has no masterauth: its task is refused by node 0 and rolls back.
    // Node 1 has no masterauth: each attempt of its task is refused by node 0 and
    // rolls back, and the task tries again every second until it is canceled.
    let id = import(&mut b, &["0", "99"]);
    wait_until("the task fails twice", Duration::from_secs(30), || {
        status_field(&mut b, &id, "retries").parse::<u64>().is_ok_and(|n| n >= 1)
    });
    let st = status_of(&mut b, &id);
    assert!(st.contains("unauthenticated") || st.contains("NOAUTH"), "{st}");
    for k in &low {
        assert_eq!(a.call(&["GET", k]), Reply::Bulk(Some(k.clone().into_bytes())), "{k} stays on node 0");
    }
    // Given masterauth, the next attempt of the same task succeeds.
    assert_eq!(b.call(&["CONFIG", "SET", "masterauth", "pw"]), Reply::Simple("OK".into()));
    wait_until("the retried task completes", Duration::from_secs(30), || status_of(&mut b, &id).contains("completed"));
    b.send(&["READWRITE"]);
    for k in &low {
        assert_eq!(b.call(&["GET", k]), Reply::Bulk(Some(k.clone().into_bytes())), "{k} moved to node 1");
    }
    // Node 0 has masterauth: it takes node 1's other slots.
    let id = import(&mut a, &["8192", "8291"]);
    wait_until("the task completes", Duration::from_secs(30), || status_of(&mut a, &id).contains("completed"));
    a.send(&["READWRITE"]);
    for k in &high {
        assert_eq!(a.call(&["GET", k]), Reply::Bulk(Some(k.clone().into_bytes())), "{k} moved to node 0");
    }
    let moved = show(&b.send(&["GET", &high[0]]));
    assert!(moved.contains("MOVED"), "{moved}");
}

/// Starts an import of slots 0..999 from `nodes[0]` to `nodes[1]` while the source is
/// stopped (SIGSTOP), and returns once the target's task waits for the source's first
/// snapshot: a task caught before its claim, whatever the machine's speed.
fn import_stuck_on_a_stopped_source(nodes: &[Server]) -> String {
    let (src, dst) = (&nodes[0], &nodes[1]);
    src.signal(libc::SIGSTOP);
    let id = import(&mut dst.conn(), &["0", "999"]);
    wait_until("the task asks the source for its snapshot", Duration::from_secs(20), || {
        status(dst, &id).contains("snapshot")
    });
    id
}

/// The target crashes midway (SIGKILL while its task waits for the source): the
/// source keeps owning and serving every slot with every key, its export ends once the
/// target stops calling, and the restarted target does not keep the slots open.
#[test]
fn a_target_killed_midway_leaves_the_source_owning_everything() {
    let mut nodes = cluster_nodes(3);
    create_masters(&nodes);
    let keys = low_keys(300);
    let mut s = nodes[0].conn();
    for k in &keys {
        assert_eq!(s.call(&["SET", k, k]), Reply::Simple(b"OK".to_vec()));
    }
    assert_eq!(
        s.call(&["CONFIG", "SET", "cluster-slot-migration-write-pause-timeout", "500"]),
        Reply::Simple(b"OK".to_vec())
    );
    import_stuck_on_a_stopped_source(&nodes);
    nodes[1].kill();
    nodes[0].signal(libc::SIGCONT);
    // The source answered the snapshot to a dead target and captures changes for it,
    // until the target has been silent for three write-pause timeouts.
    wait_until("the source's export ends", Duration::from_secs(20), || {
        text(&nodes[0], &["CLUSTER", "INFO"]).contains("cluster_slot_migration_active_tasks:0")
    });
    nodes[1].restart();
    wait_until("cluster_state:ok", Duration::from_secs(20), || nodes.iter().all(ferrokv_tests::cluster::state_ok));
    let mut s = nodes[0].conn();
    for k in &keys {
        assert_eq!(s.call(&["GET", k]), Reply::Bulk(Some(k.clone().into_bytes())), "{k}");
    }
    assert_eq!(s.call(&["SET", &keys[0], "after"]), Reply::Simple(b"OK".to_vec()));
    let mine = text(&nodes[1], &["CLUSTER", "NODES"]);
    assert!(!mine.contains("-<-"), "the restarted target keeps slots importing:\n{mine}");
    wait_until("check is clean", Duration::from_secs(20), || {
        std::panic::catch_unwind(|| check_clean(&nodes[0])).is_ok()
    });
}

/// The source crashes midway: the target's task fails, keeps no key of the slots
/// and closes them, and tries again every second; canceled, it ends, and the
/// restarted source still owns the slots.
#[test]
fn a_source_killed_midway_leaves_the_target_without_the_slots() {
    let mut nodes = cluster_nodes(3);
    create_masters(&nodes);
    let id = import_stuck_on_a_stopped_source(&nodes);
    nodes[0].kill();
    wait_until("the task fails", Duration::from_secs(40), || status(&nodes[1], &id).contains("failed"));
    let dst = &nodes[1];
    let mine = text(dst, &["CLUSTER", "NODES"]);
    assert!(!mine.contains("-<-"), "the target keeps slots importing:\n{mine}");
    for slot in [0, 500, 999] {
        assert_eq!(dst.conn().call(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]), Reply::Int(0));
    }
    wait_until("the task tries again", Duration::from_secs(20), || {
        status_field(&mut dst.conn(), &id, "retries").parse::<u64>().is_ok_and(|n| n >= 1)
    });
    assert_eq!(dst.conn().call(&["CLUSTER", "MIGRATION", "CANCEL", "ID", &id]), Reply::Int(1));
    wait_until("the task is canceled", Duration::from_secs(10), || status(dst, &id).contains("canceled"));
    nodes[0].restart();
    wait_until("cluster_state:ok", Duration::from_secs(20), || nodes.iter().all(ferrokv_tests::cluster::state_ok));
    let moved = show(&nodes[1].conn().send(&["GET", &low_keys(1)[0]]));
    assert!(moved.contains("MOVED") && moved.contains(&nodes[0].port().to_string()), "{moved}");
    wait_until("check is clean", Duration::from_secs(20), || {
        std::panic::catch_unwind(|| check_clean(&nodes[0])).is_ok()
    });
}

/// While a task imports slots, the target's KEYS, SCAN, RANDOMKEY, DBSIZE,
/// COUNTKEYSINSLOT and GETKEYSINSLOT leave their keys out, as Redis 8.4 does (INFO
/// keyspace counts them); once the slots are claimed, every key shows. The task is
/// held before its write pause (DEBUG SLOT-MIGRATION-HOLD), keys copied.
#[test]
fn keys_being_imported_are_hidden_until_the_claim() {
    let nodes = debug_cluster_nodes(3);
    create_masters(&nodes);
    let (src, dst) = (&nodes[0], &nodes[1]);
    let moving = low_keys(200);
    let mut s = src.conn();
    for k in &moving {
        assert_eq!(s.call(&["SET", k, k]), Reply::Simple(b"OK".to_vec()));
    }
    // The target's own keys: in its slots (5461..10922).
    let own: Vec<String> = (0..)
        .map(|i| format!("own:{i}"))
        .filter(|k| (5461..=10922).contains(&key_slot(k.as_bytes())))
        .take(30)
        .collect();
    let mut d = dst.conn();
    for k in &own {
        assert_eq!(d.call(&["SET", k, "x"]), Reply::Simple(b"OK".to_vec()));
    }
    assert_eq!(d.call(&["DEBUG", "SLOT-MIGRATION-HOLD", "1"]), Reply::Simple(b"OK".to_vec()));
    let id = import(&mut d, &["0", "999"]);
    wait_until("the snapshot is copied", Duration::from_secs(30), || status(dst, &id).contains("streaming"));
    let info = text(dst, &["INFO", "keyspace"]);
    assert!(info.contains(&format!("db0:keys={},", own.len() + moving.len())), "{info}");
    assert_eq!(d.call(&["DBSIZE"]), Reply::Int(own.len() as i64));
    let listed = show(&d.send(&["KEYS", "*"]));
    assert!(moving.iter().all(|k| !listed.contains(&format!("\"{k}\""))), "{listed}");
    assert_eq!(d.call(&["KEYS", "k:*"]), Reply::Array(Some(vec![])));
    let mut cursor = "0".to_string();
    loop {
        let Reply::Array(Some(parts)) = d.call(&["SCAN", &cursor, "COUNT", "1000", "MATCH", "k:*"]) else { panic!() };
        assert_eq!(parts[1], Reply::Array(Some(vec![])), "SCAN shows an importing key");
        let Reply::Bulk(Some(next)) = &parts[0] else { panic!() };
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            break;
        }
    }
    for _ in 0..20 {
        let r = show(&d.send(&["RANDOMKEY"]));
        assert!(r.contains("own:"), "{r}");
    }
    let slot = key_slot(moving[0].as_bytes()).to_string();
    assert_eq!(d.call(&["CLUSTER", "COUNTKEYSINSLOT", &slot]), Reply::Int(0));
    assert_eq!(d.call(&["CLUSTER", "GETKEYSINSLOT", &slot, "10"]), Reply::Array(Some(vec![])));
    assert_eq!(d.call(&["DEBUG", "SLOT-MIGRATION-HOLD", "0"]), Reply::Simple(b"OK".to_vec()));
    wait_until("the task completes", Duration::from_secs(30), || status(dst, &id).contains("completed"));
    assert_eq!(d.call(&["DBSIZE"]), Reply::Int((own.len() + moving.len()) as i64));
    assert!(matches!(d.call(&["CLUSTER", "COUNTKEYSINSLOT", &slot]), Reply::Int(n) if n > 0));
    // The source's copies are gone or hidden at once, whatever its trim has done.
    wait_until("the source shows none of them", Duration::from_secs(20), || {
        src.conn().call(&["DBSIZE"]) == Reply::Int(0)
    });
}

/// CLUSTER MIGRATION's input checks, with Redis 8.4's error words (the cases of its
/// own test unit), and STATUS ALL listing the tasks on both sides, the newest first.
#[test]
fn migration_commands_check_their_input_as_redis_does() {
    let nodes = debug_cluster_nodes(3);
    create_masters(&nodes);
    let mut c = nodes[0].conn();
    let err = |c: &mut ferrokv_tests::conn::Conn, args: &[&str], want: &str| {
        let got = String::from_utf8_lossy(&c.send(args)).into_owned();
        assert!(got.starts_with('-'), "{args:?}: {got}");
        assert!(got.contains(want), "{args:?}: {got}, want {want}");
    };
    let arity = "wrong number of arguments";
    for args in [
        &["CLUSTER", "MIGRATION"][..],
        &["CLUSTER", "MIGRATION", "IMPORT"],
        &["CLUSTER", "MIGRATION", "IMPORT", "100"],
        &["CLUSTER", "MIGRATION", "IMPORT", "100", "200", "300"],
        &["CLUSTER", "MIGRATION", "STATUS"],
        &["CLUSTER", "MIGRATION", "STATUS", "ID"],
        &["CLUSTER", "MIGRATION", "STATUS", "ID", "id", "EXTRAARG"],
        &["CLUSTER", "MIGRATION", "STATUS", "ALL", "EXTRAARG"],
        &["CLUSTER", "MIGRATION", "CANCEL"],
        &["CLUSTER", "MIGRATION", "CANCEL", "ID"],
        &["CLUSTER", "MIGRATION", "CANCEL", "ID", "12345", "EXTRAARG"],
        &["CLUSTER", "MIGRATION", "CANCEL", "ALL", "EXTRAARG"],
    ] {
        err(&mut c, args, arity);
    }
    for args in [
        &["CLUSTER", "MIGRATION", "UNKNOWN", "1", "2"][..],
        &["CLUSTER", "MIGRATION", "STATUS", "ABC", "DEF"],
        &["CLUSTER", "MIGRATION", "STATUS", "UNKNOWNARG"],
        &["CLUSTER", "MIGRATION", "CANCEL", "UNKNOWNARG"],
        &["CLUSTER", "MIGRATION", "CANCEL", "abc", "def"],
    ] {
        err(&mut c, args, "unknown argument");
    }
    err(&mut c, &["CLUSTER", "MIGRATION", "IMPORT", "200", "100"], "greater than end slot number");
    for (a, b) in [("17000", "18000"), ("14000", "18000"), ("0", "16384"), ("0", "-1"), ("10", "a"), ("sd", "sd")] {
        err(&mut c, &["CLUSTER", "MIGRATION", "IMPORT", a, b], "out of range slot");
    }
    err(&mut c, &["CLUSTER", "MIGRATION", "IMPORT", "100", "200"], "already the owner of the slot");
    err(&mut c, &["CLUSTER", "MIGRATION", "IMPORT", "7000", "15000"], "slots belong to different source nodes");
    err(&mut c, &["CLUSTER", "MIGRATION", "IMPORT", "7000", "8000", "14000", "15000"], "different source nodes");
    err(&mut c, &["CLUSTER", "MIGRATION", "IMPORT", "7000", "8000", "8000", "9000"], "specified multiple times");
    err(&mut c, &["CLUSTER", "MIGRATION", "IMPORT", "7000", "8000", "7900", "9000"], "specified multiple times");
    assert_eq!(c.call(&["CLUSTER", "MIGRATION", "CANCEL", "ID", ""]), Reply::Int(0));
    assert_eq!(c.call(&["CLUSTER", "MIGRATION", "STATUS", "ID", ""]), Reply::Array(Some(vec![])));
    // A slot without an owner; a slot opened by hand.
    let mut b = nodes[1].conn();
    assert_eq!(c.call(&["CLUSTER", "DELSLOTS", "5000"]), Reply::Simple(b"OK".to_vec()));
    err(&mut c, &["CLUSTER", "MIGRATION", "IMPORT", "5000", "5000"], "slot has no owner: 5000");
    assert_eq!(c.call(&["CLUSTER", "ADDSLOTS", "5000"]), Reply::Simple(b"OK".to_vec()));
    let other = myid(&nodes[2]);
    assert_eq!(c.call(&["CLUSTER", "SETSLOT", "15000", "IMPORTING", &other]), Reply::Simple(b"OK".to_vec()));
    err(&mut c, &["CLUSTER", "MIGRATION", "IMPORT", "6000", "6001"], "must be STABLE to start");
    assert_eq!(c.call(&["CLUSTER", "SETSLOT", "15000", "STABLE"]), Reply::Simple(b"OK".to_vec()));
    // An import held before its pause: another one overlapping it is refused.
    assert_eq!(c.call(&["DEBUG", "SLOT-MIGRATION-HOLD", "1"]), Reply::Simple(b"OK".to_vec()));
    let held = import(&mut c, &["7000", "8000"]);
    for (a, b) in [("8000", "9000"), ("7500", "8500"), ("6000", "7000"), ("6500", "7500")] {
        err(&mut c, &["CLUSTER", "MIGRATION", "IMPORT", a, b], "overlapping import exists");
    }
    assert_eq!(c.call(&["CLUSTER", "MIGRATION", "CANCEL", "ID", &held]), Reply::Int(1));
    wait_until("the held task is canceled", Duration::from_secs(10), || {
        status_field(&mut c, &held, "state") == "canceled"
    });
    assert!(status_field(&mut c, &held, "last_error").contains("user request"));
    // A FLUSHDB on the target cancels its imports, as in Redis 8.4.
    let held = import(&mut c, &["7000", "8000"]);
    wait_until("the task holds", Duration::from_secs(10), || status_field(&mut c, &held, "state") == "streaming");
    assert_eq!(c.call(&["FLUSHDB"]), Reply::Simple(b"OK".to_vec()));
    wait_until("the flush cancels the task", Duration::from_secs(10), || {
        status_field(&mut c, &held, "state") == "canceled"
    });
    assert!(status_field(&mut c, &held, "last_error").contains("flush"));
    assert_eq!(c.call(&["DEBUG", "SLOT-MIGRATION-HOLD", "0"]), Reply::Simple(b"OK".to_vec()));
    // Three small tasks: STATUS ALL lists them newest first on the target and the
    // source, with Redis 8.4's fields in its order.
    let mut ids = Vec::new();
    for (a, b) in [("7000", "7001"), ("7002", "7003"), ("7004", "7005")] {
        let id = import(&mut c, &[a, b]);
        wait_until("the task completes", Duration::from_secs(20), || status_field(&mut c, &id, "state") == "completed");
        ids.push(id);
    }
    let fields = ["id", "slots", "source", "dest", "operation", "state", "last_error", "retries"];
    for (conn, op) in [(&mut c, "import"), (&mut b, "migrate")] {
        let Reply::Array(Some(tasks)) = conn.call(&["CLUSTER", "MIGRATION", "STATUS", "ALL"]) else { panic!() };
        let mine: Vec<Vec<String>> = tasks
            .iter()
            .map(|t| {
                let Reply::Array(Some(kv)) = t else { panic!("{t:?}") };
                kv.iter()
                    .map(|v| {
                        if let Reply::Bulk(Some(b)) = v {
                            String::from_utf8_lossy(b).into_owned()
                        } else {
                            String::new()
                        }
                    })
                    .collect::<Vec<String>>()
            })
            .filter(|kv| ids.contains(&kv[1]))
            .collect();
        assert_eq!(mine.len(), 3, "{op}: {mine:?}");
        for (i, kv) in mine.iter().enumerate() {
            let names: Vec<&str> = kv.iter().step_by(2).map(|s| s.as_str()).take(fields.len()).collect();
            assert_eq!(names, fields, "{op}");
            assert_eq!(kv[1], ids[2 - i], "{op}: newest first");
            assert_eq!(kv[3], ["7004-7005", "7002-7003", "7000-7001"][i], "{op}");
            assert_eq!(kv[9], op);
            assert_eq!(kv[11], "completed", "{op}: {kv:?}");
            assert_eq!(kv[15], "0", "{op}: retries");
        }
    }
}

/// The source fails over midway (its replica takes its slots while it is stopped):
/// the import's attempt from the old source fails, and the task tries again from the
/// new owner and completes with every key, as Redis 8.4's import does.
#[test]
fn an_import_tries_again_from_the_new_owner_after_a_failover_of_its_source() {
    let nodes = cluster_nodes(6);
    let mut args = vec!["--cluster".to_string(), "create".to_string()];
    args.extend(nodes.iter().map(|n| n.addr()));
    args.extend(["--cluster-replicas", "1", "--cluster-yes"].map(String::from));
    let (ok, out) = ferrokv_tests::cluster::redis_cli(&args);
    assert!(ok, "redis-cli --cluster create failed:\n{out}");
    wait_until("cluster_state:ok", Duration::from_secs(30), || nodes.iter().all(ferrokv_tests::cluster::state_ok));
    let info = |n: &Server, name: &str| -> String {
        let t = text(n, &["INFO", "replication"]);
        t.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).unwrap_or("").trim().to_string()
    };
    // The owner of slot 0, its replica (link up), and another master.
    let owner_port = {
        let t = text(&nodes[0], &["CLUSTER", "NODES"]);
        let line =
            t.lines().find(|l| l.contains("master") && l.split(' ').skip(8).any(|r| r.starts_with("0-"))).unwrap();
        line.split(' ').nth(1).unwrap().split(['@', ':']).nth(1).unwrap().parse::<u16>().unwrap()
    };
    let src = nodes.iter().position(|n| n.port() == owner_port).expect("the owner");
    wait_until("the source's replica is linked", Duration::from_secs(30), || {
        nodes.iter().any(|n| info(n, "master_port") == owner_port.to_string() && info(n, "master_link_status") == "up")
    });
    let rep = nodes.iter().position(|n| info(n, "master_port") == owner_port.to_string()).expect("a replica");
    let dst = nodes.iter().position(|n| n.port() != owner_port && info(n, "role") == "master").expect("a master");
    let keys = low_keys(300);
    let mut s = nodes[src].conn();
    for k in &keys {
        assert_eq!(s.call(&["SET", k, k]), Reply::Simple(b"OK".to_vec()));
    }
    assert_eq!(s.call(&["WAIT", "1", "5000"]), Reply::Int(1));
    // The task's first attempt waits on the stopped source; its replica takes over.
    nodes[src].signal(libc::SIGSTOP);
    let id = import(&mut nodes[dst].conn(), &["0", "999"]);
    wait_until("the task asks the source", Duration::from_secs(20), || status(&nodes[dst], &id).contains("snapshot"));
    assert_eq!(nodes[rep].conn().call(&["CLUSTER", "FAILOVER", "TAKEOVER"]), Reply::Simple(b"OK".to_vec()));
    wait_until("the replica is a master", Duration::from_secs(20), || info(&nodes[rep], "role") == "master");
    let rep_id = myid(&nodes[rep]);
    // (The target keeps the old source as the slots' owner while it imports them, as
    // Redis does: its first attempt fails on the source, and undoing it lets the new
    // owner's claim in.)
    nodes[src].signal(libc::SIGCONT);
    let mut d = nodes[dst].conn();
    wait_until("the task completes", Duration::from_secs(60), || status_field(&mut d, &id, "state") == "completed");
    assert_eq!(status_field(&mut d, &id, "source"), rep_id, "the last attempt's source");
    let retries: u64 = status_field(&mut d, &id, "retries").parse().unwrap();
    assert!(retries >= 1, "the first attempt, from the old source, cannot have completed");
    d.send(&["READWRITE"]);
    for k in &keys {
        assert_eq!(d.call(&["GET", k]), Reply::Bulk(Some(k.clone().into_bytes())), "{k} on the target");
    }
    wait_until("check is clean", Duration::from_secs(30), || {
        std::panic::catch_unwind(|| check_clean(&nodes[dst])).is_ok()
    });
}
