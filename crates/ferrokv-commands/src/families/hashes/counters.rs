//! HINCRBY and HINCRBYFLOAT: counters in hash fields. A missing key or field counts
//! from 0; the increment is checked before the key (a bad increment beats WRONGTYPE).
//! The new value goes through the same encoding rules as HSET's: a long field or
//! result (HINCRBYFLOAT can print hundreds of digits) converts a packed hash.

use super::{limits, write_hash};
use crate::ctx::argv;
use crate::families::strings::LongDouble;
use crate::util::*;
use crate::Ctx;
use ferrokv_resp::Args;
use ferrokv_store::hash::Elem;

/// HINCRBY key field increment
pub fn hincrby(ctx: &mut Ctx, args: &Args) {
    let (key, field) = (args.get(1), args.get(2));
    let Some(by) = parse_i64(args.get(3)) else {
        return ctx.out.error(ERR_NOT_INT);
    };
    let limits = limits(ctx.cfg);
    let changed = write_hash(ctx, key, |h, out| {
        let cur = match h.get(field) {
            None => 0,
            Some(Elem::Int(n)) => n,
            Some(Elem::Str(s)) => match parse_i64(s) {
                Some(n) => n,
                None => {
                    out.error("ERR hash value is not an integer");
                    return false;
                }
            },
        };
        let Some(n) = cur.checked_add(by) else {
            out.error(ERR_OVERFLOW);
            return false;
        };
        h.set(field, n.to_string().as_bytes(), &limits);
        out.integer(n);
        true
    });
    if changed == Ok(true) {
        ctx.touch(key);
    }
}

/// HINCRBYFLOAT key field increment
///
/// As INCRBYFLOAT: C `long double` arithmetic, the result printed with `%.17Lf`
/// without trailing zeros (see `strings/float.rs`).
pub fn hincrbyfloat(ctx: &mut Ctx, args: &Args) {
    let (key, field) = (args.get(1), args.get(2));
    let Some(by) = LongDouble::parse(args.get(3)) else {
        return ctx.out.error(ERR_NOT_FLOAT);
    };
    if !by.is_finite() {
        return ctx.out.error("ERR value is NaN or Infinity");
    }
    let limits = limits(ctx.cfg);
    let mut stored = None;
    let changed = write_hash(ctx, key, |h, out| {
        let cur = match h.get(field) {
            None => LongDouble::from_i64(0),
            Some(Elem::Int(n)) => LongDouble::from_i64(n),
            Some(Elem::Str(s)) => match LongDouble::parse(s) {
                Some(v) => v,
                None => {
                    out.error("ERR hash value is not a float");
                    return false;
                }
            },
        };
        let sum = cur + by;
        if !sum.is_finite() {
            out.error("ERR increment would produce NaN or Infinity");
            return false;
        }
        let text = sum.to_human_string();
        h.set(field, text.as_bytes(), &limits);
        out.bulk(text.as_bytes());
        stored = Some(text);
        true
    });
    if changed == Ok(true) {
        ctx.touch(key);
        // Propagated as HSET with the result: float formatting may differ elsewhere.
        if let Some(text) = stored {
            ctx.rewrite(|| argv(&[b"HSET", key, field, text.as_bytes()]));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;

    #[test]
    fn hincrby() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("HINCRBY k f 5"), ":5\r\n");
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("HINCRBY k f -7"), ":-2\r\n");
        assert_eq!(h.cmd("HGET k f"), "$2\r\n-2\r\n");
        assert_eq!(h.cmd("HINCRBY k f abc"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("HINCRBY k f 1.5"), "-ERR value is not an integer or out of range\r\n");
        h.cmd("HSET k s 1.5 z 007 m 9223372036854775807");
        assert_eq!(h.cmd("HINCRBY k s 1"), "-ERR hash value is not an integer\r\n");
        assert_eq!(h.dirty, 0);
        assert_eq!(h.cmd("HINCRBY k z 1"), "-ERR hash value is not an integer\r\n");
        assert_eq!(h.cmd("HINCRBY k m 1"), "-ERR increment or decrement would overflow\r\n");
        assert_eq!(h.cmd("HINCRBY k m -9223372036854775808"), ":-1\r\n");
        assert_eq!(h.cmd("HINCRBY k n -9223372036854775808"), ":-9223372036854775808\r\n");
        assert_eq!(h.cmd("HINCRBY k n -1"), "-ERR increment or decrement would overflow\r\n");
        h.cmd("SET str x");
        assert_eq!(h.cmd("HINCRBY str f x"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("HINCRBY str f 1"), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    }

    #[test]
    fn hincrby_works_on_tables_and_converts() {
        let mut h = Harness::new();
        h.cfg.hash_max_listpack_value = 3;
        assert_eq!(h.cmd("HINCRBY k f 999"), ":999\r\n");
        assert_eq!(h.encoding("k"), "listpack");
        assert_eq!(h.cmd("HINCRBY k f 1"), ":1000\r\n");
        assert_eq!(h.encoding("k"), "hashtable");
        assert_eq!(h.cmd("HINCRBY k f 1"), ":1001\r\n");
        h.cmd("HSET j abcd 1");
        assert_eq!(h.encoding("j"), "hashtable");
        h.cmd("HINCRBY l abcd 1");
        assert_eq!(h.encoding("l"), "hashtable");
    }

    #[test]
    fn hincrbyfloat() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("HINCRBYFLOAT k f 10.5"), "$4\r\n10.5\r\n");
        assert_eq!(h.cmd("HINCRBYFLOAT k f 5000"), "$6\r\n5010.5\r\n");
        assert_eq!(h.cmd("HINCRBYFLOAT k f 0.1"), "$22\r\n5010.60000000000000009\r\n");
        h.cmd("HSET k i 3 s abc inf inf");
        assert_eq!(h.cmd("HINCRBYFLOAT k i 1.5"), "$3\r\n4.5\r\n");
        assert_eq!(h.cmd("HINCRBYFLOAT k i -4.5"), "$1\r\n0\r\n");
        assert_eq!(h.cmd("HINCRBYFLOAT k s 1"), "-ERR hash value is not a float\r\n");
        assert_eq!(h.cmd("HINCRBYFLOAT k inf 1"), "-ERR increment would produce NaN or Infinity\r\n");
        assert_eq!(h.cmd("HINCRBYFLOAT k f inf"), "-ERR value is NaN or Infinity\r\n");
        assert_eq!(h.cmd("HINCRBYFLOAT k f nan"), "-ERR value is not a valid float\r\n");
        assert_eq!(h.cmd("HINCRBYFLOAT k f abc"), "-ERR value is not a valid float\r\n");
        assert_eq!(h.cmd("HINCRBYFLOAT k f 1e5000"), "-ERR value is not a valid float\r\n");
        assert_eq!(h.dirty, 0);
        h.cmd("SET str x");
        assert_eq!(h.cmd("HINCRBYFLOAT str f inf"), "-ERR value is NaN or Infinity\r\n");
        // A result longer than hash-max-listpack-value converts the hash.
        assert_eq!(h.encoding("k"), "listpack");
        let long = h.cmd("HINCRBYFLOAT k big 1e100");
        assert!(
            long.starts_with("$100\r\n99999999999999999996693535322073426194986990198284960792713915417520186694826"),
            "{long}"
        );
        assert_eq!(h.encoding("k"), "hashtable");
        assert_eq!(h.cmd("EXISTS nothing"), ":0\r\n");
    }

    #[test]
    fn failed_counters_leave_no_key() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("HINCRBY k f x"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("HINCRBYFLOAT k f -inf"), "-ERR value is NaN or Infinity\r\n");
        assert_eq!(h.cmd("EXISTS k"), ":0\r\n");
    }
}
