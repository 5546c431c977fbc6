//! Sorted distinct integers in Elias–Fano form.
//!
//! Each value is stored as its offset `u` from the smallest value (`base`). With `n`
//! values whose largest offset is `U`, each offset is split into `l = ⌊log2(U/n)⌋` low
//! bits, stored packed one after another, and its high part `u >> l`, stored in unary:
//! the `i`th value sets bit `(u >> l) + i` of a bit vector of about `2n` bits. That is
//! `l + 2` bits per value, close to the minimum any encoding of the set can reach:
//! 100 values in 0..100 take 25 bytes, 100 values spread over a million about 190,
//! where Redis's intset takes 200 and 400 (2 and 4 bytes per value).
//!
//! - membership: the values with high part `h` follow the `h`th zero of the bit vector,
//!   so a lookup counts zeros word by word (popcount) and then compares a few low parts;
//! - the `i`th value: the position of the `i`th one, minus `i`, gives its high part;
//! - iteration decodes the ones in order;
//! - insertion and removal shift the bit vector by one bit and the low bits by `l`
//!   past the value's place: a memmove of `n/32` words, as Redis's intset memmoves its
//!   tail. An insertion below the smallest value, or a set whose `l` has drifted two
//!   steps from the best one for its size and spread, is rewritten whole.
//!
//! Layout: one boxed slice of words, no spare capacity: word 0 holds the length, `l`
//! and the number of bit-vector words; the bit vector follows, then the low bits. An
//! empty set has no words at all.

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct IntSet {
    /// The smallest value when the set was last rewritten: a lower bound of all values.
    base: i64,
    words: Box<[u64]>,
}

/// Bits of the header word: length (31: intsets hold at most 2^30 values), low bits
/// per value (6), bit-vector words (27).
const LEN_BITS: u32 = 31;
const LOW_BITS: u32 = 6;

/// The best number of low bits for `n` values whose largest offset is `max`.
fn best_low_bits(n: usize, max: u64) -> u32 {
    let ratio = max / n.max(1) as u64;
    if ratio == 0 {
        0
    } else {
        63 - ratio.leading_zeros()
    }
}

/// Words a freshly built set of `n` values with offsets up to `max` takes.
fn fresh_words(n: usize, max: u64) -> usize {
    let low = best_low_bits(n, max);
    Shape { len: n, low, high_words: ((max >> low) as usize + n).div_ceil(64) }.total_words()
}

/// Whether a set edited in place to `words` words should rather be rewritten: when it
/// has become an eighth bigger than a fresh one (a rewrite costs a full decode and
/// encode, so small drifts wait).
fn worth_rewriting(words: usize, n: usize, max: u64) -> bool {
    let fresh = fresh_words(n, max);
    words > fresh + fresh / 8
}

#[inline]
fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Reads `w <= 64` bits at bit `pos`.
#[inline]
fn read_bits(words: &[u64], pos: usize, w: u32) -> u64 {
    if w == 0 {
        return 0;
    }
    let (i, shift) = (pos / 64, (pos % 64) as u32);
    let mut v = words[i] >> shift;
    if shift + w > 64 {
        v |= words[i + 1] << (64 - shift);
    }
    v & mask(w)
}

/// Writes the low `w <= 64` bits of `v` at bit `pos`.
#[inline]
fn write_bits(words: &mut [u64], pos: usize, w: u32, v: u64) {
    if w == 0 {
        return;
    }
    let (i, shift) = (pos / 64, (pos % 64) as u32);
    let v = v & mask(w);
    words[i] = (words[i] & !(mask(w) << shift)) | (v << shift);
    if shift + w > 64 {
        let rest = shift + w - 64;
        words[i + 1] = (words[i + 1] & !mask(rest)) | (v >> (64 - shift));
    }
}

/// Copies `len` bits from bit `from` of `src` to bit `to` of `dst`.
fn copy_bits(dst: &mut [u64], to: usize, src: &[u64], from: usize, len: usize) {
    let mut done = 0;
    if to.is_multiple_of(64) && from.is_multiple_of(64) {
        // Whole words first (the part before an edit always starts at bit 0).
        let words = len / 64;
        dst[to / 64..to / 64 + words].copy_from_slice(&src[from / 64..from / 64 + words]);
        done = words * 64;
    }
    while done < len {
        let w = (len - done).min(64) as u32;
        write_bits(dst, to + done, w, read_bits(src, from + done, w));
        done += w as usize;
    }
}

/// The shape of a set: everything the header word holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    len: usize,
    low: u32,
    high_words: usize,
}

impl Shape {
    fn header(self) -> u64 {
        self.len as u64 | (self.low as u64) << LEN_BITS | (self.high_words as u64) << (LEN_BITS + LOW_BITS)
    }

    fn of(header: u64) -> Shape {
        Shape {
            len: (header & mask(LEN_BITS)) as usize,
            low: ((header >> LEN_BITS) & mask(LOW_BITS)) as u32,
            high_words: (header >> (LEN_BITS + LOW_BITS)) as usize,
        }
    }

    fn total_words(self) -> usize {
        1 + self.high_words + (self.len * self.low as usize).div_ceil(64)
    }
}

/// Where a value is, or would go: its index and the position of its bit.
struct Place {
    index: usize,
    bit: usize,
    found: bool,
}

impl IntSet {
    /// Builds a set from strictly increasing values.
    pub(crate) fn from_sorted(values: &[i64]) -> IntSet {
        let (Some(&lo), Some(&hi)) = (values.first(), values.last()) else {
            return IntSet::default();
        };
        let n = values.len();
        let max = hi.wrapping_sub(lo) as u64;
        let low = best_low_bits(n, max);
        let shape = Shape { len: n, low, high_words: ((max >> low) as usize + n).div_ceil(64) };
        let mut words = vec![0u64; shape.total_words()];
        words[0] = shape.header();
        let (high, lows) = words[1..].split_at_mut(shape.high_words);
        for (i, &v) in values.iter().enumerate() {
            let u = v.wrapping_sub(lo) as u64;
            let bit = (u >> low) as usize + i;
            high[bit / 64] |= 1 << (bit % 64);
            write_bits(lows, i * low as usize, low, u);
        }
        IntSet { base: lo, words: words.into_boxed_slice() }
    }

    fn shape(&self) -> Shape {
        self.words.first().map_or(Shape { len: 0, low: 0, high_words: 0 }, |&h| Shape::of(h))
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.words.first().map_or(0, |&h| (h & mask(LEN_BITS)) as usize)
    }

    /// Bytes of the encoded values (for memory accounting).
    pub(crate) fn data_bytes(&self) -> usize {
        self.words.len() * 8
    }

    fn parts(&self) -> (Shape, &[u64], &[u64]) {
        let shape = self.shape();
        if shape.len == 0 {
            return (shape, &[], &[]);
        }
        let (high, low) = self.words[1..].split_at(shape.high_words);
        (shape, high, low)
    }

    /// The `i`th smallest value (`i < len`).
    pub(crate) fn get(&self, i: usize) -> i64 {
        let (shape, high, low) = self.parts();
        let mut left = i;
        for (wi, &w) in high.iter().enumerate() {
            let ones = w.count_ones() as usize;
            if left < ones {
                let mut w = w;
                for _ in 0..left {
                    w &= w - 1;
                }
                let bit = wi * 64 + w.trailing_zeros() as usize;
                let u = (((bit - i) as u64) << shape.low) | read_bits(low, i * shape.low as usize, shape.low);
                return self.base.wrapping_add(u as i64);
            }
            left -= ones;
        }
        unreachable!("index {i} out of a set of {}", shape.len)
    }

    /// Values in ascending order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        let (shape, high, low) = self.parts();
        Iter {
            base: self.base,
            high,
            low,
            low_bits: shape.low,
            word: 0,
            bits: high.first().copied().unwrap_or(0),
            i: 0,
        }
    }

    /// Finds where `x` is or would be inserted; None when `x` is below the base.
    fn place(&self, x: i64) -> Option<Place> {
        let (shape, high, low) = self.parts();
        if x < self.base {
            return None;
        }
        let u = x.wrapping_sub(self.base) as u64;
        let (h, want) = (u >> shape.low, u & mask(shape.low));
        // The ones of bucket `h` are those after exactly `h` zeros: find the zero that
        // ends the bucket (the (h+1)th), or the end of the vector.
        let mut zeros_left = h;
        let mut end = None;
        for (wi, &w) in high.iter().enumerate() {
            let zeros = (!w).count_ones() as u64;
            if zeros_left < zeros {
                let mut z = !w;
                for _ in 0..zeros_left {
                    z &= z - 1;
                }
                end = Some(wi * 64 + z.trailing_zeros() as usize);
                break;
            }
            zeros_left -= zeros;
        }
        let end = match end {
            Some(end) => end,
            // Exactly `h` zeros: the bucket runs to the end of the vector.
            None if zeros_left == 0 => high.len() * 64,
            // Fewer: beyond every bucket, a new largest value.
            None => return Some(Place { index: shape.len, bit: h as usize + shape.len, found: false }),
        };
        // `end - h` ones precede `end`; walk back over the bucket's ones to its first.
        let mut index = end - h as usize;
        let mut start = end;
        while start > 0 && high[(start - 1) / 64] >> ((start - 1) % 64) & 1 == 1 {
            start -= 1;
            index -= 1;
        }
        let mut bit = start;
        while bit < end {
            let lo = read_bits(low, index * shape.low as usize, shape.low);
            if lo >= want {
                return Some(Place { index, bit, found: lo == want });
            }
            bit += 1;
            index += 1;
        }
        Some(Place { index, bit, found: false })
    }

    pub(crate) fn contains(&self, x: i64) -> bool {
        self.len() > 0 && self.place(x).is_some_and(|p| p.found)
    }

    /// A lower bound of the smallest offset: the high part of the first value.
    fn min_offset(high: &[u64], low: u32) -> u64 {
        let first = high.iter().position(|&w| w != 0).map_or(0, |wi| wi * 64 + high[wi].trailing_zeros() as usize);
        (first as u64) << low
    }

    /// Position just after the last one of the bit vector.
    fn high_end(high: &[u64]) -> usize {
        high.iter().rposition(|&w| w != 0).map_or(0, |wi| wi * 64 + 64 - high[wi].leading_zeros() as usize)
    }

    /// Adds `x`; false when it was there.
    pub(crate) fn insert(&mut self, x: i64) -> bool {
        let shape = self.shape();
        if shape.len == 0 {
            *self = IntSet::from_sorted(&[x]);
            return true;
        }
        let Some(place) = self.place(x) else {
            return self.rewrite_with(Some(x), None);
        };
        if place.found {
            return false;
        }
        let (_, high, low) = self.parts();
        let end = Self::high_end(high);
        let u = x.wrapping_sub(self.base) as u64;
        let new_end = end.max(place.bit) + 1;
        let n = shape.len + 1;
        let max = ((((new_end - n) as u64) << shape.low) | mask(shape.low)).max(u);
        let next = Shape { len: n, low: shape.low, high_words: new_end.div_ceil(64) };
        if worth_rewriting(next.total_words(), n, max - Self::min_offset(high, shape.low)) {
            return self.rewrite_with(Some(x), None);
        }
        let mut words = vec![0u64; next.total_words()];
        words[0] = next.header();
        {
            let (nh, nl) = words[1..].split_at_mut(next.high_words);
            copy_bits(nh, 0, high, 0, place.bit.min(end));
            write_bits(nh, place.bit, 1, 1);
            copy_bits(nh, place.bit + 1, high, place.bit, end.saturating_sub(place.bit));
            let (l, at) = (shape.low as usize, place.index * shape.low as usize);
            copy_bits(nl, 0, low, 0, at);
            write_bits(nl, at, shape.low, u);
            copy_bits(nl, at + l, low, at, (shape.len - place.index) * l);
        }
        self.words = words.into_boxed_slice();
        true
    }

    /// Removes `x`; false when it was not there.
    pub(crate) fn remove(&mut self, x: i64) -> bool {
        let shape = self.shape();
        let Some(place) = self.place(x).filter(|p| p.found && shape.len > 0) else { return false };
        if shape.len == 1 {
            *self = IntSet::default();
            return true;
        }
        let (_, high, low) = self.parts();
        let end = Self::high_end(high);
        let n = shape.len - 1;
        let mut next_high: Vec<u64> = vec![0; shape.high_words];
        copy_bits(&mut next_high, 0, high, 0, place.bit);
        copy_bits(&mut next_high, place.bit, high, place.bit + 1, end - place.bit - 1);
        let new_end = Self::high_end(&next_high);
        let next = Shape { len: n, low: shape.low, high_words: new_end.div_ceil(64) };
        // Zeros before the first one are wasted once the smallest values are gone.
        let max = (((new_end - n) as u64) << shape.low) | mask(shape.low);
        if worth_rewriting(next.total_words(), n, max - Self::min_offset(&next_high, shape.low)) {
            return self.rewrite_with(None, Some(x));
        }
        let mut words = vec![0u64; next.total_words()];
        words[0] = next.header();
        {
            let (nh, nl) = words[1..].split_at_mut(next.high_words);
            nh.copy_from_slice(&next_high[..next.high_words]);
            let (l, at) = (shape.low as usize, place.index * shape.low as usize);
            copy_bits(nl, 0, low, 0, at);
            copy_bits(nl, at, low, at + l, (n - place.index) * l);
        }
        self.words = words.into_boxed_slice();
        true
    }

    /// Rewrites the set with `add` added and `del` removed.
    fn rewrite_with(&mut self, add: Option<i64>, del: Option<i64>) -> bool {
        let mut values: Vec<i64> = self.iter().filter(|v| Some(*v) != del).collect();
        let mut changed = values.len() != self.len();
        if let Some(x) = add {
            if let Err(pos) = values.binary_search(&x) {
                values.insert(pos, x);
                changed = true;
            }
        }
        *self = IntSet::from_sorted(&values);
        changed
    }

    /// Adds every value of `new`, which must be sorted and distinct; returns how many
    /// were not there. One rewrite, however many values.
    pub(crate) fn merge(&mut self, new: &[i64]) -> usize {
        let old: Vec<i64> = self.iter().collect();
        let mut all = Vec::with_capacity(old.len() + new.len());
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            let take_old = j == new.len() || (i < old.len() && old[i] <= new[j]);
            if take_old {
                if j < new.len() && old[i] == new[j] {
                    j += 1;
                }
                all.push(old[i]);
                i += 1;
            } else {
                all.push(new[j]);
                j += 1;
            }
        }
        let added = all.len() - old.len();
        if added > 0 {
            *self = IntSet::from_sorted(&all);
        }
        added
    }

    /// Removes every value of `gone` (any order, repeats allowed); returns how many were
    /// there. One rewrite, however many values.
    pub(crate) fn remove_all(&mut self, gone: &[i64]) -> usize {
        let mut gone = gone.to_vec();
        gone.sort_unstable();
        let before = self.len();
        let kept: Vec<i64> = self.iter().filter(|v| gone.binary_search(v).is_err()).collect();
        let removed = before - kept.len();
        if removed > 0 {
            *self = IntSet::from_sorted(&kept);
        }
        removed
    }
}

/// The values of an [`IntSet`] in ascending order.
pub(crate) struct Iter<'a> {
    base: i64,
    high: &'a [u64],
    low: &'a [u64],
    low_bits: u32,
    word: usize,
    /// The ones of `high[word]` not yet visited.
    bits: u64,
    i: usize,
}

impl Iterator for Iter<'_> {
    type Item = i64;

    #[inline]
    fn next(&mut self) -> Option<i64> {
        while self.bits == 0 {
            self.word += 1;
            self.bits = *self.high.get(self.word)?;
        }
        let bit = self.word * 64 + self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        let u = (((bit - self.i) as u64) << self.low_bits)
            | read_bits(self.low, self.i * self.low_bits as usize, self.low_bits);
        self.i += 1;
        Some(self.base.wrapping_add(u as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(s: &IntSet) -> Vec<i64> {
        s.iter().collect()
    }

    #[test]
    fn bit_helpers() {
        let mut w = [0u64; 3];
        write_bits(&mut w, 60, 10, 0x3ff);
        assert_eq!(read_bits(&w, 60, 10), 0x3ff);
        assert_eq!((w[0] >> 60, w[1]), (0xf, 0x3f));
        write_bits(&mut w, 0, 64, u64::MAX);
        assert_eq!(read_bits(&w, 0, 64), u64::MAX);
        let src = [0xdead_beef_u64, 0x1234];
        let mut dst = [0u64; 3];
        copy_bits(&mut dst, 7, &src, 4, 100);
        assert_eq!(read_bits(&dst, 7, 60), read_bits(&src, 4, 60));
        assert_eq!(read_bits(&dst, 67, 40), read_bits(&src, 64, 40));
    }

    #[test]
    fn sizes_are_close_to_l_plus_2_bits() {
        let dense = IntSet::from_sorted(&(0..100).collect::<Vec<_>>());
        assert_eq!(dense.data_bytes(), 8 * (1 + 4), "100 values in 0..100: 200 bits of unary");
        let spread: Vec<i64> = (0..100).map(|i| i * 10_000 + 7).collect();
        let s = IntSet::from_sorted(&spread);
        // l = 13: 1300 low bits (21 words) + about 220 high bits (4 words) + header.
        assert_eq!(s.data_bytes(), 8 * (1 + 4 + 21));
        assert_eq!(values(&s), spread);
        let wide = IntSet::from_sorted(&[i64::MIN, -1, 0, i64::MAX]);
        assert_eq!(values(&wide), [i64::MIN, -1, 0, i64::MAX]);
        assert!(wide.contains(i64::MAX) && wide.contains(i64::MIN) && !wide.contains(1));
        assert_eq!(wide.get(3), i64::MAX);
    }

    #[test]
    fn inserts_keep_order() {
        let mut s = IntSet::default();
        for x in [5, 3, 9, 3, 7] {
            s.insert(x);
        }
        assert_eq!(values(&s), [3, 5, 7, 9]);
        assert!(!s.insert(7));
        assert!(s.insert(-1000));
        assert!(s.insert(i64::MAX));
        assert_eq!(values(&s), [-1000, 3, 5, 7, 9, i64::MAX]);
        assert!(s.contains(i64::MAX) && s.contains(-1000) && !s.contains(4) && !s.contains(i64::MIN));
        assert_eq!((s.get(0), s.get(5)), (-1000, i64::MAX));
    }

    #[test]
    fn removals_keep_order() {
        let mut s = IntSet::from_sorted(&[-3, 0, 8, 300]);
        assert!(s.remove(-3));
        assert!(!s.remove(-3));
        assert!(!s.remove(1_000_000));
        assert_eq!(values(&s), [0, 8, 300]);
        assert!(s.insert(-2));
        assert_eq!(values(&s), [-2, 0, 8, 300]);
        for x in [300, -2, 0, 8] {
            assert!(s.remove(x));
        }
        assert_eq!(s.len(), 0);
        assert!(!s.contains(0));
        assert!(s.insert(42));
        assert_eq!(values(&s), [42]);
    }

    #[test]
    fn merge_and_remove_all() {
        let mut s = IntSet::from_sorted(&[1, 5, 9]);
        assert_eq!(s.merge(&[0, 5, 10]), 2);
        assert_eq!(values(&s), [0, 1, 5, 9, 10]);
        assert_eq!(s.merge(&[1, 9]), 0);
        assert_eq!(s.remove_all(&[9, 9, 100, 0]), 2);
        assert_eq!(values(&s), [1, 5, 10]);
        assert_eq!(s.remove_all(&[1, 5, 10]), 3);
        assert_eq!(s.len(), 0);
    }

    fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    #[test]
    fn matches_a_sorted_model() {
        for spread in [50u64, 1000, 70_000, u64::MAX] {
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ spread;
            let mut s = IntSet::default();
            let mut model = std::collections::BTreeSet::new();
            for step in 0..4000 {
                let r = xorshift(&mut x);
                let v = if spread == u64::MAX { r as i64 } else { (r % spread) as i64 - (spread / 3) as i64 };
                // Grow for a while, then mostly shrink.
                let remove = if step < 2500 { r.is_multiple_of(4) } else { !r.is_multiple_of(4) };
                if remove {
                    assert_eq!(s.remove(v), model.remove(&v), "remove {v} at step {step}");
                } else {
                    assert_eq!(s.insert(v), model.insert(v), "insert {v} at step {step}");
                }
                assert_eq!(s.len(), model.len());
                if step % 97 == 0 {
                    assert_eq!(values(&s), model.iter().copied().collect::<Vec<_>>(), "step {step}");
                    for (i, &m) in model.iter().enumerate().step_by(7) {
                        assert_eq!(s.get(i), m);
                        assert!(s.contains(m));
                    }
                    assert!(!s.contains(i64::MIN + 12345));
                }
            }
        }
    }

    #[test]
    fn ascending_appends_and_removals_from_the_front() {
        for gap_bits in [0u32, 3, 17, 40] {
            let mut x: u64 = 99 + gap_bits as u64;
            let (mut s, mut model, mut v) = (IntSet::default(), std::collections::VecDeque::new(), -50i64);
            for step in 0..3000 {
                v += 1 + (xorshift(&mut x) & mask(gap_bits)) as i64;
                assert!(s.insert(v));
                model.push_back(v);
                if step % 3 == 0 {
                    let first = model.pop_front().unwrap();
                    assert!(s.remove(first), "step {step}");
                }
                if step % 101 == 0 {
                    assert!(s.iter().eq(model.iter().copied()), "gap bits {gap_bits}, step {step}");
                }
            }
            let fresh = IntSet::from_sorted(&model.iter().copied().collect::<Vec<_>>());
            assert!(s.data_bytes() <= fresh.data_bytes() * 9 / 8 + 8, "{} vs {}", s.data_bytes(), fresh.data_bytes());
        }
    }

    #[test]
    fn stays_compact_while_edited() {
        let mut s = IntSet::default();
        for i in 0..512 {
            s.insert(i * 3);
        }
        let fresh = IntSet::from_sorted(&(0..512).map(|i| i * 3).collect::<Vec<_>>());
        assert!(s.data_bytes() <= fresh.data_bytes() * 9 / 8 + 8, "{} vs {}", s.data_bytes(), fresh.data_bytes());
        for i in 0..500 {
            s.remove(i * 3);
        }
        let fresh = IntSet::from_sorted(&(500..512).map(|i| i * 3).collect::<Vec<_>>());
        assert!(s.data_bytes() <= fresh.data_bytes() * 9 / 8 + 8, "{} vs {}", s.data_bytes(), fresh.data_bytes());
    }
}
