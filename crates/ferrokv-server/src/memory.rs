//! Memory accounting: a global allocator wrapper that counts live bytes per thread
//! (no shared cache line on the allocation path) and sums on demand for INFO.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

pub const ALLOCATOR: &str = "libc";

pub struct Counting;

static REGISTRY: Mutex<Vec<&'static AtomicI64>> = Mutex::new(Vec::new());
/// Bytes of threads that have exited, and of allocations made before a thread counter existed.
static ORPHANS: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static COUNTER: Cell<Option<&'static AtomicI64>> = const { Cell::new(None) };
}

#[inline]
fn add(delta: i64) {
    let done = COUNTER
        .try_with(|c| match c.get() {
            Some(a) => {
                a.store(a.load(Ordering::Relaxed) + delta, Ordering::Relaxed);
                true
            }
            None => false,
        })
        .unwrap_or(false);
    if !done {
        ORPHANS.fetch_add(delta, Ordering::Relaxed);
    }
}

/// Gives the calling thread its own counter (call once at thread start).
pub fn register_thread() {
    let a: &'static AtomicI64 = Box::leak(Box::new(AtomicI64::new(0)));
    if let Ok(mut r) = REGISTRY.lock() {
        r.push(a);
    }
    let _ = COUNTER.try_with(|c| c.set(Some(a)));
}

/// Live heap bytes.
pub fn allocated() -> u64 {
    let mut total = ORPHANS.load(Ordering::Relaxed);
    if let Ok(r) = REGISTRY.lock() {
        total += r.iter().map(|a| a.load(Ordering::Relaxed)).sum::<i64>();
    }
    total.max(0) as u64
}

/// Resident set size, from /proc/self/statm.
pub fn rss() -> u64 {
    let page = 4096;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map_or(0, |p| p * page)
}

// SAFETY: forwards to the system allocator; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            add(l.size() as i64);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        add(-(l.size() as i64));
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            add(l.size() as i64);
        }
        p
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            add(new as i64 - l.size() as i64);
        }
        q
    }
}
