//! `ClusterView`: an immutable snapshot of one node's cluster state, published to every
//! shard, and the renderers of the read-only CLUSTER subcommands (NODES, SLOTS, SHARDS,
//! INFO, REPLICAS) over it.

use crate::flags::NodeFlags;
use crate::id::NodeId;
use crate::slots::SLOTS;
use crate::state::ClusterState;
use crate::wire::{MSG_TYPE_COUNT, MSG_TYPE_NAMES};
use std::fmt::Write;

const NO_OWNER: u16 = u16::MAX;

/// One known node, as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: NodeId,
    pub ip: String,
    /// Client port.
    pub port: u16,
    /// Plaintext client port when `port` is TLS, else 0.
    pub pport: u16,
    /// Bus port.
    pub cport: u16,
    pub hostname: String,
    /// Per-core client ports and the slot → core table (empty: the main port serves).
    pub cores: crate::cores::CoreEndpoints,
    pub flags: NodeFlags,
    /// For a replica: its master, when known.
    pub master: Option<NodeId>,
    /// Index of `master` in [`ClusterView::nodes`].
    pub master_index: Option<usize>,
    /// For a master: indices of its replicas in [`ClusterView::nodes`].
    pub replicas: Vec<usize>,
    /// When the pending ping was sent (ms, 0: none).
    pub ping_sent: u64,
    /// When the last pong arrived (ms).
    pub pong_received: u64,
    /// This node's own config epoch (a replica's is 0 or stale; see [`Self::shown_epoch`]).
    pub config_epoch: u64,
    /// The epoch `CLUSTER NODES` prints: a replica shows its master's.
    pub shown_epoch: u64,
    /// The outbound bus link is established, not just being attempted (Redis's
    /// `connIsConnected`; myself counts as connected).
    pub connected: bool,
    /// Slots this node serves according to the slot table, as inclusive ranges.
    pub slot_ranges: Vec<(u16, u16)>,
    pub num_slots: u32,
    pub repl_offset: u64,
}

impl NodeInfo {
    /// The client port to advertise for `slot` on this node: the port of the core that
    /// serves it when the node advertises cores, else its main port.
    pub fn port_for(&self, slot: u16) -> u16 {
        self.cores.port_of(slot).unwrap_or(self.port)
    }

    pub fn is_master(&self) -> bool {
        self.flags.intersects(NodeFlags::MASTER)
    }
    pub fn is_replica(&self) -> bool {
        self.flags.intersects(NodeFlags::SLAVE)
    }
    pub fn is_failed(&self) -> bool {
        self.flags.intersects(NodeFlags::FAIL)
    }
    pub fn is_myself(&self) -> bool {
        self.flags.intersects(NodeFlags::MYSELF)
    }
}

/// An immutable snapshot of the cluster as one node sees it.
#[derive(Clone, Debug)]
pub struct ClusterView {
    /// Index of this node in `nodes`.
    pub myself: usize,
    /// Every known node (handshakes included), in node-ID order.
    pub nodes: Vec<NodeInfo>,
    slot_owner: Vec<u16>,
    /// Slots this node is migrating away, and to whom.
    pub migrating: Vec<(u16, NodeId)>,
    /// Slots this node is importing, and from whom.
    pub importing: Vec<(u16, NodeId)>,
    /// `cluster_state:ok`.
    pub state_ok: bool,
    /// Masters serving at least one slot (`cluster_size`).
    pub size: usize,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
    pub my_repl_offset: u64,
    pub stats_sent: [u64; MSG_TYPE_COUNT],
    pub stats_received: [u64; MSG_TYPE_COUNT],
    /// Local time the snapshot was taken at.
    pub built_at_ms: u64,
}

/// One contiguous run of slots with the same owner and the same endpoints (a `CLUSTER
/// SLOTS` entry): a node that advertises per-core ports gets a run per core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
    /// Index of the owner in [`ClusterView::nodes`].
    pub master: usize,
    /// Replicas that can serve reads: not failed and with a replication offset.
    pub replicas: Vec<usize>,
    /// The client port of the master, then of each replica, for these slots
    /// ([`NodeInfo::port_for`]).
    pub ports: Vec<u16>,
}

/// One `CLUSTER SHARDS` entry: a master, its replicas, its slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Inclusive ranges; Redis prints them as a flat list `start, end, start, end, ...`.
    pub slots: Vec<(u16, u16)>,
    pub nodes: Vec<ShardNode>,
}

/// One node of a `CLUSTER SHARDS` entry, with Redis's field values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardNode {
    pub id: NodeId,
    pub port: u16,
    pub ip: String,
    /// The preferred endpoint (the IP, as with `cluster-preferred-endpoint-type ip`).
    pub endpoint: String,
    /// Present only when non-empty.
    pub hostname: String,
    /// `master` or `replica`.
    pub role: &'static str,
    pub replication_offset: u64,
    /// `online`, `fail` or `loading`.
    pub health: &'static str,
}

impl ClusterView {
    pub(crate) fn build(st: &ClusterState) -> ClusterView {
        // State indices → view indices (view order is ID order).
        let mut index = vec![usize::MAX; st.nodes.len()];
        for (vi, &si) in st.by_id.values().enumerate() {
            index[si] = vi;
        }
        // Each node's bitmap holds exactly the slots the slot table binds to it.
        let mut slot_owner = vec![NO_OWNER; SLOTS];
        let ranges: Vec<Vec<(u16, u16)>> = st
            .by_id
            .values()
            .enumerate()
            .map(|(vi, &si)| {
                let n = st.node(si);
                let r = if n.numslots == 0 { Vec::new() } else { n.slots.ranges() };
                for &(a, b) in &r {
                    slot_owner[a as usize..=b as usize].fill(vi as u16);
                }
                r
            })
            .collect();
        let nodes = st
            .by_id
            .values()
            .zip(ranges)
            .map(|(&si, slot_ranges)| {
                let n = st.node(si);
                let master = n.master.map(|m| st.node(m));
                let shown_epoch = match master {
                    Some(m) if n.is_slave() => m.config_epoch,
                    _ => n.config_epoch,
                };
                NodeInfo {
                    id: n.id,
                    ip: n.ip.clone(),
                    port: n.port,
                    pport: n.pport,
                    cport: n.cport,
                    hostname: n.hostname.clone(),
                    cores: n.cores.clone(),
                    flags: n.flags,
                    master: master.map(|m| m.id),
                    master_index: n.master.map(|m| index[m]),
                    replicas: n.replicas.iter().map(|&r| index[r]).collect(),
                    ping_sent: n.ping_sent,
                    pong_received: n.pong_received,
                    config_epoch: n.config_epoch,
                    shown_epoch,
                    connected: si == st.myself || n.link.and_then(|l| st.links.get(&l)).is_some_and(|l| l.connected),
                    num_slots: slot_ranges.iter().map(|(s, e)| (e - s) as u32 + 1).sum(),
                    slot_ranges,
                    repl_offset: n.repl_offset,
                }
            })
            .collect();
        ClusterView {
            myself: index[st.myself],
            nodes,
            slot_owner,
            migrating: st.migrating_to.iter().map(|(s, n)| (*s, st.node(*n).id)).collect(),
            importing: st.importing_from.iter().map(|(s, n)| (*s, st.node(*n).id)).collect(),
            state_ok: st.state_ok,
            size: st.size,
            current_epoch: st.current_epoch,
            last_vote_epoch: st.last_vote_epoch,
            my_repl_offset: st.my_repl_offset,
            stats_sent: st.stats_sent,
            stats_received: st.stats_received,
            built_at_ms: st.now,
        }
    }

    pub fn me(&self) -> &NodeInfo {
        &self.nodes[self.myself]
    }

    pub fn node(&self, id: &NodeId) -> Option<&NodeInfo> {
        self.node_index(id).map(|i| &self.nodes[i])
    }

    pub fn node_index(&self, id: &NodeId) -> Option<usize> {
        self.nodes.binary_search_by(|n| n.id.cmp(id)).ok()
    }

    /// Index of the node serving `slot`.
    pub fn slot_owner_index(&self, slot: u16) -> Option<usize> {
        match self.slot_owner.get(slot as usize) {
            Some(&o) if o != NO_OWNER => Some(o as usize),
            _ => None,
        }
    }

    /// The node serving `slot`.
    pub fn slot_owner(&self, slot: u16) -> Option<&NodeInfo> {
        self.slot_owner_index(slot).map(|i| &self.nodes[i])
    }

    /// `ip:port` of node `node`'s endpoint for `slot` (MOVED and ASK name it): the
    /// core that serves the slot when the node advertises cores, else its main port.
    pub fn endpoint(&self, node: &NodeInfo, slot: u16) -> String {
        format!("{}:{}", node.ip, node.port_for(slot))
    }

    /// Whether this node serves `slot`.
    pub fn is_mine(&self, slot: u16) -> bool {
        self.slot_owner_index(slot) == Some(self.myself)
    }

    /// The node this node is migrating `slot` to (for ASK).
    pub fn migrating_to(&self, slot: u16) -> Option<&NodeInfo> {
        let i = self.migrating.binary_search_by_key(&slot, |(s, _)| *s).ok()?;
        self.node(&self.migrating[i].1)
    }

    /// The node this node is importing `slot` from (ASKING is then honoured).
    pub fn importing_from(&self, slot: u16) -> Option<&NodeInfo> {
        let i = self.importing.binary_search_by_key(&slot, |(s, _)| *s).ok()?;
        self.node(&self.importing[i].1)
    }

    /// This node's config epoch as `cluster_my_epoch` reports it (a replica: its master's).
    pub fn my_epoch(&self) -> u64 {
        self.me().shown_epoch
    }

    /// One `CLUSTER NODES` / nodes.conf line, without the newline.
    pub fn node_line(&self, i: usize) -> String {
        let n = &self.nodes[i];
        let mut s = String::with_capacity(128);
        let _ = write!(s, "{} {}:{}@{}", n.id, n.ip, n.port, n.cport);
        if !n.hostname.is_empty() {
            let _ = write!(s, ",{}", n.hostname);
        }
        let _ = write!(
            s,
            " {} {} {} {} {} {}",
            n.flags.names(),
            n.master.as_ref().map_or("-", |m| m.as_str()),
            n.ping_sent,
            n.pong_received,
            n.shown_epoch,
            if n.connected { "connected" } else { "disconnected" }
        );
        for &(a, b) in &n.slot_ranges {
            if a == b {
                let _ = write!(s, " {a}");
            } else {
                let _ = write!(s, " {a}-{b}");
            }
        }
        if i == self.myself {
            // In slot order; a slot both migrating and importing shows as migrating.
            let (mut m, mut im) = (self.migrating.iter().peekable(), self.importing.iter().peekable());
            loop {
                let next_m = m.peek().map(|(s, _)| *s);
                let next_i = im.peek().map(|(s, _)| *s);
                match (next_m, next_i) {
                    (None, None) => break,
                    (Some(a), b) if b.is_none_or(|b| a <= b) => {
                        let (slot, id) = m.next().expect("peeked");
                        let _ = write!(s, " [{slot}->-{id}]");
                        if b == Some(a) {
                            im.next();
                        }
                    }
                    _ => {
                        let (slot, id) = im.next().expect("peeked");
                        let _ = write!(s, " [{slot}-<-{id}]");
                    }
                }
            }
        }
        s
    }
}

/// `CLUSTER NODES`: one line per known node, each ending in `\n`.
pub fn cluster_nodes_text(view: &ClusterView) -> String {
    let mut out = String::new();
    for i in 0..view.nodes.len() {
        out.push_str(&view.node_line(i));
        out.push('\n');
    }
    out
}

/// `CLUSTER INFO`, lines ending in `\r\n`.
pub fn cluster_info_text(view: &ClusterView) -> String {
    let (mut assigned, mut ok, mut pfail, mut fail) = (0, 0, 0, 0);
    for slot in 0..SLOTS as u16 {
        let Some(n) = view.slot_owner(slot) else { continue };
        assigned += 1;
        if n.flags.intersects(NodeFlags::FAIL) {
            fail += 1;
        } else if n.flags.intersects(NodeFlags::PFAIL) {
            pfail += 1;
        } else {
            ok += 1;
        }
    }
    let mut s = String::new();
    let _ = write!(
        s,
        "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{ok}\r\n\
         cluster_slots_pfail:{pfail}\r\ncluster_slots_fail:{fail}\r\ncluster_known_nodes:{}\r\n\
         cluster_size:{}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\n",
        if view.state_ok { "ok" } else { "fail" },
        view.nodes.len(),
        view.size,
        view.current_epoch,
        view.my_epoch(),
    );
    let mut total = 0;
    for (i, &c) in view.stats_sent.iter().enumerate().filter(|(_, c)| **c != 0) {
        total += c;
        let _ = write!(s, "cluster_stats_messages_{}_sent:{c}\r\n", MSG_TYPE_NAMES[i]);
    }
    let _ = write!(s, "cluster_stats_messages_sent:{total}\r\n");
    let mut total = 0;
    for (i, &c) in view.stats_received.iter().enumerate().filter(|(_, c)| **c != 0) {
        total += c;
        let _ = write!(s, "cluster_stats_messages_{}_received:{c}\r\n", MSG_TYPE_NAMES[i]);
    }
    let _ = write!(s, "cluster_stats_messages_received:{total}\r\n");
    s.push_str("total_cluster_links_buffer_limit_exceeded:0\r\n");
    s
}

fn replica_available(view: &ClusterView, i: usize) -> bool {
    let n = &view.nodes[i];
    let offset = if i == view.myself { view.my_repl_offset } else { n.repl_offset };
    !n.is_failed() && offset != 0
}

/// The ports advertised for `slot` on master `o` and on `replicas`.
fn ports_for(view: &ClusterView, slot: u16, o: usize, replicas: &[usize]) -> Vec<u16> {
    std::iter::once(o).chain(replicas.iter().copied()).map(|i| view.nodes[i].port_for(slot)).collect()
}

/// `CLUSTER SLOTS`: runs of slots with the same owner and endpoints, in slot order.
pub fn cluster_slots(view: &ClusterView) -> Vec<SlotRange> {
    let mut out: Vec<SlotRange> = Vec::new();
    for slot in 0..SLOTS as u16 {
        let Some(o) = view.slot_owner_index(slot) else { continue };
        if let Some(r) = out.last_mut() {
            if r.master == o && r.end + 1 == slot && ports_for(view, slot, o, &r.replicas) == r.ports {
                r.end = slot;
                continue;
            }
        }
        let replicas: Vec<usize> =
            view.nodes[o].replicas.iter().copied().filter(|&r| replica_available(view, r)).collect();
        let ports = ports_for(view, slot, o, &replicas);
        out.push(SlotRange { start: slot, end: slot, master: o, replicas, ports });
    }
    out
}

fn shard_node(view: &ClusterView, i: usize, port: u16) -> ShardNode {
    let n = &view.nodes[i];
    let offset = if i == view.myself { view.my_repl_offset } else { n.repl_offset };
    ShardNode {
        id: n.id,
        port,
        ip: n.ip.clone(),
        endpoint: n.ip.clone(),
        hostname: n.hostname.clone(),
        role: if n.is_replica() { "replica" } else { "master" },
        replication_offset: offset,
        health: if n.is_failed() {
            "fail"
        } else if n.is_replica() && offset == 0 {
            "loading"
        } else {
            "online"
        },
    }
}

/// The ports of a master and its replicas, and the runs of slots they serve.
type EndpointGroup = (Vec<u16>, Vec<(u16, u16)>);

/// `CLUSTER SHARDS`: one entry per master (with or without slots), in node order. A
/// master whose nodes advertise per-core ports gets one entry per set of endpoints
/// (per core), each with the slots that set serves, in slot order.
pub fn cluster_shards(view: &ClusterView) -> Vec<Shard> {
    let mut out = Vec::new();
    for (i, n) in view.nodes.iter().enumerate().filter(|(_, n)| n.is_master()) {
        let members: Vec<usize> = std::iter::once(i).chain(n.replicas.iter().copied()).collect();
        let entry = |ports: &[u16], slots: Vec<(u16, u16)>| Shard {
            slots,
            nodes: members.iter().zip(ports).map(|(&j, &p)| shard_node(view, j, p)).collect(),
        };
        if n.slot_ranges.is_empty() {
            let ports: Vec<u16> = members.iter().map(|&j| view.nodes[j].port).collect();
            out.push(entry(&ports, Vec::new()));
            continue;
        }
        // Endpoint sets in order of their first slot, each with its runs of slots.
        let mut groups: Vec<EndpointGroup> = Vec::new();
        for &(a, b) in &n.slot_ranges {
            for slot in a..=b {
                let ports = ports_for(view, slot, i, &n.replicas);
                let g = match groups.iter().position(|(p, _)| *p == ports) {
                    Some(g) => g,
                    None => {
                        groups.push((ports, Vec::new()));
                        groups.len() - 1
                    }
                };
                let runs = &mut groups[g].1;
                match runs.last_mut() {
                    Some(r) if r.1 + 1 == slot => r.1 = slot,
                    _ => runs.push((slot, slot)),
                }
            }
        }
        out.extend(groups.into_iter().map(|(ports, slots)| entry(&ports, slots)));
    }
    out
}

/// `CLUSTER REPLICAS <node-id>` (and `SLAVES`): the replicas' `CLUSTER NODES` lines.
pub fn cluster_replicas(view: &ClusterView, raw_id: &[u8]) -> Result<Vec<String>, String> {
    let Some(i) = NodeId::parse(raw_id).and_then(|id| view.node_index(&id)) else {
        return Err(format!("ERR Unknown node {}", String::from_utf8_lossy(raw_id)));
    };
    if view.nodes[i].is_replica() {
        return Err("ERR The specified node is not a master".into());
    }
    Ok(view.nodes[i].replicas.iter().map(|&r| view.node_line(r)).collect())
}
