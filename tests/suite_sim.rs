//! The behaviour suite on simulated machines: 2 nodes, 4 nodes with 2 memory-only (CXL-like),
//! sparse ids {0, 2}, a CPU-only node, huge pages on one node only, the captured 8-node
//! asymmetric server, 2 nodes with 64 KiB base pages and trees captured in the guests. One test per `machine::case`
//! (`cargo test --test suite_sim -- 4node-cxl::bind_every_node`), then per machine: no
//! mapping left behind, every byte of memory returned.

mod behaviour;

use std::sync::Arc;

use libtest_mimic::{Failed, Trial};
use numaperf::{HugePages, NodeId};
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
            "2node-hugetlb-on-node0",
            SimMachine::builder()
                .node(1, 256 * MIB)
                .node(1, 256 * MIB)
                .huge_pages(0, HugePages::Explicit2M, 4)
                .build()
                .unwrap(),
        ),
        (
            "8node-asym",
            SimMachine::from_sysfs_dir(format!("{data}/8node-asym")).unwrap(),
        ),
        // 64 KiB base pages, as Debian's 6.1 ppc64el kernel has (its guests reserve 2 MiB
        // huge pages on node 0 too): every page count in the cases is in these pages.
        (
            "2node-64k-pages",
            SimMachine::builder()
                .node(2, 256 * MIB)
                .node(2, 256 * MIB)
                .huge_pages(0, HugePages::Explicit2M, 4)
                .base_page_size(64 << 10)
                .build()
                .unwrap(),
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

fn main() {
    let args = behaviour::trials::arguments();
    let mut trials = Vec::new();
    for (label, sim) in machines() {
        let start = sim.usage();
        let sim = Arc::new(sim);
        trials.extend(behaviour::trials::trials(
            label,
            &sim,
            behaviour::cases(),
            behaviour::run_case,
            args.nocapture,
        ));
        let s = Arc::clone(&sim);
        trials.push(Trial::test(
            format!("{label}::no_mapping_left_behind"),
            move || match s.mapping_count() {
                0 => Ok(()),
                n => Err(Failed::from(format!("{n} mappings left behind"))),
            },
        ));
        trials.push(Trial::test(
            format!("{label}::memory_returned"),
            move || {
                let now = sim.usage();
                if now == start {
                    Ok(())
                } else {
                    Err(format!("memory not returned: at start {start:?}, now {now:?}").into())
                }
            },
        ));
    }
    libtest_mimic::run(&args, trials).exit();
}
