//! The cluster state machine: Redis Cluster's bus logic (`cluster.c`) without sockets,
//! threads or clocks.
//!
//! # Model
//!
//! A node knows a table of nodes (itself included). Between two nodes there are up to two
//! TCP links: the *outbound* one, which this node opened (it sends PING/MEET on it and
//! receives the PONGs), and the *inbound* one, which the peer opened (this node receives
//! PING/MEET on it and answers PONG on the same link). The IO layer owns the sockets; the
//! state machine names links with [`LinkId`]s and asks for connections, sends and closes
//! through [`Output`]s. It is fed:
//!
//! - [`Input::Tick`] every 100 ms (Redis's `clusterCron`): reconnects links, pings one
//!   random node a second plus every node whose last pong is older than node-timeout/2,
//!   flags nodes PFAIL when a ping stays unanswered for node-timeout, drops handshakes that
//!   did not complete within node-timeout, re-evaluates the cluster state;
//! - [`Input::Message`]: a decoded bus message from a link;
//! - [`Input::Accepted`], [`Input::Connected`], [`Input::Closed`]: link life cycle;
//! - [`Input::Command`]: the CLUSTER subcommands that change state.
//!
//! # Protocol, in short (see the Redis Cluster specification)
//!
//! - **Joining.** `CLUSTER MEET ip port` adds a node in HANDSHAKE state under a random ID;
//!   on connecting, a MEET is sent; the peer adds the sender (also in handshake) and answers
//!   PONG; the PONG's header gives the real ID, which replaces the random one. Other nodes
//!   are then learnt from gossip (only from known senders, and not while FORGET's 60 s ban
//!   on an ID lasts).
//! - **Gossip.** Every PING/PONG carries the sender's flags, epochs, slots, master, and a
//!   sample of other nodes (a tenth of the table, at least 3, plus every PFAIL node).
//! - **Failure detection.** A node whose ping stays unanswered (and from which no data
//!   arrived) for node-timeout becomes PFAIL locally. Masters' gossip flags are collected as
//!   failure reports, valid for 2 × node-timeout; when the reports plus this node (if a
//!   master) reach a majority of the masters serving slots, the node becomes FAIL and a
//!   FAIL message is broadcast, which every receiver applies. FAIL is cleared when the node
//!   answers again and is a replica or a master without slots, or, for a master still
//!   serving slots, once the FAIL is older than 2 × node-timeout.
//! - **Epochs.** `currentEpoch` is the largest epoch seen; each master has a `configEpoch`
//!   for its slot claim. A claim with a greater config epoch wins a slot. Two masters with
//!   the same config epoch resolve it: the one with the smaller ID takes
//!   `currentEpoch + 1`. A node claiming slots that a greater epoch has taken over gets an
//!   UPDATE message naming the new owner.
//!
//! Replica election and failover are not modelled yet; roles are (REPLICATE, role changes
//! seen in headers, a master left without slots turning into a replica of their new owner).

use crate::flags::NodeFlags;
use crate::id::NodeId;
use crate::rng::Rng;
use crate::slots::{SlotBitmap, SLOTS};
use crate::view::ClusterView;
use crate::wire::{Body, Gossip, Header, Message, MsgType, MSG_TYPE_COUNT};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Index of a node in the state's table (stable while the node exists).
pub(crate) type Idx = usize;

/// Settings the cluster bus reads (Redis's `cluster-*` options).
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// `cluster-node-timeout`, milliseconds.
    pub node_timeout_ms: u64,
    /// `cluster-require-full-coverage`.
    pub require_full_coverage: bool,
    /// `cluster-allow-replica-migration`.
    pub allow_replica_migration: bool,
    /// `cluster-replica-no-failover`: advertised as the `nofailover` flag.
    pub replica_no_failover: bool,
    /// `cluster-announce-ip`; when unset the address is learnt from MEETs.
    pub announce_ip: Option<String>,
    /// `cluster-announce-hostname`.
    pub announce_hostname: Option<String>,
    /// Client port (announced).
    pub port: u16,
    /// Plaintext client port when `port` is TLS, else 0.
    pub pport: u16,
    /// Bus port (announced), by default `port + 10000`.
    pub cport: u16,
    /// A snapshot is republished at least this often even when only ping/pong times changed.
    pub view_refresh_ms: u64,
    /// Seed of the state machine's PRNG (node IDs, gossip sampling). Take it from real
    /// randomness (e.g. `getrandom`): two nodes started with one seed get one node ID.
    pub seed: u64,
    /// Least important log level emitted as [`Output::Log`].
    pub log_level: LogLevel,
}

impl ClusterConfig {
    pub fn new(port: u16, seed: u64) -> ClusterConfig {
        ClusterConfig {
            node_timeout_ms: 15000,
            require_full_coverage: true,
            allow_replica_migration: true,
            replica_no_failover: false,
            announce_ip: None,
            announce_hostname: None,
            port,
            pport: 0,
            cport: port.wrapping_add(10000),
            view_refresh_ms: 1000,
            seed,
            log_level: LogLevel::Notice,
        }
    }
}

/// Names one bus connection. The state machine allocates outbound IDs (in
/// [`Output::Connect`]); the IO layer allocates inbound IDs when it accepts a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LinkId {
    Outbound(u64),
    Inbound(u64),
}

impl LinkId {
    pub fn is_inbound(self) -> bool {
        matches!(self, LinkId::Inbound(_))
    }
}

/// Something that happened, fed to [`ClusterState::handle`].
#[derive(Debug)]
pub enum Input {
    /// Call every 100 ms.
    Tick,
    /// A peer connected to our bus port. `peer_ip` is its address; `local_ip` the address it
    /// reached us at (a MEET teaches us our own address from it).
    Accepted { link: LinkId, peer_ip: String, local_ip: String },
    /// An outbound connection asked for by [`Output::Connect`] is established.
    Connected(LinkId),
    /// A link failed, was closed by the peer, or a connection attempt failed.
    Closed(LinkId),
    /// A message decoded from a link.
    Message { link: LinkId, msg: Message },
    /// A CLUSTER subcommand that reads or changes the state; answered by one [`Output::Reply`].
    Command(crate::commands::Command),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Verbose,
    Notice,
    Warning,
}

/// What the IO layer must do, in order.
#[derive(Debug)]
pub enum Output {
    /// Persist nodes.conf atomically (write a temporary file, fsync if asked, rename).
    /// Always emitted first, so the file is written before anything is sent.
    SaveConfig {
        text: String,
        fsync: bool,
    },
    /// Open a connection to `ip:port` (a bus port) and report it as `link`.
    Connect {
        link: LinkId,
        ip: String,
        port: u16,
    },
    /// Send a message on a link. Queue it while the link is still connecting.
    Send {
        link: LinkId,
        msg: Arc<Message>,
    },
    /// Close a link. No [`Input::Closed`] is expected for it afterwards (it is ignored).
    Close(LinkId),
    /// A new snapshot of the cluster: publish it to every shard.
    ViewChanged(Arc<ClusterView>),
    /// This node became (or changed the master it is) a replica of `master`.
    ReplicateFrom {
        master: NodeId,
        ip: String,
        port: u16,
    },
    /// This node stopped being a replica (CLUSTER RESET); `flush` asks to empty the data set.
    StopReplication {
        flush: bool,
    },
    /// This node lost these slots to a newer claim while staying a master: delete their keys.
    DeleteKeysInSlots(Vec<u16>),
    /// The answer to an [`Input::Command`]; always the last output, after the view it may
    /// have changed, so the IO layer can publish that view before answering the client.
    Reply(Result<crate::commands::Reply, String>),
    Log {
        level: LogLevel,
        text: String,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct FailReport {
    pub node: Idx,
    pub time: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub id: NodeId,
    pub flags: NodeFlags,
    pub ip: String,
    pub port: u16,
    pub pport: u16,
    pub cport: u16,
    pub hostname: String,
    pub ctime: u64,
    pub config_epoch: u64,
    pub slots: SlotBitmap,
    pub numslots: u32,
    pub master: Option<Idx>,
    pub replicas: Vec<Idx>,
    pub ping_sent: u64,
    pub pong_received: u64,
    pub data_received: u64,
    pub fail_time: u64,
    pub last_in_ping_gossip: u64,
    pub link: Option<LinkId>,
    pub inbound_link: Option<LinkId>,
    pub fail_reports: Vec<FailReport>,
    pub repl_offset: u64,
}

impl Node {
    pub(crate) fn new(id: NodeId, flags: NodeFlags, now: u64) -> Node {
        Node {
            id,
            flags,
            ip: String::new(),
            port: 0,
            pport: 0,
            cport: 0,
            hostname: String::new(),
            ctime: now,
            config_epoch: 0,
            slots: SlotBitmap::new(),
            numslots: 0,
            master: None,
            replicas: Vec::new(),
            ping_sent: 0,
            pong_received: 0,
            data_received: 0,
            fail_time: 0,
            last_in_ping_gossip: 0,
            link: None,
            inbound_link: None,
            fail_reports: Vec::new(),
            repl_offset: 0,
        }
    }

    pub(crate) fn is_master(&self) -> bool {
        self.flags.intersects(NodeFlags::MASTER)
    }
    pub(crate) fn is_slave(&self) -> bool {
        self.flags.intersects(NodeFlags::SLAVE)
    }
    pub(crate) fn in_handshake(&self) -> bool {
        self.flags.intersects(NodeFlags::HANDSHAKE)
    }
    pub(crate) fn timed_out(&self) -> bool {
        self.flags.intersects(NodeFlags::PFAIL)
    }
    pub(crate) fn failed(&self) -> bool {
        self.flags.intersects(NodeFlags::FAIL)
    }
}

/// One bus link as CLUSTER LINKS shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub link: LinkId,
    /// `to` (we opened it) or `from`.
    pub outbound: bool,
    pub node: NodeId,
    /// When it was created (ms).
    pub create_time: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct Link {
    pub node: Option<Idx>,
    pub ctime: u64,
    pub connected: bool,
    pub peer_ip: String,
    pub local_ip: String,
}

/// Deferred work, done once at the end of [`ClusterState::handle`] (Redis's
/// `clusterDoBeforeSleep` flags).
pub(crate) mod todo {
    pub const UPDATE_STATE: u8 = 1;
    pub const SAVE_CONFIG: u8 = 2;
    pub const FSYNC_CONFIG: u8 = 4;
}

/// How long FORGET keeps a node ID from being re-learnt through gossip.
pub const FORGET_BAN_MS: u64 = 60_000;
const FAIL_REPORT_VALIDITY_MULT: u64 = 2;
const FAIL_UNDO_TIME_MULT: u64 = 2;
const WRITABLE_DELAY_MS: u64 = 2000;
const MIN_REJOIN_DELAY_MS: u64 = 500;
const MAX_REJOIN_DELAY_MS: u64 = 5000;

/// One node's view of the cluster and the logic that keeps it current.
pub struct ClusterState {
    pub(crate) cfg: ClusterConfig,
    pub(crate) rng: Rng,
    pub(crate) nodes: Vec<Option<Node>>,
    free: Vec<Idx>,
    pub(crate) by_id: BTreeMap<NodeId, Idx>,
    pub(crate) myself: Idx,
    pub(crate) current_epoch: u64,
    pub(crate) last_vote_epoch: u64,
    pub(crate) state_ok: bool,
    /// Masters serving at least one slot.
    pub(crate) size: usize,
    /// Owner of each slot.
    pub(crate) slots: Vec<Option<Idx>>,
    /// Slots whose owner stopped claiming them (kept bound, not propagated in UPDATEs).
    pub(crate) owner_not_claiming: SlotBitmap,
    pub(crate) migrating_to: BTreeMap<u16, Idx>,
    pub(crate) importing_from: BTreeMap<u16, Idx>,
    /// FORGET ban: node ID → time (ms) at which it may be learnt again.
    pub(crate) blacklist: BTreeMap<NodeId, u64>,
    pub(crate) links: BTreeMap<LinkId, Link>,
    next_link: u64,
    iteration: u64,
    pings_built: u64,
    pub(crate) todo: u8,
    first_update_state: Option<u64>,
    among_minority_time: u64,
    pub(crate) stats_sent: [u64; MSG_TYPE_COUNT],
    pub(crate) stats_received: [u64; MSG_TYPE_COUNT],
    pub(crate) my_repl_offset: u64,
    pub(crate) slots_version: u64,
    last_view: Option<(Arc<ClusterView>, Topology)>,
    pub(crate) now: u64,
    pub(crate) out: Vec<Output>,
}

/// What a published snapshot depends on, besides ping/pong times, link states and counters.
#[derive(Clone, PartialEq, Eq)]
struct Topology {
    nodes: Vec<TopoNode>,
    slots_version: u64,
    migrating: Vec<(u16, NodeId)>,
    importing: Vec<(u16, NodeId)>,
    current_epoch: u64,
    state_ok: bool,
    size: usize,
}

#[derive(Clone, PartialEq, Eq)]
struct TopoNode {
    id: NodeId,
    flags: u16,
    addr: (String, u16, u16, u16, String),
    master: Option<NodeId>,
    config_epoch: u64,
    numslots: u32,
}

impl ClusterState {
    /// A fresh node: a random ID, master, no slots, knowing nobody (Redis with no nodes.conf).
    /// The first [`handle`](Self::handle) call emits a [`Output::SaveConfig`].
    pub fn new(cfg: ClusterConfig, now_ms: u64) -> ClusterState {
        let mut rng = Rng::new(cfg.seed);
        let id = NodeId::random(&mut rng);
        let mut st = ClusterState::empty(cfg, rng, now_ms);
        let mut me = Node::new(id, NodeFlags::MYSELF | NodeFlags::MASTER, now_ms);
        st.apply_my_announced_address(&mut me);
        st.myself = st.add_node(me);
        st.todo |= todo::SAVE_CONFIG | todo::FSYNC_CONFIG;
        st
    }

    pub(crate) fn empty(cfg: ClusterConfig, rng: Rng, now_ms: u64) -> ClusterState {
        ClusterState {
            cfg,
            rng,
            nodes: Vec::new(),
            free: Vec::new(),
            by_id: BTreeMap::new(),
            myself: 0,
            current_epoch: 0,
            last_vote_epoch: 0,
            state_ok: false,
            size: 1,
            slots: vec![None; SLOTS],
            owner_not_claiming: SlotBitmap::new(),
            migrating_to: BTreeMap::new(),
            importing_from: BTreeMap::new(),
            blacklist: BTreeMap::new(),
            links: BTreeMap::new(),
            next_link: 1,
            iteration: 0,
            pings_built: 0,
            todo: 0,
            first_update_state: None,
            among_minority_time: 0,
            stats_sent: [0; MSG_TYPE_COUNT],
            stats_received: [0; MSG_TYPE_COUNT],
            my_repl_offset: 0,
            slots_version: 0,
            last_view: None,
            now: now_ms,
            out: Vec::new(),
        }
    }

    /// Ports always come from the configuration; the IP only when announced.
    pub(crate) fn apply_my_announced_address(&self, me: &mut Node) {
        me.port = self.cfg.port;
        me.pport = self.cfg.pport;
        me.cport = self.cfg.cport;
        if let Some(ip) = &self.cfg.announce_ip {
            me.ip = ip.clone();
        }
        me.hostname = self.cfg.announce_hostname.clone().unwrap_or_default();
        me.flags.set(NodeFlags::NOFAILOVER, self.cfg.replica_no_failover);
    }

    /// Feeds one input at local time `now_ms`; returns what to do.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Output> {
        self.now = now_ms;
        match input {
            Input::Tick => self.cron(),
            Input::Accepted { link, peer_ip, local_ip } => {
                // A reused ID means the old connection is gone.
                self.free_link(link, false);
                self.links.insert(link, Link { node: None, ctime: now_ms, connected: true, peer_ip, local_ip });
            }
            Input::Connected(link) => self.on_connected(link),
            Input::Closed(link) => self.on_closed(link),
            Input::Message { link, msg } => self.process_packet(link, msg),
            Input::Command(cmd) => {
                let reply = self.command(cmd);
                self.before_sleep();
                // Last, after the new view: a client's next command must find it published.
                self.out.push(Output::Reply(reply));
                return std::mem::take(&mut self.out);
            }
        }
        self.before_sleep();
        std::mem::take(&mut self.out)
    }

    /// This node's ID.
    /// The bus links attached to known nodes, for CLUSTER LINKS: the outbound link
    /// (`to`) and the inbound one (`from`) of each node.
    pub fn link_infos(&self) -> Vec<LinkInfo> {
        let mut out = Vec::new();
        for n in self.nodes.iter().flatten() {
            for (link, outbound) in [(n.link, true), (n.inbound_link, false)] {
                let Some(link) = link else { continue };
                if let Some(l) = self.links.get(&link) {
                    out.push(LinkInfo { link, outbound, node: n.id, create_time: l.ctime });
                }
            }
        }
        out
    }

    pub fn my_id(&self) -> NodeId {
        self.node(self.myself).id
    }

    pub fn current_epoch(&self) -> u64 {
        self.current_epoch
    }

    /// The replication offset advertised in headers (set by the replication layer).
    pub fn set_repl_offset(&mut self, offset: u64) {
        self.my_repl_offset = offset;
    }

    /// A snapshot of the current state, built now (also what [`Output::ViewChanged`] carries).
    pub fn view(&self) -> ClusterView {
        ClusterView::build(self)
    }

    /// The nodes.conf contents for the current state.
    pub fn nodes_conf(&self) -> String {
        crate::nodes_conf::render(&ClusterView::build(self), self.current_epoch, self.last_vote_epoch)
    }

    /// Verifies the internal cross-references (slot table against node bitmaps, replica
    /// lists against master pointers, failure reports, links). For tests and simulators.
    pub fn check_consistency(&self) -> Result<(), String> {
        let live = |i: Idx| self.nodes.get(i).is_some_and(|n| n.is_some());
        if self.by_id.len() != self.nodes.iter().flatten().count() {
            return Err("ID index and node table differ in size".into());
        }
        for (id, &i) in &self.by_id {
            if !live(i) || self.node(i).id != *id {
                return Err(format!("ID index entry {id} points to the wrong node"));
            }
        }
        if !live(self.myself) || !self.me().flags.intersects(NodeFlags::MYSELF) {
            return Err("myself is missing or not flagged".into());
        }
        let mut counted = vec![0u32; self.nodes.len()];
        for (slot, owner) in self.slots.iter().enumerate() {
            if let Some(o) = *owner {
                if !live(o) || !self.node(o).slots.contains(slot as u16) {
                    return Err(format!("slot {slot} bound to a node that does not have it"));
                }
                counted[o] += 1;
            }
        }
        for &i in self.by_id.values() {
            let n = self.node(i);
            if n.numslots != counted[i] || n.slots.count() != counted[i] {
                return Err(format!("node {} counts {} slots, the table binds {}", n.id, n.numslots, counted[i]));
            }
            if let Some(m) = n.master {
                if !live(m) || !self.node(m).replicas.contains(&i) {
                    return Err(format!("node {} is not listed by its master", n.id));
                }
            }
            for &r in &n.replicas {
                if !live(r) || self.node(r).master != Some(i) {
                    return Err(format!("replica list of {} is stale", n.id));
                }
            }
            if n.fail_reports.iter().any(|r| !live(r.node)) {
                return Err(format!("failure report about {} from a deleted node", n.id));
            }
            for l in [n.link, n.inbound_link].into_iter().flatten() {
                if self.links.get(&l).and_then(|l| l.node) != Some(i) {
                    return Err(format!("link {l:?} of {} is not in the link table", n.id));
                }
            }
        }
        for (id, l) in &self.links {
            if let Some(n) = l.node {
                if !live(n) {
                    return Err(format!("link {id:?} belongs to a deleted node"));
                }
            }
        }
        if self.migrating_to.values().chain(self.importing_from.values()).any(|&n| !live(n)) {
            return Err("migrating/importing state names a deleted node".into());
        }
        Ok(())
    }

    // ---------------------------------------------------------------- node table

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

    fn rename_node(&mut self, i: Idx, id: NodeId) {
        let old = self.node(i).id;
        self.by_id.remove(&old);
        self.node_mut(i).id = id;
        self.by_id.insert(id, i);
    }

    // ---------------------------------------------------------------- slots

    /// Binds a free slot to `n`; false if the slot is taken.
    pub(crate) fn add_slot(&mut self, n: Idx, slot: u16) -> bool {
        if self.slots[slot as usize].is_some() {
            return false;
        }
        // A master getting its first slot is a replica-migration target when other masters
        // have replicas.
        let first = self.node(n).numslots == 0 && self.masters_have_slaves();
        let node = self.node_mut(n);
        if !node.slots.insert(slot) {
            node.numslots += 1;
            if first {
                node.flags.insert(NodeFlags::MIGRATE_TO);
            }
        }
        self.slots[slot as usize] = Some(n);
        self.slots_version += 1;
        true
    }

    /// Unbinds a slot; false if it was unassigned.
    pub(crate) fn del_slot(&mut self, slot: u16) -> bool {
        let Some(n) = self.slots[slot as usize] else { return false };
        let node = self.node_mut(n);
        if node.slots.remove(slot) {
            node.numslots -= 1;
        }
        self.slots[slot as usize] = None;
        // The mark means "the current owner stopped claiming it": it ends with the binding.
        self.owner_not_claiming.remove(slot);
        self.slots_version += 1;
        true
    }

    pub(crate) fn del_node_slots(&mut self, n: Idx) -> usize {
        let owned: Vec<u16> = self.node(n).slots.iter().collect();
        for &s in &owned {
            self.del_slot(s);
        }
        owned.len()
    }

    fn masters_have_slaves(&self) -> bool {
        self.nodes.iter().flatten().any(|n| !n.is_slave() && !n.replicas.is_empty())
    }

    fn slot_unclaimed(&self, slot: u16) -> bool {
        self.slots[slot as usize].is_none() || self.owner_not_claiming.contains(slot)
    }

    pub(crate) fn close_all_slots(&mut self) {
        self.migrating_to.clear();
        self.importing_from.clear();
    }

    // ---------------------------------------------------------------- roles

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
    }

    // ---------------------------------------------------------------- failure reports

    fn add_failure_report(&mut self, failing: Idx, sender: Idx) -> bool {
        let now = self.now;
        let n = self.node_mut(failing);
        if let Some(r) = n.fail_reports.iter_mut().find(|r| r.node == sender) {
            r.time = now;
            return false;
        }
        n.fail_reports.push(FailReport { node: sender, time: now });
        true
    }

    fn cleanup_failure_reports(&mut self, n: Idx) {
        let max = self.cfg.node_timeout_ms * FAIL_REPORT_VALIDITY_MULT;
        let now = self.now;
        self.node_mut(n).fail_reports.retain(|r| now.saturating_sub(r.time) <= max);
    }

    fn del_failure_report(&mut self, n: Idx, sender: Idx) -> bool {
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

    /// PFAIL → FAIL once a majority of slot-serving masters agree (this node included, when
    /// a master); the verdict is broadcast.
    fn mark_node_as_failing_if_needed(&mut self, n: Idx) {
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
    }

    /// A FAIL node answered again: clear the flag if nobody is going to fail it over.
    fn clear_node_failure_if_needed(&mut self, n: Idx) {
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

    // ---------------------------------------------------------------- blacklist

    pub(crate) fn blacklist_add(&mut self, id: NodeId) {
        self.blacklist_cleanup();
        self.blacklist.insert(id, self.now + FORGET_BAN_MS);
    }

    fn blacklist_cleanup(&mut self) {
        let now = self.now;
        self.blacklist.retain(|_, until| *until >= now);
    }

    fn blacklisted(&mut self, id: &NodeId) -> bool {
        self.blacklist_cleanup();
        self.blacklist.contains_key(id)
    }

    // ---------------------------------------------------------------- epochs

    pub(crate) fn max_epoch(&self) -> u64 {
        self.nodes.iter().flatten().map(|n| n.config_epoch).max().unwrap_or(0).max(self.current_epoch)
    }

    /// A new config epoch for this node without agreement, if it is not already the greatest.
    pub(crate) fn bump_config_epoch_without_consensus(&mut self) -> bool {
        let max = self.max_epoch();
        let mine = self.me().config_epoch;
        if mine == 0 || mine != max {
            self.current_epoch += 1;
            let e = self.current_epoch;
            let me = self.myself;
            self.node_mut(me).config_epoch = e;
            self.todo |= todo::SAVE_CONFIG | todo::FSYNC_CONFIG;
            self.log(LogLevel::Warning, format!("New configEpoch set to {e}"));
            true
        } else {
            false
        }
    }

    /// Two masters share a config epoch: the one with the smaller ID moves to a new epoch.
    fn handle_config_epoch_collision(&mut self, sender: Idx) {
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

    // ---------------------------------------------------------------- links

    fn create_outbound_link(&mut self, n: Idx) {
        let link = LinkId::Outbound(self.next_link);
        self.next_link += 1;
        self.links.insert(
            link,
            Link { node: Some(n), ctime: self.now, connected: false, peer_ip: String::new(), local_ip: String::new() },
        );
        let node = self.node_mut(n);
        node.link = Some(link);
        let (ip, port) = (node.ip.clone(), node.cport);
        self.out.push(Output::Connect { link, ip, port });
    }

    /// Forgets a link; with `close`, asks the IO layer to close it.
    pub(crate) fn free_link(&mut self, id: LinkId, close: bool) {
        let Some(link) = self.links.remove(&id) else { return };
        if close {
            self.out.push(Output::Close(id));
        }
        if let Some(n) = link.node.and_then(|n| self.nodes[n].as_mut()) {
            if n.link == Some(id) {
                n.link = None;
            } else if n.inbound_link == Some(id) {
                n.inbound_link = None;
            }
        }
    }

    fn on_connected(&mut self, id: LinkId) {
        if id.is_inbound() {
            return;
        }
        let Some(link) = self.links.get_mut(&id) else { return };
        link.connected = true;
        let Some(n) = link.node else { return };
        // Ping at once, so failure detection has a pending ping to measure; keep the time of
        // a ping that was already pending on the previous link.
        let old_ping_sent = self.node(n).ping_sent;
        let ty = if self.node(n).flags.intersects(NodeFlags::MEET) { MsgType::Meet } else { MsgType::Ping };
        self.send_ping(id, ty);
        let node = self.node_mut(n);
        if old_ping_sent != 0 {
            node.ping_sent = old_ping_sent;
        }
        node.flags.remove(NodeFlags::MEET);
    }

    fn on_closed(&mut self, id: LinkId) {
        let Some(link) = self.links.get(&id) else { return };
        let (node, connected) = (link.node, link.connected);
        self.free_link(id, false);
        // A connection attempt that fails counts as a ping sent: without it a node that died
        // right after answering a ping would never be timed out (Redis does this only for
        // synchronous connect errors).
        if let (LinkId::Outbound(_), false, Some(n)) = (id, connected, node) {
            if let Some(n) = self.nodes[n].as_mut() {
                if n.ping_sent == 0 {
                    n.ping_sent = self.now;
                }
            }
        }
    }

    // ---------------------------------------------------------------- sending

    fn send(&mut self, link: LinkId, msg: Arc<Message>) {
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
            mflags: 0,
            myip: self.cfg.announce_ip.clone().unwrap_or_default(),
            port: me.port,
            pport: me.pport,
            cport: me.cport,
            hostname: me.hostname.clone(),
            master: me.master.map(|m| self.node(m).id),
            slots: master.slots.clone(),
        }
    }

    fn gossip_entry(&self, n: Idx) -> Gossip {
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
    fn broadcast(&mut self, msg: Message) {
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
        for i in self.node_indices() {
            let n = self.node(i);
            if i == self.myself || n.in_handshake() {
                continue;
            }
            if let Some(l) = n.link {
                self.send_ping(l, MsgType::Pong);
            }
        }
    }

    fn send_fail(&mut self, about: NodeId) {
        let header = self.build_header();
        self.broadcast(Message { header, body: Body::Fail { about } });
    }

    fn send_update(&mut self, link: Option<LinkId>, about: Idx) {
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

    // ---------------------------------------------------------------- cron

    fn cron(&mut self) {
        self.iteration += 1;
        let now = self.now;
        let timeout = self.cfg.node_timeout_ms;
        let handshake_timeout = timeout.max(1000);
        let mut update_state = false;

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
            }
        }

        if update_state || !self.state_ok {
            self.update_state();
        }
    }

    // ---------------------------------------------------------------- cluster state

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

    fn before_sleep(&mut self) {
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

    fn topology(&self) -> Topology {
        let nodes = self
            .by_id
            .values()
            .map(|&i| {
                let n = self.node(i);
                TopoNode {
                    id: n.id,
                    flags: n.flags.0 & !(NodeFlags::MEET.0 | NodeFlags::MIGRATE_TO.0),
                    addr: (n.ip.clone(), n.port, n.pport, n.cport, n.hostname.clone()),
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
    fn maybe_publish_view(&mut self) {
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

    // ---------------------------------------------------------------- receiving

    fn sender_from_link_and_msg(&mut self, link: LinkId, hdr: &Header) -> Option<Idx> {
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
    fn announced_ip(&self, link: LinkId, hdr: &Header) -> Option<String> {
        if !hdr.myip.is_empty() {
            return Some(hdr.myip.clone());
        }
        self.links.get(&link).map(|l| l.peer_ip.clone()).filter(|ip| !ip.is_empty())
    }

    /// Updates a node's address from a message received on its inbound link.
    fn update_address_if_needed(&mut self, n: Idx, link: LinkId, hdr: &Header) -> bool {
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

    fn process_packet(&mut self, link: LinkId, msg: Message) {
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
                    }
                }
            }
            Body::Update { node, config_epoch, slots } => {
                if sender.is_none() {
                    return;
                }
                let Some(n) = self.lookup(node) else { return };
                if self.node(n).config_epoch >= *config_epoch {
                    return;
                }
                if self.node(n).is_slave() {
                    self.set_node_as_master(n);
                }
                self.node_mut(n).config_epoch = *config_epoch;
                self.todo |= todo::SAVE_CONFIG | todo::FSYNC_CONFIG;
                self.update_slots_config_with(n, *config_epoch, slots);
            }
        }
    }

    /// PING, PONG and MEET: handshake completion, roles, slots, epochs, gossip.
    fn process_config(&mut self, link: LinkId, msg: &Message, sender: Option<Idx>, sender_config_epoch: u64) {
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
    }

    fn process_gossip(&mut self, msg: &Message, sender: Option<Idx>) {
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
    fn update_slots_config_with(&mut self, sender: Idx, sender_config_epoch: u64, slots: &SlotBitmap) {
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
