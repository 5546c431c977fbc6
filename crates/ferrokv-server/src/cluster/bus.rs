//! The cluster bus IO: runs the `ferrokv-cluster` state machine on shard 0.
//!
//! Everything here is a task on shard 0's executor, using the shard's ring through the
//! runtime's async ops: a tick every 100 ms, a reader and a writer task per link, and
//! connection attempts. The state machine itself does no IO; this layer carries out
//! its outputs in order: save nodes.conf (atomically: temporary file, fsync, rename,
//! with the ring's file operations, replies that depend on it held until it is done),
//! open/close links, send messages, publish views to every shard.
//!
//! Inbound bus connections are accepted by one task per listening address, waiting in
//! the ring (`Ops::accept`).

use crate::node::{unix_ms, Node};
use ferrokv_cluster::{ClusterState, Command, Input, LinkId, LogLevel, Message, Output, Reply};
use ferrokv_resp::{Proto, ReplyBuf};
use ferrokv_runtime::executor::Executor;
use ferrokv_runtime::ops::{Ops, TcpStream};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Messages waiting to be written on one link.
#[derive(Default)]
struct Outbox {
    queue: RefCell<VecDeque<Vec<u8>>>,
    waker: RefCell<Option<Waker>>,
    closed: Cell<bool>,
}

impl Outbox {
    fn push(&self, b: Vec<u8>) {
        self.queue.borrow_mut().push_back(b);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    fn close(&self) {
        self.closed.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// The next message to write, or None once the link is closed.
    fn next(self: &Rc<Self>) -> NextMessage {
        NextMessage(self.clone())
    }
}

struct NextMessage(Rc<Outbox>);

impl Future for NextMessage {
    type Output = Option<Vec<u8>>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        if self.0.closed.get() {
            return Poll::Ready(None);
        }
        if let Some(b) = self.0.queue.borrow_mut().pop_front() {
            return Poll::Ready(Some(b));
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

struct Link {
    outbox: Rc<Outbox>,
    /// Connected (for outbound links: the connect finished).
    fd: Option<i32>,
}

pub struct Bus {
    node: &'static Node,
    state: RefCell<ClusterState>,
    links: RefCell<HashMap<LinkId, Link>>,
    next_inbound: Cell<u64>,
    ops: Ops,
    executor: Executor,
    conf_path: String,
    /// nodes.conf saving, off the event loop: the newest text not yet written (and
    /// whether any request for it asked for an fsync), whether the saver task runs,
    /// and how many saves were asked for and are done.
    pending_save: RefCell<Option<(String, bool)>>,
    saving: Cell<bool>,
    save_asked: Cell<u64>,
    save_done: Cell<u64>,
    /// CLUSTER replies held until the nodes.conf save they depend on is done (as Redis
    /// saves the config before it answers), and those released.
    held_replies: RefCell<Vec<(u64, HeldReply)>>,
    released: RefCell<Vec<HeldReply>>,
    /// Messages other nodes published, for this node's subscribers (`true`: a shard
    /// channel's), taken by shard 0's loop.
    delivered: RefCell<Vec<(bool, Vec<u8>, Vec<u8>)>>,
}

/// A CLUSTER reply for connection `token` of shard `from`, reply slot `seq`.
pub struct HeldReply {
    pub from: usize,
    pub token: u64,
    pub seq: u64,
    pub bytes: Vec<u8>,
}

impl Bus {
    /// Starts the bus on shard 0: takes the state machine from the node and spawns the tick task.
    pub fn start(node: &'static Node, ops: Ops, executor: Executor) -> Option<Rc<Bus>> {
        let state = node.cluster_state.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        let cfg = node.config().clone();
        let cport = if cfg.cluster_port != 0 { cfg.cluster_port as u16 } else { cfg.port.wrapping_add(10000) };
        let mut listeners = Vec::new();
        for b in &cfg.bind {
            let host = b.trim_start_matches('-');
            let ip = match host {
                "*" => "0.0.0.0",
                "::*" => "::",
                "localhost" => "127.0.0.1",
                h => h,
            };
            let Ok(ip) = ip.parse::<std::net::IpAddr>() else { continue };
            match TcpListener::bind(SocketAddr::new(ip, cport)) {
                Ok(l) => listeners.push(l),
                Err(e) => tracing::warn!("cluster bus: cannot listen on {ip}:{cport}: {e}"),
            }
        }
        let bus = Rc::new(Bus {
            node,
            state: RefCell::new(state),
            links: RefCell::new(HashMap::new()),
            next_inbound: Cell::new(1),
            ops,
            executor: executor.clone(),
            conf_path: cfg.cluster_config_file.clone(),
            pending_save: RefCell::new(None),
            saving: Cell::new(false),
            save_asked: Cell::new(0),
            save_done: Cell::new(0),
            held_replies: RefCell::new(Vec::new()),
            released: RefCell::new(Vec::new()),
            delivered: RefCell::new(Vec::new()),
        });
        // A replica by its nodes.conf follows its master from the start (Redis's cron
        // does the same: the state machine emits ReplicateFrom only on changes).
        let view = bus.state.borrow().view();
        let me = view.me();
        if let Some(m) = me.master.as_ref().filter(|_| me.flags.intersects(ferrokv_cluster::NodeFlags::SLAVE)) {
            if let Some(mi) = view.node(m).filter(|mi| mi.port != 0) {
                let (ip, port) = (mi.ip.clone(), mi.port);
                tracing::info!("cluster: a replica of {} by nodes.conf: replicating from {ip}:{port}", m.as_str());
                if let Err(e) = crate::repl::replica::follow(node, ip, port, "cluster", true) {
                    tracing::warn!("cluster: can't replicate from {}: {e}", m.as_str());
                }
            }
        }
        let b = bus.clone();
        executor
            .spawn(async move {
                loop {
                    // Gossip carries our replication offset (failover ranks replicas by it).
                    {
                        let (offset, link_down) = crate::repl::facts_for_cluster(b.node);
                        let mut st = b.state.borrow_mut();
                        st.set_repl_offset(offset);
                        st.set_master_link_down_since(link_down);
                    }
                    b.feed(Input::Tick);
                    b.executor.sleep(Duration::from_millis(100)).await;
                }
            })
            .detach();
        for l in listeners {
            let b = bus.clone();
            executor
                .spawn(async move {
                    // The task owns the listener: it stays open while the task waits.
                    loop {
                        match b.ops.accept(l.as_raw_fd()).await {
                            Ok((stream, peer)) => b.accepted(stream, peer),
                            Err(e) => {
                                // Out of descriptors, say: try again a tick later.
                                tracing::warn!("cluster bus: accept failed: {e}");
                                b.executor.sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                })
                .detach();
        }
        Some(bus)
    }

    /// Asks for nodes.conf to be saved with `text`.
    ///
    /// A save without fsync is written at once with plain system calls (temporary file,
    /// rename: a few hundred microseconds, as Redis writes nodes.conf in its own loop).
    /// The ring's file operations run on the kernel's io-wq workers, and there the four
    /// steps took 4–9 ms on a loaded machine — inside a slot migration's write pause,
    /// whose claim is answered after its save. A save with fsync (a new config epoch, a
    /// vote) goes to the saver task, which writes it with the ring's file operations,
    /// never blocking the shard on the disk; saves asked for while one is being
    /// written collapse into the newest.
    fn save(self: &Rc<Self>, text: String, fsync: bool) {
        self.save_asked.set(self.save_asked.get() + 1);
        if !fsync && !self.saving.get() {
            if let Err(e) = save_atomically(&self.conf_path, &text, false) {
                tracing::error!("cluster: cannot save {}: {e}", self.conf_path);
            }
            self.saved(self.save_asked.get());
            return;
        }
        {
            let mut p = self.pending_save.borrow_mut();
            let fsync = fsync || p.as_ref().is_some_and(|(_, f)| *f);
            *p = Some((text, fsync));
        }
        if !self.saving.replace(true) {
            let b = self.clone();
            self.executor.spawn(async move { b.save_loop().await }).detach();
        }
    }

    async fn save_loop(self: Rc<Self>) {
        loop {
            let next = self.pending_save.borrow_mut().take();
            let Some((text, fsync)) = next else { break };
            let asked = self.save_asked.get();
            if let Err(e) = self.write_conf(text, fsync).await {
                tracing::error!("cluster: cannot save {}: {e}", self.conf_path);
            }
            self.saved(asked);
        }
        self.saving.set(false);
    }

    /// The saves asked for up to `asked` are written: the replies held for them go.
    fn saved(&self, asked: u64) {
        self.save_done.set(asked);
        let mut held = self.held_replies.borrow_mut();
        let (ready, wait): (Vec<_>, Vec<_>) = held.drain(..).partition(|(g, _)| *g <= asked);
        *held = wait;
        self.released.borrow_mut().extend(ready.into_iter().map(|(_, r)| r));
    }

    async fn write_conf(&self, text: String, fsync: bool) -> std::io::Result<()> {
        let tmp = format!("{}.tmp-{}", self.conf_path, std::process::id());
        let f = self.ops.open(&tmp, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644).await?;
        let (res, _) = f.write_all_at(text.into_bytes(), 0).await;
        res?;
        if fsync {
            f.sync_all().await?;
        }
        f.close().await?;
        self.ops.rename(&tmp, &self.conf_path).await
    }

    /// Whether a CLUSTER reply must wait for a save (one was asked for and is not done).
    pub fn save_pending(&self) -> bool {
        self.save_done.get() < self.save_asked.get()
    }

    /// Holds `reply` until the saves asked for so far are done.
    pub fn hold_reply(&self, reply: HeldReply) {
        self.held_replies.borrow_mut().push((self.save_asked.get(), reply));
    }

    /// Replies whose save is done, to send now.
    pub fn take_released(&self) -> Vec<HeldReply> {
        std::mem::take(&mut *self.released.borrow_mut())
    }

    /// A PUBLISH (or SPUBLISH, `shard`) made on this node, for the other nodes.
    pub fn publish(self: &Rc<Self>, shard: bool, channel: Vec<u8>, message: Vec<u8>) {
        // The frame must stay under the bus's frame limit (the header takes < 4 KiB).
        if channel.len() + message.len() + 4096 > ferrokv_cluster::wire::MAX_FRAME {
            tracing::warn!(
                "cluster: a published message of {} bytes is too large for the bus; delivered on this node only",
                message.len()
            );
            return;
        }
        self.feed(Input::Publish { shard, channel, message });
    }

    /// Messages published on other nodes, to deliver here.
    pub fn take_delivered(&self) -> Vec<(bool, Vec<u8>, Vec<u8>)> {
        std::mem::take(&mut *self.delivered.borrow_mut())
    }

    /// At shutdown: writes a save still pending, synchronously (the loop has stopped).
    pub fn flush_on_exit(&self) {
        if let Some((text, fsync)) = self.pending_save.borrow_mut().take() {
            if let Err(e) = save_atomically(&self.conf_path, &text, fsync) {
                tracing::error!("cluster: cannot save {}: {e}", self.conf_path);
            }
        }
    }

    /// Advertises this node's slot → core table anew (after a slot handoff between
    /// its cores): CLUSTER SLOTS/SHARDS here and, through the next headers, elsewhere.
    pub fn set_core_table(self: &Rc<Self>, core_of: impl Fn(u16) -> usize) {
        let runs = ferrokv_cluster::CoreEndpoints::runs_of(core_of);
        self.feed(Input::SetCoreRuns(runs));
    }

    /// Feeds one input to the state machine and carries out what it asks.
    fn feed(self: &Rc<Self>, input: Input) -> Option<Result<Reply, String>> {
        let outputs = {
            let mut st = self.state.borrow_mut();
            st.set_migration_holds_writes(self.node.slot_migration.pausing());
            st.handle(unix_ms(), input)
        };
        let mut reply = None;
        let mut lost = Vec::new();
        for o in outputs {
            match o {
                Output::Reply(r) => reply = Some(r),
                // Trimmed only once the view that took the slots away is published.
                Output::DeleteKeysInSlots(slots) => lost.extend(slots),
                o => self.carry_out(o),
            }
        }
        if !lost.is_empty() {
            crate::slot_migration::schedule_trim(self.node, &lost);
        }
        reply
    }

    fn carry_out(self: &Rc<Self>, o: Output) {
        match o {
            Output::SaveConfig { text, fsync } => self.save(text, fsync),
            Output::Connect { link, ip, port } => self.connect(link, ip, port),
            Output::Send { link, msg } => {
                if let Some(l) = self.links.borrow().get(&link) {
                    l.outbox.push(msg.encode());
                }
            }
            Output::Close(link) => {
                if let Some(l) = self.links.borrow_mut().remove(&link) {
                    l.outbox.close();
                    if let Some(fd) = l.fd {
                        // SAFETY: shutting down our own socket wakes its reader.
                        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
                    }
                }
            }
            Output::ViewChanged(view) => {
                // Slots owned or importing again whose old keys are still queued for
                // deletion lose them now, before the view lets new keys in.
                let me = view.myself;
                let back = (0..ferrokv_store::SLOTS as u16).filter(|&s| view.slot_owner_index(s) == Some(me));
                crate::slot_migration::trim_now(self.node, back.chain(view.importing.iter().map(|&(s, _)| s)));
                if let Some(c) = self.node.cluster.as_ref() {
                    c.publish(view);
                }
            }
            Output::DeleteKeysInSlots(slots) => crate::slot_migration::schedule_trim(self.node, &slots),
            Output::ReplicateFrom { master, ip, port } => {
                tracing::info!("cluster: now a replica of {} ({ip}:{port})", master.as_str());
                if let Err(e) = crate::repl::replica::follow(self.node, ip, port, "cluster", true) {
                    tracing::warn!("cluster: can't replicate from {}: {e}", master.as_str());
                }
            }
            Output::Promoted { former_master } => {
                tracing::info!("cluster: promoted to master in place of {}", former_master.as_str());
                crate::repl::replica::promote(self.node);
            }
            Output::PauseWrites { until_ms } => {
                tracing::info!("cluster: manual failover: client writes paused");
                self.node.repl.pause_writes_until(until_ms);
            }
            Output::ResumeWrites => {
                tracing::info!("cluster: manual failover over: client writes resume");
                self.node.repl.pause_writes_until(0);
            }
            Output::StopReplication { flush } => {
                if self.node.repl.is_replica.load(std::sync::atomic::Ordering::Acquire) {
                    crate::repl::replica::promote(self.node);
                }
                if flush {
                    for s in 0..self.node.shard_count() {
                        let mut db = self.node.lock_db(s);
                        db.clear();
                        self.node.shards[s].publish(&db);
                    }
                }
            }
            Output::Log { level, text } => match level {
                LogLevel::Debug => tracing::debug!("cluster: {text}"),
                LogLevel::Verbose => tracing::debug!("cluster: {text}"),
                LogLevel::Notice => tracing::info!("cluster: {text}"),
                LogLevel::Warning => tracing::warn!("cluster: {text}"),
            },
            Output::Deliver { shard, channel, message } => self.delivered.borrow_mut().push((shard, channel, message)),
            Output::Reply(_) => {}
        }
    }

    fn accepted(self: &Rc<Self>, stream: TcpStream, peer: SocketAddr) {
        let local = stream.local_addr().map(|a| a.ip().to_string()).unwrap_or_default();
        let _ = stream.set_nodelay(true);
        let id = self.next_inbound.get();
        self.next_inbound.set(id + 1);
        let link = LinkId::Inbound(id);
        self.open_link(link, stream);
        self.feed(Input::Accepted { link, peer_ip: peer.ip().to_string(), local_ip: local });
    }

    fn connect(self: &Rc<Self>, link: LinkId, ip: String, port: u16) {
        let outbox = Rc::new(Outbox::default());
        self.links.borrow_mut().insert(link, Link { outbox, fd: None });
        let bus = self.clone();
        self.executor
            .spawn(async move {
                let addr = match ip.parse::<std::net::IpAddr>() {
                    Ok(a) => SocketAddr::new(a, port),
                    Err(_) => {
                        bus.feed(Input::Closed(link));
                        return;
                    }
                };
                match bus.ops.connect(addr).await {
                    Ok(stream) => {
                        if !bus.links.borrow().contains_key(&link) {
                            return; // closed meanwhile
                        }
                        let _ = stream.set_nodelay(true);
                        bus.run_link(link, stream);
                        bus.feed(Input::Connected(link));
                    }
                    Err(_) => {
                        if bus.links.borrow_mut().remove(&link).is_some() {
                            bus.feed(Input::Closed(link));
                        }
                    }
                }
            })
            .detach();
    }

    fn open_link(self: &Rc<Self>, link: LinkId, stream: TcpStream) {
        let outbox = Rc::new(Outbox::default());
        self.links.borrow_mut().insert(link, Link { outbox, fd: None });
        self.run_link(link, stream);
    }

    /// Starts the reader and writer tasks of a connected link.
    fn run_link(self: &Rc<Self>, link: LinkId, stream: TcpStream) {
        use std::os::fd::AsRawFd;
        let fd = stream.as_raw_fd();
        let outbox = match self.links.borrow_mut().get_mut(&link) {
            Some(l) => {
                l.fd = Some(fd);
                l.outbox.clone()
            }
            None => return,
        };
        let stream = Rc::new(stream);
        let (w, bus) = (stream.clone(), self.clone());
        self.executor
            .spawn(async move {
                while let Some(buf) = outbox.next().await {
                    let (r, _) = w.send_all(buf).await;
                    if r.is_err() {
                        break;
                    }
                }
                let _ = &bus;
            })
            .detach();
        let bus = self.clone();
        self.executor
            .spawn(async move {
                let mut acc: Vec<u8> = Vec::new();
                let mut buf = Vec::with_capacity(64 * 1024);
                loop {
                    buf.clear();
                    buf.reserve(64 * 1024);
                    let (r, b) = stream.recv(buf).await;
                    buf = b;
                    match r {
                        Ok(n) if n > 0 => acc.extend_from_slice(&buf[..n]),
                        _ => break,
                    }
                    let mut used = 0;
                    loop {
                        match ferrokv_cluster::decode_frame(&acc[used..]) {
                            Ok(Some((msg, len))) => {
                                used += len;
                                bus.deliver(link, msg);
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::debug!("cluster bus: bad frame on {link:?}: {e:?}");
                                used = acc.len();
                                bus.close_link(link);
                                break;
                            }
                        }
                    }
                    acc.drain(..used);
                    if !bus.links.borrow().contains_key(&link) {
                        break;
                    }
                }
                bus.close_link(link);
            })
            .detach();
    }

    fn deliver(self: &Rc<Self>, link: LinkId, msg: Message) {
        if self.links.borrow().contains_key(&link) {
            self.feed(Input::Message { link, msg });
        }
    }

    fn close_link(self: &Rc<Self>, link: LinkId) {
        let removed = self.links.borrow_mut().remove(&link);
        if let Some(l) = removed {
            l.outbox.close();
            self.feed(Input::Closed(link));
        }
    }
}

/// CLUSTER LINKS: one map per bus link attached to a known node.
pub fn links_reply(bus: &Option<Rc<Bus>>, proto: Proto) -> Vec<u8> {
    let mut r = ReplyBuf::new(proto);
    let Some(bus) = bus.as_ref() else {
        r.error("ERR cluster bus is not running");
        return r.buf;
    };
    let infos = bus.state.borrow().link_infos();
    let links = bus.links.borrow();
    r.array(infos.len());
    for info in &infos {
        let (used, allocated) = links.get(&info.link).map_or((0, 0), |l| {
            let q = l.outbox.queue.borrow();
            (q.iter().map(|b| b.len()).sum::<usize>(), q.iter().map(|b| b.capacity()).sum::<usize>())
        });
        r.map(6);
        r.bulk(b"direction");
        r.bulk(if info.outbound { b"to" } else { b"from" });
        r.bulk(b"node");
        r.bulk(info.node.as_str().as_bytes());
        r.bulk(b"create-time");
        r.integer(info.create_time as i64);
        r.bulk(b"events");
        r.bulk(if used > 0 { b"rw" } else { b"r" });
        r.bulk(b"send-buffer-allocated");
        r.integer(allocated as i64);
        r.bulk(b"send-buffer-used");
        r.integer(used as i64);
    }
    r.buf
}

/// Runs a state-changing CLUSTER subcommand on the bus; returns the encoded reply.
pub fn apply_command(bus: &Option<Rc<Bus>>, cmd: Command, proto: Proto) -> Vec<u8> {
    let mut r = ReplyBuf::new(proto);
    match bus.as_ref().and_then(|b| b.feed(Input::Command(cmd))) {
        Some(Ok(Reply::Ok)) => r.ok(),
        Some(Ok(Reply::Status(s))) => r.simple(&s),
        Some(Ok(Reply::Integer(n))) => r.integer(n),
        Some(Err(e)) => r.error(&e),
        None => r.error("ERR cluster bus is not running"),
    }
    r.buf
}

/// Writes `text` to `path` so that a crash leaves either the old or the new file (a
/// save without fsync, and the last save at shutdown; see [`Bus::save`]).
fn save_atomically(path: &str, text: &str, fsync: bool) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = format!("{path}.tmp-{}", std::process::id());
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        if fsync {
            f.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path)
}
