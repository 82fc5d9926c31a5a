//! Node-bound storage: per memory node one region bound there (verified where the backend
//! can verify), holding values built in place and dropped in place before it unmaps.

use core::mem::{align_of, size_of};
use core::ptr::{self, NonNull};

use crossbeam_utils::CachePadded;
use numaperf_core::{
    Enforcement, MappingInfo, MemPolicy, NodeId, NodeMask, NumaError, PageCounts, PageLocation,
    PlacementBackend, Prefault, RegionOptions, TopologyInfo,
};

use crate::{NumaRegion, Topology};

/// The least a shard's storage takes: one cache line as crossbeam pads it (128 bytes on
/// x86_64, where the adjacent-line prefetcher pairs lines). Every region is whole pages,
/// so two shards never share a line anyway.
pub(crate) const MIN_SHARD_BYTES: usize = size_of::<CachePadded<u8>>();

/// One node's values: `len` initialised `T`s from `ptr`, inside `region`.
pub(crate) struct Shard<T, B: PlacementBackend> {
    node: NodeId,
    ptr: NonNull<T>,
    len: usize,
    region: NumaRegion<B>,
}

/// Shards by ascending node id; never empty once built.
pub(crate) struct NodeStore<T, B: PlacementBackend> {
    shards: Vec<Shard<T, B>>,
}

// SAFETY: the store owns its `T`s (dropping it drops them, possibly on another thread:
// `T: Send`) and its regions (`NumaRegion<B>` is `Send` when `B` is); the pointers point
// into those regions only.
unsafe impl<T: Send, B: PlacementBackend + Send> Send for NodeStore<T, B> {}
// SAFETY: `&NodeStore` hands out only `&T` (shared between threads: `T: Sync`) and
// `&NumaRegion<B>` for read-only queries (`B: Sync`); nothing is mutated through `&self`.
unsafe impl<T: Sync, B: PlacementBackend + Sync> Sync for NodeStore<T, B> {}

/// The nodes that get a shard: `topology`'s memory nodes this process may allocate
/// from, each checked to be a memory node of `backend` too.
pub(crate) fn shard_nodes<B: PlacementBackend>(
    backend: &B,
    topology: &Topology,
) -> Result<NodeMask, NumaError> {
    let theirs = backend.topology();
    if let Some(n) = topology.nodes().difference(theirs.nodes()).first() {
        return Err(NumaError::NodeNotFound(n));
    }
    let nodes = topology
        .memory_nodes()
        .intersection(&topology.allowed_nodes());
    if let Some(n) = nodes.difference(theirs.memory_nodes()).first() {
        return Err(NumaError::NoMemoryOnNode(n));
    }
    if let Some(n) = nodes.difference(theirs.allowed_nodes()).first() {
        return Err(NumaError::NodeNotAllowed(n));
    }
    if nodes.is_empty() {
        return Err(NumaError::NoUsableNode);
    }
    Ok(nodes)
}

/// A region of `len` bytes bound to `node`, populated, `Hard` (every page verified on
/// `node`) where the backend can verify and `Soft` where it says it cannot.
fn bound_region<B: PlacementBackend + Clone>(
    backend: B,
    node: NodeId,
    len: usize,
) -> Result<NumaRegion<B>, NumaError> {
    let bind = MemPolicy::Bind(NodeMask::single(node));
    match NumaRegion::anon_in(
        backend.clone(),
        len,
        bind.clone(),
        RegionOptions::new().hard(),
        Prefault::Populate,
    ) {
        // The portable backend cannot observe pages: bound and populated, not verified.
        Err(NumaError::Unsupported { .. }) => {
            NumaRegion::anon_in(backend, len, bind, RegionOptions::new(), Prefault::Populate)
        }
        r => r,
    }
}

impl<T, B: PlacementBackend + Clone> NodeStore<T, B> {
    /// Builds `count(node)` values per shard node with `make(node, i)`, each in place in
    /// the node's region. On an error or a panic in `make`, the values built so far are
    /// dropped once and every region is unmapped.
    pub(crate) fn build(
        backend: B,
        topology: &Topology,
        count: impl Fn(NodeId) -> usize,
        mut make: impl FnMut(NodeId, usize) -> T,
    ) -> Result<Self, NumaError> {
        let nodes = shard_nodes(&backend, topology)?;
        let page = backend.base_page_size();
        let mut store = NodeStore {
            shards: Vec::with_capacity(nodes.count()),
        };
        for node in nodes.iter() {
            let n = count(node).max(1);
            let bytes = n
                .checked_mul(size_of::<T>())
                .ok_or(NumaError::SizeOverflow {
                    len: n,
                    unit: size_of::<T>(),
                })?;
            // A page-aligned mapping is aligned for any `T` up to a page; beyond that,
            // room to slide the array up to its alignment.
            let slack = if align_of::<T>() > page {
                align_of::<T>()
            } else {
                0
            };
            let len =
                bytes
                    .max(MIN_SHARD_BYTES)
                    .checked_add(slack)
                    .ok_or(NumaError::SizeOverflow {
                        len: bytes,
                        unit: slack,
                    })?;
            let mut region = bound_region(backend.clone(), node, len)?;
            let base = region.as_mut_ptr();
            let pad = base.addr().next_multiple_of(align_of::<T>()) - base.addr();
            // SAFETY: `pad < align_of::<T>()`, and `pad > 0` only when the alignment
            // exceeds a page, i.e. when `slack` bytes were added: the result stays inside
            // the region. The mapping address is never null.
            let ptr = unsafe { NonNull::new_unchecked(base.add(pad).cast::<T>()) };
            store.shards.push(Shard {
                node,
                ptr,
                len: 0,
                region,
            });
            for i in 0..n {
                let value = make(node, i);
                let shard = store.shards.last_mut().expect("pushed above");
                // SAFETY: `ptr` is aligned for `T` and `n * size_of::<T>()` bytes from it
                // lie in the region (len >= bytes + pad); slot `i < n` is not yet
                // initialised, and nothing else refers to the region's memory.
                unsafe { shard.ptr.as_ptr().add(i).write(value) };
                shard.len = i + 1;
            }
        }
        Ok(store)
    }
}

impl<T, B: PlacementBackend> NodeStore<T, B> {
    /// The shards, by ascending node id.
    pub(crate) fn shards(&self) -> &[Shard<T, B>] {
        &self.shards
    }

    /// The index of `node`'s shard.
    pub(crate) fn index_of(&self, node: NodeId) -> Option<usize> {
        self.shards.binary_search_by_key(&node, |s| s.node).ok()
    }

    /// The backend the shards live on (shards are never empty once built).
    pub(crate) fn backend(&self) -> &B {
        self.shards[0].region.backend()
    }
}

impl<T, B: PlacementBackend> Shard<T, B> {
    /// The node the shard is bound to.
    pub(crate) fn node(&self) -> NodeId {
        self.node
    }

    /// The address of the shard's first value (whose `len` values are initialised).
    pub(crate) fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }

    /// The shard's values.
    pub(crate) fn values(&self) -> &[T] {
        // SAFETY: `len` values from `ptr` are initialised (see `build`) and stay so until
        // the store drops; only shared references are ever made to them.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// A read-only view of the shard's memory.
    pub(crate) fn memory(&self) -> ShardMemory<'_, B> {
        ShardMemory {
            node: self.node,
            region: &self.region,
        }
    }
}

impl<T, B: PlacementBackend> Drop for NodeStore<T, B> {
    fn drop(&mut self) {
        for s in &mut self.shards {
            let values = ptr::slice_from_raw_parts_mut(s.ptr.as_ptr(), s.len);
            s.len = 0;
            // SAFETY: exactly `len` values were initialised and none was dropped (`len` is
            // zeroed first, so a panicking `Drop` cannot make this run twice); `&mut self`
            // means no reference to them is alive. The region unmaps after this, when the
            // fields drop.
            unsafe { ptr::drop_in_place(values) };
        }
    }
}

/// Where one shard's memory is: its node, the region's layout and enforcement, and the
/// pages' places as the backend reports them now. Read-only; the values are reached
/// through the owner ([`crate::NumaSharded::get`]).
pub struct ShardMemory<'a, B: PlacementBackend> {
    node: NodeId,
    region: &'a NumaRegion<B>,
}

impl<B: PlacementBackend> ShardMemory<'_, B> {
    /// The node the shard's region is bound to.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Address, length and page size of the shard's region.
    pub fn layout(&self) -> MappingInfo {
        self.region.layout()
    }

    /// `Hard`: every page was verified on the node when the shard was made (strict bind,
    /// populated). `Soft`: bound and populated, but the backend cannot verify (the
    /// portable backend).
    pub fn enforcement(&self) -> Enforcement {
        self.region.enforcement()
    }

    /// Pages per node of the shard's region now.
    ///
    /// # Errors
    /// The backend's query errors (on Linux, `move_pages` refused).
    pub fn placement(&self) -> Result<PageCounts, NumaError> {
        self.region.placement()
    }

    /// Where pages `first..first + out.len()` of the shard's region are, page by page.
    ///
    /// # Errors
    /// [`NumaError::PageRangeOutOfBounds`], and the backend's query errors.
    pub fn page_locations(&self, first: usize, out: &mut [PageLocation]) -> Result<(), NumaError> {
        self.region.page_locations(first, out)
    }
}

impl<B: PlacementBackend> core::fmt::Debug for ShardMemory<'_, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ShardMemory")
            .field("node", &self.node)
            .field("region", self.region)
            .finish()
    }
}
