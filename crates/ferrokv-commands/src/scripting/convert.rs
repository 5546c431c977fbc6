//! Conversions between replies and Lua values, both ways, as Redis 7.0 does them.
//!
//! Reply → Lua (`redis.call`'s result): integer → number, bulk → string, null bulk and
//! null array → false, status → `{ok=...}`, error → `{err=...}`, array → table;
//! RESP3 (after `redis.setresp(3)`): map → `{map={...}}`, set → `{set={k=true}}`,
//! null → nil, boolean → boolean, double → `{double=n}`, big number →
//! `{big_number=s}`, verbatim → `{verbatim_string={format=..., string=...}}`.
//!
//! Lua → reply (the script's return value): string → bulk, number → integer
//! (truncated), boolean → `:1`/null (RESP2 scripts) or a RESP3 boolean, a table with
//! `err`/`ok`/`double`/`big_number`/`verbatim_string`/`map`/`set` → that reply,
//! another table → an array up to its first nil, anything else → null.

use ferrokv_resp::value::{parse_value, Value as Reply};
use ferrokv_resp::ReplyBuf;
use mlua::{ffi, Lua, Table, Value};

/// The Lua value of an encoded reply.
pub fn reply_to_lua(lua: &Lua, buf: &[u8]) -> mlua::Result<Value> {
    match parse_value(buf) {
        Ok(Some((v, _))) => to_lua(lua, &v),
        _ => Ok(Value::Nil),
    }
}

/// Pushes the Lua value of an encoded reply (one the server wrote) onto `state`'s
/// stack, as [`reply_to_lua`] builds it: `redis.call`'s fast path. Integers and bulk
/// strings, most replies, are read in place; the rest goes through the parsed value.
///
/// SAFETY: needs 3 free stack slots (nested values check for more).
pub(crate) unsafe fn push_reply(state: *mut ffi::lua_State, buf: &[u8]) {
    let line_end = buf.windows(2).position(|w| w == b"\r\n");
    let (kind, line) = match (buf.first(), line_end) {
        (Some(&k), Some(e)) => (k, &buf[1..e]),
        _ => return ffi::lua_pushnil(state),
    };
    let number = || std::str::from_utf8(line).ok().and_then(|s| s.parse::<i64>().ok());
    match kind {
        b':' => {
            if let Some(n) = number() {
                return ffi::lua_pushnumber(state, n as f64);
            }
        }
        b'$' => match number() {
            Some(-1) => return ffi::lua_pushboolean(state, 0),
            Some(n) if n >= 0 => {
                let start = line.len() + 3;
                if let Some(body) = buf.get(start..start + n as usize) {
                    ffi::lua_pushlstring(state, body.as_ptr() as *const _, body.len());
                    return;
                }
            }
            _ => {}
        },
        _ => {}
    }
    match parse_value(buf) {
        Ok(Some((v, _))) => push_value(state, &v),
        _ => ffi::lua_pushnil(state),
    }
}

/// Pushes [`to_lua`]'s value of `v`.
///
/// SAFETY: as [`push_reply`].
unsafe fn push_value(state: *mut ffi::lua_State, v: &Reply) {
    let push_str = |s: &[u8]| {
        ffi::lua_pushlstring(state, s.as_ptr() as *const _, s.len());
    };
    // `{field = <value on top>}`
    let wrap = |field: &str| {
        ffi::lua_createtable(state, 0, 1);
        ffi::lua_insert(state, -2);
        push_str(field.as_bytes());
        ffi::lua_insert(state, -2);
        ffi::lua_rawset(state, -3);
    };
    match v {
        Reply::Int(n) => ffi::lua_pushnumber(state, *n as f64),
        Reply::Bulk(b) => push_str(b),
        Reply::Nil | Reply::NilArray => ffi::lua_pushboolean(state, 0),
        Reply::Simple(s) => {
            push_str(s.as_bytes());
            wrap("ok");
        }
        Reply::Error(e) => super::call::push_error(state, &format!("-{e}"), true),
        Reply::Array(items) | Reply::Push(items) => {
            ffi::lua_createtable(state, items.len().min(1 << 20) as i32, 0);
            if ffi::lua_checkstack(state, 4) == 0 {
                return;
            }
            for (i, x) in items.iter().enumerate() {
                push_value(state, x);
                ffi::lua_rawseti(state, -2, (i + 1) as _);
            }
        }
        Reply::Map(pairs) => {
            ffi::lua_createtable(state, 0, 0);
            if ffi::lua_checkstack(state, 6) == 0 {
                return wrap("map");
            }
            for (k, x) in pairs {
                push_value(state, k);
                if settable_key(state) {
                    push_value(state, x);
                    ffi::lua_rawset(state, -3);
                } else {
                    ffi::lua_pop(state, 1);
                }
            }
            wrap("map");
        }
        Reply::Set(items) => {
            ffi::lua_createtable(state, 0, 0);
            if ffi::lua_checkstack(state, 6) == 0 {
                return wrap("set");
            }
            for x in items {
                push_value(state, x);
                if settable_key(state) {
                    ffi::lua_pushboolean(state, 1);
                    ffi::lua_rawset(state, -3);
                } else {
                    ffi::lua_pop(state, 1);
                }
            }
            wrap("set");
        }
        Reply::Null => ffi::lua_pushnil(state),
        Reply::Bool(b) => ffi::lua_pushboolean(state, *b as i32),
        Reply::Double(d) => {
            ffi::lua_pushnumber(state, *d);
            wrap("double");
        }
        Reply::BigNumber(s) => {
            push_str(s.as_bytes());
            wrap("big_number");
        }
        Reply::Verbatim { format, text } => {
            ffi::lua_createtable(state, 0, 2);
            push_str(b"string");
            push_str(text);
            ffi::lua_rawset(state, -3);
            push_str(b"format");
            push_str(format.as_bytes());
            ffi::lua_rawset(state, -3);
            wrap("verbatim_string");
        }
    }
}

/// Whether the value on top of the stack can be a table key (not nil, not NaN), which
/// `lua_rawset` would otherwise raise an error for.
unsafe fn settable_key(state: *mut ffi::lua_State) -> bool {
    match ffi::lua_type(state, -1) {
        ffi::LUA_TNIL => false,
        ffi::LUA_TNUMBER => !ffi::lua_tonumber(state, -1).is_nan(),
        _ => true,
    }
}

fn to_lua(lua: &Lua, v: &Reply) -> mlua::Result<Value> {
    Ok(match v {
        Reply::Int(n) => Value::Number(*n as f64),
        Reply::Bulk(b) => Value::String(lua.create_string(b)?),
        Reply::Nil | Reply::NilArray => Value::Boolean(false),
        Reply::Simple(s) => single(lua, "ok", Value::String(lua.create_string(s)?))?,
        Reply::Error(e) => super::call::counted_error_table(lua, &format!("-{e}"))?,
        Reply::Array(items) | Reply::Push(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, x) in items.iter().enumerate() {
                t.raw_seti(i + 1, to_lua(lua, x)?)?;
            }
            Value::Table(t)
        }
        Reply::Map(pairs) => {
            let m = lua.create_table()?;
            for (k, x) in pairs {
                m.raw_set(to_lua(lua, k)?, to_lua(lua, x)?)?;
            }
            single(lua, "map", Value::Table(m))?
        }
        Reply::Set(items) => {
            let m = lua.create_table()?;
            for x in items {
                m.raw_set(to_lua(lua, x)?, true)?;
            }
            single(lua, "set", Value::Table(m))?
        }
        Reply::Null => Value::Nil,
        Reply::Bool(b) => Value::Boolean(*b),
        Reply::Double(d) => single(lua, "double", Value::Number(*d))?,
        Reply::BigNumber(s) => single(lua, "big_number", Value::String(lua.create_string(s)?))?,
        Reply::Verbatim { format, text } => {
            let t = lua.create_table()?;
            t.raw_set("string", lua.create_string(text)?)?;
            t.raw_set("format", lua.create_string(format)?)?;
            single(lua, "verbatim_string", Value::Table(t))?
        }
    })
}

fn single(lua: &Lua, field: &str, v: Value) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set(field, v)?;
    Ok(Value::Table(t))
}

/// Nesting deeper than this replies an error instead of recursing on (a table may
/// contain itself).
const MAX_DEPTH: usize = 1000;

/// Writes the script's return value `v` as a reply. `script_resp` is the protocol the
/// script chose with `redis.setresp` (it decides how booleans come out).
pub fn lua_to_reply(v: &Value, script_resp: u8, out: &mut ReplyBuf) {
    write(v, script_resp, out, 0)
}

fn write(v: &Value, resp: u8, out: &mut ReplyBuf, depth: usize) {
    if depth > MAX_DEPTH {
        out.error("ERR reached lua stack limit");
        return;
    }
    match v {
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Boolean(b) => {
            if resp == 2 {
                if *b {
                    out.integer(1)
                } else {
                    out.null()
                }
            } else {
                out.boolean(*b)
            }
        }
        Value::Integer(i) => out.integer(*i),
        Value::Number(n) => out.integer(number_to_i64(*n)),
        Value::Table(t) => write_table(t, resp, out, depth),
        _ => out.null(),
    }
}

/// C's `(long long)` cast of a Lua number (saturating where C's is undefined).
pub fn number_to_i64(n: f64) -> i64 {
    // x86's conversion answers i64::MIN for NaN and out-of-range values.
    if n.is_nan() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

fn write_table(t: &Table, resp: u8, out: &mut ReplyBuf, depth: usize) {
    if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
        out.error(&e.to_string_lossy());
        return;
    }
    if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
        out.simple(&s.to_string_lossy().replace(['\r', '\n'], " "));
        return;
    }
    match t.raw_get::<Value>("double") {
        Ok(Value::Number(d)) => return out.double(d),
        Ok(Value::Integer(d)) => return out.double(d as f64),
        _ => {}
    }
    if let Ok(Value::String(s)) = t.raw_get::<Value>("big_number") {
        let s = s.to_string_lossy().replace(['\r', '\n'], " ");
        if out.resp3() {
            out.raw(format!("({s}\r\n").as_bytes());
        } else {
            out.bulk(s.as_bytes());
        }
        return;
    }
    if let Ok(Value::Table(vt)) = t.raw_get::<Value>("verbatim_string") {
        if let (Ok(Value::String(f)), Ok(Value::String(s))) =
            (vt.raw_get::<Value>("format"), vt.raw_get::<Value>("string"))
        {
            let (f, s) = (f.as_bytes(), s.as_bytes());
            if out.resp3() {
                let fmt = &f[..f.len().min(3)];
                out.raw(format!("={}\r\n", s.len() + 4).as_bytes());
                out.raw(fmt);
                out.raw(b":");
                out.raw(&s);
                out.raw(b"\r\n");
            } else {
                out.bulk(&s);
            }
            return;
        }
    }
    if let Ok(Value::Table(m)) = t.raw_get::<Value>("map") {
        let pairs: Vec<(Value, Value)> = m.pairs::<Value, Value>().filter_map(Result::ok).collect();
        out.map(pairs.len());
        for (k, v) in &pairs {
            write(k, resp, out, depth + 1);
            write(v, resp, out, depth + 1);
        }
        return;
    }
    if let Ok(Value::Table(s)) = t.raw_get::<Value>("set") {
        let keys: Vec<Value> = s.pairs::<Value, Value>().filter_map(Result::ok).map(|(k, _)| k).collect();
        out.set(keys.len());
        for k in &keys {
            write(k, resp, out, depth + 1);
        }
        return;
    }
    let mut items = Vec::new();
    loop {
        match t.raw_get::<Value>(items.len() + 1) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(v),
        }
    }
    out.array(items.len());
    for v in &items {
        write(v, resp, out, depth + 1);
    }
}

/// The error reply of a failed run: Redis's `-<err> script: <name>, on <source>:<line>.`
/// from the error table the handler built (source and line when it found them).
pub fn error_reply_text(v: &Value, name: &str) -> String {
    let Value::Table(t) = v else {
        return format!("ERR Error running script {name}, execution failure");
    };
    let msg = match t.raw_get::<Value>("err") {
        Ok(Value::String(s)) => s.to_string_lossy(),
        Ok(Value::Number(n)) => ferrokv_resp::reply::format_g(n, 14),
        Ok(Value::Integer(n)) => n.to_string(),
        _ => "ERR unknown error".into(),
    };
    let source = match t.raw_get::<Value>("source") {
        Ok(Value::String(s)) => Some(s.to_string_lossy()),
        _ => None,
    };
    let line = match t.raw_get::<Value>("line") {
        Ok(Value::Integer(n)) => Some(n.to_string()),
        Ok(Value::Number(n)) => Some((n as i64).to_string()),
        Ok(Value::String(s)) => Some(s.to_string_lossy()),
        _ => None,
    };
    match (source, line) {
        (Some(s), Some(l)) => format!("{msg} script: {name}, on {s}:{l}."),
        _ => msg,
    }
}
