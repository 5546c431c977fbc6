//! The sorted set value type (Redis's t_zset.c).
//!
//! # Encodings
//! Redis 7.0 reports two encodings, and a sorted set here has the same one Redis would
//! give it:
//! - `listpack` ([`packed`]): every element in one buffer, in order, while the set has
//!   at most `zset-max-listpack-entries` elements of at most `zset-max-listpack-value`
//!   bytes. Lookups are linear scans, as in a listpack.
//! - `skiplist` ([`indexed`]): past either limit. Redis pairs a skiplist with a dict;
//!   here a slab of elements, a hash index and an order-statistics B+tree ([`tree`])
//!   give the same costs (O(1) score lookup, O(log n) rank and range bounds) in less
//!   memory.
//!
//! Like Redis, a set converts to `skiplist` when an addition breaks a limit and never
//! converts back, except that results built whole (ZUNIONSTORE, ZINTERSTORE,
//! ZDIFFSTORE: [`ZSetValue::from_sorted`]) get the encoding their size calls for.
//!
//! Elements are ordered by score, then by member bytes. A score is never NaN. The
//! range searches take Redis's range specs ([`ScoreRange`], [`LexRange`]) and answer
//! with ranks; a lex range over members of different scores gives, for `listpack`
//! sets, the answer Redis's linear scans give.

mod indexed;
mod packed;
mod tree;

use indexed::Indexed;
use packed::Packed;

/// Redis refuses to grow a listpack past 1 GB (`lpSafeToAdd`).
const LISTPACK_MAX_BYTES: usize = 1 << 30;

/// The thresholds of the `listpack` encoding, from the config options of the same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZSetLimits {
    /// `zset-max-listpack-entries`.
    pub max_listpack_entries: u64,
    /// `zset-max-listpack-value`: longest member, in bytes.
    pub max_listpack_value: u64,
}

impl Default for ZSetLimits {
    fn default() -> Self {
        ZSetLimits { max_listpack_entries: 128, max_listpack_value: 64 }
    }
}

impl ZSetLimits {
    fn fits(&self, len: usize, longest: usize, total: usize) -> bool {
        len as u64 <= self.max_listpack_entries
            && longest as u64 <= self.max_listpack_value
            && total < LISTPACK_MAX_BYTES
    }
}

/// ZADD's options (ZINCRBY is `incr`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddFlags {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
    pub incr: bool,
}

/// What [`ZSetValue::add`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AddOutcome {
    /// A new member, with this score.
    Added(f64),
    /// The member's score changed to this.
    Updated(f64),
    /// The member already had this score.
    Unchanged(f64),
    /// Nothing, because of NX, XX, GT or LT.
    Skipped,
}

/// The score an addition would produce is NaN (`inf` plus `-inf` with INCR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NanScore;

/// A score interval, as Redis's `zrangespec`: `(` bounds are exclusive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreRange {
    pub min: f64,
    pub max: f64,
    pub minex: bool,
    pub maxex: bool,
}

impl ScoreRange {
    pub fn gte_min(&self, v: f64) -> bool {
        if self.minex {
            v > self.min
        } else {
            v >= self.min
        }
    }

    pub fn lte_max(&self, v: f64) -> bool {
        if self.maxex {
            v < self.max
        } else {
            v <= self.max
        }
    }

    /// Whether no score can be in the range.
    pub fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.minex || self.maxex))
    }
}

/// One end of a lex range: `-` and `+` are the smallest and largest strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LexBound {
    Min,
    Max,
    Value(Vec<u8>),
}

/// A member interval, as Redis's `zlexrangespec`. `-` and `+` are exclusive bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexRange {
    pub min: LexBound,
    pub minex: bool,
    pub max: LexBound,
    pub maxex: bool,
}

/// Redis's `sdscmplex` of a member against a bound, or of two bounds.
fn cmp_lex(a: &LexBound, b: &LexBound) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    use LexBound::*;
    match (a, b) {
        (Min, Min) | (Max, Max) => Equal,
        (Min, _) | (_, Max) => Less,
        (Max, _) | (_, Min) => Greater,
        (Value(x), Value(y)) => x.cmp(y),
    }
}

fn cmp_member_bound(m: &[u8], b: &LexBound) -> std::cmp::Ordering {
    match b {
        LexBound::Min => std::cmp::Ordering::Greater,
        LexBound::Max => std::cmp::Ordering::Less,
        LexBound::Value(v) => m.cmp(v),
    }
}

impl LexRange {
    pub fn gte_min(&self, m: &[u8]) -> bool {
        let c = cmp_member_bound(m, &self.min);
        if self.minex {
            c.is_gt()
        } else {
            c.is_ge()
        }
    }

    pub fn lte_max(&self, m: &[u8]) -> bool {
        let c = cmp_member_bound(m, &self.max);
        if self.maxex {
            c.is_lt()
        } else {
            c.is_le()
        }
    }

    /// Whether no member can be in the range.
    pub fn is_empty(&self) -> bool {
        let c = cmp_lex(&self.min, &self.max);
        c.is_gt() || (c.is_eq() && (self.minex || self.maxex))
    }
}

#[derive(Clone, Debug)]
enum Repr {
    Packed(Packed),
    Indexed(Box<Indexed>),
}

#[derive(Clone, Debug)]
pub struct ZSetValue {
    repr: Repr,
}

impl Default for ZSetValue {
    fn default() -> Self {
        ZSetValue::new()
    }
}

/// Two sorted sets are equal when they have the same encoding and the same elements.
impl PartialEq for ZSetValue {
    fn eq(&self, other: &Self) -> bool {
        self.encoding() == other.encoding() && self.len() == other.len() && self.to_vec() == other.to_vec()
    }
}

impl ZSetValue {
    /// An empty `listpack` set.
    pub fn new() -> ZSetValue {
        ZSetValue { repr: Repr::Packed(Packed::default()) }
    }

    /// A set of `elements`, given in order and without duplicate members, encoded as
    /// Redis encodes the result of ZUNIONSTORE and friends: `listpack` when it fits
    /// the limits, else `skiplist`.
    pub fn from_sorted(elements: Vec<(Vec<u8>, f64)>, limits: &ZSetLimits) -> ZSetValue {
        let longest = elements.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
        let total = elements.iter().map(|(m, _)| m.len()).sum();
        if limits.fits(elements.len(), longest, total) {
            let mut p = Packed::default();
            for (m, s) in &elements {
                p.push_back(m, *s);
            }
            p.shrink_to_fit();
            ZSetValue { repr: Repr::Packed(p) }
        } else {
            let it = elements.into_iter().map(|(m, s)| (m.into_boxed_slice(), s));
            ZSetValue { repr: Repr::Indexed(Box::new(Indexed::from_sorted(it))) }
        }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Packed(_) => "listpack",
            Repr::Indexed(_) => "skiplist",
        }
    }

    pub fn is_listpack(&self) -> bool {
        matches!(self.repr, Repr::Packed(_))
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Packed(p) => p.len(),
            Repr::Indexed(z) => z.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The score of member `m`.
    pub fn score(&self, m: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Packed(p) => p.score(m),
            Repr::Indexed(z) => z.score(m),
        }
    }

    /// The rank of member `m`, from the lowest score or (`reverse`) the highest.
    pub fn rank(&self, m: &[u8], reverse: bool) -> Option<usize> {
        let r = match &self.repr {
            Repr::Packed(p) => p.rank(m),
            Repr::Indexed(z) => z.rank(m),
        }?;
        Some(if reverse { self.len() - 1 - r } else { r })
    }

    /// Adds member `m` or updates its score, as Redis's `zsetAdd` (ZADD with
    /// `flags`, ZINCRBY). Converts to `skiplist` first when a new member would break
    /// `limits`.
    pub fn add(&mut self, m: &[u8], score: f64, flags: AddFlags, limits: &ZSetLimits) -> Result<AddOutcome, NanScore> {
        if score.is_nan() {
            return Err(NanScore);
        }
        match self.score(m) {
            Some(cur) => {
                if flags.nx {
                    return Ok(AddOutcome::Skipped);
                }
                let score = if flags.incr { cur + score } else { score };
                if score.is_nan() {
                    return Err(NanScore);
                }
                if (flags.lt && score >= cur) || (flags.gt && score <= cur) {
                    return Ok(AddOutcome::Skipped);
                }
                if score == cur {
                    return Ok(AddOutcome::Unchanged(score));
                }
                match &mut self.repr {
                    Repr::Packed(p) => {
                        p.remove(m);
                        p.insert(m, score);
                    }
                    Repr::Indexed(z) => z.set_score(m, score),
                }
                Ok(AddOutcome::Updated(score))
            }
            None if flags.xx => Ok(AddOutcome::Skipped),
            None => {
                self.insert(m, score, limits);
                Ok(AddOutcome::Added(score))
            }
        }
    }

    /// Inserts a member that is not in the set.
    fn insert(&mut self, m: &[u8], score: f64, limits: &ZSetLimits) {
        if let Repr::Packed(p) = &self.repr {
            if !limits.fits(p.len() + 1, m.len(), p.bytes() + m.len()) {
                self.convert_to_indexed();
            }
        }
        match &mut self.repr {
            Repr::Packed(p) => p.insert(m, score),
            Repr::Indexed(z) => z.insert(m, score),
        }
    }

    fn convert_to_indexed(&mut self) {
        if let Repr::Packed(p) = &self.repr {
            let mut elements = Vec::with_capacity(p.len());
            p.walk(0, false, &mut |m, s| {
                elements.push((Box::<[u8]>::from(m), s));
                true
            });
            self.repr = Repr::Indexed(Box::new(Indexed::from_sorted(elements.into_iter())));
        }
    }

    /// Removes member `m`; returns whether it was there.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Packed(p) => p.remove(m),
            Repr::Indexed(z) => z.remove(m),
        }
    }

    /// Removes the elements of ranks `start..start + count` (within the set).
    pub fn remove_ranks(&mut self, start: usize, count: usize) {
        let count = count.min(self.len().saturating_sub(start));
        match &mut self.repr {
            Repr::Packed(p) => p.remove_ranks(start, count),
            Repr::Indexed(z) => z.remove_ranks(start, count),
        }
    }

    /// The member and score at `rank` (None past the end).
    pub fn get(&self, rank: usize) -> Option<(Vec<u8>, f64)> {
        if rank >= self.len() {
            return None;
        }
        match &self.repr {
            Repr::Packed(p) => {
                let mut out = None;
                p.get(rank, &mut |m, s| out = Some((m.to_vec(), s)));
                out
            }
            Repr::Indexed(z) => {
                let (m, s) = z.get(rank);
                Some((m.to_vec(), s))
            }
        }
    }

    /// Removes and returns the element with the lowest score or (`max`) the highest.
    pub fn pop(&mut self, max: bool) -> Option<(Vec<u8>, f64)> {
        let rank = if max { self.len().checked_sub(1)? } else { 0 };
        let e = self.get(rank)?;
        self.remove_ranks(rank, 1);
        Some(e)
    }

    /// Calls `f` with members and scores from rank `from` on, in order or
    /// (`reverse`) backwards, until it returns false or the set ends.
    pub fn walk(&self, from: usize, reverse: bool, f: &mut dyn FnMut(&[u8], f64) -> bool) {
        if from >= self.len() {
            return;
        }
        match &self.repr {
            Repr::Packed(p) => p.walk(from, reverse, f),
            Repr::Indexed(z) => z.walk(from, reverse, f),
        }
    }

    /// Calls `f` with every member and score, in order.
    pub fn for_each(&self, f: &mut dyn FnMut(&[u8], f64)) {
        self.walk(0, false, &mut |m, s| {
            f(m, s);
            true
        });
    }

    /// Every member and score, in order.
    pub fn to_vec(&self) -> Vec<(Vec<u8>, f64)> {
        let mut out = Vec::with_capacity(self.len());
        self.for_each(&mut |m, s| out.push((m.to_vec(), s)));
        out
    }

    /// Rank of the first element within `r` (Redis's `zslFirstInRange`).
    pub fn first_in_scores(&self, r: &ScoreRange) -> Option<usize> {
        match &self.repr {
            Repr::Packed(p) => p.first_in_scores(r),
            Repr::Indexed(z) => z.first_in_scores(r),
        }
    }

    /// Rank of the last element within `r`.
    pub fn last_in_scores(&self, r: &ScoreRange) -> Option<usize> {
        match &self.repr {
            Repr::Packed(p) => p.last_in_scores(r),
            Repr::Indexed(z) => z.last_in_scores(r),
        }
    }

    /// Rank of the first element within `r`, searched as Redis does.
    pub fn first_in_lex(&self, r: &LexRange) -> Option<usize> {
        match &self.repr {
            Repr::Packed(p) => p.first_in_lex(r),
            Repr::Indexed(z) => z.first_in_lex(r),
        }
    }

    /// Rank of the last element within `r`.
    pub fn last_in_lex(&self, r: &LexRange) -> Option<usize> {
        match &self.repr {
            Repr::Packed(p) => p.last_in_lex(r),
            Repr::Indexed(z) => z.last_in_lex(r),
        }
    }

    /// One ZSCAN step: a `listpack` set gives everything and cursor 0, as Redis does;
    /// a `skiplist` set about `count` elements and the next cursor (0 when done).
    pub fn scan(&self, cursor: u64, count: usize, f: &mut dyn FnMut(&[u8], f64)) -> u64 {
        match &self.repr {
            Repr::Packed(_) => {
                self.for_each(f);
                0
            }
            Repr::Indexed(z) => z.scan(cursor, count.max(1), f),
        }
    }

    /// Gives spare capacity back (after a batch of additions).
    pub fn shrink_to_fit(&mut self) {
        match &mut self.repr {
            Repr::Packed(p) => p.shrink_to_fit(),
            Repr::Indexed(z) => z.shrink_to_fit(),
        }
    }

    /// Bytes this value allocates on the heap besides itself (for memory accounting).
    pub fn allocated_bytes(&self) -> usize {
        match &self.repr {
            Repr::Packed(p) => p.allocated_bytes(),
            Repr::Indexed(z) => std::mem::size_of::<Indexed>() + z.allocated_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ZSetLimits = ZSetLimits { max_listpack_entries: 4, max_listpack_value: 8 };

    fn add(z: &mut ZSetValue, m: &str, s: f64) -> AddOutcome {
        z.add(m.as_bytes(), s, AddFlags::default(), &LIMITS).unwrap()
    }

    fn members(z: &ZSetValue) -> Vec<String> {
        z.to_vec().into_iter().map(|(m, _)| String::from_utf8(m).unwrap()).collect()
    }

    #[test]
    fn converts_past_the_entry_limit_and_never_back() {
        let mut z = ZSetValue::new();
        for (i, m) in ["a", "b", "c", "d"].iter().enumerate() {
            assert_eq!(add(&mut z, m, i as f64), AddOutcome::Added(i as f64));
        }
        assert_eq!(z.encoding(), "listpack");
        add(&mut z, "e", 10.0);
        assert_eq!(z.encoding(), "skiplist");
        assert_eq!(members(&z), ["a", "b", "c", "d", "e"]);
        for m in ["a", "b", "c"] {
            z.remove(m.as_bytes());
        }
        assert_eq!(z.encoding(), "skiplist");
        assert_eq!(z.rank(b"e", false), Some(1));
        assert_eq!(z.rank(b"e", true), Some(0));
    }

    #[test]
    fn converts_for_a_long_member_only_when_added() {
        let mut z = ZSetValue::new();
        add(&mut z, "short", 1.0);
        // Updating an existing member never converts.
        add(&mut z, "short", 2.0);
        assert_eq!(z.encoding(), "listpack");
        add(&mut z, "ninebytes", 1.0);
        assert_eq!(z.encoding(), "skiplist");
        assert_eq!(z.score(b"short"), Some(2.0));
    }

    #[test]
    fn from_sorted_picks_the_encoding_by_size() {
        let small = vec![(b"a".to_vec(), 1.0), (b"b".to_vec(), 2.0)];
        assert_eq!(ZSetValue::from_sorted(small.clone(), &LIMITS).encoding(), "listpack");
        let long = vec![(b"a".to_vec(), 1.0), (b"longer-than-8".to_vec(), 2.0)];
        assert_eq!(ZSetValue::from_sorted(long, &LIMITS).encoding(), "skiplist");
        let many: Vec<_> = (0..5).map(|i| (vec![b'a' + i], i as f64)).collect();
        let z = ZSetValue::from_sorted(many, &LIMITS);
        assert_eq!((z.encoding(), z.len()), ("skiplist", 5));
        assert_eq!(ZSetValue::from_sorted(small.clone(), &LIMITS), ZSetValue::from_sorted(small, &LIMITS));
    }

    #[test]
    fn add_flags_follow_zsetadd() {
        let mut z = ZSetValue::new();
        add(&mut z, "m", 5.0);
        let f = |nx, xx, gt, lt, incr| AddFlags { nx, xx, gt, lt, incr };
        let mut run = |s: f64, flags: AddFlags| z.add(b"m", s, flags, &LIMITS);
        assert_eq!(run(1.0, f(true, false, false, false, false)), Ok(AddOutcome::Skipped));
        assert_eq!(run(4.0, f(false, false, true, false, false)), Ok(AddOutcome::Skipped));
        assert_eq!(run(6.0, f(false, false, true, false, false)), Ok(AddOutcome::Updated(6.0)));
        assert_eq!(run(6.0, f(false, false, false, false, false)), Ok(AddOutcome::Unchanged(6.0)));
        assert_eq!(run(-1.0, f(false, false, false, true, true)), Ok(AddOutcome::Updated(5.0)));
        assert_eq!(run(1.0, f(false, false, false, true, true)), Ok(AddOutcome::Skipped));
        assert_eq!(run(f64::INFINITY, f(false, false, false, false, false)), Ok(AddOutcome::Updated(f64::INFINITY)));
        assert_eq!(run(f64::NEG_INFINITY, f(false, false, false, false, true)), Err(NanScore));
        assert_eq!(run(f64::NAN, AddFlags::default()), Err(NanScore));
        assert_eq!(z.add(b"new", 1.0, f(false, true, false, false, false), &LIMITS), Ok(AddOutcome::Skipped));
        assert_eq!(z.len(), 1);
    }

    #[test]
    fn negative_zero_is_kept_only_by_skiplists() {
        let mut z = ZSetValue::new();
        add(&mut z, "a", -0.0);
        assert_eq!(z.score(b"a").map(f64::to_bits), Some(0.0f64.to_bits()));
        let mut z = ZSetValue::new();
        z.add(b"a", -0.0, AddFlags::default(), &ZSetLimits { max_listpack_entries: 0, max_listpack_value: 64 })
            .unwrap();
        assert_eq!(z.encoding(), "skiplist");
        assert_eq!(z.score(b"a").map(f64::to_bits), Some((-0.0f64).to_bits()));
    }

    fn lex(min: &str, max: &str) -> LexRange {
        let item = |s: &str| match s.as_bytes()[0] {
            b'-' => (LexBound::Min, true),
            b'+' => (LexBound::Max, true),
            b'(' => (LexBound::Value(s.as_bytes()[1..].to_vec()), true),
            _ => (LexBound::Value(s.as_bytes()[1..].to_vec()), false),
        };
        let ((min, minex), (max, maxex)) = (item(min), item(max));
        LexRange { min, minex, max, maxex }
    }

    #[test]
    fn range_bounds_agree_between_encodings() {
        let big = ZSetLimits { max_listpack_entries: 1000, max_listpack_value: 64 };
        let none = ZSetLimits { max_listpack_entries: 0, max_listpack_value: 64 };
        let (mut p, mut s) = (ZSetValue::new(), ZSetValue::new());
        for i in 0..200u32 {
            let m = format!("m{:03}", (i * 7919) % 200);
            p.add(m.as_bytes(), 0.0, AddFlags::default(), &big).unwrap();
            s.add(m.as_bytes(), 0.0, AddFlags::default(), &none).unwrap();
        }
        assert_eq!((p.encoding(), s.encoding()), ("listpack", "skiplist"));
        assert_eq!(p.to_vec(), s.to_vec());
        for (a, b) in [("-", "+"), ("[m050", "(m060"), ("(m050", "[m050"), ("[m050", "[m050"), ("+", "-"), ("[zz", "+")]
        {
            let r = lex(a, b);
            assert_eq!(p.first_in_lex(&r), s.first_in_lex(&r), "{a} {b}");
            assert_eq!(p.last_in_lex(&r), s.last_in_lex(&r), "{a} {b}");
        }
        assert_eq!(p.first_in_lex(&lex("[m050", "(m060")), Some(50));
        assert_eq!(p.last_in_lex(&lex("[m050", "(m060")), Some(59));
        let (mut p, mut s) = (ZSetValue::new(), ZSetValue::new());
        for i in 0..100 {
            let m = format!("m{i}");
            p.add(m.as_bytes(), (i / 3) as f64, AddFlags::default(), &big).unwrap();
            s.add(m.as_bytes(), (i / 3) as f64, AddFlags::default(), &none).unwrap();
        }
        for (min, max, minex, maxex) in
            [(0.0, 5.0, false, false), (1.0, 1.0, true, false), (1.0, 1.0, false, false), (7.5, 2.0, false, false)]
        {
            let r = ScoreRange { min, max, minex, maxex };
            assert_eq!(p.first_in_scores(&r), s.first_in_scores(&r), "{r:?}");
            assert_eq!(p.last_in_scores(&r), s.last_in_scores(&r), "{r:?}");
        }
        let r = ScoreRange { min: 1.0, max: 2.0, minex: true, maxex: false };
        assert_eq!((p.first_in_scores(&r), p.last_in_scores(&r)), (Some(6), Some(8)));
    }

    #[test]
    fn lex_bounds_compare_as_redis() {
        assert!(lex("-", "-").is_empty());
        assert!(lex("+", "-").is_empty());
        assert!(!lex("-", "+").is_empty());
        assert!(lex("(a", "[a").is_empty());
        assert!(!lex("[a", "[a").is_empty());
        assert!(lex("[b", "[a").is_empty());
        let r = lex("(a", "[c");
        assert!(!r.gte_min(b"a") && r.gte_min(b"a\0") && r.lte_max(b"c") && !r.lte_max(b"c\0"));
    }

    /// Random additions, updates and removals on a `listpack` set, a `skiplist` set
    /// and a sorted Vec model: all three must hold the same sequence, and answer the
    /// same ranks and range bounds.
    #[test]
    fn both_encodings_match_a_model() {
        let big = ZSetLimits { max_listpack_entries: u64::MAX, max_listpack_value: u64::MAX };
        let none = ZSetLimits { max_listpack_entries: 0, max_listpack_value: 0 };
        let (mut p, mut s) = (ZSetValue::new(), ZSetValue::new());
        let mut model: Vec<(Vec<u8>, f64)> = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let scores = [0.0, 1.0, -1.0, 1.5, 0.1, 1e17, f64::INFINITY, f64::NEG_INFINITY, -0.0, 7.0];
        for step in 0..6000 {
            let m = match rnd(3) {
                0 => format!("{}", rnd(300)),
                1 => format!("m{}", rnd(300)),
                _ => format!("{:03}", rnd(300)),
            }
            .into_bytes();
            let sc = scores[rnd(scores.len() as u64) as usize];
            if rnd(10) < 7 {
                let flags = AddFlags { incr: rnd(5) == 0, ..AddFlags::default() };
                let a = p.add(&m, sc, flags, &big);
                let b = s.add(&m, sc, flags, &none);
                match model.iter().position(|(x, _)| *x == m) {
                    Some(i) => {
                        let new = if flags.incr { model[i].1 + sc } else { sc };
                        if new.is_nan() {
                            assert_eq!((a, b), (Err(NanScore), Err(NanScore)));
                            continue;
                        }
                        model[i].1 = new;
                    }
                    None => model.push((m.clone(), sc)),
                }
                assert!(a.is_ok() && b.is_ok());
            } else {
                let want = model.iter().position(|(x, _)| *x == m).map(|i| model.remove(i)).is_some();
                assert_eq!(p.remove(&m), want);
                assert_eq!(s.remove(&m), want);
            }
            model.sort_by(|(am, a), (bm, b)| a.partial_cmp(b).unwrap().then_with(|| am.cmp(bm)));
            if step % 97 == 0 {
                // The listpack reads -0 back as 0; compare scores by value.
                let norm = |v: Vec<(Vec<u8>, f64)>| v.into_iter().map(|(m, s)| (m, s + 0.0)).collect::<Vec<_>>();
                assert_eq!(norm(p.to_vec()), norm(model.clone()));
                assert_eq!(norm(s.to_vec()), norm(model.clone()));
                for (i, (m, _)) in model.iter().enumerate().step_by(7) {
                    assert_eq!(p.rank(m, false), Some(i));
                    assert_eq!(s.rank(m, true), Some(model.len() - 1 - i));
                }
                let r = ScoreRange { min: 0.0, max: 1.5, minex: step % 2 == 0, maxex: false };
                assert_eq!(p.first_in_scores(&r), s.first_in_scores(&r));
                assert_eq!(p.last_in_scores(&r), s.last_in_scores(&r));
            }
        }
        assert_eq!((p.encoding(), s.encoding()), ("listpack", "skiplist"));
    }

    #[test]
    fn pop_and_ranges_by_rank() {
        let mut z = ZSetValue::new();
        for (i, m) in ["a", "b", "c"].iter().enumerate() {
            add(&mut z, m, i as f64);
        }
        assert_eq!(z.pop(true), Some((b"c".to_vec(), 2.0)));
        assert_eq!(z.pop(false), Some((b"a".to_vec(), 0.0)));
        assert_eq!(z.pop(false), Some((b"b".to_vec(), 1.0)));
        assert_eq!(z.pop(false), None);
    }
}
