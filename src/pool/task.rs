//! Tasks of the worker pool: a job in a queue, the one allocation that holds a task's
//! closure and result, and the handle that waits for it (helping its pool while it waits).

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, Thread};

use super::worker::help_until;

/// Why a task gave no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// The task panicked with this message; the pool lives on.
    Panicked(String),
    /// The pool shut down with `Shutdown::Cancel` (or was dropped on one of its own
    /// workers, or was left behind by `fork`) before the task ran.
    Cancelled,
}

/// What a queue holds: run exactly once, or cancelled exactly once.
pub(crate) trait Task: Send + Sync {
    /// Runs the task.
    ///
    /// # Safety
    /// Called at most once per task, and never after (or together with) `cancel`: only
    /// the one [`Job`] that owns the task calls either, and it consumes itself doing so.
    unsafe fn run(&self);
    /// Drops the closure unrun and reports `Cancelled`.
    ///
    /// # Safety
    /// As for `run`.
    unsafe fn cancel(&self);
}

/// A fire-and-forget closure (no handle, so it needs no shared cell).
pub(crate) type Once = Box<dyn FnOnce() + Send>;

/// What a job runs: a closure it owns alone, or a task shared with a handle.
enum Work {
    Once(Once),
    Shared(Arc<dyn Task>),
}

/// A queued task, and (for a scoped task) the count its scope waits on. Dropped unrun,
/// it cancels its task.
pub(crate) struct Job {
    work: Option<Work>,
    /// Counted down after `work` is gone, so nothing the task borrowed outlives the count.
    _scope: Option<ScopeCount>,
}

impl Job {
    pub(crate) fn new(task: Arc<dyn Task>, scope: Option<ScopeCount>) -> Job {
        Job {
            work: Some(Work::Shared(task)),
            _scope: scope,
        }
    }

    pub(crate) fn once(f: Once, scope: Option<ScopeCount>) -> Job {
        Job {
            work: Some(Work::Once(f)),
            _scope: scope,
        }
    }

    /// Runs the task; a panic of the task itself is caught inside it (a detached one's
    /// here: nobody waits for it), and one from dropping what it left behind (a result
    /// nobody will read) is caught here too.
    pub(crate) fn run(mut self) {
        let mut r = match self.work.take() {
            Some(Work::Once(f)) => catch_unwind(AssertUnwindSafe(f)),
            // SAFETY: `take` leaves this the only call of run/cancel for this task.
            Some(Work::Shared(t)) => catch_unwind(AssertUnwindSafe(move || unsafe { t.run() })),
            None => Ok(()),
        };
        while let Err(payload) = r {
            r = catch_unwind(AssertUnwindSafe(move || drop(payload)));
        }
        // `self` drops here: the scope count goes down after the task is gone.
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let mut r = match self.work.take() {
            Some(Work::Once(f)) => catch_unwind(AssertUnwindSafe(move || drop(f))),
            // SAFETY: as in `run`: `take` makes this the only call for this task.
            Some(Work::Shared(t)) => catch_unwind(AssertUnwindSafe(move || unsafe { t.cancel() })),
            None => Ok(()),
        };
        while let Err(payload) = r {
            r = catch_unwind(AssertUnwindSafe(move || drop(payload)));
        }
    }
}

const PENDING: u8 = 0;
const WAITING: u8 = 1;
const DONE: u8 = 2;

/// A task with a handle: the closure, then its result, and who waits for it.
pub(crate) struct Cell<F, T> {
    f: UnsafeCell<Option<F>>,
    result: UnsafeCell<Option<Result<T, TaskError>>>,
    /// Written by the joiner before it moves `state` to WAITING, read by the completer
    /// after it sees WAITING.
    waiter: UnsafeCell<Option<Thread>>,
    state: AtomicU8,
}

// SAFETY: each UnsafeCell has one writer at a time, ordered by `state`: `f` only by
// run/cancel (once, see `Task`); `result` by the completer before its Release swap to
// DONE, then by the handle only after an Acquire load sees DONE; `waiter` by the handle
// before its Release CAS to WAITING, then read by the completer after its AcqRel swap
// sees WAITING. `F: Send, T: Send` let those accesses come from different threads.
unsafe impl<F: Send, T: Send> Sync for Cell<F, T> {}

impl<F, T> Cell<F, T> {
    fn complete(&self, r: Result<T, TaskError>) {
        // SAFETY: only the completer (run/cancel, called once) writes `result`, and the
        // handle reads it only after seeing DONE, which is stored below.
        unsafe { *self.result.get() = Some(r) };
        if self.state.swap(DONE, Ordering::AcqRel) == WAITING {
            // SAFETY: WAITING means the handle wrote `waiter` before its Release CAS and
            // will not touch it again; our AcqRel swap saw that CAS.
            if let Some(t) = unsafe { (*self.waiter.get()).as_ref() } {
                t.unpark();
            }
        }
    }
}

impl<F: FnOnce() -> T + Send, T: Send> Task for Cell<F, T> {
    unsafe fn run(&self) {
        // SAFETY: run's contract: no other access to `f`.
        let Some(f) = (unsafe { (*self.f.get()).take() }) else {
            return;
        };
        let r = catch_unwind(AssertUnwindSafe(f)).map_err(|p| TaskError::Panicked(message(p)));
        self.complete(r);
    }
    unsafe fn cancel(&self) {
        // SAFETY: as in `run`.
        drop(unsafe { (*self.f.get()).take() });
        self.complete(Err(TaskError::Cancelled));
    }
}

pub(crate) fn cell<F: FnOnce() -> T + Send, T: Send>(f: F) -> Arc<Cell<F, T>> {
    Arc::new(Cell {
        f: UnsafeCell::new(Some(f)),
        result: UnsafeCell::new(None),
        waiter: UnsafeCell::new(None),
        state: AtomicU8::new(PENDING),
    })
}

fn message(p: Box<dyn Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "task panicked".into())
}

/// What a [`JoinHandle`] sees of its task's cell, whatever the closure's type.
pub(crate) trait Outcome<T>: Send + Sync {
    fn state(&self) -> &AtomicU8;
    /// # Safety
    /// Only after `state` was seen DONE (Acquire), once.
    unsafe fn take(&self) -> Option<Result<T, TaskError>>;
    /// # Safety
    /// Only before the handle moves `state` to WAITING.
    unsafe fn set_waiter(&self, t: Thread);
}

impl<F: FnOnce() -> T + Send, T: Send> Outcome<T> for Cell<F, T> {
    fn state(&self) -> &AtomicU8 {
        &self.state
    }
    unsafe fn take(&self) -> Option<Result<T, TaskError>> {
        // SAFETY: the caller saw DONE: the completer is done writing `result`.
        unsafe { (*self.result.get()).take() }
    }
    unsafe fn set_waiter(&self, t: Thread) {
        // SAFETY: the caller has not published WAITING: nobody reads `waiter` yet.
        unsafe { *self.waiter.get() = Some(t) };
    }
}

/// The result of a spawned task (the task's one allocation, shared with its job).
pub struct JoinHandle<T> {
    cell: Arc<dyn Outcome<T>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(cell: Arc<dyn Outcome<T>>) -> Self {
        JoinHandle { cell }
    }

    /// Waits for the task: its value, or why there is none.
    ///
    /// Called on a worker of a pool, the worker runs that pool's other tasks while it
    /// waits (its own node's first, then as its `Steal` policy allows), so joining from
    /// inside a task does not deadlock. Elsewhere the thread sleeps until the task is done.
    ///
    /// # Errors
    /// [`TaskError::Panicked`] when the task panicked, [`TaskError::Cancelled`] when it was
    /// dropped unrun.
    pub fn join(self) -> Result<T, TaskError> {
        let state = self.cell.state();
        if state.load(Ordering::Acquire) != DONE {
            // SAFETY: `state` is PENDING (only this handle moves it to WAITING).
            unsafe { self.cell.set_waiter(thread::current()) };
            if state
                .compare_exchange(PENDING, WAITING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                help_until(&|| state.load(Ordering::Acquire) == DONE);
            }
        }
        // SAFETY: DONE was seen (Acquire) above or in `help_until`; this handle is consumed.
        unsafe { self.cell.take() }.unwrap_or(Err(TaskError::Cancelled))
    }

    /// Whether the task has finished (or was cancelled).
    pub fn is_finished(&self) -> bool {
        self.cell.state().load(Ordering::Acquire) == DONE
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// What a scope waits on: its unfinished tasks (plus one for its body), and its owner.
/// It lives in the frame of `WorkerPool::scope`, which does not return before `done`.
pub(crate) struct ScopeState {
    pending: AtomicUsize,
    /// Set by the task that brings `pending` to 0: its last touch of this state.
    done: AtomicBool,
    owner: Thread,
}

impl ScopeState {
    pub(crate) fn new() -> Self {
        ScopeState {
            pending: AtomicUsize::new(1),
            done: AtomicBool::new(false),
            owner: thread::current(),
        }
    }

    /// Counts one more task.
    ///
    /// # Safety
    /// The returned count must be dropped before `finish_body` returns (the scope's
    /// guarantee: `finish_body` waits for it).
    pub(crate) unsafe fn count(&self) -> ScopeCount {
        self.pending.fetch_add(1, Ordering::Relaxed);
        ScopeCount(self)
    }

    /// Called once by the owner after its body: waits (helping, on a worker) until every
    /// counted task is gone and none of them touches this state any more.
    pub(crate) fn finish_body(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) != 1 {
            help_until(&|| self.done.load(Ordering::Acquire));
        }
    }
}

/// One unfinished task of a scope; counts it down when dropped.
pub(crate) struct ScopeCount(*const ScopeState);

// SAFETY: a ScopeCount only touches its state's atomics and clones its `Thread` (which
// is Send + Sync); the state outlives it (see `ScopeState::count`).
unsafe impl Send for ScopeCount {}

impl Drop for ScopeCount {
    fn drop(&mut self) {
        // SAFETY: the state lives until `finish_body` sees `done`, which only the last
        // count sets, below, as its last access.
        let st = unsafe { &*self.0 };
        // AcqRel: everything the task did (and dropped) happens before the owner's
        // Acquire load of `done`.
        if st.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let owner = st.owner.clone();
            st.done.store(true, Ordering::Release);
            owner.unpark();
        }
    }
}
