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
//!   - `ReplicateFrom`, `StopReplication`, `DeleteKeysInSlots`: replication and keyspace
//!     actions; `Reply`: the answer to the command fed, always last (after the view it
//!     changed); `Log`: log it.
//!
//! # Modules
//!
//! - [`state`]: the protocol (MEET handshake, PING/PONG gossip, PFAIL/FAIL, epochs,
//!   UPDATE, FORGET ban) — its module documentation explains the algorithm;
//! - [`commands`]: the CLUSTER subcommands that change state, with Redis's errors;
//! - [`view`]: snapshots and the renderers of CLUSTER NODES/SLOTS/SHARDS/INFO/REPLICAS;
//! - [`nodes_conf`]: nodes.conf in Redis's format;
//! - [`wire`]: the bus message format.

pub mod commands;
pub mod flags;
pub mod id;
pub mod nodes_conf;
pub mod rng;
pub mod slots;
pub mod state;
pub mod view;
pub mod wire;

pub use commands::{parse_slot, Command, Reply};
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
