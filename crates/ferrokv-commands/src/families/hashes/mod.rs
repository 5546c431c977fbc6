//! Hash commands (Redis's t_hash.c).
//!
//! A hash value is a [`HashValue`]: packed (`listpack`) while small, a hash table
//! (`hashtable`) past `hash-max-listpack-entries` pairs or once a field or value
//! longer than `hash-max-listpack-value` bytes arrives, never back (see
//! `ferrokv_store::hash`). The commands apply those thresholds where Redis does:
//! HSET/HMSET/HSETNX check every argument before inserting, HINCRBY/HINCRBYFLOAT
//! check the field and the new value, every insert checks the count after.
//!
//! Files: `fields` (HSET, HSETNX, HMSET, HGET, HMGET, HDEL, HEXISTS, HLEN, HSTRLEN),
//! `counters` (HINCRBY, HINCRBYFLOAT), `listing` (HKEYS, HVALS, HGETALL, HSCAN) and
//! `random` (HRANDFIELD).

mod counters;
mod fields;
mod listing;
mod random;

use crate::ctx::ExecConfig;
use crate::table::{CommandSpec, Handler, KeyPositions};
use crate::util::ERR_WRONGTYPE;
use crate::Ctx;
use ferrokv_resp::ReplyBuf;
use ferrokv_store::hash::{Elem, HashValue, Limits};
use ferrokv_store::{Db, Value};

const KEY1: KeyPositions = KeyPositions::new(1, 1, 1);

const fn cmd(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    acl: &'static [&'static str],
    f: crate::table::DataFn,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, KEY1, acl, Handler::Data(f))
}

const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const WF: &[&str] = &["write", "fast"];
const WDF: &[&str] = &["write", "denyoom", "fast"];

const READ_FAST: &[&str] = &["@read", "@hash", "@fast"];
const READ_SLOW: &[&str] = &["@read", "@hash", "@slow"];
const WRITE_FAST: &[&str] = &["@write", "@hash", "@fast"];

/// Arity, flags, key positions and ACL categories as `COMMAND INFO` shows them on
/// redis-server 7.0.
pub const COMMANDS: &[CommandSpec] = &[
    cmd("hset", -4, WDF, WRITE_FAST, fields::hset),
    cmd("hsetnx", 4, WDF, WRITE_FAST, fields::hsetnx),
    cmd("hmset", -4, WDF, WRITE_FAST, fields::hmset),
    cmd("hget", 3, RF, READ_FAST, fields::hget),
    cmd("hmget", -3, RF, READ_FAST, fields::hmget),
    cmd("hdel", -3, WF, WRITE_FAST, fields::hdel),
    cmd("hexists", 3, RF, READ_FAST, fields::hexists),
    cmd("hlen", 2, RF, READ_FAST, fields::hlen),
    cmd("hstrlen", 3, RF, READ_FAST, fields::hstrlen),
    cmd("hincrby", 4, WDF, WRITE_FAST, counters::hincrby),
    cmd("hincrbyfloat", 4, WDF, WRITE_FAST, counters::hincrbyfloat),
    cmd("hkeys", 2, R, READ_SLOW, listing::hkeys),
    cmd("hvals", 2, R, READ_SLOW, listing::hvals),
    cmd("hgetall", 2, R, READ_SLOW, listing::hgetall),
    cmd("hscan", -3, R, READ_SLOW, listing::hscan),
    cmd("hrandfield", -2, R, READ_SLOW, random::hrandfield),
];

/// The packed-encoding thresholds from the config.
fn limits(cfg: &ExecConfig) -> Limits {
    let clamp = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    Limits { max_entries: clamp(cfg.hash_max_listpack_entries), max_value: clamp(cfg.hash_max_listpack_value) }
}

/// Looks a hash up for a command that reads it: `Ok(None)` when missing, `Err(())`
/// after replying WRONGTYPE when the key holds another type.
fn read_hash<'a>(db: &'a mut Db, key: &[u8], now: u64, out: &mut ReplyBuf) -> Result<Option<&'a HashValue>, ()> {
    match db.read(key, now) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Hash(h) => Ok(Some(h)),
            _ => {
                out.error(ERR_WRONGTYPE);
                Err(())
            }
        },
    }
}

/// Runs `f` on the hash at `key`, a new empty one when the key is missing (Redis's
/// `hashTypeLookupWriteOrCreate`); `Err(())` after replying WRONGTYPE. A new hash is
/// stored only if `f` left something in it: Redis never keeps an empty hash.
fn write_hash<R>(ctx: &mut Ctx, key: &[u8], f: impl FnOnce(&mut HashValue, &mut ReplyBuf) -> R) -> Result<R, ()> {
    let now = ctx.now_ms;
    let db = ctx.keys.db(key);
    match db.get(key, now) {
        Some(e) => match &mut e.value {
            Value::Hash(h) => Ok(f(h, ctx.out)),
            _ => {
                ctx.out.error(ERR_WRONGTYPE);
                Err(())
            }
        },
        None => {
            let mut h = HashValue::new();
            let r = f(&mut h, ctx.out);
            if !h.is_empty() {
                db.set(key, Value::Hash(h), 0);
            }
            Ok(r)
        }
    }
}

/// A field or value as a bulk reply.
fn reply_elem(out: &mut ReplyBuf, e: Elem) {
    match e {
        Elem::Str(s) => out.bulk(s),
        Elem::Int(n) => out.bulk_integer(n),
    }
}

/// Whether an option argument is `kw`, compared as Redis's `strcasecmp` does (up to
/// the first NUL, ignoring case).
fn is_opt(a: &[u8], kw: &str) -> bool {
    let a = a.iter().position(|&c| c == 0).map_or(a, |i| &a[..i]);
    a.eq_ignore_ascii_case(kw.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Harness;

    #[test]
    fn wrong_type_everywhere() {
        let mut h = Harness::new();
        h.cmd("SET s x");
        let wrongtype = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
        for line in [
            "HSET s f v",
            "HSETNX s f v",
            "HMSET s f v",
            "HGET s f",
            "HMGET s f",
            "HDEL s f",
            "HEXISTS s f",
            "HLEN s",
            "HSTRLEN s f",
            "HINCRBY s f 1",
            "HINCRBYFLOAT s f 1",
            "HKEYS s",
            "HVALS s",
            "HGETALL s",
            "HSCAN s 0",
            "HRANDFIELD s",
            "HRANDFIELD s 0",
        ] {
            assert_eq!(h.cmd(line), wrongtype, "{line}");
        }
        assert_eq!(h.cmd("GET s"), "$1\r\nx\r\n");
    }

    #[test]
    fn is_opt_stops_at_nul() {
        assert!(is_opt(b"WithValues", "withvalues"));
        assert!(is_opt(b"withvalues\0junk", "withvalues"));
        assert!(!is_opt(b"withvalue", "withvalues"));
    }
}
