//! The master's side: PSYNC/SYNC, full and partial resyncs, the replicas' threads,
//! REPLCONF, WAIT and output limits. See the module docs of `crate::repl`.

use super::{lock, Replica, State, WaitReq};
use crate::conn::{Conn, Mode};
use crate::dispatch::ShardCore;
use crate::msg::Msg;
use crate::node::{unix_ms, Node};
use ferrokv_commands::util::eq_ic;
use ferrokv_resp::Args;
use std::io::Write;
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

/// `SELECT 0`: the stream after a full sync's cut starts in database 0.
const SELECT_0: &[u8] = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n";
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";
pub(crate) const GETACK: &[u8] = b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n";
/// The most one write to a replica's socket takes from the backlog.
const CHUNK: usize = 256 << 10;
/// A streaming replica's thread looks for new bytes this often, unwoken; after
/// [`IDLE_AFTER`] without sending it sleeps until woken (`Repl::wake_idle`).
const POLL: Duration = Duration::from_millis(1);
const IDLE_AFTER: Duration = Duration::from_millis(50);

/// Where a replica is, as INFO's `state=` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a snapshot to start (another runs, or the diskless delay).
    WaitBgsave,
    /// Its snapshot runs; the stream from the cut is kept for it.
    SendingRdb,
    Online,
}

impl Phase {
    pub fn info_name(self) -> &'static str {
        match self {
            Phase::WaitBgsave => "wait_bgsave",
            Phase::SendingRdb => "send_bulk",
            Phase::Online => "online",
        }
    }

    pub fn is_online(self) -> bool {
        self == Phase::Online
    }
}

/// What a replica's thread writes before the stream, in order.
pub enum Feed {
    /// Protocol lines (`+FULLRESYNC`, `$EOF:<mark>`, `+CONTINUE`) and RDB bytes.
    Bytes(Arc<Vec<u8>>),
    /// A disk-based sync's file: sent as one bulk string.
    File(std::path::PathBuf),
    /// The sync is over: stream from the replica's offset.
    Stream,
    /// A diskless sync is over: stream once the replica acknowledges (it finds the end
    /// of the image by the mark in the last bytes it read, so nothing may follow the
    /// mark until it has loaded the image, as Redis 7 waits too).
    StreamAfterAck,
    /// The sync failed: drop the replica.
    Close,
}

/// `client-output-buffer-limit replica <hard> <soft> <seconds>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLimits {
    pub hard: u64,
    pub soft: u64,
    pub soft_secs: u64,
}

impl OutputLimits {
    /// Whether a client holding `used` bytes of output may keep going, as Redis's
    /// `checkClientOutputBufferLimits`: not at or over the hard limit, and not at or over
    /// the soft one for longer than its seconds (`soft_since` keeps when it got there;
    /// the first time is never a close, even with 0 seconds). A zero limit is no limit.
    pub fn within(&self, used: u64, soft_since: &mut Option<u64>, now_ms: u64) -> bool {
        if self.hard > 0 && used >= self.hard {
            return false;
        }
        if self.soft == 0 || used < self.soft {
            *soft_since = None;
            return true;
        }
        match *soft_since {
            Some(t) => now_ms.saturating_sub(t) <= self.soft_secs * 1000,
            None => {
                *soft_since = Some(now_ms);
                true
            }
        }
    }
}

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits { hard: 256 << 20, soft: 64 << 20, soft_secs: 60 }
    }
}

/// REPLCONF's answers before PSYNC: (client id, listening port, capa eof, capa psync2).
fn handshake_of(st: &mut State, id: u64) -> &mut Replica {
    if let Some(i) = st.replicas.iter().position(|r| r.id == id) {
        return &mut st.replicas[i];
    }
    st.replicas.push(Replica {
        id,
        ip: String::new(),
        port: 0,
        capa_eof: false,
        capa_psync2: false,
        pre_psync: false,
        phase: Phase::WaitBgsave,
        fd: None,
        feed: None,
        next: None,
        ack: 0,
        ack_ms: unix_ms(),
        soft_since: None,
        wait_ack: false,
        closing: false,
        shard: 0,
        token: 0,
    });
    st.replicas.last_mut().expect("just pushed")
}

/// Replicas that said REPLCONF but never PSYNC are not replicas: INFO and limits skip
/// entries without a feed.
pub(crate) fn is_replica(r: &Replica) -> bool {
    r.feed.is_some() && !r.closing
}

/// REPLCONF <option> <value> ... (from a replica to its master; GETACK is the other way).
pub fn replconf(core: &mut ShardCore, c: &mut Conn, args: &Args) {
    if args.len() % 2 == 0 {
        return c.error(ferrokv_commands::util::ERR_SYNTAX);
    }
    let node = core.node;
    let id = c.meta.id;
    let mut ack = false;
    {
        let mut st = lock(&node.repl.st);
        let mut i = 1;
        while i + 1 < args.len() {
            let (opt, val) = (args.get(i), args.get(i + 1));
            if eq_ic(opt, "listening-port") {
                let Some(port) = std::str::from_utf8(val).ok().and_then(|v| v.parse::<u16>().ok()) else {
                    drop(st);
                    return c.error("ERR value is not an integer or out of range");
                };
                handshake_of(&mut st, id).port = port;
            } else if eq_ic(opt, "ip-address") {
                handshake_of(&mut st, id).ip = String::from_utf8_lossy(val).into_owned();
            } else if eq_ic(opt, "capa") {
                let r = handshake_of(&mut st, id);
                if eq_ic(val, "eof") {
                    r.capa_eof = true;
                } else if eq_ic(val, "psync2") {
                    r.capa_psync2 = true;
                }
            } else if eq_ic(opt, "ack") || eq_ic(opt, "fack") {
                if eq_ic(opt, "ack") {
                    let off = std::str::from_utf8(val).ok().and_then(|v| v.parse::<u64>().ok());
                    if let (Some(off), Some(r)) = (off, st.replicas.iter_mut().find(|r| r.id == id)) {
                        r.ack = r.ack.max(off);
                        r.ack_ms = unix_ms();
                        if std::mem::take(&mut r.wait_ack) {
                            node.repl.more.notify_all();
                        }
                    }
                }
                ack = true;
            } else if eq_ic(opt, "getack") {
                // Only a replica answers GETACK (its master's link does, see `replica`).
                ack = true;
            } else if eq_ic(opt, "rdb-only") || eq_ic(opt, "rdb-filter-only") {
            } else {
                drop(st);
                return c.error(&format!("ERR Unrecognized REPLCONF option: {}", String::from_utf8_lossy(opt)));
            }
            i += 2;
        }
    }
    if ack {
        // No reply to ACK: the replica never reads one.
        check_waiters(core);
        return;
    }
    c.reply(|r| r.ok());
}

/// PSYNC <replid> <offset> and SYNC: turns the connection into a replica.
pub fn psync(core: &mut ShardCore, c: &mut Conn, args: &Args, sync: bool) {
    let node = core.node;
    if matches!(c.mode, Mode::Replica(_)) {
        return;
    }
    if node.repl.is_replica.load(Ordering::Acquire) && !super::replica::link_up(node) {
        return c.error("NOMASTERLINK Can't SYNC while not connected with my master");
    }
    if !c.out.is_empty() || c.send_inflight || !c.sending.is_empty() || !c.pending.is_empty() {
        return c.error("ERR SYNC and PSYNC are invalid with pending output");
    }
    // The replica's thread gets its own descriptor of the socket.
    // SAFETY: dup of our live socket; the new descriptor is owned by the TcpStream.
    let dup = unsafe { libc::fcntl(c.fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return c.error("ERR can't duplicate the replica's socket");
    }
    // SAFETY: `dup` is a fresh descriptor nothing else owns.
    let sock = unsafe { TcpStream::from_raw_fd(dup) };
    let _ = sock.set_nonblocking(false);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Feed>(4);
    let id = c.meta.id;
    let peer_ip = c.meta.addr.rsplit_once(':').map(|(ip, _)| ip.to_string()).unwrap_or_default();
    let psync_req = (!sync && args.len() == 3).then(|| (args.get(1).to_vec(), args.get(2).to_vec()));
    let full = {
        let mut st = lock(&node.repl.st);
        let cont = psync_req.as_ref().and_then(|(id, off)| can_continue(&st, id, off));
        if st.replicas.iter().filter(|r| is_replica(r)).count() == 0 && !st.has_backlog {
            // A new history for the first replica (Redis: a fresh replid).
            st.replid = crate::node::random_hex(40);
            st.clear_replid2();
        }
        st.create_backlog();
        node.repl.on.store(true, Ordering::Release);
        let replid = st.replid.clone();
        let r = handshake_of(&mut st, id);
        if r.ip.is_empty() {
            r.ip = peer_ip;
        }
        r.fd = Some(dup);
        r.shard = core.id;
        r.token = c.token;
        r.ack_ms = unix_ms();
        if sync {
            r.capa_eof = false;
            r.pre_psync = true;
        }
        if cont.is_some() {
            node.repl.sync_partial_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            node.repl.sync_full.fetch_add(1, Ordering::Relaxed);
            // A PSYNC naming a history (not `?`) that we could not continue.
            if psync_req.as_ref().is_some_and(|(id, _)| id.as_slice() != b"?") {
                node.repl.sync_partial_err.fetch_add(1, Ordering::Relaxed);
            }
        }
        match cont {
            Some(from) => {
                let line = if r.capa_psync2 { format!("+CONTINUE {replid}\r\n") } else { "+CONTINUE\r\n".into() };
                let _ = tx.try_send(Feed::Bytes(Arc::new(line.into_bytes())));
                let _ = tx.try_send(Feed::Stream);
                r.next = Some(from);
                r.phase = Phase::SendingRdb;
                r.feed = Some(tx);
                tracing::info!("Partial resynchronization request from replica accepted. Sending from offset {from}.");
                false
            }
            None => {
                r.phase = Phase::WaitBgsave;
                r.feed = Some(tx);
                true
            }
        }
    };
    c.mode = Mode::Replica(id);
    c.meta.replica.store(true, Ordering::Relaxed);
    // Effects must flow from now on (the first replica may find them off).
    if !full {
        ensure_effects(node);
    }
    let spawned = std::thread::Builder::new().name(format!("replica-{id}")).spawn(move || serve(node, id, sock, rx));
    if spawned.is_err() {
        drop_replica(node, id);
        return;
    }
    if full {
        tracing::info!("Replica {} asks for synchronization", c.meta.addr);
        start_syncs(node, false);
    }
}

/// Turns every shard's effects log on (a PSYNC +CONTINUE after the backlog was made).
fn ensure_effects(node: &Node) {
    for s in 0..node.shard_count() {
        node.lock_db(s).enable_effects();
    }
}

/// The offset to continue from, when PSYNC's history is ours and still in the backlog.
fn can_continue(st: &State, replid: &[u8], offset: &[u8]) -> Option<u64> {
    let off: u64 = std::str::from_utf8(offset).ok()?.parse().ok()?;
    let ours = replid == st.replid.as_bytes();
    let old = replid == st.replid2.as_bytes() && st.second_offset >= 0 && off <= st.second_offset as u64;
    if !(ours || old) || !st.has_backlog {
        return None;
    }
    if off < st.first() || off > st.offset + 1 {
        return None;
    }
    Some(off)
}

/// Starts a snapshot for the replicas waiting for one, when none runs (and, diskless,
/// once `repl-diskless-sync-delay` has passed since the first of them asked, unless
/// `now`).
pub fn start_syncs(node: &'static Node, from_cron: bool) {
    let (diskless_cfg, delay) = {
        let cfg = node.config();
        (cfg.repl_diskless_sync, cfg.repl_diskless_sync_delay)
    };
    let waiting: Vec<(u64, bool, u64)> = {
        let st = lock(&node.repl.st);
        st.replicas
            .iter()
            .filter(|r| is_replica(r) && r.phase == Phase::WaitBgsave)
            .map(|r| (r.id, r.capa_eof, r.ack_ms))
            .collect()
    };
    if waiting.is_empty() || crate::persist::running(node).is_some() {
        return;
    }
    let diskless = diskless_cfg && waiting.iter().all(|w| w.1);
    if diskless && delay > 0 {
        let oldest = waiting.iter().map(|w| w.2).min().unwrap_or(0);
        if !from_cron || unix_ms().saturating_sub(oldest) < delay * 1000 {
            return;
        }
    }
    let ids: Vec<u64> = waiting.iter().map(|w| w.0).collect();
    let mark = crate::node::random_hex(40);
    let cut_ids = ids.clone();
    let cut_mark = mark.clone();
    let at_cut: crate::persist::AtCut<'static> = Box::new(move |dbs| {
        let mut st = lock(&node.repl.st);
        // A replica's stream is its master's (chained replicas get those bytes): its
        // own effects go to its AOF only, and no SELECT is added.
        let chained = node.repl.is_replica.load(Ordering::Acquire);
        for (s, db) in dbs.iter_mut() {
            if let Some(log) = db.effects() {
                let parts = log.drain();
                crate::aof::hand_over_parts(node, *s, &parts);
                if !chained {
                    st.pending[*s].extend(parts);
                }
            }
            db.enable_effects();
        }
        let select: &[u8] = if chained { b"" } else { SELECT_0 };
        st.merge();
        st.append(select);
        if !chained {
            st.stream_db = 0;
        }
        let (replid, offset) = (st.replid.clone(), st.offset);
        for r in st.replicas.iter_mut().filter(|r| cut_ids.contains(&r.id) && r.phase == Phase::WaitBgsave) {
            r.phase = Phase::SendingRdb;
            r.next = Some(offset + 1 - select.len() as u64);
            if let Some(f) = &r.feed {
                let mut line = if r.pre_psync {
                    Vec::new()
                } else {
                    format!("+FULLRESYNC {replid} {}\r\n", offset - select.len() as u64).into_bytes()
                };
                if diskless {
                    line.extend_from_slice(format!("$EOF:{cut_mark}\r\n").as_bytes());
                }
                let _ = f.try_send(Feed::Bytes(Arc::new(line)));
            }
        }
    });
    let feeds: Vec<(u64, SyncSender<Feed>)> = {
        let st = lock(&node.repl.st);
        st.replicas.iter().filter(|r| ids.contains(&r.id)).filter_map(|r| Some((r.id, r.feed.clone()?))).collect()
    };
    let done_ids = ids.clone();
    let result = if diskless {
        let on_done: crate::persist::OnDone = Box::new(move |node, result| {
            if let Err(e) = result {
                tracing::warn!("Diskless sync to replicas failed: {e}");
                for id in &done_ids {
                    drop_replica(node, *id);
                }
            } else {
                tracing::info!("Diskless sync to replicas done");
            }
        });
        let sink = Box::new(ReplicaSink { feeds, mark: mark.into_bytes() });
        crate::persist::start_background_to(
            node,
            crate::persist::SnapshotPurpose::Replicas,
            crate::persist::Dest::Stream(sink),
            at_cut,
            on_done,
        )
    } else {
        let (target, temp) = {
            let cfg = node.config();
            let dir = std::path::PathBuf::from(&cfg.dir);
            (dir.join(&cfg.dbfilename), dir.join(format!("temp-{}.rdb", std::process::id())))
        };
        let file = target.clone();
        let on_done: crate::persist::OnDone = Box::new(move |node, result| {
            for (id, f) in &feeds {
                match &result {
                    Ok(()) => {
                        let _ = f.send(Feed::File(file.clone()));
                        let _ = f.send(Feed::Stream);
                    }
                    Err(_) => drop_replica(node, *id),
                }
            }
        });
        crate::persist::start_background(node, crate::persist::SnapshotPurpose::Rdb, target, temp, at_cut, on_done)
    };
    if result.is_err() {
        // Another snapshot won the race: the cron tries again when it ends.
        return;
    }
    if !diskless {
        tracing::info!("Starting BGSAVE for SYNC with target: disk");
    }
}

/// A diskless sync's image, fanned out to the replicas' threads (bounded channels:
/// a slow replica slows the snapshot, which the shards feel as back-pressure).
struct ReplicaSink {
    feeds: Vec<(u64, SyncSender<Feed>)>,
    mark: Vec<u8>,
}

impl crate::persist::RdbStream for ReplicaSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let chunk = Arc::new(bytes.to_vec());
        self.feeds.retain(|(_, f)| f.send(Feed::Bytes(chunk.clone())).is_ok());
        if self.feeds.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "every replica went away"));
        }
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        let mark = Arc::new(std::mem::take(&mut self.mark));
        for (_, f) in &self.feeds {
            let _ = f.send(Feed::Bytes(mark.clone()));
            let _ = f.send(Feed::StreamAfterAck);
        }
        Ok(())
    }
}

/// A replica's thread: the sync, then the stream, with blocking writes.
fn serve(node: &'static Node, id: u64, mut sock: TcpStream, rx: Receiver<Feed>) {
    let timeout = node.config().repl_timeout.max(1);
    let _ = sock.set_write_timeout(Some(Duration::from_secs(timeout)));
    let _ = sock.set_nodelay(true);
    let ok = (|| -> std::io::Result<bool> {
        loop {
            match rx.recv() {
                Ok(Feed::Bytes(b)) => sock.write_all(&b)?,
                Ok(Feed::File(path)) => {
                    let mut f = std::fs::File::open(&path)?;
                    let len = f.metadata()?.len();
                    sock.write_all(format!("${len}\r\n").as_bytes())?;
                    std::io::copy(&mut f, &mut sock)?;
                }
                Ok(Feed::Stream) => return Ok(false),
                Ok(Feed::StreamAfterAck) => return Ok(true),
                Ok(Feed::Close) | Err(_) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::Other, "sync abandoned"));
                }
            }
        }
    })();
    let Ok(after_ack) = ok else {
        finish_thread(node, id, sock);
        return;
    };
    {
        let mut st = lock(&node.repl.st);
        if let Some(r) = st.replicas.iter_mut().find(|r| r.id == id) {
            r.phase = Phase::Online;
            r.ack_ms = unix_ms();
            r.wait_ack = after_ack;
            tracing::info!("Synchronization with replica {}:{} succeeded", r.ip, r.port);
        }
    }
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut last_sent = std::time::Instant::now();
    loop {
        chunk.clear();
        {
            let mut st = lock(&node.repl.st);
            loop {
                let end = st.offset + 1;
                let Some(r) = st.replicas.iter().find(|r| r.id == id) else { break };
                if r.closing {
                    break;
                }
                let next = r.next.unwrap_or(end);
                if next < end && !r.wait_ack {
                    if read_from(&st, next, CHUNK, &mut chunk).is_err() {
                        tracing::warn!("replica {id}: its stream left the backlog; dropping it");
                    }
                    break;
                }
                // Streaming: look again in a millisecond (whatever gathers meanwhile goes
                // in one write). Idle for a while: sleep until woken.
                let busy = last_sent.elapsed() < IDLE_AFTER;
                if !busy {
                    node.repl.idle_threads.fetch_add(1, Ordering::AcqRel);
                }
                let wait = if busy { POLL } else { Duration::from_millis(100) };
                st = node.repl.more.wait_timeout(st, wait).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
                if !busy {
                    node.repl.idle_threads.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
        if chunk.is_empty() {
            break;
        }
        if sock.write_all(&chunk).is_err() {
            break;
        }
        last_sent = std::time::Instant::now();
        let mut st = lock(&node.repl.st);
        if let Some(r) = st.replicas.iter_mut().find(|r| r.id == id) {
            r.next = r.next.map(|n| n + chunk.len() as u64);
        }
        st.trim();
    }
    finish_thread(node, id, sock);
}

/// Appends to `out` the stream from offset `next` on, at most `max` bytes; Err when
/// those bytes already left the backlog.
pub(crate) fn read_from(st: &State, next: u64, max: usize, out: &mut Vec<u8>) -> Result<(), ()> {
    let first = st.first();
    if next < first {
        return Err(());
    }
    let from = ((next - first) as usize).min(st.buf.len());
    let to = from.saturating_add(max).min(st.buf.len());
    let (a, b) = st.buf.as_slices();
    if from < a.len() {
        out.extend_from_slice(&a[from..to.min(a.len())]);
    }
    if to > a.len() {
        out.extend_from_slice(&b[from.saturating_sub(a.len())..to - a.len()]);
    }
    Ok(())
}

/// The thread's end: the socket shut down (its shard sees the connection close and
/// forgets the replica) and the descriptor forgotten before it closes.
fn finish_thread(node: &Node, id: u64, sock: TcpStream) {
    let mut st = lock(&node.repl.st);
    if let Some(r) = st.replicas.iter_mut().find(|r| r.id == id) {
        r.closing = true;
        r.fd = None;
        r.feed = None;
    }
    let _ = sock.shutdown(std::net::Shutdown::Both);
    drop(st);
    drop(sock);
}

/// Drops a replica: its socket is shut down; the rest follows from its connection's
/// end ([`replica_gone`]).
pub fn drop_replica(node: &Node, id: u64) {
    let mut st = lock(&node.repl.st);
    if let Some(r) = st.replicas.iter_mut().find(|r| r.id == id) {
        close(r);
    }
    drop(st);
    node.repl.more.notify_all();
}

fn close(r: &mut Replica) {
    r.closing = true;
    if let Some(f) = r.feed.take() {
        let _ = f.try_send(Feed::Close);
    }
    if let Some(fd) = r.fd {
        // SAFETY: the replica's thread owns `fd` and clears it under this lock before
        // closing it, so it is still that socket.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    }
}

/// The connection of replica `id` is gone (its shard freed it).
pub fn replica_gone(node: &Node, id: u64) {
    let mut st = lock(&node.repl.st);
    if let Some(i) = st.replicas.iter().position(|r| r.id == id) {
        let mut r = st.replicas.remove(i);
        if r.feed.is_some() || r.fd.is_some() {
            tracing::info!("Connection with replica {}:{} lost.", r.ip, r.port);
        }
        close(&mut r);
        if !st.replicas.iter().any(is_replica) {
            st.no_replicas_since = unix_ms();
        }
        st.trim();
    }
    drop(st);
    node.repl.more.notify_all();
}

/// A connection that said REPLCONF and then went away without PSYNC.
pub fn forget_handshake(node: &Node, id: u64) {
    let mut st = lock(&node.repl.st);
    st.replicas.retain(|r| r.id != id || r.feed.is_some() || r.fd.is_some());
}

/// Replicas too far behind are dropped (`client-output-buffer-limit replica`).
pub(crate) fn enforce_limits(st: &mut State) {
    let lim = st.limits;
    let end = st.offset + 1;
    let now = unix_ms();
    for r in st.replicas.iter_mut().filter(|r| !r.closing) {
        let Some(next) = r.next else { continue };
        let behind = end.saturating_sub(next);
        if !lim.within(behind, &mut r.soft_since, now) {
            tracing::warn!(
                "Client id={} addr={}:{} scheduled to be closed ASAP for overcoming of output buffer limits.",
                r.id,
                r.ip,
                r.port
            );
            close(r);
        }
    }
}

/// Replicas online with a recent ACK (`min-replicas-max-lag`).
pub(crate) fn good_replicas(node: &Node, st: &State, now: u64) -> u64 {
    let max_lag = node.config().min_replicas_max_lag;
    st.replicas
        .iter()
        .filter(|r| is_replica(r) && r.phase.is_online() && now.saturating_sub(r.ack_ms) / 1000 <= max_lag)
        .count() as u64
}

/// `min-replicas-to-write`: false when writes must be refused with NOREPLICAS.
pub fn enough_replicas(node: &Node) -> bool {
    let min = node.config().min_replicas_to_write;
    if min == 0 || node.repl.is_replica.load(Ordering::Relaxed) {
        return true;
    }
    let st = lock(&node.repl.st);
    good_replicas(node, &st, unix_ms()) >= min
}

/// WAIT numreplicas timeout.
pub fn wait(core: &mut ShardCore, c: &mut Conn, args: &Args, in_exec: bool) {
    let node = core.node;
    if node.repl.is_replica.load(Ordering::Acquire) {
        return c.error(
            "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.",
        );
    }
    let Some(want) = std::str::from_utf8(args.get(1)).ok().and_then(|v| v.parse::<i64>().ok()) else {
        return c.error("ERR value is not an integer or out of range");
    };
    let Some(timeout) = std::str::from_utf8(args.get(2)).ok().and_then(|v| v.parse::<i64>().ok()) else {
        return c.error("ERR timeout is not an integer or out of range");
    };
    if timeout < 0 {
        return c.error("ERR timeout is negative");
    }
    // Inside EXEC the keyspace locks are held: the effects logged so far are the
    // target's lower bound anyway, and WAIT answers at once there.
    let target = if in_exec { node.repl.offset() } else { super::flush_all(node) };
    let acked = {
        let st = lock(&node.repl.st);
        count_acks(&st, target)
    };
    if in_exec || acked as i64 >= want {
        return c.reply(|r| r.integer(acked as i64));
    }
    let seq = c.push_pending();
    c.barrier = Some(seq);
    {
        let mut st = lock(&node.repl.st);
        st.waiters.push(WaitReq {
            shard: core.id,
            token: c.token,
            seq,
            offset: target,
            replicas: want as u64,
            deadline: if timeout == 0 { 0 } else { unix_ms() + timeout as u64 },
        });
        st.append(GETACK);
    }
    node.repl.waiting.store(true, Ordering::Release);
    node.repl.more.notify_all();
}

fn count_acks(st: &State, offset: u64) -> u64 {
    st.replicas.iter().filter(|r| is_replica(r) && r.phase.is_online() && r.ack >= offset).count() as u64
}

/// Answers the WAIT clients that have their acknowledgements.
pub fn check_waiters(core: &mut ShardCore) {
    finish_waiters(core, false);
}

/// Answers WAIT clients whose timeout passed (cron).
pub fn expire_waiters(core: &mut ShardCore) {
    finish_waiters(core, true);
}

fn finish_waiters(core: &mut ShardCore, timeouts: bool) {
    let node = core.node;
    if !node.repl.waiting.load(Ordering::Acquire) {
        return;
    }
    let now = unix_ms();
    let mut done = Vec::new();
    {
        let mut st = lock(&node.repl.st);
        let mut i = 0;
        while i < st.waiters.len() {
            let w = &st.waiters[i];
            let n = count_acks(&st, w.offset);
            if n >= w.replicas || (timeouts && w.deadline != 0 && now >= w.deadline) {
                let w = st.waiters.swap_remove(i);
                done.push((w, n));
            } else {
                i += 1;
            }
        }
        if st.waiters.is_empty() {
            node.repl.waiting.store(false, Ordering::Release);
        }
    }
    for (w, n) in done {
        core.send(w.shard, Msg::Reply { token: w.token, seq: w.seq, bytes: format!(":{n}\r\n").into_bytes() });
    }
}

/// The master side's cron: syncs to start, pings, timed-out replicas, the backlog's
/// time to live.
pub fn cron(node: &'static Node) {
    start_syncs(node, true);
    let (period, timeout, ttl, limits, backlog_size) = {
        let cfg = node.config();
        (
            cfg.repl_ping_replica_period.max(1),
            cfg.repl_timeout,
            cfg.repl_backlog_ttl,
            cfg.replica_output_limits(),
            cfg.repl_backlog_size,
        )
    };
    let now = unix_ms();
    let mut free_backlog = false;
    {
        let mut st = lock(&node.repl.st);
        st.limits = limits;
        st.backlog_size = backlog_size;
        let has_replicas = st.replicas.iter().any(is_replica);
        let replica_node = node.repl.is_replica.load(Ordering::Relaxed);
        if has_replicas && !replica_node && now.saturating_sub(st.last_ping_ms) >= period * 1000 {
            st.last_ping_ms = now;
            st.append(PING);
        }
        for r in st.replicas.iter_mut().filter(|r| is_replica(r) && r.phase.is_online()) {
            if timeout > 0 && !r.pre_psync && now.saturating_sub(r.ack_ms) > timeout * 1000 {
                tracing::warn!("Disconnecting timedout replica (streaming sync): {}:{}", r.ip, r.port);
                close(r);
            }
        }
        enforce_limits(&mut st);
        st.trim();
        if st.has_backlog
            && !has_replicas
            && !replica_node
            && ttl > 0
            && now.saturating_sub(st.no_replicas_since) > ttl * 1000
        {
            st.has_backlog = false;
            st.buf = Default::default();
            st.replid = crate::node::random_hex(40);
            st.clear_replid2();
            free_backlog = true;
            tracing::info!("Replication backlog freed after {ttl} seconds without connected replicas.");
        }
    }
    node.repl.more.notify_all();
    if free_backlog {
        node.repl.on.store(false, Ordering::Release);
        for s in 0..node.shard_count() {
            let mut db = node.lock_db(s);
            if !super::effects_wanted(node) {
                db.disable_effects();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(backlog: u64) -> State {
        let r = crate::repl::Repl::new(1);
        let mut st = r.st.into_inner().unwrap();
        st.backlog_size = backlog;
        st.create_backlog();
        st
    }

    fn replica(st: &mut State, id: u64, next: Option<u64>) {
        let r = handshake_of(st, id);
        r.next = next;
        r.phase = Phase::Online;
        let (tx, _rx) = std::sync::mpsc::sync_channel(1);
        r.feed = Some(tx);
    }

    #[test]
    fn the_backlog_keeps_its_size_and_what_replicas_still_need() {
        let mut st = state(10);
        st.append(b"0123456789abcdef");
        assert_eq!((st.offset, st.first(), st.buf.len()), (16, 7, 10));
        replica(&mut st, 1, Some(8));
        st.append(b"ghij");
        // The replica needs offset 8 on: the ring keeps it past its size.
        assert_eq!((st.offset, st.first()), (20, 8));
        st.replicas[0].next = Some(21);
        st.trim();
        assert_eq!((st.first(), st.buf.len()), (11, 10));
    }

    #[test]
    fn psync_continues_only_within_our_history_and_the_backlog() {
        let mut st = state(100);
        st.append(&[b'x'; 50]);
        let id = st.replid.clone();
        assert_eq!(can_continue(&st, id.as_bytes(), b"1"), Some(1));
        assert_eq!(can_continue(&st, id.as_bytes(), b"51"), Some(51), "nothing missed yet");
        assert_eq!(can_continue(&st, id.as_bytes(), b"52"), None, "ahead of us");
        assert_eq!(can_continue(&st, b"someoneelse", b"10"), None);
        assert_eq!(can_continue(&st, id.as_bytes(), b"x"), None);
        // After a promotion the old id stays valid up to the switch.
        st.shift_replid();
        st.append(&[b'y'; 10]);
        assert_eq!(can_continue(&st, id.as_bytes(), b"51"), Some(51));
        assert_eq!(can_continue(&st, id.as_bytes(), b"52"), None, "past the old history's end");
        assert_eq!(can_continue(&st, st.replid.clone().as_bytes(), b"61"), Some(61));
        // Trimmed away: a full sync.
        st.append(&[b'z'; 200]);
        assert_eq!(can_continue(&st, st.replid.clone().as_bytes(), b"61"), None);
    }

    #[test]
    fn a_replica_too_far_behind_is_closed() {
        let mut st = state(1 << 20);
        st.limits = OutputLimits { hard: 100, soft: 50, soft_secs: 1000 };
        replica(&mut st, 1, Some(1));
        replica(&mut st, 2, Some(1));
        st.append(&[b'x'; 80]);
        st.replicas[1].next = Some(81);
        enforce_limits(&mut st);
        assert!(!st.replicas[0].closing, "over soft only: not yet");
        assert!(st.replicas[0].soft_since.is_some());
        st.append(&[b'x'; 30]);
        enforce_limits(&mut st);
        assert!(st.replicas[0].closing, "over hard");
        assert!(!st.replicas[1].closing);
    }

    /// A small deterministic generator for the simulation below.
    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % n.max(1)
        }
    }

    /// One node of the simulation: its replication state (backlog, ids, offset), the
    /// stream it has applied (a replica appends what it reads, as the link does), and
    /// whom it follows.
    struct SimNode {
        st: State,
        applied: Vec<u8>,
        master: Option<usize>,
        linked: bool,
    }

    /// The PSYNC protocol's bookkeeping under a seeded schedule: a master appends to
    /// its stream, replicas read it in random pieces (`read_from`, as their threads do),
    /// links drop and come back with PSYNC of what was applied (+CONTINUE when
    /// `can_continue` says so, else a full sync of the master's whole stream), replicas
    /// fall behind the backlog, and a replica is promoted (`shift_replid`) with its
    /// siblings following it. Invariant at every step: every node's applied stream is a
    /// prefix of the one history, and its offset is that prefix's length.
    #[test]
    fn psync_bookkeeping_under_a_seeded_schedule() {
        let (mut all_partial, mut all_full, mut through_replid2) = (0, 0, 0);
        for seed in 1..=300u64 {
            let mut rng = Lcg(seed);
            let mut nodes: Vec<SimNode> = (0..3)
                .map(|i| SimNode {
                    st: state(16 + rng.below(200)),
                    applied: Vec::new(),
                    master: (i > 0).then_some(0),
                    linked: false,
                })
                .collect();
            let mut history: Vec<u8> = Vec::new();
            let (mut partial, mut full) = (0, 0);
            for step in 0..400 {
                let m = nodes.iter().position(|n| n.master.is_none()).unwrap();
                match rng.below(10) {
                    0..=3 => {
                        let n = 1 + rng.below(40) as usize;
                        let bytes: Vec<u8> = (0..n).map(|_| b'a' + rng.below(26) as u8).collect();
                        history.extend_from_slice(&bytes);
                        nodes[m].st.append(&bytes);
                        nodes[m].applied.extend_from_slice(&bytes);
                    }
                    4..=6 => {
                        // A linked replica reads a piece from its master's backlog.
                        let r = rng.below(3) as usize;
                        if nodes[r].master.is_some() && nodes[r].linked {
                            let next = nodes[r].st.offset + 1;
                            let mut chunk = Vec::new();
                            let max = 1 + rng.below(60) as usize;
                            if read_from(&nodes[m].st, next, max, &mut chunk).is_err() {
                                nodes[r].linked = false; // left the backlog: dropped
                            } else {
                                nodes[r].st.append(&chunk);
                                nodes[r].applied.extend_from_slice(&chunk);
                            }
                        }
                    }
                    7 => {
                        let r = rng.below(3) as usize;
                        nodes[r].linked = false;
                    }
                    8 => {
                        // An unlinked replica reconnects: PSYNC what it applied.
                        let r = rng.below(3) as usize;
                        if nodes[r].master.is_some() && !nodes[r].linked {
                            let (id, off) = (nodes[r].st.replid.clone(), nodes[r].st.offset);
                            let req = (off + 1).to_string();
                            match can_continue(&nodes[m].st, id.as_bytes(), req.as_bytes()) {
                                Some(from) => {
                                    assert_eq!(from, off + 1, "seed {seed} step {step}");
                                    // As the link does on +CONTINUE with a new id.
                                    let new_id = nodes[m].st.replid.clone();
                                    if new_id != id {
                                        through_replid2 += 1;
                                        nodes[r].st.replid2 = id;
                                        nodes[r].st.second_offset = off as i64 + 1;
                                        nodes[r].st.replid = new_id;
                                    }
                                    partial += 1;
                                }
                                None => {
                                    let n = &nodes[m];
                                    let (applied, offset, replid) =
                                        (n.applied.clone(), n.st.offset, n.st.replid.clone());
                                    let rep = &mut nodes[r];
                                    rep.applied = applied;
                                    rep.st.offset = offset;
                                    rep.st.replid = replid;
                                    rep.st.clear_replid2();
                                    rep.st.buf.clear();
                                    full += 1;
                                }
                            }
                            nodes[r].linked = true;
                        }
                    }
                    _ => {
                        // Failover: a replica is promoted; the others follow it.
                        let r = rng.below(3) as usize;
                        if nodes[r].master.is_some() && rng.below(4) == 0 {
                            nodes[r].st.shift_replid();
                            nodes[r].master = None;
                            // Its stream is the history from now on (what others had
                            // beyond it is lost, as asynchronous replication loses it).
                            history = nodes[r].applied.clone();
                            for (i, n) in nodes.iter_mut().enumerate() {
                                if i != r {
                                    n.master = Some(r);
                                    n.linked = false;
                                    // A demoted master offers its own history.
                                }
                            }
                        }
                    }
                }
                for (i, n) in nodes.iter().enumerate() {
                    if n.master.is_some() && !n.linked {
                        continue;
                    }
                    assert!(
                        history.starts_with(&n.applied) || n.applied.starts_with(&history),
                        "seed {seed} step {step}: node {i}'s stream diverged (applied {}, history {}, master {m}, ids {:?})",
                        n.applied.len(),
                        history.len(),
                        nodes.iter().map(|n| (n.st.replid[..4].to_string(), n.st.replid2[..4].to_string(), n.st.second_offset, n.st.offset, n.master, n.linked)).collect::<Vec<_>>()
                    );
                    assert_eq!(n.st.offset, n.applied.len() as u64, "seed {seed} step {step}: node {i}'s offset");
                }
            }
            assert!(partial + full > 0, "seed {seed}: no resync happened");
            all_partial += partial;
            all_full += full;
        }
        assert!(
            all_partial > 100 && all_full > 100 && through_replid2 > 20,
            "{all_partial} {all_full} {through_replid2}"
        );
    }
}
