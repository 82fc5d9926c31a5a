//! Per-thread caches of free buffers, one per (thread, pool, node), in front of the node
//! free lists (DPDK's per-lcore mempool cache). The owner takes and returns buffers there
//! with one atomic swap and no shared cache line; another thread can drain a cache whose
//! owner is not inside it (a `get` about to wait, the pool's last handle, thread exit).

use std::cell::{RefCell, UnsafeCell};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

/// One node's cached buffers of one thread.
pub(crate) struct NodeCache {
    /// The owner is inside.
    busy: AtomicBool,
    /// Another thread is draining it.
    thief: AtomicBool,
    /// `bufs.len()`, for the pool's counters.
    len: AtomicUsize,
    bufs: UnsafeCell<Vec<NonNull<u8>>>,
}

// SAFETY: `bufs` is only touched by a thread that won the busy/thief handshake (see
// `owner` and `drain`), which makes those accesses mutually exclusive and ordered
// (Release stores read by SeqCst loads). The pointers are buffers nobody else owns: one
// buffer is in exactly one cache, free list or `Buffer` at a time.
unsafe impl Send for NodeCache {}
// SAFETY: as above.
unsafe impl Sync for NodeCache {}

impl NodeCache {
    fn new(cap: usize) -> Self {
        NodeCache {
            busy: AtomicBool::new(false),
            thief: AtomicBool::new(false),
            len: AtomicUsize::new(0),
            bufs: UnsafeCell::new(Vec::with_capacity(cap)),
        }
    }

    /// Runs `f` on the buffers, on the owning thread; `None` while a thief is inside.
    pub(crate) fn owner<R>(&self, f: impl FnOnce(&mut Vec<NonNull<u8>>) -> R) -> Option<R> {
        // Dekker: we announce ourselves, then look for a thief; a thief announces
        // itself, then looks for us. In the single order of SeqCst operations at least
        // one of us sees the other, so we are never both inside.
        self.busy.swap(true, Ordering::SeqCst);
        if self.thief.load(Ordering::SeqCst) {
            self.busy.store(false, Ordering::Release);
            return None;
        }
        // SAFETY: the handshake above excludes every other access to `bufs`.
        let bufs = unsafe { &mut *self.bufs.get() };
        let r = f(bufs);
        self.len.store(bufs.len(), Ordering::Relaxed);
        self.busy.store(false, Ordering::Release);
        Some(r)
    }

    /// Takes every cached buffer, from any thread; `None` while the owner (or another
    /// thief) is inside.
    pub(crate) fn drain(&self, into: &mut Vec<NonNull<u8>>) -> bool {
        if self.thief.swap(true, Ordering::SeqCst) {
            return false;
        }
        let ok = !self.busy.load(Ordering::SeqCst);
        if ok {
            // SAFETY: the handshake (see `owner`) excludes the owner and other thieves.
            let bufs = unsafe { &mut *self.bufs.get() };
            into.append(bufs);
            self.len.store(0, Ordering::Relaxed);
        }
        self.thief.store(false, Ordering::Release);
        ok
    }

    /// Buffers cached now.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

/// One thread's caches of one pool, a cache per node (by the pool's node index).
pub(crate) struct ThreadCache {
    pub(crate) nodes: Box<[CachePadded<NodeCache>]>,
}

impl ThreadCache {
    pub(crate) fn new(nodes: usize, cap: usize) -> Arc<Self> {
        Arc::new(ThreadCache {
            nodes: (0..nodes)
                .map(|_| CachePadded::new(NodeCache::new(cap)))
                .collect(),
        })
    }
}

/// This thread's entry for one pool.
pub(crate) struct Entry {
    pub(crate) pool: u64,
    pub(crate) cache: Arc<ThreadCache>,
    /// A `Weak` to the pool's shared state, type-erased; `exit` flushes through it.
    weak: *const (),
    /// Flushes `cache` into the pool's lists if the pool is alive, and releases `weak`.
    exit: unsafe fn(*const (), &Arc<ThreadCache>),
    /// Whether the pool is still alive (through `weak`).
    alive: unsafe fn(*const ()) -> bool,
}

impl Entry {
    /// # Safety
    /// `alive(weak)` must be sound to call from this thread at any later time, and
    /// `exit(weak, cache)` once, after which neither is called again.
    pub(crate) unsafe fn new(
        pool: u64,
        cache: Arc<ThreadCache>,
        weak: *const (),
        exit: unsafe fn(*const (), &Arc<ThreadCache>),
        alive: unsafe fn(*const ()) -> bool,
    ) -> Self {
        Entry {
            pool,
            cache,
            weak,
            exit,
            alive,
        }
    }

    /// Whether the entry's pool is gone (its entry can be dropped with `close`).
    pub(crate) fn is_dead(&self) -> bool {
        // SAFETY: `Entry::new`'s contract; `close` has not run (it consumes the entry).
        !unsafe { (self.alive)(self.weak) }
    }

    /// Flushes the cache into its pool (if alive) and releases the entry.
    pub(crate) fn close(self) {
        // SAFETY: `Entry::new`'s contract; `self` is consumed, so this runs once.
        unsafe { (self.exit)(self.weak, &self.cache) };
    }
}

/// Every entry of this thread; flushed when the thread exits, so no buffer is lost.
pub(crate) struct Entries(pub(crate) RefCell<Vec<Entry>>);

impl Drop for Entries {
    fn drop(&mut self) {
        for e in self.0.get_mut().drain(..) {
            e.close();
        }
    }
}

thread_local! {
    pub(crate) static ENTRIES: Entries = const { Entries(RefCell::new(Vec::new())) };
}
