//! The `struct` library Redis loads (Roberto Ierusalimschy's struct 0.2 as Redis
//! patched it): `struct.pack(fmt, ...)`, `struct.unpack(fmt, data [, pos])` (the values
//! and the position after them), `struct.size(fmt)`.
//!
//! The format is read as the C library reads it on x86-64, where Redis runs it: `<`/`>`
//! little/big endian (little by default), `!n` maximum alignment (8 by default, a power
//! of 2), `x` a zero byte, `b`/`B` 1-byte, `h`/`H` 2-byte, `l`/`L`/`T` 8-byte and
//! `i`/`In` n-byte (4 by default, at most 32) integers, `f`/`d` float and double, `cn` n
//! bytes of a string (`c0`: packing, the whole string; unpacking, the length read just
//! before), `s` a zero-terminated string, spaces ignored. An element is aligned to
//! min(its size, alignment) from the start. Integers go through a 64-bit value, as in C:
//! wider fields get zero bytes above 64 bits, negative numbers are two's complement,
//! and every number read back is a double. The format ends at its first zero byte.

use mlua::{Lua, MultiValue, Table, Value};

/// x86-64: `long`, `size_t` and the strictest alignment are 8 bytes, `int` 4.
const MAX_ALIGN: usize = 8;
const INT_SIZE: usize = 4;
const MAX_INT_SIZE: usize = 32;

fn err(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

fn arg_err(n: usize, fname: &str, msg: &str) -> mlua::Error {
    err(format!("bad argument #{n} to '{fname}' ({msg})"))
}

pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("pack", super::function(lua, |lua, args: MultiValue| lua.create_string(pack(&args)?))?)?;
    t.raw_set("unpack", super::function(lua, |lua, args: MultiValue| unpack(lua, &args))?)?;
    t.raw_set("size", super::function(lua, |_, args: MultiValue| size(&args))?)?;
    Ok(t)
}

/// The format as C sees it: up to its first zero byte.
fn format_arg(args: &MultiValue, fname: &str) -> mlua::Result<Vec<u8>> {
    let mut f = super::string_arg(args, 1, fname)?;
    if let Some(end) = f.iter().position(|&b| b == 0) {
        f.truncate(end);
    }
    Ok(f)
}

/// A format being read: position, endianness and maximum alignment.
struct Format<'a> {
    fmt: &'a [u8],
    at: usize,
    little: bool,
    align: usize,
}

impl<'a> Format<'a> {
    fn new(fmt: &'a [u8]) -> Self {
        Format { fmt, at: 0, little: true, align: 1 }
    }

    fn option(&mut self) -> Option<u8> {
        let c = *self.fmt.get(self.at)?;
        self.at += 1;
        Some(c)
    }

    /// The digits that follow, or `default` when none does.
    fn number(&mut self, default: usize) -> mlua::Result<usize> {
        if !self.fmt.get(self.at).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut a: i32 = 0;
        while let Some(&d) = self.fmt.get(self.at).filter(|d| d.is_ascii_digit()) {
            let d = (d - b'0') as i32;
            if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
                return Err(err("integral size overflow"));
            }
            a = a * 10 + d;
            self.at += 1;
        }
        Ok(a as usize)
    }

    /// The size of option `opt` (reading its count), 0 for those without one.
    fn size_of(&mut self, opt: u8) -> mlua::Result<usize> {
        Ok(match opt {
            b'B' | b'b' | b'x' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.number(1)?,
            b'i' | b'I' => {
                let sz = self.number(INT_SIZE)?;
                if sz > MAX_INT_SIZE {
                    return Err(err(format!("integral size {sz} is larger than limit of {MAX_INT_SIZE}")));
                }
                sz
            }
            _ => 0,
        })
    }

    /// Padding before an element of `size` at offset `len` (C's arithmetic, also for
    /// sizes that are not powers of 2).
    fn padding(&self, len: usize, opt: u8, size: usize) -> usize {
        if size == 0 || opt == b'c' {
            return 0;
        }
        let size = size.min(self.align);
        size.wrapping_sub(len & (size - 1)) & (size - 1)
    }

    /// Endianness, alignment and spaces; anything else is an invalid option.
    fn control(&mut self, opt: u8, fname: &str) -> mlua::Result<()> {
        match opt {
            b' ' => {}
            b'>' => self.little = false,
            b'<' => self.little = true,
            b'!' => {
                let a = self.number(MAX_ALIGN)?;
                if !(a > 0 && a & (a - 1) == 0) {
                    return Err(err(format!("alignment {a} is not a power of 2")));
                }
                self.align = a;
            }
            _ => return Err(arg_err(1, fname, &format!("invalid format option '{}'", opt as char))),
        }
        Ok(())
    }
}

fn is_integer_option(opt: u8) -> bool {
    matches!(opt, b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I')
}

/// A double as C converts it to the 64-bit value struct writes: through `long` when
/// negative, else `unsigned long` as x86-64 does it (2^64 and above, and NaN, give
/// what its conversion instructions give).
fn to_u64(n: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if n < 0.0 {
        (n as i64) as u64
    } else if n < TWO63 {
        n as u64
    } else if n.is_nan() || n - TWO63 >= TWO63 {
        // cvttsd2si's "integer indefinite", xored with the high bit (or not) by the
        // compiler's unsigned sequence.
        if n.is_nan() {
            1 << 63
        } else {
            0
        }
    } else {
        ((n - TWO63) as i64 as u64) ^ (1 << 63)
    }
}

fn put_integer(out: &mut Vec<u8>, n: f64, little: bool, size: usize) {
    let mut value = to_u64(n);
    let mut buf = [0u8; MAX_INT_SIZE];
    for i in 0..size {
        let at = if little { i } else { size - 1 - i };
        buf[at] = value as u8;
        value = value.checked_shr(8).unwrap_or(0);
    }
    out.extend_from_slice(&buf[..size]);
}

fn pack(args: &MultiValue) -> mlua::Result<Vec<u8>> {
    let fmt = format_arg(args, "pack")?;
    let mut f = Format::new(&fmt);
    let mut arg = 2;
    let mut out = Vec::new();
    while let Some(opt) = f.option() {
        let mut size = f.size_of(opt)?;
        let pad = f.padding(out.len(), opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            _ if is_integer_option(opt) => {
                let n = number(args, arg, "pack")?;
                arg += 1;
                put_integer(&mut out, n, f.little, size);
            }
            b'x' => out.push(0),
            b'f' => {
                let x = number(args, arg, "pack")? as f32;
                arg += 1;
                out.extend_from_slice(&if f.little { x.to_le_bytes() } else { x.to_be_bytes() });
            }
            b'd' => {
                let x = number(args, arg, "pack")?;
                arg += 1;
                out.extend_from_slice(&if f.little { x.to_le_bytes() } else { x.to_be_bytes() });
            }
            b'c' | b's' => {
                let s = match args.get(arg - 1) {
                    None | Some(Value::Nil) => return Err(arg_err(arg, "pack", "string expected, got nil")),
                    Some(_) => super::string_arg(args, arg, "pack")?,
                };
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // The C library names the argument after the string's.
                    return Err(arg_err(arg, "pack", "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => f.control(opt, "pack")?,
        }
    }
    Ok(out)
}

/// `luaL_checknumber` of a value to pack: past the last argument the C library finds
/// the nil it pushed after them, so the error says "got nil".
fn number(args: &MultiValue, n: usize, fname: &str) -> mlua::Result<f64> {
    match args.get(n - 1) {
        None | Some(Value::Nil) => Err(arg_err(n, fname, "number expected, got nil")),
        Some(v) => super::number_arg(v, n, fname),
    }
}

fn get_integer(bytes: &[u8], little: bool, signed: bool) -> f64 {
    let size = bytes.len();
    let mut l: u64 = 0;
    for i in 0..size {
        let b = if little { bytes[size - 1 - i] } else { bytes[i] };
        l = (l << 8) | b as u64;
    }
    if !signed {
        return l as f64;
    }
    if size == 0 {
        return 0.0;
    }
    // The sign mask as x86-64 shifts (the count modulo 64 for fields above 8 bytes).
    let mask = u64::MAX << ((size * 8 - 1) & 63);
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

fn unpack(lua: &Lua, args: &MultiValue) -> mlua::Result<MultiValue> {
    let fmt = format_arg(args, "unpack")?;
    let data = super::string_arg(args, 2, "unpack")?;
    let ld = data.len();
    // `luaL_optinteger` into a size_t: a negative offset is huge, only 0 is refused.
    let pos = match args.get(2) {
        None | Some(Value::Nil) => 1usize,
        Some(v) => super::number_arg(v, 3, "unpack")? as i64 as usize,
    };
    if pos == 0 {
        return Err(arg_err(3, "unpack", "offset must be 1 or greater"));
    }
    let mut pos = pos - 1;
    let mut f = Format::new(&fmt);
    let mut out: Vec<Value> = Vec::new();
    let too_short = || arg_err(2, "unpack", "data string too short");
    while let Some(opt) = f.option() {
        let mut size = f.size_of(opt)?;
        pos = pos.wrapping_add(f.padding(pos, opt, size));
        if !(size <= ld && pos <= ld - size) {
            return Err(too_short());
        }
        match opt {
            _ if is_integer_option(opt) => {
                out.push(Value::Number(get_integer(&data[pos..pos + size], f.little, opt.is_ascii_lowercase())))
            }
            b'x' => {}
            b'f' => {
                let b: [u8; 4] = data[pos..pos + 4].try_into().map_err(|_| too_short())?;
                let x = if f.little { f32::from_le_bytes(b) } else { f32::from_be_bytes(b) };
                out.push(Value::Number(x as f64));
            }
            b'd' => {
                let b: [u8; 8] = data[pos..pos + 8].try_into().map_err(|_| too_short())?;
                out.push(Value::Number(if f.little { f64::from_le_bytes(b) } else { f64::from_be_bytes(b) }));
            }
            b'c' => {
                if size == 0 {
                    // The number read just before (a string that reads as one counts).
                    let n = match out.last() {
                        Some(Value::Number(x)) => Some(*x),
                        Some(Value::Integer(x)) => Some(*x as f64),
                        Some(Value::String(s)) => s.to_str().ok().and_then(|s| super::parse_lua_number(&s)),
                        _ => None,
                    };
                    let Some(n) = n else { return Err(err("format 'c0' needs a previous size")) };
                    out.pop();
                    size = n as i64 as usize;
                    if !(size <= ld && pos <= ld - size) {
                        return Err(too_short());
                    }
                }
                out.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(len) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(err("unfinished string in data"));
                };
                out.push(Value::String(lua.create_string(&data[pos..pos + len])?));
                size = len + 1;
            }
            _ => f.control(opt, "unpack")?,
        }
        pos = pos.wrapping_add(size);
    }
    out.push(Value::Number(pos.wrapping_add(1) as i64 as f64));
    Ok(MultiValue::from_iter(out))
}

fn size(args: &MultiValue) -> mlua::Result<f64> {
    let fmt = format_arg(args, "size")?;
    let mut f = Format::new(&fmt);
    let mut pos = 0usize;
    while let Some(opt) = f.option() {
        let size = f.size_of(opt)?;
        pos = pos.wrapping_add(f.padding(pos, opt, size));
        if opt == b's' {
            return Err(arg_err(1, "size", "option 's' has no fixed size"));
        }
        if opt == b'c' && size == 0 {
            return Err(arg_err(1, "size", "option 'c0' has no fixed size"));
        }
        // Letters it does not know count as nothing here (pack and unpack refuse them).
        if !opt.is_ascii_alphanumeric() {
            f.control(opt, "size")?;
        }
        pos = pos.wrapping_add(size);
    }
    Ok(pos as i64 as f64)
}
