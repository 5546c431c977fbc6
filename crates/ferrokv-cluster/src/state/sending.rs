//! Sending: PING/PONG/MEET with gossip, broadcasts, FAIL and UPDATE.

use super::*;
use crate::wire::mflags;

/// Who a PONG broadcast goes to (Redis's `CLUSTER_BROADCAST_*`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum PongTo {
    All,
    /// The replicas of our master (or of us): the siblings an election ranks against.
    MyShardReplicas,
}

impl ClusterState {
    pub(super) fn send(&mut self, link: LinkId, msg: Arc<Message>) {
        self.stats_sent[msg.msg_type() as usize] += 1;
        self.out.push(Output::Send { link, msg });
    }

    pub(crate) fn build_header(&self) -> Header {
        let me = self.me();
        let master = match (me.is_slave(), me.master) {
            (true, Some(m)) => self.node(m),
            _ => me,
        };
        Header {
            sender: me.id,
            current_epoch: self.current_epoch,
            config_epoch: master.config_epoch,
            repl_offset: self.my_repl_offset,
            flags: NodeFlags(me.flags.0 & !(NodeFlags::MEET.0)),
            state_ok: self.state_ok,
            // A master paused for a manual failover says so: its offset is final.
            mflags: if me.is_master() && self.mf.end != 0 { mflags::PAUSED } else { 0 },
            myip: self.cfg.announce_ip.clone().unwrap_or_default(),
            port: me.port,
            pport: me.pport,
            cport: me.cport,
            hostname: me.hostname.clone(),
            cores: Box::new(me.cores.clone()),
            master: me.master.map(|m| self.node(m).id),
            slots: master.slots.clone(),
        }
    }

    pub(super) fn gossip_entry(&self, n: Idx) -> Gossip {
        let n = self.node(n);
        Gossip {
            id: n.id,
            ping_sent: n.ping_sent,
            pong_received: n.pong_received,
            ip: n.ip.clone(),
            port: n.port,
            cport: n.cport,
            pport: n.pport,
            flags: n.flags,
        }
    }

    /// Sends a PING, PONG or MEET with a gossip section: a random tenth of the nodes (at
    /// least 3) plus every node in PFAIL state, so failure reports spread fast.
    pub(crate) fn send_ping(&mut self, link: LinkId, ty: MsgType) {
        self.pings_built += 1;
        let stamp = self.pings_built;
        let all = self.node_indices();
        let mut freshnodes = all.len() as i64 - 2;
        let mut wanted = (all.len() / 10).max(3) as i64;
        if wanted > freshnodes {
            wanted = freshnodes;
        }
        if let (LinkId::Outbound(_), MsgType::Ping) = (link, ty) {
            if let Some(n) = self.links.get(&link).and_then(|l| l.node) {
                let now = self.now;
                self.node_mut(n).ping_sent = now;
            }
        }
        let header = self.build_header();
        let mut gossip = Vec::new();
        let mut max_iterations = wanted * 3;
        while freshnodes > 0 && (gossip.len() as i64) < wanted && max_iterations > 0 {
            max_iterations -= 1;
            let i = all[self.rng.below(all.len() as u64) as usize];
            if i == self.myself {
                continue;
            }
            let n = self.node(i);
            if n.timed_out() {
                continue;
            }
            if n.flags.intersects(NodeFlags::HANDSHAKE | NodeFlags::NOADDR) || (n.link.is_none() && n.numslots == 0) {
                freshnodes -= 1;
                continue;
            }
            if n.last_in_ping_gossip == stamp {
                continue;
            }
            gossip.push(self.gossip_entry(i));
            self.node_mut(i).last_in_ping_gossip = stamp;
            freshnodes -= 1;
        }
        for &i in &all {
            let n = self.node(i);
            if n.timed_out() && !n.flags.intersects(NodeFlags::HANDSHAKE | NodeFlags::NOADDR) {
                gossip.push(self.gossip_entry(i));
            }
        }
        let body = match ty {
            MsgType::Ping => Body::Ping(gossip),
            MsgType::Meet => Body::Meet(gossip),
            _ => Body::Pong(gossip),
        };
        self.send(link, Arc::new(Message { header, body }));
    }

    /// Sends to every known node we have an outbound link to.
    pub(super) fn broadcast(&mut self, msg: Message) {
        let msg = Arc::new(msg);
        for i in self.node_indices() {
            let n = self.node(i);
            if n.flags.intersects(NodeFlags::MYSELF | NodeFlags::HANDSHAKE) {
                continue;
            }
            if let Some(l) = n.link {
                self.send(l, msg.clone());
            }
        }
    }

    /// PONG to every connected node, to spread a configuration change at once.
    pub(crate) fn broadcast_pong(&mut self) {
        self.broadcast_pong_to(PongTo::All);
    }

    pub(crate) fn broadcast_pong_to(&mut self, to: PongTo) {
        let my_master = self.me().master;
        for i in self.node_indices() {
            let n = self.node(i);
            if i == self.myself || n.in_handshake() {
                continue;
            }
            let sibling =
                n.is_slave() && n.master.is_some() && (n.master == Some(self.myself) || n.master == my_master);
            if to == PongTo::MyShardReplicas && !sibling {
                continue;
            }
            if let Some(l) = n.link {
                self.send_ping(l, MsgType::Pong);
            }
        }
    }

    /// PUBLISH to every node, or SPUBLISH to the other nodes of this node's shard (its
    /// master or replicas, Redis's `clusterSendPublish` / `clusterPropagatePublishShard`).
    pub(super) fn send_publish(&mut self, shard: bool, channel: Vec<u8>, message: Vec<u8>) {
        let header = self.build_header();
        if !shard {
            self.broadcast(Message { header, body: Body::Publish { channel, message } });
            return;
        }
        let msg = Arc::new(Message { header, body: Body::PublishShard { channel, message } });
        let my_master = self.me().master.unwrap_or(self.myself);
        for i in self.node_indices() {
            let n = self.node(i);
            if i == self.myself || n.in_handshake() {
                continue;
            }
            let in_shard = i == my_master || n.master == Some(my_master);
            if let (true, Some(l)) = (in_shard, n.link) {
                self.send(l, msg.clone());
            }
        }
    }

    pub(super) fn send_fail(&mut self, about: NodeId) {
        let header = self.build_header();
        self.broadcast(Message { header, body: Body::Fail { about } });
    }

    pub(super) fn send_update(&mut self, link: Option<LinkId>, about: Idx) {
        let Some(link) = link else { return };
        let n = self.node(about);
        let body = Body::Update {
            node: n.id,
            config_epoch: n.config_epoch,
            // Slots the node stopped claiming are not advertised on its behalf.
            slots: n.slots.minus(&self.owner_not_claiming),
        };
        let header = self.build_header();
        self.send(link, Arc::new(Message { header, body }));
    }
}
