//! Several databases in standalone mode (`databases 16`), against redis-server 7.0.15:
//! a differential stream over databases 0..3 (SELECT, MOVE, SWAPDB, COPY ... DB,
//! FLUSHDB, FLUSHALL, expiry, WATCH/MULTI/EXEC on several connections) on one and two
//! shards; WATCH invalidated by SWAPDB and FLUSHDB as Redis 7.0 does; a blocked client
//! woken only by its own database; keyspace notifications naming the database; INFO
//! keyspace and CLIENT LIST's `db=`; dump.rdb and the AOF keep each database across a
//! restart (and redis-server loads ferrokv's dump.rdb); a replica (ferrokv and
//! redis-server) receives writes to database 3; cluster mode refuses other databases.

use ferrokv_tests::diff::{for_each_seed, steps, w, Check, CommandGen, Differ, Gen, StreamOptions};
use ferrokv_tests::resp::Reply;
use ferrokv_tests::{Conn, Kind, Server};
use std::time::{Duration, Instant};

const DBS: &[&str] = &["0", "1", "2", "3"];

fn db(g: &mut Gen) -> Vec<u8> {
    if g.chance(4) {
        g.pick(&["16", "-1", "x", "4294967296"])
    } else {
        g.pick(DBS)
    }
}

fn select(g: &mut Gen) -> Vec<Vec<u8>> {
    vec![w("SELECT"), db(g)]
}

fn table() -> Vec<CommandGen> {
    vec![
        CommandGen::new("SELECT", 12, select),
        CommandGen::new("SET", 12, |g| vec![w("SET"), g.key(), g.value()]),
        CommandGen::new("GET", 10, |g| vec![w("GET"), g.key()]),
        CommandGen::new("INCR", 4, |g| vec![w("INCR"), g.key()]),
        CommandGen::new("DEL", 3, |g| {
            let mut a = vec![w("DEL")];
            a.extend(g.keys(1, 3));
            a
        }),
        CommandGen::new("RPUSH", 4, |g| vec![w("RPUSH"), g.key(), g.value()]),
        CommandGen::new("LRANGE", 2, |g| vec![w("LRANGE"), g.key(), w("0"), w("-1")]),
        CommandGen::new("SADD", 2, |g| vec![w("SADD"), g.key(), g.value()]),
        CommandGen::new("EXPIRE", 3, |g| vec![w("EXPIRE"), g.key(), g.pick(&["100", "1000", "0"])]),
        CommandGen::new("TTL", 2, |g| vec![w("TTL"), g.key()]).check(Check::Within(2)),
        CommandGen::new("EXISTS", 3, |g| {
            let mut a = vec![w("EXISTS")];
            a.extend(g.keys(1, 3));
            a
        }),
        CommandGen::new("MOVE", 6, |g| vec![w("MOVE"), g.key(), db(g)]),
        CommandGen::new("SWAPDB", 3, |g| vec![w("SWAPDB"), db(g), db(g)]),
        CommandGen::new("COPY", 5, |g| {
            let mut a = vec![w("COPY"), g.key(), g.key()];
            if g.chance(70) {
                a.push(w("DB"));
                a.push(db(g));
            }
            if g.chance(40) {
                a.push(w("REPLACE"));
            }
            a
        }),
        CommandGen::new("DBSIZE", 4, |_| vec![w("DBSIZE")]),
        // One key at most (replies inside EXEC are compared as they are).
        CommandGen::new("KEYS", 2, |g| vec![w("KEYS"), g.key()]),
        CommandGen::new("FLUSHDB", 1, |_| vec![w("FLUSHDB")]),
        CommandGen::new("FLUSHALL", 1, |_| vec![w("FLUSHALL")]),
        CommandGen::new("WATCH", 3, |g| vec![w("WATCH"), g.key()]),
        CommandGen::new("MULTI", 3, |_| vec![w("MULTI")]),
        CommandGen::new("EXEC", 3, |_| vec![w("EXEC")]),
        CommandGen::new("UNWATCH", 1, |_| vec![w("UNWATCH")]),
        CommandGen::new("EVAL", 2, |g| {
            // A script's SELECT is its own: the caller's database does not change.
            vec![
                w("EVAL"),
                w("redis.call('select', ARGV[1]); redis.call('set', KEYS[1], ARGV[2]); return redis.call('dbsize')"),
                w("1"),
                g.key(),
                g.pick(DBS),
                g.value(),
            ]
        }),
    ]
}

/// Every database's size and keys, and each key's value, type and TTL (on a new
/// connection pair).
fn final_state(d: &mut Differ) -> Result<(), String> {
    let exact = |args: &[&str]| -> (Vec<Vec<u8>>, Check) { (args.iter().map(|a| w(a)).collect(), Check::Exact) };
    let mut batch = Vec::new();
    for n in DBS {
        batch.push(exact(&["SELECT", n]));
        batch.push(exact(&["DBSIZE"]));
        batch.push((vec![w("KEYS"), w("*")], Check::Unordered));
        for k in ferrokv_tests::diff::KEYS {
            batch.push(exact(&["TYPE", k]));
            batch.push(exact(&["GET", k]));
            batch.push(exact(&["LRANGE", k, "0", "-1"]));
            // Set members in any order (a hash table's order differs).
            batch.push((vec![w("SMEMBERS"), w(k)], Check::Unordered));
            batch.push((vec![w("PTTL"), w(k)], Check::Within(2000)));
        }
    }
    batch.push(exact(&["SELECT", "0"]));
    d.check_batch(0, &batch)
}

fn run(label: &str, shards: &str, pipeline: usize) {
    for_each_seed(&[1, 2, 3, 4], |seed| {
        let mut d = Differ::new(label, seed, &["--server-threads", shards], 3, false);
        let options = StreamOptions { pipeline, final_check: false, ..Default::default() };
        d.run(&table(), steps(1500), &options)?;
        // A new pair of connections for the final look (the stream's may be in MULTI).
        d.fresh_pair();
        final_state(&mut d)
    });
}

#[test]
fn databases_stream_one_shard() {
    run("databases_stream_one_shard", "1", 1);
}

#[test]
fn databases_stream_two_shards_pipelined() {
    run("databases_stream_two_shards_pipelined", "2", 8);
}

/// Both servers, the same scripted session; returns every reply.
fn session(server: &Server, script: impl Fn(&mut Conn, &mut Conn) -> Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let (mut a, mut b) = (server.conn(), server.conn());
    script(&mut a, &mut b)
}

fn both(args: &[&str], script: impl Fn(&mut Conn, &mut Conn) -> Vec<Vec<u8>>) {
    let ours = Server::ferrokv(args);
    let theirs = Server::redis(&[]);
    let (a, b) = (session(&ours, &script), session(&theirs, &script));
    let show = |v: &[Vec<u8>]| v.iter().map(|r| String::from_utf8_lossy(r).replace("\r\n", " ")).collect::<Vec<_>>();
    assert_eq!(show(&a), show(&b), "ferrokv (left) vs redis-server (right)");
}

/// WATCH in one database, then SWAPDB or FLUSHDB by another client: Redis 7.0 marks the
/// transaction dirty when the watched key exists in either swapped database (or existed
/// in the flushed one), and not otherwise.
#[test]
fn watch_is_invalidated_by_swapdb_and_flushdb() {
    for shards in ["1", "2"] {
        both(&["--server-threads", shards], |a, b| {
            let mut r = Vec::new();
            let mut tx = |a: &mut Conn, b: &mut Conn, watch_db: &str, key: &str, other: &[&str]| {
                r.push(a.send(&["SELECT", watch_db]));
                r.push(a.send(&["WATCH", key]));
                r.push(b.send(other));
                r.push(a.send(&["MULTI"]));
                r.push(a.send(&["SET", "{t}out", "1"]));
                r.push(a.send(&["EXEC"]));
            };
            b.send(&["SELECT", "1"]);
            b.send(&["SET", "x", "1"]);
            // x exists in db 1: a watcher in db 2 sees it swapped in.
            tx(a, b, "2", "x", &["SWAPDB", "1", "2"]);
            // x is in db 2 now; a watcher of y (in neither) is left alone.
            tx(a, b, "2", "y", &["SWAPDB", "1", "2"]);
            // A database not involved is left alone.
            tx(a, b, "3", "x", &["SWAPDB", "1", "2"]);
            // FLUSHDB of the watched key's database; of another one.
            b.send(&["SELECT", "3"]);
            b.send(&["SET", "z", "1"]);
            tx(a, b, "3", "z", &["FLUSHDB"]);
            tx(a, b, "0", "z", &["FLUSHDB"]);
            b.send(&["SET", "z", "1"]);
            tx(a, b, "3", "z", &["FLUSHALL"]);
            // MOVE into the watched database touches the key there.
            b.send(&["SET", "m", "1"]);
            tx(a, b, "1", "m", &["MOVE", "m", "1"]);
            r
        });
    }
}

/// A transaction that selects: its commands after SELECT run there, and the client
/// stays in that database after EXEC.
#[test]
fn select_inside_multi() {
    for shards in ["1", "2"] {
        both(&["--server-threads", shards], |a, _| {
            let mut r = Vec::new();
            for cmd in [
                &["MULTI"][..],
                &["SET", "a", "0"],
                &["SELECT", "2"],
                &["SET", "a", "2"],
                &["MSET", "b", "2", "{t}1", "2"],
                &["SELECT", "99"],
                &["EXEC"],
                &["GET", "a"],
                &["CLIENT", "INFO"],
                &["SELECT", "0"],
                &["MGET", "a", "b", "{t}1"],
            ] {
                let reply = a.send(cmd);
                // CLIENT INFO: only its db= field is comparable.
                if cmd[0] == "CLIENT" {
                    let text = String::from_utf8_lossy(&reply).to_string();
                    let db = text.split(' ').find(|f| f.starts_with("db=")).unwrap_or("?").to_string();
                    r.push(db.into_bytes());
                } else {
                    r.push(reply);
                }
            }
            r
        });
    }
}

fn wait_blocked(c: &mut Conn, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = String::from_utf8_lossy(&c.send(&["INFO", "clients"])).to_string();
        if info.contains(&format!("blocked_clients:{n}\r\n")) {
            return;
        }
        assert!(Instant::now() < deadline, "no client blocked: {info}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// BLPOP in database 1 is woken by a push in database 1, not by one in database 0;
/// a SWAPDB that brings a list in wakes it too, as Redis 7.0's scanDatabaseForReadyKeys.
#[test]
fn blocked_clients_wait_in_their_database() {
    for kind in [Kind::Ferrokv, Kind::Redis] {
        for shards in ["1", "2"] {
            let s = Server::start(kind, &["--server-threads", shards][..if kind == Kind::Redis { 0 } else { 2 }])
                .unwrap_or_else(|e| panic!("{e}"));
            let (mut blocked, mut c) = (s.conn(), s.conn());
            blocked.set_timeout(Duration::from_secs(10));
            assert_eq!(blocked.send(&["SELECT", "1"]), b"+OK\r\n");
            blocked.write_raw(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n").unwrap();
            wait_blocked(&mut c, 1);
            assert_eq!(c.send(&["RPUSH", "q", "db0"]), b":1\r\n");
            c.send(&["PING"]);
            wait_blocked(&mut c, 1);
            c.send(&["SELECT", "1"]);
            assert_eq!(c.send(&["RPUSH", "q", "db1"]), b":1\r\n");
            assert_eq!(blocked.read_reply().unwrap(), b"*2\r\n$1\r\nq\r\n$3\r\ndb1\r\n", "{kind:?}");
            // SWAPDB brings db 0's list into db 1: the waiter is served from it.
            blocked.write_raw(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n").unwrap();
            wait_blocked(&mut c, 1);
            assert_eq!(c.send(&["SWAPDB", "0", "1"]), b"+OK\r\n");
            assert_eq!(blocked.read_reply().unwrap(), b"*2\r\n$1\r\nq\r\n$3\r\ndb0\r\n", "{kind:?}");
        }
    }
}

/// Keyspace notifications name the database: `__keyspace@3__`, and MOVE's `move_from`
/// and `move_to` in their own databases.
#[test]
fn notifications_name_the_database() {
    for kind in [Kind::Ferrokv, Kind::Redis] {
        // `n` (new key) too: MOVE and COPY add the key in the target database.
        let s = Server::start(kind, &["--notify-keyspace-events", "KEAn"]).unwrap_or_else(|e| panic!("{e}"));
        let (mut sub, mut c) = (s.conn(), s.conn());
        sub.set_timeout(Duration::from_secs(5));
        sub.send(&["PSUBSCRIBE", "__key*@*__:*"]);
        c.send(&["SELECT", "3"]);
        c.send(&["SET", "k", "v"]);
        c.send(&["MOVE", "k", "5"]);
        c.send(&["COPY", "k", "k", "DB", "0"]);
        c.send(&["SELECT", "5"]);
        c.send(&["COPY", "k", "k", "DB", "7"]);
        c.send(&["DEL", "k"]);
        let mut got = Vec::new();
        for _ in 0..16 {
            match ferrokv_tests::resp::parse_one(&sub.read_reply().unwrap()).unwrap() {
                Reply::Array(Some(parts)) => {
                    let text: Vec<String> = parts
                        .iter()
                        .skip(2)
                        .map(|p| match p {
                            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).to_string(),
                            other => format!("{other:?}"),
                        })
                        .collect();
                    got.push(text.join(" "));
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            got,
            [
                "__keyspace@3__:k new",
                "__keyevent@3__:new k",
                "__keyspace@3__:k set",
                "__keyevent@3__:set k",
                "__keyspace@5__:k new",
                "__keyevent@5__:new k",
                "__keyspace@3__:k move_from",
                "__keyevent@3__:move_from k",
                "__keyspace@5__:k move_to",
                "__keyevent@5__:move_to k",
                "__keyspace@7__:k new",
                "__keyevent@7__:new k",
                "__keyspace@7__:k copy_to",
                "__keyevent@7__:copy_to k",
                "__keyspace@5__:k del",
                "__keyevent@5__:del k",
            ],
            "{kind:?}"
        );
    }
}

/// Writes to databases 0, 3 and 15 (values, TTLs, a MOVE, a SWAPDB, a FLUSHDB).
fn write_databases(c: &mut Conn) {
    for (n, keys) in [("0", 3), ("3", 5), ("15", 2), ("7", 4)] {
        c.send(&["SELECT", n]);
        for i in 0..keys {
            c.send(&["SET", &format!("k{i}"), &format!("v{n}.{i}")]);
            c.send(&["RPUSH", &format!("{{l}}{i}"), n, "x"]);
        }
        c.send(&["EXPIRE", "k0", "1000"]);
    }
    c.send(&["SELECT", "3"]);
    c.send(&["MOVE", "k1", "4"]);
    c.send(&["SWAPDB", "15", "14"]);
    c.send(&["SELECT", "7"]);
    c.send(&["FLUSHDB"]);
    c.send(&["SELECT", "0"]);
}

/// Every database's keys with their DUMP payloads and whether they have a TTL.
fn contents(c: &mut Conn) -> Vec<String> {
    let mut out = Vec::new();
    for n in 0..16 {
        c.send(&["SELECT", &n.to_string()]);
        let keys = match c.call(&["KEYS", "*"]) {
            Reply::Array(Some(k)) => k,
            other => panic!("{other:?}"),
        };
        let mut keys: Vec<Vec<u8>> = keys
            .into_iter()
            .map(|k| match k {
                Reply::Bulk(Some(b)) => b,
                other => panic!("{other:?}"),
            })
            .collect();
        keys.sort();
        for k in keys {
            let ttl = c.send(&[b"TTL".as_slice(), &k]);
            let has_ttl = !ttl.starts_with(b":-");
            out.push(format!(
                "db{n} {} {:?} ttl={has_ttl}",
                String::from_utf8_lossy(&k),
                c.send(&[b"DUMP".as_slice(), &k])
            ));
        }
    }
    c.send(&["SELECT", "0"]);
    out
}

fn keyspace_lines(c: &mut Conn) -> Vec<String> {
    let info = String::from_utf8_lossy(&c.send(&["INFO", "keyspace"])).to_string();
    info.lines().filter(|l| l.starts_with("db")).map(|l| l.split(",avg_ttl").next().unwrap_or(l).to_string()).collect()
}

/// The same writes on redis-server and ferrokv give the same databases and INFO
/// keyspace lines; they survive a restart from dump.rdb and from the AOF, and
/// redis-server loads ferrokv's dump.rdb into the same databases.
#[test]
fn persistence_keeps_each_database() {
    let redis = Server::redis(&[]);
    let mut rc = redis.conn();
    write_databases(&mut rc);
    let want = contents(&mut rc);
    let want_info = keyspace_lines(&mut rc);
    assert!(want_info.len() >= 4, "{want_info:?}");
    for (shards, aof) in [("1", false), ("2", false), ("2", true)] {
        let mut args = vec!["--server-threads", shards];
        if aof {
            // `always`: the restart is a kill -9 right after the last reply.
            args.extend(["--appendonly", "yes", "--appendfsync", "always"]);
        }
        let mut s = Server::ferrokv(&args);
        let mut c = s.conn();
        write_databases(&mut c);
        assert_eq!(contents(&mut c), want, "shards {shards}");
        assert_eq!(keyspace_lines(&mut c), want_info, "shards {shards}");
        if !aof {
            assert_eq!(c.send(&["SAVE"]), b"+OK\r\n");
        } else {
            // A rewrite makes a base of every database, then more writes go to the
            // incremental file after it.
            c.send(&["BGREWRITEAOF"]);
            let deadline = Instant::now() + Duration::from_secs(20);
            while String::from_utf8_lossy(&c.send(&["INFO", "persistence"])).contains("aof_rewrite_in_progress:1") {
                assert!(Instant::now() < deadline, "rewrite did not end");
                std::thread::sleep(Duration::from_millis(20));
            }
            c.send(&["SELECT", "9"]);
            c.send(&["SET", "after", "rewrite"]);
            c.send(&["SELECT", "0"]);
        }
        drop(c);
        s.restart();
        let mut c = s.conn();
        let mut got = contents(&mut c);
        if aof {
            c.send(&["SELECT", "9"]);
            assert_eq!(c.send(&["GET", "after"]), b"$7\r\nrewrite\r\n");
            got.retain(|l| !l.starts_with("db9 after"));
        }
        assert_eq!(got, want, "after a restart, shards {shards}, aof {aof}");
        if !aof {
            // redis-server loads ferrokv's file into the same databases.
            let dir = s.dir().to_path_buf();
            drop(c);
            s.stop();
            let r2 = Server::redis(&["--dir", dir.to_str().unwrap()]);
            let mut c2 = r2.conn();
            assert_eq!(contents(&mut c2), want, "redis-server loading ferrokv's dump.rdb");
        }
    }
}

fn replica_link_up(c: &mut Conn) -> bool {
    String::from_utf8_lossy(&c.send(&["INFO", "replication"])).contains("master_link_status:up")
}

/// A ferrokv master's writes to database 3 reach a ferrokv replica and a redis-server
/// replica in database 3, after the full sync and in the stream, and a ferrokv replica
/// of redis-server gets redis's database 3 too.
#[test]
fn replicas_receive_writes_to_database_3() {
    for (master_kind, replica_kind) in
        [(Kind::Ferrokv, Kind::Ferrokv), (Kind::Ferrokv, Kind::Redis), (Kind::Redis, Kind::Ferrokv)]
    {
        let master = Server::start(master_kind, &[]).unwrap_or_else(|e| panic!("{e}"));
        let mut m = master.conn();
        m.send(&["SELECT", "3"]);
        m.send(&["SET", "before", "sync"]);
        let port = master.port().to_string();
        let joined = format!("127.0.0.1 {port}");
        let args: Vec<&str> = match replica_kind {
            Kind::Redis => vec!["--replicaof", &joined],
            _ => vec!["--replicaof", "127.0.0.1", &port, "--server-threads", "2"],
        };
        let replica = Server::start(replica_kind, &args).unwrap_or_else(|e| panic!("{e}"));
        let mut r = replica.conn();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !replica_link_up(&mut r) {
            assert!(Instant::now() < deadline, "link not up");
            std::thread::sleep(Duration::from_millis(20));
        }
        m.send(&["SET", "k", "db3"]);
        m.send(&["RPUSH", "{x}l", "a", "b"]);
        m.send(&["SELECT", "0"]);
        m.send(&["SET", "k", "db0"]);
        m.send(&["SELECT", "3"]);
        m.send(&["MULTI"]);
        m.send(&["INCR", "n"]);
        m.send(&["SELECT", "5"]);
        m.send(&["INCR", "n"]);
        m.send(&["EXEC"]);
        // The transaction left the client in database 5.
        m.send(&["SELECT", "3"]);
        m.send(&["MOVE", "k", "6"]);
        m.send(&["SWAPDB", "6", "7"]);
        m.send(&["SELECT", "0"]);
        m.send(&["SET", "done", "1"]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while r.send(&["GET", "done"]) != b"$1\r\n1\r\n" {
            assert!(Instant::now() < deadline, "the writes did not arrive");
            std::thread::sleep(Duration::from_millis(20));
        }
        let label = format!("{master_kind:?} -> {replica_kind:?}");
        assert_eq!(contents(&mut r), contents(&mut m), "{label}");
        r.send(&["SELECT", "3"]);
        assert_eq!(r.send(&["GET", "before"]), b"$4\r\nsync\r\n", "{label}");
        assert_eq!(r.send(&["LRANGE", "{x}l", "0", "-1"]), b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", "{label}");
        r.send(&["SELECT", "7"]);
        assert_eq!(r.send(&["GET", "k"]), b"$3\r\ndb3\r\n", "{label}");
    }
}

/// Cluster mode serves database 0 only, with Redis's errors.
#[test]
fn cluster_mode_is_database_0_only() {
    let s = Server::ferrokv(&["--cluster-enabled", "yes"]);
    let mut c = s.conn();
    assert_eq!(c.send(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]), b"+OK\r\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&c.send(&["CLUSTER", "INFO"])).contains("cluster_state:ok") {
        assert!(Instant::now() < deadline, "cluster not up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.send(&["SELECT", "0"]), b"+OK\r\n");
    assert_eq!(c.send(&["SELECT", "1"]), b"-ERR SELECT is not allowed in cluster mode\r\n");
    assert_eq!(c.send(&["MOVE", "k", "1"]), b"-ERR MOVE is not allowed in cluster mode\r\n");
    assert_eq!(c.send(&["SWAPDB", "0", "1"]), b"-ERR SWAPDB is not allowed in cluster mode\r\n");
    assert_eq!(
        c.send(&["COPY", "{k}a", "{k}b", "DB", "1"]),
        b"-ERR Copying to another database is not allowed in cluster mode\r\n"
    );
    let r = c.send(&["EVAL", "return redis.call('select', 1)", "0"]);
    assert!(r.starts_with(b"-ERR SELECT is not allowed in cluster mode"), "{}", String::from_utf8_lossy(&r));
}

/// INFO keyspace's `avg_ttl` of one database (ms).
fn avg_ttl(c: &mut Conn, n: usize) -> Option<u64> {
    let info = String::from_utf8_lossy(&c.send(&["INFO", "keyspace"])).to_string();
    let line = info.lines().find(|l| l.starts_with(&format!("db{n}:")))?;
    line.split(",avg_ttl=").nth(1)?.trim().parse().ok()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `avg_ttl` is Redis's running estimate from the active expiry cycle's samples: it
/// becomes non-zero and lies within the TTLs given, per database, on two shards as on
/// redis-server; once no key has a TTL it is 0 again.
#[test]
fn info_keyspace_avg_ttl_estimates_the_ttls() {
    for kind in [Kind::Redis, Kind::Ferrokv] {
        let server = Server::start(kind, &["--server-threads", "2"]).unwrap_or_else(|e| panic!("{e}"));
        let mut c = server.conn();
        // Database 0: TTLs between 1000 s and 2000 s, and keys without one.
        let mut cmds: Vec<Vec<String>> = Vec::new();
        for i in 0..2000 {
            cmds.push(vec!["SET".into(), format!("t{i}"), "v".into(), "EX".into(), (1000 + i / 2).to_string()]);
            cmds.push(vec!["SET".into(), format!("p{i}"), "v".into()]);
        }
        // Database 3: TTLs of at most 100 s.
        cmds.push(vec!["SELECT".into(), "3".into()]);
        for i in 0..500 {
            cmds.push(vec!["SET".into(), format!("s{i}"), "v".into(), "EX".into(), (50 + i / 10).to_string()]);
        }
        cmds.push(vec!["SELECT".into(), "0".into()]);
        c.pipeline(&cmds);
        wait_for("avg_ttl of db0 and db3", || {
            avg_ttl(&mut c, 0).unwrap_or(0) > 0 && avg_ttl(&mut c, 3).unwrap_or(0) > 0
        });
        let (a0, a3) = (avg_ttl(&mut c, 0).unwrap(), avg_ttl(&mut c, 3).unwrap());
        assert!((900_000..=2_000_000).contains(&a0), "{}: db0 avg_ttl {a0}", kind.name());
        assert!((30_000..=100_000).contains(&a3), "{}: db3 avg_ttl {a3}", kind.name());
        // No TTL left in database 3: the estimate goes back to 0.
        c.send(&["SELECT", "3"]);
        for i in 0..500 {
            c.send(&["PERSIST", &format!("s{i}")]);
        }
        wait_for("avg_ttl of db3 back to 0", || avg_ttl(&mut c, 3) == Some(0));
    }
}
