//! Black-box test harness for ferrokv-server.
//!
//! - [`server`]: [`Server`] starts ferrokv-server or redis-server on a free port of
//!   127.0.0.1 with its own directory, waits for PING and kills it on drop.
//! - [`conn`]: [`Conn`], a raw RESP connection whose replies are the exact bytes sent.
//! - [`resp`]: reply framing and decoding, request encoding, escaped display.
//! - [`diff`]: seeded command streams sent to ferrokv and redis side by side.
//! - [`rng`]: the seeded generator behind the streams.
//! - [`dataset`]: a dataset of every type and a snapshot of a whole keyspace.
//! - [`cluster`]: clusters built and changed by `redis-cli --cluster`, and a client that
//!   follows MOVED/ASK/TRYAGAIN.
//!
//! The integration tests are in `tests/` of this crate: `differential.rs` (replies
//! identical to redis-server's) and `server.rs` (the server as a real client sees it).

pub mod cluster;
pub mod conn;
pub mod dataset;
pub mod diff;
pub mod resp;
pub mod rng;
pub mod server;

pub use conn::Conn;
pub use resp::Reply;
pub use rng::Rng;
pub use server::{Kind, Server};
