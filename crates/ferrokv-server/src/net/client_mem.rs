//! Client memory (issue 12): what each connection holds, the output buffer limits of its
//! class, the node's client-memory totals and client eviction (`maxmemory-clients`).
//!
//! A connection's figures are taken by its own shard whenever the connection is
//! flushed (every loop iteration in which it read, got a reply, or sent) — see
//! [`account`] — and published in its [`ClientMeta`] for CLIENT LIST and in its
//! shard's [`ShardClients`] for INFO and eviction. Nothing is walked per command: the
//! output's figures are kept up to date as replies are added and sent (`Conn::layout`,
//! Redis's layout of the same output, see `crate::reply_layout`).
//!
//! **Output limits.** After every command, forwarded reply and pub/sub message, the
//! connection's unsent output (Redis's `omem` of it) is checked against `client-output-buffer-limit` of its
//! class (`pubsub` while it has subscriptions, else `normal`; replicas are written by
//! their own thread, which applies the `replica` class, see `crate::repl`). Over the
//! hard limit, or over the soft one for longer than its seconds, it is closed at once
//! with its output dropped, as Redis's `closeClientOnOutputBufferLimitReached`.
//!
//! **Eviction.** With `maxmemory-clients` set (bytes, or a percentage of `maxmemory`),
//! while the memory of all normal and pub/sub clients of the node is at or over the
//! limit, the biggest client goes (Redis 7.0's `evictClients`), except those with
//! CLIENT NO-EVICT on. Each shard publishes the memory of its biggest evictable client;
//! the shard whose biggest is the node's biggest evicts it. Two shards may each evict
//! one at the same moment (their view of the other's figures is an iteration old), so
//! the node can drop one client more than Redis, which sees all clients in one thread.

use crate::conn::{Conn, Mode};
use crate::dispatch::ShardCore;
use crate::node::{ClientMeta, Node};
use crate::repl::master::OutputLimits;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A connection's memory figures for CLIENT LIST/INFO, readable from any shard.
#[derive(Default)]
pub struct ClientMemStats {
    /// `qbuf-free`: room left in the buffer holding its unprocessed input.
    pub qbuf_free: AtomicU64,
    /// `argv-mem`: the arguments of a command it keeps (a blocked one).
    pub argv: AtomicU64,
    /// `multi-mem`: its queued transaction's arguments.
    pub multi: AtomicU64,
    /// `obl`, `oll`: bytes in the reply buffer being filled, and the other buffers
    /// holding unsent replies (the send in flight, each reply awaited from another shard).
    pub obl: AtomicU64,
    pub oll: AtomicU64,
    /// `tot-mem`.
    pub total: AtomicU64,
    /// `rbs`, `rbp`: the reply buffer's size, and the most it held since the last
    /// reset (every 5 s), as Redis 7.0's `buf_usable_size` and `buf_peak`.
    pub rbs: AtomicU64,
    pub rbp: AtomicU64,
    /// CLIENT NO-EVICT on.
    pub no_evict: AtomicBool,
}

/// Redis's `CLIENTS_PEAK_MEM_USAGE_SLOTS`: INFO's recent maxima cover 8 seconds.
const PEAK_SLOTS: usize = 8;

/// One shard's client figures, written by its own thread only.
#[derive(Default)]
pub struct ShardClients {
    /// Memory of the normal and pub/sub clients (INFO `mem_clients_normal`; what
    /// `maxmemory-clients` limits).
    pub normal: AtomicU64,
    /// Memory of replica connections (INFO `mem_clients_slaves`).
    pub replicas: AtomicU64,
    /// The biggest evictable client's memory, as last looked at (0: none, or no limit).
    pub largest: AtomicU64,
    /// Clients evicted by `maxmemory-clients` (INFO `evicted_clients`).
    pub evicted: AtomicU64,
    /// Bytes of pub/sub messages this shard made in its current event-loop iteration,
    /// on their way to subscribers: left out of `maxmemory` until its next iteration
    /// (see `maxmemory::Limit::events_in_flight`).
    pub messages_in_flight: AtomicU64,
    /// Largest input and output buffer seen per second, by unix second modulo 8,
    /// and the second each slot holds.
    peak_in: [AtomicU64; PEAK_SLOTS],
    peak_out: [AtomicU64; PEAK_SLOTS],
    peak_second: [AtomicU64; PEAK_SLOTS],
}

impl ShardClients {
    /// Notes a client's input and output buffer sizes at second `now_s`.
    fn peak(&self, now_s: u64, input: u64, output: u64) {
        let i = (now_s % PEAK_SLOTS as u64) as usize;
        if self.peak_second[i].load(Ordering::Relaxed) != now_s {
            self.peak_second[i].store(now_s, Ordering::Relaxed);
            self.peak_in[i].store(input, Ordering::Relaxed);
            self.peak_out[i].store(output, Ordering::Relaxed);
            return;
        }
        for (slot, v) in [(&self.peak_in[i], input), (&self.peak_out[i], output)] {
            if v > slot.load(Ordering::Relaxed) {
                slot.store(v, Ordering::Relaxed);
            }
        }
    }

    /// The largest input and output buffers of the last 8 seconds.
    fn recent_peaks(&self, now_s: u64) -> (u64, u64) {
        (0..PEAK_SLOTS)
            .filter(|&i| now_s.saturating_sub(self.peak_second[i].load(Ordering::Relaxed)) < PEAK_SLOTS as u64)
            .fold((0, 0), |(a, b), i| {
                (a.max(self.peak_in[i].load(Ordering::Relaxed)), b.max(self.peak_out[i].load(Ordering::Relaxed)))
            })
    }
}

/// The node's figures for INFO: (mem_clients_normal, mem_clients_slaves,
/// client_recent_max_input_buffer, client_recent_max_output_buffer, evicted_clients).
pub fn node_figures(node: &Node) -> [u64; 5] {
    let now_s = crate::node::unix_ms() / 1000;
    let mut f = [0u64; 5];
    for s in node.shards.iter() {
        let c = &s.clients;
        f[0] += c.normal.load(Ordering::Relaxed);
        f[1] += c.replicas.load(Ordering::Relaxed);
        let (input, output) = c.recent_peaks(now_s);
        f[2] = f[2].max(input);
        f[3] = f[3].max(output);
        f[4] += c.evicted.load(Ordering::Relaxed);
    }
    f
}

/// Client classes for output limits, in `ShardCore::output_limits`.
const NORMAL: usize = 0;
const PUBSUB: usize = 1;

/// The output limits of each class a shard applies itself.
#[derive(Clone, Copy, Default)]
pub struct ClassLimits([OutputLimits; 2]);

impl ClassLimits {
    pub fn from_config(cfg: &crate::config::Config) -> ClassLimits {
        ClassLimits([cfg.output_limits("normal"), cfg.output_limits("pubsub")])
    }
}

/// `maxmemory-clients` in bytes: a size, or a percentage of `maxmemory` (0 when
/// `maxmemory` is 0), as Redis's `getClientEvictionLimit`.
pub fn eviction_limit(cfg: &crate::config::Config) -> u64 {
    let v = cfg.maxmemory_clients.trim();
    match v.strip_suffix('%') {
        Some(p) => p.parse::<u64>().map_or(0, |p| cfg.maxmemory.saturating_mul(p) / 100),
        None => crate::config::parse_memory(v).unwrap_or(0),
    }
}

/// Under an output limit, a connection parses no further while this many of its
/// commands run on other shards: their replies are measured only when they arrive, so
/// without a bound a pipeline of big GETs would have them all built before the limit
/// could trip.
pub const FORWARD_WINDOW: usize = 32;

impl ShardCore {
    /// Whether `c`'s class has an output limit.
    #[inline]
    pub fn output_limited(&self, c: &Conn) -> bool {
        let class = if c.subs.is_some() { PUBSUB } else { NORMAL };
        let l = self.output_limits.0[class];
        !matches!(c.mode, Mode::Replica(_)) && (l.hard != 0 || l.soft != 0)
    }

    /// Whether `c` may keep its output: false (and the connection is queued to be
    /// closed, its output to be dropped) when it went over its class's limit.
    #[inline]
    pub fn check_output(&mut self, c: &mut Conn) -> bool {
        if matches!(c.mode, Mode::Replica(_)) {
            return true;
        }
        let class = if c.subs.is_some() { PUBSUB } else { NORMAL };
        let limits = self.output_limits.0[class];
        if limits.hard == 0 && limits.soft == 0 {
            return true;
        }
        // Redis's figure (`getClientOutputBufferMemoryUsage`), so a limit trips where
        // it trips in Redis.
        let used = c.layout.omem() as u64;
        if limits.within(used, &mut c.obuf_soft_since, self.now_ms) {
            return true;
        }
        if !c.closing {
            tracing::warn!(
                "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
                client_info(c).trim_end()
            );
            c.closing = true;
            self.overflowed.push(c.token);
        }
        false
    }
}

/// The client's CLIENT LIST line with its figures as of now.
pub fn client_info(c: &Conn) -> String {
    publish(c);
    crate::cmds::client_line(&c.meta)
}

/// Brings the connection's CLIENT LIST figures up to date.
pub fn publish(c: &Conn) -> u64 {
    let m = &c.meta;
    let total = c.memory();
    m.omem.store(c.layout.omem() as u64, Ordering::Relaxed);
    m.mem.obl.store(c.layout.obl() as u64, Ordering::Relaxed);
    m.mem.oll.store(c.layout.oll() as u64, Ordering::Relaxed);
    m.mem.qbuf_free.store((c.inbuf.capacity() - c.inbuf.len()) as u64, Ordering::Relaxed);
    m.mem.multi.store(c.multi().map_or(0, |t| t.argv_mem), Ordering::Relaxed);
    m.mem.total.store(total, Ordering::Relaxed);
    m.mem.rbs.store(c.layout.rbs() as u64, Ordering::Relaxed);
    m.mem.rbp.store(c.layout.rbp() as u64, Ordering::Relaxed);
    total
}

/// The most room a connection's send buffer keeps once its send completed: a bigger
/// one (a burst of output) is freed at once, as Redis frees its reply blocks once sent.
pub const KEEP_SEND_BUFFER: usize = 64 * 1024;

/// Redis's `PROTO_REPLY_MIN_BYTES` and `reply-buffer-peak-reset-time` default.
const REPLY_MIN_BYTES: usize = 1024;
const PEAK_RESET_MS: u64 = 5000;

/// Once a second per connection (Redis's clientsCronResizeOutputBuffer): a reply
/// buffer less than half used at its peak shrinks to the peak (at least 1 KiB), so a
/// client that once got a big reply does not keep its buffer; the peak restarts
/// every 5 s. The buffer of the send, when none is in flight, shrinks the same way.
pub fn resize_output(c: &mut Conn, now_ms: u64) {
    c.layout.resize(now_ms);
    let peak = c.out_peak.max(c.out.len());
    let cap = c.out.capacity();
    if cap / 2 >= REPLY_MIN_BYTES && peak < cap / 2 {
        c.out.shrink_to(REPLY_MIN_BYTES.max(peak + 1));
    }
    if !c.send_inflight && c.sending.is_empty() && c.sending.capacity() / 2 >= REPLY_MIN_BYTES.max(peak + 1) {
        c.sending.shrink_to(REPLY_MIN_BYTES.max(peak + 1));
    }
    if now_ms.saturating_sub(c.out_peak_reset_ms) >= PEAK_RESET_MS {
        c.out_peak = c.out.len();
        c.out_peak_reset_ms = now_ms;
    }
}

/// Takes the connection's figures after it read, got replies or sent: its CLIENT LIST
/// fields, its share of its shard's totals, the recent peaks.
pub fn account(node: &Node, shard: usize, c: &mut Conn, now_ms: u64) {
    c.out_peak = c.out_peak.max(c.out.len()).max(c.sending.len());
    let total = if c.dead { 0 } else { publish(c) };
    let clients = &node.shards[shard].clients;
    let counter = if matches!(c.mode, Mode::Replica(_)) { &clients.replicas } else { &clients.normal };
    if total != c.mem_counted {
        // Only this shard's thread writes its counters.
        let v = counter.load(Ordering::Relaxed);
        counter.store((v + total).saturating_sub(c.mem_counted), Ordering::Relaxed);
        c.mem_counted = total;
    }
    if total != 0 {
        let input = c.inbuf.capacity() as u64 + c.meta.mem.argv.load(Ordering::Relaxed);
        clients.peak(now_ms / 1000, input, c.layout.omem() as u64);
    }
}

/// A connection leaves: its memory leaves its shard's totals.
pub fn forget(node: &Node, shard: usize, c: &mut Conn) {
    let clients = &node.shards[shard].clients;
    let counter = if matches!(c.mode, Mode::Replica(_)) { &clients.replicas } else { &clients.normal };
    let v = counter.load(Ordering::Relaxed);
    counter.store(v.saturating_sub(c.mem_counted), Ordering::Relaxed);
    c.mem_counted = 0;
}

/// Whether the node's normal and pub/sub clients hold at least `limit` bytes.
pub fn over_limit(node: &Node, limit: u64) -> bool {
    limit > 0 && node.shards.iter().map(|s| s.clients.normal.load(Ordering::Relaxed)).sum::<u64>() >= limit
}

/// Client eviction on one shard: while the node is over `limit`, this shard's biggest
/// evictable client goes if it is the node's biggest. Returns the tokens to close.
pub fn evict<'a>(node: &Node, shard: usize, limit: u64, conns: impl Iterator<Item = &'a Conn> + Clone) -> Vec<u64> {
    let clients = &node.shards[shard].clients;
    let mut gone: Vec<u64> = Vec::new();
    let mut freed = 0u64;
    loop {
        let biggest = conns
            .clone()
            .filter(|c| {
                !c.dead
                    && !c.closing
                    && !matches!(c.mode, Mode::Replica(_))
                    && !c.meta.mem.no_evict.load(Ordering::Relaxed)
                    && !gone.contains(&c.token)
            })
            .max_by_key(|c| c.mem_counted);
        let Some(c) = biggest else {
            clients.largest.store(0, Ordering::Relaxed);
            return gone;
        };
        clients.largest.store(c.mem_counted, Ordering::Relaxed);
        let total: u64 = node.shards.iter().map(|s| s.clients.normal.load(Ordering::Relaxed)).sum();
        if total.saturating_sub(freed) < limit {
            return gone;
        }
        // Another shard holds a bigger one: it evicts that (ties go to the lower shard).
        let bigger_elsewhere = node.shards.iter().enumerate().any(|(i, s)| {
            let l = s.clients.largest.load(Ordering::Relaxed);
            i != shard && (l > c.mem_counted || (l == c.mem_counted && i < shard))
        });
        if bigger_elsewhere {
            return gone;
        }
        tracing::debug!("Evicting client: {}", client_info(c).trim_end());
        crate::node::bump(&clients.evicted);
        freed += c.mem_counted;
        gone.push(c.token);
    }
}

/// CLIENT LIST's `argv-mem` of a command's arguments (their bytes, as Redis's
/// `argv_len_sum`).
pub fn argv_len(args: &ferrokv_resp::Args) -> u64 {
    args.iter().map(|a| a.len() as u64).sum()
}

/// What queueing a command adds to `multi-mem`: its arguments' bytes and a pointer per
/// argument (Redis's `argv_len_sum + sizeof(robj*) * argc`).
pub fn queued_len(args: &ferrokv_resp::Args) -> u64 {
    argv_len(args) + 8 * args.len() as u64
}

/// The `e` flag of CLIENT LIST.
pub fn no_evict(m: &ClientMeta) -> bool {
    m.mem.no_evict.load(Ordering::Relaxed)
}
