//! Set algebra: SMEMBERS, SINTER, SINTERCARD, SINTERSTORE, SUNION, SUNIONSTORE,
//! SDIFF, SDIFFSTORE.
//!
//! Results are built as Redis builds them, because that decides both their order and
//! the encoding a STORE form leaves: an intersection walks the smallest set (the first
//! of the smallest, as Redis's stable sort leaves them) and keeps the members every
//! other set has; a union adds every member into a set that starts as an intset; a
//! difference uses one of Redis's two algorithms, picked by the same estimate of work.
//! The second adds all of the first set and then removes, so its result may be a
//! `hashtable` set of integers where the first algorithm would give an `intset`.

use super::{is_opt, keys_from, limits, lookup, peek, reply_member};
use crate::util::{parse_i64, ERR_SYNTAX};
use crate::Ctx;
use ferrokv_resp::{Args, ReplyBuf};
use ferrokv_store::set::{OwnedMember, SetLimits, SetValue};
use ferrokv_store::Value;

/// Where a result goes.
#[derive(Clone, Copy)]
enum Output<'a> {
    /// Replied as a set.
    Reply,
    /// Stored at this key; the reply is its size.
    Store(&'a [u8]),
    /// Only counted, up to a limit (0: none).
    Count(u64),
}

/// SMEMBERS key
pub fn smembers(ctx: &mut Ctx, args: &Args) {
    intersection(ctx, &[args.get(1)], Output::Reply);
}

/// SINTER key [key ...]
pub fn sinter(ctx: &mut Ctx, args: &Args) {
    intersection(ctx, &keys_from(args, 1), Output::Reply);
}

/// SINTERSTORE destination key [key ...]
pub fn sinterstore(ctx: &mut Ctx, args: &Args) {
    intersection(ctx, &keys_from(args, 2), Output::Store(args.get(1)));
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
///
/// The size of the intersection, counting stops at `limit` (0: no limit).
pub fn sintercard(ctx: &mut Ctx, args: &Args) {
    let numkeys = match parse_i64(args.get(1)) {
        Some(n) if n >= 1 => n as u64,
        _ => return ctx.out.error("ERR numkeys should be greater than 0"),
    };
    if numkeys > (args.len() - 2) as u64 {
        return ctx.out.error("ERR Number of keys can't be greater than number of args");
    }
    let first_opt = 2 + numkeys as usize;
    let mut limit = 0;
    let mut j = first_opt;
    while j < args.len() {
        if is_opt(args.get(j), "LIMIT") && j + 1 < args.len() {
            j += 1;
            limit = match parse_i64(args.get(j)) {
                Some(n) if n >= 0 => n as u64,
                _ => return ctx.out.error("ERR LIMIT can't be negative"),
            };
        } else {
            return ctx.out.error(ERR_SYNTAX);
        }
        j += 1;
    }
    let keys: Vec<&[u8]> = (2..first_opt).map(|i| args.get(i)).collect();
    intersection(ctx, &keys, Output::Count(limit));
}

/// The key arguments of SINTERCARD: `numkeys` of them after it, none when `numkeys`
/// is invalid (the command then fails before touching keys).
pub fn sintercard_keys(args: &Args) -> Vec<usize> {
    if args.len() < 3 {
        return Vec::new();
    }
    match parse_i64(args.get(1)) {
        Some(n) if n >= 1 && n as u64 <= (args.len() - 2) as u64 => (2..2 + n as usize).collect(),
        _ => Vec::new(),
    }
}

/// SUNION key [key ...]
pub fn sunion(ctx: &mut Ctx, args: &Args) {
    union_or_difference(ctx, &keys_from(args, 1), Output::Reply, Op::Union);
}

/// SUNIONSTORE destination key [key ...]
pub fn sunionstore(ctx: &mut Ctx, args: &Args) {
    union_or_difference(ctx, &keys_from(args, 2), Output::Store(args.get(1)), Op::Union);
}

/// SDIFF key [key ...]
pub fn sdiff(ctx: &mut Ctx, args: &Args) {
    union_or_difference(ctx, &keys_from(args, 1), Output::Reply, Op::Difference);
}

/// SDIFFSTORE destination key [key ...]
pub fn sdiffstore(ctx: &mut Ctx, args: &Args) {
    union_or_difference(ctx, &keys_from(args, 2), Output::Store(args.get(1)), Op::Difference);
}

/// Looks up every key once, as Redis does before computing anything: the size of each
/// set (None: missing), or `Err` after replying WRONGTYPE for the first other type.
fn sizes(ctx: &mut Ctx, keys: &[&[u8]]) -> Result<Vec<Option<usize>>, ()> {
    let now = ctx.now_ms;
    keys.iter().map(|k| lookup(ctx.keys.db(k), k, now, ctx.out).map(|s| s.map(|s| s.len()))).collect()
}

/// A set as a set reply (`~` in RESP3), in its iteration order.
pub(super) fn reply_set(out: &mut ReplyBuf, set: &SetValue) {
    out.set(set.len());
    set.iter().for_each(|m| reply_member(out, m));
}

/// The union of `sets`, built as Redis builds it: into a new intset.
pub(super) fn union_of<'a>(sets: impl Iterator<Item = &'a SetValue>, lim: &SetLimits) -> SetValue {
    let mut result = SetValue::new_intset();
    for set in sets {
        result.add_all(set.iter(), lim);
    }
    result
}

/// Stores `result` at `dst` (replacing any value and expiry) or, when it is empty,
/// deletes `dst`; replies the size.
fn store(ctx: &mut Ctx, dst: &[u8], mut result: SetValue) {
    let (now, n) = (ctx.now_ms, result.len());
    if n == 0 {
        if ctx.keys.db(dst).remove(dst, now).is_some() {
            ctx.touch(dst);
        }
    } else {
        result.compact(&limits(ctx.cfg));
        ctx.keys.db(dst).set(dst, Value::Set(Box::new(result)), 0);
        ctx.touch(dst);
    }
    ctx.out.integer(n as i64);
}

/// SINTER and friends (Redis's `sinterGenericCommand`).
fn intersection(ctx: &mut Ctx, keys: &[&[u8]], output: Output) {
    let now = ctx.now_ms;
    let Ok(sizes) = sizes(ctx, keys) else { return };
    if sizes.iter().any(Option::is_none) {
        return match output {
            Output::Reply => ctx.out.set(0),
            Output::Count(_) => ctx.out.integer(0),
            Output::Store(dst) => store(ctx, dst, SetValue::new_intset()),
        };
    }
    // A stable sort, as glibc's qsort (a merge sort) is: the first smallest set leads.
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| sizes[i]);
    let first = keys[order[0]];
    if let (Output::Reply, true) = (output, keys.iter().all(|k| *k == first)) {
        // SMEMBERS: straight from the set.
        if let Some(set) = peek(ctx.keys.db(first), first, now) {
            reply_set(ctx.out, set);
        }
        return;
    }
    let mut members: Vec<OwnedMember> = match peek(ctx.keys.db(first), first, now) {
        Some(set) => set.iter().map(|m| m.to_owned()).collect(),
        None => Vec::new(),
    };
    for &j in &order[1..] {
        if keys[j] == first || members.is_empty() {
            continue;
        }
        if let Some(set) = peek(ctx.keys.db(keys[j]), keys[j], now) {
            members.retain(|m| set.contains_member(m.as_member()));
        }
    }
    match output {
        Output::Reply => {
            ctx.out.set(members.len());
            members.iter().for_each(|m| reply_member(ctx.out, m.as_member()));
        }
        Output::Count(limit) => {
            let n = members.len() as u64;
            ctx.out.integer(if limit > 0 { n.min(limit) } else { n } as i64);
        }
        Output::Store(dst) => {
            let lim = limits(ctx.cfg);
            let mut result = SetValue::new_intset();
            result.add_all(members.iter().map(OwnedMember::as_member), &lim);
            store(ctx, dst, result);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Difference,
}

/// SUNION, SDIFF and their STORE forms (Redis's `sunionDiffGenericCommand`).
fn union_or_difference(ctx: &mut Ctx, keys: &[&[u8]], output: Output, op: Op) {
    let (now, lim) = (ctx.now_ms, limits(ctx.cfg));
    let Ok(sizes) = sizes(ctx, keys) else { return };
    let present = || keys.iter().zip(&sizes).filter(|(_, s)| s.is_some()).map(|(k, _)| *k);
    let result = match op {
        Op::Union => {
            let mut result = SetValue::new_intset();
            for k in present() {
                if let Some(set) = peek(ctx.keys.db(k), k, now) {
                    result.add_all(set.iter(), &lim);
                }
            }
            result
        }
        Op::Difference => difference(ctx, keys, &sizes, &lim),
    };
    match output {
        Output::Store(dst) => store(ctx, dst, result),
        _ => reply_set(ctx.out, &result),
    }
}

/// The first set minus the others.
fn difference(ctx: &mut Ctx, keys: &[&[u8]], sizes: &[Option<usize>], lim: &SetLimits) -> SetValue {
    let now = ctx.now_ms;
    let mut result = SetValue::new_intset();
    let Some(first_size) = sizes[0] else { return result };
    let others = || keys[1..].iter().zip(&sizes[1..]).filter(|(_, s)| s.is_some()).map(|(k, _)| *k);
    let first = keys[0];
    if others().any(|k| k == first) {
        // A set minus itself.
        return result;
    }
    // Redis's estimate: walking the first set against each other set costs
    // `first_size` per set (halved: it is cheaper per step and stops early), adding
    // and removing everything costs the total size.
    let present = sizes.iter().flatten().count();
    let walk_work = first_size * present / 2;
    let total_work: usize = sizes.iter().flatten().sum();
    if walk_work <= total_work {
        let mut members: Vec<OwnedMember> = match peek(ctx.keys.db(first), first, now) {
            Some(set) => set.iter().map(|m| m.to_owned()).collect(),
            None => Vec::new(),
        };
        for k in others() {
            if let Some(set) = peek(ctx.keys.db(k), k, now) {
                members.retain(|m| !set.contains_member(m.as_member()));
            }
        }
        result.add_all(members.iter().map(OwnedMember::as_member), lim);
    } else {
        if let Some(set) = peek(ctx.keys.db(first), first, now) {
            result.add_all(set.iter(), lim);
        }
        for k in others() {
            if result.is_empty() {
                break;
            }
            if let Some(set) = peek(ctx.keys.db(k), k, now) {
                result.remove_all(set.iter());
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;
    use crate::testkit::TwoDbs;

    const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

    /// The bulk strings of an array or set reply, sorted.
    fn sorted_items(reply: &str) -> Vec<String> {
        let mut v: Vec<String> =
            reply.split("\r\n").skip(1).filter(|l| !l.starts_with('$') && !l.is_empty()).map(str::to_string).collect();
        v.sort();
        v
    }

    #[test]
    fn smembers_of_an_intset_is_sorted() {
        let mut h = Harness::new();
        h.cmd("SADD s 10 -3 7");
        assert_eq!(h.cmd("SMEMBERS s"), "*3\r\n$2\r\n-3\r\n$1\r\n7\r\n$2\r\n10\r\n");
        assert_eq!(h.cmd("SMEMBERS nokey"), "*0\r\n");
        h.cmd("SET str x");
        assert_eq!(h.cmd("SMEMBERS str"), WRONGTYPE);
        let mut h = Harness::resp3();
        h.cmd("SADD s b");
        assert_eq!(h.cmd("SMEMBERS s"), "~1\r\n$1\r\nb\r\n");
        assert_eq!(h.cmd("SMEMBERS nokey"), "~0\r\n");
    }

    #[test]
    fn sinter_walks_the_smallest_set() {
        let mut h = Harness::new();
        h.cmd("SADD a 5 1 3 x");
        h.cmd("SADD b 3 1 5");
        // b is smallest and an intset: ascending order.
        assert_eq!(h.cmd("SINTER a b"), "*3\r\n$1\r\n1\r\n$1\r\n3\r\n$1\r\n5\r\n");
        assert_eq!(h.cmd("SINTER a b nokey"), "*0\r\n");
        h.cmd("SET str x");
        assert_eq!(h.cmd("SINTER nokey str"), WRONGTYPE);
        assert_eq!(h.cmd("SINTER a a"), h.cmd("SMEMBERS a"));
        let mut h = Harness::resp3();
        h.cmd("SADD a 1 2");
        assert_eq!(h.cmd("SINTER a nokey"), "~0\r\n");
        assert_eq!(h.cmd("SINTER a a"), "~2\r\n$1\r\n1\r\n$1\r\n2\r\n");
    }

    #[test]
    fn sinterstore_and_sintercard() {
        let mut h = Harness::new();
        h.cmd("SADD a 1 2 3 x");
        h.cmd("SADD b 2 3 x y");
        h.cmd("SET dst old");
        h.cmd("EXPIRE dst 100");
        assert_eq!(h.cmd("SINTERSTORE dst a b"), ":3\r\n");
        assert_eq!(h.encoding("dst"), "hashtable");
        assert_eq!(h.expire_at("dst"), Some(0));
        h.cmd("SREM b x");
        assert_eq!(h.cmd("SINTERSTORE dst a b"), ":2\r\n");
        assert_eq!(h.encoding("dst"), "intset");
        assert_eq!(h.cmd("SINTERSTORE dst a nokey"), ":0\r\n");
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("EXISTS dst"), ":0\r\n");
        assert_eq!(h.cmd("SINTERSTORE dst a nokey"), ":0\r\n");
        assert_eq!(h.dirty, 0);
        assert_eq!(h.cmd("SINTERCARD 2 a b"), ":2\r\n");
        assert_eq!(h.cmd("SINTERCARD 2 a b LIMIT 1"), ":1\r\n");
        assert_eq!(h.cmd("SINTERCARD 2 a b limit 0"), ":2\r\n");
        assert_eq!(h.cmd("SINTERCARD 1 nokey"), ":0\r\n");
        assert_eq!(h.cmd("SINTERCARD 0 a"), "-ERR numkeys should be greater than 0\r\n");
        assert_eq!(h.cmd("SINTERCARD abc a"), "-ERR numkeys should be greater than 0\r\n");
        assert_eq!(h.cmd("SINTERCARD 3 a b"), "-ERR Number of keys can't be greater than number of args\r\n");
        assert_eq!(h.cmd("SINTERCARD 1 a LIMIT"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("SINTERCARD 1 a LIMIT -1"), "-ERR LIMIT can't be negative\r\n");
        assert_eq!(h.cmd("SINTERCARD 1 a LIMIT x"), "-ERR LIMIT can't be negative\r\n");
        assert_eq!(h.cmd("SINTERCARD 1 a foo"), "-ERR syntax error\r\n");
    }

    #[test]
    fn sintercard_key_finder() {
        let spec = crate::table::lookup(b"sintercard").unwrap();
        let find = |words: &[&str]| {
            let owned = ferrokv_resp::OwnedArgs::from_slices(words.iter().map(|w| w.as_bytes()));
            let mut out = Vec::new();
            spec.key_indexes(&owned.args(), &mut out);
            out
        };
        assert_eq!(find(&["SINTERCARD", "2", "a", "b", "LIMIT", "1"]), [2, 3]);
        assert_eq!(find(&["SINTERCARD", "1", "a"]), [2]);
        assert!(find(&["SINTERCARD", "3", "a", "b"]).is_empty());
        assert!(find(&["SINTERCARD", "x", "a"]).is_empty());
        assert!(find(&["SINTERCARD"]).is_empty());
    }

    #[test]
    fn sunion_builds_an_intset_when_it_can() {
        let mut h = Harness::new();
        h.cmd("SADD a 3 x");
        h.cmd("SREM a x");
        h.cmd("SADD b 1 2");
        assert_eq!(h.cmd("SUNION a b nokey"), "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n");
        assert_eq!(h.cmd("SUNIONSTORE dst a b"), ":3\r\n");
        assert_eq!(h.encoding("dst"), "intset");
        h.cmd("SADD b y");
        assert_eq!(sorted_items(&h.cmd("SUNION a b")), ["1", "2", "3", "y"]);
        assert_eq!(h.cmd("SUNIONSTORE dst nokey"), ":0\r\n");
        assert_eq!(h.cmd("EXISTS dst"), ":0\r\n");
        h.cmd("SET str x");
        assert_eq!(h.cmd("SUNION a str"), WRONGTYPE);
        h.cfg.set_max_intset_entries = 2;
        assert_eq!(h.cmd("SUNIONSTORE dst a b"), ":4\r\n");
        h.cmd("SREM b y");
        assert_eq!(h.cmd("SUNIONSTORE dst a b"), ":3\r\n");
        assert_eq!(h.encoding("dst"), "hashtable", "3 integers exceed an intset of 2");
    }

    #[test]
    fn sdiff_algorithms_leave_redis_encodings() {
        let mut h = Harness::new();
        h.cmd("SADD a 1 2 3 x");
        h.cmd("SADD b x");
        // Walk (4 * 2 / 2 = 4 <= 5 in all): only survivors are added, an intset.
        assert_eq!(h.cmd("SDIFFSTORE d a b"), ":3\r\n");
        assert_eq!(h.encoding("d"), "intset");
        // Walk again: 4 * 3 / 2 = 6 <= 6.
        h.cmd("SADD c 1");
        assert_eq!(h.cmd("SDIFFSTORE d a b c"), ":2\r\n");
        assert_eq!(h.encoding("d"), "intset");
        // Against four sets of one, 4 * 5 / 2 = 10 > 8: add all of `a` (which holds x:
        // a hashtable), then remove.
        h.cmd("SADD e 9");
        h.cmd("SADD f 8");
        assert_eq!(h.cmd("SDIFFSTORE d a b c e f"), ":2\r\n");
        assert_eq!(h.encoding("d"), "hashtable");
        assert_eq!(sorted_items(&h.cmd("SDIFF a b c e f")), ["2", "3"]);
        assert_eq!(h.cmd("SDIFF a a"), "*0\r\n");
        assert_eq!(h.cmd("SDIFF nokey a"), "*0\r\n");
        assert_eq!(sorted_items(&h.cmd("SDIFF a nokey")), ["1", "2", "3", "x"]);
        h.cmd("SET str v");
        assert_eq!(h.cmd("SDIFF nokey str"), WRONGTYPE);
    }

    #[test]
    fn across_databases() {
        let mut t = TwoDbs::new();
        let (a, b) = t.keys_in_different_dbs();
        t.run(&["SADD", &a, "1", "2", "3"]);
        t.run(&["SADD", &b, "2", "3", "4"]);
        assert_eq!(t.run(&["SINTER", &a, &b]), "*2\r\n$1\r\n2\r\n$1\r\n3\r\n");
        assert_eq!(t.run(&["SUNIONSTORE", &a, &a, &b]), ":4\r\n");
        assert_eq!(t.run(&["SDIFFSTORE", &b, &a, &b]), ":1\r\n");
        assert_eq!(t.run(&["SMEMBERS", &b]), "*1\r\n$1\r\n1\r\n");
    }
}
