//! Cluster bus for ferrokv (work in progress).

pub mod flags;
pub mod id;
pub mod rng;
pub mod slots;
pub mod wire;
