//! The per-worker deques: crossbeam-deque's, except under Miri, where a locked
//! `VecDeque` with the same interface stands in (crossbeam-epoch, which the deques use to
//! free their buffers, trips Miri's Stacked Borrows check inside the crate itself).

#[cfg(not(miri))]
pub(crate) use crossbeam_deque::{Stealer, Worker as Deque};

#[cfg(not(miri))]
pub(crate) fn steal_batch_into<T>(
    from: &crossbeam_deque::Injector<T>,
    into: &Deque<T>,
) -> crossbeam_deque::Steal<T> {
    from.steal_batch_and_pop(into)
}

#[cfg(miri)]
pub(crate) use shim::{Deque, Stealer};

#[cfg(miri)]
pub(crate) fn steal_batch_into<T>(
    from: &crossbeam_deque::Injector<T>,
    _into: &Deque<T>,
) -> crossbeam_deque::Steal<T> {
    from.steal()
}

#[cfg(miri)]
mod shim {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex, MutexGuard};

    use crossbeam_deque::Steal;

    fn lock<T>(m: &Mutex<VecDeque<T>>) -> MutexGuard<'_, VecDeque<T>> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The owner's end: LIFO push and pop at the back.
    pub(crate) struct Deque<T>(Arc<Mutex<VecDeque<T>>>);

    /// Everyone else's end: steals from the front.
    pub(crate) struct Stealer<T>(Arc<Mutex<VecDeque<T>>>);

    impl<T> Deque<T> {
        pub(crate) fn new_lifo() -> Self {
            Deque(Arc::new(Mutex::new(VecDeque::new())))
        }
        pub(crate) fn stealer(&self) -> Stealer<T> {
            Stealer(self.0.clone())
        }
        pub(crate) fn push(&self, t: T) {
            lock(&self.0).push_back(t);
        }
        pub(crate) fn pop(&self) -> Option<T> {
            lock(&self.0).pop_back()
        }
        pub(crate) fn is_empty(&self) -> bool {
            lock(&self.0).is_empty()
        }
    }

    impl<T> Stealer<T> {
        pub(crate) fn steal(&self) -> Steal<T> {
            lock(&self.0)
                .pop_front()
                .map_or(Steal::Empty, Steal::Success)
        }
        pub(crate) fn steal_batch_and_pop(&self, _into: &Deque<T>) -> Steal<T> {
            self.steal()
        }
        pub(crate) fn is_empty(&self) -> bool {
            lock(&self.0).is_empty()
        }
    }
}
