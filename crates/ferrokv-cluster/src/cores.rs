//! Direct-to-core endpoints: the client port of each core (shard thread) of a node, and
//! which core serves which slot.
//!
//! A ferrokv node is one process with several cores; each core may listen on a port of
//! its own (`core-ports`). The node gossips its [`CoreEndpoints`] in every bus header, so
//! every node can name, for any slot, the endpoint of the core that owns it: CLUSTER
//! SLOTS, CLUSTER SHARDS and MOVED/ASK use [`CoreEndpoints::port_of`] — a function of
//! the slot, so a slot moved between cores is advertised at its new core. A node with
//! no core ports (one core, or the option off) advertises its main port, as Redis does.
//! CLUSTER NODES and gossip keep one node per process.

use crate::slots::SLOTS;

/// The cores of one node: their announced client ports and the slot → core table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreEndpoints {
    /// Client port of core `i` (announced). Empty: the node advertises its main port.
    pub ports: Vec<u16>,
    /// The slot → core table as runs: `(last slot of the run, core)`, ascending, the
    /// last run ending at slot 16383. Empty when `ports` is.
    pub runs: Vec<(u16, u8)>,
}

impl CoreEndpoints {
    /// Endpoints from per-core ports and a slot → core function (evaluated for every
    /// slot; runs of equal cores are merged). A core index without a port is dropped
    /// (the slot is then advertised at the main port).
    pub fn new(ports: Vec<u16>, core_of: impl Fn(u16) -> usize) -> CoreEndpoints {
        if ports.is_empty() {
            return CoreEndpoints::default();
        }
        CoreEndpoints { ports, runs: Self::runs_of(core_of) }
    }

    /// A slot → core function as runs (see [`CoreEndpoints::runs`]).
    pub fn runs_of(core_of: impl Fn(u16) -> usize) -> Vec<(u16, u8)> {
        let mut runs: Vec<(u16, u8)> = Vec::new();
        for slot in 0..SLOTS as u16 {
            let core = core_of(slot).min(u8::MAX as usize) as u8;
            match runs.last_mut() {
                Some((last, c)) if *c == core => *last = slot,
                _ => runs.push((slot, core)),
            }
        }
        runs
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// The core that serves `slot`, when the node advertises cores.
    pub fn core_of(&self, slot: u16) -> Option<usize> {
        if self.ports.is_empty() {
            return None;
        }
        let i = self.runs.partition_point(|(last, _)| *last < slot);
        self.runs.get(i).map(|(_, c)| *c as usize)
    }

    /// The client port of the core that serves `slot`, if the node advertises one.
    pub fn port_of(&self, slot: u16) -> Option<u16> {
        self.core_of(slot).and_then(|c| self.ports.get(c).copied())
    }

    /// Whether the table is well formed: runs ascending, ending at the last slot, each
    /// naming a core that has a port.
    pub fn is_valid(&self) -> bool {
        if self.ports.is_empty() {
            return self.runs.is_empty();
        }
        self.runs.windows(2).all(|w| w[0].0 < w[1].0)
            && self.runs.last().is_some_and(|(last, _)| *last as usize == SLOTS - 1)
            && self.runs.iter().all(|(_, c)| (*c as usize) < self.ports.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_split_by_core() {
        let e = CoreEndpoints::new(vec![7100, 7101], |s| s as usize * 2 / SLOTS);
        assert!(e.is_valid());
        assert_eq!(e.runs, vec![(8191, 0), (16383, 1)]);
        assert_eq!(e.port_of(0), Some(7100));
        assert_eq!(e.port_of(8191), Some(7100));
        assert_eq!(e.port_of(8192), Some(7101));
        assert_eq!(e.port_of(16383), Some(7101));
    }

    #[test]
    fn none_without_ports() {
        let e = CoreEndpoints::new(Vec::new(), |_| 0);
        assert!(e.is_valid() && e.is_empty());
        assert_eq!(e.port_of(5), None);
    }

    #[test]
    fn table_not_formula() {
        // A slot moved to another core is advertised there.
        let e = CoreEndpoints::new(vec![1, 2], |s| usize::from(s == 100));
        assert_eq!(e.runs, vec![(99, 0), (100, 1), (16383, 0)]);
        assert_eq!(e.port_of(100), Some(2));
        assert_eq!(e.port_of(101), Some(1));
        assert!(!CoreEndpoints { ports: vec![1], runs: vec![(5, 0)] }.is_valid());
        assert!(!CoreEndpoints { ports: vec![1], runs: vec![(16383, 1)] }.is_valid());
    }
}
