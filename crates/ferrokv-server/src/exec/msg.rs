//! Messages between shards.

use crate::blocking::Waiter;
use ferrokv_commands::CommandSpec;
use ferrokv_resp::{OwnedArgs, Proto};
use std::sync::Arc;

/// A single-shard data command forwarded to the shard that owns its keys, with what the
/// reply needs to find its way back. A blocking command carries the waiter to register
/// if it has to wait.
pub struct Forward {
    pub from: usize,
    pub token: u64,
    pub seq: u64,
    /// The client's selected database.
    pub db: usize,
    pub proto: Proto,
    pub spec: &'static CommandSpec,
    pub id: ferrokv_commands::table::CommandId,
    pub args: OwnedArgs,
    pub waiter: Option<Arc<Waiter>>,
    /// Who runs it, for client tracking.
    pub caller: ferrokv_commands::exec::Caller,
}

pub enum Msg {
    /// Run a single-shard data command here and send the reply back to `from`.
    Exec(Forward),
    /// The forwarded blocking command `seq` is waiting; its timeout starts now.
    Blocked { token: u64, seq: u64, timeout_ms: u64 },
    /// A key of the multi-shard waiter `seq` changed: retry it from its home shard.
    Retry { token: u64, seq: u64 },
    /// A CLUSTER subcommand for the bus (shard 0); the answer comes back as a `Reply`.
    Cluster { from: usize, token: u64, seq: u64, proto: Proto, cmd: ferrokv_cluster::Command },
    /// CLUSTER LINKS, answered by the bus (shard 0) as a `Reply`.
    ClusterLinks { from: usize, token: u64, seq: u64, proto: Proto },
    /// The reply to an `Exec`, for the connection `token` of the receiving shard.
    Reply { token: u64, seq: u64, bytes: Vec<u8> },
    /// Close the connection `token` of the receiving shard (CLIENT KILL).
    Kill { token: u64 },
    /// A pub/sub message for this shard's subscribers.
    Publish(Arc<crate::pubsub::Publication>),
    /// Cluster mode: a message published here, for the bus (shard 0) to send to the
    /// other nodes.
    ClusterPublish(Arc<crate::pubsub::Publication>),
    /// Client tracking: a notice for the connection `token` of the receiving shard.
    Tracking { token: u64, notice: crate::tracking::Notice },
    /// Client tracking: what another thread's change of this shard's keys owes, to send
    /// from here (see `crate::tracking`).
    TrackingRelay(Box<ferrokv_store::tracking::Owed>),
    /// A flush owes tracking clients a null: relay a marker to every shard.
    TrackingFlushRelay(u64),
    /// One shard's marker of a flush (see `crate::tracking`).
    TrackingFlushMarker(u64),
    /// A MIGRATE round came back from the migration thread (to the client's home shard).
    MigrateDone(Box<crate::migrate::Done>),
}

impl Msg {
    /// The message's kind, for log lines.
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::Exec(_) => "exec",
            Msg::Blocked { .. } => "blocked",
            Msg::Retry { .. } => "retry",
            Msg::Cluster { .. } => "cluster",
            Msg::ClusterLinks { .. } => "cluster-links",
            Msg::Reply { .. } => "reply",
            Msg::Kill { .. } => "kill",
            Msg::MigrateDone(_) => "migrate-done",
            Msg::Publish(_) => "publish",
            Msg::ClusterPublish(_) => "cluster-publish",
            Msg::Tracking { .. } => "tracking",
            Msg::TrackingRelay(_) => "tracking-relay",
            Msg::TrackingFlushRelay(_) => "tracking-flush-relay",
            Msg::TrackingFlushMarker(_) => "tracking-flush-marker",
        }
    }
}
