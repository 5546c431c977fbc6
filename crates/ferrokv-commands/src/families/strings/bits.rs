//! Bitmap commands over strings: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP.
//!
//! Bit 0 is the most significant bit of the first byte. Reading past the end of a
//! string reads zeros; writing past it zero-pads the string first.

use super::{is_opt, raw_bytes, read_string, string_bytes};
use crate::util::*;
use crate::Ctx;
use ferrokv_resp::{Args, ReplyBuf};
use ferrokv_store::{Db, Value};

pub(super) const ERR_BIT_OFFSET: &str = "ERR bit offset is not an integer or out of range";

/// Redis's `getBitOffsetFromArgument`: a bit offset below `8 × max_bulk_len`. With
/// `hash_bits`, BITFIELD's `#N` form means `N × bits`.
pub(super) fn bit_offset(arg: &[u8], hash_bits: Option<u32>, max_bulk_len: u64) -> Option<u64> {
    let (digits, mul) = match (arg.first(), hash_bits) {
        (Some(b'#'), Some(bits)) if bits > 0 => (&arg[1..], bits as i64),
        _ => (arg, 1),
    };
    let off = parse_i64(digits)?.wrapping_mul(mul);
    if off < 0 || (off >> 3) as u64 >= max_bulk_len {
        return None;
    }
    Some(off as u64)
}

/// Redis's `lookupStringForBitCommand`: the bytes of the string at `key`, created or
/// zero-padded so that bit `max_bit` exists, and whether that created or grew it.
/// `None` after replying WRONGTYPE.
pub(super) fn bitmap_for_write<'a>(
    db: &'a mut Db,
    key: &[u8],
    now: u64,
    max_bit: u64,
    out: &mut ReplyBuf,
) -> Option<(&'a mut Vec<u8>, bool)> {
    let len = (max_bit >> 3) as usize + 1;
    let created = match db.get(key, now) {
        Some(e) if !e.value.is_string() => {
            out.error(ERR_WRONGTYPE);
            return None;
        }
        Some(_) => false,
        None => {
            db.set(key, Value::Str { bytes: vec![0; len].into(), raw: true }, 0);
            true
        }
    };
    let entry = db.get(key, now).expect("the key was just found or stored");
    let bytes = raw_bytes(&mut entry.value);
    let grew = bytes.len() < len;
    if grew {
        bytes.resize(len, 0);
    }
    Some((bytes, created || grew))
}

/// SETBIT key offset value
///
/// Replies the bit's previous value.
pub fn setbit(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let Some(off) = bit_offset(args.get(2), None, ctx.cfg.proto_max_bulk_len) else {
        return ctx.out.error(ERR_BIT_OFFSET);
    };
    let on = match parse_i64(args.get(3)) {
        Some(v @ (0 | 1)) => v == 1,
        _ => return ctx.out.error("ERR bit is not an integer or out of range"),
    };
    let now = ctx.now_ms;
    let Some((bytes, dirty)) = bitmap_for_write(ctx.keys.db(key), key, now, off, ctx.out) else {
        return;
    };
    let byte = &mut bytes[(off >> 3) as usize];
    let mask = 0x80u8 >> (off & 7);
    let old = *byte & mask != 0;
    let changed = dirty || old != on;
    if on {
        *byte |= mask;
    } else {
        *byte &= !mask;
    }
    if changed {
        ctx.touch(key);
    }
    ctx.out.integer(old as i64);
}

/// GETBIT key offset
pub fn getbit(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let Some(off) = bit_offset(args.get(2), None, ctx.cfg.proto_max_bulk_len) else {
        return ctx.out.error(ERR_BIT_OFFSET);
    };
    let now = ctx.now_ms;
    let v = match read_string(ctx.keys.db(key), key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => return ctx.out.integer(0),
        Ok(Some(v)) => v,
    };
    let mut buf = [0; 20];
    let s = string_bytes(v, &mut buf);
    let bit = s.get((off >> 3) as usize).is_some_and(|b| b & (0x80 >> (off & 7)) != 0);
    ctx.out.integer(bit as i64);
}

/// A BITCOUNT/BITPOS range after Redis's index arithmetic: `start..=end` in bytes or
/// bits (negative indexes count from the end, then both are clamped to the string).
/// Returns the inclusive bit range, or None when it is empty.
fn bit_range(mut start: i64, mut end: i64, len: usize, in_bits: bool) -> Option<(u64, u64)> {
    let total = if in_bits { len as i64 * 8 } else { len as i64 };
    if start < 0 {
        start += total;
    }
    if end < 0 {
        end += total;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    if start > end {
        return None;
    }
    let (start, end) = (start as u64, end as u64);
    Some(if in_bits { (start, end) } else { (start * 8, end * 8 + 7) })
}

/// The BIT/BYTE unit argument: Some(true) for BIT.
fn unit_in_bits(a: &[u8]) -> Option<bool> {
    if is_opt(a, "BIT") {
        Some(true)
    } else if is_opt(a, "BYTE") {
        Some(false)
    } else {
        None
    }
}

/// BITCOUNT key [start end [BYTE | BIT]]
///
/// A missing key counts 0 whatever the other arguments are.
pub fn bitcount(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now_ms;
    let v = match read_string(ctx.keys.db(key), key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => return ctx.out.integer(0),
        Ok(Some(v)) => v,
    };
    let mut buf = [0; 20];
    let s = string_bytes(v, &mut buf);
    let range = match args.len() {
        2 => bit_range(0, -1, s.len(), false),
        4 | 5 => {
            let (Some(start), Some(end)) = (parse_i64(args.get(2)), parse_i64(args.get(3))) else {
                return ctx.out.error(ERR_NOT_INT);
            };
            if start < 0 && end < 0 && start > end {
                return ctx.out.integer(0);
            }
            let in_bits = if args.len() == 5 {
                match unit_in_bits(args.get(4)) {
                    Some(b) => b,
                    None => return ctx.out.error(ERR_SYNTAX),
                }
            } else {
                false
            };
            bit_range(start, end, s.len(), in_bits)
        }
        _ => return ctx.out.error(ERR_SYNTAX),
    };
    let n = range.map_or(0, |(first, last)| count_bits(s, first, last));
    ctx.out.integer(n as i64);
}

/// Set bits among bits `first..=last` of `s`.
fn count_bits(s: &[u8], first: u64, last: u64) -> u64 {
    let (fb, lb) = ((first / 8) as usize, (last / 8) as usize);
    let bytes = &s[fb..=lb];
    let (chunks, rest) = bytes.split_at(bytes.len() / 8 * 8);
    let mut n: u64 =
        chunks.chunks_exact(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])).count_ones() as u64).sum();
    n += rest.iter().map(|b| b.count_ones() as u64).sum::<u64>();
    // Remove the bits of the edge bytes that lie outside the range.
    n -= (s[fb] & !(0xFFu8 >> (first % 8))).count_ones() as u64;
    n -= (s[lb] & (0xFFu16 >> (last % 8 + 1)) as u8).count_ones() as u64;
    n
}

/// BITPOS key bit [start [end [BYTE | BIT]]]
///
/// The first bit set to `bit` in the range. Without an explicit end, a string
/// searched for a 0 is taken as followed by zeros (so a full string answers its
/// length in bits); with one, not finding the bit answers -1.
pub fn bitpos(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let bit = match parse_i64(args.get(2)) {
        None => return ctx.out.error(ERR_NOT_INT),
        Some(b @ (0 | 1)) => b == 1,
        Some(_) => return ctx.out.error("ERR The bit argument must be 1 or 0."),
    };
    let now = ctx.now_ms;
    let v = match read_string(ctx.keys.db(key), key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => return ctx.out.integer(if bit { -1 } else { 0 }),
        Ok(Some(v)) => v,
    };
    let mut buf = [0; 20];
    let s = string_bytes(v, &mut buf);
    let mut end_given = false;
    let range = match args.len() {
        3 => bit_range(0, -1, s.len(), false),
        4..=6 => {
            let Some(start) = parse_i64(args.get(3)) else {
                return ctx.out.error(ERR_NOT_INT);
            };
            let in_bits = if args.len() == 6 {
                match unit_in_bits(args.get(5)) {
                    Some(b) => b,
                    None => return ctx.out.error(ERR_SYNTAX),
                }
            } else {
                false
            };
            let end = if args.len() >= 5 {
                end_given = true;
                match parse_i64(args.get(4)) {
                    Some(e) => e,
                    None => return ctx.out.error(ERR_NOT_INT),
                }
            } else {
                -1
            };
            bit_range(start, end, s.len(), in_bits)
        }
        _ => return ctx.out.error(ERR_SYNTAX),
    };
    let Some((first, last)) = range else {
        return ctx.out.integer(-1);
    };
    let pos = match find_bit(s, bit, first, last) {
        Some(p) => p as i64,
        None if bit || end_given => -1,
        None => last as i64 + 1,
    };
    ctx.out.integer(pos);
}

/// The first bit equal to `bit` among bits `first..=last` of `s`.
fn find_bit(s: &[u8], bit: bool, first: u64, last: u64) -> Option<u64> {
    let (fb, lb) = ((first / 8) as usize, (last / 8) as usize);
    let skip = if bit { 0x00 } else { 0xFF };
    let mut i = fb;
    while i <= lb {
        // Whole words that hold no candidate are skipped at once.
        if i > fb && i + 8 <= lb && s[i..i + 8].iter().all(|&b| b == skip) {
            i += 8;
            continue;
        }
        let b = if bit { s[i] } else { !s[i] };
        let mut mask = 0xFFu8;
        if i == fb {
            mask &= 0xFF >> (first % 8);
        }
        if i == lb {
            mask &= 0xFF << (7 - last % 8);
        }
        let m = b & mask;
        if m != 0 {
            return Some(i as u64 * 8 + m.leading_zeros() as u64);
        }
        i += 1;
    }
    None
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// BITOP AND | OR | XOR | NOT destkey key [key ...]
///
/// Shorter (or missing) sources count as zero-padded. An empty result deletes
/// `destkey`; the reply is the result's length.
pub fn bitop(ctx: &mut Ctx, args: &Args) {
    let op = match args.get(1) {
        a if is_opt(a, "AND") => BitOp::And,
        a if is_opt(a, "OR") => BitOp::Or,
        a if is_opt(a, "XOR") => BitOp::Xor,
        a if is_opt(a, "NOT") => BitOp::Not,
        _ => return ctx.out.error(ERR_SYNTAX),
    };
    if op == BitOp::Not && args.len() != 4 {
        return ctx.out.error("ERR BITOP NOT must be called with a single source key.");
    }
    let now = ctx.now_ms;
    let mut res: Vec<u8> = Vec::new();
    for (i, key) in args.iter().enumerate().skip(3) {
        let mut buf = [0; 20];
        let src: &[u8] = match read_string(ctx.keys.db(key), key, now, ctx.out) {
            Err(()) => return,
            Ok(None) => &[],
            Ok(Some(v)) => string_bytes(v, &mut buf),
        };
        if i == 3 {
            res.extend_from_slice(src);
            if op == BitOp::Not {
                res.iter_mut().for_each(|b| *b = !*b);
            }
            continue;
        }
        fold(op, &mut res, src);
    }
    let dest = args.get(2);
    let len = res.len();
    let db = ctx.keys.db(dest);
    if len > 0 {
        db.set(dest, Value::Str { bytes: res.into(), raw: true }, 0);
        ctx.touch(dest);
    } else if db.remove(dest, now).is_some() {
        ctx.touch(dest);
    }
    ctx.out.integer(len as i64);
}

/// Combines one more source into `res`, padding the shorter of the two with zeros.
fn fold(op: BitOp, res: &mut Vec<u8>, src: &[u8]) {
    let common = res.len().min(src.len());
    match op {
        BitOp::And => {
            res.iter_mut().zip(src).for_each(|(r, s)| *r &= s);
            res[common..].iter_mut().for_each(|r| *r = 0);
            res.resize(res.len().max(src.len()), 0);
        }
        BitOp::Or | BitOp::Xor => {
            if op == BitOp::Or {
                res.iter_mut().zip(src).for_each(|(r, s)| *r |= s);
            } else {
                res.iter_mut().zip(src).for_each(|(r, s)| *r ^= s);
            }
            res.extend_from_slice(&src[common..]);
        }
        BitOp::Not => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Harness;

    #[test]
    fn offsets_parse_like_redis() {
        let max = 512 * 1024 * 1024;
        assert_eq!(bit_offset(b"0", None, max), Some(0));
        assert_eq!(bit_offset(b"4294967295", None, max), Some(4294967295));
        assert_eq!(bit_offset(b"4294967296", None, max), None);
        assert_eq!(bit_offset(b"-1", None, max), None);
        assert_eq!(bit_offset(b"#3", None, max), None);
        assert_eq!(bit_offset(b"#3", Some(8), max), Some(24));
        assert_eq!(bit_offset(b"#", Some(8), max), None);
        assert_eq!(bit_offset(b"#-1", Some(8), max), None);
        assert_eq!(bit_offset(b"#1152921504606846976", Some(8), max), None);
    }

    #[test]
    fn setbit_getbit() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("SETBIT k 7 1"), ":0\r\n");
        assert_eq!(h.dirty, 1);
        assert_eq!(h.run(&[b"GET", b"k"]), b"$1\r\n\x01\r\n");
        assert_eq!(h.encoding("k"), "raw");
        assert_eq!(h.cmd("SETBIT k 7 1"), ":1\r\n");
        assert_eq!(h.dirty, 0);
        assert_eq!(h.cmd("SETBIT k 7 0"), ":1\r\n");
        assert_eq!(h.cmd("SETBIT k 16 0"), ":0\r\n");
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("STRLEN k"), ":3\r\n");
        assert_eq!(h.cmd("GETBIT k 7"), ":0\r\n");
        assert_eq!(h.cmd("GETBIT k 100000"), ":0\r\n");
        assert_eq!(h.cmd("GETBIT nokey 0"), ":0\r\n");
        h.cmd("SET n 1"); // "1" = 0x31 = 00110001
        assert_eq!(h.cmd("GETBIT n 2"), ":1\r\n");
        assert_eq!(h.cmd("GETBIT n 1"), ":0\r\n");
        assert_eq!(h.cmd("SETBIT n 6 1"), ":0\r\n");
        assert_eq!(h.cmd("GET n"), "$1\r\n3\r\n");
        assert_eq!(h.encoding("n"), "raw");
        assert_eq!(h.cmd("SETBIT k 4294967296 1"), "-ERR bit offset is not an integer or out of range\r\n");
        assert_eq!(h.cmd("SETBIT k -1 1"), "-ERR bit offset is not an integer or out of range\r\n");
        assert_eq!(h.cmd("SETBIT k x 1"), "-ERR bit offset is not an integer or out of range\r\n");
        assert_eq!(h.cmd("GETBIT k x"), "-ERR bit offset is not an integer or out of range\r\n");
        assert_eq!(h.cmd("SETBIT k 1 2"), "-ERR bit is not an integer or out of range\r\n");
        assert_eq!(h.cmd("SETBIT k 1 -1"), "-ERR bit is not an integer or out of range\r\n");
        assert_eq!(h.cmd("SETBIT k 1 x"), "-ERR bit is not an integer or out of range\r\n");
        h.cfg.proto_max_bulk_len = 2;
        assert_eq!(h.cmd("SETBIT k 16 1"), "-ERR bit offset is not an integer or out of range\r\n");
        assert_eq!(h.cmd("SETBIT k 15 1"), ":0\r\n");
    }

    #[test]
    fn bitcount_ranges() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("BITCOUNT k"), ":0\r\n");
        assert_eq!(h.cmd("BITCOUNT k a b c d"), ":0\r\n");
        h.cmd("SET k foobar");
        for (q, want) in [
            ("", 26),
            (" 0 0", 4),
            (" 1 1", 6),
            (" 1 1 BYTE", 6),
            (" 5 30 BIT", 17),
            (" 0 -1 bit", 26),
            (" -1 -2", 0),
            (" -2 -1", 7),
            (" 2 1", 0),
            (" 100 200", 0),
            (" 1 0 BIT", 0),
            (" 7 7 BIT", 0),
            (" 1 1 BIT", 1),
            (" -100 -1", 26),
            (" 9 12 BIT", 3),
        ] {
            assert_eq!(h.cmd(&format!("BITCOUNT k{q}")), format!(":{want}\r\n"), "{q}");
        }
        assert_eq!(h.cmd("BITCOUNT k 0"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("BITCOUNT k 0 1 BITS"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("BITCOUNT k 0 1 BIT x"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("BITCOUNT k -1 -2 BITS"), ":0\r\n");
        assert_eq!(h.cmd("BITCOUNT k x 1"), "-ERR value is not an integer or out of range\r\n");
        h.cmd("SET n 12");
        assert_eq!(h.cmd("BITCOUNT n"), ":6\r\n");
        let long = "\u{7f}".repeat(100);
        h.cmd(&format!("SET l {long}"));
        assert_eq!(h.cmd("BITCOUNT l"), ":700\r\n");
        assert_eq!(h.cmd("BITCOUNT l 3 796 BIT"), ":695\r\n");
    }

    #[test]
    fn bitpos_ranges() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("BITPOS k 1"), ":-1\r\n");
        assert_eq!(h.cmd("BITPOS k 0"), ":0\r\n");
        assert_eq!(h.cmd("BITPOS k 2"), "-ERR The bit argument must be 1 or 0.\r\n");
        assert_eq!(h.cmd("BITPOS k x"), "-ERR value is not an integer or out of range\r\n");
        h.run(&[b"SET", b"k", b"\xff\xf0\x00"]);
        for (q, want) in [
            ("0", 12),
            ("1", 0),
            ("0 0", 12),
            ("0 0 0", -1),
            ("0 0 1", 12),
            ("1 2", -1),
            ("1 1", 8),
            ("0 3", -1),
            ("0 2 -1", 16),
            ("1 0 -1 BIT", 0),
            ("1 7 15 BIT", 7),
            ("0 7 11 BIT", -1),
            ("0 7 12 bit", 12),
            ("1 12 -1 BIT", -1),
            ("0 -3 -1 BIT", 21),
            ("0 5 3 BIT", -1),
            ("1 -1 -2", -1),
        ] {
            assert_eq!(h.cmd(&format!("BITPOS k {q}")), format!(":{want}\r\n"), "{q}");
        }
        h.run(&[b"SET", b"f", b"\xff\xff"]);
        assert_eq!(h.cmd("BITPOS f 0"), ":16\r\n");
        assert_eq!(h.cmd("BITPOS f 0 1"), ":16\r\n");
        assert_eq!(h.cmd("BITPOS f 0 0 -1"), ":-1\r\n");
        h.run(&[b"SET", b"e", b""]);
        assert_eq!(h.cmd("BITPOS e 0"), ":-1\r\n");
        assert_eq!(h.cmd("BITPOS k 1 0 1 BITS"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("BITPOS k 1 0 x BITS"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("BITPOS k 1 0 x BIT"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("BITPOS k 1 0 1 BIT x"), "-ERR syntax error\r\n");
        let mut big = vec![0u8; 100];
        big[77] = 0x04;
        h.run(&[b"SET", b"b", &big]);
        assert_eq!(h.cmd("BITPOS b 1"), ":621\r\n");
        assert_eq!(h.cmd("BITPOS b 1 3 -1"), ":621\r\n");
        assert_eq!(h.cmd("BITPOS b 1 622 -1 BIT"), ":-1\r\n");
    }

    #[test]
    fn bitop_combines_and_pads() {
        let mut h = Harness::new();
        h.cmd("SET a foof");
        h.cmd("SET b ab");
        assert_eq!(h.cmd("BITOP AND d a b"), ":4\r\n");
        assert_eq!(h.run(&[b"GET", b"d"]), b"$4\r\n`b\0\0\r\n");
        assert_eq!(h.encoding("d"), "raw");
        assert_eq!(h.cmd("BITOP OR d a b"), ":4\r\n");
        assert_eq!(h.cmd("GET d"), "$4\r\ngoof\r\n");
        assert_eq!(h.cmd("BITOP XOR d a b missing"), ":4\r\n");
        assert_eq!(h.run(&[b"GET", b"d"]), b"$4\r\n\x07\x0dof\r\n");
        assert_eq!(h.cmd("BITOP AND d b a"), ":4\r\n");
        assert_eq!(h.run(&[b"GET", b"d"]), b"$4\r\n`b\0\0\r\n");
        assert_eq!(h.cmd("BITOP NOT d b"), ":2\r\n");
        assert_eq!(h.run(&[b"GET", b"d"]), b"$2\r\n\x9e\x9d\r\n");
        assert_eq!(h.cmd("BITOP not d a b"), "-ERR BITOP NOT must be called with a single source key.\r\n");
        assert_eq!(h.cmd("BITOP NAND d a"), "-ERR syntax error\r\n");
        h.db.watch(b"d");
        assert_eq!(h.cmd("BITOP OR d x y"), ":0\r\n");
        assert_eq!(h.cmd("GET d"), "$-1\r\n");
        assert_eq!(h.version("d"), 1);
        assert_eq!(h.cmd("BITOP OR d x y"), ":0\r\n");
        assert_eq!(h.dirty, 0);
        h.cmd("SET n 12");
        assert_eq!(h.cmd("BITOP AND d n n"), ":2\r\n");
        assert_eq!(h.cmd("GET d"), "$2\r\n12\r\n");
        h.cmd("SET t v EX 100");
        assert_eq!(h.cmd("BITOP OR t n"), ":2\r\n");
        assert_eq!(h.expire_at("t"), Some(0));
    }

    #[test]
    fn count_and_find_edges() {
        let s = [0b1010_1010u8, 0xFF, 0x01];
        assert_eq!(count_bits(&s, 0, 23), 13);
        assert_eq!(count_bits(&s, 1, 1), 0);
        assert_eq!(count_bits(&s, 2, 2), 1);
        assert_eq!(count_bits(&s, 3, 16), 10);
        assert_eq!(find_bit(&s, false, 8, 15), None);
        assert_eq!(find_bit(&s, true, 1, 23), Some(2));
        assert_eq!(find_bit(&s, true, 16, 22), None);
        assert_eq!(find_bit(&s, true, 16, 23), Some(23));
        let long = [0u8; 64];
        assert_eq!(find_bit(&long, true, 0, 511), None);
        assert_eq!(find_bit(&long, false, 13, 511), Some(13));
    }
}
