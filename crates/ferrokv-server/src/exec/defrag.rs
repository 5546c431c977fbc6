//! Compaction of each shard's keyspace records in its idle time, and `activedefrag`.
//!
//! Variable-size records leave free records behind when values change size and keys
//! go (see ferrokv-store's `db/arena.rs`, "Compaction"); each tick, a shard whose
//! databases hold many free records empties its emptiest chunks by moving their
//! records, for a bounded time, and the chunks go back to the allocator.
//!
//! What this takes from Redis's active defragmentation, and what not: Redis moves any
//! allocation jemalloc says sits in a sparse run (a modified jemalloc gives the hint);
//! ferrokv's own records are where its fragmentation is (measured: benches/
//! memory-churn.sh), so the *fragmentation* here is the free record bytes over the
//! live ones, per shard, and what moves is records. Compaction always runs, at 5% of
//! a tick's time once free records are 25% of the live ones and 1 MiB
//! (`AUTO_*` below), as Redis always resizes its dictionaries; `activedefrag yes` puts
//! it under Redis's thresholds instead: it starts past `active-defrag-ignore-bytes`
//! and `active-defrag-threshold-lower`%, and spends between `active-defrag-cycle-min`
//! and `-max`% of each tick, in proportion to where the fragmentation lies between the
//! lower and upper thresholds (Redis's `computeDefragCycles`). Collections' internals
//! are not moved, so `active-defrag-max-scan-fields` has no effect.

use crate::dispatch::ShardCore;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Compaction without `activedefrag`: free records at least this percentage of the
/// live ones...
const AUTO_FRAG_PCT: u64 = 25;
/// ...and this many bytes...
const AUTO_IGNORE_BYTES: u64 = 1 << 20;
/// ...get this percentage of each tick.
const AUTO_CPU_PCT: u64 = 5;

/// One shard's compaction figures (INFO stats `active_defrag_*`, INFO memory
/// `active_defrag_running`), written by its own thread.
#[derive(Default)]
pub struct DefragStats {
    /// Records moved (each record is one key: hits and key hits).
    pub hits: AtomicU64,
    /// Live records left in place in the size classes a plan looked at.
    pub misses: AtomicU64,
    /// Percentage of a tick being spent while a compaction runs, 0 otherwise.
    pub running: AtomicU64,
    /// Microseconds spent compacting.
    pub total_us: AtomicU64,
    /// Unix ms when the current compaction started, 0 when none runs.
    pub started_ms: AtomicU64,
}

impl DefragStats {
    /// CONFIG RESETSTAT: the counters (not whether one runs).
    pub fn reset(&self) {
        self.hits.store(0, Ordering::Relaxed);
        self.misses.store(0, Ordering::Relaxed);
        self.total_us.store(0, Ordering::Relaxed);
    }
}

/// The settings a tick's compaction follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub active: bool,
    pub ignore_bytes: u64,
    pub lower: u64,
    pub upper: u64,
    pub cycle_min: u64,
    pub cycle_max: u64,
}

impl Settings {
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Settings {
            active: cfg.activedefrag,
            ignore_bytes: cfg.active_defrag_ignore_bytes,
            lower: cfg.active_defrag_threshold_lower,
            upper: cfg.active_defrag_threshold_upper,
            cycle_min: cfg.active_defrag_cycle_min,
            cycle_max: cfg.active_defrag_cycle_max,
        }
    }

    /// The percentage of a tick to spend at this fragmentation (`free` bytes of free
    /// records, `live` bytes of the rest), and the per-class free share a plan needs;
    /// `None` when compaction should not start. `running`: a compaction is under
    /// way (it goes on, at least at the lowest effort, until its chunks are empty).
    pub fn effort(&self, free: u64, live: u64, running: bool) -> Option<(u64, usize)> {
        let frag = (free * 100).checked_div(live).unwrap_or(0);
        if !self.active {
            let start = frag >= AUTO_FRAG_PCT && free >= AUTO_IGNORE_BYTES;
            return (start || running).then_some((AUTO_CPU_PCT, class_share(AUTO_FRAG_PCT)));
        }
        let start = free > self.ignore_bytes && frag > self.lower;
        if !start && !running {
            return None;
        }
        let (lo, hi) = (self.cycle_min.min(self.cycle_max), self.cycle_max.max(self.cycle_min));
        let pct = if frag <= self.lower {
            lo
        } else if frag >= self.upper || self.upper <= self.lower {
            hi
        } else {
            lo + (frag - self.lower) * (hi - lo) / (self.upper - self.lower)
        };
        Some((pct.clamp(lo, hi), class_share(self.lower)))
    }
}

/// A class's free records as a percentage of its records, for a fragmentation (free
/// over live) of `frag_pct`.
fn class_share(frag_pct: u64) -> usize {
    (frag_pct * 100 / (100 + frag_pct)) as usize
}

impl ShardCore {
    /// One tick's compaction of this shard's keyspace (every database with keys), for
    /// at most the share of `period` its settings give.
    pub fn compact_keyspace(&mut self, period: Duration) {
        let settings = Settings::from_config(&self.node.config());
        let stats = &self.node.shards[self.id].defrag;
        let mut db = self.node.lock_db(self.id);
        let dbs: Vec<usize> = (0..db.databases()).filter(|&i| db.database_len(i) > 0).collect();
        let (mut free, mut held, mut running) = (0u64, 0u64, false);
        for &i in &dbs {
            db.select(i);
            let m = db.record_memory();
            free += m.free as u64;
            held += m.held as u64;
            running |= db.compacting();
        }
        let Some((pct, share)) = settings.effort(free, held - free, running) else {
            db.select(0);
            stats.running.store(0, Ordering::Relaxed);
            stats.started_ms.store(0, Ordering::Relaxed);
            return;
        };
        let start = Instant::now();
        let budget = period * pct as u32 / 100;
        let (mut still, mut moved) = (false, 0);
        for &i in &dbs {
            let spent = start.elapsed();
            if spent >= budget {
                still = true;
                break;
            }
            db.select(i);
            let c = db.compact(share, budget - spent);
            moved += c.moved;
            stats.hits.fetch_add(c.moved, Ordering::Relaxed);
            stats.misses.fetch_add(c.kept, Ordering::Relaxed);
            still |= c.running;
        }
        db.select(0);
        drop(db);
        stats.total_us.fetch_add(start.elapsed().as_micros() as u64, Ordering::Relaxed);
        if still {
            stats.running.store(pct, Ordering::Relaxed);
            if stats.started_ms.load(Ordering::Relaxed) == 0 {
                stats.started_ms.store(self.now_ms.max(1), Ordering::Relaxed);
            }
        } else {
            // The chunks a finished compaction gave back go to the kernel now rather
            // than after jemalloc's decay (10 s), as MEMORY PURGE.
            if moved > 0 || stats.started_ms.load(Ordering::Relaxed) != 0 {
                crate::memory::purge();
            }
            stats.running.store(0, Ordering::Relaxed);
            stats.started_ms.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis_defaults(active: bool) -> Settings {
        Settings { active, ignore_bytes: 100 << 20, lower: 10, upper: 100, cycle_min: 1, cycle_max: 25 }
    }

    #[test]
    fn effort_follows_redis_thresholds() {
        let s = redis_defaults(true);
        let mb = 1u64 << 20;
        // Under ignore-bytes or the lower threshold: nothing starts.
        assert_eq!(s.effort(50 * mb, 100 * mb, false), None);
        assert_eq!(s.effort(200 * mb, 10_000 * mb, false), None);
        // Between the thresholds: interpolated, as computeDefragCycles.
        assert_eq!(s.effort(550 * mb, 1000 * mb, false), Some((13, 9)));
        assert_eq!(s.effort(2000 * mb, 1000 * mb, false), Some((25, 9)));
        // A compaction under way goes on at the lowest effort.
        assert_eq!(s.effort(0, 1000 * mb, true), Some((1, 9)));
        // Without activedefrag, the fixed automatic thresholds.
        let a = redis_defaults(false);
        assert_eq!(a.effort(2 * mb, 4 * mb, false), Some((AUTO_CPU_PCT, 20)));
        assert_eq!(a.effort(2 * mb, 10 * mb, false), None);
        assert_eq!(a.effort(mb / 2, mb, false), None);
    }
}
