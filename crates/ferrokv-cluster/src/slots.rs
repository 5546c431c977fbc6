//! Hash-slot sets: a 16384-bit bitmap, as every node header carries one.

/// Number of hash slots.
pub const SLOTS: usize = 16384;

const WORDS: usize = SLOTS / 64;

/// A set of hash slots.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SlotBitmap(Box<[u64; WORDS]>);

impl Default for SlotBitmap {
    fn default() -> Self {
        SlotBitmap(Box::new([0; WORDS]))
    }
}

impl SlotBitmap {
    pub fn new() -> SlotBitmap {
        SlotBitmap::default()
    }

    pub fn contains(&self, slot: u16) -> bool {
        let s = slot as usize % SLOTS;
        self.0[s / 64] & (1 << (s % 64)) != 0
    }

    /// Sets the bit; returns whether it was already set.
    pub fn insert(&mut self, slot: u16) -> bool {
        let s = slot as usize % SLOTS;
        let old = self.0[s / 64] & (1 << (s % 64)) != 0;
        self.0[s / 64] |= 1 << (s % 64);
        old
    }

    /// Clears the bit; returns whether it was set.
    pub fn remove(&mut self, slot: u16) -> bool {
        let s = slot as usize % SLOTS;
        let old = self.0[s / 64] & (1 << (s % 64)) != 0;
        self.0[s / 64] &= !(1 << (s % 64));
        old
    }

    /// Sets every slot of `start..=end` (both below [`SLOTS`]; empty when `start > end`).
    pub fn insert_range(&mut self, start: u16, end: u16) {
        let (start, end) = (start as usize, (end as usize).min(SLOTS - 1));
        if start > end {
            return;
        }
        let (first, last) = (start / 64, end / 64);
        for w in first..=last {
            let lo = if w == first { start % 64 } else { 0 };
            let hi = if w == last { end % 64 } else { 63 };
            let mask = (u64::MAX >> (63 - hi)) & (u64::MAX << lo);
            self.0[w] |= mask;
        }
    }

    pub fn clear(&mut self) {
        *self.0 = [0; WORDS];
    }

    pub fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    pub fn intersects(&self, other: &SlotBitmap) -> bool {
        self.0.iter().zip(other.0.iter()).any(|(a, b)| a & b != 0)
    }

    /// `self & !other`.
    pub fn minus(&self, other: &SlotBitmap) -> SlotBitmap {
        let mut out = self.clone();
        for (a, b) in out.0.iter_mut().zip(other.0.iter()) {
            *a &= !b;
        }
        out
    }

    /// The set slots, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                Some((w * 64 + b as usize) as u16)
            })
        })
    }

    /// Maximal runs of set slots as inclusive `(start, end)` pairs.
    pub fn ranges(&self) -> Vec<(u16, u16)> {
        let mut out = Vec::new();
        // Start of the run in progress, carried across words.
        let mut run: Option<usize> = None;
        for (w, &word) in self.0.iter().enumerate() {
            let base = w * 64;
            if word == u64::MAX {
                run.get_or_insert(base);
                continue;
            }
            let mut bit = 0;
            while bit < 64 {
                let rest = word >> bit;
                if rest == 0 {
                    if let Some(s) = run.take() {
                        out.push((s as u16, (base + bit - 1) as u16));
                    }
                    break;
                }
                if rest & 1 == 0 {
                    if let Some(s) = run.take() {
                        out.push((s as u16, (base + bit - 1) as u16));
                    }
                    bit += rest.trailing_zeros() as usize;
                } else {
                    run.get_or_insert(base + bit);
                    // The shifted-in zeros bound the run of ones at the word's end.
                    bit += (!rest).trailing_zeros() as usize;
                }
            }
        }
        if let Some(s) = run {
            out.push((s as u16, (SLOTS - 1) as u16));
        }
        out
    }

    /// The raw bitmap, bit `s % 8` of byte `s / 8` for slot `s` (Redis's layout).
    pub fn to_bytes(&self) -> [u8; SLOTS / 8] {
        let mut out = [0u8; SLOTS / 8];
        for (i, w) in self.0.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8; SLOTS / 8]) -> SlotBitmap {
        let mut out = SlotBitmap::new();
        for (i, w) in out.0.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            *w = u64::from_le_bytes(b);
        }
        out
    }
}

impl std::fmt::Debug for SlotBitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlotBitmap{:?}", self.ranges())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_counts() {
        let mut b = SlotBitmap::new();
        assert!(b.is_empty());
        b.insert_range(0, 5);
        b.insert(7);
        b.insert_range(63, 65);
        b.insert(16383);
        assert_eq!(b.ranges(), vec![(0, 5), (7, 7), (63, 65), (16383, 16383)]);
        assert_eq!(b.count(), 6 + 1 + 3 + 1);
        assert!(b.remove(64));
        assert!(!b.remove(64));
        assert_eq!(b.ranges(), vec![(0, 5), (7, 7), (63, 63), (65, 65), (16383, 16383)]);
        assert_eq!(SlotBitmap::from_bytes(&b.to_bytes()), b);
        // Redis's byte layout: slot 7 is bit 7 of byte 0, slot 8 bit 0 of byte 1.
        let bytes = b.to_bytes();
        assert_eq!(bytes[0], 0b1011_1111);
        assert_eq!(bytes[2047], 0x80);
    }

    #[test]
    fn ranges_agree_with_a_bit_by_bit_scan() {
        let mut rng = crate::rng::Rng::new(5);
        for round in 0..200 {
            let mut b = SlotBitmap::new();
            let mut naive = vec![false; SLOTS];
            for _ in 0..(round % 20) {
                let s = rng.below(SLOTS as u64) as u16;
                let len = rng.below(if round % 3 == 0 { 3 } else { 300 }) as u16;
                let e = (s as usize + len as usize).min(SLOTS - 1) as u16;
                b.insert_range(s, e);
                naive[s as usize..=e as usize].iter_mut().for_each(|x| *x = true);
            }
            let mut expect: Vec<(u16, u16)> = Vec::new();
            for (i, &on) in naive.iter().enumerate() {
                if !on {
                    continue;
                }
                match expect.last_mut() {
                    Some((_, e)) if *e as usize + 1 == i => *e = i as u16,
                    _ => expect.push((i as u16, i as u16)),
                }
            }
            assert_eq!(b.ranges(), expect);
            assert_eq!(b.count() as usize, naive.iter().filter(|x| **x).count());
        }
        let mut all = SlotBitmap::new();
        all.insert_range(0, 16383);
        assert_eq!(all.ranges(), vec![(0, 16383)]);
        all.remove(64);
        assert_eq!(all.ranges(), vec![(0, 63), (65, 16383)]);
    }

    #[test]
    fn set_operations() {
        let mut a = SlotBitmap::new();
        let mut b = SlotBitmap::new();
        a.insert_range(10, 20);
        b.insert_range(20, 30);
        assert!(a.intersects(&b));
        assert_eq!(a.minus(&b).ranges(), vec![(10, 19)]);
        b.remove(20);
        assert!(!a.intersects(&b));
    }
}
