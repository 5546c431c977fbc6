//! The `redis` table scripts see (besides `call`/`pcall`, defined with the sandbox in
//! `engine.rs`) and Redis's replacements of `math.random`/`math.randomseed`.

use super::call::error_table;
use super::engine::{lrand48, srand48, RunState};
use mlua::{Lua, MultiValue, Table, Value};
use std::rc::Rc;

/// Redis 7.0.15, whose scripting this is.
pub const REDIS_VERSION: &str = "7.0.15";
pub const REDIS_VERSION_NUM: i64 = 0x0007_000f;

/// The error a `redis` API function raises: Redis's `luaPushError` + `luaError`.
fn raise(msg: &str) -> mlua::Error {
    mlua::Error::external(super::call::Raised::new(super::call::error_line(msg)))
}

pub fn register(lua: &Lua, globals: &Table, state: &Rc<RunState>) -> mlua::Result<()> {
    let redis = lua.create_table()?;
    redis.raw_set(
        "sha1hex",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(raise("wrong number of arguments"));
            }
            let bytes = match &args[0] {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Number(n) => ferrokv_resp::reply::format_g(*n, 14).into_bytes(),
                Value::Integer(n) => n.to_string().into_bytes(),
                _ => Vec::new(),
            };
            lua.create_string(super::sha1::sha1_hex(&bytes))
        })?,
    )?;
    redis.raw_set(
        "error_reply",
        lua.create_function(|lua, args: MultiValue| match (args.len(), args.front()) {
            (1, Some(Value::String(s))) => {
                let s = s.to_string_lossy();
                let with_dash = if s.starts_with('-') { s } else { format!("-{s}") };
                error_table(lua, &with_dash)
            }
            _ => error_table(lua, "wrong number or type of arguments"),
        })?,
    )?;
    redis.raw_set(
        "status_reply",
        lua.create_function(|lua, args: MultiValue| match (args.len(), args.front()) {
            (1, Some(Value::String(s))) => {
                let t = lua.create_table()?;
                t.raw_set("ok", s.clone())?;
                Ok(Value::Table(t))
            }
            _ => error_table(lua, "wrong number or type of arguments"),
        })?,
    )?;
    redis.raw_set(
        "log",
        lua.create_function(|_, args: MultiValue| {
            if args.len() < 2 {
                return Err(raise("redis.log() requires two arguments or more."));
            }
            let level = match &args[0] {
                Value::Number(n) => *n as i64,
                Value::Integer(n) => *n,
                Value::String(s) => match s.to_str().ok().and_then(|s| s.trim().parse::<f64>().ok()) {
                    Some(n) => n as i64,
                    None => return Err(raise("First argument must be a number (log level).")),
                },
                _ => return Err(raise("First argument must be a number (log level).")),
            };
            if !(0..=3).contains(&level) {
                return Err(raise("Invalid debug level."));
            }
            let mut msg = String::new();
            for (i, a) in args.iter().skip(1).enumerate() {
                let s = match a {
                    Value::String(s) => s.to_string_lossy(),
                    Value::Number(n) => ferrokv_resp::reply::format_g(*n, 14),
                    Value::Integer(n) => n.to_string(),
                    _ => continue,
                };
                if i > 0 {
                    msg.push(' ');
                }
                msg.push_str(&s);
            }
            (super::hooks().log)(level as u8, &msg);
            Ok(())
        })?,
    )?;
    let st = state.clone();
    redis.raw_set(
        "setresp",
        lua.create_function(move |_, args: MultiValue| {
            if args.len() != 1 {
                return Err(raise("redis.setresp() requires one argument."));
            }
            let n = match &args[0] {
                Value::Number(n) => *n as i64,
                Value::Integer(n) => *n,
                _ => 0,
            };
            if n != 2 && n != 3 {
                return Err(raise("RESP version must be 2 or 3."));
            }
            st.resp.set(n as u8);
            Ok(())
        })?,
    )?;
    let st = state.clone();
    redis.raw_set(
        "set_repl",
        lua.create_function(move |_, args: MultiValue| {
            if args.len() != 1 {
                return Err(raise("redis.set_repl() requires two arguments."));
            }
            let n = match &args[0] {
                Value::Number(n) => *n as i64,
                Value::Integer(n) => *n,
                _ => 0,
            };
            if n & !3 != 0 {
                return Err(raise("Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE."));
            }
            st.repl.set(n as u8);
            Ok(())
        })?,
    )?;
    redis.raw_set(
        "acl_check_cmd",
        lua.create_function(|_, args: MultiValue| {
            let name = match args.front() {
                Some(Value::String(s)) => s.as_bytes().to_vec(),
                None => return Err(raise("Please specify at least one argument for this redis lib call")),
                _ => Vec::new(),
            };
            match crate::table::lookup(&name) {
                // ferrokv has no ACL users: the default user may run every command.
                Some(_) => Ok(true),
                None => Err(raise("Invalid command passed to redis.acl_check_cmd()")),
            }
        })?,
    )?;
    // SAFETY: both follow the C function protocol (see `call::serve`).
    redis.raw_set("call", unsafe { lua.create_c_function(super::call::redis_call)? })?;
    redis.raw_set("pcall", unsafe { lua.create_c_function(super::call::redis_pcall)? })?;
    redis.raw_set("replicate_commands", lua.create_function(|_, _: MultiValue| Ok(true))?)?;
    redis.raw_set("breakpoint", lua.create_function(|_, _: MultiValue| Ok(false))?)?;
    redis.raw_set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    for (k, v) in [("LOG_DEBUG", 0), ("LOG_VERBOSE", 1), ("LOG_NOTICE", 2), ("LOG_WARNING", 3)] {
        redis.raw_set(k, v as f64)?;
    }
    for (k, v) in [("REPL_NONE", 0), ("REPL_AOF", 1), ("REPL_SLAVE", 2), ("REPL_REPLICA", 2), ("REPL_ALL", 3)] {
        redis.raw_set(k, v as f64)?;
    }
    redis.raw_set("REDIS_VERSION", REDIS_VERSION)?;
    redis.raw_set("REDIS_VERSION_NUM", REDIS_VERSION_NUM as f64)?;
    globals.raw_set("redis", redis.clone())?;
    let math: Table = globals.get("math")?;
    let st = state.clone();
    math.raw_set(
        "random",
        lua.create_function(move |_, args: MultiValue| {
            let r = (lrand48(&st.rand) as i64 % i32::MAX as i64) as f64 / i32::MAX as f64;
            let int = |v: &Value| -> mlua::Result<i64> {
                match v {
                    Value::Number(n) => Ok(*n as i64),
                    Value::Integer(n) => Ok(*n),
                    Value::String(s) => {
                        s.to_str().ok().and_then(|s| s.trim().parse::<f64>().ok()).map(|n| n as i64).ok_or_else(|| {
                            mlua::Error::RuntimeError("bad argument #1 to 'random' (number expected)".into())
                        })
                    }
                    _ => Err(mlua::Error::RuntimeError("bad argument #1 to 'random' (number expected)".into())),
                }
            };
            match args.len() {
                0 => Ok(r),
                1 => {
                    let u = int(&args[0])?;
                    if u < 1 {
                        return Err(mlua::Error::RuntimeError(
                            "bad argument #1 to 'random' (interval is empty)".into(),
                        ));
                    }
                    Ok((r * u as f64).floor() + 1.0)
                }
                2 => {
                    let (l, u) = (int(&args[0])?, int(&args[1])?);
                    if l > u {
                        return Err(mlua::Error::RuntimeError(
                            "bad argument #2 to 'random' (interval is empty)".into(),
                        ));
                    }
                    Ok((r * (u - l + 1) as f64).floor() + l as f64)
                }
                _ => Err(mlua::Error::RuntimeError("wrong number of arguments".into())),
            }
        })?,
    )?;
    let st = state.clone();
    math.raw_set(
        "randomseed",
        lua.create_function(move |_, seed: f64| {
            srand48(&st.rand, seed as i64 as i32);
            Ok(())
        })?,
    )?;
    Ok(())
}
