//! Buffer Pool Example: fixed-size buffers per node, each node's buffers carved from
//! regions bound to that node. Shows where every node's buffers actually are
//! (`placement()`, read back from the kernel or the simulator) and the pool's counters,
//! first on this machine, then on a simulated machine (default "4 nodes x 1 cpus x 256 MiB",
//! or the spec given as the first argument) where one node runs dry and falls back.

use numaperf::pool::BufferPoolConfig;
use numaperf::{BufferPool, DefaultBackend, NodeId, NumaError, PlacementBackend, TopologyInfo};
use numaperf_sim::SimMachine;

fn walk<B: PlacementBackend + Clone + Send + Sync + 'static>(backend: B) -> Result<(), NumaError> {
    let config = BufferPoolConfig {
        buffer_size: 64 << 10,
        initial_per_node: 8,
        max_per_node: 16,
        grow: true,
        fallback: true,
        hard: true,
    };
    let pool = BufferPool::new(backend, config)?;
    println!(
        "pool: {} bytes per buffer, nodes {}, {} up front and at most {} per node, hard placement",
        pool.buffer_size(),
        pool.nodes(),
        config.initial_per_node,
        config.max_per_node
    );

    // Take each node's whole allowance, write to every buffer, and look where it is.
    for node in pool.nodes().iter() {
        let mut held = Vec::new();
        for i in 0..config.max_per_node {
            let mut buf = pool.get(node)?;
            buf.fill(i as u8);
            held.push(buf);
        }
        println!(
            " node {node}: {} buffers taken, all at home: {}, pages of its regions: {}",
            held.len(),
            held.iter().filter(|b| b.home() == node).count() == held.len(),
            pool.placement(node)?
        );
    }

    // Exhaust the first node, then ask it for one more: the nearest node with a free
    // buffer serves it (if there is one), and the counters say why.
    let first = pool.nodes().first().unwrap_or(NodeId::new(0));
    let held: Vec<_> = (0..config.max_per_node)
        .map(|_| pool.get(first))
        .collect::<Result<_, _>>()?;
    match pool.try_get(first)? {
        Some(extra) => println!(
            " node {first} exhausted ({} held): one more was served by node {}",
            held.len(),
            extra.home()
        ),
        None => println!(
            " node {first} exhausted ({} held): no other node has buffers, try_get gave None",
            held.len()
        ),
    }
    drop(held);

    // A buffer dropped on another thread goes back to its own node's free list.
    let b = pool.get(first)?;
    let before = pool.stats(first)?.free;
    std::thread::scope(|s| {
        s.spawn(move || drop(b));
    });
    println!(
        " a node {first} buffer dropped on another thread: node {first} free {before} -> {}",
        pool.stats(first)?.free
    );

    for (node, s) in pool.all_stats() {
        println!(
            " node {node}: in use {}, free {}, fell back (exhausted) {}, fell back (no memory) {}",
            s.in_use, s.free, s.fallback_exhausted, s.fallback_no_memory
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
