//! Configuration: redis.conf syntax, `--name value` arguments, CONFIG GET/SET.
//!
//! Every option ferrokv implements is one [`OptionSpec`] in [`OPTIONS`]: its name, kind,
//! default and whether CONFIG SET may change it at run time. Values are kept as typed
//! fields of [`Config`]. Every other directive of Redis 7.0's redis.conf is a
//! [`Lacking`] entry in [`LACKING`] (`lacking.rs`): known, its value kept for CONFIG GET,
//! and either without effect yet (listed in one start-up warning) or refused at a value
//! the user would rely on (naming the missing feature).
//!
//! Start-up reads the whole configuration and reports every problem at once, one line
//! each, then exits 1.

use std::collections::BTreeMap;
use std::fmt;

#[path = "lacking.rs"]
mod lacking;
#[path = "rewrite.rs"]
pub mod rewrite;
pub use lacking::{Lacking, LACKING};

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub port: u16,
    pub bind: Vec<String>,
    pub dir: String,
    pub loglevel: String,
    pub logfile: String,
    pub pidfile: String,
    pub server_threads: usize,
    pub maxclients: u64,
    pub timeout: u64,
    pub tcp_keepalive: u64,
    pub requirepass: String,
    /// `notify-keyspace-events` as given (validated; CONFIG GET shows it canonical).
    pub notify_keyspace_events: String,
    pub proto_max_bulk_len: u64,
    pub client_query_buffer_limit: u64,
    pub hz: u64,
    pub databases: u64,
    pub save: String,
    pub dbfilename: String,
    pub rdbcompression: bool,
    pub rdbchecksum: bool,
    pub stop_writes_on_bgsave_error: bool,
    pub rdb_del_sync_files: bool,
    pub appendonly: bool,
    pub appendfilename: String,
    pub appenddirname: String,
    pub appendfsync: String,
    pub no_appendfsync_on_rewrite: bool,
    pub auto_aof_rewrite_percentage: u64,
    pub auto_aof_rewrite_min_size: u64,
    pub aof_use_rdb_preamble: bool,
    pub aof_load_truncated: bool,
    pub aof_timestamp_enabled: bool,
    pub daemonize: bool,
    pub protected_mode: bool,
    pub hash_max_listpack_entries: u64,
    pub hash_max_listpack_value: u64,
    pub set_max_intset_entries: u64,
    pub set_max_listpack_entries: u64,
    pub set_max_listpack_value: u64,
    pub zset_max_listpack_entries: u64,
    pub zset_max_listpack_value: u64,
    pub list_max_listpack_size: i64,
    pub list_compress_depth: u64,
    pub cluster_enabled: bool,
    pub cluster_config_file: String,
    pub cluster_node_timeout: u64,
    /// Redis 8.4's `cluster-slot-migration-write-pause-timeout` (ms): how long a
    /// whole-slot migration's source holds writes waiting for the target's claim.
    pub cluster_slot_migration_write_pause_timeout: u64,
    /// Redis 8.2's `cluster-slot-stats-enabled`: CLUSTER SLOT-STATS's CPU and network
    /// counters.
    pub cluster_slot_stats_enabled: bool,
    pub cluster_port: u64,
    pub cluster_announce_ip: String,
    pub cluster_announce_port: u64,
    /// `core-ports`: each shard's own client port (one port: the first of consecutive
    /// ones; several: one per shard); empty: none. See [`core_port_list`].
    pub core_ports: String,
    /// `cluster-announce-core-ports`: what cluster mode advertises for them.
    pub cluster_announce_core_ports: String,
    /// `shard-hop`: `forward` a command whose keys live on another shard to it, or run
    /// it here under that shard's `lock`.
    pub shard_hop: String,
    /// `shard-balance`: hand hot slots from a busier shard to a less busy one
    /// (`crate::balance`).
    pub shard_balance: bool,
    /// `shard-balance-threshold`: the load gap, in percent of the busier shard's, at
    /// which the balancer moves slots.
    pub shard_balance_threshold: u64,
    pub cluster_announce_bus_port: u64,
    pub cluster_require_full_coverage: bool,
    pub cluster_allow_reads_when_down: bool,
    pub cluster_replica_validity_factor: u64,
    pub cluster_migration_barrier: u64,
    pub cluster_allow_replica_migration: bool,
    pub cluster_replica_no_failover: bool,
    pub replicaof: String,
    pub masterauth: String,
    pub masteruser: String,
    pub repl_diskless_sync: bool,
    pub repl_diskless_sync_delay: u64,
    pub repl_diskless_sync_max_replicas: u64,
    pub repl_diskless_load: String,
    pub repl_backlog_size: u64,
    pub repl_backlog_ttl: u64,
    pub repl_timeout: u64,
    pub repl_ping_replica_period: u64,
    pub repl_disable_tcp_nodelay: bool,
    pub min_replicas_to_write: u64,
    pub min_replicas_max_lag: u64,
    pub replica_priority: u64,
    pub replica_announce_ip: String,
    pub replica_announce_port: u64,
    pub replica_announced: bool,
    pub replica_lazy_flush: bool,
    pub replica_read_only: bool,
    pub replica_serve_stale_data: bool,
    /// `busy-reply-threshold` (`lua-time-limit`): ms a script runs before other clients
    /// get BUSY.
    pub busy_reply_threshold: u64,
    pub replica_ignore_maxmemory: bool,
    pub client_output_buffer_limit: String,
    /// `maxmemory-clients`: bytes, or a percentage of `maxmemory` (`10%`), as given.
    pub maxmemory_clients: String,
    pub maxmemory: u64,
    pub maxmemory_policy: String,
    pub maxmemory_samples: u64,
    pub tracking_table_max_keys: u64,
    pub maxmemory_eviction_tenacity: u64,
    pub lfu_log_factor: u64,
    pub lfu_decay_time: u64,
    pub lazyfree_lazy_eviction: bool,
    pub activedefrag: bool,
    pub active_defrag_ignore_bytes: u64,
    pub active_defrag_threshold_lower: u64,
    pub active_defrag_threshold_upper: u64,
    pub active_defrag_cycle_min: u64,
    pub active_defrag_cycle_max: u64,
    pub active_defrag_max_scan_fields: u64,
    pub io_batch: u64,
    pub io_min_wait_us: u64,
    pub tcp_backlog: u64,
    pub unixsocket: String,
    pub unixsocketperm: u32,
    pub always_show_logo: bool,
    pub set_proc_title: bool,
    pub proc_title_template: String,
    pub oom_score_adj: String,
    pub oom_score_adj_values: String,
    pub disable_thp: bool,
    pub supervised: String,
    pub syslog_enabled: bool,
    pub syslog_ident: String,
    pub syslog_facility: String,
    /// `enable-debug-command`: no, yes or local (DEBUG from loopback and Unix sockets).
    pub enable_debug_command: String,
    /// Seconds SHUTDOWN (without NOW) and SIGTERM wait for lagging replicas.
    pub shutdown_timeout: u64,
    /// SHUTDOWN's flags for SIGINT and SIGTERM, as CONFIG GET shows them ("default",
    /// or some of "save nosave now force").
    pub shutdown_on_sigint: String,
    pub shutdown_on_sigterm: String,
    /// Values of the directives in [`LACKING`] that were given (the others are at
    /// their defaults).
    pub lacking: BTreeMap<&'static str, String>,
    /// The config file given on the command line, for INFO.
    pub config_file: String,
}

impl Config {
    /// The part of the configuration that data commands see.
    pub fn exec_config(&self) -> ferrokv_commands::ExecConfig {
        ferrokv_commands::ExecConfig {
            proto_max_bulk_len: self.proto_max_bulk_len,
            hash_max_listpack_entries: self.hash_max_listpack_entries,
            hash_max_listpack_value: self.hash_max_listpack_value,
            set_max_intset_entries: self.set_max_intset_entries,
            set_max_listpack_entries: self.set_max_listpack_entries,
            set_max_listpack_value: self.set_max_listpack_value,
            zset_max_listpack_entries: self.zset_max_listpack_entries,
            zset_max_listpack_value: self.zset_max_listpack_value,
            list_max_listpack_size: self.list_max_listpack_size,
            list_compress_depth: self.list_compress_depth,
            cluster_mode: self.cluster_enabled,
            rdb_compression: self.rdbcompression,
            databases: self.databases as usize,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 6379,
            bind: vec!["127.0.0.1".into()],
            dir: std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| ".".into()),
            loglevel: "notice".into(),
            logfile: String::new(),
            pidfile: String::new(),
            server_threads: 0,
            maxclients: 10000,
            timeout: 0,
            tcp_keepalive: 300,
            requirepass: String::new(),
            notify_keyspace_events: String::new(),
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            hz: 10,
            databases: 16,
            save: "3600 1 300 100 60 10000".into(),
            dbfilename: "dump.rdb".into(),
            rdbcompression: true,
            rdbchecksum: true,
            stop_writes_on_bgsave_error: true,
            rdb_del_sync_files: false,
            appendonly: false,
            appendfilename: "appendonly.aof".into(),
            appenddirname: "appendonlydir".into(),
            appendfsync: "everysec".into(),
            no_appendfsync_on_rewrite: false,
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 * 1024 * 1024,
            aof_use_rdb_preamble: true,
            aof_load_truncated: true,
            aof_timestamp_enabled: false,
            daemonize: false,
            protected_mode: true,
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 128,
            set_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            list_max_listpack_size: -2,
            list_compress_depth: 0,
            cluster_enabled: false,
            cluster_config_file: "nodes.conf".into(),
            cluster_node_timeout: 15000,
            cluster_slot_migration_write_pause_timeout: 10000,
            cluster_slot_stats_enabled: false,
            cluster_port: 0,
            cluster_announce_ip: String::new(),
            cluster_announce_port: 0,
            core_ports: String::new(),
            cluster_announce_core_ports: String::new(),
            shard_hop: "lock".into(),
            shard_balance: false,
            shard_balance_threshold: 20,
            cluster_announce_bus_port: 0,
            cluster_require_full_coverage: true,
            cluster_allow_reads_when_down: false,
            cluster_replica_validity_factor: 10,
            cluster_migration_barrier: 1,
            cluster_allow_replica_migration: true,
            cluster_replica_no_failover: false,
            replicaof: String::new(),
            masterauth: String::new(),
            masteruser: String::new(),
            repl_diskless_sync: true,
            repl_diskless_sync_delay: 5,
            repl_diskless_sync_max_replicas: 0,
            repl_diskless_load: "disabled".into(),
            repl_backlog_size: 1024 * 1024,
            repl_backlog_ttl: 3600,
            repl_timeout: 60,
            repl_ping_replica_period: 10,
            repl_disable_tcp_nodelay: false,
            min_replicas_to_write: 0,
            min_replicas_max_lag: 10,
            replica_priority: 100,
            replica_announce_ip: String::new(),
            replica_announce_port: 0,
            replica_announced: true,
            replica_lazy_flush: false,
            replica_read_only: true,
            replica_serve_stale_data: true,
            busy_reply_threshold: 5000,
            replica_ignore_maxmemory: true,
            client_output_buffer_limit: "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60".into(),
            maxmemory_clients: "0".into(),
            maxmemory: 0,
            maxmemory_policy: "noeviction".into(),
            maxmemory_samples: 5,
            tracking_table_max_keys: 1_000_000,
            maxmemory_eviction_tenacity: 10,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
            lazyfree_lazy_eviction: false,
            activedefrag: false,
            active_defrag_ignore_bytes: 100 << 20,
            active_defrag_threshold_lower: 10,
            active_defrag_threshold_upper: 100,
            active_defrag_cycle_min: 1,
            active_defrag_cycle_max: 25,
            active_defrag_max_scan_fields: 1000,
            io_batch: 8,
            io_min_wait_us: 50,
            tcp_backlog: 511,
            unixsocket: String::new(),
            unixsocketperm: 0,
            always_show_logo: false,
            set_proc_title: true,
            proc_title_template: "{title} {listen-addr} {server-mode}".into(),
            oom_score_adj: "no".into(),
            oom_score_adj_values: "0 200 800".into(),
            disable_thp: true,
            supervised: "no".into(),
            syslog_enabled: false,
            syslog_ident: "redis".into(),
            syslog_facility: "local0".into(),
            enable_debug_command: "no".into(),
            shutdown_timeout: 10,
            shutdown_on_sigint: "default".into(),
            shutdown_on_sigterm: "default".into(),
            lacking: BTreeMap::new(),
            config_file: String::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int {
        min: i64,
        max: i64,
    },
    Memory,
    Bool,
    Str,
    /// An octal number (unixsocketperm).
    Octal,
    Enum(&'static [&'static str]),
    /// Several words (bind, save).
    Words,
}

pub struct OptionSpec {
    pub name: &'static str,
    kind: Kind,
    pub mutable: bool,
    get: fn(&Config) -> String,
    set: fn(&mut Config, &str),
}

macro_rules! opt {
    ($name:literal, $kind:expr, $mutable:expr, $field:ident, int) => {
        OptionSpec {
            name: $name,
            kind: $kind,
            mutable: $mutable,
            get: |c| c.$field.to_string(),
            set: |c, v| c.$field = v.parse().unwrap_or_default(),
        }
    };
    ($name:literal, $kind:expr, $mutable:expr, $field:ident, mem) => {
        OptionSpec {
            name: $name,
            kind: $kind,
            mutable: $mutable,
            get: |c| c.$field.to_string(),
            set: |c, v| c.$field = parse_memory(v).unwrap_or_default(),
        }
    };
    ($name:literal, $kind:expr, $mutable:expr, $field:ident, bool) => {
        OptionSpec {
            name: $name,
            kind: $kind,
            mutable: $mutable,
            get: |c| if c.$field { "yes".into() } else { "no".into() },
            set: |c, v| c.$field = v.eq_ignore_ascii_case("yes"),
        }
    };
    ($name:literal, $kind:expr, $mutable:expr, $field:ident, str) => {
        OptionSpec {
            name: $name,
            kind: $kind,
            mutable: $mutable,
            get: |c| c.$field.clone(),
            set: |c, v| c.$field = v.to_string(),
        }
    };
}

const LOGLEVELS: &[&str] = &["debug", "verbose", "notice", "warning", "nothing"];

pub static OPTIONS: &[OptionSpec] = &[
    opt!("port", Kind::Int { min: 0, max: 65535 }, false, port, int),
    OptionSpec {
        name: "bind",
        kind: Kind::Words,
        mutable: false,
        get: |c| c.bind.join(" "),
        set: |c, v| c.bind = v.split_whitespace().map(String::from).collect(),
    },
    opt!("dir", Kind::Str, false, dir, str),
    opt!("loglevel", Kind::Enum(LOGLEVELS), true, loglevel, str),
    opt!("logfile", Kind::Str, false, logfile, str),
    opt!("pidfile", Kind::Str, false, pidfile, str),
    opt!("server-threads", Kind::Int { min: 0, max: 1024 }, false, server_threads, int),
    opt!("shard-hop", Kind::Enum(&["forward", "lock"]), true, shard_hop, str),
    opt!("shard-balance", Kind::Bool, true, shard_balance, bool),
    opt!("shard-balance-threshold", Kind::Int { min: 1, max: 100 }, true, shard_balance_threshold, int),
    opt!("maxclients", Kind::Int { min: 1, max: i64::MAX }, true, maxclients, int),
    opt!("timeout", Kind::Int { min: 0, max: i64::MAX }, true, timeout, int),
    opt!("tcp-keepalive", Kind::Int { min: 0, max: i64::MAX }, true, tcp_keepalive, int),
    opt!("requirepass", Kind::Str, true, requirepass, str),
    OptionSpec {
        name: "notify-keyspace-events",
        kind: Kind::Str,
        mutable: true,
        get: |c| ferrokv_commands::notify::flags_to_string(c.notify_flags()),
        set: |c, v| c.notify_keyspace_events = v.to_string(),
    },
    opt!("proto-max-bulk-len", Kind::Memory, true, proto_max_bulk_len, mem),
    opt!("client-query-buffer-limit", Kind::Memory, true, client_query_buffer_limit, mem),
    opt!("hz", Kind::Int { min: 0, max: i64::MAX }, true, hz, int),
    opt!("databases", Kind::Int { min: 1, max: i32::MAX as i64 }, false, databases, int),
    OptionSpec {
        name: "save",
        kind: Kind::Words,
        mutable: true,
        get: |c| c.save.clone(),
        set: |c, v| c.save = v.split_whitespace().collect::<Vec<_>>().join(" "),
    },
    opt!("dbfilename", Kind::Str, true, dbfilename, str),
    opt!("rdbcompression", Kind::Bool, true, rdbcompression, bool),
    opt!("rdbchecksum", Kind::Bool, true, rdbchecksum, bool),
    opt!("stop-writes-on-bgsave-error", Kind::Bool, true, stop_writes_on_bgsave_error, bool),
    opt!("rdb-del-sync-files", Kind::Bool, true, rdb_del_sync_files, bool),
    opt!("appendonly", Kind::Bool, true, appendonly, bool),
    opt!("appendfilename", Kind::Str, false, appendfilename, str),
    opt!("appenddirname", Kind::Str, false, appenddirname, str),
    opt!("appendfsync", Kind::Enum(&["always", "everysec", "no"]), true, appendfsync, str),
    opt!("no-appendfsync-on-rewrite", Kind::Bool, true, no_appendfsync_on_rewrite, bool),
    opt!(
        "auto-aof-rewrite-percentage",
        Kind::Int { min: 0, max: i32::MAX as i64 },
        true,
        auto_aof_rewrite_percentage,
        int
    ),
    opt!("auto-aof-rewrite-min-size", Kind::Memory, true, auto_aof_rewrite_min_size, mem),
    opt!("aof-use-rdb-preamble", Kind::Bool, true, aof_use_rdb_preamble, bool),
    opt!("aof-load-truncated", Kind::Bool, true, aof_load_truncated, bool),
    opt!("aof-timestamp-enabled", Kind::Bool, true, aof_timestamp_enabled, bool),
    opt!("daemonize", Kind::Bool, false, daemonize, bool),
    opt!("protected-mode", Kind::Bool, true, protected_mode, bool),
    opt!("hash-max-listpack-entries", Kind::Memory, true, hash_max_listpack_entries, mem),
    opt!("hash-max-listpack-value", Kind::Memory, true, hash_max_listpack_value, mem),
    opt!("set-max-intset-entries", Kind::Memory, true, set_max_intset_entries, mem),
    opt!("set-max-listpack-entries", Kind::Memory, true, set_max_listpack_entries, mem),
    opt!("set-max-listpack-value", Kind::Memory, true, set_max_listpack_value, mem),
    opt!("zset-max-listpack-entries", Kind::Memory, true, zset_max_listpack_entries, mem),
    opt!("zset-max-listpack-value", Kind::Memory, true, zset_max_listpack_value, mem),
    opt!(
        "list-max-listpack-size",
        Kind::Int { min: i32::MIN as i64, max: i32::MAX as i64 },
        true,
        list_max_listpack_size,
        int
    ),
    opt!("list-compress-depth", Kind::Int { min: 0, max: i32::MAX as i64 }, true, list_compress_depth, int),
    opt!("cluster-enabled", Kind::Bool, false, cluster_enabled, bool),
    opt!("cluster-config-file", Kind::Str, false, cluster_config_file, str),
    opt!("cluster-node-timeout", Kind::Int { min: 0, max: i64::MAX }, true, cluster_node_timeout, int),
    opt!(
        "cluster-slot-migration-write-pause-timeout",
        Kind::Int { min: 1, max: i64::MAX },
        true,
        cluster_slot_migration_write_pause_timeout,
        int
    ),
    opt!("cluster-slot-stats-enabled", Kind::Bool, true, cluster_slot_stats_enabled, bool),
    opt!("cluster-port", Kind::Int { min: 0, max: 65535 }, false, cluster_port, int),
    opt!("cluster-announce-ip", Kind::Str, true, cluster_announce_ip, str),
    opt!("cluster-announce-port", Kind::Int { min: 0, max: 65535 }, true, cluster_announce_port, int),
    OptionSpec {
        name: "core-ports",
        kind: Kind::Words,
        mutable: false,
        get: |c| c.core_ports.clone(),
        set: |c, v| c.core_ports = v.split_whitespace().collect::<Vec<_>>().join(" "),
    },
    OptionSpec {
        name: "cluster-announce-core-ports",
        kind: Kind::Words,
        mutable: false,
        get: |c| c.cluster_announce_core_ports.clone(),
        set: |c, v| c.cluster_announce_core_ports = v.split_whitespace().collect::<Vec<_>>().join(" "),
    },
    opt!("cluster-announce-bus-port", Kind::Int { min: 0, max: 65535 }, true, cluster_announce_bus_port, int),
    opt!("cluster-require-full-coverage", Kind::Bool, true, cluster_require_full_coverage, bool),
    opt!("cluster-allow-reads-when-down", Kind::Bool, true, cluster_allow_reads_when_down, bool),
    opt!(
        "cluster-replica-validity-factor",
        Kind::Int { min: 0, max: i32::MAX as i64 },
        true,
        cluster_replica_validity_factor,
        int
    ),
    opt!("cluster-migration-barrier", Kind::Int { min: 0, max: i32::MAX as i64 }, true, cluster_migration_barrier, int),
    opt!("cluster-allow-replica-migration", Kind::Bool, true, cluster_allow_replica_migration, bool),
    opt!("cluster-replica-no-failover", Kind::Bool, true, cluster_replica_no_failover, bool),
    OptionSpec {
        name: "replicaof",
        kind: Kind::Words,
        mutable: false,
        get: |c| c.replicaof.clone(),
        set: |c, v| c.replicaof = v.split_whitespace().collect::<Vec<_>>().join(" "),
    },
    opt!("masterauth", Kind::Str, true, masterauth, str),
    opt!("masteruser", Kind::Str, true, masteruser, str),
    opt!("repl-diskless-sync", Kind::Bool, true, repl_diskless_sync, bool),
    opt!("repl-diskless-sync-delay", Kind::Int { min: 0, max: i32::MAX as i64 }, true, repl_diskless_sync_delay, int),
    opt!(
        "repl-diskless-sync-max-replicas",
        Kind::Int { min: 0, max: i32::MAX as i64 },
        true,
        repl_diskless_sync_max_replicas,
        int
    ),
    opt!("repl-diskless-load", Kind::Enum(&["disabled", "on-empty-db", "swapdb"]), true, repl_diskless_load, str),
    opt!("repl-backlog-size", Kind::Memory, true, repl_backlog_size, mem),
    opt!("repl-backlog-ttl", Kind::Int { min: 0, max: i64::MAX }, true, repl_backlog_ttl, int),
    opt!("repl-timeout", Kind::Int { min: 1, max: i32::MAX as i64 }, true, repl_timeout, int),
    opt!("repl-ping-replica-period", Kind::Int { min: 1, max: i32::MAX as i64 }, true, repl_ping_replica_period, int),
    opt!("repl-disable-tcp-nodelay", Kind::Bool, true, repl_disable_tcp_nodelay, bool),
    opt!("min-replicas-to-write", Kind::Int { min: 0, max: i32::MAX as i64 }, true, min_replicas_to_write, int),
    opt!("min-replicas-max-lag", Kind::Int { min: 0, max: i32::MAX as i64 }, true, min_replicas_max_lag, int),
    opt!("replica-priority", Kind::Int { min: 0, max: i32::MAX as i64 }, true, replica_priority, int),
    opt!("replica-announce-ip", Kind::Str, true, replica_announce_ip, str),
    opt!("replica-announce-port", Kind::Int { min: 0, max: 65535 }, true, replica_announce_port, int),
    opt!("replica-announced", Kind::Bool, true, replica_announced, bool),
    opt!("replica-lazy-flush", Kind::Bool, true, replica_lazy_flush, bool),
    opt!("replica-read-only", Kind::Bool, true, replica_read_only, bool),
    opt!("replica-serve-stale-data", Kind::Bool, true, replica_serve_stale_data, bool),
    opt!("replica-ignore-maxmemory", Kind::Bool, true, replica_ignore_maxmemory, bool),
    opt!("busy-reply-threshold", Kind::Int { min: 0, max: i64::MAX }, true, busy_reply_threshold, int),
    OptionSpec {
        name: "client-output-buffer-limit",
        kind: Kind::Words,
        mutable: true,
        get: |c| c.client_output_buffer_limit.clone(),
        set: |c, v| c.client_output_buffer_limit = merge_output_limits(&c.client_output_buffer_limit, v),
    },
    opt!("maxmemory", Kind::Memory, true, maxmemory, mem),
    OptionSpec {
        name: "maxmemory-clients",
        kind: Kind::Str,
        mutable: true,
        get: |c| c.maxmemory_clients.clone(),
        set: |c, v| c.maxmemory_clients = v.to_string(),
    },
    opt!("maxmemory-policy", Kind::Enum(crate::maxmemory::POLICY_NAMES), true, maxmemory_policy, str),
    opt!("maxmemory-samples", Kind::Int { min: 1, max: i32::MAX as i64 }, true, maxmemory_samples, int),
    opt!("tracking-table-max-keys", Kind::Int { min: 0, max: i64::MAX }, true, tracking_table_max_keys, int),
    opt!("maxmemory-eviction-tenacity", Kind::Int { min: 0, max: 100 }, true, maxmemory_eviction_tenacity, int),
    opt!("lfu-log-factor", Kind::Int { min: 0, max: i32::MAX as i64 }, true, lfu_log_factor, int),
    opt!("lfu-decay-time", Kind::Int { min: 0, max: i32::MAX as i64 }, true, lfu_decay_time, int),
    opt!("lazyfree-lazy-eviction", Kind::Bool, true, lazyfree_lazy_eviction, bool),
    // Compaction of the keyspace's records (exec/defrag.rs).
    opt!("activedefrag", Kind::Bool, true, activedefrag, bool),
    opt!("active-defrag-ignore-bytes", Kind::Memory, true, active_defrag_ignore_bytes, mem),
    opt!("active-defrag-threshold-lower", Kind::Int { min: 0, max: 1000 }, true, active_defrag_threshold_lower, int),
    opt!("active-defrag-threshold-upper", Kind::Int { min: 0, max: 1000 }, true, active_defrag_threshold_upper, int),
    opt!("active-defrag-cycle-min", Kind::Int { min: 1, max: 99 }, true, active_defrag_cycle_min, int),
    opt!("active-defrag-cycle-max", Kind::Int { min: 1, max: 99 }, true, active_defrag_cycle_max, int),
    opt!(
        "active-defrag-max-scan-fields",
        Kind::Int { min: 1, max: i64::MAX },
        true,
        active_defrag_max_scan_fields,
        int
    ),
    opt!("io-batch", Kind::Int { min: 1, max: 1024 }, false, io_batch, int),
    opt!("io-min-wait-us", Kind::Int { min: 0, max: 1_000_000 }, false, io_min_wait_us, int),
    opt!("tcp-backlog", Kind::Int { min: 0, max: i32::MAX as i64 }, false, tcp_backlog, int),
    opt!("unixsocket", Kind::Str, false, unixsocket, str),
    OptionSpec {
        name: "unixsocketperm",
        kind: Kind::Octal,
        mutable: false,
        get: |c| format!("{:o}", c.unixsocketperm),
        set: |c, v| c.unixsocketperm = u32::from_str_radix(v, 8).unwrap_or_default(),
    },
    opt!("always-show-logo", Kind::Bool, false, always_show_logo, bool),
    opt!("set-proc-title", Kind::Bool, false, set_proc_title, bool),
    opt!("proc-title-template", Kind::Str, true, proc_title_template, str),
    opt!("oom-score-adj", Kind::Enum(&["no", "yes", "relative", "absolute"]), true, oom_score_adj, str),
    OptionSpec {
        name: "oom-score-adj-values",
        kind: Kind::Words,
        mutable: true,
        get: |c| c.oom_score_adj_values.clone(),
        set: |c, v| c.oom_score_adj_values = v.split_whitespace().collect::<Vec<_>>().join(" "),
    },
    opt!("disable-thp", Kind::Bool, false, disable_thp, bool),
    opt!("supervised", Kind::Enum(&["upstart", "systemd", "auto", "no"]), false, supervised, str),
    opt!("syslog-enabled", Kind::Bool, false, syslog_enabled, bool),
    opt!("syslog-ident", Kind::Str, false, syslog_ident, str),
    opt!("syslog-facility", Kind::Enum(crate::logging::FACILITIES), false, syslog_facility, str),
    opt!("enable-debug-command", Kind::Enum(&["no", "yes", "local"]), false, enable_debug_command, str),
    opt!("shutdown-timeout", Kind::Int { min: 0, max: i32::MAX as i64 }, true, shutdown_timeout, int),
    opt!("shutdown-on-sigint", Kind::Words, true, shutdown_on_sigint, str),
    opt!("shutdown-on-sigterm", Kind::Words, true, shutdown_on_sigterm, str),
];

/// Old names Redis 7.0 still accepts for the same options.
pub static ALIASES: &[(&str, &str)] = &[
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("slaveof", "replicaof"),
    ("repl-ping-slave-period", "repl-ping-replica-period"),
    ("slave-priority", "replica-priority"),
    ("slave-announce-ip", "replica-announce-ip"),
    ("slave-announce-port", "replica-announce-port"),
    ("slave-lazy-flush", "replica-lazy-flush"),
    ("slave-read-only", "replica-read-only"),
    ("slave-serve-stale-data", "replica-serve-stale-data"),
    ("slave-ignore-maxmemory", "replica-ignore-maxmemory"),
    ("min-slaves-to-write", "min-replicas-to-write"),
    ("min-slaves-max-lag", "min-replicas-max-lag"),
    ("cluster-slave-no-failover", "cluster-replica-no-failover"),
    ("cluster-slave-validity-factor", "cluster-replica-validity-factor"),
    ("lua-time-limit", "busy-reply-threshold"),
];

/// `client-output-buffer-limit`: a new setting replaces the classes it names and keeps
/// the others, rendered as Redis renders it (`slave` for replica, bytes).
fn merge_output_limits(old: &str, new: &str) -> String {
    let mut classes: Vec<(String, [u64; 3])> = parse_output_limits(old);
    for (name, v) in parse_output_limits(new) {
        match classes.iter_mut().find(|c| c.0 == name) {
            Some(c) => c.1 = v,
            None => classes.push((name, v)),
        }
    }
    classes.iter().map(|(n, v)| format!("{n} {} {} {}", v[0], v[1], v[2])).collect::<Vec<_>>().join(" ")
}

/// The classes of a `client-output-buffer-limit` value (validated by [`check_output_limits`]).
fn parse_output_limits(v: &str) -> Vec<(String, [u64; 3])> {
    let words: Vec<&str> = v.split_whitespace().collect();
    words
        .chunks_exact(4)
        .filter_map(|c| {
            let class = match c[0].to_ascii_lowercase().as_str() {
                "normal" => "normal",
                "slave" | "replica" => "slave",
                "pubsub" => "pubsub",
                _ => return None,
            };
            Some((class.to_string(), [parse_memory(c[1])?, parse_memory(c[2])?, c[3].parse().ok()?]))
        })
        .collect()
}

/// Redis's checks on a `client-output-buffer-limit` value.
fn check_output_limits(v: &str) -> Result<(), String> {
    let words: Vec<&str> = v.split_whitespace().collect();
    if words.len() % 4 != 0 {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    for c in words.chunks_exact(4) {
        if !matches!(c[0].to_ascii_lowercase().as_str(), "normal" | "slave" | "replica" | "pubsub") {
            return Err("Invalid client class specified in buffer limit configuration.".into());
        }
        if parse_memory(c[1]).is_none() || parse_memory(c[2]).is_none() || c[3].parse::<u64>().is_err() {
            return Err("Error in hard, soft or soft_seconds setting in buffer limit configuration.".into());
        }
    }
    Ok(())
}

impl Config {
    /// `notify-keyspace-events` as class bits (see `ferrokv_commands::notify`).
    pub fn notify_flags(&self) -> u16 {
        ferrokv_commands::notify::parse_flags(&self.notify_keyspace_events).unwrap_or(0)
    }

    /// `client-output-buffer-limit replica ...`.
    pub fn replica_output_limits(&self) -> crate::repl::master::OutputLimits {
        self.output_limits("slave")
    }

    /// `client-output-buffer-limit <class> ...` (`slave`, `pubsub` or `normal`).
    pub fn output_limits(&self, class: &str) -> crate::repl::master::OutputLimits {
        parse_output_limits(&self.client_output_buffer_limit)
            .into_iter()
            .find(|c| c.0 == class)
            .map(|(_, v)| crate::repl::master::OutputLimits { hard: v[0], soft: v[1], soft_secs: v[2] })
            .unwrap_or_default()
    }
}

/// A directive ferrokv knows: one it implements, or one whose feature it lacks.
#[derive(Clone, Copy)]
pub enum Directive {
    Implemented(&'static OptionSpec),
    Lacking(&'static Lacking),
}

impl Directive {
    pub fn name(&self) -> &'static str {
        match self {
            Directive::Implemented(o) => o.name,
            Directive::Lacking(l) => l.name,
        }
    }

    pub fn mutable(&self) -> bool {
        match self {
            Directive::Implemented(o) => o.mutable,
            Directive::Lacking(l) => l.mutable,
        }
    }

    pub fn get(&self, cfg: &Config) -> String {
        match self {
            Directive::Implemented(o) => o.get(cfg),
            Directive::Lacking(l) => cfg.lacking.get(l.name).cloned().unwrap_or_else(|| l.default.to_string()),
        }
    }

    /// Checks `value` and stores it. A lacking feature's directive is refused at a value
    /// the user would rely on (CONFIG SET's error and start-up's line name the feature).
    pub fn apply(&self, cfg: &mut Config, value: &str) -> Result<(), BadValue> {
        match self {
            Directive::Implemented(o) => o.apply(cfg, value),
            Directive::Lacking(l) => {
                let v = check_kind(l.kind, l.name, value)?;
                if let Some(feature) = l.refused {
                    if !l.is_default(&v) {
                        return Err(BadValue(format!("{feature} is not supported by ferrokv yet")));
                    }
                }
                cfg.lacking.insert(l.name, v);
                Ok(())
            }
        }
    }

    fn takes_words(&self) -> bool {
        match self {
            Directive::Implemented(o) => o.kind == Kind::Words,
            Directive::Lacking(l) => l.kind == Kind::Words,
        }
    }
}

pub fn option(name: &str) -> Option<Directive> {
    let name = ALIASES
        .iter()
        .chain(lacking::ALIASES)
        .find(|(a, _)| a.eq_ignore_ascii_case(name))
        .map_or(name, |(_, canonical)| canonical);
    OPTIONS
        .iter()
        .find(|o| o.name.eq_ignore_ascii_case(name))
        .map(Directive::Implemented)
        .or_else(|| LACKING.iter().find(|l| l.name.eq_ignore_ascii_case(name)).map(Directive::Lacking))
}

/// Every name CONFIG GET answers to (options and their aliases), with its directive.
pub fn names() -> impl Iterator<Item = (&'static str, Directive)> {
    OPTIONS
        .iter()
        .map(|o| (o.name, Directive::Implemented(o)))
        .chain(LACKING.iter().map(|l| (l.name, Directive::Lacking(l))))
        .chain(ALIASES.iter().chain(lacking::ALIASES).filter_map(|(a, c)| option(c).map(|o| (*a, o))))
}

/// Redis's memtoull: a number with an optional unit (k, kb, m, mb, g, gb; case-insensitive).
pub fn parse_memory(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let split = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    if num.is_empty() {
        return None;
    }
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

/// Why a value was refused, worded for CONFIG SET's error.
#[derive(Debug, Clone, PartialEq)]
pub struct BadValue(pub String);

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks `value` against `kind` as Redis's CONFIG SET does; the value to store
/// (an enum's in lower case).
fn check_kind(kind: Kind, name: &str, value: &str) -> Result<String, BadValue> {
    match kind {
        Kind::Int { min, max } => {
            let n: i64 = value.parse().map_err(|_| BadValue("argument couldn't be parsed into an integer".into()))?;
            if n < min || n > max {
                return Err(BadValue(format!("argument must be between {min} and {max} inclusive")));
            }
        }
        Kind::Memory => {
            // Stored in bytes, as CONFIG GET shows a memory value.
            let n = parse_memory(value).ok_or_else(|| BadValue("argument must be a memory value".into()))?;
            // Redis's lower bounds (1mb) for the protocol's limits.
            if matches!(name, "proto-max-bulk-len" | "client-query-buffer-limit") && n < 1024 * 1024 {
                return Err(BadValue(format!("argument must be between 1048576 and {} inclusive", i64::MAX)));
            }
            return Ok(n.to_string());
        }
        Kind::Octal => {
            u32::from_str_radix(value, 8)
                .map_err(|_| BadValue("argument couldn't be parsed into an integer".into()))?;
        }
        Kind::Bool => {
            if !value.eq_ignore_ascii_case("yes") && !value.eq_ignore_ascii_case("no") {
                return Err(BadValue("argument must be 'yes' or 'no'".into()));
            }
            return Ok(value.to_ascii_lowercase());
        }
        Kind::Enum(allowed) => {
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(value)) {
                return Err(BadValue("argument(s) must be one of the following: ".to_string() + &allowed.join(", ")));
            }
            return Ok(value.to_ascii_lowercase());
        }
        Kind::Str | Kind::Words => match name {
            "client-output-buffer-limit" => check_output_limits(value).map_err(BadValue)?,
            "maxmemory-clients" => return check_memory_or_percent(value).map_err(BadValue),
            "notify-keyspace-events" if ferrokv_commands::notify::parse_flags(value).is_none() => {
                return Err(BadValue("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into()))
            }
            "replicaof" if !value.trim().is_empty() && value.split_whitespace().count() != 2 => {
                return Err(BadValue("wrong number of arguments".into()))
            }
            "oom-score-adj-values" => check_oom_values(value).map_err(BadValue)?,
            "shutdown-on-sigint" | "shutdown-on-sigterm" => {
                return crate::shutdown::Flags::parse_config(value).map(|f| f.to_config()).map_err(BadValue)
            }
            "core-ports" | "cluster-announce-core-ports" => check_ports(value).map_err(BadValue)?,
            "proc-title-template" => {
                crate::process::expand_title(value, &Config::default()).map_err(BadValue)?;
            }
            _ => {}
        },
    }
    Ok(value.to_string())
}

/// `core-ports` and its announce variant: port numbers (1..65535), all different.
fn check_ports(v: &str) -> Result<(), String> {
    let mut seen = Vec::new();
    for w in v.split_whitespace() {
        match w.parse::<u16>() {
            Ok(p) if p > 0 && !seen.contains(&p) => seen.push(p),
            Ok(p) if p > 0 => return Err(format!("port {p} is given twice")),
            _ => return Err(format!("'{w}' is not a port number")),
        }
    }
    Ok(())
}

/// The ports of `threads` shards from a `core-ports` value: none when it is empty or
/// the node has one shard (the main port then is that shard's); one port `p` means
/// `p, p+1, ...`; otherwise exactly one port per shard.
pub fn core_port_list(value: &str, threads: usize) -> Result<Vec<u16>, String> {
    let ports: Vec<u16> = value.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    if ports.is_empty() || threads <= 1 {
        return Ok(Vec::new());
    }
    if ports.len() == 1 {
        let first = ports[0] as usize;
        if first + threads - 1 > u16::MAX as usize {
            return Err(format!("{threads} consecutive ports from {first} go past 65535"));
        }
        return Ok((0..threads).map(|i| (first + i) as u16).collect());
    }
    if ports.len() != threads {
        return Err(format!("{} ports given for {threads} shard threads", ports.len()));
    }
    Ok(ports)
}

/// A memory value or a percentage up to 100 (`maxmemory-clients`), stored as Redis's
/// CONFIG GET shows it: bytes, `N%`, and `0%` as `0`.
fn check_memory_or_percent(v: &str) -> Result<String, String> {
    if let Some(p) = v.strip_suffix('%') {
        return match p.parse::<u64>() {
            Ok(0) => Ok("0".into()),
            Ok(n) if n <= 100 => Ok(format!("{n}%")),
            Ok(_) => Err("percentage argument must be less or equal to 100".into()),
            Err(_) => Err("argument must be a memory or percent value".into()),
        };
    }
    parse_memory(v).map(|n| n.to_string()).ok_or_else(|| "argument must be a memory or percent value".into())
}

/// Three scores (master, replica, background child), each -2000..2000, as Redis checks.
fn check_oom_values(v: &str) -> Result<(), String> {
    let words: Vec<&str> = v.split_whitespace().collect();
    if words.len() != 3 {
        return Err("wrong number of arguments".into());
    }
    for w in words {
        match w.parse::<i64>() {
            Ok(n) if (-2000..=2000).contains(&n) => {}
            _ => return Err("Invalid oom-score-adj-values, elements must be between -2000 and 2000.".into()),
        }
    }
    Ok(())
}

impl OptionSpec {
    /// Checks `value` and stores it.
    pub fn apply(&self, cfg: &mut Config, value: &str) -> Result<(), BadValue> {
        let v = check_kind(self.kind, self.name, value)?;
        (self.set)(cfg, &v);
        Ok(())
    }

    pub fn get(&self, cfg: &Config) -> String {
        (self.get)(cfg)
    }
}

/// Splits a config line as Redis does (sdssplitargs): words, "double" and 'single' quotes.
pub fn split_line(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { return Some(out) };
        let mut word = String::new();
        if c == '"' || c == '\'' {
            chars.next();
            let mut closed = false;
            while let Some(ch) = chars.next() {
                if ch == c {
                    closed = true;
                    break;
                }
                if ch == '\\' && c == '"' {
                    match chars.next()? {
                        'n' => word.push('\n'),
                        'r' => word.push('\r'),
                        't' => word.push('\t'),
                        other => word.push(other),
                    }
                } else {
                    word.push(ch);
                }
            }
            if !closed || chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return None;
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                word.push(ch);
                chars.next();
            }
        }
        out.push(word);
    }
}

/// Applies config text (a file's content, or arguments turned into lines); every
/// problem found is added to `errors`, one line each, and reading goes on.
pub fn apply_text(cfg: &mut Config, text: &str, origin: &str, errors: &mut Vec<String>) {
    apply_text_at(cfg, text, origin, errors, 0);
}

fn apply_text_at(cfg: &mut Config, text: &str, origin: &str, errors: &mut Vec<String>, depth: usize) {
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |why: &str| format!("*** FATAL CONFIG FILE ERROR *** {origin}, line {}: '{line}': {why}", n + 1);
        let Some(words) = split_line(line) else {
            errors.push(fail("Unbalanced quotes in configuration line"));
            continue;
        };
        let Some((name, values)) = words.split_first() else { continue };
        if let Some(e) = special_directive(cfg, name, values, errors, depth) {
            if let Err(why) = e {
                errors.push(fail(&why));
            }
            continue;
        }
        let Some(spec) = option(name) else {
            errors.push(fail("Bad directive or wrong number of arguments"));
            continue;
        };
        let value = if spec.takes_words() {
            values.join(" ")
        } else if values.len() == 1 {
            values[0].clone()
        } else {
            errors.push(fail("wrong number of arguments"));
            continue;
        };
        if let Err(e) = spec.apply(cfg, &value) {
            errors.push(fail(&format!("Invalid argument for '{}': {e}", spec.name())));
        }
    }
}

/// Directives that are not options: `include` (read here), those Redis 7.0 ignores,
/// and those whose feature ferrokv lacks (always refused). `None` for an option.
fn special_directive(
    cfg: &mut Config,
    name: &str,
    values: &[String],
    errors: &mut Vec<String>,
    depth: usize,
) -> Option<Result<(), String>> {
    let lower = name.to_ascii_lowercase();
    Some(match lower.as_str() {
        "include" => {
            if values.len() != 1 {
                return Some(Err("wrong number of arguments".into()));
            }
            if depth >= 16 {
                return Some(Err("include nested too deeply".into()));
            }
            include(cfg, &values[0], errors, depth)
        }
        // Redis 7.0 accepts these and ignores them (`deprecated_configs`).
        "list-max-ziplist-entries" | "list-max-ziplist-value" | "lua-replicate-commands" => Ok(()),
        "rename-command" => Err("rename-command is not supported by ferrokv yet".into()),
        "user" => Err("ACL users are not supported by ferrokv yet".into()),
        "loadmodule" => Err("modules are not supported by ferrokv".into()),
        "sentinel" => Err("sentinel directive while not in sentinel mode".into()),
        _ => return None,
    })
}

/// `include path`: the file, or every file matching a glob in its last part (sorted),
/// as Redis 7.0 reads them.
fn include(cfg: &mut Config, path: &str, errors: &mut Vec<String>, depth: usize) -> Result<(), String> {
    let p = std::path::Path::new(path);
    let file_name = p.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
    let files: Vec<std::path::PathBuf> = if file_name.contains(['*', '?', '[']) {
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        let mut found: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| format!("Fatal error, can't open config file '{path}': {e}"))?
            .filter_map(|e| e.ok())
            .filter(|e| {
                ferrokv_store::glob::glob_match(file_name.as_bytes(), e.file_name().to_string_lossy().as_bytes(), false)
            })
            .map(|e| e.path())
            .collect();
        found.sort();
        found
    } else {
        vec![p.to_path_buf()]
    };
    for f in files {
        let text = std::fs::read_to_string(&f)
            .map_err(|e| format!("Fatal error, can't open config file '{}': {e}", f.display()))?;
        apply_text_at(cfg, &text, &format!("config file '{}'", f.display()), errors, depth + 1);
    }
    Ok(())
}

/// What the configuration asks for that ferrokv cannot do: one line per directive,
/// naming it and the missing feature (start-up stops on any).
pub fn refusals(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if cfg.databases > crate::node::MAX_DATABASES {
        out.push(format!(
            "*** FATAL CONFIG ERROR *** 'databases {}': ferrokv keeps at most {} databases",
            cfg.databases,
            crate::node::MAX_DATABASES
        ));
    }
    out
}

/// The directives given whose feature ferrokv lacks and that have no effect yet.
pub fn without_effect(cfg: &Config) -> Vec<&'static str> {
    cfg.lacking.keys().filter(|n| LACKING.iter().any(|l| l.name == **n && l.refused.is_none())).copied().collect()
}

/// Parses `ferrokv-server [config-file] [--name value ...] [-]`: the file, then (with
/// `-` first or last, as redis-server) directives read from stdin, then the options.
/// Every problem is reported, one line each.
pub fn from_args(args: &[String]) -> Result<Config, String> {
    let mut cfg = Config::default();
    let mut errors = Vec::new();
    let mut rest = args;
    let mut from_stdin = false;
    if rest.last().is_some_and(|a| a == "-") {
        from_stdin = true;
        rest = &rest[..rest.len() - 1];
    }
    if rest.first().is_some_and(|a| a == "-") {
        from_stdin = true;
        rest = &rest[1..];
    }
    if let Some(first) = rest.first() {
        if !first.starts_with("--") {
            let text = std::fs::read_to_string(first)
                .map_err(|e| format!("Fatal error, can't open config file '{first}': {e}"))?;
            cfg.config_file =
                std::fs::canonicalize(first).map(|p| p.display().to_string()).unwrap_or_else(|_| first.clone());
            apply_text(&mut cfg, &text, &format!("config file '{first}'"), &mut errors);
            rest = &rest[1..];
        }
    }
    if from_stdin {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("Fatal error, can't read the config from stdin: {e}"))?;
        apply_text(&mut cfg, &text, "stdin", &mut errors);
    }
    // As redis-server does: `--name v1 v2 --other v` becomes lines "name v1 v2", "other v".
    let mut text = String::new();
    for a in rest {
        if let Some(name) = a.strip_prefix("--") {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(name);
        } else {
            text.push(' ');
            if a.is_empty() || a.contains(char::is_whitespace) {
                text.push('"');
                text.push_str(&a.replace('\\', "\\\\").replace('"', "\\\""));
                text.push('"');
            } else {
                text.push_str(a);
            }
        }
    }
    apply_text(&mut cfg, &text, "command line", &mut errors);
    errors.extend(refusals(&cfg));
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(errors.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn command_line_options() {
        let c = from_args(&args(&[
            "--port",
            "7001",
            "--save",
            "",
            "--bind",
            "127.0.0.1",
            "::1",
            "--proto-max-bulk-len",
            "1mb",
        ]))
        .unwrap();
        assert_eq!(c.port, 7001);
        assert_eq!(c.save, "");
        assert_eq!(c.bind, vec!["127.0.0.1", "::1"]);
        assert_eq!(c.proto_max_bulk_len, 1024 * 1024);
    }

    #[test]
    fn unknown_and_bad_options_are_named() {
        let e = from_args(&args(&["--no-such-thing", "1"])).unwrap_err();
        assert!(e.contains("no-such-thing"), "{e}");
        let e = from_args(&args(&["--port", "abc"])).unwrap_err();
        assert!(e.contains("port"), "{e}");
        let e = from_args(&args(&["--loglevel", "loud"])).unwrap_err();
        assert!(e.contains("loglevel"), "{e}");
    }

    fn apply(c: &mut Config, text: &str) -> Vec<String> {
        let mut errors = Vec::new();
        apply_text(c, text, "t", &mut errors);
        errors
    }

    #[test]
    fn config_file_syntax() {
        let mut c = Config::default();
        assert!(apply(&mut c, "# comment\nport 7002\nrequirepass \"a b\"\n\nappendonly yes\n").is_empty());
        assert_eq!((c.port, c.requirepass.as_str(), c.appendonly), (7002, "a b", true));
        assert_eq!(apply(&mut c, "port 1 2").len(), 1);
        assert_eq!(apply(&mut c, "requirepass \"x").len(), 1);
    }

    /// Every name redis-server 7.0.15 answers to CONFIG GET * (its whole config table,
    /// taken from a running one) is a directive ferrokv knows.
    #[test]
    fn every_redis_7_0_directive_is_known() {
        let redis = "
acl-pubsub-default aclfile acllog-max-len active-defrag-cycle-max active-defrag-cycle-min 
        active-defrag-ignore-bytes active-defrag-max-scan-fields active-defrag-threshold-lower 
        active-defrag-threshold-upper active-expire-effort activedefrag activerehashing always-show-logo 
        aof-disable-auto-gc aof-load-truncated aof-rewrite-incremental-fsync aof-timestamp-enabled 
        aof-use-rdb-preamble aof_rewrite_cpulist appenddirname appendfilename appendfsync appendonly 
        auto-aof-rewrite-min-size auto-aof-rewrite-percentage bgsave_cpulist bind bind-source-addr 
        bio_cpulist busy-reply-threshold client-output-buffer-limit client-query-buffer-limit 
        cluster-allow-pubsubshard-when-down cluster-allow-reads-when-down cluster-allow-replica-migration 
        cluster-announce-bus-port cluster-announce-hostname cluster-announce-ip cluster-announce-port 
        cluster-announce-tls-port cluster-config-file cluster-enabled cluster-link-sendbuf-limit 
        cluster-migration-barrier cluster-node-timeout cluster-port cluster-preferred-endpoint-type 
        cluster-replica-no-failover cluster-replica-validity-factor cluster-require-full-coverage 
        cluster-slave-no-failover cluster-slave-validity-factor crash-log-enabled crash-memcheck-enabled 
        daemonize databases dbfilename dir disable-thp dynamic-hz enable-debug-command 
        enable-module-command enable-protected-configs hash-max-listpack-entries hash-max-listpack-value 
        hash-max-ziplist-entries hash-max-ziplist-value hll-sparse-max-bytes hz ignore-warnings io-threads 
        io-threads-do-reads jemalloc-bg-thread latency-monitor-threshold latency-tracking 
        latency-tracking-info-percentiles lazyfree-lazy-eviction lazyfree-lazy-expire 
        lazyfree-lazy-server-del lazyfree-lazy-user-del lazyfree-lazy-user-flush lfu-decay-time 
        lfu-log-factor list-compress-depth list-max-listpack-size list-max-ziplist-size logfile loglevel 
        lua-time-limit masterauth masteruser maxclients maxmemory maxmemory-clients 
        maxmemory-eviction-tenacity maxmemory-policy maxmemory-samples min-replicas-max-lag 
        min-replicas-to-write min-slaves-max-lag min-slaves-to-write no-appendfsync-on-rewrite 
        notify-keyspace-events oom-score-adj oom-score-adj-values pidfile port proc-title-template 
        propagation-error-behavior protected-mode proto-max-bulk-len rdb-del-sync-files 
        rdb-save-incremental-fsync rdbchecksum rdbcompression repl-backlog-size repl-backlog-ttl 
        repl-disable-tcp-nodelay repl-diskless-load repl-diskless-sync repl-diskless-sync-delay 
        repl-diskless-sync-max-replicas repl-ping-replica-period repl-ping-slave-period repl-timeout 
        replica-announce-ip replica-announce-port replica-announced replica-ignore-disk-write-errors 
        replica-ignore-maxmemory replica-lazy-flush replica-priority replica-read-only 
        replica-serve-stale-data replicaof requirepass sanitize-dump-payload save server_cpulist 
        set-max-intset-entries set-proc-title shutdown-on-sigint shutdown-on-sigterm shutdown-timeout 
        slave-announce-ip slave-announce-port slave-ignore-maxmemory slave-lazy-flush slave-priority 
        slave-read-only slave-serve-stale-data slaveof slowlog-log-slower-than slowlog-max-len 
        socket-mark-id stop-writes-on-bgsave-error stream-node-max-bytes stream-node-max-entries supervised 
        syslog-enabled syslog-facility syslog-ident tcp-backlog tcp-keepalive timeout tls-auth-clients 
        tls-ca-cert-dir tls-ca-cert-file tls-cert-file tls-ciphers tls-ciphersuites tls-client-cert-file 
        tls-client-key-file tls-client-key-file-pass tls-cluster tls-dh-params-file tls-key-file 
        tls-key-file-pass tls-port tls-prefer-server-ciphers tls-protocols tls-replication 
        tls-session-cache-size tls-session-cache-timeout tls-session-caching tracking-table-max-keys 
        unixsocket unixsocketperm zset-max-listpack-entries zset-max-listpack-value 
        zset-max-ziplist-entries zset-max-ziplist-value";
        let unknown: Vec<&str> = redis.split_whitespace().filter(|n| option(n).is_none()).collect();
        assert!(unknown.is_empty(), "{unknown:?}");
        let mut c = Config::default();
        // And so are the directives that are not options.
        let errors = apply(&mut c, "include /nonexistent.conf\nlist-max-ziplist-entries 5\nrename-command X Y\n");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("can't open config file"), "{errors:?}");
        assert!(errors[1].contains("rename-command is not supported"), "{errors:?}");
    }

    /// Every problem is reported, not only the first; refusals name the feature.
    #[test]
    fn all_problems_at_once() {
        let mut c = Config::default();
        let errors =
            apply(&mut c, "nope 1\nport x\ntls-port 1\ntls-port 0\nslowlog-max-len 3\nbind-source-addr 127.0.0.2\n");
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].contains("line 1") && errors[1].contains("line 2"), "{errors:?}");
        assert!(errors[2].contains("line 3") && errors[2].contains("TLS is not supported"), "{errors:?}");
        assert!(errors[3].contains("line 6") && errors[3].contains("bind-source-addr"), "{errors:?}");
        assert_eq!(option("slowlog-max-len").unwrap().get(&c), "3");
        assert_eq!(option("tls-port").unwrap().get(&c), "0");
        assert_eq!(without_effect(&c), vec!["slowlog-max-len"]);
        // Memory values are kept in bytes, as CONFIG GET shows them.
        assert!(apply(&mut c, "active-defrag-ignore-bytes 1mb\n").is_empty());
        assert_eq!(option("active-defrag-ignore-bytes").unwrap().get(&c), "1048576");
    }

    /// A directive is either implemented or lacking, never both (when a feature lands,
    /// its directives leave lacking.rs).
    #[test]
    fn implemented_and_lacking_are_disjoint() {
        let both: Vec<&str> = OPTIONS.iter().map(|o| o.name).filter(|n| LACKING.iter().any(|l| l.name == *n)).collect();
        assert!(both.is_empty(), "{both:?}");
    }

    #[test]
    fn include_reads_files_and_globs() {
        let dir = std::env::temp_dir().join(format!("ferrokv-include-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.conf"), "maxclients 11\n").unwrap();
        std::fs::write(dir.join("b.conf"), "maxclients 22\nhz 7\n").unwrap();
        std::fs::write(dir.join("c.txt"), "hz 99\n").unwrap();
        let mut c = Config::default();
        let errors = apply(&mut c, &format!("include {}/*.conf\n", dir.display()));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((c.maxclients, c.hz), (22, 7));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("512mb"), Some(512 * 1024 * 1024));
        assert_eq!(parse_memory("1GB"), Some(1 << 30));
        assert_eq!(parse_memory("100k"), Some(100_000));
        assert_eq!(parse_memory("12"), Some(12));
        assert_eq!(parse_memory("x"), None);
        assert_eq!(parse_memory("1tb"), None);
    }
}
