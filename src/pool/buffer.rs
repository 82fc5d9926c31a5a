//! `BufferPool`: fixed-size buffers per node, carved from regions bound to that node.
//! A `Buffer` derefs to `[u8]` and goes back to its home node's buffers when dropped.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

use super::barrier;
use super::cache::{self, Entry, ThreadCache, ENTRIES, MAX_CACHE};

use numaperf_core::policy::fallback_order;
use numaperf_core::{
    MemPolicy, NodeId, NodeMask, NumaError, PlacementBackend, Prefault, RegionOptions,
    TopologyInfo, MAX_NUMNODES,
};

use crate::NumaRegion;

/// How a pool is shaped.
#[derive(Clone, Copy, Debug)]
pub struct BufferPoolConfig {
    /// Bytes per buffer (rounded up to 64 so buffers never share a cache line).
    pub buffer_size: usize,
    /// Buffers made per node up front.
    pub initial_per_node: usize,
    /// Most buffers a node may ever have (costs nothing until they are made).
    pub max_per_node: usize,
    /// Make more buffers (in chunks of `initial_per_node`) when a node runs out, up to `max_per_node`.
    pub grow: bool,
    /// When a node is out of buffers (and cannot grow), take one from the nearest node
    /// that has one or can grow one.
    pub fallback: bool,
    /// Ask for `Enforcement::Hard` regions (verified placement).
    pub hard: bool,
}

impl Default for BufferPoolConfig {
    fn default() -> Self {
        BufferPoolConfig {
            buffer_size: 64 << 10,
            initial_per_node: 16,
            max_per_node: 64,
            grow: true,
            fallback: true,
            hard: false,
        }
    }
}

/// Why a buffer came from another node than the one asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackReason {
    /// The node had every buffer it may have in use.
    Exhausted,
    /// Growing the node failed for lack of memory there (in hard mode: its pages could
    /// not all be verified on the node).
    NoMemory,
}

/// Counters of one node's buffers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Buffers handed out now. A snapshot: while another thread grows the node, the
    /// buffers it has reserved but not yet made count here too.
    pub in_use: u64,
    /// Buffers on the free list now.
    pub free: u64,
    /// Buffers asked of this node that came from another node because it was exhausted.
    pub fallback_exhausted: u64,
    /// ... because growing it failed for lack of memory.
    pub fallback_no_memory: u64,
}

/// A pool's buffers of one node.
struct NodeBuffers<B: PlacementBackend> {
    id: NodeId,
    /// The pool's id, this node's index in it, its buffer size and cache capacity:
    /// what a returning `Buffer` needs, on one cache line with `waiters`.
    pool: u64,
    index: usize,
    size: usize,
    cache_cap: usize,
    /// The pool's shared state (this node's owner), for a returning buffer to give back
    /// the strong count it holds.
    shared: Weak<Shared<B>>,
    /// The node's free list (behind the threads' caches); grows only as buffers are made.
    free: Mutex<FreeList>,
    /// Held by a thread from registering as a waiter until it waits on `returned`.
    sleep: Mutex<()>,
    returned: Condvar,
    /// Threads waiting in `get` for this node, so a returning buffer pays for a
    /// wake-up only when someone waits.
    waiters: AtomicUsize,
    regions: Mutex<Vec<NumaRegion<B>>>,
    /// Buffers made (or reserved by a thread making them) on this node.
    made: AtomicU64,
    fallback_exhausted: AtomicU64,
    fallback_no_memory: AtomicU64,
}

/// Pointers to buffers nobody owns.
struct FreeList(Vec<NonNull<u8>>);

// SAFETY: the pointers point into regions owned by the pool's `Shared`, which outlives
// every list; each buffer is on exactly one list or cache or owned by exactly one
// `Buffer`, so moving the pointers to another thread hands over sole access to them.
unsafe impl Send for FreeList {}

static NEXT_POOL: AtomicU64 = AtomicU64::new(1);

struct Shared<B: PlacementBackend> {
    /// Unique over the process's pools (the key of the threads' cache entries).
    id: u64,
    backend: B,
    config: BufferPoolConfig,
    size: usize,
    /// Buffers a thread caches per node (0: no caches, for small pools).
    cache_cap: usize,
    nodes: Vec<NodeBuffers<B>>,
    /// Node id -> index in `nodes` (u16::MAX: not one of the pool's).
    index: Vec<u16>,
    /// Every thread's caches of this pool.
    caches: Mutex<Vec<Arc<ThreadCache>>>,
    /// Live `BufferPool` handles; at 0, returning buffers bypass the caches.
    handles: AtomicUsize,
}

/// Fixed-size buffers placed per node. Cheap to clone (a shared handle).
///
/// Each thread keeps a small cache of free buffers per node in front of the node's free
/// list, so taking and returning a buffer on one thread touches no shared cache line;
/// caches are flushed when their thread exits (and drained by a `get` that would wait,
/// and by the pool's last handle), and the counters include them.
///
/// On a simulated two-node machine:
/// ```
/// use numaperf::{BufferPool, BufferPoolConfig, NodeId};
/// use numaperf_sim::SimMachine;
/// use std::sync::Arc;
///
/// let sim = Arc::new(SimMachine::from_spec("2 nodes x 1 cpus x 64 MiB")?);
/// let config = BufferPoolConfig { buffer_size: 4096, initial_per_node: 4, ..Default::default() };
/// let pool = BufferPool::new(sim, config)?;
/// let mut b = pool.get(NodeId::new(1))?;
/// b[0] = 7; // a buffer derefs to its bytes
/// assert_eq!(b.home(), NodeId::new(1));
/// // Its memory is on node 1 (the pool's regions are bound there).
/// assert!(pool.placement(NodeId::new(1))?.nodes().iter().all(|n| n == NodeId::new(1)));
/// drop(b); // back to node 1's buffers (this thread's cache of them)
/// assert_eq!(pool.stats(NodeId::new(1))?.free, 4);
/// # Ok::<(), numaperf::NumaError>(())
/// ```
pub struct BufferPool<B: PlacementBackend> {
    shared: Arc<Shared<B>>,
}

impl<B: PlacementBackend> Clone for BufferPool<B> {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        BufferPool {
            shared: self.shared.clone(),
        }
    }
}

impl<B: PlacementBackend> Drop for BufferPool<B> {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last handle: give back what the threads' caches hold (their strong
            // counts), so the pool goes once its last outstanding buffer does.
            let caches: Vec<_> = lock(&self.shared.caches).clone();
            for c in &caches {
                c.nodes.iter().for_each(|n| n.close());
            }
            for ni in 0..self.shared.nodes.len() {
                drain_caches(&self.shared, &caches, ni);
            }
        }
    }
}

/// One buffer, exclusively yours until dropped; then it returns to its home node.
///
/// Two words: the bytes, and its home node's part of the pool. It keeps the pool alive
/// (it holds one strong count of the pool's shared state, which travels with it into a
/// thread's cache and back: no reference count changes on the cached path).
pub struct Buffer<B: PlacementBackend> {
    ptr: NonNull<u8>,
    /// Its home node's buffers, inside the pool's shared state that this buffer's
    /// strong count keeps alive.
    node: NonNull<NodeBuffers<B>>,
}

// SAFETY: a Buffer is the only owner of its bytes (see `FreeList`); moving it to another
// thread moves that ownership, like a Box<[u8]>. `node` points into the pool's shared
// state, which is `Sync` for `B: Send + Sync` and only read through `&`.
unsafe impl<B: PlacementBackend + Send + Sync> Send for Buffer<B> {}
// SAFETY: `&Buffer` only gives `&[u8]`.
unsafe impl<B: PlacementBackend + Send + Sync> Sync for Buffer<B> {}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here completes its update before anything can panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why a node could not hand out a buffer.
enum Miss {
    Exhausted,
    /// Growing it failed for lack of memory (a reason to fall back).
    NoMemory(NumaError),
    /// Growing it failed otherwise (permission, a bad kernel answer): the caller's error.
    Fail(NumaError),
}

impl<B: PlacementBackend> NodeBuffers<B> {
    /// Puts buffers on the free list and wakes waiters, if any.
    fn give_back(&self, bufs: impl IntoIterator<Item = NonNull<u8>>) {
        lock(&self.free).0.extend(bufs);
        // A waiter registers before it checks the list under the same lock, so either
        // it sees these buffers or we see it here.
        if self.waiters.load(Ordering::SeqCst) > 0 {
            // Taking `sleep` orders this after a waiter's check-then-wait.
            drop(lock(&self.sleep));
            self.returned.notify_all();
        }
    }
}

/// Releases `n` strong counts of `shared` that cached buffers held.
fn release<B: PlacementBackend>(shared: &Arc<Shared<B>>, n: usize) {
    for _ in 0..n {
        // SAFETY: each count was taken (or moved from a Buffer) for one cached buffer
        // that has just left the caches; `shared` itself holds one more, so this never
        // frees the allocation under our feet.
        unsafe { Arc::decrement_strong_count(Arc::as_ptr(shared)) };
    }
}

/// Moves the buffers of node `ni` that `caches` hold to the node's free list; how many.
fn drain_caches<B: PlacementBackend>(
    shared: &Arc<Shared<B>>,
    caches: &[Arc<ThreadCache>],
    ni: usize,
) -> usize {
    let mut got = Vec::new();
    // An owner's critical section is a few instructions: wait it out briefly.
    for spin in 0..16 {
        if !cache::drain(caches, ni, &mut got) {
            break;
        }
        if spin > 2 {
            std::thread::yield_now();
        }
    }
    let n = got.len();
    if n > 0 {
        shared.nodes[ni].give_back(got);
        release(shared, n);
    }
    n
}

/// Thread exit: flushes this thread's caches of the pool behind `weak` (if it lives).
///
/// # Safety
/// `weak` comes from `Weak::<Shared<B>>::into_raw` and is not used again.
unsafe fn exit_flush<B: PlacementBackend>(weak: *const (), cache: &Arc<ThreadCache>) {
    // SAFETY: the caller's contract.
    let weak = unsafe { Weak::from_raw(weak as *const Shared<B>) };
    if let Some(shared) = weak.upgrade() {
        let mine = std::slice::from_ref(cache);
        for ni in 0..shared.nodes.len() {
            drain_caches(&shared, mine, ni);
        }
        lock(&shared.caches).retain(|c| !Arc::ptr_eq(c, cache));
    }
}

/// Whether the pool behind `weak` lives.
///
/// # Safety
/// `weak` comes from `Weak::<Shared<B>>::into_raw` and is still owned by its entry.
unsafe fn is_alive<B: PlacementBackend>(weak: *const ()) -> bool {
    // SAFETY: borrowed, not consumed: ManuallyDrop keeps the entry's weak count.
    let weak = ManuallyDrop::new(unsafe { Weak::from_raw(weak as *const Shared<B>) });
    weak.strong_count() > 0
}

impl<B: PlacementBackend> Shared<B> {
    /// Runs `f` on this thread's caches of the pool, making them on first use.
    /// `None` where thread-locals are gone (a thread's exit).
    fn with_cache<R>(self: &Arc<Self>, f: impl FnOnce(&ThreadCache) -> R) -> Option<R>
    where
        B: 'static,
    {
        ENTRIES
            .try_with(|entries| {
                {
                    let list = entries.0.try_borrow().ok()?;
                    if let Some(e) = list.iter().find(|e| e.pool == self.id) {
                        cache::remember(self.id, &e.cache);
                        return Some(f(&e.cache));
                    }
                }
                let cache = ThreadCache::new(self.nodes.len());
                lock(&self.caches).push(cache.clone());
                let weak = Weak::into_raw(Arc::downgrade(self)) as *const ();
                // SAFETY: `weak` is a Weak<Shared<B>> with `B: 'static`, so calling the
                // two functions for it stays sound at any later time on this thread;
                // the entry calls `exit_flush` once (when closed) and never after.
                let entry = unsafe {
                    Entry::new(self.id, cache.clone(), weak, exit_flush::<B>, is_alive::<B>)
                };
                let mut list = entries.0.try_borrow_mut().ok()?;
                cache::forget_last(); // entries move: the remembered one may go
                                      // Entries of pools that are gone: nothing to flush, release them.
                let dead: Vec<Entry> = {
                    let (dead, live) = std::mem::take(&mut *list)
                        .into_iter()
                        .partition(|e: &Entry| e.is_dead());
                    *list = live;
                    dead
                };
                list.push(entry);
                drop(list);
                dead.into_iter().for_each(Entry::close);
                cache::remember(self.id, &cache);
                Some(f(&cache))
            })
            .ok()
            .flatten()
    }

    fn node_index(&self, node: NodeId) -> Result<usize, NumaError> {
        match self.index.get(node.get() as usize) {
            Some(&i) if i != u16::MAX => Ok(i as usize),
            _ if !node.is_valid() => Err(NumaError::InvalidNode(node.get())),
            _ => Err(NumaError::NodeNotFound(node)),
        }
    }
}

impl<B: PlacementBackend + Clone + 'static> BufferPool<B> {
    /// A pool with buffers on every node that has memory this process may use.
    ///
    /// # Errors
    /// As [`BufferPool::on_nodes`]; [`NumaError::NoUsableNode`] when no node has memory.
    pub fn new(backend: B, config: BufferPoolConfig) -> Result<Self, NumaError> {
        let topo = backend.topology();
        let nodes = topo.memory_nodes().intersection(topo.allowed_nodes());
        if nodes.is_empty() {
            return Err(NumaError::NoUsableNode);
        }
        Self::on_nodes(backend, &nodes, config)
    }

    /// A pool with buffers on the given nodes only. `max_per_node` costs nothing until
    /// buffers are made: the free lists grow with them.
    ///
    /// # Errors
    /// [`NumaError::InvalidConfig`] naming the field, [`NumaError::EmptyNodeMask`],
    /// [`NumaError::InvalidNode`] for an id beyond the node limit,
    /// [`NumaError::NodeNotFound`] for a node that is not online,
    /// [`NumaError::NoMemoryOnNode`], [`NumaError::NodeNotAllowed`],
    /// [`NumaError::SizeOverflow`], and the region errors of the initial buffers
    /// ([`NumaError::InsufficientMemory`], ...).
    pub fn on_nodes(
        backend: B,
        nodes: &NodeMask,
        config: BufferPoolConfig,
    ) -> Result<Self, NumaError> {
        let bad = |field, reason| Err(NumaError::InvalidConfig { field, reason });
        if config.buffer_size == 0 {
            return bad("buffer_size", "must be > 0");
        }
        if config.max_per_node == 0 {
            return bad("max_per_node", "must be > 0");
        }
        if config.initial_per_node > config.max_per_node {
            return bad("initial_per_node", "must be <= max_per_node");
        }
        if config.initial_per_node == 0 && !config.grow {
            return bad(
                "initial_per_node",
                "must be > 0 for a pool that may not grow",
            );
        }
        if let Some(id) = nodes.out_of_range() {
            return Err(NumaError::InvalidNode(id));
        }
        if nodes.is_empty() {
            return Err(NumaError::EmptyNodeMask);
        }
        let topo = backend.topology();
        for n in nodes.iter() {
            if !topo.nodes().contains(n) {
                return Err(NumaError::NodeNotFound(n));
            }
            if !topo.memory_nodes().contains(n) {
                return Err(NumaError::NoMemoryOnNode(n));
            }
            if !topo.allowed_nodes().contains(n) {
                return Err(NumaError::NodeNotAllowed(n));
            }
        }
        let size =
            config
                .buffer_size
                .checked_next_multiple_of(64)
                .ok_or(NumaError::SizeOverflow {
                    len: config.buffer_size,
                    unit: 64,
                })?;
        let top = nodes.last().map_or(0, |n| n.get() as usize + 1);
        let mut index = vec![u16::MAX; top];
        for (i, n) in nodes.iter().enumerate() {
            index[n.get() as usize] = i as u16;
        }
        // A cache per thread holds at most an eighth of a node's buffers (and 32): small
        // pools go straight to the lists, so no thread sits on buffers another needs.
        let cap = (config.max_per_node / 8).min(MAX_CACHE);
        let cache_cap = if cap >= 2 { cap } else { 0 };
        let pool_id = NEXT_POOL.fetch_add(1, Ordering::Relaxed);
        let list = |me: &Weak<Shared<B>>| {
            nodes
                .iter()
                .enumerate()
                .map(|(i, id)| NodeBuffers {
                    id,
                    pool: pool_id,
                    index: i,
                    size,
                    cache_cap,
                    shared: me.clone(),
                    free: Mutex::new(FreeList(Vec::new())),
                    sleep: Mutex::new(()),
                    returned: Condvar::new(),
                    waiters: AtomicUsize::new(0),
                    regions: Mutex::new(Vec::new()),
                    // The initial buffers, reserved before they are made (as in growth).
                    made: AtomicU64::new(config.initial_per_node as u64),
                    fallback_exhausted: AtomicU64::new(0),
                    fallback_no_memory: AtomicU64::new(0),
                })
                .collect()
        };
        let shared = Arc::new_cyclic(|me| Shared {
            id: pool_id,
            backend,
            config,
            size,
            cache_cap,
            nodes: list(me),
            index,
            caches: Mutex::new(Vec::new()),
            handles: AtomicUsize::new(1),
        });
        barrier::init(); // before any cache exists
        let pool = BufferPool { shared };
        if config.initial_per_node > 0 {
            for ni in 0..pool.shared.nodes.len() {
                let made = pool.grow(ni, config.initial_per_node)?;
                pool.shared.nodes[ni].give_back(made);
            }
        }
        Ok(pool)
    }

    /// The pool's backend.
    pub fn backend(&self) -> &B {
        &self.shared.backend
    }

    /// Bytes per buffer.
    pub fn buffer_size(&self) -> usize {
        self.shared.size
    }

    /// The nodes the pool has buffers on.
    pub fn nodes(&self) -> NodeMask {
        self.shared.nodes.iter().map(|n| n.id).collect()
    }

    /// Makes `count` more buffers on node `ni` from one new region bound there.
    fn grow(&self, ni: usize, count: usize) -> Result<Vec<NonNull<u8>>, NumaError> {
        let s = &self.shared;
        let nb = &s.nodes[ni];
        let len = s.size.checked_mul(count).ok_or(NumaError::SizeOverflow {
            len: s.size,
            unit: count,
        })?;
        let mut opts = RegionOptions::new();
        opts.hard = s.config.hard;
        let mut region = NumaRegion::anon_in(
            s.backend.clone(),
            len,
            MemPolicy::Bind(NodeMask::single(nb.id)),
            opts,
            Prefault::Populate,
        )?;
        let base = region.as_mut_ptr();
        // Keep the region first: the pool owns it until the last Buffer is gone.
        lock(&nb.regions).push(region);
        Ok((0..count)
            // SAFETY: `i * size < len`, inside the region just kept.
            .map(|i| unsafe { NonNull::new_unchecked(base.add(i * s.size)) })
            .collect())
    }

    /// Grows node `ni` by a chunk within `max_per_node`: one buffer for the caller, the
    /// rest on the free list.
    fn grow_one(&self, ni: usize) -> Result<Option<Buffer<B>>, Miss> {
        let s = &self.shared;
        let cfg = &s.config;
        if !cfg.grow {
            return Err(Miss::Exhausted);
        }
        let nb = &s.nodes[ni];
        // At least a page's worth of small buffers per region.
        let step = cfg.initial_per_node.max(4096 / s.size).max(1) as u64;
        // Reserve the chunk first, so concurrent growers never pass max_per_node.
        let reserve = nb
            .made
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |made| {
                let room = (cfg.max_per_node as u64).saturating_sub(made);
                (room > 0).then(|| made + room.min(step))
            });
        let Ok(before) = reserve else {
            return Err(Miss::Exhausted);
        };
        let chunk = (cfg.max_per_node as u64 - before).min(step);
        match self.grow(ni, chunk as usize) {
            Ok(mut made) => {
                let first = made.pop();
                nb.give_back(made);
                Ok(first.map(|p| self.wrap(p, ni)))
            }
            Err(e) => {
                nb.made.fetch_sub(chunk, Ordering::AcqRel);
                match e {
                    NumaError::InsufficientMemory { .. }
                    | NumaError::NoMemoryOnNode(_)
                    | NumaError::PlacementViolated { .. }
                    | NumaError::SizeOverflow { .. }
                    | NumaError::Os {
                        errno: numaperf_core::Errno::ENOMEM,
                        ..
                    } => Err(Miss::NoMemory(e)),
                    other => Err(Miss::Fail(other)),
                }
            }
        }
    }

    /// A buffer of node `ni`: this thread's cache (refilled in bulk from the free
    /// list), the free list, growth, then other threads' caches; else why not.
    fn take(&self, ni: usize) -> Result<Buffer<B>, Miss> {
        if let Some(b) = self.take_listed(ni) {
            return Ok(b);
        }
        let miss = match self.grow_one(ni) {
            Ok(Some(b)) => return Ok(b),
            Ok(None) => Miss::Exhausted,
            Err(Miss::Fail(e)) => return Err(Miss::Fail(e)),
            Err(m) => m,
        };
        let s = &self.shared;
        if s.cache_cap > 0 {
            let caches: Vec<_> = lock(&s.caches).clone();
            if drain_caches(s, &caches, ni) > 0 {
                if let Some(b) = self.take_listed(ni) {
                    return Ok(b);
                }
            }
        }
        Err(miss)
    }

    /// From this thread's cache or the free list, without growing.
    fn take_listed(&self, ni: usize) -> Option<Buffer<B>> {
        let s = &self.shared;
        let nb = &s.nodes[ni];
        if s.cache_cap == 0 {
            return lock(&nb.free).0.pop().map(|p| self.wrap(p, ni));
        }
        let batch = s.cache_cap / 2;
        let got = s.with_cache(|c| {
            let cache = &c.nodes[ni];
            if let Some(Some(p)) = cache.owner(|v| v.pop()) {
                return Some(Ok(p));
            }
            // Refill in bulk: one for the caller, the rest into the cache.
            let mut free = lock(&nb.free);
            let p = free.0.pop()?;
            let moved = cache.owner(|v| {
                let k = batch.min(free.0.len()).min(v.room());
                let from = free.0.len() - k;
                for q in free.0.drain(from..) {
                    v.push(q); // fits: `k <= room`
                }
                k
            });
            drop(free);
            Some(Err((p, moved.unwrap_or(0))))
        });
        let p = match got {
            Some(Some(Ok(p))) => {
                // The cache held one strong count for this buffer: it moves to the Buffer.
                return Some(Buffer {
                    ptr: p,
                    node: NonNull::from(&s.nodes[ni]),
                });
            }
            Some(Some(Err((p, cached)))) => {
                for _ in 0..cached {
                    // SAFETY: `s` is a live Arc; one count per buffer now cached.
                    unsafe { Arc::increment_strong_count(Arc::as_ptr(s)) };
                }
                p
            }
            Some(None) => return None,
            // No thread-locals here: the list alone.
            None => lock(&nb.free).0.pop()?,
        };
        Some(self.wrap(p, ni))
    }

    fn wrap(&self, ptr: NonNull<u8>, ni: usize) -> Buffer<B> {
        // The buffer's own strong count, given back when it leaves the caches (`release`,
        // `Buffer::drop_slow`).
        let _ = Arc::into_raw(self.shared.clone());
        Buffer {
            ptr,
            node: NonNull::from(&self.shared.nodes[ni]),
        }
    }

    /// A buffer from `node` without waiting: from the node itself (growing it within
    /// `max_per_node` if allowed), else (with fallback) from the nearest node that has
    /// one or can grow one, as the kernel falls back to the nearest node with free memory;
    /// `Ok(None)` when there is none anywhere allowed.
    ///
    /// # Errors
    /// [`NumaError::NodeNotFound`] for a node the pool does not have, and the region errors
    /// of growing it other than lack of memory.
    pub fn try_get(&self, node: NodeId) -> Result<Option<Buffer<B>>, NumaError> {
        let ni = self.shared.node_index(node)?;
        match self.try_get_at(ni) {
            Ok(b) => Ok(Some(b)),
            Err(Miss::Fail(e)) => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// The hot path: a buffer from this thread's cache of the pool used last.
    #[inline(always)]
    fn cached(&self, ni: usize) -> Option<Buffer<B>> {
        let s = &self.shared;
        let c = cache::last(s.id)?;
        // SAFETY: `last` gives a cache held by one of this thread's entries, which only
        // this thread removes (forgetting `last` first), and not during this call.
        let p = unsafe { &*c }.nodes.get(ni)?.owner(|v| v.pop())??;
        // The cache held one strong count for this buffer: it moves to the Buffer.
        Some(Buffer {
            ptr: p,
            node: NonNull::from(&s.nodes[ni]),
        })
    }

    /// As `try_get`, with the reason (and the growth error) when there is none.
    #[inline(never)]
    fn try_get_at(&self, ni: usize) -> Result<Buffer<B>, Miss> {
        if let Some(b) = self.cached(ni) {
            return Ok(b);
        }
        let s = &self.shared;
        let miss = match self.take(ni) {
            Ok(b) => return Ok(b),
            Err(Miss::Fail(e)) => return Err(Miss::Fail(e)),
            Err(m) => m,
        };
        if !s.config.fallback || s.nodes.len() == 1 {
            return Err(miss);
        }
        let nb = &s.nodes[ni];
        let mut order = [NodeId::new(0); MAX_NUMNODES];
        let k = fallback_order(s.backend.topology(), nb.id, &mut order);
        let others = order[..k]
            .iter()
            .filter(|&&o| o != nb.id)
            .filter_map(|&o| s.node_index(o).ok());
        for other in others {
            match self.take(other) {
                Ok(b) => {
                    let counter = match miss {
                        Miss::NoMemory(_) => &nb.fallback_no_memory,
                        _ => &nb.fallback_exhausted,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    return Ok(b);
                }
                Err(Miss::Fail(e)) => return Err(Miss::Fail(e)),
                Err(_) => {}
            }
        }
        Err(miss)
    }

    /// A buffer from `node` (or, with fallback, a nearby node), waiting for one to be
    /// returned if every buffer that may exist is in use.
    ///
    /// # Errors
    /// As [`BufferPool::try_get`], and the growth error ([`NumaError::InsufficientMemory`],
    /// ...) when there is nothing to wait for: no buffer exists that could come back.
    #[inline]
    pub fn get(&self, node: NodeId) -> Result<Buffer<B>, NumaError> {
        let ni = self.shared.node_index(node)?;
        match self.cached(ni) {
            Some(b) => Ok(b),
            None => self.get_slow(ni),
        }
    }

    /// `get` past this thread's cache (kept out of line: its frame is large).
    #[inline(never)]
    fn get_slow(&self, ni: usize) -> Result<Buffer<B>, NumaError> {
        let s = &self.shared;
        let nb = &s.nodes[ni];
        loop {
            let miss = match self.try_get_at(ni) {
                Ok(b) => return Ok(b),
                Err(Miss::Fail(e)) => return Err(e),
                Err(m) => m,
            };
            if let Miss::NoMemory(e) = miss {
                let could_return = |n: &NodeBuffers<B>| n.made.load(Ordering::Acquire) > 0;
                let nothing = if s.config.fallback {
                    !s.nodes.iter().any(could_return)
                } else {
                    !could_return(nb)
                };
                if nothing {
                    return Err(e);
                }
            }
            // Register, then re-check under `sleep`: a buffer returned after the check
            // sees the registration and wakes us once we wait (it takes `sleep` first).
            // The timeout covers buffers freed on fallback nodes, which do not wake us.
            // Registered first, the threads' caches give back what they hold (an owner
            // inside its cache right now sees the registration and gives back too).
            nb.waiters.fetch_add(1, Ordering::SeqCst);
            let caches: Vec<_> = lock(&s.caches).clone();
            drain_caches(s, &caches, ni);
            let guard = lock(&nb.sleep);
            if lock(&nb.free).0.is_empty() {
                drop(
                    nb.returned
                        .wait_timeout(guard, std::time::Duration::from_millis(50)),
                );
            }
            nb.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A buffer from the calling thread's node (or the nearest pool node to it).
    ///
    /// # Errors
    /// As [`BufferPool::get`], and the backend's `getcpu` error.
    pub fn get_local(&self) -> Result<Buffer<B>, NumaError> {
        let s = &self.shared;
        let here = s.backend.current_cpu()?.node;
        if s.node_index(here).is_ok() {
            return self.get(here);
        }
        let mut order = [NodeId::new(0); MAX_NUMNODES];
        let k = fallback_order(s.backend.topology(), here, &mut order);
        let near = order[..k]
            .iter()
            .copied()
            .find(|&n| s.node_index(n).is_ok());
        self.get(
            near.or_else(|| s.nodes.first().map(|n| n.id))
                .ok_or(NumaError::NoUsableNode)?,
        )
    }

    /// Counters of one node (exact: the threads' caches are counted as free).
    ///
    /// # Errors
    /// [`NumaError::NodeNotFound`] for a node the pool does not have.
    pub fn stats(&self, node: NodeId) -> Result<NodeStats, NumaError> {
        let s = &self.shared;
        let ni = s.node_index(node)?;
        let nb = &s.nodes[ni];
        let cached: usize = lock(&s.caches).iter().map(|c| c.nodes[ni].len()).sum();
        let free = (lock(&nb.free).0.len() + cached) as u64;
        Ok(NodeStats {
            in_use: nb.made.load(Ordering::Relaxed).saturating_sub(free),
            free,
            fallback_exhausted: nb.fallback_exhausted.load(Ordering::Relaxed),
            fallback_no_memory: nb.fallback_no_memory.load(Ordering::Relaxed),
        })
    }

    /// Every node's counters, by id.
    pub fn all_stats(&self) -> Vec<(NodeId, NodeStats)> {
        self.shared
            .nodes
            .iter()
            .filter_map(|n| Some((n.id, self.stats(n.id).ok()?)))
            .collect()
    }

    /// Where the pool's memory on `node` is now: pages per node over all its regions.
    ///
    /// # Errors
    /// [`NumaError::NodeNotFound`], and the backend's query errors.
    pub fn placement(&self, node: NodeId) -> Result<numaperf_core::PageCounts, NumaError> {
        let ni = self.shared.node_index(node)?;
        let mut total = numaperf_core::PageCounts::new();
        for r in lock(&self.shared.nodes[ni].regions).iter() {
            total.merge(&r.placement()?);
        }
        Ok(total)
    }
}

impl<B: PlacementBackend> Buffer<B> {
    /// Its home node's part of the pool.
    #[inline]
    fn nb(&self) -> &NodeBuffers<B> {
        // SAFETY: `node` points into the pool's shared state, which this buffer's strong
        // count keeps alive (and unmoved: it is in an `Arc`) for as long as it exists.
        unsafe { self.node.as_ref() }
    }

    /// The node whose buffers this one returns to.
    pub fn home(&self) -> NodeId {
        self.nb().id
    }
}

impl<B: PlacementBackend> Deref for Buffer<B> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + size` lies in a live region of the pool (kept alive by
        // this buffer's strong count), and this Buffer is its only owner.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.nb().size) }
    }
}

impl<B: PlacementBackend> DerefMut for Buffer<B> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.nb().size) }
    }
}

impl<B: PlacementBackend> Drop for Buffer<B> {
    #[inline]
    fn drop(&mut self) {
        // The hot path: into this thread's cache of the pool used last, if it has room
        // and nobody waits for buffers of the node.
        let nb = self.nb();
        let ptr = self.ptr;
        // (A pool without caches never becomes `last`; a closed cache refuses.)
        if let Some(c) = cache::last(nb.pool) {
            // SAFETY: as in `BufferPool::cached`.
            let cached = unsafe { &*c }.nodes.get(nb.index).and_then(|n| {
                n.owner(|v| {
                    v.len() < nb.cache_cap && nb.waiters.load(Ordering::SeqCst) == 0 && v.push(ptr)
                })
            });
            if cached == Some(true) {
                return; // the buffer keeps its strong count, now in the cache
            }
        }
        self.drop_slow();
    }
}

impl<B: PlacementBackend> Buffer<B> {
    #[cold]
    fn drop_slow(&mut self) {
        let (ptr, ni) = (self.ptr, self.nb().index);
        // SAFETY: this buffer's own strong count (see `wrap`), taken back once, here (the
        // caller returns right after and nothing uses `self.node` again).
        let shared = unsafe { Arc::from_raw(self.nb().shared.as_ptr()) };
        let nb = &shared.nodes[ni];
        let cap = shared.cache_cap;
        if cap > 0 && shared.handles.load(Ordering::Relaxed) > 0 {
            let outcome = cache_put(&shared, ptr, ni, cap);
            if let Some(spilled) = outcome {
                // The cache held one strong count per buffer and now holds `spilled`
                // fewer buffers (this one included): give back as many counts, ours last.
                if spilled == 0 {
                    std::mem::forget(shared); // this buffer's count stays with it
                } else {
                    release(&shared, spilled - 1);
                    drop(shared);
                }
                return;
            }
        }
        nb.give_back([ptr]);
        drop(shared);
    }
}

/// Puts a returning buffer in this thread's cache: how many cached buffers went to the
/// free list to make room (or because a thread waits for them); `None` when the cache
/// could not take it (a thief inside, no thread-locals).
fn cache_put<B: PlacementBackend>(
    shared: &Arc<Shared<B>>,
    ptr: NonNull<u8>,
    ni: usize,
    cap: usize,
) -> Option<usize> {
    let nb = &shared.nodes[ni];
    let with = |c: &ThreadCache| {
        c.nodes[ni].owner(|v| {
            if !v.push(ptr) {
                return None; // full (cannot happen: it never holds more than `cap`)
            }
            if nb.waiters.load(Ordering::SeqCst) > 0 {
                // Someone waits: everything goes to the free list (and wakes it).
                let all = v.take_oldest(v.len());
                let n = all.len();
                nb.give_back(all);
                return Some(n);
            }
            if v.len() > cap {
                let spill = v.take_oldest(cap / 2);
                let n = spill.len();
                nb.give_back(spill);
                return Some(n);
            }
            Some(0)
        })
    };
    if let Some(c) = cache::last(shared.id) {
        // SAFETY: as in `BufferPool::cached`.
        return with(unsafe { &*c }).flatten();
    }
    with_cache_dyn(shared, &with).flatten().flatten()
}

/// `Shared::with_cache` where the `'static` bound on the backend cannot be named (in
/// `Drop`): a pool only exists with a `'static` backend, see `BufferPool::on_nodes`.
fn with_cache_dyn<B: PlacementBackend, R>(
    shared: &Arc<Shared<B>>,
    f: &dyn Fn(&ThreadCache) -> R,
) -> Option<R> {
    ENTRIES
        .try_with(|entries| {
            let list = entries.0.try_borrow().ok()?;
            let e = list.iter().find(|e| e.pool == shared.id)?;
            cache::remember(shared.id, &e.cache);
            Some(f(&e.cache))
        })
        .ok()
        .flatten()
}

impl<B: PlacementBackend> fmt::Debug for Buffer<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("home", &self.home())
            .field("len", &self.nb().size)
            .finish()
    }
}
