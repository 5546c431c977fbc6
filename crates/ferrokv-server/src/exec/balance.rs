//! Hot slots between cores: the load each shard's keyspace carries, the handoff of a
//! slot from one shard to another of the same node, and the balancer that decides
//! which slots to hand over (`shard-balance`). Design and the rules that keep a
//! connection's order, transactions, blocked clients and the effects stream intact:
//! docs/architecture.md, "Hot slots between cores".
//!
//! # The handoff
//! [`move_slot`] locks both shards' keyspaces (ascending order, as every multi-shard
//! path), checks that nothing walks the slot (a snapshot, a whole-slot migration, a
//! legacy MIGRATING/IMPORTING state), moves the slot's keys, WATCH versions, blocked
//! clients' registrations and tracking entries (`Db::take_slot`/`put_slot`), logs an
//! empty two-shard unit in both effects logs (so the AOF/replication merge orders
//! every earlier record of the slot before every later one), stores the new owner in
//! the node's slot → shard table and bumps `Node::route_epoch`, then unlocks.
//!
//! Everyone who routes by the table re-reads it under the lock they took
//! (`Node::lock_db_of_slot`, `Node::keys_still_on`), so a command never runs against a
//! keyspace that no longer owns its keys; a forwarded command that arrives at the old
//! owner goes on to the new one; a connection with forwarded commands in flight routed
//! before a handoff waits for their replies before routing the next, so its commands
//! still execute in order.

use crate::node::{Node, ShardId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The load carried by one shard's keyspace: time spent running single-shard commands
/// on its keys, by whichever thread ran them (the owning shard, a thread under
/// `shard-hop lock`, a forwarded command's receiver). Written under that keyspace's lock.
#[derive(Default)]
pub struct Load {
    /// Cycles ([`crate::node::cycles`]) since start (INFO shards' `load_usec`).
    pub cycles: AtomicU64,
    /// Per slot, commands since the balancer last looked (only while `shard-balance` is
    /// on). Commands, not their execution time: with direct-to-core routing a request
    /// costs its core the read, parse and reply around the command, several times the
    /// command itself for small keys (docs/benchmarks.md), and that follows the slot.
    slots: OnceLock<Box<[AtomicU64]>>,
}

impl Load {
    /// Adds one command's time; `slot` when the balancer wants it per slot.
    #[inline]
    pub fn add(&self, cycles: u64, slot: Option<u16>) {
        crate::node::add(&self.cycles, cycles);
        if let Some(s) = slot {
            let t = self.slots.get_or_init(|| (0..ferrokv_store::SLOTS).map(|_| AtomicU64::new(0)).collect());
            crate::node::bump(&t[s as usize]);
        }
    }

    /// Takes the per-slot counts since the last call into `into` (added).
    fn take_slots(&self, into: &mut [u64]) {
        if let Some(t) = self.slots.get() {
            for (i, c) in t.iter().enumerate() {
                let v = c.swap(0, Ordering::Relaxed);
                into[i] += v;
            }
        }
    }
}

/// Slots with more keys than this stay where they are when the balancer decides (a
/// handoff stops both shards for ~1.5 µs a key here).
pub const BALANCE_MAX_KEYS: usize = 10_000;

/// The slots this node serves, one flag per slot: its own as a master, its master's as
/// a replica (its cores serve READONLY reads of them, and a promotion keeps them).
pub fn served_slots(view: &ferrokv_cluster::ClusterView) -> Vec<bool> {
    let me = view.me();
    let Some(master) = (if me.is_master() { Some(view.myself) } else { me.master_index }) else {
        return vec![false; ferrokv_store::SLOTS];
    };
    (0..ferrokv_store::SLOTS as u16).map(|s| view.slot_owner_index(s) == Some(master)).collect()
}

/// The core each served slot belongs on: the served slots in ascending order, cut into
/// `cores` runs of near-equal length (the i-th of n on core `i * cores / n`); None for
/// a slot not served. Runs keep CLUSTER SLOTS to one range per core for a node with
/// one range of slots, and a slot gained or lost moves a run's edge by a slot or so.
pub fn spread_targets(served: &[bool], cores: usize) -> Vec<Option<ShardId>> {
    let n = served.iter().filter(|&&s| s).count();
    let mut i = 0;
    served
        .iter()
        .map(|&s| {
            s.then(|| {
                let core = i * cores / n;
                i += 1;
                core
            })
        })
        .collect()
}

/// The slot → shard table a node starts with: its served slots spread over its cores
/// ([`spread_targets`]), the rest in contiguous ranges.
pub fn initial_table(served: &[bool], cores: usize) -> Vec<ShardId> {
    spread_targets(served, cores)
        .into_iter()
        .enumerate()
        .map(|(s, t)| t.unwrap_or_else(|| crate::node::initial_shard_of_slot(s as u16, cores)))
        .collect()
}

/// Where a change of the served set puts slots: the handoffs (slot, core) that place
/// the slots served `now` but not `before` (and those still `owed` a place from an
/// earlier change) on their [`spread_targets`] core, and leave every slot that stays
/// served where `owner` says it is — the balancer's moves and a manual `CLUSTER
/// SLOT-CORE` stand. When `even` (the balancer is off, so nothing else evens the cores
/// out), a core that would then serve more than its share of the spread gives the
/// surplus away — slots the last spread placed before those moved by hand or by the
/// balancer, each to its run's core if that one is short, else to the shortest: a node that lost slots off one core's run (a
/// reshard) is even again after the fewest moves, and a node whose slots came as one
/// change (ADDSLOTS at create, a replica following a master) ends in runs, one range
/// per core.
pub fn placement(
    before: &[bool],
    now: &[bool],
    owed: &[bool],
    owner: impl Fn(u16) -> ShardId,
    cores: usize,
    even: bool,
) -> Vec<(u16, ShardId)> {
    let ideal = spread_targets(now, cores);
    let mut at: Vec<Option<ShardId>> = (0..now.len())
        .map(|s| {
            let t = ideal[s]?;
            Some(if before[s] && !owed[s] { owner(s as u16) } else { t })
        })
        .collect();
    if even {
        let mut surplus = vec![0i64; cores];
        for s in 0..now.len() {
            if let (Some(a), Some(t)) = (at[s], ideal[s]) {
                surplus[a] += 1;
                surplus[t] -= 1;
            }
        }
        // Slots where the last spread put them go first; those placed by hand or by the
        // balancer only if that is not enough.
        let was = spread_targets(before, cores);
        for placed_by_spread in [true, false] {
            for s in 0..now.len() {
                let (Some(a), Some(t)) = (at[s], ideal[s]) else { continue };
                if a == t || surplus[a] <= 0 || (was[s] == Some(a)) != placed_by_spread {
                    continue;
                }
                let to = if surplus[t] < 0 { t } else { (0..cores).min_by_key(|&c| surplus[c]).unwrap_or(t) };
                surplus[a] -= 1;
                surplus[to] += 1;
                at[s] = Some(to);
            }
        }
    }
    at.iter().enumerate().filter_map(|(s, a)| a.filter(|&a| a != owner(s as u16)).map(|a| (s as u16, a))).collect()
}

/// Keeps a node's served slots spread over its cores (shard 0, every tick, cluster
/// mode): when the set of served slots changes (ADDSLOTS, a migration, a failover, a
/// replica following another master), it places the slots that changed hands with
/// [`placement`] and [`move_slot`]; slots that stay served stay where they are (moved
/// only to even the cores out while the balancer is off).
#[derive(Default)]
pub struct Spreader {
    view_version: u64,
    served: Vec<bool>,
    /// Handoffs still owed: the tick's time ran out, or a handoff was refused (a
    /// migration, a snapshot or a full sync in the way); tried again next tick.
    plan: Vec<(u16, ShardId)>,
}

impl Spreader {
    /// Moves slots of the plan for up to `budget` (shard 0's tick); a move refused now is
    /// tried again next tick.
    pub fn tick(&mut self, node: &Node, budget: Duration) {
        let Some(c) = node.cluster.as_ref() else { return };
        if node.shard_count() < 2 {
            return;
        }
        // Handoffs take shard 0's time (and both shards' locks), and so does planning
        // them; during a migration's write pause that time is the pause's.
        if node.slot_migration.in_pause() {
            return;
        }
        let v = c.version();
        if v != self.view_version {
            self.view_version = v;
            let served = served_slots(&c.view());
            if served != self.served {
                let before =
                    if self.served.is_empty() { vec![false; served.len()] } else { std::mem::take(&mut self.served) };
                let mut owed = vec![false; served.len()];
                for &(s, _) in &self.plan {
                    owed[s as usize] = true;
                }
                let even = !node.config().shard_balance;
                self.plan = placement(&before, &served, &owed, |s| node.shard_of_slot(s), node.shard_count(), even);
                self.served = served;
            }
        }
        if self.plan.is_empty() {
            return;
        }
        let start = Instant::now();
        let mut left = Vec::new();
        for (i, &(slot, to)) in self.plan.iter().enumerate() {
            if start.elapsed() >= budget {
                left.extend_from_slice(&self.plan[i..]);
                break;
            }
            if move_slot(node, slot, to, None).is_err() {
                left.push((slot, to));
            }
        }
        self.plan = left;
    }
}

/// Why [`move_slot`] did not move a slot.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// Held off by something that ends by itself: another handoff, a replica loading a
    /// full sync, a snapshot being written. A manual `CLUSTER SLOT-CORE` waits it out.
    Busy(&'static str),
    /// Not now or not with these arguments: the client's error, as Redis words it.
    Error(String),
}

impl Refused {
    /// The error reply.
    pub fn message(&self) -> String {
        match self {
            Refused::Busy(why) => format!("ERR {why}"),
            Refused::Error(e) => e.clone(),
        }
    }
}

/// Hands `slot` to shard `to`. Returns how many keys moved, or why it could not
/// (`max_keys`: refuse a slot holding more keys in database 0).
pub fn move_slot(node: &Node, slot: u16, to: ShardId, max_keys: Option<usize>) -> Result<usize, Refused> {
    if to >= node.shard_count() {
        return Err(Refused::Error(format!("ERR Invalid core {to}: the node has {} cores", node.shard_count())));
    }
    if node.slot_migration.blocks_handoff(slot) {
        return Err(Refused::Error("ERR a slot migration is in progress".into()));
    }
    if let Some(c) = node.cluster.as_ref() {
        let view = c.view();
        if view.migrating_to(slot).is_some() || view.importing_from(slot).is_some() {
            return Err(Refused::Error("ERR the slot is migrating or importing".into()));
        }
    }
    // One at a time; a replica's full sync holds it while it loads (its loader routes
    // records by the table without the keyspace locks). Never waited for: the balancer
    // and the spreader run on shard 0, which serves clients and the bus; a manual
    // CLUSTER SLOT-CORE retries from its shard's tick (`cluster::retry_slot_core`).
    let _one_at_a_time = match node.handoff_lock.try_lock() {
        Ok(g) => g,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => {
            return Err(Refused::Busy("another slot handoff or a full sync is in progress"))
        }
    };
    loop {
        let from = node.shard_of_slot(slot);
        if from == to {
            return Ok(0);
        }
        let mut pair = [from, to];
        pair.sort_unstable();
        let mut guards = node.lock_dbs(&pair);
        if node.shard_of_slot(slot) != from {
            continue; // moved meanwhile: decide again
        }
        let (lo, hi) = guards.split_at_mut(1);
        let (src, dst) = if from < to { (&mut lo[0].1, &mut hi[0].1) } else { (&mut hi[0].1, &mut lo[0].1) };
        if src.snapshot_active() || dst.snapshot_active() {
            return Err(Refused::Busy("a snapshot is being written"));
        }
        if let Some(why) = src.handoff_blocker().or(dst.handoff_blocker()) {
            return Err(Refused::Error(format!("ERR {why}")));
        }
        if max_keys.is_some_and(|m| src.slot_len(slot) > m) {
            return Err(Refused::Error("ERR the slot holds too many keys".into()));
        }
        let h = src.take_slot(slot);
        let keys = h.keys();
        dst.put_slot(h);
        // Blocked clients' registrations follow their keys (waiters after keyspaces,
        // in ascending order, as everywhere).
        {
            let mut w0 = node.lock_waiters(pair[0]);
            let mut w1 = node.lock_waiters(pair[1]);
            let (wsrc, wdst) = if from < to { (&mut *w0, &mut *w1) } else { (&mut *w1, &mut *w0) };
            wdst.put_slot(wsrc.take_slot(slot));
        }
        order_effects(node, &mut guards);
        node.set_shard_of_slot(slot, to);
        for (s, db) in guards.iter() {
            node.shards[*s].publish(db);
        }
        crate::node::bump(&node.shards[to].handoffs_in);
        crate::node::bump(&node.shards[from].handoffs_out);
        return Ok(keys);
    }
}

/// An empty unit holding both shards (see the module docs): the merge of the shards'
/// effects logs puts what each logged before it ahead of what either logs after.
fn order_effects(node: &Node, guards: &mut [(ShardId, crate::node::DbGuard<'_>)]) {
    use ferrokv_store::effects::{MultiTag, Part, Unit};
    if !guards.iter().all(|g| g.1.effects_on()) {
        return;
    }
    let id = node.next_unit_id.fetch_add(1, Ordering::Relaxed);
    let shards: Box<[u16]> = guards.iter().map(|g| g.0 as u16).collect();
    let mut first = true;
    for (_, db) in guards.iter_mut() {
        let Some(log) = db.effects() else { continue };
        if std::mem::take(&mut first) {
            let mut u = Unit::new(&[], Some(MultiTag { id, shards: shards.clone() }));
            u.atomic = true;
            log.push(Part::Unit(u));
        } else {
            log.push(Part::Joined { id });
        }
    }
}

/// The balancer's memory between rounds (kept by shard 0).
#[derive(Default)]
pub struct Balancer {
    /// Keeps the served slots spread over the cores (cluster mode, always on).
    pub spread: Spreader,
    last: Option<std::time::Instant>,
    window: Vec<u64>,
    /// Slots moved since start.
    pub moved: u64,
}

/// How many slots one round may move at most (each holds two keyspace locks).
const MOVES_PER_ROUND: usize = 64;

impl Balancer {
    /// One round, every `interval_ms`: measures each shard's keyspace load (commands)
    /// over the window and hands slots from the most to the least loaded shard when the gap
    /// exceeds `threshold_pct` of the most loaded one's. Returns the slots moved.
    pub fn round(&mut self, node: &Node, interval_ms: u64, threshold_pct: u64) -> usize {
        let now = std::time::Instant::now();
        let Some(last) = self.last else {
            self.last = Some(now);
            self.collect(node);
            return 0;
        };
        let elapsed = now.duration_since(last);
        if elapsed.as_millis() < interval_ms as u128 {
            return 0;
        }
        self.last = Some(now);
        self.collect(node);
        let n = node.shard_count();
        let mut per_shard = vec![0u64; n];
        for (slot, &l) in self.window.iter().enumerate() {
            per_shard[node.shard_of_slot(slot as u16)] += l;
        }
        let Some((hot, &hot_load)) = per_shard.iter().enumerate().max_by_key(|(_, l)| **l) else { return 0 };
        let Some((cold, &cold_load)) = per_shard.iter().enumerate().min_by_key(|(_, l)| **l) else { return 0 };
        // Below 1,000 commands a second there is nothing worth moving.
        let busy_floor = elapsed.as_millis() as u64;
        if hot == cold || hot_load < busy_floor {
            return 0;
        }
        let gap = hot_load - cold_load;
        if gap * 100 <= hot_load * threshold_pct {
            return 0;
        }
        let plan = plan_moves(&self.window, |s| node.shard_of_slot(s) == hot, gap, MOVES_PER_ROUND);
        let mut moved = 0;
        for slot in plan {
            if move_slot(node, slot, cold, Some(BALANCE_MAX_KEYS)).is_ok() {
                moved += 1;
            }
        }
        self.moved += moved as u64;
        moved
    }

    fn collect(&mut self, node: &Node) {
        self.window.clear();
        self.window.resize(ferrokv_store::SLOTS, 0);
        for s in node.shards.iter() {
            s.load.take_slots(&mut self.window);
        }
    }
}

/// Which slots of the hot shard (`owned`) to hand over so that its load and the cold
/// one's, `gap` apart, come closest: the hottest first, each only if it is at most half
/// of what is left of the gap (moving a slot of load L narrows the gap by 2L; a slot
/// hotter than half the gap would only turn the imbalance around — one hot key stays
/// on one core, whichever it is).
pub fn plan_moves(load: &[u64], owned: impl Fn(u16) -> bool, gap: u64, max: usize) -> Vec<u16> {
    let mut cands: Vec<(u64, u16)> =
        (0..load.len() as u16).filter(|&s| load[s as usize] > 0 && owned(s)).map(|s| (load[s as usize], s)).collect();
    cands.sort_unstable_by(|a, b| b.cmp(a));
    let mut left = gap;
    let mut out = Vec::new();
    for (l, s) in cands {
        if out.len() == max {
            break;
        }
        if 2 * l <= left {
            out.push(s);
            left -= 2 * l;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{placement, plan_moves, spread_targets};

    /// The table after applying `moves` to `table`.
    fn apply(table: &[usize], moves: &[(u16, usize)]) -> Vec<usize> {
        let mut t = table.to_vec();
        for &(s, c) in moves {
            t[s as usize] = c;
        }
        t
    }

    fn served(range: std::ops::Range<usize>) -> Vec<bool> {
        (0..16384).map(|s| range.contains(&s)).collect()
    }

    #[test]
    fn placement_places_new_slots_and_keeps_the_rest() {
        let none = vec![false; 16384];
        let halves: Vec<usize> = (0..16384).map(|s| s * 2 / 16384).collect();
        // A node given 0..=5460 at once (ADDSLOTS at create): every slot on its run.
        let now = served(0..5461);
        for even in [false, true] {
            let moves = placement(&none, &now, &none, |s| halves[s as usize], 2, even);
            let t = apply(&halves, &moves);
            let ideal = spread_targets(&now, 2);
            assert!((0..5461).all(|s| Some(t[s]) == ideal[s]), "even {even}");
            assert_eq!(moves.len(), 2730, "only the slots off their run move (2731..=5460)");
        }
        // Spread; the slots it does not serve where they start (halves).
        let table: Vec<usize> = (0..16384)
            .map(|s| {
                if s < 2731 {
                    0
                } else if s < 5461 {
                    1
                } else {
                    halves[s]
                }
            })
            .collect();

        // The balancer moved 100 and 200 to core 1. With the balancer on (no evening), a
        // slot gained is placed on its run and nothing else moves, and slots lost move
        // nothing.
        let balanced = apply(&table, &[(100, 1), (200, 1)]);
        let mut gained = now.clone();
        gained[6000] = true;
        assert_eq!(placement(&now, &gained, &none, |s| balanced[s as usize], 2, false), vec![(6000, 1)]);
        let lost = served(1000..5461);
        assert!(placement(&now, &lost, &none, |s| balanced[s as usize], 2, false).is_empty());

        // With the balancer off, a node that lost the start of its range (a reshard)
        // evens out with the fewest moves: the 500 slots core 1 has over its share, and
        // the result is the runs of the slots it still serves.
        let moves = placement(&now, &lost, &none, |s| table[s as usize], 2, true);
        assert_eq!(moves.len(), 500);
        assert!(moves.iter().all(|&(s, c)| c == 0 && (2731..3231).contains(&s)), "{moves:?}");
        let t = apply(&table, &moves);
        let ideal = spread_targets(&lost, 2);
        assert!((1000..5461).all(|s| Some(t[s]) == ideal[s]));
        // A node that gained a range (the other side of that reshard) too.
        let big = served(10923..16384);
        let t0: Vec<usize> = apply(&halves, &placement(&none, &big, &none, |s| halves[s as usize], 2, true));
        let mut grown = big.clone();
        grown[..2000].fill(true);
        let moves = placement(&big, &grown, &none, |s| t0[s as usize], 2, true);
        let t = apply(&t0, &moves);
        let ideal = spread_targets(&grown, 2);
        assert!((0..16384).filter(|&s| grown[s]).all(|s| Some(t[s]) == ideal[s]));
        // The 2000 new slots start on core 0 (halves), their run's core: only the 1000
        // slots that make room for them move.
        assert_eq!(moves.len(), 1000);
        assert!(moves.iter().all(|&(s, c)| c == 1 && (12654..13654).contains(&s)), "{moves:?}");

        // Even with the balancer off, slots moved by hand stay while slots the spread
        // placed can even the cores out: 100 on core 1 and 3000 on core 0 stay...
        let one_off = apply(&table, &[(100, 1), (3000, 0)]);
        let mut two = now.clone();
        two[6000] = true;
        two[6001] = true;
        let moves = placement(&now, &two, &none, |s| one_off[s as usize], 2, true);
        assert!(!moves.iter().any(|&(s, _)| s == 100 || s == 3000), "{moves:?}");
        assert_eq!(moves.len(), 3, "the two new slots and one at the runs' edge: {moves:?}");
        // ...and a slot still owed a place from an earlier change is placed.
        let mut owed = none.clone();
        owed[100] = true;
        let moves = placement(&now, &two, &owed, |s| one_off[s as usize], 2, true);
        assert!(moves.contains(&(100, 0)), "{moves:?}");
    }

    #[test]
    fn served_slots_are_cut_into_even_runs_per_core() {
        // A node serving 0..=5460 of 16384 (what redis-cli gives the first of three).
        let mut served = vec![false; 16384];
        served[..5461].fill(true);
        let t = spread_targets(&served, 2);
        assert!(t[5461..].iter().all(|c| c.is_none()));
        assert_eq!(t[..5461].iter().filter(|c| **c == Some(0)).count(), 2731);
        assert_eq!(t[..5461].iter().filter(|c| **c == Some(1)).count(), 2730);
        // One run per core, in slot order.
        assert!(t[..2731].iter().all(|c| *c == Some(0)) && t[2731..5461].iter().all(|c| *c == Some(1)));
        // Scattered slots, three cores: counts differ by at most one.
        let served: Vec<bool> = (0..16384).map(|s| s % 7 == 3 || s % 11 == 0).collect();
        let t = spread_targets(&served, 3);
        let counts: Vec<usize> = (0..3).map(|c| t.iter().filter(|x| **x == Some(c)).count()).collect();
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "{counts:?}");
        assert_eq!(counts.iter().sum::<usize>(), served.iter().filter(|s| **s).count());
        // Nothing served: nothing to place.
        assert!(spread_targets(&[false; 16384], 2).iter().all(|c| c.is_none()));
    }

    #[test]
    fn the_plan_narrows_the_gap_and_never_turns_it_around() {
        // Shard A owns slots 0..4 with loads 50, 30, 10, 10; B owns 4 with 0. A carries
        // 100, B 0: moving the 50 evens them out exactly.
        assert_eq!(plan_moves(&[50, 30, 10, 10, 0], |s| s < 4, 100, 64), vec![0]);
        // 60, 30, 10 against 0: the 60 would leave 40 / 60; 30 and 10 leave 60 / 40.
        assert_eq!(plan_moves(&[60, 30, 10, 0], |s| s < 3, 100, 64), vec![1, 2]);
        // One slot hotter than half the gap is never moved.
        assert!(plan_moves(&[90, 0], |s| s == 0, 90, 64).is_empty());
        // The per-round limit holds.
        assert_eq!(plan_moves(&[1; 100], |_| true, 1000, 8).len(), 8);
    }
}
