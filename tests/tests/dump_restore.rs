//! DUMP and RESTORE against redis-server 7.0.15: the same commands build the same keys
//! on both servers; DUMP payloads are byte-identical wherever Redis's bytes are
//! deterministic (strings, listpack hashes and sorted sets, skiplist sorted sets,
//! intsets, lists), every payload of one server RESTOREs on the other to the same
//! value and encoding, and RESTORE's errors are Redis's, byte for byte.

use ferrokv_tests::resp::Reply;
use ferrokv_tests::{Conn, Rng, Server};

/// Commands that build one key of every type and encoding, seeded.
fn dataset(seed: u64) -> Vec<Vec<Vec<u8>>> {
    let mut rng = Rng::new(seed);
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    let w = |s: &str| s.as_bytes().to_vec();
    let text = |rng: &mut Rng, n: usize| rng.bytes(n, b"abcdefghij0123456789 -");
    for (i, v) in ["", "x", "0", "-1", "12345678901", "007", &"compressible ".repeat(20)].iter().enumerate() {
        cmds.push(vec![w("SET"), format!("str:{i}").into_bytes(), w(v)]);
    }
    let big: Vec<u8> = (0..3000).map(|_| rng.below(256) as u8).collect();
    cmds.push(vec![w("SET"), w("str:random"), big]);
    // Hashes: small (listpack) and big (table).
    for (name, n, vlen) in [("hash:small", 10, 8), ("hash:long", 3, 100), ("hash:big", 700, 5)] {
        let mut c = vec![w("HSET"), w(name)];
        for f in 0..n {
            c.push(format!("f{f}").into_bytes());
            c.push(if f % 3 == 0 { rng.range(-100000, 100000).to_string().into_bytes() } else { text(&mut rng, vlen) });
        }
        cmds.push(c);
    }
    // Sets: intsets of each width, and tables.
    for (name, lo, hi, n) in [
        ("set:i16", -300i64, 300i64, 40),
        ("set:i32", -100000, 100000, 40),
        ("set:i64", -(1i64 << 40), 1i64 << 40, 40),
        ("set:bigint", 0, 100000, 600),
    ] {
        let mut c = vec![w("SADD"), w(name)];
        for _ in 0..n {
            c.push(rng.range(lo, hi).to_string().into_bytes());
        }
        cmds.push(c);
    }
    let mut c = vec![w("SADD"), w("set:strings")];
    for i in 0..50 {
        c.push(format!("member-{i}").into_bytes());
    }
    cmds.push(c);
    // Sorted sets: listpack and skiplist, with every kind of score.
    for (name, n) in [("zset:small", 30), ("zset:big", 300)] {
        let mut c = vec![w("ZADD"), w(name)];
        for i in 0..n {
            let score = match i % 6 {
                0 => rng.range(-1000, 1000).to_string(),
                1 => format!("{}.{}", rng.range(-50, 50), rng.below(1000)),
                2 => "inf".to_string(),
                3 => format!("{}e{}", rng.range(1, 9), rng.range(-20, 300)),
                4 => "0.1".to_string(),
                _ => "-0".to_string(),
            };
            c.push(score.into_bytes());
            c.push(format!("m{i}").into_bytes());
        }
        cmds.push(c);
    }
    // Lists: one node, several nodes, long elements.
    for (name, n, len) in [("list:small", 20, 5), ("list:nodes", 3000, 10), ("list:long", 40, 600)] {
        let mut c = vec![w("RPUSH"), w(name)];
        for i in 0..n {
            c.push(if i % 4 == 0 { i.to_string().into_bytes() } else { text(&mut rng, len) });
        }
        cmds.push(c);
    }
    cmds.push(vec![w("LPUSH"), w("list:nodes"), w("head-1"), w("head-2")]);
    // A list edited the ways that keep Redis's node split: pops, LTRIM, LREM, LSET.
    let mut c = vec![w("RPUSH"), w("list:edited")];
    for i in 0..5000 {
        c.push(if i % 5 == 0 { w("x") } else { text(&mut rng, 12) });
    }
    cmds.push(c);
    for edit in [
        vec!["LPOP", "list:edited", "700"],
        vec!["RPOP", "list:edited", "10"],
        vec!["LTRIM", "list:edited", "5", "-300"],
        vec!["LREM", "list:edited", "40", "x"],
        vec!["LREM", "list:edited", "-3", "x"],
        vec!["LSET", "list:edited", "1000", &"y".repeat(300)],
        vec!["LPUSH", "list:edited", "a", "b", "c"],
    ] {
        cmds.push(edit.iter().map(|s| w(s)).collect());
    }
    cmds
}

fn keys(cmds: &[Vec<Vec<u8>>]) -> Vec<Vec<u8>> {
    let mut k: Vec<Vec<u8>> = cmds.iter().map(|c| c[1].clone()).collect();
    k.sort();
    k.dedup();
    k
}

fn call(c: &mut Conn, args: &[&[u8]]) -> Reply {
    c.call(args)
}

fn dump(c: &mut Conn, key: &[u8]) -> Vec<u8> {
    match call(c, &[b"DUMP", key]) {
        Reply::Bulk(Some(p)) => p,
        other => panic!("DUMP {}: {other:?}", String::from_utf8_lossy(key)),
    }
}

/// A value as comparable data: type, encoding and its elements (sorted where the type
/// has no order).
fn contents(c: &mut Conn, key: &[u8]) -> (Reply, Reply, Reply) {
    let t = call(c, &[b"TYPE", key]);
    let enc = call(c, &[b"OBJECT", b"ENCODING", key]);
    let data = match &t {
        Reply::Simple(s) if s == b"string" => call(c, &[b"GET", key]),
        Reply::Simple(s) if s == b"list" => call(c, &[b"LRANGE", key, b"0", b"-1"]),
        Reply::Simple(s) if s == b"zset" => call(c, &[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"]),
        Reply::Simple(s) if s == b"hash" || s == b"set" => {
            let r = if s == b"hash" { call(c, &[b"HGETALL", key]) } else { call(c, &[b"SMEMBERS", key]) };
            match r {
                Reply::Array(Some(items)) if s == b"hash" => {
                    let mut pairs: Vec<Vec<Reply>> = items.chunks(2).map(|p| p.to_vec()).collect();
                    pairs.sort();
                    Reply::Array(Some(pairs.into_iter().flatten().collect()))
                }
                Reply::Array(Some(mut items)) => {
                    items.sort();
                    Reply::Array(Some(items))
                }
                other => other,
            }
        }
        other => panic!("TYPE: {other:?}"),
    };
    (t, enc, data)
}

/// Encodings whose bytes Redis writes in a deterministic order.
fn deterministic(enc: &Reply) -> bool {
    matches!(enc, Reply::Bulk(Some(e)) if ["embstr", "raw", "int", "listpack", "intset", "quicklist", "skiplist"]
        .contains(&std::str::from_utf8(e).unwrap()))
}

#[test]
fn payloads_match_and_cross_restore() {
    let redis = Server::redis(&[]);
    let ferrokv = Server::ferrokv(&[]);
    let (mut r, mut f) = (redis.conn(), ferrokv.conn());
    for seed in [1u64, 2, 3] {
        call(&mut r, &[b"FLUSHALL"]);
        call(&mut f, &[b"FLUSHALL"]);
        let cmds = dataset(seed);
        for c in &cmds {
            let args: Vec<&[u8]> = c.iter().map(|a| &a[..]).collect();
            assert_eq!(call(&mut r, &args), call(&mut f, &args), "{}", String::from_utf8_lossy(c[0].as_slice()));
        }
        for key in keys(&cmds) {
            let name = String::from_utf8_lossy(&key).to_string();
            let want = contents(&mut r, &key);
            assert_eq!(contents(&mut f, &key), want, "{name}: same value on both");
            let (theirs, ours) = (dump(&mut r, &key), dump(&mut f, &key));
            if deterministic(&want.1) {
                assert!(
                    ours == theirs,
                    "{name} (seed {seed}): DUMP bytes differ ({} vs {} bytes)",
                    ours.len(),
                    theirs.len()
                );
            }
            // Each server's payload restores on the other to the same value.
            for (conn, payload, label) in [(&mut f, &theirs, "redis -> ferrokv"), (&mut r, &ours, "ferrokv -> redis")] {
                let copy = [b"copy:".as_slice(), &key].concat();
                assert_eq!(
                    call(conn, &[b"RESTORE", &copy, b"0", payload, b"REPLACE"]),
                    Reply::Simple(b"OK".to_vec()),
                    "{label} {name}"
                );
                assert_eq!(contents(conn, &copy), want, "{label} {name}");
            }
        }
    }
}

#[test]
fn restore_options_and_errors_match_redis() {
    let redis = Server::redis(&[]);
    let ferrokv = Server::ferrokv(&[]);
    let (mut r, mut f) = (redis.conn(), ferrokv.conn());
    for c in [&mut r, &mut f] {
        call(c, &[b"SET", b"src", b"hello"]);
        call(c, &[b"SET", b"busy", b"1"]);
    }
    let good = dump(&mut r, b"src");
    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 1] ^= 1;
    let mut newer = good.clone();
    newer[n - 10] = 11;
    let mut zero_crc = good.clone();
    zero_crc[n - 8..].fill(0);
    // A payload whose checksum is right but whose body is not a value.
    let mut garbage = vec![0xee, 1, 2, 3];
    garbage.extend_from_slice(&10u16.to_le_bytes());
    let crc = ferrokv_rdb::crc64::crc64(0, &garbage);
    garbage.extend_from_slice(&crc.to_le_bytes());
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![b"RESTORE", b"k1", b"0", &good],
        vec![b"RESTORE", b"busy", b"0", &good],
        vec![b"RESTORE", b"busy", b"0", &good, b"REPLACE"],
        vec![b"RESTORE", b"k2", b"-1", &good],
        vec![b"RESTORE", b"k3", b"abc", &good],
        vec![b"RESTORE", b"k4", b"0", &bad_crc],
        vec![b"RESTORE", b"k4", b"0", &newer],
        vec![b"RESTORE", b"k4", b"0", &zero_crc],
        vec![b"RESTORE", b"k4", b"0", b"short"],
        vec![b"RESTORE", b"k4", b"0", &garbage],
        vec![b"RESTORE", b"k5", b"0", &good, b"IDLETIME", b"-1"],
        vec![b"RESTORE", b"k5", b"0", &good, b"IDLETIME", b"x"],
        vec![b"RESTORE", b"k5", b"0", &good, b"FREQ", b"256"],
        vec![b"RESTORE", b"k5", b"0", &good, b"FREQ", b"5", b"IDLETIME", b"5"],
        vec![b"RESTORE", b"k5", b"0", &good, b"IDLETIME"],
        vec![b"RESTORE", b"k5", b"0", &good, b"BOGUS"],
        vec![b"RESTORE", b"k6", b"0", &good, b"IDLETIME", b"1000"],
        vec![b"RESTORE", b"k7", b"1", &good, b"ABSTTL"],
        vec![b"RESTORE", b"busy", b"1", &good, b"ABSTTL", b"REPLACE"],
        vec![b"RESTORE", b"k8"],
        vec![b"DUMP", b"nokey"],
        vec![b"DUMP"],
        vec![b"EXISTS", b"k1", b"k5", b"k6", b"k7", b"busy"],
    ];
    for case in &cases {
        let (theirs, ours) = (r.send(case), f.send(case));
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "{:?}",
            case.iter().map(|a| String::from_utf8_lossy(a)).collect::<Vec<_>>()
        );
    }
    // IDLETIME backdates the last access; a relative TTL lands as an absolute one.
    match call(&mut f, &[b"OBJECT", b"IDLETIME", b"k6"]) {
        Reply::Int(n) => assert!((1000..1010).contains(&n), "idle {n}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(call(&mut f, &[b"RESTORE", b"ttl", b"5000", &good]), Reply::Simple(b"OK".to_vec()));
    match call(&mut f, &[b"PTTL", b"ttl"]) {
        Reply::Int(n) => assert!((4000..=5000).contains(&n), "pttl {n}"),
        other => panic!("{other:?}"),
    }
}
