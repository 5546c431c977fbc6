//! Messages between shards.

use ferrokv_commands::CommandSpec;
use ferrokv_resp::{OwnedArgs, Proto};

pub enum Msg {
    /// Run a single-shard data command here and send the reply back to `from`.
    Exec { from: usize, token: u64, seq: u64, proto: Proto, spec: &'static CommandSpec, args: OwnedArgs },
    /// The reply to an `Exec`, for the connection `token` of the receiving shard.
    Reply { token: u64, seq: u64, bytes: Vec<u8> },
    /// Close the connection `token` of the receiving shard (CLIENT KILL).
    Kill { token: u64 },
}
