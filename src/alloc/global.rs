//! `NodeGlobalAlloc`: a whole program's heap under one policy (`#[global_allocator]`).
//! Built in a `const`; the backend and the allocator are made at the first allocation.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::{Cell, UnsafeCell};
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU8, Ordering};
use std::alloc::System;

use allocator_api2::alloc::Allocator;
use numaperf_core::{MemPolicy, NumaError, PlacementBackend, TopologyInfo};

use super::NodeAlloc;
use crate::DefaultBackend;

const UNINIT: u8 = 0;
const INITIALIZING: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

thread_local! {
    /// Set while this thread is inside the allocator's own machinery (making the backend,
    /// mapping a slab): allocations made there come from the system allocator, and so do
    /// the frees made there, so the allocator never re-enters itself.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

fn busy() -> bool {
    BUSY.try_with(Cell::get).unwrap_or(true)
}

/// Runs `f` with [`BUSY`] set, restoring it after.
fn as_busy<R>(f: impl FnOnce() -> R) -> R {
    // Unwinding out of a global allocator is undefined behaviour: a panic anywhere in the
    // machinery (the topology reader, the region code) aborts the process instead.
    let abort = AbortOnUnwind;
    let was = BUSY.try_with(|b| b.replace(true)).unwrap_or(true);
    let r = f();
    let _ = BUSY.try_with(|b| b.set(was));
    core::mem::forget(abort);
    r
}

/// Aborts the process when dropped, which only happens while unwinding (see `as_busy`).
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        std::process::abort();
    }
}

/// A `GlobalAlloc` placing the program's heap by a policy:
///
/// ```no_run
/// use numaperf::{MemPolicy, NodeGlobalAlloc, NodeMask};
///
/// #[global_allocator]
/// static HEAP: NodeGlobalAlloc = NodeGlobalAlloc::interleave_all();
///
/// fn main() {
///     let v = vec![0u64; 1 << 24]; // interleaved over every memory node
///     assert!(HEAP.error().is_none());
/// #   drop(v);
/// }
/// ```
///
/// The policy is applied lazily: the first allocation makes the default backend and a
/// [`NodeAlloc`]. Allocations made while doing so (reading the topology), and any the
/// backend makes inside the allocator, come from the system allocator; those that outlive
/// the start are the backend's own, kept for the life of the process. If the policy cannot
/// be used (an absent node, no NUMA kernel), the allocator serves everything from the
/// system allocator and [`NodeGlobalAlloc::error`] says why, rather than aborting the
/// program at its first allocation.
pub struct NodeGlobalAlloc {
    /// `None`: interleave over every memory node the process may use.
    policy: Option<MemPolicy>,
    state: AtomicU8,
    inner: UnsafeCell<MaybeUninit<NodeAlloc<DefaultBackend>>>,
    error: UnsafeCell<Option<NumaError>>,
}

// SAFETY: `inner` and `error` are written once, by the thread that moved `state` from
// UNINIT to INITIALIZING, before it publishes READY or FAILED with a Release store; they
// are read only after an Acquire load sees that. NodeAlloc itself is Sync.
unsafe impl Sync for NodeGlobalAlloc {}

impl NodeGlobalAlloc {
    /// The heap placed by `policy` (build masks with `NodeMask::from_words` in a const).
    pub const fn new(policy: MemPolicy) -> Self {
        Self::with(Some(policy))
    }

    /// The heap interleaved over every memory node the process may use, decided at the
    /// first allocation.
    pub const fn interleave_all() -> Self {
        Self::with(None)
    }

    const fn with(policy: Option<MemPolicy>) -> Self {
        NodeGlobalAlloc {
            policy,
            state: AtomicU8::new(UNINIT),
            inner: UnsafeCell::new(MaybeUninit::uninit()),
            error: UnsafeCell::new(None),
        }
    }

    /// Why the policy is not applied (the heap then comes from the system allocator);
    /// `None` while it is, or before the first allocation.
    pub fn error(&self) -> Option<NumaError> {
        if self.state.load(Ordering::Acquire) == FAILED {
            // SAFETY: written before FAILED was published (see the Sync impl).
            unsafe { *self.error.get() }
        } else {
            None
        }
    }

    /// Whether allocations are placed by the policy (false before the first allocation
    /// and after a failed start).
    pub fn is_placing(&self) -> bool {
        self.state.load(Ordering::Acquire) == READY
    }

    /// The allocator, made on first use; `None`: use the system allocator.
    fn get(&self) -> Option<&NodeAlloc<DefaultBackend>> {
        if busy() {
            return None;
        }
        loop {
            match self.state.load(Ordering::Acquire) {
                // SAFETY: initialised before READY was published.
                READY => return Some(unsafe { (*self.inner.get()).assume_init_ref() }),
                FAILED => return None,
                INITIALIZING => std::thread::yield_now(),
                _ => {
                    if self
                        .state
                        .compare_exchange(
                            UNINIT,
                            INITIALIZING,
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        self.start();
                    }
                }
            }
        }
    }

    /// Makes the backend and the allocator (this thread won the start).
    fn start(&self) {
        let made = as_busy(|| {
            let backend = DefaultBackend::shared()?;
            let policy = match &self.policy {
                Some(p) => p.clone(),
                None => {
                    let t = backend.topology();
                    MemPolicy::Interleave(t.memory_nodes().intersection(t.allowed_nodes()))
                }
            };
            NodeAlloc::new_in(backend, policy)
        });
        match made {
            Ok(a) => {
                // SAFETY: only the starting thread writes, before publishing READY.
                unsafe { (*self.inner.get()).write(a) };
                self.state.store(READY, Ordering::Release);
            }
            Err(e) => {
                // SAFETY: as above, before publishing FAILED.
                unsafe { *self.error.get() = Some(e) };
                self.state.store(FAILED, Ordering::Release);
            }
        }
    }

    /// The allocator for a free: `None` for memory that came from the system allocator.
    fn owner(&self) -> Option<&NodeAlloc<DefaultBackend>> {
        if busy() || self.state.load(Ordering::Acquire) != READY {
            return None;
        }
        // SAFETY: READY was seen: initialised.
        Some(unsafe { (*self.inner.get()).assume_init_ref() })
    }
}

fn to_ptr(r: Result<NonNull<[u8]>, allocator_api2::alloc::AllocError>) -> *mut u8 {
    r.map_or(ptr::null_mut(), |b| b.cast::<u8>().as_ptr())
}

// SAFETY: every block comes from the NodeAlloc (placed) or from `System`, and goes back to
// the one it came from: system blocks are the ones made while this thread was busy inside
// the allocator or while no NodeAlloc was (or will ever be) ready, and are freed by the
// same rule (frees inside the machinery are of its own temporaries); NodeAlloc keeps the
// Allocator contract. Nothing here allocates outside `BUSY`, and a panic inside it aborts
// (`as_busy`) rather than unwinding out of the allocator.
unsafe impl GlobalAlloc for NodeGlobalAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.get() {
            Some(a) => to_ptr(as_busy(|| a.allocate(layout))),
            // SAFETY: forwarded (a non-zero layout, the GlobalAlloc contract).
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match self.get() {
            Some(a) => to_ptr(as_busy(|| a.allocate_zeroed(layout))),
            // SAFETY: forwarded.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        match (self.owner(), NonNull::new(p)) {
            // SAFETY: the block came from `a` (the rule above) with this layout.
            (Some(a), Some(p)) => as_busy(|| unsafe { a.deallocate(p, layout) }),
            (Some(_), None) => {}
            // SAFETY: the block came from the system allocator.
            (None, _) => unsafe { System.dealloc(p, layout) },
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (Some(a), Some(old)) = (self.owner(), NonNull::new(p)) else {
            // SAFETY: a system block (the rule above); forwarded.
            return unsafe { System.realloc(p, layout, new_size) };
        };
        let Ok(new) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        as_busy(|| {
            // SAFETY: `old` came from `a` with `layout`; the sizes are ordered as asked.
            let r = unsafe {
                if new_size >= layout.size() {
                    a.grow(old, layout, new)
                } else {
                    a.shrink(old, layout, new)
                }
            };
            to_ptr(r)
        })
    }
}
