//! Set commands (Redis's t_set.c).
//!
//! The value type and its encodings are [`ferrokv_store::set`]'s business; each
//! command passes the thresholds of `ctx.cfg` ([`limits`]) to the operations that may
//! convert a set, so OBJECT ENCODING shows what Redis 7.0 would show.
//!
//! Files: `members` (SADD, SREM, SCARD, SISMEMBER, SMISMEMBER, SMOVE), `random`
//! (SPOP, SRANDMEMBER), `algebra` (SMEMBERS, SINTER, SINTERCARD, SUNION, SDIFF and the
//! STORE forms) and `scan` (SSCAN).
//!
//! Commands with several keys read one key at a time (keys may live in different
//! shards' databases): what one set contributes is copied out before the next is
//! looked up.

mod algebra;
mod members;
mod random;
mod scan;

use crate::ctx::ExecConfig;
use crate::table::{CommandSpec, Handler, KeyPositions};
use crate::util::ERR_WRONGTYPE;
use ferrokv_resp::{Args, ReplyBuf};
use ferrokv_store::set::{Member, SetLimits, SetValue};
use ferrokv_store::{Db, Value};

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

const KEY1: KeyPositions = KeyPositions::new(1, 1, 1);
const ALL: KeyPositions = KeyPositions::new(1, -1, 1);

const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const WF: &[&str] = &["write", "fast"];
const WD: &[&str] = &["write", "denyoom"];
const WDF: &[&str] = &["write", "denyoom", "fast"];

const READ_FAST: &[&str] = &["@read", "@set", "@fast"];
const READ_SLOW: &[&str] = &["@read", "@set", "@slow"];
const WRITE_FAST: &[&str] = &["@write", "@set", "@fast"];
const WRITE_SLOW: &[&str] = &["@write", "@set", "@slow"];

/// Arity, flags, key positions and ACL categories as `COMMAND INFO` shows them on
/// redis-server 7.0.
pub const COMMANDS: &[CommandSpec] = &[
    cmd("sadd", -3, WDF, KEY1, WRITE_FAST, members::sadd),
    cmd("srem", -3, WF, KEY1, WRITE_FAST, members::srem),
    cmd("scard", 2, RF, KEY1, READ_FAST, members::scard),
    cmd("sismember", 3, RF, KEY1, READ_FAST, members::sismember),
    cmd("smismember", -3, RF, KEY1, READ_FAST, members::smismember),
    cmd("smove", 4, WF, KeyPositions::new(1, 2, 1), WRITE_FAST, members::smove),
    cmd("spop", -2, WF, KEY1, WRITE_FAST, random::spop),
    cmd("srandmember", -2, R, KEY1, READ_SLOW, random::srandmember),
    cmd("smembers", 2, R, KEY1, READ_SLOW, algebra::smembers),
    cmd("sinter", -2, R, ALL, READ_SLOW, algebra::sinter),
    cmd("sintercard", -3, &["readonly", "movablekeys"], KeyPositions::NONE, READ_SLOW, algebra::sintercard)
        .with_key_finder(algebra::sintercard_keys),
    cmd("sinterstore", -3, WD, ALL, WRITE_SLOW, algebra::sinterstore),
    cmd("sunion", -2, R, ALL, READ_SLOW, algebra::sunion),
    cmd("sunionstore", -3, WD, ALL, WRITE_SLOW, algebra::sunionstore),
    cmd("sdiff", -2, R, ALL, READ_SLOW, algebra::sdiff),
    cmd("sdiffstore", -3, WD, ALL, WRITE_SLOW, algebra::sdiffstore),
    cmd("sscan", -3, R, KEY1, READ_SLOW, scan::sscan),
];

/// The encoding thresholds of the current config.
fn limits(cfg: &ExecConfig) -> SetLimits {
    SetLimits {
        max_intset_entries: cfg.set_max_intset_entries,
        max_packed_entries: cfg.set_max_listpack_entries,
        max_packed_value: cfg.set_max_listpack_value,
    }
}

/// The set at `key`, looked up as Redis's `lookupKeyRead`/`lookupKeyWrite` (an
/// access): `Ok(None)` when missing, `Err(())` after replying WRONGTYPE.
fn lookup<'a>(db: &'a mut Db, key: &[u8], now: u64, out: &mut ReplyBuf) -> Result<Option<&'a mut SetValue>, ()> {
    match db.get(key, now) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Set(s) => Ok(Some(s)),
            _ => {
                out.error(ERR_WRONGTYPE);
                Err(())
            }
        },
    }
}

/// The set at `key` without recording an access, for a second look at a key the
/// command already looked up and type-checked.
fn peek<'a>(db: &'a mut Db, key: &[u8], now: u64) -> Option<&'a SetValue> {
    match db.peek(key, now) {
        Some(e) => match &e.value {
            Value::Set(s) => Some(s),
            _ => None,
        },
        None => None,
    }
}

/// A member as a bulk string.
fn reply_member(out: &mut ReplyBuf, m: Member) {
    match m {
        Member::Int(n) => out.bulk_integer(n),
        Member::Bytes(b) => out.bulk(b),
    }
}

/// An argument as C code sees it through `strcasecmp`: up to its first NUL.
fn is_opt(a: &[u8], kw: &str) -> bool {
    let a = a.iter().position(|&c| c == 0).map_or(a, |i| &a[..i]);
    a.eq_ignore_ascii_case(kw.as_bytes())
}

/// The keys of a command that names them from `args[from]` on.
fn keys_from<'a>(args: &Args<'a>, from: usize) -> Vec<&'a [u8]> {
    (from..args.len()).map(|i| args.get(i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Harness;

    #[test]
    fn wrong_types_and_arity() {
        let mut h = Harness::new();
        h.cmd("SET s x");
        for c in ["SADD s a", "SREM s a", "SCARD s", "SISMEMBER s a", "SMISMEMBER s a", "SMEMBERS s", "SPOP s"] {
            assert_eq!(h.cmd(c), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", "{c}");
        }
        assert_eq!(h.cmd("SADD s"), "-ERR wrong number of arguments for 'sadd' command\r\n");
        assert_eq!(h.cmd("SMOVE a b"), "-ERR wrong number of arguments for 'smove' command\r\n");
    }

    #[test]
    fn options_compare_as_c_strings() {
        assert!(is_opt(b"limit", "LIMIT"));
        assert!(is_opt(b"LIMIT\0junk", "LIMIT"));
        assert!(!is_opt(b"LIMITS", "LIMIT"));
    }
}
