//! Diagnostics: what this machine's kernel and this process let numaperf do, and the same
//! for a simulated 4-node machine (one with an older kernel's features and a memory
//! cgroup, to show how a report reads when something is missing).
//!
//!     cargo run --example diagnostics
//!
//! Everything printed comes from the library (`Capabilities`' `Display`).

use numaperf::{
    Capabilities, KernelFeature, LocalityReport, LocalitySnapshot, MemPolicy, NodeId, NodeMask,
    NumaError, NumaRegion, Prefault, Topology,
};
use numaperf_sim::{FaultInjector, SimMachine};

fn section(title: &str) {
    println!("\n=== {title}");
}

fn main() {
    // ---- Capabilities (issue 13.3) -----------------------------------------------------
    section("capabilities: this host");
    let host = Capabilities::detect();
    println!("{host}");

    section("capabilities: a simulated 4-node machine");
    let sim = match SimMachine::from_spec("4 nodes x 2 cpus x 1 GiB") {
        Ok(s) => s,
        Err(e) => {
            println!("could not build the simulated machine: {e}");
            return;
        }
    };
    println!("{}", Capabilities::of(&sim));

    section("capabilities: the same machine as a 5.15 kernel in a 512 MiB cgroup would see it");
    sim.set_memory_limit(Some(512 << 20));
    let old = FaultInjector::new(&sim);
    for f in [
        KernelFeature::HomeNode,
        KernelFeature::WeightedInterleave,
        KernelFeature::WeightedInterleaveAuto,
    ] {
        old.disable_feature(f);
    }
    println!("{}", Capabilities::of(&old));

    // ---- Locality report (issue 13.4) --------------------------------------------------
    section("locality: this host, 8 MiB bound to its last memory node and populated");
    match host_locality() {
        Ok(report) => println!("{report}"),
        Err(e) => println!("no locality report here: {e}"),
    }

    section("locality: the simulated machine, 8 MiB bound to node 3 from a thread on node 0");
    match sim_locality(&sim) {
        Ok(report) => println!("{report}"),
        Err(e) => println!("no locality report: {e}"),
    }
}

/// What the kernel measured while a region was populated on this host.
fn host_locality() -> Result<LocalityReport, NumaError> {
    let topo = Topology::discover()?;
    let node = topo.memory_nodes().last().ok_or(NumaError::NoUsableNode)?;
    let before = LocalitySnapshot::take()?;
    let bind = MemPolicy::Bind(NodeMask::single(node));
    let region = NumaRegion::anon(8 << 20, bind, Default::default(), Prefault::Populate)?;
    let before = before.watch_region("buffer", &region)?;
    LocalityReport::since(&before)
}

/// The same on the simulator, placed away from the thread on purpose.
fn sim_locality(sim: &SimMachine) -> Result<LocalityReport, NumaError> {
    sim.run_on_cpu(0, || {
        let before = LocalitySnapshot::take_in(sim)?;
        let bind = MemPolicy::Bind(NodeMask::single(NodeId::new(3)));
        let region =
            NumaRegion::anon_in(sim, 8 << 20, bind, Default::default(), Prefault::Populate)?;
        let before = before.watch_region("far", &region)?;
        LocalityReport::since(&before)
    })?
}
