//! Pub/sub: SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UNSUBSCRIBEs, PUBLISH, SPUBLISH,
//! PUBSUB. They run in the server (connections and the node's subscription tables are
//! its state); here is only their table entry. Sharded channels are declared as keys
//! (Redis's `not_key` key specs) so cluster routing finds their slot like a key's.

use crate::table::{CommandSpec, Handler, KeyPositions, ServerCmd};

const NONE: KeyPositions = KeyPositions::NONE;
const SUB_FLAGS: &[&str] = &["pubsub", "noscript", "loading", "stale"];
const ACL: &[&str] = &["@pubsub", "@slow"];

const fn ps(
    cmd: ServerCmd,
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    keys: KeyPositions,
    acl: &'static [&'static str],
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, keys, acl, Handler::Server(cmd))
}

pub const PUBSUB_SUBCOMMANDS: &[CommandSpec] = &[
    ps(ServerCmd::Pubsub, "pubsub|channels", -2, &["pubsub", "loading", "stale"], NONE, ACL),
    ps(ServerCmd::Pubsub, "pubsub|help", 2, &["loading", "stale"], NONE, &["@slow"]),
    ps(ServerCmd::Pubsub, "pubsub|numpat", 2, &["pubsub", "loading", "stale"], NONE, ACL),
    ps(ServerCmd::Pubsub, "pubsub|shardchannels", -2, &["pubsub", "loading", "stale"], NONE, ACL),
    ps(ServerCmd::Pubsub, "pubsub|shardnumsub", -2, &["pubsub", "loading", "stale"], NONE, ACL),
    ps(ServerCmd::Pubsub, "pubsub|numsub", -2, &["pubsub", "loading", "stale"], NONE, ACL),
];

pub const COMMANDS: &[CommandSpec] = &[
    ps(ServerCmd::Subscribe, "subscribe", -2, SUB_FLAGS, NONE, ACL),
    ps(ServerCmd::Unsubscribe, "unsubscribe", -1, SUB_FLAGS, NONE, ACL),
    ps(ServerCmd::Psubscribe, "psubscribe", -2, SUB_FLAGS, NONE, ACL),
    ps(ServerCmd::Punsubscribe, "punsubscribe", -1, SUB_FLAGS, NONE, ACL),
    ps(ServerCmd::Ssubscribe, "ssubscribe", -2, SUB_FLAGS, KeyPositions::new(1, -1, 1), ACL),
    ps(ServerCmd::Sunsubscribe, "sunsubscribe", -1, SUB_FLAGS, KeyPositions::new(1, -1, 1), ACL),
    ps(ServerCmd::Publish, "publish", 3, &["pubsub", "loading", "stale", "fast"], NONE, &["@pubsub", "@fast"]),
    ps(
        ServerCmd::Spublish,
        "spublish",
        3,
        &["pubsub", "loading", "stale", "fast"],
        KeyPositions::new(1, 1, 1),
        &["@pubsub", "@fast"],
    ),
    ps(ServerCmd::Pubsub, "pubsub", -2, &[], NONE, &["@slow"]).with_subcommands(PUBSUB_SUBCOMMANDS),
];
