//! The `cmsgpack` library Redis loads (lua-cmsgpack 0.4.0): `pack(...)` writes each
//! argument as MessagePack, `unpack(s)` reads every value back, `unpack_one(s
//! [, offset])` and `unpack_limit(s, limit [, offset])` read some and return the offset
//! to go on from (-1 at the end).
//!
//! Its choices, which decide the bytes: a number that is an integer within int64 gets
//! the smallest integer encoding, any other a float32 when that is exact, else a
//! float64; strings use fixstr/str8/str16/str32; a table whose keys are exactly 1..n is
//! an array, any other a map in `next` order; tables nested 16 deep, functions and the
//! like are nil. Reading: bin and ext types are a bad format; every number is a Lua
//! number (a double).

use super::{string_arg, Nest};
use mlua::{Lua, MultiValue, Table, Value};

const MAX_NESTING: usize = 16;

fn err(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        super::function(lua, |lua, args: MultiValue| {
            if args.is_empty() {
                return Err(err("bad argument #0 to 'pack' (MessagePack pack needs input.)"));
            }
            let mut out = Vec::new();
            for v in args.iter() {
                encode(v, 0, &mut out)?;
            }
            lua.create_string(out)
        })?,
    )?;
    t.raw_set(
        "unpack",
        super::function(lua, |lua, args: MultiValue| {
            let s = string_arg(&args, 1, "unpack")?;
            unpack(lua, &s, 0, 0, args.len())
        })?,
    )?;
    t.raw_set(
        "unpack_one",
        super::function(lua, |lua, args: MultiValue| {
            let s = string_arg(&args, 1, "unpack_one")?;
            let offset = opt_integer(&args, 2, "unpack_one")?;
            unpack(lua, &s, 1, offset, 1)
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        super::function(lua, |lua, args: MultiValue| {
            let limit = match args.get(1) {
                Some(v) => super::number_arg(v, 2, "unpack_limit")? as i64,
                None => return Err(super::bad_arg(2, "unpack_limit", "number", &Value::Nil)),
            };
            let offset = opt_integer(&args, 3, "unpack_limit")?;
            let s = string_arg(&args, 1, "unpack_limit")?;
            unpack(lua, &s, limit, offset, 1)
        })?,
    )?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

/// `luaL_optinteger`: absent or nil is 0.
fn opt_integer(args: &MultiValue, n: usize, fname: &str) -> mlua::Result<i64> {
    match args.get(n - 1) {
        None | Some(Value::Nil) => Ok(0),
        Some(v) => Ok(super::number_arg(v, n, fname)? as i64),
    }
}

/// lua-cmsgpack's test for integers: finite and equal to its int64 conversion.
fn as_int64(x: f64) -> Option<i64> {
    (x.is_finite() && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&x) && x == (x as i64) as f64)
        .then_some(x as i64)
}

fn encode(v: &Value, level: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    match v {
        Value::String(s) => encode_bytes(&s.as_bytes(), out),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_int(*i, out),
        Value::Number(x) => match as_int64(*x) {
            Some(i) => encode_int(i, out),
            None => encode_double(*x, out),
        },
        Value::Table(t) if level < MAX_NESTING => encode_table(t, level, out)?,
        _ => out.push(0xc0),
    }
    Ok(())
}

fn encode_bytes(s: &[u8], out: &mut Vec<u8>) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else if n <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

fn encode_double(d: f64, out: &mut Vec<u8>) {
    let f = d as f32;
    if f as f64 == d {
        out.push(0xca);
        out.extend_from_slice(&f.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&d.to_be_bytes());
    }
}

fn encode_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// The header of an array (`base` 0x90, 0xdc) or map (0x80, 0xde).
fn encode_len(n: usize, fix: u8, wide: u8, out: &mut Vec<u8>) {
    if n <= 15 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(wide);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(wide + 1);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn encode_table(t: &Table, level: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    // An array when every key is a positive integer and there are as many as the
    // largest (lua-cmsgpack's table_is_an_array; an empty table is an array). Both
    // passes walk the table without keeping its entries: every value mlua holds takes
    // a slot of its reference stack, which has room for about 8000, so a 100k-entry
    // table collected first would not fit.
    let (mut count, mut max, mut array) = (0usize, 0i64, true);
    for kv in t.clone().pairs::<Value, Value>() {
        let (k, _) = kv?;
        count += 1;
        let n = match k {
            Value::Integer(i) => Some(i as f64),
            Value::Number(x) => Some(x),
            _ => None,
        };
        match n {
            Some(x) if array && x > 0.0 && x == (x as i32) as f64 => max = max.max(x as i64),
            _ => array = false,
        }
    }
    if array && max == count as i64 {
        let len = t.raw_len();
        encode_len(len, 0x90, 0xdc, out);
        for j in 1..=len {
            let v: Value = t.get(j)?;
            encode(&v, level + 1, out)?;
        }
    } else {
        encode_len(count, 0x80, 0xde, out);
        for kv in t.clone().pairs::<Value, Value>() {
            let (k, v) = kv?;
            encode(&k, level + 1, out)?;
            encode(&v, level + 1, out)?;
        }
    }
    Ok(())
}

/// lua-cmsgpack decodes by recursion onto the Lua stack, whose C frames Lua 5.1 caps at
/// `LUAI_MAXCSTACK` slots; what does not fit is its "stack overflow (...)" error. The
/// decoder here is a loop over an explicit stack of open tables, and counts the slots
/// the C library would use so that it fails where and as Redis does: a deep nesting or
/// too many top-level values is an error, never a deep Rust recursion.
const LUAI_MAXCSTACK: usize = 8000;

fn stack_overflow(what: &str) -> mlua::Error {
    err(format!("stack overflow ({what})"))
}

enum Fail {
    Eof,
    BadFormat,
    Lua(mlua::Error),
}

impl From<mlua::Error> for Fail {
    fn from(e: mlua::Error) -> Self {
        Fail::Lua(e)
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Fail> {
        if self.data.len() - self.pos < n {
            return Err(Fail::Eof);
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, Fail> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }
}

/// What one MessagePack header is: a whole value, or the start of a table.
enum Item {
    Value(Value),
    Array(usize),
    Map(usize),
}

fn read_item(lua: &Lua, c: &mut Cursor) -> Result<Item, Fail> {
    let b = c.take(1)?[0];
    let num = |x: f64| Ok(Item::Value(Value::Number(x)));
    match b {
        0x00..=0x7f => num(b as f64),
        0xe0..=0xff => num(b as i8 as f64),
        0xcc => num(c.be(1)? as f64),
        0xcd => num(c.be(2)? as f64),
        0xce => num(c.be(4)? as f64),
        0xcf => num(c.be(8)? as f64),
        0xd0 => num(c.be(1)? as u8 as i8 as f64),
        0xd1 => num(c.be(2)? as u16 as i16 as f64),
        0xd2 => num(c.be(4)? as u32 as i32 as f64),
        0xd3 => num(c.be(8)? as i64 as f64),
        0xc0 => Ok(Item::Value(Value::Nil)),
        0xc2 => Ok(Item::Value(Value::Boolean(false))),
        0xc3 => Ok(Item::Value(Value::Boolean(true))),
        0xca => num(f32::from_bits(c.be(4)? as u32) as f64),
        0xcb => num(f64::from_bits(c.be(8)?)),
        0xa0..=0xbf | 0xd9..=0xdb => {
            let n = length(c, b, 0xa0, 0x1f, 0xd9, 1)?;
            Ok(Item::Value(Value::String(lua.create_string(c.take(n)?)?)))
        }
        0x90..=0x9f | 0xdc..=0xdd => Ok(Item::Array(length(c, b, 0x90, 0x0f, 0xdc, 2)?)),
        0x80..=0x8f | 0xde..=0xdf => Ok(Item::Map(length(c, b, 0x80, 0x0f, 0xde, 2)?)),
        _ => Err(Fail::BadFormat),
    }
}

/// The length of a str, array or map whose type byte is `b`: in `b` itself (the fix
/// form: `fix` with the length in the bits of `mask`), or in the bytes that follow a
/// wide form: `bytes` of them after the type byte `wide`, twice as many after each
/// next one.
fn length(c: &mut Cursor, b: u8, fix: u8, mask: u8, wide: u8, bytes: usize) -> Result<usize, Fail> {
    if b & !mask == fix {
        Ok((b & mask) as usize)
    } else {
        Ok(c.be(bytes << (b - wide))? as usize)
    }
}

/// Reads one value, nested tables included. `used` counts the C library's stack slots
/// (its frame's arguments and the values already read); the value read leaves one more.
fn decode(lua: &Lua, c: &mut Cursor, used: usize) -> Result<Value, Fail> {
    let mut nest = Nest::default();
    // Entries still to read, per open table.
    let mut left: Vec<usize> = Vec::new();
    // The C library's slots: each open table holds its table, an array's pending index
    // or a map's pending key.
    let mut slots = used;
    loop {
        // mp_decode_to_lua_type: input first, then one slot for the value.
        if c.pos == c.data.len() {
            return Err(Fail::Eof);
        }
        if slots + 1 > LUAI_MAXCSTACK {
            return Err(
                stack_overflow("too many return values at once; use unpack_one or unpack_limit instead.").into()
            );
        }
        let mut value = match read_item(lua, c)? {
            Item::Value(v) => Some(v),
            Item::Array(n) => {
                slots += 1;
                if slots + 1 > LUAI_MAXCSTACK {
                    return Err(stack_overflow("in function mp_decode_to_lua_array").into());
                }
                nest.push(lua, true)?;
                left.push(n);
                None
            }
            Item::Map(n) => {
                slots += 1;
                nest.push(lua, false)?;
                left.push(2 * n);
                None
            }
        };
        // Store what was read, closing every table that is complete, until one wants
        // more (then read its next item) or the outermost value is done.
        loop {
            let (Some(array), Some(n)) = (nest.in_array(), left.last_mut()) else {
                match value {
                    Some(v) => return Ok(v),
                    None => break,
                }
            };
            if let Some(v) = value.take() {
                // A stored element frees its slot (and an array's index); a map's key
                // stays on the stack while its value is read.
                *n -= 1;
                if nest.put(v)? {
                    slots -= 1;
                } else {
                    slots += 1;
                }
            }
            if *n > 0 {
                if array {
                    slots += 1;
                }
                break;
            }
            left.pop();
            slots -= 1;
            value = nest.pop()?.map(Value::Table);
        }
    }
}

/// lua-cmsgpack's `mp_unpack_full`: `limit` 0 and `offset` 0 read everything and return
/// only the values; otherwise the next offset (-1 at the end) comes first. `base` is the
/// number of arguments left on the C stack (unpack_one and unpack_limit keep one).
fn unpack(lua: &Lua, s: &[u8], limit: i64, offset: i64, base: usize) -> mlua::Result<MultiValue> {
    let all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        // lua-cmsgpack prints the input's length where it says "limit".
        return Err(err(format!("Invalid request to unpack with offset of {offset} and limit of {}.", s.len())));
    }
    if offset as u64 > s.len() as u64 {
        return Err(err(format!("Start offset {offset} greater than input length {}.", s.len())));
    }
    let limit = if all { i64::from(i32::MAX) } else { limit };
    let mut c = Cursor { data: s, pos: offset as usize };
    let mut values = Vec::new();
    while c.pos < s.len() && (values.len() as i64) < limit {
        match decode(lua, &mut c, base + values.len()) {
            Ok(v) => values.push(v),
            Err(Fail::Eof) => return Err(err("Missing bytes in input.")),
            Err(Fail::BadFormat) => return Err(err("Bad data format in input.")),
            Err(Fail::Lua(e)) => return Err(e),
        }
    }
    if !all {
        if base + values.len() + 1 > LUAI_MAXCSTACK {
            return Err(stack_overflow("in function mp_unpack_full"));
        }
        let next = if c.pos == s.len() { -1 } else { c.pos as i64 };
        values.insert(0, Value::Number(next as f64));
    }
    Ok(MultiValue::from_vec(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(x: f64) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&Value::Number(x), 0, &mut out).unwrap();
        out
    }

    #[test]
    fn numbers_take_the_smallest_encoding() {
        assert_eq!(pack(5.0), [5]);
        assert_eq!(pack(-1.0), [0xff]);
        assert_eq!(pack(200.0), [0xcc, 200]);
        assert_eq!(pack(-200.0), [0xd1, 0xff, 0x38]);
        assert_eq!(pack(70000.0), [0xce, 0, 1, 0x11, 0x70]);
        assert_eq!(pack(1.5), [0xca, 0x3f, 0xc0, 0, 0]);
        assert_eq!(pack(0.1)[0], 0xcb);
        assert_eq!(pack(2f64.powi(63))[0], 0xca, "beyond int64: a float (exact as float32)");
    }

    fn lua() -> Lua {
        let lua = Lua::new();
        lua.globals().raw_set("cmsgpack", table(&lua).unwrap()).unwrap();
        lua
    }

    fn run_err(lua: &Lua, code: &str) -> String {
        match lua.load(code).exec() {
            Ok(()) => panic!("{code} ran"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn big_tables_round_trip() {
        // Each entry held at once would overflow mlua's reference stack (~8000 slots).
        lua()
            .load(
                r#"
            local m, a = {}, {}
            for i = 1, 100000 do m[tostring(i)] = i; a[i] = tostring(i) end
            local e = cmsgpack.pack({m = m, a = a})
            local d = cmsgpack.unpack(e)
            for i = 1, 100000 do assert(d.m[tostring(i)] == i and d.a[i] == tostring(i)) end
            assert(string.byte(e, 1) == 0x82)
            "#,
            )
            .exec()
            .unwrap();
    }

    #[test]
    fn deep_or_many_values_are_redis_errors_not_a_crash() {
        // Counted as lua-cmsgpack's C stack use (two slots per array level, one per map
        // level decoding its key), the limits redis-server 7.0.15 reports.
        let lua = lua();
        let e = run_err(&lua, "cmsgpack.unpack(string.rep(string.char(0x91), 200000))");
        assert!(e.contains("stack overflow (in function mp_decode_to_lua_array)"), "{e}");
        let e = run_err(&lua, "cmsgpack.unpack(string.rep(string.char(0x81), 200000))");
        assert!(e.contains("stack overflow (too many return values at once"), "{e}");
        // Redis returns up to 7999 values; mlua's callback frame has room for a few
        // less (7988 in a fresh state), past which its own "stack overflow" error comes.
        let n: i64 = lua.load("return #{cmsgpack.unpack(string.rep(string.char(0xa1, 65), 7900))}").eval().unwrap();
        assert_eq!(n, 7900);
        let e = run_err(&lua, "cmsgpack.unpack(string.rep(string.char(1), 8000))");
        assert!(e.contains("stack overflow (too many return values at once; use unpack_one"), "{e}");
        // Within the limit, deep nesting decodes.
        lua.load(
            r#"
            local t = cmsgpack.unpack(string.rep(string.char(0x91), 3000) .. string.char(7))
            for _ = 1, 3000 do t = t[1] end
            assert(t == 7)
            "#,
        )
        .exec()
        .unwrap();
        // A declared length the input does not have.
        let e = run_err(&lua, "cmsgpack.unpack(string.char(0xdd, 0xff, 0xff, 0xff, 0xff, 1))");
        assert!(e.contains("Missing bytes in input."), "{e}");
        let e = run_err(&lua, "cmsgpack.unpack(string.char(0x81, 0xc0, 1))");
        assert!(e.contains("table index is nil"), "{e}");
    }
}
