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
//! - [`Input::Command`]: the CLUSTER subcommands that change state;
//! - and, through setters, the replication facts elections need: this node's replication
//!   offset and whether its link to its master is up.
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
//!   arrived) for node-timeout becomes PFAIL locally; a master that flags it tells the
//!   other masters at once. Masters' gossip flags are collected as failure reports, valid
//!   for 2 × node-timeout; when the reports plus this node (if a master) reach a majority of
//!   the masters serving slots, the node becomes FAIL and a FAIL message is broadcast, which
//!   every receiver applies. FAIL is cleared when the node answers again and is a replica
//!   or a master without slots, or, for a master still serving slots, once the FAIL is
//!   older than 2 × node-timeout.
//! - **Epochs.** `currentEpoch` is the largest epoch seen; each master has a `configEpoch`
//!   for its slot claim. A claim with a greater config epoch wins a slot. Two masters with
//!   the same config epoch resolve it: the one with the smaller ID takes
//!   `currentEpoch + 1`. A node claiming slots that a greater epoch has taken over gets an
//!   UPDATE message naming the new owner.
//!
//! - **Failover** (`failover.rs`). A replica whose master is FAIL and serves slots waits
//!   `min(500, node_timeout / 30)` ms, plus a step per better-placed sibling (by
//!   replication offset) and per master failed with ours under a smaller ID, then bumps
//!   `currentEpoch` and asks every master for its vote; each master votes once per
//!   epoch, for a replica of a FAIL master, claiming slots no greater epoch holds. With a
//!   majority of the slot-serving masters the replica takes the election's epoch as config
//!   epoch and its master's slots, and tells everyone; the greater epoch makes every node,
//!   the old master included when it returns, follow it (a master left without slots
//!   becomes a replica of their new owner).
//! - **Manual failover** (`manual_failover.rs`): `CLUSTER FAILOVER` pauses the master's
//!   writes, waits for the replica to reach the master's final offset, then runs a forced
//!   election; FORCE skips the wait, TAKEOVER the election.
//! - **Replica migration** (`migration.rs`): a replica of the master with the most working
//!   replicas moves to a master left with none.
//!
//! # What the design guarantees (and what the simulator checks after every step)
//!
//! - No two masters claim one slot with one config epoch, as long as config epochs taken
//!   without agreement (the end of a slot migration, BUMPEPOCH, collision handling,
//!   TAKEOVER) are taken where a majority can hear them: an election epoch is used by at
//!   most one winner (one vote per master per epoch, the winner's own vote spent, no vote
//!   for an epoch already held as a config epoch).
//! - A side of a partition without a majority of the slot-serving masters never flags a
//!   master FAIL and never promotes a replica.
//! - A dead master with a working replica is replaced, in the absence of loss, within about
//!   `1.5 × node_timeout + 0.5 s`, and within about `node_timeout + 0.5 s` when its
//!   connections were reset (a killed process); under loss a failed election is retried
//!   `2 × max(2 × node_timeout, 2 s)` after the previous one was scheduled. The failover
//!   module's documentation gives the timing design and the measured distribution.
//! - After faults stop, every node converges on one table of roles, epochs and slots.
//! - Not guaranteed: writes acknowledged by a master and not yet replicated are lost by an
//!   automatic failover (asynchronous replication; the rank favours the most up-to-date
//!   replica); a manual failover without FORCE loses none.

use crate::flags::NodeFlags;
use crate::id::NodeId;
use crate::rng::Rng;
use crate::slots::{SlotBitmap, SLOTS};
use crate::view::ClusterView;
use crate::wire::{Body, Gossip, Header, Message, MsgType, MSG_TYPE_COUNT};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) use failover::Election;
pub use manual_failover::MF_TIMEOUT_MS;
pub(crate) use manual_failover::{FailoverMode, ManualFailover};
pub(crate) use sending::PongTo;

mod blacklist;
mod cron;
mod epochs;
mod failover;
mod failure;
mod health;
mod links;
mod manual_failover;
mod migration;
mod nodes;
mod receiving;
mod roles;
mod sending;
mod slot_table;

/// Index of a node in the state's table (stable while the node exists).
pub(crate) type Idx = usize;

/// Settings the cluster bus reads (Redis's `cluster-*` options).
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// `cluster-node-timeout`, milliseconds.
    pub node_timeout_ms: u64,
    /// `cluster-require-full-coverage`.
    pub require_full_coverage: bool,
    /// `cluster-allow-replica-migration`: a replica may move to an orphaned master, and a
    /// master that lost its last slot to a slot migration follows the slot's new owner.
    pub allow_replica_migration: bool,
    /// `cluster-migration-barrier`: a replica migrates only if its master keeps more than
    /// this many working replicas.
    pub migration_barrier: usize,
    /// `cluster-replica-no-failover`: no automatic failover (manual ones still work);
    /// advertised as the `nofailover` flag.
    pub replica_no_failover: bool,
    /// `cluster-replica-validity-factor`: a replica whose master link has been down longer
    /// than `repl_ping_replica_period_ms + node_timeout_ms * factor` (beyond the node timeout)
    /// does not try an automatic failover; 0 disables the check.
    pub replica_validity_factor: u64,
    /// `repl-ping-replica-period`, in milliseconds (part of the data-age allowance).
    pub repl_ping_replica_period_ms: u64,
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
    /// This node's per-core client ports (announced) and slot → core table; empty when
    /// the node advertises its main port only (see [`crate::cores`]).
    pub cores: crate::cores::CoreEndpoints,
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
            migration_barrier: 1,
            replica_no_failover: false,
            replica_validity_factor: 10,
            repl_ping_replica_period_ms: 10_000,
            announce_ip: None,
            announce_hostname: None,
            port,
            pport: 0,
            cport: port.wrapping_add(10000),
            cores: Default::default(),
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
    /// A client published here: PUBLISH goes to every node, SPUBLISH (`shard`) to the
    /// nodes of this node's shard (Redis's PUBLISH and PUBLISHSHARD messages).
    Publish { shard: bool, channel: Vec<u8>, message: Vec<u8> },
    /// This node's slot → core table changed (a slot handed between its cores): the
    /// runs of [`crate::cores::CoreEndpoints`]. Ignored when it advertises no cores.
    SetCoreRuns(Vec<(u16, u8)>),
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
    /// This replica won a failover (or took over): stop replicating and serve as a master,
    /// keeping the data set (as `REPLICAOF NO ONE`). The new slots are in the next view.
    Promoted {
        former_master: NodeId,
    },
    /// This master's replica asked for a manual failover: refuse client writes until
    /// `until_ms` (local time) or [`Output::ResumeWrites`], whichever comes first, so that
    /// the replica can catch up with a final replication offset.
    PauseWrites {
        until_ms: u64,
    },
    /// The manual failover ended (done, timed out or aborted): accept writes again.
    ResumeWrites,
    /// Another node published: deliver to this node's subscribers (`shard`: of the
    /// shard channel).
    Deliver {
        shard: bool,
        channel: Vec<u8>,
        message: Vec<u8>,
    },
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
    /// The node's per-core endpoints (from its headers; ours from the configuration).
    pub cores: crate::cores::CoreEndpoints,
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
    /// For a master: when this node last voted for one of its replicas (0: never).
    pub voted_time: u64,
    /// For a master: since when it has had no working replica (0: not orphaned).
    pub orphaned_time: u64,
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
            cores: Default::default(),
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
            voted_time: 0,
            orphaned_time: 0,
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
    pub const HANDLE_FAILOVER: u8 = 8;
    pub const HANDLE_MANUAL_FAILOVER: u8 = 16;
}

/// The period of [`Input::Tick`]: the state machine's clock resolution when nothing else
/// arrives.
pub(crate) const TICK_MS: u64 = 100;
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
    /// Slots of `importing_from` that a whole-slot migration task marked: shown in
    /// CLUSTER NODES but not saved in nodes.conf (a task does not survive a restart, so
    /// its slots must not stay open after one).
    pub(crate) task_importing: SlotBitmap,
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
    /// A whole-slot migration holds this master's writes to the slots it exports (the
    /// server says so before every input): a manual failover is refused meanwhile.
    pub(crate) migration_holds_writes: bool,
    /// Since when (local ms) the replication link to our master is down; `None` while it is
    /// up. Starts as "down since ever" (0), as Redis's `repl_down_since`.
    pub(crate) master_link_down_since: Option<u64>,
    pub(crate) election: Election,
    pub(crate) mf: ManualFailover,
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
    cores: crate::cores::CoreEndpoints,
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
            task_importing: SlotBitmap::new(),
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
            migration_holds_writes: false,
            master_link_down_since: Some(0),
            election: Election::default(),
            mf: ManualFailover::default(),
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
        me.cores = self.cfg.cores.clone();
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
            Input::Publish { shard, channel, message } => self.send_publish(shard, channel, message),
            Input::SetCoreRuns(runs) => {
                if !self.cfg.cores.is_empty() && self.cfg.cores.runs != runs {
                    self.cfg.cores.runs = runs;
                    let me = self.myself;
                    self.node_mut(me).cores = self.cfg.cores.clone();
                    // nodes.conf keeps every node's endpoints (`nodes_conf`).
                    self.todo |= todo::SAVE_CONFIG;
                }
            }
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

    /// The replication offset advertised in headers: a master's `master_repl_offset`, a
    /// replica's processed offset. The replication layer keeps it current; elections rank
    /// replicas by it and a manual failover waits for it to reach the paused master's.
    pub fn set_repl_offset(&mut self, offset: u64) {
        self.my_repl_offset = offset;
    }

    /// Whether a whole-slot migration holds this master's writes to the slots it exports
    /// now (between the target's PAUSE and the end of the export). A replica's request
    /// for a manual failover is refused meanwhile: the target has this master's last
    /// writes and is about to claim the slots, so a replica taking them over now would
    /// take writes the claim then discards.
    pub fn set_migration_holds_writes(&mut self, held: bool) {
        self.migration_holds_writes = held;
    }

    /// The state of this replica's link to its master: `None` while connected, `Some(t)`
    /// when it went down at local time `t` (0: never connected). The data-age check of
    /// automatic failovers (`replica_validity_factor`) reads it.
    pub fn set_master_link_down_since(&mut self, since_ms: Option<u64>) {
        self.master_link_down_since = since_ms;
    }

    /// A snapshot of the current state, built now (also what [`Output::ViewChanged`] carries).
    pub fn view(&self) -> ClusterView {
        ClusterView::build(self)
    }

    /// The nodes.conf contents for the current state.
    pub fn nodes_conf(&self) -> String {
        let mut view = ClusterView::build(self);
        view.importing.retain(|&(s, _)| !self.task_importing.contains(s));
        crate::nodes_conf::render(&view, self.current_epoch, self.last_vote_epoch)
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
        if self.mf.replica.is_some_and(|r| !live(r)) {
            return Err("the manual failover names a deleted replica".into());
        }
        Ok(())
    }
}
