//! Commands on the members of one set: SADD, SREM, SCARD, SISMEMBER, SMISMEMBER, and
//! SMOVE between two sets.

use super::{limits, lookup};
use crate::util::ERR_WRONGTYPE;
use crate::Ctx;
use ferrokv_resp::Args;
use ferrokv_store::set::{Member, SetValue};
use ferrokv_store::Value;

/// SADD key member [member ...]
///
/// Adds the members; replies how many were new. A new key gets the encoding Redis
/// gives a set created for its first member.
pub fn sadd(ctx: &mut Ctx, args: &Args) {
    let (key, now, lim) = (args.get(1), ctx.now_ms, limits(ctx.cfg));
    let db = ctx.keys.db(key);
    let added = match lookup(db, key, now, ctx.out) {
        Err(()) => return,
        Ok(Some(set)) => set.add_all(args.iter().skip(2).map(Member::Bytes), &lim),
        Ok(None) => {
            let mut set = SetValue::for_member(args.get(2));
            let added = set.add_all(args.iter().skip(2).map(Member::Bytes), &lim);
            db.set(key, Value::Set(Box::new(set)), 0);
            added
        }
    };
    if added > 0 {
        ctx.touch(key);
        // Redis counts each added member as a change.
        ctx.dirty += added as u64 - 1;
    }
    ctx.out.integer(added as i64);
}

/// SREM key member [member ...]
///
/// Removes the members; replies how many were there. The key goes with its last
/// member.
pub fn srem(ctx: &mut Ctx, args: &Args) {
    let (key, now, lim) = (args.get(1), ctx.now_ms, limits(ctx.cfg));
    let db = ctx.keys.db(key);
    let set = match lookup(db, key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => return ctx.out.integer(0),
        Ok(Some(set)) => set,
    };
    let removed = set.remove_all(args.iter().skip(2).map(Member::Bytes)) as u64;
    if set.is_empty() {
        db.remove(key, now);
    } else {
        set.compact(&lim);
    }
    if removed > 0 {
        ctx.touch(key);
        ctx.dirty += removed - 1;
    }
    ctx.out.integer(removed as i64);
}

/// SCARD key
pub fn scard(ctx: &mut Ctx, args: &Args) {
    let (key, now) = (args.get(1), ctx.now_ms);
    if let Ok(set) = lookup(ctx.keys.db(key), key, now, ctx.out) {
        ctx.out.integer(set.map_or(0, |s| s.len() as i64));
    }
}

/// SISMEMBER key member
pub fn sismember(ctx: &mut Ctx, args: &Args) {
    let (key, now) = (args.get(1), ctx.now_ms);
    if let Ok(set) = lookup(ctx.keys.db(key), key, now, ctx.out) {
        ctx.out.integer(set.is_some_and(|s| s.contains(args.get(2))) as i64);
    }
}

/// SMISMEMBER key member [member ...]
///
/// An array of 1/0, one per member; a missing key is an empty set.
pub fn smismember(ctx: &mut Ctx, args: &Args) {
    let (key, now) = (args.get(1), ctx.now_ms);
    let Ok(set) = lookup(ctx.keys.db(key), key, now, ctx.out) else { return };
    ctx.out.array(args.len() - 2);
    for m in args.iter().skip(2) {
        ctx.out.integer(set.as_ref().is_some_and(|s| s.contains(m)) as i64);
    }
}

/// SMOVE source destination member
///
/// Moves `member` from one set to another: 1 when it was in `source` (even if
/// `destination` had it), else 0. A missing source answers 0 before any type check of
/// the destination; a source equal to the destination only checks membership.
pub fn smove(ctx: &mut Ctx, args: &Args) {
    let (src, dst, member, now, lim) = (args.get(1), args.get(2), args.get(3), ctx.now_ms, limits(ctx.cfg));
    let dst_is_set = ctx.keys.db(dst).get(dst, now).map(|e| matches!(e.value, Value::Set(_)));
    let db = ctx.keys.db(src);
    let set = match lookup(db, src, now, ctx.out) {
        Err(()) => return,
        Ok(None) => return ctx.out.integer(0),
        Ok(Some(_)) if dst_is_set == Some(false) => return ctx.out.error(ERR_WRONGTYPE),
        Ok(Some(set)) => set,
    };
    if src == dst {
        return ctx.out.integer(set.contains(member) as i64);
    }
    if !set.remove(member) {
        return ctx.out.integer(0);
    }
    if set.is_empty() {
        db.remove(src, now);
    } else {
        set.compact(&lim);
    }
    ctx.touch(src);
    let db = ctx.keys.db(dst);
    let added = match lookup(db, dst, now, ctx.out) {
        Ok(Some(set)) => set.add(member, &lim),
        _ => {
            let mut set = SetValue::for_member(member);
            set.add(member, &lim);
            db.set(dst, Value::Set(Box::new(set)), 0);
            true
        }
    };
    if added {
        ctx.touch(dst);
    }
    ctx.out.integer(1);
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;

    #[test]
    fn sadd_srem_scard() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("SADD s 3 1 2 1"), ":3\r\n");
        assert_eq!(h.dirty, 3);
        assert_eq!(h.encoding("s"), "intset");
        assert_eq!(h.cmd("SADD s 2"), ":0\r\n");
        assert_eq!(h.dirty, 0);
        assert_eq!(h.cmd("SCARD s"), ":3\r\n");
        assert_eq!(h.cmd("SADD s x"), ":1\r\n");
        assert_eq!(h.encoding("s"), "hashtable");
        assert_eq!(h.cmd("SREM s 1 nope x"), ":2\r\n");
        assert_eq!(h.dirty, 2);
        assert_eq!(h.encoding("s"), "hashtable");
        assert_eq!(h.cmd("SREM nokey a"), ":0\r\n");
        assert_eq!(h.cmd("SREM s 2 3 2"), ":2\r\n");
        assert_eq!(h.cmd("EXISTS s"), ":0\r\n");
        assert_eq!(h.cmd("SCARD s"), ":0\r\n");
    }

    #[test]
    fn new_set_encoding_follows_the_first_member() {
        let mut h = Harness::new();
        h.cmd("SADD a x 1");
        assert_eq!(h.encoding("a"), "hashtable");
        h.cmd("SADD b 1 x");
        assert_eq!(h.encoding("b"), "hashtable");
        h.cmd("SADD c 1 -2 9223372036854775807");
        assert_eq!(h.encoding("c"), "intset");
        h.cfg.set_max_intset_entries = 2;
        h.cmd("SADD d 1 2");
        assert_eq!(h.encoding("d"), "intset");
        h.cmd("SADD d 3");
        assert_eq!(h.encoding("d"), "hashtable");
    }

    #[test]
    fn membership() {
        let mut h = Harness::new();
        h.cmd("SADD s a 1");
        assert_eq!(h.cmd("SISMEMBER s a"), ":1\r\n");
        assert_eq!(h.cmd("SISMEMBER s b"), ":0\r\n");
        assert_eq!(h.cmd("SISMEMBER nokey a"), ":0\r\n");
        assert_eq!(h.cmd("SMISMEMBER s a b 1"), "*3\r\n:1\r\n:0\r\n:1\r\n");
        assert_eq!(h.cmd("SMISMEMBER nokey a b"), "*2\r\n:0\r\n:0\r\n");
        let mut h = Harness::resp3();
        h.cmd("SADD s 5");
        assert_eq!(h.cmd("SISMEMBER s 5"), ":1\r\n");
        assert_eq!(h.cmd("SISMEMBER s 05"), ":0\r\n");
    }

    #[test]
    fn smove_cases() {
        let mut h = Harness::new();
        h.cmd("SET str v");
        assert_eq!(h.cmd("SMOVE nokey str a"), ":0\r\n");
        h.cmd("SADD src a 1");
        assert_eq!(h.cmd("SMOVE src str a"), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
        assert_eq!(h.cmd("SMOVE str src a"), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
        assert_eq!(h.cmd("SMOVE src src a"), ":1\r\n");
        assert_eq!(h.cmd("SMOVE src src b"), ":0\r\n");
        assert_eq!(h.cmd("SMOVE src dst b"), ":0\r\n");
        assert_eq!(h.cmd("SMOVE src dst 1"), ":1\r\n");
        assert_eq!(h.dirty, 2);
        assert_eq!(h.encoding("dst"), "intset");
        h.cmd("SADD other a");
        assert_eq!(h.cmd("SMOVE src other a"), ":1\r\n");
        assert_eq!(h.dirty, 1, "the destination had it already");
        assert_eq!(h.cmd("EXISTS src"), ":0\r\n");
        assert_eq!(h.cmd("SCARD other"), ":1\r\n");
    }

    #[test]
    fn smove_between_databases() {
        let mut t = crate::testkit::TwoDbs::new();
        let (a, b) = t.keys_in_different_dbs();
        t.run(&["SADD", &a, "m", "n"]);
        assert_eq!(t.run(&["SMOVE", &a, &b, "m"]), ":1\r\n");
        assert_eq!(t.run(&["SCARD", &b]), ":1\r\n");
        assert_eq!(t.run(&["SISMEMBER", &a, "m"]), ":0\r\n");
        assert_eq!(t.run(&["SMOVE", &a, &b, "n"]), ":1\r\n");
        assert_eq!(t.run(&["EXISTS", &a]), ":0\r\n");
    }
}
