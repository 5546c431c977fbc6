//! Expiry commands (Redis's expire.c): setting, reading and removing a key's TTL.
//!
//! Times are absolute unix milliseconds inside; the commands differ only in their
//! unit (seconds or milliseconds) and base (now, or the epoch for the `AT` forms).
//! A time already past deletes the key at once, replying 1, as Redis does.

use crate::ctx::argv;
use crate::util::*;
use crate::Ctx;
use ferrokv_resp::Args;
use ferrokv_store::Expiry;

/// EXPIRE key seconds [NX | XX | GT | LT]
pub fn expire(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now_ms as i64;
    expire_generic(ctx, args, now, Unit::Seconds, "expire")
}

/// PEXPIRE key milliseconds [NX | XX | GT | LT]
pub fn pexpire(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now_ms as i64;
    expire_generic(ctx, args, now, Unit::Millis, "pexpire")
}

/// EXPIREAT key unix-time-seconds [NX | XX | GT | LT]
pub fn expireat(ctx: &mut Ctx, args: &Args) {
    expire_generic(ctx, args, 0, Unit::Seconds, "expireat")
}

/// PEXPIREAT key unix-time-milliseconds [NX | XX | GT | LT]
pub fn pexpireat(ctx: &mut Ctx, args: &Args) {
    expire_generic(ctx, args, 0, Unit::Millis, "pexpireat")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Millis,
}

/// The NX / XX / GT / LT conditions.
#[derive(Default)]
struct Conditions {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

/// Parses the conditions after the time. Redis checks them before the time itself.
fn parse_conditions(args: &Args) -> Result<Conditions, String> {
    let mut c = Conditions::default();
    for a in args.iter().skip(3) {
        if eq_ic(a, "nx") {
            c.nx = true;
        } else if eq_ic(a, "xx") {
            c.xx = true;
        } else if eq_ic(a, "gt") {
            c.gt = true;
        } else if eq_ic(a, "lt") {
            c.lt = true;
        } else {
            return Err(format!("ERR Unsupported option {}", String::from_utf8_lossy(a)));
        }
    }
    if c.nx && (c.xx || c.gt || c.lt) {
        return Err("ERR NX and XX, GT or LT options at the same time are not compatible".into());
    }
    if c.gt && c.lt {
        return Err("ERR GT and LT options at the same time are not compatible".into());
    }
    Ok(c)
}

fn expire_generic(ctx: &mut Ctx, args: &Args, base_ms: i64, unit: Unit, name: &str) {
    let cond = match parse_conditions(args) {
        Ok(c) => c,
        Err(e) => return ctx.out.error(&e),
    };
    let Some(mut when) = parse_i64(args.get(2)) else {
        return ctx.out.error(ERR_NOT_INT);
    };
    let invalid = || format!("ERR invalid expire time in '{name}' command");
    if unit == Unit::Seconds {
        match when.checked_mul(1000) {
            Some(ms) => when = ms,
            None => return ctx.out.error(&invalid()),
        }
    }
    let Some(when) = when.checked_add(base_ms) else {
        return ctx.out.error(&invalid());
    };
    let (key, now) = (args.get(1), ctx.now_ms);
    let db = ctx.keys.db(key);
    let Some(e) = db.get(key, now) else {
        return ctx.out.integer(0);
    };
    // No TTL counts as an infinite one: GT never beats it, LT always does.
    let current = e.expire_at;
    let refused = (cond.nx && current != 0)
        || (cond.xx && current == 0)
        || (cond.gt && (current == 0 || when <= current as i64))
        || (cond.lt && current != 0 && when >= current as i64);
    if refused {
        return ctx.out.integer(0);
    }
    // Propagated as DEL when the time is past, else as PEXPIREAT with the absolute
    // time in place of the given one and the conditions kept (Redis 7.0's rewrite).
    // Redis's checkAlreadyExpired: only a master deletes at once; a replica keeps the
    // key with its past time until the master's DEL.
    if when <= now as i64 && db.expiry == Expiry::Delete {
        db.remove(key, now);
        ctx.rewrite(|| argv(&[b"DEL", key]));
    } else {
        db.set_expire(key, when as u64);
        if base_ms != 0 || unit == Unit::Seconds {
            ctx.rewrite(|| {
                let mut r = argv(&[b"PEXPIREAT", key, when.to_string().as_bytes()]);
                r.extend(args.iter().skip(3).map(|a| a.to_vec()));
                r
            });
        }
    }
    ctx.touch(key);
    ctx.out.integer(1);
}

/// TTL key
///
/// Seconds to live, rounded to the nearest second; -1 without a TTL, -2 without the
/// key.
pub fn ttl(ctx: &mut Ctx, args: &Args) {
    ttl_generic(ctx, args, false, false)
}

/// PTTL key
pub fn pttl(ctx: &mut Ctx, args: &Args) {
    ttl_generic(ctx, args, true, false)
}

/// EXPIRETIME key
///
/// The absolute expiry time in unix seconds (rounded); -1 / -2 as TTL.
pub fn expiretime(ctx: &mut Ctx, args: &Args) {
    ttl_generic(ctx, args, false, true)
}

/// PEXPIRETIME key
pub fn pexpiretime(ctx: &mut Ctx, args: &Args) {
    ttl_generic(ctx, args, true, true)
}

fn ttl_generic(ctx: &mut Ctx, args: &Args, millis: bool, absolute: bool) {
    let (key, now) = (args.get(1), ctx.now_ms);
    // Reading a TTL is not an access (Redis's LOOKUP_NOTOUCH).
    let Some(e) = ctx.keys.db(key).peek(key, now) else {
        return ctx.out.integer(-2);
    };
    if e.expire_at == 0 {
        return ctx.out.integer(-1);
    }
    let ms = if absolute { e.expire_at as i64 } else { (e.expire_at as i64 - now as i64).max(0) };
    // Rounded without overflow near i64::MAX, where Redis's C arithmetic gives the
    // same result.
    ctx.out.integer(if millis { ms } else { ((ms as i128 + 500) / 1000) as i64 });
}

/// PERSIST key
///
/// Removes the TTL; replies 1 if there was one, else 0.
pub fn persist(ctx: &mut Ctx, args: &Args) {
    let (key, now) = (args.get(1), ctx.now_ms);
    let db = ctx.keys.db(key);
    if db.get(key, now).is_none() || !db.persist(key) {
        return ctx.out.integer(0);
    }
    ctx.touch(key);
    ctx.out.integer(1);
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;

    #[test]
    fn set_and_read_ttls() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET k v");
        assert_eq!(h.cmd("TTL k"), ":-1\r\n");
        assert_eq!(h.cmd("PTTL k"), ":-1\r\n");
        assert_eq!(h.cmd("EXPIRETIME k"), ":-1\r\n");
        assert_eq!(h.cmd("TTL nokey"), ":-2\r\n");
        assert_eq!(h.cmd("PEXPIRETIME nokey"), ":-2\r\n");
        assert_eq!(h.cmd("EXPIRE k 100"), ":1\r\n");
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("TTL k"), ":100\r\n");
        assert_eq!(h.cmd("PTTL k"), ":100000\r\n");
        assert_eq!(h.cmd("PEXPIRETIME k"), format!(":{}\r\n", h.now + 100_000));
        assert_eq!(h.cmd("EXPIRETIME k"), format!(":{}\r\n", (h.now + 100_000) / 1000));
        assert_eq!(h.cmd("PEXPIRE k 1500"), ":1\r\n");
        h.now += 1;
        // 1499 ms round to 1 s; 1500 to 2.
        assert_eq!(h.cmd("TTL k"), ":1\r\n");
        h.now -= 1;
        assert_eq!(h.cmd("TTL k"), ":2\r\n");
        assert_eq!(h.cmd("PEXPIREAT k 1700000009999"), ":1\r\n");
        assert_eq!(h.cmd("EXPIRETIME k"), ":1700000010\r\n");
        assert_eq!(h.cmd("EXPIREAT k 1700000100"), ":1\r\n");
        assert_eq!(h.cmd("PTTL k"), ":100000\r\n");
        assert_eq!(h.cmd("EXPIRE nokey 10"), ":0\r\n");
        assert_eq!(h.dirty, 0);
        h.db.check_invariants();
    }

    #[test]
    fn past_times_delete() {
        let mut h = Harness::with_seed(42);
        for cmd in ["EXPIRE k 0", "EXPIRE k -1", "PEXPIRE k 0", "EXPIREAT k 1", "PEXPIREAT k 1700000000000"] {
            h.cmd("SET k v");
            h.db.watch(b"k");
            assert_eq!(h.cmd(cmd), ":1\r\n", "{cmd}");
            assert_eq!(h.cmd("EXISTS k"), ":0\r\n", "{cmd}");
            assert_eq!(h.dirty, 0);
            assert_eq!(h.db.watch_version(b"k"), 1, "{cmd}");
            h.db.unwatch(b"k");
        }
        assert_eq!(h.db.len(), 0);
        h.db.check_invariants();
    }

    #[test]
    fn keys_expire() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET k v");
        h.cmd("PEXPIRE k 100");
        h.now += 99;
        assert_eq!(h.cmd("PTTL k"), ":1\r\n");
        h.now += 1;
        assert_eq!(h.cmd("PTTL k"), ":-2\r\n");
        assert_eq!(h.cmd("GET k"), "$-1\r\n");
    }

    #[test]
    fn conditions() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET a 1");
        assert_eq!(h.cmd("EXPIRE a 10 XX"), ":0\r\n");
        assert_eq!(h.cmd("EXPIRE a 10 GT"), ":0\r\n");
        assert_eq!(h.cmd("EXPIRE a 10 LT"), ":1\r\n");
        assert_eq!(h.cmd("EXPIRE a 20 NX"), ":0\r\n");
        assert_eq!(h.cmd("EXPIRE a 20 xx"), ":1\r\n");
        assert_eq!(h.cmd("EXPIRE a 20 gt"), ":0\r\n");
        assert_eq!(h.cmd("EXPIRE a 21 gt"), ":1\r\n");
        assert_eq!(h.cmd("EXPIRE a 21 lt"), ":0\r\n");
        assert_eq!(h.cmd("EXPIRE a 5 lt xx"), ":1\r\n");
        assert_eq!(h.cmd("TTL a"), ":5\r\n");
        assert_eq!(h.cmd("EXPIRE a 1 lt lt"), ":1\r\n");
        assert_eq!(h.cmd("PERSIST a"), ":1\r\n");
        assert_eq!(h.cmd("EXPIRE a 7 NX"), ":1\r\n");
        assert_eq!(h.cmd("TTL a"), ":7\r\n");
        // LT against no TTL always passes, even with a past time (which deletes).
        h.cmd("PERSIST a");
        assert_eq!(h.cmd("EXPIRE a -1 LT"), ":1\r\n");
        assert_eq!(h.cmd("EXISTS a"), ":0\r\n");
    }

    #[test]
    fn option_errors() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET a 1");
        let incompatible = "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n";
        assert_eq!(h.cmd("EXPIRE a 10 nx xx"), incompatible);
        assert_eq!(h.cmd("EXPIRE a 1 nx gt"), incompatible);
        assert_eq!(h.cmd("EXPIRE a 10 gt lt"), "-ERR GT and LT options at the same time are not compatible\r\n");
        assert_eq!(h.cmd("EXPIRE nokey 1 gt lt"), "-ERR GT and LT options at the same time are not compatible\r\n");
        assert_eq!(h.cmd("EXPIRE a 10 foo"), "-ERR Unsupported option foo\r\n");
        // Options come before the time.
        assert_eq!(h.cmd("EXPIRE a abc foo"), "-ERR Unsupported option foo\r\n");
        assert_eq!(h.cmd("EXPIRE a abc"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("EXPIRE a 1.5"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("EXPIRE a"), "-ERR wrong number of arguments for 'expire' command\r\n");
    }

    #[test]
    fn overflow_errors_name_the_command() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET a 1");
        assert_eq!(h.cmd("EXPIRE a 9223372036854775807"), "-ERR invalid expire time in 'expire' command\r\n");
        assert_eq!(h.cmd("EXPIRE a 9223372036854774"), "-ERR invalid expire time in 'expire' command\r\n");
        assert_eq!(h.cmd("EXPIRE a -9223372036854775808"), "-ERR invalid expire time in 'expire' command\r\n");
        assert_eq!(h.cmd("PEXPIRE a 9223372036854775807"), "-ERR invalid expire time in 'pexpire' command\r\n");
        assert_eq!(h.cmd("EXPIREAT a 9223372036854776"), "-ERR invalid expire time in 'expireat' command\r\n");
        // The largest times still fit.
        assert_eq!(h.cmd("EXPIREAT a 9223372036854775"), ":1\r\n");
        assert_eq!(h.cmd("EXPIRETIME a"), ":9223372036854775\r\n");
        assert_eq!(h.cmd("PEXPIREAT a 9223372036854775807"), ":1\r\n");
        assert_eq!(h.cmd("PEXPIRETIME a"), ":9223372036854775807\r\n");
        assert_eq!(h.cmd("EXPIRETIME a"), ":9223372036854776\r\n");
        assert_eq!(h.cmd("PTTL a"), format!(":{}\r\n", i64::MAX - h.now as i64));
    }

    #[test]
    fn persist() {
        let mut h = Harness::with_seed(42);
        assert_eq!(h.cmd("PERSIST nokey"), ":0\r\n");
        h.cmd("SET k v");
        assert_eq!(h.cmd("PERSIST k"), ":0\r\n");
        assert_eq!(h.dirty, 0);
        h.cmd("EXPIRE k 10");
        assert_eq!(h.cmd("PERSIST k"), ":1\r\n");
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("TTL k"), ":-1\r\n");
        assert_eq!(h.db.expire_keys_count(), 0);
    }
}
