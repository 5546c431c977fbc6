//! How long an automatic failover takes, measured in the seeded simulator (`tests/sim`)
//! over many seeds: masters are killed at a random moment of their cluster's ping cycle, on
//! a loopback-like network (0–1 ms per message, no loss), and the time from the crash to
//! the replica knowing its master is FAIL and to the replica's promotion is recorded.
//!
//! A killed process (SIGKILL, a crash) has its connections reset by the kernel: the peers
//! see the link close, reconnect, are refused, and count that attempt as a ping sent
//! (`links.rs`). A dead host, or a partition, is silent: the peers notice only when a
//! ping, sent once the last pong is half a node timeout old, stays unanswered for a node
//! timeout (Redis's rule, kept). The bounds below follow from that (see the failover
//! module's documentation for the timing design and the measured distribution):
//!
//! - reset seen: PFAIL a node timeout after the crash, within two ticks; FAIL at once
//!   (every master tells the others as soon as it flags PFAIL); the election a fixed
//!   `node_timeout / 30` later, at the replica's next tick — measured over 3000 seeds:
//!   median 2279 ms, p90 2330 ms, worst 2369 ms with a 2 s node timeout;
//! - silent: up to half a node timeout more, for the ping to go out.
//!
//! `cargo test -p ferrokv-cluster --release --test failover_timing -- --ignored --nocapture`
//! prints the distributions (`SEEDS=n` for more or fewer seeds; `SIM_LOGS=1` prints the
//! logs of a run that needed a second election).

mod sim;

use ferrokv_cluster::NodeId;
use sim::*;
use std::cell::Cell;
use std::rc::Rc;

/// Per-message delay of a loopback connection, in the simulator's milliseconds.
fn loopback(rst_on_crash: f64) -> NetParams {
    NetParams { min_delay: 0, max_delay: 1, loss: 0.0, rst_on_crash }
}

/// A process kill: every peer sees its connections reset.
const KILLED: f64 = 1.0;
/// A host gone silent: no peer hears of it.
const SILENT: f64 = 0.0;

/// One failover, in milliseconds after the crash.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// The replica's view shows its master FAIL.
    fail_known: u64,
    /// The replica was promoted.
    promoted: u64,
    /// Elections beyond one per replaced master (split votes, failed attempts), counted
    /// on the first sample of a run.
    retries: u64,
}

/// Node `r`'s published view shows `about` FAIL: remember the first time.
fn watch_fail(sim: &mut Sim, r: usize, about: NodeId) -> Rc<Cell<Option<u64>>> {
    let seen = Rc::new(Cell::new(None));
    let cell = seen.clone();
    sim.checks.push(Box::new(move |s: &Sim, i: usize| {
        if i == r && cell.get().is_none() {
            if let Some(v) = s.nodes[r].view.as_ref() {
                if v.node(&about).is_some_and(|n| n.is_failed()) {
                    cell.set(Some(s.now));
                }
            }
        }
        Ok(())
    }));
    seen
}

fn elections(sim: &Sim) -> u64 {
    sim.stats.get("elections").copied().unwrap_or(0)
}

/// With `SIM_LOGS` set, prints the logs of a run that needed more elections than masters
/// it replaced, from shortly before the crash at `t0`.
fn dump_if_retried(sim: &Sim, t0: u64, retries: u64) {
    if retries == 0 || !sim.keep_logs {
        return;
    }
    println!("seed {}: {retries} more elections than needed", sim.seed);
    for (i, n) in sim.nodes.iter().enumerate() {
        for l in &n.logs {
            let at: u64 = l.split(' ').next().and_then(|t| t.parse().ok()).unwrap_or(0);
            if at + 3000 >= t0 {
                println!("{:>6} node {i}: {l}", at as i64 - t0 as i64);
            }
        }
    }
}

/// A cluster of `n` nodes and `masters` masters, on `net`, run to a random phase of its
/// ping cycle.
fn cluster(seed: u64, n: usize, masters: usize, net: NetParams) -> Sim {
    let mut sim = build_cluster(seed, n, masters);
    sim.net = net;
    let settle = 2000 + sim.rng.below(2000);
    sim.run_for(settle);
    sim
}

/// Kills one master of a 3-master/3-replica cluster and times its replacement.
fn kill_one_master(seed: u64, net: NetParams) -> Sample {
    let mut sim = cluster(seed, 6, 3, net);
    let m = sim.rng.below(3) as usize;
    let r = m + 3;
    let mid = sim.id(m);
    let seen = watch_fail(&mut sim, r, mid);
    let before = elections(&sim);
    let t0 = sim.now;
    sim.crash(m);
    let done = sim.run_until_cond(60_000, 1, |s| !s.promotions().is_empty());
    assert!(done, "seed {seed}: no promotion within 60 s");
    let p = sim.promotions();
    assert_eq!((p[0].node, p[0].former_master), (r, mid), "seed {seed}");
    let retries = elections(&sim) - before - 1;
    dump_if_retried(&sim, t0, retries);
    Sample { fail_known: seen.get().expect("FAIL seen before the promotion") - t0, promoted: p[0].at - t0, retries }
}

/// Kills two masters of a 5-master/5-replica cluster at once; one sample per replacement.
fn kill_two_masters(seed: u64, net: NetParams) -> Vec<Sample> {
    let mut sim = cluster(seed, 10, 5, net);
    let a = sim.rng.below(5) as usize;
    let b = (a + 1 + sim.rng.below(4) as usize) % 5;
    let ids = [sim.id(a), sim.id(b)];
    let seen = [(a, watch_fail(&mut sim, a + 5, ids[0])), (b, watch_fail(&mut sim, b + 5, ids[1]))];
    let before = elections(&sim);
    let t0 = sim.now;
    sim.crash(a);
    sim.crash(b);
    let done = sim.run_until_cond(60_000, 1, |s| s.promotions().len() >= 2);
    assert!(done, "seed {seed}: {:?}", sim.promotions());
    let mut retries = elections(&sim) - before - 2;
    dump_if_retried(&sim, t0, retries);
    seen.iter()
        .zip(&ids)
        .map(|((m, cell), id)| {
            let p = sim.promotions().into_iter().find(|p| p.former_master == *id).expect("replaced");
            assert_eq!(p.node, m + 5, "seed {seed}");
            let s = Sample { fail_known: cell.get().expect("FAIL seen") - t0, promoted: p.at - t0, retries };
            retries = 0;
            s
        })
        .collect()
}

/// Kills the master of two replicas (7 nodes: master 0 has replicas 3 and 6, their offsets
/// apart by the simulator's random replication lag, or equal) and times the first
/// promotion; an election the other replica started counts as a retry.
fn kill_a_master_of_two_replicas(seed: u64, net: NetParams) -> Sample {
    let mut sim = cluster(seed, 7, 3, net);
    let mid = sim.id(0);
    let seen3 = watch_fail(&mut sim, 3, mid);
    let seen6 = watch_fail(&mut sim, 6, mid);
    let before = elections(&sim);
    let t0 = sim.now;
    sim.crash(0);
    let done = sim.run_until_cond(60_000, 1, |s| !s.promotions().is_empty());
    assert!(done, "seed {seed}: no promotion within 60 s");
    let p = sim.promotions();
    let fail = if p[0].node == 3 { seen3.get() } else { seen6.get() };
    let retries = elections(&sim) - before - 1;
    dump_if_retried(&sim, t0, retries);
    Sample { fail_known: fail.expect("FAIL seen") - t0, promoted: p[0].at - t0, retries }
}

/// Median, 90th percentile and worst of `xs`.
fn spread(mut xs: Vec<u64>) -> (u64, u64, u64) {
    xs.sort_unstable();
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9), xs[xs.len() - 1])
}

fn report(what: &str, samples: &[Sample]) {
    let (m, p90, w) = spread(samples.iter().map(|s| s.fail_known).collect());
    println!("{what}: crash -> FAIL at the replica: median {m} ms, p90 {p90} ms, worst {w} ms");
    let (m, p90, w) = spread(samples.iter().map(|s| s.promoted).collect());
    println!("{what}: crash -> promotion:          median {m} ms, p90 {p90} ms, worst {w} ms");
    let (m, p90, w) = spread(samples.iter().map(|s| s.promoted - s.fail_known).collect());
    println!("{what}: FAIL -> promotion:           median {m} ms, p90 {p90} ms, worst {w} ms");
    let retried = samples.iter().filter(|s| s.retries > 0).count();
    println!("{what}: {retried} runs needed more than one election per master");
}

fn seeds() -> u64 {
    std::env::var("SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300)
}

#[test]
#[ignore]
fn failover_time_distribution() {
    let n = seeds();
    for (what, rst) in [("killed", KILLED), ("silent", SILENT)] {
        let samples: Vec<Sample> = (0..n).map(|seed| kill_one_master(10_000 + seed, loopback(rst))).collect();
        report(&format!("one master {what}"), &samples);
    }
    let samples: Vec<Sample> = (0..n).map(|seed| kill_one_master(40_000 + seed, NetParams::default())).collect();
    report("one master, 1-15 ms per message, half the crashes reset", &samples);
    let samples: Vec<Sample> = (0..n / 3).flat_map(|seed| kill_two_masters(20_000 + seed, loopback(0.5))).collect();
    report("two masters at once", &samples);
    let samples: Vec<Sample> =
        (0..n / 3).map(|seed| kill_a_master_of_two_replicas(30_000 + seed, loopback(0.5))).collect();
    report("two replicas", &samples);
}

/// The bound the issue asks for: a killed master's replica takes over within half a
/// second of the node timeout (measured worst: 2369 ms of 2500 over 3000 seeds).
#[test]
fn a_killed_master_is_replaced_within_half_a_second_of_the_node_timeout() {
    for seed in 0..100 {
        let s = kill_one_master(10_000 + seed, loopback(KILLED));
        assert!(s.fail_known >= NODE_TIMEOUT, "seed {seed}: FAIL before a node timeout of silence: {s:?}");
        assert!(s.promoted <= NODE_TIMEOUT + 500, "seed {seed}: {s:?}");
        assert_eq!(s.retries, 0, "seed {seed}");
    }
}

/// Silent deaths are found by Redis's rule, up to half a node timeout later (measured
/// over 3000 seeds: median 2924 ms, p90 3230 ms, worst 3360 ms).
#[test]
fn a_silent_master_is_replaced_within_one_and_a_half_node_timeouts_and_half_a_second() {
    for seed in 0..100 {
        let s = kill_one_master(10_000 + seed, loopback(SILENT));
        assert!(s.fail_known > NODE_TIMEOUT, "seed {seed}: {s:?}");
        assert!(s.promoted <= NODE_TIMEOUT + NODE_TIMEOUT / 2 + 500, "seed {seed}: {s:?}");
        // The election itself: a fixed node_timeout / 30, then the replica's next tick.
        assert!(s.promoted - s.fail_known <= 250, "seed {seed}: {s:?}");
        assert_eq!(s.retries, 0, "seed {seed}");
    }
}

/// Two masters failing at once: their replicas' elections do not split an epoch's votes
/// (the replica of the smaller master ID goes first), so neither waits for a retry.
#[test]
fn two_masters_killed_at_once_are_replaced_without_a_second_election() {
    for seed in 0..40 {
        for s in kill_two_masters(20_000 + seed, loopback(0.5)) {
            assert!(s.promoted <= NODE_TIMEOUT + NODE_TIMEOUT / 2 + 700, "seed {seed}: {s:?}");
            assert_eq!(s.retries, 0, "seed {seed}");
        }
    }
}

/// Two replicas of the dead master: the better placed one wins, the other does not ask.
#[test]
fn of_two_replicas_one_election_replaces_their_master() {
    for seed in 0..40 {
        let s = kill_a_master_of_two_replicas(30_000 + seed, loopback(0.5));
        assert!(s.promoted <= NODE_TIMEOUT + NODE_TIMEOUT / 2 + 500, "seed {seed}: {s:?}");
        assert_eq!(s.retries, 0, "seed {seed}");
    }
}
