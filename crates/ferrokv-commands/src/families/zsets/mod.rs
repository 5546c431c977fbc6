//! Sorted set commands (Redis's t_zset.c).
//!
//! The value type and its two encodings live in [`ferrokv_store::zset`]; these files
//! parse arguments and reply as Redis 7.0 does:
//! - `parse`: scores as `strtod` reads them (`getDoubleFromObject`, `zslParseRange`),
//!   lex bounds, timeouts and cursors, with Redis's exact errors;
//! - `write`: ZADD, ZINCRBY, ZREM and the ZREMRANGEBY* commands;
//! - `read`: ZCARD, ZSCORE, ZMSCORE, ZRANK, ZREVRANK, ZCOUNT, ZLEXCOUNT, ZRANDMEMBER,
//!   ZSCAN;
//! - `range`: ZRANGE and its older forms, ZRANGESTORE;
//! - `pop`: ZPOPMIN, ZPOPMAX, ZMPOP and the blocking BZPOPMIN, BZPOPMAX, BZMPOP;
//! - `algebra`: ZUNION, ZINTER, ZDIFF, their STORE forms and ZINTERCARD, which also
//!   take plain sets (every member scoring 1).
//!
//! Scores are replied with [`ReplyBuf::double`]: a bulk string in RESP2, a double in
//! RESP3. WITHSCORES replies are flat `[member, score, ...]` arrays in RESP2 and
//! arrays of `[member, score]` pairs in RESP3.

mod algebra;
mod parse;
mod pop;
mod range;
mod read;
mod write;

use crate::ctx::ExecConfig;
use crate::table::{CommandSpec, Handler, KeyPositions, Wakes};
use crate::util::{parse_i64, ERR_WRONGTYPE};
use ferrokv_resp::{Args, ReplyBuf};
use ferrokv_store::zset::{ZSetLimits, ZSetValue};
use ferrokv_store::{Db, Value};

const KEY1: KeyPositions = KeyPositions::new(1, 1, 1);

const fn cmd(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    keys: KeyPositions,
    acl: &'static [&'static str],
    f: crate::table::DataFn,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, keys, acl, Handler::Data(f))
}

const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const RM: &[&str] = &["readonly", "movablekeys"];
const W: &[&str] = &["write"];
const WF: &[&str] = &["write", "fast"];
const WD: &[&str] = &["write", "denyoom"];
const WDF: &[&str] = &["write", "denyoom", "fast"];
const WDM: &[&str] = &["write", "denyoom", "movablekeys"];
const BZPOP: &[&str] = &["write", "noscript", "blocking", "fast"];

const READ_FAST: &[&str] = &["@read", "@sortedset", "@fast"];
const READ_SLOW: &[&str] = &["@read", "@sortedset", "@slow"];
const WRITE_FAST: &[&str] = &["@write", "@sortedset", "@fast"];
const WRITE_SLOW: &[&str] = &["@write", "@sortedset", "@slow"];

/// Arity, flags, key positions and ACL categories as `COMMAND INFO` shows them on
/// redis-server 7.0.
pub const COMMANDS: &[CommandSpec] = &[
    cmd("zadd", -4, WDF, KEY1, WRITE_FAST, write::zadd),
    cmd("zincrby", 4, WDF, KEY1, WRITE_FAST, write::zincrby),
    cmd("zrem", -3, WF, KEY1, WRITE_FAST, write::zrem),
    cmd("zremrangebyrank", 4, W, KEY1, WRITE_SLOW, write::zremrangebyrank),
    cmd("zremrangebyscore", 4, W, KEY1, WRITE_SLOW, write::zremrangebyscore),
    cmd("zremrangebylex", 4, W, KEY1, WRITE_SLOW, write::zremrangebylex),
    cmd("zcard", 2, RF, KEY1, READ_FAST, read::zcard),
    cmd("zscore", 3, RF, KEY1, READ_FAST, read::zscore),
    cmd("zmscore", -3, RF, KEY1, READ_FAST, read::zmscore),
    cmd("zrank", 3, RF, KEY1, READ_FAST, read::zrank),
    cmd("zrevrank", 3, RF, KEY1, READ_FAST, read::zrevrank),
    cmd("zcount", 4, RF, KEY1, READ_FAST, read::zcount),
    cmd("zlexcount", 4, RF, KEY1, READ_FAST, read::zlexcount),
    cmd("zrandmember", -2, R, KEY1, READ_SLOW, read::zrandmember),
    cmd("zscan", -3, R, KEY1, READ_SLOW, read::zscan),
    cmd("zrange", -4, R, KEY1, READ_SLOW, range::zrange),
    cmd("zrevrange", -4, R, KEY1, READ_SLOW, range::zrevrange),
    cmd("zrangebyscore", -4, R, KEY1, READ_SLOW, range::zrangebyscore),
    cmd("zrevrangebyscore", -4, R, KEY1, READ_SLOW, range::zrevrangebyscore),
    cmd("zrangebylex", -4, R, KEY1, READ_SLOW, range::zrangebylex),
    cmd("zrevrangebylex", -4, R, KEY1, READ_SLOW, range::zrevrangebylex),
    cmd("zrangestore", -5, WD, KeyPositions::new(1, 2, 1), WRITE_SLOW, range::zrangestore),
    cmd("zpopmin", -2, WF, KEY1, WRITE_FAST, pop::zpopmin),
    cmd("zpopmax", -2, WF, KEY1, WRITE_FAST, pop::zpopmax),
    cmd("zmpop", -4, &["write", "movablekeys"], KeyPositions::NONE, WRITE_SLOW, pop::zmpop)
        .with_key_finder(pop::zmpop_keys),
    CommandSpec::new(
        "bzpopmin",
        -3,
        BZPOP,
        KeyPositions::new(1, -2, 1),
        &["@write", "@sortedset", "@fast", "@blocking"],
        Handler::Blocking(pop::bzpopmin, Wakes::ZSetPop),
    ),
    CommandSpec::new(
        "bzpopmax",
        -3,
        BZPOP,
        KeyPositions::new(1, -2, 1),
        &["@write", "@sortedset", "@fast", "@blocking"],
        Handler::Blocking(pop::bzpopmax, Wakes::ZSetPop),
    ),
    CommandSpec::new(
        "bzmpop",
        -5,
        &["write", "blocking", "movablekeys"],
        KeyPositions::NONE,
        &["@write", "@sortedset", "@slow", "@blocking"],
        Handler::Blocking(pop::bzmpop, Wakes::ZSetMpop),
    )
    .with_key_finder(pop::bzmpop_keys),
    cmd("zunion", -3, RM, KeyPositions::NONE, READ_SLOW, algebra::zunion).with_key_finder(algebra::sources_keys),
    cmd("zinter", -3, RM, KeyPositions::NONE, READ_SLOW, algebra::zinter).with_key_finder(algebra::sources_keys),
    cmd("zdiff", -3, RM, KeyPositions::NONE, READ_SLOW, algebra::zdiff).with_key_finder(algebra::sources_keys),
    cmd("zintercard", -3, RM, KeyPositions::NONE, READ_SLOW, algebra::zintercard)
        .with_key_finder(algebra::sources_keys),
    cmd("zunionstore", -4, WDM, KEY1, WRITE_SLOW, algebra::zunionstore).with_key_finder(algebra::store_keys),
    cmd("zinterstore", -4, WDM, KEY1, WRITE_SLOW, algebra::zinterstore).with_key_finder(algebra::store_keys),
    cmd("zdiffstore", -4, WDM, KEY1, WRITE_SLOW, algebra::zdiffstore).with_key_finder(algebra::store_keys),
];

/// The `listpack` thresholds from the config.
fn limits(cfg: &ExecConfig) -> ZSetLimits {
    ZSetLimits { max_listpack_entries: cfg.zset_max_listpack_entries, max_listpack_value: cfg.zset_max_listpack_value }
}

/// The sorted set at `key`: `Ok(None)` when missing, `Err(())` after replying
/// WRONGTYPE when it holds another type.
fn zset_at<'a>(db: &'a mut Db, key: &[u8], now: u64, out: &mut ReplyBuf) -> Result<Option<&'a mut ZSetValue>, ()> {
    match db.get(key, now) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => {
                out.error(ERR_WRONGTYPE);
                Err(())
            }
        },
    }
}

/// Deletes `key` when its sorted set became empty (Redis keeps no empty collections).
fn drop_if_empty(db: &mut Db, key: &[u8], now: u64) {
    if matches!(db.peek(key, now).map(|e| &e.value), Some(Value::ZSet(z)) if z.is_empty()) {
        db.remove(key, now);
    }
}

/// Members (and scores) as ZRANGE replies them: a flat array in RESP2, pairs in RESP3.
fn reply_elements(out: &mut ReplyBuf, elems: &[(Vec<u8>, f64)], withscores: bool) {
    let pairs = withscores && out.resp3();
    out.array(if withscores && !pairs { elems.len() * 2 } else { elems.len() });
    for (m, s) in elems {
        if pairs {
            out.array(2);
        }
        out.bulk(m);
        if withscores {
            out.double(*s);
        }
    }
}

/// An option keyword, compared as Redis does (`strcasecmp` on a C string).
fn is_opt(a: &[u8], kw: &str) -> bool {
    let c = a.iter().position(|&b| b == 0).map_or(a, |i| &a[..i]);
    c.eq_ignore_ascii_case(kw.as_bytes())
}

/// Indexes of `numkeys` keys whose count is at `idx` (none when it is not a valid
/// count), after `extra` fixed key indexes.
fn numkeys_keys(args: &Args, idx: usize, extra: &[usize]) -> Vec<usize> {
    if idx >= args.len() {
        return Vec::new();
    }
    match parse_i64(args.get(idx)) {
        Some(n) if n >= 1 && n as u64 <= (args.len() - idx - 1) as u64 => {
            extra.iter().copied().chain(idx + 1..idx + 1 + n as usize).collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Harness;

    #[test]
    fn key_finders() {
        let args = |s: &str| ferrokv_resp::OwnedArgs::from_slices(s.split(' ').map(str::as_bytes));
        let keys = |spec: &str, line: &str| {
            let a = args(line);
            let c = COMMANDS.iter().find(|c| c.name == spec).unwrap();
            let mut out = Vec::new();
            c.key_indexes(&a.args(), &mut out);
            out
        };
        assert_eq!(keys("zunion", "ZUNION 2 a b WEIGHTS 1 2"), [2, 3]);
        assert_eq!(keys("zunionstore", "ZUNIONSTORE d 2 a b"), [1, 3, 4]);
        assert_eq!(keys("zunionstore", "ZUNIONSTORE d 3 a b"), Vec::<usize>::new());
        assert_eq!(keys("zintercard", "ZINTERCARD 0 a"), Vec::<usize>::new());
        assert_eq!(keys("zmpop", "ZMPOP 2 a b MIN"), [2, 3]);
        assert_eq!(keys("bzmpop", "BZMPOP 0 2 a b MIN"), [3, 4]);
        assert_eq!(keys("bzpopmin", "BZPOPMIN a b 0"), [1, 2]);
        assert_eq!(keys("zrangestore", "ZRANGESTORE d s 0 1"), [1, 2]);
    }

    #[test]
    fn wrong_arity_and_wrongtype() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("ZADD z 1"), "-ERR wrong number of arguments for 'zadd' command\r\n");
        h.cmd("SET s x");
        for line in ["ZADD s 1 a", "ZCARD s", "ZRANGE s 0 -1", "ZSCORE s a", "ZPOPMIN s", "ZUNION 1 s", "ZSCAN s 0"] {
            assert_eq!(h.cmd(line), format!("-{ERR_WRONGTYPE}\r\n"), "{line}");
        }
    }
}
