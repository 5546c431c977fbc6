//! The node table: adding, finding, renaming and deleting nodes.

use super::*;

impl ClusterState {
    pub(crate) fn node(&self, i: Idx) -> &Node {
        self.nodes[i].as_ref().expect("live node index")
    }

    pub(crate) fn node_mut(&mut self, i: Idx) -> &mut Node {
        self.nodes[i].as_mut().expect("live node index")
    }

    pub(crate) fn me(&self) -> &Node {
        self.node(self.myself)
    }

    pub(crate) fn lookup(&self, id: &NodeId) -> Option<Idx> {
        self.by_id.get(id).copied()
    }

    pub(crate) fn lookup_bytes(&self, raw: &[u8]) -> Option<Idx> {
        NodeId::parse(raw).and_then(|id| self.lookup(&id))
    }

    /// Live node indices in ID order (the deterministic iteration order of the table).
    pub(crate) fn node_indices(&self) -> Vec<Idx> {
        self.by_id.values().copied().collect()
    }

    pub(crate) fn add_node(&mut self, node: Node) -> Idx {
        let id = node.id;
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i] = Some(node);
                i
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        };
        self.by_id.insert(id, i);
        i
    }

    /// Removes a node and every reference to it (Redis's `clusterDelNode`).
    pub(crate) fn del_node(&mut self, del: Idx) {
        if self.mf.replica == Some(del) {
            self.reset_manual_failover();
        }
        self.migrating_to.retain(|_, n| *n != del);
        self.importing_from.retain(|_, n| *n != del);
        for j in 0..SLOTS {
            if self.slots[j] == Some(del) {
                self.del_slot(j as u16);
            }
        }
        for i in self.node_indices() {
            if i != del {
                self.del_failure_report(i, del);
            }
        }
        let replicas = std::mem::take(&mut self.node_mut(del).replicas);
        for r in replicas {
            if let Some(n) = self.nodes[r].as_mut() {
                n.master = None;
            }
        }
        if let Some(m) = self.node(del).master {
            self.remove_replica(m, del);
        }
        let attached: Vec<LinkId> = self.links.iter().filter(|(_, l)| l.node == Some(del)).map(|(k, _)| *k).collect();
        for l in attached {
            self.free_link(l, true);
        }
        let id = self.node(del).id;
        self.by_id.remove(&id);
        self.nodes[del] = None;
        self.free.push(del);
    }

    pub(super) fn rename_node(&mut self, i: Idx, id: NodeId) {
        let old = self.node(i).id;
        self.by_id.remove(&old);
        self.node_mut(i).id = id;
        self.by_id.insert(id, i);
    }
}
