//! Async IO through the shard's own ring: the table of operations in flight and the
//! futures that wait for them.
//!
//! An operation is a slot in [`Ops`]: the future that started it, the waker to call when
//! it completes, and whatever the kernel reads or writes until then (the buffer, the path,
//! the socket address, the timespec). The entry's `user_data` is
//! `token::encode(KIND_OP, index | generation << 32)`, so the loop hands every completion of
//! that kind to [`Ops::complete`] and a stale completion never lands in a reused slot.
//!
//! **Submission goes through a queue, not through a shared ring.** Tasks push their entries
//! into the table's queue and the loop moves them into its ring with
//! [`Ops::submit_into`] just before its one enter per iteration. The alternative, a ring
//! behind `Rc<RefCell<_>>`, was rejected because:
//! - the shard loop keeps owning its [`Ring`] as a plain field: the request path pushes its
//!   own entries with no borrow check and no indirection, and no future can ever hold a
//!   borrow of the ring while the loop walks the completion queue;
//! - an operation dropped before its entry reached the kernel is simply taken out of the
//!   queue: nothing to cancel, no buffer to keep, no file descriptor used after its close;
//! - with SINGLE_ISSUER only the ring's thread may submit, and the `Rc` inside [`Ops`]
//!   keeps it on that thread.
//!
//! The cost is one 64-byte copy per entry. Latency is the same: entries reach the kernel at
//! the next enter either way.
//!
//! **Dropping a future whose entry is in the kernel** marks its slot abandoned: the slot
//! keeps the buffers until the completion arrives, and an `IORING_OP_ASYNC_CANCEL` is
//! queued so a receive that would never complete does not pin its buffer forever. If the
//! table itself goes away with operations still in flight, their buffers are leaked rather
//! than freed under the kernel.
//!
//! Buffers are owned, as the kernel needs them to outlive any borrow: `send`, `recv`,
//! `read_at` and `write_at` take a `Vec<u8>` and hand it back with the result. Reads append
//! to the vector, into its spare capacity (reserve before reading).
//!
//! In a shard loop:
//! ```ignore
//! for cqe in ring.completions() {
//!     match token::kind(cqe.user_data()) {
//!         token::KIND_OP => ops.complete(token::payload(cqe.user_data()), cqe.result(), cqe.flags()),
//!         // ...the loop's own kinds
//!     }
//! }
//! executor.run_ready();
//! ops.submit_into(&mut ring)?;
//! ring.enter(wait, timeout)?;
//! ```

use crate::token::{self, KIND_OP};
use crate::Ring;
use io_uring::{opcode, squeue, types};
use std::cell::RefCell;
use std::ffi::CString;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

const GEN_SHIFT: u32 = 32;
const GEN_MASK: u32 = 0x00ff_ffff;
/// The payload of entries whose completions nobody waits for (cancellations, wake-ups).
const DETACHED: u64 = token::PAYLOAD_MASK;

/// What the kernel may still read or write while an operation is in flight.
enum Held {
    Nothing,
    Buf(Vec<u8>),
    /// Only opens hold a path (so an abandoned open's descriptor can be closed).
    Path(#[allow(dead_code)] CString),
    /// A rename's two paths (no descriptor comes back).
    Paths(#[allow(dead_code)] CString, #[allow(dead_code)] CString),
    Addr(#[allow(dead_code)] Box<SockAddr>),
    /// An accept's room for the peer's address (an abandoned accept's new descriptor
    /// is closed, as an abandoned open's).
    Peer(Box<SockAddr>),
    Time(#[allow(dead_code)] Box<types::Timespec>),
    /// A descriptor being closed: closed here if the entry never reaches the kernel,
    /// forgotten once the kernel has taken it.
    Closing(OwnedFd),
}

impl Held {
    fn into_buf(self) -> Vec<u8> {
        match self {
            Held::Buf(b) => b,
            _ => Vec::new(),
        }
    }
}

enum State {
    Free,
    InFlight {
        waker: Option<Waker>,
        held: Held,
        /// The entry is still in the table's queue, not in the ring.
        queued: bool,
        /// The future is gone: release the slot when the completion arrives.
        abandoned: bool,
    },
    Done {
        res: i32,
        flags: u32,
        held: Held,
    },
}

struct Slot {
    gen: u32,
    state: State,
}

#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Entries waiting for the loop's next [`Ops::submit_into`].
    queue: Vec<squeue::Entry>,
    /// Slots not free: in flight (abandoned or not) or done but not yet taken.
    used: usize,
}

/// Leftovers to drop once the table is no longer borrowed: dropping a waker or a buffer
/// must never run while the table is borrowed.
type Leftovers = (Option<Waker>, Option<Held>);

#[inline]
fn split(id: u64) -> (usize, u32) {
    ((id & 0xffff_ffff) as usize, (id >> GEN_SHIFT) as u32 & GEN_MASK)
}

#[inline]
fn op_user_data(id: u64) -> u64 {
    token::encode(KIND_OP, id)
}

impl Table {
    fn start(&mut self, sqe: squeue::Entry, held: Held) -> u64 {
        let idx = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                self.slots.push(Slot { gen: 0, state: State::Free });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[idx];
        slot.state = State::InFlight { waker: None, held, queued: true, abandoned: false };
        self.used += 1;
        let id = idx as u64 | (slot.gen as u64) << GEN_SHIFT;
        self.queue.push(sqe.user_data(op_user_data(id)));
        id
    }

    fn slot(&mut self, id: u64) -> Option<&mut Slot> {
        let (idx, gen) = split(id);
        self.slots.get_mut(idx).filter(|s| s.gen == gen)
    }

    /// Frees the slot of `id`, returning what it held.
    fn release(&mut self, id: u64) -> Leftovers {
        let (idx, _) = split(id);
        let slot = &mut self.slots[idx];
        let old = std::mem::replace(&mut slot.state, State::Free);
        slot.gen = (slot.gen + 1) & GEN_MASK;
        self.free.push(idx as u32);
        self.used -= 1;
        match old {
            State::Free => (None, None),
            State::InFlight { waker, held, .. } => (waker, Some(held)),
            State::Done { held, .. } => (None, Some(held)),
        }
    }

    /// Takes the entry of `id` back out of the queue. Returns false if it was not there.
    fn unqueue(&mut self, id: u64) -> bool {
        let ud = op_user_data(id);
        match self.queue.iter().position(|e| e.get_user_data() == ud) {
            Some(pos) => {
                self.queue.remove(pos);
                true
            }
            None => false,
        }
    }

    fn queue_cancel(&mut self, id: u64) {
        let sqe = opcode::AsyncCancel::new(op_user_data(id))
            .build()
            .flags(squeue::Flags::SKIP_SUCCESS)
            .user_data(token::encode(KIND_OP, DETACHED));
        self.queue.push(sqe);
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            if let State::InFlight { held, queued: false, .. } = std::mem::replace(&mut slot.state, State::Free) {
                // The kernel may still write into it: leaking is the only safe choice.
                std::mem::forget(held);
            }
        }
    }
}

/// The operations in flight on one ring. Cheap to clone (an `Rc`); clones share the table.
/// `!Send`: it lives on the ring's thread.
#[derive(Clone, Default)]
pub struct Ops {
    table: Rc<RefCell<Table>>,
}

/// The outcome of an entry submitted with [`Ops::submit`]: the completion's result and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub res: i32,
    pub flags: u32,
}

impl Ops {
    pub fn new() -> Ops {
        Ops::default()
    }

    /// Delivers the completion of an entry whose `user_data` had kind [`token::KIND_OP`].
    /// Stale or unknown payloads are ignored.
    pub fn complete(&self, payload: u64, res: i32, flags: u32) {
        if payload == DETACHED {
            return;
        }
        let (waker, held) = {
            let mut t = self.table.borrow_mut();
            let Some(slot) = t.slot(payload) else { return };
            match &mut slot.state {
                State::InFlight { abandoned: true, .. } => t.release(payload),
                State::InFlight { waker, held, .. } => {
                    let waker = waker.take();
                    let held = finish_held(std::mem::replace(held, Held::Nothing));
                    slot.state = State::Done { res, flags, held };
                    (waker, None)
                }
                State::Free | State::Done { .. } => (None, None),
            }
        };
        if let Some(h) = held {
            if matches!(h, Held::Path(_) | Held::Peer(_)) && res >= 0 {
                // An open or accept whose future is gone: nobody else will ever close
                // the descriptor it made.
                // SAFETY: the kernel just created this descriptor for us.
                unsafe { libc::close(res) };
            }
            drop(finish_held(h));
        }
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Moves every queued entry into `ring`. The loop calls this once per iteration, right
    /// before its enter. Returns how many entries were moved.
    pub fn submit_into(&self, ring: &mut Ring) -> io::Result<usize> {
        let mut t = self.table.borrow_mut();
        let mut queue = std::mem::take(&mut t.queue);
        let mut pushed = 0;
        let mut result = Ok(());
        for sqe in &queue {
            // SAFETY: whatever an entry points to is held by its slot until its completion
            // arrives, and stays held (leaked) if the table goes away first; detached
            // entries (cancellations, wake-ups) point to no memory.
            if let Err(e) = unsafe { ring.push(sqe) } {
                result = Err(e);
                break;
            }
            pushed += 1;
        }
        for sqe in &queue[..pushed] {
            let ud = sqe.get_user_data();
            if token::kind(ud) != KIND_OP || token::payload(ud) == DETACHED {
                continue;
            }
            if let Some(Slot { state: State::InFlight { queued, .. }, .. }) = t.slot(token::payload(ud)) {
                *queued = false;
            }
        }
        queue.drain(..pushed);
        // Anything pushed meanwhile is impossible (the table is borrowed), so what is left is
        // exactly what the ring refused, kept for the next call.
        t.queue = queue;
        result.map(|()| pushed)
    }

    /// Entries waiting for the next [`submit_into`](Self::submit_into).
    pub fn queued(&self) -> usize {
        self.table.borrow().queue.len()
    }

    /// Operations not finished with: in the kernel (including abandoned ones whose
    /// completion has not arrived) or completed but not yet taken by their future.
    pub fn in_flight(&self) -> usize {
        self.table.borrow().used
    }

    /// Operations whose entries are in the kernel and whose completions have not arrived.
    pub fn in_kernel(&self) -> usize {
        let t = self.table.borrow();
        t.slots.iter().filter(|s| matches!(s.state, State::InFlight { queued: false, .. })).count()
    }

    /// Cancels every operation: those still queued complete at once with `ECANCELED`,
    /// those in the kernel get an `IORING_OP_ASYNC_CANCEL` (queued; it takes effect after
    /// the next [`submit_into`](Self::submit_into) and enter).
    pub fn cancel_all(&self) {
        let mut leftovers = Vec::new();
        let mut wakers = Vec::new();
        {
            let mut t = self.table.borrow_mut();
            for idx in 0..t.slots.len() {
                let slot = &mut t.slots[idx];
                let id = idx as u64 | (slot.gen as u64) << GEN_SHIFT;
                match &mut slot.state {
                    State::InFlight { queued: true, abandoned, waker, held } => {
                        if *abandoned {
                            leftovers.push(t.release(id));
                        } else {
                            wakers.extend(waker.take());
                            let held = std::mem::replace(held, Held::Nothing);
                            slot.state = State::Done { res: -libc::ECANCELED, flags: 0, held };
                        }
                        t.unqueue(id);
                    }
                    State::InFlight { queued: false, .. } => t.queue_cancel(id),
                    State::Free | State::Done { .. } => {}
                }
            }
        }
        drop(leftovers);
        for w in wakers {
            w.wake();
        }
    }

    /// Queues a raw entry and returns a future for its completion.
    ///
    /// # Safety
    /// Whatever the entry points to (buffers, paths, structures) must stay valid until the
    /// returned future resolves, or forever if the future is dropped before that. The entry
    /// must produce exactly one completion (no multishot, no `SKIP_SUCCESS`). Its
    /// `user_data` is overwritten.
    pub unsafe fn submit(&self, sqe: squeue::Entry) -> Submit {
        Submit(self.start(sqe, Held::Nothing))
    }

    /// Queues an entry that keeps `held` alive until its completion.
    fn start(&self, sqe: squeue::Entry, held: Held) -> Op {
        let id = self.table.borrow_mut().start(sqe, held);
        Op { ops: self.clone(), id, finished: false }
    }

    /// Called when an [`Op`] is dropped before it resolved.
    fn abandon(&self, id: u64) {
        let leftovers = {
            let mut t = self.table.borrow_mut();
            let Some(slot) = t.slot(id) else { return };
            match &mut slot.state {
                State::InFlight { queued: true, .. } => {
                    // Never reached the kernel: take the entry back and free everything now.
                    t.unqueue(id);
                    t.release(id)
                }
                State::InFlight { abandoned, waker, .. } => {
                    *abandoned = true;
                    let w = waker.take();
                    t.queue_cancel(id);
                    (w, None)
                }
                State::Done { .. } => t.release(id),
                State::Free => (None, None),
            }
        };
        drop(leftovers);
    }

    /// Queues an `IORING_OP_MSG_RING` that posts a completion with `user_data` on the ring
    /// `ring_fd` (e.g. the fd [`crate::Mailbox::send`] returns). Fire and forget: it leaves
    /// this ring at the loop's next enter and produces no completion here when it succeeds.
    pub fn wake_ring(&self, ring_fd: RawFd, user_data: u64) {
        let sqe = crate::MailWaker::entry(ring_fd, user_data);
        // A failure completion comes back with the target's user_data; give it ours instead.
        let sqe = sqe.user_data(token::encode(KIND_OP, DETACHED));
        self.table.borrow_mut().queue.push(sqe);
    }

    /// Connects a new TCP socket to `addr` (`socket()`, then `IORING_OP_CONNECT`).
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        // SAFETY: plain socket(2).
        let raw = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sa = Box::new(SockAddr::from(addr));
        let sqe = opcode::Connect::new(types::Fd(raw), sa.as_ptr(), sa.len).build();
        let (res, _, _) = self.start(sqe, Held::Addr(sa)).await;
        result(res)?;
        Ok(TcpStream { fd, ops: self.clone() })
    }

    /// Accepts one connection on the listening socket `fd` (`IORING_OP_ACCEPT`; the
    /// new socket is close-on-exec). Returns it with the peer's address. The listener
    /// should be blocking: the ring waits for a connection without a thread.
    pub async fn accept(&self, fd: RawFd) -> io::Result<(TcpStream, SocketAddr)> {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let mut sa = Box::new(SockAddr { storage, len });
        let addr = &mut sa.storage as *mut libc::sockaddr_storage as *mut libc::sockaddr;
        let sqe = opcode::Accept::new(types::Fd(fd), addr, &mut sa.len).flags(libc::SOCK_CLOEXEC).build();
        let (res, _, held) = self.start(sqe, Held::Peer(sa)).await;
        let raw = result(res)?;
        // SAFETY: the kernel just created this descriptor for us.
        let stream = TcpStream { fd: unsafe { OwnedFd::from_raw_fd(raw as RawFd) }, ops: self.clone() };
        let peer = match held {
            Held::Peer(sa) => sa.to_socket_addr(),
            _ => None,
        };
        let peer = peer.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "accepted a non-IP socket"))?;
        Ok((stream, peer))
    }

    /// Sends `buf` on socket `fd` (one `send`, which may be partial). Returns the number of
    /// bytes sent and the buffer.
    pub async fn send(&self, fd: RawFd, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        self.send_from(fd, buf, 0).await
    }

    /// Sends `buf[from..]`.
    async fn send_from(&self, fd: RawFd, buf: Vec<u8>, from: usize) -> (io::Result<usize>, Vec<u8>) {
        let from = from.min(buf.len());
        let len = clamp_len(buf.len() - from);
        // SAFETY: `from <= len`; the vector's heap block does not move when it moves into the slot.
        let ptr = unsafe { buf.as_ptr().add(from) };
        let sqe = opcode::Send::new(types::Fd(fd), ptr, len).flags(libc::MSG_NOSIGNAL).build();
        let (res, _, held) = self.start(sqe, Held::Buf(buf)).await;
        (result(res).map(|n| n as usize), held.into_buf())
    }

    /// Sends all of `buf`, resending after partial sends.
    pub async fn send_all(&self, fd: RawFd, mut buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let mut sent = 0;
        while sent < buf.len() {
            let (res, b) = self.send_from(fd, buf, sent).await;
            buf = b;
            match res {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Receives into the spare capacity of `buf` (appending). Returns the number of bytes
    /// received (0 at end of stream, or when `buf` has no spare capacity) and the buffer.
    pub async fn recv(&self, fd: RawFd, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        let (ptr, len) = spare(&mut buf);
        let sqe = opcode::Recv::new(types::Fd(fd), ptr, len).build();
        let (res, _, held) = self.start(sqe, Held::Buf(buf)).await;
        extend(res, held.into_buf())
    }

    /// Opens `path` (`openat(2)` flags and mode; `O_CLOEXEC` is always added).
    /// Renames `from` to `to` (IORING_OP_RENAMEAT, relative to the working directory),
    /// replacing `to` atomically as rename(2) does.
    pub async fn rename(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_bytes())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
        };
        let (from, to) = (c(from.as_ref())?, c(to.as_ref())?);
        let sqe =
            opcode::RenameAt::new(types::Fd(libc::AT_FDCWD), from.as_ptr(), types::Fd(libc::AT_FDCWD), to.as_ptr())
                .build();
        result(self.start(sqe, Held::Paths(from, to)).await.0).map(drop)
    }

    pub async fn open(&self, path: impl AsRef<Path>, flags: i32, mode: u32) -> io::Result<File> {
        let path = CString::new(path.as_ref().as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        let sqe = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
            .flags(flags | libc::O_CLOEXEC)
            .mode(mode as libc::mode_t)
            .build();
        let (res, _, _) = self.start(sqe, Held::Path(path)).await;
        let raw = result(res)? as RawFd;
        // SAFETY: the kernel just gave us this descriptor.
        Ok(File { fd: unsafe { OwnedFd::from_raw_fd(raw) }, ops: self.clone() })
    }

    /// Reads at `offset` into the spare capacity of `buf` (appending). Returns the number of
    /// bytes read (0 at end of file) and the buffer.
    pub async fn read_at(&self, fd: RawFd, mut buf: Vec<u8>, offset: u64) -> (io::Result<usize>, Vec<u8>) {
        let (ptr, len) = spare(&mut buf);
        let sqe = opcode::Read::new(types::Fd(fd), ptr, len).offset(offset).build();
        let (res, _, held) = self.start(sqe, Held::Buf(buf)).await;
        extend(res, held.into_buf())
    }

    /// Writes `buf` at `offset` (one write, which may be partial).
    pub async fn write_at(&self, fd: RawFd, buf: Vec<u8>, offset: u64) -> (io::Result<usize>, Vec<u8>) {
        let sqe = opcode::Write::new(types::Fd(fd), buf.as_ptr(), clamp_len(buf.len())).offset(offset).build();
        let (res, _, held) = self.start(sqe, Held::Buf(buf)).await;
        (result(res).map(|n| n as usize), held.into_buf())
    }

    /// Writes all of `buf` at `offset`, continuing after partial writes.
    pub async fn write_all_at(&self, fd: RawFd, mut buf: Vec<u8>, offset: u64) -> (io::Result<()>, Vec<u8>) {
        let mut done = 0usize;
        while done < buf.len() {
            let rest = clamp_len(buf.len() - done);
            // SAFETY: `done < len`; the heap block stays put while the slot holds the vector.
            let ptr = unsafe { buf.as_ptr().add(done) };
            let sqe = opcode::Write::new(types::Fd(fd), ptr, rest).offset(offset + done as u64).build();
            let (res, _, held) = self.start(sqe, Held::Buf(buf)).await;
            buf = held.into_buf();
            match result(res) {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => done += n as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// `fsync(2)`: data and metadata.
    pub async fn fsync(&self, fd: RawFd) -> io::Result<()> {
        let sqe = opcode::Fsync::new(types::Fd(fd)).build();
        result(self.start(sqe, Held::Nothing).await.0).map(drop)
    }

    /// `fdatasync(2)`: data and the metadata needed to read it back.
    pub async fn fdatasync(&self, fd: RawFd) -> io::Result<()> {
        let sqe = opcode::Fsync::new(types::Fd(fd)).flags(types::FsyncFlags::DATASYNC).build();
        result(self.start(sqe, Held::Nothing).await.0).map(drop)
    }

    /// Closes `fd` through the ring. If the future is dropped before the entry reached the
    /// kernel, the descriptor is closed synchronously instead.
    pub async fn close(&self, fd: OwnedFd) -> io::Result<()> {
        let sqe = opcode::Close::new(types::Fd(fd.as_raw_fd())).build();
        result(self.start(sqe, Held::Closing(fd)).await.0).map(drop)
    }

    /// Completes after `d`, through an `IORING_OP_TIMEOUT` on the ring.
    ///
    /// Compared with [`crate::executor::Executor::sleep`] (a heap the loop checks each
    /// iteration, which costs no system call and only bounds the loop's wait): a ring
    /// timeout costs an entry and a completion, but wakes the ring by itself, so it works
    /// in a loop that does not bound its wait by the executor's deadlines, and it can be
    /// linked to other entries later. Both are kept.
    pub async fn timeout(&self, d: Duration) -> io::Result<()> {
        let ts = Box::new(types::Timespec::from(d));
        let sqe = opcode::Timeout::new(&*ts as *const types::Timespec).build();
        match self.start(sqe, Held::Time(ts)).await.0 {
            res if res == -libc::ETIME || res >= 0 => Ok(()),
            res => Err(io::Error::from_raw_os_error(-res)),
        }
    }
}

/// Once the kernel has completed a close, the descriptor is its business, not ours.
fn finish_held(held: Held) -> Held {
    match held {
        Held::Closing(fd) => {
            let _ = fd.into_raw_fd();
            Held::Nothing
        }
        other => other,
    }
}

fn result(res: i32) -> io::Result<u32> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as u32)
    }
}

fn clamp_len(n: usize) -> u32 {
    n.min(u32::MAX as usize) as u32
}

/// The spare capacity of `buf` as a raw destination.
fn spare(buf: &mut Vec<u8>) -> (*mut u8, u32) {
    let len = clamp_len(buf.capacity() - buf.len());
    (buf.spare_capacity_mut().as_mut_ptr().cast::<u8>(), len)
}

/// Accounts for `res` bytes the kernel appended to `buf`.
fn extend(res: i32, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
    match result(res) {
        Ok(n) => {
            let n = (n as usize).min(buf.capacity() - buf.len());
            // SAFETY: the kernel initialised `n` bytes of the spare capacity.
            unsafe { buf.set_len(buf.len() + n) };
            (Ok(n), buf)
        }
        Err(e) => (Err(e), buf),
    }
}

/// A queued or submitted entry; resolves to its result, its flags and what it held.
struct Op {
    ops: Ops,
    id: u64,
    finished: bool,
}

impl Future for Op {
    type Output = (i32, u32, Held);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut old_waker = None;
        let out = {
            let mut t = this.ops.table.borrow_mut();
            match t.slot(this.id).map(|s| &mut s.state) {
                Some(State::Done { res, flags, held }) => {
                    let out = (*res, *flags, std::mem::replace(held, Held::Nothing));
                    t.release(this.id);
                    Poll::Ready(out)
                }
                Some(State::InFlight { waker, .. }) => {
                    if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        old_waker = waker.replace(cx.waker().clone());
                    }
                    Poll::Pending
                }
                // Unreachable while the future lives; answer as a cancelled operation.
                Some(State::Free) | None => Poll::Ready((-libc::ECANCELED, 0, Held::Nothing)),
            }
        };
        drop(old_waker);
        if out.is_ready() {
            this.finished = true;
        }
        out
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        if !self.finished {
            self.ops.abandon(self.id);
        }
    }
}

/// See [`Ops::submit`].
pub struct Submit(Op);

impl Future for Submit {
    type Output = Completion;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Completion> {
        Pin::new(&mut self.0).poll(cx).map(|(res, flags, _)| Completion { res, flags })
    }
}

/// A socket address in the kernel's layout.
struct SockAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl SockAddr {
    fn as_ptr(&self) -> *const libc::sockaddr {
        &self.storage as *const libc::sockaddr_storage as *const libc::sockaddr
    }

    /// The address, if it is an IPv4 or IPv6 one.
    fn to_socket_addr(&self) -> Option<SocketAddr> {
        match self.storage.ss_family as libc::c_int {
            libc::AF_INET if self.len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a sockaddr_in, and it is
                // large and aligned enough for one.
                let sin = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
            }
            libc::AF_INET6 if self.len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in6) };
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                let port = u16::from_be(sin6.sin6_port);
                Some(SocketAddr::V6(std::net::SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id)))
            }
            _ => None,
        }
    }

    /// The local address of socket `fd` (getsockname).
    fn local_of(fd: RawFd) -> io::Result<SocketAddr> {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut sa = SockAddr { storage, len: std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t };
        // SAFETY: getsockname writes at most `len` bytes into the storage.
        let r = unsafe { libc::getsockname(fd, &mut sa.storage as *mut _ as *mut libc::sockaddr, &mut sa.len) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        sa.to_socket_addr().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP socket"))
    }
}

impl From<SocketAddr> for SockAddr {
    fn from(addr: SocketAddr) -> SockAddr {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: as above, for sockaddr_in6.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        SockAddr { storage, len: len as libc::socklen_t }
    }
}

/// A connected TCP socket whose IO goes through the ring of its [`Ops`].
pub struct TcpStream {
    fd: OwnedFd,
    ops: Ops,
}

impl TcpStream {
    /// Wraps a connected socket (accepted elsewhere, say).
    pub fn from_fd(ops: Ops, fd: OwnedFd) -> TcpStream {
        TcpStream { fd, ops }
    }

    pub async fn send(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        self.ops.send(self.fd.as_raw_fd(), buf).await
    }

    pub async fn send_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        self.ops.send_all(self.fd.as_raw_fd(), buf).await
    }

    /// See [`Ops::recv`]: appends into the spare capacity of `buf`.
    pub async fn recv(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        self.ops.recv(self.fd.as_raw_fd(), buf).await
    }

    /// The socket's own address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        SockAddr::local_of(self.fd.as_raw_fd())
    }

    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        let v: libc::c_int = on.into();
        // SAFETY: setsockopt on our socket with a c_int option.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                &v as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Closes the socket through the ring (dropping it closes it synchronously).
    pub async fn close(self) -> io::Result<()> {
        self.ops.close(self.fd).await
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<TcpStream> for OwnedFd {
    fn from(s: TcpStream) -> OwnedFd {
        s.fd
    }
}

/// An open file whose IO goes through the ring of its [`Ops`].
pub struct File {
    fd: OwnedFd,
    ops: Ops,
}

impl File {
    /// See [`Ops::read_at`]: appends into the spare capacity of `buf`.
    pub async fn read_at(&self, buf: Vec<u8>, offset: u64) -> (io::Result<usize>, Vec<u8>) {
        self.ops.read_at(self.fd.as_raw_fd(), buf, offset).await
    }

    pub async fn write_at(&self, buf: Vec<u8>, offset: u64) -> (io::Result<usize>, Vec<u8>) {
        self.ops.write_at(self.fd.as_raw_fd(), buf, offset).await
    }

    pub async fn write_all_at(&self, buf: Vec<u8>, offset: u64) -> (io::Result<()>, Vec<u8>) {
        self.ops.write_all_at(self.fd.as_raw_fd(), buf, offset).await
    }

    pub async fn sync_all(&self) -> io::Result<()> {
        self.ops.fsync(self.fd.as_raw_fd()).await
    }

    pub async fn sync_data(&self) -> io::Result<()> {
        self.ops.fdatasync(self.fd.as_raw_fd()).await
    }

    /// Closes the file through the ring (dropping it closes it synchronously).
    pub async fn close(self) -> io::Result<()> {
        self.ops.close(self.fd).await
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<File> for OwnedFd {
    fn from(f: File) -> OwnedFd {
        f.fd
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalRuntime;
    use std::cell::Cell;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Instant;

    fn listener() -> (TcpListener, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        (l, addr)
    }

    /// Polls `fut` once with a waker that does nothing.
    fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
        Pin::new(fut).poll(&mut Context::from_waker(Waker::noop()))
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("ferrokv-runtime-{}-{name}", std::process::id()))
    }

    #[test]
    fn tcp_messages_go_both_ways() {
        let (l, addr) = listener();
        let peer = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = [0u8; 14];
            s.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"ping from ring");
            s.write_all(b"pong from std").unwrap();
            // Closing ends the stream: the client's next receive returns 0.
        });
        let mut rt = LocalRuntime::new().unwrap();
        let ops = rt.ops().clone();
        let (reply, eof) = rt
            .block_on(async move {
                let s = ops.connect(addr).await.unwrap();
                s.set_nodelay(true).unwrap();
                let (res, _) = s.send_all(b"ping from ring".to_vec()).await;
                res.unwrap();
                let mut buf = Vec::with_capacity(64);
                while buf.len() < 13 {
                    let (res, b) = s.recv(buf).await;
                    buf = b;
                    assert!(res.unwrap() > 0, "stream ended early");
                }
                buf.reserve(16);
                let (res, buf) = s.recv(buf).await;
                let eof = res.unwrap() == 0;
                s.close().await.unwrap();
                (buf, eof)
            })
            .unwrap();
        peer.join().unwrap();
        assert_eq!(reply, b"pong from std");
        assert!(eof);
        assert_eq!(rt.ops().in_flight(), 0);
    }

    #[test]
    fn accept_takes_a_connection_with_its_peer_address() {
        let (l, addr) = listener();
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            let local = s.local_addr().unwrap();
            s.write_all(b"hi").unwrap();
            local
        });
        let mut rt = LocalRuntime::new().unwrap();
        let ops = rt.ops().clone();
        let fd = l.as_raw_fd();
        let (peer, local, got) = rt
            .block_on(async move {
                let (s, peer) = ops.accept(fd).await.unwrap();
                let local = s.local_addr().unwrap();
                let mut buf = Vec::with_capacity(8);
                while buf.len() < 2 {
                    let (res, b) = s.recv(buf).await;
                    buf = b;
                    assert!(res.unwrap() > 0);
                }
                (peer, local, buf)
            })
            .unwrap();
        assert_eq!(peer, client.join().unwrap());
        assert_eq!(local, addr);
        assert_eq!(got, b"hi");
        assert_eq!(rt.ops().in_flight(), 0);
    }

    #[test]
    fn an_abandoned_accept_leaves_nothing_open() {
        let (l, addr) = listener();
        let mut rt = LocalRuntime::new().unwrap();
        let ops = rt.ops().clone();
        let fd = l.as_raw_fd();
        rt.block_on(async move {
            let mut accept = Box::pin(ops.accept(fd));
            assert!(poll_once(&mut accept).is_pending());
            // Let the loop submit it, so the kernel holds it when it is dropped.
            ops.timeout(Duration::from_millis(20)).await.ok();
            assert_eq!(ops.in_kernel(), 1);
            drop(accept);
            // The cancelled accept must not swallow the next connection.
            let c = std::thread::spawn(move || std::net::TcpStream::connect(addr).unwrap());
            let (s, _) = ops.accept(fd).await.unwrap();
            drop(c.join().unwrap());
            s.close().await.unwrap();
        })
        .unwrap();
        assert_eq!(rt.ops().in_flight(), 0);
    }

    #[test]
    fn connect_to_a_closed_port_is_refused() {
        let (l, addr) = listener();
        drop(l);
        let mut rt = LocalRuntime::new().unwrap();
        let ops = rt.ops().clone();
        let err = rt.block_on(async move { ops.connect(addr).await.err() }).unwrap();
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::ConnectionRefused));
    }

    #[test]
    fn rename_replaces_the_target_atomically() {
        let (from, to) = (temp_path("rename-from"), temp_path("rename-to"));
        std::fs::write(&from, b"new").unwrap();
        std::fs::write(&to, b"old").unwrap();
        let mut rt = LocalRuntime::new().unwrap();
        let ops = rt.ops().clone();
        let (f, t) = (from.clone(), to.clone());
        rt.block_on(async move { ops.rename(&f, &t).await }).unwrap().unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"new");
        assert!(!from.exists());
        let ops = rt.ops().clone();
        let (f, t) = (from.clone(), to.clone());
        let err = rt.block_on(async move { ops.rename(&f, &t).await }).unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        std::fs::remove_file(&to).unwrap();
    }

    #[test]
    fn file_written_synced_and_read_back() {
        let path = temp_path("file");
        let mut rt = LocalRuntime::new().unwrap();
        let ops = rt.ops().clone();
        let p = path.clone();
        let (head, tail, past_end) = rt
            .block_on(async move {
                let f = ops.open(&p, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC, 0o600).await.unwrap();
                let (res, _) = f.write_all_at(b"hello, ".to_vec(), 0).await;
                res.unwrap();
                let (res, _) = f.write_at(b"world".to_vec(), 7).await;
                assert_eq!(res.unwrap(), 5);
                f.sync_all().await.unwrap();
                f.sync_data().await.unwrap();
                let (res, head) = f.read_at(Vec::with_capacity(5), 0).await;
                assert_eq!(res.unwrap(), 5);
                // Reads append to what the buffer already holds.
                let full = vec![b'>'];
                assert_eq!(full.capacity(), full.len());
                let (res, mut tail) = f.read_at(full, 7).await;
                assert_eq!(res.unwrap(), 0, "no spare capacity: nothing read");
                tail.reserve_exact(32);
                let (res, tail) = f.read_at(tail, 7).await;
                assert_eq!(res.unwrap(), 5);
                let (res, past_end) = f.read_at(Vec::with_capacity(8), 100).await;
                assert_eq!(res.unwrap(), 0);
                f.close().await.unwrap();
                (head, tail, past_end)
            })
            .unwrap();
        assert_eq!(head, b"hello");
        assert_eq!(tail, b">world");
        assert!(past_end.is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), b"hello, world");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn open_reports_errors() {
        let mut rt = LocalRuntime::new().unwrap();
        let ops = rt.ops().clone();
        let (missing, nul) = rt
            .block_on(async move {
                let missing = ops.open(temp_path("does-not-exist"), libc::O_RDONLY, 0).await.err().map(|e| e.kind());
                let nul = ops.open("bad\0path", libc::O_RDONLY, 0).await.err().map(|e| e.kind());
                (missing, nul)
            })
            .unwrap();
        assert_eq!(missing, Some(io::ErrorKind::NotFound));
        assert_eq!(nul, Some(io::ErrorKind::InvalidInput));
    }

    #[test]
    fn ring_timeouts_fire_in_order_and_interleave_with_heap_timers() {
        let mut rt = LocalRuntime::new().unwrap();
        let log = Rc::new(RefCell::new(Vec::new()));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (name, ms) in [("ring30", 30u64), ("ring10", 10), ("ring20", 20)] {
            let (ops, log) = (rt.ops().clone(), log.clone());
            tasks.push(rt.spawn(async move {
                ops.timeout(Duration::from_millis(ms)).await.unwrap();
                log.borrow_mut().push(name);
            }));
        }
        let (ex, l) = (rt.executor().clone(), log.clone());
        tasks.push(rt.spawn(async move {
            ex.sleep(Duration::from_millis(15)).await;
            l.borrow_mut().push("heap15");
        }));
        rt.block_on(async move {
            for t in tasks {
                t.await;
            }
        })
        .unwrap();
        assert_eq!(*log.borrow(), vec!["ring10", "heap15", "ring20", "ring30"]);
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn dropping_a_receive_in_flight_cancels_it() {
        let (l, addr) = listener();
        // A peer that accepts and never sends.
        let peer = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 1];
            // Returns when the client closes.
            let _ = s.read(&mut b);
        });
        let mut rt = LocalRuntime::new().unwrap();
        let ops = rt.ops().clone();
        let stream = rt.block_on(ops.connect(addr)).unwrap().unwrap();
        let fd = stream.as_raw_fd();
        let polled = Rc::new(Cell::new(false));
        let (ops, p) = (rt.ops().clone(), polled.clone());
        rt.block_on(async move {
            // Polled once, then left in the kernel.
            let mut recv = Box::pin(ops.recv(fd, Vec::with_capacity(4096)));
            assert!(poll_once(&mut recv).is_pending());
            p.set(true);
            // Give the loop a few iterations so the entry really reaches the kernel.
            ops.timeout(Duration::from_millis(20)).await.unwrap();
            assert_eq!(ops.in_kernel(), 1);
            drop(recv);
            // The slot stays taken (the kernel owns the buffer) until the cancellation lands.
            assert_eq!(ops.in_flight(), 1);
            let start = Instant::now();
            while ops.in_flight() > 0 {
                ops.timeout(Duration::from_millis(1)).await.unwrap();
                assert!(start.elapsed() < Duration::from_secs(10), "cancellation never completed");
            }
        })
        .unwrap();
        assert!(polled.get());
        let ops = rt.ops().clone();
        rt.block_on(async move { stream.close().await.unwrap() }).unwrap();
        assert_eq!(ops.in_flight(), 0);
        peer.join().unwrap();
    }

    #[test]
    fn dropping_before_submission_takes_the_entry_back() {
        let rt = LocalRuntime::new().unwrap();
        let ops = rt.ops().clone();
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut recv = Box::pin(ops.recv(a.as_raw_fd(), Vec::with_capacity(16)));
        assert!(poll_once(&mut recv).is_pending());
        assert_eq!((ops.queued(), ops.in_flight()), (1, 1));
        drop(recv);
        assert_eq!((ops.queued(), ops.in_flight(), ops.in_kernel()), (0, 0, 0));
        // A close never submitted closes synchronously: the peer sees end of stream.
        let mut close = Box::pin(ops.close(OwnedFd::from(a)));
        assert!(poll_once(&mut close).is_pending());
        drop(close);
        let mut b = b;
        assert_eq!(b.read(&mut [0u8; 1]).unwrap(), 0);
    }

    #[test]
    fn dropping_the_runtime_with_operations_in_flight_drains_them() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut rt = LocalRuntime::new().unwrap();
        let ops = rt.ops().clone();
        let fd = a.as_raw_fd();
        let o = ops.clone();
        rt.spawn(async move {
            let _ = o.recv(fd, Vec::with_capacity(1 << 16)).await;
        })
        .detach();
        let o = ops.clone();
        rt.block_on(async move { o.timeout(Duration::from_millis(10)).await }).unwrap().unwrap();
        assert_eq!(ops.in_kernel(), 1);
        drop(rt);
        assert_eq!(ops.in_kernel(), 0);
        drop((a, b));
    }

    #[test]
    fn an_open_abandoned_in_flight_closes_what_it_opened() {
        let path = temp_path("abandoned-open");
        std::fs::write(&path, b"x").unwrap();
        let mut ring =
            Ring::new(crate::RingConfig { entries: 8, cq_entries: 16, batch: 1, min_wait: Duration::ZERO }).unwrap();
        let ops = Ops::new();
        let mut open = Box::pin(ops.open(&path, libc::O_RDONLY, 0));
        assert!(poll_once(&mut open).is_pending());
        ops.submit_into(&mut ring).unwrap();
        let start = Instant::now();
        let mut cqes = Vec::new();
        while cqes.is_empty() {
            ring.enter(true, Duration::from_millis(10)).unwrap();
            cqes.extend(ring.completions().map(|c| (c.user_data(), c.result(), c.flags())));
            assert!(start.elapsed() < Duration::from_secs(10), "open never completed");
        }
        drop(open);
        let (ud, fd, flags) = cqes[0];
        assert!(fd >= 0, "open failed: {fd}");
        let target = || std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
        assert_eq!(target(), Some(path.clone()));
        ops.complete(token::payload(ud), fd, flags);
        assert_ne!(target(), Some(path.clone()), "the abandoned open's descriptor is still open");
        assert_eq!(ops.in_flight(), 0);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn raw_submission_and_stale_completions() {
        let mut rt = LocalRuntime::new().unwrap();
        let ops = rt.ops().clone();
        // SAFETY: a NOP points to no memory.
        let c = rt.block_on(unsafe { ops.submit(opcode::Nop::new().build()) }).unwrap();
        assert_eq!(c, Completion { res: 0, flags: 0 });
        // Slot 0 is reused with the next generation: a completion carrying the old one
        // (payload 0) must not resolve it, nor one for a slot that does not exist.
        // SAFETY: as above.
        let mut next = Box::pin(unsafe { ops.submit(opcode::Nop::new().build()) });
        assert!(poll_once(&mut next).is_pending());
        ops.complete(0, 5, 0);
        ops.complete(12345, 5, 0);
        ops.complete(DETACHED, 5, 0);
        assert!(poll_once(&mut next).is_pending());
        let c = rt.block_on(next).unwrap();
        assert_eq!(c.res, 0);
        assert_eq!(ops.in_flight(), 0);
    }
}
