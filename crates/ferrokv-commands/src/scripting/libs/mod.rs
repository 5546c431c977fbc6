//! The libraries Redis loads into its Lua state, written in Rust (mlua ships none of
//! them): `bit` (LuaBitOp), `cjson`, `cmsgpack`, `struct`. Each is checked against
//! redis-server 7.0.15's outputs in its tests and in tests/tests/scripting.rs.

pub mod bit;
pub mod cjson;
pub mod cmsgpack;
pub mod structlib;

use mlua::{FromLuaMulti, Function, IntoLuaMulti, Lua, Table};

/// An error a library function raised, already carrying the position `luaL_error` gives
/// it: the calling Lua function's `source:line: ` (nothing when a C function such as
/// `pcall` called it). The error handler takes it as it is; `pcall` returns its text.
#[derive(Debug)]
pub struct Positioned(pub String);

impl std::fmt::Display for Positioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Positioned {}

/// A library function: its errors (raised as `RuntimeError` with the C library's text)
/// get the position luaL_error would give them, so that `pcall(function() ...
/// cjson.decode(x) ... end)` returns `user_script:N: ...` as in Redis.
pub(crate) fn function<A, R, F>(lua: &Lua, f: F) -> mlua::Result<Function>
where
    A: FromLuaMulti,
    R: IntoLuaMulti,
    F: Fn(&Lua, A) -> mlua::Result<R> + 'static,
{
    lua.create_function(move |lua, a: A| {
        f(lua, a).map_err(|e| match e {
            mlua::Error::RuntimeError(m) => {
                let at = lua.inspect_stack(1, |d| {
                    let s = d.source();
                    (s.what != "C")
                        .then(|| format!("{}:{}: ", s.short_src.unwrap_or_default(), d.current_line().unwrap_or(0)))
                });
                mlua::Error::external(Positioned(format!("{}{m}", at.flatten().unwrap_or_default())))
            }
            other => other,
        })
    })
}

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

/// The tables a decoder (cmsgpack, cjson) is filling, innermost last, so that it reads
/// nested input in a loop instead of by recursion (a deep input would overflow the
/// thread's stack). Only the innermost table and its pending key are held as mlua
/// values; the outer ones wait in one Lua table (`spill`, slots 2d-1 and 2d for depth
/// d), because every value mlua holds takes a slot of its reference stack, which has
/// room for about 8000, and nesting may go deeper.
#[derive(Default)]
pub(crate) struct Nest {
    /// Per open table: an array's next index (0 for a map), whether a map's key waits.
    open: Vec<(usize, bool)>,
    table: Option<Table>,
    key: Option<mlua::Value>,
    spill: Option<Table>,
}

impl Nest {
    /// Whether the innermost table is an array (None: no table is open).
    pub fn in_array(&self) -> Option<bool> {
        self.open.last().map(|&(index, _)| index > 0)
    }

    /// Opens a table inside the innermost one.
    pub fn push(&mut self, lua: &Lua, array: bool) -> mlua::Result<()> {
        if let Some(outer) = self.table.take() {
            let d = self.open.len();
            let spill = match &self.spill {
                Some(t) => t,
                None => self.spill.insert(lua.create_table()?),
            };
            spill.raw_set(2 * d - 1, outer)?;
            if let Some(k) = self.key.take() {
                spill.raw_set(2 * d, k)?;
            }
        }
        self.table = Some(lua.create_table()?);
        self.open.push((usize::from(array), false));
        Ok(())
    }

    /// Stores `v` in the innermost table: an array's next element, a map's key, or the
    /// value of the key before it. Returns false for a key (the map wants its value).
    pub fn put(&mut self, v: mlua::Value) -> mlua::Result<bool> {
        let (Some((index, keyed)), Some(table)) = (self.open.last_mut(), &self.table) else {
            return Ok(true);
        };
        if *index > 0 {
            table.raw_set(*index, v)?;
            *index += 1;
        } else if *keyed {
            *keyed = false;
            match self.key.take() {
                None | Some(mlua::Value::Nil) => return Err(mlua::Error::RuntimeError("table index is nil".into())),
                Some(mlua::Value::Number(x)) if x.is_nan() => {
                    return Err(mlua::Error::RuntimeError("table index is NaN".into()))
                }
                Some(k) => table.raw_set(k, v)?,
            }
        } else {
            self.key = Some(v);
            *keyed = true;
            return Ok(false);
        }
        Ok(true)
    }

    /// Closes the innermost table and returns it; its parent becomes the innermost.
    pub fn pop(&mut self) -> mlua::Result<Option<Table>> {
        let done = self.table.take();
        self.open.pop();
        if let (Some(&(_, keyed)), Some(spill)) = (self.open.last(), &self.spill) {
            let d = self.open.len();
            self.table = Some(spill.raw_get(2 * d - 1)?);
            if keyed {
                self.key = Some(spill.raw_get(2 * d)?);
            }
        }
        Ok(done)
    }
}
