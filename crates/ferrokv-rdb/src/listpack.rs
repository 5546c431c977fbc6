//! Listpacks, the compact encoding Redis 7.0 stores small hashes, sorted sets and
//! list nodes in (and writes into RDB files as one string).
//!
//! Layout: total bytes (u32 LE), element count (u16 LE, 65535 when it does not fit),
//! the entries, then `0xFF`. An entry is its encoding and data, then the length of
//! those two written backwards (7 bits a byte, so it can be read from the end). An
//! element that is an integer in canonical form is stored as the smallest integer
//! encoding (7-bit unsigned, 13, 16, 24, 32 or 64-bit signed), anything else as a
//! string with a 6, 12 or 32-bit length.

use crate::DecodeError;

const EOF: u8 = 0xff;

/// Builds a listpack, element by element.
pub struct ListpackWriter {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ListpackWriter {
    fn default() -> Self {
        ListpackWriter { buf: vec![0; 6], count: 0 }
    }
}

/// The integer `s` is in canonical form (Redis's `lpStringToInt64`).
fn as_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    let n: i64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    (n.to_string().as_bytes() == s).then_some(n)
}

impl ListpackWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one element.
    pub fn push(&mut self, e: &[u8]) {
        let start = self.buf.len();
        match as_int(e) {
            Some(v) => self.push_int(v),
            None => {
                let len = e.len();
                if len < 64 {
                    self.buf.push(0x80 | len as u8);
                } else if len < 4096 {
                    self.buf.push(0xe0 | (len >> 8) as u8);
                    self.buf.push(len as u8);
                } else {
                    self.buf.push(0xf0);
                    self.buf.extend_from_slice(&(len as u32).to_le_bytes());
                }
                self.buf.extend_from_slice(e);
            }
        }
        let entry = (self.buf.len() - start) as u64;
        write_backlen(&mut self.buf, entry);
        self.count += 1;
    }

    fn push_int(&mut self, v: i64) {
        let b = &mut self.buf;
        if (0..=127).contains(&v) {
            b.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = if v < 0 { (1 << 13) + v } else { v } as u64;
            b.push(0xc0 | (u >> 8) as u8);
            b.push(u as u8);
        } else if (-32768..=32767).contains(&v) {
            b.push(0xf1);
            b.extend_from_slice(&(v as i16).to_le_bytes());
        } else if (-8388608..=8388607).contains(&v) {
            b.push(0xf2);
            b.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
            b.push(0xf3);
            b.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            b.push(0xf4);
            b.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// The finished listpack's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(EOF);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let count = self.count.min(u16::MAX as usize) as u16;
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

/// The entry-length suffix, most significant 7 bits first, every byte but the first
/// (lowest address) with its high bit set (Redis's `lpEncodeBacklen`).
fn write_backlen(out: &mut Vec<u8>, l: u64) {
    let n = match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    };
    for i in (0..n).rev() {
        let part = ((l >> (7 * i)) & 127) as u8;
        out.push(if i == n - 1 { part } else { part | 128 });
    }
}

/// The elements of a listpack, as bytes (integers as their decimal text). Checks the
/// header, every entry's bounds and back-length, and the terminator.
pub fn elements(lp: &[u8]) -> Result<Vec<Vec<u8>>, DecodeError> {
    if lp.len() < 7 {
        return Err(DecodeError::Invalid("listpack header"));
    }
    let total = u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize;
    let count = u16::from_le_bytes([lp[4], lp[5]]) as usize;
    if total != lp.len() || lp[total - 1] != EOF {
        return Err(DecodeError::Invalid("listpack size"));
    }
    let mut out = Vec::with_capacity(count.min(lp.len()));
    let mut p = 6;
    let end = total - 1;
    let take = |p: usize, n: usize| lp.get(p..p + n).filter(|_| p + n <= end).ok_or(DecodeError::Truncated);
    while p < end {
        let b = lp[p];
        let (value, enc_len): (Vec<u8>, usize) = if b & 0x80 == 0 {
            ((b as i64).to_string().into_bytes(), 1)
        } else if b & 0xc0 == 0x80 {
            let n = (b & 0x3f) as usize;
            (take(p + 1, n)?.to_vec(), 1 + n)
        } else if b & 0xe0 == 0xc0 {
            let lo = *take(p + 1, 1)?.first().unwrap_or(&0) as i64;
            let u = (((b & 0x1f) as i64) << 8) | lo;
            let v = if u >= 1 << 12 { u - (1 << 13) } else { u };
            (v.to_string().into_bytes(), 2)
        } else if b & 0xf0 == 0xe0 {
            let lo = *take(p + 1, 1)?.first().unwrap_or(&0) as usize;
            let n = (((b & 0x0f) as usize) << 8) | lo;
            (take(p + 2, n)?.to_vec(), 2 + n)
        } else {
            match b {
                0xf1 => {
                    let d = take(p + 1, 2)?;
                    (i16::from_le_bytes([d[0], d[1]]).to_string().into_bytes(), 3)
                }
                0xf2 => {
                    let d = take(p + 1, 3)?;
                    let v = i32::from_le_bytes([0, d[0], d[1], d[2]]) >> 8;
                    (v.to_string().into_bytes(), 4)
                }
                0xf3 => {
                    let d = take(p + 1, 4)?;
                    (i32::from_le_bytes([d[0], d[1], d[2], d[3]]).to_string().into_bytes(), 5)
                }
                0xf4 => {
                    let d = take(p + 1, 8)?;
                    (i64::from_le_bytes(d.try_into().expect("8 bytes")).to_string().into_bytes(), 9)
                }
                0xf0 => {
                    let d = take(p + 1, 4)?;
                    let n = u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize;
                    (take(p + 5, n)?.to_vec(), 5 + n)
                }
                _ => return Err(DecodeError::Invalid("listpack entry encoding")),
            }
        };
        let mut suffix = Vec::new();
        write_backlen(&mut suffix, enc_len as u64);
        if take(p + enc_len, suffix.len())? != suffix.as_slice() {
            return Err(DecodeError::Invalid("listpack entry back-length"));
        }
        p += enc_len + suffix.len();
        out.push(value);
    }
    if count != u16::MAX as usize && count != out.len() {
        return Err(DecodeError::Invalid("listpack element count"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integers_and_strings_at_the_edges() {
        let values: Vec<Vec<u8>> = [
            "0",
            "127",
            "128",
            "-1",
            "-4096",
            "4095",
            "4096",
            "-32768",
            "32767",
            "32768",
            "-8388608",
            "8388607",
            "8388608",
            "-2147483648",
            "2147483647",
            "2147483648",
            "9223372036854775807",
            "-9223372036854775808",
            "",
            "a",
            "-0",
            "01",
            "+1",
            "18446744073709551616",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .chain([vec![b'x'; 63], vec![b'y'; 64], vec![b'z'; 4095], vec![b'w'; 4096]])
        .collect();
        let mut w = ListpackWriter::new();
        for v in &values {
            w.push(v);
        }
        let lp = w.finish();
        assert_eq!(elements(&lp).unwrap(), values);
        let mut w = ListpackWriter::new();
        w.push(b"1");
        w.push(b"hello");
        assert_eq!(w.finish(), [16, 0, 0, 0, 2, 0, 1, 1, 0x85, b'h', b'e', b'l', b'l', b'o', 6, 0xff]);
    }

    proptest! {
        #[test]
        fn round_trip(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..40)) {
            let mut w = ListpackWriter::new();
            for v in &values {
                w.push(v);
            }
            let lp = w.finish();
            let back = elements(&lp).unwrap();
            for (a, b) in back.iter().zip(&values) {
                // Canonical integers come back as their text: the same bytes.
                prop_assert_eq!(a, b);
            }
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = elements(&data);
        }
    }
}
