//! The Lua 5.1 state a shard thread runs scripts in, set up as Redis 7.0 sets up its
//! own: the base, table, string and math libraries plus cjson, struct, cmsgpack and
//! bit; the `redis` API; Redis's `pcall` (an error table becomes its message); a
//! deterministic `math.random`; and the sandbox.
//!
//! The sandbox. Redis patches its Lua so that tables can be made read-only and locks
//! the global table and every table reachable from it. Stock Lua 5.1 has no read-only
//! tables, so scripts here run in an environment table that holds nothing itself:
//! reads fall through to a *view* of the globals (library tables wrapped in read-only
//! proxies), writes raise Redis's "Attempt to modify a readonly table", a missing
//! global raises "Script attempted to access nonexistent global variable". `next`,
//! `pairs` and `rawget` see through the proxies, `rawset` refuses them, and code
//! compiled by `loadstring`/`load` runs in the same environment, so no script can
//! leave state behind for the next one. `dofile`, `loadfile`, `print`, `getfenv`,
//! `setfenv`, `newproxy`, `debug`, `os`, `io` and `package` do not exist.
//!
//! One state per thread (a script runs on the thread of the shard that owns its keys);
//! SCRIPT FLUSH rebuilds it (see [`super::cache`]).

use super::cache::{cache, Script};
use super::convert;
use super::running::RunSlot;
use crate::ctx::Ctx;
use ferrokv_resp::Args;
use mlua::{ffi, Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::raw::c_int;
use std::rc::Rc;
use std::sync::Arc;

/// The chunk name of the engine's own Lua code: error reports skip its frames, as
/// Redis's skip the C functions its API is written in.
pub const INTERNAL_CHUNK: &str = "=[ferrokv]";

/// What the `redis` API functions see of the script that is running.
#[derive(Default)]
pub struct RunState {
    /// The protocol commands reply in to the script (`redis.setresp`): 2 or 3.
    pub resp: Cell<u8>,
    /// `redis.set_repl` flags (1 AOF, 2 replicas).
    pub repl: Cell<u8>,
    /// `math.random`'s 48-bit generator (Redis's `redisLrand48`).
    pub rand: Cell<u64>,
    /// The running script's slot in the node's list (SCRIPT KILL, BUSY).
    pub slot: RefCell<Option<Arc<RunSlot>>>,
    /// While a library's code runs (FUNCTION LOAD): the functions it registered, and
    /// since when it runs (Redis stops it after 500 ms).
    pub registering: RefCell<Option<Vec<(super::functions::FunctionInfo, Function)>>>,
    pub loading_since: Cell<Option<std::time::Instant>>,
}

pub const REPL_ALL: u8 = 3;

pub struct Engine {
    pub lua: Lua,
    generation: u64,
    /// Scripts compiled into this state, by SHA-1: EVALSHA finds a script here without
    /// asking the node's cache (see [`Engine::cached`]).
    compiled: HashMap<String, Compiled, ShaHash>,
    /// The node cache's eviction count when `compiled` was last checked against it.
    evictions_seen: u64,
    /// The main Lua state and registry references of what a run pushes (see
    /// [`Engine::run_eval`]).
    main: *mut ffi::lua_State,
    view_ref: c_int,
    handler_ref: c_int,
    /// The strings "KEYS" and "ARGV", kept in the registry (not interned again per run).
    names_ref: [c_int; 2],
    /// The environment scripts run in (see the module docs).
    pub env: Table,
    /// The table behind `env` (KEYS and ARGV are set here).
    pub view: Table,
    /// What the prelude shares with the engine (the sandbox environments, its helpers).
    pub hidden: Table,
    runner: Function,
    fn_runner: Function,
    handler: Function,
    pub state: Rc<RunState>,
    runs: u32,
    /// Libraries loaded into this state: version and functions by name.
    libraries: HashMap<String, (u64, HashMap<String, Function>)>,
    /// This state's bytes as last reported (see [`lua_memory`]).
    reported: Arc<Reported>,
}

/// Hashes a SHA-1 in hex by its first 16 characters (random already): SipHash of all
/// 40 showed in EVALSHA's profile.
#[derive(Default, Clone, Copy)]
struct ShaHash;

impl std::hash::BuildHasher for ShaHash {
    type Hasher = ShaHasher;
    fn build_hasher(&self) -> ShaHasher {
        ShaHasher(0)
    }
}

struct ShaHasher(u64);

impl std::hash::Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        // `str`'s Hash writes the bytes, then a 0xff terminator (ignored: rotated in).
        let mut word = [0u8; 16];
        let n = bytes.len().min(16);
        word[..n].copy_from_slice(&bytes[..n]);
        let a = u64::from_le_bytes(word[..8].try_into().unwrap_or_default());
        let b = u64::from_le_bytes(word[8..].try_into().unwrap_or_default());
        self.0 = self.0.rotate_left(5) ^ a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// A compiled script.
struct Compiled {
    script: Arc<Script>,
    f: Function,
    /// `f` in the registry, for pushing it without mlua.
    f_ref: c_int,
}

/// A Lua state's size, as its thread last reported it.
struct Reported {
    generation: u64,
    bytes: std::sync::atomic::AtomicUsize,
}

/// Every thread's Lua state (an entry dies with its state).
static STATES: std::sync::Mutex<Vec<std::sync::Weak<Reported>>> = std::sync::Mutex::new(Vec::new());

/// INFO's `used_memory_lua`: the bytes of the threads' Lua states of the current
/// script generation. A state SCRIPT FLUSH made stale waits for its thread's next
/// script to be dropped; it no longer counts (Redis frees its one state at once).
pub fn lua_memory() -> usize {
    let generation = cache().generation();
    let mut states = STATES.lock().unwrap_or_else(|p| p.into_inner());
    states.retain(|w| w.strong_count() > 0);
    states
        .iter()
        .filter_map(|w| w.upgrade())
        .filter(|r| r.generation == generation)
        .map(|r| r.bytes.load(std::sync::atomic::Ordering::Relaxed))
        .sum()
}

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's engine, building it first (or again after SCRIPT
/// FLUSH). Returns None if Lua could not be set up (out of memory).
pub fn with_engine<R>(f: impl FnOnce(&mut Engine) -> R) -> Result<R, String> {
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let generation = cache().generation();
        if slot.as_ref().is_none_or(|e| e.generation != generation) {
            *slot = None;
            *slot = Some(Engine::new(generation).map_err(|e| format!("Lua state could not be created: {e}"))?);
        }
        match slot.as_mut() {
            Some(e) => Ok(f(e)),
            None => Err("Lua state missing".into()),
        }
    })
}

/// Lua code that builds the sandbox and the Lua half of the API; run once per state
/// with the real globals, the hidden table and the read-only error function.
const PRELUDE: &str = r#"
local hidden = ...
local rawnext, rawpcall, rawget_, rawset_ = next, pcall, rawget, rawset
local error, type, setmetatable, tostring, select = error, type, setmetatable, tostring, select
local concat = table.concat
local G = _G

local targets = setmetatable({}, {__mode = 'k'})
local function readonly() error('Attempt to modify a readonly table', 2) end
local function protect(t)
  local p = setmetatable({}, {__index = t, __newindex = readonly, __metatable = false})
  targets[p] = t
  return p
end

local errmsg = hidden.errmsg
local redis_log = G.redis.log
local redis = G.redis

local function pcall_result(ok, ...)
  if ok then return ok, ... end
  hidden.check()
  local e = ...
  if type(e) == 'userdata' then return false, errmsg(e) end
  if type(e) == 'table' then
    local m = e.err
    if type(m) == 'string' or type(m) == 'number' then return false, m end
  end
  return false, e
end
G.pcall = function(...) return pcall_result(rawpcall(...)) end
G.next = function(t, k)
  local r = targets[t]
  if r then t = r end
  return rawnext(t, k)
end
local next_ = G.next
G.pairs = function(t) return next_, t, nil end
G.rawget = function(t, k)
  local r = targets[t]
  if r then t = r end
  return rawget_(t, k)
end
G.rawset = function(t, k, v)
  if targets[t] then error('Attempt to modify a readonly table', 0) end
  return rawset_(t, k, v)
end
-- The sandbox's tables are read-only in Redis (its patched Lua): changing their
-- metatable is the same error as changing them; the globals' metatable reads as a
-- read-only table, the libraries have none.
local getmetatable_ = getmetatable
local metas = {}
local string_meta -- the strings' metatable as scripts see it: read-only (set below)
G.setmetatable = function(t, m)
  if targets[t] then error('Attempt to modify a readonly table', 0) end
  return setmetatable(t, m)
end
G.getmetatable = function(t)
  if targets[t] then return metas[t] end
  if type(t) == 'string' then return string_meta end
  return getmetatable_(t)
end
local loadstring_ = hidden.loadstring
G.loadstring = loadstring_
G.load = function(f, name)
  if type(f) == 'string' then return loadstring_(f, name) end
  local parts = {}
  while true do
    local p = f()
    if p == nil or p == '' then break end
    parts[#parts + 1] = p
  end
  return loadstring_(concat(parts), name or '=(load)')
end
for _, k in ipairs({'dofile', 'loadfile', 'print', 'getfenv', 'setfenv', 'newproxy', 'module', 'require', 'package', 'os', 'io', 'debug'}) do
  G[k] = nil
end

local view = {}
for k, v in rawnext, G do
  if type(v) == 'table' and k ~= '_G' then view[k] = protect(v) else view[k] = v end
end
-- Strings' methods come from the read-only `string` scripts see (as in Redis, where
-- `getmetatable('').__index == string`), and their metatable reads as read-only: the
-- real ones would let a script change `string` for every later script.
local smt = getmetatable_('')
smt.__index = view.string
string_meta = protect(smt)
local env = setmetatable({}, {__index = view, __newindex = readonly, __metatable = false})
targets[env] = view
metas[env] = protect({})
view._G = env
hidden.env = env
setmetatable(view, {__index = function(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end})
-- Library code and its functions run in fenv: during FUNCTION LOAD its only global is
-- a `redis` that registers functions, logs and tells the version (Redis 7.0's library
-- API: no math, string, tostring, _G...); when called, the view.
local fmt = {__index = view, __newindex = readonly, __metatable = false}
local fenv = setmetatable({}, fmt)
targets[fenv] = view
metas[fenv] = metas[env]
local function missing(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end
local load_redis = {register_function = hidden.register_function, log = redis_log}
for k, v in rawnext, redis do
  if k:sub(1, 4) == 'LOG_' or k:sub(1, 13) == 'REDIS_VERSION' then load_redis[k] = v end
end
setmetatable(load_redis, {__index = missing})
local load_view = setmetatable({redis = protect(load_redis)}, {__index = missing})
hidden.loading = function(on) if on then fmt.__index = load_view else fmt.__index = view end end
hidden.fenv = fenv
local function run(f, h) return xpcall(f, h) end
local function run_fn(f, h, keys, args) return xpcall(function() return f(keys, args) end, h) end
return env, view, run, run_fn
"#;

impl Engine {
    fn new(generation: u64) -> mlua::Result<Engine> {
        let lua = Lua::new_with(StdLib::TABLE | StdLib::STRING | StdLib::MATH, LuaOptions::new())?;
        let state = Rc::new(RunState::default());
        state.resp.set(2);
        state.repl.set(REPL_ALL);
        state.rand.set(RAND48_SEED);
        let globals = lua.globals();
        let hidden = lua.create_table()?;
        let tostring: Function = globals.get("tostring")?;
        hidden.raw_set(
            "errmsg",
            lua.create_function(move |lua, e: Value| match &e {
                Value::Error(err) => lua.create_string(error_text(err)),
                _ => tostring.call::<mlua::LuaString>(e),
            })?,
        )?;
        super::api::register(&lua, &globals, &state)?;
        hidden.raw_set("register_function", register_function(&lua, &state)?)?;
        super::libs::register(&lua, &globals)?;
        // loadstring compiles into the sandbox (the prelude stores it as hidden.env).
        let hidden2 = hidden.clone();
        hidden.raw_set(
            "loadstring",
            lua.create_function(move |lua, (code, name): (mlua::LuaString, Option<String>)| {
                let bytes = code.as_bytes().to_vec();
                let name = name.unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
                match lua.load(bytes).set_name(name).set_environment(hidden2.raw_get::<Table>("env")?).into_function() {
                    Ok(f) => Ok((Value::Function(f), Value::Nil)),
                    Err(e) => Ok((Value::Nil, Value::String(lua.create_string(syntax_message(&e))?))),
                }
            })?,
        )?;
        let (env, view, runner, fn_runner): (Table, Table, Function, Function) =
            lua.load(PRELUDE).set_name(INTERNAL_CHUNK).call(hidden.clone())?;
        let st = state.clone();
        hidden.raw_set(
            "check",
            lua.create_function(move |_, ()| match st.slot.borrow().as_ref() {
                Some(s) if s.killed() => Err(mlua::Error::RuntimeError(super::running::KILLED_TEXT.into())),
                _ => Ok(()),
            })?,
        )?;
        let handler = error_handler(&lua, &state)?;
        let (mut main, mut view_ref, mut handler_ref, mut names_ref) = (std::ptr::null_mut(), 0, 0, [0; 2]);
        // SAFETY: the closure pops the four values exec_raw pushed, into the registry.
        unsafe {
            lua.exec_raw::<()>((view.clone(), handler.clone(), "KEYS", "ARGV"), |l| {
                main = l;
                names_ref[1] = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
                names_ref[0] = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
                handler_ref = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
                view_ref = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
            })?;
        }
        let st = state.clone();
        lua.set_hook(HookTriggers::new().every_nth_instruction(100_000), move |_, _| {
            if st.loading_since.get().is_some_and(|t| t.elapsed().as_millis() > 500) {
                return Err(mlua::Error::external(super::call::Raised::new("ERR FUNCTION LOAD timeout".into())));
            }
            if let Some(s) = st.slot.borrow().as_ref() {
                if s.killed() {
                    return Err(mlua::Error::RuntimeError(super::running::KILLED_TEXT.into()));
                }
                if s.tick() {
                    (super::hooks().while_busy)();
                    // A SCRIPT KILL served just now ends the script at once.
                    if s.killed() {
                        return Err(mlua::Error::RuntimeError(super::running::KILLED_TEXT.into()));
                    }
                }
            }
            Ok(VmState::Continue)
        })?;
        Ok(Engine {
            lua,
            generation,
            compiled: HashMap::default(),
            evictions_seen: cache().evicted(),
            main,
            view_ref,
            handler_ref,
            names_ref,
            env,
            view,
            hidden,
            runner,
            fn_runner,
            handler,
            state,
            runs: 0,
            libraries: HashMap::new(),
            reported: Arc::new(Reported { generation, bytes: Default::default() }),
        }
        .with_memory_reported())
    }

    /// Collects the garbage of setting up (a third of the fresh state) and starts
    /// reporting the state's size.
    fn with_memory_reported(mut self) -> Self {
        let _ = self.lua.gc_collect();
        STATES.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::downgrade(&self.reported));
        self.report_memory();
        self
    }

    /// The compiled function of `script`, compiling it on first use on this thread.
    pub fn function_of(&mut self, script: &Arc<Script>) -> Result<Function, String> {
        Ok(self.compiled_of(script)?.f.clone())
    }

    fn compiled_of(&mut self, script: &Arc<Script>) -> Result<&Compiled, String> {
        if !self.compiled.contains_key(&script.sha) {
            let f = self.compile(&script.body[script.shebang_len..], "@user_script")?;
            // Scripts evicted from the cache leave their functions here: start over when
            // this thread has compiled more than the cache can hold.
            if self.compiled.len() >= 2 * super::cache::EVAL_SCRIPTS_MAX {
                self.forget_compiled();
            }
            let mut f_ref = 0;
            // SAFETY: the closure pops the value exec_raw pushed, into the registry.
            unsafe {
                self.lua
                    .exec_raw::<()>(f.clone(), |l| f_ref = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX))
                    .map_err(|e| e.to_string())?;
            }
            self.compiled.insert(script.sha.clone(), Compiled { script: script.clone(), f, f_ref });
        }
        self.compiled.get(&script.sha).ok_or_else(|| "script missing".to_string())
    }

    fn forget_compiled(&mut self) {
        let refs: Vec<c_int> = self.compiled.drain().map(|(_, c)| c.f_ref).collect();
        // SAFETY: luaL_unref of references this state handed out.
        let _ = unsafe {
            self.lua.exec_raw::<()>((), |l| {
                for r in refs {
                    ffi::luaL_unref(l, ffi::LUA_REGISTRYINDEX, r);
                }
            })
        };
    }

    /// The script named `sha` (lower-case hex), if this thread compiled it and the
    /// node's cache still has it: EVALSHA's lookup, without the cache's lock. SCRIPT
    /// FLUSH rebuilds the state; an eviction from the cache (scripts EVAL added, past
    /// 500) makes every thread forget what it compiled.
    pub fn cached(&mut self, sha: &[u8]) -> Option<Arc<Script>> {
        let evictions = cache().evicted();
        if evictions != self.evictions_seen {
            self.evictions_seen = evictions;
            self.forget_compiled();
            return None;
        }
        let sha = std::str::from_utf8(sha).ok()?;
        self.compiled.get(sha).map(|c| c.script.clone())
    }

    /// Compiles `code` into the sandbox; the error is Lua's message.
    pub fn compile(&self, code: &[u8], name: &str) -> Result<Function, String> {
        self.lua
            .load(code)
            .set_name(name)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| syntax_message(&e))
    }

    /// Runs an EVAL script: KEYS and ARGV (`args[3..]`, `numkeys` keys, as EVAL's
    /// arguments are laid out) set as globals, `redis.call` bound to `ctx`, the reply
    /// (or Redis's error for a failed run) written to `ctx.out`.
    ///
    /// Redis's `luaCallFunction`, on the Lua stack directly: the error handler, KEYS and
    /// ARGV, the function, `lua_pcall`.
    pub fn run_eval(
        &mut self,
        ctx: &mut Ctx,
        run: &mut super::call::Run,
        script: &Arc<Script>,
        args: &Args,
        numkeys: usize,
    ) {
        let f_ref = match self.compiled_of(script) {
            Ok(c) => c.f_ref,
            Err(err) => return ctx.out.error(&format!("ERR Error compiling script (new function): {err}")),
        };
        let l = self.main;
        self.state.resp.set(2);
        self.state.repl.set(REPL_ALL);
        // SAFETY: `l` is this engine's main state, whose stack nothing else uses between
        // mlua's calls; what is pushed here is popped before returning (`base`). The
        // pushes fail only when Lua's allocator does (out of memory).
        let ok = unsafe {
            let base = ffi::lua_gettop(l);
            if ffi::lua_checkstack(l, 8) == 0 {
                return ctx.out.error("ERR Lua stack exhausted");
            }
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, self.handler_ref as _);
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, self.view_ref as _);
            set_strings(l, self.names_ref[0], args, 3, 3 + numkeys);
            set_strings(l, self.names_ref[1], args, 3 + numkeys, args.len());
            ffi::lua_settop(l, base + 1);
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, f_ref as _);
            let status = super::call::bind(ctx, run, &self.state, || ffi::lua_pcall(l, 0, 1, base + 1));
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, self.view_ref as _);
            for name in self.names_ref {
                ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, name as _);
                ffi::lua_pushnil(l);
                ffi::lua_rawset(l, -3);
            }
            ffi::lua_pop(l, 1);
            // The result (or error) is on top: scalars are written here, the rest
            // (tables) through mlua's value.
            let done = status == 0 && write_scalar(l, self.state.resp.get(), ctx.out);
            let result = if done {
                None
            } else {
                let r = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
                let v = self.lua.exec_raw::<Value>((), |s| {
                    ffi::lua_rawgeti(s, ffi::LUA_REGISTRYINDEX, r as _);
                    ffi::luaL_unref(s, ffi::LUA_REGISTRYINDEX, r);
                });
                Some(v.map(|v| (status == 0, v)))
            };
            ffi::lua_settop(l, base);
            result
        };
        self.finish(ctx, run, ok);
    }

    /// Runs a library function (FCALL): called with the keys and arguments tables
    /// (`args[3..]`, `numkeys` keys).
    pub fn run_function(
        &mut self,
        ctx: &mut Ctx,
        run: &mut super::call::Run,
        f: &Function,
        args: &Args,
        numkeys: usize,
    ) {
        let result = (|| -> mlua::Result<(bool, Value)> {
            let keys = self.string_array(args, 3, 3 + numkeys)?;
            let argv = self.string_array(args, 3 + numkeys, args.len())?;
            self.call_scoped(ctx, run, |e| {
                e.fn_runner.call::<(bool, Value)>((f.clone(), e.handler.clone(), keys.clone(), argv.clone()))
            })
        })();
        self.finish(ctx, run, Some(result));
    }

    fn string_array(&self, args: &Args, from: usize, to: usize) -> mlua::Result<Table> {
        let t = self.lua.create_table_with_capacity(to - from, 0)?;
        for i in from..to {
            t.raw_seti(i - from + 1, self.lua.create_string(args.get(i))?)?;
        }
        Ok(t)
    }

    /// Binds `redis.call` to `ctx` for the duration of `body`.
    fn call_scoped(
        &self,
        ctx: &mut Ctx,
        run: &mut super::call::Run,
        body: impl FnOnce(&Engine) -> mlua::Result<(bool, Value)>,
    ) -> mlua::Result<(bool, Value)> {
        self.state.resp.set(2);
        self.state.repl.set(REPL_ALL);
        super::call::bind(ctx, run, &self.state, || body(self))
    }

    /// Writes the run's reply or error, and does Redis's periodic GC step.
    /// (None: the reply is written already.)
    fn finish(&mut self, ctx: &mut Ctx, run: &super::call::Run, result: Option<mlua::Result<(bool, Value)>>) {
        // An error a command replied was counted then: the script's reply of it is not.
        if let Some(Ok((_, Value::Table(t)))) = &result {
            ctx.error_counted = super::call::counted_error(t);
        }
        match result {
            None => {}
            Some(Ok((true, v))) => convert::lua_to_reply(&v, self.state.resp.get(), ctx.out),
            Some(Ok((false, v))) => ctx.out.error(&convert::error_reply_text(&v, run.name.as_str())),
            Some(Err(e)) => {
                ctx.out.error(&format!("ERR Error running script {}, {:.100}", run.name.as_str(), e.to_string()))
            }
        }
        self.runs += 1;
        if self.runs.is_multiple_of(50) {
            // Redis's LUA_GC_CYCLE_PERIOD: a step of size 50 every 50 runs (mlua's
            // gc_step is a step of size 0, which let garbage pile up between cycles).
            // SAFETY: lua_gc needs no stack slot and raises no error in Lua 5.1 (the
            // only finalizers are mlua's, which raise none).
            unsafe { ffi::lua_gc(self.main, ffi::LUA_GCSTEP, 50) };
            self.report_memory();
        }
    }

    /// Runs a library's code (after its shebang line) with `redis.register_function`
    /// and returns what it registered. Errors are FUNCTION LOAD's texts (without `ERR `).
    pub fn load_library(&mut self, body: &[u8]) -> Result<Vec<(super::functions::FunctionInfo, Function)>, String> {
        let f = self
            .lua
            .load(body)
            .set_name("@user_function")
            .set_environment(self.hidden.raw_get::<Table>("fenv").map_err(|e| e.to_string())?)
            .into_function()
            .map_err(|e| format!("Error compiling function: {}", syntax_message(&e)))?;
        let loading: Function = self.hidden.raw_get("loading").map_err(|e| e.to_string())?;
        *self.state.registering.borrow_mut() = Some(Vec::new());
        self.state.loading_since.set(Some(std::time::Instant::now()));
        let _ = loading.call::<()>(true);
        let r = self.runner.call::<(bool, Value)>((f, self.handler.clone()));
        let _ = loading.call::<()>(false);
        self.state.loading_since.set(None);
        let registered = self.state.registering.borrow_mut().take().unwrap_or_default();
        match r {
            Ok((true, _)) => Ok(registered),
            Ok((false, Value::Table(t))) => {
                let msg = t.raw_get::<String>("err").unwrap_or_default();
                Err(format!("Error registering functions: {msg}"))
            }
            Ok((false, _)) => Err("Error registering functions: ERR execution failure".into()),
            Err(e) => Err(format!("Error registering functions: ERR {}", error_text(&e))),
        }
    }

    /// FUNCTION LOAD's check: the functions `body` registers.
    pub fn register_library(&mut self, body: &[u8]) -> Result<Vec<super::functions::FunctionInfo>, String> {
        Ok(self.load_library(body)?.into_iter().map(|(i, _)| i).collect())
    }

    /// Function `name` of `lib`, loading the library into this state first when this
    /// thread has not got its current version.
    pub fn library_function(&mut self, lib: &super::functions::Library, name: &str) -> Result<Function, String> {
        let current = self.libraries.get(&lib.name).is_some_and(|(v, _)| *v == lib.version);
        if !current {
            let body_at = lib.code.iter().position(|&b| b == b'\n').unwrap_or(lib.code.len());
            let fns = self.load_library(&lib.code[body_at..])?;
            let map = fns.into_iter().map(|(i, f)| (i.name, f)).collect();
            self.libraries.insert(lib.name.clone(), (lib.version, map));
        }
        self.libraries
            .get(&lib.name)
            .and_then(|(_, m)| m.get(name))
            .cloned()
            .ok_or_else(|| "Function not found".to_string())
    }

    /// Publishes this state's size to the node-wide sum (INFO's `used_memory_lua`).
    fn report_memory(&mut self) {
        let now = self.lua.used_memory();
        self.reported.bytes.store(now, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Sets `view[name]` (the view is at the stack's top; the name in the registry at
/// `name_ref`) to a new table of
/// `args[from..to]`. (Reusing the last run's tables, emptied, measured no better.)
///
/// SAFETY: needs 3 free stack slots; fails only when Lua's allocator does.
unsafe fn set_strings(l: *mut ffi::lua_State, name_ref: c_int, args: &Args, from: usize, to: usize) {
    ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, name_ref as _);
    ffi::lua_createtable(l, (to - from) as c_int, 0);
    for i in from..to {
        let a = args.get(i);
        ffi::lua_pushlstring(l, a.as_ptr() as *const _, a.len());
        ffi::lua_rawseti(l, -2, (i - from + 1) as _);
    }
    ffi::lua_rawset(l, -3);
}

/// Writes the value at the top of the stack as [`convert::lua_to_reply`] would, if it
/// is not a table (false: a table, left to that function).
///
/// SAFETY: reads the top slot only.
unsafe fn write_scalar(l: *mut ffi::lua_State, resp: u8, out: &mut ferrokv_resp::ReplyBuf) -> bool {
    match ffi::lua_type(l, -1) {
        ffi::LUA_TSTRING => {
            let mut len = 0usize;
            let p = ffi::lua_tolstring(l, -1, &mut len);
            out.bulk(std::slice::from_raw_parts(p as *const u8, len));
        }
        ffi::LUA_TNUMBER => out.integer(convert::number_to_i64(ffi::lua_tonumber(l, -1))),
        ffi::LUA_TBOOLEAN => {
            let b = ffi::lua_toboolean(l, -1) != 0;
            match (resp, b) {
                (2, true) => out.integer(1),
                (2, false) => out.null(),
                _ => out.boolean(b),
            }
        }
        ffi::LUA_TTABLE => return false,
        _ => out.null(),
    }
    true
}

/// The message of a compile error, as Lua prints it (`user_script:1: ... near ...`).
pub fn syntax_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Redis's `__redis__err__handler`: turns what a script raised into an error table
/// `{err=..., source=..., line=...}` naming the user code that raised it (C
/// functions and the engine's own Lua frames are skipped).
fn error_handler(lua: &Lua, state: &Rc<RunState>) -> mlua::Result<Function> {
    let tostring: Function = lua.globals().get("tostring")?;
    let state = state.clone();
    lua.create_function(move |lua, err: Value| {
        let killed = state.slot.borrow().as_ref().is_some_and(|s| s.killed());
        let t = match err {
            _ if killed => {
                let t = lua.create_table()?;
                t.raw_set("err", format!("ERR {}", super::running::KILLED_TEXT))?;
                t
            }
            Value::Table(t) => t,
            other => {
                if let Value::Error(e) = &other {
                    if let Some(r) = external::<super::call::Raised>(e) {
                        let t = lua.create_table()?;
                        t.raw_set("err", r.line.as_str())?;
                        if r.counted {
                            t.raw_set("ignore_error_stats_update", true)?;
                        }
                        return finish_error_table(lua, t);
                    }
                }
                let msg: String = match &other {
                    // luaL_error names the calling Lua function's line, as
                    // `user_script:1: bad argument ...`.
                    Value::Error(e) if positioned(e).is_some() => error_text(e),
                    Value::Error(e) => match user_frame(lua) {
                        Some((_, short, line)) => format!("{short}:{line}: {}", error_text(e)),
                        None => error_text(e),
                    },
                    Value::UserData(_) => tostring.call::<mlua::LuaString>(other.clone())?.to_string_lossy(),
                    _ => tostring.call::<mlua::LuaString>(other.clone())?.to_string_lossy(),
                };
                let t = lua.create_table()?;
                t.raw_set("err", format!("ERR {msg}"))?;
                t
            }
        };
        finish_error_table(lua, t)
    })
}

/// Adds the user frame's source and line to an error table.
fn finish_error_table(lua: &Lua, t: Table) -> mlua::Result<Table> {
    if let Some((source, _, line)) = user_frame(lua) {
        t.raw_set("source", source)?;
        t.raw_set("line", line)?;
    }
    Ok(t)
}

/// The innermost frame of user code (not C, not the engine's own Lua): its source,
/// short source and current line.
fn user_frame(lua: &Lua) -> Option<(String, String, i64)> {
    for level in 1..12 {
        let frame = lua.inspect_stack(level, |d| {
            let s = d.source();
            (s.what, s.source.map(|x| x.into_owned()), s.short_src.map(|x| x.into_owned()), d.current_line())
        });
        let (what, source, short, line) = frame?;
        if what == "C" || source.as_deref() == Some(INTERNAL_CHUNK) {
            continue;
        }
        let source = source?;
        let short = short.unwrap_or_else(|| source.clone());
        return Some((source, short, line.map(|l| l as i64).unwrap_or(-1)));
    }
    None
}

/// The error line of an error `redis.call` raised (see [`super::call::Raised`]).
fn raised_line(e: &mlua::Error) -> Option<String> {
    external::<super::call::Raised>(e).map(|r| r.line.clone())
}

/// The message of an error a library function raised with its position (see
/// [`super::libs::Positioned`]).
fn positioned(e: &mlua::Error) -> Option<String> {
    external::<super::libs::Positioned>(e).map(|r| r.0.clone())
}

/// The Rust error of type `T` inside `e`, through the callback and context layers
/// mlua wraps it in.
fn external<T: std::error::Error + 'static>(e: &mlua::Error) -> Option<&T> {
    match e {
        mlua::Error::ExternalError(x) => x.downcast_ref::<T>(),
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => external(cause),
        _ => None,
    }
}

/// An error raised by Rust code inside a script, as its message.
fn error_text(e: &mlua::Error) -> String {
    if let Some(line) = raised_line(e).or_else(|| positioned(e)) {
        return line;
    }
    match e {
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => error_text(cause),
        other => other.to_string(),
    }
}

/// `redisSrand48`'s state for seed 0... as Redis starts: x = 0x1234ABCD330E.
pub const RAND48_SEED: u64 = 0x1234_ABCD_330E;

/// `redisLrand48`: the next 31-bit value of the 48-bit linear congruential generator.
pub fn lrand48(state: &Cell<u64>) -> i32 {
    let x = state.get().wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB) & ((1 << 48) - 1);
    state.set(x);
    (x >> 17) as i32
}

/// `redisSrand48(seed)`.
pub fn srand48(state: &Cell<u64>, seed: i32) {
    state.set((((seed as u32) as u64) << 16) | 0x330E);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rand48_matches_redis() {
        // First values of Redis's generator from its initial state: (x >> 17) of the
        // 48-bit LCG with a = 0x5DEECE66D, c = 11, x0 = 0x1234ABCD330E.
        let s = Cell::new(RAND48_SEED);
        let mut x: u64 = 0x1234ABCD330E;
        for _ in 0..5 {
            x = x.wrapping_mul(0x5DEECE66D).wrapping_add(11) & ((1 << 48) - 1);
            assert_eq!(lrand48(&s) as u64, x >> 17);
        }
        srand48(&s, 1);
        assert_eq!(s.get(), 0x1_330E);
    }
}

/// `redis.register_function(name, callback)` or `redis.register_function{function_name=...,
/// callback=..., flags={...}, description=...}`, during FUNCTION LOAD only.
fn register_function(lua: &Lua, state: &Rc<RunState>) -> mlua::Result<Function> {
    use super::functions::FunctionInfo;
    let state = state.clone();
    let raise = |msg: &str| mlua::Error::external(super::call::Raised::new(super::call::error_line(msg)));
    lua.create_function(move |_, args: MultiValue| {
        if state.registering.borrow().is_none() {
            return Err(raise("redis.register_function can only be called on FUNCTION LOAD command"));
        }
        let (name, callback, description, flags) = match args.len() {
            1 => {
                let Value::Table(t) = &args[0] else {
                    return Err(raise("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments)."));
                };
                let (mut name, mut callback, mut desc, mut flags) = (None, None, None, ScriptFlagsSet::default());
                for pair in t.pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    let key = match &k {
                        Value::String(s) => s.to_string_lossy(),
                        Value::Number(n) => ferrokv_resp::reply::format_g(*n, 14),
                        _ => return Err(raise("named argument key given to redis.register_function is not a string")),
                    };
                    match key.to_ascii_lowercase().as_str() {
                        "function_name" => match v {
                            Value::String(s) => name = Some(s.to_string_lossy()),
                            _ => return Err(raise("function_name argument given to redis.register_function must be a string")),
                        },
                        "description" => match v {
                            Value::String(s) => desc = Some(s.as_bytes().to_vec()),
                            _ => return Err(raise("description argument given to redis.register_function must be a string")),
                        },
                        "callback" => match v {
                            Value::Function(f) => callback = Some(f),
                            _ => return Err(raise("callback argument given to redis.register_function must be a function")),
                        },
                        "flags" => match v {
                            Value::Table(ft) => {
                                for f in ft.sequence_values::<Value>() {
                                    let flag = match f? {
                                        Value::String(s) => super::flags::ScriptFlags::by_name(&s.as_bytes()),
                                        _ => None,
                                    };
                                    match flag {
                                        Some(fl) => flags.0 = flags.0.with(fl),
                                        None => return Err(raise("unknown flag given")),
                                    }
                                }
                            }
                            _ => {
                                return Err(raise(
                                    "flags argument to redis.register_function must be a table representing function flags",
                                ))
                            }
                        },
                        _ => return Err(raise("unknown argument given to redis.register_function")),
                    }
                }
                let Some(name) = name else { return Err(raise("redis.register_function must get a function name argument")) };
                let Some(callback) = callback else { return Err(raise("redis.register_function must get a callback argument")) };
                (name, callback, desc, flags.0)
            }
            2 => {
                let Value::String(name) = &args[0] else {
                    return Err(raise("first argument to redis.register_function must be a string"));
                };
                let Value::Function(callback) = &args[1] else {
                    return Err(raise("second argument to redis.register_function must be a function"));
                };
                (name.to_string_lossy(), callback.clone(), None, super::flags::ScriptFlags::default())
            }
            _ => return Err(raise("wrong number of arguments to redis.register_function")),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(raise(
                "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long",
            ));
        }
        let mut reg = state.registering.borrow_mut();
        let list = reg.get_or_insert_with(Vec::new);
        if list.iter().any(|(i, _)| i.name == name) {
            return Err(raise("Function already exists in the library"));
        }
        list.push((FunctionInfo { name, description, flags }, callback));
        Ok(())
    })
}

#[derive(Default)]
struct ScriptFlagsSet(super::flags::ScriptFlags);
