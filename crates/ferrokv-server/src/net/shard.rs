//! A shard: one pinned thread, one ring, the connections it accepted and its keyspace.
//!
//! The loop, once per iteration: handle completions (accepts, receives — parsed and
//! executed on the spot —, sends), handle messages from other shards, hand the batches
//! queued for each other shard to their mailboxes, start sends, run the periodic tick,
//! then one `io_uring_enter` that submits everything and waits for the next batch.

use crate::busy::{Cqe, LoopIo, K_ACCEPT, K_RECV, K_SEND};
use crate::conn::ConnTable;
use crate::dispatch::ShardCore;
use crate::msg::Msg;
use crate::net;
use crate::node::{unix_ms, Node};
use crate::pace::Pace;
use ferrokv_runtime::executor::Executor;
use ferrokv_runtime::ops::Ops;
use ferrokv_runtime::{token, BufRing, MailWaker, Ring, RingConfig};
use io_uring::cqueue;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub(crate) use crate::busy::K_WAKE;
use crate::busy::RECV_GROUP;

/// Completions handled per batch (the mailbox is looked at between batches).
const BATCH: usize = 1024;
// 512 × 4 KiB: the notes measured 256 × 4 KiB never running out under redis-benchmark;
// 16 KiB buffers cost 8 MiB of RSS per shard once a large pipeline had touched them all.
const RECV_BUFFERS: u16 = 512;
const RECV_BUF_SIZE: u32 = 4 * 1024;
/// Messages a shard's inbox and outboxes keep room for once drained: a burst's room goes
/// back to the allocator (it counts toward maxmemory).
const KEEP_MESSAGES: usize = 1024;

pub struct Shard {
    core: ShardCore,
    /// The ring, the buffer ring and the listeners' descriptors, shared with the Lua
    /// hook that serves clients while a script is busy (`crate::busy`).
    io: Rc<LoopIo>,
    /// Kept open for the shard's lifetime (`io` has their descriptors).
    #[allow(dead_code)]
    listeners: Vec<OwnedFd>,
    conns: ConnTable,
    /// Connections with new output, gathered by the core's handlers.
    touched: Vec<usize>,
    flush: Vec<usize>,
    /// Connections whose replies wait for the AOF (`appendfsync always`).
    held: Vec<usize>,
    inbox: Vec<Msg>,
    /// Completions taken from the ring and not handled yet, in order.
    pending: VecDeque<Cqe>,
    next_tick: Instant,
    /// Async work on this shard (background tasks such as the cluster bus) and the IO
    /// operations it has in this ring.
    pub executor: Executor,
    pub ops: Ops,
    /// The cluster bus, on shard 0 in cluster mode.
    bus: Option<std::rc::Rc<crate::bus::Bus>>,
    /// The unix second of the last walk over every connection's memory.
    last_cron_second: u64,
    /// This shard's share of the time for deleting the keys of slots the node lost.
    trim_pace: Pace,
}

impl Shard {
    /// Builds the shard on its own thread (the ring is single-issuer).
    pub fn new(node: &'static Node, id: usize, listeners: Vec<OwnedFd>, core_from: usize) -> Result<Shard, String> {
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
        let io = LoopIo {
            node,
            id,
            ring: RefCell::new(ring),
            bufs: RefCell::new(bufs),
            listeners: listeners.iter().map(|l| l.as_raw_fd()).collect(),
            core_from,
        };
        Ok(Shard {
            core: ShardCore::new(node, id),
            io: Rc::new(io),
            listeners,
            conns: ConnTable::default(),
            touched: Vec::new(),
            flush: Vec::new(),
            held: Vec::new(),
            inbox: Vec::new(),
            pending: VecDeque::with_capacity(BATCH),
            next_tick: Instant::now(),
            executor: Executor::new(),
            ops: Ops::new(),
            bus: None,
            last_cron_second: 0,
            trim_pace: Pace::default(),
        })
    }

    pub fn run(mut self) {
        for i in 0..self.io.listeners.len() {
            self.io.arm_accept(i);
        }
        crate::busy::install(Some(self.io.clone()));
        let node = self.core.node;
        let id = self.core.id;
        if id == 0 && node.cluster.is_some() {
            self.bus = crate::bus::Bus::start(node, self.ops.clone(), self.executor.clone());
            // The table start-up built, before the first client can ask for it.
            self.advertise_cores();
        }
        loop {
            self.core.now_ms = unix_ms();
            self.core.sync_db_settings();
            if self.core.mem.maxmemory != 0 {
                self.core.mem.resync(node);
            }
            let started = Instant::now();
            self.handle_completions();
            self.handle_messages();
            self.executor.run_ready();
            if let Some(b) = &self.bus {
                for r in b.take_released() {
                    self.core.send(r.from, Msg::Reply { token: r.token, seq: r.seq, bytes: r.bytes });
                }
                for (shard, channel, message) in &b.take_delivered() {
                    let space = if *shard { crate::pubsub::Space::Shard } else { crate::pubsub::Space::Global };
                    crate::pubsub::publish(&mut self.core, space, channel, message);
                }
            }
            // BCAST invalidations of this iteration's changes, one message per prefix;
            // then what was published here, by the bus's messages too, goes out.
            self.core.flush_bcast();
            self.deliver_pubsub();
            // Keys of slots this node lost, within a share of the time (`crate::pace`).
            let trim = crate::slot_migration::trim_step(node, id, &mut self.trim_pace);
            // The AOF gets this iteration's effects before any reply leaves, to a
            // client or to another shard (which may answer its client at once).
            crate::pubsub::log_for_replicas(&mut self.core);
            let also = std::mem::take(&mut self.core.wrote_elsewhere);
            let durable = crate::aof::shard_step(node, id, also);
            self.flush_outboxes();
            if let Some((sent, durable)) = durable {
                self.hold_replies(sent, durable);
            }
            self.flush_conns();
            // A running BGSAVE: this shard's share, a budget per iteration; while it
            // has some left the loop does not sleep.
            let snapshot_left = crate::persist::shard_step(node, id, started.elapsed());
            let mut touched = std::mem::take(&mut self.touched);
            self.core.expire_blocked(&mut self.conns, &mut touched);
            self.flush_touched(touched);
            if !self.core.paused.is_empty() && !node.repl.writes_paused(unix_ms()) && !node.slot_migration.pausing() {
                self.resume_paused();
            }
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
            if !self.core.paused.is_empty() && node.slot_migration.pausing() {
                timeout = timeout.min(Duration::from_millis(1));
            } else if !self.core.paused.is_empty() && !node.repl.held_for_shutdown.load(Ordering::Relaxed) {
                let until = node.repl.paused_until.load(Ordering::Relaxed);
                timeout = timeout.min(Duration::from_millis(until.saturating_sub(unix_ms()).max(1)));
            }
            if let Some(at) = trim.wake_at() {
                timeout = timeout.min(at.saturating_duration_since(Instant::now()));
            }
            if !self.held.is_empty() {
                // The AOF writer wakes us when it has synced (MSG_RING); in case the
                // wake-up crossed our going to sleep, look again soon anyway.
                timeout = timeout.min(Duration::from_millis(1));
            }
            if let Err(e) = self.ops.submit_into(&mut self.io.ring.borrow_mut()) {
                tracing::error!("shard {id}: cannot submit async operations: {e}");
            }
            let mailbox = &node.shards[id].mailbox;
            let wait = !snapshot_left
                && trim.lets_sleep()
                && self.core.outbox_empty()
                && !self.executor.has_ready()
                && mailbox.prepare_sleep();
            let entered = self.io.ring.borrow_mut().enter(wait, timeout);
            if let Err(e) = entered {
                tracing::error!("shard {id}: io_uring_enter failed: {e}");
                node.request_shutdown();
            }
            if wait {
                mailbox.awake();
            }
        }
        if let Some(b) = &self.bus {
            b.flush_on_exit();
        }
        self.shutdown_conns();
        crate::busy::install(None);
    }

    fn arm_recv(&mut self, idx: usize) {
        if let Some(c) = self.conns.get(idx) {
            self.io.arm_recv(c);
        }
    }

    fn handle_completions(&mut self) {
        loop {
            if self.pending.is_empty() {
                {
                    let mut ring = self.io.ring.borrow_mut();
                    self.pending.extend(ring.completions().take(BATCH).map(|c| (c.user_data(), c.result(), c.flags())));
                }
                if self.pending.is_empty() {
                    return;
                }
                // Messages that arrived before these completions are handled first: a
                // client that saw another's PUBLISH answered and then sent a command
                // here must find the message delivered before that command's reply, as
                // it would from one serial server.
                if self.core.node.shards[self.core.id].mailbox.has_pending() {
                    self.handle_messages();
                }
            }
            // One at a time from the front: a busy script's hook may take the rest
            // (see `crate::busy`), and gives back what it did not handle.
            while let Some((ud, res, flags)) = self.pending.pop_front() {
                match token::kind(ud) {
                    K_ACCEPT => self.io.accept(&mut self.conns, token::payload(ud) as usize, res, flags),
                    K_RECV => self.on_recv(token::payload(ud), res, flags),
                    K_SEND => self.on_send(token::payload(ud), res),
                    K_WAKE => {}
                    token::KIND_OP => self.ops.complete(token::payload(ud), res, flags),
                    k => tracing::warn!("shard {}: completion of unknown kind {k}", self.core.id),
                }
            }
            self.io.bufs.borrow_mut().commit();
        }
    }

    fn on_recv(&mut self, tok: u64, res: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        let more = cqueue::more(flags);
        let Some((idx, _)) = self.conns.by_token(tok) else {
            if let Some(b) = bid {
                self.io.bufs.borrow_mut().push(b);
            }
            return;
        };
        if !more {
            if let Some(c) = self.conns.get(idx) {
                c.recv_armed = false;
            }
        }
        if res <= 0 {
            if let Some(b) = bid {
                self.io.bufs.borrow_mut().push(b);
            }
            let half_closed = res == 0
                && self.conns.get_ref(idx).is_some_and(|c| {
                    !c.drained() && c.blocked().is_none() && !matches!(c.mode, crate::conn::Mode::Replica(_))
                });
            if res == -libc::ENOBUFS {
                // Out of receive buffers: they come back at the end of this batch.
                self.arm_recv(idx);
            } else if half_closed {
                // The client shut its side (`nc -N`): what it sent before is answered,
                // then the connection closes, as redis-server does.
                if let Some(c) = self.conns.get(idx) {
                    c.closing = true;
                }
                self.schedule_flush(idx);
            } else {
                // EOF or error: the peer is gone.
                self.kill(idx);
                self.maybe_free(idx);
            }
            return;
        }
        let Some(b) = bid else { return };
        // SAFETY: the buffer was just filled by this completion and is recycled below;
        // the slice points into the buffer ring's memory, not into `BufRing` (which
        // the busy hook may borrow meanwhile: it hands back only its own buffers).
        let data: &[u8] =
            unsafe { std::slice::from_raw_parts(self.io.bufs.borrow().buf(b, res as usize).as_ptr(), res as usize) };
        self.on_data(idx, data);
        self.io.bufs.borrow_mut().push(b);
        if !more {
            self.arm_recv(idx);
        }
        self.maybe_free(idx);
    }

    /// Parses and runs what arrived; keeps an incomplete tail for the next read.
    fn on_data(&mut self, idx: usize, data: &[u8]) {
        match self.run_lent(idx, |core, c| core.on_data(c, data)) {
            None => return,
            Some(false) => {
                self.kill(idx);
                return;
            }
            Some(true) => {}
        }
        self.schedule_flush(idx);
        self.deliver_pubsub();
    }

    /// Runs `f` on connection `idx` (not dead) with the connection taken out of the
    /// table and the table and the unhandled completions lent to the busy hook (see
    /// `crate::busy`: a script `f` runs may serve the shard's other clients from its
    /// hook); then takes them back, flushes what the hook answered and runs the input
    /// it left.
    fn run_lent<R>(&mut self, idx: usize, f: impl FnOnce(&mut ShardCore, &mut crate::conn::Conn) -> R) -> Option<R> {
        let mut c = self.conns.lend(idx)?;
        if c.dead {
            self.conns.give_back(idx, c);
            return None;
        }
        let (r, back) = self.lent_run(|core| f(core, &mut c));
        self.conns.give_back(idx, c);
        self.after_busy(back);
        Some(r)
    }

    /// Runs `f` with the connection table and the unhandled completions lent to the
    /// busy hook (see [`Shard::run_lent`]).
    fn lending<R>(&mut self, f: impl FnOnce(&mut ShardCore) -> R) -> R {
        let (r, back) = self.lent_run(f);
        self.after_busy(back);
        r
    }

    #[inline]
    fn lent_run<R>(&mut self, f: impl FnOnce(&mut ShardCore) -> R) -> (R, (Vec<u64>, Vec<u64>)) {
        crate::busy::lend(crate::busy::Lent {
            conns: std::mem::take(&mut self.conns),
            pending: std::mem::take(&mut self.pending),
            resume: Vec::new(),
            touched: Vec::new(),
        });
        let r = f(&mut self.core);
        let back = crate::busy::take_back();
        self.conns = back.conns;
        self.pending = back.pending;
        (r, (back.touched, back.resume))
    }

    /// After a script whose hook served clients: their sends, and the input it left
    /// for the loop, in order (see `crate::busy`).
    #[inline]
    fn after_busy(&mut self, (touched, resume): (Vec<u64>, Vec<u64>)) {
        if !touched.is_empty() || !resume.is_empty() {
            self.after_busy_served(touched, resume);
        }
    }

    #[cold]
    fn after_busy_served(&mut self, touched: Vec<u64>, resume: Vec<u64>) {
        for tok in touched {
            if let Some((idx, _)) = self.conns.by_token(tok) {
                self.schedule_flush(idx);
            }
        }
        for tok in resume {
            let Some((idx, _)) = self.conns.by_token(tok) else { continue };
            let ok = self.run_lent(idx, |core, c| {
                if !c.stalled && !c.waiting() && !c.inbuf.is_empty() {
                    core.process_inbuf(c);
                }
                c.inbuf.len() as u64 <= core.query_buffer_limit
            });
            if ok == Some(false) {
                self.kill(idx);
                self.maybe_free(idx);
                continue;
            }
            self.schedule_flush(idx);
        }
    }

    /// Writes the pub/sub messages published by what just ran (see `crate::pubsub`)
    /// and closes the subscribers that went over their output limit.
    fn deliver_pubsub(&mut self) {
        if !self.core.deliveries.is_empty() || self.core.tracking.has_out() {
            let mut touched = std::mem::take(&mut self.touched);
            let before = crate::memory::thread_delta();
            crate::pubsub::deliver(&mut self.core, &mut self.conns, &mut touched);
            // Messages written to subscribers wait for this iteration's sends: not
            // counted toward maxmemory until the next iteration's sum, as Redis's land
            // in each subscriber's reply buffer (see `maxmemory::Limit::events_in_flight`).
            self.core.mem.events_in_flight(self.core.node, crate::memory::thread_delta() - before);
            self.flush_touched(touched);
        }
        self.close_overflowed();
    }

    /// Closes the connections that went over their output limit or were evicted:
    /// their output is dropped now (the send in flight, if any, keeps its buffer until
    /// its completion, which the shutdown brings).
    fn close_overflowed(&mut self) {
        for tok in std::mem::take(&mut self.core.overflowed) {
            let Some((idx, c)) = self.conns.by_token(tok) else { continue };
            c.drop_output();
            self.kill(idx);
            self.maybe_free(idx);
        }
    }

    /// Client memory: every connection's figures once a second (idle ones too, as
    /// Redis's clientsCron), and eviction while the node's clients are over
    /// `maxmemory-clients` (see `crate::client_mem`).
    fn clients_cron(&mut self, every_conn: bool) {
        let (node, shard, now) = (self.core.node, self.core.id, self.core.now_ms);
        if every_conn {
            for idx in self.conns.indexes() {
                if let Some(c) = self.conns.get(idx) {
                    crate::client_mem::resize_output(c, now);
                    crate::client_mem::account(node, shard, c, now);
                }
            }
        }
        let limit = self.core.client_evict_limit;
        if crate::client_mem::over_limit(node, limit) {
            let conns = &self.conns;
            let live = conns.indexes().filter_map(|i| conns.get_ref(i));
            let gone = crate::client_mem::evict(node, shard, limit, live);
            self.core.overflowed.extend(gone);
            self.close_overflowed();
        }
    }

    fn on_send(&mut self, tok: u64, res: i32) {
        let Some((idx, c)) = self.conns.by_token(tok) else { return };
        if res < 0 {
            c.send_inflight = false;
            if res != -libc::EPIPE && res != -libc::ECONNRESET {
                tracing::debug!("send to client id={} failed: {}", c.meta.id, std::io::Error::from_raw_os_error(-res));
            }
            c.sending.clear();
            c.out.clear();
            c.layout.clear();
            self.kill(idx);
            self.maybe_free(idx);
            return;
        }
        LoopIo::sent(c, res as usize);
        self.schedule_flush(idx);
    }

    fn schedule_flush(&mut self, idx: usize) {
        if let Some(c) = self.conns.get(idx) {
            if !c.in_flush_list {
                c.in_flush_list = true;
                self.flush.push(idx);
            }
        }
    }

    /// `appendfsync always`: replies ready now go out only once the AOF holds every
    /// record handed to it so far (`sent`); `durable` is how far it is. Connections
    /// held before whose wait is over are flushed again.
    fn hold_replies(&mut self, sent: u64, durable: u64) {
        for &idx in &self.flush {
            if let Some(c) = self.conns.get(idx) {
                if !c.out.is_empty() && sent > durable {
                    c.held_until = c.held_until.max(sent);
                }
            }
        }
        let mut held = std::mem::take(&mut self.held);
        held.retain(|&idx| match self.conns.get(idx) {
            Some(c) if !c.dead && c.held_until > durable => true,
            Some(_) => {
                self.schedule_flush(idx);
                false
            }
            None => false,
        });
        self.held = held;
    }

    /// The write pause ended: the held connections run their commands now.
    fn resume_paused(&mut self) {
        self.core.now_ms = unix_ms();
        for tok in std::mem::take(&mut self.core.paused) {
            let Some((idx, _)) = self.conns.by_token(tok) else { continue };
            let ran = self.run_lent(idx, |core, c| {
                if c.pending.is_empty() {
                    c.stalled = false;
                    core.process_inbuf(c);
                }
            });
            if ran.is_some() {
                self.schedule_flush(idx);
            }
        }
    }

    /// Starts one send per connection that has bytes ready and none in flight.
    fn flush_conns(&mut self) {
        self.close_overflowed();
        let durable = self.core.node.aof.durable();
        let (node, shard, now) = (self.core.node, self.core.id, self.core.now_ms);
        let list = std::mem::take(&mut self.flush);
        for &idx in &list {
            let Some(c) = self.conns.get(idx) else { continue };
            c.in_flush_list = false;
            if c.dead {
                continue;
            }
            crate::client_mem::account(node, shard, c, now);
            if matches!(c.mode, crate::conn::Mode::Replica(_)) {
                // Its thread owns the socket's output (see `crate::repl`).
                c.out.clear();
                c.layout.clear();
                if c.closing {
                    self.kill(idx);
                    self.maybe_free(idx);
                }
                continue;
            }
            if !c.send_inflight {
                if !self.io.start_send(c, durable) {
                    if !self.held.contains(&idx) {
                        self.held.push(idx);
                    }
                    continue;
                }
                if c.send_inflight {
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
        if self.core.client_evict_limit > 0 {
            self.clients_cron(false);
        }
    }

    /// Shuts the socket down; the slot is freed once no operation is in flight.
    fn kill(&mut self, idx: usize) {
        let Some(c) = self.conns.get(idx) else { return };
        if c.dead {
            return;
        }
        c.dead = true;
        self.core.node.unregister_client(c.meta.id);
        if let Some(b) = c.take_blocked() {
            // Nobody may serve a client that is gone.
            b.waiter.claim();
            self.core.uncount_blocked(&b);
        }
        // SAFETY: our own socket; shutdown makes in-flight receives complete.
        unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
        self.core.release_watches(c);
        crate::pubsub::forget(&self.core, c);
        crate::tracking::disable(&self.core, c, &mut crate::dispatch::Held::Nothing);
    }

    fn maybe_free(&mut self, idx: usize) {
        let Some(c) = self.conns.get_ref(idx) else { return };
        if !c.dead || c.recv_armed || c.send_inflight {
            return;
        }
        let Some(mut c) = self.conns.take(idx) else { return };
        // SAFETY: no operation refers to the fd any more.
        unsafe { libc::close(c.fd) };
        let node = &self.core.node;
        crate::client_mem::forget(node, self.core.id, &mut c);
        match c.mode {
            crate::conn::Mode::Replica(id) => crate::repl::master::replica_gone(node, id),
            _ => crate::repl::master::forget_handshake(node, c.meta.id),
        }
        node.unregister_client(c.meta.id);
        node.shards[self.core.id].connected_clients.fetch_sub(1, Ordering::Relaxed);
        if c.core_port {
            node.shards[self.core.id].routing.core_port_clients.fetch_sub(1, Ordering::Relaxed);
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
        self.core.prefetch_forwarded(&inbox);
        let mut touched = std::mem::take(&mut self.touched);
        for m in inbox.drain(..) {
            let m = match m {
                // A forwarded command (a script among them) needs no connection of
                // this shard: the table is lent to the busy hook meanwhile.
                Msg::Exec(_) => self.lending(|core| core.handle_message(m, &mut ConnTable::default(), &mut Vec::new())),
                m => self.core.handle_message(m, &mut self.conns, &mut touched),
            };
            let Some(m) = m else { continue };
            match m {
                Msg::Cluster { from, token, seq, proto, cmd } => {
                    let waits = cmd.reply_waits_for_save();
                    let bytes = crate::bus::apply_command(&self.bus, cmd, proto);
                    match &self.bus {
                        Some(b) if b.save_pending() && waits => {
                            b.hold_reply(crate::bus::HeldReply { from, token, seq, bytes })
                        }
                        _ => self.core.send(from, Msg::Reply { token, seq, bytes }),
                    }
                }
                Msg::ClusterLinks { from, token, seq, proto } => {
                    let bytes = crate::bus::links_reply(&self.bus, proto);
                    self.core.send(from, Msg::Reply { token, seq, bytes });
                }
                Msg::ClusterPublish(p) => {
                    if let Some(b) = &self.bus {
                        let shard = p.space == crate::pubsub::Space::Shard;
                        b.publish(shard, p.channel.clone(), p.message.clone());
                    }
                }
                Msg::Kill { token } => {
                    if let Some((idx, _)) = self.conns.by_token(token) {
                        self.kill(idx);
                        self.maybe_free(idx);
                    }
                }
                other => {
                    tracing::error!("shard {}: unexpected message left by the core: {}", self.core.id, other.kind())
                }
            }
        }
        // After a burst of messages, the vector's room for it is not kept.
        if inbox.capacity() > KEEP_MESSAGES {
            inbox = Vec::new();
        }
        self.inbox = inbox;
        self.flush_touched(touched);
        self.deliver_pubsub();
    }

    /// Schedules a send for every connection in `touched` and keeps the vector.
    fn flush_touched(&mut self, mut touched: Vec<usize>) {
        for idx in touched.drain(..) {
            self.schedule_flush(idx);
        }
        self.touched = touched;
    }

    fn flush_outboxes(&mut self) {
        let node = self.core.node;
        for dest in 0..self.core.outbox.len() {
            if self.core.outbox[dest].is_empty() {
                continue;
            }
            if let Some(fd) = node.shards[dest].mailbox.send(self.core.id, &mut self.core.outbox[dest]) {
                let sqe = MailWaker::entry(fd, token::encode(K_WAKE, 0));
                self.io.push_sqe(&sqe);
            }
            if self.core.outbox[dest].capacity() > KEEP_MESSAGES {
                self.core.outbox[dest] = Vec::new();
            }
        }
        // Kills of this shard's own connections (CLIENT KILL from here).
        for tok in std::mem::take(&mut self.core.local_kills) {
            if let Some((idx, _)) = self.conns.by_token(tok) {
                let c = self.conns.get(idx).map(|c| c.closing = true);
                if c.is_some() {
                    self.schedule_flush(idx);
                }
            }
        }
    }

    /// Shard 0: tells the bus the node's slot → core table if a handoff changed it.
    fn advertise_cores(&self) {
        let node = self.core.node;
        if node.cores_changed.swap(false, Ordering::AcqRel) {
            if let Some(b) = &self.bus {
                b.set_core_table(|s| node.shard_of_slot(s));
            }
        }
    }

    /// The periodic work (`hz` times a second): active expiry and idle timeouts.
    fn tick(&mut self) {
        self.core.now_ms = unix_ms();
        let (hz, timeout) = {
            let cfg = self.core.node.config();
            (cfg.hz.clamp(1, 500), cfg.timeout)
        };
        let period = Duration::from_micros(1_000_000 / hz);
        self.next_tick = Instant::now() + period;
        self.core.refresh_config();
        let second = self.core.now_ms / 1000;
        let new_second = second != self.last_cron_second;
        self.last_cron_second = second;
        self.clients_cron(new_second);
        self.core.node.slot_migration.lift_if_lost(self.core.node);
        if !self.core.slot_core_waits.is_empty() {
            let mut touched = std::mem::take(&mut self.touched);
            crate::cluster::retry_slot_core(&mut self.core, &mut self.conns, &mut touched);
            self.flush_touched(touched);
        }
        // Redis spends at most 25% of a tick period on active expiry.
        self.core.active_expire(period / 4);
        self.core.compact_keyspace(period);
        self.core.limit_tracking(None);
        if self.core.node.cluster.is_some() {
            let mut touched = std::mem::take(&mut self.touched);
            crate::pubsub::drop_moved_shard_channels(&mut self.core, &mut self.conns, &mut touched);
            self.flush_touched(touched);
        }
        self.deliver_pubsub();
        // Eviction that ran out of time in a command goes on here (Redis's eviction
        // time proc), so the node gets under the limit even when no command comes.
        self.core.evict_in_background();
        if self.core.id == 0 {
            let node = self.core.node;
            let (on, threshold) = {
                let cfg = node.config();
                (cfg.shard_balance, cfg.shard_balance_threshold)
            };
            if on && node.shard_count() > 1 {
                self.core.balancer.round(node, 1000, threshold);
            }
            // At most 5 ms of slot moves a tick: a source that had just lost a
            // migration's slots stalled its bus (and the next task's handoff) for the
            // 20 ms this was.
            self.core.balancer.spread.tick(node, Duration::from_millis(5));
            self.advertise_cores();
            crate::persist::cron(self.core.node);
            crate::aof::cron(self.core.node);
            crate::repl::cron(&mut self.core);
            crate::shutdown::cron(&mut self.core);
        }
        if timeout > 0 {
            let now = unix_ms();
            let conns = &self.conns;
            let idle: Vec<usize> = conns
                .indexes()
                .filter_map(|i| conns.get_ref(i).map(|c| (i, c)))
                // As Redis's clientsCronHandleTimeout: subscribers, replicas and blocked
                // clients are never idle.
                .filter(|(_, c)| {
                    !c.dead
                        && c.pending.is_empty()
                        && c.subs.is_none()
                        && c.blocked().is_none()
                        && !matches!(c.mode, crate::conn::Mode::Replica(_))
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
        for idx in self.conns.indexes() {
            if let Some(c) = self.conns.get_ref(idx) {
                // Best effort: whatever replies are ready go out before the socket closes.
                if !c.out.is_empty() && !c.send_inflight {
                    net::write_all_nonblocking(c.fd, &c.out);
                }
            }
            self.kill(idx);
        }
    }
}
