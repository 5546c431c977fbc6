//! A single-threaded executor and timers for async code on a shard.
//!
//! The shard loop calls [`Executor::run_ready`] once per iteration and bounds its ring
//! wait by [`Executor::next_deadline`]. Tasks are `!Send` and never leave their shard.

use std::cell::RefCell;
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

type Runnable = async_task::Runnable;

struct TimerEntry {
    at: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for TimerEntry {
    fn eq(&self, o: &Self) -> bool {
        self.at == o.at && self.seq == o.seq
    }
}
impl Eq for TimerEntry {}
impl PartialOrd for TimerEntry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for TimerEntry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Reversed: BinaryHeap is a max-heap and the earliest deadline must come first.
        o.at.cmp(&self.at).then(o.seq.cmp(&self.seq))
    }
}

#[derive(Default)]
struct Timers {
    heap: BinaryHeap<TimerEntry>,
    seq: u64,
}

/// The executor of one shard. Clone it to spawn from inside tasks.
#[derive(Clone)]
pub struct Executor {
    // Wakers may be called from other threads (e.g. a waker handed to a channel), so the
    // run queue is thread-safe; tasks themselves stay on this thread.
    queue: Arc<Mutex<VecDeque<Runnable>>>,
    timers: Rc<RefCell<Timers>>,
}

impl Default for Executor {
    fn default() -> Self {
        Self::new()
    }
}

impl Executor {
    pub fn new() -> Self {
        Executor { queue: Arc::new(Mutex::new(VecDeque::new())), timers: Rc::new(RefCell::new(Timers::default())) }
    }

    /// Spawns a task on this shard. The task runs when [`run_ready`](Self::run_ready) is called.
    pub fn spawn<F>(&self, fut: F) -> async_task::Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let q = self.queue.clone();
        let schedule = move |r: Runnable| q.lock().unwrap_or_else(|p| p.into_inner()).push_back(r);
        // SAFETY: the future is !Send and is only polled by `run_ready`, which is called on
        // the thread that owns this executor (Executor is !Send because of the Rc).
        let (runnable, task) = unsafe { async_task::spawn_unchecked(fut, schedule) };
        runnable.schedule();
        task
    }

    /// Fires due timers and polls every ready task once. Returns the number polled.
    pub fn run_ready(&self) -> usize {
        let now = Instant::now();
        {
            let mut t = self.timers.borrow_mut();
            while t.heap.peek().is_some_and(|e| e.at <= now) {
                if let Some(e) = t.heap.pop() {
                    e.waker.wake();
                }
            }
        }
        let batch: Vec<Runnable> = self.queue.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect();
        let n = batch.len();
        for r in batch {
            r.run();
        }
        n
    }

    /// Whether tasks are ready to run now.
    pub fn has_ready(&self) -> bool {
        !self.queue.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// The earliest timer deadline, to bound the ring wait.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.borrow().heap.peek().map(|e| e.at)
    }

    /// A future that completes at `at`.
    pub fn sleep_until(&self, at: Instant) -> Sleep {
        Sleep { at, timers: self.timers.clone(), registered: false }
    }

    /// A future that completes after `d`.
    pub fn sleep(&self, d: Duration) -> Sleep {
        self.sleep_until(Instant::now() + d)
    }
}

/// See [`Executor::sleep`].
pub struct Sleep {
    at: Instant,
    timers: Rc<RefCell<Timers>>,
    registered: bool,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        if !self.registered {
            let mut t = self.timers.borrow_mut();
            t.seq += 1;
            let seq = t.seq;
            t.heap.push(TimerEntry { at: self.at, seq, waker: cx.waker().clone() });
            drop(t);
            self.registered = true;
        } else {
            // Woken early (spurious): re-register with the current waker.
            let mut t = self.timers.borrow_mut();
            t.seq += 1;
            let seq = t.seq;
            t.heap.push(TimerEntry { at: self.at, seq, waker: cx.waker().clone() });
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn tasks_and_timers_run_in_deadline_order() {
        let ex = Executor::new();
        let log = Rc::new(RefCell::new(Vec::new()));
        for (name, ms) in [("b", 20u64), ("a", 5), ("c", 40)] {
            let ex2 = ex.clone();
            let log = log.clone();
            ex.spawn(async move {
                ex2.sleep(Duration::from_millis(ms)).await;
                log.borrow_mut().push(name);
            })
            .detach();
        }
        let start = Instant::now();
        while log.borrow().len() < 3 {
            ex.run_ready();
            if let Some(d) = ex.next_deadline() {
                std::thread::sleep(d.saturating_duration_since(Instant::now()));
            }
            assert!(start.elapsed() < Duration::from_secs(5), "timers never fired");
        }
        assert_eq!(*log.borrow(), vec!["a", "b", "c"]);
    }

    #[test]
    fn spawned_task_output_is_delivered() {
        let ex = Executor::new();
        let done = Rc::new(Cell::new(0));
        let d = done.clone();
        let t = ex.spawn(async { 41 + 1 });
        ex.spawn(async move { d.set(t.await) }).detach();
        for _ in 0..3 {
            ex.run_ready();
        }
        assert_eq!(done.get(), 42);
    }
}
