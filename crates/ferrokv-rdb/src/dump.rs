//! DUMP payloads: `<type byte> <value> <RDB version, 2 bytes LE> <CRC-64, 8 bytes LE>`,
//! the checksum covering everything before it (Redis's `createDumpPayload` and
//! `verifyDumpPayload`). This slice covers string values.

use crate::crc64::crc64;
use crate::encoding::{write_string_compressed, Reader};
use crate::{DecodeError, RDB_VERSION};

/// `RDB_TYPE_STRING`.
pub const TYPE_STRING: u8 = 0;
/// `RDB_TYPE_HASH` (field/value pairs as strings) and `RDB_TYPE_HASH_LISTPACK`.
pub const TYPE_HASH: u8 = 4;
pub const TYPE_HASH_LISTPACK: u8 = 16;
/// `RDB_TYPE_SET` (members as strings) and `RDB_TYPE_SET_INTSET`.
pub const TYPE_SET: u8 = 2;
pub const TYPE_SET_INTSET: u8 = 11;
/// `RDB_TYPE_LIST_QUICKLIST_2`: nodes, each a container kind (1 plain, 2 packed) and
/// its data (one element, or a listpack of elements).
pub const TYPE_LIST_QUICKLIST_2: u8 = 18;
const CONTAINER_PLAIN: u64 = 1;
const CONTAINER_PACKED: u64 = 2;

/// A value decoded from a payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DumpValue {
    String(Vec<u8>),
    /// Field/value pairs in stored order.
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    /// Members in stored order (integers of an intset as their decimal text).
    Set(Vec<Vec<u8>>),
    /// Elements head to tail.
    List(Vec<Vec<u8>>),
}

/// The DUMP payload of a list as quicklist nodes of listpacks (`nodes`: the elements
/// of each node, head to tail). Byte-identical to Redis's when the nodes are split as
/// Redis's quicklist split them (a list within one node always is).
pub fn dump_list_quicklist(nodes: &[Vec<&[u8]>], compress: bool) -> Vec<u8> {
    let mut out = vec![TYPE_LIST_QUICKLIST_2];
    crate::encoding::write_len(&mut out, nodes.len() as u64);
    for node in nodes {
        crate::encoding::write_len(&mut out, CONTAINER_PACKED);
        let mut lp = crate::listpack::ListpackWriter::new();
        for e in node {
            lp.push(e);
        }
        write_string_compressed(&mut out, &lp.finish(), compress);
    }
    finish(out)
}

/// The DUMP payload of a set Redis keeps as an intset: its members sorted, each
/// `width` bytes (2, 4 or 8: an intset widens for a big member and never narrows, so
/// the width is the set's history, not only its members). None when a member does not
/// fit the width or the width is not one of those.
pub fn dump_set_intset(members: &[i64], width: u8, compress: bool) -> Option<Vec<u8>> {
    let mut sorted = members.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let fits = |v: i64| match width {
        2 => i16::try_from(v).is_ok(),
        4 => i32::try_from(v).is_ok(),
        8 => true,
        _ => false,
    };
    if !sorted.iter().all(|&v| fits(v)) {
        return None;
    }
    let mut blob = Vec::with_capacity(8 + sorted.len() * width as usize);
    blob.extend_from_slice(&(width as u32).to_le_bytes());
    blob.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for v in sorted {
        blob.extend_from_slice(&v.to_le_bytes()[..width as usize]);
    }
    let mut out = vec![TYPE_SET_INTSET];
    write_string_compressed(&mut out, &blob, compress);
    Some(finish(out))
}

/// The DUMP payload of a set Redis keeps as a table: its members in the order given
/// (Redis writes its dict's order, so only the set of members can match).
pub fn dump_set_table(members: &[&[u8]], compress: bool) -> Vec<u8> {
    let mut out = vec![TYPE_SET];
    crate::encoding::write_len(&mut out, members.len() as u64);
    for m in members {
        write_string_compressed(&mut out, m, compress);
    }
    finish(out)
}

/// The members of an intset blob, checked: width 2/4/8, length matching the bytes,
/// members strictly ascending.
fn intset_members(blob: &[u8]) -> Result<Vec<Vec<u8>>, DecodeError> {
    if blob.len() < 8 {
        return Err(DecodeError::Invalid("intset header"));
    }
    let width = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    let len = u32::from_le_bytes([blob[4], blob[5], blob[6], blob[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) || len.checked_mul(width) != Some(blob.len() - 8) {
        return Err(DecodeError::Invalid("intset size"));
    }
    let mut out = Vec::with_capacity(len);
    let mut prev: Option<i64> = None;
    for chunk in blob[8..].chunks_exact(width) {
        let v = match width {
            2 => i16::from_le_bytes([chunk[0], chunk[1]]) as i64,
            4 => i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as i64,
            _ => i64::from_le_bytes(chunk.try_into().expect("8 bytes")),
        };
        if prev.is_some_and(|p| p >= v) {
            return Err(DecodeError::Invalid("intset order"));
        }
        prev = Some(v);
        out.push(v.to_string().into_bytes());
    }
    Ok(out)
}

/// The DUMP payload of a hash Redis keeps as a listpack (its pairs in insertion
/// order, within `hash-max-listpack-entries` / `-value`): byte-identical to Redis's.
pub fn dump_hash_listpack(pairs: &[(&[u8], &[u8])], compress: bool) -> Vec<u8> {
    let mut lp = crate::listpack::ListpackWriter::new();
    for (f, v) in pairs {
        lp.push(f);
        lp.push(v);
    }
    let mut out = vec![TYPE_HASH_LISTPACK];
    write_string_compressed(&mut out, &lp.finish(), compress);
    finish(out)
}

/// The DUMP payload of a hash Redis keeps as a table: its pairs in the order given
/// (Redis writes its dict's order, so only the set of pairs can match).
pub fn dump_hash_table(pairs: &[(&[u8], &[u8])], compress: bool) -> Vec<u8> {
    let mut out = vec![TYPE_HASH];
    crate::encoding::write_len(&mut out, pairs.len() as u64);
    for (f, v) in pairs {
        write_string_compressed(&mut out, f, compress);
        write_string_compressed(&mut out, v, compress);
    }
    finish(out)
}

/// The DUMP payload of a string value as Redis 7.0 writes it with `rdbcompression`
/// yes (the default): longer compressible strings LZF-compressed.
pub fn dump_string(value: &[u8]) -> Vec<u8> {
    dump_string_with(value, true)
}

/// [`dump_string`] with `rdbcompression` given.
pub fn dump_string_with(value: &[u8], compress: bool) -> Vec<u8> {
    let mut out = vec![TYPE_STRING];
    write_string_compressed(&mut out, value, compress);
    finish(out)
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
    // Redis accepts a payload whose checksum is 0 (written with rdbchecksum no).
    if crc != 0 && crc != crc64(0, &payload[..payload.len() - 8]) {
        return Err(DecodeError::BadPayload);
    }
    Ok(body)
}

/// Decodes a DUMP payload (RESTORE's input).
pub fn restore(payload: &[u8]) -> Result<DumpValue, DecodeError> {
    let body = verify(payload)?;
    let mut r = Reader::new(body);
    let value = match r.byte()? {
        TYPE_STRING => DumpValue::String(r.string()?),
        TYPE_HASH => {
            let n = r.len()?;
            // Each pair takes at least two bytes: a count beyond the input is a lie.
            if n > r.remaining() as u64 / 2 {
                return Err(DecodeError::Truncated);
            }
            let mut pairs = Vec::with_capacity(n as usize);
            for _ in 0..n {
                pairs.push((r.string()?, r.string()?));
            }
            DumpValue::Hash(pairs)
        }
        TYPE_HASH_LISTPACK => {
            let items = crate::listpack::elements(&r.string()?)?;
            if items.len() % 2 != 0 {
                return Err(DecodeError::Invalid("hash listpack with an odd number of elements"));
            }
            let mut it = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                pairs.push((f, v));
            }
            DumpValue::Hash(pairs)
        }
        TYPE_SET => {
            let n = r.len()?;
            if n > r.remaining() as u64 {
                return Err(DecodeError::Truncated);
            }
            let mut members = Vec::with_capacity(n as usize);
            for _ in 0..n {
                members.push(r.string()?);
            }
            DumpValue::Set(members)
        }
        TYPE_SET_INTSET => DumpValue::Set(intset_members(&r.string()?)?),
        TYPE_LIST_QUICKLIST_2 => {
            let n = r.len()?;
            if n > r.remaining() as u64 / 2 {
                return Err(DecodeError::Truncated);
            }
            let mut elements = Vec::new();
            for _ in 0..n {
                match r.len()? {
                    CONTAINER_PLAIN => elements.push(r.string()?),
                    CONTAINER_PACKED => {
                        let node = crate::listpack::elements(&r.string()?)?;
                        if node.is_empty() {
                            return Err(DecodeError::Invalid("empty quicklist node"));
                        }
                        elements.extend(node);
                    }
                    _ => return Err(DecodeError::Invalid("quicklist container")),
                }
            }
            DumpValue::List(elements)
        }
        _ => return Err(DecodeError::Invalid("value type (strings, hashes, sets and lists so far)")),
    };
    if r.remaining() != 0 {
        return Err(DecodeError::Invalid("trailing bytes"));
    }
    Ok(value)
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
        let want = DumpValue::Hash(pairs.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect());
        assert_eq!(restore(&dump_hash_table(&pairs, true)), Ok(want.clone()));
        assert_eq!(restore(&dump_hash_listpack(&pairs, true)), Ok(want));
        let members: [&[u8]; 3] = [b"a", b"300", b"member"];
        let want = DumpValue::Set(members.iter().map(|m| m.to_vec()).collect());
        assert_eq!(restore(&dump_set_table(&members, false)), Ok(want));
        let p = dump_set_intset(&[5, -3, 70000, 5], 4, true).unwrap();
        assert_eq!(restore(&p), Ok(DumpValue::Set(vec![b"-3".to_vec(), b"5".to_vec(), b"70000".to_vec()])));
        assert_eq!(dump_set_intset(&[70000], 2, true), None, "does not fit 16 bits");
        let nodes = vec![vec![&b"a"[..], b"2"], vec![&b"c"[..]]];
        let want = DumpValue::List(vec![b"a".to_vec(), b"2".to_vec(), b"c".to_vec()]);
        assert_eq!(restore(&dump_list_quicklist(&nodes, true)), Ok(want));
    }

    #[test]
    fn payloads_round_trip_and_reject_corruption() {
        for v in [&b""[..], b"hello", b"123", b"-99999", b"\x00\xff binary"] {
            let p = dump_string(v);
            assert_eq!(restore(&p), Ok(DumpValue::String(v.to_vec())));
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
