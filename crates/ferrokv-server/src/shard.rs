//! A shard: one pinned thread, one ring, the connections it accepted and its keyspace.
//!
//! The loop, once per iteration: handle completions (accepts, receives — parsed and
//! executed on the spot —, sends), handle messages from other shards, hand the batches
//! queued for each other shard to their mailboxes, start sends, run the periodic tick,
//! then one `io_uring_enter` that submits everything and waits for the next batch.

use crate::conn::Conn;
use crate::dispatch::{Flow, ShardCore};
use crate::msg::Msg;
use crate::net;
use crate::node::{unix_ms, ClientMeta, Node};
use ferrokv_resp::Parsed;
use ferrokv_runtime::executor::Executor;
use ferrokv_runtime::ops::Ops;
use ferrokv_runtime::{token, BufRing, MailWaker, Ring, RingConfig};
use io_uring::{cqueue, opcode, types};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const K_ACCEPT: u8 = 1;
const K_RECV: u8 = 2;
const K_SEND: u8 = 3;
const K_WAKE: u8 = 4;

const RECV_GROUP: u16 = 0;
// 512 × 4 KiB: the notes measured 256 × 4 KiB never running out under redis-benchmark;
// 16 KiB buffers cost 8 MiB of RSS per shard once a large pipeline had touched them all.
const RECV_BUFFERS: u16 = 512;
const RECV_BUF_SIZE: u32 = 4 * 1024;

struct Slot {
    gen: u32,
    conn: Option<Conn>,
}

pub struct Shard {
    core: ShardCore,
    ring: Ring,
    bufs: BufRing,
    listeners: Vec<OwnedFd>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    flush: Vec<usize>,
    inbox: Vec<Msg>,
    cqes: Vec<(u64, i32, u32)>,
    next_tick: Instant,
    /// Async work on this shard (background tasks such as the cluster bus) and the IO
    /// operations it has in this ring.
    pub executor: Executor,
    pub ops: Ops,
    /// The cluster bus, on shard 0 in cluster mode.
    bus: Option<std::rc::Rc<crate::bus::Bus>>,
}

#[inline]
fn conn_token(idx: usize, gen: u32) -> u64 {
    ((gen as u64) << 32) | idx as u64
}

#[inline]
fn token_parts(t: u64) -> (usize, u32) {
    ((t & 0xffff_ffff) as usize, (t >> 32) as u32 & 0x00ff_ffff)
}

impl Shard {
    /// Builds the shard on its own thread (the ring is single-issuer).
    pub fn new(node: &'static Node, id: usize, listeners: Vec<OwnedFd>) -> Result<Shard, String> {
        let cfg = node.config().clone();
        let rc = RingConfig {
            batch: cfg.io_batch as u32,
            min_wait: Duration::from_micros(cfg.io_min_wait_us),
            ..RingConfig::default()
        };
        let ring = Ring::new(rc).map_err(|e| format!("shard {id}: cannot create io_uring: {e}"))?;
        let bufs =
            BufRing::new(&ring, RECV_GROUP, RECV_BUFFERS, RECV_BUF_SIZE).map_err(|e| format!("shard {id}: {e}"))?;
        node.shards[id].mailbox.set_ring_fd(ring.fd());
        Ok(Shard {
            core: ShardCore::new(node, id),
            ring,
            bufs,
            listeners,
            slots: Vec::new(),
            free: Vec::new(),
            flush: Vec::new(),
            inbox: Vec::new(),
            cqes: Vec::with_capacity(1024),
            next_tick: Instant::now(),
            executor: Executor::new(),
            ops: Ops::new(),
            bus: None,
        })
    }

    pub fn run(mut self) {
        for i in 0..self.listeners.len() {
            self.arm_accept(i);
        }
        let node = self.core.node;
        let id = self.core.id;
        if id == 0 && node.cluster.is_some() {
            self.bus = crate::bus::Bus::start(node, self.ops.clone(), self.executor.clone());
        }
        loop {
            self.core.now_ms = unix_ms();
            self.handle_completions();
            self.handle_messages();
            self.executor.run_ready();
            self.flush_outboxes();
            self.flush_conns();
            self.expire_blocked();
            let now = Instant::now();
            if now >= self.next_tick {
                self.tick();
            }
            if node.shutdown.load(Ordering::Relaxed) {
                break;
            }
            let mut timeout = self.next_tick.saturating_duration_since(Instant::now()).min(Duration::from_secs(1));
            if let Some(std::cmp::Reverse((at, _, _))) = self.core.deadlines.peek() {
                timeout = timeout.min(Duration::from_millis(at.saturating_sub(unix_ms())));
            }
            if let Some(at) = self.executor.next_deadline() {
                timeout = timeout.min(at.saturating_duration_since(Instant::now()));
            }
            if let Err(e) = self.ops.submit_into(&mut self.ring) {
                tracing::error!("shard {id}: cannot submit async operations: {e}");
            }
            let mailbox = &node.shards[id].mailbox;
            let wait = self.core.outbox_empty() && !self.executor.has_ready() && mailbox.prepare_sleep();
            if let Err(e) = self.ring.enter(wait, timeout) {
                tracing::error!("shard {id}: io_uring_enter failed: {e}");
                node.request_shutdown();
            }
            if wait {
                mailbox.awake();
            }
        }
        self.shutdown_conns();
    }

    fn push_sqe(&mut self, sqe: &io_uring::squeue::Entry) {
        // SAFETY: every entry points at memory owned by a live connection slot or the
        // listener, which are kept until their completions arrive.
        if let Err(e) = unsafe { self.ring.push(sqe) } {
            tracing::error!("shard {}: cannot queue io_uring entry: {e}", self.core.id);
        }
    }

    fn arm_accept(&mut self, li: usize) {
        let fd = self.listeners[li].as_raw_fd();
        let sqe = opcode::AcceptMulti::new(types::Fd(fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(token::encode(K_ACCEPT, li as u64));
        self.push_sqe(&sqe);
    }

    fn arm_recv(&mut self, idx: usize) {
        let Some(c) = self.slots[idx].conn.as_mut() else { return };
        if c.recv_armed || c.dead {
            return;
        }
        c.recv_armed = true;
        let sqe = opcode::RecvMulti::new(types::Fd(c.fd), RECV_GROUP).build().user_data(token::encode(K_RECV, c.token));
        self.push_sqe(&sqe);
    }

    fn handle_completions(&mut self) {
        loop {
            self.cqes.clear();
            for cqe in self.ring.completions() {
                self.cqes.push((cqe.user_data(), cqe.result(), cqe.flags()));
                if self.cqes.len() == self.cqes.capacity() {
                    break;
                }
            }
            if self.cqes.is_empty() {
                return;
            }
            let batch = std::mem::take(&mut self.cqes);
            for &(ud, res, flags) in &batch {
                match token::kind(ud) {
                    K_ACCEPT => self.on_accept(token::payload(ud) as usize, res, flags),
                    K_RECV => self.on_recv(token::payload(ud), res, flags),
                    K_SEND => self.on_send(token::payload(ud), res),
                    K_WAKE => {}
                    token::KIND_OP => self.ops.complete(token::payload(ud), res, flags),
                    k => tracing::warn!("shard {}: completion of unknown kind {k}", self.core.id),
                }
            }
            self.cqes = batch;
            self.bufs.commit();
        }
    }

    fn conn_mut(&mut self, tok: u64) -> Option<(usize, &mut Conn)> {
        let (idx, gen) = token_parts(tok);
        let slot = self.slots.get_mut(idx)?;
        if slot.gen != gen {
            return None;
        }
        slot.conn.as_mut().map(|c| (idx, c))
    }

    fn on_accept(&mut self, li: usize, res: i32, flags: u32) {
        if !cqueue::more(flags) && !self.core.node.shutdown.load(Ordering::Relaxed) {
            self.arm_accept(li);
        }
        if res < 0 {
            if res != -libc::ECANCELED {
                tracing::warn!("shard {}: accept failed: {}", self.core.id, std::io::Error::from_raw_os_error(-res));
            }
            return;
        }
        let fd = res as RawFd;
        let node = self.core.node;
        node.total_connections.fetch_add(1, Ordering::Relaxed);
        let cfg = node.config();
        let (maxclients, keepalive, authed) = (cfg.maxclients, cfg.tcp_keepalive, cfg.requirepass.is_empty());
        drop(cfg);
        if node.connected_clients() >= maxclients {
            node.rejected_connections.fetch_add(1, Ordering::Relaxed);
            net::refuse(fd, b"-ERR max number of clients reached\r\n");
            return;
        }
        net::tune_client_socket(fd, keepalive);
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot { gen: 0, conn: None });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[idx];
        slot.gen = (slot.gen + 1) & 0x00ff_ffff;
        let tok = conn_token(idx, slot.gen);
        let now = unix_ms();
        let meta = Arc::new(ClientMeta {
            id: node.next_client_id.fetch_add(1, Ordering::Relaxed),
            shard: self.core.id,
            token: tok,
            fd,
            addr: net::peer_addr(fd),
            laddr: net::local_addr(fd),
            created: Instant::now(),
            last_ms: AtomicU64::new(now),
            name: Mutex::new(None),
            last_cmd: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
            resp: AtomicU32::new(2),
            multi: AtomicI64::new(-1),
            qbuf: AtomicU64::new(0),
            omem: AtomicU64::new(0),
        });
        node.register_client(meta.clone());
        node.shards[self.core.id].connected_clients.fetch_add(1, Ordering::Relaxed);
        slot.conn = Some(Conn::new(fd, tok, meta, authed, now));
        self.arm_recv(idx);
    }

    fn on_recv(&mut self, tok: u64, res: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        let more = cqueue::more(flags);
        let Some((idx, _)) = self.conn_mut(tok) else {
            if let Some(b) = bid {
                self.bufs.push(b);
            }
            return;
        };
        if !more {
            if let Some(c) = self.slots[idx].conn.as_mut() {
                c.recv_armed = false;
            }
        }
        if res <= 0 {
            if let Some(b) = bid {
                self.bufs.push(b);
            }
            if res == -libc::ENOBUFS {
                // Out of receive buffers: they come back at the end of this batch.
                self.arm_recv(idx);
            } else {
                // EOF or error: the peer is gone.
                self.kill(idx);
                self.maybe_free(idx);
            }
            return;
        }
        let Some(b) = bid else { return };
        // SAFETY: the buffer was just filled by this completion and is recycled below.
        let data: &[u8] = unsafe { std::slice::from_raw_parts(self.bufs.buf(b, res as usize).as_ptr(), res as usize) };
        self.on_data(idx, data);
        self.bufs.push(b);
        if !more {
            self.arm_recv(idx);
        }
        self.maybe_free(idx);
    }

    /// Parses and runs what arrived; keeps an incomplete tail for the next read.
    fn on_data(&mut self, idx: usize, data: &[u8]) {
        let Some(c) = self.slots[idx].conn.as_mut() else { return };
        if c.dead {
            return;
        }
        if c.inbuf.is_empty() {
            let used = Self::process(&mut self.core, c, data);
            if used < data.len() && !c.closing {
                c.inbuf.extend_from_slice(&data[used..]);
            }
        } else {
            c.inbuf.extend_from_slice(data);
            Self::process_inbuf(&mut self.core, c);
        }
        let limit = self.core.query_buffer_limit;
        if c.inbuf.len() as u64 > limit {
            tracing::warn!(
                "closing client id={}: query buffer of {} bytes over client-query-buffer-limit",
                c.meta.id,
                c.inbuf.len()
            );
            c.inbuf = Vec::new();
            self.kill(idx);
            return;
        }
        self.schedule_flush(idx);
    }

    /// After the reply of command `seq` arrived: leave a blocking command it ended, and
    /// go on parsing once nothing holds the connection back.
    fn unblock_and_resume(core: &mut ShardCore, c: &mut Conn, seq: u64) {
        if c.blocked.as_ref().is_some_and(|b| b.seq == seq) {
            if c.blocked.take().is_some_and(|b| b.counted) {
                core.count_blocked(-1);
            }
        }
        if c.barrier == Some(seq) {
            c.barrier = None;
        }
        if c.stalled && c.pending.is_empty() {
            c.stalled = false;
        }
        if !c.stalled && !c.waiting() && !c.inbuf.is_empty() && !c.dead {
            Self::process_inbuf(core, c);
        }
    }

    /// Answers blocked connections whose timeout passed.
    fn expire_blocked(&mut self) {
        let now = unix_ms();
        while let Some(std::cmp::Reverse((at, token, seq))) = self.core.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.core.deadlines.pop();
            let (idx, gen) = token_parts(token);
            let Some(c) = self.slots.get_mut(idx).filter(|s| s.gen == gen).and_then(|s| s.conn.as_mut()) else {
                continue;
            };
            let Some(b) = c.blocked.as_ref().filter(|b| b.seq == seq) else { continue };
            if b.waiter.claim() {
                let reply = b.waiter.timeout_reply();
                c.complete(seq, reply);
                Self::unblock_and_resume(&mut self.core, c, seq);
                self.schedule_flush(idx);
            }
        }
    }

    fn process_inbuf(core: &mut ShardCore, c: &mut Conn) {
        let mut buf = std::mem::take(&mut c.inbuf);
        let used = Self::process(core, c, &buf);
        if c.closing {
            buf.clear();
        } else {
            buf.drain(..used);
        }
        c.inbuf = buf;
    }

    /// Runs the complete commands at the start of `buf`; returns the bytes consumed.
    fn process(core: &mut ShardCore, c: &mut Conn, buf: &[u8]) -> usize {
        let mut parser = std::mem::take(&mut c.parser);
        let mut pos = 0;
        // Commands run, and when to look ahead next (after the ones prefetched ran).
        let (mut ran, mut look_ahead_at) = (0, 0);
        while pos < buf.len() && !c.stalled && !c.closing && !c.waiting() {
            if ran == look_ahead_at && !parser.in_frame() {
                look_ahead_at = match core.prefetch(&buf[pos..]) {
                    n if n >= 2 => ran + n,
                    _ => usize::MAX,
                };
            }
            ran += 1;
            let limits = core.limits(c.authed);
            match parser.parse(&buf[pos..], &limits) {
                Ok(Parsed::Command { consumed }) => {
                    let args = parser.args(&buf[pos..]);
                    match core.run_command(c, &args) {
                        Flow::Done => pos += consumed,
                        Flow::Stall => {
                            c.stalled = true;
                            parser.reset();
                        }
                    }
                }
                Ok(Parsed::Empty { consumed }) => pos += consumed,
                Ok(Parsed::Incomplete) => break,
                Err(e) => {
                    // Raw bytes: the message may quote a request byte that is not UTF-8.
                    c.reply(|r| r.raw(&e.reply()));
                    c.closing = true;
                    tracing::debug!("client id={}: {}", c.meta.id, e.0);
                    break;
                }
            }
        }
        c.parser = parser;
        c.meta.qbuf.store((buf.len() - pos) as u64, Ordering::Relaxed);
        pos
    }

    fn on_send(&mut self, tok: u64, res: i32) {
        let Some((idx, c)) = self.conn_mut(tok) else { return };
        c.send_inflight = false;
        if res < 0 {
            if res != -libc::EPIPE && res != -libc::ECONNRESET {
                tracing::debug!("send to client id={} failed: {}", c.meta.id, std::io::Error::from_raw_os_error(-res));
            }
            c.sending.clear();
            c.out.clear();
            self.kill(idx);
            self.maybe_free(idx);
            return;
        }
        c.sent += res as usize;
        if c.sent >= c.sending.len() {
            c.sending.clear();
            c.sent = 0;
        }
        self.schedule_flush(idx);
    }

    fn schedule_flush(&mut self, idx: usize) {
        if let Some(c) = self.slots[idx].conn.as_mut() {
            if !c.in_flush_list {
                c.in_flush_list = true;
                self.flush.push(idx);
            }
        }
    }

    /// Starts one send per connection that has bytes ready and none in flight.
    fn flush_conns(&mut self) {
        let list = std::mem::take(&mut self.flush);
        for &idx in &list {
            let Some(c) = self.slots[idx].conn.as_mut() else { continue };
            c.in_flush_list = false;
            if c.dead {
                continue;
            }
            if !c.send_inflight {
                if c.sending.is_empty() && !c.out.is_empty() {
                    std::mem::swap(&mut c.sending, &mut c.out);
                    c.sent = 0;
                }
                if c.sent < c.sending.len() {
                    let rest = &c.sending[c.sent..];
                    let sqe =
                        opcode::Send::new(types::Fd(c.fd), rest.as_ptr(), rest.len().min(u32::MAX as usize) as u32)
                            .flags(libc::MSG_NOSIGNAL)
                            .build()
                            .user_data(token::encode(K_SEND, c.token));
                    c.send_inflight = true;
                    c.meta.omem.store(c.out.len() as u64, Ordering::Relaxed);
                    self.push_sqe(&sqe);
                    continue;
                }
            }
            if c.closing && c.drained() {
                self.kill(idx);
                self.maybe_free(idx);
            }
        }
        if self.flush.is_empty() {
            self.flush = list;
            self.flush.clear();
        }
    }

    /// Shuts the socket down; the slot is freed once no operation is in flight.
    fn kill(&mut self, idx: usize) {
        let Some(c) = self.slots[idx].conn.as_mut() else { return };
        if c.dead {
            return;
        }
        c.dead = true;
        if let Some(b) = c.blocked.take() {
            // Nobody may serve a client that is gone.
            b.waiter.claim();
            if b.counted {
                self.core.count_blocked(-1);
            }
        }
        // SAFETY: our own socket; shutdown makes in-flight receives complete.
        unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
        self.core.release_watches(c);
    }

    fn maybe_free(&mut self, idx: usize) {
        let Some(c) = self.slots[idx].conn.as_ref() else { return };
        if !c.dead || c.recv_armed || c.send_inflight {
            return;
        }
        let Some(c) = self.slots[idx].conn.take() else { return };
        // SAFETY: no operation refers to the fd any more.
        unsafe { libc::close(c.fd) };
        let node = &self.core.node;
        node.unregister_client(c.meta.id);
        node.shards[self.core.id].connected_clients.fetch_sub(1, Ordering::Relaxed);
        self.free.push(idx);
    }

    /// Prefetches the keyspace memory of the forwarded commands' keys before running
    /// them, as [`ShardCore::prefetch`] does for a read's pipeline: a batch of
    /// forwarded lookups otherwise pays its cache misses one after the other.
    fn prefetch_forwarded(node: &Node, id: usize, inbox: &[Msg]) {
        let keys: Vec<&[u8]> = inbox
            .iter()
            .filter_map(|m| match m {
                Msg::Exec { args, .. } => {
                    let args = args.args();
                    (args.len() >= 2).then(|| args.get(1))
                }
                _ => None,
            })
            .collect();
        if keys.len() >= 2 {
            node.lock_db(id).prefetch(&keys);
        }
    }

    fn handle_messages(&mut self) {
        let node = self.core.node;
        node.shards[self.core.id].mailbox.drain(&mut self.inbox);
        if self.inbox.is_empty() {
            return;
        }
        // Forwarded commands must see a CONFIG SET that happened before they were sent.
        self.core.refresh_config();
        let mut inbox = std::mem::take(&mut self.inbox);
        Self::prefetch_forwarded(node, self.core.id, &inbox);
        for m in inbox.drain(..) {
            match m {
                Msg::Exec { from, token, seq, proto, spec, args, waiter } => {
                    if let Some(bytes) = self.core.exec_forwarded(spec, &args.args(), proto, from, token, seq, waiter) {
                        self.core.send(from, Msg::Reply { token, seq, bytes });
                    }
                }
                Msg::Reply { token, seq, bytes } => {
                    let (idx, gen) = token_parts(token);
                    let Some(c) = self.slots.get_mut(idx).filter(|s| s.gen == gen).and_then(|s| s.conn.as_mut()) else {
                        continue;
                    };
                    c.complete(seq, bytes);
                    Self::unblock_and_resume(&mut self.core, c, seq);
                    self.schedule_flush(idx);
                }
                Msg::Blocked { token, seq, timeout_ms } => {
                    if let Some((_, c)) = self.conn_mut(token) {
                        if let Some(b) = c.blocked.as_mut().filter(|b| b.seq == seq) {
                            b.counted = true;
                            self.core.count_blocked(1);
                            self.core.start_timeout(token, seq, timeout_ms);
                        }
                    }
                }
                Msg::Retry { token, seq } => {
                    let (idx, gen) = token_parts(token);
                    let Some(c) = self.slots.get_mut(idx).filter(|s| s.gen == gen).and_then(|s| s.conn.as_mut()) else {
                        continue;
                    };
                    if c.blocked.as_ref().is_some_and(|b| b.seq == seq) {
                        if let Some(bytes) = self.core.retry_blocked(c) {
                            c.complete(seq, bytes);
                            Self::unblock_and_resume(&mut self.core, c, seq);
                            self.schedule_flush(idx);
                        }
                    }
                }
                Msg::Cluster { from, token, seq, proto, cmd } => {
                    let bytes = crate::bus::apply_command(&self.bus, cmd, proto);
                    self.core.send(from, Msg::Reply { token, seq, bytes });
                }
                Msg::ClusterLinks { from, token, seq, proto } => {
                    let bytes = crate::bus::links_reply(&self.bus, proto);
                    self.core.send(from, Msg::Reply { token, seq, bytes });
                }
                Msg::Kill { token } => {
                    if let Some((idx, _)) = self.conn_mut(token) {
                        self.kill(idx);
                        self.maybe_free(idx);
                    }
                }
            }
        }
        self.inbox = inbox;
    }

    fn flush_outboxes(&mut self) {
        let node = self.core.node;
        for dest in 0..self.core.outbox.len() {
            if self.core.outbox[dest].is_empty() {
                continue;
            }
            if let Some(fd) = node.shards[dest].mailbox.send(self.core.id, &mut self.core.outbox[dest]) {
                let sqe = MailWaker::entry(fd, token::encode(K_WAKE, 0));
                self.push_sqe(&sqe);
            }
        }
        // Kills of this shard's own connections (CLIENT KILL from here).
        for tok in std::mem::take(&mut self.core.local_kills) {
            if let Some((idx, _)) = self.conn_mut(tok) {
                let c = self.slots[idx].conn.as_mut().map(|c| c.closing = true);
                if c.is_some() {
                    self.schedule_flush(idx);
                }
            }
        }
    }

    /// The periodic work (`hz` times a second): active expiry and idle timeouts.
    fn tick(&mut self) {
        let (hz, timeout) = {
            let cfg = self.core.node.config();
            (cfg.hz.clamp(1, 500), cfg.timeout)
        };
        let period = Duration::from_micros(1_000_000 / hz);
        self.next_tick = Instant::now() + period;
        self.core.refresh_config();
        // Redis spends at most 25% of a tick period on active expiry.
        self.core.active_expire(period / 4);
        if timeout > 0 {
            let now = unix_ms();
            let idle: Vec<usize> = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.conn.as_ref().map(|c| (i, c)))
                .filter(|(_, c)| {
                    !c.dead
                        && c.pending.is_empty()
                        && now.saturating_sub(c.meta.last_ms.load(Ordering::Relaxed)) > timeout * 1000
                })
                .map(|(i, _)| i)
                .collect();
            for idx in idle {
                self.kill(idx);
                self.maybe_free(idx);
            }
        }
    }

    fn shutdown_conns(&mut self) {
        for idx in 0..self.slots.len() {
            if let Some(c) = self.slots[idx].conn.as_ref() {
                // Best effort: whatever replies are ready go out before the socket closes.
                if !c.out.is_empty() && !c.send_inflight {
                    net::write_all_nonblocking(c.fd, &c.out);
                }
            }
            self.kill(idx);
        }
    }
}
