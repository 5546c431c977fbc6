//! `redis.call` / `redis.pcall`: a command from a script, checked as Redis 7.0's
//! `scriptCall` checks it, then run through the execution function
//! ([`crate::exec::execute`]) on the keyspace the script holds, so its effects
//! (propagation records, modified keys, changes) join the script's own.

use super::engine::RunState;
use super::flags::ScriptFlags;
use super::running::RunSlot;
use crate::ctx::Ctx;
use crate::exec::{execute, Env};
use crate::table::{lookup_id, lookup_sub, sub_id, CommandId, Flags, Handler, ServerCmd};
use ferrokv_resp::{OwnedArgs, Proto, ReplyBuf};
use ferrokv_store::effects::Records;
use mlua::{Lua, Value};
use std::sync::Arc;

/// One script run: what the checks of its commands depend on.
pub struct Run {
    /// The script's SHA-1 (EVAL) or the function's name (FCALL), for error texts.
    pub name: String,
    pub eval: bool,
    /// EVAL_RO/FCALL_RO, or a script declared `no-writes`: write commands refused.
    pub read_only: bool,
    pub flags: ScriptFlags,
    pub keys: Vec<Vec<u8>>,
    pub argv: Vec<Vec<u8>>,
    /// Cluster mode: the slot of the keys accessed so far (declared keys count first).
    pub slot: Option<u16>,
    pub slot_data: Arc<RunSlot>,
    /// The node was over `maxmemory` when the script started (Redis's
    /// `pre_command_oom_state`): until it has written, denyoom commands are refused.
    pub oom: bool,
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

/// `redis.call` (`raise`) and `redis.pcall`: C functions in Redis, Rust functions here
/// (a Lua wrapper would be a Lua frame, and a tail call through it would hide the
/// script's line from error reports). They run the dispatcher the current run bound.
///
/// Each is a C closure ([`take_arguments`]) in front of the Rust function: it copies the
/// arguments off the Lua stack and clears them before calling the Rust side, which
/// finds them beside the call. mlua would hold every argument of a Rust function as a
/// value of its own, and with thousands of them (`redis.call('lpush', k, unpack(t))`,
/// up to Lua 5.1's 8000 stack slots) there would be no room left to call back into Lua.
pub fn api_function(lua: &Lua, hidden: &mlua::Table, raise: bool) -> mlua::Result<mlua::Function> {
    let hidden = hidden.clone();
    let inner = lua.create_function(move |lua, ()| {
        let argv = PENDING.with(|p| p.borrow_mut().take()).unwrap_or(Argv(None));
        let cmd = match hidden.raw_get::<Value>("cmd")? {
            Value::Function(f) => f,
            _ => {
                let line = "ERR redis.call/pcall can only be called inside a script invocation".to_string();
                return Err(mlua::Error::external(Raised::new(line)));
            }
        };
        lua.set_app_data(argv);
        let (v, failed): (Value, bool) = cmd.call(())?;
        if failed && raise {
            let (line, counted) = match &v {
                Value::Table(t) => (t.raw_get::<String>("err").unwrap_or_default(), counted_error(t)),
                _ => (String::new(), false),
            };
            return Err(mlua::Error::external(Raised { line, counted }));
        }
        Ok(v)
    })?;
    // SAFETY: `exec_raw` runs the closure with `inner` alone on a protected stack; it
    // becomes the C closure's only upvalue (lua_pushcclosure pops it, pushes the
    // closure, which is the one result).
    unsafe { lua.exec_raw(inner, |state| mlua::ffi::lua_pushcclosure(state, take_arguments, 1)) }
}

/// The arguments of the `redis.call` being dispatched (None: one was neither a string
/// nor a number).
pub struct Argv(pub Option<Vec<Vec<u8>>>);

thread_local! {
    /// The arguments [`take_arguments`] copied, for the Rust function it calls next.
    static PENDING: std::cell::RefCell<Option<Argv>> = const { std::cell::RefCell::new(None) };
}

/// The C side of `redis.call`/`redis.pcall`: copies the arguments (strings as they are,
/// numbers as Redis's `%.17g`), empties the stack, calls upvalue 1 (the Rust function)
/// and returns what it returned.
///
/// SAFETY (for Lua calling it): it reads only the stack slots 1..=top it was given,
/// with their types checked before `lua_tolstring` (which would convert a number in
/// place); nothing with a destructor is alive across `lua_call`, which may unwind (a
/// Lua error longjmps through this frame to the script's pcall).
unsafe extern "C-unwind" fn take_arguments(state: *mut mlua::ffi::lua_State) -> std::os::raw::c_int {
    use mlua::ffi;
    let n = ffi::lua_gettop(state);
    let mut argv = Some(Vec::with_capacity(n.max(0) as usize));
    for i in 1..=n {
        let arg = match ffi::lua_type(state, i) {
            ffi::LUA_TSTRING => {
                let mut len = 0usize;
                let p = ffi::lua_tolstring(state, i, &mut len);
                Some(std::slice::from_raw_parts(p as *const u8, len).to_vec())
            }
            ffi::LUA_TNUMBER => Some(ferrokv_resp::reply::format_g(ffi::lua_tonumber(state, i), 17).into_bytes()),
            _ => None,
        };
        match (arg, argv.as_mut()) {
            (Some(a), Some(v)) => v.push(a),
            _ => {
                argv = None;
                break;
            }
        }
    }
    PENDING.with(|p| *p.borrow_mut() = Some(Argv(argv)));
    ffi::lua_settop(state, 0);
    ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
    ffi::lua_call(state, 0, ffi::LUA_MULTRET);
    ffi::lua_gettop(state)
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

/// Runs one `redis.call`/`redis.pcall`. Returns the reply as a Lua value and whether
/// it is an error (then a table `{err = "CODE message"}`, which `redis.call` raises).
pub fn dispatch(
    lua: &Lua,
    ctx: &mut Ctx,
    run: &mut Run,
    state: &RunState,
    argv: Option<Vec<Vec<u8>>>,
) -> mlua::Result<(Value, bool)> {
    let Some(argv) = argv else {
        return Ok((error_table(lua, "Lua redis lib command arguments must be strings or integers")?, true));
    };
    if argv.is_empty() {
        return Ok((error_table(lua, "Please specify at least one argument for this redis lib call")?, true));
    }
    let owned = OwnedArgs::from_slices(argv.iter().map(|a| a.as_slice()));
    let args = owned.args();
    let resolved = lookup_id(args.get(0)).and_then(|(spec, id)| {
        if !spec.subcommands.is_empty() && args.len() >= 2 {
            lookup_sub(spec, args.get(1)).map(|sub| (sub, sub_id(spec, id, sub)))
        } else {
            Some((spec, id))
        }
    });
    let Some((spec, id)) = resolved else {
        return Ok((error_table(lua, "Unknown Redis command called from script")?, true));
    };
    let refuse = |ctx: &mut Ctx, msg: &str| -> mlua::Result<(Value, bool)> {
        ctx.nested.push(NestedCall { id, micros: 0, error: Some(error_line(msg)), rejected: true });
        Ok((counted_error_table(lua, msg)?, true))
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
    let mut idx = Vec::new();
    spec.key_indexes(&args, &mut idx);
    for &i in &idx {
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
    let proto = if state.resp.get() == 3 { Proto::Resp3 } else { Proto::Resp2 };
    let mut out = ReplyBuf::new(proto);
    let t0 = std::time::Instant::now();
    match spec.handler {
        Handler::Server(ServerCmd::Select) => select(ctx, &args, &mut out),
        Handler::Server(cmd @ (ServerCmd::Publish | ServerCmd::Spublish)) => {
            publish(ctx, cmd == ServerCmd::Spublish, &args, &mut out)
        }
        Handler::Server(cmd) => {
            if !server_command(cmd, &args, ctx.cfg.cluster_mode, &mut out) {
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
            let o = execute(&mut *ctx.keys, spec, &args, env, &mut out, &mut records);
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
    let v = super::convert::reply_to_lua(lua, &out.buf)?;
    Ok((v, failed))
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
