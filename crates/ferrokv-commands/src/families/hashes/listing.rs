//! Whole-hash reads: HKEYS, HVALS, HGETALL and HSCAN. A packed hash lists its pairs in
//! insertion order, as Redis's listpack does; a table in its own slot order (Redis's
//! is its dict's, which no client may rely on).

use super::{is_opt, read_hash, reply_elem};
use crate::util::*;
use crate::Ctx;
use ferrokv_resp::Args;
use ferrokv_store::glob::glob_match;
use ferrokv_store::hash::Elem;

/// What of each pair a listing replies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Fields,
    Values,
    Both,
}

/// HKEYS key
pub fn hkeys(ctx: &mut Ctx, args: &Args) {
    list(ctx, args, Part::Fields);
}

/// HVALS key
pub fn hvals(ctx: &mut Ctx, args: &Args) {
    list(ctx, args, Part::Values);
}

/// HGETALL key
///
/// A map in RESP3, a flat field/value array in RESP2.
pub fn hgetall(ctx: &mut Ctx, args: &Args) {
    list(ctx, args, Part::Both);
}

fn list(ctx: &mut Ctx, args: &Args, part: Part) {
    let (key, now) = (args.get(1), ctx.now_ms);
    let db = ctx.keys.db(key);
    let Ok(h) = read_hash(db, key, now, ctx.out) else { return };
    let n = h.map_or(0, |h| h.len());
    if part == Part::Both {
        ctx.out.map(n);
    } else {
        ctx.out.array(n);
    }
    let Some(h) = h else { return };
    for (f, v) in h.iter() {
        if part != Part::Values {
            reply_elem(ctx.out, f);
        }
        if part != Part::Fields {
            reply_elem(ctx.out, v);
        }
    }
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]
///
/// Replies `[next-cursor, [field, value, ...]]`. A packed hash comes whole with
/// cursor 0; a table is scanned in reverse-binary bucket order, COUNT pairs or so at
/// a time. MATCH filters fields (a value goes with its field). As in Redis, the
/// cursor is checked first, then the key, then the options.
pub fn hscan(ctx: &mut Ctx, args: &Args) {
    let Some(cursor) = parse_cursor(args.get(2)) else {
        return ctx.out.error("ERR invalid cursor");
    };
    let (key, now) = (args.get(1), ctx.now_ms);
    let db = ctx.keys.db(key);
    let h = match read_hash(db, key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => {
            ctx.out.array(2);
            ctx.out.bulk(b"0");
            return ctx.out.array(0);
        }
        Ok(Some(h)) => h,
    };
    let mut count: i64 = 10;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 3;
    while i < args.len() {
        let (opt, has_value) = (args.get(i), args.len() - i >= 2);
        if is_opt(opt, "count") && has_value {
            match parse_i64(args.get(i + 1)) {
                None => return ctx.out.error(ERR_NOT_INT),
                Some(n) if n < 1 => return ctx.out.error(ERR_SYNTAX),
                Some(n) => count = n,
            }
        } else if is_opt(opt, "match") && has_value {
            let p = args.get(i + 1);
            pattern = if p == b"*" { None } else { Some(p) };
        } else {
            return ctx.out.error(ERR_SYNTAX);
        }
        i += 2;
    }
    let mut found: Vec<(Elem, Elem)> = Vec::new();
    let next = h.scan(cursor, count as usize, &mut |f, v| {
        if pattern.is_none_or(|p| glob_match(p, f.as_bytes(&mut [0; 20]), false)) {
            found.push((f, v));
        }
    });
    ctx.out.array(2);
    ctx.out.bulk(next.to_string().as_bytes());
    ctx.out.array(found.len() * 2);
    for (f, v) in found {
        reply_elem(ctx.out, f);
        reply_elem(ctx.out, v);
    }
}

use crate::util::parse_scan_cursor as parse_cursor;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Harness;
    use std::collections::BTreeSet;

    #[test]
    fn listings_keep_insertion_order_when_packed() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("HKEYS k"), "*0\r\n");
        assert_eq!(h.cmd("HGETALL k"), "*0\r\n");
        h.cmd("HSET k z 1 a 2 m 3");
        h.cmd("HSET k a 20");
        assert_eq!(h.cmd("HKEYS k"), "*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\nm\r\n");
        assert_eq!(h.cmd("HVALS k"), "*3\r\n$1\r\n1\r\n$2\r\n20\r\n$1\r\n3\r\n");
        assert_eq!(h.cmd("HGETALL k"), "*6\r\n$1\r\nz\r\n$1\r\n1\r\n$1\r\na\r\n$2\r\n20\r\n$1\r\nm\r\n$1\r\n3\r\n");
        let mut h3 = Harness::resp3();
        assert_eq!(h3.cmd("HGETALL k"), "%0\r\n");
        assert_eq!(h3.cmd("HKEYS k"), "*0\r\n");
        h3.cmd("HSET k f v");
        assert_eq!(h3.cmd("HGETALL k"), "%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
    }

    #[test]
    fn listings_of_tables_hold_every_pair() {
        let mut h = Harness::new();
        h.cfg.hash_max_listpack_entries = 128;
        for i in 0..200 {
            h.cmd(&format!("HSET k f{i} {i}"));
        }
        assert_eq!(h.encoding("k"), "hashtable");
        let keys = h.cmd("HKEYS k");
        assert!(keys.starts_with("*200\r\n"));
        let got: BTreeSet<&str> = keys.split("\r\n").filter(|s| s.starts_with('f')).collect();
        assert_eq!(got.len(), 200);
        assert!(h.cmd("HGETALL k").starts_with("*400\r\n"));
    }

    /// Splits an HSCAN reply into its cursor and its elements.
    fn parse_scan(reply: &str) -> (u64, Vec<String>) {
        let lines: Vec<&str> = reply.split("\r\n").collect();
        assert_eq!(lines[0], "*2");
        let cursor = lines[2].parse().expect("cursor");
        let elems = lines[4..].iter().skip(1).step_by(2).map(|s| s.to_string()).collect();
        (cursor, elems)
    }

    #[test]
    fn hscan_packed_returns_all_at_once() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("HSCAN k 0"), "*2\r\n$1\r\n0\r\n*0\r\n");
        // Options of a missing key are not even parsed.
        assert_eq!(h.cmd("HSCAN k 0 BAD"), "*2\r\n$1\r\n0\r\n*0\r\n");
        h.cmd("HSET k a 1 b 2 ab 3 7 x");
        assert_eq!(h.cmd("HSCAN k 0 COUNT 1"), "*2\r\n$1\r\n0\r\n*8\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n$2\r\nab\r\n$1\r\n3\r\n$1\r\n7\r\n$1\r\nx\r\n");
        assert_eq!(h.cmd("HSCAN k 0 MATCH a*"), "*2\r\n$1\r\n0\r\n*4\r\n$1\r\na\r\n$1\r\n1\r\n$2\r\nab\r\n$1\r\n3\r\n");
        assert_eq!(h.cmd("HSCAN k 0 match 7"), "*2\r\n$1\r\n0\r\n*2\r\n$1\r\n7\r\n$1\r\nx\r\n");
        assert_eq!(h.cmd("HSCAN k 99 MATCH nothing"), "*2\r\n$1\r\n0\r\n*0\r\n");
        let mut h3 = Harness::resp3();
        h3.cmd("HSET k a 1");
        assert_eq!(h3.cmd("HSCAN k 0"), "*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n");
    }

    #[test]
    fn hscan_errors() {
        let mut h = Harness::new();
        h.cmd("HSET k a 1");
        assert_eq!(h.cmd("HSCAN k abc"), "-ERR invalid cursor\r\n");
        assert_eq!(h.cmd("HSCAN k 18446744073709551616"), "-ERR invalid cursor\r\n");
        assert_eq!(h.cmd("HSCAN missing abc"), "-ERR invalid cursor\r\n");
        assert_eq!(h.cmd("HSCAN k 0 COUNT 0"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("HSCAN k 0 COUNT x"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("HSCAN k 0 COUNT"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("HSCAN k 0 TYPE hash"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("HSCAN k"), "-ERR wrong number of arguments for 'hscan' command\r\n");
        assert_eq!(h.cmd("HSCAN k -1"), "*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n");
    }

    #[test]
    fn hscan_table_iterates_with_cursors() {
        let mut h = Harness::new();
        h.cfg.hash_max_listpack_entries = 128;
        for i in 0..500 {
            h.cmd(&format!("HSET k f{i} v{i}"));
        }
        let mut seen = BTreeSet::new();
        let mut cursor = 0;
        let mut calls = 0;
        loop {
            let (next, fields) = parse_scan(&h.cmd(&format!("HSCAN k {cursor} COUNT 20")));
            assert!(fields.len() <= 2 * 40, "about COUNT pairs per call");
            seen.extend(fields.into_iter().filter(|f| f.starts_with('f')));
            calls += 1;
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 500);
        assert!(calls > 5);
        let (next, fields) = parse_scan(&h.cmd("HSCAN k 0 COUNT 1000 MATCH f1?"));
        assert_eq!(next, 0);
        assert_eq!(fields.iter().filter(|f| f.starts_with('f')).count(), 10);
    }

    #[test]
    fn cursor_parsing() {
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b"+5"), Some(5));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"5\0junk"), Some(5));
        assert_eq!(parse_cursor(b" 5"), None);
        assert_eq!(parse_cursor(b"-"), None);
        assert_eq!(parse_cursor(b"5 "), None);
    }
}
