//! Key → hash slot, as Redis Cluster defines it: CRC16 (XMODEM) of the key, or of the
//! part between the first `{` and the next `}` when that part is non-empty, mod 16384.
//!
//! The CRC is computed four bytes per step with four tables (slicing-by-4): every
//! command computes it at least twice (prefetch, then lookup), and the byte-at-a-time
//! loop of the `crc16` crate, one dependent table load per byte, was 4-7% of the
//! server's CPU at pipeline 16. The crate stays as the reference in the tests.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub const SLOTS: usize = 16384;

/// XMODEM: polynomial 0x1021, initial value 0, no reflection.
const POLY: u16 = 0x1021;

/// `TABLES[k][x]`: the CRC of byte `x` followed by `k` zero bytes, from state 0.
static TABLES: [[u16; 256]; 4] = tables();

const fn tables() -> [[u16; 256]; 4] {
    let mut t = [[0u16; 256]; 4];
    let mut x = 0;
    while x < 256 {
        let mut crc = (x as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ POLY } else { crc << 1 };
            bit += 1;
        }
        t[0][x] = crc;
        x += 1;
    }
    let mut k = 1;
    while k < 4 {
        let mut x = 0;
        while x < 256 {
            // One more zero byte after the CRC of the previous table.
            let prev = t[k - 1][x];
            t[k][x] = (prev << 8) ^ t[0][(prev >> 8) as usize];
            x += 1;
        }
        k += 1;
    }
    t
}

/// CRC16-XMODEM of `data`.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0u16;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        crc = TABLES[3][(c[0] ^ (crc >> 8) as u8) as usize]
            ^ TABLES[2][(c[1] ^ crc as u8) as usize]
            ^ TABLES[1][c[2] as usize]
            ^ TABLES[0][c[3] as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc << 8) ^ TABLES[0][(b ^ (crc >> 8) as u8) as usize];
    }
    crc
}

pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&c| c == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&c| c == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) & (SLOTS as u16 - 1)
}

/// A set of hash slots that one thread changes and every shard reads, lock-free: 256
/// atomic words and a flag that says whether any bit is set, so the common empty case
/// costs one load.
pub struct SlotSet {
    bits: Box<[AtomicU64]>,
    any: AtomicBool,
}

impl Default for SlotSet {
    fn default() -> Self {
        SlotSet { bits: (0..SLOTS / 64).map(|_| AtomicU64::new(0)).collect(), any: AtomicBool::new(false) }
    }
}

impl SlotSet {
    /// Adds `slot` (the flag is raised before the bit, so a reader that sees the
    /// bit also sees the flag).
    pub fn insert(&self, slot: u16) {
        self.any.store(true, Ordering::Release);
        self.bits[slot as usize / 64].fetch_or(1 << (slot % 64), Ordering::AcqRel);
    }

    /// Removes `slot`; the flag drops once no bit is left.
    pub fn remove(&self, slot: u16) {
        self.bits[slot as usize / 64].fetch_and(!(1 << (slot % 64)), Ordering::AcqRel);
        if self.bits.iter().all(|w| w.load(Ordering::Acquire) == 0) {
            self.any.store(false, Ordering::Release);
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    #[inline]
    pub fn contains(&self, slot: u16) -> bool {
        !self.is_empty() && self.bits[slot as usize / 64].load(Ordering::Acquire) & (1 << (slot % 64)) != 0
    }

    /// The slots in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        let words = if self.is_empty() { &self.bits[..0] } else { &self.bits[..] };
        words.iter().enumerate().flat_map(|(i, w)| {
            let mut w = w.load(Ordering::Acquire);
            std::iter::from_fn(move || {
                (w != 0).then(|| {
                    let b = w.trailing_zeros();
                    w &= w - 1;
                    (i * 64) as u16 + b as u16
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vectors() {
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b""), 0);
        assert_eq!(key_slot(b"123456789"), 0x31C3 & 16383);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    #[test]
    fn slot_set() {
        let s = SlotSet::default();
        assert!(s.is_empty() && !s.contains(5) && s.iter().next().is_none());
        for slot in [16383, 5, 64, 63] {
            s.insert(slot);
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), [5, 63, 64, 16383]);
        assert!(s.contains(64) && !s.contains(65));
        for slot in [5, 63, 64] {
            s.remove(slot);
        }
        assert!(!s.is_empty() && s.contains(16383));
        s.remove(16383);
        assert!(s.is_empty() && !s.contains(16383));
    }

    proptest! {
        #[test]
        fn crc_matches_the_reference(data in proptest::collection::vec(any::<u8>(), 0..70)) {
            prop_assert_eq!(crc16(&data), crc16::State::<crc16::XMODEM>::calculate(&data));
        }
    }
}
