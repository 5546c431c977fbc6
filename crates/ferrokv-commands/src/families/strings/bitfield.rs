//! BITFIELD and BITFIELD_RO: signed and unsigned integers of 1 to 64 bits (unsigned up
//! to 63) at arbitrary bit offsets of a string, most significant bit first.
//!
//! All operations are parsed (and any error replied) before the key is touched. A
//! command with a SET or INCRBY creates or zero-pads the string up to the farthest bit
//! it writes, even if every write then fails under `OVERFLOW FAIL`. The overflow
//! arithmetic follows Redis's `checkSignedBitfieldOverflow` and
//! `checkUnsignedBitfieldOverflow`, including their behaviour on values SET out of range.

use super::bits::{bit_offset, bitmap_for_write, ERR_BIT_OFFSET};
use super::{c_str, is_opt, read_string, string_bytes};
use crate::util::*;
use crate::Ctx;
use ferrokv_resp::Args;

const ERR_TYPE: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum OpKind {
    Get,
    Set,
    IncrBy,
}

#[derive(Clone, Copy, Debug)]
struct Op {
    kind: OpKind,
    offset: u64,
    bits: u32,
    signed: bool,
    /// SET's value or INCRBY's increment.
    value: i64,
    overflow: Overflow,
}

/// BITFIELD key [GET encoding offset | [OVERFLOW WRAP | SAT | FAIL]
///     SET encoding offset value | INCRBY encoding offset increment ...]
pub fn bitfield(ctx: &mut Ctx, args: &Args) {
    bitfield_generic(ctx, args, false);
}

/// BITFIELD_RO key [GET encoding offset ...]
pub fn bitfield_ro(ctx: &mut Ctx, args: &Args) {
    bitfield_generic(ctx, args, true);
}

fn bitfield_generic(ctx: &mut Ctx, args: &Args, read_only_cmd: bool) {
    let ops = match parse_ops(args, ctx.cfg.proto_max_bulk_len) {
        Ok(ops) => ops,
        Err(e) => return ctx.out.error(e),
    };
    let key = args.get(1);
    let now = ctx.now_ms;
    let highest_write = ops.iter().filter(|o| o.kind != OpKind::Get).map(|o| o.offset + o.bits as u64 - 1).max();
    let Some(highest_write) = highest_write else {
        // Only GETs: a missing key reads as zeros.
        let v = match read_string(ctx.keys.db(key), key, now, ctx.out) {
            Err(()) => return,
            Ok(v) => v,
        };
        let mut buf = [0; 20];
        let s: &[u8] = v.map_or(&[], |v| string_bytes(v, &mut buf));
        ctx.out.array(ops.len());
        for op in &ops {
            reply_get(ctx.out, s, op);
        }
        return;
    };
    if read_only_cmd {
        return ctx.out.error("ERR BITFIELD_RO only supports the GET subcommand");
    }
    let Some((bytes, dirty)) = bitmap_for_write(ctx.keys.db(key), key, now, highest_write, ctx.out) else {
        return;
    };
    ctx.out.array(ops.len());
    let mut changes = 0;
    for op in &ops {
        if op.kind == OpKind::Get {
            reply_get(ctx.out, bytes, op);
            continue;
        }
        let (old, new, overflow) = if op.signed {
            let old = get_signed(bytes, op.offset, op.bits);
            let (base, incr) = if op.kind == OpKind::IncrBy { (old, op.value) } else { (op.value, 0) };
            let (overflow, limit) = signed_overflow(base, incr, op.bits, op.overflow);
            let new = if overflow != 0 { limit } else { base.wrapping_add(incr) };
            (old as u64, new as u64, overflow)
        } else {
            let old = get_unsigned(bytes, op.offset, op.bits);
            let (base, incr) = if op.kind == OpKind::IncrBy { (old, op.value) } else { (op.value as u64, 0) };
            let (overflow, limit) = unsigned_overflow(base, incr, op.bits, op.overflow);
            let new = if overflow != 0 { limit } else { base.wrapping_add(incr as u64) };
            (old, new, overflow)
        };
        if overflow != 0 && op.overflow == Overflow::Fail {
            ctx.out.null();
            continue;
        }
        let reply = if op.kind == OpKind::IncrBy { new } else { old };
        ctx.out.integer(reply as i64);
        set_bits(bytes, op.offset, op.bits, new);
        if dirty || old != new {
            changes += 1;
        }
    }
    if changes > 0 {
        ctx.touch(key);
        ctx.dirty += changes - 1;
    }
}

/// Parses every operation, or returns the error of the first bad one.
fn parse_ops(args: &Args, max_bulk_len: u64) -> Result<Vec<Op>, &'static str> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < args.len() {
        let remaining = args.len() - j - 1;
        let sub = args.get(j);
        let kind = if is_opt(sub, "GET") && remaining >= 2 {
            OpKind::Get
        } else if is_opt(sub, "SET") && remaining >= 3 {
            OpKind::Set
        } else if is_opt(sub, "INCRBY") && remaining >= 3 {
            OpKind::IncrBy
        } else if is_opt(sub, "OVERFLOW") && remaining >= 1 {
            let t = args.get(j + 1);
            overflow = if is_opt(t, "WRAP") {
                Overflow::Wrap
            } else if is_opt(t, "SAT") {
                Overflow::Sat
            } else if is_opt(t, "FAIL") {
                Overflow::Fail
            } else {
                return Err("ERR Invalid OVERFLOW type specified");
            };
            j += 2;
            continue;
        } else {
            return Err(ERR_SYNTAX);
        };
        let (signed, bits) = parse_type(args.get(j + 1)).ok_or(ERR_TYPE)?;
        let offset = bit_offset(args.get(j + 2), Some(bits), max_bulk_len).ok_or(ERR_BIT_OFFSET)?;
        let value = if kind == OpKind::Get { 0 } else { parse_i64(args.get(j + 3)).ok_or(ERR_NOT_INT)? };
        ops.push(Op { kind, offset, bits, signed, value, overflow });
        j += if kind == OpKind::Get { 3 } else { 4 };
    }
    Ok(ops)
}

/// `i1`..`i64` or `u1`..`u63` (lower case only): (signed, bits).
fn parse_type(t: &[u8]) -> Option<(bool, u32)> {
    let signed = match t.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return None,
    };
    let bits = parse_i64(c_str(&t[1..]))?;
    let max = if signed { 64 } else { 63 };
    (1..=max).contains(&bits).then_some((signed, bits as u32))
}

fn reply_get(out: &mut ferrokv_resp::ReplyBuf, s: &[u8], op: &Op) {
    if op.signed {
        out.integer(get_signed(s, op.offset, op.bits));
    } else {
        out.integer(get_unsigned(s, op.offset, op.bits) as i64);
    }
}

/// The `bits`-wide unsigned integer at bit `offset`; bits past the end read as 0.
fn get_unsigned(s: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for i in 0..bits as u64 {
        let pos = offset + i;
        let bit = s.get((pos >> 3) as usize).map_or(0, |b| (b >> (7 - (pos & 7))) & 1);
        v = v << 1 | bit as u64;
    }
    v
}

fn get_signed(s: &[u8], offset: u64, bits: u32) -> i64 {
    let v = get_unsigned(s, offset, bits);
    if bits < 64 && v & (1 << (bits - 1)) != 0 {
        (v | u64::MAX << bits) as i64
    } else {
        v as i64
    }
}

/// Writes the low `bits` bits of `v` at bit `offset` (the bytes exist).
fn set_bits(s: &mut [u8], offset: u64, bits: u32, v: u64) {
    for i in 0..bits as u64 {
        let pos = offset + i;
        let mask = 0x80u8 >> (pos & 7);
        let byte = &mut s[(pos >> 3) as usize];
        if (v >> (bits as u64 - 1 - i)) & 1 == 1 {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
    }
}

/// Whether `value + incr` fits `bits` unsigned bits: 0, or 1 / -1 for overflow /
/// underflow with the value to store instead under WRAP or SAT.
fn unsigned_overflow(value: u64, incr: i64, bits: u32, ow: Overflow) -> (i32, u64) {
    let max = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = value.wrapping_neg() as i64;
    let wrapped = value.wrapping_add(incr as u64) & max;
    if value > max || (incr > 0 && incr > max_incr) {
        (1, if ow == Overflow::Sat { max } else { wrapped })
    } else if incr < 0 && incr < min_incr {
        (-1, if ow == Overflow::Sat { 0 } else { wrapped })
    } else {
        (0, 0)
    }
}

/// The signed counterpart of [`unsigned_overflow`]; WRAP wraps around towards the
/// most negative value.
fn signed_overflow(value: i64, incr: i64, bits: u32, ow: Overflow) -> (i32, i64) {
    let max = if bits == 64 { i64::MAX } else { (1i64 << (bits - 1)) - 1 };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrapped = {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr) {
        (1, if ow == Overflow::Sat { max } else { wrapped })
    } else if value < min || (bits != 64 && incr < min_incr) || (value < 0 && incr < 0 && incr < min_incr) {
        (-1, if ow == Overflow::Sat { min } else { wrapped })
    } else {
        (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Harness;

    #[test]
    fn types_parse_like_redis() {
        assert_eq!(parse_type(b"i64"), Some((true, 64)));
        assert_eq!(parse_type(b"u63"), Some((false, 63)));
        assert_eq!(parse_type(b"u64"), None);
        assert_eq!(parse_type(b"i0"), None);
        assert_eq!(parse_type(b"I8"), None);
        assert_eq!(parse_type(b"i08"), None);
        assert_eq!(parse_type(b"i"), None);
        assert_eq!(parse_type(b""), None);
        assert_eq!(parse_type(b"i8\0x"), Some((true, 8)));
    }

    #[test]
    fn get_set_incrby() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("BITFIELD k"), "*0\r\n");
        assert_eq!(h.cmd("BITFIELD k GET u8 0"), "*1\r\n:0\r\n");
        assert_eq!(h.db.len(), 0);
        assert_eq!(h.cmd("BITFIELD k SET u8 0 255 GET u8 0"), "*2\r\n:0\r\n:255\r\n");
        assert_eq!(h.encoding("k"), "raw");
        assert_eq!(h.cmd("BITFIELD k INCRBY u2 100 1 OVERFLOW SAT INCRBY i8 8 -300"), "*2\r\n:1\r\n:-128\r\n");
        assert_eq!(h.run(&[b"GET", b"k"]), b"$13\r\n\xff\x80\0\0\0\0\0\0\0\0\0\0\x04\r\n");
        assert_eq!(h.cmd("BITFIELD k GET i8 0 GET u4 #1 GET i4 #1"), "*3\r\n:-1\r\n:15\r\n:-1\r\n");
        assert_eq!(h.cmd("BITFIELD k SET i8 #1 127 INCRBY i8 #1 1"), "*2\r\n:-128\r\n:-128\r\n");
        assert_eq!(h.cmd("BITFIELD k OVERFLOW FAIL INCRBY i8 #1 -1 INCRBY i8 #1 1"), "*2\r\n$-1\r\n:-127\r\n");
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("BITFIELD k GET i64 0 GET u63 1"), "*2\r\n:-35747322042253312\r\n:9187624714812522496\r\n");
        assert_eq!(h.cmd("BITFIELD k GET u8 1000"), "*1\r\n:0\r\n");
        let mut h3 = Harness::resp3();
        assert_eq!(h3.cmd("BITFIELD k OVERFLOW FAIL SET u2 0 4"), "*1\r\n_\r\n");
        // The key was still created, padded to the write.
        assert_eq!(h3.run(&[b"GET", b"k"]), b"$1\r\n\0\r\n");
        assert_eq!(h3.dirty, 0);
    }

    #[test]
    fn overflow_modes() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("BITFIELD k SET u8 0 300"), "*1\r\n:0\r\n");
        assert_eq!(h.cmd("BITFIELD k GET u8 0"), "*1\r\n:44\r\n");
        assert_eq!(h.cmd("BITFIELD k OVERFLOW SAT SET u8 0 300 GET u8 0"), "*2\r\n:44\r\n:255\r\n");
        assert_eq!(h.cmd("BITFIELD k OVERFLOW SAT SET u8 0 -1 GET u8 0"), "*2\r\n:255\r\n:255\r\n");
        assert_eq!(h.cmd("BITFIELD k OVERFLOW SAT INCRBY u8 0 -1000"), "*1\r\n:0\r\n");
        assert_eq!(h.cmd("BITFIELD k OVERFLOW WRAP INCRBY u8 0 -1"), "*1\r\n:255\r\n");
        assert_eq!(h.cmd("BITFIELD k OVERFLOW WRAP INCRBY i8 0 1"), "*1\r\n:0\r\n");
        assert_eq!(h.cmd("BITFIELD k OVERFLOW WRAP SET i8 0 200 GET i8 0"), "*2\r\n:0\r\n:-56\r\n");
        assert_eq!(h.cmd("BITFIELD k OVERFLOW SAT SET i8 0 -200 GET i8 0"), "*2\r\n:-56\r\n:-128\r\n");
        assert_eq!(
            h.cmd("BITFIELD k SET i64 0 9223372036854775807 INCRBY i64 0 1"),
            "*2\r\n:-9223372036854775808\r\n:-9223372036854775808\r\n"
        );
        assert_eq!(h.cmd("BITFIELD k OVERFLOW SAT INCRBY i64 0 -1"), "*1\r\n:-9223372036854775808\r\n");
        assert_eq!(h.cmd("BITFIELD k OVERFLOW FAIL INCRBY i64 0 -1"), "*1\r\n$-1\r\n");
        assert_eq!(h.cmd("BITFIELD k OVERFLOW SAT INCRBY u63 0 9223372036854775807"), "*1\r\n:9223372036854775807\r\n");
    }

    #[test]
    fn errors() {
        let mut h = Harness::new();
        let type_err = format!("-{ERR_TYPE}\r\n");
        assert_eq!(h.cmd("BITFIELD k GET u64 0"), type_err);
        assert_eq!(h.cmd("BITFIELD k GET x8 0"), type_err);
        assert_eq!(h.cmd("BITFIELD k GET u8 -1"), "-ERR bit offset is not an integer or out of range\r\n");
        assert_eq!(h.cmd("BITFIELD k GET u8 4294967296"), "-ERR bit offset is not an integer or out of range\r\n");
        assert_eq!(h.cmd("BITFIELD k GET u8 #536870912"), "-ERR bit offset is not an integer or out of range\r\n");
        assert_eq!(h.cmd("BITFIELD k SET u8 0 x"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("BITFIELD k GET u8"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("BITFIELD k SET u8 0"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("BITFIELD k FOO"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("BITFIELD k OVERFLOW"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("BITFIELD k OVERFLOW X"), "-ERR Invalid OVERFLOW type specified\r\n");
        // Parsing finishes before anything runs: no partial reply, no key.
        assert_eq!(h.cmd("BITFIELD k SET u8 0 1 GET u64 0"), type_err);
        assert_eq!(h.db.len(), 0);
        assert_eq!(h.cmd("BITFIELD_RO k GET u8 0 GET i4 #3"), "*2\r\n:0\r\n:0\r\n");
        assert_eq!(h.cmd("BITFIELD_RO k SET u8 0 1"), "-ERR BITFIELD_RO only supports the GET subcommand\r\n");
        assert_eq!(h.cmd("BITFIELD_RO k INCRBY u8 0 x"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("BITFIELD_RO k OVERFLOW SAT"), "*0\r\n");
    }

    #[test]
    fn counts_every_change() {
        let mut h = Harness::new();
        h.cmd("SET k a");
        h.db.watch(b"k");
        assert_eq!(h.cmd("BITFIELD k SET u8 0 1 SET u8 8 2 SET u8 0 1"), "*3\r\n:97\r\n:0\r\n:1\r\n");
        assert_eq!(h.dirty, 3);
        assert_eq!(h.version("k"), 1);
        assert_eq!(h.cmd("BITFIELD k SET u8 0 1"), "*1\r\n:1\r\n");
        assert_eq!(h.dirty, 0);
        assert_eq!(h.version("k"), 1);
        h.cmd("SET n 7");
        assert_eq!(h.cmd("BITFIELD n GET u8 0"), "*1\r\n:55\r\n");
        assert_eq!(h.encoding("n"), "int");
        assert_eq!(h.cmd("BITFIELD n INCRBY u8 0 1"), "*1\r\n:56\r\n");
        assert_eq!(h.encoding("n"), "raw");
    }
}
