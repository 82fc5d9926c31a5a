//! The Linux backend on this host, for what is not a placement case: the types' thread
//! safety and the facade's topology against the backend's. Placement on the kernel (every
//! policy, lazy faults, pinning, absent nodes, hugetlb, capacity) is in the behaviour
//! suite (tests/behaviour/, `linux.rs` for the Linux-only cases), which suite_linux runs
//! here and examples/guest_suite.rs runs in the multi-node guests, with expectations
//! derived from the machine instead of this host's one node.
#![cfg(target_os = "linux")]

use numaperf::{
    LinuxBackend, MemPolicy, NodeMask, NumaRegion, PlacementBackend, Prefault, Topology,
    TopologyInfo,
};

const MIB: usize = 1 << 20;

#[test]
fn regions_are_send_and_sync_and_share_through_arc() {
    fn check<T: Send + Sync>() {}
    check::<NumaRegion>();
    let b = LinuxBackend::shared().unwrap();
    let nodes = b
        .topology()
        .memory_nodes()
        .intersection(b.topology().allowed_nodes());
    let table = std::sync::Arc::new(
        NumaRegion::anon(
            MIB,
            MemPolicy::Interleave(nodes),
            Default::default(),
            Prefault::Populate,
        )
        .unwrap(),
    );
    let sums: Vec<u64> = (0..2)
        .map(|_| {
            let t = table.clone();
            std::thread::spawn(move || t.as_slice().iter().map(|&b| b as u64).sum())
        })
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(sums, [0, 0]);
    let p = table.placement().unwrap();
    assert!(p.all_within(&nodes), "{p}");
}

#[test]
fn topology_matches_the_backend() {
    let t = Topology::discover().unwrap();
    let b = LinuxBackend::shared().unwrap();
    assert_eq!(t.nodes(), *b.topology().nodes());
    assert_eq!(t.node_count(), t.numa_nodes().len());
    assert!(t
        .numa_nodes()
        .iter()
        .all(|n| n.mem_total() > 0 || n.cpus().count() > 0));
    assert_eq!(
        Topology::from_info(b.topology()).unwrap().nodes(),
        t.nodes()
    );
    assert_eq!(NodeMask::from_words(*t.nodes().words()), t.nodes());
}
