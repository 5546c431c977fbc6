//! Replica migration (Redis's `clusterHandleSlaveMigration`): a replica of a master with
//! many working replicas moves to a master left without any, so that one more failure
//! does not leave slots without a failover candidate.
//!
//! Checked every tick by replicas, with `allow_replica_migration` on:
//!
//! - an *orphaned* master is a working master serving slots, with no replica that is not
//!   FAIL, that had replicas before (the MIGRATE_TO flag: it had a replica, or is a promoted
//!   replica of a master that had);
//! - only replicas of the masters with the most working replicas move, and only if that
//!   number is at least 2 and their master keeps more than `migration_barrier` working
//!   (not FAIL, not PFAIL) replicas;
//! - among those, the replica with the smallest node ID moves, to the first orphaned master
//!   in node-ID order, once it has been orphaned for [`MIGRATION_DELAY_MS`] (the natural
//!   replicas of a promoted master get that long to announce their new master);
//! - the cluster state must be ok.
//!
//! Two replicas may still decide to move at once when their views differ; that is harmless.

use super::*;

/// How long a master must stay orphaned before a replica moves to it.
const MIGRATION_DELAY_MS: u64 = 5000;

impl ClusterState {
    fn working_replicas(&self, master: Idx) -> usize {
        self.node(master).replicas.iter().filter(|&&r| !self.node(r).failed()).count()
    }

    /// Replica: finds orphaned masters and migrates to one if this node is the candidate.
    pub(super) fn replica_migration_check(&mut self) {
        if !self.me().is_slave() || !self.cfg.allow_replica_migration {
            return;
        }
        let mut orphaned = 0;
        let mut max_replicas = 0;
        let mut mine = 0;
        for i in self.node_indices() {
            let n = self.node(i);
            if n.flags.intersects(NodeFlags::MYSELF | NodeFlags::NOADDR | NodeFlags::HANDSHAKE)
                || !n.is_master()
                || n.failed()
            {
                continue;
            }
            let ok = self.working_replicas(i);
            if ok == 0 && n.numslots > 0 && n.flags.intersects(NodeFlags::MIGRATE_TO) {
                orphaned += 1;
            }
            max_replicas = max_replicas.max(ok);
            if self.me().master == Some(i) {
                mine = ok;
            }
        }
        if orphaned > 0 && max_replicas >= 2 && mine == max_replicas {
            self.handle_replica_migration(max_replicas);
        }
    }

    fn handle_replica_migration(&mut self, max_replicas: usize) {
        if !self.state_ok {
            return;
        }
        let Some(my_master) = self.me().master else { return };
        let staying = self
            .node(my_master)
            .replicas
            .iter()
            .filter(|&&r| !self.node(r).flags.intersects(NodeFlags::FAIL | NodeFlags::PFAIL))
            .count();
        if staying <= self.cfg.migration_barrier {
            return;
        }
        let now = self.now;
        let mut target = None;
        let mut candidate = self.me().id;
        for i in self.node_indices() {
            let n = self.node(i);
            let ok = if n.is_master() { self.working_replicas(i) } else { 0 };
            let orphaned = !n.is_slave() && !n.failed() && n.flags.intersects(NodeFlags::MIGRATE_TO) && ok == 0;
            if orphaned {
                if target.is_none() && n.numslots > 0 {
                    target = Some(i);
                }
                if n.orphaned_time == 0 {
                    self.node_mut(i).orphaned_time = now;
                }
            } else {
                self.node_mut(i).orphaned_time = 0;
            }
            if ok == max_replicas {
                for &r in &self.node(i).replicas {
                    candidate = candidate.min(self.node(r).id);
                }
            }
        }
        let Some(target) = target else { return };
        if candidate == self.me().id && now.saturating_sub(self.node(target).orphaned_time) > MIGRATION_DELAY_MS {
            let id = self.node(target).id;
            self.log(LogLevel::Warning, format!("Migrating to orphaned master {id}"));
            self.set_my_master(target);
            self.todo |= todo::SAVE_CONFIG | todo::UPDATE_STATE;
        }
    }
}
