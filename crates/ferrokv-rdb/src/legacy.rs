//! The containers Redis wrote before 7.0, read so that a dump from Redis 5 or 6 loads:
//! ziplists (lists, hashes and sorted sets up to 6.2) and zipmaps (hashes up to 2.4).
//!
//! A **ziplist** (Redis's `ziplist.c`) is `zlbytes` (u32 LE, the whole size), `zltail`
//! (u32 LE, the offset of the last entry, 10 when empty), `zllen` (u16 LE, the entry
//! count, 65535 when it does not fit: then only walking counts), the entries, and
//! `0xFF`. An entry starts with the byte length of the entry before it (one byte below
//! 254, else `0xFE` and a u32 LE — Redis may leave this long form on a small length
//! after a cascade update, so it is not an error) so that the list can be walked
//! backwards, then its encoding:
//!
//! | first byte | element |
//! |---|---|
//! | `00pppppp` | string, 6-bit length |
//! | `01pppppp qqqqqqqq` | string, 14-bit length, big-endian |
//! | `10______` + 4 bytes | string, 32-bit length, big-endian (Redis ignores the 6 low bits) |
//! | `11000000` / `11010000` / `11100000` | int16 / int32 / int64, little-endian |
//! | `11110000` | signed int24, little-endian |
//! | `11111110` | int8 |
//! | `1111xxxx`, xxxx in 1..=13 | the immediate xxxx − 1 (0 to 12) |
//!
//! An element that is an integer in canonical form was stored as the smallest of
//! these integer encodings; reading gives its decimal text back, the same bytes.
//!
//! A **zipmap** (`zipmap.c`) is a count byte (the number of pairs, or 254 when there
//! are 254 or more), then per pair: key length, key, value length, a `free` byte, the
//! value and `free` unused bytes; then `0xFF`. A length is one byte below 254, else
//! 254 and a u32. zipmap.c's comment says that u32 is "in the host byte ordering",
//! but since Redis 2.4 the code passes it through `memrev32ifbe` both ways, so it is
//! little-endian on every host; and 2.4 is also the release that started writing
//! zipmaps into RDB files (type 9) instead of converting them, so every zipmap in a
//! dump is little-endian. (Redis 2.2 kept host order, in memory only.)
//!
//! The readers check every bound and every redundant field (sizes, offsets, counts,
//! back-lengths) as Redis 7.0's integrity checks do before loading a dump, and never
//! reserve more room than the input could fill. Redis 7.0 also refuses duplicate hash
//! fields and sorted-set members, an odd number of pair elements, and an empty
//! zipmap; those are the caller's to check, since they depend on the value's type.

use crate::encoding::Reader;
use crate::DecodeError;

/// `zlbytes`, `zltail`, `zllen`.
const ZIPLIST_HEADER: usize = 10;
/// Ends a ziplist and a zipmap, and is never the first byte of an entry.
const END: u8 = 0xff;
/// The marker of a 5-byte length: a ziplist entry's previous-entry length, or a
/// zipmap's string length; also a zipmap's count when it is 254 or more.
const BIG_LEN: u8 = 0xfe;
/// `zllen` when the count does not fit in 16 bits.
const ZIPLIST_UNCOUNTED: u16 = u16::MAX;

const ZIP_INT_16: u8 = 0xc0;
const ZIP_INT_32: u8 = 0xd0;
const ZIP_INT_64: u8 = 0xe0;
const ZIP_INT_24: u8 = 0xf0;
const ZIP_INT_8: u8 = 0xfe;
const ZIP_IMM_MIN: u8 = 0xf1;
const ZIP_IMM_MAX: u8 = 0xfd;
const ZIP_STR_32: u8 = 0x80;

fn u32_le(b: &[u8]) -> Result<u32, DecodeError> {
    Ok(u32::from_le_bytes(b.try_into().map_err(|_| DecodeError::Truncated)?))
}

fn u32_be(b: &[u8]) -> Result<u32, DecodeError> {
    Ok(u32::from_be_bytes(b.try_into().map_err(|_| DecodeError::Truncated)?))
}

/// The elements of a ziplist, head to tail, integers as their decimal text.
///
/// Checks what Redis 7.0's `ziplistValidateIntegrity` checks — `zlbytes` equals the
/// input's length, the terminator, every entry inside the list, each entry's
/// previous-entry length, `zltail` pointing at the last entry, `zllen` unless it is
/// 65535 — and, stricter than Redis, that an empty ziplist's `zltail` is 10, as
/// every ziplist Redis creates has it.
pub fn ziplist_elements(zl: &[u8]) -> Result<Vec<Vec<u8>>, DecodeError> {
    if zl.len() < ZIPLIST_HEADER + 1 {
        return Err(DecodeError::Invalid("ziplist header"));
    }
    let bytes = u32_le(&zl[0..4])? as usize;
    let tail = u32_le(&zl[4..8])? as usize;
    let count = u16::from_le_bytes([zl[8], zl[9]]);
    if bytes != zl.len() || zl[bytes - 1] != END {
        return Err(DecodeError::Invalid("ziplist size"));
    }
    // The smallest entry is 2 bytes (previous length and an immediate).
    let mut out = Vec::with_capacity(usize::from(count).min(zl.len() / 2));
    // Entries end before the terminator: reading past it is truncation.
    let body = &zl[..bytes - 1];
    let mut p = ZIPLIST_HEADER;
    let mut last = ZIPLIST_HEADER;
    let mut prev_size = 0;
    while p < body.len() {
        let mut r = Reader::new(&body[p..]);
        let (prevlen, element) = ziplist_entry(&mut r)?;
        if prevlen != prev_size {
            return Err(DecodeError::Invalid("ziplist previous-entry length"));
        }
        prev_size = body.len() - p - r.remaining();
        last = p;
        p += prev_size;
        out.push(element);
    }
    if tail != last {
        return Err(DecodeError::Invalid("ziplist tail offset"));
    }
    if count != ZIPLIST_UNCOUNTED && usize::from(count) != out.len() {
        return Err(DecodeError::Invalid("ziplist entry count"));
    }
    Ok(out)
}

/// One entry: the length of the entry before it, and its element.
fn ziplist_entry(r: &mut Reader<'_>) -> Result<(usize, Vec<u8>), DecodeError> {
    let prevlen = match r.byte()? {
        // A terminator before the end of the list.
        END => return Err(DecodeError::Invalid("ziplist end")),
        BIG_LEN => u32_le(r.bytes(4)?)? as usize,
        n => usize::from(n),
    };
    let enc = r.byte()?;
    let len = match enc {
        0x00..=0x3f => usize::from(enc & 0x3f),
        0x40..=0x7f => (usize::from(enc & 0x3f) << 8) | usize::from(r.byte()?),
        // Redis masks a string encoding's first byte to its two top bits.
        0x80..=0xbf => u32_be(r.bytes(4)?)? as usize,
        _ => return Ok((prevlen, ziplist_int(enc, r)?.to_string().into_bytes())),
    };
    Ok((prevlen, r.bytes(len)?.to_vec()))
}

/// The integer after the encoding byte `enc`.
fn ziplist_int(enc: u8, r: &mut Reader<'_>) -> Result<i64, DecodeError> {
    Ok(match enc {
        ZIP_INT_8 => i64::from(r.byte()? as i8),
        ZIP_INT_16 => i64::from(i16::from_le_bytes([r.byte()?, r.byte()?])),
        ZIP_INT_24 => {
            let b = r.bytes(3)?;
            i64::from(i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8)
        }
        ZIP_INT_32 => i64::from(u32_le(r.bytes(4)?)? as i32),
        ZIP_INT_64 => i64::from_le_bytes(r.bytes(8)?.try_into().map_err(|_| DecodeError::Truncated)?),
        ZIP_IMM_MIN..=ZIP_IMM_MAX => i64::from(enc & 0x0f) - 1,
        _ => return Err(DecodeError::Invalid("ziplist entry encoding")),
    })
}

/// The pairs of a zipmap, in order.
///
/// Checks what Redis 7.0's `zipmapValidateIntegrity` checks — every length, value and
/// free space inside the map, the terminator, the count unless it is 254 — and,
/// stricter than Redis, that nothing follows the terminator and that a value length
/// does not start with 255 (Redis would read it as 254, the 5-byte form; no zipmap
/// writer ever stored that).
pub fn zipmap_pairs(zm: &[u8]) -> Result<crate::Pairs, DecodeError> {
    let (&count, rest) = zm.split_first().ok_or(DecodeError::Truncated)?;
    let mut r = Reader::new(rest);
    // The smallest pair is 3 bytes (two lengths and the free byte).
    let mut out = Vec::with_capacity(usize::from(count).min(zm.len() / 3));
    loop {
        let first = r.byte()?;
        if first == END {
            break;
        }
        let len = zipmap_len(first, &mut r)?;
        let key = r.bytes(len)?.to_vec();
        let first = r.byte()?;
        if first == END {
            return Err(DecodeError::Invalid("zipmap value length"));
        }
        let len = zipmap_len(first, &mut r)?;
        let free = usize::from(r.byte()?);
        let value = r.bytes(len)?.to_vec();
        r.bytes(free)?;
        out.push((key, value));
    }
    if r.remaining() != 0 {
        return Err(DecodeError::Invalid("zipmap end"));
    }
    if count != BIG_LEN && usize::from(count) != out.len() {
        return Err(DecodeError::Invalid("zipmap count"));
    }
    Ok(out)
}

/// A zipmap string length whose first byte (not 255) is `first`.
fn zipmap_len(first: u8, r: &mut Reader<'_>) -> Result<usize, DecodeError> {
    if first < BIG_LEN {
        return Ok(usize::from(first));
    }
    Ok(u32_le(r.bytes(4)?)? as usize)
}

/// The integer `s` stands for when it is in canonical form, as Redis's
/// `zipTryEncoding` (`string2ll`) accepts it: no sign on 0, no leading zeros or
/// spaces, at most 20 bytes.
fn canonical_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let n: i64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    (n.to_string().as_bytes() == s).then_some(n)
}

/// A ziplist holding `elements`, encoded as Redis's `ziplistPush` would: canonical
/// integers in the smallest integer encoding (immediates for 0 to 12), other strings
/// with the smallest length encoding, short previous-entry lengths where they fit.
///
/// Exists for tests (and round-trip tests elsewhere): Redis 7 never writes ziplists.
/// Panics on an element of 4 GiB or more, which no ziplist can hold.
#[doc(hidden)]
pub fn write_ziplist(elements: &[&[u8]]) -> Vec<u8> {
    let mut zl = vec![0; ZIPLIST_HEADER];
    let mut last = ZIPLIST_HEADER;
    let mut prev_size = 0usize;
    for e in elements {
        last = zl.len();
        match u8::try_from(prev_size) {
            Ok(n) if n < BIG_LEN => zl.push(n),
            _ => {
                zl.push(BIG_LEN);
                zl.extend_from_slice(&(prev_size as u32).to_le_bytes());
            }
        }
        match canonical_int(e) {
            Some(v) => write_ziplist_int(&mut zl, v),
            None => {
                let len = u32::try_from(e.len()).expect("a ziplist string is under 4 GiB");
                if len < 1 << 6 {
                    zl.push(len as u8);
                } else if len < 1 << 14 {
                    zl.push(0x40 | (len >> 8) as u8);
                    zl.push(len as u8);
                } else {
                    zl.push(ZIP_STR_32);
                    zl.extend_from_slice(&len.to_be_bytes());
                }
                zl.extend_from_slice(e);
            }
        }
        prev_size = zl.len() - last;
    }
    zl.push(END);
    let bytes = u32::try_from(zl.len()).expect("a ziplist is under 4 GiB");
    zl[0..4].copy_from_slice(&bytes.to_le_bytes());
    zl[4..8].copy_from_slice(&(last as u32).to_le_bytes());
    let count = u16::try_from(elements.len()).unwrap_or(ZIPLIST_UNCOUNTED);
    zl[8..10].copy_from_slice(&count.to_le_bytes());
    zl
}

fn write_ziplist_int(zl: &mut Vec<u8>, v: i64) {
    if (0..=12).contains(&v) {
        zl.push(ZIP_IMM_MIN + v as u8);
    } else if let Ok(v) = i8::try_from(v) {
        zl.push(ZIP_INT_8);
        zl.push(v as u8);
    } else if let Ok(v) = i16::try_from(v) {
        zl.push(ZIP_INT_16);
        zl.extend_from_slice(&v.to_le_bytes());
    } else if (-(1 << 23)..1 << 23).contains(&v) {
        zl.push(ZIP_INT_24);
        zl.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
    } else if let Ok(v) = i32::try_from(v) {
        zl.push(ZIP_INT_32);
        zl.extend_from_slice(&v.to_le_bytes());
    } else {
        zl.push(ZIP_INT_64);
        zl.extend_from_slice(&v.to_le_bytes());
    }
}

/// A zipmap holding `pairs` as Redis 2.x's `zipmapSet` leaves it when no value was
/// shrunk in place (every `free` byte 0).
///
/// Exists for tests (and round-trip tests elsewhere): Redis 7 never writes zipmaps.
/// Panics on a key or value of 4 GiB or more.
#[doc(hidden)]
pub fn write_zipmap(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut zm = vec![u8::try_from(pairs.len()).map_or(BIG_LEN, |n| n.min(BIG_LEN))];
    for (key, value) in pairs {
        write_zipmap_len(&mut zm, key.len());
        zm.extend_from_slice(key);
        write_zipmap_len(&mut zm, value.len());
        zm.push(0);
        zm.extend_from_slice(value);
    }
    zm.push(END);
    zm
}

fn write_zipmap_len(zm: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).expect("a zipmap string is under 4 GiB");
    match u8::try_from(len) {
        Ok(n) if n < BIG_LEN => zm.push(n),
        _ => {
            zm.push(BIG_LEN);
            zm.extend_from_slice(&len.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Integers at every encoding's edges, and strings that look like integers but are
    /// not in canonical form.
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
        "-9223372036854775809",
        "012",
        "+1",
        "-0",
        " 1",
        "1 ",
        "00",
        "",
        "a",
    ];

    fn edge_values() -> Vec<Vec<u8>> {
        EDGES
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .chain([vec![b'x'; 63], vec![b'y'; 64], vec![b'z'; 16383], vec![b'w'; 16384], vec![b'v'; 70000]])
            .collect()
    }

    fn refs(values: &[Vec<u8>]) -> Vec<&[u8]> {
        values.iter().map(Vec::as_slice).collect()
    }

    /// The entry encoding byte (after a 1-byte previous length) of a one-element ziplist.
    fn encoding_of(e: &str) -> Vec<u8> {
        let zl = write_ziplist(&[e.as_bytes()]);
        zl[ZIPLIST_HEADER + 1..zl.len() - 1].to_vec()
    }

    #[test]
    fn integers_take_the_smallest_encoding() {
        assert_eq!(encoding_of("0"), [0xf1]);
        assert_eq!(encoding_of("12"), [0xfd]);
        assert_eq!(encoding_of("13"), [0xfe, 13]);
        assert_eq!(encoding_of("-1"), [0xfe, 0xff]);
        assert_eq!(encoding_of("-128"), [0xfe, 0x80]);
        assert_eq!(encoding_of("128"), [0xc0, 0x80, 0x00]);
        assert_eq!(encoding_of("-129"), [0xc0, 0x7f, 0xff]);
        assert_eq!(encoding_of("32768"), [0xf0, 0x00, 0x80, 0x00]);
        assert_eq!(encoding_of("-8388608"), [0xf0, 0x00, 0x00, 0x80]);
        assert_eq!(encoding_of("8388608"), [0xd0, 0x00, 0x00, 0x80, 0x00]);
        assert_eq!(encoding_of("2147483648"), [0xe0, 0, 0, 0, 0x80, 0, 0, 0, 0]);
        assert_eq!(encoding_of("012"), [0x03, b'0', b'1', b'2']);
        assert_eq!(encoding_of("+1"), [0x02, b'+', b'1']);
    }

    #[test]
    fn ziplist_layout_by_hand() {
        // RPUSH l 2 5, worked out from ziplist.c: two immediates, the second entry's
        // previous length 2, zltail 12. (That Redis reads what this writes is
        // tests/rdb_legacy.rs's part.)
        assert_eq!(write_ziplist(&[b"2", b"5"]), [15, 0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0xf3, 2, 0xf6, 0xff]);
        assert_eq!(write_ziplist(&[]), [11, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0xff]);
        assert_eq!(ziplist_elements(&write_ziplist(&[])), Ok(vec![]));
    }

    #[test]
    fn ziplist_round_trips_every_edge() {
        let values = edge_values();
        let zl = write_ziplist(&refs(&values));
        assert_eq!(ziplist_elements(&zl).unwrap(), values);
    }

    #[test]
    fn long_previous_lengths_are_read_whatever_they_hold() {
        // A 5-byte previous length after a 300-byte entry, and one holding a small
        // length as Redis's cascade update can leave it.
        let big = vec![b'b'; 300];
        let zl = write_ziplist(&[&big, b"x"]);
        assert_eq!(ziplist_elements(&zl).unwrap(), vec![big.clone(), b"x".to_vec()]);
        let mut zl = write_ziplist(&[b"a", b"b"]);
        let second = ZIPLIST_HEADER + 3;
        zl.splice(second..second + 1, [BIG_LEN, 3, 0, 0, 0]);
        let len = zl.len() as u32;
        zl[0..4].copy_from_slice(&len.to_le_bytes());
        assert_eq!(ziplist_elements(&zl).unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn ziplist_counts_beyond_16_bits_walk() {
        let values: Vec<Vec<u8>> = (0..70000).map(|i| (i % 7).to_string().into_bytes()).collect();
        let zl = write_ziplist(&refs(&values));
        assert_eq!(&zl[8..10], [0xff, 0xff]);
        assert_eq!(ziplist_elements(&zl).unwrap(), values);
        // 65535 also stands for "count by walking" when fewer entries follow.
        let mut zl = write_ziplist(&[b"a"]);
        zl[8..10].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(ziplist_elements(&zl).unwrap(), vec![b"a".to_vec()]);
    }

    #[test]
    fn ziplist_redundant_fields_are_checked() {
        let good = write_ziplist(&[b"a", b"bc", b"7"]);
        let broken = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut zl = good.clone();
            f(&mut zl);
            ziplist_elements(&zl)
        };
        let invalid = |s| Err(DecodeError::Invalid(s));
        assert_eq!(broken(&|zl| zl[0] += 1), invalid("ziplist size"));
        assert_eq!(broken(&|zl| zl.push(0)), invalid("ziplist size"));
        assert_eq!(broken(&|zl| zl[4] += 1), invalid("ziplist tail offset"));
        assert_eq!(broken(&|zl| zl[8] = 2), invalid("ziplist entry count"));
        assert_eq!(broken(&|zl| zl[ZIPLIST_HEADER] = 1), invalid("ziplist previous-entry length"));
        assert_eq!(broken(&|zl| zl[ZIPLIST_HEADER + 3] = 2), invalid("ziplist previous-entry length"));
        assert_eq!(broken(&|zl| zl[ZIPLIST_HEADER + 1] = 0xc1), invalid("ziplist entry encoding"));
        assert_eq!(broken(&|zl| zl[ZIPLIST_HEADER + 1] = 3), Err(DecodeError::Truncated), "runs into the end");
        assert_eq!(broken(&|zl| zl[ZIPLIST_HEADER + 3] = END), invalid("ziplist end"));
        let mut empty = write_ziplist(&[]);
        empty[4] = 9;
        assert_eq!(ziplist_elements(&empty), invalid("ziplist tail offset"));
    }

    #[test]
    fn zipmap_layout_as_zipmap_c_shows_it() {
        // zipmap.c's own example.
        let zm = write_zipmap(&[(b"foo", b"bar"), (b"hello", b"world")]);
        assert_eq!(zm, b"\x02\x03foo\x03\x00bar\x05hello\x05\x00world\xff");
        assert_eq!(
            zipmap_pairs(&zm).unwrap(),
            vec![(b"foo".to_vec(), b"bar".to_vec()), (b"hello".to_vec(), b"world".to_vec())]
        );
        // Lengths of 254 and more: the marker, then little-endian.
        let key = vec![b'k'; 254];
        let value = vec![b'v'; 0x0102];
        let zm = write_zipmap(&[(&key, &value)]);
        assert_eq!(&zm[..6], [1, 254, 254, 0, 0, 0]);
        assert_eq!(&zm[260..266], [254, 0x02, 0x01, 0, 0, 0]);
        assert_eq!(zipmap_pairs(&zm).unwrap(), vec![(key, value)]);
    }

    #[test]
    fn zipmap_free_space_is_skipped() {
        let zm = b"\x02\x03foo\x01\x02b..\x01k\x00\x00\xff";
        assert_eq!(zipmap_pairs(zm).unwrap(), vec![(b"foo".to_vec(), b"b".to_vec()), (b"k".to_vec(), vec![])]);
    }

    #[test]
    fn zipmap_counts_and_ends_are_checked() {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> =
            (0..300).map(|i| (i.to_string().into_bytes(), vec![b'v'; i % 5])).collect();
        let refs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
        let zm = write_zipmap(&refs);
        assert_eq!(zm[0], BIG_LEN);
        assert_eq!(zipmap_pairs(&zm).unwrap(), pairs);
        let invalid = |s| Err(DecodeError::Invalid(s));
        assert_eq!(zipmap_pairs(b"\x02\x01a\x01\x00b\xff"), invalid("zipmap count"));
        assert_eq!(zipmap_pairs(b"\x01\x01a\x01\x00b\xff\xff"), invalid("zipmap end"));
        assert_eq!(zipmap_pairs(b"\x01\x01a\xff"), invalid("zipmap value length"));
        assert_eq!(zipmap_pairs(b"\x01\x01a\x01\x03b\xff"), Err(DecodeError::Truncated), "free space past the end");
        assert_eq!(zipmap_pairs(b"\x01\x01a\x01\x00b"), Err(DecodeError::Truncated));
        assert_eq!(zipmap_pairs(b""), Err(DecodeError::Truncated));
        assert_eq!(zipmap_pairs(b"\x00\xff"), Ok(vec![]));
    }

    /// Elements that reach every string length form and every integer encoding.
    fn element() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..80),
            (0..20000usize, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
            any::<i64>().prop_map(|n| n.to_string().into_bytes()),
            (-300i64..300).prop_map(|n| n.to_string().into_bytes()),
            proptest::sample::select(EDGES).prop_map(|s| s.as_bytes().to_vec()),
        ]
    }

    proptest! {
        #[test]
        fn ziplist_round_trip(values in proptest::collection::vec(element(), 0..40)) {
            let zl = write_ziplist(&refs(&values));
            prop_assert_eq!(ziplist_elements(&zl).unwrap(), values);
        }

        #[test]
        fn zipmap_round_trip(pairs in proptest::collection::vec((element(), element()), 0..20)) {
            let refs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
            let zm = write_zipmap(&refs);
            prop_assert_eq!(zipmap_pairs(&zm).unwrap(), pairs);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = ziplist_elements(&data);
            let _ = zipmap_pairs(&data);
        }

        #[test]
        fn damaged_containers_never_panic(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            at in any::<prop::sample::Index>(),
            flip in 1..=255u8,
            cut in any::<prop::sample::Index>(),
        ) {
            let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            let pairs: Vec<(&[u8], &[u8])> = refs.chunks_exact(2).map(|p| (p[0], p[1])).collect();
            for good in [write_ziplist(&refs), write_zipmap(&pairs)] {
                let mut flipped = good.clone();
                flipped[at.index(good.len())] ^= flip;
                let cut = &good[..cut.index(good.len())];
                for bad in [&flipped[..], cut] {
                    let _ = ziplist_elements(bad);
                    let _ = zipmap_pairs(bad);
                }
            }
        }
    }
}
