//! Parallel populate: how a large region's pages are split over threads and which CPU
//! each thread runs on, so that placement does not change and the zeroing runs near the
//! memory. Pure logic; a backend that can run threads carries the plan out.

use crate::backend::{CpuLocation, PageRange};
use crate::node::{CpuSet, NodeId, NodeMask};
use crate::options::RegionOptions;
use crate::policy::MemPolicy;
use crate::topology::TopologyInfo;

/// Regions smaller than this are populated by the calling thread alone (a thread costs
/// tens of microseconds; below this it would not pay for itself).
pub const POPULATE_PARALLEL_MIN: usize = 64 << 20;
/// Each populating thread gets at least this many bytes.
pub const POPULATE_PART_MIN: usize = 32 << 20;
/// The most threads one populate uses.
pub const POPULATE_THREADS_MAX: usize = 64;
/// Part boundaries fall on multiples of this many bytes, so a transparent huge page is
/// never split between two threads.
pub const POPULATE_ALIGN: usize = 2 << 20;

/// Disjoint page ranges covering a region, each with the CPU that populates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PopulatePlan {
    parts: heapless::Vec<(PageRange, usize), POPULATE_THREADS_MAX>,
}

impl PopulatePlan {
    /// The whole range on the calling thread (`cpu`: where it runs).
    pub fn single(pages: PageRange, cpu: usize) -> Self {
        let mut parts = heapless::Vec::new();
        let _ = parts.push((pages, cpu));
        PopulatePlan { parts }
    }

    /// The parts, in address order: `(pages, cpu)`.
    pub fn parts(&self) -> &[(PageRange, usize)] {
        &self.parts
    }
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
/// One part on the caller below [`POPULATE_PARALLEL_MIN`] or when `opts.populate_threads`
/// is 1. Otherwise up to `min(populate_threads (0: no cap), CPUs, bytes /
/// POPULATE_PART_MIN, 64)` contiguous parts of nearly equal size, each pinned to one CPU
/// this process may use: CPUs of the caller's node where placement follows the CPU
/// ([`placement_follows_cpu`]), else CPUs of the nodes the pages go to (their nearest CPU
/// node for memory-only nodes), taken node by node in turn.
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
    let bytes = pages.count.saturating_mul(page_size);
    if bytes < POPULATE_PARALLEL_MIN || opts.populate_threads == 1 || page_size == 0 {
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
    let threads = cap
        .min(order.len())
        .min(bytes / POPULATE_PART_MIN)
        .min(POPULATE_THREADS_MAX);
    if threads <= 1 {
        return single;
    }
    let mut parts = heapless::Vec::new();
    for (range, &cpu) in split_even(pages, page_size, threads).zip(&order) {
        let _ = parts.push((range, cpu));
    }
    PopulatePlan { parts }
}

/// `pages` in `n` contiguous, near-equal, non-empty parts in address order, boundaries on
/// [`POPULATE_ALIGN`] (in pages; at least one page), so a transparent huge page is never
/// split; fewer parts when there are fewer units than `n`.
fn split_even(pages: PageRange, page_size: usize, n: usize) -> impl Iterator<Item = PageRange> {
    let unit = (POPULATE_ALIGN / page_size.max(1)).max(1);
    let units = pages.count.div_ceil(unit);
    let end = pages.first + pages.count;
    let n = n.max(1);
    let mut first = pages.first;
    (0..n).filter_map(move |i| {
        let upto = if i + 1 == n {
            end
        } else {
            (pages.first + units * (i + 1) / n * unit).min(end)
        };
        (upto > first).then(|| {
            let part = PageRange {
                first,
                count: upto - first,
            };
            first = upto;
            part
        })
    })
}

/// How to release a mapping's pages before it is unmapped: with `cpus` CPUs this process
/// may use, a mapping of at least [`POPULATE_PARALLEL_MIN`] bytes is split into up to
/// `min(cpus, bytes / POPULATE_PART_MIN, 64)` near-equal parts (as populate splits it),
/// each freed by its own thread (`MADV_DONTNEED` takes the address space's lock shared,
/// so the threads free pages side by side; `munmap` alone frees them on one thread).
/// One part (nothing to do in parallel) otherwise.
pub fn plan_release(
    pages: PageRange,
    page_size: usize,
    cpus: usize,
) -> heapless::Vec<PageRange, POPULATE_THREADS_MAX> {
    let bytes = pages.count.saturating_mul(page_size);
    let threads = if bytes < POPULATE_PARALLEL_MIN || page_size == 0 {
        1
    } else {
        cpus.min(bytes / POPULATE_PART_MIN)
            .clamp(1, POPULATE_THREADS_MAX)
    };
    split_even(pages, page_size, threads).collect()
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
        p.parts().iter().map(|&(_, c)| c).collect()
    }

    fn covers(p: &PopulatePlan, pages: usize) {
        let mut next = 0;
        for &(r, _) in p.parts() {
            assert_eq!(r.first, next);
            assert!(r.count > 0);
            next += r.count;
        }
        assert_eq!(next, pages);
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
        covers(&p, (1 << 30) / 4096);
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
        covers(&p, (1 << 30) / 4096);
        for &(r, _) in p.parts() {
            assert_eq!(r.first % 512, 0, "parts start on 2 MiB");
        }
        let p = plan(
            &il,
            RegionOptions::new().populate_threads(2),
            1 << 30,
            (0, 0),
        );
        assert_eq!(cpus(&p), [0, 2]);
        // 96 MiB: at most 3 parts of 32 MiB.
        let p = plan(&il, RegionOptions::new(), 96 << 20, (0, 0));
        assert_eq!(p.parts().len(), 3);
        covers(&p, (96 << 20) / 4096);
    }

    #[test]
    fn release_splits_only_large_mappings_over_the_cpus() {
        let range = |bytes: usize| PageRange {
            first: 0,
            count: bytes / 4096,
        };
        assert_eq!(plan_release(range(64 << 20), 4096, 1).len(), 1);
        assert_eq!(plan_release(range((64 << 20) - 4096), 4096, 8).len(), 1);
        assert_eq!(plan_release(range(64 << 20), 4096, 8).len(), 2);
        assert_eq!(plan_release(range(1 << 30), 4096, 2).len(), 2);
        assert_eq!(plan_release(range(1 << 30), 4096, 1000).len(), 32);
        // A 1 GiB huge page cannot be split.
        assert_eq!(
            plan_release(PageRange { first: 0, count: 1 }, 1 << 30, 8).len(),
            1
        );
    }

    proptest::proptest! {
        #[test]
        fn release_parts_cover_the_mapping_in_order(
            count in 0usize..600_000,
            shift in 12u32..31,
            cpus in 0usize..200,
        ) {
            let page = 1usize << shift;
            let parts = plan_release(PageRange { first: 7, count }, page, cpus);
            let mut next = 7;
            for p in &parts {
                proptest::prop_assert_eq!(p.first, next);
                proptest::prop_assert!(p.count > 0);
                next += p.count;
            }
            proptest::prop_assert_eq!(next, 7 + count);
            proptest::prop_assert!(parts.len() <= cpus.max(1));
        }
    }
}
