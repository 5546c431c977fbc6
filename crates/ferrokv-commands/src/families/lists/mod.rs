//! List commands (Redis's t_list.c), blocking forms included.
//!
//! A list value is a [`ListValue`], a quicklist of packed nodes whose size follows
//! `list-max-listpack-size` at the list's creation; OBJECT ENCODING reports
//! `quicklist` for every list, as Redis 7.0 does. A list that becomes empty is deleted.
//!
//! Files: `edit` (LPUSH, RPUSH, LPUSHX, RPUSHX, LINSERT, LSET, LREM, LTRIM), `read`
//! (LLEN, LINDEX, LRANGE, LPOS), `pop` (LPOP, RPOP, LMPOP, LMOVE, RPOPLPUSH, and the
//! serving steps the blocking forms share) and `blocking` (BLPOP, BRPOP, BLMPOP, BLMOVE,
//! BRPOPLPUSH).
//!
//! Each command checks its arguments in Redis's order, since that order decides which
//! error a client sees: e.g. LRANGE parses its indexes before looking the key up,
//! LINDEX looks the key up first, LPOS parses every option before either.

pub(crate) mod blocking;
mod edit;
mod pop;
mod read;

use crate::table::{CommandSpec, Handler, KeyPositions, Wakes};
use crate::util::{parse_i64, ERR_NOT_INT, ERR_SYNTAX, ERR_WRONGTYPE};
use crate::Ctx;
use ferrokv_resp::{Args, ReplyBuf};
use ferrokv_store::list::ListValue;
use ferrokv_store::{Db, Value};

const KEY1: KeyPositions = KeyPositions::new(1, 1, 1);
const KEY12: KeyPositions = KeyPositions::new(1, 2, 1);

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

const fn blocking_cmd(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    keys: KeyPositions,
    f: crate::table::BlockingFn,
    wakes: Wakes,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, keys, BLOCKING, Handler::Blocking(f, wakes))
}

const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const W: &[&str] = &["write"];
const WF: &[&str] = &["write", "fast"];
const WD: &[&str] = &["write", "denyoom"];
const WDF: &[&str] = &["write", "denyoom", "fast"];

const READ_FAST: &[&str] = &["@read", "@list", "@fast"];
const READ_SLOW: &[&str] = &["@read", "@list", "@slow"];
const WRITE_FAST: &[&str] = &["@write", "@list", "@fast"];
const WRITE_SLOW: &[&str] = &["@write", "@list", "@slow"];
const BLOCKING: &[&str] = &["@write", "@list", "@slow", "@blocking"];

/// Arity, flags, key positions and ACL categories as `COMMAND INFO` shows them on
/// redis-server 7.0.
pub const COMMANDS: &[CommandSpec] = &[
    cmd("lpush", -3, WDF, KEY1, WRITE_FAST, edit::lpush),
    cmd("rpush", -3, WDF, KEY1, WRITE_FAST, edit::rpush),
    cmd("lpushx", -3, WDF, KEY1, WRITE_FAST, edit::lpushx),
    cmd("rpushx", -3, WDF, KEY1, WRITE_FAST, edit::rpushx),
    cmd("linsert", 5, WD, KEY1, WRITE_SLOW, edit::linsert),
    cmd("lset", 4, WD, KEY1, WRITE_SLOW, edit::lset),
    cmd("lrem", 4, W, KEY1, WRITE_SLOW, edit::lrem),
    cmd("ltrim", 4, W, KEY1, WRITE_SLOW, edit::ltrim),
    cmd("llen", 2, RF, KEY1, READ_FAST, read::llen),
    cmd("lindex", 3, R, KEY1, READ_SLOW, read::lindex),
    cmd("lrange", 4, R, KEY1, READ_SLOW, read::lrange),
    cmd("lpos", -3, R, KEY1, READ_SLOW, read::lpos),
    cmd("lpop", -2, WF, KEY1, WRITE_FAST, pop::lpop),
    cmd("rpop", -2, WF, KEY1, WRITE_FAST, pop::rpop),
    // The server adds `movablekeys` to the flags of commands with a key finder.
    cmd("lmpop", -4, W, KeyPositions::NONE, WRITE_SLOW, pop::lmpop).with_key_finder(pop::lmpop_keys),
    cmd("lmove", 5, WD, KEY12, WRITE_SLOW, pop::lmove),
    cmd("rpoplpush", 3, WD, KEY12, WRITE_SLOW, pop::rpoplpush),
    blocking_cmd(
        "blpop",
        -3,
        &["write", "noscript", "blocking"],
        KeyPositions::new(1, -2, 1),
        blocking::blpop,
        Wakes::ListPop,
    ),
    blocking_cmd(
        "brpop",
        -3,
        &["write", "noscript", "blocking"],
        KeyPositions::new(1, -2, 1),
        blocking::brpop,
        Wakes::ListPop,
    ),
    blocking_cmd("blmove", 6, &["write", "denyoom", "noscript", "blocking"], KEY12, blocking::blmove, Wakes::ListMove),
    blocking_cmd(
        "brpoplpush",
        4,
        &["write", "denyoom", "noscript", "blocking"],
        KEY12,
        blocking::brpoplpush,
        Wakes::ListMove,
    ),
    blocking_cmd("blmpop", -5, &["write", "blocking"], KeyPositions::NONE, blocking::blmpop, Wakes::ListMpop)
        .with_key_finder(blocking::blmpop_keys),
];

/// Which end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Left,
    Right,
}

/// Whether an option argument is `kw`, compared as Redis's `strcasecmp` does (up to
/// the first NUL, ignoring case).
fn is_opt(a: &[u8], kw: &str) -> bool {
    let a = a.iter().position(|&c| c == 0).map_or(a, |i| &a[..i]);
    a.eq_ignore_ascii_case(kw.as_bytes())
}

/// `LEFT` or `RIGHT` (Redis's `getListPositionFromObjectOrReply`); replies a syntax
/// error otherwise.
fn parse_end(out: &mut ReplyBuf, a: &[u8]) -> Option<End> {
    if is_opt(a, "right") {
        Some(End::Right)
    } else if is_opt(a, "left") {
        Some(End::Left)
    } else {
        out.error(ERR_SYNTAX);
        None
    }
}

/// An integer argument (`getLongFromObjectOrReply`).
fn parse_int(out: &mut ReplyBuf, a: &[u8]) -> Option<i64> {
    let n = parse_i64(a);
    if n.is_none() {
        out.error(ERR_NOT_INT);
    }
    n
}

/// An integer in `min..=i64::MAX` (`getRangeLongFromObjectOrReply` with a message):
/// `msg` answers both a non-integer and an integer out of range.
fn parse_at_least(out: &mut ReplyBuf, a: &[u8], min: i64, msg: &str) -> Option<i64> {
    match parse_i64(a) {
        Some(n) if n >= min => Some(n),
        _ => {
            out.error(msg);
            None
        }
    }
}

/// A list index as Redis resolves it for LINDEX and LSET: negative counts from the
/// tail; None when outside the list.
fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if index < 0 { index + len } else { index };
    (0..len).contains(&i).then_some(i as usize)
}

/// The inclusive range `start..=end` of a list of `len` as LRANGE and LTRIM clamp it,
/// as a half-open `start..end`; None when empty.
fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 { start + len } else { start };
    let end = if end < 0 { end + len } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= len {
        return None;
    }
    let end = end.min(len - 1);
    Some((start as usize, end as usize + 1))
}

/// The list at `key` for a command that reads it: `Ok(None)` when missing, `Err(())`
/// after replying WRONGTYPE.
fn read_list<'a>(db: &'a mut Db, key: &[u8], now: u64, out: &mut ReplyBuf) -> Result<Option<&'a mut ListValue>, ()> {
    match db.get(key, now) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::List(l) => Ok(Some(l)),
            _ => {
                out.error(ERR_WRONGTYPE);
                Err(())
            }
        },
    }
}

/// Elements as an array reply.
fn reply_elements<'a>(out: &mut ReplyBuf, items: impl ExactSizeIterator<Item = &'a [u8]>) {
    out.array(items.len());
    for v in items {
        out.bulk(v);
    }
}

/// Deletes `key` when its list is empty, as Redis never keeps an empty list.
fn delete_if_empty(ctx: &mut Ctx, key: &[u8]) {
    let now = ctx.now_ms;
    let db = ctx.keys.db(key);
    if matches!(db.get(key, now), Some(e) if matches!(&e.value, Value::List(l) if l.is_empty())) {
        db.remove(key, now);
    }
}

/// Key indexes of a command whose keys follow a `numkeys` argument at `idx` (LMPOP,
/// BLMPOP), as Redis's `keynum` key spec finds them: none unless numkeys is a positive
/// integer and that many arguments follow it (Redis then finds no keys and lets the
/// command reply its own error).
fn numkeys_keys(args: &Args, idx: usize) -> Vec<usize> {
    if idx >= args.len() {
        return Vec::new();
    }
    let first = idx + 1;
    match parse_i64(args.get(idx)) {
        Some(n) if n > 0 && n < (args.len() - first) as i64 + 1 => (first..first + n as usize).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Harness;
    use ferrokv_resp::OwnedArgs;

    #[test]
    fn key_finders_follow_numkeys() {
        let keys = |words: &str, f: fn(&Args) -> Vec<usize>| {
            let owned = OwnedArgs::from_slices(words.split(' ').map(str::as_bytes));
            f(&owned.args())
        };
        assert_eq!(keys("LMPOP 2 a b LEFT", pop::lmpop_keys), [2, 3]);
        assert_eq!(keys("LMPOP 3 a LEFT", pop::lmpop_keys), Vec::<usize>::new());
        assert_eq!(keys("LMPOP 2 a LEFT", pop::lmpop_keys), [2, 3]);
        assert_eq!(keys("LMPOP 0 a LEFT", pop::lmpop_keys), Vec::<usize>::new());
        assert_eq!(keys("LMPOP x a LEFT", pop::lmpop_keys), Vec::<usize>::new());
        assert_eq!(keys("LMPOP -1 a LEFT", pop::lmpop_keys), Vec::<usize>::new());
        assert_eq!(keys("BLMPOP 0 2 a b RIGHT COUNT 3", blocking::blmpop_keys), [3, 4]);
        assert_eq!(keys("BLMPOP 0 9223372036854775807 a RIGHT", blocking::blmpop_keys), Vec::<usize>::new());
    }

    #[test]
    fn index_helpers() {
        assert_eq!(resolve_index(0, 3), Some(0));
        assert_eq!(resolve_index(-1, 3), Some(2));
        assert_eq!(resolve_index(-3, 3), Some(0));
        assert_eq!(resolve_index(-4, 3), None);
        assert_eq!(resolve_index(3, 3), None);
        assert_eq!(resolve_index(i64::MIN, 3), None);
        assert_eq!(clamp_range(0, -1, 5), Some((0, 5)));
        assert_eq!(clamp_range(-100, 100, 5), Some((0, 5)));
        assert_eq!(clamp_range(2, 1, 5), None);
        assert_eq!(clamp_range(5, 10, 5), None);
        assert_eq!(clamp_range(-2, -1, 5), Some((3, 5)));
        assert_eq!(clamp_range(i64::MIN, i64::MAX, 5), Some((0, 5)));
        assert_eq!(clamp_range(0, -6, 5), None);
    }

    #[test]
    fn wrong_type_everywhere() {
        let mut h = Harness::new();
        h.cmd("SET s x");
        h.cmd("RPUSH l a");
        let wrongtype = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
        for line in [
            "LPUSH s a",
            "RPUSH s a",
            "LPUSHX s a",
            "RPUSHX s a",
            "LINSERT s BEFORE a b",
            "LSET s 0 a",
            "LREM s 0 a",
            "LTRIM s 0 1",
            "LLEN s",
            "LINDEX s 0",
            "LRANGE s 0 -1",
            "LPOS s a",
            "LPOP s",
            "RPOP s 2",
            "LMPOP 2 missing s LEFT",
            "LMOVE s l LEFT LEFT",
            "LMOVE l s LEFT LEFT",
            "RPOPLPUSH l s",
            "BLPOP missing s 0",
            "BRPOP s 0",
            "BLMOVE s l LEFT LEFT 0",
            "BLMOVE l s LEFT LEFT 0",
            "BRPOPLPUSH l s 0",
            "BLMPOP 0 1 s LEFT",
        ] {
            assert_eq!(h.cmd(line), wrongtype, "{line}");
        }
        assert_eq!(h.list("l"), "a");
        assert_eq!(h.cmd("GET s"), "$1\r\nx\r\n");
    }

    #[test]
    fn object_encoding_is_always_quicklist() {
        let mut h = Harness::new();
        h.cmd("RPUSH l a");
        let e = h.db.get(b"l", h.now).map(|e| e.value.encoding());
        assert_eq!(e, Some("quicklist"));
        assert_eq!(h.db.get(b"l", h.now).map(|e| e.value.type_name()), Some("list"));
    }
}
