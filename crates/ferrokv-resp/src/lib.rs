//! RESP2/RESP3 wire format, without IO.
//!
//! - [`parser`]: the request parser (multibulk and inline), resumable across reads.
//! - [`inline`]: splitting an inline command line into arguments (quotes, escapes).
//! - [`args`]: argument vectors that borrow from the read buffer ([`Args`]) or own
//!   their bytes ([`OwnedArgs`]) when a command must outlive the buffer.
//! - [`peek`]: a look ahead at the keys of the next pipelined commands, for prefetching.
//! - [`reply`]: the reply encoder, aware of the connection's protocol version.
//! - [`value`]: replies as values: parser (one-shot and resumable), encoder and a
//!   redis-cli-style printer, for clients, tests and the CLI.

pub mod args;
pub mod inline;
pub mod parser;
pub mod peek;
pub mod reply;
pub mod value;

pub use args::{Args, OwnedArgs, Span};
pub use parser::{Limits, Parsed, ProtocolError, RequestParser};
pub use reply::{format_double, Proto, ReplyBuf};
pub use value::{encode_value, format_for_humans, parse_value, Value, ValueReader};
