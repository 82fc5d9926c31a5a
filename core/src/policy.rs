//! Memory policies and the pure logic around them: validation against a topology, the
//! nodes the kernel will really use, interleave order, and fallback order by distance.

use core::fmt;

use crate::error::{NumaError, OptionConflict};
use crate::node::{NodeId, NodeMask, MAX_NUMNODES};
use crate::options::{NodeMode, RegionOptions};
use crate::topology::TopologyInfo;

/// Where a region's pages may go.
///
/// ```
/// use numaperf_core::{CpuSet, FixedTopology, MemPolicy, NodeId, NodeInfo, NodeMask,
///     NumaError, RegionOptions};
/// // Two nodes with CPUs and memory, 21 apart.
/// let nodes = [
///     NodeInfo::new(NodeId::new(0), CpuSet::single(0), 1 << 30, 1 << 30),
///     NodeInfo::new(NodeId::new(1), CpuSet::single(1), 1 << 30, 1 << 30),
/// ];
/// let topo = FixedTopology::<2>::new(&nodes, &[10, 21, 21, 10], None, None)?;
/// let both: NodeMask = numaperf_core::parse::parse_list("0-1")?;
/// // Validation returns the nodes the kernel will really use.
/// assert_eq!(MemPolicy::Interleave(both).validate(&RegionOptions::new(), &topo)?, both);
/// assert_eq!(
///     MemPolicy::Preferred(NodeId::new(7)).validate(&RegionOptions::new(), &topo),
///     Err(NumaError::NodeNotFound(NodeId::new(7)))
/// );
/// # Ok::<(), NumaError>(())
/// ```
// WeightedInterleave carries a 1 KiB weight table: without alloc there is no Box, and
// policies travel by reference, so the size difference costs nothing on a hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub enum MemPolicy {
    /// On the node of the CPU that first touches the page, falling back by distance.
    #[default]
    Local,
    /// Only on these nodes; an allocation that cannot fit fails (`MPOL_BIND`).
    Bind(NodeMask),
    /// On this node while it has room, then by distance (`MPOL_PREFERRED`).
    Preferred(NodeId),
    /// On any of these nodes while they have room, then anywhere (`MPOL_PREFERRED_MANY`, Linux 5.15).
    PreferredMany(NodeMask),
    /// Round robin over these nodes by page (`MPOL_INTERLEAVE`).
    Interleave(NodeMask),
    /// Round robin in proportion to per-node weights (`MPOL_WEIGHTED_INTERLEAVE`, Linux 6.9).
    WeightedInterleave(NodeWeights),
}

/// Per-node weights for [`MemPolicy::WeightedInterleave`] (1..=255, as the kernel's table).
///
/// ```
/// use numaperf_core::{NodeId, NodeWeights, NumaError};
/// let w = NodeWeights::new().with(NodeId::new(0), 3).with(NodeId::new(1), 1);
/// assert_eq!((w.weight(NodeId::new(0)), w.weight(NodeId::new(1))), (3, 1));
/// // A bad entry is remembered and reported by validation, naming node and weight.
/// let bad = NodeWeights::new().with(NodeId::new(2), 0);
/// assert_eq!(bad.check(), Err(NumaError::InvalidWeight { node: 2, weight: 0 }));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NodeWeights {
    weights: [u8; MAX_NUMNODES],
    /// The first entry [`NodeWeights::with`] could not take: (node id, weight).
    rejected: Option<(u32, u8)>,
}

impl Default for NodeWeights {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeWeights {
    /// No nodes.
    pub const fn new() -> Self {
        NodeWeights {
            weights: [0; MAX_NUMNODES],
            rejected: None,
        }
    }

    /// Builder form of [`NodeWeights::set`]; a bad id or weight is remembered and
    /// reported by [`NodeWeights::check`] (and so by policy validation).
    pub fn with(mut self, node: NodeId, weight: u8) -> Self {
        if self.set(node, weight).is_err() && self.rejected.is_none() {
            self.rejected = Some((node.get(), weight));
        }
        self
    }

    /// Gives `node` a weight (1..=255).
    ///
    /// # Errors
    /// [`NumaError::InvalidNode`] for an id beyond 1023, [`NumaError::InvalidWeight`]
    /// for weight 0.
    pub fn set(&mut self, node: NodeId, weight: u8) -> Result<(), NumaError> {
        if !node.is_valid() {
            return Err(NumaError::InvalidNode(node.get()));
        }
        if weight == 0 {
            return Err(NumaError::InvalidWeight {
                node: node.get(),
                weight: 0,
            });
        }
        self.weights[node.get() as usize] = weight;
        Ok(())
    }

    /// Whether every entry given to [`NodeWeights::with`] was taken.
    ///
    /// # Errors
    /// The first rejected entry: [`NumaError::InvalidNode`] or [`NumaError::InvalidWeight`].
    pub fn check(&self) -> Result<(), NumaError> {
        match self.rejected {
            None => Ok(()),
            Some((node, _)) if !NodeId::new(node).is_valid() => Err(NumaError::InvalidNode(node)),
            Some((node, weight)) => Err(NumaError::InvalidWeight {
                node,
                weight: weight as u32,
            }),
        }
    }

    /// The weight of a node (0: not in the set).
    pub fn weight(&self, node: NodeId) -> u8 {
        self.weights.get(node.get() as usize).copied().unwrap_or(0)
    }

    /// The nodes that have a weight.
    pub fn nodes(&self) -> NodeMask {
        (0..MAX_NUMNODES as u32)
            .filter(|&i| self.weights[i as usize] != 0)
            .map(NodeId::new)
            .collect()
    }

    /// Sum of the weights of the nodes in `over`.
    pub fn total(&self, over: &NodeMask) -> u64 {
        over.iter().map(|n| self.weight(n).max(1) as u64).sum()
    }
}

impl fmt::Debug for NodeWeights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for n in self.nodes().iter() {
            m.entry(&n.get(), &self.weight(n));
        }
        m.finish()
    }
}

impl MemPolicy {
    /// The kernel's name for the mode.
    pub fn mode_name(&self) -> &'static str {
        match self {
            MemPolicy::Local => "MPOL_LOCAL",
            MemPolicy::Bind(_) => "MPOL_BIND",
            MemPolicy::Preferred(_) => "MPOL_PREFERRED",
            MemPolicy::PreferredMany(_) => "MPOL_PREFERRED_MANY",
            MemPolicy::Interleave(_) => "MPOL_INTERLEAVE",
            MemPolicy::WeightedInterleave(_) => "MPOL_WEIGHTED_INTERLEAVE",
        }
    }

    /// The nodes the policy names (empty for `Local`).
    pub fn nodes(&self) -> NodeMask {
        match self {
            MemPolicy::Local => NodeMask::new(),
            MemPolicy::Bind(m) | MemPolicy::PreferredMany(m) | MemPolicy::Interleave(m) => *m,
            MemPolicy::Preferred(n) => NodeMask::single(*n),
            MemPolicy::WeightedInterleave(w) => w.nodes(),
        }
    }

    /// Whether a region with this policy can be `Hard` (verified strict placement).
    ///
    /// Only `Bind` can: every other policy has fallback in its kernel semantics
    /// (Local, Preferred, PreferredMany fall back by distance; interleave falls back when
    /// a node is full), so no promise about every page could be kept.
    pub fn can_be_hard(&self) -> bool {
        matches!(self, MemPolicy::Bind(_))
    }

    /// Checks the policy and options against a topology and returns the nodes the kernel
    /// will really use (see [`effective_nodes`]).
    ///
    /// # Errors
    /// [`NumaError::InvalidNode`], [`NumaError::InvalidWeight`], [`NumaError::EmptyNodeMask`],
    /// [`NumaError::IncompatibleOption`], [`NumaError::NodeNotFound`],
    /// [`NumaError::NodeNotAllowed`], [`NumaError::NoMemoryOnNode`] and
    /// [`NumaError::NoUsableNode`], each naming what is wrong.
    pub fn validate(
        &self,
        opts: &RegionOptions,
        topo: &(impl TopologyInfo + ?Sized),
    ) -> Result<NodeMask, NumaError> {
        if let MemPolicy::WeightedInterleave(w) = self {
            w.check()?;
        }
        let named = self.nodes();
        if let Some(bad) = named.out_of_range() {
            return Err(NumaError::InvalidNode(bad));
        }
        let is_mask = !matches!(self, MemPolicy::Local | MemPolicy::Preferred(_));
        if is_mask && named.is_empty() {
            return Err(NumaError::EmptyNodeMask);
        }
        let many = matches!(self, MemPolicy::Bind(_) | MemPolicy::PreferredMany(_));
        if matches!(self, MemPolicy::Local) && opts.node_mode != NodeMode::Default {
            return Err(NumaError::IncompatibleOption(
                OptionConflict::NodeModeOnLocal,
            ));
        }
        if opts.numa_balancing && !many {
            return Err(NumaError::IncompatibleOption(
                OptionConflict::BalancingNeedsBindOrPreferredMany,
            ));
        }
        if opts.hard && !self.can_be_hard() {
            return Err(NumaError::IncompatibleOption(OptionConflict::HardNeedsBind));
        }
        if let Some(home) = opts.home_node {
            if !many {
                return Err(NumaError::IncompatibleOption(
                    OptionConflict::HomeNodeNeedsBindOrPreferredMany,
                ));
            }
            if !home.is_valid() {
                return Err(NumaError::InvalidNode(home.get()));
            }
            if !topo.nodes().contains(home) {
                return Err(NumaError::NodeNotFound(home));
            }
        }
        if opts.node_mode != NodeMode::Relative {
            for n in named.iter() {
                if !topo.nodes().contains(n) {
                    return Err(NumaError::NodeNotFound(n));
                }
                if opts.node_mode == NodeMode::Default && !topo.allowed_nodes().contains(n) {
                    return Err(NumaError::NodeNotAllowed(n));
                }
            }
            if let MemPolicy::Preferred(n) = self {
                if !topo.memory_nodes().contains(*n) {
                    return Err(NumaError::NoMemoryOnNode(*n));
                }
            }
        }
        let eff = effective_nodes(self, opts.node_mode, topo);
        if eff.is_empty() {
            return Err(match named.first() {
                Some(n) if opts.node_mode != NodeMode::Relative => NumaError::NoMemoryOnNode(n),
                _ => NumaError::NoUsableNode,
            });
        }
        Ok(eff)
    }
}

/// The nodes the kernel will use for a policy: the named nodes intersected with the
/// allowed nodes that have memory (`cpuset_mems_allowed & N_MEMORY`), or, for relative
/// nodes, the named indices folded and mapped onto those nodes. `Local`: all of them.
pub fn effective_nodes(
    policy: &MemPolicy,
    mode: NodeMode,
    topo: &(impl TopologyInfo + ?Sized),
) -> NodeMask {
    let usable = topo.allowed_nodes().intersection(topo.memory_nodes());
    if matches!(policy, MemPolicy::Local) {
        return usable;
    }
    let named = policy.nodes();
    match mode {
        NodeMode::Default | NodeMode::Static => named.intersection(&usable),
        NodeMode::Relative => {
            // The kernel's mpol_relative_nodemask: fold by the weight, then map onto.
            let w = usable.count();
            if w == 0 {
                return NodeMask::new();
            }
            named
                .iter()
                .filter_map(|n| usable.nth(n.get() as usize % w))
                .collect()
        }
    }
}

/// The kernel's interleave index for the page at `addr` in a mapping starting at
/// `vma_start`, for pages of `1 << (page_shift + order)` bytes (order 9: a 2 MiB THP).
///
/// For anonymous memory the VMA's `vm_pgoff` is its start's virtual page number, so the
/// index is (nearly) the virtual page number: a region's first page need not get the
/// mask's first node.
pub fn interleave_index(vma_start: usize, addr: usize, page_shift: u32, order: u32) -> u64 {
    let pgoff = (vma_start >> page_shift) as u64;
    (pgoff >> order) + ((addr.saturating_sub(vma_start)) >> (page_shift + order)) as u64
}

/// The node `MPOL_INTERLEAVE` over `mask` picks for interleave index `ilx`
/// (the kernel's `offset_il_node`: the `ilx % weight`-th node of the mask).
pub fn interleave_node(mask: &NodeMask, ilx: u64) -> Option<NodeId> {
    let w = mask.count() as u64;
    if w == 0 {
        return None;
    }
    mask.nth((ilx % w) as usize)
}

/// The node `MPOL_WEIGHTED_INTERLEAVE` picks for index `ilx` over `mask` (the effective
/// nodes): node after node in id order, each taking `weight` consecutive indices
/// (the kernel's `weighted_interleave_nid`; weight 0 counts as 1).
pub fn weighted_interleave_node(
    weights: &NodeWeights,
    mask: &NodeMask,
    ilx: u64,
) -> Option<NodeId> {
    let total = weights.total(mask);
    if total == 0 {
        return None;
    }
    let mut target = ilx % total;
    for n in mask.iter() {
        let w = weights.weight(n).max(1) as u64;
        if target < w {
            return Some(n);
        }
        target -= w;
    }
    None
}

/// The kernel's zonelist order for `node`: the memory nodes it falls back to, nearest
/// first, written into `out` (which needs one slot per online node); returns how many.
///
/// This replays `build_zonelists`/`find_next_best_node` for every online node up to
/// `node` in id order, because their shared `node_load` penalty breaks ties between
/// nodes at equal distance: distance, +1 for a lower id than `node`, +1 for a node with
/// CPUs, then the load, then the lowest id. `node` itself comes first if it has memory.
/// It costs O(k N log N) for the k-th of N nodes: callers that need many orders (a
/// simulator placing pages) take them all at once from [`fallback_orders`] and keep them.
pub fn fallback_order(
    topo: &(impl TopologyInfo + ?Sized),
    node: NodeId,
    out: &mut [NodeId],
) -> usize {
    let mut kept = 0;
    replay_zonelists(topo, Some(node), |n, order| {
        if n == node {
            kept = order.len().min(out.len());
            out[..kept].copy_from_slice(&order[..kept]);
        }
    });
    kept
}

/// Every online node's zonelist order (as [`fallback_order`] gives it), from one replay
/// of the kernel's build: `each(node, order)` is called for every online node in id
/// order. O(N^2 log N) for N nodes, and no allocation (about 16 KiB of stack).
pub fn fallback_orders(topo: &(impl TopologyInfo + ?Sized), each: impl FnMut(NodeId, &[NodeId])) {
    replay_zonelists(topo, None, each)
}

/// The kernel's zonelist build for every online node in id order up to `last` (`None`:
/// all), handing each node's order (memory nodes only) to `each`.
///
/// `find_next_best_node` picks, among the memory nodes not yet used, the one with the
/// least `(distance + penalties) * MAX_NUMNODES + node_load`, the lowest id on a tie.
/// Only a node just picked has its load raised, so while one node's list is built the
/// keys of the nodes still to pick do not change: sorting them once by key gives the
/// same order as picking the minimum again and again.
fn replay_zonelists(
    topo: &(impl TopologyInfo + ?Sized),
    last: Option<NodeId>,
    mut each: impl FnMut(NodeId, &[NodeId]),
) {
    let mut load = [0u32; MAX_NUMNODES];
    let mut keys = [0u64; MAX_NUMNODES];
    let mut order = [NodeId::new(0); MAX_NUMNODES];
    let memory = topo.memory_nodes();
    for local in topo.nodes().iter() {
        if last.is_some_and(|l| local > l) {
            return;
        }
        let mut k = 0;
        for n in memory.iter().filter(|&n| n != local) {
            let mut val = topo.distance(local, n).unwrap_or(255) as u64;
            val += (n < local) as u64;
            if topo.node_cpus(n).is_some_and(|c| !c.is_empty()) {
                val += 1;
            }
            val = val * MAX_NUMNODES as u64 + load[n.get() as usize] as u64;
            // Node ids are below MAX_NUMNODES: the low part orders a tie by id.
            keys[k] = val * MAX_NUMNODES as u64 + n.get() as u64;
            k += 1;
        }
        keys[..k].sort_unstable();
        // The local node first (the kernel's first pick), then by key; then the loads.
        let mut len = 0;
        if memory.contains(local) {
            order[0] = local;
            len = 1;
        }
        let mut prev = local;
        for &key in &keys[..k] {
            let best = NodeId::new((key % MAX_NUMNODES as u64) as u32);
            if topo.distance(local, best) != topo.distance(local, prev) {
                load[best.get() as usize] += 1;
            }
            order[len] = best;
            len += 1;
            prev = best;
        }
        each(local, &order[..len]);
    }
}

/// The order in which the kernel tries nodes for one page: the first node that has room
/// gets it; if none has, the allocation fails. Written into `out`; returns how many.
///
/// `local` is the node of the CPU that faults the page, `ilx` the page's interleave index,
/// `eff` the policy's effective nodes ([`effective_nodes`]). Bind and PreferredMany start
/// from the home node if set. Interleave picks its node, then falls back from it.
/// ([`allocation_start`] and [`allocation_order_from`] are its two halves, for a caller
/// that keeps the nodes' fallback orders.)
pub fn allocation_order(
    policy: &MemPolicy,
    opts: &RegionOptions,
    eff: &NodeMask,
    topo: &(impl TopologyInfo + ?Sized),
    local: NodeId,
    ilx: u64,
    out: &mut [NodeId],
) -> usize {
    let start = allocation_start(policy, opts, eff, local, ilx);
    let mut fallback = [NodeId::new(0); MAX_NUMNODES];
    let n = fallback_order(topo, start, &mut fallback);
    allocation_order_from(policy, eff, topo, &fallback[..n], out)
}

/// The node whose fallback order a page's allocation walks (see [`allocation_order`]).
pub fn allocation_start(
    policy: &MemPolicy,
    opts: &RegionOptions,
    eff: &NodeMask,
    local: NodeId,
    ilx: u64,
) -> NodeId {
    match policy {
        MemPolicy::Bind(_) | MemPolicy::PreferredMany(_) => opts.home_node.unwrap_or(local),
        MemPolicy::Local => local,
        MemPolicy::Preferred(_) => eff.first().unwrap_or(local),
        MemPolicy::Interleave(_) => interleave_node(eff, ilx).unwrap_or(local),
        MemPolicy::WeightedInterleave(w) => weighted_interleave_node(w, eff, ilx).unwrap_or(local),
    }
}

/// The allocation order of [`allocation_order`] from `fallback`, the fallback order
/// ([`fallback_order`]) of the page's [`allocation_start`]: the nodes the policy may use,
/// for `PreferredMany` its own nodes first. Written into `out`; returns how many.
pub fn allocation_order_from(
    policy: &MemPolicy,
    eff: &NodeMask,
    topo: &(impl TopologyInfo + ?Sized),
    fallback: &[NodeId],
    out: &mut [NodeId],
) -> usize {
    let usable = topo.allowed_nodes().intersection(topo.memory_nodes());
    let keep = |x: NodeId| match policy {
        MemPolicy::Bind(_) => eff.contains(x),
        _ => usable.contains(x),
    };
    let mut kept = 0;
    let preferred_first = matches!(policy, MemPolicy::PreferredMany(_));
    // PreferredMany: first the preferred nodes in fallback order, then everything else.
    for pass in 0..1 + preferred_first as usize {
        for &x in fallback {
            let wanted = !preferred_first || eff.contains(x) == (pass == 0);
            if wanted && keep(x) && kept < out.len() {
                out[kept] = x;
                kept += 1;
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::topology::tests::table;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn mask(ids: &[u32]) -> NodeMask {
        ids.iter().copied().map(NodeId::new).collect()
    }

    fn order(t: &impl TopologyInfo, n: u32) -> Vec<u32> {
        let mut out = [NodeId::new(0); 16];
        let k = fallback_order(t, NodeId::new(n), &mut out);
        out[..k].iter().map(|n| n.get()).collect()
    }

    /// 4 nodes: 0,1 with CPUs; 2,3 memory-only; 0-1: 21, to 2/3: 31, 2-3: 41.
    fn cxl() -> crate::topology::FixedTopology<8> {
        table(&[
            (0, &[0], 256, &[10, 21, 31, 31]),
            (1, &[1], 256, &[21, 10, 31, 31]),
            (2, &[], 256, &[31, 31, 10, 41]),
            (3, &[], 256, &[31, 31, 41, 10]),
        ])
    }

    #[test]
    fn fallback_by_distance() {
        let t = cxl();
        assert_eq!(order(&t, 0), [0, 1, 2, 3]);
        // Node 1: node 0 is nearest; 2 and 3 tie at 31 and node_load from node 0's
        // build (node 2 got +1 as first of its distance group) puts 3 first.
        assert_eq!(order(&t, 1), [1, 0, 3, 2]);
        assert_eq!(order(&t, 2), [2, 0, 1, 3]);
    }

    #[test]
    fn memoryless_local_node_is_skipped() {
        let t = table(&[(0, &[0], 0, &[10, 20]), (1, &[1], 512, &[20, 10])]);
        assert_eq!(order(&t, 0), [1]);
    }

    #[test]
    fn sparse_nodes_fall_back_by_id_not_position() {
        let t = table(&[(0, &[0], 256, &[10, 21]), (2, &[1], 256, &[21, 10])]);
        assert_eq!(order(&t, 2), [2, 0]);
        assert_eq!(order(&t, 1), Vec::<u32>::new());
    }

    #[test]
    fn interleave_uses_the_virtual_page_number() {
        let m = mask(&[0, 1, 2, 3]);
        // A region starting at page 5: its first page goes to node 5 % 4 = 1.
        let ilx = interleave_index(5 << 12, 5 << 12, 12, 0);
        assert_eq!(interleave_node(&m, ilx), Some(NodeId::new(1)));
        // 2 MiB pages: index counts huge pages.
        assert_eq!(interleave_index(0x4000_0000, 0x4020_0000, 12, 9), 513);
        let sparse = mask(&[0, 2]);
        assert_eq!(interleave_node(&sparse, 1), Some(NodeId::new(2)));
        assert_eq!(interleave_node(&NodeMask::new(), 1), None);
    }

    #[test]
    fn weighted_interleave_by_weights() {
        let w = NodeWeights::new()
            .with(NodeId::new(0), 3)
            .with(NodeId::new(1), 1)
            .with(NodeId::new(2), 1)
            .with(NodeId::new(3), 1);
        let m = w.nodes();
        let got: Vec<u32> = (0..12)
            .map(|i| weighted_interleave_node(&w, &m, i).unwrap().get())
            .collect();
        assert_eq!(got, [0, 0, 0, 1, 2, 3, 0, 0, 0, 1, 2, 3]);
        let mut zero = NodeWeights::new();
        assert_eq!(
            zero.set(NodeId::new(0), 0),
            Err(NumaError::InvalidWeight { node: 0, weight: 0 })
        );
        // The builder remembers the zero weight; validation names node and weight
        // (it used to say "node id 1024 is beyond the kernel's limit").
        let p = MemPolicy::WeightedInterleave(
            NodeWeights::new()
                .with(NodeId::new(1), 2)
                .with(NodeId::new(0), 0),
        );
        assert_eq!(
            p.validate(&RegionOptions::default(), &cxl()),
            Err(NumaError::InvalidWeight { node: 0, weight: 0 })
        );
        let far = MemPolicy::WeightedInterleave(NodeWeights::new().with(NodeId::new(5000), 1));
        assert_eq!(
            far.validate(&RegionOptions::default(), &cxl()),
            Err(NumaError::InvalidNode(5000))
        );
        assert_eq!(
            zero.set(NodeId::new(1024), 1),
            Err(NumaError::InvalidNode(1024))
        );
    }

    #[test]
    fn validation_rules() {
        let t = cxl();
        let o = RegionOptions::default();
        assert_eq!(
            MemPolicy::Bind(NodeMask::new()).validate(&o, &t),
            Err(NumaError::EmptyNodeMask)
        );
        assert_eq!(
            MemPolicy::Bind(mask(&[7])).validate(&o, &t),
            Err(NumaError::NodeNotFound(NodeId::new(7)))
        );
        assert_eq!(
            MemPolicy::Preferred(NodeId::new(2000)).validate(&o, &t),
            Err(NumaError::InvalidNode(2000))
        );
        let mut big = NodeMask::new();
        big.add(NodeId::new(4000));
        assert_eq!(
            MemPolicy::Interleave(big).validate(&o, &t),
            Err(NumaError::InvalidNode(4000))
        );
        // Memory-only nodes are valid targets.
        assert_eq!(MemPolicy::Bind(mask(&[2])).validate(&o, &t), Ok(mask(&[2])));
        assert_eq!(
            MemPolicy::Preferred(NodeId::new(3)).validate(&o, &t),
            Ok(mask(&[3]))
        );
        assert_eq!(MemPolicy::Local.validate(&o, &t), Ok(mask(&[0, 1, 2, 3])));
        let conflict = |c| Err(NumaError::IncompatibleOption(c));
        assert_eq!(
            MemPolicy::Interleave(mask(&[0])).validate(&o.hard(), &t),
            conflict(OptionConflict::HardNeedsBind)
        );
        assert!(MemPolicy::Bind(mask(&[0])).validate(&o.hard(), &t).is_ok());
        assert_eq!(
            MemPolicy::Preferred(NodeId::new(0)).validate(&o.numa_balancing(), &t),
            conflict(OptionConflict::BalancingNeedsBindOrPreferredMany)
        );
        assert!(MemPolicy::Bind(mask(&[0]))
            .validate(&o.numa_balancing(), &t)
            .is_ok());
        assert_eq!(
            MemPolicy::Local.validate(&o.static_nodes(), &t),
            conflict(OptionConflict::NodeModeOnLocal)
        );
        assert_eq!(
            MemPolicy::Interleave(mask(&[0])).validate(&o.home_node(NodeId::new(0)), &t),
            conflict(OptionConflict::HomeNodeNeedsBindOrPreferredMany)
        );
        assert_eq!(
            MemPolicy::Bind(mask(&[0])).validate(&o.home_node(NodeId::new(9)), &t),
            Err(NumaError::NodeNotFound(NodeId::new(9)))
        );
    }

    #[test]
    fn cpu_only_nodes_and_cpusets() {
        let t = table(&[(0, &[0], 0, &[10, 20]), (1, &[1], 512, &[20, 10])]);
        let o = RegionOptions::default();
        assert_eq!(
            MemPolicy::Bind(mask(&[0])).validate(&o, &t),
            Err(NumaError::NoMemoryOnNode(NodeId::new(0)))
        );
        assert_eq!(
            MemPolicy::Preferred(NodeId::new(0)).validate(&o, &t),
            Err(NumaError::NoMemoryOnNode(NodeId::new(0)))
        );
        // A mask with one memory node is fine; the CPU-only node is dropped, as the kernel does.
        assert_eq!(
            MemPolicy::Interleave(mask(&[0, 1])).validate(&o, &t),
            Ok(mask(&[1]))
        );
    }

    #[test]
    fn relative_nodes_fold_onto_allowed() {
        let t = cxl();
        let eff = effective_nodes(&MemPolicy::Bind(mask(&[0, 5])), NodeMode::Relative, &t);
        assert_eq!(eff, mask(&[0, 1]));
    }

    #[test]
    fn allocation_orders() {
        let t = cxl();
        let o = RegionOptions::default();
        let mut out = [NodeId::new(0); 8];
        let mut run = |p: &MemPolicy, local: u32, ilx: u64| {
            let eff = p.validate(&o, &t).unwrap();
            let k = allocation_order(p, &o, &eff, &t, NodeId::new(local), ilx, &mut out);
            out[..k].iter().map(|n| n.get()).collect::<Vec<_>>()
        };
        assert_eq!(run(&MemPolicy::Bind(mask(&[2, 3])), 1, 0), [3, 2]);
        assert_eq!(run(&MemPolicy::Local, 1, 0), [1, 0, 3, 2]);
        assert_eq!(
            run(&MemPolicy::Preferred(NodeId::new(2)), 0, 0),
            [2, 0, 1, 3]
        );
        assert_eq!(
            run(&MemPolicy::PreferredMany(mask(&[2, 3])), 0, 0),
            [2, 3, 0, 1]
        );
        assert_eq!(
            run(&MemPolicy::Interleave(mask(&[0, 2])), 0, 3),
            [2, 0, 1, 3]
        );
    }

    #[test]
    fn all_fallback_orders_at_once_are_each_nodes_order() {
        let t = cxl();
        let mut seen = Vec::new();
        fallback_orders(&t, |n, o| {
            seen.push((n.get(), o.iter().map(|n| n.get()).collect::<Vec<_>>()))
        });
        let each: Vec<_> = (0..4).map(|n| (n, order(&t, n))).collect();
        assert_eq!(seen, each);
    }

    proptest! {
        #[test]
        fn interleave_is_a_fair_round_robin(ids in proptest::collection::btree_set(0u32..1024, 1..20),
                                            start in 0u64..1_000_000, rounds in 1u64..5) {
            let m = mask(&ids.iter().copied().collect::<Vec<_>>());
            let w = m.count() as u64;
            let mut counts = std::collections::BTreeMap::new();
            for i in start..start + w * rounds {
                let n = interleave_node(&m, i).unwrap();
                prop_assert!(m.contains(n));
                *counts.entry(n).or_insert(0u64) += 1;
                // Consecutive pages go to consecutive mask members (cyclically).
                let next = interleave_node(&m, i + 1).unwrap();
                let pos = m.iter().position(|x| x == n).unwrap();
                prop_assert_eq!(next, m.nth((pos + 1) % w as usize).unwrap());
            }
            prop_assert_eq!(counts.len() as u64, w);
            prop_assert!(counts.values().all(|&c| c == rounds));
        }

        #[test]
        fn weighted_interleave_matches_weights(ws in proptest::collection::vec(1u8..8, 1..6), rounds in 1u64..4) {
            let mut w = NodeWeights::new();
            for (i, &x) in ws.iter().enumerate() {
                w.set(NodeId::new(i as u32), x).unwrap();
            }
            let m = w.nodes();
            let total = w.total(&m);
            let mut counts = [0u64; 8];
            for i in 0..total * rounds {
                counts[weighted_interleave_node(&w, &m, i).unwrap().get() as usize] += 1;
            }
            for (i, &x) in ws.iter().enumerate() {
                prop_assert_eq!(counts[i], x as u64 * rounds);
            }
        }

        #[test]
        fn fallback_visits_every_memory_node_once(dist in proptest::collection::vec(11u8..60, 6), start in 0u32..4) {
            // Symmetric 4-node matrix from 6 upper-triangle entries.
            let d = |a: usize, b: usize| -> u8 {
                match (a.min(b), a.max(b)) {
                    (x, y) if x == y => 10,
                    (0, y) => dist[y - 1],
                    (1, y) => dist[y + 1],
                    _ => dist[5],
                }
            };
            let rows: Vec<[u8; 4]> = (0..4).map(|a| [d(a, 0), d(a, 1), d(a, 2), d(a, 3)]).collect();
            let t = table(&[(0, &[0], 64, &rows[0]), (1, &[1], 64, &rows[1]), (2, &[], 64, &rows[2]), (3, &[], 64, &rows[3])]);
            let o = order(&t, start);
            prop_assert_eq!(o[0], start);
            let mut sorted = o.clone();
            sorted.sort();
            prop_assert_eq!(sorted, [0, 1, 2, 3]);
            // Distances from the start never decrease by more than the tie-break penalties allow.
            for w in o.windows(2) {
                let a = rows[start as usize][w[0] as usize] as i32;
                let b = rows[start as usize][w[1] as usize] as i32;
                prop_assert!(b + 2 >= a || w[0] == start);
            }
        }
    }
}
