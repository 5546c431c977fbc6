//! Slot ownership: binding and unbinding slots.

use super::*;

impl ClusterState {
    /// Binds a free slot to `n`; false if the slot is taken.
    pub(crate) fn add_slot(&mut self, n: Idx, slot: u16) -> bool {
        if self.slots[slot as usize].is_some() {
            return false;
        }
        // A master getting its first slot is a replica-migration target when other masters
        // have replicas.
        let first = self.node(n).numslots == 0 && self.masters_have_slaves();
        let node = self.node_mut(n);
        if !node.slots.insert(slot) {
            node.numslots += 1;
            if first {
                node.flags.insert(NodeFlags::MIGRATE_TO);
            }
        }
        self.slots[slot as usize] = Some(n);
        self.slots_version += 1;
        true
    }

    /// Unbinds a slot; false if it was unassigned.
    pub(crate) fn del_slot(&mut self, slot: u16) -> bool {
        let Some(n) = self.slots[slot as usize] else { return false };
        let node = self.node_mut(n);
        if node.slots.remove(slot) {
            node.numslots -= 1;
        }
        self.slots[slot as usize] = None;
        // The mark means "the current owner stopped claiming it": it ends with the binding.
        self.owner_not_claiming.remove(slot);
        self.slots_version += 1;
        true
    }

    pub(crate) fn del_node_slots(&mut self, n: Idx) -> usize {
        let owned: Vec<u16> = self.node(n).slots.iter().collect();
        for &s in &owned {
            self.del_slot(s);
        }
        owned.len()
    }

    pub(super) fn masters_have_slaves(&self) -> bool {
        self.nodes.iter().flatten().any(|n| !n.is_slave() && !n.replicas.is_empty())
    }

    pub(super) fn slot_unclaimed(&self, slot: u16) -> bool {
        self.slots[slot as usize].is_none() || self.owner_not_claiming.contains(slot)
    }

    pub(crate) fn close_all_slots(&mut self) {
        self.migrating_to.clear();
        self.importing_from.clear();
    }
}
