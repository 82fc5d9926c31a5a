//! Which side of a `fork` this process is on: a counter the child bumps (from a
//! `pthread_atfork` child handler), so a pool made before a fork can tell it was left
//! without its worker threads.

use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Forks this process has been through as a child, counted since the first call.
pub(crate) fn generation() -> u64 {
    register();
    GENERATION.load(Ordering::Acquire)
}

#[cfg(all(unix, not(miri)))]
fn register() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    extern "C" fn in_child() {
        // Async-signal-safe: one atomic add, no allocation, no lock.
        GENERATION.fetch_add(1, Ordering::AcqRel);
    }
    extern "C" {
        fn pthread_atfork(
            prepare: Option<extern "C" fn()>,
            parent: Option<extern "C" fn()>,
            child: Option<extern "C" fn()>,
        ) -> i32;
    }
    ONCE.call_once(|| {
        // SAFETY: `pthread_atfork` (POSIX, in every Unix C library std links) only
        // records the handlers; `in_child` is a plain `extern "C" fn` without
        // captures that stays valid for the life of the process. A non-zero return
        // (ENOMEM) leaves fork detection off, as on platforms without fork.
        let _ = unsafe { pthread_atfork(None, None, Some(in_child)) };
    });
}

#[cfg(not(all(unix, not(miri))))]
fn register() {}
