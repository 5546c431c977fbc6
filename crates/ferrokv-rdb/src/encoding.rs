//! Lengths and strings as RDB stores them.
//!
//! A length is 6 bits in one byte (`00`), 14 bits in two (`01`, big-endian), or a
//! marker byte `0x80` / `0x81` followed by 32 or 64 bits big-endian. A first byte `11`
//! instead announces a special string encoding: an 8, 16 or 32-bit signed integer
//! (little-endian), or LZF-compressed bytes (compressed length, original length, data).

use crate::DecodeError;

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// Appends `len` in RDB's length encoding.
pub fn write_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// A length or a special encoding's number, as read at the start of a string.
enum Len {
    Plain(u64),
    Encoded(u8),
}

/// A reader over RDB bytes.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.data.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.data.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn len_or_encoding(&mut self) -> Result<Len, DecodeError> {
        let first = self.byte()?;
        Ok(match first >> 6 {
            0 => Len::Plain((first & 0x3f) as u64),
            1 => Len::Plain((((first & 0x3f) as u64) << 8) | self.byte()? as u64),
            3 => Len::Encoded(first & 0x3f),
            _ => match first {
                0x80 => Len::Plain(u32::from_be_bytes(self.bytes(4)?.try_into().expect("4 bytes")) as u64),
                0x81 => Len::Plain(u64::from_be_bytes(self.bytes(8)?.try_into().expect("8 bytes"))),
                _ => return Err(DecodeError::Invalid("length")),
            },
        })
    }

    /// A plain length.
    pub fn length(&mut self) -> Result<u64, DecodeError> {
        match self.len_or_encoding()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => Err(DecodeError::Invalid("length")),
        }
    }

    /// Steps over a string in any of its encodings without decoding it.
    pub fn skip_string(&mut self) -> Result<(), DecodeError> {
        match self.len_or_encoding()? {
            Len::Plain(n) => {
                let n = usize::try_from(n).map_err(|_| DecodeError::Truncated)?;
                self.bytes(n)?;
            }
            Len::Encoded(ENC_INT8) => drop(self.bytes(1)?),
            Len::Encoded(ENC_INT16) => drop(self.bytes(2)?),
            Len::Encoded(ENC_INT32) => drop(self.bytes(4)?),
            Len::Encoded(ENC_LZF) => {
                let clen = usize::try_from(self.length()?).map_err(|_| DecodeError::Truncated)?;
                self.length()?;
                self.bytes(clen)?;
            }
            Len::Encoded(_) => return Err(DecodeError::Invalid("string encoding")),
        }
        Ok(())
    }

    /// A string in any of its encodings, as its bytes (an integer as its decimal text).
    pub fn string(&mut self) -> Result<Vec<u8>, DecodeError> {
        match self.len_or_encoding()? {
            Len::Plain(n) => {
                let n = usize::try_from(n).map_err(|_| DecodeError::Truncated)?;
                Ok(self.bytes(n)?.to_vec())
            }
            Len::Encoded(ENC_INT8) => Ok((self.byte()? as i8).to_string().into_bytes()),
            Len::Encoded(ENC_INT16) => {
                let b = self.bytes(2)?;
                Ok(i16::from_le_bytes([b[0], b[1]]).to_string().into_bytes())
            }
            Len::Encoded(ENC_INT32) => {
                let b = self.bytes(4)?;
                Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_string().into_bytes())
            }
            Len::Encoded(ENC_LZF) => {
                let clen = usize::try_from(self.length()?).map_err(|_| DecodeError::Truncated)?;
                let len = usize::try_from(self.length()?).map_err(|_| DecodeError::Truncated)?;
                let data = self.bytes(clen)?;
                crate::lzf::decompress(data, len)
            }
            Len::Encoded(_) => Err(DecodeError::Invalid("string encoding")),
        }
    }
}

/// The integer `s` stands for when it is in canonical form (what Redis's `string2ll`
/// accepts and prints back the same: no sign on 0, no leading zeros, no spaces).
fn canonical_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let text = std::str::from_utf8(s).ok()?;
    let n: i64 = text.parse().ok()?;
    (n.to_string().as_bytes() == s).then_some(n)
}

/// Appends the string `s` as Redis writes it without compression (`rdbSaveRawString`
/// with `rdbcompression no`, or a string of at most 20 bytes): as an 8/16/32-bit
/// integer when it is one in canonical form and at most 11 bytes long, else raw.
pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11 {
        if let Some(n) = canonical_int(s) {
            if write_int(out, n) {
                return;
            }
        }
    }
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Appends the string `s` as Redis writes it (`rdbSaveRawString`): an integer
/// encoding when it is one, else, with `compress` (`rdbcompression yes`) and more than
/// 20 bytes, LZF-compressed when that saves at least 4 bytes, else raw.
pub fn write_string_compressed(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if compress && s.len() > 20 {
        if let Some(c) = crate::lzf::compress(s, s.len() - 4) {
            out.push(0xc0 | ENC_LZF);
            write_len(out, c.len() as u64);
            write_len(out, s.len() as u64);
            out.extend_from_slice(&c);
            return;
        }
    }
    write_string(out, s);
}

/// Appends `n` in the smallest integer encoding; false (nothing written) when it does
/// not fit in 32 bits.
pub fn write_int(out: &mut Vec<u8>, n: i64) -> bool {
    if let Ok(v) = i8::try_from(n) {
        out.push(0xc0 | ENC_INT8);
        out.push(v as u8);
    } else if let Ok(v) = i16::try_from(n) {
        out.push(0xc0 | ENC_INT16);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = i32::try_from(n) {
        out.push(0xc0 | ENC_INT32);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lengths_at_the_edges() {
        for (n, bytes) in [
            (0u64, vec![0x00]),
            (63, vec![0x3f]),
            (64, vec![0x40, 0x40]),
            (16383, vec![0x7f, 0xff]),
            (16384, vec![0x80, 0, 0, 0x40, 0]),
            (u32::MAX as u64, vec![0x80, 0xff, 0xff, 0xff, 0xff]),
            (u32::MAX as u64 + 1, vec![0x81, 0, 0, 0, 1, 0, 0, 0, 0]),
        ] {
            let mut out = Vec::new();
            write_len(&mut out, n);
            assert_eq!(out, bytes, "{n}");
            assert_eq!(Reader::new(&out).length(), Ok(n));
        }
    }

    #[test]
    fn integers_use_the_smallest_encoding() {
        let enc = |s: &str| {
            let mut out = Vec::new();
            write_string(&mut out, s.as_bytes());
            out
        };
        assert_eq!(enc("12"), [0xc0, 12]);
        assert_eq!(enc("-128"), [0xc0, 0x80]);
        assert_eq!(enc("300"), [0xc1, 0x2c, 0x01]);
        assert_eq!(enc("100000"), [0xc2, 0xa0, 0x86, 0x01, 0x00]);
        assert_eq!(
            enc("4294967296"),
            [10, b'4', b'2', b'9', b'4', b'9', b'6', b'7', b'2', b'9', b'6'],
            "over 32 bits: raw"
        );
        assert_eq!(enc("012"), [3, b'0', b'1', b'2'], "not canonical: raw");
        assert_eq!(enc("+1"), [2, b'+', b'1']);
        assert_eq!(enc(""), [0]);
    }

    proptest! {
        #[test]
        fn strings_round_trip(s in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut out = Vec::new();
            write_string(&mut out, &s);
            let mut r = Reader::new(&out);
            prop_assert_eq!(r.string().unwrap(), s);
            prop_assert_eq!(r.remaining(), 0);
        }

        #[test]
        fn numbers_round_trip(n in any::<i64>()) {
            let s = n.to_string();
            let mut out = Vec::new();
            write_string(&mut out, s.as_bytes());
            prop_assert_eq!(Reader::new(&out).string().unwrap(), s.into_bytes());
        }

        #[test]
        fn any_bytes_decode_without_panicking(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Reader::new(&data).string();
        }
    }
}
