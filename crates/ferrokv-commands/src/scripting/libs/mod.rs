//! The libraries Redis loads into its Lua state, written in Rust (mlua ships none of
//! them): `bit` (LuaBitOp), `cjson`, `cmsgpack`, `struct`. Each is checked against
//! redis-server 7.0.15's outputs in its tests and in tests/tests/scripting.rs.

pub mod bit;
pub mod cjson;
pub mod cmsgpack;
pub mod structlib;

use mlua::{Lua, Table};

pub fn register(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    globals.raw_set("bit", bit::table(lua)?)?;
    globals.raw_set("cjson", cjson::table(lua)?)?;
    globals.raw_set("cmsgpack", cmsgpack::table(lua)?)?;
    globals.raw_set("struct", structlib::table(lua)?)?;
    Ok(())
}

/// A Lua number argument as f64, with Lua's string coercion; the error names the
/// function and argument as luaL_checknumber does.
pub(crate) fn number_arg(v: &mlua::Value, n: usize, fname: &str) -> mlua::Result<f64> {
    match v {
        mlua::Value::Number(x) => Ok(*x),
        mlua::Value::Integer(x) => Ok(*x as f64),
        mlua::Value::String(s) => {
            s.to_str().ok().and_then(|s| parse_lua_number(&s)).ok_or_else(|| bad_arg(n, fname, "number", v))
        }
        _ => Err(bad_arg(n, fname, "number", v)),
    }
}

/// Lua 5.1's `lua_str2number` (decimal or hex, surrounding spaces allowed).
pub(crate) fn parse_lua_number(s: &str) -> Option<f64> {
    let t = s.trim();
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).ok().map(|v| v as f64);
    }
    if t.is_empty() || t.eq_ignore_ascii_case("inf") || t.eq_ignore_ascii_case("nan") || t.contains("inity") {
        return None;
    }
    t.parse::<f64>().ok()
}

/// luaL_typerror's message: `bad argument #n to 'f' (number expected, got nil)`.
pub(crate) fn bad_arg(n: usize, fname: &str, expected: &str, got: &mlua::Value) -> mlua::Error {
    let got = match got {
        mlua::Value::Nil => "no value",
        other => other.type_name(),
    };
    mlua::Error::RuntimeError(format!("bad argument #{n} to '{fname}' ({expected} expected, got {got})"))
}

/// `luaL_checklstring`: a string, or a number as Lua writes it (`%.14g`).
pub(crate) fn string_arg(args: &mlua::MultiValue, n: usize, fname: &str) -> mlua::Result<Vec<u8>> {
    match args.get(n - 1) {
        Some(mlua::Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(mlua::Value::Number(x)) => Ok(ferrokv_resp::reply::format_g(*x, 14).into_bytes()),
        Some(mlua::Value::Integer(x)) => Ok(ferrokv_resp::reply::format_g(*x as f64, 14).into_bytes()),
        other => Err(bad_arg(n, fname, "string", other.unwrap_or(&mlua::Value::Nil))),
    }
}
