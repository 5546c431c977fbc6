//! The cluster state: size, ok/fail, slot coverage.

use super::*;

impl ClusterState {
    /// Recomputes `size` and ok/fail: every slot served by a non-FAIL node (with
    /// require-full-coverage) and a majority of slot-serving masters reachable.
    pub(crate) fn update_state(&mut self) {
        self.todo &= !todo::UPDATE_STATE;
        let now = self.now;
        let first = *self.first_update_state.get_or_insert(now);
        // A restarted master waits a little before accepting writes, to let the cluster
        // reconfigure it first.
        if self.me().is_master() && !self.state_ok && now.saturating_sub(first) < WRITABLE_DELAY_MS {
            return;
        }
        let mut ok = true;
        if self.cfg.require_full_coverage {
            // Every slot bound (the per-node counts add up), none to a failed node.
            let assigned: usize = self.nodes.iter().flatten().map(|n| n.numslots as usize).sum();
            ok = assigned == SLOTS && self.nodes.iter().flatten().all(|n| n.numslots == 0 || !n.failed());
        }
        let mut size = 0;
        let mut reachable = 0;
        for n in self.nodes.iter().flatten() {
            if n.is_master() && n.numslots > 0 {
                size += 1;
                if !n.flags.intersects(NodeFlags::FAIL | NodeFlags::PFAIL) {
                    reachable += 1;
                }
            }
        }
        self.size = size;
        if reachable < size / 2 + 1 {
            ok = false;
            self.among_minority_time = now;
        }
        if ok != self.state_ok {
            // A master back from a minority partition waits before accepting queries, so
            // that it can receive a configuration update first.
            let rejoin_delay = self.cfg.node_timeout_ms.clamp(MIN_REJOIN_DELAY_MS, MAX_REJOIN_DELAY_MS);
            if ok && self.me().is_master() && now.saturating_sub(self.among_minority_time) < rejoin_delay {
                return;
            }
            self.log(LogLevel::Warning, format!("Cluster state changed: {}", if ok { "ok" } else { "fail" }));
            self.state_ok = ok;
        }
    }

    pub(super) fn before_sleep(&mut self) {
        // Election steps wanted at once (our master was flagged FAIL, the election is due, a
        // vote arrived, a manual failover may start); each may ask for the next, e.g.
        // scheduling a manual failover's election then running it.
        if self.election_due() {
            self.todo |= todo::HANDLE_FAILOVER;
        }
        for _ in 0..3 {
            let wanted = self.todo & (todo::HANDLE_FAILOVER | todo::HANDLE_MANUAL_FAILOVER);
            if wanted == 0 {
                break;
            }
            self.todo &= !wanted;
            if self.me().is_slave() {
                if wanted & todo::HANDLE_MANUAL_FAILOVER != 0 {
                    self.handle_manual_failover();
                }
                self.handle_replica_failover();
            }
        }
        if self.todo & todo::UPDATE_STATE != 0 {
            self.update_state();
        }
        if self.todo & todo::SAVE_CONFIG != 0 {
            let fsync = self.todo & todo::FSYNC_CONFIG != 0;
            let text = self.nodes_conf();
            self.out.insert(0, Output::SaveConfig { text, fsync });
        }
        self.todo = 0;
        self.maybe_publish_view();
    }

    pub(super) fn topology(&self) -> Topology {
        let nodes = self
            .by_id
            .values()
            .map(|&i| {
                let n = self.node(i);
                TopoNode {
                    id: n.id,
                    flags: n.flags.0 & !(NodeFlags::MEET.0 | NodeFlags::MIGRATE_TO.0),
                    addr: (n.ip.clone(), n.port, n.pport, n.cport, n.hostname.clone()),
                    cores: n.cores.clone(),
                    master: n.master.map(|m| self.node(m).id),
                    config_epoch: n.config_epoch,
                    numslots: n.numslots,
                }
            })
            .collect();
        let named = |m: &BTreeMap<u16, Idx>| m.iter().map(|(s, n)| (*s, self.node(*n).id)).collect();
        Topology {
            nodes,
            slots_version: self.slots_version,
            migrating: named(&self.migrating_to),
            importing: named(&self.importing_from),
            current_epoch: self.current_epoch,
            state_ok: self.state_ok,
            size: self.size,
        }
    }

    /// Publishes a new snapshot when what routing and the CLUSTER commands show has
    /// changed, and at least every `view_refresh_ms` for the ping/pong times and links.
    pub(super) fn maybe_publish_view(&mut self) {
        let topo = self.topology();
        let due = match &self.last_view {
            None => true,
            Some((view, last)) => {
                *last != topo || self.now.saturating_sub(view.built_at_ms) >= self.cfg.view_refresh_ms
            }
        };
        if due {
            let view = Arc::new(ClusterView::build(self));
            self.out.push(Output::ViewChanged(view.clone()));
            self.last_view = Some((view, topo));
        }
    }

    pub(crate) fn log(&mut self, level: LogLevel, text: String) {
        if level >= self.cfg.log_level {
            self.out.push(Output::Log { level, text });
        }
    }
}
