//! The simulator's measured locality: per-node `numastat` counters kept as the kernel's
//! `zone_statistics` keeps them while pages are placed, and the simulated mappings as
//! `/proc/self/numa_maps` would show them. A child of `machine` (it reads its tables).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use numaperf_core::locality::{BalancingStat, LocalitySource, MappingKind, MappingPages};
use numaperf_core::{MemPolicy, NodeId, NodeMask, NumaError, TopologyInfo};

use super::{NodeMemory, SimMachine, SimMapping};

/// Counts the placement of one unit of `m` on `placed`, where `order` is the allocation
/// order it was placed by (its first node is the one the allocation was meant for) and
/// `running` the node of the faulting task. As on Linux: one count per allocation (a
/// transparent huge page is one), none for hugetlb pages (taken from a reserved pool).
pub(super) fn count(
    nodes: &mut BTreeMap<NodeId, NodeMemory>,
    m: &SimMapping,
    placed: NodeId,
    order: &[NodeId],
    running: NodeId,
    policy: &MemPolicy,
) {
    if m.unit > m.base {
        return;
    }
    let preferred = order.first().copied().unwrap_or(placed);
    let interleave = matches!(
        policy,
        MemPolicy::Interleave(_) | MemPolicy::WeightedInterleave(_)
    );
    for id in [placed, preferred] {
        if let Some(mem) = nodes.get_mut(&id) {
            mem.numastat
                .count(id, placed, preferred, running, interleave);
        }
        if placed == preferred {
            break;
        }
    }
}

/// A policy as `numa_maps` prints it (`default` for memory that never had one).
fn kernel_policy_text(policy: &MemPolicy, inherit: bool) -> String {
    let mut s = String::new();
    let _ = match policy {
        _ if inherit => write!(s, "default"),
        MemPolicy::Local => write!(s, "local"),
        MemPolicy::Bind(m) => write!(s, "bind:{m}"),
        MemPolicy::Preferred(n) => write!(s, "prefer:{n}"),
        MemPolicy::PreferredMany(m) => write!(s, "prefer (many):{m}"),
        MemPolicy::Interleave(m) => write!(s, "interleave:{m}"),
        MemPolicy::WeightedInterleave(w) => write!(s, "weighted interleave:{}", w.nodes()),
    };
    s
}

/// The simulated kernel's counters and mappings. NUMA balancing is not modelled as
/// counters (`SimMachine::balance` moves pages without hint faults): `balancing` is `None`.
impl LocalitySource for SimMachine {
    fn numastat(&self) -> Result<Vec<(NodeId, numaperf_core::locality::NumaStat)>, NumaError> {
        Ok(self
            .state()
            .nodes
            .iter()
            .filter(|(_, m)| m.total > 0)
            .map(|(&n, m)| (n, m.numastat))
            .collect())
    }

    fn balancing(&self) -> Result<Option<BalancingStat>, NumaError> {
        Ok(None)
    }

    /// One entry per policy segment (the kernel's VMAs after `mbind` on part of a mapping).
    fn mappings(&self) -> Result<Vec<MappingPages>, NumaError> {
        let st = self.state();
        let mut out = Vec::new();
        for (&start, m) in &st.maps {
            for (i, seg) in m.segments.iter().enumerate() {
                let end = m.segments.get(i + 1).map_or(m.pages.len(), |s| s.first);
                let mut nodes: Vec<(NodeId, u64)> = Vec::new();
                for n in m.pages[seg.first..end].iter().flatten() {
                    match nodes.binary_search_by_key(n, |&(k, _)| k) {
                        Ok(k) => nodes[k].1 += 1,
                        Err(k) => nodes.insert(k, (*n, 1)),
                    }
                }
                out.push(MappingPages {
                    start: (start + seg.first * m.unit) as u64,
                    policy: kernel_policy_text(&seg.policy, seg.inherit),
                    kind: MappingKind::Anon,
                    file: None,
                    hugetlb: m.unit > m.base,
                    page_size: if nodes.is_empty() { 0 } else { m.unit as u64 },
                    nodes,
                });
            }
        }
        Ok(out)
    }

    fn current_node(&self) -> Result<NodeId, NumaError> {
        Ok(self.local_node())
    }

    fn cpu_nodes(&self) -> Result<Option<NodeMask>, NumaError> {
        Ok(Some(*self.topology.cpu_nodes()))
    }
}

#[cfg(test)]
mod tests {
    use numaperf_core::locality::LocalitySource;
    use numaperf_core::{
        HugePages, MemPolicy, NodeId, NodeMask, PlacementBackend, Prefault, RegionOptions,
    };

    use crate::SimMachine;

    fn n(i: u32) -> NodeId {
        NodeId::new(i)
    }

    #[test]
    fn binding_away_counts_other_node_and_a_full_node_counts_miss_and_foreign() {
        // Two nodes, CPUs 0-1 on node 0, 2-3 on node 1, 16 pages each.
        let sim = SimMachine::builder()
            .node(2, 64 << 10)
            .node(2, 64 << 10)
            .build()
            .unwrap();
        let before = sim.numastat().unwrap();
        let m = sim.map(8 * 4096, HugePages::None).unwrap();
        let bind1 = MemPolicy::Bind(NodeMask::single(n(1)));
        // SAFETY: `m` is this machine's, unmapped at the end, never referenced.
        unsafe {
            sim.apply_policy(&m, m.all_pages(), &bind1, &RegionOptions::default(), false)
                .unwrap();
            sim.run_on_cpu(0, || sim.prefault(&m, m.all_pages(), Prefault::Populate))
                .unwrap()
                .unwrap();
        }
        let after = sim.numastat().unwrap();
        let d1 = after[1].1.since(&before[1].1);
        assert_eq!(
            (d1.numa_hit, d1.other_node, d1.local_node, d1.numa_miss),
            (8, 8, 0, 0)
        );
        assert_eq!(after[0].1.since(&before[0].1), Default::default());
        let maps = sim.mappings().unwrap();
        assert_eq!(maps.len(), 1);
        assert_eq!((maps[0].policy.as_str(), maps[0].on(n(1))), ("bind:1", 8));

        // Node 1 has 8 pages left: a Preferred(1) region of 12 from node 1 misses 4.
        let p = sim.map(12 * 4096, HugePages::None).unwrap();
        // SAFETY: as above.
        unsafe {
            sim.apply_policy(
                &p,
                p.all_pages(),
                &MemPolicy::Preferred(n(1)),
                &RegionOptions::default(),
                false,
            )
            .unwrap();
            sim.run_on_cpu(2, || sim.prefault(&p, p.all_pages(), Prefault::Populate))
                .unwrap()
                .unwrap();
        }
        let last = sim.numastat().unwrap();
        let (d0, d1) = (last[0].1.since(&after[0].1), last[1].1.since(&after[1].1));
        assert_eq!((d1.numa_hit, d1.local_node, d1.numa_foreign), (8, 8, 4));
        assert_eq!((d0.numa_miss, d0.other_node, d0.numa_hit), (4, 4, 0));
        // SAFETY: nothing refers to either mapping.
        unsafe {
            sim.unmap(&m).unwrap();
            sim.unmap(&p).unwrap();
        }
        assert!(sim.mappings().unwrap().is_empty());
    }

    #[test]
    fn interleave_hits_and_thp_counts_once() {
        let sim = SimMachine::from_spec("2 nodes x 1 cpus x 8 MiB").unwrap();
        let m = sim.map(4 * 4096, HugePages::None).unwrap();
        let il = MemPolicy::Interleave(NodeMask::first_n(2));
        // SAFETY: `m` is this machine's, unmapped at the end, never referenced.
        unsafe {
            sim.apply_policy(&m, m.all_pages(), &il, &RegionOptions::default(), false)
                .unwrap();
            sim.prefault(&m, m.all_pages(), Prefault::Populate).unwrap();
        }
        let s = sim.numastat().unwrap();
        assert_eq!((s[0].1.interleave_hit, s[1].1.interleave_hit), (2, 2));
        assert_eq!(s[1].1.other_node, 2);
        let t = sim.map(2 << 20, HugePages::Transparent).unwrap();
        // SAFETY: as above.
        unsafe { sim.prefault(&t, t.all_pages(), Prefault::Populate).unwrap() };
        let s2 = sim.numastat().unwrap();
        assert_eq!(
            s2[0].1.since(&s[0].1).numa_hit,
            1,
            "one THP, one allocation"
        );
        let maps = sim.mappings().unwrap();
        assert!(maps
            .iter()
            .any(|x| x.policy == "default" && x.on(n(0)) == 512));
        // SAFETY: nothing refers to either mapping.
        unsafe {
            sim.unmap(&m).unwrap();
            sim.unmap(&t).unwrap();
        }
    }
}
