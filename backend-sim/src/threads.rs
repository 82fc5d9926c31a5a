//! Simulated threads: each OS thread has, per machine, a current CPU and an affinity.
//! Kept in a thread-local map keyed by machine id, so several machines coexist.

use std::cell::RefCell;
use std::collections::HashMap;

use numaperf_core::CpuSet;

/// One thread's simulated state on one machine.
#[derive(Clone, Copy)]
pub(crate) struct SimThread {
    pub(crate) cpu: usize,
    pub(crate) affinity: CpuSet,
}

thread_local! {
    static THREADS: RefCell<HashMap<u64, SimThread>> = RefCell::new(HashMap::new());
}

/// The calling thread's state on machine `id` (`default` the first time).
pub(crate) fn get(id: u64, default: impl FnOnce() -> SimThread) -> SimThread {
    THREADS.with(|t| *t.borrow_mut().entry(id).or_insert_with(default))
}

/// Replaces the calling thread's state on machine `id`; returns the old one.
pub(crate) fn set(id: u64, state: SimThread) -> Option<SimThread> {
    THREADS.with(|t| t.borrow_mut().insert(id, state))
}

/// Restores a thread's previous state when dropped (also when unwinding).
pub(crate) struct Restore {
    pub(crate) id: u64,
    pub(crate) previous: SimThread,
}

impl Drop for Restore {
    fn drop(&mut self) {
        set(self.id, self.previous);
    }
}
