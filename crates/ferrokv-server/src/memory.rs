//! Memory accounting: the global allocator (chosen on measurements, see
//! docs/benchmarks.md "Allocator"), wrapped to count live bytes per thread, and what the
//! allocator itself can say (INFO's `allocator_*`, MEMORY MALLOC-STATS, MEMORY PURGE).
//!
//! # Counting
//! Each thread adds the sizes it allocates and subtracts the sizes it frees on a counter
//! of its own (a relaxed store on a cache line no other thread writes). Memory allocated
//! on one thread and freed on another is added on the first and subtracted on the second,
//! so the *sum* of all counters is exact, whoever frees what; a single counter means
//! nothing by itself and may be negative. A thread takes a counter on its first
//! allocation from a fixed table (no allocation, no registration, no destructor, so the
//! allocator never re-enters itself); a counter outlives its thread and keeps what the
//! thread left, which the sum still needs. Threads past the table's size share one
//! atomic counter.
//!
//! Reading the total sums the counters claimed so far ([`allocated`]): a few dozen loads,
//! done once per event-loop iteration by a shard that enforces `maxmemory`, never per
//! command (see `exec/maxmemory.rs`).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

#[cfg(feature = "jemalloc")]
const INNER: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
const INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(not(any(feature = "jemalloc", feature = "mimalloc")))]
const INNER: std::alloc::System = std::alloc::System;

/// INFO's `mem_allocator`, as Redis names its allocators.
#[cfg(feature = "jemalloc")]
pub const ALLOCATOR: &str = "jemalloc-5.3.0";
#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
pub const ALLOCATOR: &str = "mimalloc";
#[cfg(not(any(feature = "jemalloc", feature = "mimalloc")))]
pub const ALLOCATOR: &str = "libc";

pub struct Counting;

/// One counter per thread, each on its own cache line.
#[repr(align(64))]
struct Line(AtomicI64);

const LINES: usize = 256;
static COUNTERS: [Line; LINES] = [const { Line(AtomicI64::new(0)) }; LINES];
/// Counters handed out so far (may exceed [`LINES`]: those threads use [`SHARED`]).
static CLAIMED: AtomicUsize = AtomicUsize::new(0);
/// The counter of threads past the table.
static SHARED: AtomicI64 = AtomicI64::new(0);

thread_local! {
    /// This thread's counter: `usize::MAX` until its first allocation.
    static MINE: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn add(delta: i64) {
    let mut i = MINE.try_with(|c| c.get()).unwrap_or(LINES);
    if i == usize::MAX {
        i = CLAIMED.fetch_add(1, Ordering::Relaxed).min(LINES);
        let _ = MINE.try_with(|c| c.set(i));
    }
    match COUNTERS.get(i) {
        // Only this thread writes its line: a load and a store, no locked instruction.
        Some(Line(a)) => a.store(a.load(Ordering::Relaxed) + delta, Ordering::Relaxed),
        None => {
            SHARED.fetch_add(delta, Ordering::Relaxed);
        }
    }
}

/// Kept for callers that name a thread's start; counters are claimed on first use.
pub fn register_thread() {
    add(0);
}

/// Live heap bytes of the whole process (exact: see the module docs).
pub fn allocated() -> u64 {
    let n = CLAIMED.load(Ordering::Relaxed).min(LINES);
    let total: i64 =
        COUNTERS[..n].iter().map(|l| l.0.load(Ordering::Relaxed)).sum::<i64>() + SHARED.load(Ordering::Relaxed);
    total.max(0) as u64
}

/// The calling thread's own counter (bytes it allocated minus bytes it freed): a shard
/// adds its change since the last [`allocated`] to that sum between two sums.
#[inline]
pub fn thread_delta() -> i64 {
    match MINE.try_with(|c| c.get()).ok().and_then(|i| COUNTERS.get(i)) {
        Some(Line(a)) => a.load(Ordering::Relaxed),
        None => 0,
    }
}

/// Resident set size, from /proc/self/statm.
pub fn rss() -> u64 {
    let page = 4096;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map_or(0, |p| p * page)
}

// SAFETY: forwards every call to the inner allocator unchanged; only counts sizes, and
// counting neither allocates nor panics (see `add`).
unsafe impl GlobalAlloc for Counting {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { INNER.alloc(l) };
        if !p.is_null() {
            add(l.size() as i64);
        }
        p
    }
    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { INNER.dealloc(p, l) };
        add(-(l.size() as i64));
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { INNER.alloc_zeroed(l) };
        if !p.is_null() {
            add(l.size() as i64);
        }
        p
    }
    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { INNER.realloc(p, l, new) };
        if !q.is_null() {
            add(new as i64 - l.size() as i64);
        }
        q
    }
}

/// The highest [`allocated`] seen (INFO's `used_memory_peak`), noted by whoever reads it.
static PEAK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// [`allocated`] once the node was ready to serve (INFO's `used_memory_startup`).
static STARTUP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Notes `used` for the peak.
pub fn note_used(used: u64) {
    PEAK.fetch_max(used, Ordering::Relaxed);
}

pub fn peak() -> u64 {
    PEAK.load(Ordering::Relaxed)
}

/// Records the start-up figure (call once the node is built, before it serves), and
/// starts jemalloc's background purging thread, as Redis's `jemalloc-bg-thread yes`:
/// without it, pages freed after a burst go back to the kernel only when the same arena
/// allocates again, so an idle node would keep its peak RSS.
pub fn mark_startup() {
    ferrokv_commands::families::keys::set_heap_meter(thread_delta);
    #[cfg(feature = "jemalloc")]
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!("jemalloc background thread not started: {e}");
    }
    let now = allocated();
    STARTUP.store(now, Ordering::Relaxed);
    note_used(now);
}

pub fn startup() -> u64 {
    STARTUP.load(Ordering::Relaxed)
}

/// Physical memory of the machine (INFO's `total_system_memory`).
pub fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        })
        .map_or(0, |kb| kb * 1024)
}

/// What the allocator says of itself: bytes handed out, bytes in pages it uses, bytes
/// resident (Redis's `allocator_allocated`, `_active`, `_resident`).
#[derive(Clone, Copy, Debug, Default)]
pub struct AllocatorStats {
    pub allocated: u64,
    pub active: u64,
    pub resident: u64,
}

#[cfg(feature = "jemalloc")]
pub fn allocator_stats() -> AllocatorStats {
    use tikv_jemalloc_ctl::{epoch, stats};
    let _ = epoch::advance();
    AllocatorStats {
        allocated: stats::allocated::read().unwrap_or(0) as u64,
        active: stats::active::read().unwrap_or(0) as u64,
        resident: stats::resident::read().unwrap_or(0) as u64,
    }
}

#[cfg(not(feature = "jemalloc"))]
pub fn allocator_stats() -> AllocatorStats {
    // glibc's mallinfo2: in-use bytes, and the heap plus mmapped regions it holds.
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
    {
        // SAFETY: mallinfo2 takes no arguments and returns a plain struct.
        let mi = unsafe { libc::mallinfo2() };
        let allocated = (mi.uordblks + mi.hblkhd) as u64;
        let active = (mi.arena + mi.hblkhd) as u64;
        AllocatorStats { allocated, active, resident: active }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc"))))]
    {
        let a = allocated();
        AllocatorStats { allocated: a, active: a, resident: rss() }
    }
}

/// MEMORY PURGE: hands the allocator's free pages back to the kernel.
pub fn purge() {
    #[cfg(feature = "jemalloc")]
    {
        // "arena.<MALLCTL_ARENAS_ALL>.purge", as Redis's jemalloc_purge.
        // SAFETY: a documented jemalloc control that takes and returns nothing (both
        // pointers null, as it requires).
        unsafe {
            tikv_jemalloc_sys::mallctl(
                c"arena.4096.purge".as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            );
        }
    }
    #[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
    {
        // SAFETY: mi_collect only walks mimalloc's own free lists.
        unsafe { libmimalloc_sys::mi_collect(true) };
    }
    #[cfg(not(any(feature = "jemalloc", feature = "mimalloc")))]
    {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only returns free memory at the top of glibc's heaps.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// MEMORY MALLOC-STATS: the allocator's own report, or Redis's words when it has none.
pub fn malloc_stats() -> String {
    #[cfg(feature = "jemalloc")]
    {
        let mut out = Vec::new();
        if tikv_jemalloc_ctl::stats_print::stats_print(&mut out, Default::default()).is_ok() {
            return String::from_utf8_lossy(&out).into_owned();
        }
    }
    "Stats not supported for the current allocator".to_string()
}
