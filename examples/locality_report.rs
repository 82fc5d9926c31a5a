//! What the machine measured about locality between two points: on this host's kernel,
//! then on a simulated 4-node machine (two CPU nodes, two CXL-like memory-only nodes)
//! where a region is bound on purpose to a node its thread does not run on.
//!
//! `cargo run --example locality_report`

use std::sync::Arc;

use numaperf::{
    DefaultBackend, LocalityReport, LocalitySnapshot, MemPolicy, NodeId, NodeMask, NumaError,
    NumaRegion, Prefault, Topology, WorkerPool, WorkerPoolConfig,
};
use numaperf_sim::SimMachine;

const MIB: usize = 1 << 20;

fn main() -> Result<(), NumaError> {
    this_host()?;
    simulated()
}

/// 32 MiB bound to the last memory node, populated, and a worker pool's tasks.
fn this_host() -> Result<(), NumaError> {
    println!("== this host ==");
    let before = match LocalitySnapshot::take() {
        Err(e @ NumaError::Unsupported { .. }) => {
            println!("skipped: {e}");
            return Ok(());
        }
        r => r?,
    };
    let topo = Topology::discover()?;
    let node = topo.memory_nodes().last().ok_or(NumaError::NoUsableNode)?;
    let pool = WorkerPool::new(DefaultBackend::shared()?, Default::default())?;
    let before = before.watch_pool("workers", &pool);
    let region = NumaRegion::anon(
        32 * MIB,
        MemPolicy::Bind(NodeMask::single(node)),
        Default::default(),
        Prefault::Populate,
    )?;
    let before = before.watch_region("buffer", &region)?;
    for n in pool.worker_nodes().iter() {
        for _ in 0..100 {
            pool.spawn_on(n, || ())?
                .join()
                .map_err(|_| NumaError::PoolShutDown)?;
        }
    }
    println!("{}", LocalityReport::since(&before)?);
    Ok(())
}

/// A region bound to memory-only node 2 from a thread on node 0.
fn simulated() -> Result<(), NumaError> {
    println!("== simulated: 2 CPU nodes + 2 memory-only nodes ==");
    let b = SimMachine::builder()
        .node(2, 256 << 20)
        .node(2, 256 << 20)
        .node(0, 256 << 20)
        .node(0, 256 << 20)
        .distance(0, 2, 31)
        .distance(0, 3, 31)
        .distance(1, 2, 31)
        .distance(1, 3, 31)
        .distance(2, 3, 41);
    let sim = Arc::new(b.build()?);
    let workers = WorkerPool::new(
        sim.clone(),
        WorkerPoolConfig {
            workers_per_node: 1,
            ..Default::default()
        },
    )?;
    let before = LocalitySnapshot::take_in(sim.clone())?.watch_pool("workers", &workers);
    let (region, before) = sim.run_on_cpu(0, || -> Result<_, NumaError> {
        let r = NumaRegion::anon_in(
            sim.clone(),
            16 * MIB,
            MemPolicy::Bind(NodeMask::single(NodeId::new(2))),
            Default::default(),
            Prefault::Populate,
        )?;
        let s = before.watch_region("far", &r)?;
        Ok((r, s))
    })??;
    for _ in 0..200 {
        workers
            .spawn_on(NodeId::new(0), || ())?
            .join()
            .map_err(|_| NumaError::PoolShutDown)?;
    }
    println!("{}", LocalityReport::since(&before)?);
    drop(region);
    Ok(())
}
