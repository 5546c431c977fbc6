//! The compact encoding of small hashes (what OBJECT ENCODING calls `listpack`): every
//! field and value in one byte buffer, pairs in insertion order.
//!
//! # Layout
//! `[count: u8][field][value][field][value]...`, where `count` is the number of pairs
//! (saturated at 255: then the pairs are counted by walking). An empty pack has no
//! buffer at all. Each element starts with a header byte:
//!
//! | header | element |
//! |---|---|
//! | `0x00..=0x7F` | the integer 0..=127, nothing follows |
//! | `0x80..=0xBF` | a string of `header - 0x80` (0..=63) bytes |
//! | `0xC0..=0xDF` | an integer -4096..=4095: 13 bits, `(header & 0x1F) << 8 \| next byte` |
//! | `0xE0..=0xEF` | a string of `(header & 0x0F) << 8 \| next byte` (0..=4095) bytes |
//! | `0xF0..=0xF7` | an integer in `(header & 7) + 1` little-endian two's-complement bytes |
//! | `0xF8` | a string whose length follows as a u32 LE |
//!
//! A string that is the canonical decimal form of an i64 ("12", "-7", not "012" or
//! "+1") is always stored as an integer, so it reads back identical and a lookup knows
//! which form to compare. One byte of overhead per short element (Redis's listpack
//! spends two: an encoding byte and a back-length byte), and small integers take one
//! or two bytes in all. Redis walks its listpacks backwards, which the back-length
//! allows; nothing here needs that.
//!
//! The buffer grows and shrinks exactly (one reallocation per change, as Redis's
//! listpack does), so a pack of ten short pairs costs its bytes and nothing more.

use super::Elem;
use crate::value::parse_canonical_i64;

const COUNT_BYTES: usize = 1;
const SATURATED: u8 = u8::MAX;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pack {
    buf: Vec<u8>,
}

/// Where a pair lives in the buffer.
#[derive(Clone, Copy, Debug)]
struct Found {
    field_at: usize,
    value_at: usize,
    end: usize,
}

impl Pack {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        match self.stored_count() {
            SATURATED => self.iter().count(),
            n => n as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.len() <= COUNT_BYTES
    }

    /// Bytes used by the encoding (what Redis's `lpBytes` measures for its own).
    pub fn bytes_len(&self) -> usize {
        self.buf.len()
    }

    fn stored_count(&self) -> u8 {
        self.buf.first().copied().unwrap_or(0)
    }

    fn set_count(&mut self, n: usize) {
        self.buf[0] = n.min(SATURATED as usize) as u8;
    }

    /// The pairs in order.
    pub fn iter(&self) -> PackIter<'_> {
        PackIter { buf: &self.buf, at: COUNT_BYTES.min(self.buf.len()) }
    }

    pub fn get(&self, field: &[u8]) -> Option<Elem<'_>> {
        let f = self.find(field)?;
        Some(decode(&self.buf, f.value_at).0)
    }

    /// The pair at position `index` (0-based, in order).
    pub fn pair_at(&self, index: usize) -> Option<(Elem<'_>, Elem<'_>)> {
        self.iter().nth(index)
    }

    fn find(&self, field: &[u8]) -> Option<Found> {
        let int = parse_canonical_i64(field);
        let mut at = COUNT_BYTES;
        while at < self.buf.len() {
            let (f, value_at) = decode(&self.buf, at);
            let end = skip(&self.buf, value_at);
            let hit = match (f, int) {
                (Elem::Int(n), Some(q)) => n == q,
                (Elem::Str(s), None) => s == field,
                _ => false,
            };
            if hit {
                return Some(Found { field_at: at, value_at, end });
            }
            at = end;
        }
        None
    }

    /// Sets `field` to `value`; a new field goes last, an existing one keeps its
    /// place. Returns whether the field is new.
    pub fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        if let Some(f) = self.find(field) {
            let mut enc = Vec::with_capacity(encoded_len(value));
            encode(&mut enc, value);
            let old = f.end - f.value_at;
            if enc.len() > old {
                self.buf.reserve_exact(enc.len() - old);
            }
            let shrinks = enc.len() < old;
            self.buf.splice(f.value_at..f.end, enc);
            if shrinks {
                self.buf.shrink_to_fit();
            }
            return false;
        }
        let n = self.len();
        if self.buf.is_empty() {
            self.buf.reserve_exact(COUNT_BYTES + encoded_len(field) + encoded_len(value));
            self.buf.push(0);
        } else {
            self.buf.reserve_exact(encoded_len(field) + encoded_len(value));
        }
        encode(&mut self.buf, field);
        encode(&mut self.buf, value);
        self.set_count(n + 1);
        true
    }

    /// Removes `field`; returns whether it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        let Some(f) = self.find(field) else { return false };
        let n = self.len();
        self.buf.drain(f.field_at..f.end);
        if n == 1 {
            self.buf = Vec::new();
        } else {
            self.set_count(n - 1);
            self.buf.shrink_to_fit();
        }
        true
    }
}

/// Iterator over the pairs of a [`Pack`].
pub struct PackIter<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for PackIter<'a> {
    type Item = (Elem<'a>, Elem<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.buf.len() {
            return None;
        }
        let (f, value_at) = decode(self.buf, self.at);
        let (v, end) = decode(self.buf, value_at);
        self.at = end;
        Some((f, v))
    }
}

/// Bytes `s` takes once encoded.
pub fn encoded_len(s: &[u8]) -> usize {
    match parse_canonical_i64(s) {
        Some(n) => int_len(n),
        None => string_header_len(s.len()) + s.len(),
    }
}

fn int_len(n: i64) -> usize {
    match n {
        0..=127 => 1,
        -4096..=4095 => 2,
        _ => 1 + int_width(n),
    }
}

/// Bytes of the smallest two's-complement form of `n`.
fn int_width(n: i64) -> usize {
    (1..8)
        .find(|&w| {
            let bits = 8 * w as u32;
            let min = -(1i64 << (bits - 1));
            let max = (1i64 << (bits - 1)) - 1;
            (min..=max).contains(&n)
        })
        .unwrap_or(8)
}

fn string_header_len(len: usize) -> usize {
    match len {
        0..=63 => 1,
        64..=4095 => 2,
        _ => 5,
    }
}

/// Appends the encoding of `s`.
pub fn encode(out: &mut Vec<u8>, s: &[u8]) {
    if let Some(n) = parse_canonical_i64(s) {
        match n {
            0..=127 => out.push(n as u8),
            -4096..=4095 => {
                let v = n as u16 & 0x1FFF;
                out.extend_from_slice(&[0xC0 | (v >> 8) as u8, v as u8]);
            }
            _ => {
                let w = int_width(n);
                out.push(0xF0 | (w as u8 - 1));
                out.extend_from_slice(&n.to_le_bytes()[..w]);
            }
        }
        return;
    }
    let len = s.len();
    match len {
        0..=63 => out.push(0x80 | len as u8),
        64..=4095 => out.extend_from_slice(&[0xE0 | (len >> 8) as u8, len as u8]),
        _ => {
            // Packs never hold strings of 4 GiB: the 1 GiB safety limit converts first.
            out.push(0xF8);
            out.extend_from_slice(&(len as u32).to_le_bytes());
        }
    }
    out.extend_from_slice(s);
}

/// The element at `at` and where the next one starts. The buffer is always one this
/// module wrote, so its headers are trusted.
fn decode(buf: &[u8], at: usize) -> (Elem<'_>, usize) {
    let h = buf[at];
    let (start, len) = match h {
        0x00..=0x7F => return (Elem::Int(h as i64), at + 1),
        0x80..=0xBF => (at + 1, (h & 0x3F) as usize),
        0xC0..=0xDF => {
            let raw = ((h & 0x1F) as u16) << 8 | buf[at + 1] as u16;
            // Sign-extend the 13 bits.
            return (Elem::Int(((raw << 3) as i16 >> 3) as i64), at + 2);
        }
        0xE0..=0xEF => (at + 2, ((h & 0x0F) as usize) << 8 | buf[at + 1] as usize),
        0xF0..=0xF7 => {
            let w = (h & 7) as usize + 1;
            let mut bytes = [0u8; 8];
            bytes[..w].copy_from_slice(&buf[at + 1..at + 1 + w]);
            let shift = 64 - 8 * w as u32;
            let n = (i64::from_le_bytes(bytes) << shift) >> shift;
            return (Elem::Int(n), at + 1 + w);
        }
        _ => {
            let mut len = [0u8; 4];
            len.copy_from_slice(&buf[at + 1..at + 5]);
            (at + 5, u32::from_le_bytes(len) as usize)
        }
    };
    (Elem::Str(&buf[start..start + len]), start + len)
}

/// Where the element after the one at `at` starts.
fn skip(buf: &[u8], at: usize) -> usize {
    decode(buf, at).1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode(&mut v, s);
        assert_eq!(v.len(), encoded_len(s), "{:?}", String::from_utf8_lossy(s));
        v
    }

    #[test]
    fn elements_round_trip() {
        let long = vec![b'x'; 9000];
        let mid = vec![b'y'; 64];
        let (edge, past) = (vec![b'e'; 4095], vec![b'p'; 4096]);
        let cases: Vec<&[u8]> = vec![
            b"0",
            b"127",
            b"128",
            b"-1",
            b"-128",
            b"-129",
            b"32767",
            b"4095",
            b"4096",
            b"-4096",
            b"-4097",
            b"8388608",
            b"9223372036854775807",
            b"-9223372036854775808",
            b"9223372036854775808",
            b"01",
            b"-0",
            b"+1",
            b"",
            b"hello",
            &mid,
            &edge,
            &past,
            &long,
        ];
        for s in cases {
            let v = enc(s);
            let (e, next) = decode(&v, 0);
            assert_eq!(next, v.len());
            assert!(e.eq_bytes(s), "{:?} decoded as {:?}", String::from_utf8_lossy(s), e);
        }
    }

    #[test]
    fn encoding_sizes() {
        assert_eq!(enc(b"7"), [7]);
        assert_eq!(enc(b"-1"), [0xDF, 0xFF]);
        assert_eq!(enc(b"1000"), [0xC3, 0xE8]);
        assert_eq!(enc(b"-4096"), [0xD0, 0x00]);
        assert_eq!(enc(b"4096"), [0xF1, 0x00, 0x10]);
        assert_eq!(enc(b"ab"), [0x82, b'a', b'b']);
        assert_eq!(enc(b"007")[0], 0x83);
        assert_eq!(enc(&[b'z'; 100])[..2], [0xE0, 100]);
        assert_eq!(enc(&[b'z'; 4095])[..2], [0xEF, 0xFF]);
        assert_eq!(enc(&[b'z'; 9000])[..5], [0xF8, 0x28, 0x23, 0, 0]);
        assert_eq!(enc(b"-9223372036854775808")[0], 0xF7);
    }

    #[test]
    fn set_get_remove_keep_order() {
        let mut p = Pack::default();
        assert!(p.is_empty());
        assert!(p.set(b"a", b"1"));
        assert!(p.set(b"10", b"x"));
        assert!(p.set(b"c", b"hello"));
        assert!(!p.set(b"a", b"a much longer value than before"));
        assert_eq!(p.len(), 3);
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = p.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
        assert_eq!(pairs[0], (b"a".to_vec(), b"a much longer value than before".to_vec()));
        assert_eq!(pairs[1], (b"10".to_vec(), b"x".to_vec()));
        assert_eq!(p.get(b"10"), Some(Elem::Str(b"x")));
        assert_eq!(p.get(b"010"), None);
        assert_eq!(p.get(b"c"), Some(Elem::Str(b"hello")));
        assert!(!p.set(b"a", b"5"));
        assert_eq!(p.get(b"a"), Some(Elem::Int(5)));
        assert_eq!(p.bytes_len(), p.buf.capacity());
        assert!(p.remove(b"10"));
        assert!(!p.remove(b"10"));
        assert_eq!(p.len(), 2);
        assert_eq!(p.pair_at(1), Some((Elem::Str(b"c"), Elem::Str(b"hello"))));
        assert!(p.remove(b"a"));
        assert!(p.remove(b"c"));
        assert!(p.is_empty());
        assert_eq!(p.len(), 0);
        assert_eq!(p.bytes_len(), 0);
    }

    #[test]
    fn count_saturates_and_is_recounted() {
        // Built directly: inserting one by one is quadratic.
        let n = SATURATED as usize + 3;
        let mut p = Pack { buf: vec![0] };
        for i in 0..n {
            encode(&mut p.buf, format!("f{i}").as_bytes());
            encode(&mut p.buf, b"v");
        }
        p.set_count(n);
        assert_eq!(p.stored_count(), SATURATED);
        assert_eq!(p.len(), n);
        for i in 0..4 {
            assert!(p.remove(format!("f{i}").as_bytes()));
        }
        assert_eq!(p.len(), n - 4);
        assert_eq!(p.stored_count() as usize, n - 4);
    }

    #[test]
    fn ten_short_pairs_are_compact() {
        let mut p = Pack::default();
        for i in 0..10 {
            p.set(format!("field:{i}").as_bytes(), format!("value:{i}").as_bytes());
        }
        // A count byte, then 8 + 8 bytes per pair.
        assert_eq!(p.bytes_len(), 1 + 10 * 16);
    }

    /// Random sets and removes against an ordered model of Redis's listpack hash.
    #[test]
    fn matches_an_ordered_model() {
        let pool: Vec<Vec<u8>> = [
            "0",
            "1",
            "-1",
            "127",
            "128",
            "-4096",
            "4095",
            "4096",
            "-4097",
            "65536",
            "007",
            "-0",
            "+5",
            "",
            "a",
            "field",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .chain([vec![b'x'; 63], vec![b'x'; 64], vec![b'y'; 4095], vec![b'y'; 4096], vec![0, 255, 13, 10]])
        .collect();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut p = Pack::default();
        let mut model: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for _ in 0..5000 {
            let f = pool[(next() % pool.len() as u64) as usize].clone();
            if next() % 3 == 0 {
                let had = model.iter().position(|(k, _)| *k == f);
                if let Some(i) = had {
                    model.remove(i);
                }
                assert_eq!(p.remove(&f), had.is_some());
            } else {
                let v = pool[(next() % pool.len() as u64) as usize].clone();
                let new = match model.iter_mut().find(|(k, _)| *k == f) {
                    Some(pair) => {
                        pair.1 = v.clone();
                        false
                    }
                    None => {
                        model.push((f.clone(), v.clone()));
                        true
                    }
                };
                assert_eq!(p.set(&f, &v), new);
            }
            let got: Vec<(Vec<u8>, Vec<u8>)> = p.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            assert_eq!(got, model);
            assert_eq!(p.len(), model.len());
            assert_eq!(p.bytes_len(), p.buf.capacity());
        }
    }
}
