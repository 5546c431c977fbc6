//! Whole-slot migration (`ferrokv-server`'s `cluster/slot_migration.rs`) in the seeded
//! simulator, interleaved with crashes, restarts, delays, partitions and failovers.
//!
//! Every node runs the real bus state machine (`ClusterState`: the IMPORTING marks, the
//! claim with its epoch bump, the handoff, gossip, failure detection, elections). The
//! data plane and the task are a model of what the server does, step by step as
//! `run_task` and `sync_command` do them:
//!
//! - a node's data is, per moving slot, the set of write ids it holds; it survives a
//!   crash (the nodes run with an AOF), and a node that restarts drops the data of slots
//!   it does not own, as cluster-mode loading does;
//! - a client write to a slot goes to the owner in the view of a random live node (a
//!   client following MOVED) and is acknowledged when that node is a master owning the
//!   slot in its own view and writes are not held there (the migration's pause, a manual
//!   failover's pause); it reaches the node's live replicas at once (acknowledged
//!   writes are taken as acknowledged with WAIT: a master cut off from a live replica
//!   of its own gets none), and a replica's data is its master's;
//! - the target's task: IMPORTING, the snapshot and deltas (copies of the source's data:
//!   a delta sends keys' current values), PAUSE, the last delta, the claim only within
//!   half the write-pause window, HANDOFF, END; a failure before the claim undoes (the
//!   target deletes what it restored, marks the slots stable, tells the source ABORT)
//!   and the task tries again a second later, from the node that then serves the slots
//!   in the target's view (Redis 8.4's retries; a failover of the source makes its
//!   replica the next attempt's source), unless the target is no longer a master or the
//!   slots no longer have one other owner; every call to the source needs the source
//!   alive and reachable, and the source refuses a step for slots it no longer owns;
//! - a source lifts its pause on END, ABORT, once its view shows the slots owned
//!   elsewhere, or after the write-pause timeout; a restart forgets it. An export an
//!   earlier attempt left on another source (its ABORT did not reach it) lives on there
//!   until one of those.
//!
//! The checks, after the faults heal and the cluster settles: every node agrees on one
//! owner per slot (and, at every step, no two nodes claim a slot with one config epoch);
//! the owner holds every acknowledged write of the slot, except in the one window the
//! module documents (the target claimed, its claim did not reach the source before the
//! source's pause ran out, and the source took writes after that).

mod sim;

use std::collections::{BTreeMap, BTreeSet};

use ferrokv_cluster::{Command, SlotMigrationOp};
use sim::*;

/// The slots that move, from master 0 to master 1.
const MOVING: [u16; 4] = [0, 1, 2, 3];
/// `cluster-slot-migration-write-pause-timeout`, as the server's default.
const PAUSE_TIMEOUT: u64 = 10_000;
/// Simulated time between two model steps.
const TICK: u64 = 5;

type Data = BTreeMap<u16, BTreeSet<u64>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Importing,
    Snapshot,
    Delta(u8),
    Pause,
    FinalDelta,
    Claim,
    Handoff,
    End,
    Done,
}

/// The source's export, as `Export` in the server.
struct Export {
    paused_at: Option<u64>,
}

struct Model {
    data: Vec<Data>,
    /// Write ids acknowledged to clients, per slot, and who acknowledged them.
    acked: BTreeMap<u16, Vec<(u64, usize)>>,
    next_write: u64,
    /// The exports the task's attempts opened, by source node.
    exports: BTreeMap<usize, Export>,
    src: usize,
    dst: usize,
    step: Step,
    /// When the task may take its next step.
    next_at: u64,
    /// When the final delta's PAUSE was sent (for the half-window rule).
    pause_sent: u64,
    claimed: bool,
    failed: Option<String>,
    /// The documented window happened: the source's pause ran out after the claim.
    window: bool,
    /// Writes the source acknowledged after its pause ran out while the target held a claim.
    window_writes: BTreeSet<u64>,
    /// Writes acknowledged by a master whose claim on the slot was older than another
    /// live master's (a restarted master serving from its nodes.conf until gossip
    /// corrects it): Redis Cluster loses those whatever migrations do.
    stale_writes: BTreeSet<u64>,
    task_alive: bool,
    /// When a failed attempt is tried again.
    retry_at: Option<u64>,
    retries: u32,
}

fn node_data(sim: &Sim) -> Vec<Data> {
    (0..sim.nodes.len()).map(|_| Data::new()).collect()
}

impl Model {
    fn owns(sim: &Sim, i: usize, s: u16) -> bool {
        sim.nodes[i].alive && {
            let v = sim.fresh_view(i);
            v.me().is_master() && v.slot_owner_index(s) == Some(v.myself)
        }
    }

    /// Replicas take their live master's data.
    fn replicate(&mut self, sim: &Sim) {
        for r in sim.alive() {
            let v = sim.fresh_view(r);
            if v.me().is_master() {
                continue;
            }
            if let Some(m) = v.me().master.and_then(|m| sim.index_of(&m)) {
                if m != r && sim.reachable(r, m) {
                    self.data[r] = self.data[m].clone();
                }
            }
        }
    }

    fn client_writes(&mut self, sim: &mut Sim) {
        for &s in &MOVING {
            let alive = sim.alive();
            let asked = alive[sim.rng.below(alive.len() as u64) as usize];
            let Some(owner) = sim.fresh_view(asked).slot_owner(s).map(|n| n.id) else { continue };
            let Some(o) = sim.index_of(&owner) else { continue };
            if !Self::owns(sim, o, s) || sim.nodes[o].paused_until > sim.local_now(o) {
                continue;
            }
            if self.exports.get(&o).is_some_and(|e| e.paused_at.is_some()) {
                continue; // held by the migration's pause
            }
            let w = self.next_write;
            self.next_write += 1;
            let epoch = |j: usize| sim.fresh_view(j).me().config_epoch;
            let newest = sim.alive().into_iter().filter(|&j| Self::owns(sim, j, s)).map(epoch).max().unwrap_or(0);
            if epoch(o) < newest {
                self.stale_writes.insert(w);
            }
            self.data[o].entry(s).or_default().insert(w);
            // Acknowledged as WAIT acknowledges: once every live replica of the master
            // has it. A master cut off from a live replica of its own gets no
            // acknowledgement (Redis Cluster loses those writes when that replica is
            // promoted: asynchronous replication's window, not the migration's).
            let me = sim.id(o);
            let cut_off = sim.alive().into_iter().any(|r| {
                r != o && !sim.reachable(o, r) && {
                    let v = sim.fresh_view(r);
                    v.me().is_replica() && v.me().master == Some(me)
                }
            });
            if cut_off {
                continue;
            }
            self.acked.entry(s).or_default().push((w, o));
            if o == self.src && self.window {
                self.window_writes.insert(w);
            }
        }
        self.replicate(sim);
    }

    /// The sources' tick (`lift_if_lost`).
    fn source_tick(&mut self, sim: &Sim) {
        let mut ended = Vec::new();
        for (&i, e) in &self.exports {
            let Some(at) = e.paused_at else { continue };
            let lost = MOVING.iter().all(|&s| !Self::owns(sim, i, s));
            let expired = sim.now.saturating_sub(at) >= PAUSE_TIMEOUT;
            if lost || expired {
                if expired && !lost && self.claimed && i == self.src {
                    self.window = true;
                }
                ended.push(i);
            }
        }
        for i in ended {
            self.exports.remove(&i);
        }
    }

    /// A failed attempt's retry: the slots' owner in the target's view is the next
    /// source (`import_source` in the server); false when the task cannot go on.
    fn retry(&mut self, sim: &Sim) -> bool {
        if !sim.nodes[self.dst].alive {
            return false;
        }
        let v = sim.fresh_view(self.dst);
        let owners: BTreeSet<Option<usize>> = MOVING.iter().map(|&s| v.slot_owner_index(s)).collect();
        let [Some(o)] = owners.into_iter().collect::<Vec<_>>()[..] else { return false };
        if !v.me().is_master() || o == v.myself {
            return false;
        }
        let Some(src) = sim.index_of(&v.nodes[o].id) else { return false };
        self.src = src;
        self.step = Step::Importing;
        self.retries += 1;
        true
    }

    /// A call from the task to the source: it must be alive and reachable.
    fn reach_source(&self, sim: &Sim) -> bool {
        sim.nodes[self.src].alive && sim.nodes[self.dst].alive && sim.reachable(self.src, self.dst)
    }

    fn copy_from_source(&mut self) {
        for &s in &MOVING {
            let d = self.data[self.src].get(&s).cloned().unwrap_or_default();
            self.data[self.dst].insert(s, d);
        }
    }

    fn slots_cmd(op: SlotMigrationOp) -> Command {
        Command::SlotMigration { op, slots: MOVING.to_vec() }
    }

    /// One step of the target's task, if it is due.
    fn task_step(&mut self, sim: &mut Sim) {
        if self.task_alive && self.step == Step::Done && self.retry_at.is_some_and(|at| sim.now >= at) {
            self.retry_at = None;
            if !self.retry(sim) {
                return; // canceled: "slots configuration updated"
            }
        }
        if !self.task_alive || self.step == Step::Done || sim.now < self.next_at {
            return;
        }
        // Most steps are quick; now and then one is slow (a big slot, a busy machine).
        self.next_at = sim.now + if sim.rng.chance(0.05) { sim.rng.below(6000) } else { sim.rng.below(40) };
        let (src, dst) = (self.src, self.dst);
        let res: Result<(), String> = match self.step {
            Step::Importing if !sim.nodes[src].alive => Err("source unreachable".into()),
            Step::Importing => {
                let src_id = sim.id(src);
                sim.command(dst, Self::slots_cmd(SlotMigrationOp::Importing(src_id.as_str().as_bytes().to_vec())))
                    .map(|_| ())
            }
            Step::Snapshot | Step::Delta(_) | Step::FinalDelta => {
                if !self.reach_source(sim) {
                    Err("source unreachable".into())
                } else if MOVING.iter().any(|&s| !Self::owns(sim, src, s)) && self.step == Step::Snapshot {
                    Err("I'm not the owner".into())
                } else {
                    if self.step == Step::Snapshot {
                        self.exports.insert(src, Export { paused_at: None });
                    }
                    if !self.exports.contains_key(&src) {
                        Err("No such slot migration export on this node".into())
                    } else {
                        self.copy_from_source();
                        Ok(())
                    }
                }
            }
            Step::Pause => {
                if !self.reach_source(sim) {
                    Err("source unreachable".into())
                } else if sim.nodes[src].paused_until > sim.local_now(src) {
                    Err("A manual failover is in progress".into())
                } else if let Some(e) = self.exports.get_mut(&src) {
                    e.paused_at = Some(sim.now);
                    self.pause_sent = sim.now;
                    Ok(())
                } else {
                    Err("No such slot migration export on this node".into())
                }
            }
            Step::Claim => {
                if sim.now - self.pause_sent >= PAUSE_TIMEOUT / 2 {
                    Err("the final delta took longer than half of the write pause".into())
                } else {
                    // An error reply claims nothing (the task then undoes).
                    let r = sim.command(dst, Self::slots_cmd(SlotMigrationOp::Claim)).map(|_| ());
                    self.claimed = r.is_ok();
                    r
                }
            }
            Step::Handoff => {
                if self.reach_source(sim) {
                    let epoch = sim.fresh_view(dst).me().config_epoch;
                    let op = SlotMigrationOp::Handoff {
                        node: sim.id(dst).as_str().as_bytes().to_vec(),
                        config_epoch: epoch,
                    };
                    let _ = sim.command(src, Self::slots_cmd(op));
                }
                Ok(())
            }
            Step::End => {
                if !self.reach_source(sim) {
                    Err("source unreachable".into())
                } else if MOVING.iter().any(|&s| Self::owns(sim, src, s)) {
                    Ok(()) // TRYAGAIN: the claim has not reached the source yet
                } else {
                    self.exports.remove(&src);
                    self.step = Step::Done;
                    return;
                }
            }
            Step::Done => Ok(()),
        };
        match res {
            Ok(()) if self.step == Step::End => {
                self.next_at = sim.now + 2;
            }
            Ok(()) => {
                self.step = match self.step {
                    Step::Importing => Step::Snapshot,
                    Step::Snapshot => Step::Delta(0),
                    Step::Delta(n) if n < 2 => Step::Delta(n + 1),
                    Step::Delta(_) => Step::Pause,
                    Step::Pause => Step::FinalDelta,
                    Step::FinalDelta => Step::Claim,
                    Step::Claim => Step::Handoff,
                    Step::Handoff => Step::End,
                    s => s,
                };
            }
            Err(e) if self.claimed => {
                // The slots are ours; the source lifts its pause when it sees the claim.
                self.failed = Some(e);
                self.step = Step::Done;
            }
            Err(e) => {
                self.undo(sim);
                self.failed = Some(e);
                self.step = Step::Done;
                self.retry_at = Some(sim.now + 1000);
            }
        }
        self.replicate(sim);
    }

    /// A task that ended before its claim: what it restored goes, the slots become
    /// stable, the source's export ends.
    fn undo(&mut self, sim: &mut Sim) {
        for &s in &MOVING {
            self.data[self.dst].remove(&s);
        }
        if sim.nodes[self.dst].alive {
            let _ = sim.command(self.dst, Self::slots_cmd(SlotMigrationOp::Stable));
        }
        if self.reach_source(sim) {
            self.exports.remove(&self.src);
        }
    }

    /// A node restarted: it forgets the export (if the source) or the task (the target),
    /// and drops data of slots it does not own (cluster-mode loading).
    fn restarted(&mut self, sim: &Sim, i: usize) {
        self.exports.remove(&i);
        for &s in &MOVING {
            if !Self::owns(sim, i, s) {
                self.data[i].remove(&s);
            }
        }
    }

    fn crashed(&mut self, i: usize) {
        if i == self.dst && self.step != Step::Done {
            // The task's thread dies with its node; nothing is undone.
            self.task_alive = false;
            self.step = Step::Done;
            self.failed = Some("target crashed".into());
        }
        self.exports.remove(&i);
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    /// Kill the target, restart it later.
    CrashTarget,
    /// Kill the source, restart it later (its replica may be promoted meanwhile).
    CrashSource,
    /// Kill the source for good: its replica takes over.
    KillSource,
    /// A manual failover of the source's replica.
    FailoverSource,
    /// A manual failover of the target's replica.
    FailoverTarget,
    /// Cut the source off from every other node, heal later (its replica may be
    /// promoted meanwhile, and the source keeps taking writes until it learns so).
    IsolateSource,
    /// Cut the target off from every other node, heal later.
    IsolateTarget,
    /// Split the cluster in two, the source with its replica and the third master, the
    /// target with its replica and the third master's replica; heal later.
    SplitSourceTarget,
}

fn run(seed: u64, fault: Fault) -> (bool, String) {
    // Masters 0, 1, 2; replicas 3, 4, 5 of them in turn.
    let mut sim = build_cluster(seed, 6, 3);
    sim.run_for(1000);
    let mut m = Model {
        data: node_data(&sim),
        acked: BTreeMap::new(),
        next_write: 0,
        exports: BTreeMap::new(),
        src: 0,
        dst: 1,
        step: Step::Importing,
        next_at: 0,
        pause_sent: 0,
        claimed: false,
        failed: None,
        window: false,
        window_writes: BTreeSet::new(),
        stale_writes: BTreeSet::new(),
        task_alive: true,
        retry_at: None,
        retries: 0,
    };
    let fault_at = sim.now + sim.rng.below(200);
    let start = sim.now;
    m.next_at = start;
    let mut crashed: Vec<(usize, Option<u64>)> = Vec::new();
    let mut fired = false;
    let mut heal_at = None;
    let n = 6;
    let (src_replica, dst_replica) = (3, 4);
    while sim.now < start + 30_000 {
        sim.run_for(TICK);
        if !fired && sim.now >= fault_at {
            fired = true;
            match fault {
                Fault::None => {}
                Fault::CrashTarget => crashed.push((m.dst, Some(sim.now + 500 + sim.rng.below(4000)))),
                Fault::CrashSource => crashed.push((m.src, Some(sim.now + 500 + sim.rng.below(8000)))),
                Fault::KillSource => crashed.push((m.src, None)),
                Fault::FailoverSource | Fault::FailoverTarget => {
                    let r = if matches!(fault, Fault::FailoverSource) { src_replica } else { dst_replica };
                    let _ = sim.command(r, Command::Failover { option: None });
                }
                Fault::IsolateSource | Fault::IsolateTarget | Fault::SplitSourceTarget => {
                    let mut groups = vec![0; n];
                    match fault {
                        Fault::IsolateSource => groups[m.src] = 1,
                        Fault::IsolateTarget => groups[m.dst] = 1,
                        _ => [m.dst, dst_replica, 5].iter().for_each(|&i| groups[i] = 1),
                    }
                    sim.partition(groups);
                    heal_at = Some(sim.now + 500 + sim.rng.below(8000));
                }
            }
            for &(i, _) in &crashed {
                sim.crash(i);
                m.crashed(i);
            }
        }
        if heal_at.is_some_and(|at| sim.now >= at) {
            sim.heal();
            heal_at = None;
        }
        for k in 0..crashed.len() {
            if let (i, Some(at)) = crashed[k] {
                if sim.now >= at && !sim.nodes[i].alive {
                    sim.restart(i);
                    sim.run_for(1);
                    m.restarted(&sim, i);
                }
            }
        }
        m.source_tick(&sim);
        m.task_step(&mut sim);
        for i in 0..n {
            sim.nodes[i].migration_holds_writes = m.exports.get(&i).is_some_and(|e| e.paused_at.is_some());
        }
        m.client_writes(&mut sim);
    }
    // Settle: every node back (but one killed for good), views agree.
    sim.heal();
    let ok = sim.run_until_cond(60_000, 250, |s| converged(s, n).is_ok() && s.fresh_view(s.alive()[0]).state_ok);
    let mut report = format!(
        "seed {seed} {fault:?}: step {:?}, claimed {}, retries {}, failed {:?}, window {}, stale writes {}",
        m.step,
        m.claimed,
        m.retries,
        m.failed,
        m.window,
        m.stale_writes.len()
    );
    if !ok {
        report += &format!(", did not settle: {:?}", converged(&sim, n));
        return (false, report);
    }
    m.replicate(&sim);
    let v = sim.fresh_view(sim.alive()[0]);
    for &s in &MOVING {
        let Some(owner) = v.slot_owner(s).map(|o| o.id) else {
            report += &format!(", slot {s} has no owner");
            return (false, report);
        };
        let o = sim.index_of(&owner).expect("the owner is alive");
        let have = m.data[o].get(&s).cloned().unwrap_or_default();
        let lost: Vec<&(u64, usize)> = m
            .acked
            .get(&s)
            .into_iter()
            .flatten()
            .filter(|(w, _)| !have.contains(w) && !m.window_writes.contains(w) && !m.stale_writes.contains(w))
            .collect();
        if !lost.is_empty() {
            report += &format!(
                ", slot {s} owned by node {o} lost {} acknowledged writes (first {:?})",
                lost.len(),
                &lost[..lost.len().min(5)]
            );
            return (false, report);
        }
    }
    (true, report)
}

/// Runs `runs` seeds from `first` (`MIGRATION_SIM_RUNS` multiplies the count, for a
/// longer search by hand).
fn sweep(fault: Fault, first: u64, runs: u64) {
    let scale: u64 = std::env::var("MIGRATION_SIM_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let runs = runs * scale.max(1);
    let seeds = first..first + runs;
    let mut failures = Vec::new();
    let (mut claimed, mut retried) = (0, 0);
    for seed in seeds.clone() {
        let (ok, report) = run(seed, fault);
        if report.contains("claimed true") {
            claimed += 1;
        }
        if !report.contains("retries 0,") {
            retried += 1;
        }
        if !ok {
            failures.push(report);
        }
    }
    assert!(failures.is_empty(), "{} of {} runs failed:\n{}", failures.len(), runs, failures.join("\n"));
    eprintln!("{fault:?}: {claimed} of {runs} runs claimed, {retried} tried again after a failed attempt");
}

#[test]
fn a_migration_without_faults_moves_every_acknowledged_write() {
    sweep(Fault::None, 0, 6);
}

#[test]
fn a_target_crash_midway_loses_no_acknowledged_write() {
    sweep(Fault::CrashTarget, 100, 12);
}

#[test]
fn a_source_crash_midway_loses_no_acknowledged_write() {
    sweep(Fault::CrashSource, 200, 12);
}

#[test]
fn a_source_killed_for_good_midway_leaves_one_owner_with_every_write() {
    sweep(Fault::KillSource, 300, 12);
}

#[test]
fn a_manual_failover_of_the_source_midway_loses_no_acknowledged_write() {
    sweep(Fault::FailoverSource, 400, 12);
}

#[test]
fn a_manual_failover_of_the_target_midway_loses_no_acknowledged_write() {
    sweep(Fault::FailoverTarget, 500, 12);
}

#[test]
fn a_source_cut_off_midway_loses_no_acknowledged_write() {
    sweep(Fault::IsolateSource, 600, 10);
}

#[test]
fn a_target_cut_off_midway_loses_no_acknowledged_write() {
    sweep(Fault::IsolateTarget, 700, 10);
}

#[test]
fn a_split_between_source_and_target_midway_loses_no_acknowledged_write() {
    sweep(Fault::SplitSourceTarget, 800, 10);
}
