//! `BufferPool`: fixed-size buffers per node, carved from regions bound to that node.
//! A `Buffer` derefs to `[u8]` and goes back to its home node's free list when dropped.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crossbeam_queue::ArrayQueue;

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
    /// Most buffers a node may ever have.
    pub max_per_node: usize,
    /// Make more buffers (in chunks of `initial_per_node`) when a node runs out, up to `max_per_node`.
    pub grow: bool,
    /// When a node is out of buffers, take one from the nearest node that has one.
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

struct NodeBuffers<B: PlacementBackend> {
    /// The free list: lock-free, bounded by `max_per_node`, so get/put never block.
    free: ArrayQueue<FreeBuffer>,
    /// Held by a thread from registering as a waiter until it waits on `returned`.
    sleep: Mutex<()>,
    returned: Condvar,
    /// Threads waiting in `get` for this node, so a returning buffer pays for a
    /// wake-up only when someone waits.
    waiters: AtomicUsize,
    regions: Mutex<Vec<NumaRegion<B>>>,
    made: AtomicU64,
    fallback_exhausted: AtomicU64,
    fallback_no_memory: AtomicU64,
}

/// A pointer to a buffer nobody owns (on a free list).
struct FreeBuffer(NonNull<u8>);

// SAFETY: a FreeBuffer points into a region owned by the pool's `Shared`, which outlives
// every free list; each buffer is on exactly one free list or owned by exactly one
// `Buffer`, so handing the pointer to another thread (through the lock-free queue) hands
// over sole access to those bytes. With this, `Shared` is Send and Sync by itself.
unsafe impl Send for FreeBuffer {}

struct Shared<B: PlacementBackend> {
    backend: B,
    config: BufferPoolConfig,
    size: usize,
    nodes: BTreeMap<NodeId, NodeBuffers<B>>,
}

/// Fixed-size buffers placed per node. Cheap to clone (a shared handle).
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
/// drop(b); // back to node 1's free list
/// assert_eq!(pool.stats(NodeId::new(1))?.free, 4);
/// # Ok::<(), numaperf::NumaError>(())
/// ```
pub struct BufferPool<B: PlacementBackend> {
    shared: Arc<Shared<B>>,
}

impl<B: PlacementBackend> Clone for BufferPool<B> {
    fn clone(&self) -> Self {
        BufferPool {
            shared: self.shared.clone(),
        }
    }
}

/// One buffer, exclusively yours until dropped; then it returns to its home node.
pub struct Buffer<B: PlacementBackend> {
    ptr: NonNull<u8>,
    len: usize,
    home: NodeId,
    shared: Arc<Shared<B>>,
}

// SAFETY: a Buffer is the only owner of its bytes (see `Shared`); moving it to another
// thread moves that ownership, like a Box<[u8]>.
unsafe impl<B: PlacementBackend + Send + Sync> Send for Buffer<B> {}
// SAFETY: `&Buffer` only gives `&[u8]`.
unsafe impl<B: PlacementBackend + Send + Sync> Sync for Buffer<B> {}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here completes its update before anything can panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<B: PlacementBackend> NodeBuffers<B> {
    /// Wakes threads waiting in `get` for this node, if any (a free list push came first).
    fn wake_waiters(&self) {
        // No fence needed: ArrayQueue's push moves `tail` with a SeqCst compare-exchange
        // and a waiter registers with a SeqCst fetch_add before `is_empty` loads `tail`
        // SeqCst. In the single order of SeqCst operations either the waiter's load comes
        // after our push (it sees the buffer) or its registration comes before our load
        // (we see it and wake it). A fence here cost 150 ns per put under 2-thread contention.
        if self.waiters.load(Ordering::SeqCst) > 0 {
            // Taking `sleep` orders this after a waiter's check-then-wait.
            drop(lock(&self.sleep));
            self.returned.notify_all();
        }
    }
}

impl<B: PlacementBackend + Clone> BufferPool<B> {
    /// A pool with buffers on every node that has memory this process may use.
    ///
    /// # Errors
    /// As [`BufferPool::on_nodes`]; [`NumaError::NoUsableNode`] when no node has memory.
    pub fn new(backend: B, config: BufferPoolConfig) -> Result<Self, NumaError> {
        let topo = backend.topology();
        let nodes = topo.memory_nodes().intersection(topo.allowed_nodes());
        Self::on_nodes(backend, &nodes, config)
    }

    /// A pool with buffers on the given nodes only.
    ///
    /// # Errors
    /// [`NumaError::InvalidConfig`] naming the field, [`NumaError::EmptyNodeMask`],
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
        if nodes.is_empty() {
            return Err(NumaError::EmptyNodeMask);
        }
        let size =
            config
                .buffer_size
                .checked_next_multiple_of(64)
                .ok_or(NumaError::SizeOverflow {
                    len: config.buffer_size,
                    unit: 64,
                })?;
        let map = nodes
            .iter()
            .map(|node| {
                let nb = NodeBuffers {
                    free: ArrayQueue::new(config.max_per_node),
                    sleep: Mutex::new(()),
                    returned: Condvar::new(),
                    waiters: AtomicUsize::new(0),
                    regions: Mutex::new(Vec::new()),
                    // The initial buffers, reserved before they are made (as in growth).
                    made: AtomicU64::new(config.initial_per_node as u64),
                    fallback_exhausted: AtomicU64::new(0),
                    fallback_no_memory: AtomicU64::new(0),
                };
                (node, nb)
            })
            .collect();
        let shared = Arc::new(Shared {
            backend,
            config,
            size,
            nodes: map,
        });
        let pool = BufferPool { shared };
        if config.initial_per_node > 0 {
            for n in nodes.iter() {
                pool.grow(n, config.initial_per_node)?;
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
        self.shared.nodes.keys().copied().collect()
    }

    fn node(&self, node: NodeId) -> Result<&NodeBuffers<B>, NumaError> {
        self.shared
            .nodes
            .get(&node)
            .ok_or(NumaError::NodeNotFound(node))
    }

    /// Makes `count` more buffers on `node` from one new region bound there.
    fn grow(&self, node: NodeId, count: usize) -> Result<(), NumaError> {
        let nb = self.node(node)?;
        let s = &self.shared;
        let len = s.size.checked_mul(count).ok_or(NumaError::SizeOverflow {
            len: s.size,
            unit: count,
        })?;
        let mut opts = RegionOptions::new();
        opts.hard = s.config.hard;
        let mut region = NumaRegion::anon_in(
            s.backend.clone(),
            len,
            MemPolicy::Bind(NodeMask::single(node)),
            opts,
            Prefault::Populate,
        )?;
        let base = region.as_mut_ptr();
        // Keep the region first: the pool owns it until the last Buffer is gone.
        lock(&nb.regions).push(region);
        for i in 0..count {
            // SAFETY: `i * size < len`, inside the region just kept.
            let ptr = unsafe { NonNull::new_unchecked(base.add(i * s.size)) };
            // `count` was reserved in `made`, which never passes max_per_node = capacity.
            let pushed = nb.free.push(FreeBuffer(ptr));
            debug_assert!(pushed.is_ok(), "free list over capacity");
        }
        nb.wake_waiters();
        Ok(())
    }

    /// Pops a free buffer of `node` (whose lists are `nb`), growing it if allowed; else
    /// why not. Growth failing for lack of memory is a reason to fall back; any other
    /// failure (permission, a bad kernel answer) is the caller's error.
    fn take(
        &self,
        nb: &NodeBuffers<B>,
        node: NodeId,
    ) -> Result<Buffer<B>, Result<FallbackReason, NumaError>> {
        loop {
            if let Some(FreeBuffer(ptr)) = nb.free.pop() {
                return Ok(self.wrap(ptr, node));
            }
            let cfg = &self.shared.config;
            if !cfg.grow {
                return Err(Ok(FallbackReason::Exhausted));
            }
            // Reserve the chunk first, so concurrent growers never pass max_per_node.
            let reserve = nb
                .made
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |made| {
                    let room = (cfg.max_per_node as u64).saturating_sub(made);
                    (room > 0).then(|| made + room.min(cfg.initial_per_node.max(1) as u64))
                });
            let Ok(before) = reserve else {
                return Err(Ok(FallbackReason::Exhausted));
            };
            let chunk = (cfg.max_per_node as u64 - before).min(cfg.initial_per_node.max(1) as u64);
            if let Err(e) = self.grow(node, chunk as usize) {
                nb.made.fetch_sub(chunk, Ordering::AcqRel);
                return Err(match e {
                    NumaError::InsufficientMemory { .. }
                    | NumaError::NoMemoryOnNode(_)
                    | NumaError::PlacementViolated { .. }
                    | NumaError::Os {
                        errno: numaperf_core::Errno::ENOMEM,
                        ..
                    } => Ok(FallbackReason::NoMemory),
                    other => Err(other),
                });
            }
        }
    }

    fn wrap(&self, ptr: NonNull<u8>, home: NodeId) -> Buffer<B> {
        Buffer {
            ptr,
            len: self.shared.size,
            home,
            shared: self.shared.clone(),
        }
    }

    /// A buffer from `node` without waiting: from the node itself, else (with fallback)
    /// the nearest node that has one; `Ok(None)` when there is none anywhere allowed.
    ///
    /// # Errors
    /// [`NumaError::NodeNotFound`] for a node the pool does not have, and the region errors
    /// of growing it.
    pub fn try_get(&self, node: NodeId) -> Result<Option<Buffer<B>>, NumaError> {
        self.try_get_from(self.node(node)?, node)
    }

    fn try_get_from(
        &self,
        nb: &NodeBuffers<B>,
        node: NodeId,
    ) -> Result<Option<Buffer<B>>, NumaError> {
        let reason = match self.take(nb, node) {
            Ok(b) => return Ok(Some(b)),
            Err(r) => r?,
        };
        if !self.shared.config.fallback {
            return Ok(None);
        }
        let mut order = [NodeId::new(0); MAX_NUMNODES];
        let k = fallback_order(self.shared.backend.topology(), node, &mut order);
        for &other in order[..k]
            .iter()
            .filter(|&&o| o != node && self.shared.nodes.contains_key(&o))
        {
            if let Some(FreeBuffer(ptr)) = self.node(other)?.free.pop() {
                let counter = match reason {
                    FallbackReason::Exhausted => &nb.fallback_exhausted,
                    FallbackReason::NoMemory => &nb.fallback_no_memory,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(self.wrap(ptr, other)));
            }
        }
        Ok(None)
    }

    /// A buffer from `node`, waiting for one to be returned if every buffer is in use.
    ///
    /// # Errors
    /// As [`BufferPool::try_get`], and [`NumaError::InsufficientMemory`] when nothing can be
    /// had.
    pub fn get(&self, node: NodeId) -> Result<Buffer<B>, NumaError> {
        let nb = self.node(node)?;
        loop {
            if let Some(b) = self.try_get_from(nb, node)? {
                return Ok(b);
            }
            // Register, then re-check: a buffer returned after the check sees the
            // registration (both SeqCst) and wakes us once we wait (it takes `sleep` first).
            // The timeout covers buffers freed on fallback nodes, which do not wake us.
            let guard = lock(&nb.sleep);
            nb.waiters.fetch_add(1, Ordering::SeqCst);
            if nb.free.is_empty() {
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
        let here = self.shared.backend.current_cpu()?.node;
        if self.shared.nodes.contains_key(&here) {
            return self.get(here);
        }
        let mut order = [NodeId::new(0); MAX_NUMNODES];
        let k = fallback_order(self.shared.backend.topology(), here, &mut order);
        let near = order[..k]
            .iter()
            .copied()
            .find(|n| self.shared.nodes.contains_key(n));
        self.get(
            near.or_else(|| self.shared.nodes.keys().next().copied())
                .ok_or(NumaError::NoUsableNode)?,
        )
    }

    /// Counters of one node.
    ///
    /// # Errors
    /// [`NumaError::NodeNotFound`] for a node the pool does not have.
    pub fn stats(&self, node: NodeId) -> Result<NodeStats, NumaError> {
        let nb = self.node(node)?;
        let free = nb.free.len() as u64;
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
            .keys()
            .filter_map(|&n| Some((n, self.stats(n).ok()?)))
            .collect()
    }

    /// Where the pool's memory on `node` is now: pages per node over all its regions.
    ///
    /// # Errors
    /// [`NumaError::NodeNotFound`], and the backend's query errors.
    pub fn placement(&self, node: NodeId) -> Result<numaperf_core::PageCounts, NumaError> {
        let nb = self.node(node)?;
        let mut total = numaperf_core::PageCounts::new();
        for r in lock(&nb.regions).iter() {
            total.merge(&r.placement()?);
        }
        Ok(total)
    }
}

impl<B: PlacementBackend> Buffer<B> {
    /// The node whose free list this buffer returns to.
    pub fn home(&self) -> NodeId {
        self.home
    }
}

impl<B: PlacementBackend> Deref for Buffer<B> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` lies in a live region of the pool (kept alive by
        // `shared`), and this Buffer is its only owner.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<B: PlacementBackend> DerefMut for Buffer<B> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<B: PlacementBackend> Drop for Buffer<B> {
    fn drop(&mut self) {
        if let Some(nb) = self.shared.nodes.get(&self.home) {
            // Cannot be full: at most max_per_node buffers exist per node, and this one
            // was not on the list.
            let pushed = nb.free.push(FreeBuffer(self.ptr));
            debug_assert!(pushed.is_ok(), "free list over capacity");
            nb.wake_waiters();
        }
    }
}

impl<B: PlacementBackend> fmt::Debug for Buffer<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("home", &self.home)
            .field("len", &self.len)
            .finish()
    }
}
