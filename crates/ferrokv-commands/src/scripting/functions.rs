//! Redis 7 functions: FUNCTION LOAD/LIST/DELETE/FLUSH/DUMP/RESTORE/STATS/HELP (KILL
//! is a server command, see [`super::running`]), FCALL and FCALL_RO.
//!
//! The node's libraries live in one registry (process-wide, like the script cache).
//! A library is its code; each shard thread's Lua state loads a library the first time
//! one of its functions is called there (running the code with
//! `redis.register_function` available), and again when the library was replaced. The
//! FUNCTION commands that change libraries are write commands with no keys: they
//! propagate as called (AOF, replicas) and the RDB stores the libraries as FUNCTION2
//! records.

use super::flags::ScriptFlags;
use super::{call, engine, running, split_keys};
use crate::ctx::Ctx;
use ferrokv_resp::Args;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Debug, Clone)]
pub struct FunctionInfo {
    pub name: String,
    pub description: Option<Vec<u8>>,
    pub flags: ScriptFlags,
}

#[derive(Debug)]
pub struct Library {
    pub name: String,
    /// The whole payload FUNCTION LOAD got (shebang included), as Redis keeps it.
    pub code: Vec<u8>,
    pub functions: Vec<FunctionInfo>,
    /// Changes when the library is loaded again: threads reload their copy.
    pub version: u64,
}

#[derive(Default)]
struct Registry {
    libs: BTreeMap<String, Arc<Library>>,
    /// Function name in lower case (Redis compares them ignoring case) → library name.
    functions: BTreeMap<String, String>,
}

fn registry() -> &'static Mutex<Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(Mutex::default)
}

fn lock() -> std::sync::MutexGuard<'static, Registry> {
    registry().lock().unwrap_or_else(|p| p.into_inner())
}

static VERSION: AtomicU64 = AtomicU64::new(1);

/// The library and flags of function `name`.
pub fn find(name: &str) -> Option<(Arc<Library>, FunctionInfo)> {
    let g = lock();
    let lib = g.libs.get(g.functions.get(&name.to_ascii_lowercase())?)?.clone();
    let f = lib.functions.iter().find(|f| f.name.eq_ignore_ascii_case(name))?.clone();
    Some((lib, f))
}

/// Every library's code, for the RDB (FUNCTION2 records) and FUNCTION DUMP.
pub fn all_codes() -> Vec<Vec<u8>> {
    lock().libs.values().map(|l| l.code.clone()).collect()
}

/// (libraries, functions), for FUNCTION STATS and INFO.
pub fn counts() -> (usize, usize) {
    let g = lock();
    (g.libs.len(), g.functions.len())
}

pub fn flush() {
    *lock() = Registry::default();
}

/// `#!<engine> name=<lib>` (Redis's `functionExtractLibMetaData`): engine and name.
fn metadata(code: &[u8]) -> Result<(String, String), String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let Some(end) = code.iter().position(|&b| b == b'\n') else {
        return Err("Invalid library metadata".into());
    };
    // Split as Redis's sdssplitargs does (`name="foo"` is `name=foo`).
    let parts = match ferrokv_resp::inline::split_args(&code[..end]) {
        Ok(p) if !p.is_empty() => p,
        _ => return Err("Invalid library metadata".into()),
    };
    let parts: Vec<String> = parts.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    let engine = parts[0][2..].to_string();
    let mut name = None;
    for p in &parts[1..] {
        if p.len() >= 5 && p[..5].eq_ignore_ascii_case("name=") {
            if name.is_some() {
                return Err("Invalid metadata value, name argument was given multiple times".into());
            }
            name = Some(p[5..].to_string());
            continue;
        }
        return Err(format!("Invalid metadata value given: {p}"));
    }
    let Some(name) = name else { return Err("Library name was not given".into()) };
    Ok((engine, name))
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Loads (or with `replace` replaces) a library; returns its name. Errors are Redis's
/// texts without `ERR `.
pub fn load(code: &[u8], replace: bool) -> Result<String, String> {
    let (engine_name, name) = metadata(code)?;
    if !valid_name(&name) {
        return Err(
            "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into(),
        );
    }
    if !engine_name.eq_ignore_ascii_case("lua") {
        return Err(format!("Engine '{engine_name}' not found"));
    }
    if !replace && lock().libs.contains_key(&name) {
        return Err(format!("Library '{name}' already exists"));
    }
    let body_at = code.iter().position(|&b| b == b'\n').unwrap_or(code.len());
    let functions = engine::with_engine(|e| e.register_library(&code[body_at..])).map_err(|e| e.to_string())??;
    if functions.is_empty() {
        return Err("No functions registered".into());
    }
    let mut g = lock();
    for f in &functions {
        if let Some(owner) = g.functions.get(&f.name.to_ascii_lowercase()) {
            if *owner != name {
                return Err(format!("Function {} already exists", f.name));
            }
        }
    }
    if let Some(old) = g.libs.remove(&name) {
        for f in &old.functions {
            g.functions.remove(&f.name.to_ascii_lowercase());
        }
    }
    for f in &functions {
        g.functions.insert(f.name.to_ascii_lowercase(), name.clone());
    }
    let lib = Library {
        name: name.clone(),
        code: code.to_vec(),
        functions,
        version: VERSION.fetch_add(1, Ordering::Relaxed),
    };
    g.libs.insert(name.clone(), Arc::new(lib));
    Ok(name)
}

/// FCALL function numkeys [key ...] [arg ...]
pub fn fcall(ctx: &mut Ctx, args: &Args) {
    fcall_generic(ctx, args, false)
}

/// FCALL_RO function numkeys [key ...] [arg ...]
pub fn fcall_ro(ctx: &mut Ctx, args: &Args) {
    fcall_generic(ctx, args, true)
}

fn fcall_generic(ctx: &mut Ctx, args: &Args, ro: bool) {
    let name = String::from_utf8_lossy(args.get(1)).into_owned();
    let Some((lib, info)) = find(&name) else { return ctx.out.error("ERR Function not found") };
    if crate::util::parse_i64(args.get(2)).is_none() {
        return ctx.out.error("ERR Bad number of keys provided");
    }
    let Some(numkeys) = split_keys(ctx, args) else { return };
    if let Some(e) = super::prepare_refusal(ctx, info.flags, ro) {
        return ctx.out.error(e);
    }
    let read_only = ro || info.flags.has(ScriptFlags::NO_WRITES);
    let slot_data = running::RunSlot::start(false, name.clone(), args.iter().map(|a| a.to_vec()).collect());
    let first_slot = (numkeys > 0 && ctx.cfg.cluster_mode).then(|| ferrokv_store::slot::key_slot(args.get(3)));
    let mut run = call::Run {
        name: call::RunName::Function(name.clone()),
        eval: false,
        read_only,
        flags: info.flags,
        slot: first_slot,
        slot_data: slot_data.clone(),
        oom: (super::hooks().over_maxmemory)(),
    };
    let caller_db = ctx.keys.selected();
    let r = engine::with_engine(|e| {
        *e.state.slot.borrow_mut() = Some(slot_data.clone());
        match e.library_function(&lib, &info.name) {
            Ok(f) => e.run_function(ctx, &mut run, &f, args, numkeys),
            Err(err) => ctx.out.error(&format!("ERR {err}")),
        }
        *e.state.slot.borrow_mut() = None;
    });
    slot_data.finish();
    call::restore_db(ctx, caller_db);
    if let Err(e) = r {
        ctx.out.error(&format!("ERR {e}"));
    }
    ctx.propagation.prevented = true;
}

/// FUNCTION LOAD [REPLACE] code
pub fn function_load(ctx: &mut Ctx, args: &Args) {
    let mut replace = false;
    let mut i = 2;
    while i < args.len() - 1 {
        let a = args.get(i);
        i += 1;
        if a.eq_ignore_ascii_case(b"replace") {
            replace = true;
            continue;
        }
        return ctx.out.error(&format!("ERR Unknown option given: {}", String::from_utf8_lossy(a)));
    }
    if i >= args.len() {
        return ctx.out.error("ERR Function code is missing");
    }
    match load(args.get(i), replace) {
        Ok(name) => {
            ctx.dirty += 1;
            ctx.out.bulk(name.as_bytes())
        }
        Err(e) => ctx.out.error(&format!("ERR {e}")),
    }
}

/// FUNCTION DELETE library-name
pub fn function_delete(ctx: &mut Ctx, args: &Args) {
    let name = String::from_utf8_lossy(args.get(2)).into_owned();
    let mut g = lock();
    let Some(lib) = g.libs.remove(&name) else {
        drop(g);
        return ctx.out.error("ERR Library not found");
    };
    for f in &lib.functions {
        g.functions.remove(&f.name.to_ascii_lowercase());
    }
    drop(g);
    ctx.dirty += 1;
    ctx.out.ok()
}

/// FUNCTION FLUSH [ASYNC|SYNC]
/// Redis's `addReplySubcommandSyntaxError`: the subcommand as typed, the command upper case.
fn subcommand_syntax_error(ctx: &mut Ctx, args: &Args) {
    let msg = format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        String::from_utf8_lossy(&args.get(1)[..args.get(1).len().min(128)]),
        String::from_utf8_lossy(args.get(0)).to_uppercase()
    );
    ctx.out.error(&msg)
}

pub fn function_flush(ctx: &mut Ctx, args: &Args) {
    if args.len() > 3 {
        return subcommand_syntax_error(ctx, args);
    }
    let ok = args.len() == 2
        || (args.len() == 3
            && (args.get(2).eq_ignore_ascii_case(b"sync") || args.get(2).eq_ignore_ascii_case(b"async")));
    if !ok {
        return ctx.out.error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
    }
    flush();
    ctx.dirty += 1;
    ctx.out.ok()
}

/// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE]
pub fn function_list(ctx: &mut Ctx, args: &Args) {
    let mut with_code = false;
    let mut pattern: Option<Vec<u8>> = None;
    let mut i = 2;
    while i < args.len() {
        let a = args.get(i);
        i += 1;
        if a.eq_ignore_ascii_case(b"withcode") && !with_code {
            with_code = true;
            continue;
        }
        if a.eq_ignore_ascii_case(b"libraryname") && pattern.is_none() {
            if i >= args.len() {
                return ctx.out.error("ERR library name argument was not given");
            }
            pattern = Some(args.get(i).to_vec());
            i += 1;
            continue;
        }
        return ctx.out.error(&format!("ERR Unknown argument {}", String::from_utf8_lossy(a)));
    }
    let libs: Vec<Arc<Library>> = lock()
        .libs
        .values()
        .filter(|l| pattern.as_ref().is_none_or(|p| ferrokv_store::glob::glob_match(p, l.name.as_bytes(), false)))
        .cloned()
        .collect();
    let out = &mut *ctx.out;
    out.array(libs.len());
    for l in &libs {
        out.map(if with_code { 4 } else { 3 });
        out.bulk(b"library_name");
        out.bulk(l.name.as_bytes());
        out.bulk(b"engine");
        out.bulk(b"LUA");
        out.bulk(b"functions");
        out.array(l.functions.len());
        let mut fns: Vec<&FunctionInfo> = l.functions.iter().collect();
        fns.sort_by(|a, b| a.name.cmp(&b.name));
        for f in fns {
            out.map(3);
            out.bulk(b"name");
            out.bulk(f.name.as_bytes());
            out.bulk(b"description");
            match &f.description {
                Some(d) => out.bulk(d),
                None => out.null(),
            }
            out.bulk(b"flags");
            let names: Vec<&str> =
                ScriptFlags::NAMES.iter().filter(|(_, fl)| f.flags.has(*fl)).map(|(n, _)| *n).collect();
            out.set(names.len());
            for n in names {
                out.simple(n);
            }
        }
        if with_code {
            out.bulk(b"library_code");
            out.bulk(&l.code);
        }
    }
}

/// FUNCTION STATS
pub fn function_stats(ctx: &mut Ctx, _args: &Args) {
    stats(ctx.out);
}

/// FUNCTION STATS' reply; it needs no keyspace, so a busy script's thread answers it
/// from its Lua hook too.
pub fn stats(out: &mut ferrokv_resp::ReplyBuf) {
    let (libs, fns) = counts();
    out.map(2);
    out.bulk(b"running_script");
    match running::running_function() {
        None => out.null(),
        Some((name, command, ms)) => {
            out.map(3);
            out.bulk(b"name");
            out.bulk(name.as_bytes());
            out.bulk(b"command");
            out.array(command.len());
            for a in &command {
                out.bulk(a);
            }
            out.bulk(b"duration_ms");
            out.integer(ms as i64);
        }
    }
    out.bulk(b"engines");
    out.map(1);
    out.bulk(b"LUA");
    out.map(2);
    out.bulk(b"libraries_count");
    out.integer(libs as i64);
    out.bulk(b"functions_count");
    out.integer(fns as i64);
}

/// FUNCTION DUMP: the libraries as FUNCTION2 records in a DUMP-style payload.
pub fn function_dump(ctx: &mut Ctx, _args: &Args) {
    let codes = all_codes();
    let compress = ctx.cfg.rdb_compression;
    let payload = ferrokv_rdb::dump::payload(|out| {
        for c in &codes {
            out.push(ferrokv_rdb::file::OPCODE_FUNCTION2);
            ferrokv_rdb::encoding::write_string_compressed(out, c, compress);
        }
    });
    ctx.out.bulk(&payload)
}

/// FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE]
pub fn function_restore(ctx: &mut Ctx, args: &Args) {
    #[derive(PartialEq)]
    enum Policy {
        Flush,
        Append,
        Replace,
    }
    let policy = match args.len() {
        3 => Policy::Append,
        4 => match args.get(3).to_ascii_lowercase().as_slice() {
            b"flush" => Policy::Flush,
            b"append" => Policy::Append,
            b"replace" => Policy::Replace,
            _ => {
                return ctx
                    .out
                    .error("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.")
            }
        },
        _ => return subcommand_syntax_error(ctx, args),
    };
    let Ok(body) = ferrokv_rdb::dump::verify(args.get(2)) else {
        return ctx.out.error("ERR DUMP payload version or checksum are wrong");
    };
    let mut codes = Vec::new();
    let mut r = ferrokv_rdb::encoding::Reader::new(body);
    while r.remaining() > 0 {
        match r.byte() {
            Ok(ferrokv_rdb::file::OPCODE_FUNCTION2) => match r.string() {
                Ok(code) => codes.push(code),
                Err(_) => return ctx.out.error("ERR failed loading the given functions payload"),
            },
            Ok(_) => return ctx.out.error("ERR given type is not a function"),
            Err(_) => return ctx.out.error("ERR can not read data type"),
        }
    }
    // Built aside, then swapped in: a failure leaves the libraries as they were.
    let saved = std::mem::take(&mut *lock());
    if policy != Policy::Flush {
        *lock() = Registry { libs: saved.libs.clone(), functions: saved.functions.clone() };
    }
    for code in &codes {
        if policy == Policy::Append {
            if let Ok((_, name)) = metadata(code) {
                if saved.libs.contains_key(&name) {
                    *lock() = saved;
                    return ctx.out.error(&format!("ERR Library {name} already exists"));
                }
            }
        }
        if let Err(e) = load(code, policy == Policy::Replace) {
            *lock() = saved;
            return ctx.out.error(&format!("ERR {e}"));
        }
    }
    ctx.dirty += 1;
    ctx.out.ok()
}

const FUNCTION_HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
];

/// FUNCTION HELP
pub fn function_help(ctx: &mut Ctx, _args: &Args) {
    ctx.out.array(FUNCTION_HELP.len());
    for l in FUNCTION_HELP {
        ctx.out.simple(l);
    }
}
