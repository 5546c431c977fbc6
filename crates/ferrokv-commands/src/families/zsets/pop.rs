//! ZPOPMIN, ZPOPMAX, ZMPOP and the blocking BZPOPMIN, BZPOPMAX, BZMPOP.
//!
//! All go through one pop step, Redis's `genericZpopCommand`, whose reply shape depends
//! on the command: ZPOPMIN/ZPOPMAX reply a flat `[member, score, ...]` (RESP3 with a
//! count: `[[member, score], ...]`), BZPOPMIN/BZPOPMAX `[key, member, score]`, ZMPOP and
//! BZMPOP `[key, [[member, score], ...]]`. A blocking command that finds nothing asks
//! the server to wait (see [`Blocked`]) and is run again when a key changes; it then
//! serves exactly as it would have with the data there. Inside MULTI it answers the
//! null array at once.

use super::parse::parse_timeout;
use super::{drop_if_empty, is_opt, numkeys_keys, zset_at};
use crate::ctx::Ctx;
use crate::table::Blocked;
use crate::util::{parse_i64, ERR_SYNTAX};
use ferrokv_resp::Args;

/// How a pop replies.
#[derive(Clone, Copy)]
struct Shape {
    /// Name the key first (blocking pops, ZMPOP).
    emit_key: bool,
    /// `[member, score]` pairs instead of a flat list.
    nested: bool,
}

/// The first of `keys` holding a sorted set: `Err(())` after replying WRONGTYPE for
/// a key of another type met first.
fn first_zset<'k>(ctx: &mut Ctx, keys: &[&'k [u8]]) -> Result<Option<&'k [u8]>, ()> {
    let now = ctx.now_ms;
    for &key in keys {
        if let Some(z) = zset_at(ctx.keys.db(key), key, now, ctx.out)? {
            if !z.is_empty() {
                return Ok(Some(key));
            }
        }
    }
    Ok(None)
}

/// Pops up to `count` elements (None: one, the plain form) from the sorted set at
/// `key`, which exists, from the lowest scores or (`max`) the highest.
fn pop_from(ctx: &mut Ctx, key: &[u8], max: bool, count: Option<u64>, shape: Shape) {
    let now = ctx.now_ms;
    let db = ctx.keys.db(key);
    let Ok(Some(z)) = zset_at(db, key, now, ctx.out) else { return };
    if count == Some(0) {
        return ctx.out.array(0);
    }
    let n = count.unwrap_or(1).min(z.len() as u64) as usize;
    let out = &mut *ctx.out;
    match (shape.nested, shape.emit_key) {
        (false, false) => out.array(n * 2),
        (true, false) => out.array(n),
        (false, true) => {
            out.array(n * 2 + 1);
            out.bulk(key);
        }
        (true, true) => {
            out.array(2);
            out.bulk(key);
            out.array(n);
        }
    }
    for _ in 0..n {
        let Some((m, s)) = z.pop(max) else { break };
        if shape.nested {
            out.array(2);
        }
        out.bulk(&m);
        out.double(s);
    }
    drop_if_empty(db, key, now);
    if n > 0 {
        ctx.touch(key);
        ctx.dirty += n as u64 - 1;
    }
    if shape.emit_key {
        // The blocking pops and ZMPOP propagate as ZPOPMIN/ZPOPMAX [count].
        let name: &[u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
        ctx.rewrite(|| {
            let mut r = vec![name.to_vec(), key.to_vec()];
            if count.is_some() {
                r.push(n.to_string().into_bytes());
            }
            r
        });
    }
}

/// ZPOPMIN/ZPOPMAX key [count]
fn zpop(ctx: &mut Ctx, args: &Args, max: bool) {
    if args.len() > 3 {
        return ctx.out.error(ERR_SYNTAX);
    }
    let count = if args.len() == 3 {
        match parse_i64(args.get(2)) {
            Some(n) if n >= 0 => Some(n as u64),
            _ => return ctx.out.error("ERR value is out of range, must be positive"),
        }
    } else {
        None
    };
    let key = args.get(1);
    match first_zset(ctx, &[key]) {
        Err(()) => {}
        Ok(None) => ctx.out.array(0),
        Ok(Some(key)) => {
            let nested = ctx.out.resp3() && count.is_some();
            pop_from(ctx, key, max, count, Shape { emit_key: false, nested });
        }
    }
}

/// ZPOPMIN key [count]
pub fn zpopmin(ctx: &mut Ctx, args: &Args) {
    zpop(ctx, args, false);
}

/// ZPOPMAX key [count]
pub fn zpopmax(ctx: &mut Ctx, args: &Args) {
    zpop(ctx, args, true);
}

/// The parsed tail of ZMPOP/BZMPOP: (keys, max, count).
fn parse_mpop<'a>(ctx: &mut Ctx, args: &Args<'a>, numkeys_idx: usize) -> Option<(Vec<&'a [u8]>, bool, u64)> {
    let numkeys = match parse_i64(args.get(numkeys_idx)) {
        Some(n) if n >= 1 => n as u64,
        _ => {
            ctx.out.error("ERR numkeys should be greater than 0");
            return None;
        }
    };
    let where_idx = match (numkeys_idx as u64 + 1).checked_add(numkeys) {
        Some(w) if w < args.len() as u64 => w as usize,
        _ => {
            ctx.out.error(ERR_SYNTAX);
            return None;
        }
    };
    let max = if is_opt(args.get(where_idx), "min") {
        false
    } else if is_opt(args.get(where_idx), "max") {
        true
    } else {
        ctx.out.error(ERR_SYNTAX);
        return None;
    };
    let mut count = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        if count.is_none() && is_opt(args.get(j), "count") && j + 1 < args.len() {
            j += 1;
            match parse_i64(args.get(j)) {
                Some(n) if n >= 1 => count = Some(n as u64),
                _ => {
                    ctx.out.error("ERR count should be greater than 0");
                    return None;
                }
            }
        } else {
            ctx.out.error(ERR_SYNTAX);
            return None;
        }
        j += 1;
    }
    let keys = (numkeys_idx + 1..where_idx).map(|i| args.get(i)).collect();
    Some((keys, max, count.unwrap_or(1)))
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]
pub fn zmpop(ctx: &mut Ctx, args: &Args) {
    let Some((keys, max, count)) = parse_mpop(ctx, args, 1) else { return };
    match first_zset(ctx, &keys) {
        Err(()) => {}
        Ok(None) => ctx.out.null_array(),
        Ok(Some(key)) => pop_from(ctx, key, max, Some(count), Shape { emit_key: true, nested: true }),
    }
}

/// Key indexes of ZMPOP.
pub fn zmpop_keys(args: &Args) -> Vec<usize> {
    numkeys_keys(args, 1, &[])
}

/// Key indexes of BZMPOP.
pub fn bzmpop_keys(args: &Args) -> Vec<usize> {
    numkeys_keys(args, 2, &[])
}

/// Redis's `blockingGenericZpopCommand`, after the timeout is parsed.
fn blocking_pop(
    ctx: &mut Ctx,
    keys: &[&[u8]],
    max: bool,
    count: Option<u64>,
    nested: bool,
    timeout_ms: u64,
) -> Blocked {
    match first_zset(ctx, keys) {
        Err(()) => Blocked::Served,
        Ok(Some(key)) => {
            pop_from(ctx, key, max, count, Shape { emit_key: true, nested });
            Blocked::Served
        }
        Ok(None) if ctx.may_block => Blocked::Wait { timeout_ms },
        Ok(None) => {
            ctx.out.null_array();
            Blocked::Served
        }
    }
}

fn bzpop(ctx: &mut Ctx, args: &Args, max: bool) -> Blocked {
    let last = args.len() - 1;
    let timeout_ms = match parse_timeout(args.get(last)) {
        Ok(t) => t,
        Err(e) => {
            ctx.out.error(e);
            return Blocked::Served;
        }
    };
    let keys: Vec<&[u8]> = (1..last).map(|i| args.get(i)).collect();
    blocking_pop(ctx, &keys, max, None, false, timeout_ms)
}

/// BZPOPMIN key [key ...] timeout
pub fn bzpopmin(ctx: &mut Ctx, args: &Args) -> Blocked {
    bzpop(ctx, args, false)
}

/// BZPOPMAX key [key ...] timeout
pub fn bzpopmax(ctx: &mut Ctx, args: &Args) -> Blocked {
    bzpop(ctx, args, true)
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]: the timeout is parsed
/// after everything else, as Redis does.
pub fn bzmpop(ctx: &mut Ctx, args: &Args) -> Blocked {
    let Some((keys, max, count)) = parse_mpop(ctx, args, 2) else { return Blocked::Served };
    let timeout_ms = match parse_timeout(args.get(1)) {
        Ok(t) => t,
        Err(e) => {
            ctx.out.error(e);
            return Blocked::Served;
        }
    };
    blocking_pop(ctx, &keys, max, Some(count), true, timeout_ms)
}

#[cfg(test)]
mod tests {
    use crate::table::Blocked;
    use crate::testkit::Harness;

    #[test]
    fn zpop_shapes() {
        let mut h = Harness::new();
        h.cmd("ZADD z 1 a 2 b 3 c");
        assert_eq!(h.cmd("ZPOPMIN z"), "*2\r\n$1\r\na\r\n$1\r\n1\r\n");
        assert_eq!(h.cmd("ZPOPMAX z 5"), "*4\r\n$1\r\nc\r\n$1\r\n3\r\n$1\r\nb\r\n$1\r\n2\r\n");
        assert_eq!(h.dirty, 2);
        assert_eq!(h.encoding("z"), "none");
        assert_eq!(h.cmd("ZPOPMIN z"), "*0\r\n");
        assert_eq!(h.cmd("ZPOPMIN z -1"), "-ERR value is out of range, must be positive\r\n");
        assert_eq!(h.cmd("ZPOPMIN z 1 2"), "-ERR syntax error\r\n");
        h.cmd("ZADD z 1 a");
        assert_eq!(h.cmd("ZPOPMIN z 0"), "*0\r\n");
        let mut h = Harness::resp3();
        h.cmd("ZADD z 1 a 2 b");
        assert_eq!(h.cmd("ZPOPMIN z"), "*2\r\n$1\r\na\r\n,1\r\n");
        assert_eq!(h.cmd("ZPOPMIN z 1"), "*1\r\n*2\r\n$1\r\nb\r\n,2\r\n");
    }

    #[test]
    fn zmpop() {
        let mut h = Harness::new();
        h.cmd("ZADD b 1 x 2 y");
        assert_eq!(
            h.cmd("ZMPOP 2 a b MAX COUNT 5"),
            "*2\r\n$1\r\nb\r\n*2\r\n*2\r\n$1\r\ny\r\n$1\r\n2\r\n*2\r\n$1\r\nx\r\n$1\r\n1\r\n"
        );
        assert_eq!(h.cmd("ZMPOP 2 a b MAX"), "*-1\r\n");
        assert_eq!(h.cmd("ZMPOP 0 a MIN"), "-ERR numkeys should be greater than 0\r\n");
        assert_eq!(h.cmd("ZMPOP 3 a b MIN"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("ZMPOP 1 a MIN COUNT 0"), "-ERR count should be greater than 0\r\n");
        assert_eq!(h.cmd("ZMPOP 1 a MIN COUNT 1 COUNT 1"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("ZMPOP 9223372036854775807 a MIN"), "-ERR syntax error\r\n");
    }

    #[test]
    fn blocking_pops() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("BZPOPMIN a b 0"), "");
        assert_eq!(h.blocked, Some(Blocked::Wait { timeout_ms: 0 }));
        assert_eq!(h.cmd("BZPOPMIN a b 1.5"), "");
        assert_eq!(h.blocked, Some(Blocked::Wait { timeout_ms: 1500 }));
        h.cmd("ZADD b 1 x 2 y");
        assert_eq!(h.cmd("BZPOPMAX a b 0"), "*3\r\n$1\r\nb\r\n$1\r\ny\r\n$1\r\n2\r\n");
        assert_eq!(h.blocked, Some(Blocked::Served));
        assert_eq!(h.cmd("BZMPOP 0 2 a b MIN COUNT 9"), "*2\r\n$1\r\nb\r\n*1\r\n*2\r\n$1\r\nx\r\n$1\r\n1\r\n");
        assert_eq!(h.cmd("BZPOPMIN a -1"), "-ERR timeout is negative\r\n");
        assert_eq!(h.cmd("BZPOPMIN a x"), "-ERR timeout is not a float or out of range\r\n");
        assert_eq!(h.cmd("BZMPOP x 1 a FOO"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("BZMPOP x 1 a MIN"), "-ERR timeout is not a float or out of range\r\n");
        h.cmd("SET s v");
        assert_eq!(h.cmd("BZPOPMIN a s 0"), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
        h.may_block = false;
        assert_eq!(h.cmd("BZPOPMIN a 0"), "*-1\r\n");
        assert_eq!(h.blocked, Some(Blocked::Served));
        let mut h = Harness::resp3();
        h.may_block = false;
        assert_eq!(h.cmd("BZMPOP 0 1 a MIN"), "_\r\n");
    }
}
