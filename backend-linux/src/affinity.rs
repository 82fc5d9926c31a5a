//! Thread CPU affinity through the raw `sched_getaffinity`/`sched_setaffinity` calls, with a
//! mask of numaperf's own size (4096 CPUs, all a [`CpuSet`] holds) instead of rustix's 1024.

use numaperf_core::{CpuSet, NumaError, MAX_CPUS};
use rustix::io::Errno;

use crate::sys::{check, numbers as nr, syscall6};

/// Words of the kernel mask we pass: 4096 bits = 512 bytes, the size of a [`CpuSet`].
const MASK_WORDS: usize = MAX_CPUS / 64;

/// The largest mask tried when the kernel's `nr_cpu_ids` exceeds 4096 bits (2^20 CPUs).
const MAX_MASK_WORDS: usize = (1 << 20) / 64;

// The kernel's cpumask is an array of `unsigned long`, CPU `i` at bit `i % 64` of word
// `i / 64`; on the 64-bit targets `sys/` supports that is exactly `CpuSet`'s `[u64; 64]`.
const _: () = assert!(usize::BITS == 64);

fn errno(op: &'static str, e: Errno) -> NumaError {
    NumaError::from_errno(op, numaperf_core::Errno::from_raw(e.raw_os_error()))
}

/// `sched_getaffinity(pid, size_of_val(mask), mask)`: the affinity of thread `pid` (0: the
/// calling thread) into `mask`; returns the bytes the kernel wrote (its cpumask size).
fn getaffinity(pid: i32, mask: &mut [u64]) -> Result<usize, Errno> {
    let len = core::mem::size_of_val(mask);
    // SAFETY: sched_getaffinity writes at most `len` bytes at the pointer. `mask` is an
    // exclusive borrow of exactly `len` bytes (a multiple of 8, as the kernel requires),
    // aligned for `unsigned long`, and live for the whole call; `pid` and `len` are plain
    // integers. Any bit pattern is a valid `u64`, so whatever the kernel writes is sound.
    let ret = unsafe {
        syscall6(
            nr::SCHED_GETAFFINITY,
            [pid as usize, len, mask.as_mut_ptr() as usize, 0, 0, 0],
        )
    };
    check(ret)
}

/// The set of a kernel mask of any length, or [`NumaError::InvalidCpu`] naming the first
/// CPU beyond what a [`CpuSet`] holds.
fn set_from_mask(mask: &[u64]) -> Result<CpuSet, NumaError> {
    if let Some((i, w)) = mask
        .iter()
        .enumerate()
        .skip(MASK_WORDS)
        .find(|(_, &w)| w != 0)
    {
        let cpu = i * 64 + w.trailing_zeros() as usize;
        return Err(NumaError::InvalidCpu(
            u32::try_from(cpu).unwrap_or(u32::MAX),
        ));
    }
    let mut words = [0u64; MASK_WORDS];
    let n = mask.len().min(MASK_WORDS);
    words[..n].copy_from_slice(&mask[..n]);
    Ok(CpuSet::from_words(words))
}

/// The affinity of thread `pid` (0: the calling thread). A 512-byte mask first; the kernel
/// answers `EINVAL` when its `nr_cpu_ids` needs more bits, and then larger masks are tried.
fn affinity_of(pid: i32) -> Result<CpuSet, NumaError> {
    let mut mask = [0u64; MASK_WORDS];
    match getaffinity(pid, &mut mask) {
        Ok(_) => return Ok(CpuSet::from_words(mask)),
        Err(Errno::INVAL) => {}
        Err(e) => return Err(errno("sched_getaffinity", e)),
    }
    let mut words = MASK_WORDS * 2;
    while words <= MAX_MASK_WORDS {
        let mut big = vec![0u64; words];
        match getaffinity(pid, &mut big) {
            Ok(_) => return set_from_mask(&big),
            Err(Errno::INVAL) => words *= 2,
            Err(e) => return Err(errno("sched_getaffinity", e)),
        }
    }
    Err(errno("sched_getaffinity", Errno::INVAL))
}

/// The CPUs the calling thread may run on.
///
/// # Errors
/// [`NumaError::InvalidCpu`] when the thread may run on a CPU beyond 4095 (a [`CpuSet`]
/// cannot hold it); [`NumaError::Os`] for any other failure of `sched_getaffinity`.
pub(crate) fn thread_affinity() -> Result<CpuSet, NumaError> {
    affinity_of(0)
}

/// The affinity of the process's main thread (what `/proc/self/status` reports as
/// `Cpus_allowed_list`).
///
/// # Errors
/// As [`thread_affinity`].
pub(crate) fn process_affinity() -> Result<CpuSet, NumaError> {
    affinity_of(rustix::process::getpid().as_raw_nonzero().get())
}

/// Pins the calling thread to `cpus`.
///
/// The kernel runs the thread on the CPUs of `cpus` that are online and in its cpuset;
/// when some are and some are not, the others are dropped silently (as the kernel does).
///
/// # Errors
/// [`NumaError::InvalidCpu`] for an id beyond 4095 that was added to the set;
/// [`NumaError::EmptyCpuSet`] for an empty set; [`NumaError::CpuNotAllowed`] naming the
/// set's first CPU when none of its CPUs is online and allowed (the kernel's `EINVAL`);
/// [`NumaError::Os`] for any other failure.
pub(crate) fn set_thread_affinity(cpus: &CpuSet) -> Result<(), NumaError> {
    if let Some(bad) = cpus.out_of_range() {
        return Err(NumaError::InvalidCpu(bad));
    }
    let Some(first) = cpus.first() else {
        return Err(NumaError::EmptyCpuSet);
    };
    let mask: &[u64; MASK_WORDS] = cpus.words();
    // SAFETY: sched_setaffinity reads (copy_from_user) at most `len` bytes at the pointer
    // and never writes them. `mask` is a shared borrow of exactly `len` = 512 bytes, aligned
    // for `unsigned long`, live for the whole call; pid 0 is the calling thread. A kernel
    // whose cpumask is larger zero-fills the rest; a smaller one reads only its own size.
    let ret = unsafe {
        syscall6(
            nr::SCHED_SETAFFINITY,
            [
                0,
                core::mem::size_of_val(mask),
                mask.as_ptr() as usize,
                0,
                0,
                0,
            ],
        )
    };
    match check(ret) {
        Ok(_) => Ok(()),
        Err(Errno::INVAL) => Err(NumaError::CpuNotAllowed(first as u32)),
        Err(e) => Err(errno("sched_setaffinity", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a fresh thread, so affinity changes never reach other tests.
    fn on_own_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(f).join().unwrap()
    }

    /// The smallest CPU id this machine can never run on (beyond `possible`), if below 4096.
    fn impossible_cpu() -> Option<usize> {
        let text = std::fs::read_to_string("/sys/devices/system/cpu/possible").ok()?;
        let possible: CpuSet = numaperf_core::parse::parse_list(&text).ok()?;
        let next = possible.last()? + 1;
        (next < MAX_CPUS).then_some(next)
    }

    #[test]
    fn current_affinity_round_trips() {
        on_own_thread(|| {
            let cur = thread_affinity().unwrap();
            assert!(!cur.is_empty());
            assert_eq!(cur, process_affinity().unwrap());
            set_thread_affinity(&cur).unwrap();
            assert_eq!(thread_affinity().unwrap(), cur);
            let first = CpuSet::single(cur.first().unwrap());
            set_thread_affinity(&first).unwrap();
            assert_eq!(thread_affinity().unwrap(), first);
            set_thread_affinity(&cur).unwrap();
            assert_eq!(thread_affinity().unwrap(), cur);
        });
    }

    #[test]
    fn matches_proc_self_status() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let listed = numaperf_core::sysfs::parse_status(&status).unwrap().cpus;
        assert_eq!(Some(process_affinity().unwrap()), listed);
    }

    #[test]
    fn empty_set_is_empty_cpu_set() {
        assert_eq!(
            set_thread_affinity(&CpuSet::new()),
            Err(NumaError::EmptyCpuSet)
        );
    }

    #[test]
    fn cpu_beyond_the_machine_is_not_allowed() {
        let Some(cpu) = impossible_cpu() else { return };
        on_own_thread(move || {
            let before = thread_affinity().unwrap();
            assert_eq!(
                set_thread_affinity(&CpuSet::single(cpu)),
                Err(NumaError::CpuNotAllowed(cpu as u32))
            );
            assert_eq!(thread_affinity().unwrap(), before, "nothing changed");
            // With one usable CPU in the set, the kernel drops the other one.
            let first = before.first().unwrap();
            let mixed: CpuSet = [first, cpu].into_iter().collect();
            set_thread_affinity(&mixed).unwrap();
            assert_eq!(thread_affinity().unwrap(), CpuSet::single(first));
        });
    }

    #[test]
    fn cpu_4095_is_not_allowed_rather_than_invalid() {
        if impossible_cpu().is_none_or(|c| c > 4095) {
            return; // a machine that can have CPU 4095
        }
        on_own_thread(|| {
            assert_eq!(
                set_thread_affinity(&CpuSet::single(4095)),
                Err(NumaError::CpuNotAllowed(4095))
            );
            let high: CpuSet = (1024..MAX_CPUS).collect();
            assert_eq!(
                set_thread_affinity(&high),
                Err(NumaError::CpuNotAllowed(1024))
            );
        });
    }

    #[test]
    fn ids_beyond_4095_stay_invalid() {
        let mut set = CpuSet::single(0);
        set.add(4096);
        assert_eq!(set_thread_affinity(&set), Err(NumaError::InvalidCpu(4096)));
        let mut only_bad = CpuSet::new();
        only_bad.add(5000);
        assert_eq!(
            set_thread_affinity(&only_bad),
            Err(NumaError::InvalidCpu(5000))
        );
    }

    #[test]
    fn masks_longer_than_a_cpu_set() {
        let mut mask = vec![0u64; MASK_WORDS * 2];
        mask[0] = 0b101;
        mask[MASK_WORDS - 1] = 1 << 63;
        let set = set_from_mask(&mask).unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 2, 4095]);
        mask[MASK_WORDS + 1] = 1 << 3;
        assert_eq!(
            set_from_mask(&mask),
            Err(NumaError::InvalidCpu(4096 + 64 + 3))
        );
    }
}
