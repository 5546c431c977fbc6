//! The hash table of large hashes (what OBJECT ENCODING calls `hashtable`).
//!
//! Open addressing with linear probing: a power-of-two array of slots, each holding
//! the field's hash and one allocation with the pair (`[varint field length][field]
//! [value]`). Deletion shifts the following entries back instead of leaving
//! tombstones, which keeps one invariant: an entry whose *home* slot (its hash masked
//! by the table size) is `b` sits in the run of occupied slots that starts at `b`.
//!
//! # Scanning
//! HSCAN needs a cursor that survives the table growing and shrinking between calls
//! and still returns every entry present for the whole iteration. Redis gets that by
//! visiting buckets in reverse-binary order (incrementing the bit-reversed cursor):
//! when the table doubles, bucket `b` splits into `b` and `b + size`, which the
//! reverse-binary order visits next to each other, so nothing already visited is
//! revisited and nothing unvisited is skipped; a shrink merges buckets and may only
//! repeat some. With the invariant above, "visit bucket `b`" here means "walk the run
//! starting at `b` and take the entries whose home is `b`", which is exactly the
//! bucket of a chained table, so Redis's argument holds unchanged.

use foldhash::quality::FixedState;
use std::hash::BuildHasher;
use std::sync::OnceLock;

const MIN_SLOTS: usize = 4;

/// One hasher for every hash table of the process, seeded at random once: cursors
/// and clones stay valid, and a client cannot aim collisions at a known seed.
fn hasher() -> &'static FixedState {
    static HASHER: OnceLock<FixedState> = OnceLock::new();
    HASHER.get_or_init(|| {
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x6861_7368_u64);
        FixedState::with_seed(seed)
    })
}

fn hash_of(field: &[u8]) -> u64 {
    hasher().hash_one(field)
}

#[derive(Clone, Debug, Default)]
struct Slot {
    hash: u64,
    pair: Option<Box<[u8]>>,
}

#[derive(Clone, Debug)]
pub struct Table {
    slots: Box<[Slot]>,
    len: usize,
}

impl Default for Table {
    fn default() -> Self {
        Table::with_capacity(0)
    }
}

/// Slots for `n` entries at most 3/4 full.
fn slots_for(n: usize) -> usize {
    (n.saturating_mul(4) / 3 + 1).next_power_of_two().max(MIN_SLOTS)
}

impl Table {
    /// An empty table with room for `n` entries before it grows.
    pub fn with_capacity(n: usize) -> Table {
        Table { slots: (0..slots_for(n)).map(|_| Slot::default()).collect(), len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot holding `field`.
    fn find(&self, hash: u64, field: &[u8]) -> Option<usize> {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            let slot = &self.slots[i];
            let pair = slot.pair.as_deref()?;
            if slot.hash == hash && split(pair).0 == field {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        let i = self.find(hash_of(field), field)?;
        self.pair_at_slot(i).map(|(_, v)| v)
    }

    /// Sets `field` to `value`; returns whether the field is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        let hash = hash_of(field);
        if let Some(i) = self.find(hash, field) {
            let slot = &mut self.slots[i];
            if let Some(pair) = slot.pair.as_mut() {
                let value_at = split_at(pair);
                if pair.len() - value_at == value.len() {
                    pair[value_at..].copy_from_slice(value);
                } else {
                    *pair = make_pair(field, value);
                }
            }
            return false;
        }
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.resize(self.slots.len() * 2);
        }
        self.place(hash, make_pair(field, value));
        self.len += 1;
        true
    }

    /// Puts an entry known to be absent into the first free slot of its run.
    fn place(&mut self, hash: u64, pair: Box<[u8]>) {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.slots[i].pair.is_some() {
            i = (i + 1) & mask;
        }
        self.slots[i] = Slot { hash, pair: Some(pair) };
    }

    /// Removes `field`; returns whether it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        let Some(mut hole) = self.find(hash_of(field), field) else { return false };
        self.slots[hole] = Slot::default();
        self.len -= 1;
        // Shift back every later entry of the run that may fill the hole without
        // moving before its home.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            if self.slots[j].pair.is_none() {
                break;
            }
            let home = self.slots[j].hash as usize & mask;
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = std::mem::take(&mut self.slots[j]);
                hole = j;
            }
        }
        // Redis shrinks a hash table under 10% full; here under 1/8, so that random
        // slot picks (HRANDFIELD) stay cheap.
        if self.slots.len() > MIN_SLOTS && self.len * 8 < self.slots.len() {
            self.resize(slots_for(self.len));
        }
        true
    }

    fn resize(&mut self, n: usize) {
        let old = std::mem::replace(&mut self.slots, (0..n).map(|_| Slot::default()).collect());
        for slot in old.into_vec() {
            if let Some(pair) = slot.pair {
                self.place(slot.hash, pair);
            }
        }
    }

    /// The pairs in slot order.
    pub fn iter(&self) -> TableIter<'_> {
        TableIter(self.slots.iter())
    }

    pub fn pair_at_slot(&self, i: usize) -> Option<(&[u8], &[u8])> {
        self.slots.get(i)?.pair.as_deref().map(split)
    }

    /// The slot of an entry chosen uniformly at random (None when empty): random slots
    /// until one is occupied, which the 1/8 minimum fill keeps short.
    pub fn random_slot(&self, rng: &mut dyn FnMut() -> u64) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        loop {
            let i = rng() as usize & mask;
            if self.slots[i].pair.is_some() {
                return Some(i);
            }
        }
    }

    /// One step of an HSCAN: visits buckets from `cursor` in reverse-binary order and
    /// calls `f` for each entry of each bucket, until `f` was called `count` times,
    /// `max_buckets` buckets were visited, or the iteration is complete. Returns the
    /// next cursor, 0 when complete. See the module comment.
    pub fn scan<'a>(
        &'a self,
        mut cursor: u64,
        count: usize,
        max_buckets: usize,
        f: &mut dyn FnMut(&'a [u8], &'a [u8]),
    ) -> u64 {
        if self.len == 0 {
            return 0;
        }
        let mask = self.mask();
        let (mut emitted, mut visited) = (0usize, 0usize);
        loop {
            let bucket = cursor as usize & mask;
            let mut i = bucket;
            while let Some(pair) = self.slots[i].pair.as_deref() {
                if self.slots[i].hash as usize & mask == bucket {
                    let (k, v) = split(pair);
                    f(k, v);
                    emitted += 1;
                }
                i = (i + 1) & mask;
            }
            visited += 1;
            cursor |= !(mask as u64);
            cursor = cursor.reverse_bits().wrapping_add(1).reverse_bits();
            if cursor == 0 || emitted >= count || visited >= max_buckets {
                return cursor;
            }
        }
    }
}

/// Iterator over the pairs of a [`Table`], in slot order.
pub struct TableIter<'a>(std::slice::Iter<'a, Slot>);

impl<'a> Iterator for TableIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.by_ref().find_map(|s| s.pair.as_deref().map(split))
    }
}

impl PartialEq for Table {
    /// Same pairs, wherever they sit.
    fn eq(&self, other: &Table) -> bool {
        self.len == other.len && self.iter().all(|(f, v)| other.get(f) == Some(v))
    }
}

fn make_pair(field: &[u8], value: &[u8]) -> Box<[u8]> {
    let mut v = Vec::with_capacity(varint_len(field.len()) + field.len() + value.len());
    let mut n = field.len();
    while n >= 0x80 {
        v.push(n as u8 | 0x80);
        n >>= 7;
    }
    v.push(n as u8);
    v.extend_from_slice(field);
    v.extend_from_slice(value);
    v.into_boxed_slice()
}

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// The field length of a pair and the bytes its varint takes.
fn field_len(pair: &[u8]) -> (usize, usize) {
    let (mut n, mut shift, mut i) = (0usize, 0u32, 0usize);
    loop {
        let b = pair[i];
        n |= ((b & 0x7F) as usize) << shift;
        i += 1;
        if b < 0x80 {
            return (n, i);
        }
        shift += 7;
    }
}

/// Where the value of a pair starts.
fn split_at(pair: &[u8]) -> usize {
    let (n, header) = field_len(pair);
    header + n
}

fn split(pair: &[u8]) -> (&[u8], &[u8]) {
    let (n, header) = field_len(pair);
    (&pair[header..header + n], &pair[header + n..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn check_invariant(t: &Table) {
        let mask = t.mask();
        let mut n = 0;
        for (i, s) in t.slots.iter().enumerate() {
            if s.pair.is_none() {
                continue;
            }
            n += 1;
            // Every slot from home to i is occupied.
            let mut j = s.hash as usize & mask;
            while j != i {
                assert!(t.slots[j].pair.is_some(), "hole between home and slot {i}");
                j = (j + 1) & mask;
            }
        }
        assert_eq!(n, t.len);
        assert!(t.len * 4 <= t.slots.len() * 3);
    }

    #[test]
    fn pairs_split_back() {
        for flen in [0usize, 1, 127, 128, 300, 20000] {
            let field = vec![b'f'; flen];
            let pair = make_pair(&field, b"value");
            assert_eq!(split(&pair), (&field[..], &b"value"[..]));
        }
    }

    #[test]
    fn behaves_as_a_map() {
        let mut t = Table::default();
        let mut model = BTreeMap::new();
        let mut x = 7u64;
        for step in 0..20000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let field = format!("f{}", (x >> 33) % 700).into_bytes();
            if (x >> 20).is_multiple_of(3) {
                assert_eq!(t.remove(&field), model.remove(&field).is_some());
            } else {
                let value = format!("v{step}").into_bytes();
                assert_eq!(t.insert(&field, &value), model.insert(field.clone(), value).is_none());
            }
            if step % 1000 == 0 {
                check_invariant(&t);
            }
        }
        check_invariant(&t);
        assert_eq!(t.len(), model.len());
        for (f, v) in &model {
            assert_eq!(t.get(f), Some(&v[..]));
        }
        let all: BTreeMap<Vec<u8>, Vec<u8>> = t.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
        assert_eq!(all, model);
        for f in model.keys() {
            assert!(t.remove(f));
        }
        assert!(t.is_empty());
        assert_eq!(t.slots.len(), MIN_SLOTS);
    }

    #[test]
    fn value_replaced_in_place_or_reallocated() {
        let mut t = Table::default();
        assert!(t.insert(b"f", b"abc"));
        assert!(!t.insert(b"f", b"xyz"));
        assert_eq!(t.get(b"f"), Some(&b"xyz"[..]));
        assert!(!t.insert(b"f", b"longer value"));
        assert_eq!(t.get(b"f"), Some(&b"longer value"[..]));
        assert_eq!(t.len(), 1);
    }

    /// Full scans while the table grows and shrinks between steps: every entry present
    /// throughout comes back.
    #[test]
    fn scan_survives_resizes() {
        for &(start, end) in &[(10usize, 5000usize), (5000, 10), (300, 300)] {
            let mut t = Table::default();
            for i in 0..start {
                t.insert(format!("s{i}").as_bytes(), b"v");
            }
            let stable: BTreeSet<Vec<u8>> = (0..start.min(end)).map(|i| format!("s{i}").into_bytes()).collect();
            let mut seen = BTreeSet::new();
            let mut cursor = 0;
            let mut steps = 0;
            loop {
                cursor = t.scan(cursor, 7, 70, &mut |f, _| {
                    seen.insert(f.to_vec());
                });
                steps += 1;
                // Move towards `end` entries a bit per step.
                for _ in 0..40 {
                    let n = t.len();
                    if n < end {
                        t.insert(format!("s{n}").as_bytes(), b"v");
                    } else if n > end {
                        t.remove(format!("s{}", n - 1).as_bytes());
                    }
                }
                if cursor == 0 {
                    break;
                }
                assert!(steps < 100_000);
            }
            assert!(stable.is_subset(&seen), "scan {start} -> {end} missed entries");
        }
    }

    #[test]
    fn scan_of_a_stable_table_returns_each_entry_once() {
        let mut t = Table::default();
        for i in 0..1000 {
            t.insert(format!("k{i}").as_bytes(), format!("{i}").as_bytes());
        }
        let mut seen = Vec::new();
        let mut cursor = 0;
        loop {
            cursor = t.scan(cursor, 10, 100, &mut |f, v| {
                assert_eq!(f[1..], v[..]);
                seen.push(f.to_vec());
            });
            if cursor == 0 {
                break;
            }
        }
        let unique: BTreeSet<_> = seen.iter().cloned().collect();
        assert_eq!((seen.len(), unique.len()), (1000, 1000));
        // A huge count finishes in one call.
        let mut n = 0;
        assert_eq!(t.scan(0, usize::MAX, usize::MAX, &mut |_, _| n += 1), 0);
        assert_eq!(n, 1000);
    }

    #[test]
    fn random_slots_are_occupied_and_spread() {
        let mut t = Table::default();
        for i in 0..50 {
            t.insert(format!("k{i}").as_bytes(), b"v");
        }
        let mut x = 1u64;
        let mut rng = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut hits = BTreeSet::new();
        for _ in 0..2000 {
            let i = t.random_slot(&mut rng).expect("non-empty");
            hits.insert(t.pair_at_slot(i).expect("occupied").0.to_vec());
        }
        assert_eq!(hits.len(), 50);
        assert_eq!(Table::default().random_slot(&mut rng), None);
    }

    #[test]
    fn equality_ignores_layout() {
        let (mut a, mut b) = (Table::default(), Table::with_capacity(1000));
        for i in 0..20 {
            a.insert(format!("{i}").as_bytes(), b"x");
            b.insert(format!("{}", 19 - i).as_bytes(), b"x");
        }
        assert_eq!(a, b);
        b.insert(b"3", b"y");
        assert_ne!(a, b);
    }
}
