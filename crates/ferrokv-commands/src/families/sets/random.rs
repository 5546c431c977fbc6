//! Random members: SPOP and SRANDMEMBER.
//!
//! Both follow Redis's case analysis, because the cases decide reply shapes and the
//! encoding left behind: SPOP with a count close to the size keeps `size - count`
//! random members in a new set (whose encoding is chosen afresh, so a `hashtable` set
//! left with integers only becomes an `intset` again), and SRANDMEMBER's positive
//! count returns distinct members, the whole set when it asks for as many.

use super::algebra::{reply_set, union_of};
use super::{limits, lookup, reply_member};
use crate::util::{parse_i64, ERR_NOT_INT, ERR_SYNTAX};
use crate::Ctx;
use ferrokv_resp::Args;
use ferrokv_store::set::{Member, OwnedMember, SetRng, SetValue};
use std::collections::HashSet;

/// SPOP pulls out elements one by one while at least `count / 5` remain; past that it
/// keeps the survivors instead (Redis's `SPOP_MOVE_STRATEGY_MUL`).
const SPOP_MOVE_STRATEGY_MUL: usize = 5;
/// SRANDMEMBER with a positive count draws distinct members at random while the set
/// is more than 3 times the count, else removes random ones from a full copy.
const SRANDMEMBER_SUB_STRATEGY_MUL: usize = 3;

/// SPOP key [count]
///
/// Removes and returns a random member (a bulk string, or null), or `count` distinct
/// random members (a set; empty for a missing key or a count of 0).
pub fn spop(ctx: &mut Ctx, args: &Args) {
    match args.len() {
        2 => spop_one(ctx, args.get(1)),
        3 => spop_count(ctx, args.get(1), args.get(2)),
        _ => ctx.out.error(ERR_SYNTAX),
    }
}

fn spop_one(ctx: &mut Ctx, key: &[u8]) {
    let (now, lim) = (ctx.now_ms, limits(ctx.cfg));
    let db = ctx.keys.db(key);
    let mut rng = SetRng::new(db.random_u64());
    let set = match lookup(db, key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => return ctx.out.null(),
        Ok(Some(set)) => set,
    };
    let Some(m) = set.random(&mut rng).map(|m| m.to_owned()) else { return ctx.out.null() };
    set.remove_member(m.as_member());
    reply_member(ctx.out, m.as_member());
    if set.is_empty() {
        db.remove(key, now);
    } else {
        set.compact(&lim);
    }
    ctx.touch(key);
    // A random choice: propagated as the SREM it made.
    ctx.rewrite(|| vec![b"SREM".to_vec(), key.to_vec(), member_bytes(m.as_member())]);
}

fn member_bytes(m: Member) -> Vec<u8> {
    match m {
        Member::Int(n) => n.to_string().into_bytes(),
        Member::Bytes(b) => b.to_vec(),
    }
}

fn spop_count(ctx: &mut Ctx, key: &[u8], count: &[u8]) {
    let count = match parse_i64(count) {
        Some(n) if n >= 0 => n as u64,
        _ => return ctx.out.error("ERR value is out of range, must be positive"),
    };
    let (now, lim) = (ctx.now_ms, limits(ctx.cfg));
    let db = ctx.keys.db(key);
    let mut rng = SetRng::new(db.random_u64());
    let set = match lookup(db, key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => return ctx.out.set(0),
        Ok(Some(set)) => set,
    };
    if count == 0 {
        return ctx.out.set(0);
    }
    let size = set.len();
    if count >= size as u64 {
        // The whole set, in the order SUNION of it would give.
        let all = union_of(std::iter::once(&*set), &lim);
        reply_set(ctx.out, &all);
        db.remove(key, now);
        ctx.touch(key);
        ctx.dirty += size as u64 - 1;
        ctx.rewrite(|| vec![b"DEL".to_vec(), key.to_vec()]);
        return;
    }
    // Propagated as one SREM per member popped (Redis's alsoPropagate).
    let mut srems: Vec<Vec<u8>> = Vec::new();
    let propagating = ctx.propagating;
    let count = count as usize;
    let remaining = size - count;
    ctx.out.set(count);
    if remaining * SPOP_MOVE_STRATEGY_MUL > count {
        for _ in 0..count {
            let Some(m) = set.random(&mut rng).map(|m| m.to_owned()) else { break };
            set.remove_member(m.as_member());
            reply_member(ctx.out, m.as_member());
            if propagating {
                srems.push(member_bytes(m.as_member()));
            }
        }
        set.compact(&lim);
    } else {
        // Move `remaining` random members to a new set, return what is left of the old
        // one and keep the new one (with the old key's expiry).
        let mut kept: Option<SetValue> = None;
        for _ in 0..remaining {
            let Some(m) = set.random(&mut rng).map(|m| m.to_owned()) else { break };
            let bytes = m.as_member().to_vec();
            kept.get_or_insert_with(|| SetValue::for_member(&bytes)).add(&bytes, &lim);
            set.remove_member(m.as_member());
        }
        for m in set.iter() {
            reply_member(ctx.out, m);
            if propagating {
                srems.push(member_bytes(m));
            }
        }
        if let Some(kept) = kept {
            *set = kept;
        }
    }
    ctx.touch(key);
    ctx.dirty += count as u64 - 1;
    for m in srems {
        ctx.also_propagate(|| vec![b"SREM".to_vec(), key.to_vec(), m]);
    }
}

/// SRANDMEMBER key [count]
///
/// A random member (bulk string or null); with a count, an array: `count` distinct
/// members when positive (the whole set at most), `|count|` members that may repeat
/// when negative.
pub fn srandmember(ctx: &mut Ctx, args: &Args) {
    match args.len() {
        2 => srandmember_one(ctx, args.get(1)),
        3 => srandmember_count(ctx, args.get(1), args.get(2)),
        _ => ctx.out.error(ERR_SYNTAX),
    }
}

fn srandmember_one(ctx: &mut Ctx, key: &[u8]) {
    let now = ctx.now_ms;
    let db = ctx.keys.db(key);
    let mut rng = SetRng::new(db.random_u64());
    match lookup(db, key, now, ctx.out) {
        Err(()) => {}
        Ok(None) => ctx.out.null(),
        Ok(Some(set)) => match set.random(&mut rng) {
            Some(m) => reply_member(ctx.out, m),
            None => ctx.out.null(),
        },
    }
}

fn srandmember_count(ctx: &mut Ctx, key: &[u8], count: &[u8]) {
    let l = match parse_i64(count) {
        None => return ctx.out.error(ERR_NOT_INT),
        Some(i64::MIN) => {
            return ctx
                .out
                .error("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
        }
        Some(l) => l,
    };
    let (count, distinct) = (l.unsigned_abs(), l >= 0);
    let now = ctx.now_ms;
    let db = ctx.keys.db(key);
    let mut rng = SetRng::new(db.random_u64());
    let set = match lookup(db, key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => return ctx.out.array(0),
        Ok(Some(set)) => &*set,
    };
    if count == 0 {
        return ctx.out.array(0);
    }
    let size = set.len();
    if !distinct || count == 1 {
        ctx.out.array(count as usize);
        for _ in 0..count {
            if let Some(m) = set.random(&mut rng) {
                reply_member(ctx.out, m);
            }
        }
        return;
    }
    if count >= size as u64 {
        ctx.out.array(size);
        set.iter().for_each(|m| reply_member(ctx.out, m));
        return;
    }
    let count = count as usize;
    ctx.out.array(count);
    if count * SRANDMEMBER_SUB_STRATEGY_MUL > size {
        // Most of the set: a partial shuffle of all members.
        let mut all: Vec<Member> = set.iter().collect();
        for i in 0..count {
            let j = i + rng.below(all.len() - i);
            all.swap(i, j);
            reply_member(ctx.out, all[i]);
        }
    } else {
        let mut picked: HashSet<OwnedMember> = HashSet::with_capacity(count);
        while picked.len() < count {
            let Some(m) = set.random(&mut rng) else { break };
            if picked.insert(m.to_owned()) {
                reply_member(ctx.out, m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;
    use std::collections::BTreeSet;

    /// The bulk strings of an array or set reply.
    fn items(reply: &str) -> Vec<String> {
        let lines: Vec<&str> = reply.split("\r\n").collect();
        lines.iter().skip(1).filter(|l| !l.starts_with('$') && !l.is_empty()).map(|l| l.to_string()).collect()
    }

    #[test]
    fn spop_errors_and_empty_replies() {
        let mut h = Harness::new();
        h.cmd("SADD s 1 2 3");
        assert_eq!(h.cmd("SPOP s abc"), "-ERR value is out of range, must be positive\r\n");
        assert_eq!(h.cmd("SPOP s -1"), "-ERR value is out of range, must be positive\r\n");
        assert_eq!(h.cmd("SPOP s 1 2"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("SPOP nokey"), "$-1\r\n");
        assert_eq!(h.cmd("SPOP nokey 3"), "*0\r\n");
        assert_eq!(h.cmd("SPOP s 0"), "*0\r\n");
        let mut h = Harness::resp3();
        h.cmd("SADD s 1 2 3");
        assert_eq!(h.cmd("SPOP nokey"), "_\r\n");
        assert_eq!(h.cmd("SPOP nokey 3"), "~0\r\n");
        assert_eq!(h.cmd("SPOP s 5"), "~3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n");
        assert_eq!(h.dirty, 3);
        assert_eq!(h.cmd("EXISTS s"), ":0\r\n");
    }

    #[test]
    fn spop_removes_what_it_returns() {
        let mut h = Harness::new();
        h.cmd("SADD s a b c d e f g h i j");
        let mut seen = BTreeSet::new();
        let one = h.cmd("SPOP s");
        seen.extend(items(&one));
        for count in [1, 2, 6] {
            let reply = h.cmd(&format!("SPOP s {count}"));
            assert!(reply.starts_with(&format!("*{count}\r\n")), "{reply}");
            for m in items(&reply) {
                assert!(seen.insert(m), "popped twice");
            }
        }
        assert_eq!(seen.len(), 10);
        assert_eq!(h.cmd("EXISTS s"), ":0\r\n");
    }

    #[test]
    fn spop_keeping_few_members_picks_their_encoding_afresh() {
        let mut h = Harness::new();
        h.cmd("SADD s x 1 2 3 4 5 6 7 8 9");
        h.cmd("SREM s x");
        assert_eq!(h.encoding("s"), "hashtable");
        h.cmd("EXPIRE s 100");
        // 1 left, 8 popped: 1 * 5 <= 8, so the survivor moves to a new set.
        let reply = h.cmd("SPOP s 8");
        assert_eq!(items(&reply).len(), 8);
        assert_eq!(h.encoding("s"), "intset");
        assert_eq!(h.cmd("SCARD s"), ":1\r\n");
        assert_eq!(h.cmd("TTL s"), ":100\r\n");
        // Few popped: the set is only reduced and stays a hashtable.
        h.cmd("SADD t x 1 2 3 4 5 6 7 8 9");
        h.cmd("SREM t x");
        h.cmd("SPOP t 2");
        assert_eq!(h.encoding("t"), "hashtable");
    }

    #[test]
    fn srandmember_shapes() {
        let mut h = Harness::new();
        h.cmd("SADD s 1 2 3 4 5");
        assert_eq!(h.cmd("SRANDMEMBER s abc"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(
            h.cmd("SRANDMEMBER s -9223372036854775808"),
            "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\r\n"
        );
        assert_eq!(h.cmd("SRANDMEMBER s 1 2"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("SRANDMEMBER nokey"), "$-1\r\n");
        assert_eq!(h.cmd("SRANDMEMBER nokey 5"), "*0\r\n");
        assert_eq!(h.cmd("SRANDMEMBER s 0"), "*0\r\n");
        assert_eq!(h.cmd("SRANDMEMBER s 10"), "*5\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\n4\r\n$1\r\n5\r\n");
        let reply = h.cmd("SRANDMEMBER s -20");
        assert_eq!(items(&reply).len(), 20);
        for count in [2, 4] {
            let got = items(&h.cmd(&format!("SRANDMEMBER s {count}")));
            assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), count, "distinct");
        }
        assert_eq!(h.cmd("SCARD s"), ":5\r\n");
        let one = h.cmd("SRANDMEMBER s");
        assert!(one.starts_with("$1\r\n"));
        let mut h = Harness::resp3();
        h.cmd("SADD s a");
        assert_eq!(h.cmd("SRANDMEMBER s 3"), "*1\r\n$1\r\na\r\n");
        assert_eq!(h.cmd("SRANDMEMBER nokey"), "_\r\n");
    }

    #[test]
    fn srandmember_of_a_big_set_is_distinct_and_varied() {
        let mut h = Harness::new();
        let members: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
        h.cmd(&format!("SADD s {}", members.join(" ")));
        let mut all = BTreeSet::new();
        for _ in 0..20 {
            let got = items(&h.cmd("SRANDMEMBER s 50"));
            let distinct: BTreeSet<_> = got.iter().cloned().collect();
            assert_eq!(distinct.len(), 50);
            all.extend(distinct);
        }
        assert!(all.len() > 500, "{} distinct members over 20 draws", all.len());
        // 800 of 1000: the shuffle path.
        let got = items(&h.cmd("SRANDMEMBER s 800"));
        assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), 800);
    }
}
