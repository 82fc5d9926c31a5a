//! Guest cases of `numaperf bench` (issue 15.5): the bench's library function on the guest
//! kernel measures every (node with CPUs, node with memory) pair, each buffer verified on
//! its node and each thread on its CPU node; and the command itself (`/bin/numaperf bench
//! --json`) prints the full matrix. Timings under emulation mean nothing: the shape and the
//! placement are what is checked.

use std::time::Duration;

use numaperf::membench::{self, BenchConfig, Traffic};
use numaperf::{Enforcement, LinuxBackend, NodeId, PlacementBackend, TopologyInfo};

use super::Verdict;

/// Every case of this file, named as the markers print them.
pub fn cases(b: &LinuxBackend) -> Vec<(&'static str, Verdict)> {
    let (cpus, mems) = bench_nodes(b);
    vec![
        ("kernel/bench_full_matrix", full_matrix(b, &cpus, &mems)),
        ("cli/bench_json_full_matrix", json_full_matrix(&cpus, &mems)),
    ]
}

/// The rows (nodes with CPUs this process may use) and columns (memory nodes it may use)
/// the bench must measure, from the guest's topology.
fn bench_nodes(b: &LinuxBackend) -> (Vec<NodeId>, Vec<NodeId>) {
    let topo = b.topology();
    let cpus = topo
        .cpu_nodes()
        .iter()
        .filter(|n| {
            topo.node_cpus(*n)
                .is_some_and(|c| !c.intersection(topo.allowed_cpus()).is_empty())
        })
        .collect();
    let mems = topo
        .memory_nodes()
        .intersection(topo.allowed_nodes())
        .iter()
        .collect();
    (cpus, mems)
}

/// `/bin/numaperf bench --json --quick --size 8M`: one JSON object whose rows and columns
/// are the guest's nodes, every cell of every matrix a positive figure, every buffer hard
/// and verified on its node, every thread on its row's node.
fn json_full_matrix(cpus: &[NodeId], mems: &[NodeId]) -> Verdict {
    let out = match std::process::Command::new("/bin/numaperf")
        .args(["bench", "--json", "--quick", "--size", "8M"])
        .output()
    {
        Ok(o) => o,
        Err(e) => return Verdict::Fail(format!("/bin/numaperf: {e}")),
    };
    if !out.status.success() {
        return Verdict::Fail(format!(
            "exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: serde_json::Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => return Verdict::Fail(format!("not JSON: {e}")),
    };
    let ids = |n: &[NodeId]| n.iter().map(|n| n.get()).collect::<Vec<_>>();
    let as_ids = |k: &str| -> Vec<u64> {
        v[k].as_array()
            .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
            .unwrap_or_default()
    };
    let mut off = Vec::new();
    let (want_rows, want_cols) = (ids(cpus), ids(mems));
    let rows: Vec<u64> = as_ids("cpu_nodes");
    let cols: Vec<u64> = as_ids("memory_nodes");
    if rows.iter().map(|&x| x as u32).collect::<Vec<_>>() != want_rows
        || cols.iter().map(|&x| x as u32).collect::<Vec<_>>() != want_cols
    {
        off.push(format!(
            "nodes {rows:?} x {cols:?}, expected {want_rows:?} x {want_cols:?}"
        ));
    }
    let full = |m: &serde_json::Value| {
        m.as_array().is_some_and(|r| {
            r.len() == cpus.len()
                && r.iter().all(|row| {
                    row.as_array().is_some_and(|c| {
                        c.len() == mems.len()
                            && c.iter().all(|x| x.as_f64().is_some_and(|x| x > 0.0))
                    })
                })
        })
    };
    if !full(&v["latency_ns"]) {
        off.push(format!("latency_ns {}", v["latency_ns"]));
    }
    for t in ["read", "write", "copy"] {
        if !full(&v["bandwidth_mb_s"][t]) {
            off.push(format!("{t} {}", v["bandwidth_mb_s"][t]));
        }
    }
    let placement = v["placement"].as_array().cloned().unwrap_or_default();
    if placement.len() != mems.len() {
        off.push(format!("{} placement entries", placement.len()));
    }
    for p in &placement {
        if p["verified"] != true || p["enforcement"] != "hard" || p["pages"] != p["pages_on_node"] {
            off.push(format!("placement {p}"));
        }
    }
    if v["cpus_verified"] != true {
        off.push("a thread ran outside its CPU node".into());
    }
    if off.is_empty() {
        Verdict::Pass(format!(
            "{}x{} matrix from the command, {} buffers hard on their node",
            rows.len(),
            cols.len(),
            placement.len()
        ))
    } else {
        Verdict::Fail(off.join("; "))
    }
}

/// An 8 MiB buffer per memory node, 20 ms per figure: the full matrix, every cell > 0,
/// every buffer hard-bound and still on its node afterwards, every thread on its node.
fn full_matrix(b: &LinuxBackend, cpus: &[NodeId], mems: &[NodeId]) -> Verdict {
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
