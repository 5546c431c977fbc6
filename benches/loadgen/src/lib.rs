//! ferrokv-load: a load generator for ferrokv and redis-server that speaks Redis
//! Cluster — what memtier_benchmark does, written for this project's benchmarks.
//!
//! Many clients over a few threads (one epoll loop each), pipelined, routed by the
//! slot map from CLUSTER SLOTS (MOVED updates it, ASK is followed with ASKING), or
//! standalone against one endpoint; SET/GET in a given ratio over keys drawn uniformly,
//! from a Zipf law or in sequence, optionally grouped under hash tags; per-request
//! latency in an HDR histogram; bounded by a request count or a duration.
//!
//! `keys`, `slots` and `reply` are pure (tested in-process); `run` does the IO.

pub mod keys;
pub mod reply;
pub mod run;
pub mod slots;

pub use run::{run, Config, DistKind, Mode, Report, Stats};
