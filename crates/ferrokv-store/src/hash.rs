//! The hash value type: field → value maps, in Redis's two encodings.
//!
//! A new hash is *packed* (OBJECT ENCODING `listpack`, [`pack`]): every pair in one
//! byte buffer, in insertion order, which is the order HKEYS/HVALS/HGETALL and HSCAN
//! report, as Redis's listpack does. Once it holds more than `hash-max-listpack-entries`
//! pairs, or is about to hold a field or value longer than `hash-max-listpack-value`
//! bytes, it becomes a hash table (`hashtable`, [`table`]) for good: like Redis, a
//! hash never converts back, even when it shrinks. [`HashValue::set`] and
//! [`HashValue::prepare_insert`] apply these rules exactly where Redis's t_hash.c does
//! (before and after inserting), since OBJECT ENCODING makes them visible.

mod pack;
mod table;

use pack::Pack;
use table::Table;

/// Redis refuses to grow a listpack past 1 GiB (`LISTPACK_MAX_SAFETY_SIZE`) and
/// converts the hash instead.
const PACK_SAFETY_SIZE: usize = 1 << 30;

/// Room for the decimal form of an i64.
pub type IntBuf = [u8; 20];

/// A field or value as stored: bytes, or an integer kept in binary by the packed
/// encoding (it reads back as its decimal form).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem<'a> {
    Str(&'a [u8]),
    Int(i64),
}

impl<'a> Elem<'a> {
    /// The bytes of the element; an integer is formatted into `buf`.
    pub fn as_bytes<'b>(&'b self, buf: &'b mut IntBuf) -> &'b [u8]
    where
        'a: 'b,
    {
        match *self {
            Elem::Str(s) => s,
            Elem::Int(n) => format_i64(n, buf),
        }
    }

    /// Length in bytes of its string form.
    pub fn len(&self) -> usize {
        match *self {
            Elem::Str(s) => s.len(),
            Elem::Int(n) => format_i64(n, &mut [0; 20]).len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.as_bytes(&mut [0; 20]).to_vec()
    }

    pub fn eq_bytes(&self, b: &[u8]) -> bool {
        self.as_bytes(&mut [0; 20]) == b
    }
}

fn format_i64(n: i64, buf: &mut IntBuf) -> &[u8] {
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

/// The thresholds of the packed encoding (`hash-max-listpack-entries`,
/// `hash-max-listpack-value`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_entries: usize,
    pub max_value: usize,
}

impl Default for Limits {
    /// Redis 7.0's built-in defaults: 512 entries (the sample redis.conf says 128),
    /// 64 bytes.
    fn default() -> Self {
        Limits { max_entries: 512, max_value: 64 }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Repr {
    Packed(Pack),
    /// Boxed so that a packed hash, the common case, costs 24 bytes plus its buffer.
    Table(Box<Table>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct HashValue {
    repr: Repr,
}

impl Default for HashValue {
    fn default() -> Self {
        HashValue::new()
    }
}

impl HashValue {
    /// An empty, packed hash (a key never holds one: the command that creates it
    /// inserts at once).
    pub fn new() -> HashValue {
        HashValue { repr: Repr::Packed(Pack::default()) }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Packed(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Packed(p) => p.len(),
            Repr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match &self.repr {
            Repr::Packed(p) => p.is_empty(),
            Repr::Table(t) => t.is_empty(),
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<Elem<'_>> {
        match &self.repr {
            Repr::Packed(p) => p.get(field),
            Repr::Table(t) => t.get(field).map(Elem::Str),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Redis's `hashTypeTryConversion`: before a command inserts `args` (its fields
    /// and values), a packed hash becomes a table if one of them is longer than
    /// `max_value`, or if the pack would pass 1 GiB.
    pub fn prepare_insert<'x>(&mut self, args: impl IntoIterator<Item = &'x [u8]>, limits: &Limits) {
        let Repr::Packed(p) = &self.repr else { return };
        let mut sum = 0usize;
        for a in args {
            if a.len() > limits.max_value {
                return self.convert();
            }
            sum = sum.saturating_add(a.len());
        }
        if p.bytes_len().saturating_add(sum) > PACK_SAFETY_SIZE {
            self.convert();
        }
    }

    /// Sets `field` to `value` (Redis's `hashTypeSet`); returns whether the field is
    /// new. A packed hash becomes a table first if either is longer than `max_value`,
    /// and after if it then holds more than `max_entries` fields.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: &Limits) -> bool {
        if matches!(self.repr, Repr::Packed(_)) && (field.len() > limits.max_value || value.len() > limits.max_value) {
            self.convert();
        }
        match &mut self.repr {
            Repr::Packed(p) => {
                let new = p.set(field, value);
                if p.len() > limits.max_entries {
                    self.convert();
                }
                new
            }
            Repr::Table(t) => t.insert(field, value),
        }
    }

    /// Removes `field`; returns whether it was there. The encoding stays.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Packed(p) => p.remove(field),
            Repr::Table(t) => t.remove(field),
        }
    }

    fn convert(&mut self) {
        let Repr::Packed(p) = &self.repr else { return };
        let mut t = Table::with_capacity(p.len());
        let (mut fb, mut vb) = ([0; 20], [0; 20]);
        for (f, v) in p.iter() {
            t.insert(f.as_bytes(&mut fb), v.as_bytes(&mut vb));
        }
        self.repr = Repr::Table(Box::new(t));
    }

    /// The pairs: in insertion order when packed, in table order otherwise.
    pub fn iter(&self) -> Iter<'_> {
        match &self.repr {
            Repr::Packed(p) => Iter::Packed(p.iter()),
            Repr::Table(t) => Iter::Table(t.iter()),
        }
    }

    /// A pair chosen uniformly at random; None when empty.
    pub fn random_pair(&self, rng: &mut dyn FnMut() -> u64) -> Option<(Elem<'_>, Elem<'_>)> {
        match &self.repr {
            Repr::Packed(p) => {
                let n = p.len();
                if n == 0 {
                    return None;
                }
                p.pair_at((rng() % n as u64) as usize)
            }
            Repr::Table(t) => {
                let (f, v) = t.pair_at_slot(t.random_slot(rng)?)?;
                Some((Elem::Str(f), Elem::Str(v)))
            }
        }
    }

    /// Calls `f` with `count` pairs each chosen independently at random (HRANDFIELD
    /// with a negative count). Nothing when empty.
    pub fn random_pairs<'a>(&'a self, count: u64, rng: &mut dyn FnMut() -> u64, f: &mut dyn FnMut(Elem<'a>, Elem<'a>)) {
        match &self.repr {
            Repr::Packed(p) => {
                // Walking the pack once beats walking it per pick.
                let pairs: Vec<_> = p.iter().collect();
                if pairs.is_empty() {
                    return;
                }
                for _ in 0..count {
                    let (k, v) = pairs[(rng() % pairs.len() as u64) as usize];
                    f(k, v);
                }
            }
            Repr::Table(t) => {
                for _ in 0..count {
                    let Some((k, v)) = t.random_slot(rng).and_then(|i| t.pair_at_slot(i)) else { return };
                    f(Elem::Str(k), Elem::Str(v));
                }
            }
        }
    }

    /// `min(count, len)` distinct pairs chosen at random, in random order (HRANDFIELD
    /// with a positive count).
    pub fn random_distinct(&self, count: usize, rng: &mut dyn FnMut() -> u64) -> Vec<(Elem<'_>, Elem<'_>)> {
        let n = self.len();
        let count = count.min(n);
        match &self.repr {
            // A small pick from a big table: random slots, skipping repeats.
            Repr::Table(t) if count.saturating_mul(3) <= n => {
                let mut taken = std::collections::HashSet::with_capacity(count);
                let mut out = Vec::with_capacity(count);
                while out.len() < count {
                    let Some(i) = t.random_slot(rng) else { break };
                    if taken.insert(i) {
                        if let Some((k, v)) = t.pair_at_slot(i) {
                            out.push((Elem::Str(k), Elem::Str(v)));
                        }
                    }
                }
                out
            }
            // Otherwise the first `count` places of a partial shuffle of all pairs.
            _ => {
                let mut all: Vec<_> = self.iter().collect();
                for i in 0..count {
                    let j = i + (rng() % (all.len() - i) as u64) as usize;
                    all.swap(i, j);
                }
                all.truncate(count);
                all
            }
        }
    }

    /// One HSCAN step from `cursor`: calls `f` for about `count` pairs and returns the
    /// next cursor, 0 when done. A packed hash returns everything at once with cursor
    /// 0, as Redis does; a table scans in reverse-binary bucket order (see
    /// [`table`]), so every pair present for a whole iteration is returned.
    pub fn scan<'a>(&'a self, cursor: u64, count: usize, f: &mut dyn FnMut(Elem<'a>, Elem<'a>)) -> u64 {
        match &self.repr {
            Repr::Packed(p) => {
                for (k, v) in p.iter() {
                    f(k, v);
                }
                0
            }
            // Redis visits at most ten times COUNT buckets per call (COUNT counting
            // fields and values), so a sparse table cannot stall the server.
            Repr::Table(t) => {
                t.scan(cursor, count, count.saturating_mul(20), &mut |k, v| f(Elem::Str(k), Elem::Str(v)))
            }
        }
    }
}

/// Iterator over the pairs of a [`HashValue`].
pub enum Iter<'a> {
    Packed(pack::PackIter<'a>),
    Table(table::TableIter<'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (Elem<'a>, Elem<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Packed(it) => it.next(),
            Iter::Table(it) => it.next().map(|(k, v)| (Elem::Str(k), Elem::Str(v))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thresholds of the sample redis.conf.
    const SMALL: Limits = Limits { max_entries: 128, max_value: 64 };

    fn pairs(h: &HashValue) -> Vec<(String, String)> {
        h.iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k.to_vec()).into(), String::from_utf8_lossy(&v.to_vec()).into()))
            .collect()
    }

    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn a_hash_value_is_small() {
        assert!(std::mem::size_of::<HashValue>() <= 24);
    }

    #[test]
    fn elements_format_integers() {
        assert_eq!(Elem::Int(-120).len(), 4);
        assert_eq!(Elem::Int(i64::MIN).to_vec(), b"-9223372036854775808");
        assert!(Elem::Int(0).eq_bytes(b"0"));
        assert!(!Elem::Int(0).eq_bytes(b"-0"));
        assert_eq!(Elem::Str(b"abc").len(), 3);
    }

    #[test]
    fn converts_past_the_entry_limit_and_never_back() {
        let limits = Limits { max_entries: 3, max_value: 64 };
        let mut h = HashValue::new();
        for f in ["a", "b", "c"] {
            assert!(h.set(f.as_bytes(), b"1", &limits));
        }
        assert_eq!(h.encoding(), "listpack");
        assert_eq!(pairs(&h)[0], ("a".into(), "1".into()));
        assert!(h.set(b"d", b"2", &limits));
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 4);
        assert_eq!(h.get(b"d"), Some(Elem::Str(b"2")));
        assert_eq!(h.get(b"a"), Some(Elem::Str(b"1")));
        for f in ["a", "b", "c"] {
            assert!(h.remove(f.as_bytes()));
        }
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn converts_on_long_fields_or_values() {
        let limits = Limits { max_entries: 128, max_value: 5 };
        let mut h = HashValue::new();
        h.set(b"f", b"12345", &limits);
        assert_eq!(h.encoding(), "listpack");
        // An update with a long value converts too.
        assert!(!h.set(b"f", b"123456", &limits));
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.get(b"f"), Some(Elem::Str(b"123456")));

        let mut h = HashValue::new();
        h.set(b"f", b"v", &limits);
        h.prepare_insert([&b"short"[..], b"longer!"], &limits);
        assert_eq!(h.encoding(), "hashtable");
        let mut h = HashValue::new();
        h.prepare_insert([&b"short"[..], b"fine"], &limits);
        assert_eq!(h.encoding(), "listpack");
        h.set(b"sixsix", b"v", &limits);
        assert_eq!(h.encoding(), "hashtable");
    }

    #[test]
    fn zero_entries_limit_converts_the_first_insert() {
        let mut h = HashValue::new();
        h.set(b"f", b"v", &Limits { max_entries: 0, max_value: 64 });
        assert_eq!(h.encoding(), "hashtable");
    }

    #[test]
    fn packed_order_is_insertion_order() {
        let limits = SMALL;
        let mut h = HashValue::new();
        for f in ["z", "y", "100", "x"] {
            h.set(f.as_bytes(), f.as_bytes(), &limits);
        }
        h.set(b"y", b"changed", &limits);
        h.remove(b"100");
        h.set(b"100", b"back", &limits);
        let order: Vec<String> = pairs(&h).into_iter().map(|(k, _)| k).collect();
        assert_eq!(order, ["z", "y", "x", "100"]);
        assert_eq!(h.get(b"y"), Some(Elem::Str(b"changed")));
    }

    #[test]
    fn conversion_keeps_every_pair() {
        let mut h = HashValue::new();
        let limits = SMALL;
        for i in 0..128 {
            h.set(format!("{i}").as_bytes(), format!("v{i}").as_bytes(), &limits);
        }
        let before = h.clone();
        assert_eq!(h.encoding(), "listpack");
        h.set(b"last", b"-5", &limits);
        assert_eq!(h.encoding(), "hashtable");
        for (k, v) in before.iter() {
            assert_eq!(h.get(&k.to_vec()).map(|e| e.to_vec()), Some(v.to_vec()));
        }
        assert_eq!(h.get(b"last"), Some(Elem::Str(b"-5")));
        assert_ne!(h, before);
    }

    #[test]
    fn random_picks() {
        let mut rng = xorshift(9);
        for size in [5usize, 300] {
            let mut h = HashValue::new();
            for i in 0..size {
                h.set(format!("f{i}").as_bytes(), b"v", &SMALL);
            }
            assert!(h.random_pair(&mut rng).is_some());
            let mut n = 0;
            h.random_pairs(1000, &mut rng, &mut |k, v| {
                assert!(h.get(&k.to_vec()) == Some(v));
                n += 1;
            });
            assert_eq!(n, 1000);
            for count in [1, 3, size / 2, size - 1, size, size + 10] {
                let picked = h.random_distinct(count, &mut rng);
                let unique: std::collections::BTreeSet<Vec<u8>> = picked.iter().map(|(k, _)| k.to_vec()).collect();
                assert_eq!(picked.len(), count.min(size));
                assert_eq!(unique.len(), picked.len());
            }
        }
        let empty = HashValue::new();
        assert!(empty.random_pair(&mut rng).is_none());
        assert!(empty.random_distinct(3, &mut rng).is_empty());
    }

    #[test]
    fn packed_scan_returns_everything_with_cursor_zero() {
        let mut h = HashValue::new();
        for i in 0..20 {
            h.set(format!("f{i}").as_bytes(), b"v", &SMALL);
        }
        let mut n = 0;
        assert_eq!(h.scan(12345, 1, &mut |_, _| n += 1), 0);
        assert_eq!(n, 20);
    }

    #[test]
    fn table_scan_resumes() {
        let mut h = HashValue::new();
        for i in 0..1000 {
            h.set(format!("f{i}").as_bytes(), b"v", &SMALL);
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor = h.scan(0, 10, &mut |k, _| {
            seen.insert(k.to_vec());
        });
        assert_ne!(cursor, 0);
        while cursor != 0 {
            cursor = h.scan(cursor, 10, &mut |k, _| {
                seen.insert(k.to_vec());
            });
        }
        assert_eq!(seen.len(), 1000);
    }
}
