//! Memory attributes on simulated machines: given to the builder, written into a captured
//! tree as the kernel lays them out, and read back by the replay.

use numaperf_core::memattrs::{AccessClass, AccessFigures};
use numaperf_core::{NodeId, NodeMask, NumaError, PlacementBackend, TopologyInfo};
use numaperf_sim::{SimBuilder, SimMachine};

const MIB: u64 = 1 << 20;

fn from(nodes: &[u32], bw: u32, lat: u32) -> AccessFigures {
    AccessFigures {
        initiators: nodes.iter().copied().map(NodeId::new).collect(),
        read_bandwidth: Some(bw),
        write_bandwidth: Some(bw),
        read_latency: Some(lat),
        write_latency: Some(lat),
    }
}

/// The guests' 4node-cxl machine with QEMU's HMAT figures: DRAM nodes 0 and 1, CXL
/// nodes 2 (near 0) and 3 (near 1), the CXL nodes in a slower tier.
fn cxl() -> SimBuilder {
    let mut b = SimMachine::builder()
        .node(1, 256 * MIB)
        .node(1, 256 * MIB)
        .node(0, 256 * MIB)
        .node(0, 256 * MIB);
    for (node, near, bw, lat, tier) in [
        (0, 0, 10240, 10, 4),
        (1, 1, 10240, 10, 4),
        (2, 0, 2048, 40, 22),
        (3, 1, 2048, 40, 22),
    ] {
        for class in AccessClass::ALL {
            b = b.access_figures(node, class, from(&[near], bw, lat));
        }
        b = b.memory_tier(node, tier);
    }
    b
}

#[test]
fn the_builder_gives_nodes_their_attributes() {
    let sim = cxl().build().unwrap();
    let t = sim.topology();
    let a = t.memory_attributes(NodeId::new(2)).unwrap();
    assert_eq!(a.tier, Some(22));
    let f = a.figures(AccessClass::CpuInitiator).unwrap();
    assert_eq!(f.initiators, NodeMask::single(NodeId::new(0)));
    assert_eq!((f.bandwidth(), f.latency()), (Some(2048), Some(40)));
    // A plain machine has none.
    let plain = SimMachine::from_spec("2 nodes x 1 cpus x 64 MiB").unwrap();
    assert!(plain.topology().memory_attributes(NodeId::new(0)).is_none());
}

#[test]
fn the_builder_refuses_attributes_of_nodes_that_cannot_have_them() {
    let cpu_only = SimMachine::builder()
        .node(1, 0)
        .node(1, 64 * MIB)
        .memory_tier(0, 4)
        .build();
    assert!(
        matches!(cpu_only, Err(NumaError::InvalidTopology(_))),
        "{cpu_only:?}"
    );
    let absent_initiator = SimMachine::builder()
        .node(1, 64 * MIB)
        .access_figures(0, AccessClass::AnyInitiator, from(&[5], 1, 1))
        .build();
    assert!(matches!(
        absent_initiator,
        Err(NumaError::InvalidTopology(_))
    ));
    let absent_node = SimMachine::builder()
        .node(1, 64 * MIB)
        .memory_tier(3, 4)
        .build();
    assert!(matches!(absent_node, Err(NumaError::InvalidTopology(_))));
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("numaperf-sim-attrs-{name}-{}", std::process::id()))
}

#[test]
fn a_written_tree_replays_with_its_attributes() {
    let sim = cxl().build().unwrap();
    let sys = temp("roundtrip");
    let _ = std::fs::remove_dir_all(&sys);
    let root = sys.join("devices/system/node");
    sim.write_sysfs_tree(&root).unwrap();
    let again = SimMachine::from_sysfs_dir(&root);
    let tier_file = sys.join("devices/virtual/memory_tiering/memory_tier22/nodelist");
    let tier_text = std::fs::read_to_string(&tier_file);
    let link = std::fs::read_link(root.join("node3/access1/initiators/node1"));
    // Elsewhere than a /sys-like path the tiers stay inside the tree's own directory.
    let flat = temp("flat");
    let _ = std::fs::remove_dir_all(&flat);
    sim.write_sysfs_tree(&flat).unwrap();
    let flat_again = SimMachine::from_sysfs_dir(&flat);
    std::fs::remove_dir_all(&sys).unwrap();
    std::fs::remove_dir_all(&flat).unwrap();
    let again = again.unwrap();
    assert_eq!(tier_text.unwrap(), "2-3\n");
    if cfg!(unix) {
        assert_eq!(link.unwrap(), std::path::Path::new("../../../node1"));
    }
    for n in sim.topology().nodes().iter() {
        assert_eq!(
            again.topology().memory_attributes(n),
            sim.topology().memory_attributes(n),
            "node {n}"
        );
    }
    let flat_again = flat_again.unwrap();
    let a = flat_again
        .topology()
        .memory_attributes(NodeId::new(2))
        .unwrap();
    assert_eq!(a.tier, None);
    assert_eq!(
        a.figures(AccessClass::AnyInitiator),
        sim.topology()
            .memory_attributes(NodeId::new(2))
            .unwrap()
            .figures(AccessClass::AnyInitiator)
    );
}

#[test]
fn a_corrupt_attribute_file_in_a_replayed_tree_is_named() {
    let sim = cxl().build().unwrap();
    let dir = temp("corrupt");
    let _ = std::fs::remove_dir_all(&dir);
    sim.write_sysfs_tree(&dir).unwrap();
    std::fs::write(
        dir.join("node2/access0/initiators/write_bandwidth"),
        "2 GB\n",
    )
    .unwrap();
    let r = SimMachine::from_sysfs_dir(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    match r {
        Err(NumaError::Sysfs { file, .. }) => {
            assert_eq!(file.node, Some(NodeId::new(2)));
            assert_eq!(file.name, "access0/initiators/write_bandwidth");
        }
        other => panic!("{other:?}"),
    }
}
