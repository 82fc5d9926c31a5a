//! Guest case of `numaperf bench` (issue 15.5): the bench's library function on the guest
//! kernel measures every (node with CPUs, node with memory) pair, each buffer verified on
//! its node and each thread on its CPU node. Timings under emulation mean nothing: the
//! shape and the placement are what is checked.

use std::time::Duration;

use numaperf::membench::{self, BenchConfig, Traffic};
use numaperf::{Enforcement, LinuxBackend, NodeId, PlacementBackend, TopologyInfo};

use super::Verdict;

/// Every case of this file, named as the markers print them.
pub fn cases(b: &LinuxBackend) -> Vec<(&'static str, Verdict)> {
    vec![("kernel/bench_full_matrix", full_matrix(b))]
}

/// An 8 MiB buffer per memory node, 20 ms per figure: the full matrix, every cell > 0,
/// every buffer hard-bound and still on its node afterwards, every thread on its node.
fn full_matrix(b: &LinuxBackend) -> Verdict {
    let topo = b.topology();
    let cpus: Vec<NodeId> = topo
        .cpu_nodes()
        .iter()
        .filter(|n| {
            topo.node_cpus(*n)
                .is_some_and(|c| !c.intersection(topo.allowed_cpus()).is_empty())
        })
        .collect();
    let mems: Vec<NodeId> = topo
        .memory_nodes()
        .intersection(topo.allowed_nodes())
        .iter()
        .collect();
    let config = BenchConfig::new(8 << 20).duration(Duration::from_millis(20));
    let mut figures = 0;
    let r = match membench::run_in(b, &config, &mut |_| figures += 1) {
        Ok(r) => r,
        Err(e) => return Verdict::Fail(e.to_string()),
    };
    let mut off = Vec::new();
    if r.cpu_nodes != cpus || r.memory_nodes != mems {
        off.push(format!(
            "nodes {:?} x {:?}, expected {cpus:?} x {mems:?}",
            r.cpu_nodes, r.memory_nodes
        ));
    }
    if figures != cpus.len() * mems.len() * 4 {
        off.push(format!("{figures} figures reported"));
    }
    let full = |m: &[Vec<f64>]| {
        m.len() == cpus.len()
            && m.iter()
                .all(|row| row.len() == mems.len() && row.iter().all(|&x| x > 0.0 && x.is_finite()))
    };
    if !full(&r.latency_ns) {
        off.push(format!("latency {:?}", r.latency_ns));
    }
    for t in Traffic::ALL {
        if !full(r.bandwidth(t)) {
            off.push(format!("{} {:?}", t.name(), r.bandwidth(t)));
        }
    }
    for m in &r.memory {
        if !m.verified || m.enforcement != Enforcement::Hard || m.pages != m.pages_on_node {
            off.push(format!("node {} buffer: {m:?}", m.node));
        }
    }
    if r.memory.len() != mems.len() {
        off.push(format!("{} memory checks", r.memory.len()));
    }
    if !r.cpus_verified {
        off.push("a thread ran outside its CPU node".into());
    }
    if !off.is_empty() {
        return Verdict::Fail(off.join("; "));
    }
    let lat: Vec<String> = r
        .latency_ns
        .iter()
        .map(|row| {
            row.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    Verdict::Pass(format!(
        "{}x{} matrix, {} buffers hard on their node, latency ns [{}]",
        cpus.len(),
        mems.len(),
        r.memory.len(),
        lat.join("; ")
    ))
}
