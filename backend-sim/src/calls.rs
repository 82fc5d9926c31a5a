//! The kinds of backend call, and lock-free counters of them: the sim's own statistics,
//! the `Tracer` wrapper, and the syscall counts the benchmarks report all use these.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// One kind of `PlacementBackend` call, named after the system call it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// `map` (mmap).
    Map,
    /// `apply_policy` (mbind).
    ApplyPolicy,
    /// `prefault` (madvise / touch).
    Prefault,
    /// `page_locations` (move_pages).
    PageLocations,
    /// `migrate` (mbind with MPOL_MF_MOVE).
    Migrate,
    /// `unmap` (munmap).
    Unmap,
    /// `free_memory` (a sysfs read).
    FreeMemory,
    /// `current_cpu` (getcpu).
    CurrentCpu,
    /// `thread_affinity` / `set_thread_affinity` (sched_get/setaffinity).
    Affinity,
}

impl CallKind {
    /// Every kind, in a fixed order.
    pub const ALL: [CallKind; 9] = [
        CallKind::Map,
        CallKind::ApplyPolicy,
        CallKind::Prefault,
        CallKind::PageLocations,
        CallKind::Migrate,
        CallKind::Unmap,
        CallKind::FreeMemory,
        CallKind::CurrentCpu,
        CallKind::Affinity,
    ];

    /// The system call this kind stands for, as errors name it.
    pub fn syscall(self) -> &'static str {
        match self {
            CallKind::Map => "mmap",
            CallKind::ApplyPolicy => "mbind",
            CallKind::Prefault => "madvise",
            CallKind::PageLocations => "move_pages",
            CallKind::Migrate => "mbind(MPOL_MF_MOVE)",
            CallKind::Unmap => "munmap",
            CallKind::FreeMemory => "read sysfs",
            CallKind::CurrentCpu => "getcpu",
            CallKind::Affinity => "sched_setaffinity",
        }
    }
}

/// Counts of calls by kind.
#[derive(Default)]
pub struct CallCounts {
    counts: [AtomicU64; 9],
}

impl CallCounts {
    /// Counts one call.
    pub fn record(&self, kind: CallKind) {
        self.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Calls of one kind so far.
    pub fn get(&self, kind: CallKind) -> u64 {
        self.counts[kind as usize].load(Ordering::Relaxed)
    }

    /// All calls so far.
    pub fn total(&self) -> u64 {
        CallKind::ALL.iter().map(|&k| self.get(k)).sum()
    }
}

impl fmt::Debug for CallCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for k in CallKind::ALL {
            if self.get(k) > 0 {
                m.entry(&k, &self.get(k));
            }
        }
        m.finish()
    }
}
