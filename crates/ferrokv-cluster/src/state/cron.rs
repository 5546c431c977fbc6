//! The periodic work (Redis's `clusterCron`).

use super::*;

impl ClusterState {
    pub(super) fn cron(&mut self) {
        self.iteration += 1;
        let now = self.now;
        let timeout = self.cfg.node_timeout_ms;
        let handshake_timeout = timeout.max(1000);
        let mut update_state = false;
        let mut newly_timed_out = Vec::new();

        for i in self.node_indices() {
            let Some(n) = self.nodes[i].as_ref() else { continue };
            if n.flags.intersects(NodeFlags::MYSELF | NodeFlags::NOADDR) {
                continue;
            }
            if n.in_handshake() && now.saturating_sub(n.ctime) > handshake_timeout {
                self.del_node(i);
                continue;
            }
            if n.link.is_none() {
                self.create_outbound_link(i);
            }
        }

        // Once a second, ping the node with the oldest pong among five random ones.
        if self.iteration.is_multiple_of(10) {
            let all = self.node_indices();
            let mut best: Option<(u64, Idx)> = None;
            for _ in 0..5 {
                let i = all[self.rng.below(all.len() as u64) as usize];
                let n = self.node(i);
                if n.link.is_none() || n.ping_sent != 0 || n.flags.intersects(NodeFlags::MYSELF | NodeFlags::HANDSHAKE)
                {
                    continue;
                }
                if best.is_none_or(|(p, _)| p > n.pong_received) {
                    best = Some((n.pong_received, i));
                }
            }
            if let Some((_, i)) = best {
                if let Some(l) = self.node(i).link {
                    self.send_ping(l, MsgType::Ping);
                }
            }
        }

        for i in self.node_indices() {
            let n = self.node(i);
            if n.flags.intersects(NodeFlags::MYSELF | NodeFlags::NOADDR | NodeFlags::HANDSHAKE) {
                continue;
            }
            let ping_delay = now.saturating_sub(n.ping_sent);
            let data_delay = now.saturating_sub(n.data_received);
            // Waiting for a pong for half the timeout with no traffic at all on a link older
            // than the timeout: the link may be broken although the node is alive; reconnect.
            if let Some(l) = n.link {
                let link_age = self.links.get(&l).map_or(0, |l| now.saturating_sub(l.ctime));
                if link_age > timeout && n.ping_sent != 0 && ping_delay > timeout / 2 && data_delay > timeout / 2 {
                    self.free_link(l, true);
                }
            }
            let n = self.node(i);
            if let Some(l) = n.link {
                if n.ping_sent == 0 && now.saturating_sub(n.pong_received) > timeout / 2 {
                    self.send_ping(l, MsgType::Ping);
                    continue;
                }
            }
            // A master in a manual failover pings the replica on every tick: each ping
            // carries the paused offset.
            let n = self.node(i);
            if let Some(l) = n.link.filter(|_| self.mf.end != 0 && self.mf.replica == Some(i)) {
                if self.me().is_master() {
                    self.send_ping(l, MsgType::Ping);
                    continue;
                }
            }
            let n = self.node(i);
            if n.ping_sent == 0 {
                continue;
            }
            // Any data from the node proves it alive, not only pongs.
            if ping_delay.min(data_delay) > timeout && !n.flags.intersects(NodeFlags::PFAIL | NodeFlags::FAIL) {
                let id = n.id;
                self.node_mut(i).flags.insert(NodeFlags::PFAIL);
                self.log(LogLevel::Debug, format!("*** NODE {id} possibly failing"));
                update_state = true;
                newly_timed_out.push(i);
            }
        }
        if !newly_timed_out.is_empty() {
            self.report_timed_out_nodes(&newly_timed_out);
        }

        self.manual_failover_check_timeout();
        if self.me().is_slave() {
            self.handle_manual_failover();
            self.handle_replica_failover();
            self.replica_migration_check();
        }

        if update_state || !self.state_ok {
            self.update_state();
        }
    }
}
