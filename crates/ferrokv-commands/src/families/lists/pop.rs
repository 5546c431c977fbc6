//! Commands that take elements off list ends: LPOP, RPOP, LMPOP, LMOVE, RPOPLPUSH, and
//! the steps the blocking forms share with them (Redis serves a woken BLPOP exactly as
//! an LPOP that found data).

use super::*;
use crate::util::arity_error;
use std::ops::Range;

/// Pops one element at `end` of the list at `key`, deleting the key when it empties.
/// `Ok(None)` when the key is missing; `Err(())` after replying WRONGTYPE.
pub(super) fn pop_one(ctx: &mut Ctx, key: &[u8], end: End) -> Result<Option<Vec<u8>>, ()> {
    let now = ctx.now_ms;
    let db = ctx.keys.db(key);
    let Some(l) = read_list(db, key, now, ctx.out)? else { return Ok(None) };
    let v = match end {
        End::Left => l.pop_front(),
        End::Right => l.pop_back(),
    };
    if l.is_empty() {
        db.remove(key, now);
    }
    ctx.touch(key);
    Ok(v)
}

/// Pops up to `count` (> 0) elements at `end` of the list at `key` and replies them in
/// the order they were popped, after `[key, ` when `with_key` (LMPOP's shape). `Ok(false)`
/// when the key is missing (nothing replied); `Err(())` after replying WRONGTYPE.
pub(super) fn pop_range(ctx: &mut Ctx, key: &[u8], end: End, count: usize, with_key: bool) -> Result<bool, ()> {
    let now = ctx.now_ms;
    let db = ctx.keys.db(key);
    let Some(l) = read_list(db, key, now, ctx.out)? else { return Ok(false) };
    let len = l.len();
    let n = count.min(len);
    if with_key {
        ctx.out.array(2);
        ctx.out.bulk(key);
    }
    match end {
        End::Left => {
            reply_elements(ctx.out, l.range(0, n));
            l.remove_range(0, n);
        }
        End::Right => {
            reply_elements(ctx.out, l.range(len - n, len).rev());
            l.remove_range(len - n, n);
        }
    }
    if l.is_empty() {
        db.remove(key, now);
    }
    ctx.touch(key);
    ctx.dirty += (n as u64).saturating_sub(1);
    if with_key {
        // LMPOP and BLMPOP propagate as [LR]POP key count.
        let name: &[u8] = if end == End::Left { b"LPOP" } else { b"RPOP" };
        ctx.rewrite(|| vec![name.to_vec(), key.to_vec(), n.to_string().into_bytes()]);
    }
    Ok(true)
}

/// Whether `key` holds a list (`Some(true)`), another type (`Some(false)`) or nothing.
pub(super) fn holds_list(ctx: &mut Ctx, key: &[u8]) -> Option<bool> {
    let now = ctx.now_ms;
    ctx.keys.db(key).get(key, now).map(|e| matches!(e.value, Value::List(_)))
}

/// LPOP/RPOP key [count]: a bulk string without count, an array with one (null array
/// for a missing key, empty array for count 0).
fn pop(ctx: &mut Ctx, args: &Args, end: End, name: &str) {
    if args.len() > 3 {
        return ctx.out.error(&arity_error(name));
    }
    let key = args.get(1);
    let count = if args.len() == 3 {
        match parse_at_least(ctx.out, args.get(2), 0, "ERR value is out of range, must be positive") {
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            None => return,
        }
    } else {
        None
    };
    match count {
        None => match pop_one(ctx, key, end) {
            Ok(Some(v)) => ctx.out.bulk(&v),
            Ok(None) => ctx.out.null(),
            Err(()) => {}
        },
        Some(0) => {
            let now = ctx.now_ms;
            match read_list(ctx.keys.db(key), key, now, ctx.out) {
                Ok(Some(_)) => ctx.out.array(0),
                Ok(None) => ctx.out.null_array(),
                Err(()) => {}
            }
        }
        Some(n) => {
            if let Ok(false) = pop_range(ctx, key, end, n, false) {
                ctx.out.null_array();
            }
        }
    }
}

/// LPOP key [count]
pub fn lpop(ctx: &mut Ctx, args: &Args) {
    pop(ctx, args, End::Left, "lpop")
}

/// RPOP key [count]
pub fn rpop(ctx: &mut Ctx, args: &Args) {
    pop(ctx, args, End::Right, "rpop")
}

/// The arguments of LMPOP and BLMPOP after `numkeys` at `numkeys_idx`: the indexes of
/// the keys, the end and the count, parsed in Redis's order with its errors.
pub(super) fn parse_mpop(out: &mut ReplyBuf, args: &Args, numkeys_idx: usize) -> Option<(Range<usize>, End, usize)> {
    let numkeys = parse_at_least(out, args.get(numkeys_idx), 1, "ERR numkeys should be greater than 0")?;
    let where_idx = match (numkeys as u64).checked_add(numkeys_idx as u64 + 1) {
        Some(w) if w < args.len() as u64 => w as usize,
        _ => {
            out.error(ERR_SYNTAX);
            return None;
        }
    };
    let end = parse_end(out, args.get(where_idx))?;
    let mut count = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        if count.is_none() && is_opt(args.get(j), "count") && j + 1 < args.len() {
            j += 1;
            count = Some(parse_at_least(out, args.get(j), 1, "ERR count should be greater than 0")?);
        } else {
            out.error(ERR_SYNTAX);
            return None;
        }
        j += 1;
    }
    let count = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    Some((numkeys_idx + 1..where_idx, end, count))
}

/// Pops from the first of `keys` that holds a list, replying `[key, [elements]]`.
/// False when none does (nothing replied); true after a reply, WRONGTYPE included
/// (a key of another type before any list stops the search, as in Redis).
pub(super) fn mpop_first(ctx: &mut Ctx, args: &Args, keys: Range<usize>, end: End, count: usize) -> bool {
    keys.into_iter().any(|i| pop_range(ctx, args.get(i), end, count, true) != Ok(false))
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]
pub fn lmpop(ctx: &mut Ctx, args: &Args) {
    let Some((keys, end, count)) = parse_mpop(ctx.out, args, 1) else { return };
    if !mpop_first(ctx, args, keys, end, count) {
        ctx.out.null_array();
    }
}

/// LMPOP's key indexes: the `numkeys` arguments after index 1.
pub fn lmpop_keys(args: &Args) -> Vec<usize> {
    numkeys_keys(args, 1)
}

/// Moves one element from `src`'s `from` end to `dst`'s `to` end and replies it as a
/// bulk string; a null reply when `src` is missing (Redis's `lmoveGenericCommand`).
/// Both keys are type-checked before anything moves. `src` and `dst` may be the same
/// key (a rotation) and may live in different databases.
pub(super) fn move_element(ctx: &mut Ctx, src: &[u8], dst: &[u8], from: End, to: End) {
    match holds_list(ctx, src) {
        None => return ctx.out.null(),
        Some(false) => return ctx.out.error(ERR_WRONGTYPE),
        Some(true) => {}
    }
    if holds_list(ctx, dst) == Some(false) {
        return ctx.out.error(ERR_WRONGTYPE);
    }
    let now = ctx.now_ms;
    // The source stays in place, even empty, until the push: with src == dst the
    // element goes back into the same list (and the key keeps its TTL).
    let value = match ctx.keys.db(src).get(src, now).map(|e| &mut e.value) {
        Some(Value::List(l)) => match from {
            End::Left => l.pop_front(),
            End::Right => l.pop_back(),
        },
        _ => None,
    };
    let Some(value) = value else { return ctx.out.null() };
    let fill = ctx.cfg.list_max_listpack_size;
    let db = ctx.keys.db(dst);
    match db.get(dst, now).map(|e| &mut e.value) {
        Some(Value::List(l)) => match to {
            End::Left => l.push_front(&value),
            End::Right => l.push_back(&value),
        },
        _ => {
            let mut l = ListValue::new(fill);
            l.push_back(&value);
            db.set(dst, Value::List(Box::new(l)), 0);
        }
    }
    ctx.out.bulk(&value);
    delete_if_empty(ctx, src);
    ctx.touch(dst);
    ctx.touch(src);
    // Redis counts one change for the move.
    ctx.dirty -= 1;
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT
pub fn lmove(ctx: &mut Ctx, args: &Args) {
    let Some(from) = parse_end(ctx.out, args.get(3)) else { return };
    let Some(to) = parse_end(ctx.out, args.get(4)) else { return };
    move_element(ctx, args.get(1), args.get(2), from, to);
}

/// RPOPLPUSH source destination
pub fn rpoplpush(ctx: &mut Ctx, args: &Args) {
    move_element(ctx, args.get(1), args.get(2), End::Right, End::Left);
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;

    #[test]
    fn pop_with_and_without_count() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("LPOP l"), "$-1\r\n");
        assert_eq!(h.cmd("LPOP l 1"), "*-1\r\n");
        assert_eq!(h.cmd("LPOP l 0"), "*-1\r\n");
        assert_eq!(h.cmd("LPOP l abc"), "-ERR value is out of range, must be positive\r\n");
        assert_eq!(h.cmd("RPOP l -1"), "-ERR value is out of range, must be positive\r\n");
        assert_eq!(h.cmd("LPOP l 1 2"), "-ERR wrong number of arguments for 'lpop' command\r\n");
        h.cmd("RPUSH l a b c d e");
        assert_eq!(h.cmd("LPOP l 0"), "*0\r\n");
        assert_eq!(h.cmd("LPOP l"), "$1\r\na\r\n");
        assert_eq!(h.cmd("RPOP l"), "$1\r\ne\r\n");
        assert_eq!(h.cmd("RPOP l 2"), "*2\r\n$1\r\nd\r\n$1\r\nc\r\n");
        assert_eq!(h.dirty, 2);
        assert_eq!(h.cmd("LPOP l 100"), "*1\r\n$1\r\nb\r\n");
        assert!(!h.exists("l"));
        let mut h = Harness::resp3();
        assert_eq!(h.cmd("LPOP l 2"), "_\r\n");
        assert_eq!(h.cmd("RPOP l"), "_\r\n");
    }

    #[test]
    fn lmpop_parses_like_redis() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("LMPOP 0 l LEFT"), "-ERR numkeys should be greater than 0\r\n");
        assert_eq!(h.cmd("LMPOP abc l LEFT"), "-ERR numkeys should be greater than 0\r\n");
        assert_eq!(h.cmd("LMPOP 2 l LEFT"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("LMPOP 9223372036854775807 l LEFT"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("LMPOP 1 l MIDDLE"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("LMPOP 1 l LEFT COUNT 0"), "-ERR count should be greater than 0\r\n");
        assert_eq!(h.cmd("LMPOP 1 l LEFT COUNT x"), "-ERR count should be greater than 0\r\n");
        assert_eq!(h.cmd("LMPOP 1 l LEFT COUNT 1 COUNT 1"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("LMPOP 1 l LEFT COUNT"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("LMPOP 2 x l RIGHT"), "*-1\r\n");
        h.cmd("RPUSH l a b c");
        assert_eq!(h.cmd("LMPOP 2 x l right COUNT 2"), "*2\r\n$1\r\nl\r\n*2\r\n$1\r\nc\r\n$1\r\nb\r\n");
        assert_eq!(h.cmd("LMPOP 2 l x LEFT count 5"), "*2\r\n$1\r\nl\r\n*1\r\n$1\r\na\r\n");
        assert!(!h.exists("l"));
    }

    #[test]
    fn lmove_between_and_within_lists() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("LMOVE src dst UP LEFT"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("LMOVE src dst LEFT RIGHT"), "$-1\r\n");
        assert!(!h.exists("dst"));
        h.cmd("RPUSH src a b c");
        assert_eq!(h.cmd("LMOVE src dst LEFT RIGHT"), "$1\r\na\r\n");
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("RPOPLPUSH src dst"), "$1\r\nc\r\n");
        assert_eq!((h.list("src"), h.list("dst")), ("b".into(), "c a".into()));
        assert_eq!(h.cmd("LMOVE dst dst LEFT RIGHT"), "$1\r\nc\r\n");
        assert_eq!(h.list("dst"), "a c");
        assert_eq!(h.cmd("RPOPLPUSH src src"), "$1\r\nb\r\n");
        assert_eq!(h.list("src"), "b");
        assert_eq!(h.cmd("LMOVE src dst RIGHT LEFT"), "$1\r\nb\r\n");
        assert!(!h.exists("src"));
        assert_eq!(h.list("dst"), "b a c");
    }

    #[test]
    fn lmove_onto_itself_keeps_the_ttl() {
        let mut h = Harness::new();
        h.cmd("RPUSH l only");
        let at = h.now + 100_000;
        h.db.set_expire(b"l", at);
        assert_eq!(h.cmd("LMOVE l l LEFT LEFT"), "$4\r\nonly\r\n");
        assert_eq!(h.db.get(b"l", h.now).map(|e| e.expire_at), Some(at));
    }
}
