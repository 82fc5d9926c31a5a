//! Weighted interleave without touching the kernel's global table: the kernel's weights as
//! read (never written), and a plan that binds consecutive chunks of a region to single
//! nodes in the asked proportion when those weights differ from the kernel's.

use crate::backend::PageRange;
use crate::node::{NodeId, NodeMask};
use crate::options::NodeMode;
use crate::policy::{effective_nodes, MemPolicy, NodeWeights};
use crate::topology::TopologyInfo;

/// The kernel's global weighted-interleave table (`/sys/kernel/mm/mempolicy/
/// weighted_interleave/node<N>`): read, never written, by numaperf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelWeights {
    /// The weight of each node that has a file.
    pub weights: NodeWeights,
    /// Whether the kernel derives the weights from firmware bandwidth data (`auto` mode);
    /// `None` where the kernel has no auto mode.
    pub auto: Option<bool>,
}

impl KernelWeights {
    /// Whether the kernel's table gives every node of `eff` the weight `asked` gives it
    /// (then `MPOL_WEIGHTED_INTERLEAVE` itself delivers the asked proportion).
    pub fn matches(&self, asked: &NodeWeights, eff: &NodeMask) -> bool {
        eff.iter()
            .all(|n| self.weights.weight(n).max(1) == asked.weight(n).max(1))
    }
}

/// The most chunks [`WeightedChunks`] cuts a region into when it has fewer nodes; each
/// chunk becomes one kernel VMA, so this bounds what one region adds to the process's
/// `vm.max_map_count` budget.
pub const WEIGHTED_CHUNKS_MAX: usize = 64;

/// The weights of a weighted-interleave policy by physical node: the policy's own under
/// `Default`/`Static`, and under `Relative` the weight of the first index that maps to
/// each effective node (indices fold onto the allowed memory nodes as the kernel's
/// `mpol_relative_nodemask` does). Nodes without a weight get 1, as in the kernel.
pub fn physical_weights(
    policy: &MemPolicy,
    mode: NodeMode,
    topo: &(impl TopologyInfo + ?Sized),
) -> NodeWeights {
    let MemPolicy::WeightedInterleave(asked) = policy else {
        return NodeWeights::new();
    };
    let eff = effective_nodes(policy, mode, topo);
    let mut out = NodeWeights::new();
    if mode == NodeMode::Relative {
        let usable = topo.allowed_nodes().intersection(topo.memory_nodes());
        let w = usable.count().max(1);
        for idx in asked.nodes().iter() {
            if let Some(n) = usable.nth(idx.get() as usize % w) {
                if out.weight(n) == 0 {
                    let _ = out.set(n, asked.weight(idx));
                }
            }
        }
    } else {
        for n in eff.iter() {
            let _ = out.set(n, asked.weight(n).max(1));
        }
    }
    out
}

/// The plan for `pages` pages over `nodes` in proportion to `weights`: consecutive chunks,
/// each to be bound to one node, yielded in address order.
///
/// Per node the totals are exactly what the kernel's weighted interleave gives a region
/// whose first page has interleave index 0: whole cycles of the weights, then the rest
/// node after node. They are laid out in `R = max(1, 64 / nodes)` rounds; in each round
/// node `i` takes `ceil(total_i / R)` pages (less when its total is reached), so the
/// granularity is about `pages / (R * nodes)` pages and a region makes at most
/// `max(64, nodes)` chunks. Adjacent chunks of one node are merged.
///
/// ```
/// use numaperf_core::weighted::WeightedChunks;
/// use numaperf_core::{NodeId, NodeMask, NodeWeights};
/// let w = NodeWeights::new().with(NodeId::new(0), 3).with(NodeId::new(1), 1);
/// let nodes: NodeMask = [NodeId::new(0), NodeId::new(1)].into_iter().collect();
/// let mut per_node = [0usize; 2];
/// for (node, range) in WeightedChunks::new(600, &w, &nodes) {
///     per_node[node.get() as usize] += range.count;
/// }
/// assert_eq!(per_node, [450, 150]);
/// ```
#[derive(Clone, Debug)]
pub struct WeightedChunks<'a> {
    weights: &'a NodeWeights,
    nodes: &'a NodeMask,
    count: usize,
    rounds: usize,
    cycles: usize,
    rest: usize,
    total_weight: usize,
    round: usize,
    index: usize,
    offset: usize,
}

impl<'a> WeightedChunks<'a> {
    /// The plan for a region of `pages` pages.
    pub fn new(pages: usize, weights: &'a NodeWeights, nodes: &'a NodeMask) -> Self {
        let count = nodes.count();
        let total_weight: usize = nodes
            .iter()
            .map(|n| weights.weight(n).max(1) as usize)
            .sum();
        let cycles = pages.checked_div(total_weight).unwrap_or(0);
        let rest = pages.checked_rem(total_weight).unwrap_or(0);
        WeightedChunks {
            weights,
            nodes,
            count,
            rounds: (WEIGHTED_CHUNKS_MAX / count.max(1)).max(1),
            cycles,
            rest,
            total_weight,
            round: 0,
            index: 0,
            offset: 0,
        }
    }

    /// The total pages node `nth` of the mask gets, and the weight of the nodes before it.
    fn total(&self, nth: usize) -> usize {
        let mut before = 0usize;
        for (i, n) in self.nodes.iter().enumerate() {
            let w = self.weights.weight(n).max(1) as usize;
            if i == nth {
                let extra = self.rest.saturating_sub(before).min(w);
                return self.cycles * w + extra;
            }
            before += w;
        }
        0
    }

    /// Pages node `nth` takes in round `round`.
    fn share(&self, nth: usize, round: usize) -> usize {
        let total = self.total(nth);
        let per_round = total.div_ceil(self.rounds);
        let given = |k: usize| (k * per_round).min(total);
        given(round + 1) - given(round)
    }

    /// The next non-empty raw chunk, before merging.
    fn next_raw(&mut self) -> Option<(NodeId, usize)> {
        if self.total_weight == 0 {
            return None;
        }
        while self.round < self.rounds {
            let (nth, round) = (self.index, self.round);
            self.index += 1;
            if self.index == self.count {
                self.index = 0;
                self.round += 1;
            }
            let len = self.share(nth, round);
            if len > 0 {
                return self.nodes.nth(nth).map(|n| (n, len));
            }
        }
        None
    }
}

impl Iterator for WeightedChunks<'_> {
    type Item = (NodeId, PageRange);

    fn next(&mut self) -> Option<Self::Item> {
        let (node, mut len) = self.next_raw()?;
        loop {
            let saved = (self.round, self.index);
            match self.next_raw() {
                Some((n, l)) if n == node => len += l,
                Some(_) => {
                    (self.round, self.index) = saved;
                    break;
                }
                None => break,
            }
        }
        let range = PageRange {
            first: self.offset,
            count: len,
        };
        self.offset += len;
        Some((node, range))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::policy::weighted_interleave_node;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn weights(ws: &[(u32, u8)]) -> (NodeWeights, NodeMask) {
        let mut w = NodeWeights::new();
        for &(n, x) in ws {
            w.set(NodeId::new(n), x).unwrap();
        }
        let nodes = w.nodes();
        (w, nodes)
    }

    #[test]
    fn three_one_one_one_over_600_pages_is_exact() {
        let (w, nodes) = weights(&[(0, 3), (1, 1), (2, 1), (3, 1)]);
        let chunks: Vec<_> = WeightedChunks::new(600, &w, &nodes).collect();
        let mut per = [0usize; 4];
        for (n, r) in &chunks {
            per[n.get() as usize] += r.count;
        }
        assert_eq!(per, [300, 100, 100, 100]);
        assert!(chunks.len() <= WEIGHTED_CHUNKS_MAX);
        // 16 rounds of 4 nodes; nodes 1-3 reach their totals before the last round.
        assert_eq!(chunks.len(), 61);
    }

    #[test]
    fn one_page_and_one_node() {
        let (w, nodes) = weights(&[(5, 7)]);
        let c: Vec<_> = WeightedChunks::new(1, &w, &nodes).collect();
        assert_eq!(c, [(NodeId::new(5), PageRange { first: 0, count: 1 })]);
        let c: Vec<_> = WeightedChunks::new(1000, &w, &nodes).collect();
        assert_eq!(c.len(), 1, "one node: one chunk");
        assert_eq!(WeightedChunks::new(0, &w, &nodes).count(), 0);
        assert_eq!(WeightedChunks::new(9, &w, &NodeMask::new()).count(), 0);
    }

    proptest! {
        #[test]
        fn chunks_cover_the_region_in_the_kernels_totals(
            ws in proptest::collection::btree_map(0u32..200, 1u8..=255, 1..12),
            pages in 0usize..100_000,
        ) {
            let list: Vec<(u32, u8)> = ws.into_iter().collect();
            let (w, nodes) = weights(&list);
            let mut next = 0;
            let mut per = std::collections::BTreeMap::new();
            let mut chunks = 0;
            let mut last = None;
            for (n, r) in WeightedChunks::new(pages, &w, &nodes) {
                prop_assert_eq!(r.first, next);
                prop_assert!(r.count > 0);
                prop_assert!(last != Some(n), "adjacent chunks of one node are merged");
                last = Some(n);
                next += r.count;
                *per.entry(n).or_insert(0usize) += r.count;
                chunks += 1;
            }
            prop_assert_eq!(next, pages);
            prop_assert!(chunks <= WEIGHTED_CHUNKS_MAX.max(nodes.count()));
            // The kernel's page-by-page totals from interleave index 0.
            let mut want = std::collections::BTreeMap::new();
            if pages <= 20_000 {
                for i in 0..pages as u64 {
                    *want.entry(weighted_interleave_node(&w, &nodes, i).unwrap()).or_insert(0usize) += 1;
                }
                prop_assert_eq!(per, want);
            }
        }
    }
}
