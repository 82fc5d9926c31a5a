//! Tasks of the worker pool: a job in a queue (four words; a small fire-and-forget
//! closure lives inside it, no allocation), the one allocation that holds a task's
//! closure and result when it has a handle, and the handle that waits for it (helping its
//! pool while it waits).

use std::any::Any;
use std::cell::UnsafeCell;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
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

/// Room for a small task inside its job: three words.
type Inline = MaybeUninit<[usize; 3]>;

/// A queued task: four words, so a deque slot is small and a push moves little. A
/// fire-and-forget closure that fits (with its scope's count) in `data` lives right
/// there and costs no allocation; a larger one is boxed, and a task with a handle is
/// the cell it shares with the handle (`data` holds the pointer). `exec` runs or
/// cancels it, exactly once. Dropped unrun, a job cancels its task.
pub(crate) struct Job {
    /// Runs (`false`) or cancels (`true`) the task in `data`, frees what the job owns,
    /// then counts the task's scope down. Never unwinds.
    exec: unsafe fn(*mut Inline, bool),
    data: Inline,
}

// SAFETY: a job is made only from `F: Send` closures (and `T: Send` results), and it is
// the sole owner of what `data` holds until `exec` consumes it: moving it to another
// thread moves that ownership, as a `Box<dyn FnOnce() + Send>` would.
unsafe impl Send for Job {}

/// A fire-and-forget closure and its scope's count.
struct OnceJob<F> {
    f: F,
    scope: Option<ScopeCount>,
}

/// Whether an `X` can live in a job's `data`.
const fn fits<X>() -> bool {
    std::mem::size_of::<X>() <= std::mem::size_of::<Inline>()
        && std::mem::align_of::<X>() <= std::mem::align_of::<Inline>()
}

/// Drops a panic payload, and any payload that dropping it panics with.
fn drop_payloads(mut r: std::thread::Result<()>) {
    while let Err(payload) = r {
        r = catch_unwind(AssertUnwindSafe(move || drop(payload)));
    }
}

/// Runs (or drops unrun) a fire-and-forget closure, then counts its scope down.
fn finish_once<F: FnOnce()>(job: OnceJob<F>, cancel: bool) {
    let OnceJob { f, scope } = job;
    // A detached task's panic is caught here: nobody waits for it.
    let r = if cancel {
        catch_unwind(AssertUnwindSafe(move || drop(f)))
    } else {
        catch_unwind(AssertUnwindSafe(f))
    };
    drop_payloads(r);
    // The scope counts down after the closure (and all it borrowed) is gone.
    drop(scope);
}

/// `exec` of a fire-and-forget job held inline.
///
/// # Safety
/// `Job::once` wrote an `OnceJob<F>` at the start of `*data` (it fits: `fits`), and
/// this is the only call for it.
unsafe fn exec_inline<F: FnOnce() + Send>(data: *mut Inline, cancel: bool) {
    // SAFETY: the caller's contract: a valid, aligned `OnceJob<F>` that we move out.
    let job = unsafe { data.cast::<OnceJob<F>>().read() };
    finish_once(job, cancel);
}

/// `exec` of a boxed fire-and-forget job.
///
/// # Safety
/// `Job::once` wrote a `Box::<OnceJob<F>>::into_raw` pointer at the start of `*data`,
/// and this is the only call for it.
unsafe fn exec_boxed<F: FnOnce() + Send>(data: *mut Inline, cancel: bool) {
    // SAFETY: the caller's contract: we own the box now.
    let job = unsafe { Box::from_raw(data.cast::<*mut OnceJob<F>>().read()) };
    finish_once(*job, cancel);
}

/// `exec` of a job whose task has a handle.
///
/// # Safety
/// `Job::task` wrote an `Arc::<Cell<F, T>>::into_raw` pointer at the start of `*data`
/// (that count is ours now), and this is the only call for it.
unsafe fn exec_cell<F: FnOnce() -> T + Send, T: Send>(data: *mut Inline, cancel: bool) {
    // SAFETY: the caller's contract: the job's strong count comes back to us.
    let c = unsafe { Arc::from_raw(data.cast::<*const Cell<F, T>>().read()) };
    // SAFETY: only the job (this call, once) touches `scope`.
    let scope = unsafe { (*c.scope.get()).take() };
    let r = catch_unwind(AssertUnwindSafe(move || {
        // SAFETY: this is the one run-or-cancel of the task (see `Task`).
        unsafe {
            if cancel {
                c.cancel();
            } else {
                c.run();
            }
        }
        drop(c); // may drop a result nobody will read
    }));
    drop_payloads(r);
    drop(scope);
}

impl Job {
    /// A job running `f` (no handle; no allocation when `f` and the count fit in three
    /// words, else one).
    ///
    /// # Safety
    /// Whatever `f` borrows stays alive until the job has run or been dropped (for a
    /// scoped job, the scope's count, dropped after `f`, guarantees it).
    #[inline]
    pub(crate) unsafe fn once<F: FnOnce() + Send>(f: F, scope: Option<ScopeCount>) -> Job {
        let job = OnceJob { f, scope };
        let mut data = Inline::uninit();
        if fits::<OnceJob<F>>() {
            // SAFETY: `data` is ours, large and aligned enough for the job (`fits`).
            unsafe { data.as_mut_ptr().cast::<OnceJob<F>>().write(job) };
            Job {
                exec: exec_inline::<F>,
                data,
            }
        } else {
            let boxed = Box::into_raw(Box::new(job));
            // SAFETY: `data` is ours and holds a pointer.
            unsafe { data.as_mut_ptr().cast::<*mut OnceJob<F>>().write(boxed) };
            Job {
                exec: exec_boxed::<F>,
                data,
            }
        }
    }

    /// A job running the task of `c` (whose other owner is its handle).
    ///
    /// # Safety
    /// As for [`Job::once`], for the closure inside `c`; and no other job is made of `c`.
    pub(crate) unsafe fn task<F: FnOnce() -> T + Send, T: Send>(c: Arc<Cell<F, T>>) -> Job {
        let mut data = Inline::uninit();
        // SAFETY: `data` is ours and holds a pointer.
        unsafe {
            data.as_mut_ptr()
                .cast::<*const Cell<F, T>>()
                .write(Arc::into_raw(c))
        };
        Job {
            exec: exec_cell::<F, T>,
            data,
        }
    }

    /// Runs the task; a panic of the task itself is caught inside it (a detached one's
    /// here: nobody waits for it), and one from dropping what it left behind (a result
    /// nobody will read) is caught here too.
    pub(crate) fn run(self) {
        let mut job = ManuallyDrop::new(self);
        // SAFETY: `job` is consumed and never dropped: this is `exec`'s only call, on the
        // data its constructor wrote.
        unsafe { (job.exec)(&mut job.data, false) }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        // SAFETY: a dropped job never ran (`run` does not drop it): `exec`'s only call,
        // on the data its constructor wrote.
        unsafe { (self.exec)(&mut self.data, true) }
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
    /// The scope's count of a scoped task: taken (and dropped after the task) by its job.
    scope: UnsafeCell<Option<ScopeCount>>,
}

// SAFETY: each UnsafeCell has one writer at a time, ordered by `state`: `f` only by
// run/cancel (once, see `Task`); `result` by the completer before its Release swap to
// DONE, then by the handle only after an Acquire load sees DONE; `waiter` by the handle
// before its Release CAS to WAITING, then read by the completer after its AcqRel swap
// sees WAITING; `scope` only by the task's one job, once. `F: Send, T: Send` (and
// `ScopeCount: Send`) let those accesses come from different threads.
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

pub(crate) fn cell<F: FnOnce() -> T + Send, T: Send>(
    f: F,
    scope: Option<ScopeCount>,
) -> Arc<Cell<F, T>> {
    Arc::new(Cell {
        f: UnsafeCell::new(Some(f)),
        result: UnsafeCell::new(None),
        waiter: UnsafeCell::new(None),
        state: AtomicU8::new(PENDING),
        scope: UnsafeCell::new(scope),
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
        ScopeCount(NonNull::from(self))
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
pub(crate) struct ScopeCount(NonNull<ScopeState>);

// SAFETY: a ScopeCount only touches its state's atomics and clones its `Thread` (which
// is Send + Sync); the state outlives it (see `ScopeState::count`).
unsafe impl Send for ScopeCount {}

impl Drop for ScopeCount {
    fn drop(&mut self) {
        // SAFETY: the state lives until `finish_body` sees `done`, which only the last
        // count sets, below, as its last access.
        let st = unsafe { self.0.as_ref() };
        // AcqRel: everything the task did (and dropped) happens before the owner's
        // Acquire load of `done`.
        if st.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let owner = st.owner.clone();
            st.done.store(true, Ordering::Release);
            owner.unpark();
        }
    }
}
