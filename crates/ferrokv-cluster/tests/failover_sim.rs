//! Failover scenarios in the seeded simulator (`tests/sim`): automatic elections, old
//! masters rejoining, partitions, loss, manual failovers, ranks and replica migration.
//!
//! Every run also checks, after every step, that no two nodes claim one slot with one
//! config epoch and that no epoch has two promoted winners (see `tests/sim`). A failure
//! prints its seed.
//!
//! Timing bounds (node timeout `NODE_TIMEOUT` = 2 s in the simulator): a dead master is
//! flagged PFAIL within 1.5 node timeouts (a ping goes out once the last pong is half a
//! timeout old), FAIL as soon as a majority of masters gossiped it, and its best replica
//! asks for votes 0.5–1 s later; so, without loss, the promotion comes within
//! `2 × NODE_TIMEOUT + 1.5 s` of the crash.

mod sim;

use ferrokv_cluster::{cluster_info_text, cluster_nodes_text, ClusterView, Command, NodeId, Reply, MF_TIMEOUT_MS};
use sim::*;

fn all_ok(sim: &Sim) -> bool {
    sim.alive().iter().all(|&i| sim.fresh_view(i).state_ok)
}

fn settled(sim: &Sim, n: usize) -> bool {
    converged(sim, n).is_ok() && all_ok(sim)
}

/// The `CLUSTER NODES` line a view prints about `id`.
fn nodes_line(v: &ClusterView, id: &NodeId) -> String {
    cluster_nodes_text(v).lines().find(|l| l.starts_with(id.as_str())).unwrap_or_default().to_string()
}

/// `CLUSTER INFO`'s value for `field`, 0 when absent.
fn info_field(v: &ClusterView, field: &str) -> u64 {
    let text = cluster_info_text(v);
    let prefix = format!("{field}:");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|x| x.trim().parse().ok()).unwrap_or(0)
}

fn failover(option: Option<&str>) -> Command {
    Command::Failover { option: option.map(|o| o.as_bytes().to_vec()) }
}

/// Sub-millisecond elections aside, a promotion comes within this long of the crash.
const PROMOTION_BOUND: u64 = 2 * NODE_TIMEOUT + 1500;

#[test]
fn a_killed_master_is_replaced_by_its_replica_and_rejoins_as_its_replica() {
    for seed in 0..40 {
        let mut sim = build_cluster(seed, 6, 3);
        sim.run_for(2000);
        let m = sim.rng.below(3) as usize;
        let r = m + 3;
        let (mid, rid) = (sim.id(m), sim.id(r));
        let slots = sim.fresh_view(m).me().slot_ranges.clone();
        let t0 = sim.now;
        sim.crash(m);
        let promoted = sim.run_until_cond(PROMOTION_BOUND, 10, |s| !s.promotions().is_empty());
        assert!(promoted, "seed {seed}: no promotion within {PROMOTION_BOUND} ms");
        let p = sim.promotions();
        assert_eq!((p.len(), p[0].node, p[0].former_master), (1, r, mid), "seed {seed}");
        assert!(p[0].at - t0 > NODE_TIMEOUT, "seed {seed}: promoted before the master could be flagged FAIL");

        assert!(sim.run_until_cond(10 * NODE_TIMEOUT, 100, |s| settled(s, 6)), "seed {seed}: {:?}", converged(&sim, 6));
        for i in sim.alive() {
            let v = sim.fresh_view(i);
            let new = v.node(&rid).expect("known");
            assert!(new.is_master() && new.slot_ranges == slots, "seed {seed}: node {i}: {}", nodes_line(&v, &rid));
            assert!(v.nodes.iter().all(|n| n.id == rid || n.config_epoch < new.config_epoch), "seed {seed}");
            assert!(nodes_line(&v, &mid).contains(" master,fail - "), "seed {seed}: {}", nodes_line(&v, &mid));
        }
        let vr = sim.fresh_view(r);
        assert!(nodes_line(&vr, &rid).contains(" myself,master - "), "seed {seed}");
        // One request per node with a link (the dead master's may be gone), one election.
        let requests = info_field(&vr, "cluster_stats_messages_auth-req_sent");
        assert!((4..=5).contains(&requests), "seed {seed}: {requests} vote requests");
        assert!(info_field(&vr, "cluster_stats_messages_auth-ack_received") >= 2, "seed {seed}");
        let voters =
            (0..3).filter(|&i| i != m).map(|i| info_field(&sim.fresh_view(i), "cluster_stats_messages_auth-ack_sent"));
        assert_eq!(voters.sum::<u64>(), 2, "seed {seed}: each live master votes once");

        // The old master comes back with its old claim and follows the new owner.
        sim.restart(m);
        let rejoined =
            sim.run_until_cond(10 * NODE_TIMEOUT, 100, |s| settled(s, 6) && s.fresh_view(m).me().master == Some(rid));
        assert!(rejoined, "seed {seed}: {:?}", converged(&sim, 6));
        assert_eq!(sim.nodes[m].replicated_from.last(), Some(&rid), "seed {seed}");
        let vm = sim.fresh_view(m);
        assert!(nodes_line(&vm, &mid).contains(" myself,slave "), "seed {seed}: {}", nodes_line(&vm, &mid));
        assert_eq!(sim.promotions().len(), 1, "seed {seed}");
    }
}

#[test]
fn several_masters_failing_at_once_are_each_replaced_by_their_replica() {
    let mut slowest = 0;
    for seed in 100..125 {
        let mut sim = build_cluster(seed, 10, 5);
        sim.run_for(2000);
        let a = sim.rng.below(5) as usize;
        let b = (a + 1 + sim.rng.below(4) as usize) % 5;
        let (aid, bid) = (sim.id(a), sim.id(b));
        let t0 = sim.now;
        sim.crash(a);
        sim.crash(b);
        // Concurrent elections may split one epoch's votes; the loser retries later.
        let done = sim.run_until_cond(60_000, 10, |s| s.promotions().len() >= 2);
        assert!(done, "seed {seed}: {:?}", sim.promotions());
        let mut winners: Vec<(usize, NodeId)> = sim.promotions().iter().map(|p| (p.node, p.former_master)).collect();
        let mut expected = vec![(a + 5, aid), (b + 5, bid)];
        winners.sort_by_key(|w| w.0);
        expected.sort_by_key(|w| w.0);
        assert_eq!(winners, expected, "seed {seed}");
        slowest = slowest.max(sim.now - t0);
        assert!(
            sim.run_until_cond(20 * NODE_TIMEOUT, 100, |s| settled(s, 10)),
            "seed {seed}: {:?}",
            converged(&sim, 10)
        );
        assert_eq!(sim.promotions().len(), 2, "seed {seed}");
    }
    println!("slowest double failover: {slowest} ms");
}
