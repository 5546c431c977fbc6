//! The execution function: the one place every data command runs, whoever runs it —
//! the connection's shard, a shard it was forwarded to, a multi-shard command under
//! several locks, EXEC, a blocked client being served, and later a script's
//! `redis.call`. It returns the command's effects besides its reply: whether it must
//! wait (blocking commands), how many changes it made (`dirty`), and, when the effects
//! stream is on, the records it propagates (see `ferrokv_store::effects`).
//!
//! The records of one call are, in order: a `DEL` for every key the command (or
//! anything since the last call) found expired and deleted, then the command as Redis
//! 7.0 propagates it — as called if it changed something, rewritten where the command
//! asked for it (`Ctx::rewrite`, `Ctx::also_propagate`), nothing for a read.

use crate::ctx::{Ctx, ExecConfig, Keyspace};
use crate::error::ErrorCode;
use crate::table::{Blocked, CommandSpec, Flags, Handler};
use ferrokv_resp::{Args, ReplyBuf};
use ferrokv_store::effects::Records;

/// What a command's run depends on besides its arguments.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub cfg: &'a ExecConfig,
    /// Unix milliseconds, one clock for the whole command (and a whole EXEC).
    pub now_ms: u64,
    /// False inside EXEC: blocking commands answer at once.
    pub may_block: bool,
    /// Report the keys the command modified in [`Outcome::modified`].
    pub track_keys: bool,
    /// `notify-keyspace-events` classes (see [`crate::notify`]): derive the command's
    /// events into [`Outcome::events`]. 0 costs nothing.
    pub notify: u16,
    /// Who runs the command, for client-side caching.
    pub caller: Caller,
}

impl<'a> Env<'a> {
    /// For a command the server runs for no client (loading the AOF, a replica applying
    /// its master's stream, a migration's RESTORE or DEL): it never blocks, derives no
    /// events, and reports no keys.
    pub fn internal(cfg: &'a ExecConfig, now_ms: u64) -> Env<'a> {
        Env { cfg, now_ms, may_block: false, track_keys: false, notify: 0, caller: Caller::NONE }
    }
}

/// The client a command runs for, as client tracking needs it: its id (a NOLOOP client
/// does not hear of its own changes) and, when it is tracking in default mode and this
/// command's reads count (OPTIN/OPTOUT and CLIENT CACHING decide), itself as the reader
/// the keys of a read-only command are remembered for (Redis's `trackingRememberKeys`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub id: u64,
    pub reader: Option<ferrokv_store::tracking::Reader>,
    /// Its invalidations are RESP3 pushes on its own connection (tracking on, not
    /// BCAST, no redirect): a shard running its forwarded command can write its own
    /// invalidation right behind the reply, as Redis does.
    pub push: bool,
    /// It tracks with NOLOOP.
    pub noloop: bool,
    /// The command comes from a script's `redis.call` (Redis's `CLIENT_SCRIPT`).
    pub script: bool,
}

impl Caller {
    /// No client (a replica's stream, the server itself).
    pub const NONE: Caller = Caller { id: 0, reader: None, push: false, noloop: false, script: false };
}

/// What a command did besides writing its reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub blocked: Blocked,
    /// Changes made (INFO's `rdb_changes_since_last_save`).
    pub dirty: u64,
    /// The keys it modified, in order, when `Env::track_keys` asked (else empty).
    pub modified: Vec<Vec<u8>>,
    /// It replied an error, with this code (Redis counts it as a failed call).
    pub error: Option<ErrorCode>,
    /// The commands a script ran (EVAL, FCALL), counted in the statistics too.
    pub nested: Vec<crate::scripting::call::NestedCall>,
    /// Its error reply was counted in the error statistics already (a script's error
    /// that a command it ran replied).
    pub error_counted: bool,
    /// Its keyspace notifications, in order, when `Env::notify` asked.
    pub events: Vec<crate::notify::KeyEvent>,
}

/// Runs the data command `spec` (its arguments checked against its arity already)
/// against `ks`, writing its reply to `out`. When the effects stream is on, appends
/// its propagation records to `records` (the caller logs them as one unit, or, for
/// EXEC, gathers a whole transaction's). A blocking command that finds nothing to
/// serve writes nothing and returns `Blocked::Wait` when `env.may_block`.
pub fn execute(
    ks: &mut dyn Keyspace,
    spec: &CommandSpec,
    args: &Args,
    env: Env,
    out: &mut ReplyBuf,
    records: &mut Records,
) -> Outcome {
    let propagating = ks.propagating();
    let errors_before = out.errors;
    // A read-only command's lookups are all reads (a replica hides expired keys from
    // them instead of deleting): the table says which commands only read.
    let reads_only = spec.has(Flags::READONLY);
    if reads_only {
        ks.each_db(&mut |db| db.reads_only = true);
    }
    // Keyspace notifications: which declared keys exist before (see crate::notify).
    use crate::notify::class;
    let notify = if env.notify & (class::KEYSPACE | class::KEYEVENT) != 0 { env.notify } else { 0 };
    let mut key_states = Vec::new();
    if notify != 0 {
        let mut idx = Vec::new();
        spec.key_indexes(args, &mut idx);
        for i in idx {
            let k = args.get(i);
            let before = ks.db(k).contains(k, env.now_ms);
            key_states.push((k.to_vec(), before, false));
        }
    }
    let id = env.caller.id;
    ks.each_db(&mut |db| db.tracking.current = id);
    let mut ctx = Ctx::new(ks, env.now_ms, env.cfg, out);
    ctx.caller = env.caller;
    ctx.may_block = env.may_block;
    ctx.propagating = propagating;
    if env.track_keys || notify != 0 {
        ctx.modified = Some(Vec::new());
    }
    ctx.notify = notify;
    let blocked = match spec.handler {
        Handler::Data(f) => {
            f(&mut ctx, args);
            Blocked::Served
        }
        Handler::Blocking(f, _) => f(&mut ctx, args),
        Handler::Server(_) => {
            ctx.out.error("ERR internal error: not a data command");
            Blocked::Served
        }
    };
    let dirty = ctx.dirty;
    let modified = ctx.modified.take().unwrap_or_default();
    let propagation = std::mem::take(&mut ctx.propagation);
    let nested = std::mem::take(&mut ctx.nested);
    let error_counted = ctx.error_counted;
    let mut events = std::mem::take(&mut ctx.events);
    let script_read = ctx.script_read;
    let other_db = ctx.moved_to.take();
    drop(ctx);
    if let Some(reader) = env.caller.reader {
        remember_keys(ks, spec, args, reader, script_read);
    }
    if reads_only {
        ks.each_db(&mut |db| db.reads_only = false);
    }
    if propagating {
        ks.take_expired(records);
        let p = propagation;
        for argv in &p.also {
            records.push(argv);
        }
        if !p.prevented && (dirty > 0 || p.forced) {
            match &p.rewritten {
                Some(argv) => records.push(argv),
                None => records.push_args(args.iter()),
            }
        }
    }
    let error = (out.errors > errors_before).then(|| ErrorCode::of(&out.buf[out.last_error_at..]));
    if notify != 0 {
        for (k, _, after) in key_states.iter_mut() {
            *after = ks.db(k).contains(k, env.now_ms);
        }
        let mut expired = Vec::new();
        ks.each_db(&mut |db| expired.extend(db.take_expired_notes()));
        let seen = crate::notify::Observed {
            expired,
            modified: &modified,
            keys: &key_states,
            // A script's keys are looked up by the commands it ran (their events are in).
            reads_only: reads_only && blocked == Blocked::Served && events.is_empty() && !spec.has(Flags::NOSCRIPT),
            other_db,
        };
        events.extend(crate::notify::events(spec.name, args, &seen, notify));
    }
    let modified = if env.track_keys { modified } else { Vec::new() };
    Outcome { blocked, dirty, modified, error, error_counted, nested, events }
}

/// Client tracking: after a read-only command, its keys are remembered for the client
/// that read them. A script is not itself a read: if it ran a read-only command, its
/// declared keys are remembered, as Redis 7.0 does (at the end of the script here, at
/// its read there).
fn remember_keys(
    ks: &mut dyn Keyspace,
    spec: &CommandSpec,
    args: &Args,
    reader: ferrokv_store::tracking::Reader,
    script_read: bool,
) {
    let script = spec.has(Flags::NO_MANDATORY_KEYS);
    if !(script && script_read || !script && spec.has(Flags::READONLY)) {
        return;
    }
    let mut idx = Vec::new();
    spec.key_indexes(args, &mut idx);
    for i in idx {
        let k = args.get(i);
        ks.db(k).tracking.remember(k, reader);
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;

    /// Runs `line` and returns what it propagated.
    fn prop(h: &mut Harness, line: &str) -> Vec<String> {
        h.cmd(line);
        h.propagated.clone()
    }

    #[test]
    fn writes_propagate_as_called_and_reads_not_at_all() {
        let mut h = Harness::new();
        assert_eq!(prop(&mut h, "SET k v"), ["SET k v"]);
        assert_eq!(prop(&mut h, "GET k"), Vec::<String>::new());
        assert_eq!(prop(&mut h, "SET k w NX"), Vec::<String>::new(), "no change, no record");
        assert_eq!(prop(&mut h, "RPUSH l a b c"), ["RPUSH l a b c"]);
        assert_eq!(prop(&mut h, "DEL missing"), Vec::<String>::new());
        assert_eq!(prop(&mut h, "INCR n"), ["INCR n"]);
        assert_eq!(prop(&mut h, "HGET h f"), Vec::<String>::new());
    }

    #[test]
    fn relative_expiries_become_absolute() {
        let mut h = Harness::new();
        let at = |ms: u64| (h_now() + ms).to_string();
        assert_eq!(prop(&mut h, "SET k v EX 10"), [format!("SET k v PXAT {}", at(10_000))]);
        assert_eq!(prop(&mut h, "SET k v PX 5 NX"), Vec::<String>::new());
        assert_eq!(prop(&mut h, "SET k v PX 5 XX GET"), [format!("SET k v PXAT {}", at(5))]);
        assert_eq!(prop(&mut h, "SETEX k 3 v"), [format!("SET k v PXAT {}", at(3000))]);
        assert_eq!(prop(&mut h, "PSETEX k 3 v"), [format!("SET k v PXAT {}", at(3))]);
        assert_eq!(prop(&mut h, "EXPIRE k 100"), [format!("PEXPIREAT k {}", at(100_000))]);
        assert_eq!(prop(&mut h, "PEXPIRE k 100 GT"), Vec::<String>::new(), "refused by GT");
        assert_eq!(prop(&mut h, "PEXPIRE k 200000 GT"), [format!("PEXPIREAT k {} GT", at(200_000))]);
        let abs = at(300_000);
        assert_eq!(prop(&mut h, &format!("PEXPIREAT k {abs}")), [format!("PEXPIREAT k {abs}")]);
        assert_eq!(prop(&mut h, "GETEX k EX 7"), [format!("PEXPIREAT k {}", at(7000))]);
        assert_eq!(prop(&mut h, "GETEX k"), Vec::<String>::new());
        assert_eq!(prop(&mut h, "GETEX k PERSIST"), ["PERSIST k"]);
        assert_eq!(prop(&mut h, "GETEX k PERSIST"), Vec::<String>::new(), "no TTL left to remove");
        assert_eq!(prop(&mut h, "GETEX k PXAT 1"), ["DEL k"]);
        h.cmd("SET k v");
        assert_eq!(prop(&mut h, "EXPIRE k -1"), ["DEL k"]);
    }

    fn h_now() -> u64 {
        Harness::new().now
    }

    #[test]
    fn nondeterministic_and_blocking_commands_propagate_what_they_did() {
        let mut h = Harness::new();
        assert_eq!(prop(&mut h, "INCRBYFLOAT f 1.5"), ["SET f 1.5 KEEPTTL"]);
        assert_eq!(prop(&mut h, "HINCRBYFLOAT h x 2.5"), ["HSET h x 2.5"]);
        assert_eq!(prop(&mut h, "GETSET f 3"), ["SET f 3"]);
        assert_eq!(prop(&mut h, "GETDEL f"), ["DEL f"]);
        h.cmd("SADD s a");
        assert_eq!(prop(&mut h, "SPOP s"), ["SREM s a"]);
        h.cmd("SADD s 1 2 3 4 5 6 7 8 9 10");
        let srems = prop(&mut h, "SPOP s 3");
        assert_eq!(srems.len(), 3, "{srems:?}");
        assert!(srems.iter().all(|r| r.starts_with("SREM s ")), "{srems:?}");
        let srems = prop(&mut h, "SPOP s 6");
        assert_eq!(srems.len(), 6, "{srems:?}");
        assert_eq!(prop(&mut h, "SPOP s 5"), ["DEL s"]);
        h.cmd("RPUSH l a b c");
        assert_eq!(prop(&mut h, "BLPOP l 0"), ["LPOP l"]);
        assert_eq!(prop(&mut h, "BRPOP l 0"), ["RPOP l"]);
        assert_eq!(prop(&mut h, "BLPOP none 0"), Vec::<String>::new(), "waits: nothing yet");
        h.cmd("RPUSH l a b");
        assert_eq!(prop(&mut h, "BLMPOP 0 1 l LEFT COUNT 5"), ["LPOP l 3"], "b was left");
        h.cmd("RPUSH l a b");
        assert_eq!(prop(&mut h, "LMPOP 1 l RIGHT"), ["RPOP l 1"]);
        assert_eq!(prop(&mut h, "BLMOVE l m LEFT RIGHT 0"), ["LMOVE l m left right"]);
        assert_eq!(prop(&mut h, "BRPOPLPUSH m l 0"), ["RPOPLPUSH m l"]);
        assert_eq!(prop(&mut h, "LMOVE l m RIGHT LEFT"), ["LMOVE l m RIGHT LEFT"]);
        h.cmd("ZADD z 1 a 2 b 3 c");
        assert_eq!(prop(&mut h, "BZPOPMIN z 0"), ["ZPOPMIN z"]);
        assert_eq!(prop(&mut h, "ZMPOP 1 z MAX COUNT 10"), ["ZPOPMAX z 2"]);
        h.cmd("ZADD z 1 a");
        assert_eq!(prop(&mut h, "BZMPOP 0 1 z MIN COUNT 1"), ["ZPOPMIN z 1"]);
        assert_eq!(prop(&mut h, "FLUSHDB"), ["FLUSHDB"], "forced even on an empty keyspace");
        assert_eq!(prop(&mut h, "FLUSHALL"), ["FLUSHALL"]);
    }

    #[test]
    fn keys_found_expired_propagate_as_del_before_the_command() {
        let mut h = Harness::new();
        h.cmd("SET e v PX 10");
        h.cmd("SET f v PX 10");
        h.now += 20;
        assert_eq!(prop(&mut h, "GET e"), ["DEL e"]);
        assert_eq!(prop(&mut h, "SET f x NX"), ["DEL f", "SET f x NX"]);
        assert_eq!(prop(&mut h, "GET e"), Vec::<String>::new());
    }
}

#[cfg(test)]
mod replica_tests {
    use crate::testkit::Harness;
    use ferrokv_store::Expiry;

    /// On a replica, read-only commands do not see an expired key and leave it; a
    /// write command deletes it (and propagates nothing of its own for the DEL).
    #[test]
    fn read_only_commands_hide_expired_keys_on_a_replica() {
        let mut h = Harness::new();
        h.cmd("RPUSH l a b");
        h.cmd("SET s v");
        h.cmd("PEXPIRE l 10");
        h.cmd("PEXPIRE s 10");
        h.db.expiry = Expiry::HideOnRead;
        h.now += 20;
        assert_eq!(h.cmd("LRANGE l 0 -1"), "*0\r\n");
        assert_eq!(h.cmd("LLEN l"), ":0\r\n");
        assert_eq!(h.cmd("GET s"), "$-1\r\n");
        assert_eq!(h.cmd("STRLEN s"), ":0\r\n");
        assert_eq!(h.db.len(), 2, "reads leave expired keys for the master's DEL");
        assert_eq!(h.cmd("APPEND s x"), ":1\r\n", "a write treats it as gone");
        assert_eq!(h.db.len(), 2);
        assert_eq!(h.cmd("GET s"), "$1\r\nx\r\n");
    }
}

#[cfg(test)]
mod modified_tests {
    use crate::testkit::Harness;

    #[test]
    fn the_outcome_names_the_keys_a_command_modified() {
        let mut h = Harness::new();
        let mut modified = |line: &str| {
            h.cmd(line);
            h.modified.clone()
        };
        assert_eq!(modified("SET a 1"), ["a"]);
        assert_eq!(modified("GET a"), Vec::<String>::new());
        assert_eq!(modified("MSET b 1 c 2 b 3"), ["b", "c"]);
        assert_eq!(modified("RENAME a d"), ["a", "d"]);
        assert_eq!(modified("DEL nosuch"), Vec::<String>::new());
        assert_eq!(modified("LPUSH l x"), ["l"]);
        assert_eq!(modified("SET b 4 NX"), Vec::<String>::new(), "NX refused: nothing changed");
        assert_eq!(modified("SUNIONSTORE s l"), Vec::<String>::new(), "WRONGTYPE");
    }
}
