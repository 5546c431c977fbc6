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
        bytes: StrBytes,
        raw: bool,
    },
    /// Unboxed: 24 bytes fit beside the tag, saving an allocation per hash.
    Hash(HashValue),
    List(Box<ListValue>),
    Set(Box<SetValue>),
    ZSet(Box<ZSetValue>),
}

impl Value {
    /// A string value as SET would store it.
    pub fn string(b: &[u8]) -> Value {
        match parse_canonical_i64(b) {
            Some(n) => Value::Int(n),
            None => Value::Str { bytes: b.into(), raw: false },
        }
    }

    /// [`Value::string`] of bytes already owned: a long string keeps its buffer (no
    /// copy), as RESTORE and loads build them.
    pub fn string_owned(b: Vec<u8>) -> Value {
        match parse_canonical_i64(&b) {
            Some(n) => Value::Int(n),
            None => Value::Str { bytes: b.into(), raw: false },
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

/// The bytes of a string value: up to [`StrBytes::INLINE`] bytes inside the value
/// itself, longer ones in a heap buffer (with spare capacity for APPEND and SETRANGE).
///
/// Inline small values save an allocation per key (about 32 bytes with the allocator's
/// overhead) and the `free` of the old value on every overwrite, which profiles showed
/// at 7-11% of CPU under SET load; at 24 bytes it keeps `Value` at 32.
#[derive(Clone)]
pub enum StrBytes {
    Inline { len: u8, buf: [u8; StrBytes::INLINE] },
    Heap(Vec<u8>),
}

impl StrBytes {
    pub const INLINE: usize = 15;

    pub fn new() -> Self {
        StrBytes::Inline { len: 0, buf: [0; Self::INLINE] }
    }

    /// The bytes as a growable buffer, for in-place edits (moved to the heap if inline).
    pub fn as_vec(&mut self) -> &mut Vec<u8> {
        if let StrBytes::Inline { len, buf } = self {
            let v = buf[..*len as usize].to_vec();
            *self = StrBytes::Heap(v);
        }
        match self {
            StrBytes::Heap(v) => v,
            StrBytes::Inline { .. } => unreachable!("moved to the heap above"),
        }
    }

    pub fn into_vec(self) -> Vec<u8> {
        match self {
            StrBytes::Inline { len, buf } => buf[..len as usize].to_vec(),
            StrBytes::Heap(v) => v,
        }
    }
}

impl Default for StrBytes {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for StrBytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            StrBytes::Inline { len, buf } => &buf[..*len as usize],
            StrBytes::Heap(v) => v,
        }
    }
}

impl std::ops::DerefMut for StrBytes {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            StrBytes::Inline { len, buf } => &mut buf[..*len as usize],
            StrBytes::Heap(v) => v,
        }
    }
}

impl From<&[u8]> for StrBytes {
    #[inline]
    fn from(b: &[u8]) -> Self {
        if b.len() <= Self::INLINE {
            let mut buf = [0; Self::INLINE];
            buf[..b.len()].copy_from_slice(b);
            StrBytes::Inline { len: b.len() as u8, buf }
        } else {
            StrBytes::Heap(b.to_vec())
        }
    }
}

impl From<Vec<u8>> for StrBytes {
    #[inline]
    fn from(v: Vec<u8>) -> Self {
        if v.len() <= Self::INLINE {
            StrBytes::from(&v[..])
        } else {
            StrBytes::Heap(v)
        }
    }
}

impl PartialEq for StrBytes {
    fn eq(&self, o: &Self) -> bool {
        **self == **o
    }
}

impl Eq for StrBytes {}

impl std::fmt::Debug for StrBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
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
    fn short_strings_are_inline() {
        assert_eq!(std::mem::size_of::<Value>(), 32);
        for len in [0, 1, StrBytes::INLINE, StrBytes::INLINE + 1, 100] {
            let b: Vec<u8> = (0..len as u8).collect();
            let mut s = StrBytes::from(&b[..]);
            assert_eq!(&*s, &b[..]);
            assert_eq!(matches!(s, StrBytes::Inline { .. }), len <= StrBytes::INLINE);
            s.as_vec().push(7);
            assert_eq!(s.len(), len + 1);
            assert!(matches!(s, StrBytes::Heap(_)));
        }
    }

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
