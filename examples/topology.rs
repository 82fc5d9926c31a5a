//! Prints this machine's NUMA topology the way `numactl --hardware` does, plus what this
//! process may use (its cpuset) and where the calling thread runs.

use numaperf::{thread, DefaultBackend, Topology};

fn main() -> Result<(), numaperf::NumaError> {
    let topo = Topology::discover()?;
    print!("{topo}");
    println!("allowed nodes: {}", topo.allowed_nodes());
    println!("allowed cpus: {}", topo.allowed_cpus());
    match thread::current_location(&DefaultBackend::shared()?) {
        Ok(here) => println!("this thread: cpu {} on node {}", here.cpu, here.node),
        Err(e) => println!("this thread: {e}"),
    }
    Ok(())
}
