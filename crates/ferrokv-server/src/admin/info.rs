//! INFO: Redis's sections and field names, for the fields ferrokv tracks.
//!
//! INFO never takes a keyspace lock (it may run inside EXEC, which holds them): key
//! counts come from the counters each shard publishes after it changes its keyspace.

use crate::cmds::REDIS_VERSION;
use crate::node::{unix_us, Node};
use ferrokv_resp::Args;
use std::fmt::Write;
use std::sync::atomic::Ordering;

const DEFAULT: &[&str] =
    &["server", "clients", "memory", "persistence", "stats", "replication", "cpu", "errorstats", "cluster", "keyspace"];
/// Redis's order of every section (`commandstats` is not in the default set).
const ALL: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "commandstats",
    "errorstats",
    "cluster",
    "keyspace",
    // ferrokv's own, only when asked by name (not in `all`, so INFO ALL reads as Redis's).
    "shards",
];

pub fn render(node: &Node, args: &Args) -> String {
    let mut wanted: Vec<String> =
        args.iter().skip(1).map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()).collect();
    if wanted.is_empty() || wanted.iter().any(|w| w == "default") {
        wanted.extend(DEFAULT.iter().map(|s| s.to_string()));
    }
    if wanted.iter().any(|w| w == "all" || w == "everything") {
        wanted.extend(ALL.iter().filter(|s| **s != "shards").map(|s| s.to_string()));
    }
    let mut out = String::new();
    for section in ALL {
        if !wanted.iter().any(|w| w == section) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        match *section {
            "server" => server(node, &mut out),
            "clients" => clients(node, &mut out),
            "memory" => memory(node, &mut out),
            "persistence" => crate::persist::info(node, &mut out),
            "stats" => stats(node, &mut out),
            "replication" => replication(node, &mut out),
            "cpu" => cpu(&mut out),
            "cluster" => {
                let on = node.cluster.is_some() as u8;
                let _ = write!(out, "# Cluster\r\ncluster_enabled:{on}\r\n");
                if on == 1 {
                    crate::slot_migration::info_fields(node, &mut out);
                }
            }
            "keyspace" => keyspace(node, &mut out),
            "commandstats" => commandstats(node, &mut out),
            "errorstats" => errorstats(node, &mut out),
            "shards" => shards(node, &mut out),
            _ => {}
        }
    }
    out
}

fn server(node: &Node, o: &mut String) {
    let cfg = node.config();
    let up = node.started.elapsed().as_secs();
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default();
    let _ = write!(
        o,
        "# Server\r\nredis_version:{REDIS_VERSION}\r\nferrokv_version:{}\r\nredis_mode:{}\r\nos:{} {}\r\narch_bits:64\r\nmultiplexing_api:io_uring\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{up}\r\nuptime_in_days:{}\r\nhz:{}\r\nserver_threads:{}\r\nexecutable:{exe}\r\nconfig_file:{}\r\n",
        env!("CARGO_PKG_VERSION"),
        if node.cluster.is_some() { "cluster" } else { "standalone" },
        std::env::consts::OS,
        std::env::consts::ARCH,
        std::process::id(),
        node.run_id,
        cfg.port,
        unix_us(),
        up / 86400,
        cfg.hz,
        node.shard_count(),
        cfg.config_file,
    );
    if let Some(ms) = node.shutdown_state.remaining_ms() {
        let _ = write!(o, "shutdown_in_milliseconds:{}\r\n", ms.max(0));
    }
}

fn clients(node: &Node, o: &mut String) {
    let [_, _, max_input, max_output, _] = crate::client_mem::node_figures(node);
    let _ = write!(
        o,
        "# Clients\r\nconnected_clients:{}\r\ncluster_connections:{}\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:{max_input}\r\nclient_recent_max_output_buffer:{max_output}\r\nblocked_clients:{}\r\n",
        node.connected_clients(),
        // As Redis's getClusterConnectionsCount: a link each way to every other node.
        node.cluster.as_ref().map_or(0, |c| c.view().nodes.len().saturating_sub(1) * 2),
        node.config().maxclients,
        node.shards.iter().map(|s| s.blocked_clients.load(Ordering::Relaxed)).sum::<u64>(),
    );
    let _ = write!(
        o,
        "tracking_clients:{}\r\nclients_in_timeout_table:{}\r\n",
        node.tracking.clients.load(Ordering::Relaxed),
        node.shards.iter().map(|s| s.timeout_clients.load(Ordering::Relaxed)).sum::<u64>()
    );
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{bytes}B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", b / 1024.0 / 1024.0)
    } else {
        format!("{:.2}G", b / 1024.0 / 1024.0 / 1024.0)
    }
}

/// Redis 7.0's INFO memory fields, in its order. What ferrokv has no counterpart for
/// (the functions' own VM, cluster links, the AOF buffer, lazy freeing, defragmentation)
/// reads 0; see docs/architecture.md "Memory".
fn memory(node: &Node, o: &mut String) {
    let f = crate::memory_cmds::Figures::gather(node);
    let (used, rss, peak, startup, backlog, overhead, dataset) =
        (f.used, f.rss, f.peak, f.startup, f.backlog, f.overhead, f.dataset);
    let (maxmemory, policy, total) = {
        let cfg = node.config();
        (cfg.maxmemory, cfg.maxmemory_policy.clone(), crate::memory::total_system_memory())
    };
    let [af, ar, ro, fr] = f.frag();
    let (clients_normal, clients_replicas) = (f.clients_normal, f.clients_replicas);
    let a = f.alloc;
    let _ = write!(
        o,
        "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\n\
used_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{:.2}%\r\n\
used_memory_overhead:{overhead}\r\nused_memory_startup:{startup}\r\nused_memory_dataset:{dataset}\r\n\
used_memory_dataset_perc:{:.2}%\r\nallocator_allocated:{}\r\nallocator_active:{}\r\nallocator_resident:{}\r\n\
total_system_memory:{total}\r\ntotal_system_memory_human:{}\r\n",
        human(used),
        human(rss),
        human(peak),
        f.peak_perc(),
        f.dataset_perc(),
        a.allocated,
        a.active,
        a.resident,
        human(total),
    );
    // Scripting: every shard thread's Lua state counts as the eval VM (functions run
    // in the same states), the cached scripts' bodies and the libraries' code.
    let s = ferrokv_commands::scripting::memory();
    let (libraries, functions) = ferrokv_commands::scripting::functions::counts();
    let _ = write!(
        o,
        "used_memory_lua:{lua}\r\nused_memory_vm_eval:{lua}\r\nused_memory_lua_human:{}\r\n\
used_memory_scripts_eval:{}\r\nnumber_of_cached_scripts:{}\r\nnumber_of_functions:{functions}\r\n\
number_of_libraries:{libraries}\r\nused_memory_vm_functions:0\r\nused_memory_vm_total:{lua}\r\n\
used_memory_vm_total_human:{}\r\nused_memory_functions:{}\r\nused_memory_scripts:{}\r\n\
used_memory_scripts_human:{}\r\n",
        human(s.lua as u64),
        s.scripts_bytes,
        s.scripts,
        human(s.lua as u64),
        s.functions_bytes,
        s.scripts_bytes + s.functions_bytes,
        human((s.scripts_bytes + s.functions_bytes) as u64),
        lua = s.lua,
    );
    let _ = write!(
        o,
        "maxmemory:{maxmemory}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{policy}\r\n\
allocator_frag_ratio:{:.2}\r\nallocator_frag_bytes:{}\r\nallocator_rss_ratio:{:.2}\r\nallocator_rss_bytes:{}\r\n\
rss_overhead_ratio:{:.2}\r\nrss_overhead_bytes:{}\r\nmem_fragmentation_ratio:{:.2}\r\nmem_fragmentation_bytes:{}\r\n\
mem_not_counted_for_evict:{}\r\nmem_replication_backlog:{backlog}\r\nmem_total_replication_buffers:{backlog}\r\n\
mem_clients_slaves:{clients_replicas}\r\nmem_clients_normal:{clients_normal}\r\nmem_cluster_links:0\r\nmem_aof_buffer:0\r\n\
mem_allocator:{}\r\nactive_defrag_running:{}\r\nlazyfree_pending_objects:0\r\nlazyfreed_objects:0\r\n",
        human(maxmemory),
        af.0,
        af.1,
        ar.0,
        ar.1,
        ro.0,
        ro.1,
        fr.0,
        fr.1,
        crate::maxmemory::not_counted(node),
        crate::memory::ALLOCATOR,
        node.shards.iter().map(|s| s.defrag.running.load(Ordering::Relaxed)).max().unwrap_or(0),
    );
}

fn stats(node: &Node, o: &mut String) {
    let sum = |f: fn(&crate::node::ShardShared) -> u64| node.shards.iter().map(f).sum::<u64>();
    let errors: u64 = error_counts(node).values().sum();
    let _ = write!(
        o,
        "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nevicted_clients:{}\r\ntotal_error_replies:{errors}\r\n",
        node.total_connections.load(Ordering::Relaxed),
        sum(|s| s.commands_processed.load(Ordering::Relaxed)),
        node.rejected_connections.load(Ordering::Relaxed),
        sum(|s| s.expired_keys.load(Ordering::Relaxed)),
        node.evicted_keys.load(Ordering::Relaxed),
        sum(|s| s.clients.evicted.load(Ordering::Relaxed)),
    );
    let r = &node.repl;
    let _ = write!(
        o,
        "sync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\n",
        r.sync_full.load(Ordering::Relaxed),
        r.sync_partial_ok.load(Ordering::Relaxed),
        r.sync_partial_err.load(Ordering::Relaxed),
    );
    // Compaction of the keyspace's records (exec/defrag.rs): every record is a key.
    let (hits, misses) =
        (sum(|s| s.defrag.hits.load(Ordering::Relaxed)), sum(|s| s.defrag.misses.load(Ordering::Relaxed)));
    let now = crate::node::unix_ms();
    let current = node
        .shards
        .iter()
        .map(|s| s.defrag.started_ms.load(Ordering::Relaxed))
        .filter(|&t| t != 0)
        .min()
        .map_or(0, |t| now.saturating_sub(t));
    let _ = write!(
        o,
        "active_defrag_hits:{hits}\r\nactive_defrag_misses:{misses}\r\nactive_defrag_key_hits:{hits}\r\nactive_defrag_key_misses:{misses}\r\ntotal_active_defrag_time:{}\r\ncurrent_active_defrag_time:{current}\r\n",
        sum(|s| s.defrag.total_us.load(Ordering::Relaxed)) / 1000,
    );
    let (keys, items, prefixes) = crate::tracking::totals(node);
    let _ = write!(
        o,
        "tracking_total_keys:{keys}\r\ntracking_total_items:{items}\r\ntracking_total_prefixes:{prefixes}\r\n"
    );
}

/// Error replies by code, summed over the shards.
fn error_counts(node: &Node) -> std::collections::BTreeMap<String, u64> {
    let mut all = std::collections::BTreeMap::new();
    for s in node.shards.iter() {
        for (code, n) in s.errorstats.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            *all.entry(code.clone()).or_insert(0) += n;
        }
    }
    all
}

/// `errorstat_<CODE>:count=<n>` for every error code replied since the last reset.
fn errorstats(node: &Node, o: &mut String) {
    o.push_str("# Errorstats\r\n");
    for (code, n) in error_counts(node) {
        let _ = write!(o, "errorstat_{code}:count={n}\r\n");
    }
}

/// `cmdstat_<name>:calls=..,usec=..,usec_per_call=..,rejected_calls=..,failed_calls=..`
/// for every command (and subcommand, as `parent|sub`) called or rejected since the
/// last reset, summed over the shards.
fn commandstats(node: &Node, o: &mut String) {
    o.push_str("# Commandstats\r\n");
    let per_us = crate::node::cycles_per_us();
    for i in 0..ferrokv_commands::table::id_count() {
        let total = |f: fn(&crate::node::CmdStat) -> &std::sync::atomic::AtomicU64| -> u64 {
            node.shards.iter().filter_map(|s| s.cmdstats.get(i)).map(|c| f(c).load(Ordering::Relaxed)).sum()
        };
        let (calls, cycles) = (total(|c| &c.calls), total(|c| &c.cycles));
        let (rejected, failed) = (total(|c| &c.rejected), total(|c| &c.failed));
        if calls == 0 && rejected == 0 && failed == 0 {
            continue;
        }
        let Some(spec) = ferrokv_commands::table::by_id(ferrokv_commands::table::CommandId(i as u16)) else { continue };
        let usec = (cycles as f64 / per_us) as u64;
        let per_call = if calls == 0 { 0.0 } else { usec as f64 / calls as f64 };
        let _ = write!(
            o,
            "cmdstat_{}:calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls={rejected},failed_calls={failed}\r\n",
            spec.name
        );
    }
}

fn replication(node: &Node, o: &mut String) {
    crate::repl::info(node, o);
}

fn cpu(o: &mut String) {
    // SAFETY: getrusage fills a local struct.
    let (user, sys) = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        (t(ru.ru_utime), t(ru.ru_stime))
    };
    let _ = write!(o, "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\n");
}

fn keyspace(node: &Node, o: &mut String) {
    o.push_str("# Keyspace\r\n");
    let databases = node.shards.first().map_or(1, |s| s.db_counts.len());
    for n in 0..databases {
        // Each shard estimates its keys' mean TTL as Redis does for a database; the
        // node's is their mean weighted by keys with a TTL, over the shards that have an
        // estimate (a shard whose expiry cycle has not sampled yet says 0, which is no
        // estimate, not a TTL of 0).
        let (mut keys, mut expires, mut estimated, mut ttl_weighted) = (0, 0, 0u128, 0u128);
        for s in node.shards.iter() {
            let (k, e) = s.counts_of(n);
            keys += k;
            expires += e;
            let avg = s.avg_ttl.get(n).map_or(0, |a| a.load(Ordering::Relaxed));
            if avg > 0 {
                ttl_weighted += avg as u128 * e as u128;
                estimated += e as u128;
            }
        }
        if keys > 0 {
            let avg_ttl = if estimated == 0 { 0 } else { ttl_weighted / estimated };
            let _ = write!(o, "db{n}:keys={keys},expires={expires},avg_ttl={avg_ttl}\r\n");
        }
    }
}

/// `INFO shards` (ferrokv's own): one line per shard with its own port (`core-ports`,
/// 0 when none) and where its traffic went — data commands of its connections run
/// here (`local`), sent to the owning shard (`forwarded`), run here under the owning
/// shard's lock (`locked`, with `shard-hop lock`) or under several shards'
/// locks (`multi`); commands other shards sent here (`received`); connections and
/// commands on its own port. A cluster client routing to the owning core shows
/// `forwarded=0` everywhere.
fn shards(node: &Node, o: &mut String) {
    let ports = crate::config::core_port_list(&node.config().core_ports, node.shard_count()).unwrap_or_default();
    // Slots served: in cluster mode the node's own (a replica's master's), else all.
    let served = node.cluster.as_ref().map(|c| crate::balance::served_slots(&c.view()));
    let mut slots = vec![0u32; node.shard_count()];
    for slot in 0..ferrokv_store::SLOTS as u16 {
        if served.as_ref().is_none_or(|s| s[slot as usize]) {
            slots[node.shard_of_slot(slot)] += 1;
        }
    }
    o.push_str("# Shards\r\n");
    for (i, s) in node.shards.iter().enumerate() {
        let r = &s.routing;
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let _ = write!(
            o,
            "shard{i}:core_port={},connected_clients={},core_port_clients={},commands={},core_port_commands={},local={},forwarded={},locked={},received={},multi={},slots={},load_usec={},handoffs_in={},handoffs_out={}\r\n",
            ports.get(i).copied().unwrap_or(0),
            get(&s.connected_clients),
            get(&r.core_port_clients),
            get(&s.commands_processed),
            get(&r.core_port_commands),
            get(&r.local),
            get(&r.forwarded),
            get(&r.locked),
            get(&r.received),
            get(&r.multi),
            slots[i],
            (get(&s.load.cycles) as f64 / crate::node::cycles_per_us()) as u64,
            get(&s.handoffs_in),
            get(&s.handoffs_out),
        );
    }
}
