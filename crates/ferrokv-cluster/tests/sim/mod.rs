//! A deterministic simulator for the cluster bus: many `ClusterState`s, a virtual clock, a
//! network with delays, loss and partitions, crashes and restarts from nodes.conf, and clock
//! steps — all driven by one seed.
//!
//! Connections behave like TCP: per-direction FIFO delivery, a connect that fails when the
//! target is down or unreachable, a peer that may or may not learn about a crash (RST or
//! silence). Partitions drop traffic between groups (a stalled connection, not a closed one).
//! Messages are encoded and decoded on every hop, so the wire format is exercised too.
//!
//! Replication is modelled by offsets: every tick a master that is not paused takes some
//! writes (its offset grows); a replica that reaches its master follows it with a random lag
//! (a replica ahead of its new master — data lost in a failover — is cut back, as a full
//! resync would); a replica that cannot reach its master stops and reports its master link
//! down. The offsets and the link state are handed to the state machine before every step.

#![allow(dead_code)]

use ferrokv_cluster::slots::SlotBitmap;
use ferrokv_cluster::wire::Body;
use ferrokv_cluster::{
    decode_frame, ClusterConfig, ClusterState, ClusterView, Command, Input, LinkId, NodeFlags, NodeId, Output, Reply,
};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

pub use ferrokv_cluster::rng::Rng;

pub const NODE_TIMEOUT: u64 = 2000;

#[derive(Clone, Debug)]
pub struct NetParams {
    pub min_delay: u64,
    pub max_delay: u64,
    /// Probability that one message is lost.
    pub loss: f64,
    /// Probability that a crash is seen by peers as a reset connection.
    pub rst_on_crash: f64,
}

impl Default for NetParams {
    fn default() -> Self {
        NetParams { min_delay: 1, max_delay: 15, loss: 0.0, rst_on_crash: 0.5 }
    }
}

type ConnId = usize;

struct Side {
    node: usize,
    gen: u64,
    link: LinkId,
}

struct Conn {
    target: (String, u16),
    a: Side,
    b: Option<Side>,
    open: bool,
    established: bool,
    pending: Vec<Vec<u8>>,
    /// Last scheduled delivery time per direction (a → b, b → a): FIFO like TCP.
    last: [u64; 2],
}

pub struct SimNode {
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    pub alive: bool,
    gen: u64,
    pub state: Option<ClusterState>,
    pub clock_offset: i64,
    pub saved_conf: Option<String>,
    pub view: Option<Arc<ClusterView>>,
    links: BTreeMap<LinkId, ConnId>,
    next_inbound: u64,
    pub replies: Vec<Result<Reply, String>>,
    pub deleted_slots: Vec<u16>,
    pub restarts: u64,
    /// Replication offset: writes taken (a master) or applied (a replica).
    pub repl_offset: u64,
    /// When the link to the master went down (local ms), `None` while up.
    pub master_link_down_since: Option<u64>,
    /// Writes refused until this local time (a master in a manual failover).
    pub paused_until: u64,
    /// A test knob: this replica stops applying its master's writes.
    pub repl_frozen: bool,
    /// A whole-slot migration holds this master's writes (`set_migration_holds_writes`).
    pub migration_holds_writes: bool,
    pub promotions: Vec<Promotion>,
    /// The offset writes were paused at, by the last `PauseWrites`.
    pub paused_offset: Option<u64>,
    /// The masters named by `ReplicateFrom`, in order.
    pub replicated_from: Vec<NodeId>,
    /// Log lines, kept when [`Sim::keep_logs`] is set (for debugging a seed).
    pub logs: Vec<String>,
}

enum Ev {
    Tick { node: usize, gen: u64 },
    ConnectDone { conn: ConnId },
    Deliver { conn: ConnId, to_b: bool, bytes: Vec<u8> },
    Closed { node: usize, gen: u64, link: LinkId },
}

struct Scheduled {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// Checks run after every node step; an error fails the run.
pub type Check = Box<dyn FnMut(&Sim, usize) -> Result<(), String>>;

pub struct Sim {
    pub seed: u64,
    pub rng: Rng,
    pub now: u64,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    pub nodes: Vec<SimNode>,
    conns: Vec<Conn>,
    pub net: NetParams,
    /// Partition group of each node; nodes talk only within a group.
    pub group: Vec<u32>,
    /// Called after every node step; returns an error to fail the run.
    pub checks: Vec<Check>,
    pub events: u64,
    /// Counts of notable protocol events (messages by type, FAIL verdicts, ...).
    pub stats: BTreeMap<&'static str, u64>,
    /// The greatest current epoch any node has published.
    pub max_epoch: u64,
    /// Writes a master takes per tick, at most.
    pub write_rate: u64,
    /// Keep every node's log lines in [`SimNode::logs`].
    pub keep_logs: bool,
    /// Which node won each config epoch by a promotion: two winners of one epoch fail the run.
    pub promoted_epochs: BTreeMap<u64, usize>,
    /// Adjusts a node's configuration (at start and at every restart).
    config_hook: Option<ConfigHook>,
}

pub type ConfigHook = Box<dyn Fn(usize, &mut ClusterConfig)>;

/// A node's promotion to master, as the simulator saw it.
#[derive(Clone, Debug)]
pub struct Promotion {
    /// Node index.
    pub node: usize,
    /// Simulated time.
    pub at: u64,
    pub former_master: NodeId,
    /// The config epoch it took.
    pub epoch: u64,
    /// Its replication offset: the writes it kept.
    pub offset: u64,
}

impl Sim {
    pub fn new(seed: u64, n: usize) -> Sim {
        Sim::with_config(seed, n, None)
    }

    pub fn with_config(seed: u64, n: usize, config_hook: Option<ConfigHook>) -> Sim {
        let mut sim = Sim {
            seed,
            rng: Rng::new(seed),
            now: 1_000_000,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: Vec::new(),
            conns: Vec::new(),
            net: NetParams::default(),
            group: vec![0; n],
            checks: Vec::new(),
            events: 0,
            stats: BTreeMap::new(),
            max_epoch: 0,
            write_rate: 100,
            keep_logs: std::env::var_os("SIM_LOGS").is_some(),
            promoted_epochs: BTreeMap::new(),
            config_hook,
        };
        for i in 0..n {
            let ip = format!("10.0.{}.{}", i / 200, i % 200 + 1);
            sim.nodes.push(SimNode {
                ip,
                port: 6379,
                cport: 16379,
                alive: true,
                gen: 0,
                state: None,
                clock_offset: 0,
                saved_conf: None,
                view: None,
                links: BTreeMap::new(),
                next_inbound: 1,
                replies: Vec::new(),
                deleted_slots: Vec::new(),
                restarts: 0,
                repl_offset: 0,
                migration_holds_writes: false,
                master_link_down_since: Some(0),
                paused_until: 0,
                repl_frozen: false,
                promotions: Vec::new(),
                paused_offset: None,
                replicated_from: Vec::new(),
                logs: Vec::new(),
            });
            let cfg = sim.config(i);
            let local = sim.local_now(i);
            sim.nodes[i].state = Some(ClusterState::new(cfg, local));
            let first = sim.rng.below(100);
            sim.schedule(first, Ev::Tick { node: i, gen: 0 });
        }
        sim.checks.push(Box::new(check_no_two_claims_with_one_epoch));
        sim
    }

    fn config(&mut self, i: usize) -> ClusterConfig {
        let mut cfg = ClusterConfig::new(self.nodes[i].port, self.rng.next_u64());
        cfg.cport = self.nodes[i].cport;
        cfg.node_timeout_ms = NODE_TIMEOUT;
        cfg.log_level = ferrokv_cluster::LogLevel::Verbose;
        if let Some(hook) = &self.config_hook {
            hook(i, &mut cfg);
        }
        cfg
    }

    pub fn local_now(&self, i: usize) -> u64 {
        (self.now as i64 + self.nodes[i].clock_offset).max(0) as u64
    }

    fn schedule(&mut self, after: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Scheduled { at: self.now + after, seq: self.seq, ev });
    }

    fn delay(&mut self) -> u64 {
        self.net.min_delay + self.rng.below(self.net.max_delay - self.net.min_delay + 1)
    }

    pub fn reachable(&self, a: usize, b: usize) -> bool {
        self.group[a] == self.group[b]
    }

    pub fn id(&self, i: usize) -> NodeId {
        self.nodes[i].state.as_ref().map(|s| s.my_id()).expect("live node")
    }

    pub fn state(&self, i: usize) -> &ClusterState {
        self.nodes[i].state.as_ref().expect("live node")
    }

    pub fn fresh_view(&self, i: usize) -> ClusterView {
        self.state(i).view()
    }

    /// Feeds one input to node `i` and carries out its outputs.
    pub fn step(&mut self, i: usize, input: Input) {
        let local = self.local_now(i);
        let (offset, link_down) = (self.nodes[i].repl_offset, self.nodes[i].master_link_down_since);
        let held = self.nodes[i].migration_holds_writes;
        let Some(st) = self.nodes[i].state.as_mut() else { return };
        st.set_repl_offset(offset);
        st.set_migration_holds_writes(held);
        st.set_master_link_down_since(link_down);
        let outs = st.handle(local, input);
        self.events += 1;
        let promoted = outs.iter().any(|o| matches!(o, Output::Promoted { .. }));
        for o in outs {
            self.apply(i, o);
        }
        if promoted {
            let epoch = self.state(i).view().me().config_epoch;
            if let Some(p) = self.nodes[i].promotions.last_mut() {
                p.epoch = epoch;
            }
            if let Some(&other) = self.promoted_epochs.get(&epoch).filter(|&&o| o != i) {
                self.dump_logs();
                panic!(
                    "seed {}: at t={} nodes {other} and {i} were both promoted in epoch {epoch}",
                    self.seed, self.now
                );
            }
            self.promoted_epochs.insert(epoch, i);
        }
        // The full cross-reference check walks every slot: sample it.
        if let Some(st) = self.nodes[i].state.as_ref().filter(|_| self.events.is_multiple_of(32)) {
            if let Err(e) = st.check_consistency() {
                panic!("seed {}: at t={} node {i} is inconsistent: {e}", self.seed, self.now);
            }
        }
        let mut checks = std::mem::take(&mut self.checks);
        for c in checks.iter_mut() {
            if let Err(e) = c(self, i) {
                self.dump_logs();
                panic!("seed {}: at t={} after a step of node {i}: {e}", self.seed, self.now);
            }
        }
        self.checks = checks;
    }

    pub fn command(&mut self, i: usize, cmd: Command) -> Result<Reply, String> {
        self.step(i, Input::Command(cmd));
        self.nodes[i].replies.pop().expect("a reply")
    }

    fn apply(&mut self, i: usize, o: Output) {
        match o {
            Output::SaveConfig { text, .. } => self.nodes[i].saved_conf = Some(text),
            Output::Connect { link, ip, port } => {
                let conn = self.conns.len();
                self.conns.push(Conn {
                    target: (ip.clone(), port),
                    a: Side { node: i, gen: self.nodes[i].gen, link },
                    b: None,
                    open: true,
                    established: false,
                    pending: Vec::new(),
                    last: [0; 2],
                });
                self.nodes[i].links.insert(link, conn);
                let target = self.nodes.iter().position(|n| n.ip == ip && n.cport == port);
                // Refused at once by a dead host; a partition times out later.
                let after = match target {
                    Some(t) if !self.reachable(i, t) => 500 + self.rng.below(500),
                    _ => self.delay(),
                };
                self.schedule(after, Ev::ConnectDone { conn });
            }
            Output::Send { link, msg } => {
                let kind = match msg.body {
                    Body::Fail { .. } => Some("fail messages"),
                    Body::Update { .. } => Some("update messages"),
                    Body::Meet(_) => Some("meet messages"),
                    _ => None,
                };
                if let Some(k) = kind {
                    *self.stats.entry(k).or_default() += 1;
                }
                let Some(&c) = self.nodes[i].links.get(&link) else { return };
                let bytes = msg.encode();
                let to_b = self.conns[c].a.node == i && self.conns[c].a.link == link;
                if !self.conns[c].established {
                    self.conns[c].pending.push(bytes);
                } else {
                    self.transmit(c, to_b, bytes);
                }
            }
            Output::Close(link) => {
                if let Some(c) = self.nodes[i].links.remove(&link) {
                    self.close_conn(c, Some(i), 1.0);
                }
            }
            Output::ViewChanged(v) => {
                self.max_epoch = self.max_epoch.max(v.current_epoch);
                self.nodes[i].view = Some(v);
            }
            Output::Reply(r) => self.nodes[i].replies.push(r),
            Output::DeleteKeysInSlots(s) => self.nodes[i].deleted_slots.extend(s),
            Output::Log { text, .. } => {
                if self.keep_logs {
                    let line = format!("{} {text}", self.now);
                    self.nodes[i].logs.push(line);
                }
                if text.starts_with("Starting a failover election") {
                    *self.stats.entry("elections").or_default() += 1;
                } else if text.starts_with("Marking node") {
                    *self.stats.entry("fail verdicts").or_default() += 1;
                } else if text.starts_with("Clear FAIL") {
                    *self.stats.entry("fail clears").or_default() += 1;
                }
            }
            Output::ReplicateFrom { master, .. } => {
                // Reconnecting to the (new) master.
                if self.nodes[i].master_link_down_since.is_none() {
                    self.nodes[i].master_link_down_since = Some(self.local_now(i));
                }
                self.nodes[i].replicated_from.push(master);
            }
            Output::StopReplication { .. } => self.nodes[i].master_link_down_since = Some(0),
            Output::Promoted { former_master } => {
                *self.stats.entry("promotions").or_default() += 1;
                let offset = self.nodes[i].repl_offset;
                self.nodes[i].promotions.push(Promotion { node: i, at: self.now, former_master, epoch: 0, offset });
            }
            Output::PauseWrites { until_ms } => {
                *self.stats.entry("write pauses").or_default() += 1;
                self.nodes[i].paused_until = until_ms;
                self.nodes[i].paused_offset = Some(self.nodes[i].repl_offset);
            }
            Output::ResumeWrites => self.nodes[i].paused_until = 0,
            // Pub/sub messages carry no cluster state.
            Output::Deliver { .. } => {}
        }
    }

    /// Marks a connection closed; the side(s) other than `closer` hear of it with
    /// probability `notify`.
    fn close_conn(&mut self, c: ConnId, closer: Option<usize>, notify: f64) {
        if !self.conns[c].open {
            return;
        }
        self.conns[c].open = false;
        let sides: Vec<(usize, u64, LinkId)> = std::iter::once(&self.conns[c].a)
            .chain(self.conns[c].b.as_ref())
            .map(|s| (s.node, s.gen, s.link))
            .collect();
        for (node, gen, link) in sides {
            if Some(node) == closer || !self.nodes[node].alive || self.nodes[node].gen != gen {
                continue;
            }
            if self.rng.chance(notify) {
                let d = self.delay();
                self.schedule(d, Ev::Closed { node, gen, link });
            }
        }
    }

    /// Sends bytes from the opener (a) to the acceptor (b) when `to_b`, else back.
    fn transmit(&mut self, c: ConnId, to_b: bool, bytes: Vec<u8>) {
        let conn = &self.conns[c];
        if !conn.open {
            return;
        }
        let Some(b) = conn.b.as_ref().map(|b| b.node) else { return };
        let (from, other) = if to_b { (conn.a.node, b) } else { (b, conn.a.node) };
        if !self.reachable(from, other) || self.rng.chance(self.net.loss) {
            return;
        }
        let d = self.delay();
        let dir = if to_b { 0 } else { 1 };
        let at = (self.now + d).max(self.conns[c].last[dir]);
        self.conns[c].last[dir] = at;
        self.seq += 1;
        self.queue.push(Scheduled { at, seq: self.seq, ev: Ev::Deliver { conn: c, to_b, bytes } });
    }

    fn handle_event(&mut self, ev: Ev) {
        match ev {
            Ev::Tick { node, gen } => {
                if self.nodes[node].alive && self.nodes[node].gen == gen {
                    self.replicate(node);
                    self.step(node, Input::Tick);
                    self.schedule(100, Ev::Tick { node, gen });
                }
            }
            Ev::ConnectDone { conn } => {
                let (a, gen, link) = (self.conns[conn].a.node, self.conns[conn].a.gen, self.conns[conn].a.link);
                if !self.nodes[a].alive || self.nodes[a].gen != gen || !self.conns[conn].open {
                    return;
                }
                let (ip, port) = self.conns[conn].target.clone();
                let target = self.nodes.iter().position(|n| n.ip == ip && n.cport == port);
                match target {
                    Some(t) if self.nodes[t].alive && self.reachable(a, t) => {
                        let inbound = LinkId::Inbound(self.nodes[t].next_inbound);
                        self.nodes[t].next_inbound += 1;
                        self.nodes[t].links.insert(inbound, conn);
                        self.conns[conn].b = Some(Side { node: t, gen: self.nodes[t].gen, link: inbound });
                        self.conns[conn].established = true;
                        let (peer_ip, local_ip) = (self.nodes[a].ip.clone(), self.nodes[t].ip.clone());
                        self.step(t, Input::Accepted { link: inbound, peer_ip, local_ip });
                        self.step(a, Input::Connected(link));
                        let pending = std::mem::take(&mut self.conns[conn].pending);
                        for bytes in pending {
                            self.transmit(conn, true, bytes);
                        }
                    }
                    _ => {
                        self.conns[conn].open = false;
                        self.nodes[a].links.remove(&link);
                        self.step(a, Input::Closed(link));
                    }
                }
            }
            Ev::Deliver { conn, to_b, bytes } => {
                let c = &self.conns[conn];
                if !c.open {
                    return;
                }
                let side = if to_b { c.b.as_ref() } else { Some(&c.a) };
                let Some(side) = side else { return };
                let (node, gen, link) = (side.node, side.gen, side.link);
                let from = if to_b { c.a.node } else { c.b.as_ref().map_or(node, |b| b.node) };
                if !self.nodes[node].alive || self.nodes[node].gen != gen || !self.reachable(from, node) {
                    return;
                }
                let (msg, used) = decode_frame(&bytes).expect("valid frame").expect("complete frame");
                assert_eq!(used, bytes.len());
                self.step(node, Input::Message { link, msg });
            }
            Ev::Closed { node, gen, link } => {
                if self.nodes[node].alive
                    && self.nodes[node].gen == gen
                    && self.nodes[node].links.remove(&link).is_some()
                {
                    self.step(node, Input::Closed(link));
                }
            }
        }
    }

    /// Prints every node's kept log lines (with `SIM_LOGS` set), e.g. before failing a run.
    pub fn dump_logs(&self) {
        for (i, n) in self.nodes.iter().enumerate() {
            for l in &n.logs {
                println!("node {i}: {l}");
            }
        }
    }

    /// One tick of the replication model for node `i` (see the module documentation).
    fn replicate(&mut self, i: usize) {
        let Some(view) = self.nodes[i].view.clone() else { return };
        let me = view.me();
        let local = self.local_now(i);
        if me.is_master() {
            if local >= self.nodes[i].paused_until {
                self.nodes[i].repl_offset += self.rng.below(self.write_rate + 1);
            }
            return;
        }
        let master = me.master.and_then(|m| self.index_of(&m));
        match master {
            Some(j) if self.reachable(i, j) && !self.nodes[i].repl_frozen => {
                self.nodes[i].master_link_down_since = None;
                let theirs = self.nodes[j].repl_offset;
                let lag = if self.rng.chance(0.5) { 0 } else { self.rng.below(self.write_rate + 1) };
                let n = &mut self.nodes[i];
                n.repl_offset =
                    if n.repl_offset > theirs { theirs } else { n.repl_offset.max(theirs.saturating_sub(lag)) };
            }
            _ => {
                if self.nodes[i].master_link_down_since.is_none() {
                    self.nodes[i].master_link_down_since = Some(local);
                }
            }
        }
    }

    /// Runs until virtual time `until` (absolute).
    pub fn run_until(&mut self, until: u64) {
        while let Some(top) = self.queue.peek() {
            if top.at > until {
                break;
            }
            let s = self.queue.pop().expect("peeked");
            self.now = s.at;
            self.handle_event(s.ev);
        }
        self.now = until;
    }

    pub fn run_for(&mut self, ms: u64) {
        let until = self.now + ms;
        self.run_until(until);
    }

    /// Runs in steps of `step` ms until `cond` holds or `max` ms have passed; returns
    /// whether it held.
    pub fn run_until_cond(&mut self, max: u64, step: u64, mut cond: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + max;
        while self.now < end {
            if cond(self) {
                return true;
            }
            self.run_for(step);
        }
        cond(self)
    }

    // ------------------------------------------------------------ faults

    pub fn crash(&mut self, i: usize) {
        if !self.nodes[i].alive {
            return;
        }
        self.nodes[i].alive = false;
        self.nodes[i].state = None;
        self.nodes[i].view = None;
        let conns: Vec<ConnId> = self.nodes[i].links.values().copied().collect();
        self.nodes[i].links.clear();
        let notify = self.net.rst_on_crash;
        for c in conns {
            self.close_conn(c, Some(i), notify);
        }
        // Connections the node accepted are in its link table too; any other connection
        // touching it (e.g. still connecting towards it) fails on its own.
    }

    /// Restarts a crashed node from the nodes.conf it last saved.
    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].alive {
            return;
        }
        self.nodes[i].alive = true;
        self.nodes[i].gen += 1;
        self.nodes[i].restarts += 1;
        // A restarted replica has not reached its master yet; writes are not paused.
        self.nodes[i].master_link_down_since = Some(0);
        self.nodes[i].paused_until = 0;
        let cfg = self.config(i);
        let local = self.local_now(i);
        let st = match &self.nodes[i].saved_conf {
            Some(text) => ClusterState::load(cfg, text, local).expect("nodes.conf loads"),
            None => ClusterState::new(cfg, local),
        };
        self.nodes[i].state = Some(st);
        let gen = self.nodes[i].gen;
        let first = self.rng.below(100);
        self.schedule(first, Ev::Tick { node: i, gen });
    }

    pub fn partition(&mut self, groups: Vec<u32>) {
        self.group = groups;
    }

    pub fn heal(&mut self) {
        self.group = vec![0; self.nodes.len()];
    }

    pub fn alive(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].alive).collect()
    }

    /// Every promotion so far, in time order.
    pub fn promotions(&self) -> Vec<Promotion> {
        let mut all: Vec<Promotion> = self.nodes.iter().flat_map(|n| n.promotions.iter().cloned()).collect();
        all.sort_by_key(|p| p.at);
        all
    }

    /// The node with this ID, if alive.
    pub fn index_of(&self, id: &NodeId) -> Option<usize> {
        (0..self.nodes.len()).find(|&j| self.nodes[j].state.is_some() && self.id(j) == *id)
    }
}

// ---------------------------------------------------------------- checks and helpers

/// Slots `i` claims as a master, with its config epoch, from its last published view.
fn claim(sim: &Sim, i: usize) -> Option<(u64, Vec<(u16, u16)>)> {
    let v = sim.nodes[i].view.as_ref()?;
    let me = v.me();
    (me.is_master() && !me.slot_ranges.is_empty()).then(|| (me.config_epoch, me.slot_ranges.clone()))
}

fn overlap(a: &[(u16, u16)], b: &[(u16, u16)]) -> Option<u16> {
    for &(s1, e1) in a {
        for &(s2, e2) in b {
            if s1.max(s2) <= e1.min(e2) {
                return Some(s1.max(s2));
            }
        }
    }
    None
}

/// No slot is ever claimed by two different masters with the same config epoch.
pub fn check_no_two_claims_with_one_epoch(sim: &Sim, i: usize) -> Result<(), String> {
    if !sim.nodes[i].alive {
        return Ok(());
    }
    let Some((epoch, mine)) = claim(sim, i) else { return Ok(()) };
    for j in sim.alive() {
        if j == i {
            continue;
        }
        if let Some((e, theirs)) = claim(sim, j) {
            if e == epoch {
                if let Some(slot) = overlap(&mine, &theirs) {
                    return Err(format!("nodes {i} and {j} both claim slot {slot} with config epoch {epoch}"));
                }
            }
        }
    }
    Ok(())
}

pub type SummaryNode = (NodeId, String, Option<NodeId>, u64, Vec<(u16, u16)>);

/// What must be equal across nodes once the cluster has settled.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    /// ID, flags, master, shown epoch, slots.
    pub nodes: Vec<SummaryNode>,
    pub state_ok: bool,
}

pub fn summary(v: &ClusterView) -> Summary {
    let nodes = v
        .nodes
        .iter()
        .map(|n| {
            let mut f = n.flags;
            f.remove(NodeFlags::MYSELF);
            (n.id, f.names(), n.master, n.shown_epoch, n.slot_ranges.clone())
        })
        .collect();
    Summary { nodes, state_ok: v.state_ok }
}

/// All live nodes agree on the node table (flags, roles, epochs, slots) and state, and
/// know `expected_nodes` nodes with no handshake pending.
pub fn converged(sim: &Sim, expected_nodes: usize) -> Result<(), String> {
    let alive = sim.alive();
    let first = summary(&sim.fresh_view(alive[0]));
    for &i in &alive {
        let v = sim.fresh_view(i);
        if v.nodes.len() != expected_nodes {
            return Err(format!("node {i} knows {} nodes, expected {expected_nodes}", v.nodes.len()));
        }
        if let Some(n) = v.nodes.iter().find(|n| n.flags.intersects(NodeFlags::HANDSHAKE)) {
            return Err(format!("node {i} still in handshake with {}", n.ip));
        }
        let s = summary(&v);
        if s != first {
            let diff = s
                .nodes
                .iter()
                .zip(&first.nodes)
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("{a:?} vs {b:?}"))
                .unwrap_or_else(|| format!("state_ok {} vs {}", s.state_ok, first.state_ok));
            return Err(format!("node {i} disagrees with node {}: {diff}", alive[0]));
        }
    }
    Ok(())
}

pub fn meet(sim: &mut Sim, i: usize, j: usize) {
    let (ip, port) = (sim.nodes[j].ip.clone(), sim.nodes[j].port);
    let r = sim.command(i, Command::Meet { ip: ip.into_bytes(), port: port.to_string().into_bytes(), bus_port: None });
    assert_eq!(r, Ok(Reply::Ok));
}

pub fn slot_block(m: usize, masters: usize) -> (u16, u16) {
    let per = 16384 / masters;
    let start = m * per;
    let end = if m + 1 == masters { 16383 } else { (m + 1) * per - 1 };
    (start as u16, end as u16)
}

/// `n` nodes joined by MEETs to random earlier nodes (the rest is learnt by gossip), the
/// first `masters` serving equal slot blocks, the others replicating them in turn.
pub fn build_cluster(seed: u64, n: usize, masters: usize) -> Sim {
    build_cluster_with(seed, n, masters, None)
}

/// [`build_cluster`] with a configuration hook.
pub fn build_cluster_with(seed: u64, n: usize, masters: usize, hook: Option<ConfigHook>) -> Sim {
    let mut sim = Sim::with_config(seed, n, hook);
    sim.run_for(300);
    for i in 1..n {
        let j = sim.rng.below(i as u64) as usize;
        meet(&mut sim, i, j);
    }
    let joined = sim.run_until_cond(60_000, 250, |s| {
        s.alive().iter().all(|&i| {
            let v = s.fresh_view(i);
            v.nodes.len() == n && v.nodes.iter().all(|x| !x.flags.intersects(NodeFlags::HANDSHAKE))
        })
    });
    assert!(joined, "seed {seed}: nodes did not all meet: {:?}", converged(&sim, n));
    for m in 0..masters {
        let (a, b) = slot_block(m, masters);
        let r = sim.command(m, Command::AddSlotsRange(vec![a.to_string().into_bytes(), b.to_string().into_bytes()]));
        assert_eq!(r, Ok(Reply::Ok));
    }
    for i in masters..n {
        let master = sim.id(i % masters);
        let r = sim.command(i, Command::Replicate { node: master.as_str().as_bytes().to_vec(), db_empty: true });
        assert_eq!(r, Ok(Reply::Ok), "seed {seed}");
    }
    let ok = sim.run_until_cond(60_000, 250, |s| converged(s, n).is_ok() && s.fresh_view(0).state_ok);
    assert!(ok, "seed {seed}: cluster did not converge: {:?}", converged(&sim, n));
    sim
}

pub fn slots_bitmap(ranges: &[(u16, u16)]) -> SlotBitmap {
    let mut b = SlotBitmap::new();
    for &(s, e) in ranges {
        b.insert_range(s, e);
    }
    b
}

/// Moves one random slot to master `b` as redis-cli does (IMPORTING on the target, NODE on
/// the target, then NODE on the source if it can be reached). Only done when `b` knows the
/// greatest epoch in the cluster and has a live majority of the slot-serving masters (as
/// `b` sees them) on its side of any partition: ending a migration takes a config epoch
/// without agreement, and one taken under a colliding epoch — or out of the voters' hearing
/// while they elect a replica with the same new epoch — is the way Redis itself lets two
/// owners share an epoch.
pub fn move_a_slot(sim: &mut Sim, b: usize) -> bool {
    if !sim.nodes[b].alive || sim.state(b).current_epoch() != sim.max_epoch {
        return false;
    }
    let vb = sim.fresh_view(b);
    if !vb.me().is_master() {
        return false;
    }
    // The majority that must hear the new epoch is one of the masters serving slots (the
    // voters), counted live and on b's side: nodes in general, dead ones included, are not.
    let serving: Vec<NodeId> = vb.nodes.iter().filter(|n| n.is_master() && n.num_slots > 0).map(|n| n.id).collect();
    let heard = serving.iter().filter_map(|id| sim.index_of(id)).filter(|&i| sim.reachable(b, i)).count();
    if heard * 2 <= serving.len() {
        return false;
    }
    let slot = sim.rng.below(16384) as u16;
    let Some(owner) = vb.slot_owner(slot).filter(|o| o.id != vb.me().id).map(|o| o.id) else { return false };
    let arg = |s: String| s.into_bytes();
    let r = sim.command(
        b,
        Command::SetSlot {
            args: vec![arg(slot.to_string()), arg("importing".into()), arg(owner.to_string())],
            keys_in_slot: 0,
        },
    );
    if r.is_err() {
        return false;
    }
    let me = sim.id(b);
    let setslot = |action: &str, node: &NodeId| Command::SetSlot {
        args: vec![arg(slot.to_string()), arg(action.into()), arg(node.to_string())],
        keys_in_slot: 0,
    };
    // The source, when reachable, marks the slot migrating first.
    let a = (0..sim.nodes.len()).find(|&i| sim.nodes[i].alive && sim.id(i) == owner).filter(|&a| sim.reachable(a, b));
    if let Some(a) = a {
        let _ = sim.command(a, setslot("migrating", &me));
    }
    let r = sim.command(b, setslot("node", &me));
    assert_eq!(r, Ok(Reply::Ok), "seed {}", sim.seed);
    *sim.stats.entry("slot moves").or_default() += 1;
    if let Some(a) = a {
        let _ = sim.command(a, setslot("node", &me));
    }
    true
}
