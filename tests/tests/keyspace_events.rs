//! Keyspace notifications against redis-server 7.0.15: the same command stream on both
//! servers with `notify-keyspace-events KEA` (plus `n` and `m` runs), and the events a
//! pattern subscriber receives after each command compared in order. The subscriber is
//! synchronised with PING (events of a command arrive before the reply to a PING sent
//! after it), never with sleeps.

use ferrokv_tests::resp::show;
use ferrokv_tests::{Conn, Server};

fn split(line: &str) -> Vec<&str> {
    line.split(' ').filter(|a| !a.is_empty()).collect()
}

/// The events after each command, one line per command.
fn run(server: &Server, flags: &str, lines: &[&str]) -> Vec<String> {
    let mut admin = server.conn();
    assert_eq!(admin.send(&["FLUSHALL"]), b"+OK\r\n");
    assert_eq!(admin.send(&["CONFIG", "SET", "notify-keyspace-events", flags]), b"+OK\r\n");
    let mut sub = server.conn();
    sub.send(&["PSUBSCRIBE", "__key*__:*"]);
    let mut c = server.conn();
    let mut out = Vec::new();
    for line in lines {
        let reply = c.send(&split(line));
        let mut got = format!("{line} -> {}:", show(&reply));
        sub.write_raw(&ferrokv_tests::resp::encode_command(&["PING"])).expect("write");
        loop {
            let f = sub.read_reply().expect("event or pong");
            if f == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n" {
                break;
            }
            got.push_str(&format!(" {}", event_of(&f)));
        }
        out.push(got);
    }
    out
}

/// `channel=message` of a pmessage frame.
fn event_of(f: &[u8]) -> String {
    match ferrokv_tests::resp::parse_one(f) {
        Ok(ferrokv_tests::Reply::Array(Some(items))) if items.len() == 4 => {
            let s = |r: &ferrokv_tests::Reply| match r {
                ferrokv_tests::Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).to_string(),
                other => format!("{other:?}"),
            };
            format!("{}={}", s(&items[2]), s(&items[3]))
        }
        _ => show(f),
    }
}

const STREAM: &[&str] = &[
    "SET s v",
    "SET s w",
    "SET s v EX 100",
    "SET s v KEEPTTL",
    "SET s v NX",
    "SETEX s2 100 v",
    "PSETEX s3 100000 v",
    "SETNX s4 v",
    "SETNX s4 v",
    "GETSET s4 w",
    "MSET m1 a m2 b",
    "MSETNX m3 a m4 b",
    "APPEND s x",
    "APPEND new1 x",
    "SETRANGE s 1 yy",
    "INCR n",
    "DECR n",
    "INCRBY n 5",
    "DECRBY n 2",
    "INCRBYFLOAT n 1.5",
    "SETBIT b 7 1",
    "SETBIT b 7 1",
    "BITFIELD bf SET u8 0 255",
    "BITOP AND bd b b",
    "BITOP AND bd missing1 missing2",
    "PFADD hll a b",
    "PFADD hll a",
    "PFMERGE hll2 hll",
    "GETDEL s4",
    "GETEX s EX 100",
    "GETEX s PERSIST",
    "GETEX s",
    "EXPIRE s 100",
    "PEXPIRE s 100000",
    "EXPIREAT s 99999999999",
    "PERSIST s",
    "EXPIRE s -1",
    "EXPIRE nokey 10",
    "DEL m1 m2 nokey",
    "UNLINK m3",
    "RENAME m4 m5",
    "SET m6 x",
    "RENAME m5 m6",
    "RENAMENX m6 n",
    "COPY n n2",
    "COPY n n2 REPLACE",
    "LPUSH l a b c",
    "RPUSH l d",
    "LPUSHX l e",
    "RPUSHX nolist e",
    "LINSERT l BEFORE a z",
    "LSET l 0 q",
    "LPOP l",
    "RPOP l 2",
    "LREM l 1 z",
    "LTRIM l 0 0",
    "LPOP l",
    "RPUSH src 1 2",
    "LMOVE src dst LEFT RIGHT",
    "RPOPLPUSH src dst",
    "LMOVE dst dst LEFT LEFT",
    "BLPOP dst 0",
    "BRPOP dst 0",
    "RPUSH l2 a b c",
    "LMPOP 1 l2 LEFT COUNT 2",
    "LMPOP 1 l2 RIGHT",
    "SORT n2",
    "RPUSH sl 3 1 2",
    "SORT sl STORE sorted",
    "SORT nolist STORE sorted",
    "HSET h f v g w",
    "HSET h f v",
    "HSETNX h f v",
    "HSETNX h z v",
    "HMSET h a 1",
    "HINCRBY h a 2",
    "HINCRBYFLOAT h a 0.5",
    "HDEL h f g nosuch",
    "HDEL h z a",
    "SADD st a b c",
    "SADD st a",
    "SREM st a",
    "SADD sp x",
    "SPOP sp",
    "SMOVE st st2 b",
    "SMOVE st st2 c",
    "SMOVE st2 st2 c",
    "SADD x1 a b",
    "SADD x2 b c",
    "SINTERSTORE xi x1 x2",
    "SUNIONSTORE xu x1 x2",
    "SDIFFSTORE xd x1 x1",
    "SDIFFSTORE xu x1 x1",
    "ZADD z 1 a 2 b 3 c",
    "ZADD z INCR 5 a",
    "ZINCRBY z 1 b",
    "ZREM z c",
    "ZADD z 4 d 5 e 6 f",
    "ZREMRANGEBYSCORE z 4 4",
    "ZREMRANGEBYRANK z 0 0",
    "ZADD zl 0 a 0 b 0 c",
    "ZREMRANGEBYLEX zl [a [a",
    "ZUNIONSTORE zu 2 z zl",
    "ZINTERSTORE zi 2 z zl",
    "ZDIFFSTORE zd 1 z",
    "ZRANGESTORE zr z 0 0",
    "ZRANGESTORE zr nosuch 0 -1",
    "ZPOPMIN z",
    "ZPOPMAX z",
    "BZPOPMIN zl 0",
    "BZPOPMAX zl 0",
    "ZADD zm 1 a 2 b",
    "ZMPOP 1 zm MIN",
    "ZMPOP 1 zm MAX COUNT 5",
    "GET nokey",
    "EXISTS nokey s",
    "TYPE nokey",
    "DEL s s2 s3 n n2 b bd bf hll hll2 m5 m6 src dst sl sorted x1 x2 xi xd zu zi zd zr z",
];

#[test]
fn events_per_command_match_redis() {
    let redis = Server::redis(&[]);
    for threads in ["1", "2"] {
        let ferrokv = Server::ferrokv(&["--server-threads", threads]);
        for flags in ["KEA", "KEAnm", "Kg", "E$lh"] {
            let want = run(&redis, flags, STREAM);
            let got = run(&ferrokv, flags, STREAM);
            let diffs: Vec<String> = want
                .iter()
                .zip(&got)
                .filter(|(w, g)| w != g)
                .map(|(w, g)| format!("  redis:   {w}\n  ferrokv: {g}"))
                .collect();
            assert!(diffs.is_empty(), "flags {flags}, {threads} threads:\n{}", diffs.join("\n"));
        }
    }
}

/// `expired` events from lazy expiry (a read finds the key dead) and from the active
/// cycle, both servers.
#[test]
fn expired_events_lazy_and_active() {
    for server in [Server::redis(&[]), Server::ferrokv(&["--server-threads", "2"])] {
        let mut admin = server.conn();
        assert_eq!(admin.send(&["CONFIG", "SET", "notify-keyspace-events", "Ex"]), b"+OK\r\n");
        let mut sub = server.conn();
        sub.send(&["SUBSCRIBE", "__keyevent@0__:expired"]);
        let mut c = server.conn();
        // Active: the cycle deletes a key nobody reads.
        c.send(&["SET", "active", "v", "PX", "1"]);
        let f = sub.read_reply().expect("expired event from the active cycle");
        assert_eq!(event_of_message(&f), "__keyevent@0__:expired=active", "{:?}", server.kind());
        // Lazy (or active, whichever comes first): once a read answers that the key is
        // gone, its expired event was published before that reply.
        c.send(&["SET", "lazy", "v", "PX", "20"]);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(c.send(&["GET", "lazy"]), b"$-1\r\n");
        sub.write_raw(&ferrokv_tests::resp::encode_command(&["PING"])).expect("write");
        let mut seen = Vec::new();
        loop {
            let f = sub.read_reply().expect("event or pong");
            if f == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n" {
                break;
            }
            seen.push(event_of_message(&f));
        }
        assert_eq!(seen, ["__keyevent@0__:expired=lazy"], "{:?}", server.kind());
    }
}

fn event_of_message(f: &[u8]) -> String {
    match ferrokv_tests::resp::parse_one(f) {
        Ok(ferrokv_tests::Reply::Array(Some(items))) if items.len() == 3 => {
            let s = |r: &ferrokv_tests::Reply| match r {
                ferrokv_tests::Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).to_string(),
                other => format!("{other:?}"),
            };
            format!("{}={}", s(&items[1]), s(&items[2]))
        }
        _ => show(f),
    }
}

/// CONFIG SET/GET of the classes, as Redis prints and refuses them.
#[test]
fn config_values_match_redis() {
    let redis = Server::redis(&[]);
    let ferrokv = Server::ferrokv(&[]);
    let (mut r, mut f) = (redis.conn(), ferrokv.conn());
    for v in ["KEA", "KEAn", "Egx$lshzxetdmn", "Kx", "Kq", "", "AKEm", "g$lshzxetd", "Ag"] {
        let set = ["CONFIG", "SET", "notify-keyspace-events", v];
        assert_eq!(show(&f.send(&set)), show(&r.send(&set)), "SET {v}");
        let get = ["CONFIG", "GET", "notify-keyspace-events"];
        assert_eq!(show(&f.send(&get)), show(&r.send(&get)), "after SET {v}");
    }
    let _ = Conn::connect(ferrokv.port());
}

/// `evicted` events (class `e`): one per key maxmemory evicted, on both channels, for
/// keys that are gone, as many as INFO's evicted_keys, both servers.
#[test]
fn evicted_events() {
    for server in [Server::redis(&[]), Server::ferrokv(&["--server-threads", "2"])] {
        let mut admin = server.conn();
        assert_eq!(admin.send(&["CONFIG", "SET", "notify-keyspace-events", "KEe"]), b"+OK\r\n");
        assert_eq!(admin.send(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]), b"+OK\r\n");
        let value = "x".repeat(10_000);
        for i in 0..200 {
            assert_eq!(admin.send(&["SET", &format!("k{i}"), &value]), b"+OK\r\n");
        }
        let mut sub = server.conn();
        sub.send(&["PSUBSCRIBE", "__key*__:*"]);
        let info = |c: &mut Conn, field: &str| -> u64 {
            let text = String::from_utf8_lossy(&c.send(&["INFO", "all"])).to_string();
            let line = text.lines().find(|l| l.starts_with(&format!("{field}:"))).expect(field).to_string();
            line[field.len() + 1..].trim().parse().expect("number")
        };
        let used = info(&mut admin, "used_memory");
        // Half the values must go; the write after the limit evicts them.
        let limit = (used - 1_000_000).to_string();
        assert_eq!(admin.send(&["CONFIG", "SET", "maxmemory", &limit]), b"+OK\r\n");
        admin.send(&["SET", "trigger", "v"]);
        assert_eq!(admin.send(&["CONFIG", "SET", "maxmemory", "0"]), b"+OK\r\n");
        // Read after the limit is gone: a shard's tick may evict once more before.
        let evicted = info(&mut admin, "evicted_keys");
        sub.write_raw(&ferrokv_tests::resp::encode_command(&["PING"])).expect("write");
        let (mut keyevents, mut keyspace) = (Vec::new(), Vec::new());
        loop {
            let f = sub.read_reply().expect("event or pong");
            if f == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n" {
                break;
            }
            let e = event_of(&f);
            if let Some(k) = e.strip_prefix("__keyevent@0__:evicted=") {
                keyevents.push(k.to_string());
            } else if let Some(k) = e.strip_prefix("__keyspace@0__:").and_then(|s| s.strip_suffix("=evicted")) {
                keyspace.push(k.to_string());
            } else if !e.ends_with("=set") && !e.ends_with(":set=trigger") {
                panic!("{:?}: unexpected {e}", server.kind());
            }
        }
        assert!(evicted >= 50, "{:?}: {evicted} evicted", server.kind());
        assert_eq!(keyevents.len() as u64, evicted, "{:?}", server.kind());
        assert_eq!(keyspace, keyevents, "{:?}", server.kind());
        for k in &keyevents {
            assert_eq!(admin.send(&["EXISTS", k]), b":0\r\n", "{:?}: {k}", server.kind());
        }
    }
}
