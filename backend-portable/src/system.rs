//! What the OS tells about the machine, per OS: the CPUs this process may use, the memory
//! (total and free), the current CPU, and thread affinity. Only what the OS reports;
//! where it reports nothing, an `Unsupported` error or a documented bound.

/// Total and free bytes of the machine.
pub(crate) struct Memory {
    pub(crate) total: u64,
    pub(crate) free: u64,
}

#[cfg(target_os = "linux")]
mod os {
    use numaperf_core::parse::parse_meminfo_kb;
    use numaperf_core::{CpuSet, Errno, FileProblem, NumaError, SysfsFile};

    use super::Memory;

    fn errno(op: &'static str, e: rustix::io::Errno) -> NumaError {
        NumaError::from_errno(op, Errno::from_raw(e.raw_os_error()))
    }

    pub(crate) fn allowed_cpus() -> Result<CpuSet, NumaError> {
        let set =
            rustix::thread::sched_getaffinity(None).map_err(|e| errno("sched_getaffinity", e))?;
        Ok((0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| set.is_set(c))
            .collect())
    }

    pub(crate) fn memory() -> Result<Memory, NumaError> {
        let file = SysfsFile::root("/proc/meminfo");
        let text = std::fs::read_to_string("/proc/meminfo").map_err(|e| {
            file.error(FileProblem::Unreadable(Errno::from_raw(
                e.raw_os_error().unwrap_or(5),
            )))
        })?;
        let field =
            |key| parse_meminfo_kb(&text, key).ok_or(file.error(FileProblem::MissingField(key)));
        Ok(Memory {
            total: field("MemTotal:")?,
            free: field("MemFree:")?,
        })
    }

    pub(crate) fn current_cpu() -> Result<usize, NumaError> {
        Ok(rustix::thread::sched_getcpu())
    }

    pub(crate) fn thread_affinity(_allowed: &CpuSet) -> Result<CpuSet, NumaError> {
        allowed_cpus()
    }

    pub(crate) fn set_thread_affinity(cpus: &CpuSet, _allowed: &CpuSet) -> Result<(), NumaError> {
        let mut set = rustix::thread::CpuSet::new();
        for c in cpus.iter() {
            if c >= rustix::thread::CpuSet::MAX_CPU {
                return Err(NumaError::Unsupported {
                    feature: "pinning to CPUs beyond 1023 in the portable backend",
                    since: "the Linux backend",
                });
            }
            set.set(c);
        }
        rustix::thread::sched_setaffinity(None, &set).map_err(|e| errno("sched_setaffinity", e))
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    use numaperf_core::{CpuSet, NumaError};

    use super::Memory;

    /// `0..n` for the `n` CPUs the standard library says this process may use.
    pub(crate) fn allowed_cpus() -> Result<CpuSet, NumaError> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok((0..n.min(numaperf_core::MAX_CPUS)).collect())
    }

    pub(crate) fn memory() -> Result<Memory, NumaError> {
        let (total, free) = super::physical::memory()?;
        Ok(Memory { total, free })
    }

    /// No portable call tells the current CPU outside Linux.
    pub(crate) fn current_cpu() -> Result<usize, NumaError> {
        Err(NumaError::Unsupported {
            feature: "the current CPU number",
            since: "Linux (sched_getcpu)",
        })
    }

    /// Without an affinity API a thread may run on every CPU.
    pub(crate) fn thread_affinity(allowed: &CpuSet) -> Result<CpuSet, NumaError> {
        Ok(*allowed)
    }

    /// Pinning to every CPU is no restriction, so it is done; anything narrower needs an
    /// affinity API this OS does not offer (macOS has only hints).
    pub(crate) fn set_thread_affinity(cpus: &CpuSet, allowed: &CpuSet) -> Result<(), NumaError> {
        if allowed.is_subset(cpus) {
            Ok(())
        } else {
            Err(NumaError::Unsupported {
                feature: "pinning a thread to some CPUs",
                since: "an OS with thread affinity (Linux)",
            })
        }
    }
}

/// Physical memory where neither `/proc/meminfo` nor an affinity API exists.
#[cfg(all(unix, not(target_os = "linux")))]
mod physical {
    use core::ffi::{c_char, c_int, c_void};

    use numaperf_core::NumaError;

    unsafe extern "C" {
        /// `sysctlbyname(3)` of the C library every such Unix has.
        fn sysctlbyname(
            name: *const c_char,
            oldp: *mut c_void,
            oldlenp: *mut usize,
            newp: *mut c_void,
            newlen: usize,
        ) -> c_int;
    }

    /// `(total, free)`: the total from `hw.memsize` (Apple) or `hw.physmem`; no portable
    /// sysctl tells the free memory, so free is reported as the total (an upper bound).
    pub(crate) fn memory() -> Result<(u64, u64), NumaError> {
        let name: &[u8] = if cfg!(target_vendor = "apple") {
            b"hw.memsize\0"
        } else {
            b"hw.physmem\0"
        };
        let mut value: u64 = 0;
        let mut len = core::mem::size_of::<u64>();
        // SAFETY: `name` is NUL-terminated; `value` is writable for `len` bytes and `len`
        // says so; no new value is set (null, 0).
        let r = unsafe {
            sysctlbyname(
                name.as_ptr().cast(),
                (&mut value as *mut u64).cast(),
                &mut len,
                core::ptr::null_mut(),
                0,
            )
        };
        if r != 0 || value == 0 {
            return Err(NumaError::Unsupported {
                feature: "the machine's memory size",
                since: "an OS that reports it",
            });
        }
        Ok((value, value))
    }
}

/// Physical memory on Windows: `GlobalMemoryStatusEx`.
#[cfg(windows)]
mod physical {
    use numaperf_core::NumaError;
    use windows_sys::Win32::System::SystemInformation::{GlobalMemoryStatusEx, MEMORYSTATUSEX};

    /// `(total, available)` physical memory.
    pub(crate) fn memory() -> Result<(u64, u64), NumaError> {
        // SAFETY: MEMORYSTATUSEX is plain data; all-zero is a valid value.
        let mut s: MEMORYSTATUSEX = unsafe { core::mem::zeroed() };
        s.dwLength = core::mem::size_of::<MEMORYSTATUSEX>() as u32;
        // SAFETY: `s` is a valid, writable MEMORYSTATUSEX with its length set.
        if unsafe { GlobalMemoryStatusEx(&mut s) } == 0 {
            return Err(NumaError::Unsupported {
                feature: "the machine's memory size",
                since: "GlobalMemoryStatusEx",
            });
        }
        Ok((s.ullTotalPhys, s.ullAvailPhys))
    }
}

/// Anything else (no Unix, no Windows): nothing to ask.
#[cfg(not(any(unix, windows)))]
mod physical {
    use numaperf_core::NumaError;

    pub(crate) fn memory() -> Result<(u64, u64), NumaError> {
        Err(NumaError::Unsupported {
            feature: "the machine's memory size",
            since: "Unix or Windows",
        })
    }
}

pub(crate) use os::{allowed_cpus, current_cpu, memory, set_thread_affinity, thread_affinity};
