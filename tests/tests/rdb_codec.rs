//! The RDB codec (`ferrokv-rdb`) against redis-server 7.0.15's DUMP payloads: the
//! payloads ferrokv writes for strings are Redis's byte for byte, LZF-compressed ones
//! included, and every payload Redis writes for a string decodes to the value.

use ferrokv_rdb::dump::{dump_string, restore};
use ferrokv_rdb::value::RdbValue;
use ferrokv_tests::resp::Reply;
use ferrokv_tests::{Rng, Server};

fn redis_dump(conn: &mut ferrokv_tests::Conn, value: &[u8]) -> Vec<u8> {
    conn.send(&[&b"SET"[..], b"k", value]);
    match conn.call(&["DUMP", "k"]) {
        Reply::Bulk(Some(p)) => p,
        other => panic!("DUMP: {other:?}"),
    }
}

#[test]
fn string_payloads_match_redis() {
    let redis = Server::redis(&[]);
    let mut c = redis.conn();
    let mut rng = Rng::new(7);
    let mut values: Vec<Vec<u8>> = [
        "",
        "a",
        "hello",
        "0",
        "12",
        "-1",
        "-128",
        "-129",
        "300",
        "32767",
        "32768",
        "65536",
        "2147483647",
        "2147483648",
        "-2147483648",
        "-2147483649",
        "4294967296",
        "9223372036854775807",
        "012",
        "+1",
        " 1",
        "12345678901",
        "123456789012",
        "twenty bytes long!!!",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // Longer strings that do not compress: Redis tries LZF and keeps them raw.
    for len in [21, 64, 100, 1000, 16384, 20000] {
        values.push((0..len).map(|_| rng.below(256) as u8).collect());
    }
    for v in &values {
        let theirs = redis_dump(&mut c, v);
        assert_eq!(
            dump_string(v),
            theirs,
            "DUMP of {} bytes: {:?}",
            v.len(),
            String::from_utf8_lossy(&v[..v.len().min(40)])
        );
        assert_eq!(restore(&theirs), Ok(RdbValue::String(v.clone())));
    }
}

#[test]
fn compressed_payloads_from_redis_decode() {
    let redis = Server::redis(&[]);
    let mut c = redis.conn();
    let mut rng = Rng::new(11);
    for len in [40, 100, 1000, 70000] {
        // Compressible: runs and repeated words.
        let word = 1 + rng.below(7) as usize;
        let v: Vec<u8> = (0..len).map(|i| b"abcdefgh"[i % word]).collect();
        let theirs = redis_dump(&mut c, &v);
        assert_eq!(theirs[1], 0xc3, "Redis compressed the {len}-byte value");
        assert_eq!(dump_string(&v), theirs, "the {len}-byte value compressed differently");
        assert_eq!(restore(&theirs), Ok(RdbValue::String(v)));
    }
}

/// Text-like values (words from a small vocabulary, numbers, JSON punctuation) of many
/// lengths: compressed by Redis, and by ferrokv to the same bytes.
#[test]
fn text_payloads_compress_like_redis() {
    let redis = Server::redis(&[]);
    let mut c = redis.conn();
    let mut rng = Rng::new(3);
    let words: [&[u8]; 8] = [b"user", b"\"id\":", b"name", b", ", b"{", b"}", b"session", b"2026-12-06T"];
    let mut compressed = 0;
    for _ in 0..200 {
        let len = 21 + rng.below(3000) as usize;
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            if rng.below(4) == 0 {
                v.extend_from_slice(rng.below(100000).to_string().as_bytes());
            } else {
                v.extend_from_slice(words[rng.below(words.len() as u64) as usize]);
            }
        }
        v.truncate(len);
        let theirs = redis_dump(&mut c, &v);
        compressed += (theirs[1] == 0xc3) as usize;
        assert_eq!(dump_string(&v), theirs, "{} bytes: {:?}", v.len(), String::from_utf8_lossy(&v[..60]));
    }
    assert!(compressed > 150, "only {compressed} of 200 values were compressed");
}

/// Small hashes (listpacks) dump to Redis's bytes exactly; big ones (tables) decode to
/// the same pairs.
#[test]
fn hash_payloads_match_redis() {
    use ferrokv_rdb::dump::dump_hash_listpack;
    let redis = Server::redis(&[]);
    let mut c = redis.conn();
    let mut rng = Rng::new(5);
    for round in 0..60 {
        c.send(&["DEL", "h"]);
        let n = 1 + rng.below(if round < 50 { 40 } else { 300 }) as usize;
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for i in 0..n {
            let f = match rng.below(3) {
                0 => format!("{}", rng.below(100000) as i64 - 50000).into_bytes(),
                1 => format!("field:{i}").into_bytes(),
                _ => vec![b'f'; 1 + rng.below(80) as usize],
            };
            let v = match rng.below(3) {
                0 => format!("{}", rng.below(1 << 40)).into_bytes(),
                1 => format!("value-{i}-{}", "x".repeat(rng.below(30) as usize)).into_bytes(),
                _ => (0..rng.below(70)).map(|_| b'a' + rng.below(3) as u8).collect(),
            };
            if pairs.iter().any(|(g, _)| *g == f) {
                continue;
            }
            c.send(&[&b"HSET"[..], b"h", &f, &v]);
            pairs.push((f, v));
        }
        let theirs = match c.call(&["DUMP", "h"]) {
            Reply::Bulk(Some(p)) => p,
            other => panic!("DUMP: {other:?}"),
        };
        let refs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(f, v)| (f.as_slice(), v.as_slice())).collect();
        if theirs[0] == ferrokv_rdb::value::TYPE_HASH_LISTPACK {
            assert_eq!(dump_hash_listpack(&refs, true), theirs, "hash of {} pairs", pairs.len());
        }
        match restore(&theirs) {
            Ok(RdbValue::Hash(mut got)) => {
                got.sort();
                let mut want = pairs.clone();
                want.sort();
                assert_eq!(got, want);
            }
            other => panic!("restore: {other:?}"),
        }
    }
}

/// Integer sets (intsets, of every width) dump to Redis's bytes exactly; other sets
/// (tables) decode to the same members.
#[test]
fn set_payloads_match_redis() {
    use ferrokv_rdb::dump::dump_set_intset;
    use ferrokv_rdb::value::TYPE_SET_INTSET;
    let redis = Server::redis(&[]);
    let mut c = redis.conn();
    let mut rng = Rng::new(9);
    for round in 0..60 {
        c.send(&["DEL", "s"]);
        let n = 1 + rng.below(if round < 45 { 60 } else { 700 }) as usize;
        let span: i64 = [100, 40_000, 3_000_000_000, i64::MAX / 2][round % 4];
        let strings = round % 5 == 4;
        let mut members: Vec<Vec<u8>> = Vec::new();
        let mut ints = Vec::new();
        for _ in 0..n {
            let v = (rng.below(u64::MAX) % (2 * span as u64)) as i64 - span;
            let m =
                if strings && rng.below(3) == 0 { format!("m{v}").into_bytes() } else { v.to_string().into_bytes() };
            c.send(&[&b"SADD"[..], b"s", &m]);
            if !members.contains(&m) {
                if !m.starts_with(b"m") {
                    ints.push(v);
                }
                members.push(m);
            }
        }
        let theirs = match c.call(&["DUMP", "s"]) {
            Reply::Bulk(Some(p)) => p,
            other => panic!("DUMP: {other:?}"),
        };
        if theirs[0] == TYPE_SET_INTSET {
            let width = if ints.iter().all(|&v| i16::try_from(v).is_ok()) {
                2
            } else if ints.iter().all(|&v| i32::try_from(v).is_ok()) {
                4
            } else {
                8
            };
            // The width Redis chose is the smallest that fits (no member was removed).
            let ours = dump_set_intset(&ints, width, true).expect("fits");
            assert_eq!(ours, theirs, "intset of {} members, width {width}", ints.len());
        }
        match restore(&theirs) {
            Ok(RdbValue::Set(mut got)) => {
                got.sort();
                members.sort();
                assert_eq!(got, members);
            }
            other => panic!("restore: {other:?}"),
        }
    }
}

/// Lists within one quicklist node dump to Redis's bytes exactly; longer ones (several
/// nodes) decode to the same elements in order.
#[test]
fn list_payloads_match_redis() {
    use ferrokv_rdb::dump::dump_list_quicklist;
    let redis = Server::redis(&[]);
    let mut c = redis.conn();
    let mut rng = Rng::new(13);
    for round in 0..50 {
        c.send(&["DEL", "l"]);
        let n = 1 + rng.below(if round < 40 { 100 } else { 3000 }) as usize;
        let mut elements: Vec<Vec<u8>> = Vec::new();
        for i in 0..n {
            let e = match rng.below(3) {
                0 => (rng.below(1 << 33) as i64 - (1 << 32)).to_string().into_bytes(),
                1 => format!("item-{i}").into_bytes(),
                _ => vec![b'a' + (i % 26) as u8; rng.below(100) as usize],
            };
            if rng.below(2) == 0 {
                c.send(&[&b"RPUSH"[..], b"l", &e]);
                elements.push(e);
            } else {
                c.send(&[&b"LPUSH"[..], b"l", &e]);
                elements.insert(0, e);
            }
        }
        let theirs = match c.call(&["DUMP", "l"]) {
            Reply::Bulk(Some(p)) => p,
            other => panic!("DUMP: {other:?}"),
        };
        let total: usize = elements.iter().map(|e| e.len() + 11).sum();
        if total < 4000 {
            let node: Vec<&[u8]> = elements.iter().map(|e| e.as_slice()).collect();
            assert_eq!(dump_list_quicklist(&[node], true), theirs, "list of {} elements", elements.len());
        }
        assert_eq!(restore(&theirs), Ok(RdbValue::List(elements)));
    }
}
