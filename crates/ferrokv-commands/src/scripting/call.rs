//! `redis.call` / `redis.pcall`: a command from a script, checked as Redis 7.0's
//! `scriptCall` checks it, then run through the execution function
//! ([`crate::exec::execute`]) on the keyspace the script holds, so its effects
//! (propagation records, modified keys, changes) join the script's own.

use super::engine::RunState;
use super::flags::ScriptFlags;
use super::running::RunSlot;
use crate::ctx::Ctx;
use crate::exec::{execute, Env};
use crate::table::{lookup_id, lookup_sub, sub_id, CommandId, CommandSpec, Flags, Handler, ServerCmd};
use ferrokv_resp::{Args, OwnedArgs, Proto, ReplyBuf};
use ferrokv_store::effects::Records;
use mlua::{ffi, Lua, Value};
use std::cell::Cell;
use std::os::raw::c_int;
use std::sync::Arc;

/// One script run: what the checks of its commands depend on.
pub struct Run {
    /// The script (EVAL: its SHA-1) or the function's name (FCALL), for error texts.
    pub name: RunName,
    pub eval: bool,
    /// EVAL_RO/FCALL_RO, or a script declared `no-writes`: write commands refused.
    pub read_only: bool,
    pub flags: ScriptFlags,
    /// Cluster mode: the slot of the keys accessed so far (declared keys count first).
    pub slot: Option<u16>,
    pub slot_data: Arc<RunSlot>,
    /// The node was over `maxmemory` when the script started (Redis's
    /// `pre_command_oom_state`): until it has written, denyoom commands are refused.
    pub oom: bool,
}

/// What a run is called in its error texts.
pub enum RunName {
    /// An EVAL's script: its SHA-1.
    Script(Arc<super::cache::Script>),
    /// An FCALL's function.
    Function(String),
}

impl RunName {
    pub fn as_str(&self) -> &str {
        match self {
            RunName::Script(s) => &s.sha,
            RunName::Function(f) => f,
        }
    }
}

/// The error `redis.call` raises: Redis raises the table `{err = line}`; a Rust
/// function can only raise an error value, so the error handler and `pcall` turn this
/// one back into the table / its line.
#[derive(Debug)]
pub struct Raised {
    pub line: String,
    /// A command's error, counted in the error statistics when it was replied
    /// (the table's `ignore_error_stats_update`).
    pub counted: bool,
}

impl Raised {
    pub fn new(line: String) -> Raised {
        Raised { line, counted: false }
    }
}

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

impl std::error::Error for Raised {}

/// The run `redis.call` serves on this thread: what [`bind`] lent it for the length of
/// one script or function run.
struct Bound<'c, 'a> {
    ctx: &'c mut Ctx<'a>,
    run: &'c mut Run,
    state: &'c RunState,
}

thread_local! {
    /// The [`Bound`] of the run in progress on this thread (null between runs).
    static BOUND: Cell<*mut ()> = const { Cell::new(std::ptr::null_mut()) };
    /// `redis.call`'s buffers, reused from call to call (taken out while a call runs).
    static BUFFERS: Cell<Option<Buffers>> = const { Cell::new(None) };
    /// The commands scripts on this thread called last, by name as written: most
    /// scripts call the same few.
    static RECENT: std::cell::RefCell<Recent> = const { std::cell::RefCell::new(Recent { names: Vec::new(), next: 0 }) };
}

/// `redis.call`'s arguments, reply and key positions.
struct Buffers {
    args: OwnedArgs,
    out: ReplyBuf,
    keys: Vec<usize>,
}

/// A few command names with what the table's lookup found for them.
struct Recent {
    names: Vec<(Vec<u8>, &'static CommandSpec, CommandId)>,
    next: usize,
}

/// [`lookup_id`], through the thread's [`Recent`] names.
fn lookup_recent(name: &[u8]) -> Option<(&'static CommandSpec, CommandId)> {
    RECENT.with(|r| {
        let mut r = r.borrow_mut();
        if let Some((_, spec, id)) = r.names.iter().find(|(n, _, _)| n == name) {
            return Some((*spec, *id));
        }
        let (spec, id) = lookup_id(name)?;
        if r.names.len() < 8 {
            r.names.push((name.to_vec(), spec, id));
        } else {
            let at = r.next;
            r.names[at] = (name.to_vec(), spec, id);
            r.next = (at + 1) % 8;
        }
        Some((spec, id))
    })
}

/// Runs `body` (the script) with `redis.call`/`redis.pcall` serving `ctx` and `run`.
/// Redis reaches its running script through globals (`curr_run_ctx`); this is the same
/// for the thread the script runs on, so no closure is built per run.
pub fn bind<R>(ctx: &mut Ctx, run: &mut Run, state: &RunState, body: impl FnOnce() -> R) -> R {
    struct Restore(*mut ());
    impl Drop for Restore {
        fn drop(&mut self) {
            BOUND.with(|b| b.set(self.0));
        }
    }
    let mut bound = Bound { ctx, run, state };
    let prev = BOUND.with(|b| b.replace(&mut bound as *mut Bound<'_, '_> as *mut ()));
    let _restore = Restore(prev);
    body()
}

/// `redis.call`: a C function as in Redis (a Lua wrapper would be a Lua frame, and a
/// tail call through it would hide the script's line from error reports).
///
/// SAFETY (for Lua calling it): see [`serve`]; the only frame `lua_error` unwinds
/// through is this one, which holds nothing with a destructor.
pub(crate) unsafe extern "C-unwind" fn redis_call(state: *mut ffi::lua_State) -> c_int {
    if serve(state, true) {
        ffi::lua_error(state);
    }
    1
}

/// `redis.pcall`: as [`redis_call`], but an error is returned, not raised.
pub(crate) unsafe extern "C-unwind" fn redis_pcall(state: *mut ffi::lua_State) -> c_int {
    serve(state, false);
    1
}

/// One `redis.call`/`redis.pcall`: copies the arguments off the Lua stack (strings as
/// they are, numbers as Redis's `%.17g`), empties the stack (a call with ~8000
/// arguments, `unpack` of a table, leaves no room otherwise), runs the command on the
/// bound run and pushes its reply as a Lua value. Returns whether that value is an
/// error table the caller must raise (`redis.call`).
///
/// SAFETY: reads only the stack slots 1..=top it was given, with their types checked
/// before `lua_tolstring` (which would convert a number in place). No Lua error is
/// raised while Rust values live here (the Lua API calls below fail only when Lua's
/// allocator does, i.e. when the process is out of memory). The bound run is used only
/// while [`bind`]'s frame, which owns it, is on the stack below the script.
unsafe fn serve(state: *mut ffi::lua_State, raise: bool) -> bool {
    let bound = BOUND.with(|b| b.get()) as *mut Bound<'static, 'static>;
    if bound.is_null() {
        ffi::lua_settop(state, 0);
        push_error(state, "ERR redis.call/pcall can only be called inside a script invocation", false);
        return raise;
    }
    // SAFETY: set by `bind`, whose frame outlives the script's run; nothing else on
    // this thread uses the run while a script's `redis.call` runs.
    let bound = &mut *bound;
    let Buffers { mut args, mut out, mut keys } = BUFFERS.with(|b| b.take()).unwrap_or_else(|| Buffers {
        args: OwnedArgs::new(),
        out: ReplyBuf::new(Proto::Resp2),
        keys: Vec::new(),
    });
    args.clear();
    let n = ffi::lua_gettop(state);
    let mut typed = true;
    for i in 1..=n {
        match ffi::lua_type(state, i) {
            ffi::LUA_TSTRING => {
                let mut len = 0usize;
                let p = ffi::lua_tolstring(state, i, &mut len);
                args.push(std::slice::from_raw_parts(p as *const u8, len));
            }
            ffi::LUA_TNUMBER => args.push(ferrokv_resp::reply::format_g(ffi::lua_tonumber(state, i), 17).as_bytes()),
            _ => {
                typed = false;
                break;
            }
        }
    }
    ffi::lua_settop(state, 0);
    let failed = if !typed {
        push_error(state, "Lua redis lib command arguments must be strings or integers", false);
        true
    } else if args.is_empty() {
        push_error(state, "Please specify at least one argument for this redis lib call", false);
        true
    } else {
        out.clear();
        out.errors = 0;
        out.last_error_at = 0;
        out.proto = if bound.state.resp.get() == 3 { Proto::Resp3 } else { Proto::Resp2 };
        match dispatch(bound.ctx, bound.run, bound.state, &args.args(), &mut out, &mut keys) {
            Answer::Replied => {
                super::convert::push_reply(state, &out.buf);
                out.errors > 0
            }
            Answer::Unknown => {
                push_error(state, "Unknown Redis command called from script", false);
                true
            }
            Answer::Refused(msg) => {
                push_error(state, &msg, true);
                true
            }
        }
    };
    BUFFERS.with(|b| b.set(Some(Buffers { args, out, keys })));
    failed && raise
}

/// Pushes Redis's error table for `msg` (see [`error_table`]); `counted`: a command's
/// error the statistics counted already (see [`counted_error_table`]).
///
/// SAFETY: needs 3 free stack slots.
pub(crate) unsafe fn push_error(state: *mut ffi::lua_State, msg: &str, counted: bool) {
    let line = error_line(msg);
    ffi::lua_createtable(state, 0, 2);
    ffi::lua_pushlstring(state, c"err".as_ptr(), 3);
    ffi::lua_pushlstring(state, line.as_ptr() as *const _, line.len());
    ffi::lua_rawset(state, -3);
    if counted {
        ffi::lua_pushlstring(state, c"ignore_error_stats_update".as_ptr(), 25);
        ffi::lua_pushboolean(state, 1);
        ffi::lua_rawset(state, -3);
    }
}

/// What a `redis.call` came to besides its reply.
pub enum Answer {
    /// The command ran (or was refused by its own checks): the reply is in `out`.
    Replied,
    /// No such command.
    Unknown,
    /// Refused before running (scripting's checks), with this error text; counted in
    /// the error statistics.
    Refused(String),
}

/// A command a script ran, for the statistics of the node (INFO commandstats).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NestedCall {
    pub id: CommandId,
    pub micros: u64,
    /// The error line it replied (rejected before running when `rejected`).
    pub error: Option<String>,
    pub rejected: bool,
}

/// Runs one `redis.call`/`redis.pcall` of `args` (at least one), its reply written to
/// `out` (empty, in the script's protocol); `idx` is room for its key positions.
pub fn dispatch(
    ctx: &mut Ctx,
    run: &mut Run,
    state: &RunState,
    args: &Args,
    out: &mut ReplyBuf,
    idx: &mut Vec<usize>,
) -> Answer {
    let resolved = lookup_recent(args.get(0)).and_then(|(spec, id)| {
        if !spec.subcommands.is_empty() && args.len() >= 2 {
            lookup_sub(spec, args.get(1)).map(|sub| (sub, sub_id(spec, id, sub)))
        } else {
            Some((spec, id))
        }
    });
    let Some((spec, id)) = resolved else {
        return Answer::Unknown;
    };
    let refuse = |ctx: &mut Ctx, msg: &str| -> Answer {
        ctx.nested.push(NestedCall { id, micros: 0, error: Some(error_line(msg)), rejected: true });
        Answer::Refused(msg.to_string())
    };
    if !spec.arity_ok(args.len()) {
        return refuse(ctx, "Wrong number of args calling Redis command from script");
    }
    if spec.has(Flags::NOSCRIPT) {
        return refuse(ctx, "This Redis command is not allowed from script");
    }
    let writes = spec.has(Flags::WRITE);
    // Redis flags PUBLISH and SPUBLISH `may_replicate` (and hides the flag from COMMAND,
    // whose table this is): a read-only script may not run them.
    let may_replicate = spec.has(Flags::MAY_REPLICATE)
        || matches!(spec.handler, Handler::Server(ServerCmd::Publish | ServerCmd::Spublish));
    if run.read_only && (writes || may_replicate) {
        return refuse(ctx, "Write commands are not allowed from read-only scripts.");
    }
    if writes && !run.slot_data.wrote.load(std::sync::atomic::Ordering::Relaxed) {
        if (super::hooks().read_only_replica)() {
            return refuse(ctx, "-READONLY You can't write against a read only replica.");
        }
        // Reached by scripts without a shebang only: the others were checked before
        // running (Redis's scriptVerifyWriteCommandAllow).
        if (super::hooks().too_few_replicas)() {
            return refuse(ctx, "-NOREPLICAS Not enough good replicas to write.");
        }
    }
    // Redis's `scriptVerifyOOM`: once a script has written it may not stop halfway.
    let allow_oom = !run.flags.has(ScriptFlags::EVAL_COMPAT) && run.flags.has(ScriptFlags::ALLOW_OOM);
    if run.oom
        && !allow_oom
        && spec.has(Flags::DENYOOM)
        && !run.slot_data.wrote.load(std::sync::atomic::Ordering::Relaxed)
    {
        return refuse(ctx, "-OOM command not allowed when used memory > 'maxmemory'.");
    }
    if writes {
        run.slot_data.wrote.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    // Where the command's keys live: the script holds only its declared keys' shards
    // (all of them when it declared none), and in cluster mode one slot of this node.
    idx.clear();
    spec.key_indexes(args, idx);
    for &i in idx.iter() {
        let key = args.get(i);
        if ctx.cfg.cluster_mode {
            let slot = ferrokv_store::slot::key_slot(key);
            if !(super::hooks().slot_is_local)(slot) {
                return refuse(ctx, "Script attempted to access a non local key in a cluster node");
            }
            if !run.flags.has(ScriptFlags::ALLOW_CROSS_SLOT) && !run.flags.has(ScriptFlags::EVAL_COMPAT) {
                match run.slot {
                    None => run.slot = Some(slot),
                    Some(s) if s != slot => {
                        return refuse(ctx, "Script attempted to access keys that do not hash to the same slot")
                    }
                    _ => {}
                }
            }
        }
        if !ctx.keys.holds(key) {
            return refuse(ctx, UNDECLARED);
        }
    }
    if spec.all_shards && !ctx.keys.holds_all() {
        return refuse(ctx, UNDECLARED_ALL);
    }
    let t0 = std::time::Instant::now();
    match spec.handler {
        Handler::Server(ServerCmd::Select) => select(ctx, args, out),
        Handler::Server(cmd @ (ServerCmd::Publish | ServerCmd::Spublish)) => {
            publish(ctx, cmd == ServerCmd::Spublish, args, out)
        }
        Handler::Server(cmd) => {
            if !server_command(cmd, args, ctx.cfg.cluster_mode, out) {
                let msg = format!("ERR {} from a script is not supported by ferrokv", spec.name.to_uppercase());
                return refuse(ctx, &msg);
            }
        }
        _ => {
            let env = Env {
                cfg: ctx.cfg,
                now_ms: ctx.now_ms,
                may_block: false,
                track_keys: ctx.modified.is_some(),
                notify: ctx.notify,
                // The script's caller remembers the script's keys, not these.
                caller: crate::exec::Caller { reader: None, script: true, ..ctx.caller },
            };
            let mut records = Records::with_buffer(Vec::new());
            let o = execute(&mut *ctx.keys, spec, args, env, out, &mut records);
            ctx.dirty += o.dirty;
            if let Some(m) = ctx.modified.as_mut() {
                for k in o.modified {
                    if !m.contains(&k) {
                        m.push(k);
                    }
                }
            }
            ctx.nested.extend(o.nested);
            ctx.events.extend(o.events);
            ctx.script_read |= spec.has(Flags::READONLY);
            if ctx.propagating && state.repl.get() != 0 && !records.is_empty() {
                ctx.propagation.also.extend(records.decode());
            }
        }
    }
    let micros = t0.elapsed().as_micros() as u64;
    let failed = out.errors > 0;
    ctx.nested.push(NestedCall {
        id,
        micros,
        error: failed.then(|| String::from_utf8_lossy(&out.buf[out.last_error_at + 1..]).trim_end().to_string()),
        rejected: false,
    });
    Answer::Replied
}

/// A script holds the locks of its declared keys' shards and takes another shard's when
/// it first reaches a key there, waiting at most 2 ms (never long: that shard may be
/// held by another script waiting for one of ours). These are the errors when it could
/// not.
const UNDECLARED: &str = "Script attempted to access a key on a shard another client holds (ferrokv gives a script \
the shard of an undeclared key only when it is free within 2 ms: declare the script's keys in KEYS)";
const UNDECLARED_ALL: &str = "Script attempted to run a command over the whole keyspace while another client \
holds a shard (ferrokv gives a script the shards it did not declare only when they are free within 2 ms)";

/// A server command from a script: those Redis 7.0 does not flag `noscript` (the
/// table's flags already refused the others). The ones that need no node state run
/// here, the rest in the server ([`super::Hooks::server_command`]); false for those
/// ferrokv does not run from a script (MIGRATE, CLUSTER's changes).
fn server_command(cmd: ServerCmd, args: &ferrokv_resp::Args, cluster_mode: bool, out: &mut ReplyBuf) -> bool {
    match cmd {
        ServerCmd::Ping => match args.len() {
            1 => out.simple("PONG"),
            _ => out.bulk(args.get(1)),
        },
        ServerCmd::Echo => out.bulk(args.get(1)),
        ServerCmd::Time => {
            let us =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
            out.array(2);
            out.bulk_integer((us / 1_000_000) as i64);
            out.bulk_integer((us % 1_000_000) as i64);
        }
        // The script's own client is flagged; it lives as long as the script.
        ServerCmd::Asking | ServerCmd::Readonly | ServerCmd::Readwrite if !cluster_mode => {
            out.error("ERR This instance has cluster support disabled")
        }
        ServerCmd::Asking | ServerCmd::Readonly | ServerCmd::Readwrite => out.ok(),
        _ => return (super::hooks().server_command)(cmd, args, out),
    }
    true
}

/// PUBLISH / SPUBLISH from a script: the reply counts this node's receivers now; the
/// message leaves with the script's keyspace events once it ended (see
/// [`crate::notify::KeyEvent::message`]), in the order the script ran them.
fn publish(ctx: &mut Ctx, shard: bool, args: &ferrokv_resp::Args, out: &mut ReplyBuf) {
    let n = (super::hooks().receivers)(shard, args.get(1));
    ctx.events.push(crate::notify::KeyEvent {
        class: 0,
        event: if shard { "spublish" } else { "publish" },
        key: args.get(1).to_vec(),
        db: None,
        message: Some(args.get(2).to_vec()),
    });
    out.integer(n as i64);
}

/// SELECT inside a script: the script's own database changes (the caller's does not,
/// as in Redis 7.0; see [`restore_db`]), and the commands it propagates from then on
/// follow a `SELECT` record.
fn select(ctx: &mut Ctx, args: &ferrokv_resp::Args, out: &mut ReplyBuf) {
    let n = match crate::util::parse_db_index(args.get(1)) {
        Ok(n) => n,
        Err(e) => return out.error(e),
    };
    if ctx.cfg.cluster_mode && n != 0 {
        return out.error("ERR SELECT is not allowed in cluster mode");
    }
    if n < 0 || n as usize >= ctx.cfg.databases {
        return out.error("ERR DB index is out of range");
    }
    switch_db(ctx, n as usize);
    out.ok();
}

fn switch_db(ctx: &mut Ctx, n: usize) {
    if ctx.keys.selected() != n {
        ctx.keys.select(n);
        if ctx.propagating {
            ctx.propagation.also.push(vec![b"SELECT".to_vec(), n.to_string().into_bytes()]);
        }
    }
}

/// After a script: back to the caller's database `db` (the unit's records end there).
pub fn restore_db(ctx: &mut Ctx, db: usize) {
    switch_db(ctx, db);
}

/// Redis's `luaPushErrorBuff`: `-CODE msg` keeps its code, a plain message gets `ERR`;
/// the table is `{err = "CODE msg"}`.
pub fn error_table(lua: &Lua, msg: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", error_line(msg))?;
    Ok(Value::Table(t))
}

/// The error table of a command's error, which the statistics counted already: it
/// carries `ignore_error_stats_update = true`, as Redis's, so that a script replying
/// it is not counted again.
pub fn counted_error_table(lua: &Lua, msg: &str) -> mlua::Result<Value> {
    let t = error_table(lua, msg)?;
    if let Value::Table(t) = &t {
        t.raw_set("ignore_error_stats_update", true)?;
    }
    Ok(t)
}

/// Whether an error table is a counted command error (see [`counted_error_table`]).
pub fn counted_error(t: &mlua::Table) -> bool {
    matches!(t.raw_get::<Value>("ignore_error_stats_update"), Ok(Value::Boolean(true)))
}

/// The `err` field Redis builds from an error text (see [`error_table`]).
pub fn error_line(msg: &str) -> String {
    let (code, text) = match msg.strip_prefix('-') {
        Some(rest) => match rest.split_once(' ') {
            Some((code, text)) => (code, text),
            None => ("ERR", rest),
        },
        None => ("ERR", msg),
    };
    format!("{code} {}", text.trim_matches(|c| c == '\r' || c == '\n'))
}
