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
    /// The database the keys were in at the snapshot's instant.
    db: usize,
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

/// What [`Db::take_snapshot_output`] hands over.
#[derive(Debug, Default)]
pub struct SnapshotOutput {
    /// dump.rdb records; where the database changes within them, a SELECTDB record.
    pub bytes: Vec<u8>,
    /// The database of the first record (None: no record).
    pub first_db: Option<usize>,
    /// The database of the last record.
    pub last_db: usize,
    /// Keys the records hold.
    pub keys: u64,
    /// Every slot of every database is saved: the snapshot ended.
    pub done: bool,
}

impl Db {
    /// Starts a snapshot of this keyspace, every database, as it is now (see the
    /// module docs). A snapshot already running is abandoned.
    pub fn begin_snapshot(&mut self, now_ms: u64, compress: bool) -> SnapshotStart {
        self.settle();
        self.snap_epoch = self.snap_epoch.wrapping_add(1);
        if self.snap_epoch == 0 {
            // After 65535 snapshots: no entry may still carry the epoch reused now.
            self.each_database(|db| {
                let super::Space { slots, arena, .. } = &mut db.sp;
                for slot in slots.used() {
                    for i in slot.table.iter() {
                        arena.set_snap(i, 0);
                    }
                }
            });
            self.snap_epoch = 1;
        }
        let mut start = SnapshotStart::default();
        self.each_database(|db| {
            let s = db.begin_space_snapshot(now_ms, compress);
            start.keys += s.keys;
            start.expires += s.expires;
        });
        start
    }

    fn begin_space_snapshot(&mut self, now_ms: u64, compress: bool) -> SnapshotStart {
        let mut pending = Box::new([0u64; WORDS]);
        for (g, &n) in self.sp.groups.iter().enumerate() {
            if n == 0 {
                continue;
            }
            for slot in g * GROUP..(g + 1) * GROUP {
                if self.sp.slots[slot].table.len() != 0 {
                    pending[slot / 64] |= 1 << (slot % 64);
                }
            }
        }
        self.sp.snapshot = Some(Box::new(Snapshot {
            epoch: self.snap_epoch,
            db: self.cur,
            pending,
            cursor: 0,
            at_ms: now_ms,
            compress,
            with_freq: self.lfu_policy,
            out: Vec::new(),
            keys_saved: 0,
        }));
        SnapshotStart { keys: self.sp.len as u64, expires: self.sp.expiring as u64 }
    }

    /// Whether a snapshot is running (begun, and not yet finished by
    /// [`Db::snapshot_step`] or abandoned) in some database.
    pub fn snapshot_active(&self) -> bool {
        self.sp.snapshot.is_some() || self.parked.iter().flatten().any(|s| s.snapshot.is_some())
    }

    /// Serialises pending slots until at least `budget` bytes wait in the output or
    /// none is left. Returns true once every slot is saved; the snapshot then ends
    /// (drain the output one last time).
    pub fn snapshot_step(&mut self, budget: usize) -> bool {
        self.snapshot_step_until(budget, None)
    }

    /// [`Db::snapshot_step`] that also stops at `deadline` (checked between slots).
    pub fn snapshot_step_until(&mut self, budget: usize, deadline: Option<std::time::Instant>) -> bool {
        if !self.multi_database() {
            return self.space_step(budget, deadline);
        }
        let mut all_done = true;
        let mut waiting = 0;
        self.each_database(|db| {
            if !all_done && (waiting >= budget || deadline.is_some_and(|d| std::time::Instant::now() >= d)) {
                return;
            }
            let left = budget.saturating_sub(waiting);
            if !db.space_step(left.max(1), deadline) {
                all_done = false;
            }
            waiting += db.sp.snapshot.as_ref().map_or(0, |s| s.out.len());
        });
        all_done
    }

    /// One database's share of [`Db::snapshot_step_until`].
    fn space_step(&mut self, budget: usize, deadline: Option<std::time::Instant>) -> bool {
        self.settle();
        loop {
            let Some(s) = self.sp.snapshot.as_deref_mut() else { return true };
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

    /// The records serialised so far in every database (the buffers are left empty),
    /// in database order with a SELECTDB record where the database changes. When
    /// every slot is saved this also ends the snapshot and says so (`done`): that is
    /// the snapshot's end, whatever the last [`Db::snapshot_step`] returned.
    pub fn take_snapshot_output(&mut self) -> SnapshotOutput {
        let mut o = SnapshotOutput::default();
        let mut any = false;
        let mut done = true;
        let cur = self.cur;
        let Db { sp, parked, .. } = self;
        let mut spaces: Vec<&mut Option<Box<Snapshot>>> = vec![&mut sp.snapshot];
        for (i, p) in parked.iter_mut().enumerate() {
            if i != cur {
                if let Some(space) = p.as_mut() {
                    spaces.push(&mut space.snapshot);
                }
            }
        }
        // Output in the order of the databases the records belong to (a SWAPDB
        // meanwhile moves a snapshot to another place, not to another database).
        spaces.sort_by_key(|s| s.as_ref().map_or(usize::MAX, |s| s.db));
        for slot in spaces {
            let Some(s) = slot.as_deref_mut() else { continue };
            any = true;
            if !s.out.is_empty() {
                match o.first_db {
                    None => o.first_db = Some(s.db),
                    Some(_) if o.last_db != s.db => ferrokv_rdb::file::write_select_db(&mut o.bytes, s.db as u64),
                    _ => {}
                }
                o.last_db = s.db;
                o.bytes.extend_from_slice(&std::mem::take(&mut s.out));
            }
            o.keys += std::mem::take(&mut s.keys_saved);
            let finished = s.cursor >= SLOTS || s.pending.iter().all(|&w| w == 0);
            if finished {
                *slot = None;
            } else {
                done = false;
            }
        }
        o.done = any && done;
        o
    }

    /// Abandons a running snapshot (its output is dropped).
    pub fn abort_snapshot(&mut self) {
        self.sp.snapshot = None;
        for s in self.parked.iter_mut().flatten() {
            s.snapshot = None;
        }
    }

    /// Copy-on-write: the entry at (`slot`, `idx`) is about to change; if the running
    /// snapshot has not saved it yet, save it now, as it still is.
    #[inline]
    pub(super) fn cow(&mut self, slot: usize, idx: usize) {
        if let Some(s) = self.sp.snapshot.as_deref() {
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
        if let Some(s) = self.sp.snapshot.as_deref() {
            if s.is_pending(slot) {
                self.save_slot(slot);
            }
        }
    }

    /// A new entry is not part of a running snapshot: stamp it as handled.
    #[inline]
    pub(super) fn mark_saved(&self, access: &mut super::Access) {
        if let Some(s) = self.sp.snapshot.as_deref() {
            access.snap = s.epoch;
        }
    }

    fn save_entry(&mut self, slot: usize, idx: usize) {
        let Db { sp: super::Space { snapshot, slots, arena, .. }, lru_clock, lfu_decay_time, .. } = self;
        let Some(s) = snapshot.as_deref_mut() else { return };
        let Some(i) = slots[slot].table.get(idx) else { return };
        if arena.get(i).snap() == s.epoch {
            return;
        }
        arena.set_snap(i, s.epoch);
        write_record(s, arena.get(i), *lru_clock, *lfu_decay_time);
    }

    /// Copy-on-write before a change to every slot (FLUSHALL, FLUSHDB).
    pub(super) fn cow_all(&mut self) {
        if self.capture.is_some() {
            self.capture_flush(None);
        }
        if self.sp.snapshot.is_some() {
            while !self.space_step(usize::MAX, None) {}
        }
    }

    fn save_slot(&mut self, slot: usize) {
        let Db { sp: super::Space { snapshot, slots, arena, .. }, lru_clock, lfu_decay_time, .. } = self;
        let Some(s) = snapshot.as_deref_mut() else { return };
        s.clear(slot);
        for i in slots[slot].table.iter() {
            if arena.get(i).snap() == s.epoch {
                continue;
            }
            arena.set_snap(i, s.epoch);
            write_record(s, arena.get(i), *lru_clock, *lfu_decay_time);
        }
    }
}

/// Appends `n`'s record unless it had expired at the snapshot's instant.
fn write_record(s: &mut Snapshot, r: super::Rec<'_>, lru_clock: u32, lfu_decay_time: u32) {
    if r.is_expired(s.at_ms) {
        return;
    }
    let expire_at = r.expire_at();
    let meta = KeyMeta {
        expire_ms: (expire_at != 0).then_some(expire_at as i64),
        idle_secs: None,
        freq: s.with_freq.then(|| r.access().decayed_counter(lru_clock, lfu_decay_time)),
    };
    write_key_meta(&mut s.out, meta);
    crate::rdb::write_value(&mut s.out, Some(r.key()), &r.entry().value, s.compress);
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
                let o = db.take_snapshot_output();
                let (out, ended) = (o.bytes, o.done);
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
            let o = db.take_snapshot_output();
            let (k, ended) = (o.keys, o.done);
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
        let o = db.take_snapshot_output();
        let (records, keys, ended) = (o.bytes, o.keys, o.done);
        assert!(ended);
        assert_eq!(keys, 500, "every key, in the output taken after the flush");
        assert_eq!(decode(&records), want);
    }

    /// Every database is saved, each key once under its own database, with a
    /// SELECTDB where the database changes; a SWAPDB during the snapshot does not move
    /// keys to the other database in it.
    #[test]
    fn every_database_is_saved_under_its_number() {
        let mut db = Db::with_seed(5);
        db.set_databases(4);
        for (n, count) in [(0, 300), (2, 200), (3, 5)] {
            db.select(n);
            for i in 0..count {
                db.set(format!("d{n}k{i}").as_bytes(), Value::Int(i), 0);
            }
        }
        db.select(0);
        db.begin_snapshot(0, false);
        assert!(!db.snapshot_step(100));
        db.swap_databases(0, 3);
        db.select(3);
        // A write to what is now db 3 (db 0's keys at the snapshot's instant).
        db.set(b"d0k1", Value::Int(-1), 0);
        db.select(0);
        let mut bytes = Vec::new();
        let mut first = None;
        loop {
            let done = db.snapshot_step(1000);
            let o = db.take_snapshot_output();
            if let Some(f) = o.first_db {
                if first.is_none() {
                    first = Some(f);
                } else {
                    ferrokv_rdb::file::write_select_db(&mut bytes, f as u64);
                }
            }
            bytes.extend(o.bytes);
            if o.done || done && !db.snapshot_active() {
                break;
            }
        }
        // Decode with a SELECTDB of the first database in front.
        let mut file = Vec::new();
        ferrokv_rdb::file::write_header(&mut file);
        ferrokv_rdb::file::write_select_db(&mut file, first.unwrap() as u64);
        file.extend(bytes);
        ferrokv_rdb::file::write_eof(&mut file);
        file.extend_from_slice(&[0; 8]);
        let mut r = FileReader::new(&file).unwrap();
        let mut per_db: BTreeMap<u64, usize> = BTreeMap::new();
        let mut cur = 0;
        let lim = Limits { list_fill: -2, ..Limits::default() };
        loop {
            match r.next_record().unwrap() {
                Record::SelectDb(n) => cur = n,
                Record::Entry { key, value, .. } => {
                    let k = String::from_utf8(key).unwrap();
                    assert!(k.starts_with(&format!("d{cur}k")), "{k} saved in db {cur}");
                    if k == "d0k1" {
                        assert_eq!(build_value(value, &lim).unwrap(), Value::Int(1), "saved as it was");
                    }
                    *per_db.entry(cur).or_default() += 1;
                }
                Record::End => break,
                _ => {}
            }
        }
        assert_eq!(per_db, BTreeMap::from([(0, 300), (2, 200), (3, 5)]));
    }
}
