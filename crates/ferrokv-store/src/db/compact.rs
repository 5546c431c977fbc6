//! Compaction of the keyspace's records: chunks left mostly empty by churn are emptied
//! and go back to the allocator (the algorithm is in `arena.rs`, "Compaction"; here is
//! what finds and updates a moved record's bucket).

use super::Db;
use crate::slot::key_slot;
use std::time::{Duration, Instant};

/// What a compaction call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Records moved out of chunks being emptied (INFO's `active_defrag_hits` and
    /// `active_defrag_key_hits`: every record is one key).
    pub moved: u64,
    /// Live records left where they were in the size classes a plan looked at
    /// (`active_defrag_misses`, `active_defrag_key_misses`).
    pub kept: u64,
    /// Whether chunks are still being emptied when the call returned.
    pub running: bool,
}

/// Record memory of one database: bytes of chunks held and of free records in them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordMemory {
    pub held: usize,
    pub free: usize,
}

impl Db {
    /// The selected database's record memory.
    pub fn record_memory(&self) -> RecordMemory {
        RecordMemory { held: self.sp.arena.chunk_bytes(), free: self.sp.arena.free_bytes() }
    }

    /// Whether the selected database's records are being compacted.
    pub fn compacting(&self) -> bool {
        self.sp.arena.compacting()
    }

    /// Compacts the selected database's records for about `budget`: carries on with
    /// the chunks being emptied, or, when there are none, plans anew with classes
    /// whose free records are at least `min_free_pct`% of their records. Each record
    /// moved costs a lookup of its key (to find its bucket) and a copy of its bytes.
    pub fn compact(&mut self, min_free_pct: usize, budget: Duration) -> Compacted {
        self.settle();
        let mut done = Compacted::default();
        if !self.sp.arena.compacting() {
            let before = self.sp.arena.live_records_planned();
            let plan = self.sp.arena.plan(min_free_pct);
            if plan.chunks == 0 {
                return done;
            }
            done.kept = (before.saturating_sub(plan.records)) as u64;
        }
        let start = Instant::now();
        while let Some(h) = self.sp.arena.next_to_move() {
            let key = self.sp.arena.get(h).key();
            let slot = key_slot(key) as usize;
            let hash = self.hash(key);
            let idx = self.sp.slots[slot].table.find(hash, |i| i == h).expect("a live record is in its slot's table");
            let n = self.sp.arena.relocate(h);
            self.sp.slots[slot].table.set(idx, n);
            done.moved += 1;
            if done.moved % 64 == 0 && start.elapsed() >= budget {
                break;
            }
        }
        done.running = self.sp.arena.compacting();
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    /// Churn: values of changing sizes and keys deleted at random leave free records
    /// everywhere; compaction gives chunks back and every key keeps its value.
    #[test]
    fn compaction_gives_chunks_back_and_keeps_every_key() {
        let mut db = Db::with_seed(7);
        let mut rng = 12345u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let n = 20_000u64;
        let key = |i: u64| format!("key:{i:010}").into_bytes();
        let mut model = std::collections::HashMap::new();
        for i in 0..n {
            db.set(&key(i), Value::string(&[b'v'; 16]), 0);
            model.insert(i, 16usize);
        }
        for i in 0..n {
            let len = 1 + (next() % 200) as usize;
            let exp = if i % 3 == 0 { 4_000_000_000_000 } else { 0 };
            db.set(&key(i), Value::string(&vec![b'w'; len]), exp);
            model.insert(i, len);
        }
        for i in 0..n {
            if next() % 2 == 0 {
                assert!(db.delete(&key(i), 0));
                model.remove(&i);
            }
        }
        let before = db.record_memory();
        assert!(before.free * 4 > before.held, "churn left free records: {before:?}");
        let mut moved = 0;
        loop {
            let c = db.compact(10, Duration::from_secs(60));
            moved += c.moved;
            if !c.running && db.compact(10, Duration::ZERO) == Compacted::default() {
                break;
            }
        }
        assert!(moved > 0);
        let after = db.record_memory();
        assert!(after.held < before.held * 3 / 4, "chunks went back: {before:?} -> {after:?}");
        db.check_invariants();
        assert_eq!(db.len(), model.len());
        for (i, len) in &model {
            let e = db.get(&key(*i), 0).expect("key kept");
            match &e.value {
                Value::Str { bytes, .. } => assert_eq!(bytes.len(), *len),
                v => panic!("{v:?}"),
            }
        }
        // New records reuse what is left; deleting everything still frees it all.
        for i in n..n + 5000 {
            db.set(&key(i), Value::Int(i as i64), 0);
        }
        db.check_invariants();
        assert_eq!(db.clear(), model.len() + 5000);
        assert_eq!(db.record_memory(), RecordMemory::default());
    }

    /// A step bounded by a zero budget still moves records (64 at a time) and the
    /// keyspace stays usable between steps: writes and deletes to records of chunks
    /// being emptied.
    #[test]
    fn compaction_interleaves_with_writes() {
        let mut db = Db::with_seed(3);
        let key = |i: u64| format!("k{i}").into_bytes();
        for i in 0..30_000u64 {
            db.set(&key(i), Value::Int(i as i64), 0);
        }
        for i in 0..30_000u64 {
            if i % 5 != 0 {
                db.delete(&key(i), 0);
            }
        }
        let mut steps = 0;
        loop {
            let c = db.compact(10, Duration::ZERO);
            steps += 1;
            // Touch records in between: grow some (they move class), delete others.
            for i in (0..30_000u64).step_by(5).skip(steps % 7).step_by(97) {
                if i % 2 == 0 {
                    db.set(&key(i), Value::string(&[b'x'; 40]), 0);
                } else {
                    db.delete(&key(i), 0);
                }
            }
            db.check_invariants();
            if !c.running {
                break;
            }
        }
        assert!(steps > 2, "zero budget moves a few records per call");
    }
}
