//! Limits of the simulator's spec parser and builder: every value beyond what a machine
//! can hold is a typed `LimitExceeded` (or `InvalidNode`), refused before any work, fast,
//! and never a panic or a silently smaller machine.

use std::sync::mpsc;
use std::time::Duration;

use numaperf_core::{
    HugePages, NodeId, NumaError, PlacementBackend, TopologyInfo, MAX_CPUS, MAX_NUMNODES,
};
use numaperf_sim::{SimBuilder, SimMachine};

/// Runs `f` on its own thread and fails the test if it does not return within a bound (a
/// spec that loops for ever would otherwise hang the suite). The bound is a hang
/// detector, not a timing: 10 s natively, 300 s under Miri, which interprets every step.
fn promptly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let bound = Duration::from_secs(if cfg!(miri) { 300 } else { 10 });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(bound)
        .expect("did not return within the bound (or panicked)")
}

fn spec(text: &'static str) -> Result<SimMachine, NumaError> {
    promptly(move || SimMachine::from_spec(text))
}

fn build(b: SimBuilder) -> Result<SimMachine, NumaError> {
    promptly(move || b.build())
}

fn limit(what: &'static str, value: u64, limit: u64) -> NumaError {
    NumaError::LimitExceeded { what, value, limit }
}

const CPUS: u64 = MAX_CPUS as u64;
const NODES: u64 = MAX_NUMNODES as u64;

#[test]
fn u64_max_cpus_returns_at_once_with_the_limit() {
    assert_eq!(
        spec("1 nodes x 18446744073709551615 cpus x 1 GiB").err(),
        Some(limit("cpus", u64::MAX, CPUS))
    );
    // Beyond u64 itself: saturated, still the limit error.
    assert_eq!(
        spec("1 nodes x 99999999999999999999999 cpus x 1 GiB").err(),
        Some(limit("cpus", u64::MAX, CPUS))
    );
}

#[test]
fn more_cpus_than_a_cpu_set_holds_is_refused_not_truncated() {
    assert_eq!(
        spec("1 nodes x 4294967296 cpus x 1 GiB").err(),
        Some(limit("cpus", 4294967296, CPUS))
    );
    assert_eq!(
        spec("1 nodes x 4097 cpus x 1 GiB").err(),
        Some(limit("cpus", 4097, CPUS))
    );
    let m = spec("1 nodes x 4096 cpus x 1 MiB").unwrap();
    assert_eq!(
        m.topology().node_cpus(NodeId::new(0)).unwrap().count(),
        4096
    );
}

#[test]
fn cpus_are_counted_over_all_nodes() {
    // Node 1 used to get only 1096 of its 3000 CPUs.
    assert_eq!(
        spec("2 nodes x 3000 cpus x 1 GiB").err(),
        Some(limit("cpus", 6000, CPUS))
    );
    let m = spec("2 nodes x 2048 cpus x 1 MiB").unwrap();
    let t = m.topology();
    assert_eq!(t.node_cpus(NodeId::new(1)).unwrap().count(), 2048);
    assert_eq!(t.node_cpus(NodeId::new(1)).unwrap().last(), Some(4095));
}

#[test]
fn node_counts_beyond_max_numnodes() {
    assert_eq!(
        spec("1025 nodes x 0 cpus x 1 MiB").err(),
        Some(limit("nodes", 1025, NODES))
    );
    assert_eq!(
        spec("18446744073709551615 nodes x 1 cpus x 1 MiB").err(),
        Some(limit("nodes", u64::MAX, NODES))
    );
    // 1024 nodes build quickly natively; under Miri a smaller machine shows the same path.
    let n = if cfg!(miri) { 64 } else { 1024 };
    let m = SimMachine::from_spec(&format!("{n} nodes x 4 cpus x 1 MiB")).unwrap();
    assert_eq!(m.topology().node_count(), n);
    assert!(matches!(
        spec("0 nodes x 1 cpus x 1 MiB"),
        Err(NumaError::InvalidSpec(_))
    ));
}

#[test]
fn sizes_that_overflow_are_the_memory_limit() {
    let max = SimMachine::MAX_MEMORY;
    assert_eq!(
        spec("1 nodes x 1 cpus x 18446744073709551615 GiB").err(),
        Some(limit("bytes of memory", u64::MAX, max))
    );
    // Each node fits, all of them together do not.
    assert_eq!(
        spec("1024 nodes x 1 cpus x 1073741824 GiB").err(),
        Some(limit("bytes of memory", u64::MAX, max))
    );
    assert_eq!(
        spec("2 nodes x 1 cpus x 1073741824 GiB").err(),
        Some(limit("bytes of memory", 2 << 60, max))
    );
    assert!(spec("1 nodes x 1 cpus x 1073741824 GiB").is_ok());
    assert!(matches!(
        spec("1 nodes x 1 cpus x -1 GiB"),
        Err(NumaError::InvalidSpec(_))
    ));
}

#[test]
fn a_node_after_u32_max_is_an_error_not_an_overflow() {
    let b = SimMachine::builder()
        .node_with_id(NodeId::new(u32::MAX), 1, 1 << 20)
        .node(1, 1 << 20);
    assert_eq!(build(b).err(), Some(NumaError::InvalidNode(u32::MAX)));
    let b = SimMachine::builder()
        .node_with_id(NodeId::new(1023), 1, 1 << 20)
        .node(1, 1 << 20);
    assert_eq!(build(b).err(), Some(NumaError::InvalidNode(1024)));
}

#[test]
fn builder_cpu_counts_that_overflow() {
    let b = SimMachine::builder()
        .node(usize::MAX, 1 << 20)
        .node(1, 1 << 20);
    assert_eq!(build(b).err(), Some(limit("cpus", u64::MAX, CPUS)));
    let b = SimMachine::builder()
        .node(3000, 1 << 20)
        .node(3000, 1 << 20);
    assert_eq!(build(b).err(), Some(limit("cpus", 6000, CPUS)));
}

#[test]
fn builder_memory_that_overflows() {
    let max = SimMachine::MAX_MEMORY;
    let b = SimMachine::builder().node(1, u64::MAX).node(1, u64::MAX);
    assert_eq!(
        build(b).err(),
        Some(limit("bytes of memory", u64::MAX, max))
    );
    let b = SimMachine::builder()
        .node(1, 1 << 20)
        .huge_pages(0, HugePages::Explicit1G, u64::MAX);
    assert_eq!(
        build(b).err(),
        Some(limit("bytes of memory", u64::MAX, max))
    );
    let b = SimMachine::builder()
        .node(1, max)
        .huge_pages(0, HugePages::Explicit2M, 1);
    assert_eq!(
        build(b).err(),
        Some(limit("bytes of memory", max + (2 << 20), max))
    );
}

#[test]
fn builder_node_counts_beyond_max_numnodes() {
    let b = (0..1025).fold(SimMachine::builder(), |b, _| b.node(0, 1 << 20));
    assert_eq!(build(b).err(), Some(limit("nodes", 1025, NODES)));
}

#[test]
fn every_captured_tree_loads_with_the_strict_reader() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
    let mut seen = 0;
    for entry in std::fs::read_dir(data).unwrap() {
        let path = entry.unwrap().path();
        let m = SimMachine::from_sysfs_dir(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert!(m.topology().node_count() >= 1);
        seen += 1;
    }
    assert!(seen >= 7);
    assert_eq!(
        SimMachine::from_sysfs_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/no-such-tree")).err(),
        Some(numaperf_core::SysfsFile::root("online").error(numaperf_core::FileProblem::Missing))
    );
}
