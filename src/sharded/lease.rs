//! Thread slots: a thread may hold one slot of a counter exclusively (so it adds with a
//! plain load and store, no locked instruction); released when the thread exits.

use core::cell::RefCell;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::local;

/// Which thread slots of one counter are taken. Shared (`Arc`) with the threads holding
/// leases, so a thread that exits after the counter was dropped releases into a table
/// that still exists.
#[derive(Debug)]
pub(crate) struct LeaseTable {
    /// `false` once the counter is gone: its leases are then pruned, not released.
    alive: AtomicBool,
    taken: Box<[AtomicBool]>,
}

impl LeaseTable {
    /// `n` free slots.
    pub(crate) fn new(n: usize) -> Arc<Self> {
        Arc::new(LeaseTable {
            alive: AtomicBool::new(true),
            taken: (0..n).map(|_| AtomicBool::new(false)).collect(),
        })
    }

    /// Marks the counter gone (called from its drop).
    pub(crate) fn retire(&self) {
        self.alive.store(false, Ordering::Relaxed);
    }
}

struct Held {
    counter: u64,
    table: Arc<LeaseTable>,
    index: usize,
}

impl Held {
    fn release(&self) {
        // Release: the holder's last plain stores to the slot happen before the next
        // holder's claim (an Acquire exchange) and so before its first load.
        if let Some(t) = self.table.taken.get(self.index) {
            t.store(false, Ordering::Release);
        }
    }
}

/// The calling thread's leases; released when the thread exits.
struct ThreadLeases(RefCell<Vec<Held>>);

impl Drop for ThreadLeases {
    fn drop(&mut self) {
        // The per-thread caches hold addresses of the leased slots and have no destructor
        // (they stay reachable): forget them first, so later calls from this thread's
        // other destructors use shared slots instead of slots no longer theirs.
        local::forget_all();
        for h in self.0.get_mut().drain(..) {
            h.release();
        }
    }
}

thread_local! {
    static LEASES: ThreadLeases = const { ThreadLeases(RefCell::new(Vec::new())) };
}

/// A slot of `range` in `table` held exclusively by the calling thread for counter
/// `counter`: the one it holds already if that is in `range`, else (releasing any other)
/// a free one claimed now. `None`: every slot of `range` is taken, or the thread is
/// exiting; the caller then uses a shared slot.
pub(crate) fn lease(counter: u64, table: &Arc<LeaseTable>, range: Range<usize>) -> Option<usize> {
    LEASES
        .try_with(|l| {
            let mut held = l.0.try_borrow_mut().ok()?;
            held.retain(|h| h.table.alive.load(Ordering::Relaxed));
            if let Some(pos) = held.iter().position(|h| h.counter == counter) {
                if range.contains(&held[pos].index) {
                    return Some(held[pos].index);
                }
                held.swap_remove(pos).release();
            }
            let index = range.clone().find(|&i| {
                table.taken.get(i).is_some_and(|t| {
                    t.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                })
            })?;
            held.push(Held {
                counter,
                table: table.clone(),
                index,
            });
            Some(index)
        })
        .ok()
        .flatten()
}
