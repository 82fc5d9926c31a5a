//! Diagnostics: what this machine's kernel and this process let numaperf do, and the same
//! for a simulated 4-node machine (one with an older kernel's features and a memory
//! cgroup, to show how a report reads when something is missing).
//!
//!     cargo run --example diagnostics
//!
//! Everything printed comes from the library (`Capabilities`' `Display`).

use numaperf::{Capabilities, KernelFeature};
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
    // Reserved: the kernel-measured locality report (LocalitySnapshot / LocalityReport)
    // for this host and the simulated machine goes here.
}
