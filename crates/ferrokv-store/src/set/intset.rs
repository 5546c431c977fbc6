//! Sorted distinct integers, packed: each value is stored as its offset from the
//! smallest value (`base`), little-endian, in the fewest whole bytes (1 to 8) that hold
//! the largest offset.
//!
//! Redis's intset stores values in 2, 4 or 8 bytes each, the smallest width that holds
//! every value. An offset from the minimum never needs more bytes than that and often
//! fewer: 100 values spread over 0..=255 take one byte each, values in
//! 1_000_000..=1_060_000 two bytes where Redis takes four. Lookups are a binary search
//! over the fixed-width offsets, inserts and removals a memmove of the tail (as in
//! Redis). A value below `base` or an offset too wide for the current width rewrites
//! the whole buffer (Redis's "upgrade"); removals never narrow it.
//!
//! The buffer is a boxed slice of exactly `len * width` bytes: no spare capacity.

#[derive(Clone, Debug)]
pub(crate) struct IntSet {
    /// The smallest value ever stored since the last rewrite: a lower bound of all.
    base: i64,
    width: Width,
    data: Box<[u8]>,
}

/// Bytes per offset. An enum rather than a `u8` so that the values it cannot take leave
/// room for the tag of the set's representation enum: a set stays 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum Width {
    W1 = 1,
    W2,
    W3,
    W4,
    W5,
    W6,
    W7,
    W8,
}

impl Width {
    /// The width of `bytes` (1..=8) bytes.
    fn of(bytes: u32) -> Width {
        match bytes {
            0 | 1 => Width::W1,
            2 => Width::W2,
            3 => Width::W3,
            4 => Width::W4,
            5 => Width::W5,
            6 => Width::W6,
            7 => Width::W7,
            _ => Width::W8,
        }
    }

    #[inline]
    fn bytes(self) -> usize {
        self as usize
    }
}

impl Default for IntSet {
    fn default() -> Self {
        IntSet { base: 0, width: Width::W1, data: Box::default() }
    }
}

/// The width that holds `offset`.
fn width_for(offset: u64) -> Width {
    Width::of((64 - offset.leading_zeros()).div_ceil(8))
}

/// The largest offset `width` holds.
fn max_offset(width: Width) -> u64 {
    match width {
        Width::W8 => u64::MAX,
        w => (1u64 << (8 * w.bytes())) - 1,
    }
}

impl IntSet {
    /// Builds a set from strictly increasing values.
    pub(crate) fn from_sorted(values: &[i64]) -> IntSet {
        let Some((&lo, &hi)) = values.first().zip(values.last()) else {
            return IntSet::default();
        };
        let mut s = IntSet { base: lo, width: width_for(hi.wrapping_sub(lo) as u64), data: Box::default() };
        let mut out = Vec::with_capacity(values.len() * s.width.bytes());
        for &v in values {
            s.push_offset(&mut out, v);
        }
        s.data = out.into_boxed_slice();
        s
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.data.len() / self.width.bytes()
    }

    /// Bytes of the packed values (for memory accounting).
    pub(crate) fn data_bytes(&self) -> usize {
        self.data.len()
    }

    /// Bytes per value.
    #[cfg(test)]
    pub(crate) fn width(&self) -> usize {
        self.width.bytes()
    }

    #[inline]
    fn offset_at(&self, i: usize) -> u64 {
        let w = self.width.bytes();
        let mut b = [0u8; 8];
        b[..w].copy_from_slice(&self.data[i * w..(i + 1) * w]);
        u64::from_le_bytes(b)
    }

    /// The `i`th smallest value (`i < len`).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> i64 {
        self.base.wrapping_add(self.offset_at(i) as i64)
    }

    /// Values in ascending order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Where `x` is (`Ok`) or would be inserted (`Err`).
    fn search(&self, x: i64) -> Result<usize, usize> {
        let len = self.len();
        if len == 0 || x < self.base {
            return Err(0);
        }
        let off = x.wrapping_sub(self.base) as u64;
        if off > max_offset(self.width) {
            return Err(len);
        }
        let (mut lo, mut hi) = (0, len);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.offset_at(mid).cmp(&off) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    pub(crate) fn contains(&self, x: i64) -> bool {
        self.search(x).is_ok()
    }

    fn push_offset(&self, out: &mut Vec<u8>, v: i64) {
        let off = v.wrapping_sub(self.base) as u64;
        out.extend_from_slice(&off.to_le_bytes()[..self.width.bytes()]);
    }

    /// Adds `x`; false when it was there.
    pub(crate) fn insert(&mut self, x: i64) -> bool {
        let len = self.len();
        if len == 0 {
            *self = IntSet::from_sorted(&[x]);
            return true;
        }
        let max = self.get(len - 1);
        let (lo, hi) = (self.base.min(x), max.max(x));
        let width = width_for(hi.wrapping_sub(lo) as u64);
        if lo == self.base && width <= self.width {
            let Err(pos) = self.search(x) else { return false };
            let w = self.width.bytes();
            let mut v = std::mem::take(&mut self.data).into_vec();
            v.reserve_exact(w);
            v.resize((len + 1) * w, 0);
            v.copy_within(pos * w..len * w, (pos + 1) * w);
            let off = x.wrapping_sub(self.base) as u64;
            v[pos * w..(pos + 1) * w].copy_from_slice(&off.to_le_bytes()[..w]);
            self.data = v.into_boxed_slice();
            return true;
        }
        // `x` lies outside [base, max]: a new smallest or largest value that needs a
        // new base or a wider offset. Rewrite everything.
        let mut next = IntSet { base: lo, width, data: Box::default() };
        let mut out = Vec::with_capacity((len + 1) * width.bytes());
        if x < self.base {
            next.push_offset(&mut out, x);
        }
        for v in self.iter() {
            next.push_offset(&mut out, v);
        }
        if x > max {
            next.push_offset(&mut out, x);
        }
        next.data = out.into_boxed_slice();
        *self = next;
        true
    }

    /// Removes `x`; false when it was not there.
    pub(crate) fn remove(&mut self, x: i64) -> bool {
        let Ok(pos) = self.search(x) else { return false };
        let (w, len) = (self.width.bytes(), self.len());
        if len == 1 {
            *self = IntSet::default();
            return true;
        }
        let mut v = std::mem::take(&mut self.data).into_vec();
        v.copy_within((pos + 1) * w.., pos * w);
        v.truncate((len - 1) * w);
        self.data = v.into_boxed_slice();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(s: &IntSet) -> Vec<i64> {
        s.iter().collect()
    }

    #[test]
    fn widths_follow_the_spread_of_values() {
        assert_eq!(width_for(0), Width::W1);
        assert_eq!(width_for(255), Width::W1);
        assert_eq!(width_for(256), Width::W2);
        assert_eq!(width_for(1 << 24), Width::W4);
        assert_eq!(width_for(u64::MAX), Width::W8);
        let s = IntSet::from_sorted(&(1000..1100).collect::<Vec<_>>());
        assert_eq!((s.width(), s.data_bytes()), (1, 100));
        let s = IntSet::from_sorted(&[i64::MIN, i64::MAX]);
        assert_eq!(s.width(), 8);
        assert_eq!(values(&s), [i64::MIN, i64::MAX]);
    }

    #[test]
    fn inserts_keep_order_and_widen() {
        let mut s = IntSet::default();
        for x in [5, 3, 9, 3, 7] {
            s.insert(x);
        }
        assert_eq!(values(&s), [3, 5, 7, 9]);
        assert_eq!(s.width(), 1);
        assert!(!s.insert(7));
        assert!(s.insert(-1000));
        assert_eq!(s.width(), 2);
        assert!(s.insert(i64::MAX));
        assert_eq!(s.width(), 8);
        assert_eq!(values(&s), [-1000, 3, 5, 7, 9, i64::MAX]);
        assert!(s.contains(i64::MAX) && s.contains(-1000) && !s.contains(4) && !s.contains(i64::MIN));
    }

    #[test]
    fn removals_keep_order() {
        let mut s = IntSet::from_sorted(&[-3, 0, 8, 300]);
        assert!(s.remove(-3));
        assert!(!s.remove(-3));
        assert!(!s.remove(1_000_000));
        assert_eq!(values(&s), [0, 8, 300]);
        // The base stays at -3: offsets remain valid.
        assert!(s.insert(-2));
        assert_eq!(values(&s), [-2, 0, 8, 300]);
        for x in [-2, 0, 8, 300] {
            assert!(s.remove(x));
        }
        assert_eq!(s.len(), 0);
        assert!(!s.contains(0));
        assert!(s.insert(42));
        assert_eq!(values(&s), [42]);
    }

    #[test]
    fn matches_a_sorted_model() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut s = IntSet::default();
        let mut model = std::collections::BTreeSet::new();
        for step in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = match step % 4 {
                0 => (x % 100) as i64,
                1 => (x % 70000) as i64 - 35000,
                2 => x as i64,
                _ => -((x % 300) as i64),
            };
            if x.is_multiple_of(3) {
                assert_eq!(s.remove(v), model.remove(&v));
            } else {
                assert_eq!(s.insert(v), model.insert(v));
            }
            assert_eq!(s.len(), model.len());
        }
        assert_eq!(values(&s), model.iter().copied().collect::<Vec<_>>());
    }
}
