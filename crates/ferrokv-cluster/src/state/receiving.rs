//! Receiving: processing every kind of bus message.

use super::*;

impl ClusterState {
    pub(super) fn sender_from_link_and_msg(&mut self, link: LinkId, hdr: &Header) -> Option<Idx> {
        let l = self.links.get(&link)?;
        if let Some(n) = l.node {
            if !self.node(n).in_handshake() {
                return Some(n);
            }
        }
        let sender = self.lookup(&hdr.sender)?;
        if self.links.get(&link).is_some_and(|l| l.node.is_none()) {
            // First message on an inbound link from a known node: remember whose it is; an
            // older inbound link from the same node is outdated.
            if let Some(old) = self.node(sender).inbound_link {
                self.free_link(old, true);
            }
            self.node_mut(sender).inbound_link = Some(link);
            if let Some(l) = self.links.get_mut(&link) {
                l.node = Some(sender);
            }
        }
        Some(sender)
    }

    /// The address a peer tells us to use, or the connection's peer address.
    pub(super) fn announced_ip(&self, link: LinkId, hdr: &Header) -> Option<String> {
        if !hdr.myip.is_empty() {
            return Some(hdr.myip.clone());
        }
        self.links.get(&link).map(|l| l.peer_ip.clone()).filter(|ip| !ip.is_empty())
    }

    /// Updates a node's address from a message received on its inbound link.
    pub(super) fn update_address_if_needed(&mut self, n: Idx, link: LinkId, hdr: &Header) -> bool {
        if self.node(n).link == Some(link) {
            return false;
        }
        let Some(ip) = self.announced_ip(link, hdr) else { return false };
        let node = self.node(n);
        if node.port == hdr.port && node.cport == hdr.cport && node.pport == hdr.pport && node.ip == ip {
            return false;
        }
        let old_link = node.link;
        let node = self.node_mut(n);
        node.ip = ip;
        node.port = hdr.port;
        node.pport = hdr.pport;
        node.cport = hdr.cport;
        node.flags.remove(NodeFlags::NOADDR);
        let (id, ip, port) = (node.id, node.ip.clone(), node.port);
        if let Some(l) = old_link {
            self.free_link(l, true);
        }
        self.log(LogLevel::Warning, format!("Address updated for node {id}, now {ip}:{port}"));
        if self.me().is_slave() && self.me().master == Some(n) {
            self.out.push(Output::ReplicateFrom { master: id, ip, port });
        }
        true
    }

    pub(super) fn process_packet(&mut self, link: LinkId, msg: Message) {
        let ty = msg.msg_type();
        self.stats_received[ty as usize] += 1;
        if !self.links.contains_key(&link) {
            if !link.is_inbound() {
                return; // A link we already closed.
            }
            self.links.insert(
                link,
                Link { node: None, ctime: self.now, connected: true, peer_ip: String::new(), local_ip: String::new() },
            );
        }
        let hdr = &msg.header;
        let now = self.now;
        let sender = self.sender_from_link_and_msg(link, hdr);
        if sender == Some(self.myself) {
            // Our own messages come back when we meet our own address (or a peer lies):
            // answer, drop the handshake entry that led here, and take nothing from them.
            if matches!(ty, MsgType::Ping | MsgType::Meet) {
                self.send_ping(link, MsgType::Pong);
            }
            if let Some(n) = self.links.get(&link).and_then(|l| l.node).filter(|&n| n != self.myself) {
                if !link.is_inbound() && self.node(n).in_handshake() {
                    self.del_node(n);
                }
            }
            return;
        }
        if let Some(s) = sender {
            self.node_mut(s).data_received = now;
        }
        let mut sender_config_epoch = 0;
        if let Some(s) = sender.filter(|&s| !self.node(s).in_handshake()) {
            sender_config_epoch = hdr.config_epoch;
            if hdr.current_epoch > self.current_epoch {
                self.current_epoch = hdr.current_epoch;
                self.todo |= todo::SAVE_CONFIG;
            }
            if hdr.config_epoch > self.node(s).config_epoch {
                self.node_mut(s).config_epoch = hdr.config_epoch;
                self.todo |= todo::SAVE_CONFIG | todo::FSYNC_CONFIG;
            }
            self.node_mut(s).repl_offset = hdr.repl_offset;
            self.note_paused_master_offset(s, hdr);
        }

        if matches!(ty, MsgType::Ping | MsgType::Meet) {
            // Our own address, as the peers reach us, unless announced.
            if (ty == MsgType::Meet || self.me().ip.is_empty()) && self.cfg.announce_ip.is_none() {
                let local = self.links.get(&link).map(|l| l.local_ip.clone()).unwrap_or_default();
                if !local.is_empty() && local != self.me().ip {
                    let me = self.myself;
                    self.node_mut(me).ip = local.clone();
                    self.log(LogLevel::Warning, format!("IP address for this node updated to {local}"));
                    self.todo |= todo::SAVE_CONFIG;
                }
            }
            if sender.is_none() && ty == MsgType::Meet {
                // Add the node in handshake; its details arrive with its PONGs.
                if let Some(ip) = self.announced_ip(link, hdr) {
                    let id = NodeId::random(&mut self.rng);
                    let mut n = Node::new(id, NodeFlags::HANDSHAKE, now);
                    n.ip = ip;
                    n.port = hdr.port;
                    n.pport = hdr.pport;
                    n.cport = hdr.cport;
                    self.add_node(n);
                    self.todo |= todo::SAVE_CONFIG;
                }
                self.process_gossip(&msg, None);
            }
            self.send_ping(link, MsgType::Pong);
        }

        match &msg.body {
            Body::Ping(_) | Body::Pong(_) | Body::Meet(_) => {
                self.process_config(link, &msg, sender, sender_config_epoch);
            }
            Body::Fail { about } => {
                let Some(_) = sender else {
                    self.log(
                        LogLevel::Notice,
                        format!("Ignoring FAIL message from unknown node {} about {}", hdr.sender, about),
                    );
                    return;
                };
                if let Some(f) = self.lookup(about) {
                    if !self.node(f).flags.intersects(NodeFlags::FAIL | NodeFlags::MYSELF) {
                        self.log(
                            LogLevel::Notice,
                            format!("FAIL message received from {} about {}", hdr.sender, about),
                        );
                        let n = self.node_mut(f);
                        n.flags.insert(NodeFlags::FAIL);
                        n.fail_time = now;
                        n.flags.remove(NodeFlags::PFAIL);
                        self.todo |= todo::SAVE_CONFIG | todo::UPDATE_STATE;
                        self.schedule_election_if_my_master(f);
                    }
                }
            }
            Body::FailoverAuthRequest => {
                if let Some(s) = sender {
                    self.send_failover_auth_if_needed(s, hdr);
                }
            }
            Body::FailoverAuthAck => {
                if let Some(s) = sender {
                    self.on_failover_auth_ack(s, hdr.current_epoch);
                }
            }
            Body::MfStart => {
                if let Some(s) = sender {
                    self.on_mfstart(s, link);
                }
            }
            Body::Publish { channel, message } | Body::PublishShard { channel, message } => {
                // As Redis: only from a node we know.
                if sender.is_some() {
                    let shard = matches!(msg.body, Body::PublishShard { .. });
                    self.out.push(Output::Deliver { shard, channel: channel.clone(), message: message.clone() });
                }
            }
            Body::Update { node, config_epoch, slots } => {
                if sender.is_none() {
                    return;
                }
                let Some(n) = self.lookup(node) else { return };
                self.apply_update(n, *config_epoch, slots);
            }
        }
    }

    /// A whole-slot migration's handoff: `n` claimed `slots` at `config_epoch`. As an
    /// UPDATE, but the slots are rebound even when gossip already brought that epoch.
    pub(crate) fn apply_handoff(&mut self, n: Idx, config_epoch: u64, slots: &SlotBitmap) {
        if self.node(n).config_epoch < config_epoch {
            self.apply_update(n, config_epoch, slots);
        } else {
            let epoch = self.node(n).config_epoch;
            self.update_slots_config_with(n, epoch, slots);
        }
    }

    /// An UPDATE's effect: `n` owns `slots` at `config_epoch`, if that is newer than
    /// what we know of `n` (also a whole-slot migration's handoff, told directly).
    pub(crate) fn apply_update(&mut self, n: Idx, config_epoch: u64, slots: &SlotBitmap) {
        if self.node(n).config_epoch >= config_epoch {
            return;
        }
        if self.node(n).is_slave() {
            self.set_node_as_master(n);
        }
        self.node_mut(n).config_epoch = config_epoch;
        self.todo |= todo::SAVE_CONFIG | todo::FSYNC_CONFIG;
        self.update_slots_config_with(n, config_epoch, slots);
    }

    /// PING, PONG and MEET: handshake completion, roles, slots, epochs, gossip.
    pub(super) fn process_config(
        &mut self,
        link: LinkId,
        msg: &Message,
        sender: Option<Idx>,
        sender_config_epoch: u64,
    ) {
        let hdr = &msg.header;
        let ty = msg.msg_type();
        let link_node = self.links.get(&link).and_then(|l| l.node);
        if let (LinkId::Outbound(_), Some(ln)) = (link, link_node) {
            if self.node(ln).in_handshake() {
                if let Some(s) = sender {
                    // We met a node we already know, under its real ID: keep that entry.
                    if self.update_address_if_needed(s, link, hdr) {
                        self.todo |= todo::SAVE_CONFIG | todo::UPDATE_STATE;
                    }
                    self.del_node(ln);
                    return;
                }
                self.rename_node(ln, hdr.sender);
                let n = self.node_mut(ln);
                n.flags.remove(NodeFlags::HANDSHAKE);
                n.flags.insert(NodeFlags(hdr.flags.0 & (NodeFlags::MASTER.0 | NodeFlags::SLAVE.0)));
                self.todo |= todo::SAVE_CONFIG;
            } else if self.node(ln).id != hdr.sender {
                // Another node answers at this address now: the address is no longer known.
                let n = self.node_mut(ln);
                n.flags.insert(NodeFlags::NOADDR);
                n.ip.clear();
                n.port = 0;
                n.pport = 0;
                n.cport = 0;
                self.free_link(link, true);
                self.todo |= todo::SAVE_CONFIG;
                return;
            }
        }

        if let Some(s) = sender {
            self.node_mut(s).flags.set(NodeFlags::NOFAILOVER, hdr.flags.intersects(NodeFlags::NOFAILOVER));
            if ty == MsgType::Ping && !self.node(s).in_handshake() && self.update_address_if_needed(s, link, hdr) {
                self.todo |= todo::SAVE_CONFIG | todo::UPDATE_STATE;
            }
        }

        if let (LinkId::Outbound(_), Some(ln), MsgType::Pong) = (link, link_node, ty) {
            let now = self.now;
            let n = self.node_mut(ln);
            n.pong_received = now;
            n.ping_sent = 0;
            if n.timed_out() {
                n.flags.remove(NodeFlags::PFAIL);
                self.todo |= todo::SAVE_CONFIG | todo::UPDATE_STATE;
            } else if n.failed() {
                self.clear_node_failure_if_needed(ln);
            }
        }

        let Some(s) = sender else { return };

        // Role changes.
        match hdr.master {
            None => self.set_node_as_master(s),
            Some(mid) => {
                let master = self.lookup(&mid);
                if self.node(s).is_master() {
                    self.del_node_slots(s);
                    let n = self.node_mut(s);
                    n.flags.remove(NodeFlags::MASTER | NodeFlags::MIGRATE_TO);
                    n.flags.insert(NodeFlags::SLAVE);
                    self.todo |= todo::SAVE_CONFIG | todo::UPDATE_STATE;
                }
                if let Some(m) = master {
                    if self.node(s).master != Some(m) && m != s {
                        if let Some(old) = self.node(s).master {
                            self.remove_replica(old, s);
                        }
                        self.add_replica(m, s);
                        self.node_mut(s).master = Some(m);
                        self.todo |= todo::SAVE_CONFIG;
                    }
                }
            }
        }

        // Slots: only when the claim differs from what we have for the sender (or its master).
        let sender_master = if self.node(s).is_master() { Some(s) } else { self.node(s).master };
        let dirty = sender_master.is_some_and(|m| self.node(m).slots != hdr.slots);
        if dirty && self.node(s).is_master() {
            self.update_slots_config_with(s, sender_config_epoch, &hdr.slots);
        }
        if dirty {
            // The sender claims slots a greater epoch has taken over: tell it who owns them.
            for slot in hdr.slots.iter() {
                if self.slots[slot as usize] == Some(s) || self.slot_unclaimed(slot) {
                    continue;
                }
                let Some(owner) = self.slots[slot as usize] else { continue };
                if self.node(owner).config_epoch > sender_config_epoch {
                    let (sid, oid) = (self.node(s).id, self.node(owner).id);
                    self.log(
                        LogLevel::Verbose,
                        format!("Node {sid} has old slots configuration, sending an UPDATE message about {oid}"),
                    );
                    let l = self.node(s).link;
                    self.send_update(l, owner);
                    break;
                }
            }
        }

        if self.me().is_master() && self.node(s).is_master() && sender_config_epoch == self.me().config_epoch {
            self.handle_config_epoch_collision(s);
        }

        self.process_gossip(msg, Some(s));
        // The hostname travels as a ping extension in Redis; absent means none.
        if self.nodes[s].is_some() && self.node(s).hostname != hdr.hostname {
            self.node_mut(s).hostname = hdr.hostname.clone();
        }
        // So are the per-core endpoints (ferrokv's own; see `crate::cores`).
        if self.nodes[s].is_some() && self.node(s).cores != *hdr.cores {
            self.node_mut(s).cores = (*hdr.cores).clone();
            // Kept in nodes.conf, so a restart advertises them before the next header.
            self.todo |= todo::SAVE_CONFIG;
        }
    }

    pub(super) fn process_gossip(&mut self, msg: &Message, sender: Option<Idx>) {
        let now = self.now;
        for g in msg.gossip() {
            match self.lookup(&g.id) {
                Some(n) => {
                    if let Some(s) = sender.filter(|&s| self.node(s).is_master() && n != self.myself) {
                        if g.flags.intersects(NodeFlags::FAIL | NodeFlags::PFAIL) {
                            if self.add_failure_report(n, s) {
                                let (a, b) = (self.node(s).id, self.node(n).id);
                                self.log(LogLevel::Verbose, format!("Node {a} reported node {b} as not reachable."));
                            }
                            self.mark_node_as_failing_if_needed(n);
                        } else if self.del_failure_report(n, s) {
                            let (a, b) = (self.node(s).id, self.node(n).id);
                            self.log(LogLevel::Verbose, format!("Node {a} reported node {b} is back online."));
                        }
                    }
                    // Take a fresher pong time from peers while we have nothing pending (Redis
                    // gossips it in seconds; so do we, in effect).
                    let pong_time = g.pong_received / 1000 * 1000;
                    if !g.flags.intersects(NodeFlags::FAIL | NodeFlags::PFAIL)
                        && self.node(n).ping_sent == 0
                        && self.failure_reports_count(n) == 0
                        && pong_time <= now + 500
                        && pong_time > self.node(n).pong_received
                    {
                        self.node_mut(n).pong_received = pong_time;
                    }
                    // A node we cannot reach is reachable by a peer at another address.
                    let node = self.node(n);
                    if node.flags.intersects(NodeFlags::FAIL | NodeFlags::PFAIL)
                        && !g.flags.intersects(NodeFlags::NOADDR | NodeFlags::FAIL | NodeFlags::PFAIL)
                        && (node.ip != g.ip || node.port != g.port || node.cport != g.cport)
                    {
                        if let Some(l) = node.link {
                            self.free_link(l, true);
                        }
                        let node = self.node_mut(n);
                        node.ip = g.ip.clone();
                        node.port = g.port;
                        node.pport = g.pport;
                        node.cport = g.cport;
                        node.flags.remove(NodeFlags::NOADDR);
                    }
                }
                None => {
                    // Learn the node under its real ID, trusting only known senders (an
                    // address alone could belong to another cluster now).
                    if sender.is_some() && !g.flags.intersects(NodeFlags::NOADDR) && !self.blacklisted(&g.id) {
                        let keep = NodeFlags::MASTER.0
                            | NodeFlags::SLAVE.0
                            | NodeFlags::PFAIL.0
                            | NodeFlags::FAIL.0
                            | NodeFlags::NOFAILOVER.0;
                        let mut node = Node::new(g.id, NodeFlags(g.flags.0 & keep), now);
                        node.ip = g.ip.clone();
                        node.port = g.port;
                        node.pport = g.pport;
                        node.cport = g.cport;
                        self.add_node(node);
                    }
                }
            }
        }
    }

    /// Rebinds the slots `sender` claims with a greater config epoch than their owner's (or
    /// unassigned ones), unless we are importing them; follows the consequences for us.
    pub(super) fn update_slots_config_with(&mut self, sender: Idx, sender_config_epoch: u64, slots: &SlotBitmap) {
        let me = self.myself;
        if sender == me {
            self.log(LogLevel::Warning, "Discarding UPDATE message about myself.".into());
            return;
        }
        let cur_master = if self.me().is_master() { Some(me) } else { self.me().master };
        let mut new_master = None;
        let mut dirty_slots = Vec::new();
        let mut sender_slots = 0;
        let mut migrated_our_slots = 0;
        for j in 0..SLOTS as u16 {
            if slots.contains(j) {
                sender_slots += 1;
                if self.slots[j as usize] == Some(sender) {
                    self.owner_not_claiming.remove(j);
                    continue;
                }
                if self.importing_from.contains_key(&j) {
                    continue;
                }
                let owner = self.slots[j as usize];
                if self.slot_unclaimed(j) || owner.is_some_and(|o| self.node(o).config_epoch < sender_config_epoch) {
                    if owner == Some(me) {
                        dirty_slots.push(j);
                    }
                    if owner.is_some() && owner == cur_master {
                        new_master = Some(sender);
                        migrated_our_slots += 1;
                    }
                    self.del_slot(j);
                    self.add_slot(sender, j);
                    self.owner_not_claiming.remove(j);
                    self.todo |= todo::SAVE_CONFIG | todo::UPDATE_STATE | todo::FSYNC_CONFIG;
                }
            } else if self.slots[j as usize] == Some(sender) {
                // Keep the slot bound to its owner until someone else claims it, but do not
                // spread the stale claim in UPDATEs.
                self.owner_not_claiming.insert(j);
            }
        }

        let cur_master_empty = cur_master.is_some_and(|m| self.node(m).numslots == 0);
        if new_master.is_some()
            && cur_master_empty
            && (self.cfg.allow_replica_migration || sender_slots == migrated_our_slots)
        {
            let sid = self.node(sender).id;
            self.log(
                LogLevel::Warning,
                format!("Configuration change detected. Reconfiguring myself as a replica of {sid}"),
            );
            self.set_my_master(sender);
            self.todo |= todo::SAVE_CONFIG | todo::UPDATE_STATE | todo::FSYNC_CONFIG;
        } else if let Some(grand) = self.me().master.and_then(|m| self.node(m).master).filter(|&g| g != me) {
            let gid = self.node(grand).id;
            self.log(
                LogLevel::Warning,
                format!("I'm a sub-replica! Reconfiguring myself as a replica of grandmaster {gid}"),
            );
            self.set_my_master(grand);
            self.todo |= todo::SAVE_CONFIG | todo::UPDATE_STATE | todo::FSYNC_CONFIG;
        } else if !dirty_slots.is_empty() {
            self.out.push(Output::DeleteKeysInSlots(dirty_slots));
        }
    }
}
