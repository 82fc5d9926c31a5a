//! Memory attributes (hwloc's memattrs): what the firmware (ACPI HMAT, CXL CDAT) tells
//! the kernel about reaching a memory node from its best initiators, and the node's
//! memory tier; the best node for a set of CPUs, and interleave weights from bandwidth.

use crate::node::{CpuSet, NodeId, NodeMask};
use crate::parse::{ParseError, ParseErrorKind};
use crate::policy::NodeWeights;
use crate::topology::TopologyInfo;

/// Which initiators a set of figures is for: the kernel's `nodeN/access0` and `access1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessClass {
    /// `access0`: the best initiators of any kind (CPUs, or a memory-only initiator such
    /// as a GPU or accelerator node).
    AnyInitiator,
    /// `access1`: the best initiators that have CPUs.
    CpuInitiator,
}

impl AccessClass {
    /// Both classes, `access0` first.
    pub const ALL: [AccessClass; 2] = [AccessClass::AnyInitiator, AccessClass::CpuInitiator];

    /// The kernel's directory name (`access0`, `access1`).
    pub const fn dir_name(self) -> &'static str {
        match self {
            AccessClass::AnyInitiator => "access0",
            AccessClass::CpuInitiator => "access1",
        }
    }

    const fn index(self) -> usize {
        match self {
            AccessClass::AnyInitiator => 0,
            AccessClass::CpuInitiator => 1,
        }
    }
}

/// How fast a memory node is from its best initiators (one access class of it): the
/// kernel's `accessN/initiators/` directory. A figure the kernel does not give is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccessFigures {
    /// The initiator nodes the figures are for (the `initiators/nodeM` links).
    pub initiators: NodeMask,
    /// `read_bandwidth`, in MiB/s.
    pub read_bandwidth: Option<u32>,
    /// `write_bandwidth`, in MiB/s.
    pub write_bandwidth: Option<u32>,
    /// `read_latency`, in nanoseconds.
    pub read_latency: Option<u32>,
    /// `write_latency`, in nanoseconds.
    pub write_latency: Option<u32>,
}

impl AccessFigures {
    /// The bandwidth a mixed load sees: the lower of read and write (the kernel's choice
    /// for its weighted-interleave weights), or the one given.
    pub fn bandwidth(&self) -> Option<u32> {
        match (self.read_bandwidth, self.write_bandwidth) {
            (Some(r), Some(w)) => Some(r.min(w)),
            (r, w) => r.or(w),
        }
    }

    /// The latency a mixed load sees: the higher of read and write, or the one given.
    pub fn latency(&self) -> Option<u32> {
        match (self.read_latency, self.write_latency) {
            (Some(r), Some(w)) => Some(r.max(w)),
            (r, w) => r.or(w),
        }
    }

    /// Whether no figure is given.
    pub fn is_empty(&self) -> bool {
        self.read_bandwidth.is_none()
            && self.write_bandwidth.is_none()
            && self.read_latency.is_none()
            && self.write_latency.is_none()
    }
}

/// What the kernel tells about one memory node beyond its size: the figures of each access
/// class and the memory tier it is in. All unknown by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryAttributes {
    access: [Option<AccessFigures>; 2],
    /// The memory tier (`memory_tierN` of `/sys/devices/virtual/memory_tiering`): a lower
    /// number is a faster tier (DRAM is tier 4 by default, slower CXL memory above it).
    pub tier: Option<u32>,
}

impl MemoryAttributes {
    /// Nothing known.
    pub const fn new() -> Self {
        MemoryAttributes {
            access: [None, None],
            tier: None,
        }
    }

    /// The figures of one access class (`None`: the kernel has no `accessN` for the node).
    pub fn figures(&self, class: AccessClass) -> Option<&AccessFigures> {
        self.access[class.index()].as_ref()
    }

    /// Builder form: the figures of one access class.
    pub fn with_figures(mut self, class: AccessClass, figures: AccessFigures) -> Self {
        self.access[class.index()] = Some(figures);
        self
    }

    /// Builder form: the memory tier.
    pub fn with_tier(mut self, tier: u32) -> Self {
        self.tier = Some(tier);
        self
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.access.iter().all(Option::is_none) && self.tier.is_none()
    }

    /// The figures that apply to initiators on `from` (every node of it must be among the
    /// class's initiators): the CPU class first, then the any-initiator class.
    pub fn figures_from(&self, from: &NodeMask) -> Option<&AccessFigures> {
        [AccessClass::CpuInitiator, AccessClass::AnyInitiator]
            .into_iter()
            .filter_map(|c| self.figures(c))
            .find(|f| !from.is_empty() && from.is_subset(&f.initiators))
    }
}

/// What [`best_target`] ranks memory nodes by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetMetric {
    /// Higher is better: [`AccessFigures::bandwidth`] (the lower of read and write).
    Bandwidth,
    /// Higher is better: `read_bandwidth`.
    ReadBandwidth,
    /// Higher is better: `write_bandwidth`.
    WriteBandwidth,
    /// Lower is better: [`AccessFigures::latency`] (the higher of read and write).
    Latency,
    /// Lower is better: `read_latency`.
    ReadLatency,
    /// Lower is better: `write_latency`.
    WriteLatency,
    /// Higher is better: the node's total memory in bytes (needs no firmware figures).
    Capacity,
}

impl TargetMetric {
    fn lower_is_better(self) -> bool {
        matches!(
            self,
            TargetMetric::Latency | TargetMetric::ReadLatency | TargetMetric::WriteLatency
        )
    }

    fn of(self, f: &AccessFigures) -> Option<u32> {
        match self {
            TargetMetric::Bandwidth => f.bandwidth(),
            TargetMetric::ReadBandwidth => f.read_bandwidth,
            TargetMetric::WriteBandwidth => f.write_bandwidth,
            TargetMetric::Latency => f.latency(),
            TargetMetric::ReadLatency => f.read_latency,
            TargetMetric::WriteLatency => f.write_latency,
            TargetMetric::Capacity => None,
        }
    }
}

/// The node [`best_target`] chose and its value (MiB/s, ns or bytes, by the metric).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BestTarget {
    /// The memory node.
    pub node: NodeId,
    /// Its value for the metric.
    pub value: u64,
}

/// The best memory node for work on `cpus` by `metric`, as hwloc's
/// `hwloc_memattr_get_best_target`: among the memory nodes this process may allocate
/// from, the one whose figures for initiators on `cpus`' nodes rank best.
///
/// The kernel gives each memory node's figures for its best initiators only, so a node
/// counts when every node `cpus` runs on is among those initiators (see
/// [`MemoryAttributes::figures_from`]) and the figure is given; for
/// [`TargetMetric::Capacity`] every allowed memory node counts. Ties go to a node `cpus`
/// runs on, then to the lowest id. `None` when no node has the figure, or `cpus` is on
/// no node.
///
/// (`numaperf::Topology::best_target` shows it on a simulated CXL machine.)
pub fn best_target(
    topo: &(impl TopologyInfo + ?Sized),
    cpus: &CpuSet,
    metric: TargetMetric,
) -> Option<BestTarget> {
    let from: NodeMask = cpus.iter().filter_map(|c| topo.cpu_node(c)).collect();
    if from.is_empty() {
        return None;
    }
    let usable = topo.memory_nodes().intersection(topo.allowed_nodes());
    let mut best: Option<(BestTarget, bool)> = None;
    for node in usable.iter() {
        let value = if metric == TargetMetric::Capacity {
            topo.node_memory(node)
        } else {
            topo.memory_attributes(node)
                .and_then(|a| a.figures_from(&from))
                .and_then(|f| metric.of(f))
                .map(u64::from)
        };
        let Some(value) = value else { continue };
        let local = from.contains(node);
        let better = match best {
            None => true,
            Some((b, b_local)) if value == b.value => local && !b_local,
            Some((b, _)) => (value < b.value) == metric.lower_is_better(),
        };
        if better {
            best = Some((BestTarget { node, value }, local));
        }
    }
    best.map(|(b, _)| b)
}

/// The most a bandwidth-derived weight can be before the reduction by the weights' gcd:
/// the kernel's `weightiness` (a node with all the bandwidth gets at most this).
pub const BANDWIDTH_WEIGHT_MAX: u8 = 32;

/// Weighted-interleave weights proportional to bandwidth, as the kernel's `auto` mode
/// computes its global table (Linux 6.16 `reduce_interleave_weights`), for the memory
/// nodes of `nodes`: each node's [`AccessFigures::bandwidth`] from its CPU initiators
/// (`access1`, the figures the kernel takes; `access0` where there is no `access1`),
/// scaled to `max(1, 32 * bandwidth / total)`, then divided by the weights' greatest
/// common divisor. A node without a figure counts as bandwidth 0 and gets weight 1.
///
/// Passing the topology's memory nodes reproduces the kernel's own table. The weights
/// are for `MemPolicy::WeightedInterleave`, which lays a region out in this proportion on
/// any kernel that has weighted interleave, without touching the global table.
///
/// `None` when no memory node of `nodes` has a bandwidth figure (the kernel then keeps
/// every weight at 1).
pub fn bandwidth_weights(
    topo: &(impl TopologyInfo + ?Sized),
    nodes: &NodeMask,
) -> Option<NodeWeights> {
    let targets = nodes.intersection(topo.memory_nodes());
    let bw = |n: NodeId| -> u64 {
        topo.memory_attributes(n)
            .and_then(|a| {
                a.figures(AccessClass::CpuInitiator)
                    .or(a.figures(AccessClass::AnyInitiator))
            })
            .and_then(AccessFigures::bandwidth)
            .map_or(0, u64::from)
    };
    let total: u64 = targets.iter().map(bw).sum();
    if total == 0 {
        return None;
    }
    let max = u64::from(BANDWIDTH_WEIGHT_MAX);
    let scaled = |n: NodeId| (max * bw(n) / total).max(1);
    let gcd = targets.iter().map(scaled).fold(0, gcd);
    let mut w = NodeWeights::new();
    for n in targets.iter() {
        // At most 32 / gcd, so it fits a u8 and is at least 1.
        w = w.with(n, (scaled(n) / gcd.max(1)) as u8);
    }
    Some(w)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Reads an access figure file (`read_bandwidth`, `read_latency`, ...): a decimal number
/// and a newline.
///
/// # Errors
/// A [`ParseError`] for text that is not a decimal `u32`.
pub fn parse_access_figure(text: &str) -> Result<u32, ParseError> {
    let t = text.strip_suffix('\n').unwrap_or(text);
    let err = |kind, pos| Err(ParseError { kind, pos });
    if t.is_empty() {
        return err(ParseErrorKind::Empty, 0);
    }
    let mut v: u32 = 0;
    for (pos, b) in t.bytes().enumerate() {
        if !b.is_ascii_digit() {
            let c = t[pos..].chars().next().unwrap_or('?');
            return err(ParseErrorKind::UnexpectedChar(c), pos);
        }
        v = match v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u32::from(b - b'0')))
        {
            Some(v) => v,
            None => return err(ParseErrorKind::NumberTooLarge, pos),
        };
    }
    Ok(v)
}

/// The tier number of a `memory_tierN` directory name (`None`: another name).
pub fn parse_tier_dir(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("memory_tier")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::node::IdSet;
    use crate::topology::tests::table;
    use proptest::prelude::*;

    #[test]
    fn figure_files_parse() {
        assert_eq!(parse_access_figure("2048\n"), Ok(2048));
        assert_eq!(parse_access_figure("0"), Ok(0));
        assert_eq!(parse_access_figure("4294967295\n"), Ok(u32::MAX));
        assert_eq!(
            parse_access_figure("4294967296\n").unwrap_err().kind,
            ParseErrorKind::NumberTooLarge
        );
        assert_eq!(
            parse_access_figure("\n").unwrap_err().kind,
            ParseErrorKind::Empty
        );
        assert_eq!(
            parse_access_figure("12 MB\n").unwrap_err(),
            ParseError {
                kind: ParseErrorKind::UnexpectedChar(' '),
                pos: 2
            }
        );
        assert_eq!(
            parse_access_figure("-1\n").unwrap_err().kind,
            ParseErrorKind::UnexpectedChar('-')
        );
    }

    #[test]
    fn tier_dirs_parse() {
        assert_eq!(parse_tier_dir("memory_tier4"), Some(4));
        assert_eq!(parse_tier_dir("memory_tier22"), Some(22));
        for other in [
            "memory_tier",
            "power",
            "uevent",
            "memory_tierx",
            "memory_tier-1",
        ] {
            assert_eq!(parse_tier_dir(other), None, "{other}");
        }
    }

    proptest! {
        #[test]
        fn figure_parsing_never_panics(s in "\\PC{0,12}") {
            let _ = parse_access_figure(&s);
            let _ = parse_tier_dir(&s);
        }

        #[test]
        fn figures_round_trip(v in any::<u32>()) {
            prop_assert_eq!(parse_access_figure(&std::format!("{v}\n")), Ok(v));
        }
    }

    fn figures(from: &[u32], bw: (u32, u32), lat: (u32, u32)) -> AccessFigures {
        AccessFigures {
            initiators: from.iter().copied().map(NodeId::new).collect(),
            read_bandwidth: Some(bw.0),
            write_bandwidth: Some(bw.1),
            read_latency: Some(lat.0),
            write_latency: Some(lat.1),
        }
    }

    #[test]
    fn mixed_figures_take_the_worse_direction() {
        let f = figures(&[0], (4096, 2048), (40, 60));
        assert_eq!((f.bandwidth(), f.latency()), (Some(2048), Some(60)));
        let only_read = AccessFigures {
            read_bandwidth: Some(7),
            ..AccessFigures::default()
        };
        assert_eq!(
            (only_read.bandwidth(), only_read.latency()),
            (Some(7), None)
        );
        assert!(AccessFigures::default().is_empty() && !only_read.is_empty());
        assert!(MemoryAttributes::new().is_empty());
        assert!(!MemoryAttributes::new().with_tier(4).is_empty());
    }

    #[test]
    fn figures_apply_when_every_initiator_node_is_covered() {
        let a = MemoryAttributes::new()
            .with_figures(AccessClass::AnyInitiator, figures(&[2], (1, 1), (1, 1)))
            .with_figures(AccessClass::CpuInitiator, figures(&[0, 1], (5, 5), (9, 9)));
        let m = |ids: &[u32]| -> NodeMask { ids.iter().copied().map(NodeId::new).collect() };
        assert_eq!(a.figures_from(&m(&[0])).unwrap().read_latency, Some(9));
        assert_eq!(a.figures_from(&m(&[0, 1])).unwrap().read_latency, Some(9));
        // The any-initiator class covers node 2 (say, a GPU node).
        assert_eq!(a.figures_from(&m(&[2])).unwrap().read_latency, Some(1));
        assert!(a.figures_from(&m(&[0, 2])).is_none());
        assert!(a.figures_from(&IdSet::new()).is_none());
    }

    #[cfg(feature = "alloc")]
    mod with_topology {
        use super::*;
        use crate::topology::{NodeInfo, OwnedTopology};
        use std::vec;
        use std::vec::Vec;

        /// Nodes 0 and 1 with CPUs 0 and 1; memory-only 2 (CXL, near 0) and 3 (near 1).
        fn cxl(attrs: Vec<(u32, MemoryAttributes)>) -> OwnedTopology {
            let node = |id: u32, cpus: &[usize], gib: u64| {
                let cpus = cpus.iter().copied().collect();
                NodeInfo::new(NodeId::new(id), cpus, gib << 30, gib << 30)
            };
            let nodes = vec![
                node(0, &[0], 1),
                node(1, &[1], 1),
                node(2, &[], 4),
                node(3, &[], 2),
            ];
            let attrs = attrs
                .into_iter()
                .map(|(n, a)| (NodeId::new(n), a))
                .collect();
            OwnedTopology::new(nodes, vec![], None, None)
                .unwrap()
                .with_memory_attributes(attrs)
                .unwrap()
        }

        fn cpu(f: AccessFigures) -> MemoryAttributes {
            MemoryAttributes::new().with_figures(AccessClass::CpuInitiator, f)
        }

        fn hmat() -> OwnedTopology {
            cxl(vec![
                (0, cpu(figures(&[0], (10240, 10240), (10, 10)))),
                (1, cpu(figures(&[1], (10240, 10240), (10, 10)))),
                (2, cpu(figures(&[0], (2048, 2048), (40, 40)))),
                (3, cpu(figures(&[1], (4096, 2048), (30, 50)))),
            ])
        }

        #[test]
        fn best_target_by_each_metric() {
            let t = hmat();
            let best = |cpus: &[usize], m| {
                let cpus: CpuSet = cpus.iter().copied().collect();
                best_target(&t, &cpus, m).map(|b| (b.node.get(), b.value))
            };
            assert_eq!(best(&[0], TargetMetric::Bandwidth), Some((0, 10240)));
            assert_eq!(best(&[0], TargetMetric::Latency), Some((0, 10)));
            assert_eq!(best(&[0], TargetMetric::Capacity), Some((2, 4 << 30)));
            assert_eq!(best(&[1], TargetMetric::ReadBandwidth), Some((1, 10240)));
            // CPUs on both nodes: no node's best initiators cover both.
            assert_eq!(best(&[0, 1], TargetMetric::Bandwidth), None);
            assert_eq!(best(&[0, 1], TargetMetric::Capacity), Some((2, 4 << 30)));
            // A CPU on no node.
            assert_eq!(best(&[7], TargetMetric::Capacity), None);
            // Without attributes only capacity answers.
            let plain = cxl(vec![]);
            let c0 = CpuSet::single(0);
            assert_eq!(best_target(&plain, &c0, TargetMetric::Latency), None);
            assert!(best_target(&plain, &c0, TargetMetric::Capacity).is_some());
        }

        #[test]
        fn best_target_ties_go_to_a_local_node_then_the_lowest_id() {
            // Node 2 (near 0) as fast as node 0: node 0 is local, so it wins.
            let t = cxl(vec![
                (2, cpu(figures(&[0], (10240, 10240), (10, 10)))),
                (0, cpu(figures(&[0], (10240, 10240), (10, 10)))),
            ]);
            let c0 = CpuSet::single(0);
            assert_eq!(
                best_target(&t, &c0, TargetMetric::Bandwidth)
                    .unwrap()
                    .node
                    .get(),
                0
            );
            // Two remote nodes alike: the lower id.
            let t = cxl(vec![
                (3, cpu(figures(&[0], (9, 9), (1, 1)))),
                (2, cpu(figures(&[0], (9, 9), (1, 1)))),
            ]);
            assert_eq!(
                best_target(&t, &c0, TargetMetric::Latency)
                    .unwrap()
                    .node
                    .get(),
                2
            );
        }

        #[test]
        fn best_target_skips_nodes_this_process_may_not_use() {
            let t = hmat();
            let nodes = t.node_list().to_vec();
            let allowed: NodeMask = [1, 2, 3].into_iter().map(NodeId::new).collect();
            let limited = OwnedTopology::new(nodes, vec![], Some(allowed), None)
                .unwrap()
                .with_memory_attributes(
                    t.nodes()
                        .iter()
                        .filter_map(|n| t.memory_attributes(n).map(|a| (n, *a)))
                        .collect(),
                )
                .unwrap();
            let c0 = CpuSet::single(0);
            let b = best_target(&limited, &c0, TargetMetric::Bandwidth).unwrap();
            assert_eq!((b.node.get(), b.value), (2, 2048));
        }

        #[test]
        fn bandwidth_weights_as_the_kernels_auto_mode() {
            let t = hmat();
            // 10240 + 10240 + 2048 + 2048 = 24576: 32 * share = 13, 13, 2, 2; gcd 1.
            let w = bandwidth_weights(&t, t.memory_nodes()).unwrap();
            let got: Vec<u8> = t.nodes().iter().map(|n| w.weight(n)).collect();
            assert_eq!(got, [13, 13, 2, 2]);
            // DRAM and one CXL node: 10240 : 2048 = 26 : 5 (32 * 10240 / 12288 = 26).
            let two: NodeMask = [0, 2].into_iter().map(NodeId::new).collect();
            let w = bandwidth_weights(&t, &two).unwrap();
            assert_eq!(
                (w.weight(NodeId::new(0)), w.weight(NodeId::new(2))),
                (26, 5)
            );
            assert_eq!(w.nodes(), two);
            // Equal bandwidths reduce to 1:1 (16:16 by the gcd).
            let w = bandwidth_weights(&t, &[0, 1].into_iter().map(NodeId::new).collect());
            let w = w.unwrap();
            assert_eq!((w.weight(NodeId::new(0)), w.weight(NodeId::new(1))), (1, 1));
            // A node without a figure gets 1; no figures at all: None.
            let partial = cxl(vec![(0, cpu(figures(&[0], (100, 100), (1, 1))))]);
            let w = bandwidth_weights(&partial, partial.memory_nodes()).unwrap();
            let got: Vec<u8> = partial.nodes().iter().map(|n| w.weight(n)).collect();
            assert_eq!(got, [32, 1, 1, 1]);
            assert_eq!(bandwidth_weights(&cxl(vec![]), t.memory_nodes()), None);
            assert_eq!(bandwidth_weights(&t, &NodeMask::new()), None);
        }

        proptest! {
            #[test]
            fn bandwidth_weights_are_valid_and_proportional(
                bws in proptest::collection::vec(0u32..=u32::MAX, 4)
            ) {
                let attrs = bws
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| (i as u32, cpu(figures(&[0], (b, b), (1, 1)))))
                    .collect();
                let t = cxl(attrs);
                let Some(w) = bandwidth_weights(&t, t.memory_nodes()) else {
                    prop_assert!(bws.iter().all(|&b| b == 0));
                    return Ok(());
                };
                prop_assert!(w.check().is_ok());
                for (i, &a) in bws.iter().enumerate() {
                    let wa = w.weight(NodeId::new(i as u32));
                    prop_assert!((1..=32).contains(&wa));
                    for (j, &b) in bws.iter().enumerate() {
                        // More bandwidth never gets less weight.
                        if a > b {
                            prop_assert!(wa >= w.weight(NodeId::new(j as u32)));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_fixed_topology_has_no_attributes() {
        let t = table(&[(0, &[0], 64, &[])]);
        assert!(t.memory_attributes(NodeId::new(0)).is_none());
        let c0 = CpuSet::single(0);
        assert!(best_target(&t, &c0, TargetMetric::Bandwidth).is_none());
        assert_eq!(
            best_target(&t, &c0, TargetMetric::Capacity),
            Some(BestTarget {
                node: NodeId::new(0),
                value: 64 << 20
            })
        );
    }
}
