//! ZRANGE, ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX, ZREVRANGEBYLEX and
//! ZRANGESTORE, all through Redis's `zrangeGenericCommand`.

use super::parse::{lex_range, score_range, ERR_LEX_RANGE, ERR_SCORE_RANGE};
use super::{is_opt, limits, reply_elements, zset_at};
use crate::ctx::Ctx;
use crate::util::{parse_i64, ERR_NOT_INT, ERR_SYNTAX};
use ferrokv_resp::Args;
use ferrokv_store::zset::{AddFlags, LexRange, ScoreRange, ZSetValue};
use ferrokv_store::Value;

#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    Auto,
    Rank,
    Score,
    Lex,
}

/// A parsed range.
enum Spec {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]
pub fn zrange(ctx: &mut Ctx, args: &Args) {
    generic(ctx, args, 1, false, By::Auto, None);
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]
pub fn zrangestore(ctx: &mut Ctx, args: &Args) {
    generic(ctx, args, 2, true, By::Auto, None);
}

/// ZREVRANGE key start stop [WITHSCORES]
pub fn zrevrange(ctx: &mut Ctx, args: &Args) {
    generic(ctx, args, 1, false, By::Rank, Some(true));
}

/// ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]
pub fn zrangebyscore(ctx: &mut Ctx, args: &Args) {
    generic(ctx, args, 1, false, By::Score, Some(false));
}

/// ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]
pub fn zrevrangebyscore(ctx: &mut Ctx, args: &Args) {
    generic(ctx, args, 1, false, By::Score, Some(true));
}

/// ZRANGEBYLEX key min max [LIMIT offset count]
pub fn zrangebylex(ctx: &mut Ctx, args: &Args) {
    generic(ctx, args, 1, false, By::Lex, Some(false));
}

/// ZREVRANGEBYLEX key max min [LIMIT offset count]
pub fn zrevrangebylex(ctx: &mut Ctx, args: &Args) {
    generic(ctx, args, 1, false, By::Lex, Some(true));
}

/// Redis's `zrangeGenericCommand`: `src` is the index of the source key; `reverse`
/// is None when REV may be given.
fn generic(ctx: &mut Ctx, args: &Args, src: usize, store: bool, mut by: By, mut reverse: Option<bool>) {
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut j = src + 3;
    while j < args.len() {
        let a = args.get(j);
        let left = args.len() - j - 1;
        if !store && is_opt(a, "withscores") {
            withscores = true;
        } else if is_opt(a, "limit") && left >= 2 {
            match (parse_i64(args.get(j + 1)), parse_i64(args.get(j + 2))) {
                (Some(o), Some(l)) => (offset, limit) = (o, l),
                _ => return ctx.out.error(ERR_NOT_INT),
            }
            j += 2;
        } else if reverse.is_none() && is_opt(a, "rev") {
            reverse = Some(true);
        } else if by == By::Auto && is_opt(a, "bylex") {
            by = By::Lex;
        } else if by == By::Auto && is_opt(a, "byscore") {
            by = By::Score;
        } else {
            return ctx.out.error(ERR_SYNTAX);
        }
        j += 1;
    }
    let reverse = reverse.unwrap_or(false);
    if by == By::Auto {
        by = By::Rank;
    }
    if limit != -1 && by == By::Rank {
        return ctx.out.error("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
    }
    if withscores && by == By::Lex {
        return ctx.out.error("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    let (mut min, mut max) = (args.get(src + 1), args.get(src + 2));
    if reverse && by != By::Rank {
        std::mem::swap(&mut min, &mut max);
    }
    let spec = match by {
        By::Score => match score_range(min, max) {
            Some(r) => Spec::Score(r),
            None => return ctx.out.error(ERR_SCORE_RANGE),
        },
        By::Lex => match lex_range(min, max) {
            Some(r) => Spec::Lex(r),
            None => return ctx.out.error(ERR_LEX_RANGE),
        },
        _ => match (parse_i64(min), parse_i64(max)) {
            (Some(a), Some(b)) => Spec::Rank(a, b),
            _ => return ctx.out.error(ERR_NOT_INT),
        },
    };

    let key = args.get(src);
    let now = ctx.now_ms;
    let elements = match zset_at(ctx.keys.db(key), key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => Vec::new(),
        Ok(Some(z)) => select(z, &spec, reverse, offset, limit),
    };
    if store {
        store_range(ctx, args.get(1), elements);
    } else {
        reply_elements(ctx.out, &elements, withscores);
    }
}

/// The elements a range selects, in reply order.
fn select(z: &ZSetValue, spec: &Spec, reverse: bool, offset: i64, limit: i64) -> Vec<(Vec<u8>, f64)> {
    let len = z.len();
    match spec {
        Spec::Rank(start, end) => {
            let mut out = Vec::new();
            let l = len as i64;
            let mut start = if *start < 0 { start.saturating_add(l) } else { *start };
            let mut end = if *end < 0 { end.saturating_add(l) } else { *end };
            start = start.max(0);
            if start > end || start >= l {
                return out;
            }
            end = end.min(l - 1);
            let from = if reverse { l - 1 - start } else { start };
            let n = (end - start + 1) as usize;
            out.reserve(n);
            z.walk(from as usize, reverse, &mut |m, s| {
                out.push((m.to_vec(), s));
                out.len() < n
            });
            out
        }
        Spec::Score(r) => {
            if offset > 0 && offset as u64 >= len as u64 {
                return Vec::new();
            }
            let first = if reverse { z.last_in_scores(r) } else { z.first_in_scores(r) };
            walk_in_range(z, first, reverse, offset, limit, &mut |_, s| {
                if reverse {
                    r.gte_min(s)
                } else {
                    r.lte_max(s)
                }
            })
        }
        Spec::Lex(r) => {
            let first = if reverse { z.last_in_lex(r) } else { z.first_in_lex(r) };
            walk_in_range(z, first, reverse, offset, limit, &mut |m, _| {
                if reverse {
                    r.gte_min(m)
                } else {
                    r.lte_max(m)
                }
            })
        }
    }
}

/// From rank `first`, skips `offset` elements unchecked (a negative offset skips
/// everything, as Redis's `while (offset--)` does), then takes up to `limit`
/// (negative: no limit) while `within` holds.
fn walk_in_range(
    z: &ZSetValue,
    first: Option<usize>,
    reverse: bool,
    offset: i64,
    limit: i64,
    within: &mut dyn FnMut(&[u8], f64) -> bool,
) -> Vec<(Vec<u8>, f64)> {
    let mut out = Vec::new();
    let Some(first) = first else { return out };
    if offset < 0 || limit == 0 {
        return out;
    }
    let from = if reverse {
        match first.checked_sub(offset as usize) {
            Some(f) => f,
            None => return out,
        }
    } else {
        match first.checked_add(offset as usize) {
            Some(f) if f < z.len() => f,
            _ => return out,
        }
    };
    let max = if limit < 0 { usize::MAX } else { limit as usize };
    z.walk(from, reverse, &mut |m, s| {
        if !within(m, s) {
            return false;
        }
        out.push((m.to_vec(), s));
        out.len() < max
    });
    out
}

/// ZRANGESTORE's result: a new set at `dst` (built as Redis builds it, one `zsetAdd`
/// at a time, so it converts at the same point), or `dst` deleted when empty.
fn store_range(ctx: &mut Ctx, dst: &[u8], elements: Vec<(Vec<u8>, f64)>) {
    let now = ctx.now_ms;
    if elements.is_empty() {
        let existed = ctx.keys.db(dst).remove(dst, now).is_some();
        if existed {
            ctx.touch(dst);
        }
        return ctx.out.integer(0);
    }
    let lim = limits(ctx.cfg);
    let mut z = ZSetValue::new();
    for (m, s) in &elements {
        // Scores come from a sorted set: never NaN.
        let _ = z.add(m, *s, AddFlags::default(), &lim);
    }
    z.shrink_to_fit();
    let n = z.len();
    ctx.keys.db(dst).set(dst, Value::ZSet(Box::new(z)), 0);
    ctx.touch(dst);
    ctx.out.integer(n as i64);
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;

    fn setup(h: &mut Harness) {
        h.cmd("ZADD z 1 a 2 b 3 c 4 d 5 e");
    }

    #[test]
    fn by_rank() {
        let mut h = Harness::new();
        setup(&mut h);
        assert_eq!(h.cmd("ZRANGE z 0 1"), "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
        assert_eq!(h.cmd("ZRANGE z -2 -1 WITHSCORES"), "*4\r\n$1\r\nd\r\n$1\r\n4\r\n$1\r\ne\r\n$1\r\n5\r\n");
        assert_eq!(h.cmd("ZRANGE z 0 1 REV"), "*2\r\n$1\r\ne\r\n$1\r\nd\r\n");
        assert_eq!(h.cmd("ZREVRANGE z 1 2"), "*2\r\n$1\r\nd\r\n$1\r\nc\r\n");
        assert_eq!(h.cmd("ZRANGE z 3 1"), "*0\r\n");
        assert_eq!(h.cmd("ZRANGE z 5 10"), "*0\r\n");
        assert_eq!(h.cmd("ZRANGE z -100 0"), "*1\r\n$1\r\na\r\n");
        assert_eq!(h.cmd("ZRANGE nokey 0 -1"), "*0\r\n");
        assert_eq!(h.cmd("ZRANGE z a 1"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(
            h.cmd("ZRANGE z 0 1 LIMIT 0 1"),
            "-ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX\r\n"
        );
        assert_eq!(h.cmd("ZREVRANGE z 0 1 REV"), "-ERR syntax error\r\n");
        let mut h = Harness::resp3();
        setup(&mut h);
        assert_eq!(h.cmd("ZRANGE z 0 0 WITHSCORES"), "*1\r\n*2\r\n$1\r\na\r\n,1\r\n");
    }

    #[test]
    fn by_score_with_limits() {
        let mut h = Harness::new();
        setup(&mut h);
        assert_eq!(h.cmd("ZRANGEBYSCORE z (1 3"), "*2\r\n$1\r\nb\r\n$1\r\nc\r\n");
        assert_eq!(h.cmd("ZRANGE z 3 (1 BYSCORE REV"), "*2\r\n$1\r\nc\r\n$1\r\nb\r\n");
        assert_eq!(h.cmd("ZREVRANGEBYSCORE z +inf -inf LIMIT 1 2"), "*2\r\n$1\r\nd\r\n$1\r\nc\r\n");
        assert_eq!(h.cmd("ZRANGEBYSCORE z -inf +inf LIMIT 4 -1"), "*1\r\n$1\r\ne\r\n");
        assert_eq!(h.cmd("ZRANGEBYSCORE z -inf +inf LIMIT 5 1"), "*0\r\n");
        assert_eq!(h.cmd("ZRANGEBYSCORE z -inf +inf LIMIT -1 1"), "*0\r\n");
        assert_eq!(h.cmd("ZRANGEBYSCORE z -inf +inf LIMIT 0 0"), "*0\r\n");
        assert_eq!(h.cmd("ZRANGEBYSCORE z 2 2 WITHSCORES"), "*2\r\n$1\r\nb\r\n$1\r\n2\r\n");
        assert_eq!(h.cmd("ZRANGEBYSCORE z (2 (2"), "*0\r\n");
        assert_eq!(h.cmd("ZRANGEBYSCORE z 1 x"), "-ERR min or max is not a float\r\n");
        assert_eq!(h.cmd("ZRANGEBYSCORE z 1 2 LIMIT 0"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("ZRANGEBYSCORE z 1 2 LIMIT x 1"), "-ERR value is not an integer or out of range\r\n");
    }

    #[test]
    fn by_lex() {
        let mut h = Harness::new();
        h.cmd("ZADD z 0 a 0 b 0 c 0 d");
        assert_eq!(h.cmd("ZRANGEBYLEX z [b (d"), "*2\r\n$1\r\nb\r\n$1\r\nc\r\n");
        assert_eq!(h.cmd("ZREVRANGEBYLEX z + - LIMIT 1 2"), "*2\r\n$1\r\nc\r\n$1\r\nb\r\n");
        assert_eq!(h.cmd("ZRANGE z - + BYLEX LIMIT 3 5"), "*1\r\n$1\r\nd\r\n");
        assert_eq!(
            h.cmd("ZRANGE z - + BYLEX WITHSCORES"),
            "-ERR syntax error, WITHSCORES not supported in combination with BYLEX\r\n"
        );
        assert_eq!(h.cmd("ZRANGEBYLEX z b d"), "-ERR min or max not valid string range item\r\n");
    }

    #[test]
    fn rangestore() {
        let mut h = Harness::new();
        setup(&mut h);
        assert_eq!(h.cmd("ZRANGESTORE d z 1 -1"), ":4\r\n");
        assert_eq!(h.cmd("ZRANGE d 0 -1"), "*4\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n");
        assert_eq!(h.encoding("d"), "listpack");
        assert_eq!(h.cmd("ZRANGESTORE d z 10 20"), ":0\r\n");
        assert_eq!(h.encoding("d"), "none");
        assert_eq!(h.cmd("ZRANGESTORE d z 1 2 WITHSCORES"), "-ERR syntax error\r\n");
        h.cfg.zset_max_listpack_entries = 2;
        assert_eq!(h.cmd("ZRANGESTORE d z (1 +inf BYSCORE LIMIT 0 3"), ":3\r\n");
        assert_eq!(h.encoding("d"), "skiplist");
        h.cmd("SET s x");
        assert_eq!(
            h.cmd("ZRANGESTORE d s 0 1"),
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        );
        assert_eq!(h.cmd("ZRANGESTORE s nokey 0 1"), ":0\r\n");
        assert_eq!(h.encoding("s"), "none");
    }
}
