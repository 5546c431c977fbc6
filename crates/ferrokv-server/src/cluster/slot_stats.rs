//! `CLUSTER SLOT-STATS SLOTSRANGE <start> <end> | ORDERBY <metric> [LIMIT n] [ASC|DESC]`
//! (Redis 8.2 / Valkey 8): per-slot key counts always; with
//! `cluster-slot-stats-enabled yes`, also the CPU time, and the request and reply bytes
//! of the commands that targeted each slot, so that hot slots are visible (and
//! `ferrokv-cli` can balance by load).
//!
//! The counters live per shard (the shard that ran the command adds to them without a
//! lock or a shared cache line with other shards) and are summed when asked. Only
//! commands with keys count, once each: the slot is their first key's (cluster mode:
//! all their keys share it). Off (the default), the request path pays one branch.

use crate::conn::Conn;
use crate::dispatch::{Flow, ShardCore};
use ferrokv_commands::util::eq_ic;
use ferrokv_commands::CommandSpec;
use ferrokv_resp::Args;
use ferrokv_store::SLOTS;
use std::sync::atomic::{AtomicU64, Ordering};

/// One slot's counters on one shard.
#[derive(Default)]
pub struct SlotStat {
    cycles: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// A shard's counters for every slot, made on first use.
#[derive(Default)]
pub struct SlotStats(std::sync::OnceLock<Box<[SlotStat]>>);

impl SlotStats {
    fn table(&self) -> &[SlotStat] {
        self.0.get_or_init(|| (0..SLOTS).map(|_| SlotStat::default()).collect())
    }

    /// Counts one command (only this shard's thread adds).
    pub fn add(&self, spec: &CommandSpec, args: &Args, cycles: u64, reply_bytes: usize) {
        let Some(slot) = crate::slot_migration::write_slot(spec, args) else { return };
        let s = &self.table()[slot as usize];
        crate::node::add(&s.cycles, cycles);
        crate::node::add(&s.bytes_in, request_bytes(args));
        crate::node::add(&s.bytes_out, reply_bytes as u64);
    }

    fn get(&self, slot: u16) -> (u64, u64, u64) {
        match self.0.get() {
            Some(t) => {
                let s = &t[slot as usize];
                (
                    s.cycles.load(Ordering::Relaxed),
                    s.bytes_in.load(Ordering::Relaxed),
                    s.bytes_out.load(Ordering::Relaxed),
                )
            }
            None => (0, 0, 0),
        }
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        if let Some(t) = self.0.get() {
            for s in t.iter() {
                for c in [&s.cycles, &s.bytes_in, &s.bytes_out] {
                    c.store(0, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The command's size as a RESP multibulk request.
fn request_bytes(args: &Args) -> u64 {
    let digits = |n: usize| n.checked_ilog10().unwrap_or(0) as u64 + 1;
    let mut n = 3 + digits(args.len());
    for a in args.iter() {
        n += 5 + digits(a.len()) + a.len() as u64;
    }
    n
}

#[derive(Clone, Copy, PartialEq)]
enum Metric {
    Keys,
    Cpu,
    In,
    Out,
}

/// One slot's row.
struct Row {
    slot: u16,
    keys: u64,
    cpu_usec: u64,
    bytes_in: u64,
    bytes_out: u64,
}

impl Row {
    fn value(&self, m: Metric) -> u64 {
        match m {
            Metric::Keys => self.keys,
            Metric::Cpu => self.cpu_usec,
            Metric::In => self.bytes_in,
            Metric::Out => self.bytes_out,
        }
    }
}

/// `CLUSTER SLOT-STATS ...`.
pub fn command(core: &mut ShardCore, c: &mut Conn, args: &Args) -> Flow {
    let node = core.node;
    let enabled = node.config().cluster_slot_stats_enabled;
    let view = core.cluster_view();
    let mine = |s: u16| view.slot_owner_index(s) == Some(view.myself);
    let (slots, order): (Vec<u16>, Option<(Metric, usize, bool)>) = if args.len() == 5
        && eq_ic(args.get(2), "slotsrange")
    {
        let (Some(a), Some(b)) = (ferrokv_cluster::parse_slot(args.get(3)), ferrokv_cluster::parse_slot(args.get(4)))
        else {
            c.error("ERR Invalid or out of range slot");
            return Flow::Done;
        };
        if a > b {
            c.error(&format!("ERR Start slot number {a} is greater than end slot number {b}"));
            return Flow::Done;
        }
        ((a..=b).filter(|&s| mine(s)).collect(), None)
    } else if args.len() >= 4 && eq_ic(args.get(2), "orderby") {
        let m = args.get(3);
        let metric = if eq_ic(m, "key-count") {
            Metric::Keys
        } else if eq_ic(m, "cpu-usec") && enabled {
            Metric::Cpu
        } else if eq_ic(m, "network-bytes-in") && enabled {
            Metric::In
        } else if eq_ic(m, "network-bytes-out") && enabled {
            Metric::Out
        } else {
            c.error("ERR Unrecognized sort metric for ORDERBY.");
            return Flow::Done;
        };
        let (mut limit, mut desc, mut limits, mut dirs) = (SLOTS, true, 0, 0);
        let mut i = 4;
        while i < args.len() {
            let a = args.get(i);
            if eq_ic(a, "limit") && i + 1 < args.len() {
                match ferrokv_cluster::commands::parse_i64_strict(args.get(i + 1)) {
                    Some(n) if (1..=SLOTS as i64).contains(&n) => limit = n as usize,
                    _ => {
                        c.error("ERR Limit has to lie in between 1 and 16384 (maximum number of slots).");
                        return Flow::Done;
                    }
                }
                i += 1;
                limits += 1;
            } else if eq_ic(a, "asc") || eq_ic(a, "desc") {
                desc = eq_ic(a, "desc");
                dirs += 1;
            } else {
                c.error("ERR syntax error");
                return Flow::Done;
            }
            if limits > 1 || dirs > 1 {
                c.error("ERR Multiple filters of the same type are disallowed.");
                return Flow::Done;
            }
            i += 1;
        }
        ((0..SLOTS as u16).filter(|&s| mine(s)).collect(), Some((metric, limit, desc)))
    } else {
        c.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLUSTER HELP.",
            crate::dispatch::printable(args.get(1), 64)
        ));
        return Flow::Done;
    };
    let per_us = crate::node::cycles_per_us().max(1e-9);
    let mut rows: Vec<Row> = Vec::with_capacity(slots.len());
    for s in slots {
        let keys = node.lock_db(node.shard_of_slot(s)).slot_len(s) as u64;
        let (mut cyc, mut bin, mut bout) = (0, 0, 0);
        for sh in node.shards.iter() {
            let (a, b, c) = sh.slot_stats.get(s);
            cyc += a;
            bin += b;
            bout += c;
        }
        rows.push(Row { slot: s, keys, cpu_usec: (cyc as f64 / per_us) as u64, bytes_in: bin, bytes_out: bout });
    }
    if let Some((m, limit, desc)) = order {
        // Ties in slot order, ascending.
        rows.sort_by(|a, b| {
            let by = if desc { b.value(m).cmp(&a.value(m)) } else { a.value(m).cmp(&b.value(m)) };
            by.then(a.slot.cmp(&b.slot))
        });
        rows.truncate(limit);
    }
    c.reply(|r| {
        r.array(rows.len());
        for row in &rows {
            r.array(2);
            r.integer(row.slot as i64);
            let fields: &[(&str, u64)] = if enabled {
                &[
                    ("key-count", row.keys),
                    ("cpu-usec", row.cpu_usec),
                    ("network-bytes-in", row.bytes_in),
                    ("network-bytes-out", row.bytes_out),
                ]
            } else {
                &[("key-count", row.keys)]
            };
            r.map(fields.len());
            for (k, v) in fields {
                r.bulk(k.as_bytes());
                r.integer(*v as i64);
            }
        }
    });
    Flow::Done
}
