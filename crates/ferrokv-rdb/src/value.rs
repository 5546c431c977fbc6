//! Values as RDB stores them: a type byte, then the value in that type's encoding.
//! The same bytes follow a key in a dump.rdb and make up a DUMP payload's body.
//!
//! Writers produce what Redis 7.0's `rdbSaveObjectType` + `rdbSaveObject` produce for
//! the same encoding; the caller picks the encoding (a hash in a listpack or a table,
//! a set as an intset or a table, ...) from its own value, as Redis does from the
//! object's. The reader takes every type Redis 7.0 reads, the pre-7.0 ones included
//! ([`crate::legacy`]), except modules and streams, which ferrokv does not hold.

use crate::encoding::{write_len, write_string_compressed, Reader};
use crate::DecodeError;

pub const TYPE_STRING: u8 = 0;
pub const TYPE_LIST: u8 = 1;
pub const TYPE_SET: u8 = 2;
pub const TYPE_ZSET: u8 = 3;
pub const TYPE_HASH: u8 = 4;
pub const TYPE_ZSET_2: u8 = 5;
pub const TYPE_MODULE: u8 = 6;
pub const TYPE_MODULE_2: u8 = 7;
pub const TYPE_HASH_ZIPMAP: u8 = 9;
pub const TYPE_LIST_ZIPLIST: u8 = 10;
pub const TYPE_SET_INTSET: u8 = 11;
pub const TYPE_ZSET_ZIPLIST: u8 = 12;
pub const TYPE_HASH_ZIPLIST: u8 = 13;
pub const TYPE_LIST_QUICKLIST: u8 = 14;
pub const TYPE_STREAM_LISTPACKS: u8 = 15;
pub const TYPE_HASH_LISTPACK: u8 = 16;
pub const TYPE_ZSET_LISTPACK: u8 = 17;
pub const TYPE_LIST_QUICKLIST_2: u8 = 18;
pub const TYPE_STREAM_LISTPACKS_2: u8 = 19;

/// Quicklist 2 node containers: one element, or a listpack of elements.
const CONTAINER_PLAIN: u64 = 1;
const CONTAINER_PACKED: u64 = 2;

/// Whether `t` is a value type byte (as opposed to an RDB file opcode).
pub fn is_value_type(t: u8) -> bool {
    matches!(t, 0..=7 | 9..=19)
}

/// A decoded value: its elements, whatever encoding they came in.
#[derive(Clone, Debug, PartialEq)]
pub enum RdbValue {
    String(Vec<u8>),
    /// Elements head to tail.
    List(Vec<Vec<u8>>),
    /// Members in stored order (an intset's as their decimal text).
    Set(Vec<Vec<u8>>),
    /// Members and scores in stored order (no NaN).
    ZSet(Vec<(Vec<u8>, f64)>),
    /// Field/value pairs in stored order.
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
}

impl RdbValue {
    /// How many elements (a string counts as one).
    pub fn len(&self) -> usize {
        match self {
            RdbValue::String(_) => 1,
            RdbValue::List(v) | RdbValue::Set(v) => v.len(),
            RdbValue::ZSet(v) => v.len(),
            RdbValue::Hash(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// ---- writers -------------------------------------------------------------------
//
// Each writer takes `key`: `Some` in a dump.rdb record (type byte, key, value), `None`
// in a DUMP payload (type byte, value).

fn begin(out: &mut Vec<u8>, t: u8, key: Option<&[u8]>, compress: bool) {
    out.push(t);
    if let Some(k) = key {
        write_string_compressed(out, k, compress);
    }
}

/// A string value (`rdbcompression` given as `compress`).
pub fn write_string_value(out: &mut Vec<u8>, key: Option<&[u8]>, s: &[u8], compress: bool) {
    begin(out, TYPE_STRING, key, compress);
    write_string_compressed(out, s, compress);
}

/// A list as quicklist 2 nodes, each a listpack of the node's elements. Redis's bytes
/// when the nodes are split as Redis's quicklist split them.
pub fn write_list_quicklist<'a, N>(
    out: &mut Vec<u8>,
    key: Option<&[u8]>,
    nodes: impl ExactSizeIterator<Item = N>,
    compress: bool,
) where
    N: IntoIterator<Item = &'a [u8]>,
{
    begin(out, TYPE_LIST_QUICKLIST_2, key, compress);
    write_len(out, nodes.len() as u64);
    for node in nodes {
        write_len(out, CONTAINER_PACKED);
        let mut lp = crate::listpack::ListpackWriter::new();
        for e in node {
            lp.push(e);
        }
        write_string_compressed(out, &lp.finish(), compress);
    }
}

/// A set Redis keeps as an intset: `sorted` ascending and distinct, each member
/// `width` bytes (2, 4 or 8: an intset widens for a big member and never narrows).
/// False, nothing written, when a member does not fit or the input is not sorted.
pub fn write_set_intset(out: &mut Vec<u8>, key: Option<&[u8]>, sorted: &[i64], width: u8, compress: bool) -> bool {
    let fits = |v: i64| match width {
        2 => i16::try_from(v).is_ok(),
        4 => i32::try_from(v).is_ok(),
        8 => true,
        _ => false,
    };
    if !sorted.iter().all(|&v| fits(v)) || sorted.windows(2).any(|w| w[0] >= w[1]) {
        return false;
    }
    let mut blob = Vec::with_capacity(8 + sorted.len() * width as usize);
    blob.extend_from_slice(&(width as u32).to_le_bytes());
    blob.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for v in sorted {
        blob.extend_from_slice(&v.to_le_bytes()[..width as usize]);
    }
    begin(out, TYPE_SET_INTSET, key, compress);
    write_string_compressed(out, &blob, compress);
    true
}

/// The narrowest intset width that holds every member (what Redis's intset has when
/// no wider member was ever added and removed).
pub fn intset_width(members: &[i64]) -> u8 {
    let mut width = 2;
    for &v in members {
        if i32::try_from(v).is_err() {
            return 8;
        }
        if i16::try_from(v).is_err() {
            width = 4;
        }
    }
    width
}

/// A set Redis keeps as a table: `len` members in the order given.
pub fn write_set_table<'a>(
    out: &mut Vec<u8>,
    key: Option<&[u8]>,
    len: usize,
    members: impl IntoIterator<Item = &'a [u8]>,
    compress: bool,
) {
    begin(out, TYPE_SET, key, compress);
    write_len(out, len as u64);
    for m in members {
        write_string_compressed(out, m, compress);
    }
}

/// A hash Redis keeps as a listpack: its pairs in stored order.
pub fn write_hash_listpack<'a>(
    out: &mut Vec<u8>,
    key: Option<&[u8]>,
    pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    compress: bool,
) {
    let mut lp = crate::listpack::ListpackWriter::new();
    for (f, v) in pairs {
        lp.push(f);
        lp.push(v);
    }
    begin(out, TYPE_HASH_LISTPACK, key, compress);
    write_string_compressed(out, &lp.finish(), compress);
}

/// A hash Redis keeps as a table: `len` pairs in the order given.
pub fn write_hash_table<'a>(
    out: &mut Vec<u8>,
    key: Option<&[u8]>,
    len: usize,
    pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    compress: bool,
) {
    begin(out, TYPE_HASH, key, compress);
    write_len(out, len as u64);
    for (f, v) in pairs {
        write_string_compressed(out, f, compress);
        write_string_compressed(out, v, compress);
    }
}

/// A sorted set Redis keeps as a listpack: member, score, ... in rank order, each score
/// as Redis's `d2string` writes it (an integer when it is one, else `%.17g`).
pub fn write_zset_listpack<'a>(
    out: &mut Vec<u8>,
    key: Option<&[u8]>,
    ranked: impl IntoIterator<Item = (&'a [u8], f64)>,
    compress: bool,
) {
    let mut lp = crate::listpack::ListpackWriter::new();
    for (m, score) in ranked {
        lp.push(m);
        lp.push(score_text(score).as_bytes());
    }
    begin(out, TYPE_ZSET_LISTPACK, key, compress);
    write_string_compressed(out, &lp.finish(), compress);
}

/// A sorted set Redis keeps as a skiplist (`RDB_TYPE_ZSET_2`): `len` members, highest
/// rank first (Redis walks its skiplist from the tail so that loading inserts at the
/// head), each score as 8 bytes of IEEE 754, little-endian.
pub fn write_zset_skiplist<'a>(
    out: &mut Vec<u8>,
    key: Option<&[u8]>,
    len: usize,
    from_tail: impl IntoIterator<Item = (&'a [u8], f64)>,
    compress: bool,
) {
    begin(out, TYPE_ZSET_2, key, compress);
    write_len(out, len as u64);
    for (m, score) in from_tail {
        write_string_compressed(out, m, compress);
        out.extend_from_slice(&score.to_le_bytes());
    }
}

/// A score as Redis's `d2string` prints it (listpacks store it so): `inf`/`-inf`,
/// `0`/`-0`, an integer when the double is one within ±2^62 (`double2ll`), else `%.17g`.
pub fn score_text(score: f64) -> String {
    const LIMIT: f64 = (i64::MAX / 2) as f64;
    if score != 0.0 && (-LIMIT..=LIMIT).contains(&score) && score == score.trunc() {
        return (score as i64).to_string();
    }
    ferrokv_resp::reply::format_double(score)
}

// ---- reader --------------------------------------------------------------------

/// Reads the value of type `t` (its type byte already read).
pub fn read_value(t: u8, r: &mut Reader) -> Result<RdbValue, DecodeError> {
    Ok(match t {
        TYPE_STRING => RdbValue::String(r.string()?),
        TYPE_LIST => RdbValue::List(read_strings(r)?),
        TYPE_SET => RdbValue::Set(read_strings(r)?),
        TYPE_SET_INTSET => RdbValue::Set(intset_members(&r.string()?)?),
        TYPE_HASH => {
            let n = claimed(r, 2)?;
            let mut pairs = Vec::with_capacity(room::<(Vec<u8>, Vec<u8>)>(r, n));
            for _ in 0..n {
                pairs.push((r.string()?, r.string()?));
            }
            RdbValue::Hash(pairs)
        }
        TYPE_HASH_LISTPACK => RdbValue::Hash(pairs(crate::listpack::elements(&r.string()?)?)?),
        TYPE_HASH_ZIPLIST => RdbValue::Hash(pairs(crate::legacy::ziplist_elements(&r.string()?)?)?),
        TYPE_HASH_ZIPMAP => RdbValue::Hash(crate::legacy::zipmap_pairs(&r.string()?)?),
        TYPE_ZSET | TYPE_ZSET_2 => {
            let n = claimed(r, 2)?;
            let mut members = Vec::with_capacity(room::<(Vec<u8>, f64)>(r, n));
            for _ in 0..n {
                let m = r.string()?;
                let score = if t == TYPE_ZSET_2 { binary_double(r)? } else { text_double(r)? };
                members.push((m, score));
            }
            RdbValue::ZSet(members)
        }
        TYPE_ZSET_LISTPACK => RdbValue::ZSet(scored(crate::listpack::elements(&r.string()?)?)?),
        TYPE_ZSET_ZIPLIST => RdbValue::ZSet(scored(crate::legacy::ziplist_elements(&r.string()?)?)?),
        TYPE_LIST_ZIPLIST => RdbValue::List(crate::legacy::ziplist_elements(&r.string()?)?),
        TYPE_LIST_QUICKLIST => {
            let n = claimed(r, 1)?;
            let mut elements = Vec::new();
            for _ in 0..n {
                // Redis skips an empty node (it may have written one before 7.0).
                elements.extend(crate::legacy::ziplist_elements(&r.string()?)?);
            }
            RdbValue::List(elements)
        }
        TYPE_LIST_QUICKLIST_2 => {
            let n = claimed(r, 2)?;
            let mut elements = Vec::new();
            for _ in 0..n {
                match r.length()? {
                    CONTAINER_PLAIN => elements.push(r.string()?),
                    CONTAINER_PACKED => {
                        elements.extend(crate::listpack::elements(&r.string()?)?);
                    }
                    _ => return Err(DecodeError::Invalid("quicklist container")),
                }
            }
            RdbValue::List(elements)
        }
        TYPE_MODULE | TYPE_MODULE_2 => return Err(DecodeError::Unsupported("module values")),
        TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 => return Err(DecodeError::Unsupported("streams")),
        _ => return Err(DecodeError::Invalid("value type")),
    })
}

/// Steps over a value of type `t` without decoding it (a loader splits a file into
/// records this way and decodes them on several threads): consumes exactly what
/// [`read_value`] would.
pub fn skip_value(t: u8, r: &mut Reader) -> Result<(), DecodeError> {
    match t {
        TYPE_STRING | TYPE_SET_INTSET | TYPE_HASH_LISTPACK | TYPE_ZSET_LISTPACK | TYPE_HASH_ZIPLIST
        | TYPE_ZSET_ZIPLIST | TYPE_LIST_ZIPLIST | TYPE_HASH_ZIPMAP => r.skip_string(),
        TYPE_LIST | TYPE_SET | TYPE_LIST_QUICKLIST => {
            for _ in 0..claimed(r, 1)? {
                r.skip_string()?;
            }
            Ok(())
        }
        TYPE_HASH => {
            for _ in 0..claimed(r, 2)? {
                r.skip_string()?;
                r.skip_string()?;
            }
            Ok(())
        }
        TYPE_ZSET | TYPE_ZSET_2 => {
            for _ in 0..claimed(r, 2)? {
                r.skip_string()?;
                if t == TYPE_ZSET_2 {
                    r.bytes(8)?;
                } else {
                    let n = r.byte()?;
                    if n < 253 {
                        r.bytes(n as usize)?;
                    }
                }
            }
            Ok(())
        }
        TYPE_LIST_QUICKLIST_2 => {
            for _ in 0..claimed(r, 2)? {
                r.length()?;
                r.skip_string()?;
            }
            Ok(())
        }
        TYPE_MODULE | TYPE_MODULE_2 => Err(DecodeError::Unsupported("module values")),
        TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 => Err(DecodeError::Unsupported("streams")),
        _ => Err(DecodeError::Invalid("value type")),
    }
}

/// A declared element count, refused when the input left could not hold that many
/// elements of at least `min_bytes` each.
fn claimed(r: &mut Reader, min_bytes: usize) -> Result<usize, DecodeError> {
    let n = r.length()?;
    if n > (r.remaining() / min_bytes) as u64 {
        return Err(DecodeError::Truncated);
    }
    Ok(n as usize)
}

/// Room to reserve for `n` [`claimed`] elements of type `T`: no more bytes than the
/// input left, so nothing is reserved on a count not yet read; the `Vec` grows as the
/// elements arrive. (An element's encoding is smaller than the element: a pair of empty
/// strings is 2 bytes and 48 of `Vec`s, so reserving the whole count let 12 MiB claiming
/// 6 Mi pairs reserve 288 MiB and then fail on the first.)
fn room<T>(r: &Reader, n: usize) -> usize {
    n.min(r.remaining() / std::mem::size_of::<T>().max(1))
}

fn read_strings(r: &mut Reader) -> Result<Vec<Vec<u8>>, DecodeError> {
    let n = claimed(r, 1)?;
    let mut out = Vec::with_capacity(room::<Vec<u8>>(r, n));
    for _ in 0..n {
        out.push(r.string()?);
    }
    Ok(out)
}

fn pairs(items: Vec<Vec<u8>>) -> Result<crate::Pairs, DecodeError> {
    if !items.len().is_multiple_of(2) {
        return Err(DecodeError::Invalid("odd number of hash elements"));
    }
    let mut it = items.into_iter();
    let mut out = Vec::with_capacity(it.len() / 2);
    while let (Some(f), Some(v)) = (it.next(), it.next()) {
        out.push((f, v));
    }
    Ok(out)
}

fn scored(items: Vec<Vec<u8>>) -> Result<Vec<(Vec<u8>, f64)>, DecodeError> {
    if !items.len().is_multiple_of(2) {
        return Err(DecodeError::Invalid("odd number of sorted set elements"));
    }
    let mut it = items.into_iter();
    let mut out = Vec::with_capacity(it.len() / 2);
    while let (Some(m), Some(s)) = (it.next(), it.next()) {
        out.push((m, parse_score(&s)?));
    }
    Ok(out)
}

/// A score written as text (`strtod`'s forms that Redis writes: integers, `%.17g`,
/// `inf`, `-inf`); NaN is refused, as Redis refuses it.
fn parse_score(s: &[u8]) -> Result<f64, DecodeError> {
    let v: f64 = std::str::from_utf8(s).ok().and_then(|t| t.parse().ok()).ok_or(DecodeError::Invalid("score"))?;
    if v.is_nan() {
        return Err(DecodeError::Invalid("NaN score"));
    }
    Ok(v)
}

fn binary_double(r: &mut Reader) -> Result<f64, DecodeError> {
    let v = f64::from_le_bytes(r.bytes(8)?.try_into().expect("8 bytes"));
    if v.is_nan() {
        return Err(DecodeError::Invalid("NaN score"));
    }
    Ok(v)
}

/// RDB's old text double: a length byte (253 NaN, 254 +inf, 255 -inf) and ASCII.
fn text_double(r: &mut Reader) -> Result<f64, DecodeError> {
    match r.byte()? {
        253 => Err(DecodeError::Invalid("NaN score")),
        254 => Ok(f64::INFINITY),
        255 => Ok(f64::NEG_INFINITY),
        n => parse_score(r.bytes(n as usize)?),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(bytes: &[u8]) -> Result<RdbValue, DecodeError> {
        let mut r = Reader::new(bytes);
        let t = r.byte()?;
        let v = read_value(t, &mut r)?;
        assert_eq!(r.remaining(), 0, "trailing bytes");
        // Skipping steps over exactly the same bytes.
        let mut s = Reader::new(bytes);
        s.byte()?;
        skip_value(t, &mut s)?;
        assert_eq!(s.remaining(), 0, "skip_value stopped elsewhere than read_value");
        Ok(v)
    }

    #[test]
    fn scores_print_as_d2string() {
        assert_eq!(score_text(3.0), "3");
        assert_eq!(score_text(-0.0), "-0");
        assert_eq!(score_text(0.0), "0");
        assert_eq!(score_text(1.5), "1.5");
        assert_eq!(score_text(f64::INFINITY), "inf");
        assert_eq!(score_text(1e300), "1.0000000000000001e+300");
        assert_eq!(score_text(4611686018427387904.0), "4611686018427387904");
        assert_eq!(score_text(9223372036854775808.0), "9.2233720368547758e+18");
    }

    #[test]
    fn old_text_doubles() {
        let mut b = vec![TYPE_ZSET, 3];
        for (m, s) in [(&b"a"[..], &b"\x031.5"[..]), (b"b", b"\xfe"), (b"c", b"\xff")] {
            b.push(m.len() as u8);
            b.extend_from_slice(m);
            b.extend_from_slice(s);
        }
        let v = decode(&b).unwrap();
        assert_eq!(
            v,
            RdbValue::ZSet(vec![
                (b"a".to_vec(), 1.5),
                (b"b".to_vec(), f64::INFINITY),
                (b"c".to_vec(), f64::NEG_INFINITY)
            ])
        );
        let nan = [TYPE_ZSET, 1, 1, b'a', 253];
        assert!(decode(&nan).is_err());
    }

    fn member() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..80),
            any::<i64>().prop_map(|n| n.to_string().into_bytes()),
            (0..100i32).prop_map(|n| n.to_string().into_bytes()),
        ]
    }

    fn score() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("no NaN", |s| !s.is_nan()),
            (-1000i64..1000).prop_map(|n| n as f64),
            (-1000i64..1000).prop_map(|n| n as f64 / 8.0),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
        ]
    }

    proptest! {
        #[test]
        fn every_writer_round_trips(
            elems in proptest::collection::vec(member(), 0..40),
            scores in proptest::collection::vec(score(), 40),
            ints in proptest::collection::btree_set(any::<i64>(), 0..40),
            compress in any::<bool>(),
            split in 1usize..8,
        ) {
            let refs: Vec<&[u8]> = elems.iter().map(|e| &e[..]).collect();

            let mut out = Vec::new();
            write_string_value(&mut out, None, refs.first().copied().unwrap_or(b""), compress);
            prop_assert_eq!(decode(&out).unwrap(), RdbValue::String(refs.first().copied().unwrap_or(b"").to_vec()));

            if !refs.is_empty() {
                let mut out = Vec::new();
                write_list_quicklist(&mut out, None, refs.chunks(split).map(|c| c.iter().copied()), compress);
                prop_assert_eq!(decode(&out).unwrap(), RdbValue::List(elems.clone()));
            }

            let mut out = Vec::new();
            write_set_table(&mut out, None, refs.len(), refs.iter().copied(), compress);
            prop_assert_eq!(decode(&out).unwrap(), RdbValue::Set(elems.clone()));

            let sorted: Vec<i64> = ints.into_iter().collect();
            let mut out = Vec::new();
            prop_assert!(write_set_intset(&mut out, None, &sorted, intset_width(&sorted), compress));
            let want: Vec<Vec<u8>> = sorted.iter().map(|v| v.to_string().into_bytes()).collect();
            prop_assert_eq!(decode(&out).unwrap(), RdbValue::Set(want));

            let pairs: Vec<(&[u8], &[u8])> = refs.chunks_exact(2).map(|c| (c[0], c[1])).collect();
            let want = RdbValue::Hash(pairs.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect());
            let mut out = Vec::new();
            write_hash_listpack(&mut out, None, pairs.iter().copied(), compress);
            prop_assert_eq!(decode(&out).unwrap(), want.clone());
            let mut out = Vec::new();
            write_hash_table(&mut out, None, pairs.len(), pairs.iter().copied(), compress);
            prop_assert_eq!(decode(&out).unwrap(), want);

            let scored: Vec<(&[u8], f64)> = refs.iter().copied().zip(scores.iter().copied()).collect();
            let want = RdbValue::ZSet(scored.iter().map(|(m, s)| (m.to_vec(), *s)).collect());
            let mut out = Vec::new();
            write_zset_listpack(&mut out, None, scored.iter().copied(), compress);
            let got = decode(&out).unwrap();
            // Scores survive the text form exactly (%.17g round-trips a double), -0 too.
            if let (RdbValue::ZSet(g), RdbValue::ZSet(w)) = (&got, &want) {
                for (a, b) in g.iter().zip(w) {
                    prop_assert_eq!(&a.0, &b.0);
                    prop_assert_eq!(a.1.to_bits(), b.1.to_bits());
                }
            }
            let mut out = Vec::new();
            write_zset_skiplist(&mut out, None, scored.len(), scored.iter().copied(), compress);
            prop_assert_eq!(decode(&out).unwrap(), want);
        }

        /// Arbitrary bytes after any type byte: an error or a value, never a panic and
        /// never an allocation sized by a count the input cannot back.
        #[test]
        fn any_bytes_decode_without_panicking(t in 0u8..24, data in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = read_value(t, &mut Reader::new(&data));
        }
    }

    #[test]
    fn room_is_backed_by_the_input_left() {
        // 12 MiB claiming 6 Mi pairs reserved 288 MiB before reading the first (a 12 MiB
        // input tripped fuzz/restore's -malloc_limit_mb=256); now no more than 12 MiB.
        let mut bytes = vec![0xff; 12 << 20];
        bytes[..5].copy_from_slice(&[0x80, 0, 0x5f, 0xff, 0xf8]);
        let mut r = Reader::new(&bytes);
        let n = claimed(&mut r, 2).unwrap();
        assert_eq!(n, (6 << 20) - 8);
        let pairs = room::<(Vec<u8>, Vec<u8>)>(&r, n);
        assert!(pairs * std::mem::size_of::<(Vec<u8>, Vec<u8>)>() <= r.remaining(), "{pairs} pairs");
        assert_eq!(decode(&[&[TYPE_HASH][..], &bytes].concat()), Err(DecodeError::Invalid("string encoding")));
        // Enough input for every element: room for all of them.
        let r = Reader::new(&bytes[..1000]);
        assert_eq!(room::<Vec<u8>>(&r, 5), 5);
    }

    #[test]
    fn huge_declared_counts_are_refused_before_reserving() {
        for t in [TYPE_LIST, TYPE_SET, TYPE_HASH, TYPE_ZSET_2, TYPE_LIST_QUICKLIST_2] {
            let bytes = [t, 0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, b'a'];
            assert_eq!(decode(&bytes), Err(DecodeError::Truncated), "type {t}");
        }
    }
}
