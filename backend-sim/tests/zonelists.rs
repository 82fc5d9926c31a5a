//! The zonelist orders the simulator places by (`fallback_orders`, one sorted replay of
//! the kernel's build) against `build_zonelists` as the kernel writes it, pick after pick,
//! on random machines with ties, CPU-less and memoryless nodes and sparse ids.

use numaperf_core::policy::{fallback_order, fallback_orders};
use numaperf_core::{NodeId, NodeMask, PlacementBackend, TopologyInfo, MAX_NUMNODES};
use numaperf_sim::SimMachine;
use proptest::prelude::*;

/// `build_zonelists`/`find_next_best_node` as the kernel reads: for every online node up
/// to `node`, pick the least `(distance + penalties) * MAX_NUMNODES + node_load` among the
/// unused memory nodes again and again, raising the load of the first node of each
/// distance group.
fn zonelist_by_picks(t: &(impl TopologyInfo + ?Sized), node: NodeId) -> Vec<NodeId> {
    let mut load = [0u32; MAX_NUMNODES];
    for local in t.nodes().iter().take_while(|&n| n <= node) {
        let mut used = NodeMask::single(local);
        let (mut prev, mut out) = (local, vec![local]);
        loop {
            let mut best: Option<(u64, NodeId)> = None;
            for n in t.memory_nodes().difference(&used).iter() {
                let mut val = t.distance(local, n).unwrap_or(255) as u64;
                val += (n < local) as u64;
                if t.node_cpus(n).is_some_and(|c| !c.is_empty()) {
                    val += 1;
                }
                val = val * MAX_NUMNODES as u64 + load[n.get() as usize] as u64;
                if best.is_none_or(|(b, _)| val < b) {
                    best = Some((val, n));
                }
            }
            let Some((_, best)) = best else { break };
            used.add(best);
            if t.distance(local, best) != t.distance(local, prev) {
                load[best.get() as usize] += 1;
            }
            out.push(best);
            prev = best;
        }
        if local == node {
            out.retain(|&n| t.memory_nodes().contains(n));
            return out;
        }
    }
    Vec::new()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_sorted_replay_is_the_kernels_pick_by_pick_build(
        gaps in proptest::collection::vec(0u32..3, 1..12),
        shape in proptest::collection::vec((0usize..3, any::<bool>()), 12),
        dist in proptest::collection::vec(3u8..8, 144),
    ) {
        // Ids with gaps; a node has 0-2 CPUs and memory or not (node 0 always has
        // memory); distances from few values (multiples of 4), so ties are common.
        let mut b = SimMachine::builder();
        let mut id = 0;
        for (i, gap) in gaps.iter().enumerate() {
            id += gap + (i > 0) as u32;
            let (cpus, mem) = shape[i];
            b = b.node_with_id(NodeId::new(id), cpus, if mem || i == 0 { 1 << 20 } else { 0 });
        }
        let ids: Vec<u32> = b.clone().build().unwrap().topology().nodes().iter().map(|n| n.get()).collect();
        for (i, &x) in ids.iter().enumerate() {
            for (j, &y) in ids.iter().enumerate().skip(i + 1) {
                b = b.distance(x, y, dist[i * 12 + j] * 4);
            }
        }
        let sim = b.build().unwrap();
        let t = sim.topology();
        let mut all = Vec::new();
        fallback_orders(t, |node, order| all.push((node, order.to_vec())));
        prop_assert_eq!(all.len(), ids.len());
        for (node, order) in all {
            let expected = zonelist_by_picks(t, node);
            prop_assert_eq!(&order, &expected, "node {}", node);
            let mut out = [NodeId::new(0); 12];
            let k = fallback_order(t, node, &mut out);
            prop_assert_eq!(&out[..k], &expected[..]);
        }
    }
}
