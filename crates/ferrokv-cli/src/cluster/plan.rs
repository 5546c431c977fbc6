//! Which nodes become masters, which slots each master gets and whom each replica
//! follows, decided the way redis-cli's `--cluster create` decides it, so that the same
//! node list gives the same layout with either tool.
//!
//! Nodes are first interleaved by host (one from each host in turn, in the order hosts
//! first appear), so that masters spread over hosts. The first `nodes / (replicas + 1)`
//! of that order are masters; the 16384 slots are cut into as many consecutive ranges,
//! with redis-cli's single-precision rounding. The other nodes, rotated by one, are
//! handed to the masters in turn, each preferring a node on another host; nodes left
//! over become one extra replica each for the first masters. (redis-cli then shuffles
//! replicas at random to improve host anti-affinity further; this planner stops at
//! the deterministic assignment.)
//!
//! Moving slots between masters is planned here too, as redis-cli plans it:
//! [`reshard_table`] takes N slots from a set of sources in proportion to what each
//! holds (the largest source rounds up, the others down, each giving its lowest slots
//! first), and [`rebalance`] gives every master a weight, computes how many slots each
//! must give (positive balance) or take (negative), and pairs the neediest taker with
//! the largest giver until every balance is zero, each transfer a reshard table of
//! one source whose slots are then counted as moved.

use super::nodes::SLOTS;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// `(node index, first slot, last slot)` for each master, in slot order.
    pub masters: Vec<(usize, u16, u16)>,
    /// `(replica index, master index)` in the order they were assigned.
    pub replicas: Vec<(usize, usize)>,
    /// Where in `replicas` the extra (left-over) replicas start, when there are any.
    pub extra_from: Option<usize>,
}

/// redis-cli's refusal, as its lines.
pub fn too_few_masters(nodes: usize, replicas: usize) -> String {
    format!(
        "*** ERROR: Invalid configuration for cluster creation.\n\
         *** Redis Cluster requires at least 3 master nodes.\n\
         *** This is not possible with {nodes} nodes and {replicas} replicas per node.\n\
         *** At least {} nodes are required.",
        3 * (replicas + 1)
    )
}

/// The slot ranges of `masters` masters.
pub fn slot_ranges(masters: usize) -> Vec<(u16, u16)> {
    // Single precision on purpose: redis-cli computes in `float`, and the rounding
    // decides where ranges meet.
    let per_master = SLOTS as f32 / masters as f32;
    let mut out = Vec::with_capacity(masters);
    let mut first: i64 = 0;
    let mut cursor: f32 = 0.0;
    for i in 0..masters {
        let mut last = f64::from(cursor + per_master - 1.0).round() as i64;
        if last > SLOTS as i64 || i == masters - 1 {
            last = SLOTS as i64 - 1;
        }
        if last < first {
            last = first;
        }
        out.push((first as u16, last as u16));
        first = last + 1;
        cursor += per_master;
    }
    out
}

/// Plans a cluster of the nodes whose hosts are `hosts` (one entry per node).
pub fn plan(hosts: &[String], replicas: usize) -> Result<Plan, String> {
    let n = hosts.len();
    let master_count = n / (replicas + 1);
    if master_count < 3 {
        return Err(too_few_masters(n, replicas));
    }
    // Interleave by host.
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        match groups.iter_mut().find(|(h, _)| *h == host.as_str()) {
            Some((_, members)) => members.push(i),
            None => groups.push((host, vec![i])),
        }
    }
    let mut interleaved = Vec::with_capacity(n);
    for round in 0.. {
        if interleaved.len() == n {
            break;
        }
        for (_, members) in &groups {
            if let Some(&i) = members.get(round) {
                interleaved.push(i);
            }
        }
    }
    let masters: Vec<usize> = interleaved[..master_count].to_vec();
    let mut pool: Vec<Option<usize>> = interleaved[master_count..].iter().copied().map(Some).collect();
    if !pool.is_empty() {
        pool.rotate_left(1);
    }
    let ranges = slot_ranges(master_count);
    let mut plan = Plan {
        masters: masters.iter().zip(&ranges).map(|(&m, &(a, b))| (m, a, b)).collect(),
        replicas: Vec::new(),
        extra_from: None,
    };

    let mut start = 0;
    let mut available = pool.len();
    let mut extra = false;
    loop {
        for &master in &masters {
            let mut assigned = 0;
            while assigned < replicas && available > 0 {
                let mut found = None;
                let mut first_same_host = None;
                for (j, slot) in pool.iter_mut().enumerate().skip(start) {
                    let Some(candidate) = *slot else { continue };
                    if hosts[candidate] != hosts[master] {
                        found = Some(candidate);
                        *slot = None;
                        break;
                    }
                    if first_same_host.is_none() {
                        first_same_host = Some(j);
                    }
                }
                let replica = match (found, first_same_host) {
                    (Some(r), _) => r,
                    (None, Some(j)) => {
                        // Everything before `j` is taken: the pool now starts after it.
                        start = j + 1;
                        match pool[j] {
                            Some(r) => r,
                            None => break,
                        }
                    }
                    (None, None) => break,
                };
                assigned += 1;
                available -= 1;
                plan.replicas.push((replica, master));
                if extra {
                    break;
                }
            }
        }
        if !extra && available > 0 && replicas > 0 {
            extra = true;
            plan.extra_from = Some(plan.replicas.len());
            continue;
        }
        break;
    }
    Ok(plan)
}

/// A master as the slot planners see it: its id and the slots it serves, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub id: String,
    pub slots: Vec<u16>,
}

/// redis-cli's `clusterManagerComputeReshardTable`: up to `count` `(slot, source index)`
/// pairs taken from `sources`. Sources are taken largest first (ties in the given
/// order); each gives `count / total * its slots` slots, rounded up for the first and
/// down for the others, lowest slots first. Single precision, as redis-cli computes.
pub fn reshard_table(sources: &[Holder], count: usize) -> Vec<(u16, usize)> {
    let total: usize = sources.iter().map(|s| s.slots.len()).sum();
    let mut order: Vec<usize> = (0..sources.len()).collect();
    order.sort_by(|&a, &b| sources[b].slots.len().cmp(&sources[a].slots.len()));
    let mut table = Vec::new();
    if total == 0 {
        return table;
    }
    for (rank, &i) in order.iter().enumerate() {
        let share = count as f32 / total as f32 * sources[i].slots.len() as f32;
        let max = if rank == 0 { share.ceil() } else { share.floor() } as usize;
        for &slot in sources[i].slots.iter().take(max) {
            if table.len() >= count {
                break;
            }
            table.push((slot, i));
        }
    }
    table
}

/// One step of a rebalance: `slots` go from master `from` to master `to` (indexes into
/// the masters given to [`rebalance`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub from: usize,
    pub to: usize,
    pub slots: Vec<u16>,
}

/// What a rebalance would do.
#[derive(Clone, Debug, PartialEq)]
pub enum Rebalance {
    /// Every master is within the threshold: nothing to do.
    Balanced,
    /// Move these, in order; `nodes` and `total_weight` are what redis-cli reports.
    Moves { nodes: usize, total_weight: f32, transfers: Vec<Transfer> },
}

/// redis-cli's `--cluster rebalance` plan. `weights[i]` is master `i`'s weight (1 unless
/// given); without `use_empty`, masters that serve no slot take no part (weight 0). A
/// master is over the threshold when its slot count differs from its expected share
/// by more than `threshold` percent; if none is, the cluster is `Balanced`.
pub fn rebalance(masters: &[Holder], weights: &[f32], use_empty: bool, threshold: f32) -> Result<Rebalance, String> {
    let involved: Vec<usize> = (0..masters.len()).filter(|&i| use_empty || !masters[i].slots.is_empty()).collect();
    let total_weight: f32 = involved.iter().map(|&i| weights[i]).sum();
    if involved.is_empty() || total_weight <= 0.0 {
        return Err("*** No master with a positive weight to rebalance the slots over".to_string());
    }
    let mut balance: Vec<i64> = vec![0; masters.len()];
    let mut total_balance: i64 = 0;
    let mut over = false;
    for &i in &involved {
        let have = masters[i].slots.len() as i64;
        let expected = ((SLOTS as f32 / total_weight) * weights[i]) as i64;
        balance[i] = have - expected;
        total_balance += balance[i];
        if threshold > 0.0 {
            if have > 0 {
                let err = (100.0 - (100.0 * expected as f64 / have as f64)).abs();
                over |= err > f64::from(threshold);
            } else {
                over |= expected > 1;
            }
        }
    }
    if !over {
        return Ok(Rebalance::Balanced);
    }
    // Rounding can leave more to give than to take: the takers take one more each.
    while total_balance > 0 {
        for &i in &involved {
            if balance[i] <= 0 && total_balance > 0 {
                balance[i] -= 1;
                total_balance -= 1;
            }
        }
    }
    let mut order = involved.clone();
    order.sort_by_key(|&i| balance[i]);
    let mut slots: Vec<Vec<u16>> = masters.iter().map(|m| m.slots.clone()).collect();
    let mut transfers = Vec::new();
    let (mut dst, mut src) = (0usize, order.len() - 1);
    while dst < src {
        let (d, s) = (order[dst], order[src]);
        let n = balance[d].unsigned_abs().min(balance[s].unsigned_abs()) as usize;
        if n > 0 {
            let source = Holder { id: masters[s].id.clone(), slots: slots[s].clone() };
            let table = reshard_table(std::slice::from_ref(&source), n);
            if table.len() != n {
                return Err("*** Assertion failed: Reshard table != number of slots".to_string());
            }
            let moved: Vec<u16> = table.iter().map(|&(slot, _)| slot).collect();
            slots[s].retain(|x| !moved.contains(x));
            slots[d].extend(&moved);
            slots[d].sort_unstable();
            transfers.push(Transfer { from: s, to: d, slots: moved });
        }
        balance[d] += n as i64;
        balance[s] -= n as i64;
        if balance[d] == 0 {
            dst += 1;
        }
        if balance[s] == 0 {
            src -= 1;
        }
    }
    Ok(Rebalance::Moves { nodes: involved.len(), total_weight, transfers })
}

/// `rebalance --by load`: moves hot slots so that each master's load (the sum of its
/// slots' `load`, e.g. CLUSTER SLOT-STATS cpu-usec) comes near its weighted share of
/// the total. `load[i][j]` is the load of `masters[i].slots[j]`. While some master is
/// more than `threshold` percent above its share, the most loaded master (relative to
/// its share) gives the least loaded one the slot whose load best fills the gap
/// between them, among the slots that make both closer to their shares (load below
/// twice the gap) and are at least as hot as the mean slot; colder slots never move,
/// so a few hot slots may leave a master off its share by more than the threshold.
/// Each step lowers the pair's total distance to their shares, so it ends. Moves
/// between the same pair are merged, in order.
pub fn rebalance_by_load(
    masters: &[Holder],
    load: &[Vec<u64>],
    weights: &[f32],
    use_empty: bool,
    threshold: f32,
) -> Result<Rebalance, String> {
    let involved: Vec<usize> = (0..masters.len()).filter(|&i| use_empty || !masters[i].slots.is_empty()).collect();
    let total_weight: f32 = involved.iter().map(|&i| weights[i]).sum();
    if involved.is_empty() || total_weight <= 0.0 {
        return Err("*** No master with a positive weight to rebalance the slots over".to_string());
    }
    let total: u64 = involved.iter().map(|&i| load[i].iter().sum::<u64>()).sum();
    if total == 0 {
        return Err("*** No load recorded on the masters: enable cluster-slot-stats-enabled on each and let \
                    traffic run (or CONFIG RESETSTAT to start a fresh window)"
            .to_string());
    }
    let target: Vec<f64> =
        (0..masters.len()).map(|i| total as f64 * f64::from(weights[i]) / f64::from(total_weight)).collect();
    // Each master's slots with their load, hottest first.
    let mut held: Vec<Vec<(u16, u64)>> = (0..masters.len())
        .map(|i| {
            let mut v: Vec<(u16, u64)> = masters[i].slots.iter().copied().zip(load[i].iter().copied()).collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v
        })
        .collect();
    let mut have: Vec<f64> = (0..masters.len()).map(|i| load[i].iter().sum::<u64>() as f64).collect();
    let over = |i: usize, have: &[f64]| have[i] - target[i] > target[i] * f64::from(threshold) / 100.0;
    if !involved.iter().any(|&i| over(i, &have)) {
        return Ok(Rebalance::Balanced);
    }
    // Slots colder than the mean slot stay: moving them costs a migration each and
    // barely shifts the load (a thousand cold slots are not worth one hot one).
    let held_slots: usize = involved.iter().map(|&i| masters[i].slots.len()).sum();
    let mean = total as f64 / held_slots.max(1) as f64;
    let mut moves: Vec<(usize, usize, u16)> = Vec::new();
    for _ in 0..SLOTS {
        let by = |i: &&usize| have[**i] - target[**i];
        let (Some(&d), Some(&r)) = (
            involved.iter().max_by(|a, b| by(a).total_cmp(&by(b))),
            involved.iter().min_by(|a, b| by(a).total_cmp(&by(b))),
        ) else {
            break;
        };
        if d == r || !over(d, &have) {
            break;
        }
        let gap = (have[d] - target[d]).min(target[r] - have[r]);
        if gap <= 0.0 {
            break;
        }
        let best = held[d]
            .iter()
            .enumerate()
            .filter(|(_, &(_, l))| l as f64 >= mean && (l as f64) < 2.0 * gap)
            .min_by(|(_, a), (_, b)| (gap - a.1 as f64).abs().total_cmp(&(gap - b.1 as f64).abs()))
            .map(|(k, _)| k);
        let Some(k) = best else { break };
        let (slot, l) = held[d].remove(k);
        have[d] -= l as f64;
        have[r] += l as f64;
        // Its load counts for `r` now, but it is not offered again: a slot moves at
        // most once in a plan (it could otherwise go back where it came from).
        moves.push((d, r, slot));
    }
    if moves.is_empty() {
        return Ok(Rebalance::Balanced);
    }
    let mut transfers: Vec<Transfer> = Vec::new();
    for (from, to, slot) in moves {
        match transfers.iter_mut().find(|t| t.from == from && t.to == to) {
            Some(t) => t.slots.push(slot),
            None => transfers.push(Transfer { from, to, slots: vec![slot] }),
        }
    }
    Ok(Rebalance::Moves { nodes: involved.len(), total_weight, transfers })
}

/// The one id in `ids` that starts with `name` (redis-cli accepts abbreviated ids).
pub fn find_by_prefix<'a>(ids: impl IntoIterator<Item = &'a str>, name: &str) -> Option<usize> {
    let mut found = None;
    for (i, id) in ids.into_iter().enumerate() {
        if id == name {
            return Some(i);
        }
        if !name.is_empty() && id.starts_with(name) {
            if found.is_some() {
                return None;
            }
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(n: usize) -> Vec<String> {
        vec!["127.0.0.1".to_string(); n]
    }

    #[test]
    fn slot_ranges_match_redis_cli() {
        // What redis-cli 7.0's float expressions give, evaluated in C, for 3, 4, 5 and 7 masters.
        assert_eq!(slot_ranges(3), vec![(0, 5460), (5461, 10922), (10923, 16383)]);
        assert_eq!(slot_ranges(4), vec![(0, 4095), (4096, 8191), (8192, 12287), (12288, 16383)]);
        assert_eq!(slot_ranges(5), vec![(0, 3276), (3277, 6553), (6554, 9829), (9830, 13106), (13107, 16383)]);
        assert_eq!(
            slot_ranges(7),
            vec![(0, 2340), (2341, 4680), (4681, 7021), (7022, 9361), (9362, 11702), (11703, 14042), (14043, 16383)]
        );
    }

    #[test]
    fn ranges_cover_every_slot_once_for_any_master_count() {
        for m in 3..200 {
            let r = slot_ranges(m);
            assert_eq!(r.len(), m);
            assert_eq!(r[0].0, 0);
            assert_eq!(r[m - 1].1, 16383);
            for w in r.windows(2) {
                assert_eq!(w[0].1 + 1, w[1].0, "{m} masters: {r:?}");
            }
        }
    }

    #[test]
    fn six_local_nodes_with_one_replica_each() {
        // redis-cli: masters 0,1,2; replicas 4->0, 5->1, 3->2.
        let p = plan(&local(6), 1).expect("plan");
        assert_eq!(p.masters, vec![(0, 0, 5460), (1, 5461, 10922), (2, 10923, 16383)]);
        assert_eq!(p.replicas, vec![(4, 0), (5, 1), (3, 2)]);
        assert_eq!(p.extra_from, None);
    }

    #[test]
    fn left_over_nodes_become_extra_replicas() {
        let p = plan(&local(8), 1).expect("plan");
        assert_eq!(p.masters.len(), 4);
        assert_eq!(p.replicas.len(), 4);
        let p = plan(&local(7), 1).expect("plan");
        assert_eq!(p.masters.len(), 3);
        assert_eq!(p.replicas.len(), 4);
        assert_eq!(p.extra_from, Some(3));
        let mut replicas: Vec<usize> = p.replicas.iter().map(|r| r.0).collect();
        replicas.sort();
        assert_eq!(replicas, vec![3, 4, 5, 6]);
    }

    #[test]
    fn replicas_prefer_another_host() {
        let hosts: Vec<String> = ["a", "a", "a", "b", "b", "b"].iter().map(|h| h.to_string()).collect();
        let p = plan(&hosts, 1).expect("plan");
        // Interleaved: a0 b3 a1 | b4 a2 b5 → masters 0, 3, 1.
        assert_eq!(p.masters.iter().map(|m| m.0).collect::<Vec<_>>(), vec![0, 3, 1]);
        for (replica, master) in &p.replicas {
            assert_ne!(hosts[*replica], hosts[*master], "{:?}", p.replicas);
        }
        let mut all: Vec<usize> = p.replicas.iter().map(|r| r.0).collect();
        all.sort();
        assert_eq!(all, vec![2, 4, 5]);
    }

    #[test]
    fn fewer_than_three_masters_is_refused_with_redis_cli_words() {
        let e = plan(&local(5), 1).expect_err("5 nodes, 1 replica");
        assert!(e.contains("requires at least 3 master nodes"), "{e}");
        assert!(e.contains("not possible with 5 nodes and 1 replicas per node"), "{e}");
        assert!(e.ends_with("At least 6 nodes are required."), "{e}");
        assert!(plan(&local(2), 0).is_err());
        assert_eq!(plan(&local(3), 0).expect("3 masters").replicas, vec![]);
    }

    fn holder(id: &str, ranges: &[(u16, u16)]) -> Holder {
        Holder { id: id.to_string(), slots: ranges.iter().flat_map(|&(a, b)| a..=b).collect() }
    }

    fn three() -> Vec<Holder> {
        vec![holder("a", &[(0, 5460)]), holder("b", &[(5461, 10922)]), holder("c", &[(10923, 16383)])]
    }

    #[test]
    fn reshard_takes_in_proportion_largest_rounded_up() {
        // From b and c (5462 and 5461 slots), 101 slots: b gives ceil(50.5) = 51, c floor = 50.
        let m = three();
        let t = reshard_table(&m[1..], 101);
        assert_eq!(t.len(), 101);
        assert_eq!(t.iter().filter(|(_, i)| *i == 0).count(), 51);
        assert_eq!(t[0], (5461, 0));
        assert_eq!(t[51], (10923, 1));
        // A single source gives its lowest slots.
        let t = reshard_table(&m[..1], 3);
        assert_eq!(t, vec![(0, 0), (1, 0), (2, 0)]);
        // Never more than asked, never more than there is.
        assert_eq!(reshard_table(&m, 16384).len(), 16384);
        assert_eq!(reshard_table(&[holder("x", &[(0, 9)])], 50).len(), 10);
        assert!(reshard_table(&[], 5).is_empty());
    }

    #[test]
    fn a_balanced_cluster_needs_nothing() {
        assert_eq!(rebalance(&three(), &[1.0; 3], false, 2.0), Ok(Rebalance::Balanced));
        // An empty fourth master is ignored without use_empty.
        let mut m = three();
        m.push(holder("d", &[]));
        assert_eq!(rebalance(&m, &[1.0; 4], false, 2.0), Ok(Rebalance::Balanced));
    }

    #[test]
    fn an_empty_master_gets_a_quarter() {
        let mut m = three();
        m.push(holder("d", &[]));
        let Ok(Rebalance::Moves { nodes, total_weight, transfers }) = rebalance(&m, &[1.0; 4], true, 2.0) else {
            panic!("moves expected");
        };
        assert_eq!((nodes, total_weight), (4, 4.0));
        assert!(transfers.iter().all(|t| t.to == 3));
        let got: usize = transfers.iter().map(|t| t.slots.len()).sum();
        assert_eq!(got, 4096);
        // Each giver ends at its share (4096), give or take the rounding.
        for (i, h) in m.iter().enumerate().take(3) {
            let gave: usize = transfers.iter().filter(|t| t.from == i).map(|t| t.slots.len()).sum();
            assert_eq!(h.slots.len() - gave, 4096, "{transfers:?}");
        }
    }

    #[test]
    fn weight_zero_empties_a_master_and_moves_are_disjoint() {
        let m = vec![holder("a", &[(0, 4095)]), holder("b", &[(4096, 8191)]), holder("c", &[(8192, 16383)])];
        let Ok(Rebalance::Moves { transfers, .. }) = rebalance(&m, &[1.0, 1.0, 0.0], false, 2.0) else {
            panic!("moves expected");
        };
        let mut all: Vec<u16> = transfers.iter().flat_map(|t| t.slots.clone()).collect();
        assert_eq!(all.len(), 8192);
        assert!(transfers.iter().all(|t| t.from == 2));
        all.sort_unstable();
        all.dedup();
        assert_eq!(all, (8192..=16383).collect::<Vec<u16>>());
        assert!(rebalance(&m, &[0.0; 3], false, 2.0).is_err());
    }

    #[test]
    fn the_threshold_is_a_percentage_of_the_held_slots() {
        // 5600 vs expected 5461: 2.5% off. Over a 2% threshold, under a 3% one.
        let m = vec![holder("a", &[(0, 5599)]), holder("b", &[(5600, 10922)]), holder("c", &[(10923, 16383)])];
        assert!(matches!(rebalance(&m, &[1.0; 3], false, 2.0), Ok(Rebalance::Moves { .. })));
        assert_eq!(rebalance(&m, &[1.0; 3], false, 3.0), Ok(Rebalance::Balanced));
    }

    /// Each master's load once `transfers` are done.
    fn loads_after(m: &[Holder], load: &[Vec<u64>], transfers: &[Transfer]) -> Vec<u64> {
        let mut sums: Vec<u64> = load.iter().map(|l| l.iter().sum()).collect();
        for t in transfers {
            for s in &t.slots {
                // A slot may move twice; its load is found where it first was.
                let (i, j) = (0..m.len())
                    .find_map(|i| m[i].slots.iter().position(|x| x == s).map(|j| (i, j)))
                    .expect("a held slot");
                sums[t.from] -= load[i][j];
                sums[t.to] += load[i][j];
            }
        }
        sums
    }

    #[test]
    fn by_load_moves_hot_slots_not_counts() {
        // Equal slot counts; master 0 carries five hot slots.
        let m = three();
        let mut load: Vec<Vec<u64>> = m.iter().map(|h| vec![1; h.slots.len()]).collect();
        for l in &mut load[0][..5] {
            *l = 2_000;
        }
        let Rebalance::Moves { transfers, .. } = rebalance_by_load(&m, &load, &[1.0; 3], false, 2.0).unwrap() else {
            panic!("a skewed load needs moves")
        };
        let moved: Vec<u16> = transfers.iter().flat_map(|t| t.slots.clone()).collect();
        // Only hot slots move, off master 0: the largest distance to a share falls to
        // a fifth of what it was.
        assert!(moved.iter().all(|s| m[0].slots[..5].contains(s)), "{moved:?}");
        assert!((2..=3).contains(&moved.len()), "{moved:?}");
        let share = load.iter().flatten().sum::<u64>() as f64 / 3.0;
        let worst = |sums: &[u64]| sums.iter().map(|&l| (l as f64 - share).abs()).fold(0.0, f64::max);
        let before: Vec<u64> = load.iter().map(|l| l.iter().sum()).collect();
        let after = loads_after(&m, &load, &transfers);
        assert!(worst(&after) * 5.0 <= worst(&before), "{before:?} -> {after:?}");
        // A uniform load is balanced; none recorded is an error.
        let even: Vec<Vec<u64>> = m.iter().map(|h| vec![5; h.slots.len()]).collect();
        assert_eq!(rebalance_by_load(&m, &even, &[1.0; 3], false, 2.0), Ok(Rebalance::Balanced));
        let none: Vec<Vec<u64>> = m.iter().map(|h| vec![0; h.slots.len()]).collect();
        assert!(rebalance_by_load(&m, &none, &[1.0; 3], false, 2.0).is_err());
    }

    #[test]
    fn by_load_ends_near_the_weighted_shares() {
        let m = three();
        let mut x: u64 = 12345;
        let mut load: Vec<Vec<u64>> = m
            .iter()
            .map(|h| {
                h.slots
                    .iter()
                    .map(|_| {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        (x >> 40) % 100
                    })
                    .collect()
            })
            .collect();
        for l in load[2].iter_mut() {
            *l *= 3;
        }
        let weights = [1.0, 2.0, 1.0];
        let Rebalance::Moves { transfers, .. } = rebalance_by_load(&m, &load, &weights, false, 2.0).unwrap() else {
            panic!("needs moves")
        };
        let sums = loads_after(&m, &load, &transfers);
        let total: u64 = sums.iter().sum();
        for (i, w) in weights.iter().enumerate() {
            let share = total as f64 * f64::from(*w) / 4.0;
            assert!((sums[i] as f64 - share).abs() <= share * 0.03, "master {i}: {} vs {share}", sums[i]);
        }
    }

    #[test]
    fn abbreviated_ids_must_be_unambiguous() {
        let ids = ["abc1", "abd2", "x"];
        assert_eq!(find_by_prefix(ids, "abc"), Some(0));
        assert_eq!(find_by_prefix(ids, "ab"), None);
        assert_eq!(find_by_prefix(ids, "x"), Some(2));
        assert_eq!(find_by_prefix(ids, "q"), None);
        assert_eq!(find_by_prefix(ids, ""), None);
    }
}
