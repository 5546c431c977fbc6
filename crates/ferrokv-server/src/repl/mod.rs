//! Replication, Redis's PSYNC protocol on both sides.
//!
//! **The stream and its offsets.** A node with replicas (or that had some within
//! `repl-backlog-ttl`) keeps a *backlog*: the last `repl-backlog-size` bytes of its
//! replication stream, and `master_repl_offset`, the count of bytes ever appended.
//! On a master the stream is the node's effects (the execution function's propagation
//! records, `ferrokv_store::effects`): each shard drains its effects log once per loop
//! iteration and hands the parts over here ([`Repl::feed`]), where they are merged into
//! one serial stream under the replication lock (`effects::merge_ready`: a
//! multi-shard unit waits for every shard it locked and goes out in MULTI/EXEC) and
//! appended. So the offset of a write is known as soon as its shard hands it over,
//! which is what WAIT needs. PINGs every `repl-ping-replica-period` and `REPLCONF
//! GETACK *` for WAIT are appended like commands, as Redis does. On a replica the
//! stream is the master's, byte for byte: what the link applies is appended to the
//! replica's own backlog, so its offsets are the master's and a promoted replica can
//! continue its old master's replicas through `replid2`.
//!
//! **Replicas of this node.** A replica is a client that sent PSYNC (or SYNC). Its
//! connection stays on the shard that accepted it, which goes on reading its REPLCONF
//! ACKs; once everything the connection had to send is sent, the shard hands a
//! duplicate of the socket to a thread of the replica's own ([`master`]), which writes
//! the sync and then the stream with blocking writes (a slow replica blocks only its
//! thread). The backlog keeps every byte some replica still needs; a replica more than
//! `client-output-buffer-limit replica` behind is disconnected (and will resync), so
//! memory stays bounded.
//!
//! **Full sync without fork.** The node's copy-on-write snapshot
//! (`crate::persist::start_background_to`) is cut under every keyspace lock; at that
//! instant every shard's effects are drained into the stream, so the cut's offset is
//! exact: the replica gets `+FULLRESYNC <replid> <offset>`, the RDB image (diskless:
//! `$EOF:<mark>` and the image straight from the shards' snapshot, never a file; disk:
//! a BGSAVE to dump.rdb, then `$<len>` and the file), then the stream from that offset.
//!
//! **This node as a replica** ([`replica`]): REPLICAOF starts a link thread that does
//! the handshake as a client of the master (PING, AUTH, REPLCONF listening-port and
//! capa, PSYNC), loads a full sync into emptied keyspaces, then applies the stream.
//!
//! Lock order: keyspace locks (ascending), then the replication state, then the AOF's
//! inbox. Nothing holding the replication state takes a keyspace lock.

pub mod master;
pub mod replica;

use crate::node::{unix_ms, Node, ShardId};
use ferrokv_store::effects::{self, Part, Unit};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

/// Node-wide replication state.
pub struct Repl {
    /// A backlog exists: shards hand their effects over ([`Repl::feed`]).
    pub on: AtomicBool,
    /// The database the master link's stream is in (see `replica.rs`).
    pub link_db: std::sync::atomic::AtomicUsize,
    /// This node replicates from a master (REPLICAOF host port).
    pub is_replica: AtomicBool,
    pub(crate) st: Mutex<State>,
    /// New bytes in the stream, or a replica's state changed.
    pub(crate) more: Condvar,
    /// WAIT clients are parked (checked on ACKs and by the cron).
    pub waiting: AtomicBool,
    /// Client writes are held until this unix ms (a manual failover; 0: not paused).
    pub paused_until: AtomicU64,
    /// Client writes are held while a shutdown waits for its replicas.
    pub held_for_shutdown: AtomicBool,
    /// A full sync is loading: commands without the `loading` flag get -LOADING.
    pub loading: AtomicBool,
    /// Replicas' threads sleeping until woken (see [`Repl::wake_idle`]).
    pub idle_threads: std::sync::atomic::AtomicU32,
    /// INFO stats: full syncs served, partial resyncs accepted and refused.
    pub sync_full: AtomicU64,
    pub sync_partial_ok: AtomicU64,
    pub sync_partial_err: AtomicU64,
}

/// One connected replica, as the master sees it.
pub(crate) struct Replica {
    /// Its client id.
    pub id: u64,
    pub ip: String,
    /// REPLCONF listening-port (0 until it says).
    pub port: u16,
    pub capa_eof: bool,
    pub capa_psync2: bool,
    /// Came with SYNC (the pre-PSYNC protocol): no +FULLRESYNC line, no ACKs.
    pub pre_psync: bool,
    pub phase: master::Phase,
    /// The duplicate of its socket the replica's thread owns (shut down to drop it).
    pub fd: Option<std::os::fd::RawFd>,
    /// What to hand its thread before the stream (sync lines, RDB chunks).
    pub feed: Option<std::sync::mpsc::SyncSender<master::Feed>>,
    /// The next stream offset it needs (None until its sync cut).
    pub next: Option<u64>,
    /// The offset it acknowledged, and when (unix ms).
    pub ack: u64,
    pub ack_ms: u64,
    /// Above the soft output limit since (unix ms).
    pub soft_since: Option<u64>,
    /// Online after a diskless sync, the stream waits for its first ACK.
    pub wait_ack: bool,
    pub closing: bool,
    /// The main port's connection, to close it when the replica is dropped.
    pub shard: ShardId,
    pub token: u64,
}

/// A WAIT client parked until enough replicas acknowledge `offset`.
pub(crate) struct WaitReq {
    pub shard: ShardId,
    pub token: u64,
    pub seq: u64,
    pub offset: u64,
    pub replicas: u64,
    /// Unix ms; 0 waits forever.
    pub deadline: u64,
}

pub(crate) struct State {
    pub replid: String,
    pub replid2: String,
    /// The offset up to which `replid2` is valid (-1: none).
    pub second_offset: i64,
    /// `master_repl_offset`: bytes ever appended to the stream.
    pub offset: u64,
    /// A backlog exists (created by the first replica).
    pub has_backlog: bool,
    /// The stream's last bytes: `buf[0]` is at offset `offset + 1 - buf.len()`.
    pub buf: VecDeque<u8>,
    /// Parts handed over per shard, not yet merged.
    pub pending: Vec<VecDeque<Part>>,
    pub replicas: Vec<Replica>,
    pub waiters: Vec<WaitReq>,
    pub last_ping_ms: u64,
    /// When the last replica went away (unix ms), for `repl-backlog-ttl`.
    pub no_replicas_since: u64,
    /// The replica side: the master this node follows, and the link's state.
    pub link: Option<replica::LinkInfo>,
    pub backlog_size: u64,
    pub limits: master::OutputLimits,
    /// The database the stream's commands are in so far (usize::MAX: none selected
    /// yet, so the next unit's `SELECT` goes first).
    pub stream_db: usize,
}

impl State {
    /// The offset of the backlog's first byte.
    pub fn first(&self) -> u64 {
        self.offset + 1 - self.buf.len() as u64
    }

    /// Appends to the stream and drops what neither the backlog nor a replica needs.
    pub fn append(&mut self, bytes: &[u8]) {
        if !self.has_backlog || bytes.is_empty() {
            return;
        }
        self.buf.extend(bytes);
        self.offset += bytes.len() as u64;
        self.trim();
    }

    pub fn trim(&mut self) {
        let end = self.offset + 1;
        let mut keep = end.saturating_sub(self.backlog_size.max(1));
        for r in &self.replicas {
            if let Some(n) = r.next {
                keep = keep.min(n);
            }
        }
        let first = self.first();
        if keep > first {
            let n = ((keep - first) as usize).min(self.buf.len());
            self.buf.drain(..n);
        }
    }

    /// Creates the backlog (the first replica), as Redis's createReplicationBacklog.
    pub fn create_backlog(&mut self) {
        if !self.has_backlog {
            self.has_backlog = true;
            self.buf.clear();
        }
    }

    /// Merges what can be merged and appends it.
    fn merge(&mut self) -> bool {
        let mut units: Vec<Unit> = Vec::new();
        if let Err(e) = effects::merge_ready(&mut self.pending, &mut units) {
            tracing::error!("replication: effects of the shards do not merge: {e:?}");
        }
        if units.is_empty() {
            return false;
        }
        let mut bytes = Vec::new();
        effects::write_units(&units, &mut bytes, &mut self.stream_db);
        self.append(&bytes);
        true
    }

    /// A new history (Redis's shiftReplicationId): the old id stays valid up to here
    /// as `replid2`, so replicas of the old master can continue with us.
    pub fn shift_replid(&mut self) {
        self.replid2 = std::mem::replace(&mut self.replid, crate::node::random_hex(40));
        self.second_offset = self.offset as i64 + 1;
    }

    /// Forgets the secondary id (Redis's clearReplicationId2).
    pub fn clear_replid2(&mut self) {
        self.replid2 = "0".repeat(40);
        self.second_offset = -1;
    }
}

pub(crate) use crate::node::lock;

impl Repl {
    pub fn new(shards: usize) -> Repl {
        Repl {
            on: AtomicBool::new(false),
            link_db: Default::default(),
            is_replica: AtomicBool::new(false),
            st: Mutex::new(State {
                replid: crate::node::random_hex(40),
                replid2: "0".repeat(40),
                second_offset: -1,
                offset: 0,
                has_backlog: false,
                buf: VecDeque::new(),
                pending: vec![VecDeque::new(); shards],
                replicas: Vec::new(),
                waiters: Vec::new(),
                last_ping_ms: 0,
                no_replicas_since: unix_ms(),
                link: None,
                backlog_size: 1 << 20,
                limits: master::OutputLimits::default(),
                stream_db: usize::MAX,
            }),
            more: Condvar::new(),
            waiting: AtomicBool::new(false),
            paused_until: AtomicU64::new(0),
            held_for_shutdown: AtomicBool::new(false),
            loading: AtomicBool::new(false),
            idle_threads: std::sync::atomic::AtomicU32::new(0),
            sync_full: AtomicU64::new(0),
            sync_partial_ok: AtomicU64::new(0),
            sync_partial_err: AtomicU64::new(0),
        }
    }

    /// Hands `shard`'s drained effects to the stream (a master with a backlog). A
    /// replica's stream is its master's: its own effects go only to its AOF.
    pub fn feed(&self, shard: ShardId, parts: VecDeque<Part>) {
        if parts.is_empty() || self.is_replica.load(Ordering::Relaxed) {
            return;
        }
        let mut st = lock(&self.st);
        if !st.has_backlog {
            return;
        }
        st.pending[shard].extend(parts);
        if st.merge() {
            master::enforce_limits(&mut st);
            drop(st);
            self.wake_idle();
        }
    }

    /// Holds client writes until `until_ms` (0 lifts the pause), as Redis's
    /// `pauseClients(PAUSE_WRITE)` during a manual failover.
    pub fn pause_writes_until(&self, until_ms: u64) {
        self.paused_until.store(until_ms, Ordering::Release);
    }

    /// Holds client writes (or lets them go) while a shutdown waits for replicas, as
    /// Redis's `pauseClients(PAUSE_DURING_SHUTDOWN, .., CLIENT_PAUSE_WRITE)`.
    pub fn hold_writes_for_shutdown(&self, on: bool) {
        self.held_for_shutdown.store(on, Ordering::Release);
    }

    /// Client writes are held now.
    #[inline]
    pub fn writes_paused(&self, now_ms: u64) -> bool {
        let until = self.paused_until.load(Ordering::Relaxed);
        (until != 0 && now_ms < until) || self.held_for_shutdown.load(Ordering::Relaxed)
    }

    /// New bytes in the stream: wakes the replicas' threads that sleep long (idle).
    /// A thread streaming under load wakes by itself every millisecond and sends what
    /// gathered meanwhile: a wake-up per shard loop iteration (a futex call here, a
    /// scheduler round trip there) cost the master about a fifth of its CPU.
    pub fn wake_idle(&self) {
        if self.idle_threads.load(Ordering::Acquire) > 0 {
            self.more.notify_all();
        }
    }

    /// `master_repl_offset`.
    pub fn offset(&self) -> u64 {
        lock(&self.st).offset
    }
}

/// The effects of every shard, drained now and handed to the stream (and to the AOF,
/// which must see them too). Returns the stream's offset after them: every write
/// acknowledged before this call is at or below it (WAIT's target).
pub fn flush_all(node: &Node) -> u64 {
    if node.repl.on.load(Ordering::Acquire) {
        let aof_on = node.aof.on.load(Ordering::Acquire);
        for s in 0..node.shard_count() {
            crate::aof::drain_to_consumers(node, s, aof_on, true);
        }
    }
    node.repl.offset()
}

/// What the cluster bus needs (see `ferrokv_cluster`'s contract): the replication
/// offset (applied, on a replica), and since when the link to the master is down
/// (None while it is up, or on a master).
pub fn facts_for_cluster(node: &Node) -> (u64, Option<u64>) {
    let st = lock(&node.repl.st);
    let down = match &st.link {
        None => None,
        Some(l) if l.state == replica::LinkState::Connected => None,
        Some(l) => Some(l.down_since_ms),
    };
    (st.offset, down)
}

/// Once per cron tick (shard 0): pings, syncs to start, replicas timed out, the
/// backlog's time to live, WAIT timeouts, and the replica side's reconnects and ACKs.
pub fn cron(core: &mut crate::dispatch::ShardCore) {
    let node = core.node;
    master::cron(node);
    replica::cron(node);
    master::expire_waiters(core);
}

/// The role and offsets for INFO replication.
pub fn info(node: &Node, o: &mut String) {
    let st = lock(&node.repl.st);
    let now = unix_ms();
    o.push_str("# Replication\r\n");
    if let Some(l) = &st.link {
        o.push_str("role:slave\r\n");
        l.info(&st, now, o);
        let cfg = node.config();
        o.push_str(&format!(
            "slave_priority:{}\r\nslave_read_only:{}\r\nreplica_announced:{}\r\n",
            cfg.replica_priority, cfg.replica_read_only as u8, cfg.replica_announced as u8
        ));
    } else {
        o.push_str("role:master\r\n");
    }
    let online: Vec<&Replica> = st.replicas.iter().filter(|r| !r.closing).collect();
    o.push_str(&format!("connected_slaves:{}\r\n", online.len()));
    let min_to_write = node.config().min_replicas_to_write;
    if min_to_write > 0 {
        o.push_str(&format!("min_slaves_good_slaves:{}\r\n", master::good_replicas(node, &st, now)));
    }
    for (i, r) in online.iter().enumerate() {
        let lag = now.saturating_sub(r.ack_ms) / 1000;
        o.push_str(&format!(
            "slave{i}:ip={},port={},state={},offset={},lag={lag}\r\n",
            r.ip,
            r.port,
            r.phase.info_name(),
            r.ack
        ));
    }
    let backlog_first = if st.has_backlog { st.first() } else { 0 };
    o.push_str(&format!(
        "master_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\nmaster_repl_offset:{}\r\n\
         second_repl_offset:{}\r\nrepl_backlog_active:{}\r\nrepl_backlog_size:{}\r\n\
         repl_backlog_first_byte_offset:{}\r\nrepl_backlog_histlen:{}\r\n",
        st.replid,
        st.replid2,
        st.offset,
        st.second_offset,
        st.has_backlog as u8,
        st.backlog_size,
        backlog_first,
        st.buf.len(),
    ));
}

/// ROLE.
/// Whether this node follows a master.
pub fn is_replica(node: &Node) -> bool {
    node.repl.is_replica.load(Ordering::Acquire)
}

pub fn role(node: &Node, c: &mut crate::conn::Conn) {
    c.reply(|r| role_reply(node, r));
}

fn role_reply(node: &Node, r: &mut ferrokv_resp::ReplyBuf) {
    let st = lock(&node.repl.st);
    if let Some(l) = &st.link {
        r.array(5);
        r.bulk(b"slave");
        r.bulk(l.host.as_bytes());
        r.integer(l.port as i64);
        r.bulk(l.state_name().as_bytes());
        r.integer(if l.state_name() == "connected" { st.offset as i64 } else { -1 });
        return;
    }
    r.array(3);
    r.bulk(b"master");
    r.integer(st.offset as i64);
    let online: Vec<&Replica> = st.replicas.iter().filter(|r| !r.closing && r.phase.is_online()).collect();
    r.array(online.len());
    for rep in online {
        r.array(3);
        r.bulk(rep.ip.as_bytes());
        r.bulk(rep.port.to_string().as_bytes());
        r.bulk(rep.ack.to_string().as_bytes());
    }
}

/// Bytes the replication stream holds: the backlog and what replicas have yet to read
/// (INFO's `mem_replication_backlog`).
pub fn backlog_bytes(node: &Node) -> u64 {
    lock(&node.repl.st).buf.len() as u64
}

/// The part of the replication buffer beyond `repl-backlog-size`: what replicas still
/// have to read, which Redis leaves out of `maxmemory` (`freeMemoryGetNotCountedMemory`),
/// so that a slow replica does not make the master evict its data set.
pub fn not_counted_bytes(node: &Node) -> u64 {
    if !node.repl.on.load(Ordering::Relaxed) {
        return 0;
    }
    let st = lock(&node.repl.st);
    (st.buf.capacity() as u64).saturating_sub(st.backlog_size)
}

/// Effects must be logged while the AOF or a backlog consumes them.
pub fn effects_wanted(node: &Node) -> bool {
    node.aof.on.load(Ordering::Acquire) || node.repl.on.load(Ordering::Acquire)
}
