//! Scenarios run in the seeded simulator (`tests/sim`). A failure prints its seed.

mod sim;

use ferrokv_cluster::{cluster_nodes_text, Command, NodeFlags, Reply};
use sim::*;

fn failed_everywhere(sim: &Sim, id: &ferrokv_cluster::NodeId) -> bool {
    sim.alive().iter().all(|&i| sim.fresh_view(i).node(id).is_some_and(|n| n.is_failed()))
}

fn all_ok(sim: &Sim) -> bool {
    sim.alive().iter().all(|&i| sim.fresh_view(i).state_ok)
}

#[test]
fn nodes_meet_learn_each_other_by_gossip_and_serve_all_slots() {
    for seed in 0..10 {
        let sim = build_cluster(seed, 6, 3);
        for i in sim.alive() {
            let v = sim.fresh_view(i);
            assert!(v.state_ok, "seed {seed}");
            assert_eq!(v.size, 3, "seed {seed}");
            // Collision handling gave the three masters distinct config epochs.
            let mut epochs: Vec<u64> = v.nodes.iter().filter(|n| n.is_master()).map(|n| n.config_epoch).collect();
            epochs.sort();
            epochs.dedup();
            assert_eq!(epochs.len(), 3, "seed {seed}: {}", cluster_nodes_text(&v));
        }
    }
}

#[test]
fn a_twenty_node_cluster_converges() {
    for seed in 0..3 {
        let mut sim = build_cluster(1000 + seed, 20, 10);
        sim.run_for(10 * NODE_TIMEOUT);
        converged(&sim, 20).unwrap_or_else(|e| panic!("seed {}: {e}", 1000 + seed));
    }
}

/// With `cluster-replica-no-failover` nobody replaces the dead master (`tests/failover_sim.rs`
/// has the failovers): it keeps its slots and epoch and takes them back on restart.
#[test]
fn a_killed_master_is_failed_by_all_and_rejoins_after_restart() {
    for seed in 100..120 {
        let hook: ConfigHook = Box::new(|_, cfg| cfg.replica_no_failover = true);
        let mut sim = build_cluster_with(seed, 7, 3, Some(hook));
        let victim = sim.rng.below(3) as usize;
        let vid = sim.id(victim);
        let before = sim.fresh_view(victim);
        let (epoch, slots) = (before.me().config_epoch, before.me().slot_ranges.clone());
        sim.crash(victim);
        let failed = sim.run_until_cond(4 * NODE_TIMEOUT, 100, |s| failed_everywhere(s, &vid));
        assert!(failed, "seed {seed}: node {victim} not flagged FAIL by all within 4 node timeouts");
        // Without a replica promotion its slots stay uncovered.
        sim.run_for(4 * NODE_TIMEOUT);
        assert!(sim.promotions().is_empty(), "seed {seed}");
        assert!(sim.alive().iter().all(|&i| !sim.fresh_view(i).state_ok), "seed {seed}");

        sim.restart(victim);
        let v = sim.fresh_view(victim);
        assert_eq!(v.me().id, vid, "seed {seed}: restarted under another ID");
        assert_eq!(v.me().config_epoch, epoch, "seed {seed}");
        assert_eq!(v.me().slot_ranges, slots, "seed {seed}");
        assert_eq!(v.nodes.len(), 7, "seed {seed}: restarted node forgot its peers");
        let ok = sim.run_until_cond(10 * NODE_TIMEOUT, 250, |s| converged(s, 7).is_ok() && all_ok(s));
        assert!(ok, "seed {seed}: {:?}", converged(&sim, 7));
    }
}

#[test]
fn a_minority_partition_cannot_mark_a_node_fail() {
    for seed in 200..215 {
        let mut sim = build_cluster(seed, 10, 5);
        // Two of five masters, their replicas, and nothing else on one side.
        let a = sim.rng.below(5) as usize;
        let b = (a + 1 + sim.rng.below(4) as usize) % 5;
        let minority: Vec<usize> = (0..10).filter(|i| i % 5 == a || i % 5 == b).collect();
        let groups = (0..10).map(|i| minority.contains(&i) as u32).collect();
        sim.partition(groups);
        let m = minority.clone();
        sim.checks.push(Box::new(move |s: &Sim, i: usize| {
            if !m.contains(&i) {
                return Ok(());
            }
            let Some(v) = s.nodes[i].view.as_ref() else { return Ok(()) };
            match v.nodes.iter().find(|n| n.is_failed()) {
                Some(n) => Err(format!("node {i} in the minority flagged {} FAIL", n.id)),
                None => Ok(()),
            }
        }));
        sim.run_for(6 * NODE_TIMEOUT);
        // The majority did fail the minority's masters; the minority only suspects.
        let (ida, idb) = (sim.id(a), sim.id(b));
        for i in (0..10).filter(|i| !minority.contains(i)) {
            let v = sim.fresh_view(i);
            assert!(v.node(&ida).unwrap().is_failed() && v.node(&idb).unwrap().is_failed(), "seed {seed}");
        }
        for &i in &minority {
            let v = sim.fresh_view(i);
            let pfail = v.nodes.iter().filter(|n| n.flags.intersects(NodeFlags::PFAIL)).count();
            assert_eq!(pfail, 6, "seed {seed}: node {i} should suspect the six unreachable nodes");
            assert!(!v.state_ok, "seed {seed}: a minority cannot be ok");
        }
        sim.checks.pop();
        sim.heal();
        let ok = sim.run_until_cond(10 * NODE_TIMEOUT, 250, |s| converged(s, 10).is_ok() && all_ok(s));
        assert!(ok, "seed {seed}: {:?}", converged(&sim, 10));
    }
}

#[test]
fn forget_bans_a_node_for_sixty_seconds() {
    for seed in 300..305 {
        let mut sim = build_cluster(seed, 4, 3);
        let gone = sim.id(3);
        let r = sim.command(0, Command::Forget(gone.as_str().as_bytes().to_vec()));
        assert_eq!(r, Ok(Reply::Ok));
        let t0 = sim.now;
        // Nodes 1 and 2 still gossip about it, and it still pings node 0.
        sim.checks.push(Box::new(move |s: &Sim, i: usize| {
            let relearnt = s.nodes[0].view.as_ref().is_some_and(|v| v.node(&gone).is_some());
            if i == 0 && s.now < t0 + 59_000 && relearnt {
                return Err("node 0 re-learnt a forgotten node during the ban".into());
            }
            Ok(())
        }));
        sim.run_for(59_000);
        assert!(sim.fresh_view(0).node(&gone).is_none(), "seed {seed}");
        sim.checks.pop();
        let back = sim.run_until_cond(15_000, 250, |s| s.fresh_view(0).node(&gone).is_some());
        assert!(back, "seed {seed}: after the ban, gossip should bring the node back");
    }
}

#[test]
fn a_node_forgotten_everywhere_and_shut_down_stays_gone() {
    let mut sim = build_cluster(400, 5, 3);
    let gone = sim.id(4);
    sim.crash(4);
    for i in 0..4 {
        let r = sim.command(i, Command::Forget(gone.as_str().as_bytes().to_vec()));
        assert_eq!(r, Ok(Reply::Ok));
    }
    sim.run_for(90_000);
    for i in 0..4 {
        assert!(sim.fresh_view(i).node(&gone).is_none());
    }
    converged(&sim, 4).unwrap();
}

#[test]
fn a_moved_slot_takes_a_new_epoch_and_the_stale_owner_gives_it_up() {
    for seed in 500..510 {
        let mut sim = build_cluster(seed, 6, 3);
        let (a, b) = (0usize, 1usize);
        let slot = 100u16;
        let (ida, idb) = (sim.id(a), sim.id(b));
        // Node a is cut off while the slot moves to b.
        sim.partition((0..6).map(|i| (i == a) as u32).collect());
        let arg = |s: &str| s.as_bytes().to_vec();
        let r = sim.command(
            b,
            Command::SetSlot { args: vec![arg("100"), arg("importing"), arg(ida.as_str())], keys_in_slot: 0 },
        );
        assert_eq!(r, Ok(Reply::Ok));
        let epoch_before = sim.fresh_view(b).me().config_epoch;
        let r = sim
            .command(b, Command::SetSlot { args: vec![arg("100"), arg("node"), arg(idb.as_str())], keys_in_slot: 0 });
        assert_eq!(r, Ok(Reply::Ok));
        // Closing an import takes a new epoch unless b's is already the greatest.
        let vb = sim.fresh_view(b);
        let max_other =
            vb.nodes.iter().filter(|n| n.id != idb && n.is_master()).map(|n| n.config_epoch).max().unwrap_or(0);
        assert!(vb.me().config_epoch > max_other, "seed {seed}: the new owner's epoch must be the greatest");
        assert!(vb.me().config_epoch > epoch_before || epoch_before > max_other, "seed {seed}");
        assert!(vb.importing.is_empty());
        let moved = sim.run_until_cond(5 * NODE_TIMEOUT, 100, |s| {
            (0..6).filter(|&i| i != a).all(|i| s.fresh_view(i).slot_owner(slot).map(|n| n.id) == Some(idb))
        });
        assert!(moved, "seed {seed}: the majority did not learn the new owner");
        assert_eq!(sim.fresh_view(a).slot_owner(slot).map(|n| n.id), Some(ida));

        sim.heal();
        let ok = sim.run_until_cond(10 * NODE_TIMEOUT, 250, |s| converged(s, 6).is_ok() && all_ok(s));
        assert!(ok, "seed {seed}: {:?}", converged(&sim, 6));
        assert_eq!(sim.fresh_view(a).slot_owner(slot).map(|n| n.id), Some(idb));
        assert!(sim.nodes[a].deleted_slots.contains(&slot), "seed {seed}: the old owner must drop the slot's keys");
    }
}

/// Random faults for a while, then everything healed: the views must converge, and no two
/// masters may ever claim a slot with the same epoch (checked after every step).
fn chaos(seed: u64, n: usize, masters: usize, duration: u64) -> Sim {
    let mut sim = build_cluster(seed, n, masters);
    let end = sim.now + duration;
    while sim.now < end {
        let pause = 200 + sim.rng.below(3000);
        sim.run_for(pause);
        let dead = n - sim.alive().len();
        match sim.rng.below(10) {
            0 if dead < n / 3 => {
                let alive = sim.alive();
                let i = alive[sim.rng.below(alive.len() as u64) as usize];
                sim.crash(i);
            }
            1 => {
                let down: Vec<usize> = (0..n).filter(|&i| !sim.nodes[i].alive).collect();
                if !down.is_empty() {
                    let i = down[sim.rng.below(down.len() as u64) as usize];
                    sim.restart(i);
                }
            }
            2 => {
                let groups = (0..n).map(|_| sim.rng.below(2) as u32).collect();
                sim.partition(groups);
            }
            3 => sim.heal(),
            4 => {
                let i = sim.rng.below(n as u64) as usize;
                let step = sim.rng.below(6 * NODE_TIMEOUT) as i64 - 3 * NODE_TIMEOUT as i64;
                sim.nodes[i].clock_offset += step;
            }
            5 => sim.net.loss = [0.0, 0.01, 0.05, 0.2][sim.rng.below(4) as usize],
            6 => sim.net.max_delay = [15, 100, 400][sim.rng.below(3) as usize],
            7 => {
                let b = sim.rng.below(n as u64) as usize;
                move_a_slot(&mut sim, b);
            }
            8 => {
                // A manual failover (default or FORCE; TAKEOVER is unsafe by design when
                // elections may run at the same time) on a random live node: replicas
                // accept it, masters refuse.
                let alive = sim.alive();
                let i = alive[sim.rng.below(alive.len() as u64) as usize];
                let option = sim.rng.chance(0.5).then(|| b"force".to_vec());
                if sim.command(i, Command::Failover { option }).is_ok() {
                    *sim.stats.entry("manual failovers").or_default() += 1;
                }
            }
            _ => {}
        }
    }
    sim.heal();
    sim.net = NetParams::default();
    for i in 0..n {
        sim.restart(i);
    }
    let ok = sim.run_until_cond(30 * NODE_TIMEOUT, 500, |s| converged(s, n).is_ok() && all_ok(s));
    assert!(ok, "seed {seed}: no convergence after healing: {:?}", converged(&sim, n));
    sim
}

/// Runs `seeds` chaos runs and checks that the faults did exercise the protocol.
fn chaos_many(seeds: std::ops::Range<u64>, n: usize, masters: usize) {
    let mut totals = std::collections::BTreeMap::new();
    for seed in seeds {
        let sim = chaos(seed, n, masters, 60_000);
        for (k, v) in sim.stats {
            *totals.entry(k).or_insert(0u64) += v;
        }
    }
    println!("{n} nodes: {totals:?}");
    for k in [
        "fail verdicts",
        "fail clears",
        "fail messages",
        "update messages",
        "slot moves",
        "promotions",
        "manual failovers",
    ] {
        assert!(totals.get(k).copied().unwrap_or(0) > 0, "no {k} in any run: {totals:?}");
    }
}

#[test]
fn chaos_then_heal_converges_small() {
    chaos_many(1000..1025, 6, 3);
}

#[test]
fn chaos_then_heal_converges_medium() {
    chaos_many(2000..2025, 9, 4);
}

#[test]
fn chaos_then_heal_converges_large() {
    for seed in 3000..3003 {
        chaos(seed, 16, 8, 60_000);
    }
}

#[test]
fn a_seed_replays_exactly() {
    let a = chaos(77, 6, 3, 20_000);
    let b = chaos(77, 6, 3, 20_000);
    assert_eq!(a.events, b.events);
    for i in 0..6 {
        assert_eq!(a.nodes[i].saved_conf, b.nodes[i].saved_conf);
    }
}

/// Throughput of the simulator, for profiling: `cargo test --test cluster_sim profile_chaos
/// -- --ignored --nocapture`.
#[test]
#[ignore]
fn profile_chaos() {
    let t = std::time::Instant::now();
    let mut events = 0;
    for seed in 2000..2010 {
        let sim = chaos(seed, 9, 4, 60_000);
        events += sim.events;
    }
    println!("{events} events in {:?}", t.elapsed());
    let sim = chaos(2000, 9, 4, 60_000);
    println!("{:?}", sim.stats);
}

/// The epoch check is not vacuous: two fresh nodes told to serve the same slots (both at
/// config epoch 0) trip it.
#[test]
#[should_panic(expected = "both claim slot 5 with config epoch 0")]
fn the_epoch_check_catches_two_owners_of_one_epoch() {
    let mut sim = Sim::new(1, 2);
    sim.run_for(200);
    let r = sim.command(0, Command::AddSlotsRange(vec![b"0".to_vec(), b"10".to_vec()]));
    assert_eq!(r, Ok(Reply::Ok));
    let _ = sim.command(1, Command::AddSlotsRange(vec![b"5".to_vec(), b"20".to_vec()]));
}

#[test]
fn one_node_clock_step_fails_nobody() {
    for seed in 600..610 {
        let mut sim = build_cluster(seed, 7, 3);
        let k = sim.rng.below(7) as usize;
        let step = if seed % 2 == 0 { 5 * NODE_TIMEOUT as i64 } else { -5 * (NODE_TIMEOUT as i64) };
        sim.nodes[k].clock_offset += step;
        sim.checks.push(Box::new(|s: &Sim, i: usize| match s.nodes[i].view.as_ref() {
            Some(v) if v.nodes.iter().any(|n| n.is_failed()) => Err(format!("node {i} flagged a node FAIL")),
            _ => Ok(()),
        }));
        sim.run_for(6 * NODE_TIMEOUT);
        sim.checks.pop();
        let ok = sim.run_until_cond(10 * NODE_TIMEOUT, 250, |s| converged(s, 7).is_ok() && all_ok(s));
        assert!(ok, "seed {seed}: {:?}", converged(&sim, 7));
    }
}

/// `redis-cli --cluster create`'s order: slots and distinct config epochs first, then every
/// node meets the first one, then replicas are attached.
#[test]
fn the_redis_cli_create_sequence_converges() {
    for seed in 700..710 {
        let (n, masters) = (8, 4);
        let mut sim = Sim::new(seed, n);
        sim.run_for(300);
        for m in 0..masters {
            let (a, b) = slot_block(m, masters);
            let r =
                sim.command(m, Command::AddSlotsRange(vec![a.to_string().into_bytes(), b.to_string().into_bytes()]));
            assert_eq!(r, Ok(Reply::Ok));
        }
        for i in 0..n {
            let r = sim.command(i, Command::SetConfigEpoch((i + 1).to_string().into_bytes()));
            assert_eq!(r, Ok(Reply::Ok));
        }
        for i in 1..n {
            meet(&mut sim, i, 0);
        }
        let joined = sim.run_until_cond(30_000, 250, |s| {
            s.alive().iter().all(|&i| {
                s.fresh_view(i).nodes.iter().filter(|x| !x.flags.intersects(NodeFlags::HANDSHAKE)).count() == n
            })
        });
        assert!(joined, "seed {seed}");
        for i in masters..n {
            let master = sim.id(i - masters);
            let r = sim.command(i, Command::Replicate { node: master.as_str().as_bytes().to_vec(), db_empty: true });
            assert_eq!(r, Ok(Reply::Ok));
        }
        let ok = sim.run_until_cond(30_000, 250, |s| converged(s, n).is_ok() && all_ok(s));
        assert!(ok, "seed {seed}: {:?}", converged(&sim, n));
        // No collision handling was needed: the epochs given are the ones kept.
        let v = sim.fresh_view(0);
        for m in 0..masters {
            assert_eq!(v.node(&sim.id(m)).unwrap().config_epoch, m as u64 + 1, "seed {seed}");
        }
        assert_eq!(v.current_epoch, n as u64);
    }
}

/// Many more chaos seeds than the regular runs, for soaking after a protocol change:
/// `FROM=10000 cargo test --release --test cluster_sim chaos_soak -- --ignored` (`COUNT`
/// seeds, 150 by default, from `FROM`; `SIM_LOGS=1` prints every node's log when a check
/// fails).
#[test]
#[ignore]
fn chaos_soak() {
    let from: u64 = std::env::var("FROM").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let count: u64 = std::env::var("COUNT").ok().and_then(|s| s.parse().ok()).unwrap_or(150);
    for seed in from..from + count {
        let n = [6, 9, 7][seed as usize % 3];
        let masters = [3, 4, 3][seed as usize % 3];
        chaos(seed, n, masters, 60_000);
    }
}
