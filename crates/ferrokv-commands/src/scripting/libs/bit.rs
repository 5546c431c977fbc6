//! `bit`: LuaBitOp 1.0 as Redis bundles it. Numbers are taken modulo 2^32 (rounded to
//! the nearest integer first, as LuaBitOp's `2^52+2^51` trick does) and results are
//! signed 32-bit numbers.

use super::number_arg;
use mlua::{Lua, MultiValue, Table, Value};

/// LuaBitOp's `barg`: the low 32 bits of the number rounded to nearest, ties to even.
fn bits(v: &Value, n: usize, fname: &str) -> mlua::Result<u32> {
    let x = number_arg(v, n, fname)?;
    Ok(to_bits(x))
}

pub fn to_bits(x: f64) -> u32 {
    if !x.is_finite() {
        return 0;
    }
    let r = x.round_ties_even();
    let m = r % 4294967296.0;
    let m = if m < 0.0 { m + 4294967296.0 } else { m };
    m as u64 as u32
}

fn ret(b: u32) -> f64 {
    b as i32 as f64
}

fn arg(args: &MultiValue, i: usize) -> &Value {
    args.get(i).unwrap_or(&Value::Nil)
}

pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("tobit", super::function(lua, |_, a: MultiValue| Ok(ret(bits(arg(&a, 0), 1, "tobit")?)))?)?;
    t.raw_set("bnot", super::function(lua, |_, a: MultiValue| Ok(ret(!bits(arg(&a, 0), 1, "bnot")?)))?)?;
    t.raw_set("bswap", super::function(lua, |_, a: MultiValue| Ok(ret(bits(arg(&a, 0), 1, "bswap")?.swap_bytes())))?)?;
    for (name, op) in [("band", 0u8), ("bor", 1), ("bxor", 2)] {
        t.raw_set(
            name,
            super::function(lua, move |_, a: MultiValue| {
                let mut acc = bits(arg(&a, 0), 1, name)?;
                for i in 1..a.len() {
                    let b = bits(&a[i], i + 1, name)?;
                    acc = match op {
                        0 => acc & b,
                        1 => acc | b,
                        _ => acc ^ b,
                    };
                }
                Ok(ret(acc))
            })?,
        )?;
    }
    for (name, op) in [("lshift", 0u8), ("rshift", 1), ("arshift", 2), ("rol", 3), ("ror", 4)] {
        t.raw_set(
            name,
            super::function(lua, move |_, a: MultiValue| {
                let b = bits(arg(&a, 0), 1, name)?;
                let n = bits(arg(&a, 1), 2, name)? & 31;
                Ok(ret(match op {
                    0 => b << n,
                    1 => b >> n,
                    2 => ((b as i32) >> n) as u32,
                    3 => b.rotate_left(n),
                    _ => b.rotate_right(n),
                }))
            })?,
        )?;
    }
    t.raw_set(
        "tohex",
        super::function(lua, |lua, a: MultiValue| {
            let b = bits(arg(&a, 0), 1, "tohex")?;
            let n = match a.get(1) {
                None | Some(Value::Nil) => 8i32,
                Some(v) => bits(v, 2, "tohex")? as i32,
            };
            let upper = n < 0;
            let n = n.unsigned_abs().min(8) as usize;
            let mut s = if upper { format!("{b:08X}") } else { format!("{b:08x}") };
            s = s[8 - n..].to_string();
            lua.create_string(s)
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::to_bits;

    #[test]
    fn numbers_wrap_modulo_2_32_after_rounding() {
        assert_eq!(to_bits(1.0), 1);
        assert_eq!(to_bits(-1.0), u32::MAX);
        assert_eq!(to_bits(4294967296.0 + 5.0), 5);
        assert_eq!(to_bits(2.5), 2, "ties to even");
        assert_eq!(to_bits(3.5), 4);
    }
}
