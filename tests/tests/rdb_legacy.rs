//! The pre-7.0 containers (`ferrokv_rdb::legacy`) against redis-server 7.0.15: RDB
//! files written by hand — ziplists of lists, hashes and sorted sets, zipmaps,
//! quicklists of ziplists, and the plain list and sorted-set records of old dumps —
//! load into Redis, and what Redis then answers (LRANGE, HGETALL, ZRANGE WITHSCORES)
//! is exactly what our decoders read from the same bytes. Damaged containers that
//! Redis refuses to load, our decoders refuse too; the odd-but-legal forms Redis
//! accepts, they accept.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use ferrokv_rdb::crc64::crc64;
use ferrokv_rdb::encoding::{write_len, write_string, write_string_compressed};
use ferrokv_rdb::legacy::{write_ziplist, write_zipmap, ziplist_elements, zipmap_pairs};
use ferrokv_tests::resp::Reply;
use ferrokv_tests::{Kind, Rng, Server};

use ferrokv_rdb::file::{OPCODE_EOF, OPCODE_SELECTDB};
use ferrokv_rdb::value::{
    TYPE_HASH_ZIPLIST as RDB_TYPE_HASH_ZIPLIST, TYPE_HASH_ZIPMAP as RDB_TYPE_HASH_ZIPMAP, TYPE_LIST as RDB_TYPE_LIST,
    TYPE_LIST_QUICKLIST as RDB_TYPE_LIST_QUICKLIST, TYPE_LIST_ZIPLIST as RDB_TYPE_LIST_ZIPLIST,
    TYPE_ZSET as RDB_TYPE_ZSET, TYPE_ZSET_ZIPLIST as RDB_TYPE_ZSET_ZIPLIST,
};

/// Integers at every ziplist encoding's edges, and texts that look like integers but
/// are not in canonical form (so stay strings).
const EDGES: &[&str] = &[
    "0",
    "12",
    "13",
    "-1",
    "127",
    "128",
    "-128",
    "-129",
    "32767",
    "32768",
    "-32768",
    "-32769",
    "8388607",
    "8388608",
    "-8388608",
    "-8388609",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "012",
    "+1",
    "-0",
    " 1",
    "00",
    "",
];

/// An RDB file as Redis 6 and older wrote it: `REDIS` and the version, SELECTDB 0,
/// `<type> <key> <value>` records, EOF and the CRC-64 of everything before it (LE).
struct RdbFile {
    bytes: Vec<u8>,
    keys: usize,
}

impl RdbFile {
    fn new(version: u16) -> RdbFile {
        let mut bytes = format!("REDIS{version:04}").into_bytes();
        bytes.push(OPCODE_SELECTDB);
        write_len(&mut bytes, 0);
        RdbFile { bytes, keys: 0 }
    }

    /// A record whose value is already encoded.
    fn record(&mut self, rdb_type: u8, key: &str, value: &[u8]) {
        self.bytes.push(rdb_type);
        write_string(&mut self.bytes, key.as_bytes());
        self.bytes.extend_from_slice(value);
        self.keys += 1;
    }

    fn finish(mut self) -> Vec<u8> {
        self.bytes.push(OPCODE_EOF);
        let crc = crc64(0, &self.bytes);
        self.bytes.extend_from_slice(&crc.to_le_bytes());
        self.bytes
    }
}

/// `s` as an RDB string, LZF-compressed when `compress` and Redis would.
fn rdb_string(s: &[u8], compress: bool) -> Vec<u8> {
    let mut out = Vec::new();
    write_string_compressed(&mut out, s, compress);
    out
}

/// A directory holding one RDB file, removed on drop unless the test failed.
struct RdbDir(PathBuf);

const RDB_NAME: &str = "legacy.rdb";

impl RdbDir {
    fn new(file: &[u8]) -> RdbDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join("ferrokv-tests").join(format!("rdb-legacy-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        std::fs::write(dir.join(RDB_NAME), file).expect("write the RDB file");
        RdbDir(dir)
    }

    /// redis-server loading this file. The harness passes its own `--dir` first; the
    /// later one wins, as in a config file.
    fn start_redis(&self) -> Result<Server, ferrokv_tests::server::StartError> {
        let dir = self.0.to_str().expect("a UTF-8 temp dir");
        Server::start(Kind::Redis, &["--dir", dir, "--dbfilename", RDB_NAME])
    }
}

impl Drop for RdbDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the RDB file is kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// What a key must hold once Redis has loaded the file.
#[derive(Debug)]
enum Expected {
    List(Vec<Vec<u8>>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    /// Members and scores in rank order.
    Zset(Vec<(Vec<u8>, f64)>),
}

/// One element of random shape: edge integers, other integers, binary strings of
/// lengths on both sides of the 6-bit and 14-bit string length forms.
fn element(rng: &mut Rng) -> Vec<u8> {
    let any: Vec<u8> = (0..=255).collect();
    match rng.weighted(&[4, 3, 2, 6, 3, 1]) {
        0 => rng.pick(EDGES).as_bytes().to_vec(),
        1 => rng.range(-1000, 1000).to_string().into_bytes(),
        2 => rng.range(i64::MIN, i64::MAX).to_string().into_bytes(),
        3 => {
            let len = rng.below(64) as usize;
            rng.bytes(len, &any)
        }
        4 => {
            let len = 64 + rng.below(400) as usize;
            rng.bytes(len, b"abc")
        }
        _ => {
            let len = *rng.pick(&[16383, 16384, 20000]);
            rng.bytes(len, &any)
        }
    }
}

/// `n` elements, no two equal (hash fields, sorted-set members).
fn distinct(rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    let mut seen = HashSet::new();
    (0..n).map(|_| element(rng)).filter(|e| seen.insert(e.clone())).collect()
}

/// A score as text, as a ziplist or an old ZSET record holds it: an integer (stored
/// with an integer encoding in a ziplist), a double in exponent form (shortest, or
/// with 18 digits as Redis's `%.17g`), a plain decimal, an infinity. Never longer than
/// 127 bytes: Redis's `zzlStrtod` reads no more of a ziplist score.
fn score_text(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => rng.range(-1000, 1000).to_string(),
        1 => rng.pick(EDGES).parse::<i64>().map_or_else(|_| "7".into(), |n| n.to_string()),
        2 => Some(f64::from_bits(rng.next_u64()))
            .filter(|x| x.is_finite())
            .map_or_else(|| "0".into(), |x| format!("{x:e}")),
        3 => format!("{}", rng.range(-1_000_000, 1_000_000) as f64 / 1024.0),
        4 => format!("{:.17e}", rng.range(-1 << 40, 1 << 40) as f64 / 3.0),
        _ => rng.pick(&["inf", "-inf", "1.5", "-0.25", "0.1"]).to_string(),
    }
}

/// Pairs of `field, value, ...` elements.
fn pairs(elements: &[Vec<u8>]) -> Vec<(Vec<u8>, Vec<u8>)> {
    assert!(elements.len().is_multiple_of(2), "an odd number of pair elements");
    elements.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect()
}

fn parse_score(text: &[u8]) -> f64 {
    std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("score {text:?}"))
}

/// Sorted-set order: by score (-0 and 0 equal), then member bytes.
fn rank<S>(zset: &mut [(Vec<u8>, S)], score: impl Fn(&S) -> f64) {
    zset.sort_by(|a, b| {
        let by_score = score(&a.1).partial_cmp(&score(&b.1)).expect("no NaN score");
        by_score.then_with(|| a.0.cmp(&b.0))
    });
}

/// Whether to LZF-compress a value (as Redis does with `rdbcompression yes`).
fn compress(rng: &mut Rng) -> bool {
    rng.chance(50)
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(Vec::as_slice).collect()
}

/// Builds a file of every record kind with random contents, recording what each key
/// must hold: for the containers, what our decoders read back from the bytes written.
fn random_file(version: u16, rng: &mut Rng) -> (Vec<u8>, Vec<(String, Expected)>) {
    let mut file = RdbFile::new(version);
    let mut expected = Vec::new();

    // Lists as one ziplist (the last ones long: 5-byte previous lengths, zllen 65535).
    for i in 0..12 {
        let n = match i {
            10 => 300,
            11 => 70000,
            _ => 1 + rng.below(40) as usize,
        };
        let elements: Vec<Vec<u8>> = if n == 70000 {
            // Short ones, so that the list stays a few hundred kilobytes.
            (0..n).map(|_| rng.pick(EDGES).as_bytes().to_vec()).collect()
        } else {
            (0..n).map(|_| element(rng)).collect()
        };
        let zl = write_ziplist(&refs(&elements));
        let read = ziplist_elements(&zl).expect("our own ziplist");
        assert_eq!(read, elements);
        let key = format!("list-ziplist:{i}");
        file.record(RDB_TYPE_LIST_ZIPLIST, &key, &rdb_string(&zl, compress(rng)));
        expected.push((key, Expected::List(read)));
    }

    // Hashes as a ziplist of field, value, ... (the last one over 128 pairs: Redis
    // turns it into a table).
    for i in 0..10 {
        let n = if i == 9 { 200 } else { 1 + rng.below(30) as usize };
        let fields = distinct(rng, n);
        let mut elements = Vec::new();
        for f in fields {
            elements.push(f);
            elements.push(element(rng));
        }
        let zl = write_ziplist(&refs(&elements));
        let read = pairs(&ziplist_elements(&zl).expect("our own ziplist"));
        let key = format!("hash-ziplist:{i}");
        file.record(RDB_TYPE_HASH_ZIPLIST, &key, &rdb_string(&zl, compress(rng)));
        expected.push((key, Expected::Hash(read)));
    }

    // Sorted sets as a ziplist of member, score, ... in rank order, as Redis kept them.
    for i in 0..10 {
        let n = if i == 9 { 200 } else { 1 + rng.below(30) as usize };
        let mut zset: Vec<(Vec<u8>, String)> = distinct(rng, n).into_iter().map(|m| (m, score_text(rng))).collect();
        rank(&mut zset, |s| parse_score(s.as_bytes()));
        let mut elements = Vec::new();
        for (member, score) in zset {
            elements.push(member);
            elements.push(score.into_bytes());
        }
        let zl = write_ziplist(&refs(&elements));
        let read: Vec<(Vec<u8>, f64)> = pairs(&ziplist_elements(&zl).expect("our own ziplist"))
            .into_iter()
            .map(|(m, s)| (m, parse_score(&s)))
            .collect();
        let key = format!("zset-ziplist:{i}");
        file.record(RDB_TYPE_ZSET_ZIPLIST, &key, &rdb_string(&zl, compress(rng)));
        expected.push((key, Expected::Zset(read)));
    }

    // Hashes as zipmaps (Redis 2.x), strings of 254 bytes and more among them, and one
    // of 300 pairs (count byte 254).
    for i in 0..8 {
        let n = if i == 7 { 300 } else { 1 + rng.below(20) as usize };
        let fields = distinct(rng, n);
        let values: Vec<Vec<u8>> = fields.iter().map(|_| element(rng)).collect();
        let pairs: Vec<(&[u8], &[u8])> =
            fields.iter().map(Vec::as_slice).zip(values.iter().map(Vec::as_slice)).collect();
        let zm = write_zipmap(&pairs);
        let read = zipmap_pairs(&zm).expect("our own zipmap");
        let key = format!("hash-zipmap:{i}");
        file.record(RDB_TYPE_HASH_ZIPMAP, &key, &rdb_string(&zm, compress(rng)));
        expected.push((key, Expected::Hash(read)));
    }
    // A zipmap as Redis 2.x left it after shrinking values in place: free bytes after
    // them, which a reader skips.
    let zm = b"\x03\x03foo\x01\x02b..\x05hello\x05\x00world\x01k\x00\x04....\xff";
    let read = zipmap_pairs(zm).expect("a zipmap with free space");
    file.record(RDB_TYPE_HASH_ZIPMAP, "hash-zipmap:free", &rdb_string(zm, false));
    expected.push(("hash-zipmap:free".into(), Expected::Hash(read)));

    // Lists as quicklists of ziplists (Redis 3.2 to 6.2); an empty node is skipped.
    for i in 0..6 {
        let mut value = Vec::new();
        let nodes = 1 + rng.below(5);
        write_len(&mut value, nodes + u64::from(i == 0));
        let mut read = Vec::new();
        for node in 0..nodes {
            if i == 0 && node == 0 {
                value.extend_from_slice(&rdb_string(&write_ziplist(&[]), false));
            }
            let n = 1 + rng.below(30) as usize;
            let elements: Vec<Vec<u8>> = (0..n).map(|_| element(rng)).collect();
            let zl = write_ziplist(&refs(&elements));
            read.extend(ziplist_elements(&zl).expect("our own ziplist"));
            value.extend_from_slice(&rdb_string(&zl, compress(rng)));
        }
        let key = format!("list-quicklist:{i}");
        file.record(RDB_TYPE_LIST_QUICKLIST, &key, &value);
        expected.push((key, Expected::List(read)));
    }

    // Plain lists: a length, then strings.
    for i in 0..3 {
        let elements: Vec<Vec<u8>> = (0..1 + rng.below(30)).map(|_| element(rng)).collect();
        let mut value = Vec::new();
        write_len(&mut value, elements.len() as u64);
        for e in &elements {
            value.extend_from_slice(&rdb_string(e, compress(rng)));
        }
        let key = format!("list:{i}");
        file.record(RDB_TYPE_LIST, &key, &value);
        expected.push((key, Expected::List(elements)));
    }

    // Old sorted sets: a length, then member strings and scores as text after a
    // length byte, or 254 / 255 for +inf / -inf.
    for i in 0..3 {
        let n = 1 + rng.below(30) as usize;
        let members = distinct(rng, n);
        let mut value = Vec::new();
        write_len(&mut value, members.len() as u64);
        let mut zset = Vec::new();
        for m in members {
            value.extend_from_slice(&rdb_string(&m, compress(rng)));
            let score = match rng.below(8) {
                0 => {
                    value.push(254);
                    f64::INFINITY
                }
                1 => {
                    value.push(255);
                    f64::NEG_INFINITY
                }
                _ => {
                    let text = score_text(rng);
                    value.push(u8::try_from(text.len()).expect("a short score"));
                    value.extend_from_slice(text.as_bytes());
                    parse_score(text.as_bytes())
                }
            };
            zset.push((m, score));
        }
        rank(&mut zset, |&s| s);
        let key = format!("zset:{i}");
        file.record(RDB_TYPE_ZSET, &key, &value);
        expected.push((key, Expected::Zset(zset)));
    }

    assert_eq!(file.keys, expected.len());
    (file.finish(), expected)
}

fn bulks(reply: Reply, what: &str) -> Vec<Vec<u8>> {
    match reply {
        Reply::Array(Some(items)) => items
            .into_iter()
            .map(|r| match r {
                Reply::Bulk(Some(b)) => b,
                other => panic!("{what}: element {other:?}"),
            })
            .collect(),
        other => panic!("{what}: {other:?}"),
    }
}

/// Checks every key of `expected` in the Redis that loaded the file.
fn check_loaded(redis: &Server, expected: &[(String, Expected)]) {
    let mut c = redis.conn();
    assert_eq!(c.call(&["DBSIZE"]), Reply::Int(expected.len() as i64), "keys Redis loaded");
    for (key, want) in expected {
        match want {
            Expected::List(want) => {
                let got = bulks(c.call(&["LRANGE", key, "0", "-1"]), key);
                assert_eq!(got.len(), want.len(), "{key}: length");
                for (i, (g, w)) in got.iter().zip(want).enumerate() {
                    assert_eq!(g, w, "{key}: element {i}");
                }
            }
            Expected::Hash(want) => {
                let mut got = pairs(&bulks(c.call(&["HGETALL", key]), key));
                let mut want = want.clone();
                got.sort();
                want.sort();
                assert!(got == want, "{key}: HGETALL differs ({} pairs against {})", got.len(), want.len());
            }
            Expected::Zset(want) => {
                let got: Vec<(Vec<u8>, f64)> = pairs(&bulks(c.call(&["ZRANGE", key, "0", "-1", "WITHSCORES"]), key))
                    .into_iter()
                    .map(|(m, s)| (m, parse_score(&s)))
                    .collect();
                assert_eq!(got.len(), want.len(), "{key}: length");
                for (i, (g, w)) in got.iter().zip(want).enumerate() {
                    assert_eq!(g.0, w.0, "{key}: member {i}");
                    assert_eq!(g.1.to_bits(), w.1.to_bits(), "{key}: score of member {i}");
                }
            }
        }
    }
}

/// Random files in the formats of Redis 5 and 6 (RDB 9), 4 (8), 3.2 (7) and 3.0 (6):
/// Redis loads them and holds what our decoders read.
#[test]
fn redis_loads_what_we_read() {
    for (version, seed) in [(9, 1), (8, 2), (7, 3), (6, 4)] {
        let mut rng = Rng::new(seed);
        let (file, expected) = random_file(version, &mut rng);
        let dir = RdbDir::new(&file);
        let redis = dir.start_redis().unwrap_or_else(|e| panic!("RDB {version}, seed {seed}: {e}"));
        check_loaded(&redis, &expected);
    }
}

/// The same Redis 3.0-6.2 files load into ferrokv-server (one shard and several) to
/// what Redis holds.
#[test]
fn ferrokv_loads_old_files() {
    for (version, seed) in [(9, 1), (8, 2), (7, 3), (6, 4)] {
        let mut rng = Rng::new(seed);
        let (file, expected) = random_file(version, &mut rng);
        let dir = RdbDir::new(&file);
        let d = dir.0.to_str().expect("a UTF-8 temp dir");
        for threads in ["1", "2"] {
            let f = Server::ferrokv(&["--dir", d, "--dbfilename", RDB_NAME, "--server-threads", threads]);
            check_loaded(&f, &expected);
        }
    }
}

/// A one-key file whose value is `zl` as a ziplist-encoded list.
fn list_ziplist_file(zl: &[u8]) -> Vec<u8> {
    let mut file = RdbFile::new(9);
    file.record(RDB_TYPE_LIST_ZIPLIST, "l", &rdb_string(zl, false));
    file.finish()
}

/// Redis's verdict on a file: the list it loaded, or the log line of its refusal.
fn redis_reads_list(file: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let dir = RdbDir::new(file);
    match dir.start_redis() {
        Ok(redis) => Ok(bulks(redis.conn().call(&["LRANGE", "l", "0", "-1"]), "LRANGE")),
        Err(e) => match e.output.lines().find(|l| l.contains("integrity check failed")) {
            Some(line) => Err(line.to_string()),
            None => panic!("Redis failed otherwise: {e}"),
        },
    }
}

/// Damaged ziplists: where Redis refuses to load, we refuse; where Redis accepts a
/// form its writer does not produce (a long previous length holding a small one, a
/// count of 65535 over few entries, a 32-bit string header with low bits set), we read
/// the same elements.
#[test]
fn damaged_ziplists_get_the_verdict_redis_gives() {
    let elements: [&[u8]; 3] = [b"a", b"hello", b"300"];
    let good = write_ziplist(&elements);
    let patch = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut zl = good.clone();
        f(&mut zl);
        zl
    };
    let set_size = |zl: &mut Vec<u8>| {
        let n = zl.len() as u32;
        zl[0..4].copy_from_slice(&n.to_le_bytes());
    };
    // Offsets: entries at 10 ([0, 0x01, 'a']), 13 ([3, 0x05, "hello"]), 20 ([7, 0xc0, 300 LE]).
    assert_eq!(&good[10..14], [0, 0x01, b'a', 3]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("intact", good.clone()),
        ("zlbytes one too many", patch(&|zl| zl[0] += 1)),
        ("zltail off by one", patch(&|zl| zl[4] -= 1)),
        ("zllen 2 for 3 entries", patch(&|zl| zl[8] = 2)),
        ("zllen 65535 for 3 entries", patch(&|zl| zl[8..10].copy_from_slice(&[0xff, 0xff]))),
        ("wrong previous length", patch(&|zl| zl[13] = 4)),
        ("first entry with a previous length", patch(&|zl| zl[10] = 1)),
        ("string running past the end", patch(&|zl| zl[14] = 0x3f)),
        ("unknown encoding 0xc1", patch(&|zl| zl[21] = 0xc1)),
        ("terminator inside", patch(&|zl| zl[13] = 0xff)),
        (
            "5-byte previous length holding 3",
            patch(&|zl| {
                zl.splice(13..14, [0xfe, 3, 0, 0, 0]);
                zl[4] += 4;
                zl[20 + 4] = 11;
                set_size(zl);
            }),
        ),
        (
            "32-bit string header with low bits set",
            patch(&|zl| {
                zl.splice(14..15, [0x9f, 0, 0, 0, 5]);
                zl[4] += 4;
                zl[20 + 4] = 11;
                set_size(zl);
            }),
        ),
    ];
    for (what, zl) in cases {
        let ours = ziplist_elements(&zl);
        let theirs = redis_reads_list(&list_ziplist_file(&zl));
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}: both read it, differently"),
            (Err(_), Err(_)) => {}
            _ => panic!("{what}: we read {ours:?}, Redis {theirs:?}"),
        }
        eprintln!(
            "{what}: ours {:?}, Redis {}",
            ours.as_ref().map(Vec::len),
            theirs.as_ref().map_or_else(|e| e.clone(), |l| format!("{} elements", l.len()))
        );
    }
}

/// Zipmaps: a wrong count and a value running past the end are refused by both.
#[test]
fn damaged_zipmaps_get_the_verdict_redis_gives() {
    for (what, zm, loads) in [
        ("intact", &b"\x01\x01a\x01\x00b\xff"[..], true),
        ("count 2 for 1 pair", b"\x02\x01a\x01\x00b\xff", false),
        ("free space past the end", b"\x01\x01a\x01\x03b\xff", false),
    ] {
        assert_eq!(zipmap_pairs(zm).is_ok(), loads, "{what}: ours");
        let mut file = RdbFile::new(9);
        file.record(RDB_TYPE_HASH_ZIPMAP, "h", &rdb_string(zm, false));
        let dir = RdbDir::new(&file.finish());
        match dir.start_redis() {
            Ok(redis) => {
                assert!(loads, "{what}: Redis loaded it");
                let got = pairs(&bulks(redis.conn().call(&["HGETALL", "h"]), "HGETALL"));
                assert_eq!(Ok(got), zipmap_pairs(zm), "{what}");
            }
            Err(e) => assert!(!loads, "{what}: Redis refused it:\n{e}"),
        }
    }
}
