//! The replica's side: REPLICAOF, the link to the master (a thread of its own, blocking
//! IO), full sync loading, the stream applied through the execution function, ACKs.

use super::{lock, State};
use crate::dispatch::{run_data, run_unit, MultiDb};
use crate::node::{unix_ms, Node, ShardId};
use ferrokv_commands::{Env, Handler, Keyspace};
use ferrokv_rdb::aof::{CommandReader, StreamError};
use ferrokv_resp::{OwnedArgs, ReplyBuf};
use ferrokv_store::effects::Records;
use ferrokv_store::Expiry;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Not connected; the link thread retries every second.
    Connect,
    Connecting,
    Handshake,
    /// Receiving the master's RDB.
    Transfer,
    Connected,
}

/// Where link generations come from. Never reused: a link thread of an earlier
/// REPLICAOF may still sleep between two connection attempts when a later one starts,
/// and it must not take the later link for its own. (A counter kept in the link itself
/// restarted at 1 after a promotion cleared the link; the old thread, waking within
/// its second, then ran a second session beside the new one, and that session, with
/// nothing cached, forced a full sync — a replica LOADING right after a failover.)
static LINK_GEN: AtomicU64 = AtomicU64::new(1);

/// The master this node follows and how the link is.
pub struct LinkInfo {
    pub host: String,
    pub port: u16,
    pub state: LinkState,
    /// Unique per REPLICAOF (from [`LINK_GEN`]): an older link thread stops.
    pub gen: u64,
    pub last_io_ms: u64,
    pub down_since_ms: u64,
    pub sync_total: u64,
    pub sync_read: u64,
    pub sync_started_ms: u64,
    /// The link's socket, to shut it down when REPLICAOF changes.
    pub fd: Option<std::os::fd::RawFd>,
    /// The history PSYNC offers: (replid, offset of the last byte applied), or None
    /// for a full sync.
    pub cached: Option<(String, u64)>,
}

impl LinkInfo {
    pub fn state_name(&self) -> &'static str {
        match self.state {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Transfer => "sync",
            LinkState::Connected => "connected",
        }
    }

    /// INFO replication's replica fields (after `role:slave`).
    pub(crate) fn info(&self, st: &State, now: u64, o: &mut String) {
        let up = self.state == LinkState::Connected;
        o.push_str(&format!(
            "master_host:{}\r\nmaster_port:{}\r\nmaster_link_status:{}\r\nmaster_last_io_seconds_ago:{}\r\n\
             master_sync_in_progress:{}\r\nslave_read_repl_offset:{}\r\nslave_repl_offset:{}\r\n",
            self.host,
            self.port,
            if up { "up" } else { "down" },
            if self.last_io_ms == 0 { -1 } else { (now.saturating_sub(self.last_io_ms) / 1000) as i64 },
            (self.state == LinkState::Transfer) as u8,
            st.offset,
            st.offset,
        ));
        if self.state == LinkState::Transfer {
            let left = self.sync_total.saturating_sub(self.sync_read);
            let perc = if self.sync_total > 0 { self.sync_read as f64 * 100.0 / self.sync_total as f64 } else { 0.0 };
            o.push_str(&format!(
                "master_sync_total_bytes:{}\r\nmaster_sync_read_bytes:{}\r\nmaster_sync_left_bytes:{}\r\n\
                 master_sync_perc:{perc:.2}\r\nmaster_sync_last_io_seconds_ago:{}\r\n",
                if self.sync_total > 0 { self.sync_total as i64 } else { -1 },
                self.sync_read,
                if self.sync_total > 0 { left as i64 } else { -1 },
                now.saturating_sub(self.last_io_ms) / 1000,
            ));
        }
        if !up {
            o.push_str(&format!(
                "master_link_down_since_seconds:{}\r\n",
                if self.down_since_ms == 0 { -1 } else { (now.saturating_sub(self.down_since_ms) / 1000) as i64 }
            ));
        }
    }
}

/// The link to the master is up (the stream flows).
pub fn link_up(node: &Node) -> bool {
    lock(&node.repl.st).link.as_ref().is_some_and(|l| l.state == LinkState::Connected)
}

/// REPLICAOF/SLAVEOF host port | NO ONE. Returns the reply's status text or an error.
pub fn replicaof(node: &'static Node, host: &[u8], port: &[u8], who: &str) -> Result<&'static str, String> {
    if node.config().cluster_enabled {
        return Err("ERR REPLICAOF not allowed in cluster mode.".into());
    }
    if host.eq_ignore_ascii_case(b"no") && port.eq_ignore_ascii_case(b"one") {
        if node.repl.is_replica.load(Ordering::Acquire) {
            promote(node);
            tracing::info!("MASTER MODE enabled (user request from '{who}')");
        }
        return Ok("OK");
    }
    let port: u16 = std::str::from_utf8(port)
        .ok()
        .and_then(|p| p.parse::<i64>().ok())
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| "ERR Invalid master port".to_string())?;
    let host = String::from_utf8_lossy(host).into_owned();
    // The `replicaof` directive starts a replica with no history to offer (PSYNC ? -1),
    // as Redis's; REPLICAOF at run time offers the node's own.
    follow(node, host, port, who, who != "config")
}

/// Makes this node a replica of `host:port` (REPLICAOF, the `replicaof` directive, or
/// the cluster telling a node whom to follow).
pub fn follow(
    node: &'static Node,
    host: String,
    port: u16,
    who: &str,
    offer_own: bool,
) -> Result<&'static str, String> {
    let gen = {
        let mut st = lock(&node.repl.st);
        if let Some(l) = &st.link {
            if l.host.eq_ignore_ascii_case(&host) && l.port == port {
                return Ok("OK Already connected to specified master");
            }
        }
        // A master turning replica offers its own history (Redis's
        // replicationCacheMasterUsingMyself): a promoted replica of ours can continue it.
        let cached = match &st.link {
            Some(l) => l.cached.clone().or_else(|| l.state_is_streaming().then(|| (st.replid.clone(), st.offset))),
            None => offer_own.then(|| (st.replid.clone(), st.offset)),
        };
        let gen = LINK_GEN.fetch_add(1, Ordering::Relaxed);
        if let Some(fd) = st.link.as_ref().and_then(|l| l.fd) {
            // SAFETY: the link thread owns `fd` and clears it under this lock first.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        st.link = Some(LinkInfo {
            host: host.clone(),
            port,
            state: LinkState::Connect,
            gen,
            last_io_ms: 0,
            down_since_ms: unix_ms(),
            sync_total: 0,
            sync_read: 0,
            sync_started_ms: 0,
            fd: None,
            cached,
        });
        // Our replicas must learn of the new history: they reconnect and resync.
        let ids: Vec<u64> = st.replicas.iter().map(|r| r.id).collect();
        drop(st);
        for id in ids {
            super::master::drop_replica(node, id);
        }
        gen
    };
    if !node.repl.is_replica.swap(true, Ordering::AcqRel) {
        set_expiry(node, Expiry::HideOnRead);
        // As Redis's replicationSetMaster: the replica's oom score.
        let _ = crate::process::set_oom_score_adj(&node.config(), true);
    }
    tracing::info!("Connecting to MASTER {host}:{port}");
    tracing::info!("REPLICAOF {host}:{port} enabled (user request from '{who}')");
    let spawned = std::thread::Builder::new().name("master-link".into()).spawn(move || run(node, gen));
    if let Err(e) = spawned {
        return Err(format!("ERR can't start the replication link: {e}"));
    }
    Ok("OK")
}

impl LinkInfo {
    fn state_is_streaming(&self) -> bool {
        self.state == LinkState::Connected
    }
}

/// REPLICAOF NO ONE (or a cluster promotion): the link stops, the data stays, and a
/// new history begins whose `replid2` lets the old master's other replicas continue.
pub fn promote(node: &Node) {
    if !node.repl.is_replica.load(Ordering::Acquire) {
        return;
    }
    {
        let mut st = lock(&node.repl.st);
        if let Some(fd) = st.link.as_ref().and_then(|l| l.fd) {
            // SAFETY: see `follow`.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        st.link = None;
        st.create_backlog();
        st.shift_replid();
        let ids: Vec<u64> = st.replicas.iter().map(|r| r.id).collect();
        drop(st);
        for id in ids {
            super::master::drop_replica(node, id);
        }
    }
    node.repl.is_replica.store(false, Ordering::Release);
    node.repl.on.store(true, Ordering::Release);
    let _ = crate::process::set_oom_score_adj(&node.config(), false);
    let all: Vec<ShardId> = (0..node.shard_count()).collect();
    for (_, mut db) in node.lock_dbs(&all) {
        db.expiry = Expiry::Delete;
        db.enable_effects();
    }
}

fn set_expiry(node: &Node, e: Expiry) {
    let all: Vec<ShardId> = (0..node.shard_count()).collect();
    for (_, mut db) in node.lock_dbs(&all) {
        db.expiry = e;
    }
}

/// The replica side's cron: nothing yet beyond what the link thread does itself.
pub fn cron(_node: &Node) {}

/// This link is still the one REPLICAOF wants.
fn current(node: &Node, gen: u64) -> bool {
    lock(&node.repl.st).link.as_ref().is_some_and(|l| l.gen == gen)
}

fn with_link(node: &Node, gen: u64, f: impl FnOnce(&mut LinkInfo)) {
    let mut st = lock(&node.repl.st);
    if let Some(l) = st.link.as_mut().filter(|l| l.gen == gen) {
        f(l);
    }
}

fn resp_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    ferrokv_rdb::aof::write_command_args(&mut out, args.iter().copied());
    out
}

/// The link thread: connect, handshake, sync, stream; again after a second on failure,
/// until REPLICAOF changes.
fn run(node: &'static Node, gen: u64) {
    while current(node, gen) && !node.shutdown.load(Ordering::Relaxed) {
        let result = session(node, gen);
        let mut st = lock(&node.repl.st);
        let Some(l) = st.link.as_mut().filter(|l| l.gen == gen) else { return };
        let was_up = l.state == LinkState::Connected;
        l.fd = None;
        l.state = LinkState::Connect;
        if was_up {
            l.down_since_ms = unix_ms();
        }
        let offset = st.offset;
        let replid = st.replid.clone();
        if let Some(l) = st.link.as_mut() {
            if was_up {
                // Offer what we applied for a partial resync (Redis's cached master).
                l.cached = Some((replid, offset));
            }
        }
        drop(st);
        match result {
            Ok(()) => {}
            Err(e) => {
                if was_up {
                    tracing::warn!("Connection with master lost: {e}");
                } else {
                    tracing::warn!("Error condition on socket for SYNC: {e}");
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

type IoResult<T> = Result<T, String>;

fn session(node: &'static Node, gen: u64) -> IoResult<()> {
    let (host, port) = {
        let st = lock(&node.repl.st);
        let l = st.link.as_ref().filter(|l| l.gen == gen).ok_or("REPLICAOF changed")?;
        (l.host.clone(), l.port)
    };
    let (timeout, masterauth, masteruser, announce_port, announce_ip, my_port) = {
        let cfg = node.config();
        (
            cfg.repl_timeout.max(1),
            cfg.masterauth.clone(),
            cfg.masteruser.clone(),
            cfg.replica_announce_port,
            cfg.replica_announce_ip.clone(),
            cfg.port,
        )
    };
    with_link(node, gen, |l| l.state = LinkState::Connecting);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .map_err(|e| format!("can't resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("can't resolve {host}"))?;
    let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(timeout)).map_err(|e| e.to_string())?;
    let _ = sock.set_nodelay(true);
    sock.set_read_timeout(Some(Duration::from_secs(timeout))).map_err(|e| e.to_string())?;
    sock.set_write_timeout(Some(Duration::from_secs(timeout))).map_err(|e| e.to_string())?;
    {
        let mut st = lock(&node.repl.st);
        match st.link.as_mut().filter(|l| l.gen == gen) {
            Some(l) => {
                l.fd = Some(sock.as_raw_fd());
                l.state = LinkState::Handshake;
                l.last_io_ms = unix_ms();
            }
            None => return Err("REPLICAOF changed".into()),
        }
    }
    tracing::info!("MASTER <-> REPLICA sync started");
    let mut w = sock.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::with_capacity(64 << 10, sock);
    let ask = |w: &mut TcpStream, r: &mut BufReader<TcpStream>, args: &[&[u8]]| -> IoResult<String> {
        w.write_all(&resp_command(args)).map_err(|e| e.to_string())?;
        read_line(r)
    };
    let pong = ask(&mut w, &mut r, &[b"PING"])?;
    if pong.starts_with('-')
        && !pong.starts_with("-NOAUTH")
        && !pong.starts_with("-NOPERM")
        && !pong.starts_with("-ERR operation not permitted")
    {
        return Err(format!("Error reply to PING from master: '{pong}'"));
    }
    if !masterauth.is_empty() {
        let reply = if masteruser.is_empty() {
            ask(&mut w, &mut r, &[b"AUTH", masterauth.as_bytes()])?
        } else {
            ask(&mut w, &mut r, &[b"AUTH", masteruser.as_bytes(), masterauth.as_bytes()])?
        };
        if reply.starts_with('-') {
            return Err(format!("Unable to AUTH to MASTER: {reply}"));
        }
    }
    let lport = if announce_port > 0 { announce_port } else { my_port as u64 }.to_string();
    let reply = ask(&mut w, &mut r, &[b"REPLCONF", b"listening-port", lport.as_bytes()])?;
    if reply.starts_with('-') {
        tracing::info!("(Non critical) Master does not understand REPLCONF listening-port: {reply}");
    }
    if !announce_ip.is_empty() {
        let _ = ask(&mut w, &mut r, &[b"REPLCONF", b"ip-address", announce_ip.as_bytes()])?;
    }
    let reply = ask(&mut w, &mut r, &[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"])?;
    if reply.starts_with('-') {
        tracing::info!("(Non critical) Master does not understand REPLCONF capa: {reply}");
    }
    let cached = lock(&node.repl.st).link.as_ref().and_then(|l| l.cached.clone());
    let reply = match &cached {
        Some((id, off)) => {
            tracing::info!("Trying a partial resynchronization (request {id}:{}).", off + 1);
            ask(&mut w, &mut r, &[b"PSYNC", id.as_bytes(), (off + 1).to_string().as_bytes()])?
        }
        None => {
            tracing::info!("Partial resynchronization not possible (no cached master)");
            ask(&mut w, &mut r, &[b"PSYNC", b"?", b"-1"])?
        }
    };
    if let Some(rest) = reply.strip_prefix("+FULLRESYNC ") {
        let mut words = rest.split_whitespace();
        let replid = words.next().unwrap_or_default().to_string();
        let offset: u64 = words.next().and_then(|o| o.parse().ok()).ok_or("bad +FULLRESYNC reply")?;
        tracing::info!("Full resync from master: {replid}:{offset}");
        full_sync(node, gen, &mut r, replid, offset)?;
    } else if let Some(rest) = reply.strip_prefix("+CONTINUE") {
        let new_id = rest.trim();
        let mut st = lock(&node.repl.st);
        let (old_id, off) = cached.clone().unwrap_or_default();
        if !new_id.is_empty() && new_id != old_id {
            // The master's history has a new id (a failover): the old one stays valid
            // up to here for our own replicas.
            st.replid2 = old_id;
            st.second_offset = off as i64 + 1;
            st.replid = new_id.to_string();
        } else {
            st.replid = old_id;
        }
        st.offset = off;
        tracing::info!("Successful partial resynchronization with master.");
    } else if reply.starts_with("-NOMASTERLINK") || reply.starts_with("-LOADING") {
        return Err(format!("Master is currently unable to PSYNC but should be in the future: {reply}"));
    } else {
        return Err(format!("Unexpected reply to PSYNC from master: {reply}"));
    }
    with_link(node, gen, |l| {
        l.state = LinkState::Connected;
        l.cached = None;
        l.last_io_ms = unix_ms();
    });
    tracing::info!("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization or finished a full one.");
    stream(node, gen, r, w)
}

fn read_line(r: &mut BufReader<TcpStream>) -> IoResult<String> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed by the master".into());
        }
        // A master preparing a sync sends bare newlines to keep the link alive.
        if line == b"\n" {
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        return Ok(text.trim_end_matches(['\r', '\n']).to_string());
    }
}

/// Receives the RDB (`$<len>` or `$EOF:<mark>`), loads it into emptied keyspaces.
fn full_sync(node: &'static Node, gen: u64, r: &mut BufReader<TcpStream>, replid: String, offset: u64) -> IoResult<()> {
    with_link(node, gen, |l| {
        l.state = LinkState::Transfer;
        l.sync_started_ms = unix_ms();
        l.sync_read = 0;
        l.sync_total = 0;
    });
    let header = read_line(r)?;
    let Some(spec) = header.strip_prefix('$') else {
        return Err(format!("Bad protocol from MASTER, the first byte is not '$': {header}"));
    };
    let eof_mark = match spec.strip_prefix("EOF:") {
        Some(mark) if mark.len() == 40 => Some(mark.as_bytes().to_vec()),
        Some(_) => return Err("bad EOF mark from master".into()),
        None => None,
    };
    let len: Option<u64> = match &eof_mark {
        Some(_) => None,
        None => Some(spec.parse().map_err(|_| format!("bad bulk length from master: {header}"))?),
    };
    match len {
        Some(len) => {
            tracing::info!("MASTER <-> REPLICA sync: receiving {len} bytes from master, loading as it arrives");
            with_link(node, gen, |l| l.sync_total = len);
        }
        None => tracing::info!(
            "MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF, loading as it arrives"
        ),
    }
    // The image is loaded as it arrives, never held whole: the old data goes first
    // (Redis's default `repl-diskless-load disabled` holds it on disk instead).
    tracing::info!("MASTER <-> REPLICA sync: Flushing old data");
    // No slot handoff between the cores while the image loads: the loader routes
    // records by the slot → shard table without the keyspace locks (a handoff gives up
    // rather than wait, see `balance::move_slot`). Taken before the keyspaces, as there.
    let _no_handoff = node.handoff_lock.lock().unwrap_or_else(|p| p.into_inner());
    let all: Vec<ShardId> = (0..node.shard_count()).collect();
    for (s, mut db) in node.lock_dbs(&all) {
        db.clear_all();
        node.shards[s].publish(&db);
    }
    // The image's stream starts in database 0 (the master selects before writing).
    node.repl.link_db.store(0, Ordering::Relaxed);
    tracing::info!("MASTER <-> REPLICA sync: Loading DB in memory");
    let limits = ferrokv_commands::families::keys::rdb_limits(&node.exec_config());
    let name = std::path::PathBuf::from(format!("<replication stream from {replid}>"));
    let mut input = Counted { inner: r, limit: len, read: 0, last: Vec::with_capacity(80) };
    let mut last_progress = Instant::now();
    node.repl.loading.store(true, Ordering::Release);
    let loaded = crate::persist::load_stream(node, &mut input, &name, &limits, &mut |read| {
        progress(node, gen, read, &mut last_progress)
    });
    node.repl.loading.store(false, Ordering::Release);
    let used = loaded.map_err(|e| format!("Failed trying to load the MASTER synchronization DB from socket: {e}"))?;
    match eof_mark {
        Some(mark) => {
            // The mark follows the image; the loader may have read part of it.
            let extra = input.read as usize - used;
            if extra > 40 {
                return Err("bytes after the image's EOF mark".into());
            }
            let mut rest = vec![0u8; 40 - extra];
            input.inner.read_exact(&mut rest).map_err(|e| e.to_string())?;
            input.remember(&rest);
            if input.last[input.last.len().saturating_sub(40)..] != mark[..] {
                return Err("the image did not end with the EOF mark".into());
            }
        }
        None => {
            let left = len.unwrap_or(0).saturating_sub(input.read);
            if left > 0 || input.read as usize != used {
                return Err(format!("the image's length does not match its bulk length ({left} bytes left)"));
            }
        }
    }
    for (_, mut db) in node.lock_dbs(&all) {
        db.expiry = Expiry::HideOnRead;
    }
    let mut st = lock(&node.repl.st);
    st.replid = replid;
    st.clear_replid2();
    st.offset = offset;
    st.buf.clear();
    st.create_backlog();
    tracing::info!("MASTER <-> REPLICA sync: Finished with success");
    Ok(())
}

/// The transfer as the loader reads it: bounded by the bulk length (`$<len>`), counting
/// what it gave and keeping the last bytes (where an `$EOF:` transfer's mark is).
struct Counted<'a> {
    inner: &'a mut BufReader<TcpStream>,
    limit: Option<u64>,
    read: u64,
    last: Vec<u8>,
}

impl Counted<'_> {
    fn remember(&mut self, bytes: &[u8]) {
        self.last.extend_from_slice(bytes);
        if self.last.len() > 80 {
            let cut = self.last.len() - 40;
            self.last.drain(..cut);
        }
    }
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = match self.limit {
            Some(l) => (l - self.read).min(buf.len() as u64) as usize,
            None => buf.len(),
        };
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        self.read += n as u64;
        let bytes = &buf[..n];
        self.remember(&bytes[bytes.len().saturating_sub(40)..]);
        Ok(n)
    }
}

fn progress(node: &Node, gen: u64, read: u64, last: &mut Instant) {
    if last.elapsed() >= Duration::from_millis(100) {
        *last = Instant::now();
        with_link(node, gen, |l| {
            l.sync_read = read;
            l.last_io_ms = unix_ms();
        });
    }
}

/// Applies the master's stream until the link breaks or REPLICAOF changes; answers
/// GETACK and acknowledges every second.
fn stream(node: &'static Node, gen: u64, mut r: BufReader<TcpStream>, mut w: TcpStream) -> IoResult<()> {
    let timeout = node.config().repl_timeout.max(1);
    r.get_ref().set_read_timeout(Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
    let mut pending: Vec<u8> = r.buffer().to_vec();
    r.consume(pending.len());
    let mut sock = r.into_inner();
    let mut buf = vec![0u8; 256 << 10];
    let mut last_ack = Instant::now();
    let mut last_data = Instant::now();
    let send_ack = |w: &mut TcpStream| -> IoResult<()> {
        let off = node.repl.offset().to_string();
        w.write_all(&resp_command(&[b"REPLCONF", b"ACK", off.as_bytes()])).map_err(|e| e.to_string())
    };
    send_ack(&mut w)?;
    // The database the master's stream selected: kept across a +CONTINUE, as Redis's
    // cached master client keeps its database.
    let mut db = node.repl.link_db.load(Ordering::Relaxed);
    // Wakes the shards that get the master's PUBLISH messages.
    let mut waker = Node::waker_ring("replication link");
    loop {
        if !current(node, gen) {
            return Ok(());
        }
        if !pending.is_empty() {
            let (used, getack) = apply(node, &pending, &mut db, &mut waker)?;
            node.repl.link_db.store(db, Ordering::Relaxed);
            pending.drain(..used);
            if getack {
                send_ack(&mut w)?;
                last_ack = Instant::now();
            }
        }
        if last_ack.elapsed() >= Duration::from_secs(1) {
            send_ack(&mut w)?;
            last_ack = Instant::now();
        }
        if last_data.elapsed() > Duration::from_secs(timeout) {
            return Err("MASTER timeout: no data nor PING received...".into());
        }
        match sock.read(&mut buf) {
            Ok(0) => return Err("connection closed by the master".into()),
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                last_data = Instant::now();
                with_link(node, gen, |l| l.last_io_ms = unix_ms());
            }
            // EINTR: the process was stopped and continued (SIGSTOP/SIGCONT), not a
            // lost link.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Applies the complete commands at the start of `data`; returns the bytes used and
/// whether the master asked for an ACK. A transaction counts only once its EXEC is
/// here: until then its bytes stay unused (re-read with more data), so the offset never
/// covers half a transaction and a resync after a drop resends it whole (Redis does not
/// advance a master client's offset inside MULTI either). What was applied goes to our
/// own backlog, so our offsets are the master's.
///
/// The master's PUBLISH / SPUBLISH (Redis propagates them outside cluster mode) go to
/// this node's subscribers, through `waker`'s shards' mailboxes.
fn apply(
    node: &Node,
    data: &[u8],
    db: &mut usize,
    waker: &mut Option<ferrokv_runtime::Ring>,
) -> IoResult<(usize, bool)> {
    let mut reader = CommandReader::new(data);
    let mut cmds: Vec<(OwnedArgs, usize)> = Vec::new();
    loop {
        match reader.next_command() {
            Ok(Some(args)) => {
                let end = reader.offset();
                cmds.push((OwnedArgs::from_slices(&args), end));
            }
            Ok(None) | Err(StreamError::Truncated { .. }) => break,
            Err(StreamError::Invalid { what, .. }) => return Err(format!("protocol error from master: {what}")),
        }
    }
    if cmds.is_empty() {
        return Ok((0, false));
    }
    let all: Vec<ShardId> = (0..node.shard_count()).collect();
    let mut ks = MultiDb::lock(node, &all);
    for (_, db) in ks.guards.iter_mut() {
        db.expiry = Expiry::Never;
    }
    let databases = ks.guards.first().map_or(1, |g| g.1.databases());
    // SELECT index, if it is one this node has (else the commands stay where they are).
    let selected = |argv: &ferrokv_resp::Args| -> Option<usize> {
        let n = std::str::from_utf8(argv.get(1)).ok()?.parse::<usize>().ok()?;
        if argv.len() == 2 && n < databases {
            Some(n)
        } else {
            tracing::warn!("the master selected database {}, which this node does not have", printable(argv.get(1)));
            None
        }
    };
    ks.select(*db);
    let cfg = node.exec_config();
    let mut out = ReplyBuf::new(ferrokv_resp::Proto::Resp2);
    let mut getack = false;
    let mut used = 0;
    let mut tx: Option<Vec<&OwnedArgs>> = None;
    for (words, end) in &cmds {
        let argv = words.args();
        let name = argv.get(0);
        let env = Env::internal(&cfg, unix_ms());
        if name.eq_ignore_ascii_case(b"multi") {
            tx = Some(Vec::new());
        } else if name.eq_ignore_ascii_case(b"exec") {
            if let Some(queued) = tx.take() {
                let mut records = Records::default();
                let start_db = *db;
                for q in queued {
                    let a = q.args();
                    if a.get(0).eq_ignore_ascii_case(b"select") {
                        if let Some(n) = selected(&a) {
                            *db = n;
                            ks.select(n);
                            records.push_args(a.iter());
                        }
                    } else if let Some(space) = published(&a) {
                        crate::pubsub::publish_from_outside(node, waker, space, a.get(1), a.get(2));
                    } else if let Some(spec) = data_spec(a.get(0), a.len()) {
                        out.clear();
                        run_data(&mut ks, spec, &a, env, &mut out, &mut records);
                    }
                }
                if *db != start_db && !records.is_empty() {
                    // Logged as a unit of its first database, it ends there too.
                    records.push_args([&b"SELECT"[..], start_db.to_string().as_bytes()].into_iter());
                }
                ks.select(start_db);
                let _ = ks.log_unit(records);
                ks.select(*db);
            }
        } else if let Some(q) = tx.as_mut() {
            q.push(words);
        } else if name.eq_ignore_ascii_case(b"replconf") {
            if argv.len() >= 2 && argv.get(1).eq_ignore_ascii_case(b"getack") {
                getack = true;
            }
        } else if name.eq_ignore_ascii_case(b"select") {
            if let Some(n) = selected(&argv) {
                *db = n;
                ks.select(n);
            }
        } else if name.eq_ignore_ascii_case(b"ping") {
        } else if let Some(space) = published(&argv) {
            crate::pubsub::publish_from_outside(node, waker, space, argv.get(1), argv.get(2));
        } else if let Some(spec) = data_spec(name, argv.len()) {
            out.clear();
            run_unit(&mut ks, spec, &argv, env, &mut out);
        } else {
            tracing::warn!("replication: ignoring '{}' from the master", printable(name));
        }
        if tx.is_none() {
            used = *end;
        }
    }
    for (_, db) in ks.guards.iter_mut() {
        db.expiry = Expiry::HideOnRead;
    }
    // Under the keyspace locks still: a snapshot cut for a replica of ours sees the
    // data and the offset move together.
    let mut st = lock(&node.repl.st);
    st.append(&data[..used]);
    if !st.has_backlog {
        st.offset += used as u64;
    }
    drop(st);
    drop(ks);
    node.repl.wake_idle();
    Ok((used, getack))
}

/// A PUBLISH / SPUBLISH from the master: its channel space.
fn published(argv: &ferrokv_resp::Args) -> Option<crate::pubsub::Space> {
    if argv.len() != 3 {
        return None;
    }
    let name = argv.get(0);
    if name.eq_ignore_ascii_case(b"publish") {
        Some(crate::pubsub::Space::Global)
    } else if name.eq_ignore_ascii_case(b"spublish") {
        Some(crate::pubsub::Space::Shard)
    } else {
        None
    }
}

fn data_spec(name: &[u8], argc: usize) -> Option<&'static ferrokv_commands::CommandSpec> {
    let spec = ferrokv_commands::lookup(name)?;
    (matches!(spec.handler, Handler::Data(_) | Handler::Blocking(..)) && spec.arity_ok(argc)).then_some(spec)
}

fn printable(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
