//! Prints this machine's NUMA topology the way `numactl --hardware` does, plus what this
//! process may use (its cpuset) and where the calling thread runs.

use numaperf::{thread, LinuxBackend, Topology};

fn main() -> Result<(), numaperf::NumaError> {
    let topo = Topology::discover()?;
    print!("{topo}");
    println!("allowed nodes: {}", topo.allowed_nodes());
    println!("allowed cpus: {}", topo.allowed_cpus());
    let here = thread::current_location(&LinuxBackend::shared()?)?;
    println!("this thread: cpu {} on node {}", here.cpu, here.node);
    Ok(())
}
