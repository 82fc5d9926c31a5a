//! A start line for the bandwidth threads: all start together, or none starts when one of
//! them could not be created (a `Barrier` would leave the others waiting forever).

use std::sync::{Condvar, Mutex, PoisonError};

/// How many threads are still expected, and whether the start was called off.
struct State {
    waiting_for: usize,
    aborted: bool,
}

/// A barrier for `n` threads that the spawning thread can abort.
pub(crate) struct StartGate {
    state: Mutex<State>,
    opened: Condvar,
}

impl StartGate {
    /// A gate that opens when `n` threads have arrived.
    pub(crate) fn new(n: usize) -> Self {
        StartGate {
            state: Mutex::new(State {
                waiting_for: n,
                aborted: false,
            }),
            opened: Condvar::new(),
        }
    }

    /// Arrives and waits until every thread has arrived (true) or the start is aborted
    /// (false).
    pub(crate) fn arrive_and_wait(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.waiting_for = s.waiting_for.saturating_sub(1);
        if s.waiting_for == 0 {
            self.opened.notify_all();
        }
        while s.waiting_for > 0 && !s.aborted {
            s = self.opened.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        !s.aborted
    }

    /// Calls the start off: every thread waiting (and every later arrival) gets false.
    pub(crate) fn abort(&self) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.aborted = true;
        self.opened.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_when_all_arrive() {
        let g = StartGate::new(3);
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..3).map(|_| s.spawn(|| g.arrive_and_wait())).collect();
            assert!(hs.into_iter().all(|h| h.join().unwrap()));
        });
    }

    #[test]
    fn an_abort_releases_the_waiting_threads() {
        // Two of three arrive; the third is never started: abort must release them.
        let g = StartGate::new(3);
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..2).map(|_| s.spawn(|| g.arrive_and_wait())).collect();
            g.abort();
            assert!(hs.into_iter().all(|h| !h.join().unwrap()));
        });
        assert!(!g.arrive_and_wait());
    }
}
