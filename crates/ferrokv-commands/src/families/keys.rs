//! Generic key commands (Redis's db.c, expire.c and object.c): commands on keys
//! whatever their type, and on the keyspace as a whole.
//!
//! - here: DEL, UNLINK, EXISTS, TOUCH, TYPE, RENAME, RENAMENX, COPY;
//! - [`expire`]: EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, TTL, PTTL, EXPIRETIME,
//!   PEXPIRETIME, PERSIST;
//! - [`keyspace`]: the commands that visit every shard: KEYS, SCAN, RANDOMKEY, DBSIZE,
//!   FLUSHDB, FLUSHALL (listed in [`ALL_SHARDS`]);
//! - [`object`]: OBJECT and its subcommands; [`memory`]: MEMORY USAGE;
//! - [`serialize`]: DUMP, RESTORE, RESTORE-ASKING.
//!
//! Keys of one command may live in different shards' databases: each key is reached
//! through `ctx.keys.db(key)`, and a value that moves (RENAME, COPY) is taken out of
//! one database and put into the other.

mod expire;
mod keyspace;
mod memory;
mod object;
mod serialize;

pub use expire::*;
pub use keyspace::*;
pub use memory::{memory_usage, set_heap_meter};
pub use object::{object, OBJECT_SUBCOMMANDS};
pub use serialize::{dump, rdb_limits, restore};

use crate::table::{CommandSpec, Handler, KeyPositions};
use crate::util::*;
use crate::Ctx;
use ferrokv_resp::Args;

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

const NONE: KeyPositions = KeyPositions::NONE;
const ONE: KeyPositions = KeyPositions::new(1, 1, 1);
const ALL: KeyPositions = KeyPositions::new(1, -1, 1);
const TWO: KeyPositions = KeyPositions::new(1, 2, 1);

const W: &[&str] = &["write"];
const WF: &[&str] = &["write", "fast"];
const RF: &[&str] = &["readonly", "fast"];
const R: &[&str] = &["readonly"];
const KWS: &[&str] = &["@keyspace", "@write", "@slow"];
const KWF: &[&str] = &["@keyspace", "@write", "@fast"];
const KRF: &[&str] = &["@keyspace", "@read", "@fast"];
const KRS: &[&str] = &["@keyspace", "@read", "@slow"];

/// As `COMMAND INFO` on redis-server 7.0 prints them.
pub const COMMANDS: &[CommandSpec] = &[
    cmd("del", -2, W, ALL, KWS, del),
    cmd("unlink", -2, WF, ALL, KWF, unlink),
    cmd("exists", -2, RF, ALL, KRF, exists),
    cmd("touch", -2, RF, ALL, KRF, touch),
    cmd("type", 2, RF, ONE, KRF, type_),
    cmd("rename", 3, W, TWO, KWS, rename),
    cmd("renamenx", 3, WF, TWO, KWF, renamenx),
    cmd("copy", -3, &["write", "denyoom"], TWO, KWS, copy),
    cmd("dump", 2, R, ONE, KRS, dump),
    cmd("restore", -4, &["write", "denyoom"], ONE, &["@keyspace", "@write", "@slow", "@dangerous"], restore),
    cmd(
        "restore-asking",
        -4,
        &["write", "denyoom", "asking"],
        ONE,
        &["@keyspace", "@write", "@slow", "@dangerous"],
        restore,
    ),
    cmd("expire", -3, WF, ONE, KWF, expire),
    cmd("pexpire", -3, WF, ONE, KWF, pexpire),
    cmd("expireat", -3, WF, ONE, KWF, expireat),
    cmd("pexpireat", -3, WF, ONE, KWF, pexpireat),
    cmd("ttl", 2, RF, ONE, KRF, ttl),
    cmd("pttl", 2, RF, ONE, KRF, pttl),
    cmd("expiretime", 2, RF, ONE, KRF, expiretime),
    cmd("pexpiretime", 2, RF, ONE, KRF, pexpiretime),
    cmd("persist", 2, WF, ONE, KWF, persist),
    cmd("keys", 2, R, NONE, &["@keyspace", "@read", "@slow", "@dangerous"], keys).over_all_shards(),
    cmd("scan", -2, R, NONE, KRS, scan).over_all_shards(),
    cmd("randomkey", 1, R, NONE, KRS, randomkey).over_all_shards(),
    cmd("dbsize", 1, RF, NONE, KRF, dbsize).over_all_shards(),
    cmd("flushdb", -1, W, NONE, &["@keyspace", "@write", "@slow", "@dangerous"], flushdb).over_all_shards(),
    cmd("flushall", -1, W, NONE, &["@keyspace", "@write", "@slow", "@dangerous"], flushall).over_all_shards(),
    cmd("move", 3, WF, ONE, KWF, move_),
    cmd("swapdb", 3, WF, NONE, &["@keyspace", "@write", "@fast", "@dangerous"], swapdb).over_all_shards(),
    cmd("object", -2, &[], NONE, &["@slow"], object).with_subcommands(OBJECT_SUBCOMMANDS),
];

/// DEL key [key ...]
///
/// Deletes the keys; replies how many existed. A key named twice counts once.
pub fn del(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now_ms;
    let mut n = 0;
    for k in args.iter().skip(1) {
        if ctx.db(k).delete(k, now) {
            ctx.touch(k);
            n += 1;
        }
    }
    ctx.out.integer(n);
}

/// UNLINK key [key ...]
///
/// DEL whose freeing Redis defers to a background thread. Values here are freed in
/// place, so it is DEL with its own table entry (`fast`).
pub fn unlink(ctx: &mut Ctx, args: &Args) {
    del(ctx, args)
}

/// EXISTS key [key ...]
///
/// How many of the named keys exist; a key named twice counts twice.
pub fn exists(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now_ms;
    let n = args.iter().skip(1).filter(|k| ctx.keys.db(k).contains(k, now)).count();
    ctx.out.integer(n as i64);
}

/// TOUCH key [key ...]
///
/// Records an access to each key (LRU/LFU); replies how many exist, counting a key
/// named twice twice.
pub fn touch(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now_ms;
    let n = args.iter().skip(1).filter(|k| ctx.keys.db(k).read(k, now).is_some()).count();
    ctx.out.integer(n as i64);
}

/// TYPE key
///
/// The type name of the value at `key` (`string`, `list`, ...) or `none`, as a
/// status reply. Does not count as an access.
pub fn type_(ctx: &mut Ctx, args: &Args) {
    let (key, now) = (args.get(1), ctx.now_ms);
    let name = ctx.keys.db(key).peek(key, now).map_or("none", |e| e.value.type_name());
    ctx.out.simple(name);
}

/// RENAME key newkey
///
/// Moves the value, with its TTL, to `newkey`, replacing what was there.
pub fn rename(ctx: &mut Ctx, args: &Args) {
    rename_generic(ctx, args, false)
}

/// RENAMENX key newkey
///
/// RENAME only when `newkey` does not exist; replies 1 if it renamed, else 0.
pub fn renamenx(ctx: &mut Ctx, args: &Args) {
    rename_generic(ctx, args, true)
}

fn rename_generic(ctx: &mut Ctx, args: &Args, nx: bool) {
    let (src, dst, now) = (args.get(1), args.get(2), ctx.now_ms);
    if ctx.keys.db(src).get(src, now).is_none() {
        return ctx.out.error(ERR_NO_SUCH_KEY);
    }
    if src == dst {
        return if nx { ctx.out.integer(0) } else { ctx.out.ok() };
    }
    if ctx.keys.db(dst).get(dst, now).is_some() && nx {
        return ctx.out.integer(0);
    }
    // The value moves with its access history, as Redis moves the object itself.
    let Some((entry, access)) = ctx.keys.db(src).take(src, now) else {
        return ctx.out.error(ERR_NO_SUCH_KEY);
    };
    ctx.keys.db(dst).put(dst, entry, access);
    // Both keys changed for WATCH; Redis counts one change.
    ctx.mark_modified(src);
    ctx.touch(dst);
    if nx {
        ctx.out.integer(1)
    } else {
        ctx.out.ok()
    }
}

pub const ERR_NO_SUCH_KEY: &str = "ERR no such key";

/// A database index argument as Redis's `getIntFromObjectOrReply` + `selectDb` check
/// it: not an int → `ERR value is not an integer...`; outside `databases` → out of
/// range. Writes the error and answers None.
fn db_index(ctx: &mut Ctx, arg: &[u8]) -> Option<usize> {
    match parse_db_index(arg) {
        Ok(n) if n < 0 || n as usize >= ctx.cfg.databases => {
            ctx.out.error("ERR DB index is out of range");
            None
        }
        Ok(n) => Some(n as usize),
        Err(e) => {
            ctx.out.error(e);
            None
        }
    }
}

/// MOVE key db
///
/// Moves the key, value and TTL, from the selected database to `db` (the same slot,
/// so the same shard); replies 1, or 0 when the key is missing here or present there.
pub fn move_(ctx: &mut Ctx, args: &Args) {
    if ctx.cfg.cluster_mode {
        return ctx.out.error("ERR MOVE is not allowed in cluster mode");
    }
    let Some(dst) = db_index(ctx, args.get(2)) else { return };
    let (key, now) = (args.get(1), ctx.now_ms);
    let db = ctx.keys.db(key);
    let src = db.selected();
    if src == dst {
        return ctx.out.error("ERR source and destination objects are the same");
    }
    if db.get(key, now).is_none() {
        return ctx.out.integer(0);
    }
    db.select(dst);
    let there = db.get(key, now).is_some();
    db.select(src);
    if there {
        return ctx.out.integer(0);
    }
    let Some((entry, access)) = db.take(key, now) else { return ctx.out.integer(0) };
    db.touch(key);
    db.select(dst);
    db.put(key, entry, access);
    db.touch(key);
    db.select(src);
    ctx.moved_to = Some(dst);
    ctx.dirty += 1;
    ctx.out.integer(1);
}

/// COPY source destination [DB destination-db] [REPLACE]
///
/// Copies the value and its TTL to `destination` (in `destination-db`, else the
/// selected database); replies 1 if it copied, 0 when the source is missing or the
/// destination exists without REPLACE.
pub fn copy(ctx: &mut Ctx, args: &Args) {
    let mut replace = false;
    let mut target = None;
    let mut j = 3;
    while j < args.len() {
        let a = args.get(j);
        if eq_ic(a, "replace") {
            replace = true;
        } else if eq_ic(a, "db") && j + 1 < args.len() {
            let Some(n) = db_index(ctx, args.get(j + 1)) else { return };
            target = Some(n);
            j += 1;
        } else {
            return ctx.out.error(ERR_SYNTAX);
        }
        j += 1;
    }
    let (src, dst, now) = (args.get(1), args.get(2), ctx.now_ms);
    let here = ctx.keys.db(src).selected();
    let target = target.unwrap_or(here);
    if ctx.cfg.cluster_mode && target != 0 {
        return ctx.out.error("ERR Copying to another database is not allowed in cluster mode");
    }
    if src == dst && target == here {
        return ctx.out.error("ERR source and destination objects are the same");
    }
    let Some(e) = ctx.keys.db(src).get(src, now) else {
        return ctx.out.integer(0);
    };
    let (value, expire_at) = (e.value.clone(), e.expire_at);
    let dst_db = ctx.keys.db(dst);
    dst_db.select(target);
    if dst_db.get(dst, now).is_some() {
        if !replace {
            dst_db.select(here);
            return ctx.out.integer(0);
        }
        // Redis deletes the old destination and adds a new object: fresh LFU history.
        dst_db.remove(dst, now);
    }
    dst_db.set_copy(dst, value, expire_at);
    dst_db.touch(dst);
    dst_db.select(here);
    ctx.dirty += 1;
    if target != here {
        ctx.moved_to = Some(target);
    } else if let Some(m) = ctx.modified.as_mut() {
        m.push(dst.to_vec());
    }
    ctx.out.integer(1);
}

#[cfg(test)]
mod tests {
    use crate::testkit::{Harness, TwoDbs};
    use ferrokv_resp::Proto;

    /// Replays a session of random key commands recorded on redis-server 7.0.15
    /// (keys/redis_cases.txt) at the server's clock of the time, and compares every
    /// reply byte for byte (KEYS replies as sets).
    #[test]
    fn replays_redis_server_session() {
        fn hex(s: &str) -> Vec<u8> {
            if s == "-" {
                return Vec::new();
            }
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
        }
        fn unordered(reply: &str) -> Vec<String> {
            let mut parts: Vec<String> =
                reply.split("\r\n").skip(1).collect::<Vec<_>>().chunks(2).map(|c| c.join("|")).collect();
            parts.sort();
            parts
        }
        let mut h = Harness::with_seed(42);
        let mut n = 0;
        for line in include_str!("keys/redis_cases.txt").lines().filter(|l| !l.starts_with('#')) {
            let mut fields = line.split('\t');
            let (time, args, reply) = (fields.next().unwrap(), fields.next().unwrap(), fields.next().unwrap());
            h.now = time.parse().unwrap();
            let args: Vec<Vec<u8>> = args.split(' ').map(hex).collect();
            let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
            let want = String::from_utf8(hex(reply)).unwrap();
            let got = h.cmd_args(&refs);
            let shown: Vec<String> = args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            if args[0] == b"keys" {
                assert_eq!(unordered(&got), unordered(&want), "line {n}: {shown:?}");
            } else {
                assert_eq!(got, want, "line {n}: {shown:?}");
            }
            n += 1;
        }
        assert!(n >= 3000);
        h.db.check_invariants();
    }

    #[test]
    fn del_counts_each_key_once() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET a 1");
        h.cmd("SET b 2");
        assert_eq!(h.cmd("DEL a c a b"), ":2\r\n");
        assert_eq!(h.dirty, 2);
        assert_eq!(h.cmd("DEL a"), ":0\r\n");
        assert_eq!(h.cmd("UNLINK a"), ":0\r\n");
        h.cmd("SET a 1");
        assert_eq!(h.cmd("UNLINK a a"), ":1\r\n");
    }

    #[test]
    fn del_of_an_expired_key_is_zero() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET a 1");
        h.cmd("PEXPIRE a 10");
        h.now += 10;
        assert_eq!(h.cmd("DEL a"), ":0\r\n");
        assert_eq!(h.db.len(), 0);
    }

    #[test]
    fn exists_and_touch_count_duplicates() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET a 1");
        h.cmd("SET b 1");
        assert_eq!(h.cmd("EXISTS a a b c"), ":3\r\n");
        assert_eq!(h.cmd("TOUCH a b c a"), ":3\r\n");
        assert_eq!(h.cmd("EXISTS nope"), ":0\r\n");
        assert_eq!(h.dirty, 0);
    }

    #[test]
    fn touch_records_an_access_and_exists_does_not() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET a 1");
        h.now += 20_000;
        h.cmd("EXISTS a");
        h.cmd("TYPE a");
        assert_eq!(h.cmd("OBJECT IDLETIME a"), ":20\r\n");
        h.cmd("TOUCH a");
        assert_eq!(h.cmd("OBJECT IDLETIME a"), ":0\r\n");
    }

    #[test]
    fn type_names() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET a 1");
        assert_eq!(h.cmd("TYPE a"), "+string\r\n");
        assert_eq!(h.cmd("TYPE nope"), "+none\r\n");
        h.proto = Proto::Resp3;
        assert_eq!(h.cmd("TYPE nope"), "+none\r\n");
    }

    #[test]
    fn rename_moves_value_and_ttl() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET a hello");
        h.cmd("PEXPIRE a 100000");
        h.cmd("SET b old");
        assert_eq!(h.cmd("RENAME a b"), "+OK\r\n");
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("GET b"), "$5\r\nhello\r\n");
        assert_eq!(h.cmd("PTTL b"), ":100000\r\n");
        assert_eq!(h.cmd("EXISTS a"), ":0\r\n");
        // A destination with a TTL loses it to the source's lack of one.
        h.cmd("SET c v");
        h.cmd("EXPIRE b 50");
        h.cmd("RENAME c b");
        assert_eq!(h.cmd("TTL b"), ":-1\r\n");
        h.db.check_invariants();
    }

    #[test]
    fn rename_errors_and_same_key() {
        let mut h = Harness::with_seed(42);
        assert_eq!(h.cmd("RENAME x y"), "-ERR no such key\r\n");
        assert_eq!(h.cmd("RENAME x x"), "-ERR no such key\r\n");
        assert_eq!(h.cmd("RENAMENX x y"), "-ERR no such key\r\n");
        h.cmd("SET a 1");
        assert_eq!(h.cmd("RENAME a a"), "+OK\r\n");
        assert_eq!(h.cmd("RENAMENX a a"), ":0\r\n");
        assert_eq!(h.dirty, 0);
        h.cmd("SET b 2");
        assert_eq!(h.cmd("RENAMENX a b"), ":0\r\n");
        assert_eq!(h.cmd("RENAMENX a c"), ":1\r\n");
        assert_eq!(h.cmd("GET c"), "$1\r\n1\r\n");
    }

    #[test]
    fn rename_signals_both_keys_to_watchers() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET a 1");
        h.db.watch(b"a");
        h.db.watch(b"b");
        h.cmd("RENAME a b");
        assert_eq!((h.db.watch_version(b"a"), h.db.watch_version(b"b")), (1, 1));
    }

    #[test]
    fn rename_across_databases() {
        let mut t = TwoDbs::new();
        let (a, b) = t.keys_in_different_dbs();
        t.run(&["SET", &a, "v"]);
        t.run(&["PEXPIRE", &a, "5000"]);
        assert_eq!(t.run(&["RENAME", &a, &b]), "+OK\r\n");
        assert_eq!(t.run(&["GET", &b]), "$1\r\nv\r\n");
        assert_eq!(t.run(&["PTTL", &b]), ":5000\r\n");
        assert_eq!(t.run(&["EXISTS", &a]), ":0\r\n");
        // "a" lives in the second database, its new name in the first.
        assert_eq!((t.dbs[0].len(), t.dbs[1].len()), (1, 0));
        assert_eq!(t.run(&["COPY", &b, &a]), ":1\r\n");
        assert_eq!(t.run(&["PTTL", &a]), ":5000\r\n");
        assert_eq!(t.run(&["DEL", &a, &b]), ":2\r\n");
        for db in &mut t.dbs {
            db.check_invariants();
        }
    }

    #[test]
    fn copy_options() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET d 1");
        h.cmd("PEXPIRE d 100000");
        assert_eq!(h.cmd("COPY d e"), ":1\r\n");
        assert_eq!(h.cmd("PTTL e"), ":100000\r\n");
        assert_eq!(h.cmd("COPY d e"), ":0\r\n");
        assert_eq!(h.cmd("COPY d e db 0"), ":0\r\n");
        h.cmd("SET d 2");
        assert_eq!(h.cmd("COPY d e REPLACE"), ":1\r\n");
        assert_eq!(h.cmd("GET e"), "$1\r\n2\r\n");
        assert_eq!(h.cmd("TTL e"), ":-1\r\n");
        assert_eq!(h.cmd("COPY d e db 0 replace replace"), ":1\r\n");
        assert_eq!(h.cmd("COPY d e db 16"), "-ERR DB index is out of range\r\n");
        assert_eq!(h.cmd("COPY d d db 1"), ":1\r\n");
        assert_eq!(h.cmd("COPY d d db 1"), ":0\r\n");
        assert_eq!(h.cmd("MOVE d 1"), ":0\r\n", "present in db 1");
        assert_eq!(h.cmd("MOVE e 2"), ":1\r\n");
        assert_eq!(h.cmd("EXISTS e"), ":0\r\n");
        assert_eq!(h.cmd("MOVE e 2"), ":0\r\n");
        assert_eq!(h.cmd("MOVE d 0"), "-ERR source and destination objects are the same\r\n");
        assert_eq!(h.cmd("MOVE d 16"), "-ERR DB index is out of range\r\n");
        assert_eq!(h.cmd("MOVE d x"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("SWAPDB 0 2"), "+OK\r\n");
        assert_eq!(h.cmd("GET e"), "$1\r\n2\r\n", "db 2's key, swapped in");
        assert_eq!(h.cmd("EXISTS d"), ":0\r\n");
        assert_eq!(h.cmd("SWAPDB 0 x"), "-ERR invalid second DB index\r\n");
        assert_eq!(h.cmd("SWAPDB x 0"), "-ERR invalid first DB index\r\n");
        assert_eq!(h.cmd("SWAPDB 0 16"), "-ERR DB index is out of range\r\n");
        assert_eq!(h.cmd("SWAPDB 0 2"), "+OK\r\n");
        h.db.check_invariants();
        assert_eq!(h.cmd("COPY d e db -1"), "-ERR DB index is out of range\r\n");
        assert_eq!(h.cmd("COPY d e db abc"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(
            h.cmd("COPY d e db 4294967296"),
            "-ERR value is out of range, value must between -2147483648 and 2147483647\r\n"
        );
        assert_eq!(h.cmd("COPY d e db"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("COPY d e foo"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("COPY d d"), "-ERR source and destination objects are the same\r\n");
        assert_eq!(h.cmd("COPY nokey e"), ":0\r\n");
        // Options are checked before the source.
        assert_eq!(h.cmd("COPY nokey e db 16"), "-ERR DB index is out of range\r\n");
        h.db.check_invariants();
    }
}
