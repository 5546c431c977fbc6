//! Large sorted sets: Redis's skiplist + dict pair, as a slab of elements, a hash
//! index from member to slot and an order-statistics tree of slots.
//!
//! Each element lives once, in a slot of `slots` (member bytes and score); the hash
//! table maps a member to its slot number and the [tree](super::tree) keeps slot
//! numbers in (score, member) order with subtree counts. ZSCORE is one hash lookup;
//! ZRANK, access by rank and the bounds of a score or lex range are O(log n) searches
//! of the tree. An element costs its member bytes plus about 40 bytes (slot 24, index
//! 5 to 10, tree 5 to 8), against about 100 in Redis.
//!
//! # ZSCAN
//! The cursor is a slot number, and a scan walks the slots downwards: `0` starts at the
//! top, a returned cursor `c` means "slots below `c` remain". A member keeps its slot
//! while it stays in the set; removed slots are reused by later additions, and when
//! more than half of the slots are free the set is compacted by moving the highest
//! elements into the lowest free slots. Moves only go downwards, so an element present
//! during a whole scan is returned at least once (perhaps twice), as Redis promises.

use super::tree::Tree;
use super::{LexRange, ScoreRange};
use foldhash::quality::FixedState;
use hashbrown::HashTable;
use std::cmp::Ordering;
use std::hash::BuildHasher;
use std::sync::OnceLock;

/// Compaction only for sets with at least this many slots.
const COMPACT_MIN_SLOTS: usize = 64;

#[derive(Clone, Debug)]
struct Slot {
    member: Box<[u8]>,
    /// NaN marks a free slot (a sorted set never holds NaN).
    score: f64,
}

impl Slot {
    fn is_free(&self) -> bool {
        self.score.is_nan()
    }
}

#[derive(Clone, Debug)]
pub(super) struct Indexed {
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: HashTable<u32>,
    tree: Tree,
}

/// The hash of a member, with one random seed per process.
fn hash(m: &[u8]) -> u64 {
    static STATE: OnceLock<FixedState> = OnceLock::new();
    STATE
        .get_or_init(|| FixedState::with_seed(std::collections::hash_map::RandomState::new().hash_one(0x25e7_u64)))
        .hash_one(m)
}

/// Redis's element order: by score, then by member bytes.
fn cmp_elements(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    match a_score.partial_cmp(&b_score) {
        Some(Ordering::Equal) | None => a_member.cmp(b_member),
        Some(o) => o,
    }
}

impl Indexed {
    #[cfg(test)]
    pub fn new() -> Indexed {
        Indexed { slots: Vec::new(), free: Vec::new(), index: HashTable::new(), tree: Tree::new() }
    }

    /// A set of `elements`, given in order and without duplicates.
    pub fn from_sorted(elements: impl ExactSizeIterator<Item = (Box<[u8]>, f64)>) -> Indexed {
        let n = elements.len();
        let mut slots = Vec::with_capacity(n);
        let mut index = HashTable::with_capacity(n);
        for (member, score) in elements {
            let id = slots.len() as u32;
            let h = hash(&member);
            slots.push(Slot { member, score });
            index.insert_unique(h, id, |&id: &u32| hash(&slots[id as usize].member));
        }
        let tree = Tree::from_sorted((0..slots.len() as u32).collect());
        Indexed { slots, free: Vec::new(), index, tree }
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    fn slot(&self, id: u32) -> &Slot {
        &self.slots[id as usize]
    }

    fn find(&self, m: &[u8]) -> Option<u32> {
        self.index.find(hash(m), |&id| &*self.slots[id as usize].member == m).copied()
    }

    /// Rank an element with this score and member has or would have.
    fn rank_of(&self, score: f64, m: &[u8]) -> usize {
        self.tree.partition_point(|id| {
            let s = self.slot(id);
            cmp_elements(s.score, &s.member, score, m) == Ordering::Less
        })
    }

    pub fn score(&self, m: &[u8]) -> Option<f64> {
        self.find(m).map(|id| self.slot(id).score)
    }

    pub fn rank(&self, m: &[u8]) -> Option<usize> {
        self.score(m).map(|s| self.rank_of(s, m))
    }

    /// Adds a member that is not in the set.
    pub fn insert(&mut self, m: &[u8], score: f64) {
        let slot = Slot { member: m.into(), score };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        let rank = self.rank_of(score, m);
        self.tree.insert(rank, id);
        let slots = &self.slots;
        self.index.insert_unique(hash(m), id, |&id| hash(&slots[id as usize].member));
    }

    /// Changes the score of member `m`, which is in the set.
    pub fn set_score(&mut self, m: &[u8], score: f64) {
        let Some(id) = self.find(m) else { return };
        let old = self.slot(id).score;
        let rank = self.rank_of(old, m);
        // Stays in place when it still sorts between its neighbours.
        let after_prev = rank == 0 || {
            let p = self.slot(self.tree.get(rank - 1));
            cmp_elements(p.score, &p.member, score, m) == Ordering::Less
        };
        let before_next = rank + 1 >= self.tree.len() || {
            let n = self.slot(self.tree.get(rank + 1));
            cmp_elements(score, m, n.score, &n.member) == Ordering::Less
        };
        if after_prev && before_next {
            self.slots[id as usize].score = score;
            return;
        }
        self.tree.remove(rank);
        self.slots[id as usize].score = score;
        let rank = self.rank_of(score, m);
        self.tree.insert(rank, id);
    }

    /// Removes member `m`; returns whether it was there.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        let Some(id) = self.find(m) else { return false };
        let rank = self.rank_of(self.slot(id).score, m);
        let removed = self.tree.remove(rank);
        debug_assert_eq!(removed, id);
        self.release(id);
        self.compact_if_sparse();
        true
    }

    /// Drops slot `id` from the index and frees it.
    fn release(&mut self, id: u32) {
        let h = hash(&self.slot(id).member);
        if let Ok(e) = self.index.find_entry(h, |&x| x == id) {
            e.remove();
        }
        self.slots[id as usize] = Slot { member: Box::default(), score: f64::NAN };
        self.free.push(id);
    }

    /// Removes the elements of ranks `start..start + count`.
    pub fn remove_ranks(&mut self, start: usize, count: usize) {
        for _ in 0..count {
            let id = self.tree.remove(start);
            self.release(id);
        }
        self.compact_if_sparse();
    }

    /// The member and score at `rank` (`rank < len`).
    pub fn get(&self, rank: usize) -> (&[u8], f64) {
        let s = self.slot(self.tree.get(rank));
        (&s.member, s.score)
    }

    pub fn walk(&self, from: usize, reverse: bool, f: &mut dyn FnMut(&[u8], f64) -> bool) {
        self.tree.walk(from, reverse, &mut |id| {
            let s = &self.slots[id as usize];
            f(&s.member, s.score)
        });
    }

    /// First rank whose score is within the minimum of `r`, if it is also within the
    /// maximum (`zslFirstInRange`).
    pub fn first_in_scores(&self, r: &ScoreRange) -> Option<usize> {
        if r.is_empty() {
            return None;
        }
        let rank = self.tree.partition_point(|id| !r.gte_min(self.slot(id).score));
        (rank < self.len() && r.lte_max(self.get(rank).1)).then_some(rank)
    }

    /// `zslLastInRange`.
    pub fn last_in_scores(&self, r: &ScoreRange) -> Option<usize> {
        if r.is_empty() {
            return None;
        }
        let end = self.tree.partition_point(|id| r.lte_max(self.slot(id).score));
        (end > 0 && r.gte_min(self.get(end - 1).1)).then(|| end - 1)
    }

    /// `zslFirstInLexRange` (members are assumed to be in order: equal scores).
    pub fn first_in_lex(&self, r: &LexRange) -> Option<usize> {
        if r.is_empty() {
            return None;
        }
        let rank = self.tree.partition_point(|id| !r.gte_min(&self.slot(id).member));
        (rank < self.len() && r.lte_max(self.get(rank).0)).then_some(rank)
    }

    /// `zslLastInLexRange`.
    pub fn last_in_lex(&self, r: &LexRange) -> Option<usize> {
        if r.is_empty() {
            return None;
        }
        let end = self.tree.partition_point(|id| r.lte_max(&self.slot(id).member));
        (end > 0 && r.gte_min(self.get(end - 1).0)).then(|| end - 1)
    }

    /// One ZSCAN step (see the module doc): up to `count` elements from slots below
    /// `cursor` (0: from the top), and the next cursor (0 when done).
    pub fn scan(&self, cursor: u64, count: usize, f: &mut dyn FnMut(&[u8], f64)) -> u64 {
        let mut next = if cursor == 0 { self.slots.len() } else { (cursor as usize).min(self.slots.len()) };
        let (mut found, mut visited) = (0, 0);
        let max_visits = count.saturating_mul(10);
        while next > 0 && found < count && visited < max_visits {
            next -= 1;
            visited += 1;
            let s = &self.slots[next];
            if !s.is_free() {
                f(&s.member, s.score);
                found += 1;
            }
        }
        next as u64
    }

    /// Moves the highest elements into the lowest free slots when more than half of
    /// the slots are free, then gives the memory back.
    fn compact_if_sparse(&mut self) {
        let n = self.slots.len();
        if n < COMPACT_MIN_SLOTS || self.free.len() * 2 <= n {
            if self.index.capacity() > 4 * self.index.len() + 64 {
                self.shrink_index();
            }
            return;
        }
        let live = self.len();
        self.free.clear();
        let mut hole = 0;
        for top in (live..n).rev() {
            if self.slots[top].is_free() {
                continue;
            }
            while !self.slots[hole].is_free() {
                hole += 1;
            }
            self.move_slot(top as u32, hole as u32);
        }
        self.slots.truncate(live);
        self.slots.shrink_to_fit();
        self.free.shrink_to_fit();
        self.shrink_index();
    }

    /// Moves the element in slot `from` to the free slot `to`.
    fn move_slot(&mut self, from: u32, to: u32) {
        let (score, h) = {
            let s = self.slot(from);
            (s.score, hash(&s.member))
        };
        let rank = {
            let m = &self.slot(from).member;
            self.rank_of(score, m)
        };
        self.tree.replace(rank, to);
        if let Some(x) = self.index.find_mut(h, |&x| x == from) {
            *x = to;
        }
        let s = std::mem::replace(&mut self.slots[from as usize], Slot { member: Box::default(), score: f64::NAN });
        self.slots[to as usize] = s;
    }

    fn shrink_index(&mut self) {
        let slots = &self.slots;
        self.index.shrink_to(0, |&id| hash(&slots[id as usize].member));
    }

    /// Gives back the slab's spare room when it is more than half empty (not after
    /// every addition: the slab grows by doubling, as a Vec does).
    pub fn shrink_to_fit(&mut self) {
        if self.slots.capacity() > 2 * self.slots.len() + 16 {
            self.slots.shrink_to_fit();
        }
    }

    /// Bytes allocated on the heap (approximate for the tree).
    pub fn allocated_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.slots.iter().map(|s| s.member.len()).sum::<usize>()
            + self.free.capacity() * 4
            + self.index.capacity() * 5
            + self.len() * 6
    }

    /// Checks that index, slots and tree agree (tests).
    #[cfg(test)]
    pub fn check(&self) {
        self.tree.check();
        assert_eq!(self.index.len(), self.len());
        assert_eq!(self.slots.iter().filter(|s| !s.is_free()).count(), self.len());
        let mut prev: Option<(f64, Vec<u8>)> = None;
        self.walk(0, false, &mut |m, s| {
            assert_eq!(self.score(m), Some(s));
            if let Some((ps, pm)) = &prev {
                assert_eq!(cmp_elements(*ps, pm, s, m), Ordering::Less);
            }
            prev = Some((s, m.to_vec()));
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_tree_and_slots_stay_consistent() {
        let mut z = Indexed::new();
        for i in 0..3000u32 {
            z.insert(format!("m{i}").as_bytes(), (i % 97) as f64);
        }
        z.check();
        assert_eq!(z.len(), 3000);
        assert_eq!(z.rank(b"m0"), Some(0));
        // 31 members have score 0 (m0, m97, ... m2910); "m1" is the first of score 1.
        assert_eq!(z.rank(b"m1"), Some(31));
        for i in (0..3000u32).step_by(3) {
            assert!(z.remove(format!("m{i}").as_bytes()));
        }
        z.check();
        for i in (1..3000u32).step_by(3) {
            z.set_score(format!("m{i}").as_bytes(), -(i as f64));
        }
        z.check();
        assert_eq!(z.get(0).0, b"m2998");
        z.remove_ranks(10, 1500);
        z.check();
        assert!(z.slots.len() < 1000, "compacted: {} slots for {}", z.slots.len(), z.len());
    }

    #[test]
    fn scan_returns_elements_present_throughout_despite_compaction() {
        let mut z = Indexed::new();
        for i in 0..2000u32 {
            z.insert(format!("m{i}").as_bytes(), i as f64);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut removed = 0u32;
        loop {
            cursor = z.scan(cursor, 50, &mut |m, _| {
                seen.insert(m.to_vec());
            });
            // Remove members that are never asked for: odd ones, in bulk, to force compactions.
            for _ in 0..60 {
                if removed < 1000 {
                    z.remove(format!("m{}", removed * 2 + 1).as_bytes());
                    removed += 1;
                }
            }
            if cursor == 0 {
                break;
            }
        }
        z.check();
        for i in (0..2000u32).step_by(2) {
            assert!(seen.contains(format!("m{i}").as_bytes()), "m{i} missed");
        }
    }

    #[test]
    fn from_sorted_builds_a_valid_set() {
        let elements: Vec<(Box<[u8]>, f64)> = (0..1000).map(|i| (format!("{i:04}").into_bytes().into(), 1.0)).collect();
        let z = Indexed::from_sorted(elements.into_iter());
        z.check();
        assert_eq!(z.rank(b"0500"), Some(500));
    }
}
