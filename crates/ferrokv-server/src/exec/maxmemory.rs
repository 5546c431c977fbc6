//! `maxmemory`: Redis's `performEvictions` for a node of several shards.
//!
//! # One limit for the node
//! The limit is on the process's live heap bytes ([`crate::memory::allocated`], the sum
//! of the per-thread counters) less the replication buffer beyond the backlog (what
//! replicas have yet to read, which Redis does not count either) and the keyspaces'
//! record bytes no key uses ([`not_counted`]), never on a shard's share: a node whose keys all live on
//! one shard starts evicting at `maxmemory`, not at `maxmemory / shards`. Summing the
//! counters is a few dozen loads, so a shard does it once per event-loop iteration
//! ([`Limit::resync`]) and, per command, adds what its own thread allocated or freed
//! since ([`Limit::used`]: one thread-local load). What other threads allocated during
//! the current iteration shows up at the next sum; when the estimate says "over", the
//! shard sums again before it evicts or refuses anything, so a refusal is never based on
//! a stale figure.
//!
//! # Who evicts what
//! Before every command the client's home shard checks the limit (as Redis's
//! `processCommand` calls `performEvictions`); if the node is over, that shard frees
//! memory until it is under, whichever shard's keys that takes. Candidates come from one
//! pool of 16 (Redis's `EVPOOL_SIZE`) filled from every shard in turn, `maxmemory-samples`
//! keys per shard per round, as Redis fills it from every database: the key evicted is the
//! best of the pool, whatever shard it lives on. Each shard's keyspace lock is taken alone
//! (to sample, then to delete one key), never two at once and never while the evicting
//! thread holds its own, so eviction adds no lock-order rule.
//!
//! The approximation: a shard's sample is `maxmemory-samples` keys of that shard, so a
//! shard holding few keys is sampled as often as one holding many; its keys are then
//! over-represented in the pool (a key of a small shard is compared against fewer peers).
//! The pool still orders candidates by the same score across shards, so an evicted key
//! is at least as evictable as every other key sampled with it; what it can miss is a
//! colder key of a big shard that was not sampled, the same kind of miss Redis's sampling
//! makes within one dictionary. With `samples` 5 and two shards, a round compares 10 keys
//! against the 16 best kept from earlier rounds.
//!
//! # What an eviction does
//! [`ferrokv_store::Db::evict`]: the key is deleted, WATCH and blocked clients hear of it,
//! and the shard's effects stream gets `DEL key` (`UNLINK key` with
//! `lazyfree-lazy-eviction yes`) as a unit of its own, so the AOF and replicas see it as
//! Redis's `propagateDeletion` sends it. The memory it freed is what the evicting
//! thread's counter dropped by (frees are counted on the thread that frees).
//!
//! # Time
//! As Redis, at most `maxmemory-eviction-tenacity`'s time per call (500 µs at the default
//! 10), checked every 16 keys; a call that ran out of time counts as success (Redis's
//! `EVICT_RUNNING`) and the shard's tick goes on evicting until the node is under.

use crate::memory;
use crate::node::{Node, ShardId};
use ferrokv_store::db::EvictBy;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// `maxmemory-policy`, in Redis's order of `maxmemory_policy_enum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    NoEviction,
}

/// The names CONFIG takes, in [`Policy`] order.
pub const POLICY_NAMES: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
];

impl Policy {
    pub fn parse(name: &str) -> Policy {
        const ALL: [Policy; 8] = [
            Policy::VolatileLru,
            Policy::VolatileLfu,
            Policy::VolatileRandom,
            Policy::VolatileTtl,
            Policy::AllkeysLru,
            Policy::AllkeysLfu,
            Policy::AllkeysRandom,
            Policy::NoEviction,
        ];
        POLICY_NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)).map_or(Policy::NoEviction, |i| ALL[i])
    }

    pub fn volatile(self) -> bool {
        matches!(self, Policy::VolatileLru | Policy::VolatileLfu | Policy::VolatileRandom | Policy::VolatileTtl)
    }

    /// An LFU policy: keys keep a frequency counter (OBJECT FREQ) instead of an idle time.
    pub fn lfu(self) -> bool {
        matches!(self, Policy::VolatileLfu | Policy::AllkeysLfu)
    }

    /// LRU or LFU: Redis then stops sharing small integers between keys
    /// (`MAXMEMORY_FLAG_NO_SHARED_INTEGERS`), since each key needs its own access data.
    pub fn needs_access_data(self) -> bool {
        matches!(self, Policy::VolatileLru | Policy::VolatileLfu | Policy::AllkeysLru | Policy::AllkeysLfu)
    }

    fn score(self) -> Option<EvictBy> {
        match self {
            Policy::VolatileLru | Policy::AllkeysLru => Some(EvictBy::Lru),
            Policy::VolatileLfu | Policy::AllkeysLfu => Some(EvictBy::Lfu),
            Policy::VolatileTtl => Some(EvictBy::Ttl),
            _ => None,
        }
    }
}

/// Redis's `EVPOOL_SIZE`.
const POOL: usize = 16;

struct Candidate {
    score: u64,
    /// Where the key is: a shard, and a database (0 unless several are used).
    shard: ShardId,
    db: usize,
    key: Vec<u8>,
}

/// One shard's view of the limit: the settings and the running estimate of used memory.
pub struct Limit {
    pub maxmemory: u64,
    pub policy: Policy,
    pub samples: usize,
    pub tenacity: u64,
    pub lazy: bool,
    pub replica_ignore: bool,
    /// The node's used memory at the last [`Limit::resync`]...
    base: u64,
    /// ...and this thread's counter then.
    mark: i64,
    /// The shard this is the view of.
    pub shard: ShardId,
    /// What [`Limit::events_in_flight`] added since the last sum (the sum took out
    /// what every shard had published before).
    in_flight: i64,
    /// Candidates sorted by ascending score: the best victim is last.
    pool: Vec<Candidate>,
    /// The next shard a `*-random` policy takes a key from (Redis's `next_db`).
    next_shard: usize,
}

impl Default for Limit {
    fn default() -> Self {
        Limit {
            maxmemory: 0,
            policy: Policy::NoEviction,
            samples: 5,
            tenacity: 10,
            lazy: false,
            replica_ignore: true,
            base: 0,
            mark: 0,
            shard: 0,
            in_flight: 0,
            pool: Vec::new(),
            next_shard: 0,
        }
    }
}

impl Limit {
    /// Shard `shard`'s view.
    pub fn of_shard(shard: ShardId) -> Limit {
        Limit { shard, ..Default::default() }
    }
}

/// Redis's `evictionTimeLimitUs`: 0..500 µs linearly up to tenacity 10, then 15% more
/// per step, unlimited at 100.
pub fn time_limit(tenacity: u64) -> Duration {
    match tenacity {
        0..=10 => Duration::from_micros(50 * tenacity),
        11..=99 => Duration::from_micros((500.0 * 1.15f64.powi(tenacity as i32 - 10)) as u64),
        _ => Duration::MAX,
    }
}

/// What eviction's caller learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Under the limit (or freed enough, or ran out of time while freeing).
    Ok,
    /// Over the limit and nothing (more) can be freed: denyoom commands get -OOM.
    Fail,
}

impl Limit {
    /// Used memory as this shard sees it now: the last sum plus this thread's change
    /// since. A thread-local load, nothing shared.
    #[inline]
    pub fn used(&self) -> u64 {
        (self.base as i64 + (memory::thread_delta() - self.mark) - self.in_flight).max(0) as u64
    }

    /// Sums every thread's counter again (once per event-loop iteration), less what
    /// the limit does not count: the replication buffer beyond the backlog. What this
    /// thread's `evicted` events took in the last iteration counts again from here.
    pub fn resync(&mut self, node: &Node) {
        node.shards[self.shard].clients.messages_in_flight.store(0, Ordering::Relaxed);
        self.sum(node);
    }

    fn sum(&mut self, node: &Node) {
        let in_flight: u64 = node.shards.iter().map(|s| s.clients.messages_in_flight.load(Ordering::Relaxed)).sum();
        let not_counted = not_counted(node) + in_flight;
        self.base = memory::allocated().saturating_sub(not_counted);
        self.mark = memory::thread_delta();
        self.in_flight = 0;
    }

    /// `bytes` were allocated this iteration for pub/sub messages on their way to
    /// subscribers (`evicted` events as eviction publishes them, any message as it is
    /// written to a subscriber's output): not counted for the rest of the iteration.
    /// Redis writes a message into the subscriber's reply buffer, allocated with the
    /// client, so it costs no memory until that buffer is full; counted at once here,
    /// each key evicted would make its event's bytes to evict again (an event takes
    /// more than a small key), and a pipeline of writes evicted the whole keyspace.
    /// From the next iteration's sum on, what the subscribers have not been sent yet
    /// counts, as Redis counts the reply blocks past that buffer.
    ///
    /// Node-wide: each shard publishes what it has in flight, and every shard's sum
    /// leaves out all of it (a subscriber's messages are written by its own shard,
    /// whoever published them).
    pub fn events_in_flight(&mut self, node: &Node, bytes: i64) {
        if bytes > 0 {
            self.in_flight += bytes;
            node.shards[self.shard].clients.messages_in_flight.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Whether the estimate is over the limit (a branch and a load per command).
    #[inline]
    pub fn maybe_over(&self) -> bool {
        self.maxmemory != 0 && self.used() > self.maxmemory
    }

    /// Redis's `performEvictions`: frees keys while the node is over the limit.
    /// `exempt`: this node does not evict now (a replica with `replica-ignore-maxmemory`,
    /// writes paused), which counts as success, as Redis's `isSafeToPerformEvictions`.
    /// `notes` receives each evicted key with its database, for `evicted` events.
    pub fn perform(&mut self, node: &Node, exempt: bool, mut notes: Option<&mut Vec<(usize, Vec<u8>)>>) -> State {
        if !self.maybe_over() || exempt {
            return State::Ok;
        }
        // Over by the estimate: sum every thread again before acting on it.
        self.sum(node);
        let used = self.used();
        if used <= self.maxmemory {
            return State::Ok;
        }
        if self.policy == Policy::NoEviction {
            return State::Fail;
        }
        let to_free = (used - self.maxmemory) as i64;
        let (start, limit) = (Instant::now(), time_limit(self.tenacity));
        let (mut freed, mut keys) = (0i64, 0u64);
        let mut state = State::Ok;
        while freed < to_free {
            let Some((shard, dbi, key)) = self.pick(node) else {
                // Nothing left to evict (a volatile policy with no keys with a TTL).
                state = State::Fail;
                break;
            };
            let before = memory::thread_delta();
            let mut db = node.lock_db(shard);
            let slack = db.record_slack_bytes() as i64;
            db.select(dbi);
            if !db.evict(&key, self.lazy) {
                continue;
            }
            // Its record went back to the arena (see `not_counted`).
            freed += db.record_slack_bytes() as i64 - slack;
            node.shards[shard].publish(&db);
            drop(db);
            // What the deletion freed, and nothing else (Redis's `delta` around
            // `dbSyncDelete`): not what noting the key for its event takes.
            freed += before - memory::thread_delta();
            if let Some(n) = notes.as_deref_mut() {
                n.push((dbi, key));
            }
            keys += 1;
            if keys % 16 == 0 && start.elapsed() > limit {
                break;
            }
        }
        if keys > 0 {
            node.evicted_keys.fetch_add(keys, Ordering::Relaxed);
        }
        if state == State::Fail && self.used() <= self.maxmemory {
            state = State::Ok;
        }
        state
    }

    /// The next victim: the best of the pool (refilled from every shard), or a random
    /// key of the next shard that has one for the `*-random` policies.
    /// Every database of every shard is sampled, as Redis samples each of its
    /// databases.
    fn pick(&mut self, node: &Node) -> Option<(ShardId, usize, Vec<u8>)> {
        let n = node.shard_count();
        let volatile = self.policy.volatile();
        let Some(by) = self.policy.score() else {
            for _ in 0..n {
                let s = self.next_shard % n;
                self.next_shard = (s + 1) % n;
                let mut db = node.lock_db(s);
                let mut found = None;
                db.each_database(|db| {
                    if found.is_none() {
                        found = db.eviction_random(volatile).map(|k| (s, db.selected(), k));
                    }
                });
                if found.is_some() {
                    return found;
                }
            }
            return None;
        };
        let mut population = 0;
        for s in 0..n {
            let mut db = node.lock_db(s);
            let (pool, samples) = (&mut self.pool, self.samples);
            db.each_database(|db| {
                let count = if volatile { db.expire_keys_count() } else { db.len() };
                population += count;
                if count > 0 {
                    let d = db.selected();
                    db.eviction_sample(volatile, by, samples, |key, score| pool_insert(pool, score, s, d, key));
                }
            });
        }
        if population == 0 {
            self.pool.clear();
            return None;
        }
        // The best candidate; one that is gone by now fails `evict` and the caller asks again.
        self.pool.pop().map(|c| (c.shard, c.db, c.key))
    }
}

/// Redis's `evictionPoolPopulate` insertion: keep the pool sorted by ascending score,
/// at most [`POOL`] entries; a candidate worse than every kept one is dropped when full.
fn pool_insert(pool: &mut Vec<Candidate>, score: u64, shard: ShardId, db: usize, key: &[u8]) {
    if pool.iter().any(|c| c.shard == shard && c.db == db && c.key == key) {
        return;
    }
    if pool.len() == POOL {
        if score <= pool[0].score {
            return;
        }
        pool.remove(0);
    }
    let at = pool.partition_point(|c| c.score <= score);
    pool.insert(at, Candidate { score, shard, db, key: key.to_vec() });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_round_trip() {
        for name in POLICY_NAMES {
            let p = Policy::parse(name);
            assert_eq!(POLICY_NAMES[p as usize], *name);
        }
        assert!(Policy::parse("volatile-ttl").volatile());
        assert!(!Policy::parse("allkeys-lfu").volatile());
        assert!(Policy::parse("allkeys-lfu").lfu());
        assert!(!Policy::parse("allkeys-random").needs_access_data());
    }

    #[test]
    fn tenacity_as_redis() {
        assert_eq!(time_limit(0), Duration::ZERO);
        assert_eq!(time_limit(10), Duration::from_micros(500));
        assert_eq!(time_limit(11), Duration::from_micros(575));
        assert_eq!(time_limit(100), Duration::MAX);
    }

    #[test]
    fn pool_keeps_the_best_sixteen_in_order() {
        let mut pool = Vec::new();
        for i in 0..40u64 {
            let score = (i * 7919) % 41;
            pool_insert(&mut pool, score, 0, 0, format!("k{i}").as_bytes());
        }
        pool_insert(&mut pool, 40, 0, 0, b"dup");
        pool_insert(&mut pool, 40, 0, 0, b"dup");
        assert_eq!(pool.len(), POOL);
        assert!(pool.windows(2).all(|w| w[0].score <= w[1].score));
        assert_eq!(pool.iter().filter(|c| c.key == b"dup").count(), 1);
        assert_eq!(pool.last().map(|c| c.score), Some(40));
    }
}

/// Whether the node is over `maxmemory` now, by an exact sum: what a script sees as
/// Redis's `pre_command_oom_state` (its client's shard has just evicted what it could);
/// false where the node does not evict (a replica ignoring maxmemory, writes paused).
pub fn node_over(node: &Node) -> bool {
    let (max, ignore) = {
        let c = node.config();
        (c.maxmemory, c.replica_ignore_maxmemory)
    };
    if max == 0
        || (ignore && node.repl.is_replica.load(Ordering::Relaxed))
        || node.repl.writes_paused(crate::node::unix_ms())
    {
        return false;
    }
    memory::allocated().saturating_sub(not_counted(node)) > max
}

/// What `maxmemory` leaves out of the allocated bytes (INFO's
/// `mem_not_counted_for_evict`): the replication buffer beyond the backlog, as Redis,
/// and the keyspaces' record chunk bytes no key uses. A deleted key's record goes back
/// to its arena, not to the allocator, and the next records reuse it; Redis's keys go
/// back to jemalloc, whose free memory is not in `used_memory` either. Counted, an
/// eviction would free nothing the limit sees, and each call went on evicting until its
/// time ran out (thousands of keys in one pipeline).
pub fn not_counted(node: &Node) -> u64 {
    let slack: u64 = node.shards.iter().map(|s| s.record_slack.load(Ordering::Relaxed)).sum();
    crate::repl::not_counted_bytes(node) + slack
}
