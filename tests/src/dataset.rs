//! Datasets for tests that compare two servers' contents (persistence, replication):
//! one of every type and encoding, and a snapshot of a server's whole keyspace.

use crate::resp::Reply;
use crate::{Conn, Rng};

fn call(c: &mut Conn, args: &[&str]) -> Reply {
    c.call(args)
}

/// A dataset of every type and encoding, with TTLs on some keys.
pub fn fill(c: &mut Conn, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut cmds: Vec<Vec<String>> = Vec::new();
    for i in 0..300 {
        let v = match i % 4 {
            0 => rng.range(-1_000_000, 1_000_000).to_string(),
            1 => {
                let n = rng.below(40) as usize;
                String::from_utf8(rng.bytes(n, b"abcdefgh ")).unwrap()
            }
            2 => "compressible ".repeat(10),
            _ => String::from_utf8(rng.bytes(300, b"0123456789abcdef")).unwrap(),
        };
        cmds.push(vec!["SET".into(), format!("s:{i}"), v]);
        if i % 5 == 0 {
            cmds.push(vec!["EXPIRE".into(), format!("s:{i}"), "100000".into()]);
        }
    }
    for (name, n) in [("h:small", 10), ("h:big", 600)] {
        let mut c = vec!["HSET".to_string(), name.into()];
        for f in 0..n {
            c.push(format!("f{f}"));
            c.push(rng.range(0, 1 << 40).to_string());
        }
        cmds.push(c);
    }
    for (name, n, ints) in [("set:ints", 100, true), ("set:big", 700, true), ("set:strs", 50, false)] {
        let mut c = vec!["SADD".to_string(), name.into()];
        for i in 0..n {
            c.push(if ints { rng.range(-70000, 70000).to_string() } else { format!("m{i}") });
        }
        cmds.push(c);
    }
    for (name, n) in [("z:small", 20), ("z:big", 400)] {
        let mut c = vec!["ZADD".to_string(), name.into()];
        for i in 0..n {
            c.push(format!("{}.{}", rng.range(-100, 100), rng.below(100)));
            c.push(format!("m{i}"));
        }
        cmds.push(c);
    }
    for (name, n) in [("l:small", 10), ("l:big", 3000)] {
        let mut c = vec!["RPUSH".to_string(), name.into()];
        for i in 0..n {
            c.push(format!("element-{i}"));
        }
        cmds.push(c);
    }
    cmds.push(vec!["PEXPIRE".into(), "z:big".into(), "50000000".into()]);
    for cmd in &cmds {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let r = call(c, &args);
        assert!(!matches!(r, Reply::Error(_)), "{args:?}: {r:?}");
    }
}

/// Every key with its type, contents (sorted where unordered) and whether it has a TTL.
pub fn snapshot(c: &mut Conn) -> Vec<(String, Reply, bool)> {
    let mut keys = match call(c, &["KEYS", "*"]) {
        Reply::Array(Some(k)) => k
            .into_iter()
            .map(|k| match k {
                Reply::Bulk(Some(b)) => String::from_utf8(b).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect::<Vec<_>>(),
        other => panic!("KEYS: {other:?}"),
    };
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let t = call(c, &["TYPE", &k]);
            let data = match &t {
                Reply::Simple(s) if s == b"string" => call(c, &["GET", &k]),
                Reply::Simple(s) if s == b"list" => call(c, &["LRANGE", &k, "0", "-1"]),
                Reply::Simple(s) if s == b"zset" => call(c, &["ZRANGE", &k, "0", "-1", "WITHSCORES"]),
                Reply::Simple(s) if s == b"hash" => sorted(call(c, &["HGETALL", &k])),
                Reply::Simple(s) if s == b"set" => sorted(call(c, &["SMEMBERS", &k])),
                other => panic!("TYPE {k}: {other:?}"),
            };
            let ttl = !matches!(call(c, &["PTTL", &k]), Reply::Int(-1));
            (k, Reply::Array(Some(vec![t, data])), ttl)
        })
        .collect()
}

pub fn sorted(r: Reply) -> Reply {
    match r {
        Reply::Array(Some(mut items)) => {
            items.sort();
            Reply::Array(Some(items))
        }
        other => other,
    }
}
