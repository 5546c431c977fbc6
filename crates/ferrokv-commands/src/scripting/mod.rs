//! Scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT (Lua 5.1, as Redis 7.0
//! embeds it).
//!
//! A script is a data command: its declared keys (KEYS) route it like any command's
//! keys, so it runs on the shard that owns them, under the locks of every shard they
//! span, or — when it declares none — under every shard's lock. Each `redis.call`
//! goes through the execution function on that same keyspace ([`call`]), so the
//! script's writes reach the effects stream as one unit: Redis 7's effects
//! replication (the commands it ran, wrapped in MULTI/EXEC when more than one; never
//! the EVAL itself).
//!
//! - [`engine`]: the per-thread Lua state, sandbox and run;
//! - [`api`]: the `redis` table; [`call`]: `redis.call`/`pcall`;
//! - [`convert`]: replies ↔ Lua values; [`libs`]: cjson, cmsgpack, bit, struct;
//! - [`cache`]: the node's scripts by SHA-1; [`running`]: SCRIPT KILL and BUSY.

pub mod api;
pub mod cache;
pub mod call;
pub mod convert;
pub mod engine;
pub mod flags;
pub mod functions;
pub mod libs;
pub mod running;
pub mod sha1;

use crate::ctx::Ctx;
use crate::table::{CommandSpec, Handler, KeyPositions, ServerCmd};
use crate::util::parse_i64;
use cache::{cache, Script};
use ferrokv_resp::Args;
use flags::ScriptFlags;
use std::sync::{Arc, OnceLock};

/// What scripting needs to know of the node it runs in (the server sets these once).
pub struct Hooks {
    /// This node is a replica with `replica-read-only yes` (writes refused).
    pub read_only_replica: fn() -> bool,
    /// A master short of `min-replicas-to-write` good replicas (writes get NOREPLICAS).
    pub too_few_replicas: fn() -> bool,
    /// Cluster mode: this node serves `slot`.
    pub slot_is_local: fn(u16) -> bool,
    /// `redis.log(level, msg)`, level 0 (debug) to 3 (warning).
    pub log: fn(u8, &str),
    /// The node is over `maxmemory` (Redis's `pre_command_oom_state`; false where the
    /// node may not evict, e.g. a replica ignoring maxmemory).
    pub over_maxmemory: fn() -> bool,
    /// A server command a script runs (one Redis 7.0 does not flag `noscript`: INFO,
    /// COMMAND, MEMORY, PUBSUB, CLUSTER, LASTSAVE, the HELP subcommands...): its reply
    /// to `out`. False when ferrokv does not run it from a script.
    pub server_command: fn(ServerCmd, &ferrokv_resp::Args, &mut ferrokv_resp::ReplyBuf) -> bool,
    /// How many of this node's clients a PUBLISH (`shard` false) or SPUBLISH (true) to
    /// `channel` reaches now.
    pub receivers: fn(bool, &[u8]) -> usize,
    /// Called by the Lua hook while the running script is past `busy-reply-threshold`:
    /// the server serves its thread's other clients here (BUSY, SCRIPT KILL...), as
    /// Redis's `processEventsWhileBlocked`.
    pub while_busy: fn(),
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();
static DEFAULT_HOOKS: Hooks = Hooks {
    read_only_replica: || false,
    too_few_replicas: || false,
    slot_is_local: |_| true,
    log: |_, _| {},
    over_maxmemory: || false,
    server_command: |_, _, _| false,
    receivers: |_, _| 0,
    while_busy: || {},
};

pub fn set_hooks(h: Hooks) {
    let _ = HOOKS.set(h);
}

pub(crate) fn hooks() -> &'static Hooks {
    HOOKS.get().unwrap_or(&DEFAULT_HOOKS)
}

const EVAL_FLAGS: &[&str] = &["noscript", "stale", "skip_monitor", "no_mandatory_keys"];
const EVAL_RO_FLAGS: &[&str] = &["readonly", "noscript", "stale", "skip_monitor", "no_mandatory_keys"];
const SCRIPTING: &[&str] = &["@slow", "@scripting"];

const fn data(name: &'static str, arity: i32, flags: &'static [&'static str], f: crate::table::DataFn) -> CommandSpec {
    CommandSpec::new(name, arity, flags, KeyPositions::NONE, SCRIPTING, Handler::Data(f))
}

pub const SCRIPT_SUBCOMMANDS: &[CommandSpec] = &[
    data("script|debug", 3, &["noscript"], script_debug),
    data("script|exists", -3, &["noscript"], script_exists),
    data("script|flush", -2, &["noscript"], script_flush),
    data("script|help", 2, &["loading", "stale"], script_help),
    data("script|load", 3, &["noscript", "stale"], script_load),
    CommandSpec::new(
        "script|kill",
        2,
        &["noscript", "allow_busy"],
        KeyPositions::NONE,
        SCRIPTING,
        Handler::Server(ServerCmd::ScriptKill),
    ),
];

const fn write_fn(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    f: crate::table::DataFn,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, KeyPositions::NONE, &["@write", "@slow", "@scripting"], Handler::Data(f))
}

pub const FUNCTION_SUBCOMMANDS: &[CommandSpec] = &[
    write_fn("function|restore", -3, &["write", "denyoom", "noscript"], functions::function_restore),
    data("function|list", -2, &["noscript"], functions::function_list),
    write_fn("function|flush", -2, &["write", "noscript"], functions::function_flush),
    write_fn("function|delete", 3, &["write", "noscript"], functions::function_delete),
    data("function|help", 2, &["loading", "stale"], functions::function_help),
    write_fn("function|load", -3, &["write", "denyoom", "noscript"], functions::function_load),
    data("function|dump", 2, &["noscript"], functions::function_dump),
    CommandSpec::new(
        "function|kill",
        2,
        &["noscript", "allow_busy"],
        KeyPositions::NONE,
        SCRIPTING,
        Handler::Server(ServerCmd::FunctionKill),
    ),
    data("function|stats", 2, &["noscript", "allow_busy"], functions::function_stats),
];

pub static COMMANDS: &[CommandSpec] = &[
    data("fcall", -3, EVAL_FLAGS, functions::fcall).with_key_finder(numkeys_keys),
    data("fcall_ro", -3, EVAL_RO_FLAGS, functions::fcall_ro).with_key_finder(numkeys_keys),
    CommandSpec::new("function", -2, &[], KeyPositions::NONE, &["@slow"], Handler::Data(functions::function_help))
        .with_subcommands(FUNCTION_SUBCOMMANDS),
    data("eval", -3, EVAL_FLAGS, eval).with_key_finder(numkeys_keys),
    data("evalsha", -3, EVAL_FLAGS, evalsha).with_key_finder(numkeys_keys),
    data("eval_ro", -3, EVAL_RO_FLAGS, eval_ro).with_key_finder(numkeys_keys),
    data("evalsha_ro", -3, EVAL_RO_FLAGS, evalsha_ro).with_key_finder(numkeys_keys),
    CommandSpec::new("script", -2, &[], KeyPositions::NONE, &["@slow"], Handler::Data(script_help))
        .with_subcommands(SCRIPT_SUBCOMMANDS),
];

/// EVAL/FCALL's keys: `numkeys` at argument 2, the keys after it (none when numkeys is
/// not a valid count: the command then replies its error where it runs).
pub fn numkeys_keys(args: &Args) -> Vec<usize> {
    match parse_i64(args.get(2)) {
        Some(n) if n >= 0 && (n as usize) <= args.len() - 3 => (3..3 + n as usize).collect(),
        _ => Vec::new(),
    }
}

/// EVAL script numkeys [key ...] [arg ...]
fn eval(ctx: &mut Ctx, args: &Args) {
    eval_generic(ctx, args, false, false)
}

/// EVALSHA sha1 numkeys [key ...] [arg ...]
fn evalsha(ctx: &mut Ctx, args: &Args) {
    eval_generic(ctx, args, true, false)
}

/// EVAL_RO script numkeys [key ...] [arg ...]
fn eval_ro(ctx: &mut Ctx, args: &Args) {
    eval_generic(ctx, args, false, true)
}

/// EVALSHA_RO sha1 numkeys [key ...] [arg ...]
fn evalsha_ro(ctx: &mut Ctx, args: &Args) {
    eval_generic(ctx, args, true, true)
}

const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";

/// The numkeys checks of EVAL and FCALL: the number of keys (`args[3..3 + n]`; the
/// script's other arguments follow them).
pub(crate) fn split_keys(ctx: &mut Ctx, args: &Args) -> Option<usize> {
    let Some(n) = parse_i64(args.get(2)) else {
        ctx.out.error("ERR value is not an integer or out of range");
        return None;
    };
    if n > args.len() as i64 - 3 {
        ctx.out.error("ERR Number of keys can't be greater than number of args");
        return None;
    }
    if n < 0 {
        ctx.out.error("ERR Number of keys can't be negative");
        return None;
    }
    Some(n as usize)
}

fn eval_generic(ctx: &mut Ctx, args: &Args, by_sha: bool, ro: bool) {
    let Some(numkeys) = split_keys(ctx, args) else { return };
    let script = if by_sha {
        let sha = args.get(1);
        // This thread's compiled scripts first (no lock), then the node's cache.
        let found = engine::with_engine(|e| e.cached(sha)).ok().flatten().or_else(|| {
            (sha.len() == 40)
                .then(|| std::str::from_utf8(sha).ok())
                .flatten()
                .and_then(|s| cache().get(&s.to_ascii_lowercase()))
        });
        match found {
            Some(s) => s,
            None => return ctx.out.error(NOSCRIPT),
        }
    } else {
        match load_script(args.get(1), false) {
            Ok(s) => s,
            Err(e) => return ctx.out.error(&e),
        }
    };
    let flags = script.flags;
    if !flags.has(ScriptFlags::EVAL_COMPAT) {
        if let Some(e) = prepare_refusal(ctx, flags, ro) {
            return ctx.out.error(e);
        }
    }
    let read_only = ro || (!flags.has(ScriptFlags::EVAL_COMPAT) && flags.has(ScriptFlags::NO_WRITES));
    // (FUNCTION STATS alone reads a run's name and command: not an EVAL's.)
    let slot_data = running::RunSlot::start(true, String::new(), Vec::new());
    let first_slot = (numkeys > 0 && ctx.cfg.cluster_mode).then(|| ferrokv_store::slot::key_slot(args.get(3)));
    let mut run = call::Run {
        name: call::RunName::Script(script.clone()),
        eval: true,
        read_only,
        flags,
        slot: first_slot,
        slot_data: slot_data.clone(),
        oom: (hooks().over_maxmemory)(),
    };
    let caller_db = ctx.keys.selected();
    let r = engine::with_engine(|e| {
        *e.state.slot.borrow_mut() = Some(slot_data.clone());
        e.run_eval(ctx, &mut run, &script, args, numkeys);
        *e.state.slot.borrow_mut() = None;
    });
    slot_data.finish();
    call::restore_db(ctx, caller_db);
    if let Err(e) = r {
        ctx.out.error(&format!("ERR {e}"));
    }
    // The script's commands propagate, never the script (effects replication).
    ctx.propagation.prevented = true;
}

/// Redis's `scriptPrepareForRun` checks for a script with a shebang.
pub(crate) fn prepare_refusal(ctx: &Ctx, flags: ScriptFlags, ro: bool) -> Option<&'static str> {
    if flags.has(ScriptFlags::NO_CLUSTER) && ctx.cfg.cluster_mode {
        return Some("ERR Can not run script on cluster, 'no-cluster' flag is set.");
    }
    if !flags.has(ScriptFlags::NO_WRITES) {
        if (hooks().read_only_replica)() {
            return Some("READONLY Can not run script with write flag on readonly replica");
        }
        if ro {
            return Some("ERR Can not execute a script with write flag using *_ro command.");
        }
        if (hooks().too_few_replicas)() {
            return Some("NOREPLICAS Not enough good replicas to write.");
        }
    }
    // `no-writes` implies `allow-oom`. (The command's own OOM check refuses such a
    // script first; this one is reached where that check did not run, inside EXEC.)
    if !flags.has(ScriptFlags::ALLOW_OOM.with(ScriptFlags::NO_WRITES)) && (hooks().over_maxmemory)() {
        return Some("OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'");
    }
    None
}

/// Whether running `spec` with `args` may grow memory, as Redis's `getCommandFlags`
/// answers for `denyoom`: a script with a shebang (EVAL, EVALSHA of a cached one) or a
/// function (FCALL) declares it by lacking `allow-oom` and `no-writes`; a script without
/// one, and every other command, by the table's flag.
pub fn denies_oom(spec: &CommandSpec, args: &ferrokv_resp::Args) -> bool {
    let declared = match spec.name {
        "eval" | "eval_ro" if args.len() > 1 => flags::parse_shebang(args.get(1)).ok().map(|(f, _)| f),
        "evalsha" | "evalsha_ro" if args.len() > 1 => {
            cache().get(&String::from_utf8_lossy(args.get(1)).to_ascii_lowercase()).map(|s| s.flags)
        }
        "fcall" | "fcall_ro" if args.len() > 1 => {
            functions::find(&String::from_utf8_lossy(args.get(1))).map(|(_, info)| info.flags)
        }
        _ => None,
    };
    match declared {
        Some(f) if !f.has(ScriptFlags::EVAL_COMPAT) => !f.has(ScriptFlags::ALLOW_OOM.with(ScriptFlags::NO_WRITES)),
        _ => spec.has(crate::table::Flags::DENYOOM),
    }
}

/// The cached script of `body`, compiling and caching it first if new (`loaded`: by
/// SCRIPT LOAD). The error is the reply text.
fn load_script(body: &[u8], loaded: bool) -> Result<Arc<Script>, String> {
    let sha = sha1::sha1_hex(body);
    if let Some(s) = cache().get(&sha) {
        if loaded {
            cache().insert(s.clone(), true);
        }
        return Ok(s);
    }
    let (flags, shebang_len) = flags::parse_shebang(body).map_err(|e| format!("ERR {e}"))?;
    let script = Arc::new(Script { sha, body: body.to_vec(), flags, shebang_len });
    engine::with_engine(|e| e.function_of(&script))
        .map_err(|e| format!("ERR {e}"))?
        .map_err(|e| format!("ERR Error compiling script (new function): {e}"))?;
    cache().insert(script.clone(), loaded);
    Ok(script)
}

/// SCRIPT LOAD script
fn script_load(ctx: &mut Ctx, args: &Args) {
    match load_script(args.get(2), true) {
        Ok(s) => ctx.out.bulk(s.sha.as_bytes()),
        Err(e) => ctx.out.error(&e),
    }
}

/// SCRIPT EXISTS sha1 [sha1 ...]
fn script_exists(ctx: &mut Ctx, args: &Args) {
    ctx.out.array(args.len() - 2);
    for i in 2..args.len() {
        let found =
            std::str::from_utf8(args.get(i)).ok().is_some_and(|s| cache().get(&s.to_ascii_lowercase()).is_some());
        ctx.out.integer(found as i64);
    }
}

/// SCRIPT FLUSH [ASYNC|SYNC]
fn script_flush(ctx: &mut Ctx, args: &Args) {
    let ok = args.len() == 2
        || (args.len() == 3
            && (args.get(2).eq_ignore_ascii_case(b"sync") || args.get(2).eq_ignore_ascii_case(b"async")));
    if !ok {
        return ctx.out.error("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
    }
    cache().flush();
    ctx.out.ok();
}

/// SCRIPT DEBUG YES|SYNC|NO: the Lua debugger (LDB) is not part of ferrokv.
fn script_debug(ctx: &mut Ctx, args: &Args) {
    let a = args.get(2);
    if a.eq_ignore_ascii_case(b"no") {
        return ctx.out.ok();
    }
    if a.eq_ignore_ascii_case(b"yes") || a.eq_ignore_ascii_case(b"sync") {
        return ctx.out.error("ERR SCRIPT DEBUG (the Lua debugger) is not supported by ferrokv");
    }
    ctx.out.error("ERR Use SCRIPT DEBUG YES/SYNC/NO")
}

const SCRIPT_HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];

/// SCRIPT HELP
fn script_help(ctx: &mut Ctx, _args: &Args) {
    ctx.out.array(SCRIPT_HELP.len());
    for l in SCRIPT_HELP {
        ctx.out.simple(l);
    }
}

/// Scripting's INFO memory figures.
pub struct MemoryStats {
    /// Bytes of every thread's Lua state.
    pub lua: usize,
    pub scripts: usize,
    /// Bytes of the cached scripts' bodies and names.
    pub scripts_bytes: usize,
    /// Bytes of the function libraries' code.
    pub functions_bytes: usize,
}

pub fn memory() -> MemoryStats {
    let (scripts, scripts_bytes) = cache().stats();
    let functions_bytes = functions::all_codes().iter().map(|c| c.len()).sum();
    MemoryStats { lua: engine::lua_memory(), scripts, scripts_bytes, functions_bytes }
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;

    fn eval(h: &mut Harness, script: &str, keys: &[&str], argv: &[&str]) -> String {
        let n = keys.len().to_string();
        let mut a: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), n.as_bytes()];
        a.extend(keys.iter().map(|k| k.as_bytes()));
        a.extend(argv.iter().map(|k| k.as_bytes()));
        h.cmd_args(&a)
    }

    #[test]
    fn replies_convert_as_in_redis() {
        let mut h = Harness::new();
        assert_eq!(eval(&mut h, "return 1", &[], &[]), ":1\r\n");
        assert_eq!(eval(&mut h, "return 3.99", &[], &[]), ":3\r\n");
        assert_eq!(eval(&mut h, "return 'x'", &[], &[]), "$1\r\nx\r\n");
        assert_eq!(eval(&mut h, "return {1,2,{3,'x'},nil,5}", &[], &[]), "*3\r\n:1\r\n:2\r\n*2\r\n:3\r\n$1\r\nx\r\n");
        assert_eq!(eval(&mut h, "return true", &[], &[]), ":1\r\n");
        assert_eq!(eval(&mut h, "return false", &[], &[]), "$-1\r\n");
        assert_eq!(eval(&mut h, "return redis.status_reply('FINE')", &[], &[]), "+FINE\r\n");
        assert_eq!(eval(&mut h, "return redis.error_reply('FOO bar')", &[], &[]), "-FOO bar\r\n");
        assert_eq!(eval(&mut h, "return {double=1.5}", &[], &[]), "$3\r\n1.5\r\n");
        assert_eq!(eval(&mut h, "return {KEYS[1], ARGV[1]}", &["k"], &["a"]), "*2\r\n$1\r\nk\r\n$1\r\na\r\n");
    }

    #[test]
    fn evalsha_finds_no_script_the_cache_evicted() {
        // EVALSHA looks in this thread's compiled scripts first: an eviction from the
        // node's cache must reach them.
        let mut h = Harness::new();
        let body = "return 'evicted-test'";
        let sha = super::sha1::sha1_hex(body.as_bytes());
        assert_eq!(eval(&mut h, body, &[], &[]), "$12\r\nevicted-test\r\n");
        let by_sha = |h: &mut Harness| h.cmd_args(&[b"EVALSHA", sha.as_bytes(), b"0"]);
        assert_eq!(by_sha(&mut h), "$12\r\nevicted-test\r\n");
        for i in 0..super::cache::EVAL_SCRIPTS_MAX {
            eval(&mut h, &format!("return {i} -- evicts"), &[], &[]);
        }
        assert_eq!(by_sha(&mut h), format!("-{}\r\n", super::NOSCRIPT));
    }

    #[test]
    fn redis_call_runs_commands_and_errors_read_as_redis_prints_them() {
        let mut h = Harness::new();
        assert_eq!(eval(&mut h, "return redis.call('set', KEYS[1], ARGV[1])", &["k"], &["v"]), "+OK\r\n");
        assert_eq!(eval(&mut h, "return redis.call('get', KEYS[1])", &["k"], &[]), "$1\r\nv\r\n");
        assert_eq!(eval(&mut h, "return redis.call('get', 'nokey')", &[], &[]), "$-1\r\n");
        let unlock =
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
        assert_eq!(eval(&mut h, unlock, &["k"], &["other"]), ":0\r\n");
        assert_eq!(eval(&mut h, unlock, &["k"], &["v"]), ":1\r\n");
        let sha = super::sha1::sha1_hex(b"a=5");
        assert_eq!(
            eval(&mut h, "a=5", &[], &[]),
            format!("-ERR user_script:1: Attempt to modify a readonly table script: {sha}, on @user_script:1.\r\n")
        );
        let sha = super::sha1::sha1_hex(b"return a");
        assert_eq!(
            eval(&mut h, "return a", &[], &[]),
            format!("-ERR user_script:1: Script attempted to access nonexistent global variable 'a' script: {sha}, on @user_script:1.\r\n")
        );
        let s = "return redis.call('nosuch')";
        assert_eq!(
            eval(&mut h, s, &[], &[]),
            format!(
                "-ERR Unknown Redis command called from script script: {}, on @user_script:1.\r\n",
                super::sha1::sha1_hex(s.as_bytes())
            )
        );
        assert_eq!(
            eval(&mut h, "return redis.pcall('nosuch')", &[], &[]),
            "-ERR Unknown Redis command called from script\r\n"
        );
        let s = "error('boom')";
        assert_eq!(
            eval(&mut h, s, &[], &[]),
            format!("-ERR user_script:1: boom script: {}, on @user_script:1.\r\n", super::sha1::sha1_hex(s.as_bytes()))
        );
        assert_eq!(
            eval(&mut h, "syntax error here", &[], &[]),
            "-ERR Error compiling script (new function): user_script:1: '=' expected near 'error'\r\n"
        );
        assert_eq!(
            eval(&mut h, "return {pcall(function() error({err='X y'}) end)}", &[], &[]),
            "*2\r\n$-1\r\n$3\r\nX y\r\n"
        );
    }
}
