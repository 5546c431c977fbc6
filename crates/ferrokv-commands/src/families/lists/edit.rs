//! Commands that add, replace or delete list elements in place: LPUSH, RPUSH, LPUSHX,
//! RPUSHX, LINSERT, LSET, LREM, LTRIM.

use super::*;

/// Pushes every element of `args[2..]` in order at `end`; with `only_existing`, does
/// nothing when the key is missing (Redis's `pushGenericCommand`).
fn push(ctx: &mut Ctx, args: &Args, end: End, only_existing: bool) {
    let key = args.get(1);
    let (now, fill) = (ctx.now_ms, ctx.cfg.list_max_listpack_size);
    let db = ctx.keys.db(key);
    let push_all = |l: &mut ListValue| {
        for v in args.iter().skip(2) {
            match end {
                End::Left => l.push_front(v),
                End::Right => l.push_back(v),
            }
        }
        // One push grows a node by an eighth at most; many leave it sized exactly.
        if args.len() > 4 {
            l.shrink_to_fit();
        }
        l.len()
    };
    let len = match db.get(key, now) {
        Some(e) => match &mut e.value {
            Value::List(l) => push_all(l),
            _ => return ctx.out.error(ERR_WRONGTYPE),
        },
        None if only_existing => return ctx.out.integer(0),
        None => {
            let mut l = ListValue::new(fill);
            let len = push_all(&mut l);
            db.set(key, Value::List(Box::new(l)), 0);
            len
        }
    };
    ctx.out.integer(len as i64);
    ctx.touch(key);
    ctx.dirty += args.len() as u64 - 3;
}

/// LPUSH key element [element ...]
pub fn lpush(ctx: &mut Ctx, args: &Args) {
    push(ctx, args, End::Left, false)
}

/// RPUSH key element [element ...]
pub fn rpush(ctx: &mut Ctx, args: &Args) {
    push(ctx, args, End::Right, false)
}

/// LPUSHX key element [element ...]
pub fn lpushx(ctx: &mut Ctx, args: &Args) {
    push(ctx, args, End::Left, true)
}

/// RPUSHX key element [element ...]
pub fn rpushx(ctx: &mut Ctx, args: &Args) {
    push(ctx, args, End::Right, true)
}

/// LINSERT key BEFORE|AFTER pivot element: the new length, 0 when the key is missing,
/// -1 when the pivot is not found.
pub fn linsert(ctx: &mut Ctx, args: &Args) {
    let after = if is_opt(args.get(2), "after") {
        true
    } else if is_opt(args.get(2), "before") {
        false
    } else {
        return ctx.out.error(ERR_SYNTAX);
    };
    let (key, pivot, element) = (args.get(1), args.get(3), args.get(4));
    let now = ctx.now_ms;
    let Ok(found) = read_list(ctx.keys.db(key), key, now, ctx.out) else { return };
    let Some(l) = found else { return ctx.out.integer(0) };
    let Some(at) = l.iter().position(|e| e == pivot) else { return ctx.out.integer(-1) };
    l.insert(at + after as usize, element);
    ctx.out.integer(l.len() as i64);
    ctx.touch(key);
}

/// LSET key index element
pub fn lset(ctx: &mut Ctx, args: &Args) {
    let (key, element) = (args.get(1), args.get(3));
    let now = ctx.now_ms;
    let Ok(found) = read_list(ctx.keys.db(key), key, now, ctx.out) else { return };
    let Some(l) = found else { return ctx.out.error("ERR no such key") };
    let Some(index) = parse_int(ctx.out, args.get(2)) else { return };
    match resolve_index(index, l.len()) {
        Some(i) => {
            l.set(i, element);
            ctx.out.ok();
            ctx.touch(key);
        }
        None => ctx.out.error("ERR index out of range"),
    }
}

/// LREM key count element: removes the first `count` matches (the last `-count` when
/// negative, all when 0); the number removed.
pub fn lrem(ctx: &mut Ctx, args: &Args) {
    let (key, element) = (args.get(1), args.get(3));
    let Some(count) = parse_int(ctx.out, args.get(2)) else { return };
    let now = ctx.now_ms;
    let Ok(found) = read_list(ctx.keys.db(key), key, now, ctx.out) else { return };
    let Some(l) = found else { return ctx.out.integer(0) };
    let limit = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
    let removed = l.remove_matching(element, limit, count < 0);
    ctx.out.integer(removed as i64);
    if removed > 0 {
        delete_if_empty(ctx, key);
        ctx.touch(key);
        ctx.dirty += removed as u64 - 1;
    }
}

/// LTRIM key start stop: keeps the inclusive range, deleting the key when it is empty.
pub fn ltrim(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let Some(start) = parse_int(ctx.out, args.get(2)) else { return };
    let Some(stop) = parse_int(ctx.out, args.get(3)) else { return };
    let now = ctx.now_ms;
    let Ok(found) = read_list(ctx.keys.db(key), key, now, ctx.out) else { return };
    let Some(l) = found else { return ctx.out.ok() };
    let before = l.len();
    match clamp_range(start, stop, before) {
        Some((from, to)) => l.retain_range(from, to),
        None => l.clear(),
    }
    let removed = (before - l.len()) as u64;
    delete_if_empty(ctx, key);
    // Redis signals the key even when nothing was trimmed, but counts only removals.
    ctx.touch(key);
    ctx.dirty = ctx.dirty - 1 + removed;
    ctx.out.ok();
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;

    #[test]
    fn pushes_return_the_length_and_create_lists() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("LPUSHX l a"), ":0\r\n");
        assert!(!h.exists("l"));
        assert_eq!(h.cmd("LPUSH l a b c"), ":3\r\n");
        assert_eq!(h.dirty, 3);
        assert_eq!(h.cmd("RPUSH l x y"), ":5\r\n");
        assert_eq!(h.cmd("RPUSHX l z"), ":6\r\n");
        assert_eq!(h.cmd("LPUSHX l w"), ":7\r\n");
        assert_eq!(h.list("l"), "w c b a x y z");
    }

    #[test]
    fn new_lists_take_the_fill_from_the_config() {
        let mut h = Harness::new();
        h.cfg.list_max_listpack_size = 2;
        h.cmd("RPUSH l 1 2 3 4 5");
        let nodes = |h: &mut Harness| match h.db.get(b"l", h.now).map(|e| &e.value) {
            Some(ferrokv_store::Value::List(l)) => l.node_count(),
            _ => 0,
        };
        assert_eq!(nodes(&mut h), 3);
        h.cfg.list_max_listpack_size = -2;
        h.cmd("RPUSH l 6 7"); // an existing list keeps its fill, as in Redis
        assert_eq!(nodes(&mut h), 4);
        assert_eq!(h.list("l"), "1 2 3 4 5 6 7");
    }

    #[test]
    fn linsert_before_and_after_the_first_pivot() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("LINSERT l BEFORE a x"), ":0\r\n");
        assert_eq!(h.cmd("LINSERT l MIDDLE a x"), "-ERR syntax error\r\n");
        h.cmd("RPUSH l a b a");
        assert_eq!(h.cmd("LINSERT l before a x"), ":4\r\n");
        assert_eq!(h.cmd("LINSERT l After a y"), ":5\r\n");
        assert_eq!(h.cmd("LINSERT l AFTER nope y"), ":-1\r\n");
        assert_eq!(h.dirty, 0);
        assert_eq!(h.list("l"), "x a y b a");
        assert_eq!(h.cmd_args(&[b"LINSERT", b"l", b"after\0junk", b"b", b"z"]), ":6\r\n");
    }

    #[test]
    fn lset_errors_in_redis_order() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("LSET l abc x"), "-ERR no such key\r\n");
        h.cmd("RPUSH l a b c");
        assert_eq!(h.cmd("LSET l abc x"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("LSET l 3 x"), "-ERR index out of range\r\n");
        assert_eq!(h.cmd("LSET l -4 x"), "-ERR index out of range\r\n");
        assert_eq!(h.cmd("LSET l -1 z"), "+OK\r\n");
        assert_eq!(h.cmd("LSET l 0 y"), "+OK\r\n");
        assert_eq!(h.list("l"), "y b z");
    }

    #[test]
    fn lrem_counts_from_either_end_and_deletes_empty_lists() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("LREM l x a"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("LREM l 0 a"), ":0\r\n");
        h.cmd("RPUSH l a b a c a");
        assert_eq!(h.cmd("LREM l -2 a"), ":2\r\n");
        assert_eq!(h.list("l"), "a b c");
        assert_eq!(h.cmd("LREM l 1 a"), ":1\r\n");
        assert_eq!(h.cmd("LREM l 0 zz"), ":0\r\n");
        assert_eq!(h.cmd("LREM l -9223372036854775808 b"), ":1\r\n");
        assert_eq!(h.cmd("LREM l 0 c"), ":1\r\n");
        assert!(!h.exists("l"));
    }

    #[test]
    fn ltrim_keeps_a_range_or_deletes_the_key() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("LTRIM l x 1"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("LTRIM l 0 1"), "+OK\r\n");
        h.cmd("RPUSH l a b c d e");
        assert_eq!(h.cmd("LTRIM l 1 -2"), "+OK\r\n");
        assert_eq!(h.dirty, 2);
        assert_eq!(h.list("l"), "b c d");
        assert_eq!(h.cmd("LTRIM l -100 100"), "+OK\r\n");
        assert_eq!(h.dirty, 0);
        assert_eq!(h.list("l"), "b c d");
        assert_eq!(h.cmd("LTRIM l 2 1"), "+OK\r\n");
        assert!(!h.exists("l"));
    }
}
