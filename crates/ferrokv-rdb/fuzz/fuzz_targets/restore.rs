//! DUMP payloads. Any bytes as RESTORE receives them: refused or decoded, never a panic.
//! The checksum refuses nearly every mutation before the decoder sees it, so the same
//! bytes are also taken as a payload's body (type byte and value) and given a valid
//! footer: the value decoder then runs on them, and must agree with `read_value` on the
//! body, and `skip_value` must step over exactly the bytes it read. Whatever decodes
//! must write back (through the writers DUMP uses, in each encoding that holds it) to a
//! payload that restores to the same value.
#![no_main]

use ferrokv_rdb::crc64::crc64;
use ferrokv_rdb::dump::{self, restore};
use ferrokv_rdb::encoding::Reader;
use ferrokv_rdb::value::{self, RdbValue};
use ferrokv_rdb::{DecodeError, RDB_VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = restore(data);

    let mut payload = data.to_vec();
    payload.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &payload);
    payload.extend_from_slice(&crc.to_le_bytes());
    let restored = restore(&payload);
    assert_eq!(restored, direct(data), "restore disagrees with read_value");
    if let Some((&t, body)) = data.split_first() {
        // The loader steps over values with skip_value: it must take exactly the bytes
        // read_value takes when that decodes (it checks less, so it may accept more).
        let mut r = Reader::new(body);
        let skipped = value::skip_value(t, &mut r).map(|()| r.position());
        if restored.is_ok() {
            assert_eq!(skipped, Ok(body.len()), "skip_value disagrees with read_value");
        }
    }

    if let Ok(v) = restored {
        for again in rewritten(&v) {
            assert_eq!(restore(&again).as_ref(), Ok(&v), "{v:?} written back as {again:?}");
        }
    }
});

/// The body decoded without the payload framing: a type byte, a value, nothing after.
fn direct(body: &[u8]) -> Result<RdbValue, DecodeError> {
    let mut r = Reader::new(body);
    let t = r.byte()?;
    let v = value::read_value(t, &mut r)?;
    if r.remaining() != 0 {
        return Err(DecodeError::Invalid("trailing bytes"));
    }
    Ok(v)
}

/// `v` as payloads in every encoding Redis 7.0 could hold it in, compressed or not.
fn rewritten(v: &RdbValue) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for compress in [false, true] {
        match v {
            RdbValue::String(s) => out.push(dump::dump_string_with(s, compress)),
            RdbValue::List(elements) => {
                let one_node = vec![elements.iter().map(Vec::as_slice).collect::<Vec<_>>()];
                out.push(dump::dump_list_quicklist(&one_node, compress));
                let node_each: Vec<Vec<&[u8]>> = elements.iter().map(|e| vec![e.as_slice()]).collect();
                if !node_each.is_empty() {
                    out.push(dump::dump_list_quicklist(&node_each, compress));
                }
            }
            RdbValue::Set(members) => {
                let refs: Vec<&[u8]> = members.iter().map(Vec::as_slice).collect();
                out.push(dump::dump_set_table(&refs, compress));
                // An intset holds it when every member is a canonical integer, and
                // keeps the order when they ascend.
                let ints: Option<Vec<i64>> = members
                    .iter()
                    .map(|m| std::str::from_utf8(m).ok()?.parse::<i64>().ok().filter(|n| n.to_string().as_bytes() == m))
                    .collect();
                if let Some(ints) = ints.filter(|i| i.windows(2).all(|w| w[0] < w[1])) {
                    let width = value::intset_width(&ints);
                    out.extend(dump::dump_set_intset(&ints, width, compress));
                }
            }
            RdbValue::Hash(pairs) => {
                let refs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(f, v)| (f.as_slice(), v.as_slice())).collect();
                out.push(dump::dump_hash_table(&refs, compress));
                out.push(dump::dump_hash_listpack(&refs, compress));
            }
            RdbValue::ZSet(members) => {
                // Both keep the stored order: the skiplist writer takes rank order and
                // writes it from the tail, so its payload reads back reversed.
                let refs: Vec<(&[u8], f64)> = members.iter().map(|(m, s)| (m.as_slice(), *s)).collect();
                out.push(dump::dump_zset_listpack(&refs, compress));
                let reversed: Vec<(&[u8], f64)> = refs.iter().rev().copied().collect();
                out.push(dump::dump_zset_skiplist(&reversed, compress));
            }
        }
    }
    out
}
