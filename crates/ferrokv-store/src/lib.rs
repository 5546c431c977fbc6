//! The keyspace of one shard and the values in it. No IO, no threads: a shard owns its
//! [`Db`] and the server decides which thread touches it.

pub mod db;
pub mod effects;
pub mod glob;
pub mod hash;
pub mod keybytes;
mod keytable;
pub mod list;
pub mod rdb;
pub mod set;
pub mod slot;
pub mod tracking;
pub mod value;
pub mod zset;

pub use db::capture::{Captured, ChunkKind, DumpedKey, KeyChunk};
pub use db::{Db, Entry, Expiry};
pub use slot::{key_slot, SlotSet, SLOTS};
pub use value::{StrBytes, Value};
