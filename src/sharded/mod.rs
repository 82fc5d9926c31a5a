//! Per-node data: `NumaSharded<T>` keeps one `T` per memory node in memory bound to that
//! node, and finds the calling thread's without a system call; `ShardedCounter` on top.

mod counter;
mod lease;
mod local;
mod store;

use std::collections::BTreeMap;

use numaperf_core::{Enforcement, NodeId, NumaError, PlacementBackend};

use crate::{DefaultBackend, Topology};
use local::LocalCache;
use store::NodeStore;

pub use counter::ShardedCounter;
pub use store::ShardMemory;

/// One `T` per memory node, each in memory bound to its node.
///
/// Each shard lives in a region of its own, made with `MemPolicy::Bind(node)`,
/// `Prefault::Populate` and hard mode, so every page was verified on the node before the
/// value was written in place ([`ShardMemory::enforcement`] says `Hard`). The portable
/// backend cannot observe pages: there the regions are bound and populated but `Soft`.
/// A shard takes at least one cache line (128 bytes on x86_64) and, being its own
/// mapping, whole pages: two shards never share a line. `T`'s alignment is kept (even
/// beyond a page). Values are dropped in place when the `NumaSharded` drops, then the
/// regions unmap.
///
/// Which nodes get a shard: the topology's memory nodes this process may allocate from
/// (so a memory-only node has one; a CPU-only node has none).
///
/// On a simulated machine with a memory-only node (this works on any host):
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use numaperf::{Enforcement, NodeId, NumaSharded, Topology};
/// use numaperf_sim::SimMachine;
///
/// // Nodes 0 and 1 with two CPUs each, node 2 memory only.
/// let sim = SimMachine::builder()
///     .node(2, 64 << 20)
///     .node(2, 64 << 20)
///     .node(0, 64 << 20)
///     .build()?;
/// let topo = Topology::of_backend(&sim)?;
/// let hits = NumaSharded::new_in(&sim, &topo, |node| AtomicU64::new(node.get().into()))?;
/// assert_eq!(hits.len(), 3);
/// for (node, v) in hits.iter() {
///     let mem = hits.memory(node).unwrap();
///     assert_eq!(mem.enforcement(), Enforcement::Hard);
///     assert_eq!(mem.placement()?.on(node), mem.layout().page_count() as u64);
///     assert_eq!(v.load(Ordering::Relaxed), u64::from(node.get()));
/// }
/// // A thread on CPU 2 (node 1) gets node 1's shard.
/// let v = sim.run_on_cpu(2, || hits.local_now().load(Ordering::Relaxed))?;
/// assert_eq!(v, 1);
/// assert!(hits.get(NodeId::new(7)).is_none());
/// # Ok::<(), numaperf::NumaError>(())
/// ```
pub struct NumaSharded<T, B: PlacementBackend = DefaultBackend> {
    store: NodeStore<T, B>,
    /// Every node of the backend -> the index of the shard its threads use.
    route: BTreeMap<NodeId, usize>,
    cache: LocalCache,
}

impl<T> NumaSharded<T, DefaultBackend> {
    /// One `f(node)` per memory node of `topology` this process may allocate from, on this
    /// machine (the [`DefaultBackend`]). `f` runs on the calling thread, once per node in
    /// ascending id order; its value is moved into the node's memory.
    ///
    /// A panic in `f` drops the values already made (once each) and unmaps their
    /// regions before it goes on.
    ///
    /// # Errors
    /// [`NumaError::NodeNotFound`] for a node of `topology` the machine lacks,
    /// [`NumaError::NoMemoryOnNode`] / [`NumaError::NodeNotAllowed`] for a shard node the
    /// machine has no memory on / does not let this process use, [`NumaError::NoUsableNode`]
    /// when no node qualifies, and the region errors of [`crate::NumaRegion::anon`]
    /// (for example [`NumaError::PlacementViolated`] when a page is not on its node).
    /// Nothing stays mapped and every value made is dropped.
    pub fn new(topology: &Topology, f: impl FnMut(NodeId) -> T) -> Result<Self, NumaError> {
        Self::new_in(DefaultBackend::shared()?, topology, f)
    }
}

impl<T, B: PlacementBackend + Clone> NumaSharded<T, B> {
    /// Like [`NumaSharded::new`], on an explicit backend (the simulator, a wrapper);
    /// `topology`'s nodes must be `backend`'s.
    ///
    /// # Errors
    /// As [`NumaSharded::new`].
    pub fn new_in(
        backend: B,
        topology: &Topology,
        mut f: impl FnMut(NodeId) -> T,
    ) -> Result<Self, NumaError> {
        let store = NodeStore::build(backend, topology, |_| 1, |node, _| f(node))?;
        let route = local::route_nodes(store.backend().topology(), |n| store.index_of(n));
        Ok(NumaSharded {
            store,
            route,
            cache: LocalCache::new(),
        })
    }
}

impl<T, B: PlacementBackend> NumaSharded<T, B> {
    /// How many calls of [`NumaSharded::local`] on one thread one reading of the thread's
    /// CPU serves.
    pub const REFRESH_EVERY: u32 = local::REFRESH_EVERY;

    /// The calling thread's shard: the shard of the node of the CPU the thread ran on
    /// when it last read its CPU; for a CPU-only node, the first node with a shard in
    /// the kernel's fallback order from it (where the kernel puts that node's local
    /// allocations), else the nearest by distance. A memory-only node's shard is never
    /// local (no thread runs there); reach it with [`NumaSharded::get`].
    ///
    /// No system call per call: each thread reads its CPU (the backend's `getcpu`) on its
    /// first call and again on every [`NumaSharded::REFRESH_EVERY`]th (1024th) call after,
    /// so a thread the scheduler moved to another node may get its old node's shard for
    /// up to 1023 more calls (a matter of speed, never of safety: every shard is valid).
    /// Call [`NumaSharded::local_now`] after moving a thread on purpose. If reading the
    /// CPU fails, the previous answer stays (the first shard on a thread's first call).
    #[inline]
    pub fn local(&self) -> &T {
        let p = self.cache.get(|previous| self.read_local(previous));
        // SAFETY: this thread's cache entry for this instance's id (ids are never reused)
        // was written only by `read_local` of this instance: the address of one of its
        // shard values, initialised and not dropped while `self` is borrowed. Only shared
        // references are made to shard values.
        unsafe { &*p.cast::<T>() }
    }

    /// As [`NumaSharded::local`], but reads the thread's CPU now (one `getcpu`) and
    /// caches the answer for the following calls.
    pub fn local_now(&self) -> &T {
        let p = self.cache.refresh(|previous| self.read_local(previous));
        // SAFETY: as in `local`.
        unsafe { &*p.cast::<T>() }
    }

    /// The address of the calling thread's shard value: by its CPU's node, or when the
    /// CPU cannot be read the previous answer (the first shard if none).
    fn read_local(&self, previous: Option<*const ()>) -> *const () {
        let shards = self.store.shards();
        match self.store.backend().current_cpu() {
            Ok(loc) => shards[local::shard_at(&self.route, loc)].as_ptr().cast(),
            Err(_) => previous.unwrap_or_else(|| shards[0].as_ptr().cast()),
        }
    }

    /// The shard of `node` (`None`: the node has no shard: absent, without memory, or
    /// not allowed).
    pub fn get(&self, node: NodeId) -> Option<&T> {
        let i = self.store.index_of(node)?;
        self.store.shards()[i].values().first()
    }

    /// Every shard with its node, by ascending node id.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (NodeId, &T)> + '_ {
        self.store
            .shards()
            .iter()
            .map(|s| (s.node(), &s.values()[0]))
    }

    /// The nodes that have a shard, ascending.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = NodeId> + '_ {
        self.store.shards().iter().map(|s| s.node())
    }

    /// Number of shards (at least 1).
    pub fn len(&self) -> usize {
        self.store.shards().len()
    }

    /// Always `false`: a `NumaSharded` has at least one shard.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Where `node`'s shard's memory is (`None`: no shard there).
    pub fn memory(&self, node: NodeId) -> Option<ShardMemory<'_, B>> {
        let i = self.store.index_of(node)?;
        Some(self.store.shards()[i].memory())
    }

    /// `Hard` when every shard's pages were verified on its node, else `Soft`.
    pub fn enforcement(&self) -> Enforcement {
        weakest(self.store.shards().iter().map(|s| s.memory().enforcement()))
    }

    /// The node whose shard a thread on `node` gets from [`NumaSharded::local`]
    /// (`None`: a node the backend does not have).
    pub fn local_node_for(&self, node: NodeId) -> Option<NodeId> {
        let i = *self.route.get(&node)?;
        Some(self.store.shards()[i].node())
    }

    /// The backend the shards live on.
    pub fn backend(&self) -> &B {
        self.store.backend()
    }
}

/// `Hard` only if all are.
fn weakest(all: impl Iterator<Item = Enforcement>) -> Enforcement {
    let mut hard = true;
    for e in all {
        hard &= e == Enforcement::Hard;
    }
    if hard {
        Enforcement::Hard
    } else {
        Enforcement::Soft
    }
}

impl<T: core::fmt::Debug, B: PlacementBackend> core::fmt::Debug for NumaSharded<T, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
