//! Memory attributes through the facade: a simulated CXL machine's HMAT figures and tiers
//! in `Topology`, the best node for a set of CPUs, bandwidth-derived weights applied to
//! one region without touching the kernel's table, and the Linux reader agreeing with the
//! simulator's captured tree.

use numaperf::numa_core::memattrs::{AccessClass, AccessFigures, TargetMetric};
use numaperf::{
    CpuSet, MemPolicy, NodeId, NodeMask, NumaRegion, PlacementBackend, Prefault, RegionOptions,
    Topology, TopologyInfo,
};
use numaperf_sim::SimMachine;

const MIB: u64 = 1 << 20;

fn from(near: u32, bw: u32, lat: u32) -> AccessFigures {
    AccessFigures {
        initiators: NodeMask::single(NodeId::new(near)),
        read_bandwidth: Some(bw),
        write_bandwidth: Some(bw),
        read_latency: Some(lat),
        write_latency: Some(lat),
    }
}

/// DRAM nodes 0 and 1 (CPUs 0 and 1), CXL nodes 2 (near 0, twice the memory) and 3.
fn cxl() -> SimMachine {
    let mut b = SimMachine::builder()
        .node(1, 64 * MIB)
        .node(1, 64 * MIB)
        .node(0, 128 * MIB)
        .node(0, 64 * MIB);
    for (node, near, bw, lat, tier) in [
        (0, 0, 10240, 10, 4),
        (1, 1, 10240, 10, 4),
        (2, 0, 2048, 40, 22),
        (3, 1, 2048, 40, 22),
    ] {
        for class in AccessClass::ALL {
            b = b.access_figures(node, class, from(near, bw, lat));
        }
        b = b.memory_tier(node, tier);
    }
    b.build().unwrap()
}

fn ids(ids: &[u32]) -> NodeMask {
    ids.iter().copied().map(NodeId::new).collect()
}

#[test]
fn the_topology_carries_the_figures_and_answers_best_target() {
    let sim = cxl();
    let topo = Topology::of_backend(&sim).unwrap();
    for n in topo.nodes().iter() {
        assert_eq!(
            topo.memory_attributes(n),
            sim.topology().memory_attributes(n)
        );
    }
    let best = |cpu: usize, m| {
        let b = topo.best_target(&CpuSet::single(cpu), m).unwrap();
        (b.node.get(), b.value)
    };
    assert_eq!(best(0, TargetMetric::Bandwidth), (0, 10240));
    assert_eq!(best(1, TargetMetric::Latency), (1, 10));
    assert_eq!(best(0, TargetMetric::Capacity), (2, 128 * MIB));
    let text = topo.to_string();
    assert!(
        text.contains(
            "node 2 memory: tier 22; access0 from 0: read 2048 MB/s 40 ns, write 2048 MB/s 40 ns; \
             access1 from 0: read 2048 MB/s 40 ns, write 2048 MB/s 40 ns\n"
        ),
        "{text}"
    );
}

#[test]
fn bandwidth_weights_lay_out_one_region_without_touching_the_kernel_table() {
    let sim = cxl();
    let topo = Topology::of_backend(&sim).unwrap();
    let all = topo.bandwidth_weights(&topo.memory_nodes()).unwrap();
    let got: Vec<u8> = topo.nodes().iter().map(|n| all.weight(n)).collect();
    // 10240 : 10240 : 2048 : 2048 of 24576, times 32: 13, 13, 2, 2.
    assert_eq!(got, [13, 13, 2, 2]);
    let near0 = topo.bandwidth_weights(&ids(&[0, 2])).unwrap();
    assert_eq!(
        (near0.weight(NodeId::new(0)), near0.weight(NodeId::new(2))),
        (26, 5)
    );
    let before = sim.kernel_weights().unwrap();
    let pages = 31 * 8;
    let region = NumaRegion::anon_in(
        &sim,
        pages * 4096,
        MemPolicy::WeightedInterleave(near0),
        RegionOptions::new(),
        Prefault::Touch,
    )
    .unwrap();
    let placed = region.placement().unwrap();
    assert_eq!(placed.on(NodeId::new(0)), 26 * 8, "{placed}");
    assert_eq!(placed.on(NodeId::new(2)), 5 * 8, "{placed}");
    assert_eq!(sim.kernel_weights().unwrap(), before);
}

#[cfg(target_os = "linux")]
#[test]
fn the_linux_reader_reads_the_simulators_tree_alike() {
    let sim = cxl();
    let sys = std::env::temp_dir().join(format!("numaperf-memattrs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&sys);
    let root = sys.join("devices/system/node");
    sim.write_sysfs_tree(&root).unwrap();
    let read = numaperf_linux::read_topology(&root);
    std::fs::remove_dir_all(&sys).unwrap();
    let read = read.unwrap();
    for n in sim.topology().nodes().iter() {
        assert_eq!(
            read.memory_attributes(n),
            sim.topology().memory_attributes(n),
            "node {n}"
        );
    }
}
