//! A keyspace's part in eviction (`maxmemory`): sampling candidates and deleting the
//! chosen ones. Which keys to sample, how many, and when to stop is the server's
//! business (it compares candidates of every shard in one pool, as Redis compares its
//! databases); this file only answers "here are some keys and how evictable each is"
//! and "delete this one as an eviction".
//!
//! Sampling is Redis's `dictGetSomeKeys` adapted to the per-slot tables: a random
//! starting point (a slot chosen in proportion to its keys, or any slot for the keys
//! with a TTL), then consecutive occupied buckets from a random bucket of that slot,
//! then the following slots, until enough keys were seen. A `volatile-*` sample takes
//! only keys with a TTL and skips slots that have none (every slot counts them).

use super::{Db, GROUP, SLOTS};

/// What makes a key a better victim: the bigger the score, the sooner it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvictBy {
    /// Seconds since the last access (Redis's `estimateObjectIdleTime`).
    Lru,
    /// 255 minus the decayed LFU counter (Redis's `255 - LFUDecrAndReturn`).
    Lfu,
    /// The nearest expiry first (`ULLONG_MAX - expire`).
    Ttl,
}

impl Db {
    /// Calls `f(key, score)` for up to `n` sampled keys (only keys with a TTL when
    /// `volatile`), without recording an access. Keys whose time is past are sampled
    /// like any other, as Redis's sampling does.
    pub fn eviction_sample(&mut self, volatile: bool, by: EvictBy, n: usize, mut f: impl FnMut(&[u8], u64)) {
        self.settle();
        let population = if volatile { self.sp.expiring } else { self.sp.len };
        if population == 0 || n == 0 {
            return;
        }
        let r = self.random_u64();
        let mut slot = if volatile { (r % SLOTS as u64) as usize } else { self.slot_of_nth(r % self.sp.len as u64) };
        let (clock, decay) = (self.lru_clock, self.lfu_decay_time);
        let (mut found, mut visited) = (0, 0);
        while found < n && visited < SLOTS {
            if self.sp.groups[slot / GROUP] == 0 {
                // A group of slots without keys: skip it whole.
                let next = (slot / GROUP + 1) * GROUP;
                visited += next - slot;
                slot = next % SLOTS;
                continue;
            }
            let s = &self.sp.slots[slot];
            if (volatile && s.expiring > 0) || (!volatile && s.table.len() > 0) {
                let buckets = s.table.buckets();
                let start = (self.random_u64() % buckets as u64) as usize;
                let s = &self.sp.slots[slot];
                for b in (start..buckets).chain(0..start) {
                    if found == n {
                        break;
                    }
                    let Some(i) = s.table.get(b) else { continue };
                    let r = self.sp.arena.get(i);
                    if volatile && r.expire_at() == 0 {
                        continue;
                    }
                    let score = match by {
                        EvictBy::Lru => r.access().idle_seconds(clock),
                        EvictBy::Lfu => 255 - r.access().decayed_counter(clock, decay) as u64,
                        EvictBy::Ttl => u64::MAX - r.expire_at(),
                    };
                    f(r.key(), score);
                    found += 1;
                }
            }
            slot = (slot + 1) % SLOTS;
            visited += 1;
        }
    }

    /// A random key (with a TTL when `volatile`) for the `*-random` policies.
    pub fn eviction_random(&mut self, volatile: bool) -> Option<Vec<u8>> {
        let mut out = None;
        if !volatile {
            self.settle();
            if self.sp.len == 0 {
                return None;
            }
            let nth = self.random_u64() % self.sp.len as u64;
            let slot = self.slot_of_nth(nth);
            let idx = self.random_bucket(slot);
            return Some(self.rec(slot, idx).key().to_vec());
        }
        self.eviction_sample(true, EvictBy::Ttl, 1, |k, _| out = Some(k.to_vec()));
        out
    }

    /// Deletes `key` as an eviction, whether or not its time is past: WATCH and
    /// blocked clients hear of it, and the effects stream gets `DEL key` (or `UNLINK
    /// key` with `lazyfree-lazy-eviction`) as a unit of its own, as Redis's
    /// `propagateDeletion`. Returns whether the key was there.
    pub fn evict(&mut self, key: &[u8], unlink: bool) -> bool {
        self.settle();
        let Some((slot, idx)) = self.find(key) else {
            return false;
        };
        self.remove_at(slot, idx);
        self.touch_removed(key);
        self.shrink_if_sparse(slot);
        let cur = self.cur;
        if let Some(log) = self.effects.as_deref_mut() {
            let name: &[u8] = if unlink { b"UNLINK" } else { b"DEL" };
            log.push_single(cur, [name, key].into_iter());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn filled(n: usize, ttl_every: usize) -> Db {
        let mut db = Db::with_seed(7);
        db.set_clock(1_000_000);
        for i in 0..n {
            let at = if ttl_every > 0 && i % ttl_every == 0 { 2_000_000 + i as u64 } else { 0 };
            db.set(format!("k{i}").as_bytes(), Value::Int(i as i64), at);
        }
        db
    }

    #[test]
    fn volatile_samples_only_keys_with_a_ttl() {
        let mut db = filled(5000, 100);
        for _ in 0..50 {
            let mut seen = Vec::new();
            db.eviction_sample(true, EvictBy::Ttl, 5, |k, s| seen.push((k.to_vec(), s)));
            assert_eq!(seen.len(), 5);
            for (k, score) in seen {
                let i: u64 = std::str::from_utf8(&k[1..]).unwrap().parse().unwrap();
                assert_eq!(i % 100, 0, "key without a TTL sampled");
                assert_eq!(score, u64::MAX - (2_000_000 + i));
            }
        }
        let mut none = filled(100, 0);
        let mut n = 0;
        none.eviction_sample(true, EvictBy::Lru, 5, |_, _| n += 1);
        assert_eq!(n, 0);
        assert_eq!(none.eviction_random(true), None);
        assert!(none.eviction_random(false).is_some());
    }

    #[test]
    fn lru_scores_are_idle_seconds() {
        let mut db = filled(10, 0);
        db.set_clock(1_030_000);
        db.read(b"k3", 1_030_000);
        let mut scores = std::collections::HashMap::new();
        while scores.len() < 10 {
            db.eviction_sample(false, EvictBy::Lru, 10, |k, s| {
                scores.insert(k.to_vec(), s);
            });
        }
        assert_eq!(scores[&b"k3"[..]], 0);
        assert_eq!(scores[&b"k4"[..]], 30);
    }

    #[test]
    fn evict_logs_a_del_and_signals_watchers() {
        let mut db = filled(3, 0);
        db.enable_effects();
        db.watch(b"k1");
        let before = db.watch_version(b"k1");
        assert!(db.evict(b"k1", false));
        assert!(!db.evict(b"k1", false));
        assert!(db.evict(b"k2", true));
        assert_ne!(db.watch_version(b"k1"), before);
        assert_eq!(db.len(), 1);
        let parts = db.effects().unwrap().drain();
        let mut cmds = Vec::new();
        for p in parts {
            if let crate::effects::Part::Unit(u) = p {
                cmds.extend(u.records());
            }
        }
        assert_eq!(cmds, vec![vec![b"DEL".to_vec(), b"k1".to_vec()], vec![b"UNLINK".to_vec(), b"k2".to_vec()]]);
    }
}
