//! The index of one hash slot's keys: a hash table of 4-byte arena indexes, laid out
//! so that a lookup reads one cache line before the node, and so that the server can
//! prefetch that line (and the node) for the next commands of a pipeline before it
//! runs them.
//!
//! Twelve entries share a 64-byte block (one cache line long): their tags (the hash's top 7 bits with the
//! high bit set; 0 = empty), an overflow count, and their arena indexes. A key lives
//! in its home block (the hash's low bits) or, when that block is full, in one of the
//! blocks after it. Each block counts the keys that passed it over on insertion
//! (Folly F14's "outbound overflow count"), so a lookup stops at the first block whose
//! count is 0, and deletion needs no tombstones: it clears the entry and takes one off
//! the counts it had added. A count that reaches 255 stays there (lookups then simply
//! go on to the next block).
//!
//! Why not hashbrown, which this replaced: its tables do not say where their memory
//! is, so nothing can be prefetched ahead of a lookup, and the lookup itself reads the
//! control bytes and then, on another line of a large table, the bucket. Measured at
//! pipeline 16 over 100k keys, the key lookup's cache misses were 38% of the server's
//! CPU (docs/benchmarks.md).

/// Entries per block.
const WIDTH: usize = 12;
/// Most entries per block on average before the table grows (10 of 12).
const MAX_LOAD: usize = 10;

/// 64 bytes, but not aligned to 64: glibc's aligned allocations cost 1–2 bytes of RSS
/// per key (measured), and a block that straddles two lines, both prefetched, was no
/// slower at pipeline 16.
#[repr(C)]
#[derive(Clone, Copy)]
struct Block {
    tags: [u8; WIDTH],
    /// Keys stored after this block whose home is this block or one before it.
    overflow: u8,
    _pad: [u8; 3],
    idx: [u32; WIDTH],
}

const EMPTY_BLOCK: Block = Block { tags: [0; WIDTH], overflow: 0, _pad: [0; 3], idx: [0; WIDTH] };

/// High bit of each of the 12 tag bytes, in the first 16 bytes of a block read as a
/// little-endian u128.
const TAG_HIGH_BITS: u128 = 0x0000_0000_8080_8080_8080_8080_8080_8080;
const LOW_SEVEN: u128 = 0x7f7f_7f7f_7f7f_7f7f_7f7f_7f7f_7f7f_7f7f;
const ONES: u128 = 0x0101_0101_0101_0101_0101_0101_0101_0101;

impl Block {
    /// Bit `8 * i + 7` is set for each entry `i` whose tag is `tag`.
    #[inline]
    fn matches(&self, tag: u8) -> u128 {
        let mut head = [0u8; 16];
        head[..WIDTH].copy_from_slice(&self.tags);
        let x = u128::from_le_bytes(head) ^ (ONES * tag as u128);
        // A byte of `x` is zero exactly where the high bit of `y` is clear; no carry
        // crosses bytes, as (b & 0x7f) + 0x7f <= 0xfe.
        let y = ((x & LOW_SEVEN) + LOW_SEVEN) | x;
        !y & TAG_HIGH_BITS
    }
}

#[inline]
fn tag_of(hash: u64) -> u8 {
    0x80 | (hash >> 57) as u8
}

/// Entry positions from a [`Block::matches`] mask, lowest first.
#[inline]
fn positions(mut mask: u128) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let bit = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(bit / 8)
    })
}

#[derive(Default)]
pub(crate) struct KeyTable {
    blocks: Box<[Block]>,
    len: u32,
}

impl KeyTable {
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Number of buckets; bucket numbers run from 0 to this.
    #[inline]
    pub fn buckets(&self) -> usize {
        self.blocks.len() * WIDTH
    }

    /// The index stored in `bucket`, if any.
    #[inline]
    pub fn get(&self, bucket: usize) -> Option<u32> {
        let b = self.blocks.get(bucket / WIDTH)?;
        let i = bucket % WIDTH;
        (b.tags[i] != 0).then_some(b.idx[i])
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        hash as usize & (self.blocks.len() - 1)
    }

    /// The bucket of the entry with this hash for which `eq` holds.
    #[inline]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let tag = tag_of(hash);
        let mask = self.blocks.len() - 1;
        let mut g = hash as usize & mask;
        for _ in 0..self.blocks.len() {
            let b = &self.blocks[g];
            for i in positions(b.matches(tag)) {
                if eq(b.idx[i]) {
                    return Some(g * WIDTH + i);
                }
            }
            if b.overflow == 0 {
                return None;
            }
            g = (g + 1) & mask;
        }
        None
    }

    /// Stores `value` for a key known to be absent; returns its bucket. `rehash`
    /// gives the hash of a stored value, for when the table grows.
    pub fn insert_unique(&mut self, hash: u64, value: u32, rehash: impl Fn(u32) -> u64) -> usize {
        if self.len as usize + 1 > self.blocks.len() * MAX_LOAD {
            let blocks = (self.blocks.len() * 2).max(1);
            self.rebuild(blocks, &rehash);
        }
        self.len += 1;
        self.place(hash, value)
    }

    /// Puts an entry in the first free bucket from its home block on.
    fn place(&mut self, hash: u64, value: u32) -> usize {
        let mask = self.blocks.len() - 1;
        let mut g = hash as usize & mask;
        loop {
            let b = &mut self.blocks[g];
            if let Some(i) = positions(b.matches(0)).next() {
                b.tags[i] = tag_of(hash);
                b.idx[i] = value;
                return g * WIDTH + i;
            }
            b.overflow = b.overflow.saturating_add(1);
            g = (g + 1) & mask;
        }
    }

    /// Replaces the index stored in an occupied `bucket` (its entry moved).
    #[inline]
    pub fn set(&mut self, bucket: usize, value: u32) {
        let b = &mut self.blocks[bucket / WIDTH];
        debug_assert!(b.tags[bucket % WIDTH] != 0, "setting an empty bucket");
        b.idx[bucket % WIDTH] = value;
    }

    /// Removes the entry in `bucket`, whose key has `hash`; returns its index.
    pub fn remove(&mut self, bucket: usize, hash: u64) -> u32 {
        let (at, i) = (bucket / WIDTH, bucket % WIDTH);
        debug_assert!(self.blocks[at].tags[i] != 0, "removing an empty bucket");
        self.blocks[at].tags[i] = 0;
        self.len -= 1;
        let mask = self.blocks.len() - 1;
        let mut g = self.home(hash);
        while g != at {
            let b = &mut self.blocks[g];
            if b.overflow != u8::MAX {
                b.overflow -= 1;
            }
            g = (g + 1) & mask;
        }
        self.blocks[at].idx[i]
    }

    /// Makes the table smaller if it can hold `min_len` entries in fewer blocks.
    pub fn shrink_to(&mut self, min_len: usize, rehash: impl Fn(u32) -> u64) {
        let need = min_len.max(self.len()).div_ceil(MAX_LOAD);
        let blocks = if need == 0 { 0 } else { need.next_power_of_two() };
        if blocks < self.blocks.len() {
            self.rebuild(blocks, &rehash);
        }
    }

    fn rebuild(&mut self, blocks: usize, rehash: &impl Fn(u32) -> u64) {
        let old = std::mem::replace(&mut self.blocks, vec![EMPTY_BLOCK; blocks].into_boxed_slice());
        for b in old.iter() {
            for i in 0..WIDTH {
                if b.tags[i] != 0 {
                    self.place(rehash(b.idx[i]), b.idx[i]);
                }
            }
        }
    }

    /// The stored indexes, in bucket order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.blocks.iter().flat_map(|b| (0..WIDTH).filter(|&i| b.tags[i] != 0).map(|i| b.idx[i]))
    }

    /// Asks the CPU to fetch the block where a lookup of `hash` starts (both lines
    /// it may span).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if !self.blocks.is_empty() {
            prefetch(&self.blocks[self.home(hash)]);
        }
    }

    /// The indexes in the home block of `hash` whose tag matches: the candidates a
    /// lookup would compare first.
    #[inline]
    pub fn candidates(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        let b = (!self.blocks.is_empty()).then(|| &self.blocks[self.home(hash)]);
        b.into_iter().flat_map(move |b| positions(b.matches(tag_of(hash))).map(|i| b.idx[i]))
    }
}

/// A hint to bring the cache lines holding `*p` into the nearest cache: the line of
/// its first byte and, when the value straddles a line boundary, the line of its last
/// (values here are at most two lines long). Never faults.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    const LINE: usize = 64;
    let size = std::mem::size_of::<T>().max(1);
    prefetch_line(p.cast());
    if (p as usize) % LINE + size > LINE {
        prefetch_line(p.cast::<u8>().wrapping_add(size - 1));
    }
}

#[inline(always)]
pub(crate) fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint; it reads no memory architecturally and cannot fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn block_is_a_cache_line_long() {
        assert_eq!(std::mem::size_of::<Block>(), 64);
    }

    #[test]
    fn matches_finds_exactly_the_equal_tags() {
        let mut b = EMPTY_BLOCK;
        b.tags = [0x80, 0x81, 0, 0xff, 0x81, 0, 0, 0, 0, 0, 0x81, 0x80];
        b.overflow = 0x81;
        b._pad = [0x81; 3];
        assert_eq!(positions(b.matches(0x81)).collect::<Vec<_>>(), vec![1, 4, 10]);
        assert_eq!(positions(b.matches(0x80)).collect::<Vec<_>>(), vec![0, 11]);
        assert_eq!(positions(b.matches(0)).collect::<Vec<_>>(), vec![2, 5, 6, 7, 8, 9]);
        assert_eq!(positions(b.matches(0xfe)).count(), 0);
    }

    /// A hash with few distinct values, so that blocks fill up and overflow.
    fn crowded(v: u32) -> u64 {
        let h = (v as u64 % 7).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^ ((v as u64 % 3) << 57)
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32),
        Remove(u32),
        Shrink(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..400).prop_map(Op::Insert),
            3 => (0u32..400).prop_map(Op::Remove),
            1 => (0usize..50).prop_map(Op::Shrink),
        ]
    }

    fn check(ops: Vec<Op>, hash: fn(u32) -> u64) {
        let mut t = KeyTable::default();
        let mut model: HashMap<u32, ()> = HashMap::new();
        for op in ops {
            match op {
                Op::Insert(v) => {
                    if model.insert(v, ()).is_none() {
                        let b = t.insert_unique(hash(v), v, hash);
                        assert_eq!(t.get(b), Some(v));
                    }
                }
                Op::Remove(v) => {
                    let found = t.find(hash(v), |x| x == v);
                    assert_eq!(found.is_some(), model.remove(&v).is_some());
                    if let Some(b) = found {
                        assert_eq!(t.remove(b, hash(v)), v);
                    }
                }
                Op::Shrink(n) => t.shrink_to(n, hash),
            }
            assert_eq!(t.len(), model.len());
            assert!(t.len() <= t.buckets());
        }
        for v in 0..400 {
            assert_eq!(t.find(hash(v), |x| x == v).and_then(|b| t.get(b)), model.contains_key(&v).then_some(v));
        }
        let mut all: Vec<u32> = t.iter().collect();
        all.sort_unstable();
        let mut want: Vec<u32> = model.keys().copied().collect();
        want.sort_unstable();
        assert_eq!(all, want);
        // Counts return to zero once everything is gone (none saturated here).
        for v in want {
            let b = t.find(hash(v), |x| x == v).expect("present");
            t.remove(b, hash(v));
        }
        assert!(t.blocks.iter().all(|b| b.overflow == 0 && b.tags == [0; WIDTH]));
    }

    fn spread(v: u32) -> u64 {
        (v as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29) ^ 0x5555
    }

    proptest! {
        #[test]
        fn agrees_with_a_model(ops in proptest::collection::vec(op(), 1..600)) {
            check(ops, spread);
        }

        #[test]
        fn agrees_with_a_model_when_crowded(ops in proptest::collection::vec(op(), 1..200)) {
            check(ops, crowded);
        }
    }

    #[test]
    fn saturated_counts_still_find_everything() {
        // 300 keys with one home block: the count saturates, lookups walk on.
        let same = |v: u32| (v as u64) << 57;
        let mut t = KeyTable::default();
        for v in 0..300 {
            t.insert_unique(same(v), v, same);
        }
        for v in 0..300 {
            assert_eq!(t.find(same(v), |x| x == v).and_then(|b| t.get(b)), Some(v));
        }
        assert_eq!(t.find(same(1000), |x| x == 1000), None);
        for v in 0..300 {
            let b = t.find(same(v), |x| x == v).unwrap();
            t.remove(b, same(v));
        }
        assert_eq!(t.len(), 0);
        assert_eq!(t.find(same(5), |x| x == 5), None);
    }

    #[test]
    fn candidates_include_the_stored_key() {
        let mut t = KeyTable::default();
        for v in 0..100 {
            t.insert_unique(spread(v), v, spread);
        }
        // A key in its home block shows up among the candidates.
        let home_hits = (0..100).filter(|&v| t.candidates(spread(v)).any(|x| x == v)).count();
        assert!(home_hits > 80, "{home_hits}");
        t.prefetch(spread(3));
    }
}
