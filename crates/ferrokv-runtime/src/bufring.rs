//! A provided-buffer ring: the kernel picks a free buffer for each multishot receive
//! completion; the loop hands it back right after parsing it.
//!
//! Sizing from measurements: at least as many buffers as receive completions per loop
//! iteration, or multishot receives stop with ENOBUFS and have to be re-armed.

use io_uring::types::BufRingEntry;
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

pub struct BufRing {
    group: u16,
    entries: u16,
    buf_size: u32,
    mask: u16,
    tail: u16,
    ring: *mut BufRingEntry,
    ring_layout: Layout,
    bufs: *mut u8,
    bufs_layout: Layout,
}

impl BufRing {
    /// Registers `entries` buffers (a power of two ≤ 32768) of `buf_size` bytes each as
    /// buffer group `group` of `ring`.
    pub fn new(ring: &crate::Ring, group: u16, entries: u16, buf_size: u32) -> io::Result<BufRing> {
        if !entries.is_power_of_two() || entries > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer ring entries must be a power of two <= 32768",
            ));
        }
        let ring_layout = Layout::from_size_align(entries as usize * std::mem::size_of::<BufRingEntry>(), 4096)
            .map_err(|_| io::Error::other("bad buffer ring layout"))?;
        let bufs_layout = Layout::from_size_align(entries as usize * buf_size as usize, 4096)
            .map_err(|_| io::Error::other("bad buffer layout"))?;
        // SAFETY: both layouts have non-zero size.
        let ring_mem = unsafe { alloc_zeroed(ring_layout) } as *mut BufRingEntry;
        let bufs = unsafe { alloc_zeroed(bufs_layout) };
        if ring_mem.is_null() || bufs.is_null() {
            return Err(io::Error::new(io::ErrorKind::OutOfMemory, "cannot allocate receive buffers"));
        }
        let mut br = BufRing {
            group,
            entries,
            buf_size,
            mask: entries - 1,
            tail: 0,
            ring: ring_mem,
            ring_layout,
            bufs,
            bufs_layout,
        };
        // SAFETY: the memory lives as long as `br`, which unregisters nothing explicitly but
        // is dropped only after the ring (the shard drops its ring first).
        unsafe { ring.submitter().register_buf_ring_with_flags(ring_mem as u64, entries, group, 0) }.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot register io_uring buffer ring ({e}); raise RLIMIT_MEMLOCK (ulimit -l) or lower server-threads"),
            )
        })?;
        for id in 0..entries {
            br.push(id);
        }
        br.commit();
        Ok(br)
    }

    pub fn group(&self) -> u16 {
        self.group
    }

    pub fn buf_size(&self) -> u32 {
        self.buf_size
    }

    pub fn entries(&self) -> u16 {
        self.entries
    }

    /// The first `len` bytes of buffer `id`, as the kernel filled them.
    ///
    /// # Safety
    /// `id` must come from a completion of this group that has not been recycled yet.
    pub unsafe fn buf(&self, id: u16, len: usize) -> &[u8] {
        let len = len.min(self.buf_size as usize);
        unsafe { std::slice::from_raw_parts(self.bufs.add(id as usize * self.buf_size as usize), len) }
    }

    /// Hands buffer `id` back (visible to the kernel after [`commit`](Self::commit)).
    pub fn push(&mut self, id: u16) {
        let idx = (self.tail & self.mask) as usize;
        // SAFETY: idx < entries; the ring memory is ours.
        unsafe {
            let e = &mut *self.ring.add(idx);
            e.set_addr(self.bufs.add(id as usize * self.buf_size as usize) as u64);
            e.set_len(self.buf_size);
            e.set_bid(id);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes returned buffers to the kernel.
    pub fn commit(&mut self) {
        // SAFETY: the tail lives inside the first entry of the ring, per the ABI.
        unsafe {
            let tail = BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// Recycles one buffer and publishes it.
    pub fn recycle(&mut self, id: u16) {
        self.push(id);
        self.commit();
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with these layouts.
        unsafe {
            dealloc(self.ring as *mut u8, self.ring_layout);
            dealloc(self.bufs, self.bufs_layout);
        }
    }
}
