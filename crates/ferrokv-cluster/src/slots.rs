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

    pub fn insert_range(&mut self, start: u16, end: u16) {
        for s in start..=end {
            self.insert(s);
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
        let mut out: Vec<(u16, u16)> = Vec::new();
        for s in self.iter() {
            match out.last_mut() {
                Some((_, end)) if *end + 1 == s => *end = s,
                _ => out.push((s, s)),
            }
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
