//! Small sorted sets in one byte buffer, in (score, member) order: Redis's listpack
//! encoding, packed tighter.
//!
//! An entry is a member then its score, each starting with a LEB128 varint header:
//! - member: `len << 1` then the bytes, or `zigzag(n) << 1 | 1` for a member that is
//!   the canonical decimal form of an integer `n` (|n| < 2^62), as listpack stores
//!   integers as integers;
//! - score: `zigzag(n) << 1` for an integral score (|n| < 2^53);
//!   `(zigzag(m) << 4 | k) << 2 | 1` for a score that is exactly `m / 10^k` (k in
//!   1..=15, |m| < 2^53), so that `1.5` takes 2 bytes; else the byte 3 and the 8
//!   bytes of the f64. Each form decodes to exactly the double it encodes.
//!
//! There are no back-pointers: a reverse walk first collects the entry offsets. Like a
//! listpack, the buffer is kept at its exact size, and every operation is a linear
//! scan, fine for the few entries this encoding holds (`zset-max-listpack-entries`).
//!
//! Redis stores an integral score as an integer, so a listpack reads `-0` back as `0`;
//! [`Packed::insert`] does the same.

use super::{LexRange, ScoreRange};
use crate::value::parse_canonical_i64;
use std::cmp::Ordering;

/// Powers of ten a double holds exactly, for decimal scores.
const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
/// Scores below this magnitude are integers or decimal mantissas a double holds exactly.
const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
/// The header of a score stored as the 8 bytes of its f64.
const RAW_SCORE: u8 = 3;

#[derive(Clone, Debug, Default)]
pub(super) struct Packed {
    buf: Vec<u8>,
    len: u32,
}

/// A member as the buffer holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stored<'a> {
    Bytes(&'a [u8]),
    Int(i64),
}

impl<'a> Stored<'a> {
    /// How a member given as bytes is stored.
    fn of(m: &'a [u8]) -> Stored<'a> {
        match parse_canonical_i64(m) {
            Some(n) if n.unsigned_abs() < 1 << 62 => Stored::Int(n),
            _ => Stored::Bytes(m),
        }
    }

    /// The member's bytes (an integer formatted into `buf`).
    fn bytes<'b>(self, buf: &'b mut [u8; 20]) -> &'b [u8]
    where
        'a: 'b,
    {
        match self {
            Stored::Bytes(b) => b,
            Stored::Int(n) => format_i64(n, buf),
        }
    }
}

fn format_i64(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut v = n.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// One decoded entry: its member, its score, and where the next entry starts.
struct Entry<'a> {
    member: Stored<'a>,
    score: f64,
    end: usize,
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8], mut at: usize) -> (u64, usize) {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[at];
        at += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return (v, at);
        }
        shift += 7;
    }
}

fn encode_member(out: &mut Vec<u8>, m: Stored) {
    match m {
        Stored::Int(n) => put_varint(out, zigzag(n) << 1 | 1),
        Stored::Bytes(b) => {
            put_varint(out, (b.len() as u64) << 1);
            out.extend_from_slice(b);
        }
    }
}

/// Appends the shortest form of `x` (not NaN) that decodes to exactly `x` (`-0` as 0).
fn encode_score(out: &mut Vec<u8>, x: f64) {
    if x.is_finite() && x.abs() < EXACT {
        if x == x.trunc() {
            return put_varint(out, zigzag(x as i64) << 1);
        }
        for (k, &p) in POW10.iter().enumerate().skip(1) {
            let m = (x * p).round();
            if m.abs() >= EXACT {
                break;
            }
            if m / p == x {
                return put_varint(out, (zigzag(m as i64) << 4 | k as u64) << 2 | 1);
            }
        }
    }
    out.push(RAW_SCORE);
    out.extend_from_slice(&x.to_le_bytes());
}

fn decode(buf: &[u8], at: usize) -> Entry<'_> {
    let (h, mut at) = get_varint(buf, at);
    let member = if h & 1 == 1 {
        Stored::Int(unzigzag(h >> 1))
    } else {
        let n = (h >> 1) as usize;
        at += n;
        Stored::Bytes(&buf[at - n..at])
    };
    let (h, at) = get_varint(buf, at);
    let (score, end) = if h & 1 == 0 {
        (unzigzag(h >> 1) as f64, at)
    } else if h & 3 == 1 {
        let r = h >> 2;
        (unzigzag(r >> 4) as f64 / POW10[(r & 15) as usize], at)
    } else {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&buf[at..at + 8]);
        (f64::from_le_bytes(raw), at + 8)
    };
    Entry { member, score, end }
}

/// Orders a stored member against a member given as bytes, as `memcmp` would.
fn cmp_member(a: Stored, b: &[u8]) -> Ordering {
    a.bytes(&mut [0; 20]).cmp(b)
}

impl Packed {
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Bytes of the buffer (for the conversion limit Redis applies, 1 GB).
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    fn entries(&self) -> impl Iterator<Item = (usize, Entry<'_>)> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= self.buf.len() {
                return None;
            }
            let e = decode(&self.buf, at);
            let start = at;
            at = e.end;
            Some((start, e))
        })
    }

    /// Offsets where each entry starts (for reverse walks and access by rank).
    fn offsets(&self) -> Vec<usize> {
        self.entries().map(|(at, _)| at).collect()
    }

    /// The entry with member `m`: (offset, rank, entry).
    fn find(&self, m: &[u8]) -> Option<(usize, usize, Entry<'_>)> {
        let want = Stored::of(m);
        self.entries().enumerate().find(|(_, (_, e))| e.member == want).map(|(rank, (at, e))| (at, rank, e))
    }

    pub fn score(&self, m: &[u8]) -> Option<f64> {
        self.find(m).map(|(_, _, e)| e.score)
    }

    pub fn rank(&self, m: &[u8]) -> Option<usize> {
        self.find(m).map(|(_, rank, _)| rank)
    }

    /// Inserts a member that is not in the set, at its place in order.
    pub fn insert(&mut self, m: &[u8], score: f64) {
        let at = self
            .entries()
            .find(|(_, e)| e.score > score || (e.score == score && cmp_member(e.member, m) == Ordering::Greater))
            .map_or(self.buf.len(), |(at, _)| at);
        let mut enc = Vec::with_capacity(m.len() + 12);
        encode_member(&mut enc, Stored::of(m));
        encode_score(&mut enc, score);
        self.buf.reserve_exact(enc.len());
        self.buf.splice(at..at, enc);
        self.len += 1;
    }

    /// Appends a member that sorts after every element (building a set in order).
    pub fn push_back(&mut self, m: &[u8], score: f64) {
        encode_member(&mut self.buf, Stored::of(m));
        encode_score(&mut self.buf, score);
        self.len += 1;
    }

    /// Removes member `m`; returns whether it was there.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self.find(m) {
            Some((at, _, e)) => {
                let end = e.end;
                self.remove_bytes(at, end, 1);
                true
            }
            None => false,
        }
    }

    fn remove_bytes(&mut self, at: usize, end: usize, entries: usize) {
        self.buf.drain(at..end);
        self.len -= entries as u32;
        self.buf.shrink_to_fit();
    }

    /// Removes the entries of ranks `start..start + count`.
    pub fn remove_ranks(&mut self, start: usize, count: usize) {
        if count == 0 {
            return;
        }
        let mut it = self.entries().skip(start);
        let Some((at, first)) = it.next() else { return };
        let end = it.take(count - 1).last().map_or(first.end, |(_, e)| e.end);
        self.remove_bytes(at, end, count);
    }

    /// The member and score at `rank` (`rank < len`).
    pub fn get(&self, rank: usize, f: &mut dyn FnMut(&[u8], f64)) {
        if let Some((_, e)) = self.entries().nth(rank) {
            f(e.member.bytes(&mut [0; 20]), e.score);
        }
    }

    /// Calls `f` with members and scores from rank `from` on, towards the end or
    /// (`reverse`) the start, until it returns false.
    pub fn walk(&self, from: usize, reverse: bool, f: &mut dyn FnMut(&[u8], f64) -> bool) {
        let mut buf = [0u8; 20];
        if reverse {
            let offsets = self.offsets();
            for &at in offsets.iter().take(from.saturating_add(1)).rev() {
                let e = decode(&self.buf, at);
                if !f(e.member.bytes(&mut buf), e.score) {
                    return;
                }
            }
        } else {
            for (_, e) in self.entries().skip(from) {
                if !f(e.member.bytes(&mut buf), e.score) {
                    return;
                }
            }
        }
    }

    fn first_score(&self) -> Option<f64> {
        self.entries().next().map(|(_, e)| e.score)
    }

    fn last(&self) -> Option<Entry<'_>> {
        self.offsets().last().map(|&at| decode(&self.buf, at))
    }

    /// `zzlIsInRange`: whether some element may be in `r`.
    fn may_hold_scores(&self, r: &ScoreRange) -> bool {
        if r.is_empty() {
            return false;
        }
        match (self.last(), self.first_score()) {
            (Some(last), Some(first)) => r.gte_min(last.score) && r.lte_max(first),
            _ => false,
        }
    }

    /// `zzlFirstInRange`: rank of the first element in `r`.
    pub fn first_in_scores(&self, r: &ScoreRange) -> Option<usize> {
        if !self.may_hold_scores(r) {
            return None;
        }
        let (rank, (_, e)) = self.entries().enumerate().find(|(_, (_, e))| r.gte_min(e.score))?;
        r.lte_max(e.score).then_some(rank)
    }

    /// `zzlLastInRange`: rank of the last element in `r`.
    pub fn last_in_scores(&self, r: &ScoreRange) -> Option<usize> {
        if !self.may_hold_scores(r) {
            return None;
        }
        let offsets = self.offsets();
        for (rank, &at) in offsets.iter().enumerate().rev() {
            let e = decode(&self.buf, at);
            if r.lte_max(e.score) {
                return r.gte_min(e.score).then_some(rank);
            }
        }
        None
    }

    /// `zzlIsInLexRange`.
    fn may_hold_lex(&self, r: &LexRange) -> bool {
        if r.is_empty() {
            return false;
        }
        let mut buf = [0u8; 20];
        let Some(last) = self.last() else { return false };
        if !r.gte_min(last.member.bytes(&mut buf)) {
            return false;
        }
        self.entries().next().is_some_and(|(_, e)| r.lte_max(e.member.bytes(&mut buf)))
    }

    /// `zzlFirstInLexRange`: from the start, the first member at or above the
    /// minimum, if it is also within the maximum. Members out of order (different
    /// scores) give Redis's answer.
    pub fn first_in_lex(&self, r: &LexRange) -> Option<usize> {
        if !self.may_hold_lex(r) {
            return None;
        }
        let mut buf = [0u8; 20];
        for (rank, (_, e)) in self.entries().enumerate() {
            let m = e.member.bytes(&mut buf);
            if r.gte_min(m) {
                return r.lte_max(m).then_some(rank);
            }
        }
        None
    }

    /// `zzlLastInLexRange`.
    pub fn last_in_lex(&self, r: &LexRange) -> Option<usize> {
        if !self.may_hold_lex(r) {
            return None;
        }
        let mut buf = [0u8; 20];
        let offsets = self.offsets();
        for (rank, &at) in offsets.iter().enumerate().rev() {
            let e = decode(&self.buf, at);
            let m = e.member.bytes(&mut buf);
            if r.lte_max(m) {
                return r.gte_min(m).then_some(rank);
            }
        }
        None
    }

    /// Trims spare capacity (the buffer is kept exact, as a listpack).
    pub fn shrink_to_fit(&mut self) {
        self.buf.shrink_to_fit();
    }

    /// Bytes allocated on the heap.
    pub fn allocated_bytes(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(p: &Packed) -> Vec<(Vec<u8>, f64)> {
        let mut out = Vec::new();
        p.walk(0, false, &mut |m, s| {
            out.push((m.to_vec(), s));
            true
        });
        out
    }

    #[test]
    fn scores_round_trip_exactly_in_few_bytes() {
        let cases: &[(f64, usize)] = &[
            (0.0, 1),
            (1.0, 1),
            (-31.0, 1),
            (100.0, 2),
            (1.5, 2),
            (148.5, 3),
            (0.1, 2),
            (-2.25, 3),
            (1e15, 8),
            (123456.789, 5),
            (0.1 + 0.2, 9),
            (1e300, 9),
            (f64::INFINITY, 9),
            (f64::NEG_INFINITY, 9),
            (5e-324, 9),
            (9007199254740993.0, 9),
        ];
        for &(x, size) in cases {
            let mut buf = Vec::new();
            encode_member(&mut buf, Stored::Bytes(b""));
            encode_score(&mut buf, x);
            assert_eq!(buf.len() - 1, size, "size of {x}");
            let e = decode(&buf, 0);
            assert_eq!(e.score.to_bits(), x.to_bits(), "{x}");
            assert_eq!(e.end, buf.len());
        }
        // -0 is stored as the integer 0, as a listpack does.
        let mut buf = Vec::new();
        encode_member(&mut buf, Stored::Bytes(b"m"));
        encode_score(&mut buf, -0.0);
        assert_eq!(decode(&buf, 0).score.to_bits(), 0.0f64.to_bits());
    }

    #[test]
    fn members_that_are_integers_are_packed() {
        for m in [&b"0"[..], b"-1", b"123456", b"9223372036854775807", b"007", b"-0", b"", b"abc"] {
            let mut buf = Vec::new();
            encode_member(&mut buf, Stored::of(m));
            encode_score(&mut buf, 2.0);
            let e = decode(&buf, 0);
            assert_eq!(e.member.bytes(&mut [0; 20]), m);
        }
        assert_eq!(Stored::of(b"12"), Stored::Int(12));
        assert_eq!(Stored::of(b"012"), Stored::Bytes(b"012"));
        assert_eq!(Stored::of(b"9223372036854775807"), Stored::Bytes(b"9223372036854775807"));
    }

    #[test]
    fn keeps_score_then_member_order() {
        let mut p = Packed::default();
        for (m, s) in [("b", 1.0), ("a", 1.0), ("10", 0.5), ("9", 0.5), ("z", -1.0), ("c", 1.0)] {
            p.insert(m.as_bytes(), s);
        }
        let got: Vec<String> = contents(&p).into_iter().map(|(m, _)| String::from_utf8(m).unwrap()).collect();
        assert_eq!(got, ["z", "10", "9", "a", "b", "c"]);
        assert_eq!(p.rank(b"9"), Some(2));
        assert_eq!(p.score(b"10"), Some(0.5));
        assert_eq!(p.score(b"010"), None);
        assert!(p.remove(b"a"));
        assert!(!p.remove(b"a"));
        assert_eq!(p.len(), 5);
        p.remove_ranks(1, 3);
        let got: Vec<Vec<u8>> = contents(&p).into_iter().map(|(m, _)| m).collect();
        assert_eq!(got, [b"z".to_vec(), b"c".to_vec()]);
        assert_eq!(p.buf.len(), p.buf.capacity());
    }

    #[test]
    fn reverse_walk_from_a_rank() {
        let mut p = Packed::default();
        for i in 0..10 {
            p.insert(format!("m{i}").as_bytes(), i as f64);
        }
        let mut got = Vec::new();
        p.walk(7, true, &mut |m, _| {
            got.push(String::from_utf8_lossy(m).into_owned());
            got.len() < 3
        });
        assert_eq!(got, ["m7", "m6", "m5"]);
    }
}
