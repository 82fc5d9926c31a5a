//! The behaviour suite on simulated machines: 2 nodes, 4 nodes with 2 memory-only (CXL-like),
//! sparse ids {0, 2}, and the captured 8-node asymmetric server.

mod behaviour;

use numaperf::NodeId;
use numaperf_sim::SimMachine;

const MIB: u64 = 1 << 20;

fn machines() -> Vec<(&'static str, SimMachine)> {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/backend-sim/testdata");
    vec![
        (
            "2node",
            SimMachine::from_spec("2 nodes x 2 cpus x 256 MiB").unwrap(),
        ),
        (
            "4node-cxl",
            SimMachine::builder()
                .node(1, 256 * MIB)
                .node(1, 256 * MIB)
                .node(0, 256 * MIB)
                .node(0, 256 * MIB)
                .distance(0, 2, 31)
                .distance(0, 3, 31)
                .distance(1, 2, 31)
                .distance(1, 3, 31)
                .distance(2, 3, 41)
                .build()
                .unwrap(),
        ),
        (
            "sparse-0-2",
            SimMachine::builder()
                .node_with_id(NodeId::new(0), 2, 256 * MIB)
                .node_with_id(NodeId::new(2), 2, 256 * MIB)
                .build()
                .unwrap(),
        ),
        (
            "cpu-only-node",
            SimMachine::builder()
                .node(2, 0)
                .node(2, 256 * MIB)
                .build()
                .unwrap(),
        ),
        (
            "8node-asym",
            SimMachine::from_sysfs_dir(format!("{data}/8node-asym")).unwrap(),
        ),
        // Trees the guest runner captured inside real QEMU guests.
        (
            "guest-4node-cxl-6.12",
            SimMachine::from_sysfs_dir(format!("{data}/guest-4node-cxl-6.12")).unwrap(),
        ),
        (
            "guest-2node-6.1",
            SimMachine::from_sysfs_dir(format!("{data}/guest-2node-6.1")).unwrap(),
        ),
    ]
}

#[test]
fn behaviour_suite_on_simulated_machines() {
    let mut failures = Vec::new();
    for (label, sim) in machines() {
        failures.extend(behaviour::run_all(&sim, label));
        assert_eq!(sim.mapping_count(), 0, "{label}: mappings left behind");
        assert!(
            sim.usage().iter().all(|u| u.free == u.total
                || label.contains("8node")
                || label.starts_with("guest")),
            "{label}: memory not returned"
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
