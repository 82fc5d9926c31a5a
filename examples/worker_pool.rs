//! Worker Pool Example: workers pinned per node, a region bound to each node, and a task
//! per node that fills and sums its own node's region from that node's CPUs. Prints the
//! per-node sums, where each task ran, where each region's pages are, and how many tasks
//! ran locally or were stolen; first on this machine, then on a simulated machine (default
//! "4 nodes x 1 cpus x 256 MiB", or the spec given as the first argument).

use numaperf::pool::{Steal, WorkerPoolConfig};
use numaperf::{
    DefaultBackend, MemPolicy, NodeMask, NumaError, NumaRegion, PlacementBackend, Prefault,
    RegionOptions, TopologyInfo, WorkerPool,
};
use numaperf_sim::SimMachine;

const REGION: usize = 16 << 20;

/// What a node's task computes: the sum of its region after filling byte `i` with
/// `(i * 7 + node) % 251`.
fn fill_and_sum(bytes: &mut [u8], node: u32) -> u64 {
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = ((i as u64 * 7 + node as u64) % 251) as u8;
    }
    bytes.iter().map(|&b| b as u64).sum()
}

fn walk<B: PlacementBackend + Clone + Send + Sync + 'static>(backend: B) -> Result<(), NumaError> {
    let config = WorkerPoolConfig {
        workers_per_node: 1,
        steal: Steal::Nearest,
    };
    let pool = WorkerPool::new(backend.clone(), config)?;
    let topo = backend.topology();
    println!(
        "workers on nodes {} ({} threads); memory nodes {}",
        pool.worker_nodes(),
        pool.thread_count(),
        topo.memory_nodes()
    );

    // One region per memory node, bound there and populated, verified page by page.
    let mut regions = Vec::new();
    for node in topo.memory_nodes().iter() {
        let region = NumaRegion::anon_in(
            backend.clone(),
            REGION,
            MemPolicy::Bind(NodeMask::single(node)),
            RegionOptions::new().hard(),
            Prefault::Populate,
        )?;
        regions.push((node, region));
    }

    // Each node's task runs on that node's workers (a memory-only node's on the nearest
    // node with CPUs) and borrows its region mutably: the scope outlives every task.
    let results = pool.scope(|s| {
        let handles: Vec<_> = regions
            .iter_mut()
            .map(|(node, region)| {
                let (node, b) = (*node, backend.clone());
                let h = s.spawn_on(node, move || {
                    let ran_on = b.current_cpu().map(|c| c.node);
                    (ran_on, fill_and_sum(region.as_mut_slice(), node.get()))
                })?;
                Ok((node, h))
            })
            .collect::<Result<Vec<_>, NumaError>>()?;
        Ok::<_, NumaError>(
            handles
                .into_iter()
                .map(|(node, h)| (node, h.join()))
                .collect::<Vec<_>>(),
        )
    })?;

    for ((node, result), (_, region)) in results.into_iter().zip(&regions) {
        let check = fill_and_sum(&mut vec![0; REGION], node.get());
        match result {
            Ok((ran_on, sum)) => println!(
                " node {node}: sum {sum} ({}), task ran on node {}, region pages: {}",
                if sum == check {
                    "matches a fresh recount"
                } else {
                    "MISMATCH"
                },
                ran_on.map_or("?".into(), |n| n.to_string()),
                region.placement()?
            ),
            Err(e) => println!(" node {node}: task failed: {e:?}"),
        }
    }
    for (node, s) in pool.stats() {
        println!(
            " node {node} workers: {} local, {} stolen",
            s.local, s.stolen
        );
    }
    Ok(())
}

fn main() -> Result<(), NumaError> {
    let host = DefaultBackend::shared()?;
    println!(
        "=== this machine: {} node(s) ===",
        host.topology().nodes().count()
    );
    walk(host)?;

    let spec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "4 nodes x 1 cpus x 256 MiB".into());
    println!("\n=== simulated machine: {spec} ===");
    walk(std::sync::Arc::new(SimMachine::from_spec(&spec)?))?;
    Ok(())
}
