//! Making a region on any backend: validate, check capacity, map, apply the policy,
//! prefault, verify (hard mode); on any error after mapping, unmap before returning.

use crate::backend::{for_each_page_batch, Mapping, PageLocation, PlacementBackend};
use crate::error::NumaError;
use crate::node::NodeMask;
use crate::options::{Enforcement, NodeMode, Prefault, RegionOptions};
use crate::policy::MemPolicy;
use crate::populate::{plan_populate, POPULATE_PARALLEL_MIN};
use crate::topology::TopologyInfo;
use crate::weighted::{physical_weights, WeightedChunks};

/// Write-faults every page of `addr..addr + len` (pages of `page` bytes) from the calling
/// thread, keeping the content: the `Touch` prefault of every backend with real memory.
///
/// A compare-exchange of 0 with 0 stores whenever the byte is 0 (a fresh or zero-page
/// mapped page) and a non-zero byte means the page is already backed. An idempotent
/// `fetch_or(0)` would be wrong: LLVM folds it into a plain load in release builds, which
/// maps the shared zero page instead of allocating under the policy.
///
/// # Safety
/// `addr..addr + len` is mapped read-write and, for the duration of the call, no
/// reference to it exists and no other thread accesses it non-atomically (the
/// [`PlacementBackend`] mapping contract).
pub unsafe fn write_fault(addr: *mut u8, len: usize, page: usize) {
    use core::sync::atomic::{AtomicU8, Ordering};
    for off in (0..len).step_by(page.max(1)) {
        // SAFETY: inside the range (off < len), mapped read-write; by the contract nothing
        // else accesses it during the call.
        let byte = unsafe { AtomicU8::from_ptr(addr.add(off)) };
        let _ = byte.compare_exchange(0, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// `len` rounded up to a multiple of `unit` (a power of two).
///
/// # Errors
/// [`NumaError::ZeroSize`] for 0, [`NumaError::SizeOverflow`] past `isize::MAX`.
pub fn round_to_unit(len: usize, unit: usize) -> Result<usize, NumaError> {
    if len == 0 {
        return Err(NumaError::ZeroSize);
    }
    len.checked_add(unit - 1)
        .map(|l| l & !(unit - 1))
        .filter(|&l| l <= isize::MAX as usize)
        .ok_or(NumaError::SizeOverflow { len, unit })
}

/// Unmaps on drop unless disarmed: the one place error paths clean up.
pub(crate) struct UnmapGuard<'a, B: PlacementBackend + ?Sized> {
    pub(crate) backend: &'a B,
    pub(crate) mapping: Option<Mapping>,
}

impl<B: PlacementBackend + ?Sized> UnmapGuard<'_, B> {
    pub(crate) fn mapping(&self) -> &Mapping {
        // Invariant: `mapping` is Some until `disarm` consumes the guard.
        self.mapping.as_ref().unwrap_or_else(|| unreachable!())
    }

    pub(crate) fn disarm(mut self) -> Mapping {
        self.mapping.take().unwrap_or_else(|| unreachable!())
    }
}

impl<B: PlacementBackend + ?Sized> Drop for UnmapGuard<'_, B> {
    fn drop(&mut self) {
        if let Some(m) = self.mapping.take() {
            // SAFETY: `m` came from `self.backend.map` and was never handed out: no
            // reference to its memory exists outside this function.
            let _ = unsafe { self.backend.unmap(&m) };
        }
    }
}

/// Requests below `1 / CAPACITY_CHECK_FRACTION` of the total memory of the nodes they may
/// use skip [`check_capacity`]'s free-memory query (a sysfs read per node on Linux), so
/// an ordinary region costs only its mmap, mbind, populate and munmap.
pub const CAPACITY_CHECK_FRACTION: u64 = 16;

/// Checks that the nodes a region may use have `bytes` free, and that the process's
/// memory cgroup and its ancestors have `bytes` of headroom ([`MemoryLimit`](crate::cgroup::MemoryLimit)): an
/// over-capacity bound populate would get the process OOM-killed, by the kernel or by
/// the cgroup, which a library must not walk into. Racy by nature: it rules out what can
/// be foreseen, not what other processes do next.
///
/// Base-page and THP requests under `1/CAPACITY_CHECK_FRACTION` of the smaller of those
/// nodes' total memory and the cgroup limit last read (a cached reading, no system call)
/// pass without a query: they can exhaust a node or a cgroup only when it is already
/// nearly full, which the query could not promise to catch either (other processes
/// allocate concurrently). Larger ones read the cgroup limit afresh (the process may
/// have moved) and the nodes' free memory. Explicit huge pages are always checked
/// against their pools, and not against the cgroup (hugetlb pages are charged to the
/// hugetlb controller, not to memory).
///
/// # Errors
/// [`NumaError::InsufficientMemory`] (`available`: the free memory of the nodes, or the
/// cgroup's headroom when that is what is short), [`NumaError::HugePagesUnavailable`]
/// when no huge page is free at all, and the backend's free-memory and cgroup errors.
pub fn check_capacity<B: PlacementBackend + ?Sized>(
    b: &B,
    policy: &MemPolicy,
    eff: &NodeMask,
    opts: &RegionOptions,
    bytes: usize,
) -> Result<(), NumaError> {
    let topo = b.topology();
    let nodes = match policy {
        MemPolicy::Bind(_) => *eff,
        _ => topo.allowed_nodes().intersection(topo.memory_nodes()),
    };
    if !opts.huge_pages.is_explicit() {
        let total = nodes.iter().fold(0u64, |t, n| {
            t.saturating_add(topo.node_memory(n).unwrap_or(0))
        });
        let limit = b.memory_limit(false)?.map_or(u64::MAX, |l| l.limit);
        if (bytes as u64) < total.min(limit) / CAPACITY_CHECK_FRACTION {
            return Ok(());
        }
        if let Some(l) = b.memory_limit(true)? {
            if l.headroom() < bytes as u64 {
                return Err(NumaError::InsufficientMemory {
                    requested: bytes as u64,
                    available: l.headroom(),
                });
            }
        }
    }
    let mut available: u64 = 0;
    for n in nodes.iter() {
        available = available.saturating_add(b.free_memory(n, opts.huge_pages)?);
        if available >= bytes as u64 {
            return Ok(());
        }
    }
    let unit = opts.huge_pages.unit(b.base_page_size());
    if available == 0 && unit > b.base_page_size() {
        return Err(NumaError::HugePagesUnavailable { page_size: unit });
    }
    Err(NumaError::InsufficientMemory {
        requested: bytes as u64,
        available,
    })
}

/// Checks that every page of `m` is present on a node of `allowed`.
///
/// # Errors
/// [`NumaError::PlacementViolated`] naming the first page that is not, and the backend's
/// query errors.
pub fn verify_placement<B: PlacementBackend + ?Sized>(
    b: &B,
    m: &Mapping,
    allowed: &NodeMask,
) -> Result<(), NumaError> {
    check_pages(b, m, allowed, false)
}

/// Checks that every page of `m` that is present is on a node of `allowed` (pages never
/// touched are fine: the policy places them when they are).
///
/// # Errors
/// As [`verify_placement`].
pub fn verify_present_within<B: PlacementBackend + ?Sized>(
    b: &B,
    m: &Mapping,
    allowed: &NodeMask,
) -> Result<(), NumaError> {
    check_pages(b, m, allowed, true)
}

fn check_pages<B: PlacementBackend + ?Sized>(
    b: &B,
    m: &Mapping,
    allowed: &NodeMask,
    absent_ok: bool,
) -> Result<(), NumaError> {
    for_each_page_batch(b, m, |first, locs| {
        for (i, loc) in locs.iter().enumerate() {
            let found = match *loc {
                PageLocation::NotPresent if absent_ok => continue,
                PageLocation::Node(n) if allowed.contains(n) => continue,
                PageLocation::Node(n) => Some(n),
                _ => None,
            };
            return Err(NumaError::PlacementViolated {
                page: first + i,
                found,
            });
        }
        Ok(())
    })
}

/// The prefault a region really gets: hard mode needs every page present to verify it,
/// and explicit huge pages are always populated, because a hugetlb page that cannot be
/// had on the policy's nodes (the pools are global, the reservation is not per node) is a
/// SIGBUS on first touch, while `MADV_POPULATE_WRITE` returns it as an error.
pub fn effective_prefault(prefault: Prefault, opts: &RegionOptions) -> Prefault {
    if opts.huge_pages.is_explicit() {
        return Prefault::Populate;
    }
    match prefault {
        Prefault::None if opts.hard => Prefault::Populate,
        p => p,
    }
}

/// Gives `m` its policy. A weighted interleave whose weights differ from the kernel's
/// global table (or on a kernel without one) is laid out as chunks bound to single nodes
/// (`Preferred`, so a full node falls back as interleave does) in the asked proportion
/// ([`WeightedChunks`]), so the kernel's table is never written.
///
/// # Errors
/// The backend's, and [`NumaError::NoUsableNode`] when the policy has no usable node.
///
/// # Safety
/// The [`PlacementBackend`] mapping contract: the caller owns `m` and no reference to its
/// memory is live.
pub unsafe fn apply_policy<B: PlacementBackend + ?Sized>(
    b: &B,
    m: &Mapping,
    policy: &MemPolicy,
    opts: &RegionOptions,
) -> Result<(), NumaError> {
    let all = m.all_pages();
    if let MemPolicy::WeightedInterleave(_) = policy {
        let asked = physical_weights(policy, opts.node_mode, b.topology());
        let eff = asked.nodes();
        if eff.is_empty() {
            return Err(NumaError::NoUsableNode);
        }
        let kernel = b.kernel_weights()?;
        if !kernel.is_some_and(|k| k.matches(&asked, &eff)) {
            let mut single = *opts;
            single.node_mode = NodeMode::Default;
            for (node, pages) in WeightedChunks::new(all.count, &asked, &eff) {
                // SAFETY: forwarded from this function's contract; `pages` is inside `m`.
                unsafe { b.apply_policy(m, pages, &MemPolicy::Preferred(node), &single, false)? };
            }
            return Ok(());
        }
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { b.apply_policy(m, all, policy, opts, opts.hard) }
}

/// Makes a region: the whole life of a constructor, for any backend.
///
/// Returns the mapping and the enforcement it earned. `Hard` is reported only after a
/// strict Bind, population, and a check of every page. On any error nothing stays mapped.
///
/// # Errors
/// Validation ([`MemPolicy::validate`]), sizes ([`round_to_unit`]), capacity
/// ([`check_capacity`]), the backend's map, policy and prefault errors, and
/// [`NumaError::PlacementViolated`] when hard verification finds a misplaced page.
pub fn create_region<B: PlacementBackend + ?Sized>(
    b: &B,
    len: usize,
    policy: &MemPolicy,
    opts: &RegionOptions,
    prefault: Prefault,
) -> Result<(Mapping, Enforcement), NumaError> {
    create_with(b, len, policy, opts, prefault, || {
        Ok((b.map(len, opts.huge_pages)?, ()))
    })
    .map(|(m, (), e)| (m, e))
}

/// [`create_region`] with the mapping made by `make` once the input is validated and the
/// capacity checked; `make` may return something that cleans up on drop (`T`), which is
/// dropped after the mapping is unmapped on an error path.
pub(crate) fn create_with<B: PlacementBackend + ?Sized, T>(
    b: &B,
    len: usize,
    policy: &MemPolicy,
    opts: &RegionOptions,
    prefault: Prefault,
    make: impl FnOnce() -> Result<(Mapping, T), NumaError>,
) -> Result<(Mapping, T, Enforcement), NumaError> {
    let eff = policy.validate(opts, b.topology())?;
    let bytes = round_to_unit(len, opts.huge_pages.unit(b.base_page_size()))?;
    let prefault = effective_prefault(prefault, opts);
    if prefault != Prefault::None {
        check_capacity(b, policy, &eff, opts, bytes)?;
    }
    let (mut mapping, extra) = make()?;
    // Unmapping it may use as many threads as populating it (RegionOptions::populate_threads).
    mapping.set_thread_cap(opts.populate_threads);
    let guard = UnmapGuard {
        backend: b,
        mapping: Some(mapping),
    };
    let m = guard.mapping();
    // SAFETY: `m` was just mapped by `b` and is owned by the guard; no reference to its
    // memory exists outside this function.
    unsafe { apply_policy(b, m, policy, opts)? };
    // A large populate may be spread over threads, where a split is possible and the
    // caller's CPU is known (it decides which CPUs keep placement unchanged).
    let may_split = prefault == Prefault::Populate
        && bytes >= POPULATE_PARALLEL_MIN
        && opts.populate_threads != 1
        && b.topology().allowed_cpus().count() > 1;
    let caller = if may_split {
        b.current_cpu().ok()
    } else {
        None
    };
    if let Some(caller) = caller {
        let plan = plan_populate(
            b.topology(),
            policy,
            &eff,
            opts,
            caller,
            m.all_pages(),
            m.page_size(),
        );
        // SAFETY: as above; the plan's parts are disjoint ranges of `m`.
        unsafe { b.populate_parts(m, &plan)? };
    } else if prefault != Prefault::None {
        // SAFETY: as above.
        unsafe { b.prefault(m, m.all_pages(), prefault)? };
    }
    if opts.hard {
        verify_placement(b, m, &eff)?;
    }
    let enforcement = if opts.hard {
        Enforcement::Hard
    } else {
        Enforcement::Soft
    };
    Ok((guard.disarm(), extra, enforcement))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::backend::MockPlacementBackend;
    use crate::node::NodeId;
    use crate::options::HugePages;
    use crate::topology::{FixedTopology, NodeInfo};
    use core::ptr::NonNull;

    fn topo() -> FixedTopology<4> {
        let node = |id: u32| {
            let cpus = crate::node::CpuSet::single(id as usize);
            NodeInfo::new(NodeId::new(id), cpus, 1 << 30, 1 << 30)
        };
        FixedTopology::new(&[node(0), node(1)], &[10, 21, 21, 10], None, None).unwrap()
    }

    /// A mock with a 2-node topology, 4 KiB pages and a 4-page "mapping".
    fn mock() -> MockPlacementBackend {
        let mut b = MockPlacementBackend::new();
        let t = topo();
        b.expect_topology().return_const(t);
        b.expect_base_page_size().return_const(4096usize);
        b.expect_free_memory().returning(|_, _| Ok(1 << 30));
        b.expect_memory_limit().returning(|_| Ok(None));
        b.expect_map().returning(|len, _| {
            // SAFETY: a dangling but aligned address; the mock never touches memory.
            Ok(unsafe { Mapping::from_raw_parts(NonNull::dangling(), len, 4 * 4096, 4096) })
        });
        b
    }

    fn bind0() -> MemPolicy {
        MemPolicy::Bind(NodeMask::single(NodeId::new(0)))
    }

    #[test]
    fn policy_error_unmaps() {
        let mut b = mock();
        b.expect_apply_policy().returning(|_, _, _, _, _| {
            Err(NumaError::Os {
                op: "mbind",
                errno: crate::Errno::EIO,
            })
        });
        b.expect_unmap().times(1).returning(|_| Ok(()));
        let r = create_region(
            &b,
            4096,
            &bind0(),
            &RegionOptions::default(),
            Prefault::Touch,
        );
        assert_eq!(
            r.unwrap_err(),
            NumaError::Os {
                op: "mbind",
                errno: crate::Errno::EIO
            }
        );
    }

    #[test]
    fn prefault_error_unmaps() {
        let mut b = mock();
        b.expect_apply_policy().returning(|_, _, _, _, _| Ok(()));
        b.expect_prefault()
            .returning(|_, _, _| Err(NumaError::PermissionDenied { op: "madvise" }));
        b.expect_unmap().times(1).returning(|_| Ok(()));
        let r = create_region(
            &b,
            4096,
            &bind0(),
            &RegionOptions::default(),
            Prefault::Populate,
        );
        assert_eq!(
            r.unwrap_err(),
            NumaError::PermissionDenied { op: "madvise" }
        );
    }

    #[test]
    fn hard_mode_reports_hard_only_after_verification() {
        let mut b = mock();
        b.expect_apply_policy()
            .withf(|_, _, _, _, strict| *strict)
            .returning(|_, _, _, _, _| Ok(()));
        b.expect_prefault()
            .withf(|_, _, how| *how == Prefault::Populate)
            .returning(|_, _, _| Ok(()));
        b.expect_page_locations().returning(|_, first, out| {
            for (i, o) in out.iter_mut().enumerate() {
                *o = if first + i == 2 {
                    PageLocation::Node(NodeId::new(1))
                } else {
                    PageLocation::Node(NodeId::new(0))
                };
            }
            Ok(())
        });
        b.expect_unmap().times(1).returning(|_| Ok(()));
        let r = create_region(
            &b,
            4 * 4096,
            &bind0(),
            &RegionOptions::default().hard(),
            Prefault::None,
        );
        assert_eq!(
            r.unwrap_err(),
            NumaError::PlacementViolated {
                page: 2,
                found: Some(NodeId::new(1))
            }
        );
    }

    #[test]
    fn hard_mode_passes_when_every_page_is_placed() {
        let mut b = mock();
        b.expect_apply_policy().returning(|_, _, _, _, _| Ok(()));
        b.expect_prefault().returning(|_, _, _| Ok(()));
        b.expect_page_locations().returning(|_, _, out| {
            out.fill(PageLocation::Node(NodeId::new(0)));
            Ok(())
        });
        b.expect_unmap().never();
        let (m, e) = create_region(
            &b,
            4 * 4096,
            &bind0(),
            &RegionOptions::default().hard(),
            Prefault::Touch,
        )
        .unwrap();
        assert_eq!(e, Enforcement::Hard);
        assert_eq!(m.page_count(), 4);
    }

    #[test]
    fn absent_page_fails_hard_mode() {
        let mut b = mock();
        b.expect_apply_policy().returning(|_, _, _, _, _| Ok(()));
        b.expect_prefault().returning(|_, _, _| Ok(()));
        b.expect_page_locations().returning(|_, _, out| {
            out.fill(PageLocation::NotPresent);
            Ok(())
        });
        b.expect_unmap().times(1).returning(|_| Ok(()));
        let r = create_region(
            &b,
            4096,
            &bind0(),
            &RegionOptions::default().hard(),
            Prefault::Touch,
        );
        assert_eq!(
            r.unwrap_err(),
            NumaError::PlacementViolated {
                page: 0,
                found: None
            }
        );
    }

    #[test]
    fn bad_input_never_maps() {
        let mut b = mock();
        b.checkpoint();
        let t = topo();
        b.expect_topology().return_const(t);
        b.expect_base_page_size().return_const(4096usize);
        b.expect_free_memory().returning(|_, _| Ok(1 << 20));
        b.expect_memory_limit().returning(|_| Ok(None));
        b.expect_map().never();
        let o = RegionOptions::default();
        assert_eq!(
            create_region(&b, 0, &MemPolicy::Local, &o, Prefault::None).unwrap_err(),
            NumaError::ZeroSize
        );
        assert_eq!(
            create_region(&b, usize::MAX - 10, &MemPolicy::Local, &o, Prefault::None),
            Err(NumaError::SizeOverflow {
                len: usize::MAX - 10,
                unit: 4096
            })
        );
        assert_eq!(
            create_region(
                &b,
                4096,
                &MemPolicy::Preferred(NodeId::new(1024)),
                &o,
                Prefault::None
            )
            .unwrap_err(),
            NumaError::InvalidNode(1024)
        );
        assert_eq!(
            create_region(
                &b,
                4096,
                &MemPolicy::Bind(NodeMask::single(NodeId::new(3))),
                &o,
                Prefault::None
            )
            .unwrap_err(),
            NumaError::NodeNotFound(NodeId::new(3))
        );
        // 128 MiB (an eighth of the node: checked) bound to node 0, which has 1 MiB free:
        // refused before mapping.
        assert_eq!(
            create_region(&b, 128 << 20, &bind0(), &o, Prefault::Touch).unwrap_err(),
            NumaError::InsufficientMemory {
                requested: 128 << 20,
                available: 1 << 20
            }
        );
        assert_eq!(
            create_region(&b, 4096, &MemPolicy::Local, &o.hard(), Prefault::Touch),
            Err(NumaError::IncompatibleOption(
                crate::error::OptionConflict::HardNeedsBind
            ))
        );
        // Explicit huge pages round the size up to the huge page.
        assert_eq!(
            round_to_unit(1, HugePages::Explicit2M.unit(4096)),
            Ok(2 << 20)
        );
    }

    #[test]
    fn small_regions_skip_the_capacity_query_and_large_ones_make_it() {
        // Node 0 has 1 GiB: below 1/16 of it no query; at 1/16 one query per node.
        for (len, queries) in [((64 << 20) - 4096, 0), (64 << 20, 1)] {
            let mut b = mock();
            b.checkpoint();
            b.expect_topology().return_const(topo());
            b.expect_base_page_size().return_const(4096usize);
            b.expect_free_memory()
                .times(queries)
                .returning(|_, _| Ok(1 << 30));
            b.expect_memory_limit().returning(|_| Ok(None));
            b.expect_map().returning(|len, _| {
                // SAFETY: dangling but aligned; the mock never touches memory.
                Ok(unsafe { Mapping::from_raw_parts(NonNull::dangling(), len, len, 4096) })
            });
            b.expect_apply_policy().returning(|_, _, _, _, _| Ok(()));
            b.expect_prefault().returning(|_, _, _| Ok(()));
            // 64 MiB and more: a populate plan (one worker here: node 0 has one CPU).
            b.expect_current_cpu().returning(|| {
                Ok(crate::backend::CpuLocation {
                    cpu: 0,
                    node: NodeId::new(0),
                })
            });
            b.expect_populate_parts()
                .withf(|_, plan| plan.workers().len() == 1)
                .returning(|_, _| Ok(()));
            let r = create_region(
                &b,
                len,
                &bind0(),
                &RegionOptions::default(),
                Prefault::Populate,
            );
            assert!(r.is_ok(), "{len}: {r:?}");
        }
    }

    #[test]
    fn lazy_regions_skip_the_capacity_check() {
        let mut b = mock();
        b.checkpoint();
        let t = topo();
        b.expect_topology().return_const(t);
        b.expect_base_page_size().return_const(4096usize);
        b.expect_free_memory().never();
        b.expect_map().returning(|len, _| {
            // SAFETY: a dangling but aligned address; the mock never touches memory.
            Ok(unsafe { Mapping::from_raw_parts(NonNull::dangling(), len, 4096, 4096) })
        });
        b.expect_apply_policy().returning(|_, _, _, _, _| Ok(()));
        let (_, e) = create_region(
            &b,
            4096,
            &bind0(),
            &RegionOptions::default(),
            Prefault::None,
        )
        .unwrap();
        assert_eq!(e, Enforcement::Soft);
    }

    #[test]
    fn map_error_passes_through_without_unmap() {
        let mut b = mock();
        b.checkpoint();
        let t = topo();
        b.expect_topology().return_const(t);
        b.expect_base_page_size().return_const(4096usize);
        b.expect_free_memory().returning(|_, _| Ok(1 << 30));
        b.expect_map()
            .returning(|_, _| Err(NumaError::HugePagesUnavailable { page_size: 2 << 20 }));
        b.expect_unmap().never();
        let o = RegionOptions::default().huge_pages(HugePages::Explicit2M);
        assert_eq!(
            create_region(&b, 4096, &bind0(), &o, Prefault::Populate).unwrap_err(),
            NumaError::HugePagesUnavailable { page_size: 2 << 20 }
        );
    }

    #[test]
    fn explicit_huge_pages_are_always_populated() {
        let o = RegionOptions::default().huge_pages(HugePages::Explicit2M);
        for p in [Prefault::None, Prefault::Touch, Prefault::Populate] {
            assert_eq!(effective_prefault(p, &o), Prefault::Populate);
        }
        let mut b = mock();
        b.expect_apply_policy().returning(|_, _, _, _, _| Ok(()));
        b.expect_prefault()
            .times(1)
            .withf(|_, _, how| *how == Prefault::Populate)
            .returning(|_, _, _| Err(NumaError::HugePagesUnavailable { page_size: 2 << 20 }));
        b.expect_unmap().times(1).returning(|_| Ok(()));
        // A lazy hugetlb region bound to a node without free huge pages: an error, not a
        // SIGBUS at first touch.
        assert_eq!(
            create_region(&b, 2 << 20, &bind0(), &o, Prefault::None).unwrap_err(),
            NumaError::HugePagesUnavailable { page_size: 2 << 20 }
        );
    }

    /// A mock whose kernel table gives nodes 0 and 1 these weights.
    fn mock_with_kernel_weights(w0: u8, w1: u8) -> MockPlacementBackend {
        let mut b = mock();
        b.expect_kernel_weights().returning(move || {
            Ok(Some(crate::weighted::KernelWeights {
                weights: crate::policy::NodeWeights::new()
                    .with(NodeId::new(0), w0)
                    .with(NodeId::new(1), w1),
                auto: None,
            }))
        });
        b
    }

    fn weighted_3_1() -> MemPolicy {
        MemPolicy::WeightedInterleave(
            crate::policy::NodeWeights::new()
                .with(NodeId::new(0), 3)
                .with(NodeId::new(1), 1),
        )
    }

    #[test]
    fn weights_unlike_the_kernels_are_laid_out_in_chunks_without_touching_the_table() {
        let mut b = mock_with_kernel_weights(1, 1);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(std::vec::Vec::new()));
        let log = seen.clone();
        b.expect_apply_policy()
            .returning(move |_, pages, policy, opts, strict| {
                assert!(!strict && opts.node_mode == NodeMode::Default);
                log.lock().unwrap().push((pages, policy.clone()));
                Ok(())
            });
        let (m, _) = create_region(
            &b,
            4 * 4096,
            &weighted_3_1(),
            &RegionOptions::default(),
            Prefault::None,
        )
        .unwrap();
        let chunks = seen.lock().unwrap().clone();
        let mut per = [0usize; 2];
        for (pages, policy) in &chunks {
            let MemPolicy::Preferred(n) = policy else {
                panic!("{policy:?}")
            };
            per[n.get() as usize] += pages.count;
        }
        assert_eq!(per, [3, 1], "{chunks:?}");
        // A mock's mapping: nothing to unmap.
        let _ = m;
    }

    #[test]
    fn weights_like_the_kernels_use_the_kernel_mode() {
        let mut b = mock_with_kernel_weights(3, 1);
        b.expect_apply_policy()
            .times(1)
            .withf(|_, pages, policy, _, _| {
                pages.first == 0 && pages.count == 4 && *policy == weighted_3_1()
            })
            .returning(|_, _, _, _, _| Ok(()));
        let (m, _) = create_region(
            &b,
            4 * 4096,
            &weighted_3_1(),
            &RegionOptions::default(),
            Prefault::None,
        )
        .unwrap();
        // A mock's mapping: nothing to unmap.
        let _ = m;
    }

    #[test]
    fn the_memory_cgroup_limit_refuses_what_its_headroom_cannot_hold() {
        // 1 GiB nodes; the cgroup allows 64 MiB, 16 MiB of it used (48 MiB headroom).
        let cgroup = |b: &mut MockPlacementBackend, fresh_reads: usize| {
            let l = crate::cgroup::MemoryLimit {
                limit: 64 << 20,
                usage: 16 << 20,
                reclaimable: 0,
            };
            b.expect_memory_limit()
                .withf(|fresh| !*fresh)
                .returning(move |_| Ok(Some(l)));
            b.expect_memory_limit()
                .withf(|fresh| *fresh)
                .times(fresh_reads)
                .returning(move |_| Ok(Some(l)));
        };
        let fresh_mock = |fresh_reads| {
            let mut b = MockPlacementBackend::new();
            b.expect_topology().return_const(topo());
            b.expect_base_page_size().return_const(4096usize);
            b.expect_free_memory().returning(|_, _| Ok(1 << 30));
            cgroup(&mut b, fresh_reads);
            b.expect_map().returning(|len, _| {
                // SAFETY: dangling but aligned; the mock never touches memory.
                Ok(unsafe { Mapping::from_raw_parts(NonNull::dangling(), len, len, 4096) })
            });
            b.expect_apply_policy().returning(|_, _, _, _, _| Ok(()));
            b.expect_prefault().returning(|_, _, _| Ok(()));
            b.expect_current_cpu().returning(|| {
                Ok(crate::backend::CpuLocation {
                    cpu: 0,
                    node: NodeId::new(0),
                })
            });
            b.expect_populate_parts().returning(|_, _| Ok(()));
            b
        };
        // 64 MiB (a sixteenth of the node: the node check alone would let it through)
        // is more than the headroom: refused before anything is mapped.
        let mut b = fresh_mock(1);
        b.expect_map().never();
        let o = RegionOptions::default();
        assert_eq!(
            create_region(&b, 64 << 20, &bind0(), &o, Prefault::Populate).unwrap_err(),
            NumaError::InsufficientMemory {
                requested: 64 << 20,
                available: 48 << 20
            }
        );
        // 32 MiB fits (read afresh: it is over 1/16 of the limit); 2 MiB is under 1/16
        // of the limit and reads nothing; a lazy region is never checked.
        let b = fresh_mock(1);
        assert!(create_region(&b, 32 << 20, &bind0(), &o, Prefault::Populate).is_ok());
        let b = fresh_mock(0);
        assert!(create_region(&b, 2 << 20, &bind0(), &o, Prefault::Touch).is_ok());
        assert!(create_region(&b, 256 << 20, &bind0(), &o, Prefault::None).is_ok());
        // Explicit huge pages are not charged to the memory cgroup.
        let b = fresh_mock(0);
        let huge = o.huge_pages(HugePages::Explicit2M);
        assert!(create_region(&b, 64 << 20, &bind0(), &huge, Prefault::Populate).is_ok());
    }

    #[test]
    fn placement_counts_in_batches() {
        let mut b = mock();
        b.expect_page_locations().returning(|_, first, out| {
            for (i, o) in out.iter_mut().enumerate() {
                *o = if (first + i) % 2 == 0 {
                    PageLocation::Node(NodeId::new(0))
                } else {
                    PageLocation::NotPresent
                };
            }
            Ok(())
        });
        // SAFETY: dangling, never dereferenced by the mock.
        let m = unsafe { Mapping::from_raw_parts(NonNull::dangling(), 1, 1300 * 4096, 4096) };
        let c = crate::backend::placement(&b, &m).unwrap();
        assert_eq!(c.on(NodeId::new(0)), 650);
        assert_eq!(c.not_present(), 650);
        assert_eq!(c.total(), 1300);
        let mut e = MockPlacementBackend::new();
        e.expect_page_locations().returning(|_, _, _| {
            Err(NumaError::Os {
                op: "move_pages",
                errno: crate::Errno::EPERM,
            })
        });
        assert!(crate::backend::placement(&e, &m).is_err());
    }
}
