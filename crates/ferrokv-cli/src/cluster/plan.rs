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
}
