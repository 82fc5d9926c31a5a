//! The simulated kernel's zonelists: every node's fallback order, built once per machine
//! (as the kernel builds them at boot), and the allocation orders of one policy drawn
//! from them, so placing a page costs a lookup instead of a zonelist build.

use std::collections::BTreeMap;

use numaperf_core::policy::{allocation_order_from, allocation_start, fallback_orders};
use numaperf_core::{MemPolicy, NodeId, NodeMask, RegionOptions, TopologyInfo};

/// Every online node's fallback order, by node id; built on the first placement.
#[derive(Debug, Default)]
pub(crate) struct Zonelists {
    lists: Option<BTreeMap<NodeId, Vec<NodeId>>>,
}

#[cfg(test)]
thread_local! {
    /// Node fallback orders built on this thread (a test counts them).
    pub(crate) static BUILT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl Zonelists {
    /// The fallback order of `node` (empty for a node that is not online).
    fn of(&mut self, topo: &(impl TopologyInfo + ?Sized), node: NodeId) -> &[NodeId] {
        let lists = self.lists.get_or_insert_with(|| {
            let mut lists = BTreeMap::new();
            fallback_orders(topo, |n, order| {
                #[cfg(test)]
                BUILT.with(|b| b.set(b.get() + 1));
                lists.insert(n, order.to_vec());
            });
            lists
        });
        lists.get(&node).map_or(&[], Vec::as_slice)
    }
}

/// The allocation orders of one policy over its effective nodes, by the node the
/// allocation starts from (`allocation_start`), each computed once.
pub(crate) struct PolicyOrders {
    policy: MemPolicy,
    opts: RegionOptions,
    eff: NodeMask,
    by_start: BTreeMap<NodeId, Vec<NodeId>>,
}

impl PolicyOrders {
    /// Orders for `policy` with `opts` over `eff`, its effective nodes.
    pub(crate) fn new(policy: &MemPolicy, opts: &RegionOptions, eff: &NodeMask) -> Self {
        PolicyOrders {
            policy: policy.clone(),
            opts: *opts,
            eff: *eff,
            by_start: BTreeMap::new(),
        }
    }

    /// The nodes a page faulted from `local` with interleave index `ilx` may go to, in
    /// the order the kernel tries them (`numaperf_core::policy::allocation_order`).
    pub(crate) fn order(
        &mut self,
        zonelists: &mut Zonelists,
        topo: &(impl TopologyInfo + ?Sized),
        local: NodeId,
        ilx: u64,
    ) -> &[NodeId] {
        let start = allocation_start(&self.policy, &self.opts, &self.eff, local, ilx);
        let (policy, eff) = (&self.policy, &self.eff);
        self.by_start.entry(start).or_insert_with(|| {
            let fallback = zonelists.of(topo, start);
            let mut out = vec![NodeId::new(0); fallback.len()];
            let k = allocation_order_from(policy, eff, topo, fallback, &mut out);
            out.truncate(k);
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::BUILT;
    use crate::SimMachine;
    use numaperf_core::policy::{allocation_order, interleave_index};
    use numaperf_core::region::create_region;
    use numaperf_core::{
        MemPolicy, NodeId, NodeMask, PageLocation, PlacementBackend, Prefault, RegionOptions,
    };

    fn built() -> u64 {
        BUILT.with(|b| b.get())
    }

    /// The sim used to build a zonelist (replaying the lower nodes' builds too) for every
    /// page it placed: 64 MiB `Preferred` on 16 nodes took 0.46 s, on 64 nodes 46 s.
    #[test]
    fn zonelists_are_built_once_per_machine_not_per_page() {
        let nodes = if cfg!(miri) { 4 } else { 64 };
        let pages = if cfg!(miri) { 64 } else { 4096 };
        let sim = SimMachine::from_spec(&format!("{nodes} nodes x 1 cpus x 64 MiB")).unwrap();
        let all: NodeMask = (0..nodes).map(NodeId::new).collect();
        let before = built();
        for policy in [
            MemPolicy::Preferred(NodeId::new(nodes - 1)),
            MemPolicy::Interleave(all),
            MemPolicy::Local,
        ] {
            let (m, _) = create_region(
                &sim,
                pages * 4096,
                &policy,
                &RegionOptions::default(),
                Prefault::Populate,
            )
            .unwrap();
            // SAFETY: nothing refers to the region's memory.
            unsafe { sim.unmap(&m) }.unwrap();
        }
        assert_eq!(built() - before, nodes as u64, "one order per node, once");
    }

    /// The cached orders place every page where core's per-page allocation order says:
    /// a cross-check on a machine with unequal distances, full nodes and interleave.
    #[test]
    fn cached_orders_place_as_the_per_page_order() {
        let sim = SimMachine::builder()
            .node(1, 64 << 10)
            .node(1, 1 << 20)
            .node(0, 1 << 20)
            .node(1, 1 << 20)
            .distance(0, 1, 31)
            .distance(0, 2, 21)
            .distance(1, 3, 41)
            .build()
            .unwrap();
        let topo = sim.topology();
        let three: NodeMask = [0, 1, 3].into_iter().map(NodeId::new).collect();
        for policy in [
            MemPolicy::Preferred(NodeId::new(0)),
            MemPolicy::Interleave(three),
            MemPolicy::PreferredMany(NodeMask::single(NodeId::new(0))),
        ] {
            let opts = RegionOptions::default();
            let eff = policy.validate(&opts, topo).unwrap();
            let pages = 64;
            let (m, _) = create_region(&sim, pages * 4096, &policy, &opts, Prefault::None).unwrap();
            // Page by page, from node 1's CPU, so each page sees the nodes as they are.
            let mut free: Vec<u64> = sim.usage().iter().map(|u| u.free / 4096).collect();
            for p in 0..pages {
                let at = m.as_ptr().wrapping_add(p * 4096);
                sim.run_on_cpu(1, || sim.touch(at, 1)).unwrap().unwrap();
                let ilx = interleave_index(m.as_ptr() as usize, at as usize, 12, 0);
                let mut order = [NodeId::new(0); 4];
                let k =
                    allocation_order(&policy, &opts, &eff, topo, NodeId::new(1), ilx, &mut order);
                let want = order[..k]
                    .iter()
                    .copied()
                    .find(|n| free[n.get() as usize] > 0)
                    .unwrap();
                free[want.get() as usize] -= 1;
                let mut got = [PageLocation::NotPresent];
                sim.page_locations(&m, p, &mut got).unwrap();
                assert_eq!(got[0], PageLocation::Node(want), "{policy:?} page {p}");
            }
            // SAFETY: nothing refers to the region's memory.
            unsafe { sim.unmap(&m) }.unwrap();
        }
    }
}
