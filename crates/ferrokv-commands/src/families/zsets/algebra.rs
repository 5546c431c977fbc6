//! ZUNION, ZINTER, ZDIFF, ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE and ZINTERCARD (Redis's
//! `zunionInterDiffGenericCommand`).
//!
//! Inputs may be sorted sets or plain sets (whose members score 1). As in Redis, the
//! keys are looked up and type-checked before the options are parsed, union and
//! intersection visit the inputs from the smallest to the largest (a stable order, so
//! floating-point sums come out the same), a weighted score that is NaN (`inf * 0`)
//! counts as 0 and so does a SUM that is NaN (`inf + -inf`). The result is ordered by
//! score then member; a stored result is `listpack` when small enough.

use super::parse::parse_score;
use super::{is_opt, limits, numkeys_keys, reply_elements};
use crate::ctx::Ctx;
use crate::util::{parse_i64, ERR_NOT_INT, ERR_SYNTAX, ERR_WRONGTYPE};
use ferrokv_resp::Args;
use ferrokv_store::zset::ZSetValue;
use ferrokv_store::Value;
use std::cmp::Ordering;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    /// Redis's `zunionInterAggregate`.
    fn apply(self, target: &mut f64, val: f64) {
        match self {
            Aggregate::Sum => {
                *target += val;
                if target.is_nan() {
                    *target = 0.0;
                }
            }
            Aggregate::Min => {
                if val < *target {
                    *target = val;
                }
            }
            Aggregate::Max => {
                if val > *target {
                    *target = val;
                }
            }
        }
    }
}

/// One input key.
struct Source<'a> {
    key: &'a [u8],
    weight: f64,
    /// Elements (0 for a missing key).
    len: usize,
}

/// What the command produces.
enum Output<'a> {
    Reply,
    Store(&'a [u8]),
    Cardinality,
}

/// ZUNION numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]
pub fn zunion(ctx: &mut Ctx, args: &Args) {
    generic(ctx, args, "zunion", Output::Reply, Op::Union);
}

/// ZINTER numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]
pub fn zinter(ctx: &mut Ctx, args: &Args) {
    generic(ctx, args, "zinter", Output::Reply, Op::Inter);
}

/// ZDIFF numkeys key [key ...] [WITHSCORES]
pub fn zdiff(ctx: &mut Ctx, args: &Args) {
    generic(ctx, args, "zdiff", Output::Reply, Op::Diff);
}

/// ZINTERCARD numkeys key [key ...] [LIMIT limit]
pub fn zintercard(ctx: &mut Ctx, args: &Args) {
    generic(ctx, args, "zintercard", Output::Cardinality, Op::Inter);
}

/// ZUNIONSTORE destination numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX]
pub fn zunionstore(ctx: &mut Ctx, args: &Args) {
    generic(ctx, args, "zunionstore", Output::Store(args.get(1)), Op::Union);
}

/// ZINTERSTORE destination numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX]
pub fn zinterstore(ctx: &mut Ctx, args: &Args) {
    generic(ctx, args, "zinterstore", Output::Store(args.get(1)), Op::Inter);
}

/// ZDIFFSTORE destination numkeys key [key ...]
pub fn zdiffstore(ctx: &mut Ctx, args: &Args) {
    generic(ctx, args, "zdiffstore", Output::Store(args.get(1)), Op::Diff);
}

/// Key indexes of ZUNION, ZINTER, ZDIFF and ZINTERCARD.
pub fn sources_keys(args: &Args) -> Vec<usize> {
    numkeys_keys(args, 1, &[])
}

/// Key indexes of the STORE forms: the destination, then the inputs.
pub fn store_keys(args: &Args) -> Vec<usize> {
    numkeys_keys(args, 2, &[1])
}

/// The number of elements of the sorted set or set at `key` (0 when missing);
/// `Err(())` after replying WRONGTYPE for another type.
fn source_len(ctx: &mut Ctx, key: &[u8]) -> Result<usize, ()> {
    match ctx.keys.db(key).get(key, ctx.now_ms).map(|e| &e.value) {
        None => Ok(0),
        Some(Value::ZSet(z)) => Ok(z.len()),
        Some(Value::Set(s)) => Ok(s.len()),
        Some(_) => {
            ctx.out.error(ERR_WRONGTYPE);
            Err(())
        }
    }
}

/// Calls `f` with every member of the input at `key` and its score (1 for a set).
fn for_each(ctx: &mut Ctx, key: &[u8], f: &mut dyn FnMut(&[u8], f64)) {
    match ctx.keys.db(key).get(key, ctx.now_ms).map(|e| &e.value) {
        Some(Value::ZSet(z)) => z.for_each(f),
        Some(Value::Set(s)) => {
            let mut buf = [0u8; 20];
            for m in s.iter() {
                f(m.bytes(&mut buf), 1.0);
            }
        }
        _ => {}
    }
}

/// Keeps the elements of `acc` found in the input at `key`, combined with `keep`,
/// which returns false to drop one.
fn retain_found(
    ctx: &mut Ctx,
    key: &[u8],
    acc: &mut Vec<(Vec<u8>, f64)>,
    keep: &mut dyn FnMut(&mut f64, Option<f64>) -> bool,
) {
    let value = ctx.keys.db(key).get(key, ctx.now_ms).map(|e| &e.value);
    let score = |m: &[u8]| match value {
        Some(Value::ZSet(z)) => z.score(m),
        Some(Value::Set(s)) => s.contains(m).then_some(1.0),
        _ => None,
    };
    acc.retain_mut(|(m, s)| keep(s, score(m)));
}

fn generic(ctx: &mut Ctx, args: &Args, name: &str, output: Output, op: Op) {
    let numkeys_idx = if matches!(output, Output::Store(_)) { 2 } else { 1 };
    let Some(setnum) = parse_i64(args.get(numkeys_idx)) else { return ctx.out.error(ERR_NOT_INT) };
    if setnum < 1 {
        return ctx.out.error(&format!("ERR at least 1 input key is needed for '{name}' command"));
    }
    if setnum as u64 > (args.len() - numkeys_idx - 1) as u64 {
        return ctx.out.error(ERR_SYNTAX);
    }
    let setnum = setnum as usize;
    let mut sources = Vec::with_capacity(setnum);
    for i in 0..setnum {
        let key = args.get(numkeys_idx + 1 + i);
        let Ok(len) = source_len(ctx, key) else { return };
        sources.push(Source { key, weight: 1.0, len });
    }

    let (mut aggregate, mut withscores, mut limit) = (Aggregate::Sum, false, 0u64);
    let store = matches!(output, Output::Store(_));
    let card = matches!(output, Output::Cardinality);
    let mut j = numkeys_idx + 1 + setnum;
    while j < args.len() {
        let remaining = args.len() - j;
        let a = args.get(j);
        if op != Op::Diff && !card && remaining > setnum && is_opt(a, "weights") {
            for (i, src) in sources.iter_mut().enumerate() {
                match parse_score(args.get(j + 1 + i)) {
                    Some(w) => src.weight = w,
                    None => return ctx.out.error("ERR weight value is not a float"),
                }
            }
            j += 1 + setnum;
        } else if op != Op::Diff && !card && remaining >= 2 && is_opt(a, "aggregate") {
            let v = args.get(j + 1);
            aggregate = if is_opt(v, "sum") {
                Aggregate::Sum
            } else if is_opt(v, "min") {
                Aggregate::Min
            } else if is_opt(v, "max") {
                Aggregate::Max
            } else {
                return ctx.out.error(ERR_SYNTAX);
            };
            j += 2;
        } else if !store && !card && is_opt(a, "withscores") {
            withscores = true;
            j += 1;
        } else if card && remaining >= 2 && is_opt(a, "limit") {
            match parse_i64(args.get(j + 1)) {
                Some(n) if n >= 0 => limit = n as u64,
                _ => return ctx.out.error("ERR LIMIT can't be negative"),
            }
            j += 2;
        } else {
            return ctx.out.error(ERR_SYNTAX);
        }
    }

    if op != Op::Diff {
        sources.sort_by_key(|s| s.len);
    }
    let mut result = match op {
        Op::Union => union(ctx, &sources, aggregate),
        Op::Inter => inter(ctx, &sources, aggregate),
        Op::Diff => diff(ctx, &sources),
    };

    match output {
        Output::Cardinality => {
            let n = result.len() as u64;
            ctx.out.integer(if limit > 0 { n.min(limit) } else { n } as i64);
        }
        Output::Reply => {
            sort(&mut result);
            reply_elements(ctx.out, &result, withscores);
        }
        Output::Store(dst) => {
            let now = ctx.now_ms;
            if result.is_empty() {
                if ctx.keys.db(dst).remove(dst, now).is_some() {
                    ctx.touch(dst);
                }
                return ctx.out.integer(0);
            }
            sort(&mut result);
            let n = result.len();
            let z = ZSetValue::from_sorted(result, &limits(ctx.cfg));
            ctx.keys.db(dst).set(dst, Value::ZSet(Box::new(z)), 0);
            ctx.touch(dst);
            ctx.out.integer(n as i64);
        }
    }
}

/// By score, then member, as a skiplist orders them.
fn sort(elements: &mut [(Vec<u8>, f64)]) {
    elements.sort_by(|(am, a), (bm, b)| match a.partial_cmp(b) {
        Some(Ordering::Equal) | None => am.cmp(bm),
        Some(o) => o,
    });
}

/// A weighted score, NaN counted as 0.
fn weighted(weight: f64, score: f64) -> f64 {
    let v = weight * score;
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

fn union(ctx: &mut Ctx, sources: &[Source], aggregate: Aggregate) -> Vec<(Vec<u8>, f64)> {
    let mut acc: hashbrown::HashMap<Vec<u8>, f64, foldhash::fast::RandomState> = Default::default();
    for src in sources.iter().filter(|s| s.len > 0) {
        for_each(ctx, src.key, &mut |m, s| {
            let score = weighted(src.weight, s);
            match acc.get_mut(m) {
                Some(t) => aggregate.apply(t, score),
                None => {
                    acc.insert(m.to_vec(), score);
                }
            }
        });
    }
    acc.into_iter().collect()
}

fn inter(ctx: &mut Ctx, sources: &[Source], aggregate: Aggregate) -> Vec<(Vec<u8>, f64)> {
    let Some(first) = sources.first().filter(|s| s.len > 0) else { return Vec::new() };
    let mut acc = Vec::with_capacity(first.len);
    for_each(ctx, first.key, &mut |m, s| acc.push((m.to_vec(), weighted(first.weight, s))));
    for src in &sources[1..] {
        retain_found(ctx, src.key, &mut acc, &mut |t, found| match found {
            Some(s) => {
                aggregate.apply(t, s * src.weight);
                true
            }
            None => false,
        });
        if acc.is_empty() {
            break;
        }
    }
    acc
}

fn diff(ctx: &mut Ctx, sources: &[Source]) -> Vec<(Vec<u8>, f64)> {
    let Some(first) = sources.first().filter(|s| s.len > 0) else { return Vec::new() };
    let mut acc = Vec::with_capacity(first.len);
    for_each(ctx, first.key, &mut |m, s| acc.push((m.to_vec(), s)));
    for src in sources[1..].iter().filter(|s| s.len > 0) {
        retain_found(ctx, src.key, &mut acc, &mut |_, found| found.is_none());
        if acc.is_empty() {
            break;
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;

    #[test]
    fn union_with_weights_and_aggregates() {
        let mut h = Harness::new();
        h.cmd("ZADD a 1 x 2 y");
        h.cmd("ZADD b 10 y 20 z");
        assert_eq!(h.cmd("ZUNION 2 a b"), "*3\r\n$1\r\nx\r\n$1\r\ny\r\n$1\r\nz\r\n");
        assert_eq!(
            h.cmd("ZUNION 2 a b WITHSCORES"),
            "*6\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\ny\r\n$2\r\n12\r\n$1\r\nz\r\n$2\r\n20\r\n"
        );
        assert_eq!(
            h.cmd("ZUNION 2 a b WEIGHTS 2 0.5 AGGREGATE MAX WITHSCORES"),
            "*6\r\n$1\r\nx\r\n$1\r\n2\r\n$1\r\ny\r\n$1\r\n5\r\n$1\r\nz\r\n$2\r\n10\r\n"
        );
        assert_eq!(h.cmd("ZUNIONSTORE d 2 a b AGGREGATE MIN"), ":3\r\n");
        assert_eq!(h.cmd("ZSCORE d y"), "$1\r\n2\r\n");
        assert_eq!(h.encoding("d"), "listpack");
        assert_eq!(h.cmd("ZUNION 2 a b WEIGHTS 1"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("ZUNION 2 a b WEIGHTS 1 x"), "-ERR weight value is not a float\r\n");
        assert_eq!(h.cmd("ZUNION 2 a b AGGREGATE avg"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("ZUNION 0 a"), "-ERR at least 1 input key is needed for 'zunion' command\r\n");
        assert_eq!(h.cmd("ZUNIONSTORE d 0 a"), "-ERR at least 1 input key is needed for 'zunionstore' command\r\n");
        assert_eq!(h.cmd("ZUNION 3 a b"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("ZUNION x a"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("ZUNIONSTORE d 1 a WITHSCORES"), "-ERR syntax error\r\n");
        h.cmd("SET s v");
        assert_eq!(
            h.cmd("ZUNION 2 a s BADOPT"),
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        );
    }

    #[test]
    fn infinities_and_nan_rules() {
        let mut h = Harness::new();
        h.cmd("ZADD a inf x");
        h.cmd("ZADD b -inf x");
        assert_eq!(h.cmd("ZUNION 2 a b WITHSCORES"), "*2\r\n$1\r\nx\r\n$1\r\n0\r\n");
        assert_eq!(h.cmd("ZUNION 1 a WEIGHTS 0 WITHSCORES"), "*2\r\n$1\r\nx\r\n$1\r\n0\r\n");
        assert_eq!(h.cmd("ZINTER 2 a b WITHSCORES"), "*2\r\n$1\r\nx\r\n$1\r\n0\r\n");
        assert_eq!(h.cmd("ZINTER 2 a b AGGREGATE MIN WITHSCORES"), "*2\r\n$1\r\nx\r\n$4\r\n-inf\r\n");
        // inf * 0 inside an intersection is NaN, which MAX ignores.
        assert_eq!(h.cmd("ZINTER 2 a b WEIGHTS 1 0 AGGREGATE MAX WITHSCORES"), "*2\r\n$1\r\nx\r\n$3\r\ninf\r\n");
    }

    #[test]
    fn inter_diff_and_sets() {
        let mut h = Harness::new();
        h.cmd("ZADD a 1 x 2 y 3 z");
        h.cmd("SADD s y z w");
        assert_eq!(h.cmd("ZINTER 2 a s WITHSCORES"), "*4\r\n$1\r\ny\r\n$1\r\n3\r\n$1\r\nz\r\n$1\r\n4\r\n");
        assert_eq!(h.cmd("ZDIFF 2 a s WITHSCORES"), "*2\r\n$1\r\nx\r\n$1\r\n1\r\n");
        assert_eq!(h.cmd("ZDIFF 2 s a"), "*1\r\n$1\r\nw\r\n");
        assert_eq!(h.cmd("ZDIFF 2 a a"), "*0\r\n");
        assert_eq!(h.cmd("ZDIFF 1 a WEIGHTS 1"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("ZINTERCARD 2 a s"), ":2\r\n");
        assert_eq!(h.cmd("ZINTERCARD 2 a s LIMIT 1"), ":1\r\n");
        assert_eq!(h.cmd("ZINTERCARD 2 a s LIMIT -1"), "-ERR LIMIT can't be negative\r\n");
        assert_eq!(h.cmd("ZINTERCARD 2 a missing"), ":0\r\n");
        assert_eq!(h.cmd("ZINTERSTORE d 2 a missing"), ":0\r\n");
        h.cmd("ZADD d 1 q");
        assert_eq!(h.cmd("ZDIFFSTORE d 2 a a"), ":0\r\n");
        assert_eq!(h.encoding("d"), "none");
        let mut h = Harness::resp3();
        h.cmd("ZADD a 1 x");
        assert_eq!(h.cmd("ZUNION 1 a WITHSCORES"), "*1\r\n*2\r\n$1\r\nx\r\n,1\r\n");
    }

    #[test]
    fn stored_encoding_follows_size() {
        let mut h = Harness::new();
        h.cfg.zset_max_listpack_entries = 2;
        h.cmd("ZADD a 1 x 2 y 3 z");
        assert_eq!(h.encoding("a"), "skiplist");
        assert_eq!(h.cmd("ZUNIONSTORE d 1 a"), ":3\r\n");
        assert_eq!(h.encoding("d"), "skiplist");
        h.cmd("ZREM a z");
        assert_eq!(h.cmd("ZUNIONSTORE d 1 a"), ":2\r\n");
        assert_eq!(h.encoding("d"), "listpack");
        assert_eq!(h.encoding("a"), "skiplist");
    }
}
