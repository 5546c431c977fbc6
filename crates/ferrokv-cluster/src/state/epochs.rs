//! Epochs: current and config epochs, bumps and collisions.

use super::*;

impl ClusterState {
    pub(crate) fn max_epoch(&self) -> u64 {
        self.nodes.iter().flatten().map(|n| n.config_epoch).max().unwrap_or(0).max(self.current_epoch)
    }

    /// A new config epoch for this node without agreement, if it is not already the greatest.
    pub(crate) fn bump_config_epoch_without_consensus(&mut self) -> bool {
        let max = self.max_epoch();
        let mine = self.me().config_epoch;
        if mine == 0 || mine != max {
            self.take_new_config_epoch();
            true
        } else {
            false
        }
    }

    /// A config epoch greater than any known, for this node, without agreement.
    pub(crate) fn take_new_config_epoch(&mut self) {
        self.current_epoch = self.max_epoch() + 1;
        let e = self.current_epoch;
        let me = self.myself;
        self.node_mut(me).config_epoch = e;
        self.todo |= todo::SAVE_CONFIG | todo::FSYNC_CONFIG;
        self.log(LogLevel::Warning, format!("New configEpoch set to {e}"));
    }

    /// Two masters share a config epoch: the one with the smaller ID moves to a new epoch.
    pub(super) fn handle_config_epoch_collision(&mut self, sender: Idx) {
        let (s, me) = (self.node(sender), self.me());
        if s.config_epoch != me.config_epoch || !s.is_master() || !me.is_master() {
            return;
        }
        if s.id <= me.id {
            return;
        }
        let sid = s.id;
        self.current_epoch += 1;
        let e = self.current_epoch;
        let me = self.myself;
        self.node_mut(me).config_epoch = e;
        self.todo |= todo::SAVE_CONFIG | todo::FSYNC_CONFIG;
        self.log(LogLevel::Verbose, format!("WARNING: configEpoch collision with node {sid}. configEpoch set to {e}"));
    }
}
