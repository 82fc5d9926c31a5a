//! A pair of fences for a fast side and a rare side: on Linux the fast side is only a
//! compiler fence and the rare side a `membarrier` (every running thread of the process
//! passes a full fence), which together order like two SeqCst fences; elsewhere (and
//! under Miri, or when the kernel refuses) both sides are SeqCst fences.

use std::sync::atomic::{compiler_fence, fence, AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const ASYMMETRIC: u8 = 1;
const SYMMETRIC: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Chooses the mode once; called before any fast side may run (a pool's constructor).
pub(crate) fn init() {
    if MODE.load(Ordering::Acquire) == UNKNOWN {
        let mode = if register() { ASYMMETRIC } else { SYMMETRIC };
        // The first choice wins; every later caller sees the same mode.
        let _ = MODE.compare_exchange(UNKNOWN, mode, Ordering::AcqRel, Ordering::Acquire);
    }
}

#[cfg(all(target_os = "linux", not(miri)))]
fn register() -> bool {
    use rustix::thread::{membarrier, MembarrierCommand};
    membarrier(MembarrierCommand::RegisterPrivateExpedited).is_ok()
}

#[cfg(not(all(target_os = "linux", not(miri))))]
fn register() -> bool {
    false
}

/// The fast side's fence.
#[inline]
pub(crate) fn light() {
    if MODE.load(Ordering::Relaxed) == ASYMMETRIC {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The rare side's fence; `false` if it could not be had (then the rare side must not
/// rely on the fast side's state).
pub(crate) fn heavy() -> bool {
    fence(Ordering::SeqCst);
    if MODE.load(Ordering::Relaxed) != ASYMMETRIC {
        return true;
    }
    membarrier_all()
}

#[cfg(all(target_os = "linux", not(miri)))]
fn membarrier_all() -> bool {
    use rustix::thread::{membarrier, MembarrierCommand};
    // A forked child may have lost the registration; the global form needs none.
    membarrier(MembarrierCommand::PrivateExpedited).is_ok()
        || membarrier(MembarrierCommand::Global).is_ok()
}

#[cfg(not(all(target_os = "linux", not(miri))))]
fn membarrier_all() -> bool {
    false
}
