//! `numaperf::membench` on a simulated four-node machine (every pair measured, buffers
//! verified on their node, threads on their CPU node) and on this host (a square of the
//! host's nodes, every figure positive).

use std::time::Duration;

use numaperf::membench::{self, BenchConfig, Figure, Traffic};
use numaperf::{NodeId, NumaError, PlacementBackend, TopologyInfo};
use numaperf_sim::SimMachine;

fn quick(size: usize) -> BenchConfig {
    BenchConfig::new(size).duration(Duration::from_millis(2))
}

#[test]
fn four_nodes_every_pair_measured_and_verified() {
    let sim = SimMachine::from_spec("4 nodes x 2 cpus x 64 MiB").unwrap();
    let mut seen = Vec::new();
    let report = membench::run_in(&sim, &quick(1 << 20), &mut |p| seen.push(*p)).unwrap();
    let ids: Vec<NodeId> = sim.topology().nodes().iter().collect();
    assert_eq!(report.cpu_nodes, ids);
    assert_eq!(report.memory_nodes, ids);
    assert_eq!(
        report.threads,
        vec![2; 4],
        "one thread per CPU of each node"
    );
    for m in [
        &report.latency_ns,
        &report.read_mb_s,
        &report.write_mb_s,
        &report.copy_mb_s,
    ] {
        assert_eq!(m.len(), 4);
        for row in m {
            assert_eq!(row.len(), 4);
            assert!(row.iter().all(|&x| x > 0.0 && x.is_finite()), "{row:?}");
        }
    }
    assert_eq!(report.memory.len(), 4);
    for (check, node) in report.memory.iter().zip(&ids) {
        assert_eq!(check.node, *node);
        assert!(check.verified, "{check:?}");
        assert_eq!(check.pages, check.pages_on_node);
        assert_eq!(check.pages, (1 << 20) / 4096);
        assert_eq!(check.enforcement, numaperf::Enforcement::Hard);
    }
    assert!(report.cpus_verified);
    // Progress: every (cpu, memory, figure) once, counted up to the total.
    assert_eq!(seen.len(), 4 * 4 * 4);
    assert!(seen
        .iter()
        .enumerate()
        .all(|(i, p)| p.done == i + 1 && p.total == 64));
    for cpu in &ids {
        for mem in &ids {
            for figure in [
                Figure::Latency,
                Figure::Bandwidth(Traffic::Read),
                Figure::Bandwidth(Traffic::Write),
                Figure::Bandwidth(Traffic::Copy),
            ] {
                let n = seen
                    .iter()
                    .filter(|p| p.cpu_node == *cpu && p.memory_node == *mem && p.figure == figure)
                    .count();
                assert_eq!(n, 1, "{cpu} {mem} {figure:?}");
            }
        }
    }
}

#[test]
fn memory_only_nodes_are_columns_not_rows() {
    let sim = SimMachine::builder()
        .node(2, 32 << 20)
        .node(2, 32 << 20)
        .node(0, 32 << 20)
        .build()
        .unwrap();
    let report = membench::run_in(&sim, &quick(256 << 10).threads(1), &mut |_| {}).unwrap();
    assert_eq!(report.cpu_nodes, vec![NodeId::new(0), NodeId::new(1)]);
    assert_eq!(report.memory_nodes.len(), 3);
    assert_eq!(report.threads, vec![1, 1]);
    assert_eq!(report.latency_ns.len(), 2);
    assert!(report.latency_ns.iter().all(|r| r.len() == 3));
    assert!(report.memory.iter().all(|m| m.verified));
}

#[test]
fn more_threads_than_cpus_uses_every_cpu() {
    let sim = SimMachine::from_spec("2 nodes x 3 cpus x 32 MiB").unwrap();
    let report = membench::run_in(&sim, &quick(1 << 20).threads(64), &mut |_| {}).unwrap();
    assert_eq!(report.threads, vec![3, 3]);
}

#[test]
fn bad_configs_are_refused_before_anything_is_mapped() {
    let sim = SimMachine::from_spec("2 nodes x 1 cpus x 32 MiB").unwrap();
    for config in [
        quick(0),
        quick(4095),
        quick(1 << 20).threads(0),
        quick(8192).threads(65),
    ] {
        let r = membench::run_in(&sim, &config, &mut |_| panic!("measured"));
        assert!(
            matches!(r, Err(NumaError::InvalidConfig { .. })),
            "{config:?}: {r:?}"
        );
    }
}

#[test]
fn a_buffer_larger_than_the_node_is_an_error() {
    let sim = SimMachine::from_spec("2 nodes x 1 cpus x 4 MiB").unwrap();
    let r = membench::run_in(&sim, &quick(8 << 20), &mut |_| {});
    assert!(
        matches!(r, Err(NumaError::InsufficientMemory { .. })),
        "{r:?}"
    );
}

#[test]
#[cfg(target_os = "linux")]
fn this_host_every_pair() {
    let b = numaperf::LinuxBackend::shared().unwrap();
    let report = membench::run_in(&b, &quick(4 << 20), &mut |_| {}).unwrap();
    let cpu = b.topology().cpu_nodes().count();
    let mem = b
        .topology()
        .memory_nodes()
        .intersection(b.topology().allowed_nodes())
        .count();
    assert_eq!(report.latency_ns.len(), cpu);
    assert!(report.latency_ns.iter().all(|r| r.len() == mem));
    assert!(
        report.memory.iter().all(|m| m.verified),
        "{:?}",
        report.memory
    );
    assert!(report.cpus_verified);
    for t in Traffic::ALL {
        assert!(report.bandwidth(t).iter().flatten().all(|&x| x > 0.0));
    }
}

#[test]
fn a_small_buffer_caps_the_threads_at_two_lines_each() {
    let sim = SimMachine::from_spec("1 nodes x 64 cpus x 32 MiB").unwrap();
    let report = membench::run_in(&sim, &quick(4096), &mut |_| {}).unwrap();
    assert_eq!(report.threads, vec![4096 / 128]);
    assert!(report.read_mb_s[0][0] > 0.0);
}
