//! The scripts running right now, node-wide: SCRIPT KILL and FUNCTION KILL find them
//! here, and so does the request path, which answers BUSY while one has run longer than
//! `busy-reply-threshold` (Redis's `lua-time-limit`).
//!
//! Unlike Redis, several scripts may run at once (on different shards). A script
//! registers a [`RunSlot`] for its run; its thread's Lua hook, every 100,000 VM
//! instructions, checks whether it was killed and whether it passed the threshold.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The text a killed script's caller gets (after `ERR `).
pub const KILLED_TEXT: &str = "Script killed by user with SCRIPT KILL...";

pub struct RunSlot {
    /// EVAL (true) or FCALL (false): SCRIPT KILL kills only the former, FUNCTION KILL
    /// only the latter.
    pub eval: bool,
    /// The script or function name, for FUNCTION STATS.
    pub name: String,
    /// The command line that started it (FUNCTION STATS shows it).
    pub command: Vec<Vec<u8>>,
    pub started: Instant,
    /// The thread running it (a SHUTDOWN NOSAVE does not wait for it, see
    /// [`busy_threads`]).
    pub thread: std::thread::ThreadId,
    /// It ran a write command: killing it would leave half its changes (UNKILLABLE).
    pub wrote: AtomicBool,
    killed: AtomicBool,
    /// It has run past the threshold (counted in [`BUSY`]).
    busy: AtomicBool,
    /// It is in [`SLOTS`]: a run joins the list at its hook's first tick (100,000 Lua
    /// instructions), so a short script takes no lock. SCRIPT KILL finds a script that
    /// has run that long; Redis answers it only once a script is busy.
    listed: AtomicBool,
}

static SLOTS: Mutex<Vec<Arc<RunSlot>>> = Mutex::new(Vec::new());
/// How many scripts are running.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Whether any script is running now.
#[inline]
pub fn any_running() -> bool {
    RUNNING.load(Ordering::Relaxed) != 0
}
/// How many running scripts are past `busy-reply-threshold`: the request path reads
/// this one word per command.
static BUSY: AtomicUsize = AtomicUsize::new(0);
/// `busy-reply-threshold` in milliseconds (0: never busy).
static THRESHOLD_MS: AtomicU64 = AtomicU64::new(5000);

pub fn set_busy_threshold_ms(ms: u64) {
    THRESHOLD_MS.store(ms, Ordering::Relaxed);
}

/// Whether some script has run past `busy-reply-threshold` and is still running.
#[inline]
pub fn busy() -> bool {
    BUSY.load(Ordering::Relaxed) != 0
}

/// The BUSY error text for other clients (Redis's `shared.slowevalerr` /
/// `slowscripterr`).
pub fn busy_error() -> &'static str {
    let eval =
        SLOTS.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|s| s.busy.load(Ordering::Relaxed)).map(|s| s.eval);
    match eval {
        Some(false) => "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.",
        _ => "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
    }
}

impl RunSlot {
    pub fn start(eval: bool, name: String, command: Vec<Vec<u8>>) -> Arc<RunSlot> {
        let s = Arc::new(RunSlot {
            eval,
            name,
            command,
            started: Instant::now(),
            thread: std::thread::current().id(),
            wrote: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            listed: AtomicBool::new(false),
        });
        RUNNING.fetch_add(1, Ordering::Relaxed);
        s
    }

    pub fn finish(self: &Arc<Self>) {
        if self.listed.load(Ordering::Relaxed) {
            SLOTS.lock().unwrap_or_else(|p| p.into_inner()).retain(|s| !Arc::ptr_eq(s, self));
        }
        RUNNING.fetch_sub(1, Ordering::Relaxed);
        if self.busy.swap(false, Ordering::Relaxed) {
            BUSY.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub fn killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }

    /// Called by the Lua hook: lists the run, and marks it busy once past the
    /// threshold. Returns whether it is busy.
    pub fn tick(self: &Arc<Self>) -> bool {
        if !self.listed.swap(true, Ordering::Relaxed) {
            SLOTS.lock().unwrap_or_else(|p| p.into_inner()).push(self.clone());
        }
        if self.busy.load(Ordering::Relaxed) {
            return true;
        }
        let t = THRESHOLD_MS.load(Ordering::Relaxed);
        if t > 0 && self.started.elapsed().as_millis() as u64 >= t {
            self.busy.store(true, Ordering::Relaxed);
            BUSY.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// SCRIPT KILL (`eval`) or FUNCTION KILL: the reply, as Redis words it.
pub fn kill(eval: bool) -> Result<(), &'static str> {
    let slots = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
    if slots.is_empty() {
        return Err("NOTBUSY No scripts in execution right now.");
    }
    let mut killed = false;
    let mut last_err = None;
    for s in slots.iter() {
        if s.wrote.load(Ordering::Relaxed) {
            last_err = Some(
                "UNKILLABLE Sorry the script already executed write commands against the dataset. \
                 You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.",
            );
            continue;
        }
        if s.eval != eval {
            last_err = Some(if eval {
                "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
            } else {
                "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
            });
            continue;
        }
        s.killed.store(true, Ordering::Relaxed);
        killed = true;
    }
    match (killed, last_err) {
        (true, _) => Ok(()),
        (false, Some(e)) => Err(e),
        (false, None) => Err("NOTBUSY No scripts in execution right now."),
    }
}

/// The threads running a script that is past `busy-reply-threshold`.
pub fn busy_threads() -> Vec<std::thread::ThreadId> {
    let slots = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
    slots.iter().filter(|s| s.busy.load(Ordering::Relaxed)).map(|s| s.thread).collect()
}

/// FUNCTION STATS' `running_script`: name, command and milliseconds, of a running
/// function.
pub fn running_function() -> Option<(String, Vec<Vec<u8>>, u64)> {
    let slots = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
    slots.iter().find(|s| !s.eval).map(|s| (s.name.clone(), s.command.clone(), s.started.elapsed().as_millis() as u64))
}
