//! `cjson`: lua-cjson 2.1.0 as Redis 7.0 bundles it. `encode` turns a Lua value into
//! JSON (a table is an array when its keys are the integers 1..n and not excessively
//! sparse, else an object; numbers as `%.14g`; `/` escaped as lua-cjson does),
//! `decode` parses JSON (null is `cjson.null`, a NULL light userdata), with
//! lua-cjson's error texts and nesting limits. The configuration functions keep their
//! settings for the life of the Lua state, as in Redis.

use super::{number_arg, Nest};
use mlua::{ffi, LightUserData, Lua, MultiValue, Table, Value};
use std::cell::Cell;
use std::rc::Rc;

struct Config {
    sparse_convert: Cell<bool>,
    sparse_ratio: Cell<i64>,
    sparse_safe: Cell<i64>,
    encode_max_depth: Cell<i64>,
    decode_max_depth: Cell<i64>,
    precision: Cell<i64>,
    encode_invalid: Cell<u8>,
    decode_invalid: Cell<bool>,
    keep_buffer: Cell<bool>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sparse_convert: Cell::new(false),
            sparse_ratio: Cell::new(2),
            sparse_safe: Cell::new(10),
            encode_max_depth: Cell::new(1000),
            decode_max_depth: Cell::new(1000),
            precision: Cell::new(14),
            encode_invalid: Cell::new(0),
            decode_invalid: Cell::new(true),
            keep_buffer: Cell::new(true),
        }
    }
}

fn err(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let cfg = Rc::new(Config::default());
    let t = lua.create_table()?;
    let c = cfg.clone();
    t.raw_set(
        "encode",
        super::function(lua, move |lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(err("bad argument #1 to 'encode' (expected 1 argument)"));
            }
            let mut out = Vec::new();
            let mut result = Ok(());
            // SAFETY: exec_raw calls the closure in a C frame holding just the value
            // (`encode`'s precondition) and pops what it leaves.
            unsafe { lua.exec_raw::<()>(&args[0], |l| result = encode(l, &c, &mut out))? };
            result.map_err(err)?;
            lua.create_string(out)
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "decode",
        super::function(lua, move |lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(err("bad argument #1 to 'decode' (expected 1 argument)"));
            }
            let bytes = match &args[0] {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Number(n) => ferrokv_resp::reply::format_g(*n, 14).into_bytes(),
                Value::Integer(n) => n.to_string().into_bytes(),
                other => return Err(super::bad_arg(1, "decode", "string", other)),
            };
            if bytes.len() >= 2 && (bytes[0] == 0 || bytes[1] == 0) {
                return Err(err("JSON parser does not support UTF-16 or UTF-32"));
            }
            let mut p = Parser { lua, data: &bytes, pos: 0, depth: 0, slots: 1, cfg: &c };
            let tok = p.next_token();
            let v = p.value(tok)?;
            let tok = p.next_token();
            if !matches!(tok.kind, Kind::End) {
                return Err(p.expected("the end", &tok));
            }
            Ok(v)
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "encode_max_depth",
        super::function(lua, move |_, a: MultiValue| {
            int_option(&a, &c.encode_max_depth, 1, i32::MAX as i64, "encode_max_depth")
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "decode_max_depth",
        super::function(lua, move |_, a: MultiValue| {
            int_option(&a, &c.decode_max_depth, 1, i32::MAX as i64, "decode_max_depth")
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "encode_number_precision",
        super::function(lua, move |_, a: MultiValue| int_option(&a, &c.precision, 1, 14, "encode_number_precision"))?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "encode_keep_buffer",
        super::function(lua, move |_, a: MultiValue| bool_option(&a, &c.keep_buffer, "encode_keep_buffer"))?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "decode_invalid_numbers",
        super::function(lua, move |_, a: MultiValue| bool_option(&a, &c.decode_invalid, "decode_invalid_numbers"))?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "encode_invalid_numbers",
        super::function(lua, move |lua, a: MultiValue| {
            if a.len() > 1 {
                return Err(err("bad argument #2 to 'encode_invalid_numbers' (found too many arguments)"));
            }
            match a.front() {
                None | Some(Value::Nil) => {}
                Some(Value::Boolean(b)) => c.encode_invalid.set(*b as u8),
                Some(Value::String(s)) if &*s.as_bytes() == b"null" => c.encode_invalid.set(2),
                Some(Value::String(s)) if &*s.as_bytes() == b"on" => c.encode_invalid.set(1),
                Some(Value::String(s)) if &*s.as_bytes() == b"off" => c.encode_invalid.set(0),
                Some(_) => return Err(err("bad argument #1 to 'encode_invalid_numbers' (invalid option)")),
            }
            Ok(match c.encode_invalid.get() {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                _ => Value::String(lua.create_string("null")?),
            })
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "encode_sparse_array",
        super::function(lua, move |_, a: MultiValue| {
            if a.len() > 3 {
                return Err(err("bad argument #4 to 'encode_sparse_array' (found too many arguments)"));
            }
            match a.front() {
                None | Some(Value::Nil) => {}
                Some(Value::Boolean(b)) => c.sparse_convert.set(*b),
                Some(_) => return Err(err("bad argument #1 to 'encode_sparse_array' (invalid option)")),
            }
            for (i, cell) in [(1, &c.sparse_ratio), (2, &c.sparse_safe)] {
                if let Some(v) = a.get(i).filter(|v| !v.is_nil()) {
                    let n = number_arg(v, i + 1, "encode_sparse_array")? as i64;
                    if !(0..=i32::MAX as i64).contains(&n) {
                        return Err(err(format!(
                            "bad argument #1 to 'encode_sparse_array' (expected integer between 0 and {})",
                            i32::MAX
                        )));
                    }
                    cell.set(n);
                }
            }
            Ok((c.sparse_convert.get(), c.sparse_ratio.get() as f64, c.sparse_safe.get() as f64))
        })?,
    )?;
    t.raw_set("new", super::function(lua, |lua, ()| table(lua))?)?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    t.raw_set("null", Value::LightUserData(LightUserData(std::ptr::null_mut())))?;
    Ok(t)
}

fn int_option(a: &MultiValue, cell: &Cell<i64>, min: i64, max: i64, name: &str) -> mlua::Result<f64> {
    if a.len() > 1 {
        return Err(err(format!("bad argument #2 to '{name}' (found too many arguments)")));
    }
    if let Some(v) = a.front().filter(|v| !v.is_nil()) {
        let n = number_arg(v, 1, name)? as i64;
        if n < min || n > max {
            return Err(err(format!("bad argument #1 to '{name}' (expected integer between {min} and {max})")));
        }
        cell.set(n);
    }
    Ok(cell.get() as f64)
}

fn bool_option(a: &MultiValue, cell: &Cell<bool>, name: &str) -> mlua::Result<bool> {
    if a.len() > 1 {
        return Err(err(format!("bad argument #2 to '{name}' (found too many arguments)")));
    }
    match a.front() {
        None | Some(Value::Nil) => {}
        Some(Value::Boolean(b)) => cell.set(*b),
        Some(Value::String(s)) if &*s.as_bytes() == b"on" => cell.set(true),
        Some(Value::String(s)) if &*s.as_bytes() == b"off" => cell.set(false),
        Some(_) => return Err(err(format!("bad argument #1 to '{name}' (invalid option)"))),
    }
    Ok(cell.get())
}

fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\x08' => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\x0c' => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

fn encode_number(cfg: &Config, type_name: &str, n: f64, out: &mut Vec<u8>) -> Result<(), String> {
    if !n.is_finite() {
        match cfg.encode_invalid.get() {
            0 => return Err(format!("Cannot serialise {type_name}: must not be NaN or Inf")),
            1 if n.is_nan() => out.extend_from_slice(b"nan"),
            1 => out.extend_from_slice(if n > 0.0 { b"inf" } else { b"-inf" }),
            _ => out.extend_from_slice(b"null"),
        }
        return Ok(());
    }
    out.extend_from_slice(ferrokv_resp::reply::format_g(n, cfg.precision.get() as usize).as_bytes());
    Ok(())
}

/// `encode` as lua-cjson's `json_append_data` does it, on the Lua stack (the value to
/// encode at index 1 of a C frame, as in lua-cjson's `json_encode`): an array level
/// holds its table and the element being written, an object level its table, key and
/// value, and a table is entered only while `encode_max_depth` allows it and three
/// stack slots are free (`json_check_encode_depth`) — so nesting ends where Redis's
/// does (arrays at 7998 levels, objects at 4000 with the limit raised). The walk is a
/// loop with its own stack of levels, not a recursion: no depth reaches the thread's
/// stack. The error is lua-cjson's text.
///
/// SAFETY: `l` is a C frame whose top is the value; every call below either cannot
/// raise a Lua error or raises one only when Lua's allocator fails (out of memory).
/// Number keys are read with `lua_tonumber`, never converted in place (which would
/// break `lua_next`).
unsafe fn encode(l: *mut ffi::lua_State, cfg: &Config, out: &mut Vec<u8>) -> Result<(), String> {
    enum Level {
        /// The array's table on top; the next index to write, and its length.
        Array { next: i64, len: i64 },
        /// The object's table, then the key of the entry written last (nil first).
        Object { first: bool },
    }
    let mut levels: Vec<Level> = Vec::new();
    // The value on top: written, or entered (its level pushed; a table stays on the
    // stack until its level is done).
    let enter = |l: *mut ffi::lua_State, levels: &mut Vec<Level>, out: &mut Vec<u8>| -> Result<bool, String> {
        match ffi::lua_type(l, -1) {
            ffi::LUA_TSTRING => {
                let mut len = 0usize;
                let p = ffi::lua_tolstring(l, -1, &mut len);
                encode_string(std::slice::from_raw_parts(p as *const u8, len), out);
            }
            ffi::LUA_TNUMBER => encode_number(cfg, "number", ffi::lua_tonumber(l, -1), out)?,
            ffi::LUA_TBOOLEAN => out.extend_from_slice(if ffi::lua_toboolean(l, -1) != 0 { b"true" } else { b"false" }),
            ffi::LUA_TNIL => out.extend_from_slice(b"null"),
            ffi::LUA_TLIGHTUSERDATA if ffi::lua_touserdata(l, -1).is_null() => out.extend_from_slice(b"null"),
            ffi::LUA_TTABLE => {
                let depth = levels.len() as i64 + 1;
                if depth > cfg.encode_max_depth.get() || ffi::lua_checkstack(l, 3) == 0 {
                    return Err(format!("Cannot serialise, excessive nesting ({depth})"));
                }
                match array_length(l, cfg)? {
                    Some(len) if len > 0 => {
                        out.push(b'[');
                        levels.push(Level::Array { next: 1, len });
                    }
                    _ => {
                        out.push(b'{');
                        ffi::lua_pushnil(l);
                        levels.push(Level::Object { first: true });
                    }
                }
                return Ok(true);
            }
            t => {
                let name = std::ffi::CStr::from_ptr(ffi::lua_typename(l, t)).to_string_lossy();
                return Err(format!("Cannot serialise {name}: type not supported"));
            }
        }
        Ok(false)
    };
    if !enter(l, &mut levels, out)? {
        return Ok(());
    }
    while let Some(level) = levels.last_mut() {
        match level {
            Level::Array { next, len } => {
                if *next > *len {
                    out.push(b']');
                    levels.pop();
                    ffi::lua_pop(l, 1);
                    continue;
                }
                if *next > 1 {
                    out.push(b',');
                }
                ffi::lua_rawgeti(l, -1, *next as _);
                *next += 1;
            }
            Level::Object { first } => {
                if ffi::lua_next(l, -2) == 0 {
                    out.push(b'}');
                    levels.pop();
                    ffi::lua_pop(l, 1);
                    continue;
                }
                if !std::mem::replace(first, false) {
                    out.push(b',');
                }
                match ffi::lua_type(l, -2) {
                    ffi::LUA_TNUMBER => {
                        out.push(b'"');
                        encode_number(cfg, "number", ffi::lua_tonumber(l, -2), out)?;
                        out.extend_from_slice(b"\":");
                    }
                    ffi::LUA_TSTRING => {
                        let mut len = 0usize;
                        let p = ffi::lua_tolstring(l, -2, &mut len);
                        encode_string(std::slice::from_raw_parts(p as *const u8, len), out);
                        out.push(b':');
                    }
                    t => {
                        let name = std::ffi::CStr::from_ptr(ffi::lua_typename(l, t)).to_string_lossy();
                        return Err(format!("Cannot serialise {name}: table key must be a number or string"));
                    }
                }
            }
        }
        // The element or entry value is on top.
        if !enter(l, &mut levels, out)? {
            ffi::lua_pop(l, 1);
        }
    }
    Ok(())
}

/// lua-cjson's `lua_array_length` for the table on top: its length when its keys are
/// the integers 1..n (None: an object), with the sparse-array rule.
///
/// SAFETY: needs 2 free stack slots; leaves the stack as it found it.
unsafe fn array_length(l: *mut ffi::lua_State, cfg: &Config) -> Result<Option<i64>, String> {
    let (mut max, mut items) = (0f64, 0i64);
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, -2) != 0 {
        let k = if ffi::lua_type(l, -2) == ffi::LUA_TNUMBER { ffi::lua_tonumber(l, -2) } else { 0.0 };
        if k != 0.0 && k.floor() == k && k >= 1.0 {
            max = max.max(k);
            items += 1;
            ffi::lua_pop(l, 1);
            continue;
        }
        ffi::lua_pop(l, 2);
        return Ok(None);
    }
    if cfg.sparse_ratio.get() > 0 && max > (items * cfg.sparse_ratio.get()) as f64 && max > cfg.sparse_safe.get() as f64
    {
        if !cfg.sparse_convert.get() {
            return Err("Cannot serialise table: excessively sparse array".into());
        }
        return Ok(None);
    }
    Ok(Some(max as i64))
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str,
    Number,
    Boolean,
    Null,
    Colon,
    Comma,
    End,
    Error,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ObjBegin => "T_OBJ_BEGIN",
            Kind::ObjEnd => "T_OBJ_END",
            Kind::ArrBegin => "T_ARR_BEGIN",
            Kind::ArrEnd => "T_ARR_END",
            Kind::Str => "T_STRING",
            Kind::Number => "T_NUMBER",
            Kind::Boolean => "T_BOOLEAN",
            Kind::Null => "T_NULL",
            Kind::Colon => "T_COLON",
            Kind::Comma => "T_COMMA",
            Kind::End => "T_END",
            Kind::Error => "T_ERROR",
        }
    }
}

struct Token {
    kind: Kind,
    index: usize,
    string: Vec<u8>,
    number: f64,
    boolean: bool,
    error: &'static str,
}

/// Lua 5.1's cap on a C function's stack slots: lua-cjson checks for room as it nests
/// and fails with its nesting errors where there is none, so a deep document or table
/// is an error there (and here, counted the same way), not a deep recursion.
const LUAI_MAXCSTACK: usize = 8000;

struct Parser<'a> {
    lua: &'a Lua,
    data: &'a [u8],
    pos: usize,
    depth: i64,
    /// The C library's Lua stack slots in use (see `LUAI_MAXCSTACK`).
    slots: usize,
    cfg: &'a Config,
}

impl Parser<'_> {
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn tok(&self, kind: Kind, index: usize) -> Token {
        Token { kind, index, string: Vec::new(), number: 0.0, boolean: false, error: "" }
    }

    fn error_tok(&self, what: &'static str) -> Token {
        let mut t = self.tok(Kind::Error, self.pos);
        t.error = what;
        t
    }

    fn next_token(&mut self) -> Token {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let start = self.pos;
        // A NUL byte ends the text, as the C parser reads it.
        let c = self.at(self.pos);
        let single = match c {
            b'{' => Some(Kind::ObjBegin),
            b'}' => Some(Kind::ObjEnd),
            b'[' => Some(Kind::ArrBegin),
            b']' => Some(Kind::ArrEnd),
            b',' => Some(Kind::Comma),
            b':' => Some(Kind::Colon),
            0 => return self.tok(Kind::End, start),
            _ => None,
        };
        if let Some(k) = single {
            self.pos += 1;
            return self.tok(k, start);
        }
        let rest = &self.data[self.pos.min(self.data.len())..];
        match c {
            b'"' => self.string_token(),
            b'-' | b'0'..=b'9' | b'+' | b'i' | b'I' | b'n' | b'N' if c != b'n' || !rest.starts_with(b"null") => {
                if matches!(c, b'-' | b'0'..=b'9') {
                    if !self.cfg.decode_invalid.get() && self.invalid_number() {
                        return self.error_tok("invalid number");
                    }
                    return self.number_token();
                }
                if self.cfg.decode_invalid.get() && self.invalid_number() {
                    return self.number_token();
                }
                self.error_tok("invalid token")
            }
            b't' if rest.starts_with(b"true") => {
                self.pos += 4;
                let mut t = self.tok(Kind::Boolean, start);
                t.boolean = true;
                t
            }
            b'f' if rest.starts_with(b"false") => {
                self.pos += 5;
                self.tok(Kind::Boolean, start)
            }
            b'n' if rest.starts_with(b"null") => {
                self.pos += 4;
                self.tok(Kind::Null, start)
            }
            _ => self.error_tok("invalid token"),
        }
    }

    /// lua-cjson's `json_is_invalid_number`: numbers strict JSON refuses.
    fn invalid_number(&self) -> bool {
        let mut p = self.pos;
        if self.at(p) == b'+' {
            return true;
        }
        if self.at(p) == b'-' {
            p += 1;
        }
        let c = self.at(p);
        if c == b'0' {
            let c2 = self.at(p + 1);
            return (c2 | 0x20) == b'x' || c2.is_ascii_digit();
        }
        if c <= b'9' {
            return false;
        }
        let rest = &self.data[p.min(self.data.len())..];
        let lower: Vec<u8> = rest.iter().take(3).map(|b| b.to_ascii_lowercase()).collect();
        lower == b"inf" || lower == b"nan"
    }

    /// strtod's longest prefix that is a number.
    fn number_token(&mut self) -> Token {
        let start = self.pos;
        let (n, len) = strtod(&self.data[start..]);
        if len == 0 {
            return self.error_tok("invalid number");
        }
        self.pos += len;
        let mut t = self.tok(Kind::Number, start);
        t.number = n;
        t
    }

    fn string_token(&mut self) -> Token {
        let start = self.pos;
        self.pos += 1;
        let mut s = Vec::new();
        loop {
            let c = self.at(self.pos);
            if c == b'"' {
                break;
            }
            if c == 0 {
                return self.error_tok("unexpected end of string");
            }
            if c == b'\\' {
                let e = self.at(self.pos + 1);
                let mapped = match e {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 8,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'f' => 12,
                    b'r' => b'\r',
                    b'u' => match self.unicode_escape() {
                        Some((bytes, len)) => {
                            s.extend_from_slice(&bytes);
                            self.pos += len;
                            continue;
                        }
                        None => return self.error_tok("invalid unicode escape code"),
                    },
                    _ => return self.error_tok("invalid escape code"),
                };
                s.push(mapped);
                self.pos += 2;
                continue;
            }
            s.push(c);
            self.pos += 1;
        }
        self.pos += 1;
        let mut t = self.tok(Kind::Str, start);
        t.string = s;
        t
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let mut v = 0;
        for i in 0..4 {
            v = (v << 4) | (self.at(at + i) as char).to_digit(16)?;
        }
        Some(v)
    }

    fn unicode_escape(&self) -> Option<(Vec<u8>, usize)> {
        let mut cp = self.hex4(self.pos + 2)?;
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 {
                return None;
            }
            if self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u' {
                return None;
            }
            let low = self.hex4(self.pos + 8)?;
            if low & 0xFC00 != 0xDC00 {
                return None;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        let mut b = Vec::with_capacity(4);
        if cp <= 0x7F {
            b.push(cp as u8);
        } else if cp <= 0x7FF {
            b.extend_from_slice(&[(cp >> 6) as u8 | 0xC0, (cp & 0x3F) as u8 | 0x80]);
        } else if cp <= 0xFFFF {
            b.extend_from_slice(&[(cp >> 12) as u8 | 0xE0, ((cp >> 6) & 0x3F) as u8 | 0x80, (cp & 0x3F) as u8 | 0x80]);
        } else {
            b.extend_from_slice(&[
                (cp >> 18) as u8 | 0xF0,
                ((cp >> 12) & 0x3F) as u8 | 0x80,
                ((cp >> 6) & 0x3F) as u8 | 0x80,
                (cp & 0x3F) as u8 | 0x80,
            ]);
        }
        Some((b, len))
    }

    fn expected(&self, what: &str, tok: &Token) -> mlua::Error {
        let found = if tok.kind == Kind::Error { tok.error } else { tok.kind.name() };
        err(format!("Expected {what} but found {found} at character {}", tok.index + 1))
    }

    /// json_decode_descend: a level needs `need` free slots and keeps `keep` of them.
    fn descend(&mut self, need: usize, keep: usize) -> mlua::Result<()> {
        self.depth += 1;
        if self.depth > self.cfg.decode_max_depth.get() || self.slots + need > LUAI_MAXCSTACK {
            return Err(err(format!(
                "Found too many nested data structures ({}) at character {}",
                self.depth, self.pos
            )));
        }
        self.slots += keep;
        Ok(())
    }

    /// A JSON value starting at `tok`, read in a loop over the open tables (see `Nest`)
    /// where lua-cjson recurses.
    fn value(&mut self, mut tok: Token) -> mlua::Result<Value> {
        let mut nest = Nest::default();
        loop {
            let mut value = match tok.kind {
                Kind::Str => Some(Value::String(self.lua.create_string(&tok.string)?)),
                Kind::Number => Some(Value::Number(tok.number)),
                Kind::Boolean => Some(Value::Boolean(tok.boolean)),
                Kind::Null => Some(Value::LightUserData(LightUserData(std::ptr::null_mut()))),
                Kind::ObjBegin | Kind::ArrBegin => {
                    let array = tok.kind == Kind::ArrBegin;
                    if array {
                        self.descend(2, 1)?;
                    } else {
                        self.descend(3, 2)?;
                    }
                    nest.push(self.lua, array)?;
                    tok = self.next_token();
                    if tok.kind == (if array { Kind::ArrEnd } else { Kind::ObjEnd }) {
                        self.ascend(array);
                        nest.pop()?.map(Value::Table)
                    } else if array {
                        continue;
                    } else {
                        tok = self.key(&mut nest, tok)?;
                        continue;
                    }
                }
                _ => return Err(self.expected("value", &tok)),
            };
            // Store the value read, closing every table whose end follows, until a comma
            // asks for the next value or the outermost one is done.
            loop {
                let Some(array) = nest.in_array() else {
                    return Ok(value.unwrap_or(Value::Nil));
                };
                if let Some(v) = value.take() {
                    nest.put(v)?;
                }
                let sep = self.next_token();
                let end = if array { Kind::ArrEnd } else { Kind::ObjEnd };
                if sep.kind == end {
                    self.ascend(array);
                    value = nest.pop()?.map(Value::Table);
                    continue;
                }
                if sep.kind != Kind::Comma {
                    let what = if array { "comma or array end" } else { "comma or object end" };
                    return Err(self.expected(what, &sep));
                }
                tok = self.next_token();
                if !array {
                    tok = self.key(&mut nest, tok)?;
                }
                break;
            }
        }
    }

    /// An object's `"key":` starting at `tok`; returns the token after the colon.
    fn key(&mut self, nest: &mut Nest, tok: Token) -> mlua::Result<Token> {
        if tok.kind != Kind::Str {
            return Err(self.expected("object key string", &tok));
        }
        nest.put(Value::String(self.lua.create_string(&tok.string)?))?;
        let colon = self.next_token();
        if colon.kind != Kind::Colon {
            return Err(self.expected("colon", &colon));
        }
        Ok(self.next_token())
    }

    fn ascend(&mut self, array: bool) {
        self.depth -= 1;
        self.slots -= if array { 1 } else { 2 };
    }
}

/// C's `strtod` on the start of `s`: the value and how many bytes it read (0: none).
/// Decimal with optional exponent, hex (`0x...`), `inf`/`infinity`, `nan`.
pub fn strtod(s: &[u8]) -> (f64, usize) {
    let mut i = 0;
    let neg = match s.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let sign = if neg { -1.0 } else { 1.0 };
    let rest = &s[i..];
    let lower: Vec<u8> = rest.iter().take(8).map(|b| b.to_ascii_lowercase()).collect();
    if lower.starts_with(b"infinity") {
        return (sign * f64::INFINITY, i + 8);
    }
    if lower.starts_with(b"inf") {
        return (sign * f64::INFINITY, i + 3);
    }
    if lower.starts_with(b"nan") {
        return (f64::NAN, i + 3);
    }
    if rest.len() > 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' && rest[2].is_ascii_hexdigit() {
        let mut j = 2;
        let mut v = 0f64;
        while j < rest.len() && rest[j].is_ascii_hexdigit() {
            v = v * 16.0 + (rest[j] as char).to_digit(16).unwrap_or(0) as f64;
            j += 1;
        }
        return (sign * v, i + j);
    }
    let mut j = 0;
    let mut digits = 0;
    while j < rest.len() && rest[j].is_ascii_digit() {
        j += 1;
        digits += 1;
    }
    if j < rest.len() && rest[j] == b'.' {
        j += 1;
        while j < rest.len() && rest[j].is_ascii_digit() {
            j += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return (0.0, 0);
    }
    if j < rest.len() && (rest[j] | 0x20) == b'e' {
        let mut k = j + 1;
        if k < rest.len() && (rest[k] == b'+' || rest[k] == b'-') {
            k += 1;
        }
        if k < rest.len() && rest[k].is_ascii_digit() {
            while k < rest.len() && rest[k].is_ascii_digit() {
                k += 1;
            }
            j = k;
        }
    }
    let text = std::str::from_utf8(&rest[..j]).unwrap_or("0");
    let text = text.strip_suffix('.').unwrap_or(text);
    (sign * text.parse::<f64>().unwrap_or(0.0), i + j)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `code` in a fresh state with cjson, on a thread with the 2 MiB stack a shard
    /// thread has, and returns its error text ("" when it ran).
    fn run(code: &'static str) -> String {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let lua = Lua::new();
                lua.globals().raw_set("cjson", table(&lua).unwrap()).unwrap();
                lua.load(code).exec().err().map(|e| e.to_string()).unwrap_or_default()
            })
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn big_tables_encode() {
        let code = r#"
            local m, a = {}, {}
            for i = 1, 100000 do m[tostring(i)] = i; a[i] = i end
            local d = cjson.decode(cjson.encode({m = m, a = a}))
            for i = 1, 100000 do assert(d.m[tostring(i)] == i and d.a[i] == i) end
        "#;
        assert_eq!(run(code), "");
    }

    #[test]
    fn nesting_past_the_lua_stack_is_redis_error() {
        // redis-server 7.0.15 with the limits raised: the same depths and texts.
        let e = run(r#"cjson.decode_max_depth(1000000)
            cjson.decode(string.rep("[", 100000) .. string.rep("]", 100000))"#);
        assert!(e.contains("Found too many nested data structures (7999) at character 7999"), "{e}");
        let e = run(r#"cjson.encode_max_depth(1000000)
            local t = {} local c = t
            for i = 1, 100000 do c[1] = {} c = c[1] end
            cjson.encode(t)"#);
        assert!(e.contains("Cannot serialise, excessive nesting (7998)"), "{e}");
        let e = run(r#"cjson.encode_max_depth(1000000)
            local t = {} local c = t
            for i = 1, 100000 do c.a = {} c = c.a end
            cjson.encode(t)"#);
        assert!(e.contains("Cannot serialise, excessive nesting (4000)"), "{e}");
        // Below those, deep nesting encodes (and decodes back).
        let e = run(r#"cjson.encode_max_depth(1000000) cjson.decode_max_depth(1000000)
            local t = {} local c = t
            for i = 1, 7996 do c[1] = {} c = c[1] end
            local s = cjson.encode(t)
            assert(#s == 2 * 7997, #s)
            local d = cjson.decode(s)
            local o = {} c = o
            for i = 1, 3998 do c.a = {} c = c.a end
            assert(#cjson.encode(o) == 3998 * 6 + 2)
            local e = {} c = e
            for i = 1, 1000 do c[1] = {} c = c[1] end
            assert(not pcall(cjson.new().encode, e))"#);
        assert_eq!(e, "");
        let e = run(r#"cjson.decode_max_depth(1000000)
            cjson.decode(string.rep('{"a":', 100000))"#);
        assert!(e.contains("Found too many nested data structures"), "{e}");
    }
}
