//! Change capture for whole-slot migration.
//!
//! A migration copies a slot in one step under its shard's lock ([`Db::slot_dump`]) and
//! starts capturing that slot at the same instant ([`Db::capture_start`]). From then on
//! every change to a key of a captured slot — a write, an expiry, a deletion, a new key
//! — records the key's name (the hooks are the snapshot's copy-on-write points, which
//! see every change to an entry, plus the insertion of a new one), and a slot emptied
//! whole (FLUSHALL, a slot's removal) is recorded as flushed. [`Db::take_captured`]
//! hands the record over and starts a new one; the migration then sends the *current*
//! value (or absence) of each recorded key. So the state sent is idempotent: a key
//! recorded twice is sent once, as it is now, and the target's copy of a slot equals
//! the source's as of the last hand-over.
//!
//! A big key (more than [`BIG_ELEMS`] elements, or a string over [`BIG_BYTES`]) is not
//! serialised in one step: [`Db::slot_dump`] and [`Db::key_dump`] give it without a
//! payload, and the migration pulls it in pieces with [`Db::key_chunk`], each under the
//! shard's lock for a short while, so neither node's shard stalls for the whole key. The
//! pieces are read with a scan cursor across lock releases and so need not form a
//! consistent picture of the key, but they need not: a key changed after the capture
//! began is recorded and sent again, whole, as it is then.

use super::Db;
use crate::slot::SLOTS;
use crate::value::Value;

const WORDS: usize = SLOTS / 64;

/// The slots being captured and what changed in them since the last hand-over.
#[derive(Default)]
pub(super) struct Capture {
    slots: Vec<u64>,
    keys: hashbrown::HashSet<Box<[u8]>, foldhash::quality::FixedState>,
    flushed: Vec<u16>,
}

impl Capture {
    fn has(&self, slot: usize) -> bool {
        self.slots[slot / 64] & (1 << (slot % 64)) != 0
    }
}

/// What changed in the captured slots since the last hand-over.
#[derive(Default, Debug)]
pub struct Captured {
    /// Slots emptied whole, in order (clear them before applying `keys`).
    pub flushed: Vec<u16>,
    /// Keys changed, created or deleted.
    pub keys: Vec<Box<[u8]>>,
}

/// One key as a migration ships it: name, absolute expiry (0: none), DUMP payload (None:
/// a big key, to be pulled in pieces with [`Db::key_chunk`]).
pub type DumpedKey = (Vec<u8>, u64, Option<Vec<u8>>);

/// A collection with more elements than this travels in pieces.
pub const BIG_ELEMS: usize = 4096;
/// A string longer than this travels in pieces.
pub const BIG_BYTES: usize = 1 << 20;
/// Elements per piece of a big collection (a list's, a set's, a hash's pairs, a sorted
/// set's members), and bytes per piece of a big string.
pub const CHUNK_ELEMS: usize = 1024;
pub const CHUNK_BYTES: usize = 256 << 10;

/// The type of a big key, as a piece gives it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ChunkKind {
    String,
    List,
    Hash,
    Set,
    ZSet,
}

impl ChunkKind {
    pub fn name(self) -> &'static str {
        match self {
            ChunkKind::String => "string",
            ChunkKind::List => "list",
            ChunkKind::Hash => "hash",
            ChunkKind::Set => "set",
            ChunkKind::ZSet => "zset",
        }
    }

    pub fn parse(s: &[u8]) -> Option<ChunkKind> {
        [ChunkKind::String, ChunkKind::List, ChunkKind::Hash, ChunkKind::Set, ChunkKind::ZSet]
            .into_iter()
            .find(|k| k.name().as_bytes() == s)
    }
}

/// One piece of a big key: its type and expiry now, the cursor of the next piece (0: this
/// was the last), and the elements — a string's bytes; a list's elements in order; a
/// hash's fields and values; a set's members; a sorted set's members and scores.
#[derive(Debug)]
pub struct KeyChunk {
    pub kind: ChunkKind,
    pub expire_at: u64,
    pub next: u64,
    pub elems: Vec<Vec<u8>>,
}

/// Whether `v` travels in pieces.
fn is_big(v: &Value) -> bool {
    match v {
        Value::Int(_) => false,
        Value::Str { bytes, .. } => bytes.len() > BIG_BYTES,
        Value::Hash(h) => h.len() > BIG_ELEMS,
        Value::List(l) => l.len() > BIG_ELEMS,
        Value::Set(s) => s.len() > BIG_ELEMS,
        Value::ZSet(z) => z.len() > BIG_ELEMS,
    }
}

/// A DUMP payload, or None for a big value.
fn payload(v: &Value) -> Option<Vec<u8>> {
    (!is_big(v)).then(|| crate::rdb::dump(v, false))
}

/// A score as text that parses back to the same double.
fn score_text(d: f64) -> Vec<u8> {
    if d.is_infinite() {
        return if d > 0.0 { b"inf".to_vec() } else { b"-inf".to_vec() };
    }
    format!("{d}").into_bytes()
}

impl Db {
    /// Starts recording the changes of `slot` (see the module docs).
    pub fn capture_start(&mut self, slot: u16) {
        let c = self.capture.get_or_insert_with(|| Box::new(Capture { slots: vec![0; WORDS], ..Default::default() }));
        c.slots[slot as usize / 64] |= 1 << (slot % 64);
    }

    /// Stops recording and forgets what was recorded.
    pub fn capture_stop(&mut self) {
        self.capture = None;
    }

    /// Whether some slot is being captured.
    pub fn capture_active(&self) -> bool {
        self.capture.is_some()
    }

    /// What changed since the last call (or the start).
    pub fn take_captured(&mut self) -> Captured {
        let Some(c) = self.capture.as_deref_mut() else { return Captured::default() };
        Captured { flushed: std::mem::take(&mut c.flushed), keys: c.keys.drain().collect() }
    }

    /// Every live key of `slot` with its absolute expiry and DUMP payload. Payloads are
    /// not compressed: they cross to another node of the cluster, where bandwidth is
    /// plenty and the shard's lock, held while they are made, is what counts.
    pub fn slot_dump(&mut self, slot: u16, now_ms: u64) -> Vec<DumpedKey> {
        self.slot_records(slot, now_ms).map(|r| (r.key().to_vec(), r.expire_at(), payload(&r.entry().value))).collect()
    }

    /// One key as [`Db::slot_dump`] gives it, None when it is not live.
    pub fn key_dump(&mut self, key: &[u8], now_ms: u64) -> Option<(u64, Option<Vec<u8>>)> {
        let e = self.peek(key, now_ms)?;
        Some((e.expire_at, payload(&e.value)))
    }

    /// The piece of `key` from `cursor` (0: the first), None when the key is not live.
    /// Any value can be read this way, big or not.
    pub fn key_chunk(&mut self, key: &[u8], cursor: u64, now_ms: u64) -> Option<KeyChunk> {
        let e = self.peek(key, now_ms)?;
        let mut elems = Vec::new();
        let (kind, next) = match &e.value {
            Value::Int(n) => (ChunkKind::String, {
                elems.push(n.to_string().into_bytes());
                0
            }),
            Value::Str { bytes, .. } => {
                let from = (cursor as usize).min(bytes.len());
                let to = (from + CHUNK_BYTES).min(bytes.len());
                elems.push(bytes[from..to].to_vec());
                (ChunkKind::String, if to < bytes.len() { to as u64 } else { 0 })
            }
            Value::List(l) => {
                let from = cursor as usize;
                let to = (from + CHUNK_ELEMS).min(l.len());
                elems.extend(l.range(from, to).map(|x| x.to_vec()));
                (ChunkKind::List, if to < l.len() { to as u64 } else { 0 })
            }
            Value::Hash(h) => {
                let next = h.scan(cursor, CHUNK_ELEMS, &mut |f, v| {
                    elems.push(f.to_vec());
                    elems.push(v.to_vec());
                });
                (ChunkKind::Hash, next)
            }
            Value::Set(s) => (ChunkKind::Set, s.scan(cursor, CHUNK_ELEMS, &mut |m| elems.push(m.to_vec()))),
            Value::ZSet(z) => {
                let next = z.scan(cursor, CHUNK_ELEMS, &mut |m, score| {
                    elems.push(m.to_vec());
                    elems.push(score_text(score));
                });
                (ChunkKind::ZSet, next)
            }
        };
        Some(KeyChunk { kind, expire_at: e.expire_at, next, elems })
    }

    #[inline(never)]
    pub(super) fn capture_entry(&mut self, slot: usize, idx: usize) {
        let Db { capture, sp: super::Space { slots, arena, .. }, .. } = self;
        let Some(c) = capture.as_deref_mut() else { return };
        if !c.has(slot) {
            return;
        }
        if let Some(i) = slots[slot].table.get(idx) {
            let key = arena.get(i).key();
            if !c.keys.contains(key) {
                c.keys.insert(key.into());
            }
        }
    }

    #[inline(never)]
    pub(super) fn capture_key(&mut self, slot: usize, key: &[u8]) {
        let Some(c) = self.capture.as_deref_mut() else { return };
        if c.has(slot) && !c.keys.contains(key) {
            c.keys.insert(key.into());
        }
    }

    /// `slot` (None: every slot) is about to be emptied whole.
    pub(super) fn capture_flush(&mut self, slot: Option<usize>) {
        let Some(c) = self.capture.as_deref_mut() else { return };
        match slot {
            Some(s) if c.has(s) => c.flushed.push(s as u16),
            Some(_) => {}
            None => {
                for s in 0..SLOTS {
                    if c.has(s) {
                        c.flushed.push(s as u16);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::db::Db;
    use crate::slot::key_slot;
    use crate::value::Value;

    #[test]
    fn captures_changes_of_captured_slots_only() {
        let mut db = Db::default();
        db.set(b"a", Value::string(b"1"), 0);
        db.set(b"b", Value::string(b"1"), 0);
        let (sa, sb) = (key_slot(b"a"), key_slot(b"b"));
        assert_ne!(sa, sb);
        assert_eq!(db.slot_dump(sa, 0).len(), 1);
        db.capture_start(sa);
        db.set(b"a", Value::string(b"2"), 0);
        db.set(b"b", Value::string(b"2"), 0);
        db.set(b"{a}new", Value::string(b"3"), 0);
        let mut got = db.take_captured();
        got.keys.sort();
        assert_eq!(got.keys, vec![b"a".to_vec().into_boxed_slice(), b"{a}new".to_vec().into_boxed_slice()]);
        assert!(db.take_captured().keys.is_empty());
        db.clear_slot(sa);
        assert_eq!(db.take_captured().flushed, vec![sa]);
        db.capture_stop();
        db.set(b"a", Value::string(b"4"), 0);
        assert!(db.take_captured().keys.is_empty());
    }

    /// A big key of each kind, read in pieces until the cursor comes back to 0, gives
    /// every element once; a small one comes whole in one piece.
    #[test]
    fn big_keys_come_in_pieces_that_hold_every_element() {
        use super::{ChunkKind, BIG_ELEMS, CHUNK_ELEMS};
        use crate::hash::HashValue;
        use crate::list::ListValue;
        use crate::set::SetValue;
        use crate::zset::ZSetValue;
        let n = BIG_ELEMS + 100;
        let mut l = ListValue::new(-2);
        let mut h = HashValue::new();
        let mut s = SetValue::new_hashtable();
        let mut zs = Vec::new();
        let lim = Default::default();
        for i in 0..n {
            let m = format!("m{i}");
            l.push_back(m.as_bytes());
            h.set(m.as_bytes(), b"v", &Default::default());
            s.add(m.as_bytes(), &lim);
            zs.push((m.into_bytes(), i as f64 / 3.0));
        }
        let z = ZSetValue::from_sorted(zs, &Default::default());
        let mut db = Db::default();
        db.set(b"l", Value::List(Box::new(l)), 0);
        db.set(b"h", Value::Hash(h), 0);
        db.set(b"s", Value::Set(Box::new(s)), 0);
        db.set(b"z", Value::ZSet(Box::new(z)), 0);
        db.set(b"small", Value::string(b"x"), 0);
        db.set(b"big", Value::string(&vec![b'x'; super::BIG_BYTES + 5]), 42);
        for k in [&b"l"[..], b"h", b"s", b"z", b"big"] {
            assert!(db.key_dump(k, 0).unwrap().1.is_none(), "{k:?} is big");
        }
        assert!(db.key_dump(b"small", 0).unwrap().1.is_some());
        let pull = |db: &mut Db, k: &[u8]| {
            let (mut cursor, mut all, mut pieces) = (0, Vec::new(), 0);
            loop {
                let c = db.key_chunk(k, cursor, 0).unwrap();
                all.extend(c.elems);
                pieces += 1;
                cursor = c.next;
                if cursor == 0 {
                    return (c.kind, all, pieces);
                }
            }
        };
        let (kind, all, pieces) = pull(&mut db, b"l");
        assert_eq!(kind, ChunkKind::List);
        assert_eq!(all, (0..n).map(|i| format!("m{i}").into_bytes()).collect::<Vec<_>>());
        assert!(pieces > n / CHUNK_ELEMS);
        for (k, kind, per) in [(&b"h"[..], ChunkKind::Hash, 2), (b"s", ChunkKind::Set, 1), (b"z", ChunkKind::ZSet, 2)] {
            let (got, all, pieces) = pull(&mut db, k);
            assert_eq!(got, kind);
            assert!(pieces > 1);
            let mut members: Vec<_> = all.chunks(per).map(|c| c[0].clone()).collect();
            members.sort();
            members.dedup();
            assert_eq!(members.len(), n, "{kind:?}");
            if kind == ChunkKind::ZSet {
                for c in all.chunks(2) {
                    let i: usize = std::str::from_utf8(&c[0][1..]).unwrap().parse().unwrap();
                    let back: f64 = std::str::from_utf8(&c[1]).unwrap().parse().unwrap();
                    assert_eq!(back, i as f64 / 3.0);
                }
            }
        }
        let (kind, all, _) = pull(&mut db, b"big");
        assert_eq!(kind, ChunkKind::String);
        assert_eq!(all.concat().len(), super::BIG_BYTES + 5);
        assert_eq!(db.key_chunk(b"big", 0, 0).unwrap().expire_at, 42);
        assert!(db.key_chunk(b"nokey", 0, 0).is_none());
    }
}
