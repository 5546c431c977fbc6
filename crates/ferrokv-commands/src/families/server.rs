//! Connection, server and transaction commands. They run in the server, which owns the
//! connection and node state they need; here is only their table entry.

use crate::table::{CommandSpec, Handler, KeyPositions, ServerCmd};
use ferrokv_resp::Args;

const NONE: KeyPositions = KeyPositions::NONE;

const fn srv(
    cmd: ServerCmd,
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    acl: &'static [&'static str],
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, NONE, acl, Handler::Server(cmd))
}

/// As `COMMAND INFO memory` on redis-server 7.0 prints them.
pub const MEMORY_SUBCOMMANDS: &[CommandSpec] = &[
    srv(ServerCmd::Memory, "memory|doctor", 2, &[], &["@slow"]),
    srv(ServerCmd::Memory, "memory|malloc-stats", 2, &[], &["@slow"]),
    srv(ServerCmd::Memory, "memory|purge", 2, &[], &["@slow"]),
    srv(ServerCmd::Memory, "memory|stats", 2, &[], &["@slow"]),
    CommandSpec::new(
        "memory|usage",
        -3,
        &["readonly"],
        KeyPositions::new(2, 2, 1),
        &["@read", "@slow"],
        Handler::Data(crate::families::keys::memory_usage),
    ),
    srv(ServerCmd::Memory, "memory|help", 2, &["loading", "stale"], &["@slow"]),
];

pub const CLIENT_SUBCOMMANDS: &[CommandSpec] = &[
    srv(ServerCmd::Client, "client|id", 2, &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    srv(ServerCmd::Client, "client|setname", 3, &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    srv(ServerCmd::Client, "client|getname", 2, &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    srv(
        ServerCmd::Client,
        "client|list",
        -2,
        &["admin", "noscript", "loading", "stale"],
        &["@admin", "@slow", "@dangerous", "@connection"],
    ),
    srv(ServerCmd::Client, "client|info", 2, &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    srv(
        ServerCmd::Client,
        "client|kill",
        -3,
        &["admin", "noscript", "loading", "stale"],
        &["@admin", "@slow", "@dangerous", "@connection"],
    ),
    srv(
        ServerCmd::Client,
        "client|no-evict",
        3,
        &["admin", "noscript", "loading", "stale"],
        &["@admin", "@slow", "@dangerous", "@connection"],
    ),
    srv(ServerCmd::Client, "client|tracking", -3, &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    srv(ServerCmd::Client, "client|caching", 3, &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    srv(ServerCmd::Client, "client|getredir", 2, &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    srv(ServerCmd::Client, "client|trackinginfo", 2, &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    srv(ServerCmd::Client, "client|reply", 3, &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    srv(ServerCmd::Client, "client|help", 2, &["loading", "stale"], &["@slow", "@connection"]),
];

pub const CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    srv(
        ServerCmd::Config,
        "config|get",
        -3,
        &["admin", "noscript", "loading", "stale"],
        &["@admin", "@slow", "@dangerous"],
    ),
    srv(
        ServerCmd::Config,
        "config|set",
        -4,
        &["admin", "noscript", "loading", "stale"],
        &["@admin", "@slow", "@dangerous"],
    ),
    srv(
        ServerCmd::Config,
        "config|resetstat",
        2,
        &["admin", "noscript", "loading", "stale"],
        &["@admin", "@slow", "@dangerous"],
    ),
    srv(
        ServerCmd::Config,
        "config|rewrite",
        2,
        &["admin", "noscript", "loading", "stale"],
        &["@admin", "@slow", "@dangerous"],
    ),
    srv(ServerCmd::Config, "config|help", 2, &["loading", "stale"], &["@slow"]),
];

pub const COMMAND_SUBCOMMANDS: &[CommandSpec] = &[
    srv(ServerCmd::Command, "command|count", 2, &["loading", "stale"], &["@slow", "@connection"]),
    srv(ServerCmd::Command, "command|info", -2, &["loading", "stale"], &["@slow", "@connection"]),
    srv(ServerCmd::Command, "command|docs", -2, &["loading", "stale"], &["@slow", "@connection"]),
    srv(ServerCmd::Command, "command|getkeys", -4, &["loading", "stale"], &["@slow", "@connection"]),
    srv(ServerCmd::Command, "command|getkeysandflags", -4, &["loading", "stale"], &["@slow", "@connection"]),
    srv(ServerCmd::Command, "command|list", -2, &["loading", "stale"], &["@slow", "@connection"]),
    srv(ServerCmd::Command, "command|help", 2, &["loading", "stale"], &["@slow", "@connection"]),
];

const CLUSTER_ACL: &[&str] = &["@slow"];
const CLUSTER_ADMIN_ACL: &[&str] = &["@admin", "@slow", "@dangerous"];
const CLUSTER_FLAGS: &[&str] = &["stale"];
const CLUSTER_ADMIN_FLAGS: &[&str] = &["admin", "stale", "no_async_loading"];

pub const CLUSTER_SUBCOMMANDS: &[CommandSpec] = &[
    srv(ServerCmd::Cluster, "cluster|addslots", -3, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|addslotsrange", -4, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|bumpepoch", 2, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|count-failure-reports", 3, &["admin", "stale"], CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|countkeysinslot", 3, CLUSTER_FLAGS, CLUSTER_ACL),
    srv(ServerCmd::Cluster, "cluster|delslots", -3, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|delslotsrange", -4, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|failover", -2, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|flushslots", 2, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|forget", 3, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|getkeysinslot", 4, CLUSTER_FLAGS, CLUSTER_ACL),
    srv(ServerCmd::Cluster, "cluster|help", 2, &["loading", "stale"], CLUSTER_ACL),
    srv(ServerCmd::Cluster, "cluster|info", 2, CLUSTER_FLAGS, CLUSTER_ACL),
    srv(ServerCmd::Cluster, "cluster|keyslot", 3, CLUSTER_FLAGS, CLUSTER_ACL),
    srv(ServerCmd::Cluster, "cluster|links", 2, CLUSTER_FLAGS, CLUSTER_ACL),
    // Redis 8.4's atomic slot migration, and the ferrokv-only command its task sends
    // to the source (not in redis-server 7.0.15's table).
    srv(ServerCmd::Cluster, "cluster|migration", -3, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|migration-sync", -4, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    // Redis 8.2 / Valkey 8 (not in 7.0.15's table).
    srv(ServerCmd::Cluster, "cluster|slot-stats", -4, CLUSTER_FLAGS, CLUSTER_ACL),
    // ferrokv's own: which core of this node serves a slot, or hand it to another
    // core (the hot-slot balancer's handoff, by hand); standalone mode too.
    srv(ServerCmd::Cluster, "cluster|slot-core", -3, &["admin", "stale", "noscript", "no_multi"], CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|meet", -4, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|myid", 2, CLUSTER_FLAGS, CLUSTER_ACL),
    srv(ServerCmd::Cluster, "cluster|nodes", 2, CLUSTER_FLAGS, CLUSTER_ACL),
    srv(ServerCmd::Cluster, "cluster|replicas", 3, &["admin", "stale"], CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|replicate", 3, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|reset", -2, &["admin", "stale", "noscript"], CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|saveconfig", 2, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|set-config-epoch", 3, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|setslot", -4, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|shards", 2, CLUSTER_FLAGS, CLUSTER_ACL),
    srv(ServerCmd::Cluster, "cluster|slaves", 3, &["admin", "stale"], CLUSTER_ADMIN_ACL),
    srv(ServerCmd::Cluster, "cluster|slots", 2, CLUSTER_FLAGS, CLUSTER_ACL),
];

pub const COMMANDS: &[CommandSpec] = &[
    srv(ServerCmd::Cluster, "cluster", -2, &[], &["@slow"]).with_subcommands(CLUSTER_SUBCOMMANDS),
    srv(ServerCmd::Asking, "asking", 1, &["fast"], &["@fast", "@connection"]),
    srv(ServerCmd::Readonly, "readonly", 1, &["loading", "stale", "fast"], &["@fast", "@connection"]),
    srv(ServerCmd::Readwrite, "readwrite", 1, &["loading", "stale", "fast"], &["@fast", "@connection"]),
    srv(ServerCmd::Ping, "ping", -1, &["fast"], &["@fast", "@connection"]),
    srv(ServerCmd::Echo, "echo", 2, &["loading", "stale", "fast"], &["@fast", "@connection"]),
    srv(
        ServerCmd::Hello,
        "hello",
        -1,
        &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"],
        &["@fast", "@connection"],
    ),
    srv(
        ServerCmd::Auth,
        "auth",
        -2,
        &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"],
        &["@fast", "@connection"],
    ),
    srv(
        ServerCmd::Quit,
        "quit",
        -1,
        &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"],
        &["@fast", "@connection"],
    ),
    srv(
        ServerCmd::Reset,
        "reset",
        1,
        &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"],
        &["@fast", "@connection"],
    ),
    srv(ServerCmd::Select, "select", 2, &["loading", "stale", "fast"], &["@fast", "@connection"]),
    srv(ServerCmd::Client, "client", -2, &[], &["@slow"]).with_subcommands(CLIENT_SUBCOMMANDS),
    srv(ServerCmd::Info, "info", -1, &["loading", "stale"], &["@slow", "@dangerous"]),
    srv(ServerCmd::Memory, "memory", -2, &[], &["@slow"]).with_subcommands(MEMORY_SUBCOMMANDS),
    srv(ServerCmd::Time, "time", 1, &["loading", "stale", "fast"], &["@fast"]),
    srv(ServerCmd::Config, "config", -2, &[], &["@slow"]).with_subcommands(CONFIG_SUBCOMMANDS),
    srv(ServerCmd::Command, "command", -1, &["loading", "stale"], &["@slow", "@connection"])
        .with_subcommands(COMMAND_SUBCOMMANDS),
    srv(
        ServerCmd::Shutdown,
        "shutdown",
        -1,
        &["admin", "noscript", "loading", "stale", "no_multi", "allow_busy"],
        &["@admin", "@slow", "@dangerous"],
    ),
    srv(ServerCmd::Debug, "debug", -2, &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous"]),
    srv(
        ServerCmd::Save,
        "save",
        1,
        &["admin", "noscript", "no_async_loading", "no_multi"],
        &["@admin", "@slow", "@dangerous"],
    ),
    srv(
        ServerCmd::Bgsave,
        "bgsave",
        -1,
        &["admin", "noscript", "no_async_loading"],
        &["@admin", "@slow", "@dangerous"],
    ),
    srv(
        ServerCmd::Bgrewriteaof,
        "bgrewriteaof",
        1,
        &["admin", "noscript", "no_async_loading"],
        &["@admin", "@slow", "@dangerous"],
    ),
    srv(ServerCmd::Lastsave, "lastsave", 1, &["loading", "stale", "fast"], &["@admin", "@fast", "@dangerous"]),
    srv(
        ServerCmd::Multi,
        "multi",
        1,
        &["noscript", "loading", "stale", "fast", "allow_busy"],
        &["@fast", "@transaction"],
    ),
    srv(ServerCmd::Exec, "exec", 1, &["noscript", "loading", "stale", "skip_slowlog"], &["@slow", "@transaction"]),
    srv(
        ServerCmd::Discard,
        "discard",
        1,
        &["noscript", "loading", "stale", "fast", "allow_busy"],
        &["@fast", "@transaction"],
    ),
    CommandSpec::new(
        "watch",
        -2,
        &["noscript", "loading", "stale", "fast", "allow_busy"],
        KeyPositions::new(1, -1, 1),
        &["@fast", "@transaction"],
        Handler::Server(ServerCmd::Watch),
    ),
    srv(
        ServerCmd::Unwatch,
        "unwatch",
        1,
        &["noscript", "loading", "stale", "fast", "allow_busy"],
        &["@fast", "@transaction"],
    ),
    srv(
        ServerCmd::Replicaof,
        "replicaof",
        3,
        &["admin", "noscript", "stale", "no_async_loading"],
        &["@admin", "@slow", "@dangerous"],
    ),
    srv(
        ServerCmd::Replicaof,
        "slaveof",
        3,
        &["admin", "noscript", "stale", "no_async_loading"],
        &["@admin", "@slow", "@dangerous"],
    ),
    srv(ServerCmd::Role, "role", 1, &["noscript", "loading", "stale", "fast"], &["@admin", "@fast", "@dangerous"]),
    srv(
        ServerCmd::Psync,
        "psync",
        -3,
        &["admin", "noscript", "no_async_loading", "no_multi"],
        &["@admin", "@slow", "@dangerous"],
    ),
    srv(
        ServerCmd::Sync,
        "sync",
        1,
        &["admin", "noscript", "no_async_loading", "no_multi"],
        &["@admin", "@slow", "@dangerous"],
    ),
    srv(
        ServerCmd::Replconf,
        "replconf",
        -1,
        &["admin", "noscript", "loading", "stale", "allow_busy"],
        &["@admin", "@slow", "@dangerous"],
    ),
    srv(ServerCmd::Wait, "wait", 3, &["noscript"], &["@slow", "@connection"]),
    CommandSpec::new(
        "migrate",
        -6,
        &["write"],
        KeyPositions::new(3, 3, 1),
        &["@keyspace", "@write", "@slow", "@dangerous"],
        Handler::Server(ServerCmd::Migrate),
    )
    .with_key_finder(migrate_keys),
];

/// MIGRATE's keys (Redis's `migrateGetKeys`): the key argument, or what follows KEYS
/// (none when the key argument is not empty then: MIGRATE itself replies the error).
/// Options before KEYS are skipped with their values, so a password named "keys" is
/// not taken for the keyword.
pub fn migrate_keys(args: &Args) -> Vec<usize> {
    let mut i = 6;
    while i < args.len() {
        let a = args.get(i);
        if a.eq_ignore_ascii_case(b"keys") {
            if !args.get(3).is_empty() {
                return Vec::new();
            }
            return (i + 1..args.len()).collect();
        }
        if a.eq_ignore_ascii_case(b"auth") {
            i += 1;
        } else if a.eq_ignore_ascii_case(b"auth2") {
            i += 2;
        }
        i += 1;
    }
    if args.len() > 3 {
        vec![3]
    } else {
        Vec::new()
    }
}
