//! Failure reports and the PFAIL to FAIL transition.
//!
//! A master's gossip about a node it flags PFAIL or FAIL is a failure report, valid for
//! `2 × node_timeout`; once the reports plus this node's own verdict (when a master) make a
//! majority of the slot-serving masters, the node is FAIL and the verdict is broadcast.
//!
//! Redis checks the quorum only when gossip arrives, and its gossip reaches a given master
//! about once a second, so FAIL trails the last needed PFAIL by up to a second or more.
//! Here a node that flags a peer PFAIL checks the reports it already holds at once, and a
//! master PONGs every other master at once (its gossip carries every PFAIL node, as always),
//! so the last of a majority to flag the peer holds the quorum at that moment. Which nodes
//! become FAIL is unchanged; only the wait for the next gossip is gone.

use super::*;

impl ClusterState {
    pub(super) fn add_failure_report(&mut self, failing: Idx, sender: Idx) -> bool {
        let now = self.now;
        let n = self.node_mut(failing);
        if let Some(r) = n.fail_reports.iter_mut().find(|r| r.node == sender) {
            r.time = now;
            return false;
        }
        n.fail_reports.push(FailReport { node: sender, time: now });
        true
    }

    pub(super) fn cleanup_failure_reports(&mut self, n: Idx) {
        let max = self.cfg.node_timeout_ms * FAIL_REPORT_VALIDITY_MULT;
        let now = self.now;
        self.node_mut(n).fail_reports.retain(|r| now.saturating_sub(r.time) <= max);
    }

    pub(super) fn del_failure_report(&mut self, n: Idx, sender: Idx) -> bool {
        let node = self.node_mut(n);
        let before = node.fail_reports.len();
        node.fail_reports.retain(|r| r.node != sender);
        if node.fail_reports.len() == before {
            return false;
        }
        self.cleanup_failure_reports(n);
        true
    }

    pub(crate) fn failure_reports_count(&mut self, n: Idx) -> usize {
        self.cleanup_failure_reports(n);
        self.node(n).fail_reports.len()
    }

    /// Nodes this node has just flagged PFAIL: the failure reports already collected may
    /// make a quorum with this node's own verdict, and the other masters learn the verdict at
    /// once instead of with the next gossip (see the module documentation).
    pub(super) fn report_timed_out_nodes(&mut self, timed_out: &[Idx]) {
        for &n in timed_out {
            self.mark_node_as_failing_if_needed(n);
        }
        if !self.me().is_master() || timed_out.iter().all(|&n| self.node(n).failed()) {
            return;
        }
        for i in self.node_indices() {
            let n = self.node(i);
            if i == self.myself
                || !n.is_master()
                || n.flags.intersects(NodeFlags::HANDSHAKE | NodeFlags::PFAIL | NodeFlags::FAIL)
            {
                continue;
            }
            if let Some(l) = n.link {
                self.send_ping(l, MsgType::Pong);
            }
        }
    }

    /// PFAIL → FAIL once a majority of slot-serving masters agree (this node included, when
    /// a master); the verdict is broadcast.
    pub(super) fn mark_node_as_failing_if_needed(&mut self, n: Idx) {
        let quorum = self.size / 2 + 1;
        if !self.node(n).timed_out() || self.node(n).failed() {
            return;
        }
        let mut failures = self.failure_reports_count(n);
        if self.me().is_master() {
            failures += 1;
        }
        if failures < quorum {
            return;
        }
        let id = self.node(n).id;
        self.log(LogLevel::Notice, format!("Marking node {id} as failing (quorum reached)."));
        let now = self.now;
        let node = self.node_mut(n);
        node.flags.remove(NodeFlags::PFAIL);
        node.flags.insert(NodeFlags::FAIL);
        node.fail_time = now;
        self.send_fail(id);
        self.todo |= todo::UPDATE_STATE | todo::SAVE_CONFIG;
        self.schedule_election_if_my_master(n);
    }

    /// A replica whose master was just flagged FAIL schedules its election now, not at the
    /// next tick.
    pub(super) fn schedule_election_if_my_master(&mut self, failed: Idx) {
        if self.me().is_slave() && self.me().master == Some(failed) {
            self.todo |= todo::HANDLE_FAILOVER;
        }
    }

    /// A FAIL node answered again: clear the flag if nobody is going to fail it over.
    pub(super) fn clear_node_failure_if_needed(&mut self, n: Idx) {
        let timeout = self.cfg.node_timeout_ms;
        let now = self.now;
        let node = self.node(n);
        let id = node.id;
        if node.is_slave() || node.numslots == 0 {
            let what = if node.is_slave() { "replica" } else { "master without slots" };
            self.log(LogLevel::Notice, format!("Clear FAIL state for node {id}: {what} is reachable again."));
            self.node_mut(n).flags.remove(NodeFlags::FAIL);
            self.todo |= todo::UPDATE_STATE | todo::SAVE_CONFIG;
        }
        let node = self.node(n);
        if node.is_master() && node.numslots > 0 && now.saturating_sub(node.fail_time) > timeout * FAIL_UNDO_TIME_MULT {
            self.log(
                LogLevel::Notice,
                format!(
                    "Clear FAIL state for node {id}: is reachable again and nobody is serving its slots after some time."
                ),
            );
            self.node_mut(n).flags.remove(NodeFlags::FAIL);
            self.todo |= todo::UPDATE_STATE | todo::SAVE_CONFIG;
        }
    }
}
