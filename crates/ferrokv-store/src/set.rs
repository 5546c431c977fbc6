//! The set value type (Redis's t_set.c and intset.c).
//!
//! # Encodings
//! Redis 7.0 has two set encodings, and OBJECT ENCODING shows which one a set has:
//! `intset` while every member is a canonical 64-bit integer (as `string2ll` accepts
//! it) and there are at most `set-max-intset-entries` of them; `hashtable` once a set
//! breaks either rule, for good (Redis never converts back). A set created for a first
//! member that is not an integer starts as a `hashtable`.
//!
//! Inside, a set is one of three representations:
//! - [`IntSet`](intset): sorted integers packed as offsets from the smallest, in 1 to
//!   8 bytes each (reported `intset`). Iterated in ascending order, as Redis's intset.
//! - [`PackedSet`](packed): up to `set-max-listpack-entries` members of at most
//!   `set-max-listpack-value` bytes in one buffer, in insertion order (reported
//!   `hashtable`, as Redis 7.0 has no listpack sets: only the memory differs).
//! - [`HashedSet`](table): a sharded hash table for larger sets (reported `hashtable`).
//!
//! A packed set becomes a table past its limits, and a table shrinks back into a
//! packed set through [`SetValue::compact`] when it gets small again. Clients cannot
//! tell these two apart except by the order of SMEMBERS, which Redis leaves undefined
//! for `hashtable` sets.

mod intset;
mod packed;
mod table;

use crate::value::parse_canonical_i64;
use intset::IntSet;
use packed::PackedSet;
use table::HashedSet;

/// Redis caps intsets at 2^30 entries whatever `set-max-intset-entries` says.
const INTSET_HARD_LIMIT: u64 = 1 << 30;

/// The thresholds that decide a set's representation, from the config options of the
/// same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetLimits {
    /// `set-max-intset-entries`.
    pub max_intset_entries: u64,
    /// `set-max-listpack-entries`: members a packed set holds at most.
    pub max_packed_entries: u64,
    /// `set-max-listpack-value`: bytes per member a packed set holds at most.
    pub max_packed_value: u64,
}

impl Default for SetLimits {
    fn default() -> Self {
        SetLimits { max_intset_entries: 512, max_packed_entries: 128, max_packed_value: 64 }
    }
}

impl SetLimits {
    fn intset_entries(&self) -> usize {
        self.max_intset_entries.min(INTSET_HARD_LIMIT) as usize
    }

    fn packs(&self, len: usize, longest: usize) -> bool {
        len as u64 <= self.max_packed_entries && longest as u64 <= self.max_packed_value
    }
}

/// A member as a set holds it: integers of an intset stay integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Member<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

/// Room for the decimal form of an i64.
pub type IntBuf = [u8; 20];

/// The decimal form of `n` in `buf`.
pub fn format_i64(n: i64, buf: &mut IntBuf) -> &[u8] {
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

impl<'a> Member<'a> {
    /// The member's bytes; an integer is formatted into `buf`.
    pub fn bytes<'b>(&self, buf: &'b mut IntBuf) -> &'b [u8]
    where
        'a: 'b,
    {
        match *self {
            Member::Int(n) => format_i64(n, buf),
            Member::Bytes(b) => b,
        }
    }

    pub fn to_owned(&self) -> OwnedMember {
        match *self {
            Member::Int(n) => OwnedMember::Int(n),
            Member::Bytes(b) => OwnedMember::Bytes(b.into()),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.bytes(&mut [0; 20]).to_vec()
    }

    /// The member as an intset would hold it: a canonical integer.
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            Member::Int(n) => Some(n),
            Member::Bytes(b) => parse_canonical_i64(b),
        }
    }
}

/// A [`Member`] copied out of its set (to carry it from one database to another).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OwnedMember {
    Int(i64),
    Bytes(Box<[u8]>),
}

impl OwnedMember {
    pub fn as_member(&self) -> Member<'_> {
        match self {
            OwnedMember::Int(n) => Member::Int(*n),
            OwnedMember::Bytes(b) => Member::Bytes(b),
        }
    }
}

#[derive(Clone, Debug)]
enum Repr {
    Ints(IntSet),
    Packed(PackedSet),
    Table(Box<HashedSet>),
}

#[derive(Clone, Debug)]
pub struct SetValue {
    repr: Repr,
}

impl Default for SetValue {
    fn default() -> Self {
        SetValue::new_intset()
    }
}

impl SetValue {
    /// An empty `intset` (Redis's `createIntsetObject`).
    pub fn new_intset() -> Self {
        SetValue { repr: Repr::Ints(IntSet::default()) }
    }

    /// An empty `hashtable` set (Redis's `createSetObject`).
    pub fn new_hashtable() -> Self {
        SetValue { repr: Repr::Packed(PackedSet::default()) }
    }

    /// An empty set of the encoding Redis picks for a set about to receive `first`
    /// (`setTypeCreate`): `intset` for an integer, else `hashtable`.
    pub fn for_member(first: &[u8]) -> Self {
        if parse_canonical_i64(first).is_some() {
            SetValue::new_intset()
        } else {
            SetValue::new_hashtable()
        }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Ints(_) => "intset",
            Repr::Packed(_) | Repr::Table(_) => "hashtable",
        }
    }

    pub fn is_intset(&self) -> bool {
        matches!(self.repr, Repr::Ints(_))
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Ints(s) => s.len(),
            Repr::Packed(s) => s.len(),
            Repr::Table(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match &self.repr {
            Repr::Ints(s) => parse_canonical_i64(m).is_some_and(|n| s.contains(n)),
            Repr::Packed(s) => s.contains(m),
            Repr::Table(s) => s.contains(m),
        }
    }

    pub fn contains_member(&self, m: Member) -> bool {
        match (m, &self.repr) {
            (Member::Int(n), Repr::Ints(s)) => s.contains(n),
            (m, _) => self.contains(m.bytes(&mut [0; 20])),
        }
    }

    /// Adds `m` as Redis's `setTypeAdd` does, converting the encoding when `m` is not
    /// an integer or the intset grows past its limit; false when `m` was a member.
    pub fn add(&mut self, m: &[u8], lim: &SetLimits) -> bool {
        if let Repr::Ints(_) = self.repr {
            match parse_canonical_i64(m) {
                Some(n) => return self.add_int(n, lim),
                None => self.convert_to_strings(lim, m.len()),
            }
        }
        self.add_string(m, lim)
    }

    /// [`SetValue::add`] of a member taken from another set.
    pub fn add_member(&mut self, m: Member, lim: &SetLimits) -> bool {
        match m {
            Member::Int(n) => self.add_int(n, lim),
            Member::Bytes(b) => self.add(b, lim),
        }
    }

    fn add_int(&mut self, n: i64, lim: &SetLimits) -> bool {
        let Repr::Ints(s) = &mut self.repr else {
            return self.add_string(format_i64(n, &mut [0; 20]), lim);
        };
        if !s.insert(n) {
            return false;
        }
        if s.len() > lim.intset_entries() {
            self.convert_to_strings(lim, 0);
        }
        true
    }

    /// Adds to a packed set or table.
    fn add_string(&mut self, m: &[u8], lim: &SetLimits) -> bool {
        match &mut self.repr {
            Repr::Ints(_) => unreachable!("intsets take integers only; callers convert first"),
            Repr::Packed(s) => {
                if s.contains(m) {
                    return false;
                }
                if lim.packs(s.len() + 1, m.len()) {
                    s.push_new(m);
                    return true;
                }
                let mut t = HashedSet::default();
                for e in s.iter() {
                    t.insert(e);
                }
                t.insert(m);
                self.repr = Repr::Table(Box::new(t));
                true
            }
            Repr::Table(t) => t.insert(m),
        }
    }

    /// Turns an intset into a `hashtable` set with room for one more member of
    /// `next_len` bytes.
    fn convert_to_strings(&mut self, lim: &SetLimits, next_len: usize) {
        let Repr::Ints(s) = &self.repr else { return };
        let mut buf = [0; 20];
        let longest = s.iter().map(|n| format_i64(n, &mut buf).len()).max().unwrap_or(0).max(next_len);
        self.repr = if lim.packs(s.len() + 1, longest) {
            let mut p = PackedSet::default();
            for n in s.iter() {
                p.push_new(format_i64(n, &mut buf));
            }
            Repr::Packed(p)
        } else {
            let mut t = HashedSet::default();
            for n in s.iter() {
                t.insert(format_i64(n, &mut buf));
            }
            Repr::Table(Box::new(t))
        };
    }

    /// Adds every member of `members` as that many [`SetValue::add`]s would (the same
    /// members, the same encoding at the end), rewriting an intset once rather than
    /// once per member; returns how many were new.
    pub fn add_all<'m>(&mut self, members: impl IntoIterator<Item = Member<'m>>, lim: &SetLimits) -> usize {
        let Repr::Ints(s) = &mut self.repr else {
            return members.into_iter().filter(|&m| self.add_member(m, lim)).count();
        };
        let members: Vec<Member> = members.into_iter().collect();
        let mut ints: Vec<i64> = members.iter().filter_map(Member::as_int).collect();
        if ints.len() == members.len() {
            ints.sort_unstable();
            ints.dedup();
            let new = ints.iter().filter(|&&n| !s.contains(n)).count();
            // Adding one by one converts as soon as the intset outgrows its limit: the
            // same as converting at the end when the final size is too big.
            if s.len() + new <= lim.intset_entries() {
                return match new {
                    0 => 0,
                    // A few in place (a shift each), more in one rewrite.
                    1..=4 => ints.iter().filter(|&&n| s.insert(n)).count(),
                    _ => s.merge(&ints),
                };
            }
        }
        // A member that is not an integer, or too many: the set converts on the way.
        members.into_iter().filter(|&m| self.add_member(m, lim)).count()
    }

    /// Removes every member of `members` (repeats count once); returns how many were
    /// there. An intset is rewritten once.
    pub fn remove_all<'m>(&mut self, members: impl IntoIterator<Item = Member<'m>>) -> usize {
        match &mut self.repr {
            Repr::Ints(s) => {
                let ints: Vec<i64> = members.into_iter().filter_map(|m| m.as_int()).collect();
                match ints.as_slice() {
                    [] => 0,
                    [n] => s.remove(*n) as usize,
                    _ => s.remove_all(&ints),
                }
            }
            _ => members.into_iter().filter(|&m| self.remove_member(m)).count(),
        }
    }

    /// Removes `m`; false when it was not a member. The encoding stays.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Ints(s) => parse_canonical_i64(m).is_some_and(|n| s.remove(n)),
            Repr::Packed(s) => s.remove(m),
            Repr::Table(s) => s.remove(m),
        }
    }

    /// [`SetValue::remove`] of a member taken from another set.
    pub fn remove_member(&mut self, m: Member) -> bool {
        match (m, &mut self.repr) {
            (Member::Int(n), Repr::Ints(s)) => s.remove(n),
            (m, _) => self.remove(m.bytes(&mut [0; 20])),
        }
    }

    /// After removals: a table small enough to be packed is packed again (the
    /// encoding Redis reports stays `hashtable`).
    pub fn compact(&mut self, lim: &SetLimits) {
        let Repr::Table(t) = &self.repr else { return };
        if t.len() as u64 > lim.max_packed_entries / 2 {
            return;
        }
        let longest = t.iter().map(<[u8]>::len).max().unwrap_or(0);
        if !lim.packs(t.len(), longest) {
            return;
        }
        let mut p = PackedSet::default();
        for m in t.iter() {
            p.push_new(m);
        }
        self.repr = Repr::Packed(p);
    }

    /// Every member: an intset's in ascending order, others in no particular order.
    pub fn iter(&self) -> Iter<'_> {
        match &self.repr {
            Repr::Ints(s) => Iter(IterRepr::Ints(s.iter())),
            Repr::Packed(s) => Iter(IterRepr::Packed(s.iter())),
            Repr::Table(s) => Iter(IterRepr::Table(Box::new(s.iter()))),
        }
    }

    /// A random member of a non-empty set, every member equally likely; `rng` draws
    /// the random numbers.
    pub fn random(&self, rng: &mut SetRng) -> Option<Member<'_>> {
        let len = self.len();
        if len == 0 {
            return None;
        }
        Some(match &self.repr {
            Repr::Ints(s) => Member::Int(s.get(rng.below(len))),
            Repr::Packed(s) => Member::Bytes(s.nth(rng.below(len))),
            Repr::Table(s) => Member::Bytes(s.random(&mut || rng.next_u64())),
        })
    }

    /// One SSCAN step from `cursor`: gives members to `f` and returns the next cursor
    /// (0: done). Intsets and packed sets give everything at once with cursor 0, as
    /// Redis does for its compact encodings; a table gives about `count` per call.
    pub fn scan(&self, cursor: u64, count: usize, f: &mut dyn FnMut(Member)) -> u64 {
        match &self.repr {
            Repr::Table(t) => t.scan(cursor, count.max(1), &mut |m| f(Member::Bytes(m))),
            _ => {
                self.iter().for_each(f);
                0
            }
        }
    }

    /// Bytes this value allocates on the heap besides itself (for memory accounting).
    pub fn allocated_bytes(&self) -> usize {
        match &self.repr {
            Repr::Ints(s) => s.data_bytes(),
            Repr::Packed(s) => s.data_bytes(),
            Repr::Table(t) => std::mem::size_of::<HashedSet>() + t.allocated_bytes(),
        }
    }
}

/// Two sets are equal when they have the same encoding and the same members.
impl PartialEq for SetValue {
    fn eq(&self, other: &Self) -> bool {
        self.encoding() == other.encoding()
            && self.len() == other.len()
            && self.iter().all(|m| other.contains_member(m))
    }
}

/// The members of a set ([`SetValue::iter`]).
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    Ints(intset::Iter<'a>),
    Packed(packed::Iter<'a>),
    Table(Box<dyn Iterator<Item = &'a [u8]> + 'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = Member<'a>;

    fn next(&mut self) -> Option<Member<'a>> {
        match &mut self.0 {
            IterRepr::Ints(it) => it.next().map(Member::Int),
            IterRepr::Packed(it) => it.next().map(Member::Bytes),
            IterRepr::Table(it) => it.next().map(Member::Bytes),
        }
    }
}

/// A small xorshift generator for picking random members (SPOP, SRANDMEMBER); seed it
/// from the database's generator.
#[derive(Clone, Debug)]
pub struct SetRng(u64);

impl SetRng {
    pub fn new(seed: u64) -> Self {
        SetRng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() as u128) * (n as u128)) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: SetLimits = SetLimits { max_intset_entries: 512, max_packed_entries: 128, max_packed_value: 64 };

    fn members(s: &SetValue) -> Vec<Vec<u8>> {
        s.iter().map(|m| m.to_vec()).collect()
    }

    fn sorted(s: &SetValue) -> Vec<Vec<u8>> {
        let mut v = members(s);
        v.sort();
        v
    }

    fn set_of(items: &[&str], lim: &SetLimits) -> SetValue {
        let mut s = SetValue::for_member(items[0].as_bytes());
        for m in items {
            s.add(m.as_bytes(), lim);
        }
        s
    }

    #[test]
    fn small_values() {
        // A key holding a set costs its Box<SetValue> plus the packed data.
        assert_eq!(std::mem::size_of::<SetValue>(), 32);
    }

    #[test]
    fn integers_make_an_intset_in_ascending_order() {
        let s = set_of(&["10", "-5", "3", "10"], &LIM);
        assert_eq!(s.encoding(), "intset");
        assert_eq!(members(&s), [b"-5".to_vec(), b"3".to_vec(), b"10".to_vec()]);
        assert!(s.contains(b"3") && !s.contains(b"03") && !s.contains(b"+3") && !s.contains(b"x"));
        assert!(s.contains_member(Member::Int(-5)));
    }

    #[test]
    fn only_canonical_integers_stay_in_an_intset() {
        for m in ["01", "-0", "+1", " 1", "1.0", "9223372036854775808", "abc", ""] {
            let mut s = set_of(&["1"], &LIM);
            assert!(s.add(m.as_bytes(), &LIM), "{m}");
            assert_eq!(s.encoding(), "hashtable", "{m}");
            assert!(s.contains(m.as_bytes()) && s.contains(b"1"));
        }
        let mut s = set_of(&["1"], &LIM);
        s.add(b"-9223372036854775808", &LIM);
        assert_eq!(s.encoding(), "intset");
        assert_eq!(SetValue::for_member(b"x").encoding(), "hashtable");
        assert_eq!(SetValue::for_member(b"-12").encoding(), "intset");
    }

    #[test]
    fn intset_converts_past_its_limit_and_never_back() {
        let lim = SetLimits { max_intset_entries: 3, ..LIM };
        let mut s = set_of(&["1", "2", "3"], &lim);
        assert_eq!(s.encoding(), "intset");
        assert!(!s.add(b"3", &lim));
        assert_eq!(s.encoding(), "intset");
        assert!(s.add(b"4", &lim));
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.remove(b"4") && s.remove(b"3"));
        assert_eq!(s.encoding(), "hashtable");
        s.compact(&lim);
        assert_eq!(s.encoding(), "hashtable");
        assert_eq!(sorted(&s), [b"1".to_vec(), b"2".to_vec()]);
        // Limit 0: the first member already converts (as Redis's setTypeAdd does).
        let zero = SetLimits { max_intset_entries: 0, ..LIM };
        let mut s = SetValue::new_intset();
        s.add(b"7", &zero);
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.contains(b"7"));
    }

    #[test]
    fn packed_set_becomes_a_table_and_back() {
        let lim = SetLimits { max_packed_entries: 4, ..LIM };
        let mut s = SetValue::new_hashtable();
        for m in ["a", "b", "c", "d"] {
            s.add(m.as_bytes(), &lim);
        }
        assert!(matches!(s.repr, Repr::Packed(_)));
        s.add(b"e", &lim);
        assert!(matches!(s.repr, Repr::Table(_)));
        assert_eq!(s.len(), 5);
        for m in ["a", "b", "c"] {
            s.remove(m.as_bytes());
        }
        s.compact(&lim);
        assert!(matches!(s.repr, Repr::Packed(_)));
        assert_eq!(sorted(&s), [b"d".to_vec(), b"e".to_vec()]);
        // A long member goes straight to a table.
        let mut s = set_of(&["x"], &LIM);
        s.add(&[b'y'; 65], &LIM);
        assert!(matches!(s.repr, Repr::Table(_)));
        assert_eq!(s.encoding(), "hashtable");
    }

    #[test]
    fn big_intset_converts_to_a_table() {
        let mut s = SetValue::new_intset();
        for i in 0..=512 {
            s.add(i.to_string().as_bytes(), &LIM);
        }
        assert_eq!(s.encoding(), "hashtable");
        assert!(matches!(s.repr, Repr::Table(_)));
        assert_eq!(s.len(), 513);
        assert!(s.contains(b"512") && s.contains(b"0"));
        assert!(s.contains_member(Member::Int(17)));
    }

    #[test]
    fn equality_ignores_history() {
        let a = set_of(&["x", "y"], &LIM);
        let b = set_of(&["y", "x"], &LIM);
        assert_eq!(a, b);
        let c = set_of(&["1", "2"], &LIM);
        let mut d = set_of(&["1", "2", "x"], &LIM);
        d.remove(b"x");
        assert_ne!(c, d, "same members, different encodings");
        assert_eq!(c.clone(), c);
    }

    #[test]
    fn random_members_cover_every_representation() {
        let mut rng = SetRng::new(3);
        for s in [set_of(&["1", "2", "3"], &LIM), set_of(&["a", "b", "c"], &LIM)] {
            let mut seen = std::collections::HashSet::new();
            for _ in 0..100 {
                seen.insert(s.random(&mut rng).unwrap().to_vec());
            }
            assert_eq!(seen.len(), 3);
        }
        assert_eq!(SetValue::new_intset().random(&mut rng), None);
    }

    #[test]
    fn scan_of_compact_sets_is_one_call() {
        let s = set_of(&["3", "1", "2"], &LIM);
        let mut got = Vec::new();
        assert_eq!(s.scan(12345, 1, &mut |m| got.push(m.to_vec())), 0);
        assert_eq!(got, [b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
    }

    #[test]
    fn bulk_adds_and_removals_match_one_at_a_time() {
        let lims = [LIM, SetLimits { max_intset_entries: 4, ..LIM }, SetLimits { max_packed_entries: 2, ..LIM }];
        let batches: [&[&str]; 5] = [&["5", "1", "5", "3"], &["2", "9"], &["x", "4"], &["7", "8", "6"], &["-1"]];
        for lim in &lims {
            for start in [SetValue::new_intset(), SetValue::new_hashtable()] {
                let (mut bulk, mut single) = (start.clone(), start.clone());
                for batch in batches {
                    let members = batch.iter().map(|m| Member::Bytes(m.as_bytes()));
                    let added = bulk.add_all(members, lim);
                    let one_by_one = batch.iter().filter(|m| single.add(m.as_bytes(), lim)).count();
                    assert_eq!(added, one_by_one, "{batch:?} {lim:?}");
                    assert_eq!(bulk, single, "{batch:?} {lim:?}");
                }
                let gone = [Member::Int(5), Member::Bytes(b"5"), Member::Bytes(b"x"), Member::Int(100), Member::Int(9)];
                let removed = bulk.remove_all(gone);
                let one_by_one = gone.iter().filter(|&&m| single.remove_member(m)).count();
                assert_eq!((removed, &bulk), (one_by_one, &single));
            }
        }
    }

    #[test]
    fn member_bytes() {
        let mut buf = [0; 20];
        assert_eq!(Member::Int(i64::MIN).bytes(&mut buf), b"-9223372036854775808");
        assert_eq!(Member::Int(0).to_vec(), b"0");
        assert_eq!(Member::Bytes(b"ab").to_owned(), OwnedMember::Bytes(b"ab"[..].into()));
        assert_eq!(OwnedMember::Int(4).as_member(), Member::Int(4));
    }
}
