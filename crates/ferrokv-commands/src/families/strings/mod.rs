//! String commands (Redis's t_string.c and bitops.c).
//!
//! A string value is `Value::Int` when it holds a canonical i64 (OBJECT ENCODING `int`)
//! or `Value::Str`. Each command leaves the encoding Redis would: SET and friends store
//! arguments as `int`/`embstr`/`raw` by content ([`Value::string`]); in-place edits
//! (APPEND to an existing key, SETRANGE, SETBIT, BITFIELD, BITOP's result) leave `raw`;
//! INCR leaves `int`; INCRBYFLOAT a fresh `embstr`/`raw` even for "3".
//!
//! Files: `plain` (GET/SET and their variants, MGET/MSET), `ranges` (APPEND, STRLEN,
//! SETRANGE, GETRANGE), `counters` (INCR...INCRBYFLOAT over `float`, an x87 long double
//! emulation), `bits` (SETBIT...BITOP), `bitfield` and `lcs`.

mod bitfield;
mod bits;
mod counters;
mod float;
mod lcs;
mod plain;
mod ranges;

use crate::table::{CommandSpec, Handler, KeyPositions};
use ferrokv_resp::ReplyBuf;
use ferrokv_store::{Db, Value};

pub use float::LongDouble;

const KEY1: KeyPositions = KeyPositions::new(1, 1, 1);

const fn cmd(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    keys: KeyPositions,
    acl: &'static [&'static str],
    f: crate::table::DataFn,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, keys, acl, Handler::Data(f))
}

const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const WD: &[&str] = &["write", "denyoom"];
const WDF: &[&str] = &["write", "denyoom", "fast"];
const WF: &[&str] = &["write", "fast"];

const READ_STRING_FAST: &[&str] = &["@read", "@string", "@fast"];
const READ_STRING_SLOW: &[&str] = &["@read", "@string", "@slow"];
const WRITE_STRING_FAST: &[&str] = &["@write", "@string", "@fast"];
const WRITE_STRING_SLOW: &[&str] = &["@write", "@string", "@slow"];
const READ_BITMAP_FAST: &[&str] = &["@read", "@bitmap", "@fast"];
const READ_BITMAP_SLOW: &[&str] = &["@read", "@bitmap", "@slow"];
const WRITE_BITMAP_SLOW: &[&str] = &["@write", "@bitmap", "@slow"];

/// Arity, flags, key positions and ACL categories as `COMMAND INFO` shows them on
/// redis-server 7.0.
pub const COMMANDS: &[CommandSpec] = &[
    cmd("get", 2, RF, KEY1, READ_STRING_FAST, plain::get),
    cmd("set", -3, WD, KEY1, WRITE_STRING_SLOW, plain::set),
    cmd("setnx", 3, WDF, KEY1, WRITE_STRING_FAST, plain::setnx),
    cmd("setex", 4, WD, KEY1, WRITE_STRING_SLOW, plain::setex),
    cmd("psetex", 4, WD, KEY1, WRITE_STRING_SLOW, plain::psetex),
    cmd("getset", 3, WDF, KEY1, WRITE_STRING_FAST, plain::getset),
    cmd("getex", -2, WF, KEY1, WRITE_STRING_FAST, plain::getex),
    cmd("getdel", 2, WF, KEY1, WRITE_STRING_FAST, plain::getdel),
    cmd("mget", -2, RF, KeyPositions::new(1, -1, 1), READ_STRING_FAST, plain::mget),
    cmd("mset", -3, WD, KeyPositions::new(1, -1, 2), WRITE_STRING_SLOW, plain::mset),
    cmd("msetnx", -3, WD, KeyPositions::new(1, -1, 2), WRITE_STRING_SLOW, plain::msetnx),
    cmd("append", 3, WDF, KEY1, WRITE_STRING_FAST, ranges::append),
    cmd("strlen", 2, RF, KEY1, READ_STRING_FAST, ranges::strlen),
    cmd("setrange", 4, WD, KEY1, WRITE_STRING_SLOW, ranges::setrange),
    cmd("getrange", 4, R, KEY1, READ_STRING_SLOW, ranges::getrange),
    cmd("substr", 4, R, KEY1, READ_STRING_SLOW, ranges::getrange),
    cmd("incr", 2, WDF, KEY1, WRITE_STRING_FAST, counters::incr),
    cmd("decr", 2, WDF, KEY1, WRITE_STRING_FAST, counters::decr),
    cmd("incrby", 3, WDF, KEY1, WRITE_STRING_FAST, counters::incrby),
    cmd("decrby", 3, WDF, KEY1, WRITE_STRING_FAST, counters::decrby),
    cmd("incrbyfloat", 3, WDF, KEY1, WRITE_STRING_FAST, counters::incrbyfloat),
    cmd("lcs", -3, R, KeyPositions::new(1, 2, 1), READ_STRING_SLOW, lcs::lcs),
    cmd("setbit", 4, WD, KEY1, WRITE_BITMAP_SLOW, bits::setbit),
    cmd("getbit", 3, RF, KEY1, READ_BITMAP_FAST, bits::getbit),
    cmd("bitcount", -2, R, KEY1, READ_BITMAP_SLOW, bits::bitcount),
    cmd("bitpos", -3, R, KEY1, READ_BITMAP_SLOW, bits::bitpos),
    cmd("bitop", -4, WD, KeyPositions::new(2, -1, 1), WRITE_BITMAP_SLOW, bits::bitop),
    cmd("bitfield", -2, WD, KEY1, WRITE_BITMAP_SLOW, bitfield::bitfield),
    cmd("bitfield_ro", -2, RF, KEY1, READ_BITMAP_FAST, bitfield::bitfield_ro),
];

/// Room for the decimal form of an i64.
type IntBuf = [u8; 20];

/// The bytes of a string value; an `int` is formatted into `buf`.
fn string_bytes<'a>(v: &'a Value, buf: &'a mut IntBuf) -> &'a [u8] {
    match v {
        Value::Str { bytes, .. } => bytes,
        Value::Int(n) => format_i64(*n, buf),
        // Callers check `is_string` first.
        _ => &[],
    }
}

fn format_i64(n: i64, buf: &mut IntBuf) -> &[u8] {
    let mut v = n.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// Length of a string value.
fn string_len(v: &Value) -> usize {
    string_bytes(v, &mut [0; 20]).len()
}

/// The bytes of a string value for an in-place edit. As Redis's
/// `dbUnshareStringValue`, this turns the value into a `raw` string.
fn raw_bytes(v: &mut Value) -> &mut Vec<u8> {
    if let Value::Int(n) = *v {
        *v = Value::Str { bytes: format_i64(n, &mut [0; 20]).into(), raw: true };
    }
    match v {
        Value::Str { bytes, raw } => {
            *raw = true;
            bytes.as_vec()
        }
        _ => unreachable!("callers check is_string first; ints were converted above"),
    }
}

/// A string value as a bulk reply.
fn reply_value(out: &mut ReplyBuf, v: &Value) {
    match v {
        Value::Int(n) => out.bulk_integer(*n),
        Value::Str { bytes, .. } => out.bulk(bytes),
        _ => out.error(crate::util::ERR_WRONGTYPE),
    }
}

/// An i64 from a stored string, as `getLongLongFromObject` reads it.
fn int_value(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        Value::Str { bytes, .. } => crate::util::parse_i64(bytes),
        _ => None,
    }
}

/// An argument as C code sees it through `strcasecmp` and friends: up to its first NUL.
fn c_str(a: &[u8]) -> &[u8] {
    a.iter().position(|&c| c == 0).map_or(a, |i| &a[..i])
}

/// Whether an option argument is `kw`, compared as Redis does (case-insensitively, as
/// a C string).
fn is_opt(a: &[u8], kw: &str) -> bool {
    c_str(a).eq_ignore_ascii_case(kw.as_bytes())
}

/// Redis's `checkStringLength`: whether a string of `size + append` bytes stays within
/// proto-max-bulk-len.
fn check_string_length(out: &mut ReplyBuf, max: u64, size: u64, append: u64) -> bool {
    match size.checked_add(append) {
        Some(total) if total <= max => true,
        _ => {
            out.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
            false
        }
    }
}

/// Looks a key up for a command that only reads strings: `Ok(None)` when missing,
/// `Err(())` after replying WRONGTYPE when it holds another type.
fn read_string<'a>(db: &'a mut Db, key: &[u8], now: u64, out: &mut ReplyBuf) -> Result<Option<&'a mut Value>, ()> {
    match db.get(key, now) {
        None => Ok(None),
        Some(e) if !e.value.is_string() => {
            out.error(crate::util::ERR_WRONGTYPE);
            Err(())
        }
        Some(e) => Ok(Some(&mut e.value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Harness;

    #[test]
    fn arity_is_checked_from_the_table() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("GET"), "-ERR wrong number of arguments for 'get' command\r\n");
        assert_eq!(h.cmd("SETEX k 10"), "-ERR wrong number of arguments for 'setex' command\r\n");
        assert_eq!(h.cmd("BITOP AND d"), "-ERR wrong number of arguments for 'bitop' command\r\n");
    }

    #[test]
    fn helpers() {
        assert_eq!(format_i64(i64::MIN, &mut [0; 20]), b"-9223372036854775808");
        assert_eq!(format_i64(0, &mut [0; 20]), b"0");
        assert_eq!(c_str(b"nx\0junk"), b"nx");
        let mut v = Value::Int(-12);
        raw_bytes(&mut v).push(b'3');
        assert_eq!(v, Value::Str { bytes: b"-123".to_vec().into(), raw: true });
        assert_eq!(v.encoding(), "raw");
    }
}
