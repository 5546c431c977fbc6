//! The per-core runtime: one pinned thread per core, each owning one io_uring ring.
//!
//! - [`ring`]: ring setup (`SINGLE_ISSUER | DEFER_TASKRUN`, with logged fallbacks) and
//!   the one `io_uring_enter` per loop iteration that submits and waits for a batch.
//! - [`bufring`]: a provided-buffer ring for multishot receives.
//! - [`mailbox`]: cross-core channels that batch messages per destination and wake a
//!   sleeping receiver through its ring with `IORING_OP_MSG_RING`.
//! - [`cores`]: the process's CPU affinity mask, pinning, and RLIMIT_MEMLOCK.
//! - [`executor`]: a small single-threaded executor for async code on a shard.
//! - [`ops`]: async operations through the shard's own ring (TCP connect/send/recv, file
//!   open/read/write/fsync/close, ring timeouts) for tasks on that executor.
//! - [`local`]: ring + executor + operations driven by `block_on`, for tests and for
//!   background threads that are not shards.
//!
//! The request path does not go through futures: a shard's loop dispatches completions
//! by their `user_data` tag (see [`token`]) straight to its connections, which is the
//! cheapest way to keep one enter per iteration. Async code (timers, background work)
//! runs on the executor, driven by the same loop.

pub mod bufring;
pub mod cores;
pub mod executor;
pub mod local;
pub mod mailbox;
pub mod ops;
pub mod ring;
pub mod token;

pub use bufring::BufRing;
pub use executor::Executor;
pub use local::{Inbox, LocalRuntime};
pub use mailbox::{Mailbox, Waker as MailWaker};
pub use ops::{File, Ops, TcpStream};
pub use ring::{Ring, RingConfig, RingFlavor};
