//! Whole-value commands: GET, SET and its variants, GETEX, GETDEL, MGET, MSET(NX).

use super::{is_opt, read_string, reply_value};
use crate::ctx::argv;
use crate::util::*;
use crate::Ctx;
use ferrokv_resp::Args;
use ferrokv_store::{Expiry, Value};

/// SET/GETEX options, as Redis's `parseExtendedStringArgumentsOrReply` collects them.
#[derive(Default)]
struct StringOptions<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    expire: Option<(Expire, &'a [u8])>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expire {
    Ex,
    Px,
    ExAt,
    PxAt,
}

impl Expire {
    fn in_seconds(self) -> bool {
        matches!(self, Expire::Ex | Expire::ExAt)
    }

    fn relative(self) -> bool {
        matches!(self, Expire::Ex | Expire::Px)
    }
}

impl<'a> StringOptions<'a> {
    /// Parses options from `args[from..]`; SET's (NX XX GET KEEPTTL) when `for_set`,
    /// else GETEX's (PERSIST). Each option is refused after one it conflicts with, and
    /// an expiry keyword needs a following argument, else `ERR syntax error`.
    fn parse(args: &Args<'a>, from: usize, for_set: bool) -> Option<Self> {
        let mut o = StringOptions::default();
        let mut j = from;
        while j < args.len() {
            let a = args.get(j);
            let next = (j + 1 < args.len()).then(|| args.get(j + 1));
            let kind = o.expire.map(|(k, _)| k);
            let has = |k: Expire| kind == Some(k);
            if for_set && is_opt(a, "NX") && !o.xx {
                o.nx = true;
            } else if for_set && is_opt(a, "XX") && !o.nx {
                o.xx = true;
            } else if for_set && is_opt(a, "GET") {
                o.get = true;
            } else if for_set && is_opt(a, "KEEPTTL") && !o.persist && kind.is_none() {
                o.keepttl = true;
            } else if !for_set && is_opt(a, "PERSIST") && kind.is_none() && !o.keepttl {
                o.persist = true;
            } else if let Some(k) = expire_keyword(a) {
                let conflicts = o.keepttl || o.persist || (kind.is_some() && !has(k));
                match next {
                    Some(v) if !conflicts => {
                        o.expire = Some((k, v));
                        j += 1;
                    }
                    _ => return None,
                }
            } else {
                return None;
            }
            j += 1;
        }
        Some(o)
    }
}

fn expire_keyword(a: &[u8]) -> Option<Expire> {
    [("EX", Expire::Ex), ("PX", Expire::Px), ("EXAT", Expire::ExAt), ("PXAT", Expire::PxAt)]
        .into_iter()
        .find(|(kw, _)| is_opt(a, kw))
        .map(|(_, k)| k)
}

/// The absolute expiry in unix ms of an EX/PX/EXAT/PXAT argument, or the error reply
/// (`cmd` names the command in `ERR invalid expire time in '<cmd>' command`).
fn expire_at_ms(kind: Expire, arg: &[u8], now_ms: u64, cmd: &str) -> Result<u64, String> {
    let invalid = || format!("ERR invalid expire time in '{}' command", cmd);
    let mut ms = parse_i64(arg).ok_or_else(|| ERR_NOT_INT.to_string())?;
    if ms <= 0 || (kind.in_seconds() && ms > i64::MAX / 1000) {
        return Err(invalid());
    }
    if kind.in_seconds() {
        ms *= 1000;
    }
    if kind.relative() {
        ms = ms.checked_add(now_ms as i64).ok_or_else(invalid)?;
    }
    Ok(ms as u64)
}

/// GET key
pub fn get(ctx: &mut Ctx, args: &Args) {
    get_generic(ctx, args.get(1));
}

/// Replies with the string at `key` (or null); false after a WRONGTYPE error.
fn get_generic(ctx: &mut Ctx, key: &[u8]) -> bool {
    let now = ctx.now_ms;
    match read_string(ctx.keys.db(key), key, now, ctx.out) {
        Err(()) => false,
        Ok(None) => {
            ctx.out.null();
            true
        }
        Ok(Some(v)) => {
            reply_value(ctx.out, v);
            true
        }
    }
}

/// SET key value [NX | XX] [GET] [EX seconds | PX milliseconds |
///     EXAT unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL]
pub fn set(ctx: &mut Ctx, args: &Args) {
    let Some(o) = StringOptions::parse(args, 3, true) else {
        return ctx.out.error(ERR_SYNTAX);
    };
    let expire = o.expire.map(|(k, a)| (k, a, "set"));
    set_generic(ctx, args.get(1), args.get(2), &o, expire, Reply::Ok);
}

/// What SET-like commands reply when they store, or skip because of NX/XX.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// `+OK` / null (SET).
    Ok,
    /// `:1` / `:0` (SETNX).
    OneZero,
}

/// Redis's `setGenericCommand`: validates the expiry, replies the old value for GET,
/// honours NX/XX and KEEPTTL, stores the value as SET does.
fn set_generic(
    ctx: &mut Ctx,
    key: &[u8],
    val: &[u8],
    o: &StringOptions,
    expire: Option<(Expire, &[u8], &str)>,
    reply: Reply,
) {
    let now = ctx.now_ms;
    let mut expire_at = 0;
    if let Some((kind, arg, name)) = expire {
        match expire_at_ms(kind, arg, now, name) {
            Ok(ms) => expire_at = ms,
            Err(e) => return ctx.out.error(&e),
        }
    }
    if o.get && !get_generic(ctx, key) {
        return;
    }
    let keep_ttl = expire.is_none() && o.keepttl;
    let decide = |old_ttl: Option<u64>| {
        let found = old_ttl.is_some();
        if (o.nx && found) || (o.xx && !found) {
            return None;
        }
        Some(if keep_ttl { old_ttl.unwrap_or(0) } else { expire_at })
    };
    if !ctx.keys.db(key).set_if(key, now, decide, || Value::string(val)) {
        if !o.get {
            match reply {
                Reply::Ok => ctx.out.null(),
                Reply::OneZero => ctx.out.integer(0),
            }
        }
        return;
    }
    ctx.touch(key);
    if expire.is_some() {
        // Redis 7.0 propagates any SET with an expiry as an absolute one.
        ctx.rewrite(|| argv(&[b"SET", key, val, b"PXAT", expire_at.to_string().as_bytes()]));
    }
    if !o.get {
        match reply {
            Reply::Ok => ctx.out.ok(),
            Reply::OneZero => ctx.out.integer(1),
        }
    }
}

/// SETNX key value
pub fn setnx(ctx: &mut Ctx, args: &Args) {
    let o = StringOptions { nx: true, ..Default::default() };
    set_generic(ctx, args.get(1), args.get(2), &o, None, Reply::OneZero);
}

/// SETEX key seconds value
pub fn setex(ctx: &mut Ctx, args: &Args) {
    let expire = Some((Expire::Ex, args.get(2), "setex"));
    set_generic(ctx, args.get(1), args.get(3), &StringOptions::default(), expire, Reply::Ok);
}

/// PSETEX key milliseconds value
pub fn psetex(ctx: &mut Ctx, args: &Args) {
    let expire = Some((Expire::Px, args.get(2), "psetex"));
    set_generic(ctx, args.get(1), args.get(3), &StringOptions::default(), expire, Reply::Ok);
}

/// GETSET key value
pub fn getset(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    if !get_generic(ctx, key) {
        return;
    }
    ctx.db(key).set(key, Value::string(args.get(2)), 0);
    ctx.touch(key);
    ctx.rewrite(|| argv(&[b"SET", key, args.get(2)]));
}

/// GETEX key [EX seconds | PX milliseconds | EXAT unix-time-seconds |
///     PXAT unix-time-milliseconds | PERSIST]
pub fn getex(ctx: &mut Ctx, args: &Args) {
    let Some(o) = StringOptions::parse(args, 2, false) else {
        return ctx.out.error(ERR_SYNTAX);
    };
    let key = args.get(1);
    let now = ctx.now_ms;
    let db = ctx.keys.db(key);
    // Redis's checkAlreadyExpired: only a master deletes a key given a past time.
    let deletes_at_once = db.expiry == Expiry::Delete;
    let entry = match db.get(key, now) {
        None => return ctx.out.null(),
        Some(e) if !e.value.is_string() => return ctx.out.error(ERR_WRONGTYPE),
        Some(e) => e,
    };
    let mut expire_at = None;
    if let Some((kind, arg)) = o.expire {
        match expire_at_ms(kind, arg, now, "getex") {
            Ok(ms) => expire_at = Some((kind, ms)),
            Err(e) => return ctx.out.error(&e),
        }
    }
    reply_value(ctx.out, &entry.value);
    // Never propagated as GETEX: as DEL, PEXPIREAT or PERSIST.
    let record: &[u8] = match expire_at {
        Some((kind, ms)) if !kind.relative() && ms <= now && deletes_at_once => {
            db.remove(key, now);
            b"DEL"
        }
        Some((_, ms)) => {
            entry.expire_at = ms;
            b"PEXPIREAT"
        }
        None if o.persist && entry.expire_at != 0 => {
            entry.expire_at = 0;
            b"PERSIST"
        }
        None => return,
    };
    ctx.touch(key);
    match expire_at {
        Some((_, ms)) if record == b"PEXPIREAT" => ctx.rewrite(|| argv(&[record, key, ms.to_string().as_bytes()])),
        _ => ctx.rewrite(|| argv(&[record, key])),
    }
}

/// GETDEL key
pub fn getdel(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    if !get_generic(ctx, key) {
        return;
    }
    let now = ctx.now_ms;
    if ctx.db(key).remove(key, now).is_some() {
        ctx.touch(key);
        ctx.rewrite(|| argv(&[b"DEL", key]));
    }
}

/// MGET key [key ...]
///
/// A key holding another type reads as null, not as an error.
pub fn mget(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now_ms;
    ctx.out.array(args.len() - 1);
    for key in args.iter().skip(1) {
        match ctx.keys.db(key).read(key, now) {
            Some(e) if e.value.is_string() => reply_value(ctx.out, &e.value),
            _ => ctx.out.null(),
        }
    }
}

/// MSET key value [key value ...]
pub fn mset(ctx: &mut Ctx, args: &Args) {
    if args.len().is_multiple_of(2) {
        return ctx.out.error(&arity_error("mset"));
    }
    mset_all(ctx, args);
    ctx.out.ok();
}

/// MSETNX key value [key value ...]
///
/// Sets nothing (and replies 0) if any of the keys exists.
pub fn msetnx(ctx: &mut Ctx, args: &Args) {
    if args.len().is_multiple_of(2) {
        return ctx.out.error(&arity_error("msetnx"));
    }
    let now = ctx.now_ms;
    for key in args.iter().skip(1).step_by(2) {
        if ctx.keys.db(key).get(key, now).is_some() {
            return ctx.out.integer(0);
        }
    }
    mset_all(ctx, args);
    ctx.out.integer(1);
}

fn mset_all(ctx: &mut Ctx, args: &Args) {
    for j in (1..args.len()).step_by(2) {
        let key = args.get(j);
        ctx.db(key).set(key, Value::string(args.get(j + 1)), 0);
        ctx.touch(key);
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;

    fn nil(h: &Harness) -> &'static str {
        if h.proto == ferrokv_resp::Proto::Resp3 {
            "_\r\n"
        } else {
            "$-1\r\n"
        }
    }

    #[test]
    fn get_and_set_basics() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("GET k"), "$-1\r\n");
        assert_eq!(h.cmd("SET k hello"), "+OK\r\n");
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("GET k"), "$5\r\nhello\r\n");
        assert_eq!(h.encoding("k"), "embstr");
        assert_eq!(h.cmd("SET k 123"), "+OK\r\n");
        assert_eq!(h.encoding("k"), "int");
        assert_eq!(h.cmd("GET k"), "$3\r\n123\r\n");
        h.cmd(&format!("SET k {}", "x".repeat(45)));
        assert_eq!(h.encoding("k"), "raw");
        assert_eq!(h.run(&[b"SET", b"bin", b"a\0\xff"]), b"+OK\r\n");
        assert_eq!(h.run(&[b"GET", b"bin"]), b"$3\r\na\0\xff\r\n");
        let mut h3 = Harness::resp3();
        assert_eq!(h3.cmd("GET nope"), nil(&h3));
    }

    #[test]
    fn resp3_nulls() {
        let mut h = Harness::resp3();
        assert_eq!(h.cmd("SET k v"), "+OK\r\n");
        assert_eq!(h.cmd("SET k v NX"), "_\r\n");
        assert_eq!(h.cmd("GETDEL nokey"), "_\r\n");
        assert_eq!(h.cmd("GETEX nokey"), "_\r\n");
        assert_eq!(h.cmd("SET z w NX GET"), "_\r\n");
        assert_eq!(h.cmd("SET k w GET"), "$1\r\nv\r\n");
        assert_eq!(h.cmd("INCRBYFLOAT f 1.5"), "$3\r\n1.5\r\n");
    }

    #[test]
    fn set_nx_xx_get() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("SET k v XX"), "$-1\r\n");
        assert_eq!(h.dirty, 0);
        assert_eq!(h.cmd("SET k v NX"), "+OK\r\n");
        assert_eq!(h.cmd("SET k w NX"), "$-1\r\n");
        assert_eq!(h.cmd("SET k w xx"), "+OK\r\n");
        assert_eq!(h.cmd("SET k x GET"), "$1\r\nw\r\n");
        assert_eq!(h.cmd("SET n x GET"), "$-1\r\n");
        assert_eq!(h.cmd("GET n"), "$1\r\nx\r\n");
        // NX with GET (7.0): replies the old value and does not set.
        assert_eq!(h.cmd("SET k y NX GET"), "$1\r\nx\r\n");
        assert_eq!(h.cmd("GET k"), "$1\r\nx\r\n");
        assert_eq!(h.cmd("SET m y XX GET"), "$-1\r\n");
        assert_eq!(h.cmd("GET m"), "$-1\r\n");
        assert_eq!(h.cmd("SET k z GET GET nx xx"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("SET k z NX XX"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("SET k z XX NX"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("SET k z NX NX"), "$-1\r\n");
        assert_eq!(h.cmd("SET k z foo"), "-ERR syntax error\r\n");
        assert_eq!(h.run(&[b"SET", b"k", b"z", b"xx\0junk"]), b"+OK\r\n");
    }

    #[test]
    fn set_expiry_options() {
        let mut h = Harness::new();
        let now = h.now;
        assert_eq!(h.cmd("SET k v EX 10"), "+OK\r\n");
        assert_eq!(h.expire_at("k"), Some(now + 10_000));
        assert_eq!(h.cmd("SET k v PX 10"), "+OK\r\n");
        assert_eq!(h.expire_at("k"), Some(now + 10));
        assert_eq!(h.cmd("SET k v EXAT 2000000000"), "+OK\r\n");
        assert_eq!(h.expire_at("k"), Some(2_000_000_000_000));
        assert_eq!(h.cmd("SET k v PXAT 2000000000123"), "+OK\r\n");
        assert_eq!(h.expire_at("k"), Some(2_000_000_000_123));
        assert_eq!(h.cmd("SET k w KEEPTTL"), "+OK\r\n");
        assert_eq!(h.expire_at("k"), Some(2_000_000_000_123));
        assert_eq!(h.cmd("SET k w"), "+OK\r\n");
        assert_eq!(h.expire_at("k"), Some(0));
        // The last of repeated EX wins.
        assert_eq!(h.cmd("SET k v EX 10 EX 20"), "+OK\r\n");
        assert_eq!(h.expire_at("k"), Some(now + 20_000));
        for bad in [
            "SET k v EX 10 PX 10",
            "SET k v PX 10 EX 10",
            "SET k v EX 10 KEEPTTL",
            "SET k v KEEPTTL EX 10",
            "SET k v EX 10 EXAT 10",
            "SET k v PXAT 10 PX 10",
            "SET k v EX",
            "SET k v GET EX",
            "SET k v PERSIST",
        ] {
            assert_eq!(h.cmd(bad), "-ERR syntax error\r\n", "{bad}");
        }
        assert_eq!(h.cmd("SET k v EX 0"), "-ERR invalid expire time in 'set' command\r\n");
        assert_eq!(h.cmd("SET k v PX -5"), "-ERR invalid expire time in 'set' command\r\n");
        assert_eq!(h.cmd("SET k v EX 9223372036854776"), "-ERR invalid expire time in 'set' command\r\n");
        assert_eq!(h.cmd("SET k v PX 9223372036854775807"), "-ERR invalid expire time in 'set' command\r\n");
        assert_eq!(h.cmd("SET k v EXAT 9223372036854775"), "+OK\r\n");
        assert_eq!(h.cmd("SET k v EX abc"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("SET k v EX 1.5"), "-ERR value is not an integer or out of range\r\n");
        // An absolute time in the past stores a key that is already gone.
        assert_eq!(h.cmd("SET k v PXAT 1"), "+OK\r\n");
        assert_eq!(h.cmd("GET k"), "$-1\r\n");
        // The expiry is checked before GET's type check and the NX test.
        h.cmd("SET k v");
        assert_eq!(h.cmd("SET k v NX EX 0"), "-ERR invalid expire time in 'set' command\r\n");
    }

    #[test]
    fn set_touches_watched_keys_only_when_it_writes() {
        let mut h = Harness::new();
        h.db.watch(b"k");
        h.cmd("SET k v NX");
        assert_eq!(h.version("k"), 1);
        h.cmd("SET k v NX");
        assert_eq!(h.version("k"), 1);
        h.cmd("SET k v XX GET");
        assert_eq!(h.version("k"), 2);
    }

    #[test]
    fn setnx_setex_psetex() {
        let mut h = Harness::new();
        let now = h.now;
        assert_eq!(h.cmd("SETNX k v"), ":1\r\n");
        assert_eq!(h.cmd("SETNX k w"), ":0\r\n");
        assert_eq!(h.cmd("GET k"), "$1\r\nv\r\n");
        assert_eq!(h.cmd("SETEX k 100 w"), "+OK\r\n");
        assert_eq!(h.expire_at("k"), Some(now + 100_000));
        assert_eq!(h.cmd("PSETEX k 100 w"), "+OK\r\n");
        assert_eq!(h.expire_at("k"), Some(now + 100));
        assert_eq!(h.cmd("SETEX k 0 w"), "-ERR invalid expire time in 'setex' command\r\n");
        assert_eq!(h.cmd("PSETEX k -1 w"), "-ERR invalid expire time in 'psetex' command\r\n");
        assert_eq!(h.cmd("SETEX k x w"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("SETEX k 10 12"), "+OK\r\n");
        assert_eq!(h.encoding("k"), "int");
    }

    #[test]
    fn getset_getdel() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("GETSET k a"), "$-1\r\n");
        assert_eq!(h.cmd("SET k v EX 100"), "+OK\r\n");
        assert_eq!(h.cmd("GETSET k 5"), "$1\r\nv\r\n");
        assert_eq!(h.expire_at("k"), Some(0));
        assert_eq!(h.encoding("k"), "int");
        assert_eq!(h.cmd("GETDEL k"), "$1\r\n5\r\n");
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("GETDEL k"), "$-1\r\n");
        assert_eq!(h.dirty, 0);
        assert_eq!(h.cmd("GET k"), "$-1\r\n");
    }

    #[test]
    fn getex_options() {
        let mut h = Harness::new();
        let now = h.now;
        assert_eq!(h.cmd("GETEX k"), "$-1\r\n");
        // A missing key wins over a bad expiry, but not over a syntax error.
        assert_eq!(h.cmd("GETEX k EX abc"), "$-1\r\n");
        assert_eq!(h.cmd("GETEX k EX"), "-ERR syntax error\r\n");
        h.cmd("SET k v");
        assert_eq!(h.cmd("GETEX k"), "$1\r\nv\r\n");
        assert_eq!(h.dirty, 0);
        assert_eq!(h.cmd("GETEX k EX 10"), "$1\r\nv\r\n");
        assert_eq!(h.expire_at("k"), Some(now + 10_000));
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("GETEX k PX 10"), "$1\r\nv\r\n");
        assert_eq!(h.expire_at("k"), Some(now + 10));
        assert_eq!(h.cmd("GETEX k EXAT 2000000000"), "$1\r\nv\r\n");
        assert_eq!(h.expire_at("k"), Some(2_000_000_000_000));
        assert_eq!(h.cmd("GETEX k PERSIST"), "$1\r\nv\r\n");
        assert_eq!(h.expire_at("k"), Some(0));
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("GETEX k PERSIST"), "$1\r\nv\r\n");
        assert_eq!(h.dirty, 0);
        assert_eq!(h.cmd("GETEX k EX 0"), "-ERR invalid expire time in 'getex' command\r\n");
        assert_eq!(h.cmd("GETEX k EX x"), "-ERR value is not an integer or out of range\r\n");
        for bad in ["GETEX k PERSIST EX 1", "GETEX k EX 1 PERSIST", "GETEX k KEEPTTL", "GETEX k NX", "GETEX k GET"] {
            assert_eq!(h.cmd(bad), "-ERR syntax error\r\n", "{bad}");
        }
        // An absolute time already past deletes the key after replying.
        assert_eq!(h.cmd("GETEX k PXAT 1"), "$1\r\nv\r\n");
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("GET k"), "$-1\r\n");
        assert_eq!(h.db.len(), 0);
    }

    #[test]
    fn mget_mset_msetnx() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("MSET a 1 b 2"), "+OK\r\n");
        assert_eq!(h.dirty, 2);
        assert_eq!(h.cmd("MGET a b c"), "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n");
        assert_eq!(h.cmd("MSET a 1 b"), "-ERR wrong number of arguments for 'mset' command\r\n");
        assert_eq!(h.cmd("MSETNX a 1 b"), "-ERR wrong number of arguments for 'msetnx' command\r\n");
        assert_eq!(h.cmd("MSETNX c 3 a 9"), ":0\r\n");
        assert_eq!(h.cmd("GET c"), "$-1\r\n");
        assert_eq!(h.cmd("MSETNX c 3 d 4"), ":1\r\n");
        assert_eq!(h.cmd("MGET c d"), "*2\r\n$1\r\n3\r\n$1\r\n4\r\n");
        h.cmd("SET t v EX 100");
        h.cmd("MSET t w");
        assert_eq!(h.expire_at("t"), Some(0));
        let mut h3 = Harness::resp3();
        assert_eq!(h3.cmd("MGET x"), "*1\r\n_\r\n");
    }
}
