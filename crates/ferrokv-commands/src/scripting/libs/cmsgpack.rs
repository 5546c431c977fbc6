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

use super::string_arg;
use mlua::{Lua, MultiValue, Table, Value};

const MAX_NESTING: usize = 16;

fn err(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(|lua, args: MultiValue| {
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
        lua.create_function(|lua, args: MultiValue| {
            let s = string_arg(&args, 1, "unpack")?;
            unpack(lua, &s, 0, 0)
        })?,
    )?;
    t.raw_set(
        "unpack_one",
        lua.create_function(|lua, args: MultiValue| {
            let s = string_arg(&args, 1, "unpack_one")?;
            let offset = opt_integer(&args, 2, "unpack_one")?;
            unpack(lua, &s, 1, offset)
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        lua.create_function(|lua, args: MultiValue| {
            let limit = match args.get(1) {
                Some(v) => super::number_arg(v, 2, "unpack_limit")? as i64,
                None => return Err(super::bad_arg(2, "unpack_limit", "number", &Value::Nil)),
            };
            let offset = opt_integer(&args, 3, "unpack_limit")?;
            let s = string_arg(&args, 1, "unpack_limit")?;
            unpack(lua, &s, limit, offset)
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
    // largest (lua-cmsgpack's table_is_an_array; an empty table is an array).
    let (mut count, mut max, mut array) = (0i64, 0i64, true);
    let mut pairs: Vec<(Value, Value)> = Vec::new();
    for kv in t.clone().pairs::<Value, Value>() {
        let (k, v) = kv?;
        let n = match &k {
            Value::Integer(i) => Some(*i as f64),
            Value::Number(x) => Some(*x),
            _ => None,
        };
        match n {
            Some(x) if array && x > 0.0 && x == (x as i32) as f64 => {
                max = max.max(x as i64);
                count += 1;
            }
            _ => array = false,
        }
        pairs.push((k, v));
    }
    if array && max == count {
        let len = t.raw_len();
        encode_len(len, 0x90, 0xdc, out);
        for j in 1..=len {
            let v: Value = t.get(j)?;
            encode(&v, level + 1, out)?;
        }
    } else {
        encode_len(pairs.len(), 0x80, 0xde, out);
        for (k, v) in &pairs {
            encode(k, level + 1, out)?;
            encode(v, level + 1, out)?;
        }
    }
    Ok(())
}

enum Short {
    Eof,
    BadFormat,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        if self.data.len() - self.pos < n {
            return Err(Short::Eof);
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, Short> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }
}

fn decode(lua: &Lua, c: &mut Cursor) -> Result<mlua::Result<Value>, Short> {
    let b = c.take(1)?[0];
    let num = |x: f64| Ok(Ok(Value::Number(x)));
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
        0xc0 => Ok(Ok(Value::Nil)),
        0xc2 => Ok(Ok(Value::Boolean(false))),
        0xc3 => Ok(Ok(Value::Boolean(true))),
        0xca => num(f32::from_bits(c.be(4)? as u32) as f64),
        0xcb => num(f64::from_bits(c.be(8)?)),
        0xa0..=0xbf => string(lua, c, (b & 0x1f) as usize),
        0xd9 => {
            let n = c.be(1)? as usize;
            string(lua, c, n)
        }
        0xda => {
            let n = c.be(2)? as usize;
            string(lua, c, n)
        }
        0xdb => {
            let n = c.be(4)? as usize;
            string(lua, c, n)
        }
        0x90..=0x9f => array(lua, c, (b & 0x0f) as usize),
        0xdc => {
            let n = c.be(2)? as usize;
            array(lua, c, n)
        }
        0xdd => {
            let n = c.be(4)? as usize;
            array(lua, c, n)
        }
        0x80..=0x8f => map(lua, c, (b & 0x0f) as usize),
        0xde => {
            let n = c.be(2)? as usize;
            map(lua, c, n)
        }
        0xdf => {
            let n = c.be(4)? as usize;
            map(lua, c, n)
        }
        _ => Err(Short::BadFormat),
    }
}

fn string(lua: &Lua, c: &mut Cursor, n: usize) -> Result<mlua::Result<Value>, Short> {
    let s = c.take(n)?;
    Ok(lua.create_string(s).map(Value::String))
}

fn array(lua: &Lua, c: &mut Cursor, n: usize) -> Result<mlua::Result<Value>, Short> {
    let t = match lua.create_table() {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    for i in 1..=n {
        let v = match decode(lua, c)? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = t.raw_set(i, v) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(Value::Table(t)))
}

fn map(lua: &Lua, c: &mut Cursor, n: usize) -> Result<mlua::Result<Value>, Short> {
    let t = match lua.create_table() {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    for _ in 0..n {
        let k = match decode(lua, c)? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let v = match decode(lua, c)? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        if matches!(k, Value::Nil) {
            return Ok(Err(err("table index is nil")));
        }
        if let Err(e) = t.raw_set(k, v) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(Value::Table(t)))
}

/// lua-cmsgpack's `mp_unpack_full`: `limit` 0 and `offset` 0 read everything and return
/// only the values; otherwise the next offset (-1 at the end) comes first.
fn unpack(lua: &Lua, s: &[u8], limit: i64, offset: i64) -> mlua::Result<MultiValue> {
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
        match decode(lua, &mut c) {
            Ok(v) => values.push(v?),
            Err(Short::Eof) => return Err(err("Missing bytes in input.")),
            Err(Short::BadFormat) => return Err(err("Bad data format in input.")),
        }
    }
    if !all {
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
}
