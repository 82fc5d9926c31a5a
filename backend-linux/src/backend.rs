//! `LinuxBackend`: `PlacementBackend` on the real kernel. rustix for mmap, madvise and
//! affinity; the raw mempolicy calls of `mempolicy.rs` for placement and queries.

use std::fmt::{self, Write as _};
use std::fs;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use numaperf_core::region::round_to_unit;
use numaperf_core::sysfs::node_free_bytes;
use numaperf_core::{
    CpuLocation, CpuSet, FileProblem, HugePages, KernelWeights, Mapping, MemPolicy, NodeId,
    NodeMask, NodeMode, NodeWeights, NumaError, OptionConflict, OwnedTopology, PageLocation,
    PageRange, PlacementBackend, Prefault, RegionOptions, SharedHandle, SharedObject, SysfsFile,
    TopologyInfo,
};
use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;
use rustix::mm::{self, Advice, MapFlags, ProtFlags};

use crate::mempolicy as mp;
use crate::topology::{read_once, read_text, read_topology_at, SYSFS_NODE_ROOT};

const HUGE_2M: usize = 2 << 20;
/// Where the kernel keeps the weighted-interleave weights (Linux 6.9).
const WEIGHTS_DIR: &str = "/sys/kernel/mm/mempolicy/weighted_interleave";

/// The real kernel. A cheap, cloneable handle; the topology is read once at creation.
#[derive(Clone)]
pub struct LinuxBackend {
    inner: Arc<Inner>,
}

struct Inner {
    topology: OwnedTopology,
    page_size: usize,
    /// `root`, opened, when it has per-node files (None: the one-node fallback).
    root_fd: Option<OwnedFd>,
    /// Probe results, by [`Probe`]: 0 unknown, 1 supported, 2 not supported.
    probes: [AtomicU8; 4],
    /// Whether anonymous memory gets transparent huge pages without `MADV_HUGEPAGE`
    /// (see [`thp_without_advice`]; read once at creation).
    thp_unadvised: bool,
    /// The live kernel's tree with exactly one node that has memory: that node's free
    /// memory is read from `/proc/meminfo`. A kernel booted with `deferred_init=lazy` (this
    /// project's development host) hands memory to the node's zones only as allocations
    /// need it, so the node's own `meminfo` showed 7 GiB free of 24 GiB while a 20 GiB
    /// populate bound to node 0 succeeded; `/proc/meminfo` counts the pending memory.
    system_is_the_node: bool,
    /// This process's memory cgroup (the capacity check's limit).
    cgroup: crate::cgroup::CgroupReader,
}

/// The transparent huge page settings: `enabled` (system-wide) and, from Linux 6.8,
/// `hugepages-<size>kB/enabled` per multi-size THP.
const THP_DIR: &str = "/sys/kernel/mm/transparent_hugepage";

/// Whether the kernel may back anonymous memory with huge pages (of any size) that was
/// not advised `MADV_HUGEPAGE`: the system mode is `always`, or some size's own mode is
/// (a size set to `inherit` follows the system mode). Such a folio is interleaved whole.
/// `dir` is [`THP_DIR`] or a copy of it.
fn thp_without_advice(dir: &Path) -> bool {
    let always = |p: &Path| read_text(p).is_some_and(|t| t.contains("[always]"));
    always(&dir.join("enabled"))
        || fs::read_dir(dir).is_ok_and(|dir| {
            dir.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with("hugepages-")
                    && always(&e.path().join("enabled"))
            })
        })
}

/// Kernel features that answer EINVAL when missing, probed on a scratch page.
#[derive(Clone, Copy)]
enum Probe {
    PreferredMany,
    WeightedInterleave,
    BalancingBind,
    BalancingPreferredMany,
}

impl Probe {
    fn feature(self) -> (&'static str, &'static str) {
        match self {
            Probe::PreferredMany => ("MPOL_PREFERRED_MANY", "Linux 5.15"),
            Probe::WeightedInterleave => ("MPOL_WEIGHTED_INTERLEAVE", "Linux 6.9"),
            Probe::BalancingBind => ("MPOL_F_NUMA_BALANCING with MPOL_BIND", "Linux 5.12"),
            Probe::BalancingPreferredMany => (
                "MPOL_F_NUMA_BALANCING with MPOL_PREFERRED_MANY",
                "Linux 6.7",
            ),
        }
    }

    fn mode(self) -> u32 {
        match self {
            Probe::PreferredMany => mp::MPOL_PREFERRED_MANY,
            Probe::WeightedInterleave => mp::MPOL_WEIGHTED_INTERLEAVE,
            Probe::BalancingBind => mp::MPOL_BIND | mp::MPOL_F_NUMA_BALANCING,
            Probe::BalancingPreferredMany => mp::MPOL_PREFERRED_MANY | mp::MPOL_F_NUMA_BALANCING,
        }
    }
}

impl LinuxBackend {
    /// Where the kernel publishes NUMA nodes.
    pub const SYSFS_ROOT: &'static str = SYSFS_NODE_ROOT;

    /// The live machine.
    ///
    /// # Errors
    /// What [`Self::with_sysfs_root`] returns for the kernel's own tree.
    pub fn new() -> Result<Self, NumaError> {
        Self::with_sysfs_root(SYSFS_NODE_ROOT)
    }

    /// The real kernel, but with the topology (and free memory) read from `root`. Given
    /// the kernel's own root ([`Self::SYSFS_ROOT`], as [`Self::new`] does) and exactly one
    /// node with memory, that node's free memory is `/proc/meminfo`'s (see the README).
    /// Only the kernel's own root may be absent (a kernel without NUMA sysfs): then the
    /// machine is one node holding every CPU, and the topology says it is a fallback.
    ///
    /// # Errors
    /// [`NumaError::Sysfs`] naming the file when the tree is not a machine (a captured
    /// root that does not exist, missing, unreadable or malformed files, a CPU in two
    /// nodes).
    pub fn with_sysfs_root(root: impl AsRef<Path>) -> Result<Self, NumaError> {
        let (topology, root_fd) = read_topology_at(root.as_ref())?;
        let system_is_the_node = root_fd.is_some()
            && root.as_ref() == Path::new(SYSFS_NODE_ROOT)
            && topology.memory_nodes().count() == 1;
        Ok(LinuxBackend {
            inner: Arc::new(Inner {
                system_is_the_node,
                topology,
                page_size: rustix::param::page_size(),
                root_fd,
                probes: Default::default(),
                thp_unadvised: thp_without_advice(Path::new(THP_DIR)),
                cgroup: crate::cgroup::CgroupReader::live(),
            }),
        })
    }

    /// The process-wide live backend, created on first use.
    ///
    /// # Errors
    /// What [`Self::new`] returns on the first call (later calls reuse the backend).
    pub fn shared() -> Result<Self, NumaError> {
        static SHARED: OnceLock<LinuxBackend> = OnceLock::new();
        if let Some(b) = SHARED.get() {
            return Ok(b.clone());
        }
        let b = Self::new()?;
        Ok(SHARED.get_or_init(|| b).clone())
    }

    /// Reads a small sysfs or procfs file into `buf` without touching the heap (the
    /// free-memory check runs on the region path): a relative `path` is under the node
    /// root, an absolute one is itself. Returns the text read (at most `buf.len()` bytes).
    fn read_small<'b>(
        &self,
        path: fmt::Arguments<'_>,
        buf: &'b mut [u8],
    ) -> Result<&'b str, NumaError> {
        let mut name = heapless::String::<128>::new();
        let file = SysfsFile::root("a small sysfs file");
        name.write_fmt(path)
            .map_err(|_| file.error(FileProblem::NotText))?;
        let dir = self
            .inner
            .root_fd
            .as_ref()
            .map_or(rustix::fs::CWD, |fd| fd.as_fd());
        let (_, n) =
            read_once(dir, name.as_str(), buf).map_err(|e| errno_error("read sysfs", e))?;
        core::str::from_utf8(&buf[..n]).map_err(|_| file.error(FileProblem::NotText))
    }

    /// Whether the kernel has a feature that answers EINVAL when missing; probed once
    /// with an `mbind` of an empty range (no side effect).
    fn supports(&self, probe: Probe) -> bool {
        let slot = &self.inner.probes[probe as usize];
        match slot.load(Ordering::Relaxed) {
            1 => return true,
            2 => return false,
            _ => {}
        }
        let ok = self.probe(probe.mode());
        slot.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
        ok
    }

    fn probe(&self, mode: u32) -> bool {
        crate::capabilities::mbind_knows(mode).unwrap_or(false)
    }

    /// Turns an `mbind` failure into a typed error: EINVAL for a mode or flag the kernel
    /// lacks becomes `Unsupported` (after a probe), EPERM `PermissionDenied`.
    fn mbind_error(&self, policy: &MemPolicy, opts: &RegionOptions, e: Errno) -> NumaError {
        if e == Errno::INVAL {
            let mode_probe = match policy {
                MemPolicy::PreferredMany(_) => Some(Probe::PreferredMany),
                MemPolicy::WeightedInterleave(_) => Some(Probe::WeightedInterleave),
                _ => None,
            };
            let flag_probe = match (policy, opts.numa_balancing) {
                (MemPolicy::Bind(_), true) => Some(Probe::BalancingBind),
                (MemPolicy::PreferredMany(_), true) => Some(Probe::BalancingPreferredMany),
                _ => None,
            };
            for p in [mode_probe, flag_probe].into_iter().flatten() {
                if !self.supports(p) {
                    let (feature, since) = p.feature();
                    return NumaError::Unsupported { feature, since };
                }
            }
        }
        errno_error("mbind", e)
    }

    fn mmap(&self, len: usize, flags: MapFlags) -> Result<*mut u8, Errno> {
        // SAFETY: a fresh anonymous mapping at an address the kernel picks (null hint):
        // it cannot alias any existing Rust object.
        unsafe {
            mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                flags,
            )
        }
        .map(|p| p.cast())
    }

    /// A 2 MiB-aligned mapping for transparent huge pages: over-map, trim, advise.
    fn map_thp(&self, mapped: usize) -> Result<*mut u8, NumaError> {
        let over = mapped.checked_add(HUGE_2M).ok_or(NumaError::SizeOverflow {
            len: mapped,
            unit: HUGE_2M,
        })?;
        let raw = self
            .mmap(over, MapFlags::PRIVATE)
            .map_err(|e| errno_error("mmap", e))? as usize;
        let start = (raw + HUGE_2M - 1) & !(HUGE_2M - 1);
        let (head, tail) = (start - raw, raw + over - (start + mapped));
        // SAFETY: head and tail are the parts of our fresh over-mapping outside
        // `start..start + mapped`; nothing refers to them.
        unsafe {
            if head > 0 {
                let _ = mm::munmap(raw as *mut _, head);
            }
            if tail > 0 {
                let _ = mm::munmap((start + mapped) as *mut _, tail);
            }
        }
        // SAFETY: advising our own fresh mapping changes no memory contents.
        if let Err(e) = unsafe { mm::madvise(start as *mut _, mapped, Advice::LinuxHugepage) } {
            // SAFETY: still our fresh mapping, unreferenced.
            let _ = unsafe { mm::munmap(start as *mut _, mapped) };
            return Err(errno_error("madvise(MADV_HUGEPAGE)", e));
        }
        Ok(start as *mut u8)
    }
}

impl PlacementBackend for LinuxBackend {
    type Topology = OwnedTopology;

    fn topology(&self) -> &OwnedTopology {
        &self.inner.topology
    }

    fn base_page_size(&self) -> usize {
        self.inner.page_size
    }

    fn free_memory(&self, node: NodeId, huge: HugePages) -> Result<u64, NumaError> {
        // No heap: paths are formatted and files read into stack buffers.
        let mut buf = [0u8; 4096];
        let sysfs = self.inner.root_fd.is_some();
        let hugepages = |dir: &str, buf: &mut [u8]| -> Result<u64, NumaError> {
            let unit = huge.unit(self.inner.page_size) as u64;
            let text = if sysfs {
                self.read_small(
                    format_args!("node{node}/hugepages/{dir}/free_hugepages"),
                    buf,
                )
            } else {
                self.read_small(
                    format_args!("/sys/kernel/mm/hugepages/{dir}/free_hugepages"),
                    buf,
                )
            };
            // No pool of this size (no such file) means none free.
            Ok(text
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0)
                * unit)
        };
        match huge {
            HugePages::Explicit2M => hugepages("hugepages-2048kB", &mut buf),
            HugePages::Explicit1G => hugepages("hugepages-1048576kB", &mut buf),
            HugePages::None | HugePages::Transparent => {
                // See `system_is_the_node`: the only memory node's free memory is the
                // system's, which is also the fallback's figure when there is no tree.
                let text = if sysfs && !self.inner.system_is_the_node {
                    self.read_small(format_args!("node{node}/meminfo"), &mut buf)?
                } else {
                    self.read_small(format_args!("/proc/meminfo"), &mut buf)?
                };
                node_free_bytes(text).ok_or(
                    SysfsFile::node(node, "meminfo").error(FileProblem::MissingField("MemFree:")),
                )
            }
        }
    }

    fn map(&self, len: usize, huge: HugePages) -> Result<Mapping, NumaError> {
        let unit = huge.unit(self.inner.page_size);
        let mapped = round_to_unit(len, unit)?;
        let addr = match huge {
            HugePages::None => self
                .mmap(mapped, MapFlags::PRIVATE)
                .map_err(|e| errno_error("mmap", e))?,
            HugePages::Transparent => self.map_thp(mapped)?,
            HugePages::Explicit2M | HugePages::Explicit1G => {
                let size = if huge == HugePages::Explicit2M {
                    MapFlags::HUGE_2MB
                } else {
                    MapFlags::HUGE_1GB
                };
                self.mmap(mapped, MapFlags::PRIVATE | MapFlags::HUGETLB | size)
                    .map_err(|e| match e {
                        Errno::NOMEM | Errno::INVAL => {
                            NumaError::HugePagesUnavailable { page_size: unit }
                        }
                        e => errno_error("mmap(MAP_HUGETLB)", e),
                    })?
            }
        };
        let addr = NonNull::new(addr).ok_or(NumaError::Os {
            op: "mmap",
            errno: numaperf_core::Errno::EFAULT,
        })?;
        // SAFETY: `addr..addr + mapped` is the fresh mapping made above; it stays mapped
        // until `unmap` is called with this token; `unit` divides `mapped`.
        Ok(unsafe { Mapping::from_raw_parts(addr, len, mapped, unit) })
    }

    unsafe fn apply_policy(
        &self,
        m: &Mapping,
        pages: PageRange,
        policy: &MemPolicy,
        opts: &RegionOptions,
        strict: bool,
    ) -> Result<(), NumaError> {
        let (addr, len) = m.range(pages)?;
        // A weighted interleave takes the kernel's own weights (its global table, never
        // written here); the region layer lays out other weights itself.
        let mode = crate::existing::mode_of(policy);
        let flags = mode_flags(opts.node_mode)
            | if opts.numa_balancing {
                mp::MPOL_F_NUMA_BALANCING
            } else {
                0
            };
        let k = policy.nodes().to_kernel();
        let mf = if strict {
            mp::MPOL_MF_STRICT | mp::MPOL_MF_MOVE
        } else {
            0
        };
        // SAFETY: the caller owns the mapping (the trait's contract); mbind changes only
        // the range's policy (and, with MPOL_MF_MOVE, where its pages live, not their
        // content).
        unsafe { mp::mbind(addr, len, mode | flags, k.used_words(), k.maxnode(), mf) }
            .map_err(|e| self.mbind_error(policy, opts, e))?;
        let interleaves = matches!(
            policy,
            MemPolicy::Interleave(_) | MemPolicy::WeightedInterleave(_)
        );
        if interleaves && opts.huge_pages == HugePages::None && self.inner.thp_unadvised {
            // Unadvised THP would back aligned blocks (2 MiB, or an mTHP size) with huge
            // pages and interleave them whole; base pages were asked for, so the unit stays
            // the base page.
            // SAFETY: the caller's own live range; the advice changes only its page size.
            unsafe { mm::madvise(addr.cast(), len, Advice::LinuxNoHugepage) }
                .map_err(|e| errno_error("madvise(MADV_NOHUGEPAGE)", e))?;
        }
        if let Some(home) = opts.home_node {
            // SAFETY: as above; the call sets the home node of the range's policy.
            unsafe { mp::set_mempolicy_home_node(addr, len, home.get() as usize, 0) }.map_err(
                |e| match e {
                    Errno::NOSYS => NumaError::Unsupported {
                        feature: "set_mempolicy_home_node",
                        since: "Linux 5.17",
                    },
                    Errno::OPNOTSUPP => NumaError::IncompatibleOption(
                        OptionConflict::HomeNodeNeedsBindOrPreferredMany,
                    ),
                    e => errno_error("set_mempolicy_home_node", e),
                },
            )?;
        }
        Ok(())
    }

    unsafe fn prefault(
        &self,
        m: &Mapping,
        pages: PageRange,
        how: Prefault,
    ) -> Result<(), NumaError> {
        let (addr, len) = m.range(pages)?;
        let hugetlb = m.page_size() > self.inner.page_size;
        match how {
            Prefault::None => Ok(()),
            // A hugetlb page that cannot be had on the policy's nodes is SIGBUS on touch;
            // populate reports it as an error instead.
            Prefault::Touch if !hugetlb => {
                // SAFETY: the caller owns the range and nothing else accesses it.
                unsafe { numaperf_core::region::write_fault(addr, len, m.page_size()) };
                Ok(())
            }
            Prefault::Touch | Prefault::Populate => {
                // SAFETY: populating the caller's range allocates pages; content stays.
                match unsafe { mm::madvise(addr.cast(), len, Advice::LinuxPopulateWrite) } {
                    Ok(()) => Ok(()),
                    // Before Linux 5.14 there is no MADV_POPULATE_WRITE. MAP_POPULATE would
                    // fault pages before mbind gave the range its policy, so touch instead.
                    Err(Errno::INVAL) if !hugetlb => {
                        // SAFETY: as for Touch.
                        unsafe { numaperf_core::region::write_fault(addr, len, m.page_size()) };
                        Ok(())
                    }
                    Err(Errno::NOMEM | Errno::FAULT) if hugetlb => {
                        Err(NumaError::HugePagesUnavailable {
                            page_size: m.page_size(),
                        })
                    }
                    Err(e) => Err(errno_error("madvise(MADV_POPULATE_WRITE)", e)),
                }
            }
        }
    }

    /// One thread per worker, each allowed on its worker's node
    /// ([`numaperf_core::populate::worker_cpus`]: new threads, so no affinity is
    /// restored), claiming chunks with `MADV_POPULATE_WRITE` until none is left, so a
    /// thread whose CPU is taken by other work does less of the region. When a thread
    /// cannot be started, the calling thread claims chunks too; when one cannot be pinned
    /// it runs unpinned (placement by the policy does not depend on it). The first error
    /// stops the others at their next claim.
    unsafe fn populate_parts(
        &self,
        m: &Mapping,
        plan: &numaperf_core::populate::PopulatePlan,
    ) -> Result<(), NumaError> {
        use numaperf_core::populate::{worker_cpus, ChunkCursor};
        let workers = plan.workers();
        if workers.len() <= 1 {
            // SAFETY: forwarded from this function's contract.
            return unsafe { self.prefault(m, plan.chunks().pages(), Prefault::Populate) };
        }
        let cursor = ChunkCursor::new(*plan.chunks());
        let work = |cpus: Option<CpuSet>| {
            if let Some(cpus) = cpus {
                let _ = crate::affinity::set_thread_affinity(&cpus);
            }
            while let Some(pages) = cursor.claim() {
                // SAFETY: the caller owns `m` (the trait's contract), and the cursor hands
                // each chunk to one thread only: this thread alone touches `pages`.
                if let Err(e) = unsafe { self.prefault(m, pages, Prefault::Populate) } {
                    cursor.stop();
                    return Err(e);
                }
            }
            Ok(())
        };
        std::thread::scope(|s| {
            let work = &work;
            let running: Vec<_> = workers
                .iter()
                .filter_map(|&cpu| {
                    let cpus = worker_cpus(&self.inner.topology, cpu);
                    std::thread::Builder::new()
                        .name("numaperf-populate".into())
                        .spawn_scoped(s, move || work(Some(cpus)))
                        .ok()
                })
                .collect();
            let mut result = if running.len() < workers.len() {
                work(None)
            } else {
                Ok(())
            };
            for h in running {
                let r = h.join().unwrap_or(Err(NumaError::Os {
                    op: "madvise(MADV_POPULATE_WRITE)",
                    errno: numaperf_core::Errno::EFAULT,
                }));
                result = result.and(r);
            }
            result
        })
    }

    fn page_locations(
        &self,
        m: &Mapping,
        first: usize,
        out: &mut [PageLocation],
    ) -> Result<(), NumaError> {
        const BATCH: usize = 512;
        m.range(PageRange {
            first,
            count: out.len(),
        })?;
        let base = m.as_ptr() as usize;
        let mut pages = [std::ptr::null::<u8>(); BATCH];
        let mut status = [0i32; BATCH];
        for (c, chunk) in out.chunks_mut(BATCH).enumerate() {
            let n = chunk.len();
            for (i, p) in pages[..n].iter_mut().enumerate() {
                *p = (base + (first + c * BATCH + i) * m.page_size()) as *const u8;
            }
            mp::move_pages_query(&pages[..n], &mut status[..n])
                .map_err(|e| errno_error("move_pages", e))?;
            for (o, &s) in chunk.iter_mut().zip(&status[..n]) {
                *o = match s {
                    s if s >= 0 => PageLocation::Node(NodeId::new(s as u32)),
                    // -ENOENT: not present; -EFAULT: the same on 4.3-6.11, or the zero page.
                    -2 | -14 => PageLocation::NotPresent,
                    s => PageLocation::Error(numaperf_core::Errno::from_raw(s)),
                };
            }
        }
        Ok(())
    }

    unsafe fn migrate(&self, m: &Mapping, to: &NodeMask, mode: NodeMode) -> Result<(), NumaError> {
        let k = to.to_kernel();
        // SAFETY: the caller owns the mapping; MPOL_MF_MOVE moves its pages, keeping their
        // content. The mode flags make the kernel read `to` as the region's policy reads it.
        unsafe {
            mp::mbind(
                m.as_ptr(),
                m.mapped_len(),
                mp::MPOL_BIND | mode_flags(mode),
                k.used_words(),
                k.maxnode(),
                mp::MPOL_MF_MOVE | mp::MPOL_MF_STRICT,
            )
        }
        .map_err(|e| errno_error("mbind(MPOL_MF_MOVE)", e))
    }

    fn kernel_weights(&self) -> Result<Option<KernelWeights>, NumaError> {
        kernel_weights(self.inner.topology.nodes())
    }

    /// Unmaps `m`. A large mapping's pages are first released from up to
    /// [`Mapping::thread_cap`] threads (`MADV_DONTNEED` on chunks they claim in turn,
    /// [`numaperf_core::populate::plan_release`]), since
    /// `munmap` frees every page on the calling thread: about 40 ms instead of 66 ms for a
    /// populated GiB here. A part that fails (an old kernel's hugetlb) is left to `munmap`.
    unsafe fn unmap(&self, m: &Mapping) -> Result<(), NumaError> {
        let pages = PageRange {
            first: 0,
            count: m.mapped_len() / m.page_size().max(1),
        };
        let threads = match m.thread_cap() {
            0 => self.inner.topology.allowed_cpus().count(),
            cap => cap.min(self.inner.topology.allowed_cpus().count()),
        };
        let plan = numaperf_core::populate::plan_release(pages, m.page_size(), threads);
        if plan.threads > 1 {
            // SAFETY: the caller guarantees `m` is no longer referenced (this function's
            // contract), so discarding its contents before the unmap changes nothing.
            unsafe { release_in_parallel(m, &plan) };
        }
        // SAFETY: the caller guarantees `m` came from `map` and is no longer referenced;
        // `mapped_len` is the whole (rounded) length that was mapped.
        unsafe { mm::munmap(m.as_ptr().cast(), m.mapped_len()) }
            .map_err(|e| errno_error("munmap", e))
    }

    fn create_shared(&self, len: usize, huge: HugePages) -> Result<SharedObject, NumaError> {
        crate::shared::create(len, huge, self.inner.page_size)
    }

    fn open_shared<'a>(&self, handle: SharedHandle<'a>) -> Result<SharedObject, NumaError> {
        crate::shared::open(handle, self.inner.page_size)
    }

    fn map_shared(&self, obj: &SharedObject, len: usize) -> Result<Mapping, NumaError> {
        crate::shared::map(obj, len)
    }

    unsafe fn close_shared(&self, obj: &SharedObject) -> Result<(), NumaError> {
        crate::shared::close(obj)
    }

    /// The v2 `memory.max - memory.current` (v1 `memory.limit_in_bytes -
    /// memory.usage_in_bytes`) of the process's cgroup and every ancestor, the least
    /// headroom winning. The mounts are read at the first call; each fresh reading
    /// re-reads `/proc/self/cgroup` (a process may have moved) and the levels' two
    /// files, without the heap.
    fn memory_limit(&self, fresh: bool) -> Result<Option<numaperf_core::MemoryLimit>, NumaError> {
        self.inner.cgroup.limit(fresh)
    }

    fn capabilities(&self) -> numaperf_core::Capabilities {
        crate::capabilities::detect(
            &self.inner.topology,
            self.inner.root_fd.as_ref().map(|fd| fd.as_fd()),
            &self.inner.cgroup,
        )
    }

    fn current_cpu(&self) -> Result<CpuLocation, NumaError> {
        let (cpu, node) = mp::getcpu().map_err(|e| errno_error("getcpu", e))?;
        Ok(CpuLocation {
            cpu: cpu as usize,
            node: NodeId::new(node),
        })
    }

    fn thread_affinity(&self) -> Result<CpuSet, NumaError> {
        crate::affinity::thread_affinity()
    }

    fn set_thread_affinity(&self, cpus: &CpuSet) -> Result<(), NumaError> {
        crate::affinity::set_thread_affinity(cpus)
    }

    /// Checks `/proc/self/maps`: every byte mapped, none an ordinary file (a tmpfs or
    /// hugetlbfs file, memfd, `/dev/shm` and System V memory are shared memory and keep a
    /// policy).
    unsafe fn adopt(&self, addr: NonNull<u8>, len: usize) -> Result<Mapping, NumaError> {
        let page = self.inner.page_size;
        let start = addr.as_ptr() as usize;
        if len == 0 || start % page != 0 || len % page != 0 {
            return Err(NumaError::NoWholePage {
                len,
                page_size: page,
            });
        }
        let end = start
            .checked_add(len)
            .ok_or(NumaError::SizeOverflow { len, unit: page })?;
        crate::existing::check_placeable(start, end)?;
        // SAFETY: the range is mapped (just checked) and, by this function's contract,
        // stays mapped while the token lives; it is never unmapped through the token.
        Ok(unsafe { Mapping::from_raw_parts(addr, len, len, page) })
    }

    fn thread_policy(&self) -> Result<Option<numaperf_core::ThreadPolicy>, NumaError> {
        crate::existing::thread_policy()
    }

    fn set_thread_policy(
        &self,
        policy: Option<numaperf_core::ThreadPolicy>,
    ) -> Result<(), NumaError> {
        crate::existing::set_thread_policy(policy.as_ref()).map_err(|e| match &policy {
            Some(p) => self.mbind_error(&p.policy, &p.options(), e),
            None => errno_error("set_mempolicy", e),
        })
    }
}

/// The typed error of a failed call. `ENOSYS` means the kernel (no `CONFIG_NUMA`) or this
/// architecture (no raw system call layer: see `sys/`) lacks the call.
pub(crate) fn errno_error(op: &'static str, e: Errno) -> NumaError {
    if e == Errno::NOSYS {
        return NumaError::Unsupported {
            feature: op,
            since: "a NUMA kernel, on x86_64, aarch64, riscv64 or powerpc64le",
        };
    }
    NumaError::from_errno(op, e.into_typed())
}

/// The kernel's mode flags for how a policy's node ids are read.
fn mode_flags(mode: NodeMode) -> u32 {
    match mode {
        NodeMode::Default => 0,
        NodeMode::Static => mp::MPOL_F_STATIC_NODES,
        NodeMode::Relative => mp::MPOL_F_RELATIVE_NODES,
    }
}

/// rustix's errno as the core's typed one.
trait IntoTyped {
    fn into_typed(self) -> numaperf_core::Errno;
}

impl IntoTyped for Errno {
    fn into_typed(self) -> numaperf_core::Errno {
        numaperf_core::Errno::from_raw(self.raw_os_error())
    }
}

/// The live kernel's weighted-interleave table for `nodes` (`Ok(None)`: a kernel before
/// 6.9, without weighted interleave). Read only: numaperf never writes the table.
///
/// # Errors
/// [`NumaError::Sysfs`] for a weight file that does not hold a number 1..=255.
pub fn kernel_weights(nodes: &NodeMask) -> Result<Option<KernelWeights>, NumaError> {
    read_kernel_weights(Path::new(WEIGHTS_DIR), nodes)
}

/// Reads the weighted-interleave table in `dir` for `nodes` (`Ok(None)`: no such table,
/// a kernel before 6.9). The auto-mode file is `auto` (on 6.18 it is named
/// `__auto_type`, a macro clash in the kernel's source); it is read, never written.
/// Each file costs openat + read + close (a missing one, openat alone); nodes without a
/// file (no memory) are left out.
fn read_kernel_weights(dir: &Path, nodes: &NodeMask) -> Result<Option<KernelWeights>, NumaError> {
    let file = SysfsFile::root("/sys/kernel/mm/mempolicy/weighted_interleave/node*");
    let read = |name: &str, buf: &mut [u8; 64]| -> Result<Option<usize>, NumaError> {
        match read_once(rustix::fs::CWD, dir.join(name).as_path(), buf) {
            Ok((_, n)) => Ok(Some(n)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(file.error(FileProblem::Unreadable(e.into_typed()))),
        }
    };
    let mut buf = [0u8; 64];
    let mut weights = NodeWeights::new();
    let mut found = false;
    for n in nodes.iter() {
        let Some(len) = read(&format!("node{n}"), &mut buf)? else {
            continue;
        };
        found = true;
        let w: u8 = core::str::from_utf8(&buf[..len])
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .ok_or(file.error(FileProblem::Inconsistent("a weight is a number 1..=255")))?;
        weights.set(n, w.max(1))?;
    }
    let mut auto = None;
    for name in ["auto", "__auto_type"] {
        if let Some(len) = read(name, &mut buf)? {
            auto = Some(buf[..len].trim_ascii() == b"true");
            break;
        }
    }
    if !found && auto.is_none() {
        return Ok(None);
    }
    Ok(Some(KernelWeights { weights, auto }))
}

/// Frees `m`'s pages with `MADV_DONTNEED` from `plan.threads` threads, the calling one
/// included, each claiming chunks until none is left (a thread that cannot be started
/// leaves its share to the others). Errors are ignored: `munmap` frees what is left.
///
/// # Safety
/// Nothing may refer to `m`'s memory: its contents are discarded.
unsafe fn release_in_parallel(m: &Mapping, plan: &numaperf_core::populate::ReleasePlan) {
    let cursor = numaperf_core::populate::ChunkCursor::new(plan.chunks);
    let release = || {
        while let Some(p) = cursor.claim() {
            if let Ok((addr, len)) = m.range(p) {
                // SAFETY: `addr..addr + len` lies inside `m` (checked by `range`), whose
                // contents nobody needs any more (this function's contract).
                let _ = unsafe { mm::madvise(addr.cast(), len, Advice::LinuxDontNeed) };
            }
        }
    };
    std::thread::scope(|s| {
        let release = &release;
        for _ in 1..plan.threads {
            let _ = std::thread::Builder::new()
                .name("numaperf-release".into())
                .spawn_scoped(s, release);
        }
        release();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parallel_populate_places_every_page_as_one_thread_would() {
        use numaperf_core::populate::{plan_populate, POPULATE_PARALLEL_MIN};
        let b = LinuxBackend::new().unwrap();
        let node = b.topology().memory_nodes().first().unwrap();
        let policy = MemPolicy::Bind(NodeMask::single(node));
        let opts = RegionOptions::new();
        let (m, _) =
            numaperf_core::create_region(&b, POPULATE_PARALLEL_MIN, &policy, &opts, Prefault::None)
                .unwrap();
        let eff = policy.validate(&opts, b.topology()).unwrap();
        let caller = b.current_cpu().unwrap();
        let plan = plan_populate(
            b.topology(),
            &policy,
            &eff,
            &opts,
            caller,
            m.all_pages(),
            4096,
        );
        let cpus = b.topology().allowed_cpus().count();
        assert_eq!(
            plan.workers().len(),
            cpus.min(2),
            "64 MiB: at most 2 threads of 32 MiB"
        );
        assert_eq!(plan.chunks().len(), 8, "64 MiB in chunks of 8 MiB");
        // SAFETY: the test owns `m`; nothing refers to its memory.
        unsafe { b.populate_parts(&m, &plan) }.unwrap();
        let c = numaperf_core::placement(&b, &m).unwrap();
        assert_eq!(c.on(node), m.page_count() as u64, "{c}");
        // SAFETY: as above.
        unsafe { b.unmap(&m) }.unwrap();
    }

    #[test]
    fn a_large_mapping_is_released_in_parts_and_then_unmapped() {
        use numaperf_core::populate::{plan_release, POPULATE_PARALLEL_MIN};
        let b = LinuxBackend::new().unwrap();
        let node = b.topology().memory_nodes().first().unwrap();
        let policy = MemPolicy::Bind(NodeMask::single(node));
        let (m, _) = numaperf_core::create_region(
            &b,
            POPULATE_PARALLEL_MIN,
            &policy,
            &RegionOptions::new(),
            Prefault::Populate,
        )
        .unwrap();
        let cpus = b.topology().allowed_cpus().count();
        let plan = plan_release(m.all_pages(), m.page_size(), cpus);
        assert_eq!(
            plan.threads,
            cpus.min(2),
            "64 MiB: at most 2 threads of 32 MiB"
        );
        let before = numaperf_core::placement(&b, &m).unwrap();
        assert_eq!(before.on(node), m.page_count() as u64, "{before}");
        // SAFETY: the test owns `m`; nothing refers to its memory.
        unsafe { release_in_parallel(&m, &plan) };
        let after = numaperf_core::placement(&b, &m).unwrap();
        assert_eq!(after.not_present(), m.page_count() as u64, "{after}");
        // SAFETY: as above.
        unsafe { b.unmap(&m) }.unwrap();
    }

    #[test]
    fn unadvised_thp_is_the_system_mode_or_any_size_set_to_always() {
        let dir = std::env::temp_dir().join(format!("numaperf-thp-{}", std::process::id()));
        let set = |file: &str, text: &str| {
            let p = dir.join(file);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        set("enabled", "always madvise [never]\n");
        set(
            "hugepages-2048kB/enabled",
            "always [inherit] madvise never\n",
        );
        set("hugepages-64kB/enabled", "always inherit [madvise] never\n");
        assert!(!thp_without_advice(&dir));
        set("enabled", "[always] madvise never\n");
        assert!(thp_without_advice(&dir));
        set("enabled", "always [madvise] never\n");
        set("hugepages-64kB/enabled", "[always] inherit madvise never\n");
        assert!(thp_without_advice(&dir));
        fs::remove_dir_all(&dir).unwrap();
        assert!(!thp_without_advice(&dir));
    }
}
