//! The command table against redis-server 7.0.15, command by command: COMMAND INFO
//! (arity, flags, first/last/step, ACL categories, tips, key specs, byte for byte in
//! RESP2 and RESP3), COMMAND LIST with its filters, COMMAND COUNT, and COMMAND GETKEYS /
//! GETKEYSANDFLAGS over invocations that exercise every kind of key specification.
//!
//! Commands ferrokv does not have are not compared (they answer "unknown command");
//! every command ferrokv has must exist in Redis and be described identically, except
//! the few adopted from later Redis versions (or private to ferrokv) in [`NEWER`].

use std::collections::BTreeSet;

use ferrokv_tests::conn::Conn;
use ferrokv_tests::resp::{parse_one, show, Reply};
use ferrokv_tests::Server;

/// Commands ferrokv has that redis-server 7.0.15 does not: Redis 8.4's whole-slot
/// migration surface, the source-side command its task sends (ferrokv only), and Redis
/// 8.2's CLUSTER SLOT-STATS.

const NEWER: &[&str] = &["cluster|migration", "cluster|migration-sync", "cluster|slot-stats", "cluster|slot-core"];

/// `COMMAND LIST` (or a filtered one) of ferrokv without the [`NEWER`] commands.
fn ours_listed(c: &mut Conn, args: &[&str]) -> BTreeSet<Vec<u8>> {
    let mut all = names(&c.call(args));
    for n in NEWER {
        all.remove(n.as_bytes());
    }
    all
}

fn names(reply: &Reply) -> BTreeSet<Vec<u8>> {
    match reply {
        Reply::Array(Some(items)) | Reply::Set(items) => items
            .iter()
            .map(|i| match i {
                Reply::Bulk(Some(b)) => b.clone(),
                other => panic!("not a name: {other:?}"),
            })
            .collect(),
        other => panic!("not a list of names: {other:?}"),
    }
}

fn hello3(c: &mut Conn) {
    let r = c.send(&["HELLO", "3"]);
    assert!(r.starts_with(b"%"), "HELLO 3: {}", show(&r));
}

/// COMMAND INFO of every command and subcommand, compared with the reference.
#[test]
fn command_info_matches_redis_for_every_command() {
    let ferrokv = Server::ferrokv(&[]);
    let redis = Server::redis(&[]);
    let (mut f, mut r) = (ferrokv.conn(), redis.conn());
    let ours = ours_listed(&mut f, &["COMMAND", "LIST"]);
    let theirs = names(&r.call(&["COMMAND", "LIST"]));
    let invented: Vec<String> = ours.difference(&theirs).map(|n| String::from_utf8_lossy(n).into_owned()).collect();
    assert!(invented.is_empty(), "commands Redis does not have: {invented:?}");
    let (mut f3, mut r3) = (ferrokv.conn(), redis.conn());
    hello3(&mut f3);
    hello3(&mut r3);
    let mut differ = Vec::new();
    for name in &ours {
        let name = String::from_utf8_lossy(name).into_owned();
        let args = ["COMMAND", "INFO", name.as_str()];
        let container = !name.contains('|') && ours.iter().any(|n| n.starts_with(format!("{name}|").as_bytes()));
        for (fc, rc, proto) in [(&mut f, &mut r, 2), (&mut f3, &mut r3, 3)] {
            let (a, b) = (fc.send(&args), rc.send(&args));
            let same = if container {
                // A container's subcommands come in hash order and Redis has more of
                // them; they are compared one by one under their own names.
                let head = |x: &[u8]| match parse_one(x) {
                    Ok(Reply::Array(Some(mut outer))) => match outer.pop() {
                        Some(Reply::Array(Some(mut info))) => {
                            info.truncate(9);
                            info
                        }
                        other => panic!("{name}: {other:?}"),
                    },
                    other => panic!("{name}: {other:?}"),
                };
                head(&a) == head(&b)
            } else {
                a == b
            };
            if !same {
                differ.push(format!("{name} (RESP{proto}):\n  redis   {}\n  ferrokv {}", show(&b), show(&a)));
            }
        }
    }
    assert!(differ.is_empty(), "{} COMMAND INFO replies differ:\n{}", differ.len(), differ.join("\n"));
    // Unknown names answer a null, as in Redis.
    let args = ["COMMAND", "INFO", "get", "nosuchcommand", "client|nosuch", "get|x"];
    assert_eq!(show(&f.send(&args)), show(&r.send(&args)));
    assert_eq!(show(&f3.send(&args)), show(&r3.send(&args)));
}

#[test]
fn command_count_and_list_agree_with_the_table_and_filter_as_redis() {
    let ferrokv = Server::ferrokv(&[]);
    let redis = Server::redis(&[]);
    let (mut f, mut r) = (ferrokv.conn(), redis.conn());
    let all = names(&f.call(&["COMMAND", "LIST"]));
    let top_level = all.iter().filter(|n| !n.contains(&b'|')).count() as i64;
    let ours = ours_listed(&mut f, &["COMMAND", "LIST"]);
    assert_eq!(f.call(&["COMMAND", "COUNT"]), Reply::Int(top_level));
    match f.call(&["COMMAND"]) {
        Reply::Array(Some(all)) => assert_eq!(all.len() as i64, top_level),
        other => panic!("COMMAND: {other:?}"),
    }
    let filters: Vec<[&str; 2]> = vec![
        ["ACLCAT", "string"],
        ["ACLCAT", "keyspace"],
        ["ACLCAT", "WRITE"],
        ["ACLCAT", "blocking"],
        ["ACLCAT", "admin"],
        ["ACLCAT", "dangerous"],
        ["ACLCAT", "connection"],
        ["ACLCAT", "nosuchcategory"],
        ["PATTERN", "z*"],
        ["PATTERN", "client|*"],
        ["PATTERN", "*get*"],
        ["MODULE", "nosuchmodule"],
    ];
    for [kind, arg] in filters {
        let args = ["COMMAND", "LIST", "FILTERBY", kind, arg];
        let want: BTreeSet<Vec<u8>> = names(&r.call(&args)).intersection(&ours).cloned().collect();
        assert_eq!(ours_listed(&mut f, &args), want, "COMMAND LIST FILTERBY {kind} {arg}");
    }
    for bad in [
        vec!["COMMAND", "LIST", "FILTERBY", "nosuch", "x"],
        vec!["COMMAND", "LIST", "FILTERBY", "ACLCAT"],
        vec!["COMMAND", "LIST", "x"],
    ] {
        assert_eq!(show(&f.send(&bad)), show(&r.send(&bad)), "{bad:?}");
    }
}

/// COMMAND GETKEYS and GETKEYSANDFLAGS over invocations of every kind of key spec:
/// ranges, keynums, keywords, variable flags, and the errors.
#[test]
fn command_getkeys_matches_redis() {
    let ferrokv = Server::ferrokv(&[]);
    let redis = Server::redis(&[]);
    let (mut f, mut r) = (ferrokv.conn(), redis.conn());
    let cases: &[&str] = &[
        "get k",
        "set k v",
        "set k v get",
        "set k v GET ex 10",
        "mset a 1 b 2 c 3",
        "mget a b c",
        "del a b c",
        "rename a b",
        "copy a b",
        "lmove a b left right",
        "blpop a b c 0",
        "brpoplpush a b 0",
        "blmove a b left right 0",
        "lmpop 2 a b left",
        "lmpop 0 a left",
        "blmpop 0 2 a b left count 2",
        "zunionstore d 2 a b weights 1 2",
        "zinterstore d 1 a",
        "zunion 2 a b",
        "zdiff 3 a b c",
        "zintercard 2 a b limit 1",
        "zmpop 1 a min",
        "bzmpop 0 2 a b max",
        "zrangestore d src 0 -1",
        "sintercard 2 a b",
        "sunionstore d a b",
        "smove a b m",
        "sort k",
        "sort k by w get # store d",
        "sort k store d limit 0 1",
        "sort_ro k by w",
        "bitfield k get u8 0",
        "bitfield k set u8 0 1",
        "bitfield k overflow wrap incrby u8 0 1",
        "bitfield_ro k get u8 0",
        "bitop and d a b",
        "pfmerge d a b",
        "pfcount a b",
        "object encoding k",
        "lcs a b",
        "getex k px 10",
        "exists a b",
        "touch a b",
        "unlink a b",
        "watch a b",
        "hset h f v",
        "zadd z 1 m",
        "ping",
        "nosuchcommand a",
        "get",
        "get a b",
        "object nosuch k",
        "lmpop x a left",
        "zunionstore d -1 a",
        "zunionstore d 3 a",
    ];
    let mut differ = Vec::new();
    for case in cases {
        for sub in ["GETKEYS", "GETKEYSANDFLAGS"] {
            let mut args = vec!["COMMAND", sub];
            args.extend(case.split(' '));
            let (a, b) = (f.send(&args), r.send(&args));
            if a != b {
                differ.push(format!("COMMAND {sub} {case}:\n  redis   {}\n  ferrokv {}", show(&b), show(&a)));
            }
        }
    }
    assert!(differ.is_empty(), "{} GETKEYS replies differ:\n{}", differ.len(), differ.join("\n"));
}

/// COMMAND DOCS of every command and subcommand, compared with the reference (for a
/// container, everything but its `subcommands`, which list only what ferrokv has).
#[test]
fn command_docs_matches_redis_for_every_command() {
    let ferrokv = Server::ferrokv(&[]);
    let redis = Server::redis(&[]);
    let all = names(&ferrokv.conn().call(&["COMMAND", "LIST"]));
    let ours = ours_listed(&mut ferrokv.conn(), &["COMMAND", "LIST"]);
    let mut differ = Vec::new();
    for proto in [2, 3] {
        let (mut f, mut r) = (ferrokv.conn(), redis.conn());
        if proto == 3 {
            hello3(&mut f);
            hello3(&mut r);
        }
        for name in &ours {
            let name = String::from_utf8_lossy(name).into_owned();
            let args = ["COMMAND", "DOCS", name.as_str()];
            let (a, b) = (f.send(&args), r.send(&args));
            let without_subcommands = |x: &[u8]| -> Reply {
                let strip = |pairs: Vec<Reply>| -> Vec<Reply> {
                    let mut out = Vec::new();
                    for kv in pairs.chunks(2) {
                        if kv[0] != Reply::Bulk(Some(b"subcommands".to_vec())) {
                            out.extend_from_slice(kv);
                        }
                    }
                    out
                };
                match parse_one(x) {
                    Ok(Reply::Array(Some(mut outer))) if outer.len() == 2 => match outer.pop() {
                        Some(Reply::Array(Some(doc))) => Reply::Array(Some(strip(doc))),
                        other => panic!("{name}: {other:?}"),
                    },
                    Ok(Reply::Map(mut outer)) if outer.len() == 1 => match outer.pop() {
                        Some((_, Reply::Map(doc))) => Reply::Map(
                            doc.into_iter().filter(|(k, _)| *k != Reply::Bulk(Some(b"subcommands".to_vec()))).collect(),
                        ),
                        other => panic!("{name}: {other:?}"),
                    },
                    other => panic!("{name}: {other:?}"),
                }
            };
            let container = !name.contains('|') && ours.iter().any(|n| n.starts_with(format!("{name}|").as_bytes()));
            let same = if container { without_subcommands(&a) == without_subcommands(&b) } else { a == b };
            if !same {
                differ.push(format!("{name} (RESP{proto}):\n  redis   {}\n  ferrokv {}", show(&b), show(&a)));
            }
        }
    }
    assert!(differ.is_empty(), "{} COMMAND DOCS replies differ:\n{}", differ.len(), differ.join("\n"));
    // No name: every command; unknown names are left out, as in Redis.
    let mut f = ferrokv.conn();
    let top_level = all.iter().filter(|n| !n.contains(&b'|')).count();
    match f.call(&["COMMAND", "DOCS"]) {
        Reply::Array(Some(flat)) => assert_eq!(flat.len(), 2 * top_level),
        other => panic!("COMMAND DOCS: {other:?}"),
    }
    let args = ["COMMAND", "DOCS", "nosuch", "get", "client|nosuch"];
    assert_eq!(show(&f.send(&args)), show(&redis.conn().send(&args)));
}
