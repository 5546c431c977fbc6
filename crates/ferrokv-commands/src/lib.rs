//! The command table and the data command families.
//!
//! Every command ferrokv knows is one [`CommandSpec`] in [`table`]: name, arity, flags,
//! key positions and ACL categories. That one table answers COMMAND, drives arity
//! errors and tells the server which keys (and so which slots and shards) a command
//! touches. Data commands are functions over a [`Ctx`]: they read their arguments, use
//! the keyspace through it and write exactly one reply. They know nothing of sockets or
//! shards; the server decides where they run.

pub mod ctx;
mod docs;
pub mod error;
pub mod exec;
pub mod families;
mod keyspecs;
pub mod notify;
pub mod scripting;
pub mod table;
#[cfg(test)]
pub(crate) mod testkit;
pub mod util;

pub use ctx::{Ctx, ExecConfig, Keyspace, Propagation, SingleDb};
pub use error::{CommandError, ErrorCode};
pub use exec::{execute, Env, Outcome};
pub use table::{lookup, CommandSpec, Handler, KeyPositions, COMMANDS};
