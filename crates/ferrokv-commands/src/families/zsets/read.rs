//! ZCARD, ZSCORE, ZMSCORE, ZRANK, ZREVRANK, ZCOUNT, ZLEXCOUNT, ZRANDMEMBER, ZSCAN.

use super::parse::{lex_range, parse_cursor, score_range, ERR_LEX_RANGE, ERR_SCORE_RANGE};
use super::{is_opt, reply_elements, zset_at};
use crate::ctx::Ctx;
use crate::util::{parse_i64, ERR_NOT_INT, ERR_SYNTAX};
use ferrokv_resp::reply::format_double;
use ferrokv_resp::Args;
use ferrokv_store::glob::glob_match;
use ferrokv_store::zset::ZSetValue;

/// ZCARD key
pub fn zcard(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    match zset_at(ctx.keys.db(key), key, ctx.now_ms, ctx.out) {
        Err(()) => {}
        Ok(z) => ctx.out.integer(z.map_or(0, |z| z.len()) as i64),
    }
}

/// ZSCORE key member
pub fn zscore(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    match zset_at(ctx.keys.db(key), key, ctx.now_ms, ctx.out) {
        Err(()) => {}
        Ok(z) => match z.and_then(|z| z.score(args.get(2))) {
            Some(s) => ctx.out.double(s),
            None => ctx.out.null(),
        },
    }
}

/// ZMSCORE key member [member ...]
pub fn zmscore(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let Ok(z) = zset_at(ctx.keys.db(key), key, ctx.now_ms, ctx.out) else { return };
    ctx.out.array(args.len() - 2);
    for m in args.iter().skip(2) {
        match z.as_ref().and_then(|z| z.score(m)) {
            Some(s) => ctx.out.double(s),
            None => ctx.out.null(),
        }
    }
}

fn rank(ctx: &mut Ctx, args: &Args, reverse: bool) {
    let key = args.get(1);
    match zset_at(ctx.keys.db(key), key, ctx.now_ms, ctx.out) {
        Err(()) => {}
        Ok(z) => match z.and_then(|z| z.rank(args.get(2), reverse)) {
            Some(r) => ctx.out.integer(r as i64),
            None => ctx.out.null(),
        },
    }
}

/// ZRANK key member
pub fn zrank(ctx: &mut Ctx, args: &Args) {
    rank(ctx, args, false);
}

/// ZREVRANK key member
pub fn zrevrank(ctx: &mut Ctx, args: &Args) {
    rank(ctx, args, true);
}

/// ZCOUNT key min max
pub fn zcount(ctx: &mut Ctx, args: &Args) {
    let Some(r) = score_range(args.get(2), args.get(3)) else { return ctx.out.error(ERR_SCORE_RANGE) };
    let key = args.get(1);
    match zset_at(ctx.keys.db(key), key, ctx.now_ms, ctx.out) {
        Err(()) => {}
        Ok(None) => ctx.out.integer(0),
        Ok(Some(z)) => {
            let n = match (z.first_in_scores(&r), z.last_in_scores(&r)) {
                (Some(a), Some(b)) if b >= a => b - a + 1,
                _ => 0,
            };
            ctx.out.integer(n as i64);
        }
    }
}

/// ZLEXCOUNT key min max
pub fn zlexcount(ctx: &mut Ctx, args: &Args) {
    let Some(r) = lex_range(args.get(2), args.get(3)) else { return ctx.out.error(ERR_LEX_RANGE) };
    let key = args.get(1);
    match zset_at(ctx.keys.db(key), key, ctx.now_ms, ctx.out) {
        Err(()) => {}
        Ok(None) => ctx.out.integer(0),
        Ok(Some(z)) => {
            let Some(first) = z.first_in_lex(&r) else { return ctx.out.integer(0) };
            let n = if z.is_listpack() {
                // A listpack counts from the first member in range while members stay
                // within the maximum (which matters when scores differ).
                let mut n = 0;
                z.walk(first, false, &mut |m, _| {
                    let ok = r.lte_max(m);
                    n += ok as usize;
                    ok
                });
                n
            } else {
                // A skiplist subtracts ranks; without a last element, everything from
                // the first one counts.
                let len = z.len();
                let mut n = len - first;
                if let Some(last) = z.last_in_lex(&r) {
                    n -= len - (last + 1);
                }
                n
            };
            ctx.out.integer(n as i64);
        }
    }
}

/// Random numbers for ZRANDMEMBER (xorshift64*), seeded from the database's generator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) as u128 * n as u128) >> 64) as usize
    }
}

/// ZRANDMEMBER key [count [WITHSCORES]]
pub fn zrandmember(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now_ms;
    if args.len() == 2 {
        let db = ctx.keys.db(key);
        let mut rng = Rng(db.random_u64() | 1);
        match zset_at(db, key, now, ctx.out) {
            Err(()) => {}
            Ok(None) => ctx.out.null(),
            Ok(Some(z)) => match z.get(rng.below(z.len())) {
                Some((m, _)) => ctx.out.bulk(&m),
                None => ctx.out.null(),
            },
        }
        return;
    }
    let Some(l) = parse_i64(args.get(2)) else { return ctx.out.error(ERR_NOT_INT) };
    if l == i64::MIN {
        return ctx
            .out
            .error("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807");
    }
    if args.len() > 4 || (args.len() == 4 && !is_opt(args.get(3), "withscores")) {
        return ctx.out.error(ERR_SYNTAX);
    }
    let withscores = args.len() == 4;
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return ctx.out.error("ERR value is out of range");
    }
    let db = ctx.keys.db(key);
    let mut rng = Rng(db.random_u64() | 1);
    let z = match zset_at(db, key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => return ctx.out.array(0),
        Ok(Some(z)) => z,
    };
    let count = l.unsigned_abs() as usize;
    if count == 0 {
        return ctx.out.array(0);
    }
    let size = z.len();
    let picked: Vec<(Vec<u8>, f64)> = if l < 0 || count == 1 {
        // Repetitions allowed, in random order.
        (0..count).filter_map(|_| z.get(rng.below(size))).collect()
    } else if count >= size {
        // The whole set, as Redis's `zuiNext` walks a sorted set: from the highest.
        let mut all = z.to_vec();
        all.reverse();
        all
    } else {
        distinct_ranks(&mut rng, size, count).into_iter().filter_map(|r| z.get(r)).collect()
    };
    reply_elements(ctx.out, &picked, withscores);
}

/// `count` distinct ranks below `size`, in increasing order (Floyd's sampling).
fn distinct_ranks(rng: &mut Rng, size: usize, count: usize) -> Vec<usize> {
    let mut chosen = std::collections::BTreeSet::new();
    for j in size - count..size {
        let t = rng.below(j + 1);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    chosen.into_iter().collect()
}

/// A score as a listpack holds it, which ZSCAN shows (the same text RDB writes).
use ferrokv_rdb::value::score_text as listpack_score;

/// ZSCAN key cursor [MATCH pattern] [COUNT count]
pub fn zscan(ctx: &mut Ctx, args: &Args) {
    let Some(cursor) = parse_cursor(args.get(2)) else { return ctx.out.error("ERR invalid cursor") };
    let key = args.get(1);
    let now = ctx.now_ms;
    let z: &ZSetValue = match zset_at(ctx.keys.db(key), key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => {
            ctx.out.array(2);
            ctx.out.bulk(b"0");
            return ctx.out.array(0);
        }
        Ok(Some(z)) => z,
    };
    let mut count = 10usize;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - i >= 2;
        if is_opt(args.get(i), "count") && more {
            match parse_i64(args.get(i + 1)) {
                None => return ctx.out.error(ERR_NOT_INT),
                Some(n) if n < 1 => return ctx.out.error(ERR_SYNTAX),
                Some(n) => count = n.min(usize::MAX as i64) as usize,
            }
        } else if is_opt(args.get(i), "match") && more {
            let p = args.get(i + 1);
            pattern = if p == b"*" { None } else { Some(p) };
        } else {
            return ctx.out.error(ERR_SYNTAX);
        }
        i += 2;
    }
    let listpack = z.is_listpack();
    let mut found: Vec<(Vec<u8>, String)> = Vec::new();
    let next = z.scan(cursor, count, &mut |m, s| {
        if pattern.is_none_or(|p| glob_match(p, m, false)) {
            found.push((m.to_vec(), if listpack { listpack_score(s) } else { format_double(s) }));
        }
    });
    ctx.out.array(2);
    ctx.out.bulk(next.to_string().as_bytes());
    ctx.out.array(found.len() * 2);
    for (m, s) in &found {
        ctx.out.bulk(m);
        ctx.out.bulk(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Harness;

    #[test]
    fn scores_ranks_and_counts() {
        let mut h = Harness::new();
        h.cmd("ZADD z 1 a 2 b 3 c 0.1 d");
        assert_eq!(h.cmd("ZSCORE z d"), "$19\r\n0.10000000000000001\r\n");
        assert_eq!(h.cmd("ZSCORE z x"), "$-1\r\n");
        assert_eq!(h.cmd("ZMSCORE z a x"), "*2\r\n$1\r\n1\r\n$-1\r\n");
        assert_eq!(h.cmd("ZMSCORE nokey a"), "*1\r\n$-1\r\n");
        assert_eq!(h.cmd("ZRANK z a"), ":1\r\n");
        assert_eq!(h.cmd("ZREVRANK z a"), ":2\r\n");
        assert_eq!(h.cmd("ZRANK z x"), "$-1\r\n");
        assert_eq!(h.cmd("ZCOUNT z (1 3"), ":2\r\n");
        assert_eq!(h.cmd("ZCOUNT z -inf +inf"), ":4\r\n");
        assert_eq!(h.cmd("ZCOUNT z 3 1"), ":0\r\n");
        assert_eq!(h.cmd("ZCOUNT z x 1"), "-ERR min or max is not a float\r\n");
        assert_eq!(h.cmd("ZLEXCOUNT z - +"), ":4\r\n");
        // Scores differ: the listpack scan starts at "d" (0.1), the first member >= "b".
        assert_eq!(h.cmd("ZLEXCOUNT z [b +"), ":4\r\n");
        let mut h = Harness::resp3();
        h.cmd("ZADD z 1 a");
        assert_eq!(h.cmd("ZMSCORE z a x"), "*2\r\n,1\r\n_\r\n");
        assert_eq!(h.cmd("ZRANK z x"), "_\r\n");
    }

    #[test]
    fn zlexcount_with_mixed_scores_follows_the_listpack_scan() {
        let mut h = Harness::new();
        // In (score, member) order: b(1) a(2) c(3): "a" breaks the lex order.
        h.cmd("ZADD z 1 b 2 a 3 c");
        // From "b", the first member >= "[b", the scan goes on while members are <= "[c":
        // "a" is, so it counts although it is below the minimum.
        assert_eq!(h.cmd("ZLEXCOUNT z [b [c"), ":3\r\n");
        assert_eq!(h.cmd("ZLEXCOUNT z [c +"), ":1\r\n");
        assert_eq!(h.cmd("ZRANGEBYLEX z [b [c LIMIT 2 5"), "*1\r\n$1\r\nc\r\n");
        assert_eq!(h.cmd("ZREVRANGEBYLEX z [c [b"), "*1\r\n$1\r\nc\r\n");
    }

    #[test]
    fn zrandmember_shapes() {
        let mut h = Harness::new();
        h.cmd("ZADD z 1 a 2 b 3 c");
        assert_eq!(h.cmd("ZRANDMEMBER z 0"), "*0\r\n");
        assert_eq!(h.cmd("ZRANDMEMBER z 5"), "*3\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\na\r\n");
        assert_eq!(h.cmd("ZRANDMEMBER z 3 WITHSCORES").matches("\r\n").count(), 13);
        assert!(h.cmd("ZRANDMEMBER z -5").starts_with("*5\r\n"));
        assert!(h.cmd("ZRANDMEMBER z 2").starts_with("*2\r\n"));
        assert!(h.cmd("ZRANDMEMBER z").starts_with("$1\r\n"));
        assert_eq!(h.cmd("ZRANDMEMBER nokey"), "$-1\r\n");
        assert_eq!(h.cmd("ZRANDMEMBER nokey 3"), "*0\r\n");
        assert_eq!(h.cmd("ZRANDMEMBER z 1 x"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("ZRANDMEMBER z 9223372036854775807 WITHSCORES"), "-ERR value is out of range\r\n");
        assert_eq!(
            h.cmd("ZRANDMEMBER z -9223372036854775808"),
            "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\r\n"
        );
        let mut h = Harness::resp3();
        h.cmd("ZADD z 1 a");
        assert_eq!(h.cmd("ZRANDMEMBER z 2 WITHSCORES"), "*1\r\n*2\r\n$1\r\na\r\n,1\r\n");
        // Distinct picks of a big set are distinct.
        for i in 0..300 {
            h.cmd(&format!("ZADD big {i} m{i}"));
        }
        let reply = h.cmd("ZRANDMEMBER big 100");
        let mut members: Vec<&str> = reply.split("\r\n").filter(|l| l.starts_with('m')).collect();
        members.sort();
        members.dedup();
        assert_eq!(members.len(), 100);
    }

    #[test]
    fn zscan_formats_scores_by_encoding() {
        let mut h = Harness::new();
        h.cmd("ZADD z 1e17 a 1.5 b -0 c");
        assert_eq!(
            h.cmd("ZSCAN z 0"),
            "*2\r\n$1\r\n0\r\n*6\r\n$1\r\nc\r\n$1\r\n0\r\n$1\r\nb\r\n$3\r\n1.5\r\n$1\r\na\r\n$18\r\n100000000000000000\r\n"
        );
        assert_eq!(h.cmd("ZSCAN z 0 MATCH a"), "*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n$18\r\n100000000000000000\r\n");
        assert_eq!(h.cmd("ZSCAN z 0 COUNT 0"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("ZSCAN z x"), "-ERR invalid cursor\r\n");
        assert_eq!(h.cmd("ZSCAN nokey 0 BAD"), "*2\r\n$1\r\n0\r\n*0\r\n");
        h.cfg.zset_max_listpack_entries = 0;
        h.cmd("ZADD s 1e17 a -0 b");
        let reply = h.cmd("ZSCAN s 0 COUNT 100");
        assert!(reply.contains("$5\r\n1e+17\r\n") && reply.contains("$2\r\n-0\r\n"), "{reply}");
    }

    #[test]
    fn zscan_walks_a_big_set_completely() {
        let mut h = Harness::new();
        for i in 0..1000 {
            h.cmd(&format!("ZADD z {i} m{i}"));
        }
        let mut cursor = "0".to_string();
        let mut seen = std::collections::BTreeSet::new();
        loop {
            let reply = h.cmd(&format!("ZSCAN z {cursor} COUNT 37"));
            let lines: Vec<&str> = reply.split("\r\n").collect();
            cursor = lines[2].to_string();
            for l in lines.iter().filter(|l| l.starts_with('m')) {
                seen.insert(l.to_string());
            }
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 1000);
    }

    #[test]
    fn listpack_score_text() {
        assert_eq!(listpack_score(3.0), "3");
        assert_eq!(listpack_score(1e17), "100000000000000000");
        assert_eq!(listpack_score(1e19), "1e+19");
        assert_eq!(listpack_score(-2.5), "-2.5");
        assert_eq!(listpack_score(f64::INFINITY), "inf");
    }
}
