//! MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password |
//! AUTH2 username password] [KEYS key ...] — Redis's `migrateCommand` (cluster.c), with
//! its replies and errors, without a shard ever doing network IO.
//!
//! # The path of one MIGRATE
//!
//! 1. The client's home shard parses the command (Redis's checks, in its order), waits
//!    until the connection has no forwarded command in flight (its earlier writes to
//!    these keys have landed), then, under the keyspace locks of the keys' shards,
//!    serialises each live key as a DUMP payload with its remaining TTL. Without COPY it
//!    also *watches* each key (the WATCH version every change bumps, [`Db::watch`]).
//!    The connection parks on a barrier (as WAIT does) and the [`Job`] goes to the
//!    node's migration thread.
//! 2. The migration thread ([`Migrator`]) owns the sockets to targets, cached per
//!    `host:port` as Redis caches them (reused, closed after 10 s idle, at most 64; a
//!    failed one is dropped and the job retried once on a fresh one unless the failure
//!    was a timeout). It sends `AUTH`, `SELECT` when the target's database differs from
//!    the socket's last one, and one `RESTORE-ASKING` (`RESTORE` outside cluster mode)
//!    per key, reads the replies with blocking IO under the timeout, and hands the
//!    outcome back to the home shard's mailbox ([`Msg::MigrateDone`]), waking it.
//! 3. The home shard ([`finish`]) takes the keys' locks again. A key the target
//!    acknowledged is deleted only if its watch version is unchanged: then the target
//!    holds exactly the source's value. The deletion runs through the execution function
//!    as one `DEL` of those keys, so the AOF and replicas see DEL (Redis propagates
//!    MIGRATE as DEL) and WATCH and blocked clients hear of it.
//!
//! # Writes while a job is in flight
//!
//! Other clients keep running between steps 1 and 3, so a key may change after it was
//! serialised. Such a key is not deleted: it is serialised again (its new value, or — if
//! it is gone — a RESTORE with an absolute TTL in the past, which makes the target delete
//! its copy) and sent again with REPLACE, in another round, until a round finds every
//! acknowledged key unchanged. No write is lost: the source keeps a key until the target
//! has acknowledged its current value, and while the source has it, clients are served
//! by the source (ASK redirects only for absent keys). A key rewritten during every one
//! of [`MAX_ROUNDS`] rounds stays on the source, and MIGRATE answers TRYAGAIN
//! (redis-cli then stops; running it again moves the key). COPY needs no rounds: the
//! copy is the value as of step 1.
//!
//! A client that disconnects while its job is in flight does not stop it: the rounds
//! and deletions run to the end, only the reply is dropped.

use crate::conn::{Conn, ConnTable};
use crate::dispatch::{run_internal, Flow, Held, MultiDb, ShardCore};
use crate::msg::Msg;
use crate::node::{Node, ShardId};
use ferrokv_commands::util::eq_ic;
use ferrokv_commands::Keyspace;
use ferrokv_resp::Args;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Rounds of re-sending keys that changed while in flight before MIGRATE gives up.
pub const MAX_ROUNDS: u32 = 16;
/// Redis's `MIGRATE_SOCKET_CACHE_ITEMS` and `MIGRATE_SOCKET_CACHE_TTL`.
const CACHE_ITEMS: usize = 64;
const CACHE_TTL: Duration = Duration::from_secs(10);

const NOT_INT: &str = "ERR value is not an integer or out of range";

/// One key of a job: what to restore on the target, and the watch version it had then.
pub struct Item {
    key: Vec<u8>,
    /// `Some((ttl ms, DUMP payload))`; None: the key is gone, delete the target's copy.
    value: Option<(u64, Vec<u8>)>,
    version: u64,
}

/// One round of a MIGRATE, for the migration thread.
pub struct Job {
    home: ShardId,
    token: u64,
    seq: u64,
    host: Vec<u8>,
    port: Vec<u8>,
    db: i64,
    /// The client's database, where the keys are.
    source_db: usize,
    timeout: Duration,
    /// AUTH's password, with AUTH2's user name.
    auth: Option<(Option<Vec<u8>>, Vec<u8>)>,
    copy: bool,
    replace: bool,
    /// RESTORE-ASKING (cluster mode) or RESTORE.
    asking: bool,
    items: Vec<Item>,
    round: u32,
    /// A target's error from an earlier round: the reply, whatever later rounds say.
    first_error: Option<String>,
}

/// A job back from the migration thread: which items the target acknowledged, and the
/// error to reply (the target's first error or an IOERR), if any.
pub struct Done {
    job: Job,
    acked: Vec<bool>,
    error: Option<String>,
}

/// MIGRATE on the client's home shard: parse, serialise, hand over (see the module docs).
pub fn migrate(core: &mut ShardCore, c: &mut Conn, args: &Args, held: &Held) -> Flow {
    if matches!(held, Held::Exec(_)) {
        c.error("ERR MIGRATE inside MULTI/EXEC is not supported by ferrokv");
        return Flow::Done;
    }
    // The connection's earlier forwarded writes must land before the keys are read.
    if c.inflight() > 0 {
        return Flow::Stall;
    }
    let (mut copy, mut replace) = (false, false);
    let mut auth = None;
    let mut keys: Vec<usize> = vec![3];
    let mut j = 6;
    while j < args.len() {
        let a = args.get(j);
        let more = args.len() - 1 - j;
        if eq_ic(a, "copy") {
            copy = true;
        } else if eq_ic(a, "replace") {
            replace = true;
        } else if eq_ic(a, "auth") {
            if more == 0 {
                c.error(ferrokv_commands::util::ERR_SYNTAX);
                return Flow::Done;
            }
            auth = Some((None, args.get(j + 1).to_vec()));
            j += 1;
        } else if eq_ic(a, "auth2") {
            if more < 2 {
                c.error(ferrokv_commands::util::ERR_SYNTAX);
                return Flow::Done;
            }
            auth = Some((Some(args.get(j + 1).to_vec()), args.get(j + 2).to_vec()));
            j += 2;
        } else if eq_ic(a, "keys") {
            if !args.get(3).is_empty() {
                c.error("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string");
                return Flow::Done;
            }
            keys = (j + 1..args.len()).collect();
            break;
        } else {
            c.error(ferrokv_commands::util::ERR_SYNTAX);
            return Flow::Done;
        }
        j += 1;
    }
    // Redis reads the timeout first, then the database.
    let Some(timeout) = parse_long(args.get(5)) else {
        c.error(NOT_INT);
        return Flow::Done;
    };
    let Some(db) = parse_long(args.get(4)) else {
        c.error(NOT_INT);
        return Flow::Done;
    };
    let timeout = if timeout <= 0 { 1000 } else { timeout as u64 };
    let keys: Vec<Vec<u8>> = keys.iter().map(|&i| args.get(i).to_vec()).collect();
    let node = core.node;
    let (now, compress) = (core.now_ms, core.exec_cfg.rdb_compression);
    let items = {
        let mut ks = lock_keys(node, &keys.iter().collect::<Vec<_>>());
        ks.select(c.db);
        keys.iter()
            .filter_map(|k| {
                let db = ks.db(k);
                let value = db.read(k, now).map(|e| serialise(e, now, compress))?;
                let version = if copy { 0 } else { db.watch(k) };
                Some(Item { key: k.clone(), value: Some(value), version })
            })
            .collect::<Vec<_>>()
    };
    if items.is_empty() {
        c.reply(|r| r.simple("NOKEY"));
        return Flow::Done;
    }
    let seq = c.push_pending();
    c.barrier = Some(seq);
    node.migrate.submit(
        node,
        Job {
            home: core.id,
            token: c.token,
            seq,
            host: args.get(1).to_vec(),
            port: args.get(2).to_vec(),
            db,
            source_db: c.db,
            timeout: Duration::from_millis(timeout),
            auth,
            copy,
            replace,
            asking: node.cluster.is_some(),
            items,
            round: 0,
            first_error: None,
        },
    );
    Flow::Done
}

/// Redis's `getLongFromObjectOrReply`: a whole decimal integer.
fn parse_long(b: &[u8]) -> Option<i64> {
    ferrokv_commands::util::parse_i64(b)
}

/// A live entry as RESTORE's TTL (ms left, at least 1; 0: none) and DUMP payload.
fn serialise(e: &ferrokv_store::Entry, now: u64, compress: bool) -> (u64, Vec<u8>) {
    let ttl = if e.expire_at == 0 { 0 } else { e.expire_at.saturating_sub(now).max(1) };
    (ttl, ferrokv_store::rdb::dump(&e.value, compress))
}

/// The shards of `keys`, sorted and deduplicated (the order locks are taken in).
fn shards_of<'k>(node: &Node, keys: impl Iterator<Item = &'k Vec<u8>>) -> Vec<ShardId> {
    let mut s: Vec<ShardId> = keys.map(|k| node.shard_of_key(k)).collect();
    s.sort_unstable();
    s.dedup();
    s
}

/// The keyspaces of `keys`, locked, looked up again under the locks (a slot handoff
/// between the lookup and the locks routes again).
fn lock_keys<'k>(node: &'static Node, keys: &[&'k Vec<u8>]) -> MultiDb<'static> {
    loop {
        let shards = shards_of(node, keys.iter().copied());
        let ks = MultiDb::lock(node, &shards);
        if keys.iter().all(|k| shards.contains(&node.shard_of_key(k))) {
            return ks;
        }
    }
}

/// On the home shard, when a round came back: delete what moved, re-send what changed,
/// or answer the client (see the module docs).
pub fn finish(core: &mut ShardCore, done: Done, conns: &mut ConnTable, touched: &mut Vec<usize>) {
    let Done { mut job, acked, error } = done;
    let node = core.node;
    let now = core.now_ms;
    let compress = core.exec_cfg.rdb_compression;
    let mut ks = lock_keys(node, &job.items.iter().map(|i| &i.key).collect::<Vec<_>>());
    ks.select(job.source_db);
    let (mut moved, mut changed) = (Vec::new(), Vec::new());
    for (item, ok) in job.items.iter().zip(&acked) {
        if job.copy {
            continue;
        }
        let db = ks.db(&item.key);
        let same = db.watch_version(&item.key) == item.version;
        db.unwatch(&item.key);
        match (ok, same) {
            (false, _) => {}
            (true, true) if item.value.is_some() => moved.push(item.key.clone()),
            (true, true) => {}
            (true, false) => changed.push(item.key.clone()),
        }
    }
    if !moved.is_empty() {
        // One DEL of the moved keys through the execution function: propagated and
        // signalled as any DEL (Redis rewrites MIGRATE as DEL for the AOF and replicas).
        let mut words: Vec<&[u8]> = vec![b"DEL"];
        words.extend(moved.iter().map(|k| k.as_slice()));
        run_internal(&mut ks, &words, &core.exec_cfg, now);
    }
    let io_failed = error.as_deref().is_some_and(|e| e.starts_with("IOERR"));
    if !changed.is_empty() && !io_failed && job.round + 1 < MAX_ROUNDS {
        job.items = changed
            .into_iter()
            .map(|k| {
                let db = ks.db(&k);
                let value = db.read(&k, now).map(|e| serialise(e, now, compress));
                let version = db.watch(&k);
                Item { key: k, value, version }
            })
            .collect();
        drop(ks);
        job.round += 1;
        job.first_error = job.first_error.take().or(error);
        node.migrate.submit(node, job);
        return;
    }
    drop(ks);
    let reply = match job.first_error.or(error) {
        Some(e) => e,
        None if !changed.is_empty() && !io_failed => {
            "TRYAGAIN Keys kept changing while being migrated; try again".to_string()
        }
        None => String::new(),
    };
    let bytes = if reply.is_empty() { b"+OK\r\n".to_vec() } else { format!("-{reply}\r\n").into_bytes() };
    if !reply.is_empty() {
        node.shards[core.id].count_error(&bytes);
    }
    let Some((idx, c)) = conns.by_token(job.token) else { return };
    c.complete(job.seq, bytes);
    core.unblock_and_resume(c, job.seq);
    touched.push(idx);
}

/// The node's migration thread, started with the first MIGRATE.
#[derive(Default)]
pub struct Migrator {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
}

impl Migrator {
    fn submit(&self, node: &'static Node, job: Job) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let tx = jobs.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel();
            let spawned = std::thread::Builder::new().name("migrate".into()).spawn(move || Worker::new(node).run(rx));
            if let Err(e) = spawned {
                // Without the thread every MIGRATE would hang: stop as a failed allocation would.
                panic!("cannot start the migration thread: {e}");
            }
            tx
        });
        if let Err(mpsc::SendError(job)) = tx.send(job) {
            tracing::error!("the migration thread is gone; MIGRATE of {} keys not run", job.items.len());
        }
    }
}

/// A cached connection to a target (Redis's `migrateCachedSocket`).
struct Cached {
    conn: BufReader<TcpStream>,
    /// The database the last successful job selected (-1: unknown, SELECT again).
    last_db: i64,
    last_use: Instant,
}

struct Worker {
    node: &'static Node,
    sockets: HashMap<Vec<u8>, Cached>,
    /// A ring of our own, only to wake a sleeping home shard (MSG_RING).
    waker: Option<ferrokv_runtime::Ring>,
}

/// How a round's IO failed, for Redis's IOERR texts and its retry rule.
enum SocketError {
    Connect,
    Write { timed_out: bool },
    Read { timed_out: bool, replies: usize },
}

impl Worker {
    fn new(node: &'static Node) -> Self {
        let waker = Node::waker_ring("migration thread");
        Worker { node, sockets: HashMap::new(), waker }
    }

    fn run(mut self, rx: mpsc::Receiver<Job>) {
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(job) => {
                    let done = self.run_job(job);
                    self.deliver(done);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            self.sockets.retain(|_, cs| now.duration_since(cs.last_use) <= CACHE_TTL);
        }
    }

    /// Hands the outcome to the home shard's mailbox (the lane of outside threads).
    fn deliver(&mut self, done: Done) {
        let node = self.node;
        let home = done.job.home;
        node.send_from_outside(home, vec![Msg::MigrateDone(Box::new(done))], &mut self.waker);
    }

    /// A round of a job, with Redis's one retry on a fresh socket.
    fn run_job(&mut self, job: Job) -> Done {
        let mut acked = vec![false; job.items.len()];
        let mut may_retry = true;
        loop {
            match self.attempt(&job, &mut acked) {
                Ok(error) => return Done { job, acked, error },
                Err(e) => {
                    let name = cache_name(&job);
                    self.sockets.remove(&name);
                    let (text, timed_out, retry_ok) = match e {
                        SocketError::Connect => {
                            // Redis replies at once when the connect fails.
                            let error = Some("IOERR error or timeout connecting to the client".to_string());
                            return Done { job, acked, error };
                        }
                        SocketError::Write { timed_out } => ("writing", timed_out, true),
                        SocketError::Read { timed_out, replies } => ("reading", timed_out, replies == 0),
                    };
                    if may_retry && retry_ok && !timed_out {
                        may_retry = false;
                        continue;
                    }
                    let error = Some(format!("IOERR error or timeout {text} to target instance"));
                    return Done { job, acked, error };
                }
            }
        }
    }

    /// Sends the job's commands on the cached socket and reads the replies. Ok carries
    /// the target's first error reply, if any.
    fn attempt(&mut self, job: &Job, acked: &mut [bool]) -> Result<Option<String>, SocketError> {
        let name = cache_name(job);
        if !self.sockets.contains_key(&name) {
            if self.sockets.len() >= CACHE_ITEMS {
                if let Some(k) = self.sockets.keys().next().cloned() {
                    self.sockets.remove(&k);
                }
            }
            let conn = connect(&job.host, &job.port, job.timeout)?;
            self.sockets
                .insert(name.clone(), Cached { conn: BufReader::new(conn), last_db: -1, last_use: Instant::now() });
        }
        let cs = self.sockets.get_mut(&name).ok_or(SocketError::Connect)?;
        cs.last_use = Instant::now();
        let select = cs.last_db != job.db;
        let cmd = encode_round(job, select);
        let stream = cs.conn.get_mut();
        for chunk in cmd.chunks(64 * 1024) {
            if let Err(e) = stream.write_all(chunk) {
                return Err(SocketError::Write { timed_out: is_timeout(&e) });
            }
        }
        let mut line = Vec::new();
        let read = |cs: &mut Cached, line: &mut Vec<u8>, replies: usize| -> Result<(), SocketError> {
            line.clear();
            match cs.conn.read_until(b'\n', line) {
                Ok(n) if n > 0 => Ok(()),
                Ok(_) => Err(SocketError::Read { timed_out: false, replies }),
                Err(e) => Err(SocketError::Read { timed_out: is_timeout(&e), replies }),
            }
        };
        let mut setup_error = None;
        if job.auth.is_some() {
            read(cs, &mut line, 0)?;
            setup_error = error_text(&line);
        }
        if select {
            read(cs, &mut line, 0)?;
            setup_error = setup_error.or_else(|| error_text(&line));
        }
        let mut error = None;
        for j in 0..job.items.len() {
            if let Err(e) = read(cs, &mut line, j) {
                // Redis deletes what was acknowledged before the socket failed, closes
                // the socket, and replies the target's error if it had one, else IOERR.
                if error.is_some() {
                    self.sockets.remove(&name);
                    return Ok(error);
                }
                return Err(e);
            }
            match setup_error.clone().or_else(|| error_text(&line)) {
                Some(e) => {
                    if error.is_none() {
                        error = Some(format!("ERR Target instance replied with error: {e}"));
                    }
                }
                None => acked[j] = true,
            }
        }
        cs.last_db = if error.is_some() { -1 } else { job.db };
        Ok(error)
    }
}

/// The cache key: host and port as the client wrote them, as Redis's.
fn cache_name(job: &Job) -> Vec<u8> {
    let mut name = job.host.clone();
    name.push(b':');
    name.extend_from_slice(&job.port);
    name
}

/// Connects within `timeout` (Redis's `connBlockingConnect`; the port as `atoi` reads
/// it). As there, only an address that cannot even be tried fails the connect; a refused
/// or timed-out connection shows up as the first write's failure.
fn connect(host: &[u8], port: &[u8], timeout: Duration) -> Result<TcpStream, SocketError> {
    let host = std::str::from_utf8(host).map_err(|_| SocketError::Connect)?;
    let port = std::str::from_utf8(port).map_err(|_| SocketError::Connect)?;
    let digits: String = port.trim_start().chars().take_while(char::is_ascii_digit).collect();
    let port: u16 = digits.parse().unwrap_or(0);
    let addrs: Vec<_> = (host, port).to_socket_addrs().map_err(|_| SocketError::Connect)?.collect();
    let addr = addrs.first().ok_or(SocketError::Connect)?;
    match TcpStream::connect_timeout(addr, timeout) {
        Ok(s) => {
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(timeout));
            let _ = s.set_write_timeout(Some(timeout));
            Ok(s)
        }
        Err(e) => Err(SocketError::Write { timed_out: is_timeout(&e) }),
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

/// An error reply's text without its `-` and line end.
fn error_text(line: &[u8]) -> Option<String> {
    let rest = line.strip_prefix(b"-")?;
    let end = rest.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(rest.len());
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// AUTH, SELECT when asked, then one RESTORE per item, as one buffer.
fn encode_round(job: &Job, select: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some((user, pass)) = &job.auth {
        match user {
            Some(u) => command(&mut out, &[b"AUTH", u, pass]),
            None => command(&mut out, &[b"AUTH", pass]),
        }
    }
    if select {
        command(&mut out, &[b"SELECT", job.db.to_string().as_bytes()]);
    }
    let name: &[u8] = if job.asking { b"RESTORE-ASKING" } else { b"RESTORE" };
    // A later round re-sends keys that changed: it must overwrite the earlier copy.
    let replace = job.replace || job.round > 0;
    for item in &job.items {
        match &item.value {
            Some((ttl, payload)) => {
                let ttl = ttl.to_string();
                let mut words: Vec<&[u8]> = vec![name, &item.key, ttl.as_bytes(), payload];
                if replace {
                    words.push(b"REPLACE");
                }
                command(&mut out, &words);
            }
            None => {
                // The key is gone from the source: an absolute expiry in the past makes
                // RESTORE delete the target's copy and restore nothing.
                let empty = ferrokv_rdb::dump::dump_string(b"");
                command(&mut out, &[name, &item.key, b"1", &empty, b"REPLACE", b"ABSTTL"]);
            }
        }
    }
    out
}

fn command(out: &mut Vec<u8>, words: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", words.len()).as_bytes());
    for w in words {
        out.extend_from_slice(format!("${}\r\n", w.len()).as_bytes());
        out.extend_from_slice(w);
        out.extend_from_slice(b"\r\n");
    }
}
