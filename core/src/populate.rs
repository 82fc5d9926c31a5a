//! Parallel populate: how a large region's pages are split over threads and which CPU
//! each thread runs on, so that placement does not change and the zeroing runs near the
//! memory. Pure logic; a backend that can run threads carries the plan out.

use crate::backend::{CpuLocation, PageRange};
use crate::node::{CpuSet, NodeId, NodeMask};
use crate::options::RegionOptions;
use crate::policy::MemPolicy;
use crate::topology::TopologyInfo;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Regions smaller than this are populated by the calling thread alone (a thread costs
/// tens of microseconds; below this it would not pay for itself).
pub const POPULATE_PARALLEL_MIN: usize = 64 << 20;
/// Each populating thread has at least this many bytes to do (so many threads are
/// started at most).
pub const POPULATE_PART_MIN: usize = 32 << 20;
/// The most threads one populate uses.
pub const POPULATE_THREADS_MAX: usize = 64;
/// Chunk boundaries fall on multiples of this many bytes, so a transparent huge page is
/// never split between two threads.
pub const POPULATE_ALIGN: usize = 2 << 20;
/// Threads populate (and release) a large region in chunks of this many bytes (about
/// 1.5 ms of populate each on the development host), claimed one after another from a
/// shared [`ChunkCursor`]: a thread whose CPU is busy or descheduled does fewer chunks
/// instead of holding the others up with a fixed share.
pub const POPULATE_CHUNK: usize = 8 << 20;

/// A page range cut into consecutive chunks of equal size (the last may be shorter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunks {
    pages: PageRange,
    /// Pages per chunk, at least 1.
    chunk: usize,
}

impl Chunks {
    /// `pages` (of `page_size` bytes) in chunks of about `chunk_bytes`: a multiple of
    /// [`POPULATE_ALIGN`] when pages are smaller than that, and at least one page.
    pub fn new(pages: PageRange, page_size: usize, chunk_bytes: usize) -> Self {
        let page_size = page_size.max(1);
        let unit = (POPULATE_ALIGN / page_size).max(1);
        let chunk = (chunk_bytes / page_size).max(1).next_multiple_of(unit);
        Chunks { pages, chunk }
    }

    /// `pages` as one chunk.
    pub fn whole(pages: PageRange) -> Self {
        Chunks {
            pages,
            chunk: pages.count.max(1),
        }
    }

    /// The whole range.
    pub fn pages(&self) -> PageRange {
        self.pages
    }

    /// How many chunks.
    pub fn len(&self) -> usize {
        self.pages.count.div_ceil(self.chunk)
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.pages.count == 0
    }

    /// Chunk `i`, in address order.
    pub fn get(&self, i: usize) -> Option<PageRange> {
        let offset = i.checked_mul(self.chunk)?;
        (offset < self.pages.count).then(|| PageRange {
            first: self.pages.first + offset,
            count: self.chunk.min(self.pages.count - offset),
        })
    }

    /// Every chunk, in address order.
    pub fn iter(&self) -> impl Iterator<Item = PageRange> + '_ {
        (0..self.len()).map_while(|i| self.get(i))
    }
}

/// Hands each chunk of a [`Chunks`] to exactly one of the threads that claim concurrently,
/// in address order.
///
/// ```
/// use numaperf_core::backend::PageRange;
/// use numaperf_core::populate::{ChunkCursor, Chunks};
///
/// let chunks = Chunks::new(PageRange { first: 0, count: 1024 }, 4096, 2 << 20);
/// let cursor = ChunkCursor::new(chunks);
/// assert_eq!(cursor.claim(), Some(PageRange { first: 0, count: 512 }));
/// cursor.stop();
/// assert_eq!(cursor.claim(), None);
/// ```
#[derive(Debug)]
pub struct ChunkCursor {
    chunks: Chunks,
    next: AtomicUsize,
}

impl ChunkCursor {
    /// A cursor at the first chunk.
    pub fn new(chunks: Chunks) -> Self {
        ChunkCursor {
            chunks,
            next: AtomicUsize::new(0),
        }
    }

    /// The next chunk nobody has claimed, or `None` when every chunk is taken (or after
    /// [`ChunkCursor::stop`]). Each claiming thread stops at its first `None`, so the
    /// counter grows past the chunk count by at most the number of threads.
    pub fn claim(&self) -> Option<PageRange> {
        // Relaxed: the chunks are disjoint, and the threads' results are read after they
        // are joined, which orders everything they did.
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.chunks.get(i)
    }

    /// Hands out no more chunks (after an error: the others stop at their next claim).
    pub fn stop(&self) {
        self.next.fetch_max(self.chunks.len(), Ordering::Relaxed);
    }
}

/// How a region is populated: the chunks, and the threads that claim them, each given by
/// the CPU it is placed near (see [`worker_cpus`] for where it may run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PopulatePlan {
    chunks: Chunks,
    workers: heapless::Vec<usize, POPULATE_THREADS_MAX>,
}

impl PopulatePlan {
    /// The whole range as one chunk, on the calling thread (`cpu`: where it runs).
    pub fn single(pages: PageRange, cpu: usize) -> Self {
        let mut workers = heapless::Vec::new();
        let _ = workers.push(cpu);
        PopulatePlan {
            chunks: Chunks::whole(pages),
            workers,
        }
    }

    /// The chunks; together they are the whole range.
    pub fn chunks(&self) -> &Chunks {
        &self.chunks
    }

    /// One CPU per thread (one thread: the calling thread, which needs no other).
    pub fn workers(&self) -> &[usize] {
        &self.workers
    }
}

/// Where a populating thread placed near `cpu` may run: the CPUs of `cpu`'s node that this
/// process may use, so the scheduler can move it off a busy CPU without leaving the node
/// (the zeroing stays local, and a `Local` region's pages stay on the caller's node).
/// `cpu` alone when its node is not known.
pub fn worker_cpus(topo: &(impl TopologyInfo + ?Sized), cpu: usize) -> CpuSet {
    topo.cpu_node(cpu)
        .and_then(|n| topo.node_cpus(n))
        .map(|c| c.intersection(topo.allowed_cpus()))
        .filter(|c| c.contains(cpu))
        .unwrap_or_else(|| CpuSet::single(cpu))
}

/// Whether the node a page faults onto depends on the CPU that faults it: `Local`, and
/// `Bind`/`PreferredMany` over several nodes (the nearest to the faulting CPU first). For
/// those, every populating thread runs on the caller's node, so placement is what the
/// caller alone would get. The others place by the policy alone.
pub fn placement_follows_cpu(policy: &MemPolicy, eff: &NodeMask) -> bool {
    match policy {
        MemPolicy::Local => true,
        MemPolicy::Bind(_) | MemPolicy::PreferredMany(_) => eff.count() > 1,
        _ => false,
    }
}

/// The CPUs nearest to `node` that this process may use: its own, or for a node without
/// any (memory-only), those of the nearest node that has some (lowest id on ties).
fn cpus_near(topo: &(impl TopologyInfo + ?Sized), node: NodeId) -> CpuSet {
    let allowed = topo.allowed_cpus();
    let own = topo.node_cpus(node).map(|c| c.intersection(allowed));
    if let Some(c) = own.filter(|c| !c.is_empty()) {
        return c;
    }
    topo.cpu_nodes()
        .iter()
        .filter_map(|n| {
            let c = topo.node_cpus(n)?.intersection(allowed);
            (!c.is_empty()).then(|| (topo.distance(node, n).unwrap_or(u8::MAX), n, c))
        })
        .min_by_key(|&(d, n, _)| (d, n))
        .map(|(_, _, c)| c)
        .unwrap_or_default()
}

/// How to populate `pages` (of `page_size` bytes) of a region with `policy` (effective
/// nodes `eff`), made by a thread at `caller`.
///
/// The calling thread alone below [`POPULATE_PARALLEL_MIN`] or when
/// `opts.populate_threads` is 1. Otherwise up to `min(populate_threads (0: no cap), CPUs,
/// bytes / POPULATE_PART_MIN, 64)` threads claiming chunks of [`POPULATE_CHUNK`], each
/// placed near one CPU this process may use: CPUs of the caller's node where placement
/// follows the CPU ([`placement_follows_cpu`]), else CPUs of the nodes the pages go to
/// (their nearest CPU node for memory-only nodes), taken node by node in turn. Which
/// thread populates a chunk never changes where its pages go: either the policy alone
/// places them, or every thread runs on the caller's node.
pub fn plan_populate(
    topo: &(impl TopologyInfo + ?Sized),
    policy: &MemPolicy,
    eff: &NodeMask,
    opts: &RegionOptions,
    caller: CpuLocation,
    pages: PageRange,
    page_size: usize,
) -> PopulatePlan {
    let single = PopulatePlan::single(pages, caller.cpu);
    if opts.populate_threads == 1 || pages.count.saturating_mul(page_size) < POPULATE_PARALLEL_MIN {
        return single;
    }
    // Candidate CPUs, in the order threads take them: node after node, one CPU each.
    let mut order: heapless::Vec<usize, POPULATE_THREADS_MAX> = heapless::Vec::new();
    let sets: heapless::Vec<CpuSet, POPULATE_THREADS_MAX> = if placement_follows_cpu(policy, eff) {
        let mut one = heapless::Vec::new();
        let _ = one.push(cpus_near(topo, caller.node));
        one
    } else {
        let mut seen = CpuSet::new();
        let mut v = heapless::Vec::new();
        for n in eff.iter() {
            let c = cpus_near(topo, n).difference(&seen);
            if !c.is_empty() && v.push(c).is_ok() {
                seen = seen.union(&c);
            }
        }
        v
    };
    let mut round = 0;
    while order.len() < POPULATE_THREADS_MAX {
        let mut took = false;
        for set in &sets {
            if let Some(cpu) = set.nth(round) {
                took = true;
                if order.push(cpu).is_err() {
                    break;
                }
            }
        }
        if !took {
            break;
        }
        round += 1;
    }
    let cap = match opts.populate_threads {
        0 => POPULATE_THREADS_MAX,
        n => n,
    };
    let (chunks, threads) = split(pages, page_size, cap.min(order.len()));
    if threads <= 1 {
        return single;
    }
    let mut workers = heapless::Vec::new();
    for &cpu in &order[..threads] {
        let _ = workers.push(cpu);
    }
    PopulatePlan { chunks, workers }
}

/// How a mapping's pages are released before it is unmapped: the chunks, and how many
/// threads (the calling one included) claim them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleasePlan {
    /// The chunks; together they are the whole mapping.
    pub chunks: Chunks,
    /// How many threads free them, the calling thread included (1: the caller alone).
    pub threads: usize,
}

/// How to release a mapping's pages before it is unmapped: with `cpus` CPUs this process
/// may use, a mapping of at least [`POPULATE_PARALLEL_MIN`] bytes is freed by up to
/// `min(cpus, bytes / POPULATE_PART_MIN, 64)` threads claiming chunks of
/// [`POPULATE_CHUNK`] (`MADV_DONTNEED` takes the address space's lock shared, so the
/// threads free pages side by side; `munmap` alone frees them on one thread). The calling
/// thread alone, with the mapping as one chunk, otherwise.
pub fn plan_release(pages: PageRange, page_size: usize, cpus: usize) -> ReleasePlan {
    let (chunks, threads) = split(pages, page_size, cpus);
    ReleasePlan { chunks, threads }
}

/// How many threads (at most `most`) share `pages` of `page_size` bytes, and the chunks
/// they claim: one thread with the range as one chunk below [`POPULATE_PARALLEL_MIN`];
/// otherwise up to one per [`POPULATE_PART_MIN`] bytes, [`POPULATE_THREADS_MAX`], and one
/// per chunk of [`POPULATE_CHUNK`].
fn split(pages: PageRange, page_size: usize, most: usize) -> (Chunks, usize) {
    let bytes = pages.count.saturating_mul(page_size);
    let chunks = Chunks::new(pages, page_size, POPULATE_CHUNK);
    let threads = if bytes < POPULATE_PARALLEL_MIN {
        1
    } else {
        most.min(bytes / POPULATE_PART_MIN)
            .min(POPULATE_THREADS_MAX)
            .min(chunks.len())
    };
    match threads {
        0 | 1 => (Chunks::whole(pages), 1),
        n => (chunks, n),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::topology::tests::table;
    use std::vec::Vec;

    fn mask(ids: &[u32]) -> NodeMask {
        ids.iter().copied().map(NodeId::new).collect()
    }

    /// Nodes 0 (cpus 0-1) and 1 (cpus 2-3) with memory, node 2 memory-only near node 1.
    fn topo() -> crate::topology::FixedTopology<8> {
        table(&[
            (0, &[0, 1], 4096, &[10, 21, 31]),
            (1, &[2, 3], 4096, &[21, 10, 17]),
            (2, &[], 4096, &[31, 17, 10]),
        ])
    }

    fn plan(
        p: &MemPolicy,
        opts: RegionOptions,
        bytes: usize,
        caller: (usize, u32),
    ) -> PopulatePlan {
        let t = topo();
        let eff = p.validate(&opts, &t).unwrap();
        let caller = CpuLocation {
            cpu: caller.0,
            node: NodeId::new(caller.1),
        };
        let pages = PageRange {
            first: 0,
            count: bytes / 4096,
        };
        plan_populate(&t, p, &eff, &opts, caller, pages, 4096)
    }

    fn cpus(p: &PopulatePlan) -> Vec<usize> {
        p.workers().to_vec()
    }

    /// The chunks are non-empty and cover `first..first + pages` in order.
    fn covers(c: &Chunks, first: usize, pages: usize) {
        let mut next = first;
        for r in c.iter() {
            assert_eq!(r.first, next);
            assert!(r.count > 0);
            next += r.count;
        }
        assert_eq!(next, first + pages);
        assert_eq!(
            c.pages(),
            PageRange {
                first,
                count: pages
            }
        );
    }

    #[test]
    fn small_regions_and_a_cap_of_one_stay_on_the_caller() {
        let bind = MemPolicy::Bind(mask(&[1]));
        let p = plan(&bind, RegionOptions::new(), (64 << 20) - 4096, (0, 0));
        assert_eq!(cpus(&p), [0]);
        let p = plan(
            &bind,
            RegionOptions::new().populate_threads(1),
            1 << 30,
            (0, 0),
        );
        assert_eq!(cpus(&p), [0]);
    }

    #[test]
    fn one_node_policies_run_on_the_nodes_cpus() {
        let p = plan(
            &MemPolicy::Bind(mask(&[1])),
            RegionOptions::new(),
            1 << 30,
            (0, 0),
        );
        assert_eq!(cpus(&p), [2, 3]);
        covers(p.chunks(), 0, (1 << 30) / 4096);
        assert_eq!(p.chunks().len(), (1 << 30) / POPULATE_CHUNK);
        // A memory-only node: the CPUs of its nearest CPU node (1, at 17).
        let p = plan(
            &MemPolicy::Preferred(NodeId::new(2)),
            RegionOptions::new(),
            1 << 30,
            (0, 0),
        );
        assert_eq!(cpus(&p), [2, 3]);
    }

    #[test]
    fn cpu_dependent_policies_stay_on_the_callers_node() {
        for pol in [MemPolicy::Local, MemPolicy::Bind(mask(&[0, 1]))] {
            let p = plan(&pol, RegionOptions::new(), 1 << 30, (3, 1));
            assert_eq!(cpus(&p), [2, 3], "{pol:?}");
        }
    }

    #[test]
    fn interleave_spreads_over_its_nodes_in_turn_and_respects_the_cap() {
        let il = MemPolicy::Interleave(mask(&[0, 1]));
        let p = plan(&il, RegionOptions::new(), 1 << 30, (0, 0));
        assert_eq!(cpus(&p), [0, 2, 1, 3]);
        covers(p.chunks(), 0, (1 << 30) / 4096);
        for r in p.chunks().iter() {
            assert_eq!(r.first % 512, 0, "chunks start on 2 MiB");
        }
        let p = plan(
            &il,
            RegionOptions::new().populate_threads(2),
            1 << 30,
            (0, 0),
        );
        assert_eq!(cpus(&p), [0, 2]);
        // 96 MiB: at most 3 threads (32 MiB each).
        let p = plan(&il, RegionOptions::new(), 96 << 20, (0, 0));
        assert_eq!(p.workers().len(), 3);
        covers(p.chunks(), 0, (96 << 20) / 4096);
    }

    #[test]
    fn release_splits_only_large_mappings_over_the_cpus() {
        let range = |bytes: usize| PageRange {
            first: 0,
            count: bytes / 4096,
        };
        let threads = |bytes, page, cpus| plan_release(range(bytes), page, cpus).threads;
        assert_eq!(threads(64 << 20, 4096, 1), 1);
        assert_eq!(threads((64 << 20) - 4096, 4096, 8), 1);
        assert_eq!(threads(64 << 20, 4096, 8), 2);
        assert_eq!(threads(1 << 30, 4096, 2), 2);
        assert_eq!(threads(1 << 30, 4096, 1000), 32);
        let one = plan_release(range(32 << 20), 4096, 8);
        assert_eq!(one.chunks.len(), 1, "the caller alone: one chunk");
        // A 1 GiB huge page cannot be split.
        let huge = plan_release(PageRange { first: 0, count: 1 }, 1 << 30, 8);
        assert_eq!((huge.threads, huge.chunks.len()), (1, 1));
    }

    #[test]
    fn workers_may_run_anywhere_on_their_node_that_is_allowed() {
        let t = topo();
        assert_eq!(worker_cpus(&t, 3), [2, 3].into_iter().collect::<CpuSet>());
        assert_eq!(worker_cpus(&t, 0), [0, 1].into_iter().collect::<CpuSet>());
        // A CPU of no known node runs where it was placed.
        assert_eq!(worker_cpus(&t, 9), CpuSet::single(9));
        // Every worker of a CPU-dependent policy stays on the caller's node.
        let p = plan(&MemPolicy::Local, RegionOptions::new(), 1 << 30, (3, 1));
        for &w in p.workers() {
            for cpu in worker_cpus(&t, w).iter() {
                assert_eq!(t.cpu_node(cpu), Some(NodeId::new(1)));
            }
        }
    }

    #[test]
    fn each_chunk_is_claimed_once_by_concurrent_threads() {
        let chunks = Chunks::new(
            PageRange {
                first: 3,
                count: 10_000,
            },
            4096,
            2 << 20,
        );
        let cursor = ChunkCursor::new(chunks);
        let mut seen: Vec<PageRange> = std::thread::scope(|s| {
            let claimers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| core::iter::from_fn(|| cursor.claim()).collect::<Vec<_>>()))
                .collect();
            claimers
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        seen.sort_by_key(|r| r.first);
        assert_eq!(seen, chunks.iter().collect::<Vec<_>>());
        assert_eq!(cursor.claim(), None);
    }

    #[test]
    fn a_stopped_cursor_hands_out_nothing_more() {
        let chunks = Chunks::new(
            PageRange {
                first: 0,
                count: 4096,
            },
            4096,
            2 << 20,
        );
        let cursor = ChunkCursor::new(chunks);
        assert!(cursor.claim().is_some());
        cursor.stop();
        assert_eq!(cursor.claim(), None);
        assert_eq!(cursor.claim(), None);
    }

    /// The proptests' largest range: every chunk of it is checked, slow under Miri.
    const MAX_PAGES: usize = if cfg!(miri) { 3_000 } else { 100_000 };

    proptest::proptest! {
        #[test]
        fn chunks_cover_the_range_on_huge_page_boundaries(
            first in 0usize..1_000_000,
            count in 0usize..MAX_PAGES,
            shift in 12u32..31,
            chunk_bytes in 0usize..(64 << 20),
        ) {
            let page = 1usize << shift;
            let c = Chunks::new(PageRange { first, count }, page, chunk_bytes);
            covers(&c, first, count);
            let unit = (POPULATE_ALIGN / page).max(1);
            for r in c.iter() {
                proptest::prop_assert_eq!((r.first - first) % unit, 0);
            }
            proptest::prop_assert_eq!(c.get(c.len()), None);
            proptest::prop_assert_eq!(c.get(usize::MAX), None);
        }

        #[test]
        fn release_parts_cover_the_mapping_in_order(
            count in 0usize..MAX_PAGES,
            shift in 12u32..31,
            cpus in 0usize..200,
        ) {
            let page = 1usize << shift;
            let plan = plan_release(PageRange { first: 7, count }, page, cpus);
            covers(&plan.chunks, 7, count);
            proptest::prop_assert!(plan.threads <= cpus.max(1));
            proptest::prop_assert!(plan.threads == 1 || plan.threads <= plan.chunks.len());
        }
    }
}
