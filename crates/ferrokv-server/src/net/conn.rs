//! One client connection, owned by the shard that accepted it (its home).

use crate::node::ClientMeta;
use ferrokv_commands::CommandSpec;
use ferrokv_resp::{OwnedArgs, Proto, ReplyBuf, RequestParser};
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::Arc;

/// A reply slot for a command that runs on another shard. Replies of later commands
/// that run here wait in `after` until this one arrives, so replies leave in order.
pub struct Pending {
    pub reply: Option<Vec<u8>>,
    pub after: Vec<u8>,
    /// Sent while replies were silenced (CLIENT REPLY OFF/SKIP): its reply is dropped.
    pub silent: bool,
}

/// CLIENT REPLY: whether the connection's replies are sent (pub/sub and tracking
/// pushes always are, as Redis's `CLIENT_PUSHING` lets them through).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplyMode {
    /// CLIENT REPLY OFF until ON.
    pub off: bool,
    /// This command's reply is skipped (the one after CLIENT REPLY SKIP).
    pub skip: bool,
    /// CLIENT REPLY SKIP ran: the next command's reply is skipped.
    pub skip_next: bool,
    /// Replies written now are dropped (set for each command from the above).
    pub silent: bool,
}

pub struct QueuedCommand {
    pub spec: &'static CommandSpec,
    pub id: ferrokv_commands::table::CommandId,
    pub args: OwnedArgs,
}

#[derive(Default)]
pub struct Multi {
    pub queued: Vec<QueuedCommand>,
    /// A command failed to queue: EXEC answers EXECABORT.
    pub dirty: bool,
    /// Cluster mode: the slot of the keys queued so far.
    pub slot: Option<u16>,
    /// CLIENT LIST's `multi-mem`: the queued arguments' bytes plus a pointer per
    /// argument, as Redis's `mstate.argv_len_sums`.
    pub argv_mem: u64,
}

pub struct Watch {
    pub key: Vec<u8>,
    pub shard: usize,
    /// The database the key was watched in.
    pub db: usize,
    pub version: u64,
    /// The key existed (unexpired) when WATCH ran: its expiry before EXEC aborts.
    pub existed: bool,
}

/// A connection's mode: one at a time, so no combination of flags can describe a state
/// that cannot exist (a blocked client inside MULTI). Subscriptions are not a mode (see
/// [`Conn::subs`]); monitor connections join this when MONITOR lands.
pub enum Mode {
    /// Commands run as they arrive.
    Normal,
    /// After MULTI: commands are queued until EXEC or DISCARD.
    Multi(Multi),
    /// Waiting in a blocking command: parsing stops until it is served or times out.
    Blocked(BlockState),
    /// A replica (after PSYNC/SYNC), by its client id: its thread writes the stream on
    /// a duplicate of the socket (see `crate::repl`); the connection only reads its
    /// REPLCONF ACKs, and anything it would reply is dropped.
    Replica(u64),
}

/// A connection waiting in a blocking command.
pub struct BlockState {
    pub seq: u64,
    pub waiter: std::sync::Arc<crate::blocking::Waiter>,
    /// Counted in INFO's blocked_clients: once it is registered where its keys live.
    pub counted: bool,
    /// Counted in INFO's clients_in_timeout_table: blocked with a timeout.
    pub timed: bool,
}

pub struct Conn {
    pub fd: RawFd,
    pub token: u64,
    pub meta: Arc<ClientMeta>,
    pub parser: RequestParser,
    pub inbuf: Vec<u8>,
    /// Encoded replies ready to send, in order.
    pub out: Vec<u8>,
    /// The buffer of the send in flight, and how much of it went out.
    pub sending: Vec<u8>,
    pub sent: usize,
    pub send_inflight: bool,
    pub recv_armed: bool,
    pub pending: VecDeque<Pending>,
    /// Sequence number of `pending[0]`.
    pub front_seq: u64,
    /// Parsing stopped until forwarded commands have all replied.
    pub stalled: bool,
    pub proto: Proto,
    pub authed: bool,
    /// Close once everything queued was sent.
    pub closing: bool,
    /// The socket was shut down; the slot is freed when no operation is in flight.
    pub dead: bool,
    /// What the connection is doing besides running commands one by one.
    pub mode: Mode,
    /// Parsing stops until the reply of this command arrives (CLUSTER changes).
    pub barrier: Option<u64>,
    /// `Node::route_epoch` when this connection last forwarded a command (see
    /// `dispatch::route`: after a slot handoff it waits for those first).
    pub route_epoch: u64,
    /// ASKING was sent: the next command may run on an importing slot.
    pub asking: bool,
    /// READONLY: reads of slots served by this replica's master are allowed.
    pub readonly: bool,
    /// Accepted on this shard's own port (`core-ports`), not the node's main port: in
    /// cluster mode a key of a slot another core of this node serves gets MOVED to
    /// that core's endpoint instead of being forwarded (see `cluster::cluster_route`).
    pub core_port: bool,
    pub watched: Vec<Watch>,
    pub in_flush_list: bool,
    /// `appendfsync always`: `out` may go only once the AOF is durable up to this
    /// sequence number (see `crate::aof`); 0 when nothing waits.
    pub held_until: u64,
    pub last_ms: u64,
    /// What it is subscribed to (`None`: nothing). A RESP2 connection with
    /// subscriptions is in Redis's subscribed state: only (P|S)(UN)SUBSCRIBE, PING,
    /// QUIT and RESET run. It is not a [`Mode`]: a RESP3 connection may subscribe and
    /// still run MULTI or block, so subscriptions sit beside the mode.
    pub subs: Option<crate::pubsub::Subscriptions>,
    /// Since when its output has been over the soft `client-output-buffer-limit`.
    pub obuf_soft_since: Option<u64>,
    /// The most `out` held since the last reset (see `client_mem::resize_output`).
    pub out_peak: usize,
    pub out_peak_reset_ms: u64,
    /// The memory this connection last counted in its shard's client totals (see
    /// `Conn::memory` and `crate::client_mem`).
    pub mem_counted: u64,
    /// Where Redis would hold the unsent output (CLIENT LIST `obl`, `oll`, `omem`,
    /// `rbs`, `rbp`; what the output limits compare): fed as replies are added and sent.
    pub layout: crate::reply_layout::ReplyLayout,
    /// CLIENT TRACKING state (`None`: off).
    pub tracking: Option<Box<crate::tracking::ClientTracking>>,
    /// What its subscriptions take, taken when they change (not walked per flush).
    pub subs_mem: usize,
    /// The selected database (SELECT): every command's keys are there.
    pub db: usize,
    pub reply_mode: ReplyMode,
}

impl Conn {
    /// Selects database `n` (SELECT, RESET, EXEC running a queued SELECT).
    pub fn select(&mut self, n: usize) {
        self.db = n;
        self.meta.db.store(n as u32, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn new(fd: RawFd, token: u64, meta: Arc<ClientMeta>, authed: bool, now_ms: u64) -> Conn {
        Conn {
            fd,
            token,
            meta,
            parser: RequestParser::new(),
            inbuf: Vec::new(),
            out: Vec::new(),
            sending: Vec::new(),
            sent: 0,
            send_inflight: false,
            recv_armed: false,
            pending: VecDeque::new(),
            front_seq: 0,
            stalled: false,
            proto: Proto::Resp2,
            authed,
            closing: false,
            dead: false,
            mode: Mode::Normal,
            barrier: None,
            route_epoch: 0,
            asking: false,
            core_port: false,
            readonly: false,
            watched: Vec::new(),
            in_flush_list: false,
            held_until: 0,
            last_ms: now_ms,
            subs: None,
            obuf_soft_since: None,
            mem_counted: 0,
            out_peak: 0,
            out_peak_reset_ms: 0,
            layout: Default::default(),
            tracking: None,
            subs_mem: 0,
            db: 0,
            reply_mode: ReplyMode::default(),
        }
    }

    /// Parsing waits for a blocking command or a CLUSTER change to answer.
    #[inline]
    pub fn waiting(&self) -> bool {
        matches!(self.mode, Mode::Blocked(_)) || self.barrier.is_some()
    }

    #[inline]
    pub fn multi(&self) -> Option<&Multi> {
        match &self.mode {
            Mode::Multi(m) => Some(m),
            _ => None,
        }
    }

    #[inline]
    pub fn multi_mut(&mut self) -> Option<&mut Multi> {
        match &mut self.mode {
            Mode::Multi(m) => Some(m),
            _ => None,
        }
    }

    /// Leaves MULTI, returning the transaction.
    pub fn take_multi(&mut self) -> Option<Multi> {
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Multi(m) => Some(m),
            other => {
                self.mode = other;
                None
            }
        }
    }

    #[inline]
    pub fn blocked(&self) -> Option<&BlockState> {
        match &self.mode {
            Mode::Blocked(b) => Some(b),
            _ => None,
        }
    }

    pub fn blocked_mut(&mut self) -> Option<&mut BlockState> {
        match &mut self.mode {
            Mode::Blocked(b) => Some(b),
            _ => None,
        }
    }

    /// Leaves the blocking command, returning its state.
    pub fn take_blocked(&mut self) -> Option<BlockState> {
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Blocked(b) => {
                self.meta.mem.argv.store(0, std::sync::atomic::Ordering::Relaxed);
                Some(b)
            }
            other => {
                self.mode = other;
                None
            }
        }
    }

    /// Commands sent to other shards that have not replied yet.
    pub fn inflight(&self) -> usize {
        self.pending.len()
    }

    /// Runs `f` with the buffer the next reply belongs in: straight to `out` when
    /// nothing is pending, else behind the last pending reply.
    #[inline]
    pub fn reply<R>(&mut self, f: impl FnOnce(&mut ReplyBuf) -> R) -> R {
        if self.reply_mode.silent {
            return f(&mut ReplyBuf::new(self.proto));
        }
        self.push(f)
    }

    /// Writes a pub/sub or tracking message: sent even while CLIENT REPLY silences the
    /// connection's replies.
    pub fn push<R>(&mut self, f: impl FnOnce(&mut ReplyBuf) -> R) -> R {
        let target = match self.pending.back_mut() {
            Some(p) => &mut p.after,
            None => &mut self.out,
        };
        let before = target.len();
        let mut rb = ReplyBuf::with_buf(std::mem::take(target), self.proto);
        let r = f(&mut rb);
        *target = rb.buf;
        let added = target.len().saturating_sub(before);
        if added > 0 {
            self.layout.add(added);
        }
        r
    }

    /// Where the next reply goes, to find it again with [`Conn::replied_since`].
    pub fn reply_mark(&self) -> (usize, usize) {
        let len = match self.pending.back() {
            Some(p) => p.after.len(),
            None => self.out.len(),
        };
        (self.pending.len(), len)
    }

    /// What was replied since `mark` (empty if the reply went behind a new pending
    /// slot, or was already sent).
    pub fn replied_since(&self, mark: (usize, usize)) -> &[u8] {
        if self.pending.len() != mark.0 {
            return &[];
        }
        let buf = match self.pending.back() {
            Some(p) => &p.after,
            None => &self.out,
        };
        buf.get(mark.1..).unwrap_or(&[])
    }

    pub fn error(&mut self, msg: &str) {
        self.reply(|r| r.error(msg));
    }

    /// Reserves the reply slot of a forwarded command; returns its sequence number.
    pub fn push_pending(&mut self) -> u64 {
        self.pending.push_back(Pending { reply: None, after: Vec::new(), silent: self.reply_mode.silent });
        self.front_seq + self.pending.len() as u64 - 1
    }

    /// Stores the reply of forwarded command `seq` and moves every reply that is now
    /// in order to `out`.
    pub fn complete(&mut self, seq: u64, bytes: Vec<u8>) {
        let Some(idx) = seq.checked_sub(self.front_seq) else { return };
        if let Some(p) = self.pending.get_mut(idx as usize) {
            if p.reply.is_none() {
                let bytes = if p.silent { Vec::new() } else { bytes };
                if !bytes.is_empty() {
                    self.layout.add(bytes.len());
                }
                p.reply = Some(bytes);
            }
        }
        while self.pending.front().is_some_and(|p| p.reply.is_some()) {
            if let Some(p) = self.pending.pop_front() {
                let reply = p.reply.as_deref().unwrap_or_default();
                self.out.extend_from_slice(reply);
                self.out.extend_from_slice(&p.after);
                self.front_seq += 1;
            }
        }
    }

    /// Drops every reply not yet sent (a connection closed for its buffers); the
    /// send in flight keeps its buffer until its completion.
    pub fn drop_output(&mut self) {
        self.out = Vec::new();
        self.pending.clear();
        self.layout.clear();
    }

    /// What this connection holds in memory, as Redis's `getClientMemoryUsage` sums
    /// it: output (Redis's figures for it: its reply buffer and `omem`, see
    /// [`Conn::layout`]), the query buffer, the connection itself, the arguments of a
    /// command it keeps (a blocked one) and of a queued transaction, its subscriptions.
    pub fn memory(&self) -> u64 {
        let conn = std::mem::size_of::<Conn>() + std::mem::size_of::<ClientMeta>();
        let out = self.layout.rbs() + self.layout.omem() + self.pending.capacity() * std::mem::size_of::<Pending>();
        let multi = self
            .multi()
            .map_or(0, |m| m.argv_mem as usize + m.queued.capacity() * std::mem::size_of::<QueuedCommand>());
        let watched: usize = self.watched.iter().map(|w| w.key.len() + std::mem::size_of::<Watch>()).sum();
        (conn + out + self.inbuf.capacity() + multi + watched + self.subs_mem) as u64
            + self.meta.mem.argv.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A RESP2 connection with subscriptions: Redis's subscribed state.
    #[inline]
    pub fn resp2_subscribed(&self) -> bool {
        self.subs.is_some() && self.proto == Proto::Resp2
    }

    /// Nothing left to send or wait for.
    pub fn drained(&self) -> bool {
        self.out.is_empty() && !self.send_inflight && self.pending.is_empty()
    }
}

/// A connection's place in its shard's [`ConnTable`]: the slot index in the low 32 bits,
/// the slot's generation above, so a token of a closed connection never reaches the
/// connection that reuses its slot.
#[inline]
pub fn conn_token(idx: usize, gen: u32) -> u64 {
    ((gen as u64) << 32) | idx as u64
}

#[inline]
pub fn token_parts(t: u64) -> (usize, u32) {
    ((t & 0xffff_ffff) as usize, (t >> 32) as u32 & 0x00ff_ffff)
}

struct Slot {
    gen: u32,
    conn: Option<Conn>,
}

/// The connections of one shard, by slot index; tokens name them across shards.
#[derive(Default)]
pub struct ConnTable {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

impl ConnTable {
    /// A free slot for a new connection: its index and token.
    pub fn reserve(&mut self) -> (usize, u64) {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot { gen: 0, conn: None });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[idx];
        slot.gen = (slot.gen + 1) & 0x00ff_ffff;
        (idx, conn_token(idx, slot.gen))
    }

    /// Fills a slot from [`ConnTable::reserve`].
    pub fn put(&mut self, idx: usize, c: Conn) {
        self.slots[idx].conn = Some(c);
    }

    #[inline]
    pub fn get(&mut self, idx: usize) -> Option<&mut Conn> {
        self.slots.get_mut(idx)?.conn.as_mut()
    }

    pub fn get_ref(&self, idx: usize) -> Option<&Conn> {
        self.slots.get(idx)?.conn.as_ref()
    }

    /// The live connection `tok` names, with its index.
    #[inline]
    pub fn by_token(&mut self, tok: u64) -> Option<(usize, &mut Conn)> {
        let (idx, gen) = token_parts(tok);
        let slot = self.slots.get_mut(idx)?;
        if slot.gen != gen {
            return None;
        }
        slot.conn.as_mut().map(|c| (idx, c))
    }

    /// Takes the connection at `idx` out while commands run for it, its slot kept
    /// (see `crate::busy`); [`ConnTable::give_back`] puts it back.
    #[inline]
    pub fn lend(&mut self, idx: usize) -> Option<Conn> {
        self.slots.get_mut(idx)?.conn.take()
    }

    #[inline]
    pub fn give_back(&mut self, idx: usize, c: Conn) {
        self.slots[idx].conn = Some(c);
    }

    /// Removes the connection at `idx` and frees its slot.
    pub fn take(&mut self, idx: usize) -> Option<Conn> {
        let c = self.slots.get_mut(idx)?.conn.take()?;
        self.free.push(idx);
        Some(c)
    }

    /// Every slot index (some empty).
    pub fn indexes(&self) -> std::ops::Range<usize> {
        0..self.slots.len()
    }
}
