//! Values. Strings keep Redis's three encodings visible to OBJECT ENCODING: `int` for
//! canonical 64-bit integers, `embstr` for short strings created whole, `raw` otherwise.
//! Collections live in their own modules ([`crate::hash`], [`crate::list`],
//! [`crate::set`], [`crate::zset`]), boxed so that a string entry stays small.

use crate::{hash::HashValue, list::ListValue, set::SetValue, zset::ZSetValue};

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string holding the canonical decimal form of an i64.
    Int(i64),
    /// Any other string. `raw` is true once it was modified in place (APPEND,
    /// SETRANGE, SETBIT), which Redis reports as `raw` whatever its length.
    Str {
        bytes: Vec<u8>,
        raw: bool,
    },
    Hash(Box<HashValue>),
    List(Box<ListValue>),
    Set(Box<SetValue>),
    ZSet(Box<ZSetValue>),
}

impl Value {
    /// A string value as SET would store it.
    pub fn string(b: &[u8]) -> Value {
        match parse_canonical_i64(b) {
            Some(n) => Value::Int(n),
            None => Value::Str { bytes: b.to_vec(), raw: false },
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) | Value::Str { .. } => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Str { bytes, raw } => {
                if !raw && bytes.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            Value::Hash(h) => h.encoding(),
            Value::List(l) => l.encoding(),
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
        }
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Str { .. })
    }
}

/// An i64 whose decimal form is exactly `b` (no sign on zero, no leading zeros, no
/// spaces): Redis's `string2ll` acceptance, which also decides the `int` encoding.
pub fn parse_canonical_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let (neg, digits) = if b[0] == b'-' { (true, &b[1..]) } else { (false, b) };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v <= i64::MAX as u64 + 1 {
            Some((v as i64).wrapping_neg())
        } else {
            None
        }
    } else if v <= i64::MAX as u64 {
        Some(v as i64)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_integers() {
        assert_eq!(parse_canonical_i64(b"123"), Some(123));
        assert_eq!(parse_canonical_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_canonical_i64(b"9223372036854775808"), None);
        assert_eq!(parse_canonical_i64(b"007"), None);
        assert_eq!(parse_canonical_i64(b"-0"), None);
        assert_eq!(parse_canonical_i64(b" 1"), None);
        assert_eq!(parse_canonical_i64(b"+1"), None);
    }
}
