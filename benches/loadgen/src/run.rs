//! The load itself: worker threads, each an epoll loop over its clients' connections.
//!
//! A *client* sends each request to the connection of the endpoint that serves its
//! key's slot; in cluster mode a client has one connection per endpoint it has used,
//! all opened before the clock starts for the endpoints CLUSTER SLOTS named. Each
//! connection keeps up to `pipeline` requests in flight (redis-benchmark's and
//! memtier's `-P`, so a shard sees the same pipelines whether a node has one endpoint
//! or one per core); with `client_window` the bound is on the client's total instead.
//! When a reply completes a request the client draws the next one at once, so the
//! windows stay full (memtier's way, not redis-benchmark's send-P-then-wait-for-P).
//! Keys are drawn in order from the distribution whatever shard they fall on — a
//! request whose connection is full waits, and its client with it — so a skewed
//! distribution loads the shards unevenly, as real traffic would.
//!
//! Redirects: `MOVED` updates the slot map (that slot, this thread's copy) and sends
//! the request again where it now belongs; `ASK` sends `ASKING` and the request to the
//! named endpoint without touching the map; `TRYAGAIN` sends it again. A request's
//! latency runs from its first send to its final reply. A request redirected more
//! than [`MAX_ATTEMPTS`] times, a connection closed under it, or any other error reply
//! counts as an error. Nothing is retried after the run's bound is reached except
//! redirects of requests already issued.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use ferrokv_resp::{parse_value, Value};
use hdrhistogram::Histogram;

use crate::keys::{Distribution, KeyGen, Rng, Zipf};
use crate::reply::{frame, Kind};
use crate::slots::{key_slot, parse_redirect, Redirect, SlotMap};

/// Redirects one request may follow before it counts as an error.
pub const MAX_ATTEMPTS: u8 = 16;
/// Error texts kept for the report.
const KEPT_ERRORS: usize = 5;
/// Latencies are recorded in microseconds up to this (one minute).
const MAX_LATENCY_US: u64 = 60_000_000;

/// How the server's topology is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// CLUSTER SLOTS; a server that answers it with an error is standalone.
    Auto,
    /// CLUSTER SLOTS must work.
    Cluster,
    /// One endpoint, no slot routing; MOVED and ASK are errors (what a non-cluster
    /// client such as redis-benchmark sees).
    Standalone,
}

/// Which key distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DistKind {
    Uniform,
    Zipf(f64),
    Sequential,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub clients: usize,
    pub threads: usize,
    pub pipeline: usize,
    /// Stop after this many requests (in total)...
    pub requests: Option<u64>,
    /// ...or after this long, whichever comes first (one of them is set).
    pub duration: Option<Duration>,
    pub keys: u64,
    pub dist: DistKind,
    pub hash_tags: u64,
    pub key_prefix: String,
    pub value_size: usize,
    /// SETs : GETs.
    pub ratio: (u32, u32),
    pub mode: Mode,
    /// Start from every slot on the seed and learn the map from MOVED only.
    pub learn_slots: bool,
    pub seed: u64,
    /// No reply for this long while requests are in flight ends the run with errors.
    pub timeout: Duration,
    /// `pipeline` bounds the requests in flight of a whole client (over all its
    /// connections) instead of those of each connection.
    pub client_window: bool,
    /// Open loop: issue requests at this many per second in total (each client still
    /// keeps at most `pipeline` in flight); `None`: each client sends as soon as its
    /// window has room (closed loop).
    pub rate: Option<f64>,
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    pub cluster: bool,
    /// Endpoints used: from CLUSTER SLOTS, then any learned from MOVED and ASK.
    pub endpoints: Vec<String>,
    pub stats: Stats,
    pub seconds: f64,
    /// Per-request latency in microseconds.
    pub latency: Histogram<u64>,
    pub client_cpu_seconds: f64,
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Requests completed, with or without error.
    pub requests: u64,
    pub errors: u64,
    pub sets: u64,
    pub gets: u64,
    /// GETs answered with nil.
    pub misses: u64,
    pub moved: u64,
    pub ask: u64,
    pub tryagain: u64,
    /// Connections closed under the generator (and reopened when needed).
    pub closed: u64,
    pub first_errors: Vec<String>,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.sets += o.sets;
        self.gets += o.gets;
        self.misses += o.misses;
        self.moved += o.moved;
        self.ask += o.ask;
        self.tryagain += o.tryagain;
        self.closed += o.closed;
        for e in &o.first_errors {
            if self.first_errors.len() < KEPT_ERRORS {
                self.first_errors.push(e.clone());
            }
        }
    }

    fn error(&mut self, text: String) {
        self.requests += 1;
        self.errors += 1;
        if self.first_errors.len() < KEPT_ERRORS {
            self.first_errors.push(text);
        }
    }
}

impl Report {
    pub fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.stats.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The latency at `quantile` (0..=1) in milliseconds.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// Runs the load described by `cfg`.
pub fn run(cfg: &Config) -> Result<Report, String> {
    if cfg.clients == 0 || cfg.pipeline == 0 || cfg.keys == 0 {
        return Err("clients, pipeline and keys must be at least 1".into());
    }
    if cfg.requests.is_none() && cfg.duration.is_none() {
        return Err("give a request count or a duration".into());
    }
    if cfg.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err("the rate must be a positive number of requests per second".into());
    }
    if cfg.ratio == (0, 0) {
        return Err("the SET:GET ratio must not be 0:0".into());
    }
    let zipf = match cfg.dist {
        DistKind::Zipf(s) => Some(Zipf::new(cfg.keys, s)?),
        _ => None,
    };
    let (cluster, map) = discover(cfg)?;
    let threads = cfg.threads.clamp(1, cfg.clients);
    let barrier = Barrier::new(threads);
    let cpu_before = cpu_seconds();
    let results: Vec<Result<Finished, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let share = Share { index: t, of: threads, zipf: zipf.clone() };
                let map = map.clone();
                let barrier = &barrier;
                scope.spawn(move || Worker::new(cfg, cluster, map, share)?.run(barrier))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a worker thread panicked".into()))).collect()
    });
    let client_cpu_seconds = cpu_seconds() - cpu_before;
    let mut stats = Stats::default();
    let mut latency = new_histogram();
    let (mut start, mut end): (Option<Instant>, Option<Instant>) = (None, None);
    let mut endpoints: Vec<String> = map.endpoints().to_vec();
    for r in results {
        let f = r?;
        start = Some(start.map_or(f.start, |x| x.min(f.start)));
        end = Some(end.map_or(f.end, |x| x.max(f.end)));
        stats.add(&f.stats);
        for e in f.endpoints {
            if !endpoints.contains(&e) {
                endpoints.push(e);
            }
        }
        latency.add(&f.latency).map_err(|e| format!("merging histograms: {e}"))?;
    }
    let seconds = match (start, end) {
        (Some(s), Some(e)) => e.saturating_duration_since(s).as_secs_f64(),
        _ => 0.0,
    };
    Ok(Report { cluster, endpoints, stats, seconds, latency, client_cpu_seconds })
}

/// One worker's share of the run.
struct Finished {
    start: Instant,
    /// The last completion (`start` when there was none).
    end: Instant,
    stats: Stats,
    latency: Histogram<u64>,
    /// The endpoints the worker's map knew at the end (learned from MOVED/ASK too).
    endpoints: Vec<String>,
}

/// Requests due `elapsed` after the start at `rate` per second: the first at once, then
/// one every 1/rate seconds.
pub fn due(elapsed: Duration, rate: f64) -> u64 {
    (elapsed.as_secs_f64() * rate) as u64 + 1
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// This process's user + system CPU time.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes only into the struct it is given, which lives on this
    // stack frame; RUSAGE_SELF is a valid `who`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Cluster or standalone, and the initial slot map.
fn discover(cfg: &Config) -> Result<(bool, SlotMap), String> {
    let seed = endpoint(&cfg.host, cfg.port);
    if cfg.mode == Mode::Standalone {
        return Ok((false, SlotMap::single(&seed)));
    }
    let reply = call(&seed, &[b"CLUSTER", b"SLOTS"])?;
    match reply {
        Value::Error(e) if cfg.mode == Mode::Auto && !cfg.learn_slots => {
            if !e.contains("cluster support disabled") {
                eprintln!("ferrokv-load: CLUSTER SLOTS answered {e:?}; running as a standalone client");
            }
            Ok((false, SlotMap::single(&seed)))
        }
        Value::Error(e) => Err(format!("CLUSTER SLOTS on {seed}: {e}")),
        _ if cfg.learn_slots => Ok((true, SlotMap::single(&seed))),
        reply => Ok((true, SlotMap::from_cluster_slots(&reply, &cfg.host)?)),
    }
}

fn endpoint(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// One command on a fresh blocking connection, for discovery.
fn call(addr: &str, args: &[&[u8]]) -> Result<Value, String> {
    let mut s = connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    push_command(&mut out, args);
    s.write_all(&out).map_err(|e| format!("{addr}: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        if let Some((v, _)) = parse_value(&buf).map_err(|e| format!("{addr}: {}", e.0))? {
            return Ok(v);
        }
        let n = s.read(&mut chunk).map_err(|e| format!("{addr}: {e}"))?;
        if n == 0 {
            return Err(format!("{addr}: connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn connect(addr: &str) -> Result<TcpStream, String> {
    let resolved: SocketAddr = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let s =
        TcpStream::connect_timeout(&resolved, Duration::from_secs(5)).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(s)
}

fn push_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    crate::keys::push_decimal(out, args.len() as u64, 1);
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        crate::keys::push_decimal(out, a.len() as u64, 1);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Get,
    Set,
    /// The ASKING sent before a request that got ASK; its reply completes nothing.
    Asking,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    start: Instant,
    op: Op,
    key: u64,
    attempts: u8,
}

enum Outcome {
    Value,
    Nil,
    Error(String),
}

struct Conn {
    stream: TcpStream,
    client: usize,
    endpoint: u16,
    rbuf: Vec<u8>,
    rlen: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    pending: VecDeque<Pending>,
    /// Waiting for EPOLLOUT (a send did not take everything).
    out_armed: bool,
    /// In `Worker::dirty`.
    queued: bool,
}

struct Client {
    /// Connection (slab index) per endpoint number.
    conns: Vec<Option<usize>>,
    in_flight: usize,
    /// In `Worker::touched`.
    touched: bool,
    /// A request drawn while its connection's window was full, sent first when it frees.
    held: Option<Pending>,
}

/// An epoll instance, closed on drop.
struct Epoll(RawFd);

impl Epoll {
    fn new() -> Result<Epoll, String> {
        // SAFETY: plain system call; the descriptor is owned by the returned value.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(format!("epoll_create1: {}", io::Error::last_os_error()));
        }
        Ok(Epoll(fd))
    }

    fn ctl(&self, op: i32, fd: RawFd, events: u32, token: usize) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token as u64 };
        // SAFETY: `ev` outlives the call; `fd` is a socket the caller owns.
        if unsafe { libc::epoll_ctl(self.0, op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        // SAFETY: the kernel writes at most `events.len()` entries into `events`.
        let n = unsafe { libc::epoll_wait(self.0, events.as_mut_ptr(), events.len() as i32, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(0) } else { Err(e) };
        }
        Ok(n as usize)
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: the descriptor was opened by `new` and is closed only here.
        unsafe { libc::close(self.0) };
    }
}

const IN: u32 = libc::EPOLLIN as u32;
const OUT: u32 = libc::EPOLLOUT as u32;

struct Worker<'a> {
    cfg: &'a Config,
    cluster: bool,
    map: SlotMap,
    epoll: Epoll,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    clients: Vec<Client>,
    keygen: KeyGen,
    rng: Rng,
    value: Vec<u8>,
    budget: Option<u64>,
    issued: u64,
    in_flight: usize,
    deadline: Option<Instant>,
    /// Requests per second of this thread when paced (`--rate`), and where the clock
    /// started.
    rate: Option<f64>,
    start: Instant,
    /// The client a paced refill starts from.
    next_client: usize,
    stats: Stats,
    hist: Histogram<u64>,
    /// Connections with output to send.
    dirty: Vec<usize>,
    /// Clients whose window may have room.
    touched: Vec<usize>,
    outcomes: Vec<(Pending, Outcome)>,
    name: Vec<u8>,
    last_completion: Option<Instant>,
}

/// Which part of the run a worker does: thread `index` of `of`.
struct Share {
    index: usize,
    of: usize,
    zipf: Option<Zipf>,
}

impl<'a> Worker<'a> {
    fn new(cfg: &'a Config, cluster: bool, map: SlotMap, share: Share) -> Result<Worker<'a>, String> {
        let (t, threads) = (share.index as u64, share.of as u64);
        let dist = match (cfg.dist, share.zipf) {
            (DistKind::Zipf(_), Some(z)) => Distribution::Zipf(z),
            (DistKind::Sequential, _) => Distribution::Sequential { next: t, step: threads },
            _ => Distribution::Uniform,
        };
        let keygen =
            KeyGen { keys: cfg.keys, dist, hash_tags: cfg.hash_tags, prefix: cfg.key_prefix.as_bytes().to_vec() };
        let clients = (share.index..cfg.clients).step_by(share.of).count();
        let budget = cfg.requests.map(|n| n / threads + u64::from(t < n % threads));
        Ok(Worker {
            cfg,
            cluster,
            map,
            epoll: Epoll::new()?,
            conns: Vec::new(),
            free: Vec::new(),
            clients: (0..clients)
                .map(|_| Client { conns: Vec::new(), in_flight: 0, touched: false, held: None })
                .collect(),
            keygen,
            rng: Rng::new(cfg.seed.wrapping_mul(1000).wrapping_add(t)),
            value: vec![b'x'; cfg.value_size],
            budget,
            issued: 0,
            in_flight: 0,
            deadline: None,
            rate: cfg.rate.map(|r| r / threads as f64),
            start: Instant::now(),
            next_client: 0,
            stats: Stats::default(),
            hist: new_histogram(),
            dirty: Vec::new(),
            touched: Vec::new(),
            outcomes: Vec::new(),
            name: Vec::new(),
            last_completion: None,
        })
    }

    fn run(&mut self, barrier: &Barrier) -> Result<Finished, String> {
        // Connections before the clock starts: every client to every endpoint known.
        let endpoints = if self.cluster { self.map.endpoints().len() } else { 1 };
        let setup = (0..self.clients.len())
            .try_for_each(|c| (0..endpoints).try_for_each(|e| self.conn_for(c, e as u16).map(drop)));
        barrier.wait();
        setup?;
        let start = Instant::now();
        self.start = start;
        self.deadline = self.cfg.duration.map(|d| start + d);
        self.touched = (0..self.clients.len()).collect();
        self.clients.iter_mut().for_each(|c| c.touched = true);
        self.refill(start)?;
        self.flush();
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut last_progress = start;
        loop {
            let now = Instant::now();
            if self.in_flight == 0 && !self.can_issue(now) {
                break;
            }
            let wait_ms = if self.rate.is_some() { 1 } else { 100 };
            let n = self.epoll.wait(&mut events, wait_ms).map_err(|e| format!("epoll_wait: {e}"))?;
            let before = self.stats.requests + self.stats.moved + self.stats.ask + self.stats.tryagain;
            for ev in &events[..n] {
                let (token, flags) = (ev.u64 as usize, ev.events);
                if flags & !OUT != 0 {
                    self.on_readable(token)?;
                }
                if flags & OUT != 0 {
                    self.mark_dirty(token);
                }
            }
            let now = Instant::now();
            self.refill(now)?;
            self.flush();
            if self.stats.requests + self.stats.moved + self.stats.ask + self.stats.tryagain != before {
                last_progress = now;
            } else if self.in_flight > 0 && now.duration_since(last_progress) > self.cfg.timeout {
                self.abandon(format!("no reply for {:?}", self.cfg.timeout));
                break;
            }
        }
        let end = self.last_completion.unwrap_or(start);
        let stats = std::mem::take(&mut self.stats);
        let latency = std::mem::replace(&mut self.hist, new_histogram());
        Ok(Finished { start, end, stats, latency, endpoints: self.map.endpoints().to_vec() })
    }

    fn can_issue(&self, now: Instant) -> bool {
        self.budget.is_none_or(|b| self.issued < b) && self.deadline.is_none_or(|d| now < d)
    }

    /// Tops up the windows of the clients touched since the last call.
    fn refill(&mut self, now: Instant) -> Result<(), String> {
        let touched = std::mem::take(&mut self.touched);
        for &c in &touched {
            self.clients[c].touched = false;
        }
        match self.rate {
            None => touched.iter().try_for_each(|&c| self.fill(c, now))?,
            // Paced: any client with room may take the requests that came due, starting
            // from a different one each time so that none is favoured.
            Some(_) => {
                let n = self.clients.len();
                self.next_client = (self.next_client + 1) % n;
                (0..n).try_for_each(|i| self.fill((self.next_client + i) % n, now))?;
            }
        }
        self.touched = touched;
        self.touched.clear();
        Ok(())
    }

    /// Issues requests from client `c` while its window has room, the run's bound allows
    /// and (paced) they are due. A paced request's latency runs from when it was due,
    /// so time spent waiting for a free window counts (no coordinated omission).
    fn fill(&mut self, c: usize, now: Instant) -> Result<(), String> {
        let pipeline = self.cfg.pipeline;
        loop {
            let p = match self.clients[c].held.take() {
                Some(p) => p,
                None => {
                    if !self.can_issue(now) || (self.cfg.client_window && self.clients[c].in_flight >= pipeline) {
                        break;
                    }
                    match self.draw(now) {
                        Some(p) => p,
                        None => break,
                    }
                }
            };
            let endpoint = self.route(p.key);
            if !self.cfg.client_window {
                let queued = match self.clients[c].conns.get(usize::from(endpoint)) {
                    Some(Some(ci)) => self.conns[*ci].as_ref().map_or(0, |conn| conn.pending.len()),
                    _ => 0,
                };
                if queued >= pipeline {
                    // Its connection's window is full: the client waits for it (keys
                    // keep their order, so a hot endpoint slows its clients down).
                    self.clients[c].held = Some(p);
                    break;
                }
            }
            self.in_flight += 1;
            self.clients[c].in_flight += 1;
            self.send(c, p, Some(endpoint), false)?;
        }
        Ok(())
    }

    /// The next request, or `None` when a paced run has none due yet.
    fn draw(&mut self, now: Instant) -> Option<Pending> {
        let start = match self.rate {
            None => now,
            Some(rate) => {
                if self.issued >= due(now.saturating_duration_since(self.start), rate) {
                    return None;
                }
                self.start + Duration::from_secs_f64(self.issued as f64 / rate)
            }
        };
        let (sets, gets) = self.cfg.ratio;
        let op = if gets == 0 || (sets > 0 && self.rng.below(u64::from(sets + gets)) < u64::from(sets)) {
            Op::Set
        } else {
            Op::Get
        };
        let key = self.keygen.next(&mut self.rng);
        self.issued += 1;
        Some(Pending { start, op, key, attempts: 0 })
    }

    /// The endpoint serving `key` by the current map (0 when standalone).
    fn route(&mut self, key: u64) -> u16 {
        if !self.cluster {
            return 0;
        }
        self.name.clear();
        self.keygen.name(key, &mut self.name);
        self.map.owner(key_slot(&self.name))
    }

    /// Queues request `p` of client `c` on the connection to `to` (default: the owner of
    /// the key's slot), preceded by ASKING when `asking`.
    fn send(&mut self, c: usize, p: Pending, to: Option<u16>, asking: bool) -> Result<(), String> {
        self.name.clear();
        self.keygen.name(p.key, &mut self.name);
        let endpoint = match to {
            Some(e) => e,
            None if self.cluster => self.map.owner(key_slot(&self.name)),
            None => 0,
        };
        let ci = self.conn_for(c, endpoint)?;
        let conn = self.conns[ci].as_mut().expect("live connection");
        if asking {
            push_command(&mut conn.wbuf, &[b"ASKING"]);
            conn.pending.push_back(Pending { op: Op::Asking, ..p });
        }
        match p.op {
            Op::Set => push_command(&mut conn.wbuf, &[b"SET", &self.name, &self.value]),
            Op::Get => push_command(&mut conn.wbuf, &[b"GET", &self.name]),
            Op::Asking => push_command(&mut conn.wbuf, &[b"ASKING"]),
        }
        conn.pending.push_back(p);
        self.mark_dirty(ci);
        Ok(())
    }

    fn mark_dirty(&mut self, ci: usize) {
        if let Some(conn) = self.conns.get_mut(ci).and_then(Option::as_mut) {
            if !conn.queued {
                conn.queued = true;
                self.dirty.push(ci);
            }
        }
    }

    /// Client `c`'s connection to `endpoint`, opened when it has none.
    fn conn_for(&mut self, c: usize, endpoint: u16) -> Result<usize, String> {
        let e = usize::from(endpoint);
        if let Some(Some(ci)) = self.clients[c].conns.get(e) {
            return Ok(*ci);
        }
        let addr = self.map.endpoints()[e].clone();
        let stream = connect(&addr)?;
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        let conn = Conn {
            stream,
            client: c,
            endpoint,
            rbuf: vec![0; 16384],
            rlen: 0,
            wbuf: Vec::new(),
            wpos: 0,
            pending: VecDeque::new(),
            out_armed: false,
            queued: false,
        };
        let ci = match self.free.pop() {
            Some(i) => i,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        self.epoll.ctl(libc::EPOLL_CTL_ADD, conn.stream.as_raw_fd(), IN, ci).map_err(|e| format!("epoll_ctl: {e}"))?;
        self.conns[ci] = Some(conn);
        let slots = &mut self.clients[c].conns;
        if slots.len() <= e {
            slots.resize(e + 1, None);
        }
        slots[e] = Some(ci);
        Ok(ci)
    }

    fn on_readable(&mut self, ci: usize) -> Result<(), String> {
        let Some(conn) = self.conns.get_mut(ci).and_then(Option::as_mut) else { return Ok(()) };
        let mut closed = None;
        loop {
            if conn.rbuf.len() - conn.rlen < 4096 {
                let grown = conn.rbuf.len() * 2;
                conn.rbuf.resize(grown, 0);
            }
            match conn.stream.read(&mut conn.rbuf[conn.rlen..]) {
                Ok(0) => {
                    closed = Some("connection closed by the server".to_string());
                    break;
                }
                Ok(n) => conn.rlen += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    closed = Some(format!("read: {e}"));
                    break;
                }
            }
        }
        let now = Instant::now();
        let mut at = 0;
        while at < conn.rlen {
            let (len, kind) = match frame(&conn.rbuf[at..conn.rlen]) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    closed = Some(format!("protocol error: {e}"));
                    break;
                }
            };
            let Some(p) = conn.pending.pop_front() else {
                closed = Some("a reply to no request".into());
                break;
            };
            let outcome = match kind {
                Kind::Error(text) => Outcome::Error(String::from_utf8_lossy(text).into_owned()),
                Kind::Nil => Outcome::Nil,
                Kind::Value => Outcome::Value,
            };
            self.outcomes.push((p, outcome));
            at += len;
        }
        conn.rbuf.copy_within(at..conn.rlen, 0);
        conn.rlen -= at;
        let client = conn.client;
        let mut outcomes = std::mem::take(&mut self.outcomes);
        for (p, outcome) in outcomes.drain(..) {
            self.complete(client, p, outcome, now)?;
        }
        self.outcomes = outcomes;
        if let Some(why) = closed {
            self.close(ci, why);
        }
        Ok(())
    }

    fn complete(&mut self, c: usize, p: Pending, outcome: Outcome, now: Instant) -> Result<(), String> {
        if p.op == Op::Asking {
            // Its error, if any, shows in the reply to the request that follows it.
            return Ok(());
        }
        let text = match outcome {
            Outcome::Error(text) => text,
            Outcome::Value | Outcome::Nil => {
                let us = now.duration_since(p.start).as_micros().min(u128::from(MAX_LATENCY_US)) as u64;
                self.hist.saturating_record(us.max(1));
                self.stats.requests += 1;
                match p.op {
                    Op::Set => self.stats.sets += 1,
                    _ => self.stats.gets += 1,
                }
                if matches!(outcome, Outcome::Nil) {
                    self.stats.misses += 1;
                }
                self.finish(c, now);
                return Ok(());
            }
        };
        if self.cluster && p.attempts < MAX_ATTEMPTS {
            let again = Pending { attempts: p.attempts + 1, ..p };
            match parse_redirect(text.as_bytes(), &self.cfg.host) {
                Some(Redirect::Moved { slot, addr }) => {
                    self.stats.moved += 1;
                    let endpoint = self.map.moved(slot, &addr);
                    return self.send(c, again, Some(endpoint), false);
                }
                Some(Redirect::Ask { addr, .. }) => {
                    self.stats.ask += 1;
                    let endpoint = self.map.endpoint(&addr);
                    return self.send(c, again, Some(endpoint), true);
                }
                None if text.starts_with("TRYAGAIN") => {
                    self.stats.tryagain += 1;
                    return self.send(c, again, None, false);
                }
                None => {}
            }
        }
        self.stats.error(text);
        self.finish(c, now);
        Ok(())
    }

    /// Request of client `c` done (answered or failed): its window has room.
    fn finish(&mut self, c: usize, now: Instant) {
        self.in_flight -= 1;
        self.last_completion = Some(now);
        let client = &mut self.clients[c];
        client.in_flight -= 1;
        if !client.touched {
            client.touched = true;
            self.touched.push(c);
        }
    }

    /// Drops connection `ci`; its requests in flight count as errors.
    fn close(&mut self, ci: usize, why: String) {
        let Some(conn) = self.conns.get_mut(ci).and_then(Option::take) else { return };
        let _ = self.epoll.ctl(libc::EPOLL_CTL_DEL, conn.stream.as_raw_fd(), 0, ci);
        self.stats.closed += 1;
        self.free.push(ci);
        if let Some(slot) = self.clients[conn.client].conns.get_mut(usize::from(conn.endpoint)) {
            *slot = None;
        }
        let now = Instant::now();
        let lost = conn.pending.iter().filter(|p| p.op != Op::Asking).count();
        for _ in 0..lost {
            self.stats.error(why.clone());
            self.finish(conn.client, now);
        }
    }

    /// Ends the run: every request in flight counts as an error.
    fn abandon(&mut self, why: String) {
        for ci in 0..self.conns.len() {
            self.close(ci, why.clone());
        }
    }

    /// Sends what the dirty connections have queued.
    fn flush(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &ci in &dirty {
            let Some(conn) = self.conns.get_mut(ci).and_then(Option::as_mut) else { continue };
            conn.queued = false;
            let mut failed = None;
            while conn.wpos < conn.wbuf.len() {
                match conn.stream.write(&conn.wbuf[conn.wpos..]) {
                    Ok(n) => conn.wpos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        failed = Some(format!("write: {e}"));
                        break;
                    }
                }
            }
            if let Some(why) = failed {
                self.close(ci, why);
                continue;
            }
            let done = conn.wpos == conn.wbuf.len();
            if done {
                conn.wbuf.clear();
                conn.wpos = 0;
            }
            if done == conn.out_armed {
                conn.out_armed = !done;
                let events = if done { IN } else { IN | OUT };
                let fd = conn.stream.as_raw_fd();
                if let Err(e) = self.epoll.ctl(libc::EPOLL_CTL_MOD, fd, events, ci) {
                    self.close(ci, format!("epoll_ctl: {e}"));
                }
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_schedule() {
        assert_eq!(due(Duration::ZERO, 1000.0), 1);
        assert_eq!(due(Duration::from_micros(999), 1000.0), 1);
        assert_eq!(due(Duration::from_millis(1), 1000.0), 2);
        assert_eq!(due(Duration::from_secs(2), 1000.0), 2001);
        assert_eq!(due(Duration::from_secs(3), 0.5), 2);
    }
}
