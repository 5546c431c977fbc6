//! ferrokv's cluster bus: Redis Cluster's node-to-node protocol as a deterministic state
//! machine with no IO, no threads and no clock reads.
//!
//! A [`ClusterState`] is fed [`Input`]s (ticks, link events, decoded [`Message`]s, CLUSTER
//! [`Command`]s) with the local time, and answers with [`Output`]s: connections to open,
//! messages to send, links to close, nodes.conf to save, replies, and new
//! [`ClusterView`] snapshots to publish to every shard. The IO layer that runs it (on one
//! shard) owns sockets and files and nothing else; the same state machine runs in the
//! seeded simulator in `tests/sim.rs`, with partitions, loss, delays, crashes, restarts and
//! clock steps.
//!
//! # Running it (the IO layer's contract)
//!
//! - Start with [`ClusterState::load`] on the contents of nodes.conf, or
//!   [`ClusterState::new`] when there is none (empty file), with a [`ClusterConfig`] whose
//!   `seed` comes from real randomness: it generates node IDs.
//! - Call [`ClusterState::handle`] with [`Input::Tick`] every 100 ms, and with every event,
//!   always passing the local wall-clock time in milliseconds (it may jump; the machine
//!   copes). Carry out the returned [`Output`]s in order:
//!   - `SaveConfig` (always first): write nodes.conf atomically (temporary file, fsync when
//!     asked, rename) before sending anything else;
//!   - `Connect { link, ip, port }`: connect to that bus address; report
//!     [`Input::Connected`] or, on failure, [`Input::Closed`]; queue `Send`s until connected;
//!   - `Send { link, msg }`: write `msg.encode()` on the link; `Close(link)`: close it (no
//!     `Closed` needs to come back);
//!   - accepted connections: pick a fresh [`LinkId::Inbound`] and report
//!     [`Input::Accepted`] with the peer's and our own address; read frames with
//!     [`decode_frame`] and feed [`Input::Message`]; drop the connection on a decode error
//!     and report [`Input::Closed`] for it; report `Closed` whenever a link dies;
//!   - `ViewChanged(view)`: publish the snapshot to every shard (routing, MOVED/ASK, CLUSTER
//!     NODES/SLOTS/SHARDS/INFO/REPLICAS are answered from it);
//!   - `ReplicateFrom { master, ip, port }`: become (or stay) a replica of that node — also
//!     what a master that lost its slots to a failover gets, so it resyncs from the winner;
//!     `StopReplication { flush }` (CLUSTER RESET); `DeleteKeysInSlots`: keyspace action;
//!   - `Promoted { former_master }`: this replica won a failover (or took over): stop
//!     replicating and become a master keeping the data set, as `REPLICAOF NO ONE` (new
//!     replication ID, the old one kept for partial resyncs of the siblings that follow);
//!   - `PauseWrites { until_ms }` / `ResumeWrites`: a replica is taking over in a manual
//!     failover — refuse (hold) client writes until `until_ms` local time or `ResumeWrites`,
//!     whichever comes first, as `CLIENT PAUSE WRITE`; held writes then find the node a
//!     replica and get redirected;
//!   - `Reply`: the answer to the command fed, always last (after the view it changed);
//!     `Log`: log it.
//! - Keep the replication facts current (before each `handle`, or at least each tick):
//!   [`ClusterState::set_repl_offset`] with `master_repl_offset` on a master and the
//!   processed (applied) offset on a replica — headers carry it, elections rank replicas by
//!   it, a manual failover waits for it to reach the paused master's; and
//!   [`ClusterState::set_master_link_down_since`] with `None` while the replica's link to
//!   its master is up and `Some(local ms)` from the moment it went down (the state starts as
//!   `Some(0)`, "never connected": with `replica_validity_factor` non-zero a replica that
//!   never reported its link up does not fail over automatically, as Redis).
//! - `CLUSTER FAILOVER [FORCE|TAKEOVER]` is [`Command::Failover`] with the raw option; its
//!   `+OK` means the failover started, not that it is done (as Redis).
//!
//! # Modules
//!
//! - [`state`]: the protocol (MEET handshake, PING/PONG gossip, PFAIL/FAIL, epochs,
//!   UPDATE, FORGET ban, replica elections and manual failover, replica migration) — its
//!   module documentation explains the algorithm, and each part's file its own;
//! - [`commands`]: the CLUSTER subcommands that change state, with Redis's errors;
//! - [`view`]: snapshots and the renderers of CLUSTER NODES/SLOTS/SHARDS/INFO/REPLICAS;
//! - [`nodes_conf`]: nodes.conf in Redis's format;
//! - [`wire`]: the bus message format.

pub mod commands;
pub mod cores;
pub mod flags;
pub mod id;
pub mod nodes_conf;
pub mod rng;
pub mod slots;
pub mod state;
pub mod view;
pub mod wire;

pub use commands::{parse_slot, Command, Reply, SlotMigrationOp};
pub use cores::CoreEndpoints;
pub use flags::NodeFlags;
pub use id::NodeId;
pub use nodes_conf::{NodesConf, NodesConfError};
pub use slots::{SlotBitmap, SLOTS};
pub use state::{ClusterConfig, ClusterState, Input, LinkId, LinkInfo, LogLevel, Output, FORGET_BAN_MS, MF_TIMEOUT_MS};
pub use view::{
    cluster_info_text, cluster_nodes_text, cluster_replicas, cluster_shards, cluster_slots, ClusterView, NodeInfo,
    Shard, ShardNode, SlotRange,
};
pub use wire::{decode_frame, DecodeError, Message};
