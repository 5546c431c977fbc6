//! Large sets of strings: a hash table split into shards by the top bits of each
//! member's hash (extendible hashing).
//!
//! A directory of `2^depth` entries maps the top `depth` bits of a hash to a shard; a
//! shard of local depth `d <= depth` holds every member whose hash starts with its
//! `d`-bit prefix, so it covers one contiguous range of the hash space. A shard that
//! fills up splits in two by its next hash bit (doubling the directory, which holds
//! only shard numbers, when needed). Growth therefore never rehashes more than one
//! shard at a time: no pause like a whole-table resize.
//!
//! Why not one table: SSCAN. Redis's cursor walks its buckets in reverse-binary order
//! so that every member present for the whole scan is returned despite resizes. Here
//! the cursor is a position in the hash space: a call returns whole shards from the
//! one containing the cursor onwards, and the next cursor is where the last one ends.
//! Splits and rebuilds only redraw shard boundaries, so members whose hash is at or
//! after the cursor are still ahead: none is missed, and none is returned twice unless
//! the set is rebuilt mid-scan with a cursor inside a shard (then the shard is filtered
//! by hash).
//!
//! Random members are drawn uniformly by picking a shard uniformly, then a bucket
//! index below the largest bucket count of any shard, until an occupied bucket comes
//! up.

use foldhash::quality::FixedState;
use hashbrown::HashTable;
use std::hash::BuildHasher;
use std::sync::OnceLock;

/// A shard splits when it would exceed this many members: 112 fill 128 buckets at
/// hashbrown's 7/8 load, so shards never grow past 128 buckets.
const SPLIT_AT: usize = 112;
/// The whole table is rebuilt when it holds fewer members than this per shard.
const REBUILD_BELOW_PER_SHARD: usize = 16;

#[derive(Clone, Debug)]
struct Shard {
    /// How many top hash bits all members of this shard share.
    depth: u32,
    table: HashTable<Box<[u8]>>,
}

#[derive(Clone, Debug)]
pub(crate) struct HashedSet {
    /// Shard number per prefix of `depth` top hash bits.
    dir: Vec<u32>,
    depth: u32,
    shards: Vec<Shard>,
    len: usize,
    /// An upper bound of the bucket count of every shard (for uniform sampling).
    max_buckets: usize,
}

/// The hash of a member: one random seed per process, so clients cannot aim for
/// collisions; SSCAN cursors are only meaningful within one process anyway.
fn hash(m: &[u8]) -> u64 {
    static STATE: OnceLock<FixedState> = OnceLock::new();
    STATE
        .get_or_init(|| {
            let seed = std::collections::hash_map::RandomState::new().hash_one(0x5e7_u64);
            FixedState::with_seed(seed)
        })
        .hash_one(m)
}

/// The hash a shard's table sees. Its top 7 bits are hashbrown's tag, and every member
/// of a shard shares its top hash bits: rotate so that the tag comes from bits that
/// differ.
#[inline]
fn inner(h: u64) -> u64 {
    h.rotate_left(32)
}

/// The hasher hashbrown calls when it moves members (it takes `&T`).
#[allow(clippy::borrowed_box)]
fn rehash(m: &Box<[u8]>) -> u64 {
    inner(hash(m))
}

/// The first hash of the range a shard of depth `d` containing `h` covers, and the
/// first after it (2^64 for the last).
fn shard_range(h: u64, d: u32) -> (u64, u128) {
    let start = if d == 0 { 0 } else { (h >> (64 - d)) << (64 - d) };
    (start, start as u128 + (1u128 << (64 - d)))
}

impl Default for HashedSet {
    fn default() -> Self {
        HashedSet {
            dir: vec![0],
            depth: 0,
            shards: vec![Shard { depth: 0, table: HashTable::new() }],
            len: 0,
            max_buckets: 0,
        }
    }
}

impl HashedSet {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn shard_of(&self, h: u64) -> usize {
        let idx = if self.depth == 0 { 0 } else { (h >> (64 - self.depth)) as usize };
        self.dir[idx] as usize
    }

    pub(crate) fn contains(&self, m: &[u8]) -> bool {
        let h = hash(m);
        self.shards[self.shard_of(h)].table.find(inner(h), |e| **e == *m).is_some()
    }

    /// Adds `m`; false when it was there.
    pub(crate) fn insert(&mut self, m: &[u8]) -> bool {
        let h = hash(m);
        let mut s = self.shard_of(h);
        if self.shards[s].table.find(inner(h), |e| **e == *m).is_some() {
            return false;
        }
        if self.shards[s].table.len() >= SPLIT_AT && self.shards[s].depth < 64 {
            self.split(s, h);
            s = self.shard_of(h);
        }
        let table = &mut self.shards[s].table;
        table.insert_unique(inner(h), m.into(), rehash);
        self.max_buckets = self.max_buckets.max(table.num_buckets());
        self.len += 1;
        true
    }

    /// Splits shard `s` (which holds hash `h`) in two by its next hash bit.
    fn split(&mut self, s: usize, h: u64) {
        let d = self.shards[s].depth;
        if d == self.depth {
            self.dir = self.dir.iter().flat_map(|&x| [x, x]).collect();
            self.depth += 1;
        }
        let span = 1usize << (self.depth - d);
        let first = ((h >> (64 - self.depth)) as usize) & !(span - 1);
        let old = std::mem::take(&mut self.shards[s].table);
        let (mut lo, mut hi) = (HashTable::with_capacity(SPLIT_AT), HashTable::with_capacity(SPLIT_AT));
        for m in old {
            let mh = hash(&m);
            let side = if (mh >> (63 - d)) & 1 == 0 { &mut lo } else { &mut hi };
            side.insert_unique(inner(mh), m, rehash);
        }
        self.max_buckets = self.max_buckets.max(lo.num_buckets()).max(hi.num_buckets());
        self.shards[s] = Shard { depth: d + 1, table: lo };
        let new = self.shards.len() as u32;
        self.shards.push(Shard { depth: d + 1, table: hi });
        for e in &mut self.dir[first + span / 2..first + span] {
            *e = new;
        }
    }

    /// Removes `m`; false when it was not there.
    pub(crate) fn remove(&mut self, m: &[u8]) -> bool {
        let h = hash(m);
        let s = self.shard_of(h);
        let table = &mut self.shards[s].table;
        let Ok(entry) = table.find_entry(inner(h), |e| **e == *m) else { return false };
        entry.remove();
        self.len -= 1;
        if table.len() * 4 < table.capacity() && table.capacity() > 16 {
            table.shrink_to(table.len() * 2, rehash);
        }
        if self.shards.len() > 1 && self.len < self.shards.len() * REBUILD_BELOW_PER_SHARD {
            self.rebuild();
        }
        true
    }

    /// Rebuilds the table with as few shards as its members need.
    fn rebuild(&mut self) {
        let old = std::mem::take(self);
        for shard in old.shards {
            for m in shard.table {
                let h = hash(&m);
                let mut s = self.shard_of(h);
                if self.shards[s].table.len() >= SPLIT_AT {
                    self.split(s, h);
                    s = self.shard_of(h);
                }
                let table = &mut self.shards[s].table;
                table.insert_unique(inner(h), m, rehash);
                self.max_buckets = self.max_buckets.max(table.num_buckets());
                self.len += 1;
            }
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.shards.iter().flat_map(|s| s.table.iter()).map(|m| &**m)
    }

    /// A uniformly random member of a non-empty set; `next` draws random numbers.
    pub(crate) fn random(&self, next: &mut dyn FnMut() -> u64) -> &[u8] {
        debug_assert!(self.len > 0);
        loop {
            let shard = &self.shards[(next() % self.shards.len() as u64) as usize];
            let bucket = (next() % self.max_buckets.max(1) as u64) as usize;
            if bucket < shard.table.num_buckets() {
                if let Some(m) = shard.table.get_bucket(bucket) {
                    return m;
                }
            }
        }
    }

    /// Calls `f` with the members of whole shards from the one containing hash
    /// `cursor` onwards, until about `count` were given; returns the next cursor, 0 at
    /// the end (see the module comment).
    pub(crate) fn scan(&self, cursor: u64, count: usize, f: &mut dyn FnMut(&[u8])) -> u64 {
        let (mut pos, mut given, mut visited) = (cursor, 0, 0);
        loop {
            let shard = &self.shards[self.shard_of(pos)];
            let (start, end) = shard_range(pos, shard.depth);
            for m in shard.table.iter() {
                if pos == start || hash(m) >= pos {
                    f(m);
                    given += 1;
                }
            }
            visited += 1;
            if end > u64::MAX as u128 {
                return 0;
            }
            pos = end as u64;
            if given >= count || visited >= count.saturating_mul(10) {
                return pos;
            }
        }
    }

    /// Bytes allocated for the table and its members (for memory accounting).
    pub(crate) fn allocated_bytes(&self) -> usize {
        let tables: usize = self.shards.iter().map(|s| s.table.allocation_size()).sum();
        let members: usize = self.iter().map(<[u8]>::len).sum();
        tables + members + self.dir.len() * 4 + self.shards.len() * std::mem::size_of::<Shard>()
    }

    #[cfg(test)]
    fn shard_count(&self) -> usize {
        self.shards.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn member(i: usize) -> Vec<u8> {
        format!("member:{i}").into_bytes()
    }

    fn check_invariants(t: &HashedSet) {
        assert_eq!(t.dir.len(), 1 << t.depth);
        let mut n = 0;
        for (i, s) in t.shards.iter().enumerate() {
            assert!(s.depth <= t.depth);
            assert!(s.table.num_buckets() <= t.max_buckets || s.table.is_empty());
            for m in s.table.iter() {
                assert_eq!(t.shard_of(hash(m)), i, "member in the wrong shard");
                n += 1;
            }
        }
        assert_eq!(n, t.len);
    }

    #[test]
    fn grows_by_splitting_and_shrinks_by_rebuilding() {
        let mut t = HashedSet::default();
        for i in 0..10_000 {
            assert!(t.insert(&member(i)));
        }
        assert!(!t.insert(&member(5)));
        check_invariants(&t);
        assert!(t.shard_count() > 10_000 / SPLIT_AT);
        assert!(t.max_buckets <= 128);
        for i in 0..10_000 {
            assert!(t.contains(&member(i)));
        }
        for i in 100..10_000 {
            assert!(t.remove(&member(i)));
        }
        assert!(!t.remove(&member(100)));
        check_invariants(&t);
        // The rule: at most one shard per REBUILD_BELOW_PER_SHARD members. How many
        // shards the last rebuild made depends on the process's hash seed.
        assert!(t.shard_count() <= 100 / REBUILD_BELOW_PER_SHARD, "{} shards for 100 members", t.shard_count());
        let left: HashSet<Vec<u8>> = t.iter().map(<[u8]>::to_vec).collect();
        assert_eq!(left, (0..100).map(member).collect());
        for i in 10..100 {
            assert!(t.remove(&member(i)));
        }
        check_invariants(&t);
        assert_eq!(t.shard_count(), 1, "10 members fit one shard");
    }

    #[test]
    fn scan_returns_every_member_once_despite_growth() {
        let mut t = HashedSet::default();
        for i in 0..2000 {
            t.insert(&member(i));
        }
        let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
        let (mut cursor, mut calls, mut next) = (0, 0, 2000);
        loop {
            cursor = t.scan(cursor, 10, &mut |m| *seen.entry(m.to_vec()).or_default() += 1);
            calls += 1;
            // Members added mid-scan may or may not be returned; the first 2000 must be.
            for _ in 0..30 {
                t.insert(&member(next));
                next += 1;
            }
            if cursor == 0 {
                break;
            }
        }
        assert!(calls > 5);
        for i in 0..2000 {
            assert_eq!(seen.get(&member(i)), Some(&1), "member {i}");
        }
    }

    #[test]
    fn scan_survives_a_rebuild() {
        let mut t = HashedSet::default();
        for i in 0..3000 {
            t.insert(&member(i));
        }
        let mut seen = HashSet::new();
        let mut cursor = t.scan(0, 200, &mut |m| {
            seen.insert(m.to_vec());
        });
        for i in 100..3000 {
            t.remove(&member(i));
        }
        while cursor != 0 {
            cursor = t.scan(cursor, 10, &mut |m| {
                seen.insert(m.to_vec());
            });
        }
        for i in 0..100 {
            assert!(seen.contains(&member(i)));
        }
    }

    #[test]
    fn random_members_are_uniform() {
        let mut t = HashedSet::default();
        for i in 0..1000 {
            t.insert(&member(i));
        }
        let mut x: u64 = 7;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut hits: HashMap<Vec<u8>, u32> = HashMap::new();
        for _ in 0..200_000 {
            *hits.entry(t.random(&mut next).to_vec()).or_default() += 1;
        }
        assert_eq!(hits.len(), 1000);
        // 200 expected each; a biased sampler (per shard) would stray far more.
        assert!(hits.values().all(|&n| (120..=290).contains(&n)), "{:?}", hits.values().max());
    }
}
