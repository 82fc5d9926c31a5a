//! The one trait boundary: everything above it is generic over a `PlacementBackend`,
//! real (Linux) or simulated; plus the small value types that cross it.

use core::fmt;
use core::ptr::NonNull;

use crate::cgroup::MemoryLimit;
use crate::errno::Errno;
use crate::error::NumaError;
use crate::existing::ThreadPolicy;
use crate::node::{CpuSet, NodeId, NodeMask, MAX_NUMNODES};
use crate::options::{HugePages, NodeMode, Prefault, RegionOptions};
use crate::policy::MemPolicy;
use crate::populate::PopulatePlan;
use crate::shared::{SharedHandle, SharedObject};
use crate::topology::TopologyInfo;
use crate::weighted::KernelWeights;

/// An address range a backend mapped; a token, it gives no access by itself.
///
/// Whoever holds the token owns the mapping: the trait's methods that write its memory
/// or change its policy are `unsafe` and ask the caller to guarantee exclusive access.
/// A region never hands its token out; it hands out a [`MappingInfo`] instead.
#[derive(Debug, PartialEq, Eq)]
pub struct Mapping {
    info: MappingInfo,
    thread_cap: usize,
}

impl Mapping {
    /// A mapping token.
    ///
    /// # Safety
    /// `addr..addr + mapped_len` must be a mapping the backend created and that stays
    /// mapped until the backend's `unmap` is called with this token; `page_size` must
    /// divide `mapped_len`, and `len <= mapped_len`.
    pub unsafe fn from_raw_parts(
        addr: NonNull<u8>,
        len: usize,
        mapped_len: usize,
        page_size: usize,
    ) -> Self {
        Mapping {
            info: MappingInfo {
                addr,
                len,
                mapped_len,
                page_size,
            },
            thread_cap: 1,
        }
    }

    /// The most threads a backend may use for this mapping's page work when it is
    /// unmapped (releasing a large mapping's pages side by side): 0 automatic, 1 the
    /// calling thread alone. A token made by [`Mapping::from_raw_parts`] says 1 (so an
    /// allocator's free never starts a thread); a region's constructor sets its options'
    /// `populate_threads`.
    pub fn thread_cap(&self) -> usize {
        self.thread_cap
    }

    /// Sets [`Mapping::thread_cap`].
    pub fn set_thread_cap(&mut self, threads: usize) {
        self.thread_cap = threads;
    }

    /// Start address, for the backend's calls on its own mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.info.addr.as_ptr()
    }

    /// Start address, non-null.
    pub fn addr(&self) -> NonNull<u8> {
        self.info.addr
    }

    /// A `Copy` description of the mapping (address and sizes), which is not the token.
    /// The token derefs to it, for `len()`, `mapped_len()`, `page_size()`, `page_count()`.
    pub fn info(&self) -> MappingInfo {
        self.info
    }

    /// Every page of the mapping.
    pub fn all_pages(&self) -> PageRange {
        PageRange {
            first: 0,
            count: self.page_count(),
        }
    }

    /// The address range of `pages`, checked to lie inside the mapping.
    ///
    /// # Errors
    /// [`NumaError::PageRangeOutOfBounds`] when it does not.
    pub fn range(&self, pages: PageRange) -> Result<(*mut u8, usize), NumaError> {
        let total = self.page_count();
        let out = NumaError::PageRangeOutOfBounds {
            first: pages.first,
            count: pages.count,
            pages: total,
        };
        match pages.first.checked_add(pages.count) {
            Some(end) if end <= total => Ok((
                self.addr
                    .as_ptr()
                    .wrapping_add(pages.first * self.page_size),
                pages.count * self.page_size,
            )),
            _ => Err(out),
        }
    }
}

impl core::ops::Deref for Mapping {
    type Target = MappingInfo;

    fn deref(&self) -> &MappingInfo {
        &self.info
    }
}

/// Where a mapping is and how large: a description to read, not a token to act with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappingInfo {
    addr: NonNull<u8>,
    len: usize,
    mapped_len: usize,
    page_size: usize,
}

// SAFETY: an address and sizes, never dereferenced through this type.
unsafe impl Send for MappingInfo {}
// SAFETY: as above.
unsafe impl Sync for MappingInfo {}

impl MappingInfo {
    /// Start address.
    pub fn as_ptr(&self) -> *const u8 {
        self.addr.as_ptr()
    }

    /// Length asked for.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the length asked for is 0 (never, for a mapping a backend made).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Length actually mapped (whole pages).
    pub fn mapped_len(&self) -> usize {
        self.mapped_len
    }

    /// The page size placement is tracked in.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Number of pages of `page_size`.
    pub fn page_count(&self) -> usize {
        self.mapped_len / self.page_size
    }
}

/// Pages `first..first + count` of a mapping, in its page size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRange {
    /// The first page.
    pub first: usize,
    /// How many pages.
    pub count: usize,
}

/// Where one page is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageLocation {
    /// Present on this node.
    Node(NodeId),
    /// Not faulted in yet (or only the shared zero page).
    NotPresent,
    /// The backend cannot observe where (or whether) the page is (the portable backend).
    Unknown,
    /// The kernel reported another per-page errno.
    Error(Errno),
}

/// Pages per node of a region, plus pages not present.
#[derive(Clone, PartialEq, Eq)]
pub struct PageCounts {
    per_node: [u64; MAX_NUMNODES],
    nodes: NodeMask,
    not_present: u64,
    unknown: u64,
    errors: u64,
}

impl Default for PageCounts {
    fn default() -> Self {
        Self::new()
    }
}

impl PageCounts {
    /// All zero.
    pub const fn new() -> Self {
        PageCounts {
            per_node: [0; MAX_NUMNODES],
            nodes: NodeMask::new(),
            not_present: 0,
            unknown: 0,
            errors: 0,
        }
    }

    /// Counts one page.
    pub fn record(&mut self, loc: PageLocation) {
        match loc {
            PageLocation::Node(n) if n.is_valid() => {
                self.per_node[n.get() as usize] += 1;
                self.nodes.add(n);
            }
            PageLocation::NotPresent => self.not_present += 1,
            PageLocation::Unknown => self.unknown += 1,
            _ => self.errors += 1,
        }
    }

    /// Adds another region's counts to these (e.g. a pool's regions on one node).
    pub fn merge(&mut self, other: &PageCounts) {
        for n in other.nodes.iter() {
            self.per_node[n.get() as usize] += other.per_node[n.get() as usize];
        }
        self.nodes = self.nodes.union(&other.nodes);
        self.not_present += other.not_present;
        self.unknown += other.unknown;
        self.errors += other.errors;
    }

    /// Pages on `node`.
    pub fn on(&self, node: NodeId) -> u64 {
        self.per_node.get(node.get() as usize).copied().unwrap_or(0)
    }

    /// Nodes holding at least one page.
    pub fn nodes(&self) -> &NodeMask {
        &self.nodes
    }

    /// `(node, pages)` for every node holding pages, by id.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.nodes.iter().map(|n| (n, self.on(n)))
    }

    /// Pages present on some node.
    pub fn present(&self) -> u64 {
        self.nodes.iter().map(|n| self.on(n)).sum()
    }

    /// Pages not present.
    pub fn not_present(&self) -> u64 {
        self.not_present
    }

    /// Pages whose place the backend cannot observe.
    pub fn unknown(&self) -> u64 {
        self.unknown
    }

    /// Pages whose query returned another error.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// All pages counted.
    pub fn total(&self) -> u64 {
        self.present() + self.not_present + self.unknown + self.errors
    }

    /// Whether every counted page is present on a node of `mask`.
    pub fn all_within(&self, mask: &NodeMask) -> bool {
        self.not_present == 0 && self.unknown == 0 && self.errors == 0 && self.nodes.is_subset(mask)
    }
}

/// `node0=256 node1=256 absent=0`
impl fmt::Display for PageCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, c) in self.iter() {
            write!(f, "node{n}={c} ")?;
        }
        write!(f, "absent={}", self.not_present)?;
        if self.unknown > 0 {
            write!(f, " unknown={}", self.unknown)?;
        }
        if self.errors > 0 {
            write!(f, " errors={}", self.errors)?;
        }
        Ok(())
    }
}

impl fmt::Debug for PageCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PageCounts({self})")
    }
}

/// Where the calling thread runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuLocation {
    /// The CPU number.
    pub cpu: usize,
    /// That CPU's node.
    pub node: NodeId,
}

/// Pages queried per backend call by the provided [`placement`].
pub const PLACEMENT_BATCH: usize = 512;

/// What a machine must do for numaperf: map, place, prefault, report, migrate, unmap, pin.
///
/// Backends stay thin: validation, capacity checks, hard-mode verification and cleanup on
/// error live above this trait (see [`crate::region`]).
///
/// # Safety contract of the mapping methods
/// `apply_policy`, `prefault`, `migrate` and `unmap` act on a mapping's memory or policy
/// and are `unsafe`. Their caller guarantees that `m` came from this backend's `map` (or,
/// except for `unmap`, its `adopt`) and is not yet unmapped, and that it *owns* the mapping: for the duration of the call no
/// reference to the memory of the pages named exists and no other thread accesses them
/// (`prefault` writes them; a strict `apply_policy` and `migrate` move them), and whatever
/// reports the mapping's policy or enforcement (a `NumaRegion`) is updated by the caller.
/// `NumaRegion` keeps its token private and calls these only from `&mut self` methods.
#[cfg_attr(test, mockall::automock(type Topology = crate::topology::FixedTopology<4>;))]
pub trait PlacementBackend {
    /// The backend's topology representation.
    type Topology: TopologyInfo;

    /// The machine's topology (read once; free memory in it may be stale).
    fn topology(&self) -> &Self::Topology;

    /// The base page size in bytes.
    fn base_page_size(&self) -> usize;

    /// Bytes free on `node` now, in pages of the given kind (hugetlb: free huge pages).
    ///
    /// # Errors
    /// [`NumaError::NodeNotFound`] for a node the machine lacks; reading errors.
    fn free_memory(&self, node: NodeId, huge: HugePages) -> Result<u64, NumaError>;

    /// Maps `len` bytes of anonymous private memory, rounded up to whole pages of `huge`.
    ///
    /// # Errors
    /// [`NumaError::ZeroSize`], [`NumaError::SizeOverflow`],
    /// [`NumaError::HugePagesUnavailable`] for hugetlb without reserved pages, and the
    /// system's refusal.
    fn map(&self, len: usize, huge: HugePages) -> Result<Mapping, NumaError>;

    /// Gives `pages` of the mapping a policy (`strict`: `MPOL_MF_STRICT | MPOL_MF_MOVE`).
    /// Node ids in `policy` are read as `opts.node_mode` says.
    ///
    /// # Errors
    /// [`NumaError::PageRangeOutOfBounds`], [`NumaError::Unsupported`] for a mode or flag
    /// the kernel lacks, [`NumaError::PermissionDenied`], and the kernel's other refusals.
    ///
    /// # Safety
    /// See the trait's safety contract.
    unsafe fn apply_policy(
        &self,
        m: &Mapping,
        pages: PageRange,
        policy: &MemPolicy,
        opts: &RegionOptions,
        strict: bool,
    ) -> Result<(), NumaError>;

    /// Faults `pages` in now (`Touch`: from the calling thread; `Populate`: by the kernel).
    ///
    /// # Errors
    /// [`NumaError::PageRangeOutOfBounds`], [`NumaError::HugePagesUnavailable`] for a
    /// hugetlb page that cannot be had, [`NumaError::InsufficientMemory`] (simulator), and
    /// the kernel's refusals.
    ///
    /// # Safety
    /// See the trait's safety contract.
    unsafe fn prefault(
        &self,
        m: &Mapping,
        pages: PageRange,
        how: Prefault,
    ) -> Result<(), NumaError>;

    /// Populates `plan`'s range of `m`: where the backend can run threads, its workers
    /// (each near its CPU, see [`crate::populate::worker_cpus`]) claim the chunks from a
    /// shared [`crate::populate::ChunkCursor`]. The default populates the whole range on
    /// the calling thread.
    ///
    /// # Errors
    /// As [`PlacementBackend::prefault`]; one of the errors when several chunks fail.
    ///
    /// # Safety
    /// See the trait's safety contract, for the plan's whole range.
    unsafe fn populate_parts(&self, m: &Mapping, plan: &PopulatePlan) -> Result<(), NumaError> {
        // SAFETY: forwarded from this function's contract.
        unsafe { self.prefault(m, plan.chunks().pages(), Prefault::Populate) }
    }

    /// Where pages `first..first + out.len()` are, without faulting them in.
    ///
    /// # Errors
    /// [`NumaError::PageRangeOutOfBounds`], and the kernel's refusal of the query.
    fn page_locations(
        &self,
        m: &Mapping,
        first: usize,
        out: &mut [PageLocation],
    ) -> Result<(), NumaError>;

    /// Moves every page not on `to` onto `to`; the mapping's policy becomes `Bind(to)`.
    /// `to` is read as `mode` says, as the kernel reads a policy's mask with its flags
    /// (`Relative`: indices into the allowed memory nodes; `Static`: physical ids).
    ///
    /// # Errors
    /// Validation errors of `Bind(to)` (simulator), and the kernel's refusal (`EIO` when
    /// pages could not be moved).
    ///
    /// # Safety
    /// See the trait's safety contract.
    unsafe fn migrate(&self, m: &Mapping, to: &NodeMask, mode: NodeMode) -> Result<(), NumaError>;

    /// Unmaps the whole mapped length.
    ///
    /// # Errors
    /// The system's refusal (a token that is not this backend's).
    ///
    /// # Safety
    /// `m` came from this backend's `map` and nothing refers to its memory any more.
    unsafe fn unmap(&self, m: &Mapping) -> Result<(), NumaError>;

    /// The kernel's weighted-interleave table (`None`: the kernel has no weighted
    /// interleave). Read only; numaperf never writes it.
    ///
    /// # Errors
    /// Reading errors of the table (a weight that is not a number).
    fn kernel_weights(&self) -> Result<Option<KernelWeights>, NumaError>;

    /// The limit this process's memory cgroup and its ancestors put on its memory: the
    /// level with the least headroom ([`MemoryLimit`]; `None`: no level has a limit, or
    /// the backend has no cgroups). With `fresh`, read now (the process may have moved,
    /// a limit changed); without, the backend may answer from its last reading without a
    /// system call. The default: `None`.
    ///
    /// # Errors
    /// Reading errors of the cgroup files (naming the file).
    fn memory_limit(&self, fresh: bool) -> Result<Option<MemoryLimit>, NumaError> {
        let _ = fresh;
        Ok(None)
    }

    /// What this machine's kernel and this process let numaperf do (each feature found
    /// without side effects). The default knows only the topology's nodes and CPUs.
    #[cfg(feature = "alloc")]
    fn capabilities(&self) -> crate::capabilities::Capabilities {
        crate::capabilities::Capabilities::from_topology("unknown", self.topology())
    }

    /// The calling thread's CPU and node.
    ///
    /// # Errors
    /// The kernel's refusal (in practice never).
    fn current_cpu(&self) -> Result<CpuLocation, NumaError>;

    /// The calling thread's CPU affinity.
    ///
    /// # Errors
    /// The kernel's refusal (in practice never).
    fn thread_affinity(&self) -> Result<CpuSet, NumaError>;

    /// Sets the calling thread's CPU affinity.
    ///
    /// # Errors
    /// [`NumaError::EmptyCpuSet`], [`NumaError::InvalidCpu`] beyond 4095, and
    /// [`NumaError::CpuNotAllowed`] when none of the CPUs may be used.
    fn set_thread_affinity(&self, cpus: &CpuSet) -> Result<(), NumaError>;

    /// A token for `addr..addr + len`, memory the caller already has and this backend did
    /// not map (a `Vec`'s buffer, another library's mapping), for `apply_policy` and
    /// `page_locations`; it is dropped, never passed to `unmap`. The backend checks that a
    /// policy holds there: an ordinary file mapping is refused. The default refuses all.
    ///
    /// # Errors
    /// [`NumaError::FileBackedMemory`] for (part of) an ordinary file mapping,
    /// [`NumaError::ForeignMapping`] for a range not all mapped (the simulator: not inside
    /// one of its mappings), [`NumaError::Unsupported`] where the backend cannot place
    /// existing memory, reading errors.
    ///
    /// # Safety
    /// `addr` and `len` are multiples of `base_page_size()`; the range stays mapped while
    /// the token lives, and the caller owns it as the trait's mapping contract says.
    unsafe fn adopt(&self, addr: NonNull<u8>, len: usize) -> Result<Mapping, NumaError> {
        let _ = (addr, len);
        Err(NumaError::Unsupported {
            feature: "placing existing memory",
            since: "a backend that places memory",
        })
    }

    /// Creates a shared-memory object of `len` bytes rounded up to whole pages of `huge`
    /// (Linux: a memfd, `MFD_CLOEXEC`, `MFD_HUGETLB` for explicit huge pages), unmapped.
    /// A mapping of it ([`PlacementBackend::map_shared`]) in any process sees the same
    /// pages, and a policy given to a mapping of it holds for the object: every mapping
    /// allocates its pages by it. The default: [`NumaError::Unsupported`].
    ///
    /// # Errors
    /// [`NumaError::ZeroSize`], [`NumaError::SizeOverflow`],
    /// [`NumaError::HugePagesUnavailable`] for a huge page size the system lacks,
    /// [`NumaError::Unsupported`], and the system's refusal.
    fn create_shared(&self, len: usize, huge: HugePages) -> Result<SharedObject, NumaError> {
        let _ = (len, huge);
        Err(NumaError::Unsupported {
            feature: "shared memory regions",
            since: "a backend with shared memory (Linux memfd)",
        })
    }

    /// Opens another token for the object `handle` names (Linux: a duplicate file
    /// descriptor, close-on-exec), checked to be a shared-memory object placement holds
    /// for, with its size and page size.
    ///
    /// # Errors
    /// [`NumaError::NotSharedMemory`] for a handle that is not a shared-memory object of
    /// this backend (an ordinary file, a pipe, another backend's object),
    /// [`NumaError::ZeroSize`] for an empty object, [`NumaError::PermissionDenied`] for a
    /// descriptor not open for reading and writing, [`NumaError::SharedObjectUnsealed`] for
    /// a file anyone could shrink under the mapping, [`NumaError::Unsupported`], and the
    /// system's refusal (a closed descriptor).
    fn open_shared<'a>(&self, handle: SharedHandle<'a>) -> Result<SharedObject, NumaError> {
        let _ = handle;
        Err(NumaError::Unsupported {
            feature: "shared memory regions",
            since: "a backend with shared memory (Linux memfd)",
        })
    }

    /// Maps the first `len` bytes of `obj` (whole pages of its page size) shared and
    /// read-write. The mapping is an ordinary token: the mapping methods act on it, and a
    /// policy applied to (part of) it becomes the object's policy for that part, in every
    /// mapping of it; `unmap` unmaps this view only.
    ///
    /// # Errors
    /// [`NumaError::ZeroSize`], [`NumaError::SharedObjectTooSmall`] when the object holds
    /// fewer than `len` bytes, [`NumaError::HugePagesUnavailable`], the system's refusal.
    fn map_shared(&self, obj: &SharedObject, len: usize) -> Result<Mapping, NumaError> {
        let _ = (obj, len);
        Err(NumaError::Unsupported {
            feature: "shared memory regions",
            since: "a backend with shared memory (Linux memfd)",
        })
    }

    /// Gives back the object token (Linux: closes the descriptor). The object lives on
    /// while some mapping or other handle of it does.
    ///
    /// # Errors
    /// The system's refusal (a token that is not this backend's).
    ///
    /// # Safety
    /// `obj` came from this backend's `create_shared` or `open_shared` and is not used
    /// after this call.
    unsafe fn close_shared(&self, obj: &SharedObject) -> Result<(), NumaError> {
        let _ = obj;
        Err(NumaError::ForeignMapping)
    }

    /// The calling thread's own default policy (`None`: it has none, so memory without
    /// a policy of its own is allocated on the faulting CPU's node). The default: `None`.
    ///
    /// # Errors
    /// The kernel's refusal (in practice never).
    fn thread_policy(&self) -> Result<Option<ThreadPolicy>, NumaError> {
        Ok(None)
    }

    /// Sets the calling thread's default policy (`None`: back to the default); ranges with
    /// a policy of their own keep theirs. The default refuses any policy.
    ///
    /// # Errors
    /// Validation errors of the policy, [`NumaError::Unsupported`] for a mode the kernel
    /// lacks or a backend without thread policies, the kernel's refusal.
    fn set_thread_policy(&self, policy: Option<ThreadPolicy>) -> Result<(), NumaError> {
        match policy {
            None => Ok(()),
            Some(_) => Err(NumaError::Unsupported {
                feature: "a thread memory policy",
                since: "a backend that places memory",
            }),
        }
    }
}

/// Pages per node of a whole mapping, queried in batches of [`PLACEMENT_BATCH`].
///
/// # Errors
/// The backend's query errors.
pub fn placement<B: PlacementBackend + ?Sized>(
    b: &B,
    m: &Mapping,
) -> Result<PageCounts, NumaError> {
    let mut out = PageCounts::new();
    for_each_page_batch(b, m, |_, locs| {
        locs.iter().for_each(|&l| out.record(l));
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f(first_page, locations)` for consecutive batches of a mapping's pages.
///
/// # Errors
/// The backend's query errors, and `f`'s.
pub fn for_each_page_batch<B: PlacementBackend + ?Sized>(
    b: &B,
    m: &Mapping,
    mut f: impl FnMut(usize, &[PageLocation]) -> Result<(), NumaError>,
) -> Result<(), NumaError> {
    let mut buf = [PageLocation::NotPresent; PLACEMENT_BATCH];
    let total = m.page_count();
    let mut first = 0;
    while first < total {
        let n = PLACEMENT_BATCH.min(total - first);
        b.page_locations(m, first, &mut buf[..n])?;
        f(first, &buf[..n])?;
        first += n;
    }
    Ok(())
}

/// Implements `PlacementBackend` for a handle type that derefs to a backend.
macro_rules! forward_backend {
    ($($handle:ty),*) => {$(
        impl<T: PlacementBackend + ?Sized> PlacementBackend for $handle {
            type Topology = T::Topology;
            fn topology(&self) -> &Self::Topology {
                (**self).topology()
            }
            fn base_page_size(&self) -> usize {
                (**self).base_page_size()
            }
            fn free_memory(&self, node: NodeId, huge: HugePages) -> Result<u64, NumaError> {
                (**self).free_memory(node, huge)
            }
            fn map(&self, len: usize, huge: HugePages) -> Result<Mapping, NumaError> {
                (**self).map(len, huge)
            }
            unsafe fn apply_policy(
                &self,
                m: &Mapping,
                pages: PageRange,
                policy: &MemPolicy,
                opts: &RegionOptions,
                strict: bool,
            ) -> Result<(), NumaError> {
                // SAFETY: the caller upholds the contract for the backend behind the handle.
                unsafe { (**self).apply_policy(m, pages, policy, opts, strict) }
            }
            unsafe fn prefault(
                &self,
                m: &Mapping,
                pages: PageRange,
                how: Prefault,
            ) -> Result<(), NumaError> {
                // SAFETY: as above.
                unsafe { (**self).prefault(m, pages, how) }
            }
            unsafe fn populate_parts(
                &self,
                m: &Mapping,
                plan: &PopulatePlan,
            ) -> Result<(), NumaError> {
                // SAFETY: as above.
                unsafe { (**self).populate_parts(m, plan) }
            }
            fn page_locations(
                &self,
                m: &Mapping,
                first: usize,
                out: &mut [PageLocation],
            ) -> Result<(), NumaError> {
                (**self).page_locations(m, first, out)
            }
            unsafe fn migrate(
                &self,
                m: &Mapping,
                to: &NodeMask,
                mode: NodeMode,
            ) -> Result<(), NumaError> {
                // SAFETY: as above.
                unsafe { (**self).migrate(m, to, mode) }
            }
            fn kernel_weights(&self) -> Result<Option<KernelWeights>, NumaError> {
                (**self).kernel_weights()
            }
            unsafe fn unmap(&self, m: &Mapping) -> Result<(), NumaError> {
                // SAFETY: the caller upholds `unmap`'s contract for the backend behind the handle.
                unsafe { (**self).unmap(m) }
            }
            fn memory_limit(&self, fresh: bool) -> Result<Option<MemoryLimit>, NumaError> {
                (**self).memory_limit(fresh)
            }
            #[cfg(feature = "alloc")]
            fn capabilities(&self) -> crate::capabilities::Capabilities {
                (**self).capabilities()
            }
            fn current_cpu(&self) -> Result<CpuLocation, NumaError> {
                (**self).current_cpu()
            }
            fn thread_affinity(&self) -> Result<CpuSet, NumaError> {
                (**self).thread_affinity()
            }
            fn set_thread_affinity(&self, cpus: &CpuSet) -> Result<(), NumaError> {
                (**self).set_thread_affinity(cpus)
            }
            unsafe fn adopt(&self, addr: NonNull<u8>, len: usize) -> Result<Mapping, NumaError> {
                // SAFETY: the caller upholds `adopt`'s contract for the backend behind the handle.
                unsafe { (**self).adopt(addr, len) }
            }
            fn create_shared(
                &self,
                len: usize,
                huge: HugePages,
            ) -> Result<SharedObject, NumaError> {
                (**self).create_shared(len, huge)
            }
            fn open_shared<'a>(&self, handle: SharedHandle<'a>) -> Result<SharedObject, NumaError> {
                (**self).open_shared(handle)
            }
            fn map_shared(&self, obj: &SharedObject, len: usize) -> Result<Mapping, NumaError> {
                (**self).map_shared(obj, len)
            }
            unsafe fn close_shared(&self, obj: &SharedObject) -> Result<(), NumaError> {
                // SAFETY: the caller upholds `close_shared`'s contract for the backend.
                unsafe { (**self).close_shared(obj) }
            }
            fn thread_policy(&self) -> Result<Option<ThreadPolicy>, NumaError> {
                (**self).thread_policy()
            }
            fn set_thread_policy(&self, policy: Option<ThreadPolicy>) -> Result<(), NumaError> {
                (**self).set_thread_policy(policy)
            }
        }
    )*};
}

forward_backend!(&T);
#[cfg(feature = "alloc")]
forward_backend!(alloc::sync::Arc<T>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_every_count() {
        let (mut a, mut b) = (PageCounts::new(), PageCounts::new());
        a.record(PageLocation::Node(NodeId::new(0)));
        a.record(PageLocation::NotPresent);
        b.record(PageLocation::Node(NodeId::new(0)));
        b.record(PageLocation::Node(NodeId::new(1023)));
        b.record(PageLocation::Error(Errno::EFAULT));
        a.merge(&b);
        assert_eq!((a.on(NodeId::new(0)), a.on(NodeId::new(1023))), (2, 1));
        assert_eq!(
            (a.present(), a.not_present(), a.errors(), a.total()),
            (3, 1, 1, 5)
        );
        assert_eq!(a.nodes().count(), 2);
    }
}
