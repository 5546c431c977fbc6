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

use super::Db;
use crate::slot::SLOTS;

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

/// One key as a migration ships it: name, absolute expiry (0: none), DUMP payload.
pub type DumpedKey = (Vec<u8>, u64, Vec<u8>);

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
    pub fn slot_dump(&self, slot: u16, now_ms: u64) -> Vec<DumpedKey> {
        self.slot_entries(slot, now_ms)
            .map(|(k, e)| (k.to_vec(), e.expire_at, crate::rdb::dump(&e.value, false)))
            .collect()
    }

    /// One key as [`Db::slot_dump`] gives it, None when it is not live.
    pub fn key_dump(&mut self, key: &[u8], now_ms: u64) -> Option<(u64, Vec<u8>)> {
        let e = self.peek(key, now_ms)?;
        Some((e.expire_at, crate::rdb::dump(&e.value, false)))
    }

    #[inline(never)]
    pub(super) fn capture_entry(&mut self, slot: usize, idx: usize) {
        let Db { capture, sp: super::Space { slots, arena, .. }, .. } = self;
        let Some(c) = capture.as_deref_mut() else { return };
        if !c.has(slot) {
            return;
        }
        if let Some(i) = slots[slot].table.get(idx) {
            let key = &arena.get(i).key;
            if !c.keys.contains(&**key) {
                c.keys.insert((**key).into());
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
}
