//! Serving a shard thread's other clients while a script on that thread is busy, as
//! Redis's `processEventsWhileBlocked` does from its Lua hook: past
//! `busy-reply-threshold`, the hook (every 100,000 Lua instructions) reads what the
//! thread's other connections sent, answers BUSY, runs what Redis lets through
//! (SCRIPT KILL, FUNCTION KILL, FUNCTION STATS, SHUTDOWN NOSAVE, AUTH, HELLO, MULTI,
//! DISCARD, QUIT; EXEC refused with EXECABORT; see `dispatch::run_while_busy`), accepts
//! new connections and sends the replies.
//!
//! **Why this is sound.** The script runs deep inside the shard loop: `&mut Shard`,
//! `&mut ShardCore` and the running connection are borrowed up the stack. The hook
//! touches none of them. What it uses is either shared and borrowed by the loop only
//! for moments ([`LoopIo`]: the ring, the buffer ring, the listeners; `RefCell`s the
//! loop never holds across running a command) or *lent*: while the loop runs commands
//! for one connection (`Shard::run_lent`), it moves that connection out of its table,
//! then moves the table and the completions it has not handled yet into [`LENT`], and
//! takes them back when the commands have run. The hook finds them there by value; no
//! reference into the loop's state exists while it runs. Where a script runs without
//! anything lent (a command forwarded from another shard, a blocked client served by
//! a message, a command resumed by a forwarded reply), the hook finds nothing and
//! those clients wait, as before.
//!
//! **Order.** A connection's input is handled in order: the hook appends what arrived
//! to its query buffer and runs commands from its front; the first command it cannot
//! run here (one needing the keyspace or the loop: WATCH, UNWATCH, RESET...) stops it, and
//! that command and everything after it stay in the buffer for the loop, which runs
//! them when the script has ended (`Lent::resume`). Replies go behind the connection's
//! pending ones (`Conn::reply`). Completions the hook does not handle — the running
//! connection's input, closes and errors, the executor's operations, wake-ups — go back
//! to the loop in the order they came, behind the ones it had not handled yet, and
//! once one of a connection's completions goes back, its later ones do too.

use crate::conn::{Conn, ConnTable, Mode};
use crate::dispatch::{run_while_busy, WhileBusy};
use crate::net;
use crate::node::{unix_ms, ClientMeta, Node};
use ferrokv_resp::{Limits, Parsed};
use ferrokv_runtime::{token, BufRing, Ring};
use io_uring::{cqueue, opcode, types};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub(crate) const K_ACCEPT: u8 = 1;
pub(crate) const K_RECV: u8 = 2;
pub(crate) const K_SEND: u8 = 3;
pub(crate) const K_WAKE: u8 = 4;
pub(crate) const RECV_GROUP: u16 = 0;

/// A completion as the loop keeps it: user data, result, flags.
pub(crate) type Cqe = (u64, i32, u32);

/// The parts of a shard's loop the Lua hook may use: the loop borrows them only for
/// moments, never while a command runs.
pub(crate) struct LoopIo {
    pub node: &'static Node,
    pub id: usize,
    pub ring: RefCell<Ring>,
    pub bufs: RefCell<BufRing>,
    /// The listeners' descriptors (the shard owns them); from `core_from` on they are
    /// the shard's own ports (`core-ports`).
    pub listeners: Vec<RawFd>,
    pub core_from: usize,
}

/// What the loop lends while it runs commands for one connection (see the module docs).
#[derive(Default)]
pub(crate) struct Lent {
    /// The shard's connections, the one running commands taken out.
    pub conns: ConnTable,
    /// Completions the loop has not handled yet, in order.
    pub pending: VecDeque<Cqe>,
    /// Connections whose input the hook stored but did not run (tokens).
    pub resume: Vec<u64>,
    /// Connections with new output or a finished send (tokens): the loop flushes them.
    pub touched: Vec<u64>,
}

thread_local! {
    /// This thread's shard loop IO, set when its loop starts.
    static IO: RefCell<Option<Rc<LoopIo>>> = const { RefCell::new(None) };
    /// What the loop lent while it runs commands.
    static LENT: RefCell<Option<Lent>> = const { RefCell::new(None) };
}

/// The loop of this thread starts (`io`) or ends (None).
pub(crate) fn install(io: Option<Rc<LoopIo>>) {
    IO.with(|c| *c.borrow_mut() = io);
}

/// Lends `lent` for the commands about to run.
pub(crate) fn lend(lent: Lent) {
    LENT.with(|c| *c.borrow_mut() = Some(lent));
}

/// Takes back what [`lend`] lent.
pub(crate) fn take_back() -> Lent {
    LENT.with(|c| c.borrow_mut().take()).unwrap_or_default()
}

impl LoopIo {
    pub fn push_sqe(&self, sqe: &io_uring::squeue::Entry) {
        // SAFETY: every entry points at memory owned by a live connection (its
        // `sending` buffer: heap memory that stays put when the connection or its
        // table moves, as lending them does, and is not touched while the send is in
        // flight) or the listener, which are kept until their completions arrive.
        if let Err(e) = unsafe { self.ring.borrow_mut().push(sqe) } {
            tracing::error!("shard {}: cannot queue io_uring entry: {e}", self.id);
        }
    }

    pub fn arm_accept(&self, li: usize) {
        let sqe = opcode::AcceptMulti::new(types::Fd(self.listeners[li]))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(token::encode(K_ACCEPT, li as u64));
        self.push_sqe(&sqe);
    }

    pub fn arm_recv(&self, c: &mut Conn) {
        if c.recv_armed || c.dead {
            return;
        }
        c.recv_armed = true;
        let sqe = opcode::RecvMulti::new(types::Fd(c.fd), RECV_GROUP).build().user_data(token::encode(K_RECV, c.token));
        self.push_sqe(&sqe);
    }

    /// An accept completed: the new connection goes into `conns` with its receive
    /// armed (the loop's and the busy hook's accepts alike).
    pub fn accept(&self, conns: &mut ConnTable, li: usize, res: i32, flags: u32) {
        if !cqueue::more(flags) && !self.node.shutdown.load(Ordering::Relaxed) {
            self.arm_accept(li);
        }
        if res < 0 {
            if res != -libc::ECANCELED {
                tracing::warn!("shard {}: accept failed: {}", self.id, std::io::Error::from_raw_os_error(-res));
            }
            return;
        }
        let fd = res as RawFd;
        let node = self.node;
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
        let (idx, tok) = conns.reserve();
        let now = unix_ms();
        let id = node.next_client_id.fetch_add(1, Ordering::Relaxed);
        let meta = Arc::new(ClientMeta::new(id, self.id, tok, fd, net::peer_addr(fd), net::local_addr(fd), now));
        node.register_client(meta.clone());
        node.shards[self.id].connected_clients.fetch_add(1, Ordering::Relaxed);
        let mut conn = Conn::new(fd, tok, meta, authed, now);
        conn.core_port = li >= self.core_from;
        if conn.core_port {
            crate::node::bump(&node.shards[self.id].routing.core_port_clients);
        }
        self.arm_recv(&mut conn);
        conns.put(idx, conn);
    }

    /// Starts a send of `c`'s ready replies when none is in flight and the AOF holds
    /// what they answer (`durable`). Returns false when they wait for the AOF.
    pub fn start_send(&self, c: &mut Conn, durable: u64) -> bool {
        if c.send_inflight {
            return true;
        }
        if c.sending.is_empty() && !c.out.is_empty() {
            if c.held_until > durable {
                return false;
            }
            c.held_until = 0;
            std::mem::swap(&mut c.sending, &mut c.out);
            c.sent = 0;
        }
        if c.sent < c.sending.len() {
            let rest = &c.sending[c.sent..];
            let sqe = opcode::Send::new(types::Fd(c.fd), rest.as_ptr(), rest.len().min(u32::MAX as usize) as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data(token::encode(K_SEND, c.token));
            c.send_inflight = true;
            self.push_sqe(&sqe);
        }
        true
    }

    /// A send of `c` completed with `res` > 0 bytes.
    pub fn sent(c: &mut Conn, res: usize) {
        c.send_inflight = false;
        c.sent += res;
        c.layout.sent(res);
        if c.sent >= c.sending.len() {
            c.sending.clear();
            c.sent = 0;
            // A buffer that grew for a burst goes back now, as Redis frees each reply
            // block once sent: kept, it would count toward maxmemory (and evict keys)
            // until the once-a-second resize.
            if c.sending.capacity() > crate::client_mem::KEEP_SEND_BUFFER {
                c.sending = Vec::new();
            }
        }
    }
}

/// The hook's entry (`Hooks::while_busy`): serves this thread's other clients once.
pub(crate) fn serve() {
    let Some(io) = IO.with(|c| c.borrow().clone()) else { return };
    if io.node.shutdown.load(Ordering::Relaxed) {
        return;
    }
    LENT.with(|cell| {
        let Ok(mut guard) = cell.try_borrow_mut() else { return };
        // Nothing lent: the script runs where the loop holds its connections.
        let Some(lent) = guard.as_mut() else { return };
        if io.ring.try_borrow_mut().is_err() || io.bufs.try_borrow_mut().is_err() {
            return;
        }
        serve_lent(&io, lent);
    });
}

fn serve_lent(io: &LoopIo, lent: &mut Lent) {
    // Submits what is queued (sends, re-armed receives) and runs the deferred work that
    // turns arrived data into completions, without waiting.
    if let Err(e) = io.ring.borrow_mut().enter(false, Duration::ZERO) {
        tracing::warn!("shard {}: io_uring_enter while a script is busy: {e}", io.id);
        return;
    }
    let mut todo = std::mem::take(&mut lent.pending);
    {
        let mut ring = io.ring.borrow_mut();
        todo.extend(ring.completions().map(|c| (c.user_data(), c.result(), c.flags())));
    }
    let mut back = VecDeque::new();
    // Connections with a completion gone back to the loop: their later ones go too.
    let mut deferred: Vec<u64> = Vec::new();
    let limits = {
        let cfg = io.node.config();
        (cfg.proto_max_bulk_len as usize, cfg.client_query_buffer_limit)
    };
    for (ud, res, flags) in todo.drain(..) {
        let payload = token::payload(ud);
        let handled = match token::kind(ud) {
            K_ACCEPT => accept(io, &mut lent.conns, payload as usize, res, flags),
            K_RECV if !deferred.contains(&payload) => recv(io, lent, payload, res, flags, limits),
            K_SEND if !deferred.contains(&payload) => send_done(lent, payload, res),
            _ => false,
        };
        if !handled {
            if matches!(token::kind(ud), K_RECV | K_SEND) && !deferred.contains(&payload) {
                deferred.push(payload);
            }
            back.push_back((ud, res, flags));
        }
    }
    lent.pending = back;
    io.bufs.borrow_mut().commit();
    let durable = io.node.aof.durable();
    for &tok in &lent.touched {
        if let Some((_, c)) = lent.conns.by_token(tok) {
            if !c.dead && !matches!(c.mode, Mode::Replica(_)) {
                io.start_send(c, durable);
            }
        }
    }
}

/// A new connection; on the loop's terms (`LoopIo::accept`).
fn accept(io: &LoopIo, conns: &mut ConnTable, li: usize, res: i32, flags: u32) -> bool {
    io.accept(conns, li, res, flags);
    true
}

/// A send finished: the next one starts (after the hook's pass). Errors go back.
fn send_done(lent: &mut Lent, tok: u64, res: i32) -> bool {
    let Some((_, c)) = lent.conns.by_token(tok) else { return false };
    if res < 0 {
        return false;
    }
    LoopIo::sent(c, res as usize);
    lent.touched.push(tok);
    true
}

/// Data arrived on a connection other than the running one: stored, and its commands
/// served from the front. End of stream, errors and the running connection's input go
/// back to the loop.
fn recv(io: &LoopIo, lent: &mut Lent, tok: u64, res: i32, flags: u32, limits: (usize, u64)) -> bool {
    let Some((_, c)) = lent.conns.by_token(tok) else { return false };
    let Some(bid) = cqueue::buffer_select(flags) else { return false };
    if res <= 0 || c.dead || c.closing || matches!(c.mode, Mode::Replica(_)) || c.inbuf.len() as u64 > limits.1 {
        return false;
    }
    {
        let mut bufs = io.bufs.borrow_mut();
        // SAFETY: the buffer was just filled by this completion and is recycled here.
        c.inbuf.extend_from_slice(unsafe { bufs.buf(bid, res as usize) });
        bufs.push(bid);
    }
    if !cqueue::more(flags) {
        c.recv_armed = false;
        io.arm_recv(c);
    }
    let now = unix_ms();
    c.last_ms = now;
    c.meta.last_ms.store(now, Ordering::Relaxed);
    if !serve_input(io, c, limits.0) && !lent.resume.contains(&tok) {
        lent.resume.push(tok);
    }
    lent.touched.push(tok);
    true
}

/// Runs the commands at the front of `c`'s query buffer that can run while the script
/// is busy. False when some input is left for the loop (a command that waits, or a
/// connection whose commands do not run now: blocked, stalled, waiting for a reply).
fn serve_input(io: &LoopIo, c: &mut Conn, max_bulk_len: usize) -> bool {
    if c.stalled || c.waiting() || !matches!(c.mode, Mode::Normal | Mode::Multi(_)) {
        return c.inbuf.is_empty();
    }
    let buf = std::mem::take(&mut c.inbuf);
    let mut parser = std::mem::take(&mut c.parser);
    let mut pos = 0;
    let mut all = true;
    while pos < buf.len() && !c.closing {
        let limits = Limits { max_bulk_len, authenticated: c.authed };
        match parser.parse(&buf[pos..], &limits) {
            Ok(Parsed::Command { consumed }) => {
                let args = parser.args(&buf[pos..]);
                let m = &mut c.reply_mode;
                m.silent = m.off || m.skip;
                let ran = run_while_busy(io.node, io.id, c, &args);
                let m = &mut c.reply_mode;
                if matches!(ran, WhileBusy::Done) {
                    m.skip = std::mem::take(&mut m.skip_next);
                }
                m.silent = m.off;
                match ran {
                    WhileBusy::Done => pos += consumed,
                    WhileBusy::Wait => {
                        parser.reset();
                        all = false;
                        break;
                    }
                }
            }
            Ok(Parsed::Empty { consumed }) => pos += consumed,
            Ok(Parsed::Incomplete) => break,
            Err(e) => {
                c.reply(|r| r.raw(&e.reply()));
                c.closing = true;
                break;
            }
        }
    }
    c.parser = parser;
    let mut buf = buf;
    if c.closing {
        buf.clear();
    } else {
        buf.drain(..pos);
    }
    c.inbuf = buf;
    all
}
