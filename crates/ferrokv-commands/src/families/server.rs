//! Connection, server and transaction commands. They run in the server, which owns the
//! connection and node state they need; here is only their table entry.

use crate::table::{CommandSpec, Handler, KeyPositions};

const NONE: KeyPositions = KeyPositions::NONE;

const fn srv(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    acl: &'static [&'static str],
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, NONE, acl, Handler::Server)
}

pub const CLIENT_SUBCOMMANDS: &[CommandSpec] = &[
    srv("client|id", 2, &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    srv("client|setname", 3, &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    srv("client|getname", 2, &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    srv(
        "client|list",
        -2,
        &["admin", "noscript", "loading", "stale"],
        &["@admin", "@slow", "@dangerous", "@connection"],
    ),
    srv("client|info", 2, &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    srv(
        "client|kill",
        -3,
        &["admin", "noscript", "loading", "stale"],
        &["@admin", "@slow", "@dangerous", "@connection"],
    ),
    srv(
        "client|no-evict",
        3,
        &["admin", "noscript", "loading", "stale"],
        &["@admin", "@slow", "@dangerous", "@connection"],
    ),
    srv("client|help", 2, &["loading", "stale"], &["@slow", "@connection"]),
];

pub const CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    srv("config|get", -3, &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous"]),
    srv("config|set", -4, &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous"]),
    srv("config|resetstat", 2, &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous"]),
    srv("config|help", 2, &["loading", "stale"], &["@slow"]),
];

pub const COMMAND_SUBCOMMANDS: &[CommandSpec] = &[
    srv("command|count", 2, &["loading", "stale"], &["@slow", "@connection"]),
    srv("command|info", -2, &["loading", "stale"], &["@slow", "@connection"]),
    srv("command|docs", -2, &["loading", "stale"], &["@slow", "@connection"]),
    srv("command|getkeys", -4, &["loading", "stale"], &["@slow", "@connection"]),
    srv("command|list", -2, &["loading", "stale"], &["@slow", "@connection"]),
    srv("command|help", 2, &["loading", "stale"], &["@slow", "@connection"]),
];

const CLUSTER_ACL: &[&str] = &["@slow"];
const CLUSTER_ADMIN_ACL: &[&str] = &["@admin", "@slow", "@dangerous"];
const CLUSTER_FLAGS: &[&str] = &["stale"];
const CLUSTER_ADMIN_FLAGS: &[&str] = &["admin", "stale", "no_async_loading"];

pub const CLUSTER_SUBCOMMANDS: &[CommandSpec] = &[
    srv("cluster|addslots", -3, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv("cluster|addslotsrange", -4, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv("cluster|bumpepoch", 2, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv("cluster|count-failure-reports", 3, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv("cluster|countkeysinslot", 3, CLUSTER_FLAGS, CLUSTER_ACL),
    srv("cluster|delslots", -3, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv("cluster|delslotsrange", -4, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv("cluster|failover", -2, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv("cluster|flushslots", 2, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv("cluster|forget", 3, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv("cluster|getkeysinslot", 4, CLUSTER_FLAGS, CLUSTER_ACL),
    srv("cluster|help", 2, &["loading", "stale"], CLUSTER_ACL),
    srv("cluster|info", 2, CLUSTER_FLAGS, CLUSTER_ACL),
    srv("cluster|keyslot", 3, CLUSTER_FLAGS, CLUSTER_ACL),
    srv("cluster|links", 2, CLUSTER_FLAGS, CLUSTER_ACL),
    srv("cluster|meet", -4, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv("cluster|myid", 2, CLUSTER_FLAGS, CLUSTER_ACL),
    srv("cluster|nodes", 2, CLUSTER_FLAGS, CLUSTER_ACL),
    srv("cluster|replicas", 3, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv("cluster|replicate", 3, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv("cluster|reset", -2, &["admin", "stale", "noscript"], CLUSTER_ADMIN_ACL),
    srv("cluster|saveconfig", 2, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv("cluster|set-config-epoch", 3, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv("cluster|setslot", -4, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv("cluster|shards", 2, CLUSTER_FLAGS, CLUSTER_ACL),
    srv("cluster|slaves", 3, CLUSTER_ADMIN_FLAGS, CLUSTER_ADMIN_ACL),
    srv("cluster|slots", 2, CLUSTER_FLAGS, CLUSTER_ACL),
];

pub const COMMANDS: &[CommandSpec] = &[
    srv("cluster", -2, &[], &["@slow"]).with_subcommands(CLUSTER_SUBCOMMANDS),
    srv("asking", 1, &["fast"], &["@fast", "@connection"]),
    srv("readonly", 1, &["loading", "stale", "fast"], &["@fast", "@connection"]),
    srv("readwrite", 1, &["loading", "stale", "fast"], &["@fast", "@connection"]),
    srv("ping", -1, &["fast"], &["@fast", "@connection"]),
    srv("echo", 2, &["fast"], &["@fast", "@connection"]),
    srv("hello", -1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], &["@fast", "@connection"]),
    srv("auth", -2, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], &["@fast", "@connection"]),
    srv("quit", -1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], &["@fast", "@connection"]),
    srv("reset", 1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], &["@fast", "@connection"]),
    srv("select", 2, &["loading", "stale", "fast"], &["@fast", "@connection"]),
    srv("client", -2, &[], &["@slow"]).with_subcommands(CLIENT_SUBCOMMANDS),
    srv("info", -1, &["loading", "stale"], &["@slow", "@dangerous"]),
    srv("time", 1, &["loading", "stale", "fast"], &["@fast"]),
    srv("config", -2, &[], &["@slow"]).with_subcommands(CONFIG_SUBCOMMANDS),
    srv("command", -1, &["loading", "stale"], &["@slow", "@connection"]).with_subcommands(COMMAND_SUBCOMMANDS),
    srv(
        "shutdown",
        -1,
        &["admin", "noscript", "loading", "stale", "no_multi", "allow_busy"],
        &["@admin", "@slow", "@dangerous"],
    ),
    srv("multi", 1, &["noscript", "loading", "stale", "fast", "allow_busy"], &["@fast", "@transaction"]),
    srv("exec", 1, &["noscript", "loading", "stale", "skip_slowlog"], &["@slow", "@transaction"]),
    srv("discard", 1, &["noscript", "loading", "stale", "fast", "allow_busy"], &["@fast", "@transaction"]),
    CommandSpec::new(
        "watch",
        -2,
        &["noscript", "loading", "stale", "fast", "allow_busy"],
        KeyPositions::new(1, -1, 1),
        &["@fast", "@transaction"],
        Handler::Server,
    ),
    srv("unwatch", 1, &["noscript", "loading", "stale", "fast", "allow_busy"], &["@fast", "@transaction"]),
];
