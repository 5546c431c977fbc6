//! Commands over parts of a string: APPEND, STRLEN, SETRANGE, GETRANGE (SUBSTR).

use super::{check_string_length, raw_bytes, read_string, string_bytes, string_len};
use crate::util::*;
use crate::Ctx;
use ferrokv_resp::Args;
use ferrokv_store::Value;

/// APPEND key value
///
/// Creates the key as SET would; otherwise the string becomes `raw`, even when
/// appending nothing.
pub fn append(ctx: &mut Ctx, args: &Args) {
    let (key, tail) = (args.get(1), args.get(2));
    let now = ctx.now_ms;
    let max = ctx.cfg.proto_max_bulk_len;
    let db = ctx.keys.db(key);
    let len = match read_string(db, key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => {
            db.set(key, Value::string(tail), 0);
            tail.len()
        }
        Ok(Some(v)) => {
            if !check_string_length(ctx.out, max, string_len(v) as u64, tail.len() as u64) {
                return;
            }
            let bytes = raw_bytes(v);
            bytes.extend_from_slice(tail);
            bytes.len()
        }
    };
    ctx.touch(key);
    ctx.out.integer(len as i64);
}

/// STRLEN key
pub fn strlen(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now_ms;
    match read_string(ctx.keys.db(key), key, now, ctx.out) {
        Err(()) => {}
        Ok(None) => ctx.out.integer(0),
        Ok(Some(v)) => ctx.out.integer(string_len(v) as i64),
    }
}

/// SETRANGE key offset value
///
/// Zero-pads the string up to `offset`. Writing nothing changes nothing (and creates
/// no key); the reply is the resulting length.
pub fn setrange(ctx: &mut Ctx, args: &Args) {
    let (key, value) = (args.get(1), args.get(3));
    let Some(offset) = parse_i64(args.get(2)) else {
        return ctx.out.error(ERR_NOT_INT);
    };
    if offset < 0 {
        return ctx.out.error("ERR offset is out of range");
    }
    let offset = offset as u64;
    let now = ctx.now_ms;
    let max = ctx.cfg.proto_max_bulk_len;
    let db = ctx.keys.db(key);
    let len = match read_string(db, key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => {
            if value.is_empty() {
                return ctx.out.integer(0);
            }
            if !check_string_length(ctx.out, max, offset, value.len() as u64) {
                return;
            }
            let mut bytes = vec![0; offset as usize];
            bytes.extend_from_slice(value);
            let len = bytes.len();
            db.set(key, Value::Str { bytes: bytes.into(), raw: true }, 0);
            len
        }
        Ok(Some(v)) => {
            if value.is_empty() {
                return ctx.out.integer(string_len(v) as i64);
            }
            if !check_string_length(ctx.out, max, offset, value.len() as u64) {
                return;
            }
            let bytes = raw_bytes(v);
            let end = offset as usize + value.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[offset as usize..end].copy_from_slice(value);
            bytes.len()
        }
    };
    ctx.touch(key);
    ctx.out.integer(len as i64);
}

/// GETRANGE key start end (also SUBSTR key start end)
///
/// Inclusive offsets; negative ones count from the end.
pub fn getrange(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let (Some(start), Some(end)) = (parse_i64(args.get(2)), parse_i64(args.get(3))) else {
        return ctx.out.error(ERR_NOT_INT);
    };
    let now = ctx.now_ms;
    let v = match read_string(ctx.keys.db(key), key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => return ctx.out.bulk(b""),
        Ok(Some(v)) => v,
    };
    let mut buf = [0; 20];
    let s = string_bytes(v, &mut buf);
    match substring_range(start, end, s.len() as i64) {
        Some((from, to)) => ctx.out.bulk(&s[from..=to]),
        None => ctx.out.bulk(b""),
    }
}

/// GETRANGE's index arithmetic: the inclusive byte range, or None when empty.
fn substring_range(mut start: i64, mut end: i64, len: i64) -> Option<(usize, usize)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return None;
    }
    Some((start as usize, end as usize))
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;

    #[test]
    fn append_creates_then_grows_raw() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("APPEND k 12"), ":2\r\n");
        assert_eq!(h.encoding("k"), "int");
        assert_eq!(h.cmd("APPEND k 3"), ":3\r\n");
        assert_eq!(h.encoding("k"), "raw");
        assert_eq!(h.cmd("GET k"), "$3\r\n123\r\n");
        h.cmd("SET n 5");
        assert_eq!(h.run(&[b"APPEND", b"n", b""]), b":1\r\n");
        assert_eq!(h.encoding("n"), "raw");
        assert_eq!(h.dirty, 1);
        assert_eq!(h.run(&[b"APPEND", b"e", b""]), b":0\r\n");
        assert_eq!(h.encoding("e"), "embstr");
        h.cfg.proto_max_bulk_len = 4;
        assert_eq!(h.cmd("APPEND k 45"), "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n");
        assert_eq!(h.cmd("APPEND k 4"), ":4\r\n");
    }

    #[test]
    fn strlen_counts_int_digits() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("STRLEN k"), ":0\r\n");
        h.cmd("SET k -1234");
        assert_eq!(h.cmd("STRLEN k"), ":5\r\n");
        h.cmd("SET k hello");
        assert_eq!(h.cmd("STRLEN k"), ":5\r\n");
    }

    #[test]
    fn setrange_pads_and_limits() {
        let mut h = Harness::new();
        assert_eq!(h.run(&[b"SETRANGE", b"k", b"5", b""]), b":0\r\n");
        assert_eq!(h.db.len(), 0);
        assert_eq!(h.cmd("SETRANGE k 2 ab"), ":4\r\n");
        assert_eq!(h.run(&[b"GET", b"k"]), b"$4\r\n\0\0ab\r\n");
        assert_eq!(h.encoding("k"), "raw");
        assert_eq!(h.cmd("SETRANGE k 1 X"), ":4\r\n");
        assert_eq!(h.run(&[b"GET", b"k"]), b"$4\r\n\0Xab\r\n");
        assert_eq!(h.run(&[b"SETRANGE", b"k", b"100", b""]), b":4\r\n");
        assert_eq!(h.dirty, 0);
        h.cmd("SET n 12345");
        assert_eq!(h.cmd("SETRANGE n 1 x"), ":5\r\n");
        assert_eq!(h.cmd("GET n"), "$5\r\n1x345\r\n");
        assert_eq!(h.encoding("n"), "raw");
        assert_eq!(h.cmd("SETRANGE k -1 x"), "-ERR offset is out of range\r\n");
        assert_eq!(h.cmd("SETRANGE k a x"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(
            h.cmd("SETRANGE k 536870911 xy"),
            "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n"
        );
        assert_eq!(
            h.cmd("SETRANGE k 9223372036854775807 x"),
            "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n"
        );
    }

    #[test]
    fn getrange_indexes_like_redis() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("GETRANGE k 0 -1"), "$0\r\n\r\n");
        h.cmd("SET k Hello");
        for (range, want) in [
            ("0 -1", "Hello"),
            ("0 0", "H"),
            ("-3 -1", "llo"),
            ("-1 -3", ""),
            ("3 1", ""),
            ("1 100", "ello"),
            ("-100 1", "He"),
            ("-100 -100", "H"),
            ("5 10", ""),
            ("0 -100", "H"),
        ] {
            let want = format!("${}\r\n{}\r\n", want.len(), want);
            assert_eq!(h.cmd(&format!("GETRANGE k {range}")), want, "{range}");
        }
        h.cmd("SET n -123");
        assert_eq!(h.cmd("SUBSTR n 1 2"), "$2\r\n12\r\n");
        assert_eq!(h.cmd("GETRANGE n x 2"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("GETRANGE missing x 2"), "-ERR value is not an integer or out of range\r\n");
        h.cmd("SET e foo");
        h.run(&[b"SET", b"e", b""]);
        assert_eq!(h.cmd("GETRANGE e 0 -1"), "$0\r\n\r\n");
    }
}
