//! A runtime on one thread: a ring, an executor and the operations table, driven by
//! [`LocalRuntime::block_on`]. Tests use it, and so will background threads that are not
//! shards (the cluster bus).
//!
//! Each loop iteration: hand the ring's completions to [`Ops::complete`], poll the main
//! future if it was woken, run the executor's ready tasks, move queued entries into the
//! ring, then one enter with GETEVENTS that waits when nothing is ready. The wait is bounded
//! by the executor's next timer and by an idle timeout.
//!
//! Mailboxes: [`LocalRuntime::inbox`] makes this ring the wake-up target of a [`Mailbox`].
//! Before blocking, the runtime marks every mailbox a task waits on as sleeping; a sender
//! that finds it so queues a MSG_RING to this ring ([`Ops::wake_ring`], or
//! [`crate::MailWaker::entry`] from a shard loop), which ends the wait.
//!
//! Limitation: a waker called from another thread (say, a task waiting on a std channel)
//! queues the task but does not interrupt the ring's wait; it runs at the latest after the
//! idle timeout. Cross-thread wake-ups go through mailboxes.

use crate::executor::Executor;
use crate::ops::Ops;
use crate::token::{self, KIND_OP};
use crate::{Mailbox, Ring, RingConfig};
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// How long [`Drop`] waits for cancelled operations to leave the kernel before leaking
/// their buffers.
const DRAIN_ON_DROP: Duration = Duration::from_secs(5);

/// The sleeping handshake of a mailbox, whatever its message type.
trait SleepGate {
    fn prepare_sleep(&self) -> bool;
    fn awake(&self);
    fn has_pending(&self) -> bool;
}

impl<T> SleepGate for Mailbox<T> {
    fn prepare_sleep(&self) -> bool {
        Mailbox::prepare_sleep(self)
    }
    fn awake(&self) {
        Mailbox::awake(self)
    }
    fn has_pending(&self) -> bool {
        Mailbox::has_pending(self)
    }
}

/// A mailbox the runtime watches, and the task waiting on it.
struct Watch {
    gate: Arc<dyn SleepGate>,
    waiter: RefCell<Option<Waker>>,
}

impl Watch {
    fn is_waited_on(&self) -> bool {
        self.waiter.borrow().is_some()
    }

    fn wake(&self) {
        let w = self.waiter.borrow_mut().take();
        if let Some(w) = w {
            w.wake();
        }
    }
}

/// The receiving end of a [`Mailbox`] on a [`LocalRuntime`] (see [`LocalRuntime::inbox`]).
pub struct Inbox<T> {
    mailbox: Arc<Mailbox<T>>,
    watch: Rc<Watch>,
}

impl<T> Inbox<T> {
    /// Waits until at least one message arrived and moves every queued message into `into`
    /// (appending). Returns how many were moved. One task at a time waits on an inbox (a
    /// second waiter replaces the first's waker).
    pub async fn recv(&self, into: &mut Vec<T>) -> usize {
        std::future::poll_fn(|cx| {
            let before = into.len();
            self.mailbox.drain(into);
            let old = if into.len() > before {
                self.watch.waiter.borrow_mut().take()
            } else {
                self.watch.waiter.borrow_mut().replace(cx.waker().clone())
            };
            drop(old);
            if into.len() > before {
                Poll::Ready(into.len() - before)
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Moves every queued message into `into` without waiting.
    pub fn try_recv(&self, into: &mut Vec<T>) -> usize {
        let before = into.len();
        self.mailbox.drain(into);
        into.len() - before
    }

    pub fn mailbox(&self) -> &Arc<Mailbox<T>> {
        &self.mailbox
    }
}

/// The waker of the future given to `block_on`: a flag, callable from any thread.
struct MainWake(AtomicBool);

impl Wake for MainWake {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// A ring, an executor and an operations table on the calling thread. `!Send`: the ring is
/// single-issuer, so the runtime stays on the thread that created it.
pub struct LocalRuntime {
    ops: Ops,
    executor: Executor,
    watches: RefCell<Vec<Weak<Watch>>>,
    idle_timeout: Duration,
    ring: Ring,
}

impl LocalRuntime {
    /// A small ring that returns from its wait on the first completion (latency over
    /// batching: this is not a request path).
    pub fn new() -> io::Result<LocalRuntime> {
        LocalRuntime::with_config(RingConfig { entries: 256, cq_entries: 4096, batch: 1, min_wait: Duration::ZERO })
    }

    pub fn with_config(cfg: RingConfig) -> io::Result<LocalRuntime> {
        Ok(LocalRuntime {
            ops: Ops::new(),
            executor: Executor::new(),
            watches: RefCell::new(Vec::new()),
            idle_timeout: Duration::from_secs(1),
            ring: Ring::new(cfg)?,
        })
    }

    /// The operations table; clone it into tasks.
    pub fn ops(&self) -> &Ops {
        &self.ops
    }

    /// The executor; clone it into tasks to spawn or sleep.
    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// The ring's descriptor, the target of MSG_RING wake-ups.
    pub fn ring_fd(&self) -> RawFd {
        self.ring.fd()
    }

    /// The longest single wait when nothing is scheduled (default 1 s). Only a bound: the
    /// ring wakes on completions, wake-ups and timers anyway.
    pub fn set_idle_timeout(&mut self, d: Duration) {
        self.idle_timeout = d;
    }

    pub fn spawn<F>(&self, fut: F) -> async_task::Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.executor.spawn(fut)
    }

    /// Makes this ring the wake-up target of `mailbox` and returns its receiving end.
    /// Senders wake this ring with `ops.wake_ring(fd, token::encode(KIND_WAKE, 0))` (or any
    /// user_data whose kind is not [`KIND_OP`]) when [`Mailbox::send`] returns an fd.
    pub fn inbox<T: 'static>(&self, mailbox: Arc<Mailbox<T>>) -> Inbox<T> {
        mailbox.set_ring_fd(self.ring.fd());
        let watch = Rc::new(Watch { gate: mailbox.clone(), waiter: RefCell::new(None) });
        self.watches.borrow_mut().push(Rc::downgrade(&watch));
        Inbox { mailbox, watch }
    }

    /// Runs the loop until `fut` completes, polling spawned tasks alongside. Entries queued
    /// by the time it completes are submitted before returning (so a wake-up queued last is
    /// not stranded). Fails only if the ring does.
    pub fn block_on<F: Future>(&mut self, fut: F) -> io::Result<F::Output> {
        let main = Arc::new(MainWake(AtomicBool::new(true)));
        let waker = Waker::from(main.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = pin!(fut);
        let mut prepared = Vec::new();
        loop {
            self.dispatch_completions();
            if main.0.swap(false, Ordering::AcqRel) {
                if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                    self.flush()?;
                    return Ok(out);
                }
            }
            self.executor.run_ready();
            self.ops.submit_into(&mut self.ring)?;
            let busy = main.0.load(Ordering::Acquire) || self.executor.has_ready() || self.ring.has_completions();
            let wait = !busy && self.prepare_sleep(&mut prepared);
            let mut timeout = self.idle_timeout;
            if let Some(at) = self.executor.next_deadline() {
                timeout = timeout.min(at.saturating_duration_since(Instant::now()));
            }
            let entered = self.ring.enter(wait, timeout);
            for w in prepared.drain(..) {
                w.gate.awake();
                if w.gate.has_pending() {
                    w.wake();
                }
            }
            entered?;
        }
    }

    /// Submits whatever is queued without waiting.
    fn flush(&mut self) -> io::Result<()> {
        if self.ops.queued() > 0 {
            self.ops.submit_into(&mut self.ring)?;
            self.ring.enter(false, Duration::ZERO)?;
        }
        Ok(())
    }

    fn dispatch_completions(&mut self) {
        for cqe in self.ring.completions() {
            let ud = cqe.user_data();
            // Anything else is a wake-up from another ring: its only job was to end the wait.
            if token::kind(ud) == KIND_OP {
                self.ops.complete(token::payload(ud), cqe.result(), cqe.flags());
            }
        }
    }

    /// Marks every mailbox a task waits on as sleeping. Returns false (and wakes the
    /// waiter) when one already has mail: then the loop must not block.
    fn prepare_sleep(&self, prepared: &mut Vec<Rc<Watch>>) -> bool {
        let mut watches = self.watches.borrow_mut();
        watches.retain(|w| w.strong_count() > 0);
        for w in watches.iter().filter_map(Weak::upgrade) {
            if !w.is_waited_on() {
                continue;
            }
            if !w.gate.prepare_sleep() {
                for p in prepared.drain(..) {
                    p.gate.awake();
                }
                w.wake();
                return false;
            }
            prepared.push(w);
        }
        true
    }
}

impl Drop for LocalRuntime {
    /// Cancels what is still in the kernel and waits (boundedly) for it to come back, so
    /// buffers are freed only once the kernel is done with them; what does not come back
    /// in time is leaked by the operations table instead.
    fn drop(&mut self) {
        self.ops.cancel_all();
        let deadline = Instant::now() + DRAIN_ON_DROP;
        while self.ops.in_kernel() > 0 || self.ops.queued() > 0 {
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    "io_uring: {} operations still in flight at shutdown; leaking their buffers",
                    self.ops.in_kernel()
                );
                break;
            }
            if self.ops.submit_into(&mut self.ring).is_err() {
                break;
            }
            if self.ring.enter(true, (deadline - now).min(Duration::from_millis(50))).is_err() {
                break;
            }
            self.dispatch_completions();
        }
    }
}
