//! Counters: INCR, DECR, INCRBY, DECRBY (i64) and INCRBYFLOAT (x87 long double).
//!
//! Both keep the key's TTL (Redis overwrites the value in place) and create a missing
//! key from 0 without a TTL.

use super::float::LongDouble;
use super::int_value;
use crate::ctx::argv;
use crate::util::*;
use crate::Ctx;
use ferrokv_resp::Args;
use ferrokv_store::Value;

/// INCR key
pub fn incr(ctx: &mut Ctx, args: &Args) {
    incr_by(ctx, args.get(1), 1);
}

/// DECR key
pub fn decr(ctx: &mut Ctx, args: &Args) {
    incr_by(ctx, args.get(1), -1);
}

/// INCRBY key increment
pub fn incrby(ctx: &mut Ctx, args: &Args) {
    match parse_i64(args.get(2)) {
        Some(n) => incr_by(ctx, args.get(1), n),
        None => ctx.out.error(ERR_NOT_INT),
    }
}

/// DECRBY key decrement
pub fn decrby(ctx: &mut Ctx, args: &Args) {
    match parse_i64(args.get(2)) {
        Some(i64::MIN) => ctx.out.error("ERR decrement would overflow"),
        Some(n) => incr_by(ctx, args.get(1), -n),
        None => ctx.out.error(ERR_NOT_INT),
    }
}

/// Adds `by` to the integer at `key`; the result is stored as an `int`.
fn incr_by(ctx: &mut Ctx, key: &[u8], by: i64) {
    let now = ctx.now_ms;
    let db = ctx.keys.db(key);
    let n = match db.get(key, now) {
        Some(e) => {
            if !e.value.is_string() {
                return ctx.out.error(ERR_WRONGTYPE);
            }
            let Some(cur) = int_value(&e.value) else {
                return ctx.out.error(ERR_NOT_INT);
            };
            let Some(n) = cur.checked_add(by) else {
                return ctx.out.error(ERR_OVERFLOW);
            };
            e.value = Value::Int(n);
            n
        }
        None => {
            db.set(key, Value::Int(by), 0);
            by
        }
    };
    ctx.touch(key);
    ctx.out.integer(n);
}

/// INCRBYFLOAT key increment
///
/// Both operands are read as C `long double`s and the sum is stored as `"%.17Lf"`
/// without trailing zeros (see `float.rs`), an `embstr` even when it looks like an
/// integer.
pub fn incrbyfloat(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now_ms;
    let db = ctx.keys.db(key);
    let entry = db.get(key, now);
    let cur = match entry.as_deref() {
        None => Some(LongDouble::from_i64(0)),
        Some(e) if !e.value.is_string() => return ctx.out.error(ERR_WRONGTYPE),
        Some(e) => match &e.value {
            Value::Int(n) => Some(LongDouble::from_i64(*n)),
            Value::Str { bytes, .. } => LongDouble::parse(bytes),
            _ => None,
        },
    };
    let (Some(cur), Some(by)) = (cur, LongDouble::parse(args.get(2))) else {
        return ctx.out.error(ERR_NOT_FLOAT);
    };
    let sum = cur + by;
    if !sum.is_finite() {
        return ctx.out.error("ERR increment would produce NaN or Infinity");
    }
    let text = sum.to_human_string().into_bytes();
    ctx.out.bulk(&text);
    // Propagated as SET ... KEEPTTL: float formatting may differ between replicas.
    let record = ctx.propagating.then(|| argv(&[b"SET", key, &text, b"KEEPTTL"]));
    let value = Value::Str { bytes: text.into(), raw: false };
    match entry {
        Some(e) => e.value = value,
        None => db.set(key, value, 0),
    }
    ctx.touch(key);
    if let Some(r) = record {
        ctx.rewrite(|| r);
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;

    #[test]
    fn incr_decr_family() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("INCR k"), ":1\r\n");
        assert_eq!(h.encoding("k"), "int");
        assert_eq!(h.cmd("INCRBY k 41"), ":42\r\n");
        assert_eq!(h.cmd("DECR k"), ":41\r\n");
        assert_eq!(h.cmd("DECRBY k 50"), ":-9\r\n");
        assert_eq!(h.cmd("DECRBY n -5"), ":5\r\n");
        assert_eq!(h.dirty, 1);
        h.cmd("SET s 00");
        assert_eq!(h.cmd("INCR s"), "-ERR value is not an integer or out of range\r\n");
        h.cmd("SET s abc");
        assert_eq!(h.cmd("INCR s"), "-ERR value is not an integer or out of range\r\n");
        h.cmd("SET s 9223372036854775807");
        assert_eq!(h.cmd("INCR s"), "-ERR increment or decrement would overflow\r\n");
        assert_eq!(h.cmd("DECRBY s -1"), "-ERR increment or decrement would overflow\r\n");
        h.cmd("SET s -9223372036854775808");
        assert_eq!(h.cmd("DECR s"), "-ERR increment or decrement would overflow\r\n");
        assert_eq!(h.cmd("INCRBY s 9223372036854775807"), ":-1\r\n");
        assert_eq!(h.cmd("DECRBY s -9223372036854775808"), "-ERR decrement would overflow\r\n");
        assert_eq!(h.cmd("INCRBY s 1.5"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("INCRBY s 9223372036854775808"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("INCRBY s +1"), "-ERR value is not an integer or out of range\r\n");
    }

    #[test]
    fn incr_keeps_ttl_and_converts_strings() {
        let mut h = Harness::new();
        h.cmd("SET k 10 EX 100");
        h.cmd("APPEND k 0"); // "100" as a raw string
        assert_eq!(h.encoding("k"), "raw");
        assert_eq!(h.cmd("INCR k"), ":101\r\n");
        assert_eq!(h.encoding("k"), "int");
        assert_eq!(h.expire_at("k"), Some(h.now + 100_000));
    }

    #[test]
    fn incrbyfloat_matches_redis_long_double() {
        // Replies of redis-server 7.0.15 (x86-64): SET k <a>, INCRBYFLOAT k <b>.
        let cases: &[(&str, &str, &str)] = &[
            ("10.50", "0.1", "10.6"),
            ("10.5", "5000", "5010.5"),
            ("5010.5", "0.1", "5010.60000000000000009"),
            ("0", "0.1", "0.1"),
            ("2", "1", "3"),
            ("3.0e3", "1.5", "3001.5"),
            ("1", "-1", "0"),
            ("-0.000000000000000001", "0", "0"),
            ("0", "0.000003814697265625", "0.00000381469726562"),
            ("0", "0.000003814697265626", "0.00000381469726563"),
            ("1e30", "0", "1000000000000000000024696061952"),
            ("1.1", "2.2", "3.3"),
            ("0.1", "0.2", "0.3"),
            ("0", "1e-5", "0.00001"),
            ("0", "0x1p-3", "0.125"),
            ("0", "0X1.8P1", "3"),
            ("0", ".5", "0.5"),
            ("0", "5.", "5"),
            ("0", "+7", "7"),
            ("0", "-7.25", "-7.25"),
            ("0", "1e-4950", "0"),
            ("9223372036854775807", "1", "9223372036854775808"),
            ("18446744073709551617", "0", "18446744073709551616"),
            ("0", "123456789012345678901234567890", "123456789012345678899921813504"),
            ("3.14159265358979323846264338327950288", "0", "3.14159265358979324"),
            ("-2.5", "1", "-1.5"),
            ("0", "0.1e1", "1"),
            ("1e-10", "1", "1.0000000001"),
            ("-1.5", "1.5", "0"),
            ("0", "-0", "0"),
            ("0.3", "-0.1", "0.2"),
            ("100", "-99.99", "0.01"),
        ];
        let mut h = Harness::new();
        for &(a, b, want) in cases {
            h.cmd(&format!("SET k {a}"));
            let got = h.cmd(&format!("INCRBYFLOAT k {b}"));
            assert_eq!(got, format!("${}\r\n{}\r\n", want.len(), want), "{a} + {b}");
            assert_eq!(h.cmd("GET k"), got);
        }
    }

    #[test]
    fn incrbyfloat_errors_and_encoding() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("INCRBYFLOAT k 2"), "$1\r\n2\r\n");
        assert_eq!(h.encoding("k"), "embstr");
        assert_eq!(h.expire_at("k"), Some(0));
        h.cmd("SET t 1 EX 100");
        assert_eq!(h.cmd("INCRBYFLOAT t 1"), "$1\r\n2\r\n");
        assert_eq!(h.expire_at("t"), Some(h.now + 100_000));
        for bad in ["abc", "1e", " 1", "1 ", "nan", "0x", "1e5000", "-1e5000", "1e-5000", "1.2.3", "--1"] {
            assert_eq!(h.run(&[b"INCRBYFLOAT", b"k", bad.as_bytes()]), b"-ERR value is not a valid float\r\n", "{bad}");
        }
        assert_eq!(h.run(&[b"INCRBYFLOAT", b"k", b"1\x002"]), b"-ERR value is not a valid float\r\n");
        assert_eq!(h.run(&[b"INCRBYFLOAT", b"k", b""]), b"-ERR value is not a valid float\r\n");
        assert_eq!(h.cmd("INCRBYFLOAT k inf"), "-ERR increment would produce NaN or Infinity\r\n");
        let huge = h.cmd("INCRBYFLOAT k 1.1e4932");
        assert!(huge.starts_with("$4933\r\n10999999999999999999743731075282418176590308692790434077349880018170241451"));
        assert!(huge.ends_with("267178522323242088136704\r\n"));
        h.cmd("SET s hello");
        assert_eq!(h.cmd("INCRBYFLOAT s 1"), "-ERR value is not a valid float\r\n");
        h.cmd("SET s inf");
        assert_eq!(h.cmd("INCRBYFLOAT s 1"), "-ERR increment would produce NaN or Infinity\r\n");
        assert_eq!(h.cmd("INCRBYFLOAT s -inf"), "-ERR increment would produce NaN or Infinity\r\n");
        assert_eq!(h.cmd("GET s"), "$3\r\ninf\r\n");
        let long = format!("1{}", "0".repeat(5119));
        assert_eq!(h.cmd(&format!("INCRBYFLOAT k {long}")), "-ERR value is not a valid float\r\n");
        h.cmd("SET big 1.18973149535723176502e4932");
        assert_eq!(h.cmd("INCRBYFLOAT big 1e4932"), "-ERR increment would produce NaN or Infinity\r\n");
    }
}
