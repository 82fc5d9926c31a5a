//! `SimMachine`: a simulated multi-node machine behind `PlacementBackend`. Real memory,
//! a per-page node table, and the kernel's placement rules taken from `numaperf-core`.

use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use numaperf_core::policy::interleave_index;
use numaperf_core::region::round_to_unit;
use numaperf_core::{
    CpuLocation, CpuSet, Errno, HugePages, KernelWeights, Mapping, MemPolicy, NodeId, NodeMask,
    NodeMode, NodeWeights, NumaError, OwnedTopology, PageLocation, PageRange, PlacementBackend,
    Prefault, RegionOptions, SharedHandle, SharedObject, TopologyInfo,
};

use crate::calls::{CallCounts, CallKind};
use crate::memory::Block;
use crate::threads::{self, Restore, SimThread};
use crate::zonelists::{PolicyOrders, Zonelists};

#[path = "numastat.rs"]
mod numastat;
#[path = "shared.rs"]
mod shared;

/// Base page size of a simulated machine unless its builder sets another
/// ([`crate::SimBuilder::base_page_size`]).
pub const PAGE_SIZE: usize = 4096;
/// Bytes a transparent huge page covers (a PMD of 4 KiB pages; 64 KiB radix ppc64 too).
const THP_SIZE: usize = 2 << 20;

/// A kernel feature the simulated kernel can be made to lack ([`SimMachine::kernel_lacks`]):
/// the core's list, so the sim's capabilities and errors name them as Linux does.
pub use numaperf_core::KernelFeature;

/// One node's memory, in base pages (and huge pages for hugetlb pools).
#[derive(Clone, Debug)]
pub(crate) struct NodeMemory {
    pub(crate) total: u64,
    pub(crate) free: u64,
    pub(crate) fail_after: Option<u64>,
    pub(crate) huge_2m: u64,
    pub(crate) huge_1g: u64,
    /// Allocations counted as the kernel's `numastat` counts them.
    pub(crate) numastat: numaperf_core::locality::NumaStat,
}

/// Free and used memory of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeUsage {
    /// The node.
    pub node: NodeId,
    /// Capacity in bytes.
    pub total: u64,
    /// Free bytes.
    pub free: u64,
}

struct SimMapping {
    block: Block,
    len: usize,
    mapped_len: usize,
    /// Page size placement is tracked in (the huge page size for hugetlb).
    unit: usize,
    /// The machine's base page size.
    base: usize,
    huge: HugePages,
    /// Policies by page range, sorted by first page, the first at page 0 (the kernel's
    /// VMAs after mbind on parts of a mapping).
    segments: Vec<Segment>,
    pages: Vec<Option<NodeId>>,
    /// The shared object this is (`None`: private memory of one mapping).
    object: Option<i32>,
    /// Tokens and views holding a shared object (1 for private memory).
    refs: usize,
}

/// The policy of pages `first..` up to the next segment's first page.
#[derive(Clone, Debug)]
struct Segment {
    first: usize,
    policy: MemPolicy,
    opts: RegionOptions,
    /// No policy of its own (never mbound): pages follow the faulting thread's policy.
    inherit: bool,
}

impl SimMapping {
    /// The segment covering `page` and the first page after it.
    fn segment_at(&self, page: usize) -> (&Segment, usize) {
        let i = self.segments.partition_point(|s| s.first <= page) - 1;
        let end = self
            .segments
            .get(i + 1)
            .map_or(self.pages.len(), |s| s.first);
        (&self.segments[i], end)
    }

    /// Gives `pages` a policy, splitting segments at its ends.
    fn set_policy(&mut self, pages: PageRange, policy: MemPolicy, opts: RegionOptions) {
        let end = pages.first + pages.count;
        let after = (end < self.pages.len()).then(|| self.segment_at(end).0.clone());
        self.segments
            .retain(|s| s.first < pages.first || s.first >= end);
        let at = self.segments.partition_point(|s| s.first < pages.first);
        self.segments.insert(
            at,
            Segment {
                first: pages.first,
                policy,
                opts,
                inherit: false,
            },
        );
        if let Some(mut a) = after {
            if self.segments.get(at + 1).is_none_or(|s| s.first != end) {
                a.first = end;
                self.segments.insert(at + 1, a);
            }
        }
    }

    /// Whether the policy of the segment holding `page` is `Bind` (NUMA balancing leaves
    /// those pages alone).
    fn is_bound(&self, page: usize) -> bool {
        matches!(self.segment_at(page).0.policy, MemPolicy::Bind(_))
    }
}

#[derive(Default)]
struct State {
    nodes: BTreeMap<NodeId, NodeMemory>,
    maps: BTreeMap<usize, SimMapping>,
    lacks: Vec<KernelFeature>,
    deny_mempolicy: bool,
    /// The simulated kernel's weighted-interleave table (`None`: every node weighs 1).
    weights: Option<KernelWeights>,
    /// Every node's fallback order, built on the first placement.
    zonelists: Zonelists,
    /// The simulated memory cgroup's limit in bytes ([`SimMachine::set_memory_limit`]).
    memory_limit: Option<u64>,
    /// Shared objects by number, at the start address of their memory in `maps`.
    objects: BTreeMap<i32, usize>,
}

/// A simulated machine. `Send + Sync`: share it by reference or `Arc` across threads.
pub struct SimMachine {
    id: u64,
    topology: OwnedTopology,
    state: Mutex<State>,
    calls: CallCounts,
    /// The devices attached by the builder (see `devices.rs`).
    pub(crate) devices: numaperf_core::DeviceTable,
    /// Base page size in bytes (a power of two, checked by the builder).
    page_size: usize,
}

impl std::fmt::Debug for SimMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimMachine")
            .field("nodes", self.topology.nodes())
            .finish()
    }
}

impl SimMachine {
    /// A machine with this topology; node capacities from each node's total memory and
    /// free memory from its free memory, plus per-node hugetlb pools; base pages of
    /// `page_size` bytes (a power of two the caller checked).
    pub(crate) fn new(
        topology: OwnedTopology,
        huge: &[(NodeId, u64, u64)],
        page_size: usize,
    ) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let nodes = topology
            .node_list()
            .iter()
            .map(|n| {
                let (h2, h1) = huge
                    .iter()
                    .find(|h| h.0 == n.id())
                    .map_or((0, 0), |h| (h.1, h.2));
                let mem = NodeMemory {
                    total: n.mem_total() / page_size as u64,
                    free: n.mem_free().min(n.mem_total()) / page_size as u64,
                    fail_after: None,
                    huge_2m: h2,
                    huge_1g: h1,
                    numastat: Default::default(),
                };
                (n.id(), mem)
            })
            .collect();
        SimMachine {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            topology,
            state: Mutex::new(State {
                nodes,
                ..State::default()
            }),
            calls: CallCounts::default(),
            devices: numaperf_core::DeviceTable::default(),
            page_size,
        }
    }

    /// Allocates a mapping of `len` bytes in whole pages of `huge` (a shared object's
    /// when `object` names one) with no policy yet, and records it; returns its address,
    /// mapped length and page unit. Explicit huge pages are reserved when mapping, as
    /// hugetlb does: without enough free ones in the pools, `HugePagesUnavailable`.
    fn insert_mapping(
        &self,
        st: &mut State,
        len: usize,
        huge: HugePages,
        object: Option<i32>,
    ) -> Result<(NonNull<u8>, usize, usize), NumaError> {
        let unit = huge.unit(self.page_size);
        let mapped = round_to_unit(len, unit)?;
        if unit > self.page_size {
            let have: u64 = st.nodes.values_mut().map(|n| *pool(n, huge)).sum();
            if have < (mapped / unit) as u64 {
                return Err(NumaError::HugePagesUnavailable { page_size: unit });
            }
        }
        let align = if huge == HugePages::Transparent {
            THP_SIZE.max(unit)
        } else {
            unit
        };
        let block = Block::new(mapped, align)?;
        let addr = block.ptr();
        let m = SimMapping {
            block,
            // A shared object's mapping covers the whole object.
            len: if object.is_some() { mapped } else { len },
            mapped_len: mapped,
            unit,
            base: self.page_size,
            huge,
            segments: vec![Segment {
                first: 0,
                policy: MemPolicy::Local,
                opts: RegionOptions::default(),
                inherit: true,
            }],
            pages: vec![None; mapped / unit],
            object,
            refs: 1,
        };
        st.maps.insert(addr.as_ptr() as usize, m);
        Ok((addr, mapped, unit))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent tables (every update is
        // completed before anything can panic), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn thread(&self) -> SimThread {
        let t = &self.topology;
        threads::get(self.id, || SimThread {
            cpu: t.allowed_cpus().first().unwrap_or(0),
            affinity: *t.allowed_cpus(),
        })
    }

    fn local_node(&self) -> NodeId {
        let cpu = self.thread().cpu;
        self.topology.cpu_node(cpu).unwrap_or(NodeId::new(0))
    }

    /// Runs `f` with the calling thread's simulated CPU set to `cpu` (restored after,
    /// also on panic). An unknown CPU is an error.
    ///
    /// # Errors
    /// [`NumaError::InvalidCpu`] for a CPU the machine does not have.
    pub fn run_on_cpu<R>(&self, cpu: usize, f: impl FnOnce() -> R) -> Result<R, NumaError> {
        if self.topology.cpu_node(cpu).is_none() {
            return Err(NumaError::InvalidCpu(cpu as u32));
        }
        let previous = self.thread();
        threads::set(self.id, SimThread { cpu, ..previous });
        let _restore = Restore {
            id: self.id,
            previous,
        };
        Ok(f())
    }

    /// Calls made to this machine, by kind.
    pub fn calls(&self) -> &CallCounts {
        &self.calls
    }

    /// Every node's capacity and free memory now.
    pub fn usage(&self) -> Vec<NodeUsage> {
        let page = self.page_size as u64;
        self.state()
            .nodes
            .iter()
            .map(|(&node, m)| NodeUsage {
                node,
                total: m.total * page,
                free: m.free * page,
            })
            .collect()
    }

    /// Number of live mappings.
    pub fn mapping_count(&self) -> usize {
        self.state().maps.len()
    }

    /// Makes `node` run out of memory after `pages` more base pages.
    pub fn fail_node_after(&self, node: NodeId, pages: u64) {
        if let Some(m) = self.state().nodes.get_mut(&node) {
            m.fail_after = Some(pages);
        }
    }

    /// Makes the simulated kernel lack a feature (as a kernel too old for it): regions
    /// that need it are `Unsupported`, and the capabilities say it is missing.
    pub fn kernel_lacks(&self, feature: KernelFeature) {
        self.state().lacks.push(feature);
    }

    /// Puts the process in a simulated memory cgroup limited to `limit` bytes (`None`: no
    /// limit), charged with the base pages its mappings hold (hugetlb pages are not
    /// charged). The capacity check refuses a populate beyond the headroom; the simulated
    /// kernel does not enforce the limit itself (the real one would OOM-kill).
    pub fn set_memory_limit(&self, limit: Option<u64>) {
        self.state().memory_limit = limit;
    }

    /// What [`crate::capabilities`] reports from: the missing features, the hugetlb pools
    /// per node (free, and in use by mappings), and the memory cgroup's limit.
    pub(crate) fn capability_facts(&self) -> crate::capabilities::Facts {
        let st = self.state();
        let mut huge = Vec::new();
        for (&node, m) in &st.nodes {
            for (size, free, kind) in [
                (2u64 << 20, m.huge_2m, HugePages::Explicit2M),
                (1 << 30, m.huge_1g, HugePages::Explicit1G),
            ] {
                let used = st
                    .maps
                    .values()
                    .filter(|sm| sm.huge == kind)
                    .map(|sm| sm.pages.iter().filter(|&&p| p == Some(node)).count() as u64)
                    .sum::<u64>();
                if free + used > 0 {
                    huge.push((node, size, free + used, free));
                }
            }
        }
        crate::capabilities::Facts {
            lacks: st.lacks.iter().copied().collect(),
            huge,
            memory_limit: memory_limit(&st),
            denied: st.deny_mempolicy,
        }
    }

    /// Sets the simulated kernel's global weighted-interleave table (as an administrator,
    /// or firmware data in `auto` mode, would; numaperf itself never writes it).
    pub fn set_kernel_weights(&self, weights: KernelWeights) {
        self.state().weights = Some(weights);
    }

    /// Makes mempolicy calls (mbind, move_pages) fail with EPERM, as a seccomp profile would.
    pub fn deny_mempolicy_calls(&self, deny: bool) {
        self.state().deny_mempolicy = deny;
    }

    /// Simulates a first touch of `addr..addr + len` by the calling thread.
    ///
    /// # Errors
    /// [`NumaError::ForeignMapping`] outside every simulated mapping, and
    /// [`NumaError::InsufficientMemory`] when the policy's nodes are full.
    pub fn touch(&self, addr: *const u8, len: usize) -> Result<(), NumaError> {
        let local = self.local_node();
        let mut st = self.state();
        let (&start, _) = st
            .maps
            .range(..=addr as usize)
            .next_back()
            .filter(|(s, m)| (addr as usize) < *s + m.mapped_len)
            .ok_or(NumaError::ForeignMapping)?;
        let unit = st.maps[&start].unit;
        let first = (addr as usize - start) / unit;
        let end = (addr as usize + len.max(1) - start).div_ceil(unit);
        self.fault_range(&mut st, start, first, end, local)
    }

    /// NUMA balancing behind the program's back: moves about one in four present pages
    /// of every mapping whose policy is not `Bind` to another node with room, chosen by a
    /// seeded xorshift so a run replays. Returns how many pages moved.
    pub fn balance(&self, seed: u64) -> u64 {
        let mut rng = crate::XorShift::new(seed);
        let usable = self
            .topology
            .allowed_nodes()
            .intersection(self.topology.memory_nodes());
        let mut st = self.state();
        let State { nodes, maps, .. } = &mut *st;
        let mut moved = 0;
        for m in maps.values_mut() {
            if m.unit != m.base {
                continue;
            }
            for i in 0..m.pages.len() {
                if m.is_bound(i) {
                    continue;
                }
                let page = &mut m.pages[i];
                let Some(from) = *page else { continue };
                if rng.next() % 4 != 0 {
                    continue;
                }
                let others: Vec<NodeId> = usable.iter().filter(|&n| n != from).collect();
                if others.is_empty() {
                    continue;
                }
                let to = others[(rng.next() % others.len() as u64) as usize];
                if take(nodes, to, 1) {
                    give(nodes, from, 1);
                    *page = Some(to);
                    moved += 1;
                }
            }
        }
        moved
    }

    /// Places units `first..end` of the mapping at `start` that are not present yet.
    fn fault_range(
        &self,
        st: &mut State,
        start: usize,
        first: usize,
        end: usize,
        local: NodeId,
    ) -> Result<(), NumaError> {
        let State {
            nodes,
            maps,
            zonelists,
            ..
        } = st;
        let m = maps.get_mut(&start).ok_or(NumaError::ForeignMapping)?;
        let end = end.min(m.pages.len());
        let mut i = first;
        while i < end {
            // One validation per policy segment, not per page.
            let (seg, seg_end) = m.segment_at(i);
            // A range without a policy of its own follows the faulting thread's.
            let seg = match crate::thread_policy::get(self.id).filter(|_| seg.inherit) {
                Some(t) => Segment {
                    first: seg.first,
                    opts: t.options(),
                    policy: t.policy,
                    inherit: true,
                },
                None => seg.clone(),
            };
            let eff = seg.policy.validate(&seg.opts, &self.topology)?;
            let mut orders = PolicyOrders::new(&seg.policy, &seg.opts, &eff);
            while i < end.min(seg_end) {
                if m.pages[i].is_some() {
                    i += 1;
                    continue;
                }
                // A transparent huge page covers a whole aligned 2 MiB block of one VMA.
                let block = (THP_SIZE / m.base).max(1);
                let base_shift = m.base.trailing_zeros();
                let (count, order, shift) = if m.huge == HugePages::Transparent
                    && i % block == 0
                    && i + block <= seg_end
                    && m.pages[i..i + block].iter().all(Option::is_none)
                {
                    (block, block.trailing_zeros(), base_shift)
                } else if m.unit > m.base {
                    (1, 0, m.unit.trailing_zeros())
                } else {
                    (1, 0, base_shift)
                };
                let ilx = ilx_of(m, start, i, shift, order);
                let order = orders.order(zonelists, &self.topology, local, ilx);
                let node = place(nodes, m, order, count as u64)?;
                numastat::count(nodes, m, node, order, local, &seg.policy);
                m.pages[i..i + count]
                    .iter_mut()
                    .for_each(|p| *p = Some(node));
                i += count;
            }
        }
        Ok(())
    }

    /// Moves every present unit of a mapping that is not on `allowed` by `policy`'s rules.
    fn move_misplaced(
        &self,
        st: &mut State,
        start: usize,
        pages: PageRange,
        allowed: &NodeMask,
        local: NodeId,
    ) -> Result<(), NumaError> {
        let State {
            nodes,
            maps,
            zonelists,
            ..
        } = st;
        let m = maps.get_mut(&start).ok_or(NumaError::ForeignMapping)?;
        // The orders of the segment the last moved page was in (by its first page).
        let mut orders: Option<(usize, PolicyOrders)> = None;
        for i in pages.first..(pages.first + pages.count).min(m.pages.len()) {
            let Some(old) = m.pages[i] else { continue };
            if allowed.contains(old) {
                continue;
            }
            let ilx = ilx_of(m, start, i, m.unit.trailing_zeros(), 0);
            let seg = m.segment_at(i).0;
            if orders.as_ref().is_none_or(|o| o.0 != seg.first) {
                let o = PolicyOrders::new(&seg.policy, &seg.opts, allowed);
                orders = Some((seg.first, o));
            }
            let Some((_, o)) = orders.as_mut() else {
                continue;
            };
            let order = o.order(zonelists, &self.topology, local, ilx);
            let new = place(nodes, m, order, 1)?;
            numastat::count(nodes, m, new, order, local, &seg.policy);
            release(nodes, m, old, 1);
            m.pages[i] = Some(new);
        }
        Ok(())
    }

    fn check_allowed(&self, st: &State, op: &'static str) -> Result<(), NumaError> {
        if st.deny_mempolicy {
            return Err(NumaError::from_errno(op, Errno::EPERM));
        }
        Ok(())
    }

    /// The policy and options the simulated kernel holds for the page at `addr` (what
    /// `get_mempolicy(MPOL_F_ADDR)` reports on Linux); `None` outside every mapping.
    pub fn policy_at(&self, addr: *const u8) -> Option<(MemPolicy, RegionOptions)> {
        let st = self.state();
        let (&start, m) = st.maps.range(..=addr as usize).next_back()?;
        let offset = addr as usize - start;
        if offset >= m.mapped_len {
            return None;
        }
        let seg = m.segment_at(offset / m.unit).0;
        Some((seg.policy.clone(), seg.opts))
    }
}

impl SimMachine {
    /// A policy as the simulated kernel holds it, with its usable nodes: the kernel
    /// features it needs checked, validated, a weighted interleave given the kernel's
    /// weights (its global table) as the kernel does.
    fn as_kernel_holds(
        &self,
        st: &State,
        policy: &MemPolicy,
        opts: &RegionOptions,
    ) -> Result<(MemPolicy, RegionOptions, NodeMask), NumaError> {
        let wi = matches!(policy, MemPolicy::WeightedInterleave(_));
        let needs =
            KernelFeature::required_by(policy, opts).with(KernelFeature::WeightedInterleave, wi);
        if let Some(f) = needs.iter().find(|f| st.lacks.contains(f)) {
            return Err(f.unsupported());
        }
        let eff = policy.validate(opts, &self.topology)?;
        Ok(match policy {
            MemPolicy::WeightedInterleave(_) => {
                let mut w = NodeWeights::new();
                for n in eff.iter() {
                    let k = st.weights.map_or(1, |k| k.weights.weight(n).max(1));
                    w.set(n, k)?;
                }
                let mut o = *opts;
                o.node_mode = NodeMode::Default;
                (MemPolicy::WeightedInterleave(w), o, eff)
            }
            p => (p.clone(), *opts, eff),
        })
    }
}

/// The start of the mapping that holds token `m` and the page `m` starts at in it (0 for
/// a token from `map`; an adopted token may be part of a mapping).
fn containing(
    maps: &BTreeMap<usize, SimMapping>,
    m: &Mapping,
) -> Result<(usize, usize), NumaError> {
    let addr = m.as_ptr() as usize;
    let (&start, sm) = maps
        .range(..=addr)
        .next_back()
        .ok_or(NumaError::ForeignMapping)?;
    let offset = addr - start;
    let inside = offset % sm.unit == 0
        && m.page_size() == sm.unit
        && offset
            .checked_add(m.mapped_len())
            .is_some_and(|e| e <= sm.mapped_len);
    if !inside {
        return Err(NumaError::ForeignMapping);
    }
    Ok((start, offset / sm.unit))
}

/// The interleave index of unit `i` of the mapping at `start` (units of
/// `1 << (shift + order)` bytes): by virtual page number for private memory, by offset in
/// the object biased by the object's number for a shared object (shmem biases by the
/// inode number, so its first page need not get the mask's first node either).
fn ilx_of(m: &SimMapping, start: usize, i: usize, shift: u32, order: u32) -> u64 {
    let off = i * m.unit;
    match m.object {
        Some(id) => id as u64 + (off >> (shift + order)) as u64,
        None => interleave_index(start, start + off, shift, order),
    }
}

/// The simulated cgroup's limit, charged with the base pages the mappings hold.
fn memory_limit(st: &State) -> Option<numaperf_core::MemoryLimit> {
    let limit = st.memory_limit?;
    let usage = st
        .maps
        .values()
        .filter(|sm| !sm.huge.is_explicit())
        .map(|sm| sm.pages.iter().flatten().count() as u64 * sm.unit as u64)
        .sum();
    Some(numaperf_core::MemoryLimit {
        limit,
        usage,
        reclaimable: 0,
    })
}

/// Takes `pages` from a node if it has them (and is not set to fail).
fn take(nodes: &mut BTreeMap<NodeId, NodeMemory>, node: NodeId, pages: u64) -> bool {
    let Some(m) = nodes.get_mut(&node) else {
        return false;
    };
    let budget = m.fail_after.unwrap_or(u64::MAX);
    if m.free < pages || budget < pages {
        return false;
    }
    m.free -= pages;
    if let Some(f) = &mut m.fail_after {
        *f -= pages;
    }
    true
}

fn give(nodes: &mut BTreeMap<NodeId, NodeMemory>, node: NodeId, pages: u64) {
    if let Some(m) = nodes.get_mut(&node) {
        m.free = (m.free + pages).min(m.total);
    }
}

/// The huge page pool of a node for a mapping's page kind.
fn pool(m: &mut NodeMemory, huge: HugePages) -> &mut u64 {
    if huge == HugePages::Explicit1G {
        &mut m.huge_1g
    } else {
        &mut m.huge_2m
    }
}

/// Gives a unit's memory back to its node.
fn release(nodes: &mut BTreeMap<NodeId, NodeMemory>, m: &SimMapping, node: NodeId, count: u64) {
    if m.unit > m.base {
        if let Some(n) = nodes.get_mut(&node) {
            *pool(n, m.huge) += count;
        }
    } else {
        give(nodes, node, count);
    }
}

/// Picks the node for `count` base pages (or one huge page) the way the kernel would:
/// the first node in the page's allocation order (`order`) that has room.
fn place(
    nodes: &mut BTreeMap<NodeId, NodeMemory>,
    m: &SimMapping,
    order: &[NodeId],
    count: u64,
) -> Result<NodeId, NumaError> {
    for &n in order {
        let ok = if m.unit > m.base {
            nodes.get_mut(&n).is_some_and(|nm| {
                let p = pool(nm, m.huge);
                (*p > 0).then(|| *p -= 1).is_some()
            })
        } else {
            take(nodes, n, count)
        };
        if ok {
            return Ok(n);
        }
    }
    let available = order
        .iter()
        .filter_map(|n| nodes.get(n))
        .map(|n| n.free * m.base as u64)
        .sum();
    Err(NumaError::InsufficientMemory {
        requested: count * m.unit.min(m.base) as u64,
        available,
    })
}

impl PlacementBackend for SimMachine {
    type Topology = OwnedTopology;

    fn topology(&self) -> &OwnedTopology {
        &self.topology
    }

    fn base_page_size(&self) -> usize {
        self.page_size
    }

    fn free_memory(&self, node: NodeId, huge: HugePages) -> Result<u64, NumaError> {
        self.calls.record(CallKind::FreeMemory);
        let st = self.state();
        let m = st.nodes.get(&node).ok_or(NumaError::NodeNotFound(node))?;
        Ok(match huge {
            HugePages::None | HugePages::Transparent => m.free * self.page_size as u64,
            HugePages::Explicit2M => m.huge_2m * (2 << 20),
            HugePages::Explicit1G => m.huge_1g * (1 << 30),
        })
    }

    fn map(&self, len: usize, huge: HugePages) -> Result<Mapping, NumaError> {
        self.calls.record(CallKind::Map);
        let mut st = self.state();
        let (addr, mapped, unit) = self.insert_mapping(&mut st, len, huge, None)?;
        // SAFETY: `addr..addr + mapped` is the block just allocated and kept in `maps`
        // until `unmap`; `unit` divides `mapped`.
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
        self.calls.record(CallKind::ApplyPolicy);
        m.range(pages)?;
        let mut st = self.state();
        self.check_allowed(&st, "mbind")?;
        let (policy, opts, eff) = self.as_kernel_holds(&st, policy, opts)?;
        // An adopted token may be part of a mapping: its pages from `first` on.
        let (start, first) = containing(&st.maps, m)?;
        let pages = PageRange {
            first: first + pages.first,
            count: pages.count,
        };
        let sm = st.maps.get_mut(&start).ok_or(NumaError::ForeignMapping)?;
        sm.set_policy(pages, policy, opts);
        if strict {
            let local = self.local_node();
            self.move_misplaced(&mut st, start, pages, &eff, local)?;
        }
        Ok(())
    }

    unsafe fn prefault(
        &self,
        m: &Mapping,
        pages: PageRange,
        how: Prefault,
    ) -> Result<(), NumaError> {
        self.calls.record(CallKind::Prefault);
        m.range(pages)?;
        if how == Prefault::None {
            return Ok(());
        }
        let local = self.local_node();
        let mut st = self.state();
        let start = m.as_ptr() as usize;
        self.fault_range(
            &mut st,
            start,
            pages.first,
            pages.first + pages.count,
            local,
        )
    }

    fn page_locations(
        &self,
        m: &Mapping,
        first: usize,
        out: &mut [PageLocation],
    ) -> Result<(), NumaError> {
        self.calls.record(CallKind::PageLocations);
        let st = self.state();
        self.check_allowed(&st, "move_pages")?;
        let (start, offset) = containing(&st.maps, m)?;
        let sm = st.maps.get(&start).ok_or(NumaError::ForeignMapping)?;
        m.range(PageRange {
            first,
            count: out.len(),
        })?;
        let pages = &sm.pages[offset + first..offset + first + out.len()];
        for (o, p) in out.iter_mut().zip(pages) {
            *o = p.map_or(PageLocation::NotPresent, PageLocation::Node);
        }
        Ok(())
    }

    unsafe fn migrate(&self, m: &Mapping, to: &NodeMask, mode: NodeMode) -> Result<(), NumaError> {
        self.calls.record(CallKind::Migrate);
        let policy = MemPolicy::Bind(*to);
        let mut opts = RegionOptions::default();
        opts.node_mode = mode;
        // `to` is read with the mode's flag, as the kernel reads an mbind mask.
        let eff = policy.validate(&opts, &self.topology)?;
        let local = self.local_node();
        let mut st = self.state();
        self.check_allowed(&st, "mbind")?;
        let start = m.as_ptr() as usize;
        let sm = st.maps.get_mut(&start).ok_or(NumaError::ForeignMapping)?;
        let all = m.all_pages();
        sm.set_policy(all, policy, opts);
        self.move_misplaced(&mut st, start, all, &eff, local)
    }

    fn memory_limit(&self, _fresh: bool) -> Result<Option<numaperf_core::MemoryLimit>, NumaError> {
        Ok(memory_limit(&self.state()))
    }

    fn capabilities(&self) -> numaperf_core::Capabilities {
        crate::capabilities::of_sim(self, self.capability_facts())
    }

    fn kernel_weights(&self) -> Result<Option<KernelWeights>, NumaError> {
        let st = self.state();
        if st.lacks.contains(&KernelFeature::WeightedInterleave) {
            return Ok(None);
        }
        Ok(Some(st.weights.unwrap_or_else(|| {
            let mut weights = NodeWeights::new();
            for n in self.topology.nodes().iter() {
                let _ = weights.set(n, 1);
            }
            KernelWeights {
                weights,
                auto: None,
            }
        })))
    }

    unsafe fn unmap(&self, m: &Mapping) -> Result<(), NumaError> {
        self.calls.record(CallKind::Unmap);
        let mut st = self.state();
        let start = m.as_ptr() as usize;
        if st.maps.get(&start).is_some_and(|sm| sm.object.is_some()) {
            // A view of a shared object: the object lives on while other views or
            // tokens hold it.
            self.drop_object_ref(&mut st, start);
            return Ok(());
        }
        let State { nodes, maps, .. } = &mut *st;
        let sm = maps.remove(&start).ok_or(NumaError::ForeignMapping)?;
        for node in sm.pages.iter().flatten() {
            release(nodes, &sm, *node, 1);
        }
        debug_assert_eq!(sm.block.ptr(), m.addr());
        debug_assert_eq!(sm.len, m.len());
        debug_assert_eq!(sm.mapped_len, m.mapped_len());
        // Dropping `sm` frees the block: the caller guarantees nothing refers to it.
        drop(sm);
        Ok(())
    }

    fn current_cpu(&self) -> Result<CpuLocation, NumaError> {
        self.calls.record(CallKind::CurrentCpu);
        let cpu = self.thread().cpu;
        Ok(CpuLocation {
            cpu,
            node: self
                .topology
                .cpu_node(cpu)
                .ok_or(NumaError::InvalidCpu(cpu as u32))?,
        })
    }

    fn thread_affinity(&self) -> Result<CpuSet, NumaError> {
        self.calls.record(CallKind::Affinity);
        Ok(self.thread().affinity)
    }

    fn set_thread_affinity(&self, cpus: &CpuSet) -> Result<(), NumaError> {
        self.calls.record(CallKind::Affinity);
        if let Some(bad) = cpus.out_of_range() {
            return Err(NumaError::InvalidCpu(bad));
        }
        let usable = cpus.intersection(self.topology.allowed_cpus());
        if cpus.is_empty() {
            return Err(NumaError::EmptyCpuSet);
        }
        let first = usable
            .first()
            .ok_or(NumaError::CpuNotAllowed(cpus.first().unwrap_or(0) as u32))?;
        let t = self.thread();
        let cpu = if usable.contains(t.cpu) { t.cpu } else { first };
        threads::set(
            self.id,
            SimThread {
                cpu,
                affinity: usable,
            },
        );
        Ok(())
    }

    /// Inside one simulated mapping, in its page unit (the simulator has no file
    /// mappings: memory outside its mappings is foreign to it).
    unsafe fn adopt(&self, addr: NonNull<u8>, len: usize) -> Result<Mapping, NumaError> {
        let st = self.state();
        let at = addr.as_ptr() as usize;
        let (&start, sm) = st
            .maps
            .range(..=at)
            .next_back()
            .filter(|(s, sm)| at < *s + sm.mapped_len)
            .ok_or(NumaError::ForeignMapping)?;
        if len == 0 || (at - start) % sm.unit != 0 || len % sm.unit != 0 {
            return Err(NumaError::NoWholePage {
                len,
                page_size: sm.unit,
            });
        }
        if at - start + len > sm.mapped_len {
            return Err(NumaError::ForeignMapping);
        }
        // SAFETY: inside a live simulated mapping (checked), which by this function's
        // contract stays mapped while the token lives; `unit` divides `len`.
        Ok(unsafe { Mapping::from_raw_parts(addr, len, len, sm.unit) })
    }

    fn create_shared(&self, len: usize, huge: HugePages) -> Result<SharedObject, NumaError> {
        self.create_object(len, huge)
    }

    fn open_shared<'a>(&self, handle: SharedHandle<'a>) -> Result<SharedObject, NumaError> {
        self.open_object(handle)
    }

    fn map_shared(&self, obj: &SharedObject, len: usize) -> Result<Mapping, NumaError> {
        self.calls.record(CallKind::Map);
        self.map_object(obj, len)
    }

    unsafe fn close_shared(&self, obj: &SharedObject) -> Result<(), NumaError> {
        self.close_object(obj)
    }

    fn thread_policy(&self) -> Result<Option<numaperf_core::ThreadPolicy>, NumaError> {
        Ok(crate::thread_policy::get(self.id))
    }

    fn set_thread_policy(
        &self,
        policy: Option<numaperf_core::ThreadPolicy>,
    ) -> Result<(), NumaError> {
        let held = match policy {
            None => None,
            Some(p) => {
                let st = self.state();
                self.check_allowed(&st, "set_mempolicy")?;
                let (policy, opts, _) = self.as_kernel_holds(&st, &p.policy, &p.options())?;
                Some(numaperf_core::ThreadPolicy {
                    policy,
                    node_mode: opts.node_mode,
                    numa_balancing: opts.numa_balancing,
                })
            }
        };
        crate::thread_policy::set(self.id, held);
        Ok(())
    }
}
