//! MEMORY STATS, DOCTOR, MALLOC-STATS, PURGE and HELP (MEMORY USAGE is a data command:
//! `ferrokv_commands::families::keys::memory_usage`), and the figures INFO memory prints.

use crate::memory as m;
use crate::node::Node;
use ferrokv_resp::{Args, ReplyBuf};
use std::sync::atomic::Ordering;

/// The node's memory figures, as Redis's `getMemoryOverheadData` gathers them.
pub struct Figures {
    pub used: u64,
    pub peak: u64,
    pub startup: u64,
    pub rss: u64,
    /// The replication stream's buffer (backlog and what replicas have yet to read).
    pub backlog: u64,
    /// Memory of normal and pub/sub clients, and of replicas' connections.
    pub clients_normal: u64,
    pub clients_replicas: u64,
    pub overhead: u64,
    pub dataset: u64,
    pub keys: u64,
    pub alloc: m::AllocatorStats,
}

impl Figures {
    pub fn gather(node: &Node) -> Figures {
        let used = m::allocated();
        m::note_used(used);
        let startup = m::startup();
        let backlog = crate::repl::backlog_bytes(node);
        let [clients_normal, clients_replicas, ..] = crate::client_mem::node_figures(node);
        let overhead = startup + backlog + clients_normal + clients_replicas;
        Figures {
            used,
            peak: m::peak(),
            startup,
            rss: m::rss(),
            backlog,
            clients_normal,
            clients_replicas,
            overhead,
            dataset: used.saturating_sub(overhead),
            keys: node.shards.iter().map(|s| s.keys.load(Ordering::Relaxed)).sum(),
            alloc: m::allocator_stats(),
        }
    }

    pub fn peak_perc(&self) -> f64 {
        pct(self.used, self.peak)
    }

    pub fn dataset_perc(&self) -> f64 {
        pct(self.dataset, self.used.saturating_sub(self.startup))
    }

    /// (ratio, bytes) pairs: allocator fragmentation (active / allocated), allocator RSS
    /// (resident / active), RSS overhead (process RSS / allocator resident), and the
    /// whole (RSS / used).
    pub fn frag(&self) -> [(f64, i64); 4] {
        let a = &self.alloc;
        let pair = |x: u64, y: u64| (ratio(x, y), x as i64 - y as i64);
        [pair(a.active, a.allocated), pair(a.resident, a.active), pair(self.rss, a.resident), pair(self.rss, self.used)]
    }
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

const HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Prints this help.",
];

/// MEMORY <DOCTOR | MALLOC-STATS | PURGE | STATS | HELP> (the dispatcher resolved the
/// subcommand and checked its arity).
pub fn memory(node: &Node, r: &mut ReplyBuf, args: &Args) {
    let sub = args.get(1).to_ascii_lowercase();
    match sub.as_slice() {
        b"stats" => stats(node, r),
        b"doctor" => {
            let text = doctor(&Figures::gather(node));
            r.verbatim(text.as_bytes());
        }
        b"malloc-stats" => {
            let text = m::malloc_stats();
            r.verbatim(text.as_bytes());
        }
        b"purge" => {
            m::purge();
            r.ok();
        }
        _ => {
            r.array(HELP.len());
            for line in HELP {
                r.simple(line);
            }
        }
    }
}

/// MEMORY STATS: Redis 7.0's fields in its order; `db.0`'s hash-table overheads are the
/// slot tables' (ferrokv keeps no separate table of keys with a TTL).
fn stats(node: &Node, r: &mut ReplyBuf) {
    let f = Figures::gather(node);
    let keys_bytes = if f.keys == 0 { 0 } else { f.dataset / f.keys };
    let frag = f.frag();
    r.map(28);
    let int = |r: &mut ferrokv_resp::ReplyBuf, k: &str, v: i64| {
        r.bulk(k.as_bytes());
        r.integer(v);
    };
    int(r, "peak.allocated", f.peak as i64);
    int(r, "total.allocated", f.used as i64);
    int(r, "startup.allocated", f.startup as i64);
    int(r, "replication.backlog", f.backlog as i64);
    int(r, "clients.slaves", f.clients_replicas as i64);
    int(r, "clients.normal", f.clients_normal as i64);
    int(r, "cluster.links", 0);
    int(r, "aof.buffer", 0);
    int(r, "lua.caches", 0);
    int(r, "functions.caches", 0);
    r.bulk(b"db.0");
    r.map(3);
    int(r, "overhead.hashtable.main", (f.keys * 4) as i64);
    int(r, "overhead.hashtable.expires", 0);
    int(r, "overhead.hashtable.slot-to-keys", 0);
    int(r, "overhead.total", f.overhead as i64);
    int(r, "keys.count", f.keys as i64);
    int(r, "keys.bytes-per-key", keys_bytes as i64);
    int(r, "dataset.bytes", f.dataset as i64);
    r.bulk(b"dataset.percentage");
    r.double(f.dataset_perc());
    r.bulk(b"peak.percentage");
    r.double(f.peak_perc());
    int(r, "allocator.allocated", f.alloc.allocated as i64);
    int(r, "allocator.active", f.alloc.active as i64);
    int(r, "allocator.resident", f.alloc.resident as i64);
    for (name, (ratio, bytes)) in
        ["allocator-fragmentation", "allocator-rss", "rss-overhead", "fragmentation"].iter().zip(frag)
    {
        let ratio_name = if *name == "fragmentation" { name.to_string() } else { format!("{name}.ratio") };
        r.bulk(ratio_name.as_bytes());
        r.double(ratio);
        int(r, &format!("{name}.bytes"), bytes);
    }
}

/// Redis's answer for an instance too small to judge.
const DOCTOR_EMPTY: &str = "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n";
/// Redis's answer when no check fires.
const DOCTOR_FINE: &str =
    "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n";

/// MEMORY DOCTOR: Redis's checks on the figures ferrokv has (peak, fragmentation at each
/// level); the wording of the findings is ferrokv's.
fn doctor(f: &Figures) -> String {
    // Redis's threshold is 5 MB in all; ferrokv starts bigger (receive buffer rings,
    // slot tables per shard), so it is 5 MB above what the node used at start-up.
    if f.used.saturating_sub(f.startup) < 5 * 1024 * 1024 {
        return DOCTOR_EMPTY.to_string();
    }
    let mut found = Vec::new();
    if f.peak as f64 / f.used as f64 > 1.5 {
        found.push(format!(
            " * Peak memory: the peak ({} bytes) is more than 1.5 times the memory used now ({} bytes); \
             the RSS may stay near the peak until the allocator returns pages (MEMORY PURGE asks it to).",
            f.peak, f.used
        ));
    }
    let [alloc_frag, alloc_rss, rss_over, _] = f.frag();
    if alloc_frag.0 > 1.1 && alloc_frag.1 > 10 << 20 {
        found.push(format!(
            " * High allocator fragmentation: {:.2} ({} bytes in partly used pages).",
            alloc_frag.0, alloc_frag.1
        ));
    }
    if alloc_rss.0 > 1.1 && alloc_rss.1 > 10 << 20 {
        found.push(format!(
            " * High allocator RSS overhead: {:.2} ({} bytes resident but free); MEMORY PURGE returns them.",
            alloc_rss.0, alloc_rss.1
        ));
    }
    if rss_over.0 > 1.1 && rss_over.1 > 10 << 20 {
        found.push(format!(
            " * High process RSS overhead: {:.2} ({} bytes outside the allocator: buffers, rings, code).",
            rss_over.0, rss_over.1
        ));
    }
    if found.is_empty() {
        return DOCTOR_FINE.to_string();
    }
    let mut s = String::from("Sam, I detected a few issues in this instance memory implementation:\n\n");
    for line in found {
        s.push_str(&line);
        s.push_str("\n\n");
    }
    s
}
