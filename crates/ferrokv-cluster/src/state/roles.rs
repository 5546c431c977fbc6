//! Roles: masters, replicas and role changes.

use super::*;

impl ClusterState {
    pub(crate) fn add_replica(&mut self, master: Idx, replica: Idx) {
        let m = self.node_mut(master);
        if !m.replicas.contains(&replica) {
            m.replicas.push(replica);
            m.flags.insert(NodeFlags::MIGRATE_TO);
        }
    }

    pub(crate) fn remove_replica(&mut self, master: Idx, replica: Idx) {
        if let Some(m) = self.nodes[master].as_mut() {
            m.replicas.retain(|r| *r != replica);
            if m.replicas.is_empty() {
                m.flags.remove(NodeFlags::MIGRATE_TO);
            }
        }
    }

    /// A node we thought a replica now acts as a master.
    pub(crate) fn set_node_as_master(&mut self, n: Idx) {
        if self.node(n).is_master() {
            return;
        }
        if let Some(m) = self.node(n).master {
            self.remove_replica(m, n);
            if n != self.myself {
                self.node_mut(n).flags.insert(NodeFlags::MIGRATE_TO);
            }
        }
        let node = self.node_mut(n);
        node.flags.remove(NodeFlags::SLAVE);
        node.flags.insert(NodeFlags::MASTER);
        node.master = None;
        self.todo |= todo::SAVE_CONFIG | todo::UPDATE_STATE;
    }

    /// Makes this node a replica of `n` (Redis's `clusterSetMaster`).
    pub(crate) fn set_my_master(&mut self, n: Idx) {
        let me = self.myself;
        if n == me {
            return;
        }
        if self.me().is_master() {
            let m = self.node_mut(me);
            m.flags.remove(NodeFlags::MASTER | NodeFlags::MIGRATE_TO);
            m.flags.insert(NodeFlags::SLAVE);
            self.close_all_slots();
        } else if let Some(old) = self.me().master {
            self.remove_replica(old, me);
        }
        self.node_mut(me).master = Some(n);
        self.add_replica(n, me);
        let m = self.node(n);
        self.out.push(Output::ReplicateFrom { master: m.id, ip: m.ip.clone(), port: m.port });
        // A master that was paused for a manual failover resumes (as a replica now).
        self.reset_manual_failover();
    }
}
