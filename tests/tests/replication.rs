//! Replication with Redis's PSYNC protocol, against redis-server 7.0.15 both ways: a
//! redis-server replica of a ferrokv master and a ferrokv replica of a redis-server
//! master hold the master's dataset after a full sync (diskless and disk-based) and
//! after a stream of mixed writes; a dropped link resumes with a partial resync that
//! keeps the offset; WAIT counts acknowledgements; replicas refuse writes; REPLICAOF
//! NO ONE keeps the data.

use ferrokv_tests::dataset::{fill, snapshot};
use ferrokv_tests::resp::Reply;
use ferrokv_tests::{Conn, Kind, Server};
use std::time::{Duration, Instant};

fn call(c: &mut Conn, args: &[&str]) -> Reply {
    c.call(args)
}

fn info(c: &mut Conn, section: &str) -> String {
    match call(c, &["INFO", section]) {
        Reply::Bulk(Some(b)) | Reply::Verbatim(b) => String::from_utf8(b).unwrap(),
        other => panic!("INFO: {other:?}"),
    }
}

fn field(c: &mut Conn, section: &str, name: &str) -> Option<String> {
    let text = info(c, section);
    text.lines().find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_string()))
}

fn int(r: Reply) -> i64 {
    match r {
        Reply::Int(n) => n,
        other => panic!("expected an integer: {other:?}"),
    }
}

/// Waits until `f` holds (polling), or panics with `what`.
fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for: {what}");
}

fn start(kind: Kind, args: &[&str]) -> Server {
    Server::start(kind, args).unwrap_or_else(|e| panic!("{e}"))
}

/// A replica of `master` (started with `replicaof`), once its link is up.
fn replica_of(kind: Kind, master: &Server, extra: &[&str]) -> Server {
    let port = master.port().to_string();
    let mut args = vec!["--replicaof", "127.0.0.1", &port];
    if kind == Kind::Redis {
        // redis-server takes the directive's two words as one argument.
        args = vec!["--replicaof"];
    }
    let joined = format!("127.0.0.1 {port}");
    if kind == Kind::Redis {
        args.push(&joined);
    }
    args.extend_from_slice(extra);
    let r = start(kind, &args);
    let mut c = r.conn();
    eventually("the replica's link is up", Duration::from_secs(20), || {
        field(&mut c, "replication", "master_link_status").as_deref() == Some("up")
    });
    r
}

/// Writes of every kind the propagation rewrites: relative expiries, SPOP, INCRBYFLOAT,
/// a transaction, a key expiring on the master, deletions.
fn mixed_writes(c: &mut Conn) {
    let cmds: &[&[&str]] = &[
        &["SET", "w:ex", "v", "EX", "1000"],
        &["SET", "w:px", "v", "PX", "50"],
        &["SADD", "w:set", "a", "b", "c", "d", "e"],
        &["SPOP", "w:set"],
        &["SPOP", "w:set", "2"],
        &["SET", "w:f", "10.5"],
        &["INCRBYFLOAT", "w:f", "0.1"],
        &["HSET", "w:h", "a", "1"],
        &["HINCRBYFLOAT", "w:h", "a", "2.5"],
        &["MULTI"],
        &["MSET", "w:m1", "1", "w:m2", "2"],
        &["INCR", "w:m1"],
        &["LPUSH", "w:l", "x", "y", "z"],
        &["EXEC"],
        &["ZADD", "w:z", "1", "a", "2", "b"],
        &["ZINCRBY", "w:z", "5", "a"],
        &["SETRANGE", "w:s", "3", "abc"],
        &["EXPIRE", "s:1", "5000"],
        &["PERSIST", "s:5"],
        &["DEL", "s:2", "s:3"],
        &["LPOP", "l:small"],
        &["RPOPLPUSH", "l:small", "w:l"],
        &["GETEX", "s:4", "EX", "7000"],
    ];
    for cmd in cmds {
        let r = call(c, cmd);
        assert!(!matches!(r, Reply::Error(_)), "{cmd:?}: {r:?}");
    }
    // The PX 50 key expires on the master, which deletes it and sends DEL.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(call(c, &["EXISTS", "w:px"]), Reply::Int(0));
}

/// The replica's dataset equals the master's (after WAIT, or once offsets match).
fn assert_same(master: &mut Conn, replica: &mut Conn) {
    eventually("replica offset reaches the master's", Duration::from_secs(10), || {
        let m = field(master, "replication", "master_repl_offset");
        let r = field(replica, "replication", "slave_repl_offset");
        m.is_some() && m == r
    });
    let (m, r) = (snapshot(master), snapshot(replica));
    assert_eq!(m.len(), r.len(), "key counts differ");
    for (a, b) in m.iter().zip(r.iter()) {
        assert_eq!(a, b);
    }
}

fn sync_roundtrip(master_kind: Kind, replica_kind: Kind, diskless: bool) {
    let disk = if diskless { "yes" } else { "no" };
    let master = start(master_kind, &["--repl-diskless-sync", disk, "--repl-diskless-sync-delay", "0"]);
    let mut m = master.conn();
    fill(&mut m, 7);
    let replica = replica_of(replica_kind, &master, &[]);
    let mut r = replica.conn();
    assert_same(&mut m, &mut r);
    mixed_writes(&mut m);
    assert_eq!(int(call(&mut m, &["WAIT", "1", "5000"])), 1, "WAIT 1 counts the replica");
    assert_same(&mut m, &mut r);
    assert_eq!(call(&mut r, &["EXISTS", "w:px"]), Reply::Int(0), "the master's DEL of an expired key arrived");
}

#[test]
fn redis_replicates_from_a_ferrokv_master_diskless() {
    sync_roundtrip(Kind::Ferrokv, Kind::Redis, true);
}

#[test]
fn redis_replicates_from_a_ferrokv_master_disk_based() {
    sync_roundtrip(Kind::Ferrokv, Kind::Redis, false);
}

#[test]
fn ferrokv_replicates_from_a_redis_master() {
    sync_roundtrip(Kind::Redis, Kind::Ferrokv, true);
}

#[test]
fn ferrokv_replicates_from_a_redis_master_disk_based() {
    sync_roundtrip(Kind::Redis, Kind::Ferrokv, false);
}

#[test]
fn ferrokv_replicates_from_ferrokv() {
    sync_roundtrip(Kind::Ferrokv, Kind::Ferrokv, true);
}

/// The replica's connection on the master: CLIENT LIST TYPE replica, flag `S`.
fn replica_client_id(m: &mut Conn) -> String {
    let list = match call(m, &["CLIENT", "LIST", "TYPE", "replica"]) {
        Reply::Bulk(Some(b)) | Reply::Verbatim(b) => String::from_utf8(b).unwrap(),
        other => panic!("{other:?}"),
    };
    list.lines()
        .find(|l| l.contains(" flags=S "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|w| w.strip_prefix("id="))
        .unwrap_or_else(|| panic!("no replica in CLIENT LIST: {list}"))
        .to_string()
}

/// A short link drop resumes with +CONTINUE from the backlog: no second full sync,
/// the offset carries on, and the writes made meanwhile arrive.
fn partial_resync(master_kind: Kind, replica_kind: Kind) {
    let master = start(master_kind, &["--repl-diskless-sync-delay", "0"]);
    let mut m = master.conn();
    fill(&mut m, 3);
    let replica = replica_of(replica_kind, &master, &[]);
    let mut r = replica.conn();
    assert_same(&mut m, &mut r);
    assert_eq!(field(&mut m, "stats", "sync_full").as_deref(), Some("1"));
    let id = replica_client_id(&mut m);
    assert_eq!(call(&mut m, &["CLIENT", "KILL", "ID", &id]), Reply::Int(1));
    for i in 0..50 {
        call(&mut m, &["SET", &format!("after-drop:{i}"), "v"]);
    }
    eventually("the link is back", Duration::from_secs(20), || {
        field(&mut m, "stats", "sync_partial_ok").as_deref() == Some("1")
            && field(&mut r, "replication", "master_link_status").as_deref() == Some("up")
    });
    assert_eq!(field(&mut m, "stats", "sync_full").as_deref(), Some("1"), "no second full sync");
    assert_same(&mut m, &mut r);
}

#[test]
fn partial_resync_after_a_link_drop_ferrokv_master() {
    partial_resync(Kind::Ferrokv, Kind::Redis);
}

#[test]
fn partial_resync_after_a_link_drop_ferrokv_replica() {
    partial_resync(Kind::Redis, Kind::Ferrokv);
}

/// A link thread retrying an unreachable master sleeps a second between attempts; a
/// promotion and a new REPLICAOF within that second must not wake it onto the new link
/// (it ran a second session there, with nothing to offer, so a full sync followed the
/// first: a replica LOADING right after a manual failover in tests/failover.rs).
fn one_sync_after_replicaof_changes_quickly(kind: Kind) {
    let master = start(kind, &["--repl-diskless-sync-delay", "0"]);
    let mut m = master.conn();
    call(&mut m, &["SET", "k", "v"]);
    let replica = start(kind, &[]);
    let mut r = replica.conn();
    let dead = ferrokv_tests::server::free_port().to_string();
    assert_eq!(call(&mut r, &["REPLICAOF", "127.0.0.1", &dead]), Reply::Simple(b"OK".to_vec()));
    // Its first attempt is refused at once; the link thread then sleeps.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(call(&mut r, &["REPLICAOF", "NO", "ONE"]), Reply::Simple(b"OK".to_vec()));
    let port = master.port().to_string();
    assert_eq!(call(&mut r, &["REPLICAOF", "127.0.0.1", &port]), Reply::Simple(b"OK".to_vec()));
    eventually("the replica's link is up", Duration::from_secs(20), || {
        field(&mut r, "replication", "master_link_status").as_deref() == Some("up")
    });
    // Past the old thread's second: nothing else reached the master.
    std::thread::sleep(Duration::from_millis(1500));
    let full = field(&mut m, "stats", "sync_full").unwrap_or_default();
    let partial = field(&mut m, "stats", "sync_partial_ok").unwrap_or_default();
    assert_eq!((full.as_str(), partial.as_str()), ("1", "0"), "one sync, on {kind:?}");
    assert_eq!(field(&mut m, "replication", "connected_slaves").as_deref(), Some("1"));
    assert_eq!(call(&mut r, &["GET", "k"]), Reply::Bulk(Some(b"v".to_vec())));
}

#[test]
fn one_sync_after_replicaof_changes_quickly_redis() {
    one_sync_after_replicaof_changes_quickly(Kind::Redis);
}

#[test]
fn one_sync_after_replicaof_changes_quickly_ferrokv() {
    one_sync_after_replicaof_changes_quickly(Kind::Ferrokv);
}

#[test]
fn replica_refuses_writes_and_promotion_keeps_the_data() {
    let master = start(Kind::Ferrokv, &["--repl-diskless-sync-delay", "0"]);
    let mut m = master.conn();
    call(&mut m, &["SET", "k", "v"]);
    let replica = replica_of(Kind::Ferrokv, &master, &[]);
    let mut r = replica.conn();
    eventually("k replicated", Duration::from_secs(10), || {
        call(&mut r, &["GET", "k"]) == Reply::Bulk(Some(b"v".to_vec()))
    });
    assert_eq!(
        call(&mut r, &["SET", "x", "1"]),
        Reply::Error(b"READONLY You can't write against a read only replica.".to_vec())
    );
    assert!(
        matches!(call(&mut r, &["WAIT", "0", "0"]), Reply::Error(e) if e.starts_with(b"ERR WAIT cannot be used with replica"))
    );
    // ROLE on both sides.
    match call(&mut r, &["ROLE"]) {
        Reply::Array(Some(items)) => {
            assert_eq!(items[0], Reply::Bulk(Some(b"slave".to_vec())));
            assert_eq!(items[2], Reply::Int(master.port() as i64));
            assert_eq!(items[3], Reply::Bulk(Some(b"connected".to_vec())));
        }
        other => panic!("ROLE: {other:?}"),
    }
    eventually("the master lists its replica in ROLE", Duration::from_secs(10), || match call(&mut m, &["ROLE"]) {
        Reply::Array(Some(items)) => matches!(&items[2], Reply::Array(Some(v)) if v.len() == 1),
        _ => false,
    });
    assert_eq!(call(&mut r, &["REPLICAOF", "NO", "ONE"]), Reply::Simple(b"OK".to_vec()));
    assert_eq!(call(&mut r, &["GET", "k"]), Reply::Bulk(Some(b"v".to_vec())));
    assert_eq!(call(&mut r, &["SET", "x", "1"]), Reply::Simple(b"OK".to_vec()));
    assert_eq!(field(&mut r, "replication", "role").as_deref(), Some("master"));
    // The old history stays valid as replid2 up to the promotion.
    let old = field(&mut m, "replication", "master_replid").unwrap();
    assert_eq!(field(&mut r, "replication", "master_replid2"), Some(old));
    assert_eq!(
        call(&mut r, &["REPLICAOF", "127.0.0.1", "notaport"]),
        Reply::Error(b"ERR Invalid master port".to_vec())
    );
}

#[test]
fn wait_counts_acknowledging_replicas_and_times_out() {
    let master = start(Kind::Ferrokv, &["--repl-diskless-sync-delay", "0"]);
    let mut m = master.conn();
    assert_eq!(int(call(&mut m, &["WAIT", "0", "0"])), 0);
    assert_eq!(int(call(&mut m, &["WAIT", "1", "100"])), 0, "no replica: times out with 0");
    let _replica = replica_of(Kind::Ferrokv, &master, &[]);
    call(&mut m, &["SET", "k", "v"]);
    assert_eq!(int(call(&mut m, &["WAIT", "1", "0"])), 1);
    let started = Instant::now();
    assert_eq!(int(call(&mut m, &["WAIT", "2", "300"])), 1, "only one replica acknowledges");
    assert!(started.elapsed() >= Duration::from_millis(250), "WAIT waited for its timeout");
    assert_eq!(call(&mut m, &["WAIT", "1", "-1"]), Reply::Error(b"ERR timeout is negative".to_vec()));
    assert_eq!(
        call(&mut m, &["WAIT", "x", "0"]),
        Reply::Error(b"ERR value is not an integer or out of range".to_vec())
    );
}

/// Redis's rule: on a replica an expired key is hidden from reads but stays until
/// the master's DEL arrives.
#[test]
fn expired_keys_on_a_replica_wait_for_the_masters_del() {
    let master = start(Kind::Redis, &["--repl-diskless-sync-delay", "0", "--enable-debug-command", "yes"]);
    let mut m = master.conn();
    assert_eq!(call(&mut m, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]), Reply::Simple(b"OK".to_vec()));
    let replica = replica_of(Kind::Ferrokv, &master, &[]);
    let mut r = replica.conn();
    call(&mut m, &["SET", "gone", "v", "PX", "100"]);
    call(&mut m, &["SET", "kept", "v"]);
    eventually("both keys replicated", Duration::from_secs(10), || int(call(&mut r, &["DBSIZE"])) == 2);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(call(&mut r, &["GET", "gone"]), Reply::Bulk(None), "hidden once expired");
    assert_eq!(int(call(&mut r, &["DBSIZE"])), 2, "but not deleted by the replica");
    // The master's lookup expires it and propagates DEL.
    assert_eq!(call(&mut m, &["GET", "gone"]), Reply::Bulk(None));
    eventually("the master's DEL arrived", Duration::from_secs(10), || int(call(&mut r, &["DBSIZE"])) == 1);
}

/// `min-replicas-to-write`: writes are refused with NOREPLICAS until enough replicas
/// acknowledge within `min-replicas-max-lag`; reads are not.
#[test]
fn min_replicas_to_write_refuses_writes_without_replicas() {
    for kind in [Kind::Ferrokv, Kind::Redis] {
        let master = start(kind, &["--repl-diskless-sync-delay", "0", "--min-replicas-to-write", "1"]);
        let mut m = master.conn();
        assert_eq!(
            call(&mut m, &["SET", "k", "v"]),
            Reply::Error(b"NOREPLICAS Not enough good replicas to write.".to_vec()),
            "{kind:?}"
        );
        assert_eq!(call(&mut m, &["GET", "k"]), Reply::Bulk(None), "{kind:?}");
        let _replica = replica_of(kind, &master, &[]);
        eventually("a good replica lets writes through", Duration::from_secs(10), || {
            call(&mut m, &["SET", "k", "v"]) == Reply::Simple(b"OK".to_vec())
        });
    }
}

/// A replica that stops reading is dropped once it is `client-output-buffer-limit
/// replica` behind (the master's memory stays bounded), and resyncs when it reads again.
#[test]
fn a_replica_past_its_output_limit_is_dropped_and_resyncs() {
    let master =
        start(Kind::Ferrokv, &["--repl-diskless-sync-delay", "0", "--client-output-buffer-limit", "replica 1mb 0 0"]);
    let mut m = master.conn();
    let replica = replica_of(Kind::Redis, &master, &[]);
    assert_eq!(field(&mut m, "stats", "sync_full").as_deref(), Some("1"));
    replica.signal(libc::SIGSTOP);
    let value = "x".repeat(10_000);
    for i in 0..1000 {
        call(&mut m, &["SET", &format!("big:{}", i % 100), &value]);
    }
    eventually("the stalled replica is dropped", Duration::from_secs(20), || {
        field(&mut m, "replication", "connected_slaves").as_deref() == Some("0")
    });
    let backlog: u64 = field(&mut m, "replication", "repl_backlog_histlen").unwrap().parse().unwrap();
    assert!(backlog <= 1 << 20, "the backlog is bounded by repl-backlog-size: {backlog}");
    replica.signal(libc::SIGCONT);
    let mut r = replica.conn();
    eventually("the replica is back", Duration::from_secs(30), || {
        field(&mut m, "replication", "connected_slaves").as_deref() == Some("1")
            && field(&mut r, "replication", "master_link_status").as_deref() == Some("up")
    });
    assert_same(&mut m, &mut r);
}

/// SYNC (the pre-PSYNC protocol): the RDB as one bulk string, then the stream.
#[test]
fn sync_sends_the_image_as_a_bulk_string() {
    use std::io::{Read, Write};
    for kind in [Kind::Ferrokv, Kind::Redis] {
        let master = start(kind, &["--repl-diskless-sync-delay", "0"]);
        let mut m = master.conn();
        call(&mut m, &["SET", "k", "v"]);
        let mut s = std::net::TcpStream::connect(("127.0.0.1", master.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"SYNC\r\n").unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let (header_end, len) = loop {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "{kind:?}: closed before the image");
            got.extend_from_slice(&buf[..n]);
            // Bare newlines may come first while the image is prepared.
            let start = got.iter().position(|&b| b != b'\n').unwrap_or(got.len());
            if let Some(i) = got[start..].windows(2).position(|w| w == b"\r\n") {
                let header = std::str::from_utf8(&got[start..start + i]).unwrap();
                let len: usize = header.strip_prefix('$').expect("a bulk header").parse().unwrap();
                break (start + i + 2, len);
            }
        };
        while got.len() < header_end + len {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "{kind:?}: closed inside the image");
            got.extend_from_slice(&buf[..n]);
        }
        let image = &got[header_end..header_end + len];
        assert!(image.starts_with(b"REDIS0010"), "{kind:?}: {:?}", &image[..9.min(image.len())]);
        assert!(image.windows(1).count() > 20);
    }
}

#[test]
fn replconf_errors_match_redis() {
    for kind in [Kind::Ferrokv, Kind::Redis] {
        let s = start(kind, &[]);
        let mut c = s.conn();
        assert_eq!(
            call(&mut c, &["REPLCONF", "listening-port"]),
            Reply::Error(b"ERR syntax error".to_vec()),
            "{kind:?}"
        );
        assert_eq!(
            call(&mut c, &["REPLCONF", "foo", "bar"]),
            Reply::Error(b"ERR Unrecognized REPLCONF option: foo".to_vec()),
            "{kind:?}"
        );
        assert_eq!(call(&mut c, &["REPLCONF", "listening-port", "6380"]), Reply::Simple(b"OK".to_vec()), "{kind:?}");
        assert_eq!(
            call(&mut c, &["REPLICAOF", "127.0.0.1", "70000"]),
            Reply::Error(b"ERR Invalid master port".to_vec()),
            "{kind:?}"
        );
        match call(&mut c, &["ROLE"]) {
            Reply::Array(Some(items)) => assert_eq!(items[0], Reply::Bulk(Some(b"master".to_vec())), "{kind:?}"),
            other => panic!("{kind:?}: {other:?}"),
        }
    }
}

/// A replica of a replica gets the top master's stream through the middle one, with
/// the top master's ids and offsets (a redis-server and a ferrokv at the bottom).
#[test]
fn chained_replicas_get_the_top_masters_stream() {
    let master = start(Kind::Ferrokv, &["--repl-diskless-sync-delay", "0"]);
    let mut m = master.conn();
    fill(&mut m, 11);
    let middle = replica_of(Kind::Ferrokv, &master, &["--repl-diskless-sync-delay", "0"]);
    let mut mid = middle.conn();
    let bottom_redis = replica_of(Kind::Redis, &middle, &[]);
    let bottom_ferrokv = replica_of(Kind::Ferrokv, &middle, &[]);
    mixed_writes(&mut m);
    assert_eq!(int(call(&mut m, &["WAIT", "1", "5000"])), 1);
    assert_same(&mut m, &mut mid);
    let top_id = field(&mut m, "replication", "master_replid");
    for b in [&bottom_redis, &bottom_ferrokv] {
        let mut c = b.conn();
        assert_same(&mut mid, &mut c);
        let (bm, mm) = (snapshot(&mut c), snapshot(&mut m));
        assert_eq!(bm, mm, "{:?} holds the top master's data", b.kind());
        assert_eq!(field(&mut c, "replication", "master_replid"), top_id, "{:?} uses the top master's id", b.kind());
    }
}

/// `replica-serve-stale-data no`: while the link is down a replica answers MASTERDOWN
/// to data commands and still INFO (flagged `stale`); once up, it serves.
#[test]
fn a_replica_without_stale_data_answers_masterdown_while_its_link_is_down() {
    for kind in [Kind::Ferrokv, Kind::Redis] {
        // A master that never answers: a port held open but never accepted from (a
        // closed port could be taken by a server another test starts meanwhile, and
        // the replica would sync from it).
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = dead.local_addr().unwrap().port().to_string();
        let joined = format!("127.0.0.1 {port}");
        let args: Vec<&str> = match kind {
            Kind::Redis => vec!["--replicaof", &joined],
            _ => vec!["--replicaof", "127.0.0.1", &port],
        };
        // Set after start: PING is not a `stale` command, so the harness's PING would
        // get MASTERDOWN too.
        let r = start(kind, &args);
        let mut c = r.conn();
        assert_eq!(call(&mut c, &["CONFIG", "SET", "replica-serve-stale-data", "no"]), Reply::Simple(b"OK".to_vec()));
        assert!(matches!(call(&mut c, &["PING"]), Reply::Error(e) if e.starts_with(b"MASTERDOWN")), "{kind:?}");
        assert_eq!(
            call(&mut c, &["GET", "k"]),
            Reply::Error(b"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.".to_vec()),
            "{kind:?}"
        );
        assert_eq!(field(&mut c, "replication", "master_link_status").as_deref(), Some("down"), "{kind:?}");
        assert_eq!(call(&mut c, &["REPLICAOF", "NO", "ONE"]), Reply::Simple(b"OK".to_vec()), "{kind:?}");
        assert_eq!(call(&mut c, &["GET", "k"]), Reply::Bulk(None), "{kind:?}");
        drop(dead);
    }
}

/// With the AOF on, the effects go to both consumers: a replica and the AOF agree
/// (the master killed and restarted from its AOF holds what the replica holds).
#[test]
fn the_aof_and_a_replica_get_the_same_stream() {
    let mut master =
        start(Kind::Ferrokv, &["--repl-diskless-sync-delay", "0", "--appendonly", "yes", "--appendfsync", "always"]);
    let mut m = master.conn();
    fill(&mut m, 5);
    let replica = replica_of(Kind::Ferrokv, &master, &[]);
    let mut r = replica.conn();
    mixed_writes(&mut m);
    // A BGREWRITEAOF in the middle: its cut drains the logs for both consumers too.
    assert!(matches!(call(&mut m, &["BGREWRITEAOF"]), Reply::Simple(_)));
    for i in 0..200 {
        call(&mut m, &["INCR", &format!("counter:{}", i % 7)]);
    }
    assert_eq!(int(call(&mut m, &["WAIT", "1", "5000"])), 1);
    assert_same(&mut m, &mut r);
    eventually("the rewrite is done", Duration::from_secs(20), || {
        field(&mut m, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
    });
    drop(m);
    master.kill();
    master.restart();
    let mut m = master.conn();
    let (a, b) = (snapshot(&mut m), snapshot(&mut r));
    assert_eq!(a, b, "the AOF replays what the replica holds");
}

/// Turning the AOF on while a replica streams: the parts logged before the AOF's cut
/// go to the replica only, those after to both.
#[test]
fn turning_the_aof_on_with_a_replica_attached() {
    let mut master = start(Kind::Ferrokv, &["--repl-diskless-sync-delay", "0"]);
    let mut m = master.conn();
    fill(&mut m, 9);
    let replica = replica_of(Kind::Ferrokv, &master, &[]);
    let mut r = replica.conn();
    assert_eq!(call(&mut m, &["CONFIG", "SET", "appendonly", "yes"]), Reply::Simple(b"OK".to_vec()));
    for i in 0..300 {
        call(&mut m, &["INCR", &format!("c:{}", i % 11)]);
        call(&mut m, &["RPUSH", "l:small", &i.to_string()]);
    }
    eventually("the AOF is on", Duration::from_secs(20), || {
        field(&mut m, "persistence", "aof_enabled").as_deref() == Some("1")
            && field(&mut m, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
    });
    mixed_writes(&mut m);
    assert_eq!(int(call(&mut m, &["WAIT", "1", "5000"])), 1);
    assert_same(&mut m, &mut r);
    // What the replica holds, taken before the master goes: once the master is back the
    // replica resyncs from it and answers LOADING meanwhile.
    let held = snapshot(&mut r);
    drop(m);
    master.kill();
    master.restart_with(&["--appendonly", "yes"]);
    let mut m = master.conn();
    assert_eq!(snapshot(&mut m), held, "the AOF replays what the replica holds");
}
