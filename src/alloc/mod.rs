//! `NodeAlloc`: an allocator whose memory follows a [`MemPolicy`], for ordinary data
//! structures (`allocator_api2`'s `Vec`, `Box`, hashbrown); and a `GlobalAlloc` adapter.
//!
//! Allocations above [`NodeAlloc::SMALL_MAX`] get a mapping of their own with the policy
//! (a region without prefault: pages are placed as they are touched). Smaller ones come
//! from 40 size classes, each carving blocks from its own slabs: 256 KiB regions with the
//! policy. A freed block goes back to its class's free list from any thread (a short spin
//! lock per class, so threads using different sizes do not meet). Slabs are kept until the
//! allocator drops (memory is reused, never returned to the system before).

mod global;
mod size_class;
mod slab;

use core::alloc::Layout;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};

use allocator_api2::alloc::{AllocError, Allocator};
use crossbeam_utils::CachePadded;
use numaperf_core::existing::whole_pages;
use numaperf_core::region::{create_region, round_to_unit};
use numaperf_core::{
    HugePages, Mapping, MemPolicy, NumaError, PlacementBackend, Prefault, RegionOptions,
    TopologyInfo,
};

use crate::DefaultBackend;
pub use global::NodeGlobalAlloc;
use size_class::{class_align, class_for, class_size, CLASSES, SMALL_MAX};
use slab::Class;

/// Bytes of one slab region.
const SLAB: usize = 256 << 10;

/// What the first bytes of every slab hold: the slab's mapping, to unmap it at drop, and
/// the link to the slab mapped before it.
struct SlabHeader {
    next: *mut SlabHeader,
    /// The length asked for and the length mapped (a page multiple, larger than the
    /// first when the base page is larger than a slab), as the mapping token had them.
    len: usize,
    mapped_len: usize,
    page_size: usize,
}

/// An allocator placing its memory by a policy: `Send + Sync`, shared by reference
/// (`&NodeAlloc` is an `Allocator` too) or in an `Arc`.
///
/// On a simulated two-node machine (any host):
/// ```
/// use allocator_api2::vec::Vec;
/// use numaperf::{MemPolicy, NodeAlloc, NodeId, NodeMask};
/// use numaperf_sim::SimMachine;
///
/// let sim = SimMachine::from_spec("2 nodes x 1 cpus x 64 MiB")?;
/// let on1 = NodeAlloc::new_in(&sim, MemPolicy::Bind(NodeMask::single(NodeId::new(1))))?;
/// let mut v: Vec<u64, &NodeAlloc<&SimMachine>> = Vec::new_in(&on1);
/// v.extend(0..100_000u64);
/// // The simulator learns of a first touch when told (a real kernel sees the write).
/// sim.touch(v.as_ptr().cast(), v.len() * 8)?;
/// let pages = on1.pages_of(&v)?;
/// assert_eq!(pages.on(NodeId::new(1)), pages.total());
/// # Ok::<(), numaperf::NumaError>(())
/// ```
pub struct NodeAlloc<B: PlacementBackend = DefaultBackend> {
    backend: B,
    policy: MemPolicy,
    options: RegionOptions,
    /// Bytes of memory on the nodes the policy may use: no block may be larger.
    capacity: u64,
    classes: [CachePadded<Class>; CLASSES],
    slabs: AtomicPtr<SlabHeader>,
}

// SAFETY: the classes and the slab list are shared through their own synchronisation
// (spin locks, an atomic list head); the backend handle is required to be Send + Sync.
unsafe impl<B: PlacementBackend + Send + Sync> Send for NodeAlloc<B> {}
// SAFETY: as above.
unsafe impl<B: PlacementBackend + Send + Sync> Sync for NodeAlloc<B> {}

impl NodeAlloc<DefaultBackend> {
    /// An allocator on this machine placing its memory by `policy`.
    ///
    /// # Errors
    /// Validation errors of the policy ([`MemPolicy::validate`]: absent nodes, empty
    /// masks, nodes without memory), and the backend's creation errors.
    pub fn new(policy: MemPolicy) -> Result<Self, NumaError> {
        Self::new_in(DefaultBackend::shared()?, policy)
    }
}

impl<B: PlacementBackend> NodeAlloc<B> {
    /// Allocations above this many bytes get a mapping of their own.
    pub const SMALL_MAX: usize = SMALL_MAX;

    /// [`NodeAlloc::new`] on an explicit backend (a simulator, a wrapper).
    ///
    /// # Errors
    /// As [`NodeAlloc::new`].
    pub fn new_in(backend: B, policy: MemPolicy) -> Result<Self, NumaError> {
        Self::with_options(backend, policy, RegionOptions::default())
    }

    /// [`NodeAlloc::new_in`] with region options (node mode, balancing flag, home node;
    /// huge pages apply to the large allocations' mappings only).
    ///
    /// # Errors
    /// As [`NodeAlloc::new`]; [`NumaError::IncompatibleOption`] for hard mode (an
    /// allocator cannot verify pages that are not touched yet).
    pub fn with_options(
        backend: B,
        policy: MemPolicy,
        options: RegionOptions,
    ) -> Result<Self, NumaError> {
        if options.hard {
            return Err(NumaError::IncompatibleOption(
                numaperf_core::OptionConflict::HardNeedsBind,
            ));
        }
        let eff = policy.validate(&options, backend.topology())?;
        let topo = backend.topology();
        let nodes = match policy {
            MemPolicy::Bind(_) => eff,
            _ => topo.memory_nodes().intersection(topo.allowed_nodes()),
        };
        let capacity = nodes.iter().fold(0u64, |t, n| {
            t.saturating_add(topo.node_memory(n).unwrap_or(0))
        });
        Ok(NodeAlloc {
            backend,
            policy,
            options,
            capacity,
            classes: [const { CachePadded::new(Class::new()) }; CLASSES],
            slabs: AtomicPtr::new(ptr::null_mut()),
        })
    }

    /// The policy the memory follows.
    pub fn policy(&self) -> &MemPolicy {
        &self.policy
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Where the pages of every slab are now (large allocations are their own mappings;
    /// [`crate::place_in`]'s counts or the backend's query cover those).
    ///
    /// # Errors
    /// The backend's query errors.
    pub fn placement(&self) -> Result<numaperf_core::PageCounts, NumaError> {
        let mut out = numaperf_core::PageCounts::new();
        let mut s = self.slabs.load(Ordering::Acquire);
        while !s.is_null() {
            // SAFETY: a live slab's header, written before it was published.
            let h = unsafe { &*s };
            let m = slab_mapping(s, h);
            out.merge(&numaperf_core::placement(&self.backend, &m)?);
            s = h.next;
        }
        Ok(out)
    }

    /// Where the whole pages of `data` (memory from this allocator, or any memory the
    /// backend can query) are now, without faulting them in.
    ///
    /// # Errors
    /// [`NumaError::NoWholePage`] when `data` holds no whole page (ask [`Self::placement`]
    /// for small blocks' slabs), and the backend's query errors.
    pub fn pages_of<T>(&self, data: &[T]) -> Result<numaperf_core::PageCounts, NumaError> {
        let page = self.backend.base_page_size();
        let (_, bytes, head, _) =
            whole_pages(data.as_ptr() as usize, core::mem::size_of_val(data), page)?;
        let addr = NonNull::new(data.as_ptr().cast::<u8>().cast_mut().wrapping_add(head))
            .ok_or(NumaError::ForeignMapping)?;
        // SAFETY: whole pages inside `data`, mapped while the borrow lives; the token is
        // only queried (never given to a method that writes or moves pages) and dropped.
        let m = unsafe { self.backend.adopt(addr, bytes)? };
        numaperf_core::placement(&self.backend, &m)
    }

    /// A mapping of its own for a large allocation: `len` bytes rounded up to pages.
    fn map_large(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let page = self.backend.base_page_size();
        if layout.align() > page {
            return Err(AllocError);
        }
        let len = round_to_unit(layout.size(), page).map_err(|_| AllocError)?;
        // Larger than all the memory it may use: refused before anything is mapped.
        if len as u64 > self.capacity {
            return Err(AllocError);
        }
        let mut opts = self.options;
        opts.huge_pages = large_pages(opts.huge_pages);
        let (m, _) = create_region(&self.backend, len, &self.policy, &opts, Prefault::None)
            .map_err(|_| AllocError)?;
        // The token is rebuilt from the pointer and the layout when the block is freed.
        let mapped = m.mapped_len();
        Ok(NonNull::slice_from_raw_parts(m.addr(), mapped))
    }

    /// Unmaps a large allocation.
    ///
    /// # Safety
    /// `ptr` came from `map_large` with a layout of this size and is no longer used.
    unsafe fn unmap_large(&self, ptr: NonNull<u8>, layout: Layout) {
        let page = self.backend.base_page_size();
        let Ok(len) = round_to_unit(layout.size(), page) else {
            return;
        };
        // SAFETY: `ptr..ptr + len` is the mapping `map_large` made for a block of this
        // size (`create_region` mapped exactly `len`, a page multiple, in base pages).
        let m = unsafe { Mapping::from_raw_parts(ptr, len, len, page) };
        // SAFETY: the caller no longer uses the block; the mapping is unmapped once.
        let _ = unsafe { self.backend.unmap(&m) };
    }

    /// A block of class `i`.
    fn take_small(&self, i: usize) -> Result<NonNull<u8>, AllocError> {
        let size = class_size(i);
        let mut blocks = self.classes[i].lock();
        if let Some(p) = blocks.take(size) {
            return NonNull::new(p).ok_or(AllocError);
        }
        let (start, end) = self.new_slab(class_align(i))?;
        blocks.refill(start, end);
        blocks.take(size).and_then(NonNull::new).ok_or(AllocError)
    }

    /// Maps a slab with the policy, records it, and returns its blocks' range (after its
    /// header, at `align`).
    fn new_slab(&self, align: usize) -> Result<(*mut u8, *mut u8), AllocError> {
        let mut opts = self.options;
        opts.huge_pages = HugePages::None;
        let (m, _) = create_region(&self.backend, SLAB, &self.policy, &opts, Prefault::None)
            .map_err(|_| AllocError)?;
        let base = m.as_ptr();
        let header = base.cast::<SlabHeader>();
        // SAFETY: the slab is fresh, writable and page-aligned; the header fits its start.
        unsafe {
            header.write(SlabHeader {
                next: ptr::null_mut(),
                len: m.len(),
                mapped_len: m.mapped_len(),
                page_size: m.page_size(),
            })
        };
        let mut head = self.slabs.load(Ordering::Relaxed);
        loop {
            // SAFETY: the header is ours until published by the exchange below.
            unsafe { (*header).next = head };
            match self.slabs.compare_exchange_weak(
                head,
                header,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        let first = core::mem::size_of::<SlabHeader>().next_multiple_of(align.max(16));
        Ok((base.wrapping_add(first), base.wrapping_add(m.mapped_len())))
    }

    fn alloc(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            // A dangling, aligned pointer: zero-sized blocks own no memory.
            let p = ptr::without_provenance_mut::<u8>(layout.align());
            return Ok(NonNull::slice_from_raw_parts(
                NonNull::new(p).ok_or(AllocError)?,
                0,
            ));
        }
        match class_for(layout.size(), layout.align()) {
            Some(i) => Ok(NonNull::slice_from_raw_parts(
                self.take_small(i)?,
                class_size(i),
            )),
            None if layout.size() > SMALL_MAX => self.map_large(layout),
            // Small, but aligned beyond a page: no class has such blocks.
            None => Err(AllocError),
        }
    }

    /// # Safety
    /// `ptr` was allocated by this allocator with a layout that fits `layout` and is no
    /// longer used.
    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() == 0 {
            return;
        }
        match class_for(layout.size(), layout.align()) {
            // SAFETY: the block is of class `i` (the same layout finds the same class) and
            // unused (the caller's contract).
            Some(i) => unsafe { self.classes[i].lock().give(ptr.as_ptr()) },
            // SAFETY: forwarded from this function's contract.
            None => unsafe { self.unmap_large(ptr, layout) },
        }
    }
}

/// A large allocation's page kind: base or transparent pages (explicit huge pages would
/// need their own rounding; the large path maps base-page multiples).
fn large_pages(h: HugePages) -> HugePages {
    match h {
        HugePages::Transparent => HugePages::Transparent,
        _ => HugePages::None,
    }
}

/// The token of a slab, rebuilt from its header.
fn slab_mapping(s: *mut SlabHeader, h: &SlabHeader) -> Mapping {
    // SAFETY: the header records the slab's own mapping, live until the allocator drops.
    unsafe {
        Mapping::from_raw_parts(
            NonNull::new_unchecked(s.cast()),
            h.len,
            h.mapped_len,
            h.page_size,
        )
    }
}

impl<B: PlacementBackend> Drop for NodeAlloc<B> {
    fn drop(&mut self) {
        let mut s = *self.slabs.get_mut();
        while !s.is_null() {
            // SAFETY: a live slab's header; read before the slab is unmapped.
            let h = unsafe { &*s };
            let next = h.next;
            let m = slab_mapping(s, h);
            // SAFETY: the allocator is dropped: no block of its slabs is in use (the
            // Allocator contract: blocks do not outlive their allocator).
            let _ = unsafe { self.backend.unmap(&m) };
            s = next;
        }
    }
}

// SAFETY: blocks stay valid until freed (a large block's mapping is unmapped by its
// `deallocate`) or until the allocator drops (slabs are unmapped only then); a block is never handed out twice while live (free
// lists and bump ranges hold only unused blocks, under their class's lock); the layout
// given back finds the block's class or mapping size.
unsafe impl<B: PlacementBackend> Allocator for NodeAlloc<B> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.alloc(layout)
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let block = self.alloc(layout)?;
        if layout.size() <= SMALL_MAX {
            // SAFETY: the block is ours and `block.len()` bytes long.
            unsafe { ptr::write_bytes(block.cast::<u8>().as_ptr(), 0, block.len()) };
        }
        // A fresh mapping of its own is zeroed already.
        Ok(block)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded from the Allocator contract.
        unsafe { self.free(ptr, layout) }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded from the Allocator contract (`new.size() >= old.size()`).
        unsafe { self.resize(ptr, old, new) }
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded from the Allocator contract (`new.size() <= old.size()`).
        unsafe { self.resize(ptr, old, new) }
    }
}

impl<B: PlacementBackend> NodeAlloc<B> {
    /// `grow` and `shrink`: the block itself when it already fits `new`, else a new
    /// block holding the bytes both layouts have, the old one freed.
    ///
    /// # Safety
    /// `ptr` is a live block of this allocator allocated with `old`.
    unsafe fn resize(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if let Some(same) = self.in_place(ptr, old, new) {
            return Ok(same);
        }
        let block = self.alloc(new)?;
        // SAFETY: both blocks are live and distinct; each holds at least the smaller of
        // the two sizes; the old block is not used after it is freed.
        unsafe {
            let kept = old.size().min(new.size());
            ptr::copy_nonoverlapping(ptr.as_ptr(), block.cast::<u8>().as_ptr(), kept);
            self.free(ptr, old);
        }
        Ok(block)
    }
}

impl<B: PlacementBackend> NodeAlloc<B> {
    /// The block itself when `new` finds the same class or the same mapping size as `old`.
    fn in_place(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Option<NonNull<[u8]>> {
        if old.size() == 0 || new.size() == 0 || new.align() > old.align() {
            return None;
        }
        match (
            class_for(old.size(), old.align()),
            class_for(new.size(), new.align()),
        ) {
            (Some(a), Some(b)) if a == b => Some(NonNull::slice_from_raw_parts(ptr, class_size(a))),
            (None, None) if old.size() > SMALL_MAX && new.size() > SMALL_MAX => {
                let page = self.backend.base_page_size();
                let (a, b) = (
                    round_to_unit(old.size(), page).ok()?,
                    round_to_unit(new.size(), page).ok()?,
                );
                (a == b).then(|| NonNull::slice_from_raw_parts(ptr, a))
            }
            _ => None,
        }
    }
}
