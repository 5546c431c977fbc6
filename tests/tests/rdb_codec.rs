//! The RDB codec (`ferrokv-rdb`) against redis-server 7.0.15's DUMP payloads: the
//! payloads ferrokv writes for strings are Redis's byte for byte, and every payload
//! Redis writes for a string (LZF-compressed ones included) decodes to the value.

use ferrokv_rdb::dump::{dump_string, restore, DumpValue};
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
        assert_eq!(restore(&theirs), Ok(DumpValue::String(v.clone())));
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
        assert_eq!(restore(&theirs), Ok(DumpValue::String(v)));
    }
}
