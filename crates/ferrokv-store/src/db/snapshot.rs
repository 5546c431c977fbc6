//! Point-in-time snapshots without fork: copy-on-write per entry.
//!
//! [`Db::begin_snapshot`] starts a new snapshot *epoch* and marks every slot that holds
//! keys as *pending*. From then on the snapshot is the keyspace as it was at that
//! instant:
//! - a background walk ([`Db::snapshot_step`]) serialises pending slots in order, a
//!   budget at a time, each entry not yet saved for this epoch, and clears the slot;
//! - a change to an entry of a pending slot — a write, a lazy or active expiry, a
//!   deletion — first serialises that entry as it still is and stamps it with the epoch
//!   ([`Db::cow`]); a key created meanwhile is stamped at birth (it was not there);
//!   FLUSHALL and a slot's removal save what they remove first.
//!
//! So the walk skips what was saved early, and every key is saved once, as it was.
//! A write costs one entry's serialisation, once per snapshot.
//!
//! Records are dump.rdb key records ([`ferrokv_rdb::file`]), appended to an output
//! buffer the owner drains ([`Db::take_snapshot_output`]) and writes out. A key
//! already expired at the snapshot's instant is left out (a loader would drop it). The
//! extra memory is the serialised form of the slots changed before the walk reached
//! them and not yet written out, never a second copy of the dataset; the cost of a
//! write to a pending slot is serialising that slot once (a slot holds 1/16384 of
//! the keys in standalone mode).

use super::{Db, GROUP};
use crate::slot::SLOTS;
use ferrokv_rdb::file::{write_key_meta, KeyMeta};

const WORDS: usize = SLOTS / 64;

/// A snapshot in progress in one keyspace.
pub(super) struct Snapshot {
    /// Stamped on every entry saved (or born) during this snapshot.
    epoch: u16,
    /// Slots not yet serialised, one bit each.
    pending: Box<[u64; WORDS]>,
    /// Where the background walk goes on.
    cursor: usize,
    /// The snapshot's instant: keys expired by then are not saved.
    at_ms: u64,
    compress: bool,
    /// Write the LFU counter of each key (under an LFU policy, as Redis does).
    with_freq: bool,
    out: Vec<u8>,
    keys_saved: u64,
}

impl Snapshot {
    fn is_pending(&self, slot: usize) -> bool {
        self.pending[slot / 64] & (1 << (slot % 64)) != 0
    }

    fn clear(&mut self, slot: usize) {
        self.pending[slot / 64] &= !(1 << (slot % 64));
    }
}

/// What a snapshot of one keyspace holds at its start (the file's RESIZEDB hints).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotStart {
    pub keys: u64,
    pub expires: u64,
}

impl Db {
    /// Starts a snapshot of this keyspace as it is now (see the module docs). A
    /// snapshot already running is abandoned.
    pub fn begin_snapshot(&mut self, now_ms: u64, compress: bool) -> SnapshotStart {
        self.settle();
        self.snap_epoch = self.snap_epoch.wrapping_add(1);
        if self.snap_epoch == 0 {
            // After 65535 snapshots: no entry may still carry the epoch reused now.
            for slot in self.slots.iter() {
                for i in slot.table.iter() {
                    self.arena.get_mut(i).access.snap = 0;
                }
            }
            self.snap_epoch = 1;
        }
        let mut pending = Box::new([0u64; WORDS]);
        for (g, &n) in self.groups.iter().enumerate() {
            if n == 0 {
                continue;
            }
            for slot in g * GROUP..(g + 1) * GROUP {
                if self.slots[slot].table.len() != 0 {
                    pending[slot / 64] |= 1 << (slot % 64);
                }
            }
        }
        self.snapshot = Some(Box::new(Snapshot {
            epoch: self.snap_epoch,
            pending,
            cursor: 0,
            at_ms: now_ms,
            compress,
            with_freq: self.lfu_policy,
            out: Vec::new(),
            keys_saved: 0,
        }));
        SnapshotStart { keys: self.len as u64, expires: self.expiring as u64 }
    }

    /// Whether a snapshot is running (begun, and not yet finished by
    /// [`Db::snapshot_step`] or abandoned).
    pub fn snapshot_active(&self) -> bool {
        self.snapshot.is_some()
    }

    /// Serialises pending slots until at least `budget` bytes wait in the output or
    /// none is left. Returns true once every slot is saved; the snapshot then ends
    /// (drain the output one last time).
    pub fn snapshot_step(&mut self, budget: usize) -> bool {
        self.snapshot_step_until(budget, None)
    }

    /// [`Db::snapshot_step`] that also stops at `deadline` (checked between slots).
    pub fn snapshot_step_until(&mut self, budget: usize, deadline: Option<std::time::Instant>) -> bool {
        self.settle();
        loop {
            let Some(s) = self.snapshot.as_deref_mut() else { return true };
            if s.out.len() >= budget {
                return false;
            }
            // Skip empty words of the bitmap quickly.
            while s.cursor < SLOTS && s.pending[s.cursor / 64] == 0 {
                s.cursor = (s.cursor / 64 + 1) * 64;
            }
            if s.cursor >= SLOTS {
                return true;
            }
            let slot = s.cursor;
            s.cursor += 1;
            if s.is_pending(slot) {
                self.save_slot(slot);
                // After a slot, not before: every call makes progress.
                if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    return false;
                }
            }
        }
    }

    /// The records serialised so far (the buffer is left empty) and how many keys they
    /// hold. When every slot is saved this also ends the snapshot and says so (`true`):
    /// that is the snapshot's end, whatever the last [`Db::snapshot_step`] returned.
    pub fn take_snapshot_output(&mut self) -> (Vec<u8>, u64, bool) {
        let Some(s) = self.snapshot.as_deref_mut() else { return (Vec::new(), 0, false) };
        let out = std::mem::take(&mut s.out);
        let keys = std::mem::take(&mut s.keys_saved);
        let done = s.cursor >= SLOTS || s.pending.iter().all(|&w| w == 0);
        if done {
            self.snapshot = None;
        }
        (out, keys, done)
    }

    /// Abandons a running snapshot (its output is dropped).
    pub fn abort_snapshot(&mut self) {
        self.snapshot = None;
    }

    /// Copy-on-write: the entry at (`slot`, `idx`) is about to change; if the running
    /// snapshot has not saved it yet, save it now, as it still is.
    #[inline]
    pub(super) fn cow(&mut self, slot: usize, idx: usize) {
        if let Some(s) = self.snapshot.as_deref() {
            if s.is_pending(slot) {
                self.save_entry(slot, idx);
            }
        }
        if self.capture.is_some() {
            self.capture_entry(slot, idx);
        }
    }

    /// Copy-on-write of a whole slot about to go.
    pub(super) fn cow_slot(&mut self, slot: usize) {
        if self.capture.is_some() {
            self.capture_flush(Some(slot));
        }
        if let Some(s) = self.snapshot.as_deref() {
            if s.is_pending(slot) {
                self.save_slot(slot);
            }
        }
    }

    /// A new entry is not part of a running snapshot: stamp it as handled.
    #[inline]
    pub(super) fn mark_saved(&self, node: &mut super::Node) {
        if let Some(s) = self.snapshot.as_deref() {
            node.access.snap = s.epoch;
        }
    }

    fn save_entry(&mut self, slot: usize, idx: usize) {
        let Db { snapshot, slots, arena, lru_clock, lfu_decay_time, .. } = self;
        let Some(s) = snapshot.as_deref_mut() else { return };
        let Some(i) = slots[slot].table.get(idx) else { return };
        let n = arena.get_mut(i);
        if n.access.snap == s.epoch {
            return;
        }
        n.access.snap = s.epoch;
        write_record(s, n, *lru_clock, *lfu_decay_time);
    }

    /// Copy-on-write before a change to every slot (FLUSHALL, FLUSHDB).
    pub(super) fn cow_all(&mut self) {
        if self.capture.is_some() {
            self.capture_flush(None);
        }
        if self.snapshot.is_some() {
            while !self.snapshot_step(usize::MAX) {}
        }
    }

    fn save_slot(&mut self, slot: usize) {
        let Db { snapshot, slots, arena, lru_clock, lfu_decay_time, .. } = self;
        let Some(s) = snapshot.as_deref_mut() else { return };
        s.clear(slot);
        for i in slots[slot].table.iter() {
            let n = arena.get_mut(i);
            if n.access.snap == s.epoch {
                continue;
            }
            n.access.snap = s.epoch;
            write_record(s, n, *lru_clock, *lfu_decay_time);
        }
    }
}

/// Appends `n`'s record unless it had expired at the snapshot's instant.
fn write_record(s: &mut Snapshot, n: &super::Node, lru_clock: u32, lfu_decay_time: u32) {
    if n.entry.is_expired(s.at_ms) {
        return;
    }
    let meta = KeyMeta {
        expire_ms: (n.entry.expire_at != 0).then_some(n.entry.expire_at as i64),
        idle_secs: None,
        freq: s.with_freq.then(|| n.access.decayed_counter(lru_clock, lfu_decay_time)),
    };
    write_key_meta(&mut s.out, meta);
    crate::rdb::write_value(&mut s.out, Some(&n.key), &n.entry.value, s.compress);
    s.keys_saved += 1;
}

#[cfg(test)]
mod tests {
    use crate::rdb::{build_value, Limits};
    use crate::{Db, Value};
    use ferrokv_rdb::file::{FileReader, Record};
    use std::collections::BTreeMap;

    /// Every key in the records, with its value and expiry.
    fn decode(records: &[u8]) -> BTreeMap<Vec<u8>, (Value, u64)> {
        let mut file = Vec::new();
        ferrokv_rdb::file::write_header(&mut file);
        file.extend_from_slice(records);
        ferrokv_rdb::file::write_eof(&mut file);
        file.extend_from_slice(&[0; 8]);
        let mut r = FileReader::new(&file).unwrap();
        let mut out = BTreeMap::new();
        let lim = Limits { list_fill: -2, ..Limits::default() };
        loop {
            match r.next_record().unwrap() {
                Record::Entry { key, value, meta } => {
                    let v = build_value(value, &lim).unwrap();
                    assert!(out.insert(key, (v, meta.expire_ms.unwrap_or(0) as u64)).is_none(), "key saved twice");
                }
                Record::End => return out,
                other => panic!("{other:?}"),
            }
        }
    }

    fn contents(db: &mut Db) -> BTreeMap<Vec<u8>, (Value, u64)> {
        let mut keys = Vec::new();
        db.keys_matching(b"*", 0, &mut keys);
        keys.into_iter()
            .map(|k| {
                let e = db.peek(&k, 0).unwrap();
                let v = (e.value.clone(), e.expire_at);
                (k, v)
            })
            .collect()
    }

    /// Writes interleaved with the background walk: the snapshot is exactly the
    /// keyspace at its start, whatever the writes did after.
    #[test]
    fn snapshot_is_the_keyspace_at_its_start() {
        for seed in 0..20u64 {
            let mut db = Db::with_seed(seed);
            let mut x = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
            let mut rnd = move |n: u64| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % n
            };
            for i in 0..3000 {
                let exp = if i % 7 == 0 { 5_000_000_000_000 } else { 0 };
                db.set(format!("k{i}").as_bytes(), Value::string(format!("v{i}").as_bytes()), exp);
            }
            // One key already expired at the start is not in the snapshot.
            db.set(b"gone", Value::string(b"x"), 10);
            let mut want = contents(&mut db);
            want.remove(&b"gone"[..]);
            let start = db.begin_snapshot(1000, true);
            assert_eq!(start.keys, 3001);
            let mut records = Vec::new();
            loop {
                // A burst of writes: overwrite, delete, create, expire, flush a slot.
                for _ in 0..rnd(40) {
                    let k = format!("k{}", rnd(3500));
                    match rnd(4) {
                        0 => db.set(k.as_bytes(), Value::string(b"new"), 0),
                        1 => drop(db.remove(k.as_bytes(), 2000)),
                        2 => drop(db.set_expire(k.as_bytes(), 1)),
                        _ => {
                            if let Some(e) = db.get(k.as_bytes(), 2000) {
                                e.value = Value::string(b"in place");
                            }
                        }
                    }
                }
                let stepped_to_end = db.snapshot_step(rnd(4000) as usize);
                let (out, _, ended) = db.take_snapshot_output();
                records.extend(out);
                // The end is seen once, by the take (a step may stop just short of
                // noticing that nothing is left).
                assert!(!stepped_to_end || ended || !db.snapshot_active());
                if ended {
                    break;
                }
            }
            assert!(!db.snapshot_active());
            assert_eq!(decode(&records), want, "seed {seed}");
        }
    }

    /// A deadline already past still saves a slot per call, and the end is reported
    /// once by the take whichever call saved the last slot.
    #[test]
    fn steps_past_their_deadline_still_finish() {
        let mut db = Db::with_seed(3);
        for i in 0..2000 {
            db.set(format!("k{i}").as_bytes(), Value::Int(i), 0);
        }
        db.begin_snapshot(0, false);
        let (mut keys, mut calls) = (0, 0);
        loop {
            db.snapshot_step_until(usize::MAX, Some(std::time::Instant::now()));
            let (_, k, ended) = db.take_snapshot_output();
            keys += k;
            calls += 1;
            assert!(calls < 20_000, "no progress");
            if ended {
                break;
            }
        }
        assert_eq!(keys, 2000);
        assert!(!db.snapshot_active());
    }

    #[test]
    fn flush_during_a_snapshot_saves_everything_first() {
        let mut db = Db::with_seed(1);
        for i in 0..500 {
            db.set(format!("k{i}").as_bytes(), Value::Int(i), 0);
        }
        let want = contents(&mut db);
        db.begin_snapshot(0, false);
        assert!(!db.snapshot_step(100));
        db.clear();
        assert!(db.snapshot_step(usize::MAX), "nothing left to walk after the flush");
        let (records, keys, ended) = db.take_snapshot_output();
        assert!(ended);
        assert_eq!(keys, 500, "every key, in the output taken after the flush");
        assert_eq!(decode(&records), want);
    }
}
