//! Ring setup and the wait call.
//!
//! Measured on this project's machines (docs/architecture.md): rings without
//! COOP_TASKRUN/DEFER_TASKRUN take a reschedule IPI for about every other request and
//! double the CPU per request; `SINGLE_ISSUER | DEFER_TASKRUN` removes that, and waiting
//! for a small batch of completions (min-wait) per enter cuts wake-ups five-fold. So a
//! ring is created with the best flags the kernel accepts, and the loop calls
//! [`Ring::enter`] once per iteration.
//!
//! With DEFER_TASKRUN, completions (multishot receives included) are only produced inside
//! an enter that carries GETEVENTS, so every enter here sets it.

use io_uring::{cqueue, squeue, types, IoUring};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

// From <linux/io_uring.h>.
const ENTER_GETEVENTS: u32 = 1 << 0;
const ENTER_EXT_ARG: u32 = 1 << 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingFlavor {
    /// `SINGLE_ISSUER | DEFER_TASKRUN`: the target.
    DeferTaskrun,
    /// `COOP_TASKRUN | TASKRUN_FLAG`: for kernels before 6.1.
    CoopTaskrun,
    /// No flags: every completion may interrupt the core.
    Plain,
}

#[derive(Clone, Copy, Debug)]
pub struct RingConfig {
    pub entries: u32,
    pub cq_entries: u32,
    /// Return from a wait once this many completions are ready...
    pub batch: u32,
    /// ...or this long after the first one arrived (needs kernel 6.12's min-wait).
    pub min_wait: Duration,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig { entries: 1024, cq_entries: 16384, batch: 8, min_wait: Duration::from_micros(50) }
    }
}

pub struct Ring {
    ring: IoUring,
    flavor: RingFlavor,
    min_wait_us: u32,
    batch: u32,
}

impl Ring {
    /// Creates a ring on the calling thread (with SINGLE_ISSUER only this thread may
    /// submit to it), falling back to weaker flags where the kernel refuses.
    pub fn new(cfg: RingConfig) -> io::Result<Ring> {
        type Apply = fn(&mut io_uring::Builder);
        let attempts: [(RingFlavor, Apply); 3] = [
            (RingFlavor::DeferTaskrun, |b| {
                b.setup_single_issuer().setup_defer_taskrun();
            }),
            (RingFlavor::CoopTaskrun, |b| {
                b.setup_coop_taskrun().setup_taskrun_flag();
            }),
            (RingFlavor::Plain, |_| {}),
        ];
        let mut last_err = None;
        for (flavor, apply) in attempts {
            let mut b = IoUring::builder();
            b.setup_cqsize(cfg.cq_entries).setup_submit_all();
            apply(&mut b);
            match b.build(cfg.entries) {
                Ok(ring) => {
                    if flavor != RingFlavor::DeferTaskrun {
                        tracing::warn!(
                            "io_uring: kernel refused SINGLE_ISSUER|DEFER_TASKRUN ({}); using {:?}, expect more CPU per request",
                            last_err.as_ref().map_or_else(String::new, |e: &io::Error| e.to_string()),
                            flavor
                        );
                    }
                    let min_wait_us = if ring.params().is_feature_min_timeout() {
                        cfg.min_wait.as_micros().min(u32::MAX as u128) as u32
                    } else {
                        tracing::warn!(
                            "io_uring: no min-wait support (kernel < 6.12); waits return on the first completion"
                        );
                        0
                    };
                    if !ring.params().is_feature_ext_arg() {
                        return Err(io::Error::new(
                            io::ErrorKind::Unsupported,
                            "io_uring lacks EXT_ARG (kernel >= 5.11 needed)",
                        ));
                    }
                    let batch = if min_wait_us > 0 { cfg.batch.max(1) } else { 1 };
                    return Ok(Ring { ring, flavor, min_wait_us, batch });
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("io_uring setup failed")))
    }

    pub fn flavor(&self) -> RingFlavor {
        self.flavor
    }

    pub fn fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }

    pub fn submitter(&self) -> io_uring::Submitter<'_> {
        self.ring.submitter()
    }

    /// Queues one submission, flushing the queue to the kernel first when it is full.
    ///
    /// # Safety
    /// Buffers and file descriptors the entry points to must stay valid until its
    /// completion arrives.
    pub unsafe fn push(&mut self, sqe: &squeue::Entry) -> io::Result<()> {
        loop {
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return Ok(());
            }
            self.enter(false, Duration::ZERO)?;
        }
    }

    /// Submits everything queued and collects completions. With `wait`, blocks until a
    /// batch is ready (see [`RingConfig`]) or `timeout` passes; without, only runs the
    /// deferred work that produces completions.
    pub fn enter(&mut self, wait: bool, timeout: Duration) -> io::Result<()> {
        let to_submit = self.ring.submission().len() as u32;
        let ts = types::Timespec::from(timeout);
        let mut args = types::SubmitArgs::new().timespec(&ts);
        let want = if wait {
            args = args.min_wait_usec(self.min_wait_us);
            self.batch
        } else {
            0
        };
        // IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG (the crate keeps its sys module private).
        let flags = ENTER_GETEVENTS | ENTER_EXT_ARG;
        // SAFETY: `args` is a valid io_uring_getevents_arg that outlives the call.
        match unsafe { self.ring.submitter().enter(to_submit, want, flags, Some(&args)) } {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) => Ok(()),
                // Completion queue overflowed: the caller drains it next.
                Some(libc::EBUSY) | Some(libc::EAGAIN) => Ok(()),
                _ => Err(e),
            },
        }
    }

    /// Takes the ready completions.
    pub fn completions(&mut self) -> cqueue::CompletionQueue<'_> {
        self.ring.completion()
    }

    pub fn has_completions(&mut self) -> bool {
        !self.ring.completion().is_empty()
    }
}
