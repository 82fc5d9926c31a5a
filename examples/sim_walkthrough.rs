//! The memory placement walk-through of `memory_placement.rs`, on a simulated machine
//! (default "2 nodes x 2 cpus x 1 GiB", or the spec given as the first argument), so the
//! interleave step runs on any host. Prints where every region's pages went.

use numaperf::{
    MemPolicy, NodeId, NodeMask, NumaError, NumaRegion, PlacementBackend, Prefault, Topology,
};
use numaperf_sim::SimMachine;

fn show<B: PlacementBackend>(what: &str, r: &NumaRegion<B>) -> Result<(), NumaError> {
    println!(
        " {what}: {} bytes, {:?}, placement: {}",
        r.len(),
        r.enforcement(),
        r.placement()?
    );
    Ok(())
}

fn main() -> Result<(), NumaError> {
    let spec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "2 nodes x 2 cpus x 1 GiB".into());
    let sim = SimMachine::from_spec(&spec)?;
    let topo = Topology::from_info(sim.topology())?;
    println!("=== numaperf on a simulated machine: {spec} ===\n");
    print!("{topo}");
    let size = 1024 * 1024;
    let node0 = NodeMask::single(NodeId::new(0));
    println!("\n1. Local (thread on cpu 0, then on the last cpu)");
    let a = NumaRegion::anon_in(
        &sim,
        size,
        MemPolicy::Local,
        Default::default(),
        Prefault::Touch,
    )?;
    show("Local", &a)?;
    let last_cpu = topo.allowed_cpus().last().unwrap_or(0);
    let b = sim.run_on_cpu(last_cpu, || {
        NumaRegion::anon_in(
            &sim,
            size,
            MemPolicy::Local,
            Default::default(),
            Prefault::Touch,
        )
    })??;
    show(&format!("Local from cpu {last_cpu}"), &b)?;
    println!("2. Bind to node 0");
    show(
        "Bind",
        &NumaRegion::anon_in(
            &sim,
            size,
            MemPolicy::Bind(node0),
            Default::default(),
            Prefault::Touch,
        )?,
    )?;
    println!("3. Preferred node 0");
    show(
        "Preferred",
        &NumaRegion::anon_in(
            &sim,
            size,
            MemPolicy::Preferred(NodeId::new(0)),
            Default::default(),
            Prefault::Touch,
        )?,
    )?;
    println!("4. Interleave over all nodes");
    let all: NodeMask = topo.numa_nodes().iter().map(|n| n.id()).collect();
    show(
        "Interleave",
        &NumaRegion::anon_in(
            &sim,
            size,
            MemPolicy::Interleave(all),
            Default::default(),
            Prefault::Touch,
        )?,
    )?;
    println!(
        "\nLive mappings now: {} (regions drop at the end of main)",
        sim.mapping_count()
    );
    println!("Calls made: {:?}", sim.calls());
    Ok(())
}
