//! CPUs, pinning and memlock.
//!
//! Pinning follows the process's affinity mask (so `taskset -c 1 ferrokv-server` runs on
//! CPU 1), never the list of online CPUs.

use std::io;

/// The CPUs this process may run on, in ascending order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: as above.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Raises the soft RLIMIT_MEMLOCK to `want` bytes (or to the hard limit if lower).
/// Returns the resulting soft limit.
pub fn raise_memlock(want: u64) -> io::Result<u64> {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < want {
            let target = if lim.rlim_max == libc::RLIM_INFINITY { want } else { want.min(lim.rlim_max) };
            let new = libc::rlimit { rlim_cur: target, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &new) != 0 {
                return Err(io::Error::last_os_error());
            }
            lim.rlim_cur = target;
        }
        Ok(lim.rlim_cur)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn affinity_is_not_empty() {
        let cpus = super::allowed_cpus();
        assert!(!cpus.is_empty());
        super::pin_current_thread(cpus[0]).unwrap();
    }
}
