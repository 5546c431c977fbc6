//! ZADD, ZINCRBY, ZREM, ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX.

use super::parse::{lex_range, parse_score, score_range, ERR_LEX_RANGE, ERR_SCORE_RANGE};
use super::{drop_if_empty, is_opt, limits, zset_at};
use crate::ctx::Ctx;
use crate::util::{parse_i64, ERR_NOT_FLOAT, ERR_NOT_INT, ERR_SYNTAX};
use ferrokv_resp::Args;
use ferrokv_store::zset::{AddFlags, AddOutcome, ZSetValue};
use ferrokv_store::Value;

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
pub fn zadd(ctx: &mut Ctx, args: &Args) {
    add_generic(ctx, args, AddFlags::default());
}

/// ZINCRBY key increment member
pub fn zincrby(ctx: &mut Ctx, args: &Args) {
    add_generic(ctx, args, AddFlags { incr: true, ..AddFlags::default() });
}

/// Redis's `zaddGenericCommand`: options (ZINCRBY goes through them too, so
/// `ZINCRBY k nx m` is a syntax error), checks, all scores parsed before anything
/// changes, then one `zsetAdd` per pair.
fn add_generic(ctx: &mut Ctx, args: &Args, mut flags: AddFlags) {
    let mut ch = false;
    let mut i = 2;
    while i < args.len() {
        let a = args.get(i);
        if is_opt(a, "nx") {
            flags.nx = true;
        } else if is_opt(a, "xx") {
            flags.xx = true;
        } else if is_opt(a, "ch") {
            ch = true;
        } else if is_opt(a, "incr") {
            flags.incr = true;
        } else if is_opt(a, "gt") {
            flags.gt = true;
        } else if is_opt(a, "lt") {
            flags.lt = true;
        } else {
            break;
        }
        i += 1;
    }
    let pairs = args.len() - i;
    if pairs == 0 || pairs % 2 == 1 {
        return ctx.out.error(ERR_SYNTAX);
    }
    if flags.nx && flags.xx {
        return ctx.out.error("ERR XX and NX options at the same time are not compatible");
    }
    if (flags.nx && (flags.gt || flags.lt)) || (flags.gt && flags.lt) {
        return ctx.out.error("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if flags.incr && pairs > 2 {
        return ctx.out.error("ERR INCR option supports a single increment-element pair");
    }
    let mut scores = Vec::with_capacity(pairs / 2);
    for j in (i..args.len()).step_by(2) {
        match parse_score(args.get(j)) {
            Some(s) => scores.push(s),
            None => return ctx.out.error(ERR_NOT_FLOAT),
        }
    }

    let key = args.get(1);
    let now = ctx.now_ms;
    let lim = limits(ctx.cfg);
    let db = ctx.keys.db(key);
    let exists = match zset_at(db, key, now, ctx.out) {
        Err(()) => return,
        Ok(z) => z.is_some(),
    };
    let (mut added, mut updated, mut processed) = (0u64, 0u64, 0u64);
    let mut last = 0.0;
    let mut nan = false;
    if exists || !flags.xx {
        if !exists {
            db.set(key, Value::ZSet(Box::default()), 0);
        }
        let Some(Value::ZSet(z)) = db.get(key, now).map(|e| &mut e.value) else { return };
        for (n, j) in (i..args.len()).step_by(2).enumerate() {
            match z.add(args.get(j + 1), scores[n], flags, &lim) {
                Err(_) => {
                    nan = true;
                    break;
                }
                Ok(outcome) => match outcome {
                    AddOutcome::Added(s) => (added, processed, last) = (added + 1, processed + 1, s),
                    AddOutcome::Updated(s) => (updated, processed, last) = (updated + 1, processed + 1, s),
                    AddOutcome::Unchanged(s) => (processed, last) = (processed + 1, s),
                    AddOutcome::Skipped => {}
                },
            }
        }
        z.shrink_to_fit();
        drop_if_empty(db, key, now);
    }
    if added + updated > 0 {
        ctx.touch(key);
        ctx.dirty += added + updated - 1;
    }
    if nan {
        ctx.out.error("ERR resulting score is not a number (NaN)");
    } else if flags.incr {
        if processed > 0 {
            ctx.out.double(last);
        } else {
            ctx.out.null();
        }
    } else {
        ctx.out.integer((if ch { added + updated } else { added }) as i64);
    }
}

/// ZREM key member [member ...]
pub fn zrem(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now_ms;
    let db = ctx.keys.db(key);
    let z = match zset_at(db, key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => return ctx.out.integer(0),
        Ok(Some(z)) => z,
    };
    let mut deleted = 0u64;
    for m in args.iter().skip(2) {
        if z.remove(m) {
            deleted += 1;
        }
        if z.is_empty() {
            break;
        }
    }
    drop_if_empty(db, key, now);
    if deleted > 0 {
        ctx.touch(key);
        ctx.dirty += deleted - 1;
    }
    ctx.out.integer(deleted as i64);
}

/// Which elements a ZREMRANGEBY* command removes.
enum Span {
    Rank(i64, i64),
    Score(ferrokv_store::zset::ScoreRange),
    Lex(ferrokv_store::zset::LexRange),
}

/// ZREMRANGEBYRANK key start stop
pub fn zremrangebyrank(ctx: &mut Ctx, args: &Args) {
    let (Some(start), Some(end)) = (parse_i64(args.get(2)), parse_i64(args.get(3))) else {
        return ctx.out.error(ERR_NOT_INT);
    };
    remove_span(ctx, args, Span::Rank(start, end));
}

/// ZREMRANGEBYSCORE key min max
pub fn zremrangebyscore(ctx: &mut Ctx, args: &Args) {
    match score_range(args.get(2), args.get(3)) {
        Some(r) => remove_span(ctx, args, Span::Score(r)),
        None => ctx.out.error(ERR_SCORE_RANGE),
    }
}

/// ZREMRANGEBYLEX key min max
pub fn zremrangebylex(ctx: &mut Ctx, args: &Args) {
    match lex_range(args.get(2), args.get(3)) {
        Some(r) => remove_span(ctx, args, Span::Lex(r)),
        None => ctx.out.error(ERR_LEX_RANGE),
    }
}

/// The ranks `(start, count)` a span covers. Score and lex spans run from the first
/// element in range while elements stay within the maximum, as Redis deletes them.
fn span_ranks(z: &ZSetValue, span: &Span) -> (usize, usize) {
    let run = |start: Option<usize>, within: &mut dyn FnMut(&[u8], f64) -> bool| {
        let Some(start) = start else { return (0, 0) };
        let mut n = 0;
        z.walk(start, false, &mut |m, s| {
            let ok = within(m, s);
            n += ok as usize;
            ok
        });
        (start, n)
    };
    match span {
        Span::Rank(start, end) => {
            let len = z.len() as i64;
            let mut start = if *start < 0 { start.saturating_add(len) } else { *start };
            let mut end = if *end < 0 { end.saturating_add(len) } else { *end };
            start = start.max(0);
            if start > end || start >= len {
                return (0, 0);
            }
            end = end.min(len - 1);
            (start as usize, (end - start + 1) as usize)
        }
        Span::Score(r) => run(z.first_in_scores(r), &mut |_, s| r.lte_max(s)),
        Span::Lex(r) => run(z.first_in_lex(r), &mut |m, _| r.lte_max(m)),
    }
}

fn remove_span(ctx: &mut Ctx, args: &Args, span: Span) {
    let key = args.get(1);
    let now = ctx.now_ms;
    let db = ctx.keys.db(key);
    let z = match zset_at(db, key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => return ctx.out.integer(0),
        Ok(Some(z)) => z,
    };
    let (start, count) = span_ranks(z, &span);
    z.remove_ranks(start, count);
    drop_if_empty(db, key, now);
    if count > 0 {
        ctx.touch(key);
        ctx.dirty += count as u64 - 1;
    }
    ctx.out.integer(count as i64);
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;

    #[test]
    fn zadd_options_and_errors() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("ZADD z 1 a 2 b"), ":2\r\n");
        assert_eq!(h.dirty, 2);
        assert_eq!(h.cmd("ZADD z CH 1 a 3 b 4 c"), ":2\r\n");
        assert_eq!(h.cmd("ZADD z XX 9 new"), ":0\r\n");
        assert_eq!(h.cmd("ZADD z NX 9 a"), ":0\r\n");
        assert_eq!(h.cmd("ZADD z GT CH 0 a 10 b"), ":1\r\n");
        assert_eq!(h.cmd("ZADD z LT CH 0 a 100 b"), ":1\r\n");
        assert_eq!(h.cmd("ZADD z INCR 5 a"), "$1\r\n5\r\n");
        assert_eq!(h.cmd("ZADD z INCR NX 5 a"), "$-1\r\n");
        assert_eq!(h.cmd("ZADD z XX NX 1 a"), "-ERR XX and NX options at the same time are not compatible\r\n");
        assert_eq!(h.cmd("ZADD z GT LT 1 a"), "-ERR GT, LT, and/or NX options at the same time are not compatible\r\n");
        assert_eq!(h.cmd("ZADD z NX GT 1 a"), "-ERR GT, LT, and/or NX options at the same time are not compatible\r\n");
        assert_eq!(h.cmd("ZADD z INCR 1 a 2 b"), "-ERR INCR option supports a single increment-element pair\r\n");
        assert_eq!(h.cmd("ZADD z 1 a 2"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("ZADD z NX CH"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("ZADD z 1 a x b"), "-ERR value is not a valid float\r\n");
        assert_eq!(h.cmd("ZADD z nan a"), "-ERR value is not a valid float\r\n");
        assert_eq!(h.cmd("ZADD z inf a"), ":0\r\n");
        assert_eq!(h.cmd("ZINCRBY z -inf a"), "-ERR resulting score is not a number (NaN)\r\n");
        assert_eq!(h.cmd("ZINCRBY z 2.5 fresh"), "$3\r\n2.5\r\n");
        assert_eq!(h.cmd("ZINCRBY z nx fresh"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("ZADD missing XX 1 a"), ":0\r\n");
        assert_eq!(h.encoding("missing"), "none");
        let mut h = Harness::resp3();
        assert_eq!(h.cmd("ZINCRBY z 1.5 a"), ",1.5\r\n");
        assert_eq!(h.cmd("ZADD z INCR XX 1 b"), "_\r\n");
    }

    #[test]
    fn zadd_converts_by_thresholds() {
        let mut h = Harness::new();
        h.cfg.zset_max_listpack_entries = 2;
        h.cmd("ZADD z 1 a 2 b");
        assert_eq!(h.encoding("z"), "listpack");
        h.cmd("ZADD z 3 c");
        assert_eq!(h.encoding("z"), "skiplist");
        let long = "x".repeat(65);
        h.cmd(&format!("ZADD y 1 {long}"));
        assert_eq!(h.encoding("y"), "skiplist");
        h.cfg.zset_max_listpack_entries = 0;
        h.cmd("ZADD w 1 a");
        assert_eq!(h.encoding("w"), "skiplist");
    }

    #[test]
    fn zrem_and_ranges() {
        let mut h = Harness::new();
        h.cmd("ZADD z 1 a 2 b 3 c 4 d 5 e");
        assert_eq!(h.cmd("ZREM z a x b"), ":2\r\n");
        assert_eq!(h.cmd("ZREMRANGEBYSCORE z (3 +inf"), ":2\r\n");
        assert_eq!(h.cmd("ZREMRANGEBYRANK z 0 0"), ":1\r\n");
        assert_eq!(h.cmd("ZCARD z"), ":0\r\n");
        assert_eq!(h.encoding("z"), "none");
        h.cmd("ZADD z 0 a 0 b 0 c 0 d");
        assert_eq!(h.cmd("ZREMRANGEBYLEX z (a [c"), ":2\r\n");
        assert_eq!(h.cmd("ZREMRANGEBYLEX z a c"), "-ERR min or max not valid string range item\r\n");
        assert_eq!(h.cmd("ZREMRANGEBYSCORE z a c"), "-ERR min or max is not a float\r\n");
        assert_eq!(h.cmd("ZREMRANGEBYRANK z a 1"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("ZREMRANGEBYRANK z -100 -3"), ":0\r\n");
        assert_eq!(h.cmd("ZREMRANGEBYRANK z -1 100"), ":1\r\n");
        assert_eq!(h.cmd("ZREMRANGEBYRANK nokey 0 -1"), ":0\r\n");
    }
}
