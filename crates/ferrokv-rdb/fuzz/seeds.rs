//! Writes the seed corpus, corpus/<target>/seed-<name>, with the crate's own writers:
//! one small input per encoding each target reads. `cargo run --bin seeds` from the
//! fuzz directory; the files are committed, so run it again only when a writer or a
//! target's input layout changes.

use ferrokv_rdb::crc64::crc64;
use ferrokv_rdb::file::{self, Checksum, KeyMeta};
use ferrokv_rdb::listpack::ListpackWriter;
use ferrokv_rdb::{dump, legacy, lzf, value};
use std::path::Path;

/// Value bodies (type byte and value, as in a DUMP payload before its footer), one per
/// encoding the reader takes.
fn bodies() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let mut body = |name, write: &dyn Fn(&mut Vec<u8>)| {
        let mut b = Vec::new();
        write(&mut b);
        out.push((name, b));
    };
    let long = b"a value long enough to compress, compress, compress, compress".as_slice();
    body("string-raw", &|b| value::write_string_value(b, None, b"hello", false));
    body("string-int", &|b| value::write_string_value(b, None, b"-70000", false));
    body("string-lzf", &|b| value::write_string_value(b, None, long, true));
    body("list-quicklist2", &|b| {
        let nodes: [&[&[u8]]; 2] = [&[b"a", b"1", b"-300"], &[b"bb", long]];
        value::write_list_quicklist(b, None, nodes.iter().map(|n| n.iter().copied()), false)
    });
    body("list-quicklist2-lzf", &|b| {
        let node: [&[u8]; 3] = [long, long, b"x"];
        value::write_list_quicklist(b, None, [node.iter().copied()].into_iter(), true)
    });
    body("set-table", &|b| value::write_set_table(b, None, 3, [&b"x"[..], b"12", b"member"], false));
    body("set-intset", &|b| {
        value::write_set_intset(b, None, &[-5, 7, 70000], 4, false);
    });
    let pairs: [(&[u8], &[u8]); 3] = [(b"f", b"1"), (b"field", b"value"), (b"n", b"-129")];
    body("hash-table", &|b| value::write_hash_table(b, None, pairs.len(), pairs.iter().copied(), false));
    body("hash-listpack", &|b| value::write_hash_listpack(b, None, pairs.iter().copied(), false));
    let ranked: [(&[u8], f64); 3] = [(b"a", -1.5), (b"b", 2.0), (b"c", f64::INFINITY)];
    body("zset-listpack", &|b| value::write_zset_listpack(b, None, ranked.iter().copied(), false));
    body("zset-skiplist", &|b| value::write_zset_skiplist(b, None, 3, ranked.iter().rev().copied(), false));
    // Pre-7.0 encodings, which only the test writers produce.
    let ziplist = legacy::write_ziplist(&[b"a", b"7", b"-129", b"70000", b"5000000000", b"string"]);
    let string = |b: &mut Vec<u8>, s: &[u8]| ferrokv_rdb::encoding::write_string(b, s);
    body("list-ziplist", &|b| {
        b.push(value::TYPE_LIST_ZIPLIST);
        string(b, &ziplist);
    });
    body("hash-ziplist", &|b| {
        b.push(value::TYPE_HASH_ZIPLIST);
        string(b, &legacy::write_ziplist(&[b"f", b"1", b"g", b"two"]));
    });
    body("zset-ziplist", &|b| {
        b.push(value::TYPE_ZSET_ZIPLIST);
        string(b, &legacy::write_ziplist(&[b"m", b"1.5", b"n", b"3"]));
    });
    body("hash-zipmap", &|b| {
        b.push(value::TYPE_HASH_ZIPMAP);
        string(b, &legacy::write_zipmap(&[(b"foo", b"bar"), (b"hello", b"world")]));
    });
    body("list-quicklist1", &|b| {
        b.push(value::TYPE_LIST_QUICKLIST);
        b.push(2);
        string(b, &ziplist);
        string(b, &legacy::write_ziplist(&[b"z"]));
    });
    body("zset-text-scores", &|b| {
        // RDB_TYPE_ZSET: member, then a length-prefixed text score (254: +inf).
        b.extend_from_slice(&[value::TYPE_ZSET, 2, 1, b'a', 3, b'1', b'.', b'5', 1, b'b', 254]);
    });
    out
}

/// Record streams (what follows the header), and whole files.
fn files() -> Vec<(&'static str, Vec<u8>)> {
    let mut records = Vec::new();
    file::write_aux(&mut records, "redis-ver", b"7.0.15");
    file::write_aux_int(&mut records, "redis-bits", 64);
    file::write_function(&mut records, b"#!lua name=lib\nredis.register_function('f', function() end)");
    file::write_select_db(&mut records, 0);
    file::write_resize_db(&mut records, 3, 1);
    file::write_key_meta(&mut records, KeyMeta { expire_ms: Some(1_900_000_000_000), ..KeyMeta::default() });
    value::write_string_value(&mut records, Some(b"k"), b"v", true);
    file::write_key_meta(&mut records, KeyMeta { idle_secs: Some(70), ..KeyMeta::default() });
    value::write_hash_listpack(&mut records, Some(b"h"), [(&b"f"[..], &b"1"[..])], true);
    file::write_key_meta(&mut records, KeyMeta { freq: Some(5), ..KeyMeta::default() });
    value::write_zset_skiplist(&mut records, Some(b"z"), 1, [(&b"m"[..], 2.5)], true);
    value::write_list_quicklist(&mut records, Some(b"l"), [[&b"a"[..], b"2"].into_iter()].into_iter(), true);
    // EXPIRETIME in seconds, as files from before Redis 2.6 have it.
    records.push(file::OPCODE_EXPIRETIME);
    records.extend_from_slice(&2_000_000_000i32.to_le_bytes());
    value::write_set_table(&mut records, Some(b"s"), 1, [&b"m"[..]], false);

    let whole = |version: &[u8], checksum: Option<bool>| {
        let mut f = b"REDIS".to_vec();
        f.extend_from_slice(version);
        f.extend_from_slice(&records);
        file::write_eof(&mut f);
        if let Some(enabled) = checksum {
            let mut c = Checksum::default();
            c.update(&f);
            f.extend_from_slice(&c.trailer(enabled));
        }
        f
    };
    vec![
        ("records", records.clone()),
        ("records-eof-zero-checksum", {
            let mut r = records.clone();
            file::write_eof(&mut r);
            r.extend_from_slice(&[0; 8]);
            r
        }),
        ("file-checksum", whole(b"0010", Some(true))),
        ("file-zero-checksum", whole(b"0010", Some(false))),
        ("file-version-4-no-checksum", whole(b"0004", None)),
    ]
}

/// Container inputs: the selector byte `containers` reads, then the container.
fn containers() -> Vec<(&'static str, Vec<u8>)> {
    let with = |which: u8, bytes: &[u8]| [&[which][..], bytes].concat();
    let mut lp = ListpackWriter::new();
    for e in [&b"1"[..], b"hello", b"-4096", b"32767", b"8388607", b"2147483647", b"9223372036854775807", &[b'x'; 70]] {
        lp.push(e);
    }
    let text = b"abcabcabcabc the quick brown fox, the quick brown fox, the quick brown fox".as_slice();
    let compressed = lzf::compress(text, text.len()).expect("compressible");
    vec![
        ("listpack", with(0, &lp.finish())),
        (
            "ziplist",
            with(1, &legacy::write_ziplist(&[b"a", b"12", b"-1", b"300", b"70000", b"5000000000", &[b'y'; 70]])),
        ),
        ("zipmap", with(2, &legacy::write_zipmap(&[(b"foo", b"bar"), (&[b'k'; 300], b"")]))),
        ("lzf", with(3, &[&(text.len() as u32).to_le_bytes()[..], &compressed].concat())),
        ("lzf-compress", with(4, text)),
    ]
}

fn write(target: &str, seeds: Vec<(&'static str, Vec<u8>)>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    for (name, bytes) in seeds {
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed file");
    }
}

fn main() {
    let bodies = bodies();
    // `restore` reads its input as a payload and as a body: a few whole payloads too.
    let mut restore = bodies.clone();
    for (name, body) in &bodies[..3] {
        let mut p = body.clone();
        p.extend_from_slice(&ferrokv_rdb::RDB_VERSION.to_le_bytes());
        let crc = crc64(0, &p);
        p.extend_from_slice(&crc.to_le_bytes());
        let named: &'static str = Box::leak(format!("payload-{name}").into_boxed_str());
        restore.push((named, p));
    }
    restore.push(("payload-hash-listpack", dump::dump_hash_listpack(&[(b"f", b"v")], true)));
    write("restore", restore);
    write("rdb_file", files());
    write("containers", containers());
}
