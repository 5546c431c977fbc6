//! Cluster mode on the request path: the published [`ClusterView`], the redirections
//! a command may get instead of running (Redis's `getNodeByQuery`), and the CLUSTER
//! subcommands.
//!
//! The cluster bus (`bus.rs`) owns the state machine on shard 0 and publishes a new
//! immutable view after every change; each shard picks it up when the version moves.
//! CLUSTER subcommands that read the state render the view where the client is;
//! those that change it go to the bus and answer when it has applied them.

use crate::conn::Conn;
use crate::dispatch::{printable, Held, ShardCore};
use crate::msg::Msg;
use ferrokv_cluster::{ClusterView, Command};
use ferrokv_commands::table::{Flags, ServerCmd};
use ferrokv_commands::util::eq_ic;
use ferrokv_commands::{CommandSpec, Handler};
use ferrokv_resp::{Args, ReplyBuf};
use ferrokv_store::key_slot;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub struct ClusterShared {
    view: RwLock<Arc<ClusterView>>,
    version: AtomicU64,
}

impl ClusterShared {
    pub fn new(view: Arc<ClusterView>) -> Self {
        ClusterShared { view: RwLock::new(view), version: AtomicU64::new(1) }
    }

    pub fn publish(&self, v: Arc<ClusterView>) {
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = v;
        self.version.fetch_add(1, Ordering::Release);
    }

    pub fn view(&self) -> Arc<ClusterView> {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// The slot all keys of `args` hash to (None: no keys), or CROSSSLOT.
pub fn slot_of(spec: &CommandSpec, args: &Args, idx: &mut Vec<usize>) -> Result<Option<u16>, String> {
    spec.key_indexes(args, idx);
    let mut slot = None;
    for &i in idx.iter() {
        let s = key_slot(args.get(i));
        match slot {
            None => slot = Some(s),
            Some(prev) if prev != s => return Err(CROSSSLOT.into()),
            _ => {}
        }
    }
    Ok(slot)
}

impl ShardCore {
    /// Where a command with keys in `slot` must run, as Redis decides it: Ok to run it
    /// here, or the error/redirect to answer instead.
    pub fn cluster_route(&mut self, c: &Conn, spec: &CommandSpec, args: &Args, slot: u16) -> Result<(), String> {
        let view = self.cluster_view();
        let write = spec.has(Flags::WRITE);
        // As Redis's getNodeByQuery: an unassigned slot is reported before a down cluster.
        if view.slot_owner_index(slot).is_none() {
            return Err("CLUSTERDOWN Hash slot not served".into());
        }
        if !view.state_ok {
            let reads_ok = self.node.config().cluster_allow_reads_when_down;
            if !reads_ok {
                return Err("CLUSTERDOWN The cluster is down".into());
            }
            if write {
                return Err("CLUSTERDOWN The cluster is down and only accepts read commands".into());
            }
        }
        let Some(owner) = view.slot_owner_index(slot) else {
            return Err("CLUSTERDOWN Hash slot not served".into());
        };
        let n = &view.nodes[owner];
        // MIGRATE runs here whenever the slot is open here, importing (ASKING or not) or
        // migrating (Redis's getNodeByQuery): keys move freely between the two nodes of a
        // migration, and `redis-cli --cluster fix` moves keys off an importing node.
        if matches!(spec.handler, Handler::Server(ServerCmd::Migrate))
            && ((owner == view.myself && view.migrating_to(slot).is_some()) || view.importing_from(slot).is_some())
        {
            return Ok(());
        }
        if owner == view.myself {
            if let Some(target) = view.migrating_to(slot) {
                let (present, total) = self.keys_present(spec, args);
                if present < total {
                    if total > 1 && present > 0 {
                        return Err("TRYAGAIN Multiple keys request during rehashing of slot".into());
                    }
                    return Err(format!("ASK {slot} {}", view.endpoint(target, slot)));
                }
            }
            // A connection on a core's own port asking for a slot another core of this
            // node serves: its client's map is stale (CLUSTER SLOTS names the other
            // core), so it gets MOVED there and updates it, as for a slot moved to
            // another node. The endpoint differs from this core's, so it cannot loop.
            // The main port serves every slot of the node (forwarding).
            // The core is this node's own table's (not the published view's, which
            // follows a slot handoff a moment later): the MOVED names the core that
            // serves the slot now, never this one.
            let core = self.node.shard_of_slot(slot);
            if c.core_port && core != self.id {
                if let Some(port) = n.cores.ports.get(core) {
                    return Err(format!("MOVED {slot} {}:{port}", n.ip));
                }
            }
            return Ok(());
        }
        if view.importing_from(slot).is_some() && (c.asking || spec.has(Flags::ASKING)) {
            let (present, total) = self.keys_present(spec, args);
            if total > 1 && present < total {
                return Err("TRYAGAIN Multiple keys request during rehashing of slot".into());
            }
            return Ok(());
        }
        let me = view.me();
        // A replica serves its master's shard channels (Redis's getNodeByQuery).
        if (c.readonly || spec.has(Flags::PUBSUB)) && !write && me.is_replica() && me.master_index == Some(owner) {
            return Ok(());
        }
        Err(format!("MOVED {slot} {}", view.endpoint(n, slot)))
    }

    /// [`cluster_route`](Self::cluster_route)'s ASK/TRYAGAIN decision again, under the
    /// lock of `db`, the shard about to run the command. The first decision was taken on
    /// the home shard before the command ran (or was forwarded); a MIGRATE finishing on
    /// another thread may have deleted a key since, and reading the key's absence as
    /// a nil would be a wrong answer: the key now lives on the target. Costs a version
    /// check unless some slot of this node is migrating.
    pub fn migrating_refusal(&mut self, spec: &CommandSpec, args: &Args, db: &mut ferrokv_store::Db) -> Option<String> {
        self.node.cluster.as_ref()?;
        // A write that passed the home shard's pause check just before a migration's
        // pause began: under this lock it must not run (the final delta may be taken).
        if self.node.slot_migration.pausing() && spec.has(Flags::WRITE) {
            if let Some(s) = crate::slot_migration::write_slot(spec, args) {
                if self.node.slot_migration.slot_paused(s) {
                    return Some(crate::slot_migration::PAUSED.into());
                }
            }
        }
        // A key of a slot this node lost (its keys may be half trimmed): redirect.
        let sm = &self.node.slot_migration;
        let lost = sm.has_lost().then(|| crate::slot_migration::write_slot(spec, args)).flatten();
        if let Some(slot) = lost.filter(|&s| sm.slot_lost(s)) {
            let view = self.cluster_view_ref();
            let owner = view.slot_owner_index(slot).map(|o| &view.nodes[o]);
            return Some(match owner {
                Some(n) => format!("MOVED {slot} {}", view.endpoint(n, slot)),
                None => "CLUSTERDOWN Hash slot not served".into(),
            });
        }
        let view = self.cluster_view_ref();
        if view.migrating.is_empty() {
            return None;
        }
        let mut idx = Vec::new();
        spec.key_indexes(args, &mut idx);
        let slot = key_slot(args.get(*idx.first()?));
        let target = view.migrating_to(slot)?;
        let addr = view.endpoint(target, slot);
        let now = crate::node::unix_ms();
        let present = idx.iter().filter(|&&i| db.contains(args.get(i), now)).count();
        match present {
            p if p == idx.len() => None,
            0 => Some(format!("ASK {slot} {addr}")),
            _ => Some("TRYAGAIN Multiple keys request during rehashing of slot".into()),
        }
    }

    /// How many of the command's keys exist here (for ASK and TRYAGAIN).
    fn keys_present(&mut self, spec: &CommandSpec, args: &Args) -> (usize, usize) {
        let mut idx = Vec::new();
        spec.key_indexes(args, &mut idx);
        if spec.has(Flags::PUBSUB) {
            // Shard channels are not keys: they count as present, as in Redis.
            return (idx.len(), idx.len());
        }
        let now = crate::node::unix_ms();
        let mut present = 0;
        for &i in &idx {
            let k = args.get(i);
            if self.node.lock_db_of_slot(key_slot(k)).1.contains(k, now) {
                present += 1;
            }
        }
        (present, idx.len())
    }
}

fn reply_info(r: &mut ReplyBuf, view: &ClusterView, i: usize, port: u16) {
    let n = &view.nodes[i];
    r.array(4);
    r.bulk(n.ip.as_bytes());
    r.integer(port as i64);
    r.bulk(n.id.as_str().as_bytes());
    if n.hostname.is_empty() {
        r.map(0);
    } else {
        r.map(1);
        r.bulk(b"hostname");
        r.bulk(n.hostname.as_bytes());
    }
}

/// CLUSTER from a script (`redis.call`): the subcommands that read the cluster view;
/// false for the others (ferrokv does not change the cluster or read a slot's keys
/// from a script, whose keyspace locks the latter would need).
pub fn from_script(node: &crate::node::Node, args: &Args, r: &mut ferrokv_resp::ReplyBuf) -> bool {
    let Some(shared) = node.cluster.as_ref() else {
        r.error("ERR This instance has cluster support disabled");
        return true;
    };
    let (sub, argc) = (args.get(1), args.len());
    let view = shared.view();
    if argc == 3 && eq_ic(sub, "keyslot") {
        r.integer(key_slot(args.get(2)) as i64);
    } else if argc == 2 && eq_ic(sub, "myid") {
        r.bulk(view.me().id.as_str().as_bytes());
    } else if argc == 2 && eq_ic(sub, "nodes") {
        r.verbatim(ferrokv_cluster::cluster_nodes_text(&view).as_bytes());
    } else if argc == 2 && eq_ic(sub, "info") {
        let mut text = ferrokv_cluster::cluster_info_text(&view);
        super::slot_migration::info_fields(node, &mut text);
        r.verbatim(text.as_bytes());
    } else {
        return false;
    }
    true
}

/// CLUSTER <subcommand> [args]
pub fn cluster_command(core: &mut ShardCore, c: &mut Conn, args: &Args, mut held: Held) -> crate::dispatch::Flow {
    use crate::dispatch::Flow;
    if eq_ic(args.get(1), "slot-core") {
        slot_core(core, c, args, &held);
        return Flow::Done;
    }
    if core.node.cluster.is_none() {
        c.error("ERR This instance has cluster support disabled");
        return Flow::Done;
    }
    let sub = args.get(1);
    let argc = args.len();
    let view = core.cluster_view();
    let slot_arg = |b: &[u8]| ferrokv_cluster::parse_slot(b);
    macro_rules! arity {
        ($ok:expr) => {
            if !$ok {
                c.error(&format!(
                    "ERR wrong number of arguments for 'cluster|{}' command",
                    printable(sub, 64).to_lowercase()
                ));
                return Flow::Done;
            }
        };
    }
    if eq_ic(sub, "keyslot") {
        arity!(argc == 3);
        let s = key_slot(args.get(2)) as i64;
        c.reply(|r| r.integer(s));
    } else if eq_ic(sub, "countkeysinslot") {
        arity!(argc == 3);
        let Some(slot) = slot_arg(args.get(2)) else {
            c.error("ERR Invalid slot");
            return Flow::Done;
        };
        let node = core.node;
        // Keys of a slot being imported or trimmed are not counted (Redis 8.4).
        let n =
            held.with_db_of_slot(node, slot, |db| if db.slot_hidden(slot) { 0 } else { db.slot_len(slot) }).1 as i64;
        c.reply(|r| r.integer(n));
    } else if eq_ic(sub, "getkeysinslot") {
        arity!(argc == 4);
        let Some(slot) = slot_arg(args.get(2)) else {
            c.error("ERR Invalid slot");
            return Flow::Done;
        };
        let count = match ferrokv_commands::util::parse_i64(args.get(3)) {
            Some(n) if n >= 0 => n as usize,
            _ => {
                c.error("ERR Invalid number of keys");
                return Flow::Done;
            }
        };
        let now = crate::node::unix_ms();
        let node = core.node;
        let (_, keys): (_, Vec<Vec<u8>>) = held.with_db_of_slot(node, slot, |db| {
            let count = if db.slot_hidden(slot) { 0 } else { count };
            db.slot_keys(slot, now).take(count).map(|k| k.to_vec()).collect()
        });
        c.reply(|r| {
            r.array(keys.len());
            for k in &keys {
                r.bulk(k);
            }
        });
    } else if eq_ic(sub, "myid") {
        arity!(argc == 2);
        let id = view.me().id.as_str().to_string();
        c.reply(|r| r.bulk(id.as_bytes()));
    } else if eq_ic(sub, "myshardid") {
        arity!(argc == 2);
        c.error("ERR unknown subcommand 'myshardid'. Try CLUSTER HELP.");
    } else if eq_ic(sub, "nodes") {
        arity!(argc == 2);
        let text = ferrokv_cluster::cluster_nodes_text(&view);
        c.reply(|r| r.verbatim(text.as_bytes()));
    } else if eq_ic(sub, "info") {
        arity!(argc == 2);
        let mut text = ferrokv_cluster::cluster_info_text(&view);
        super::slot_migration::info_fields(core.node, &mut text);
        c.reply(|r| r.verbatim(text.as_bytes()));
    } else if eq_ic(sub, "slots") {
        arity!(argc == 2);
        let ranges = ferrokv_cluster::cluster_slots(&view);
        c.reply(|r| {
            r.array(ranges.len());
            for range in &ranges {
                r.array(3 + range.replicas.len());
                r.integer(range.start as i64);
                r.integer(range.end as i64);
                reply_info(r, &view, range.master, range.ports[0]);
                for (&rep, &port) in range.replicas.iter().zip(&range.ports[1..]) {
                    reply_info(r, &view, rep, port);
                }
            }
        });
    } else if eq_ic(sub, "shards") {
        arity!(argc == 2);
        let shards = ferrokv_cluster::cluster_shards(&view);
        c.reply(|r| {
            r.array(shards.len());
            for s in &shards {
                r.map(2);
                r.bulk(b"slots");
                r.array(s.slots.len() * 2);
                for (a, b) in &s.slots {
                    r.integer(*a as i64);
                    r.integer(*b as i64);
                }
                r.bulk(b"nodes");
                r.array(s.nodes.len());
                for n in &s.nodes {
                    r.map(if n.hostname.is_empty() { 7 } else { 8 });
                    r.bulk(b"id");
                    r.bulk(n.id.as_str().as_bytes());
                    r.bulk(b"port");
                    r.integer(n.port as i64);
                    r.bulk(b"ip");
                    r.bulk(n.ip.as_bytes());
                    r.bulk(b"endpoint");
                    r.bulk(n.endpoint.as_bytes());
                    if !n.hostname.is_empty() {
                        r.bulk(b"hostname");
                        r.bulk(n.hostname.as_bytes());
                    }
                    r.bulk(b"role");
                    r.bulk(n.role.as_bytes());
                    r.bulk(b"replication-offset");
                    r.integer(n.replication_offset as i64);
                    r.bulk(b"health");
                    r.bulk(n.health.as_bytes());
                }
            }
        });
    } else if eq_ic(sub, "replicas") || eq_ic(sub, "slaves") {
        arity!(argc == 3);
        match ferrokv_cluster::cluster_replicas(&view, args.get(2)) {
            Ok(lines) => c.reply(|r| {
                r.array(lines.len());
                for l in &lines {
                    r.bulk(l.as_bytes());
                }
            }),
            Err(e) => c.error(&e),
        }
    } else if eq_ic(sub, "links") {
        arity!(argc == 2);
        // The links live with the bus on shard 0.
        let seq = c.push_pending();
        c.barrier = Some(seq);
        core.send(0, Msg::ClusterLinks { from: core.id, token: c.token, seq, proto: c.proto });
    } else if eq_ic(sub, "slot-stats") {
        return crate::slot_stats::command(core, c, args);
    } else if eq_ic(sub, "migration") {
        return crate::slot_migration::migration_command(core, c, args);
    } else if eq_ic(sub, "migration-sync") {
        return crate::slot_migration::sync_command(core, c, args, &mut held);
    } else if eq_ic(sub, "help") {
        let lines = [
            "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ADDSLOTS, ADDSLOTSRANGE, BUMPEPOCH, COUNT-FAILURE-REPORTS, COUNTKEYSINSLOT, DELSLOTS, DELSLOTSRANGE,",
            "FLUSHSLOTS, FORGET, GETKEYSINSLOT, INFO, KEYSLOT, MEET, MYID, NODES, REPLICATE, REPLICAS, RESET,",
            "SAVECONFIG, SET-CONFIG-EPOCH, SETSLOT, SHARDS, SLAVES, SLOTS",
        ];
        c.reply(|r| {
            r.array(lines.len());
            for l in lines {
                r.simple(l);
            }
        });
    } else {
        let Some(cmd) = parse_state_command(core, args, &mut held) else {
            c.error(&format!("ERR unknown subcommand '{}'. Try CLUSTER HELP.", printable(sub, 128)));
            return Flow::Done;
        };
        match cmd {
            Err(e) => c.error(&e),
            Ok(cmd) => {
                // Runs on the bus; the connection waits for the answer before its next
                // command, so a pipelined CLUSTER NODES sees the change.
                let seq = c.push_pending();
                c.barrier = Some(seq);
                let m = Msg::Cluster { from: core.id, token: c.token, seq, proto: c.proto, cmd };
                core.send(0, m);
            }
        }
    }
    Flow::Done
}

/// The CLUSTER subcommands that the bus state machine applies; None when `args` is not one.
fn parse_state_command(core: &mut ShardCore, args: &Args, held: &mut Held) -> Option<Result<Command, String>> {
    let sub = args.get(1);
    let rest: Vec<Vec<u8>> = args.iter().skip(2).map(|a| a.to_vec()).collect();
    let n = rest.len();
    let wrong =
        || Err(format!("ERR wrong number of arguments for 'cluster|{}' command", printable(sub, 64).to_lowercase()));
    let db_empty = || core.node.shards.iter().all(|s| s.keys.load(Ordering::Relaxed) == 0);
    let cmd = if eq_ic(sub, "meet") {
        if !(2..=3).contains(&n) {
            return Some(wrong());
        }
        Command::Meet { ip: rest[0].clone(), port: rest[1].clone(), bus_port: rest.get(2).cloned() }
    } else if eq_ic(sub, "forget") {
        if n != 1 {
            return Some(wrong());
        }
        Command::Forget(rest[0].clone())
    } else if eq_ic(sub, "addslots") {
        if n == 0 {
            return Some(wrong());
        }
        Command::AddSlots(rest)
    } else if eq_ic(sub, "delslots") {
        if n == 0 {
            return Some(wrong());
        }
        Command::DelSlots(rest)
    } else if eq_ic(sub, "addslotsrange") {
        if n == 0 || !n.is_multiple_of(2) {
            return Some(wrong());
        }
        Command::AddSlotsRange(rest)
    } else if eq_ic(sub, "delslotsrange") {
        if n == 0 || !n.is_multiple_of(2) {
            return Some(wrong());
        }
        Command::DelSlotsRange(rest)
    } else if eq_ic(sub, "setslot") {
        if n < 2 {
            return Some(wrong());
        }
        let node = core.node;
        let keys_in_slot = ferrokv_cluster::parse_slot(&rest[0])
            .map_or(0, |s| held.with_db_of_slot(node, s, |db| db.slot_len(s)).1 as u64);
        Command::SetSlot { args: rest, keys_in_slot }
    } else if eq_ic(sub, "replicate") {
        if n != 1 {
            return Some(wrong());
        }
        Command::Replicate { node: rest[0].clone(), db_empty: db_empty() }
    } else if eq_ic(sub, "bumpepoch") {
        if n != 0 {
            return Some(wrong());
        }
        Command::BumpEpoch
    } else if eq_ic(sub, "set-config-epoch") {
        if n != 1 {
            return Some(wrong());
        }
        Command::SetConfigEpoch(rest[0].clone())
    } else if eq_ic(sub, "reset") {
        if n > 1 {
            return Some(wrong());
        }
        Command::Reset { mode: rest.first().cloned(), db_empty: db_empty() }
    } else if eq_ic(sub, "flushslots") {
        if n != 0 {
            return Some(wrong());
        }
        Command::FlushSlots { db_empty: db_empty() }
    } else if eq_ic(sub, "count-failure-reports") {
        if n != 1 {
            return Some(wrong());
        }
        Command::CountFailureReports(rest[0].clone())
    } else if eq_ic(sub, "failover") {
        if n > 1 {
            return Some(wrong());
        }
        Command::Failover { option: rest.first().cloned() }
    } else if eq_ic(sub, "saveconfig") {
        if n != 0 {
            return Some(wrong());
        }
        Command::SaveConfig
    } else {
        return None;
    };
    Some(Ok(cmd))
}

/// `CLUSTER SLOT-CORE <slot> [<core>]` (ferrokv's own, in standalone mode too): the
/// core (shard) of this node that serves `slot`, or hand the slot to `core` (the
/// balancer's handoff, see `crate::balance`); replies OK once it is there. Held off by
/// something that ends by itself (another handoff, a replica loading a full sync, a
/// snapshot being written), it waits for it without holding the shard: the connection
/// reads nothing more until the reply, and the shard's tick retries the handoff
/// ([`retry_slot_core`]).
fn slot_core(core: &mut ShardCore, c: &mut Conn, args: &Args, held: &Held) {
    if args.len() > 4 {
        c.error("ERR wrong number of arguments for 'cluster|slot-core' command");
        return;
    }
    let Some(slot) = ferrokv_cluster::parse_slot(args.get(2)) else {
        c.error("ERR Invalid or out of range slot");
        return;
    };
    if args.len() == 3 {
        let s = core.node.shard_of_slot(slot) as i64;
        c.reply(|r| r.integer(s));
        return;
    }
    let Some(to) = std::str::from_utf8(args.get(3)).ok().and_then(|s| s.parse::<usize>().ok()) else {
        c.error("ERR Invalid core");
        return;
    };
    if !matches!(held, Held::Nothing) {
        // Inside EXEC every lock is held already.
        c.error("ERR CLUSTER SLOT-CORE is not allowed inside a transaction");
        return;
    }
    match crate::balance::move_slot(core.node, slot, to, None) {
        Ok(_) => c.reply(|r| r.ok()),
        Err(crate::balance::Refused::Busy(_)) => {
            let seq = c.push_pending();
            c.barrier = Some(seq);
            core.slot_core_waits.push(SlotCoreWait { token: c.token, seq, proto: c.proto, slot, to });
        }
        Err(e) => c.error(&e.message()),
    }
}

/// A `CLUSTER SLOT-CORE <slot> <core>` waiting for its handoff (see [`slot_core`]).
pub struct SlotCoreWait {
    token: u64,
    seq: u64,
    proto: ferrokv_resp::Proto,
    slot: u16,
    to: usize,
}

/// Tries the waiting `CLUSTER SLOT-CORE` handoffs of this shard's connections again
/// (every tick); those done, or refused for good, get their reply. A closed
/// connection's handoff is dropped.
pub fn retry_slot_core(core: &mut ShardCore, conns: &mut crate::conn::ConnTable, touched: &mut Vec<usize>) {
    if core.slot_core_waits.is_empty() {
        return;
    }
    for w in std::mem::take(&mut core.slot_core_waits) {
        let Some((idx, c)) = conns.by_token(w.token) else { continue };
        let mut out = ReplyBuf::new(w.proto);
        match crate::balance::move_slot(core.node, w.slot, w.to, None) {
            Err(crate::balance::Refused::Busy(_)) => {
                core.slot_core_waits.push(w);
                continue;
            }
            Ok(_) => out.ok(),
            Err(e) => out.error(&e.message()),
        }
        c.complete(w.seq, out.buf);
        core.check_output(c);
        core.unblock_and_resume(c, w.seq);
        touched.push(idx);
    }
}
