//! How long an automatic failover takes, measured in the seeded simulator (`tests/sim`)
//! over many seeds: a master is killed at a random moment of its cluster's ping cycle, on
//! a loopback-like network (0–1 ms per message, no loss), and the time from the crash to
//! the replica knowing its master is FAIL and to the replica's promotion is recorded.
//!
//! `cargo test -p ferrokv-cluster --release --test failover_timing -- --ignored --nocapture`
//! prints the distributions (`SEEDS=n` for more or fewer seeds).

mod sim;

use sim::*;
use std::cell::Cell;
use std::rc::Rc;

/// Per-message delay of a loopback connection, in the simulator's milliseconds.
fn loopback(rst_on_crash: f64) -> NetParams {
    NetParams { min_delay: 0, max_delay: 1, loss: 0.0, rst_on_crash }
}

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
fn watch_fail(sim: &mut Sim, r: usize, about: ferrokv_cluster::NodeId) -> Rc<Cell<Option<u64>>> {
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

/// Kills one master of a 3-master/3-replica cluster and times its replacement.
fn kill_one_master(seed: u64, net: NetParams) -> Sample {
    let mut sim = build_cluster(seed, 6, 3);
    sim.net = net;
    // A random phase of every node's ping cycle.
    let settle = 2000 + sim.rng.below(2000);
    sim.run_for(settle);
    let m = sim.rng.below(3) as usize;
    let r = m + 3;
    let mid = sim.id(m);
    let seen = watch_fail(&mut sim, r, mid);
    let elections = sim.stats.get("elections").copied().unwrap_or(0);
    let t0 = sim.now;
    sim.crash(m);
    let done = sim.run_until_cond(60_000, 1, |s| !s.promotions().is_empty());
    assert!(done, "seed {seed}: no promotion within 60 s");
    let p = sim.promotions();
    assert_eq!((p[0].node, p[0].former_master), (r, mid), "seed {seed}");
    Sample {
        fail_known: seen.get().expect("FAIL seen before the promotion") - t0,
        promoted: p[0].at - t0,
        retries: sim.stats.get("elections").copied().unwrap_or(0) - elections - 1,
    }
}

/// Kills two masters of a 5-master/5-replica cluster at once; one sample per replacement.
fn kill_two_masters(seed: u64, net: NetParams) -> Vec<Sample> {
    let mut sim = build_cluster(seed, 10, 5);
    sim.net = net;
    let settle = 2000 + sim.rng.below(2000);
    sim.run_for(settle);
    let a = sim.rng.below(5) as usize;
    let b = (a + 1 + sim.rng.below(4) as usize) % 5;
    let ids = [sim.id(a), sim.id(b)];
    let seen = [(a, watch_fail(&mut sim, a + 5, ids[0])), (b, watch_fail(&mut sim, b + 5, ids[1]))];
    let elections = sim.stats.get("elections").copied().unwrap_or(0);
    let t0 = sim.now;
    sim.crash(a);
    sim.crash(b);
    let done = sim.run_until_cond(60_000, 1, |s| s.promotions().len() >= 2);
    assert!(done, "seed {seed}: {:?}", sim.promotions());
    let mut retries = sim.stats.get("elections").copied().unwrap_or(0) - elections - 2;
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
/// apart by the simulator's random replication lag, or equal) and times the first promotion.
fn kill_a_master_of_two_replicas(seed: u64, net: NetParams) -> Sample {
    let mut sim = build_cluster(seed, 7, 3);
    sim.net = net;
    let settle = 2000 + sim.rng.below(2000);
    sim.run_for(settle);
    let mid = sim.id(0);
    let seen3 = watch_fail(&mut sim, 3, mid);
    let seen6 = watch_fail(&mut sim, 6, mid);
    let elections = sim.stats.get("elections").copied().unwrap_or(0);
    let t0 = sim.now;
    sim.crash(0);
    let done = sim.run_until_cond(60_000, 1, |s| !s.promotions().is_empty());
    assert!(done, "seed {seed}: no promotion within 60 s");
    let p = sim.promotions();
    let fail = if p[0].node == 3 { seen3.get() } else { seen6.get() };
    Sample {
        fail_known: fail.expect("FAIL seen") - t0,
        promoted: p[0].at - t0,
        retries: sim.stats.get("elections").copied().unwrap_or(0) - elections - 1,
    }
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
    for rst in [1.0, 0.0] {
        let samples: Vec<Sample> = (0..n).map(|seed| kill_one_master(10_000 + seed, loopback(rst))).collect();
        report(&format!("one master, rst {rst}"), &samples);
    }
    let samples: Vec<Sample> = (0..n / 3).flat_map(|seed| kill_two_masters(20_000 + seed, loopback(0.5))).collect();
    report("two masters at once", &samples);
    let samples: Vec<Sample> =
        (0..n / 3).map(|seed| kill_a_master_of_two_replicas(30_000 + seed, loopback(0.5))).collect();
    report("two replicas", &samples);
}
