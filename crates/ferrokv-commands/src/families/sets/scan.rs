//! SSCAN.
//!
//! An intset or a small packed set comes back whole in one call with cursor 0, as Redis
//! returns its compact encodings. A large set is scanned shard by shard of its hash
//! table; the cursor is a position in the hash space (see `ferrokv_store::set`), so
//! every member present for the whole scan is returned, however the set grows or
//! shrinks meanwhile.

use super::{is_opt, lookup};
use crate::util::{parse_i64, ERR_NOT_INT, ERR_SYNTAX};
use crate::Ctx;
use ferrokv_resp::Args;
use ferrokv_store::glob::glob_match;

/// SSCAN key cursor [MATCH pattern] [COUNT count]
///
/// Replies `[next-cursor, [member ...]]`. The cursor is checked first, then the key (a
/// missing key ends the scan at once, whatever the options), then the options.
pub fn sscan(ctx: &mut Ctx, args: &Args) {
    let (key, now) = (args.get(1), ctx.now_ms);
    let Some(cursor) = parse_cursor(args.get(2)) else {
        return ctx.out.error("ERR invalid cursor");
    };
    let set = match lookup(ctx.keys.db(key), key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => return ctx.out.raw(b"*2\r\n$1\r\n0\r\n*0\r\n"),
        Ok(Some(set)) => set,
    };
    let mut count = 10usize;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 3;
    while i < args.len() {
        let has_value = args.len() - i >= 2;
        if is_opt(args.get(i), "count") && has_value {
            match parse_i64(args.get(i + 1)) {
                None => return ctx.out.error(ERR_NOT_INT),
                Some(n) if n < 1 => return ctx.out.error(ERR_SYNTAX),
                Some(n) => count = usize::try_from(n).unwrap_or(usize::MAX),
            }
        } else if is_opt(args.get(i), "match") && has_value {
            let p = args.get(i + 1);
            // "*" matches everything: Redis skips the matching.
            pattern = (p != b"*").then_some(p);
        } else {
            return ctx.out.error(ERR_SYNTAX);
        }
        i += 2;
    }
    let mut found: Vec<Vec<u8>> = Vec::new();
    let next = set.scan(cursor, count, &mut |m| {
        let mut buf = [0; 20];
        let bytes = m.bytes(&mut buf);
        if pattern.is_none_or(|p| glob_match(p, bytes, false)) {
            found.push(bytes.to_vec());
        }
    });
    ctx.out.array(2);
    ctx.out.bulk(next.to_string().as_bytes());
    ctx.out.array(found.len());
    for m in &found {
        ctx.out.bulk(m);
    }
}

use crate::util::parse_scan_cursor as parse_cursor;

#[cfg(test)]
mod tests {
    use super::parse_cursor;
    use crate::testkit::Harness;
    use std::collections::BTreeSet;

    #[test]
    fn cursor_parsing_follows_strtoul() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b"+7"), Some(7));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551616"), None);
        assert_eq!(parse_cursor(b" 1"), None);
        assert_eq!(parse_cursor(b"1 "), None);
        assert_eq!(parse_cursor(b"-"), None);
        assert_eq!(parse_cursor(b"12\0x"), Some(12));
    }

    #[test]
    fn small_sets_come_back_whole() {
        let mut h = Harness::new();
        h.cmd("SADD s 3 1 2 10");
        assert_eq!(h.cmd("SSCAN s 0 COUNT 1"), "*2\r\n$1\r\n0\r\n*4\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$2\r\n10\r\n");
        assert_eq!(h.cmd("SSCAN s 99 MATCH 1*"), "*2\r\n$1\r\n0\r\n*2\r\n$1\r\n1\r\n$2\r\n10\r\n");
        assert_eq!(h.cmd("SSCAN nokey 0 COUNT 0"), "*2\r\n$1\r\n0\r\n*0\r\n");
        assert_eq!(h.cmd("SSCAN nokey abc"), "-ERR invalid cursor\r\n");
        assert_eq!(h.cmd("SSCAN s 0 COUNT 0"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("SSCAN s 0 COUNT x"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("SSCAN s 0 MATCH"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("SSCAN s 0 TYPE set"), "-ERR syntax error\r\n");
        h.cmd("SET str x");
        assert_eq!(h.cmd("SSCAN str 0"), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    }

    #[test]
    fn big_sets_scan_in_steps() {
        let mut h = Harness::new();
        let members: Vec<String> = (0..2000).map(|i| format!("m{i}")).collect();
        h.cmd(&format!("SADD s {}", members.join(" ")));
        let (mut cursor, mut calls, mut seen) = ("0".to_string(), 0, BTreeSet::new());
        loop {
            let reply = h.cmd(&format!("SSCAN s {cursor} COUNT 20"));
            let lines: Vec<&str> = reply.split("\r\n").collect();
            cursor = lines[2].to_string();
            seen.extend(lines[4..].iter().filter(|l| !l.starts_with('$') && !l.is_empty()).map(|l| l.to_string()));
            calls += 1;
            if cursor == "0" {
                break;
            }
        }
        assert!(calls > 10, "{calls} calls");
        assert_eq!(seen.len(), 2000);
    }
}
