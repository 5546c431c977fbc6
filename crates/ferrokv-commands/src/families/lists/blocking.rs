//! The blocking list commands: BLPOP, BRPOP, BLMPOP, BLMOVE, BRPOPLPUSH.
//!
//! Each is a pure function run again by the server whenever one of its keys changes
//! (see [`Blocked`]): with data, it serves exactly as its non-blocking form would (the
//! reply a woken Redis client gets is the one it would have got had the data been there
//! at once); without, it replies nothing and asks to wait, or, when it may not block
//! (inside MULTI), answers the timeout reply at once. Redis parses the timeout of BLPOP
//! and BRPOP first, of BLMOVE after its directions, of BLMPOP after everything else.

use super::pop::{holds_list, move_element, mpop_first, parse_mpop, pop_one};
use super::*;
use crate::families::strings::LongDouble;
use crate::table::Blocked;

/// Redis's `getTimeoutFromObjectOrReply` in seconds: the timeout in milliseconds, 0
/// for none. Parsed as a C `long double` and rounded up to a millisecond; anything
/// too big for a 64-bit integer of milliseconds (`inf` included) ends up negative,
/// as the x87 conversion makes it in Redis 7.0.
pub(super) fn parse_timeout(out: &mut ReplyBuf, a: &[u8]) -> Option<u64> {
    timeout_ms(a).map_err(|e| out.error(e)).ok()
}

/// [`parse_timeout`] without the reply: the milliseconds, or the error text. Shared by
/// every blocking command (the sorted sets' BZPOP* and BZMPOP too).
pub(crate) fn timeout_ms(a: &[u8]) -> Result<u64, &'static str> {
    let t = LongDouble::parse(a).ok_or("ERR timeout is not a float or out of range")?;
    let ms = ceil_millis(t);
    if ms < 0 {
        return Err("ERR timeout is negative");
    }
    Ok(ms as u64)
}

/// `(long long) ceill(t * 1000.0)` on x86-64: the product is rounded to a 64-bit
/// significand, and a result outside i64 converts to i64::MIN.
fn ceil_millis(t: LongDouble) -> i64 {
    let LongDouble::Finite { neg, mant, exp } = t else { return i64::MIN };
    if mant == 0 {
        return 0;
    }
    let mut q = mant as u128 * 1000;
    let mut e = exp;
    let bits = 128 - q.leading_zeros();
    if bits > 64 {
        let s = bits - 64;
        let rem = q & ((1u128 << s) - 1);
        let half = 1u128 << (s - 1);
        q >>= s;
        e += s as i64;
        if rem > half || (rem == half && q & 1 == 1) {
            q += 1;
            if q >> 64 != 0 {
                q >>= 1;
                e += 1;
            }
        }
    }
    // |t * 1000| = q * 2^e; ceil(-x) = -floor(x).
    let (int, frac) = if e >= 0 {
        if e >= 64 {
            return i64::MIN;
        }
        (q << e, false)
    } else if -e >= 128 {
        (0, true)
    } else {
        let s = (-e) as u32;
        (q >> s, q & ((1u128 << s) - 1) != 0)
    };
    let magnitude = if neg { int } else { int + frac as u128 };
    if magnitude > i64::MAX as u128 {
        return i64::MIN;
    }
    if neg {
        -(magnitude as i64)
    } else {
        magnitude as i64
    }
}

/// Nothing to serve: wait, or (inside MULTI) answer `timed_out` at once.
fn wait_or(ctx: &mut Ctx, timeout_ms: u64, timed_out: fn(&mut ReplyBuf)) -> Blocked {
    if ctx.may_block {
        Blocked::Wait { timeout_ms }
    } else {
        timed_out(ctx.out);
        Blocked::Served
    }
}

/// BLPOP/BRPOP: pops from the first key holding a list, replying `[key, element]`.
fn bpop(ctx: &mut Ctx, args: &Args, end: End) -> Blocked {
    let last = args.len() - 1;
    let Some(timeout_ms) = parse_timeout(ctx.out, args.get(last)) else { return Blocked::Served };
    for i in 1..last {
        let key = args.get(i);
        match pop_one(ctx, key, end) {
            Ok(None) => continue,
            Ok(Some(v)) => {
                ctx.out.array(2);
                ctx.out.bulk(key);
                ctx.out.bulk(&v);
                let name: &[u8] = if end == End::Left { b"LPOP" } else { b"RPOP" };
                ctx.rewrite(|| vec![name.to_vec(), key.to_vec()]);
                return Blocked::Served;
            }
            Err(()) => return Blocked::Served,
        }
    }
    wait_or(ctx, timeout_ms, ReplyBuf::null_array)
}

/// BLPOP key [key ...] timeout
pub fn blpop(ctx: &mut Ctx, args: &Args) -> Blocked {
    bpop(ctx, args, End::Left)
}

/// BRPOP key [key ...] timeout
pub fn brpop(ctx: &mut Ctx, args: &Args) -> Blocked {
    bpop(ctx, args, End::Right)
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]: `[key, [elements]]`.
pub fn blmpop(ctx: &mut Ctx, args: &Args) -> Blocked {
    let Some((keys, end, count)) = parse_mpop(ctx.out, args, 2) else { return Blocked::Served };
    let Some(timeout_ms) = parse_timeout(ctx.out, args.get(1)) else { return Blocked::Served };
    if mpop_first(ctx, args, keys, end, count) {
        return Blocked::Served;
    }
    wait_or(ctx, timeout_ms, ReplyBuf::null_array)
}

/// BLMPOP's key indexes: the `numkeys` arguments after index 2.
pub fn blmpop_keys(args: &Args) -> Vec<usize> {
    numkeys_keys(args, 2)
}

/// BLMOVE/BRPOPLPUSH once parsed. Inside MULTI a missing source answers a null bulk
/// string, as Redis 7.0 does (after a real wait its timeout reply is a null array).
fn bmove(ctx: &mut Ctx, args: &Args, from: End, to: End, timeout_ms: u64) -> Blocked {
    let (src, dst) = (args.get(1), args.get(2));
    match holds_list(ctx, src) {
        Some(false) => {
            ctx.out.error(ERR_WRONGTYPE);
            Blocked::Served
        }
        None => wait_or(ctx, timeout_ms, ReplyBuf::null),
        Some(true) => {
            move_element(ctx, src, dst, from, to);
            // Propagated as its non-blocking form.
            let side = |e: End| if e == End::Left { b"left".to_vec() } else { b"right".to_vec() };
            if args.len() == 4 {
                ctx.rewrite(|| vec![b"RPOPLPUSH".to_vec(), src.to_vec(), dst.to_vec()]);
            } else {
                ctx.rewrite(|| vec![b"LMOVE".to_vec(), src.to_vec(), dst.to_vec(), side(from), side(to)]);
            }
            Blocked::Served
        }
    }
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout
pub fn blmove(ctx: &mut Ctx, args: &Args) -> Blocked {
    let Some(from) = parse_end(ctx.out, args.get(3)) else { return Blocked::Served };
    let Some(to) = parse_end(ctx.out, args.get(4)) else { return Blocked::Served };
    let Some(timeout_ms) = parse_timeout(ctx.out, args.get(5)) else { return Blocked::Served };
    bmove(ctx, args, from, to, timeout_ms)
}

/// BRPOPLPUSH source destination timeout
pub fn brpoplpush(ctx: &mut Ctx, args: &Args) -> Blocked {
    let Some(timeout_ms) = parse_timeout(ctx.out, args.get(3)) else { return Blocked::Served };
    bmove(ctx, args, End::Right, End::Left, timeout_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Harness;

    fn timeout(s: &str) -> Result<u64, String> {
        let mut out = ReplyBuf::default();
        parse_timeout(&mut out, s.as_bytes()).ok_or_else(|| String::from_utf8_lossy(&out.buf).into_owned())
    }

    #[test]
    fn timeouts_parse_as_redis_7_0() {
        assert_eq!(timeout("0"), Ok(0));
        assert_eq!(timeout("1"), Ok(1000));
        assert_eq!(timeout("0.001"), Ok(1));
        assert_eq!(timeout("0.0001"), Ok(1));
        assert_eq!(timeout("1.5"), Ok(1500));
        assert_eq!(timeout("0.1"), Ok(100));
        assert_eq!(timeout("0x10"), Ok(16000));
        assert_eq!(timeout("1e-400"), Ok(1));
        assert_eq!(timeout("-0.0001"), Ok(0), "ceil(-0.1) is -0: wait forever");
        // -0.001 * 1000 rounds to just above -1 in a long double: Redis 7.0.15 waits
        // forever on it too.
        assert_eq!(timeout("-0.001"), Ok(0));
        assert_eq!(timeout("9.2e15"), Ok(9_200_000_000_000_000_000));
        let negative = Err("-ERR timeout is negative\r\n".to_string());
        for t in ["-1", "-0.002", "-0.0015", "inf", "-inf", "1e20", "9223372036854775807", "1e400", "9.3e15"] {
            assert_eq!(timeout(t), negative, "{t}");
        }
        let not_float = Err("-ERR timeout is not a float or out of range\r\n".to_string());
        for t in ["abc", "", " 1", "nan", "1x"] {
            assert_eq!(timeout(t), not_float, "{t:?}");
        }
    }

    #[test]
    fn ceil_millis_rounds_the_product_first() {
        // 0.001 is not exact: its product with 1000 rounds to 1 - 2^-64.
        assert_eq!(ceil_millis(LongDouble::parse(b"0.001").unwrap()), 1);
        assert_eq!(ceil_millis(LongDouble::parse(b"-0.001").unwrap()), 0);
        assert_eq!(ceil_millis(LongDouble::parse(b"0.002").unwrap()), 2);
        assert_eq!(ceil_millis(LongDouble::parse(b"0.0015").unwrap()), 2);
        assert_eq!(ceil_millis(LongDouble::parse(b"-1.5").unwrap()), -1500);
        assert_eq!(ceil_millis(LongDouble::parse(b"-0.0015").unwrap()), -1);
        assert_eq!(ceil_millis(LongDouble::parse(b"9223372036854775.807").unwrap()), i64::MAX);
        assert_eq!(ceil_millis(LongDouble::parse(b"9223372036854775.808").unwrap()), i64::MIN);
    }

    #[test]
    fn serve_at_once_when_data_is_there() {
        let mut h = Harness::new();
        h.cmd("RPUSH b x y");
        assert_eq!(h.cmd("BLPOP a b 0"), "*2\r\n$1\r\nb\r\n$1\r\nx\r\n");
        assert_eq!(h.blocked, Some(Blocked::Served));
        assert_eq!(h.cmd("BRPOP a b 0"), "*2\r\n$1\r\nb\r\n$1\r\ny\r\n");
        assert!(!h.exists("b"));
        h.cmd("RPUSH c 1 2 3");
        assert_eq!(h.cmd("BLMPOP 0 2 a c RIGHT COUNT 2"), "*2\r\n$1\r\nc\r\n*2\r\n$1\r\n3\r\n$1\r\n2\r\n");
        assert_eq!(h.cmd("BLMOVE c d LEFT RIGHT 0"), "$1\r\n1\r\n");
        assert_eq!(h.cmd("BRPOPLPUSH d e 0"), "$1\r\n1\r\n");
        assert_eq!(h.list("e"), "1");
        assert!(!h.exists("c") && !h.exists("d"));
    }

    #[test]
    fn wait_without_replying_then_serve_when_run_again() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("BLPOP a b 1.5"), "");
        assert_eq!(h.blocked, Some(Blocked::Wait { timeout_ms: 1500 }));
        assert_eq!(h.cmd("BLMOVE a d LEFT RIGHT 0"), "");
        assert_eq!(h.blocked, Some(Blocked::Wait { timeout_ms: 0 }));
        assert_eq!(h.cmd("BRPOPLPUSH a d 2"), "");
        assert_eq!(h.cmd("BLMPOP 0.01 1 a LEFT"), "");
        assert_eq!(h.blocked, Some(Blocked::Wait { timeout_ms: 10 }));
        // A push makes the server run the command again: it serves as if the data had
        // been there.
        h.cmd("RPUSH b v");
        assert_eq!(h.cmd("BLPOP a b 1.5"), "*2\r\n$1\r\nb\r\n$1\r\nv\r\n");
        assert_eq!(h.blocked, Some(Blocked::Served));
    }

    #[test]
    fn inside_multi_answer_the_timeout_reply_at_once() {
        let mut h = Harness::new();
        h.may_block = false;
        assert_eq!(h.cmd("BLPOP a 0"), "*-1\r\n");
        assert_eq!(h.blocked, Some(Blocked::Served));
        assert_eq!(h.cmd("BRPOP a b 0"), "*-1\r\n");
        assert_eq!(h.cmd("BLMPOP 0 1 a LEFT"), "*-1\r\n");
        assert_eq!(h.cmd("BLMOVE a b LEFT LEFT 0"), "$-1\r\n");
        assert_eq!(h.cmd("BRPOPLPUSH a b 0"), "$-1\r\n");
        let mut h = Harness::resp3();
        h.may_block = false;
        assert_eq!(h.cmd("BLPOP a 0"), "_\r\n");
        assert_eq!(h.cmd("BLMOVE a b LEFT LEFT 0"), "_\r\n");
    }

    #[test]
    fn errors_in_redis_order() {
        let mut h = Harness::new();
        h.cmd("SET s x");
        assert_eq!(h.cmd("BLPOP s abc"), "-ERR timeout is not a float or out of range\r\n");
        assert_eq!(h.cmd("BLPOP a -1"), "-ERR timeout is negative\r\n");
        assert_eq!(h.cmd("BLMOVE a b UP LEFT abc"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("BLMOVE a b LEFT LEFT abc"), "-ERR timeout is not a float or out of range\r\n");
        assert_eq!(h.cmd("BRPOPLPUSH a b abc"), "-ERR timeout is not a float or out of range\r\n");
        assert_eq!(h.cmd("BLMPOP abc 0 a LEFT"), "-ERR numkeys should be greater than 0\r\n");
        assert_eq!(h.cmd("BLMPOP abc 1 a LEFT"), "-ERR timeout is not a float or out of range\r\n");
        assert_eq!(h.cmd("BLMPOP -1 1 a LEFT"), "-ERR timeout is negative\r\n");
        assert_eq!(h.cmd("BLMPOP 0 1 a LEFT COUNT 0"), "-ERR count should be greater than 0\r\n");
        assert_eq!(h.blocked, Some(Blocked::Served));
        // A key of another type before any list is an error; after a list it is not seen.
        h.cmd("RPUSH l a");
        assert_eq!(h.cmd("BLPOP l s 0"), "*2\r\n$1\r\nl\r\n$1\r\na\r\n");
        assert!(h.cmd("BLPOP s l 0").starts_with("-WRONGTYPE"));
        assert_eq!(h.cmd("BLPOP"), "-ERR wrong number of arguments for 'blpop' command\r\n");
    }
}
