//! DUMP payloads: `<type byte> <value> <RDB version, 2 bytes LE> <CRC-64, 8 bytes LE>`,
//! the checksum covering everything before it (Redis's `createDumpPayload` and
//! `verifyDumpPayload`). The value is what [`crate::value`] writes and reads.

use crate::crc64::crc64;
use crate::encoding::Reader;
use crate::value::{self, RdbValue};
use crate::{DecodeError, RDB_VERSION};

/// A payload around a value written by one of [`crate::value`]'s writers.
pub fn payload(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    payload_sized(0, write)
}

/// [`payload`] into a buffer of `size` bytes to begin with: a size known beforehand
/// (a string's) spares the copies of growing it, the footer's included.
pub fn payload_sized(size: usize, write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    write(&mut out);
    finish(out)
}

/// The DUMP payload of a list as quicklist nodes of listpacks (`nodes`: the elements
/// of each node, head to tail). Byte-identical to Redis's when the nodes are split as
/// Redis's quicklist split them (a list within one node always is).
pub fn dump_list_quicklist(nodes: &[Vec<&[u8]>], compress: bool) -> Vec<u8> {
    payload(|out| value::write_list_quicklist(out, None, nodes.iter().map(|n| n.iter().copied()), compress))
}

/// The DUMP payload of a set Redis keeps as an intset, its members `width` bytes each
/// (see [`value::write_set_intset`]). None when a member does not fit the width.
pub fn dump_set_intset(members: &[i64], width: u8, compress: bool) -> Option<Vec<u8>> {
    let mut sorted = members.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::new();
    value::write_set_intset(&mut out, None, &sorted, width, compress).then(|| finish(out))
}

/// The DUMP payload of a set Redis keeps as a table, members in the order given.
pub fn dump_set_table(members: &[&[u8]], compress: bool) -> Vec<u8> {
    payload(|out| value::write_set_table(out, None, members.len(), members.iter().copied(), compress))
}

/// The DUMP payload of a hash Redis keeps as a listpack: byte-identical to Redis's.
pub fn dump_hash_listpack(pairs: &[(&[u8], &[u8])], compress: bool) -> Vec<u8> {
    payload(|out| value::write_hash_listpack(out, None, pairs.iter().copied(), compress))
}

/// The DUMP payload of a hash Redis keeps as a table, pairs in the order given.
pub fn dump_hash_table(pairs: &[(&[u8], &[u8])], compress: bool) -> Vec<u8> {
    payload(|out| value::write_hash_table(out, None, pairs.len(), pairs.iter().copied(), compress))
}

/// The DUMP payload of a sorted set Redis keeps as a listpack (`ranked`: lowest rank
/// first): byte-identical to Redis's.
pub fn dump_zset_listpack(ranked: &[(&[u8], f64)], compress: bool) -> Vec<u8> {
    payload(|out| value::write_zset_listpack(out, None, ranked.iter().copied(), compress))
}

/// The DUMP payload of a sorted set Redis keeps as a skiplist (`ranked`: lowest rank
/// first; written from the tail as Redis does): byte-identical to Redis's.
pub fn dump_zset_skiplist(ranked: &[(&[u8], f64)], compress: bool) -> Vec<u8> {
    payload(|out| value::write_zset_skiplist(out, None, ranked.len(), ranked.iter().rev().copied(), compress))
}

/// The DUMP payload of a string value as Redis 7.0 writes it with `rdbcompression`
/// yes (the default): longer compressible strings LZF-compressed.
pub fn dump_string(value: &[u8]) -> Vec<u8> {
    dump_string_with(value, true)
}

/// [`dump_string`] with `rdbcompression` given.
pub fn dump_string_with(s: &[u8], compress: bool) -> Vec<u8> {
    payload(|out| value::write_string_value(out, None, s, compress))
}

fn finish(mut out: Vec<u8>) -> Vec<u8> {
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks a payload's footer: its RDB version is not newer than ours and its checksum
/// matches. Returns the body (type byte and value).
pub fn verify(payload: &[u8]) -> Result<&[u8], DecodeError> {
    if payload.len() < 10 {
        return Err(DecodeError::BadPayload);
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION {
        return Err(DecodeError::BadPayload);
    }
    let crc = u64::from_le_bytes(footer[2..10].try_into().expect("8 bytes"));
    // Unlike a file's, a payload's checksum is always checked: DUMP always writes one.
    if crc != crc64(0, &payload[..payload.len() - 8]) {
        return Err(DecodeError::BadPayload);
    }
    Ok(body)
}

/// Decodes a DUMP payload (RESTORE's input).
pub fn restore(payload: &[u8]) -> Result<RdbValue, DecodeError> {
    let body = verify(payload)?;
    let mut r = Reader::new(body);
    let t = r.byte()?;
    if !value::is_value_type(t) {
        return Err(DecodeError::Invalid("value type"));
    }
    let v = value::read_value(t, &mut r)?;
    if r.remaining() != 0 {
        return Err(DecodeError::Invalid("trailing bytes"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever arrives in a RESTORE, decoding never panics, and a valid payload
        /// with any byte flipped is refused or decodes (the checksum catches it).
        #[test]
        fn restore_never_panics(data in proptest::collection::vec(any::<u8>(), 0..128), flip in any::<usize>()) {
            let _ = restore(&data);
            let mut p = dump_string(&data);
            let i = flip % p.len();
            p[i] ^= 0x5a;
            prop_assert!(restore(&p).is_err());
        }
    }

    #[test]
    fn tables_and_packed_forms_round_trip() {
        let pairs: [(&[u8], &[u8]); 3] = [(b"f", b"1"), (b"long field name here", b"v"), (b"-5", b"")];
        let want = RdbValue::Hash(pairs.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect());
        assert_eq!(restore(&dump_hash_table(&pairs, true)), Ok(want.clone()));
        assert_eq!(restore(&dump_hash_listpack(&pairs, true)), Ok(want));
        let members: [&[u8]; 3] = [b"a", b"300", b"member"];
        let want = RdbValue::Set(members.iter().map(|m| m.to_vec()).collect());
        assert_eq!(restore(&dump_set_table(&members, false)), Ok(want));
        let p = dump_set_intset(&[5, -3, 70000, 5], 4, true).unwrap();
        assert_eq!(restore(&p), Ok(RdbValue::Set(vec![b"-3".to_vec(), b"5".to_vec(), b"70000".to_vec()])));
        assert_eq!(dump_set_intset(&[70000], 2, true), None, "does not fit 16 bits");
        let nodes = vec![vec![&b"a"[..], b"2"], vec![&b"c"[..]]];
        let want = RdbValue::List(vec![b"a".to_vec(), b"2".to_vec(), b"c".to_vec()]);
        assert_eq!(restore(&dump_list_quicklist(&nodes, true)), Ok(want));
    }

    #[test]
    fn payloads_round_trip_and_reject_corruption() {
        for v in [&b""[..], b"hello", b"123", b"-99999", b"\x00\xff binary"] {
            let p = dump_string(v);
            assert_eq!(restore(&p), Ok(RdbValue::String(v.to_vec())));
            let mut bad = p.clone();
            bad[1] ^= 1;
            assert_eq!(restore(&bad), Err(DecodeError::BadPayload));
        }
        let mut newer = dump_string(b"x");
        let n = newer.len();
        newer[n - 10] = 11;
        assert_eq!(verify(&newer), Err(DecodeError::BadPayload));
        assert_eq!(restore(b"short"), Err(DecodeError::BadPayload));
    }
}
