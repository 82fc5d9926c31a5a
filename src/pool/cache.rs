//! Per-thread caches of free buffers, one per (thread, pool, node), in front of the node
//! free lists (DPDK's per-lcore mempool cache: an array of pointers and a count). The
//! owner takes and returns buffers there with plain loads and stores (no atomic
//! read-modify-write, no shared cache line); another thread can drain a cache whose
//! owner is not inside it (a `get` about to wait, the pool's last handle, thread exit).

use std::cell::{Cell, RefCell, UnsafeCell};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use super::barrier;

/// Takes every cached buffer of node `ni` out of `caches` (from any thread) into `into`,
/// skipping caches whose owner is inside right now; whether any was skipped.
pub(crate) fn drain(caches: &[Arc<ThreadCache>], ni: usize, into: &mut Vec<NonNull<u8>>) -> bool {
    // Announce ourselves on every cache, then one heavy fence for all of them.
    let marked: Vec<bool> = caches
        .iter()
        .map(|c| c.nodes[ni].thief.fetch_or(THIEF, Ordering::AcqRel) & THIEF == 0)
        .collect();
    let fenced = barrier::heavy();
    let mut skipped = !fenced;
    for (c, &mine) in caches.iter().zip(&marked) {
        let nc = &c.nodes[ni];
        if !mine {
            skipped = true; // another thief has it
            continue;
        }
        if fenced && !nc.busy.load(Ordering::Acquire) {
            // SAFETY: the handshake (see `NodeCache::owner`) excludes the owner and
            // other thieves until we clear `thief`.
            let items = unsafe { &*nc.items.get() };
            let len = nc.len.load(Ordering::Relaxed);
            into.extend_from_slice(&items[..len]);
            nc.len.store(0, Ordering::Relaxed);
        } else {
            skipped = true;
        }
        nc.thief.fetch_and(!THIEF, Ordering::Release);
    }
    skipped
}

const THIEF: u8 = 1;
const CLOSED: u8 = 2;

/// Most buffers one thread caches per node of a pool.
pub(crate) const MAX_CACHE: usize = 32;

/// Slots of a node cache: one more than it keeps, as a put goes in before the cache
/// spills down to its capacity.
const SLOTS: usize = MAX_CACHE + 1;

/// One node's cached buffers of one thread.
pub(crate) struct NodeCache {
    /// The owner is inside.
    busy: AtomicBool,
    /// `THIEF`: another thread is draining it; `CLOSED`: its pool's last handle is gone,
    /// so returning buffers bypass it. One word, so the owner checks both with one load.
    thief: AtomicU8,
    /// How many of `items` (from the start) are cached buffers. Written only inside the
    /// handshake; read outside it by the pool's counters (a snapshot).
    len: AtomicUsize,
    items: UnsafeCell<[NonNull<u8>; SLOTS]>,
}

/// The owner's view of its node cache while inside: a stack of buffer pointers.
pub(crate) struct Slots<'a> {
    len: usize,
    items: &'a mut [NonNull<u8>; SLOTS],
}

impl Slots<'_> {
    /// The buffer cached last.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<NonNull<u8>> {
        let n = self.len.checked_sub(1)?;
        let p = *self.items.get(n)?;
        self.len = n;
        Some(p)
    }

    /// Caches `p`; `false` (and nothing cached) when every slot is taken.
    #[inline]
    pub(crate) fn push(&mut self, p: NonNull<u8>) -> bool {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = p;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// Buffers cached.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Free slots.
    pub(crate) fn room(&self) -> usize {
        SLOTS - self.len
    }

    /// Takes the `n` buffers cached first (at most all of them).
    pub(crate) fn take_oldest(&mut self, n: usize) -> Vec<NonNull<u8>> {
        let n = n.min(self.len);
        let out = self.items[..n].to_vec();
        self.items.copy_within(n..self.len, 0);
        self.len -= n;
        out
    }
}

// SAFETY: `items` (and `len`'s writes) are only touched by a thread that won the busy/thief handshake (see
// `owner` and `drain`), which makes those accesses mutually exclusive, and ordered by
// the Release stores that end them and the Acquire loads that begin the next. The pointers are buffers nobody else owns: one
// buffer is in exactly one cache, free list or `Buffer` at a time.
unsafe impl Send for NodeCache {}
// SAFETY: as above.
unsafe impl Sync for NodeCache {}

impl NodeCache {
    fn new() -> Self {
        NodeCache {
            busy: AtomicBool::new(false),
            thief: AtomicU8::new(0),
            len: AtomicUsize::new(0),
            items: UnsafeCell::new([NonNull::dangling(); SLOTS]),
        }
    }

    /// Runs `f` on the buffers, on the owning thread; `None` while a thief is inside.
    #[inline]
    pub(crate) fn owner<R>(&self, f: impl FnOnce(&mut Slots<'_>) -> R) -> Option<R> {
        // Dekker: we announce ourselves, then look for a thief; a thief announces
        // itself, then looks for us. The fences (ours light, the thief's heavy: see
        // `barrier`) order the two like SeqCst, so at least one of us sees the other and
        // we are never both inside.
        self.busy.store(true, Ordering::Relaxed);
        barrier::light();
        if self.thief.load(Ordering::Acquire) != 0 {
            self.busy.store(false, Ordering::Release);
            return None;
        }
        // SAFETY: the handshake above excludes every other access to `items` (and
        // every other write of `len`).
        let items = unsafe { &mut *self.items.get() };
        let mut slots = Slots {
            len: self.len.load(Ordering::Relaxed),
            items,
        };
        let r = f(&mut slots);
        self.len.store(slots.len, Ordering::Relaxed);
        self.busy.store(false, Ordering::Release);
        Some(r)
    }

    /// Makes the owner bypass this cache from now on.
    pub(crate) fn close(&self) {
        self.thief.fetch_or(CLOSED, Ordering::AcqRel);
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
    pub(crate) fn new(nodes: usize) -> Arc<Self> {
        Arc::new(ThreadCache {
            nodes: (0..nodes)
                .map(|_| CachePadded::new(NodeCache::new()))
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
        forget_last();
        for e in self.0.get_mut().drain(..) {
            e.close();
        }
    }
}

thread_local! {
    pub(crate) static ENTRIES: Entries = const { Entries(RefCell::new(Vec::new())) };
    /// The entry used last: (pool id, its cache), or (0, null). No destructor, so it
    /// stays readable while other thread-locals are destroyed.
    static LAST: Cell<(u64, *const ThreadCache)> = const { Cell::new((0, std::ptr::null())) };
}

/// This thread's cache of pool `pool` if it is the one used last, for the hot paths.
/// The pointer is valid until this thread next changes its entries (see `remember`).
#[inline]
pub(crate) fn last(pool: u64) -> Option<*const ThreadCache> {
    let (id, p) = LAST.try_with(Cell::get).ok()?;
    (id == pool && !p.is_null()).then_some(p)
}

/// Remembers `cache` (held by one of this thread's entries) as the one used last.
pub(crate) fn remember(pool: u64, cache: &Arc<ThreadCache>) {
    let _ = LAST.try_with(|l| l.set((pool, Arc::as_ptr(cache))));
}

/// Forgets the entry used last (before entries are removed).
pub(crate) fn forget_last() {
    let _ = LAST.try_with(|l| l.set((0, std::ptr::null())));
}
