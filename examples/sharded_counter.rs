//! A `ShardedCounter` counted from one thread per CPU, on this host and on a simulated
//! 4-node machine with a memory-only node: slots per node, counts per node, and where
//! each node's slots are (read back from the backend page by page), then the sum.
//!
//! `cargo run --release --example sharded_counter`

use std::sync::atomic::{AtomicU64, Ordering};

use numaperf::thread::pin_to_cpus;
use numaperf::{
    CpuSet, DefaultBackend, NumaError, NumaSharded, PlacementBackend, ShardedCounter, Topology,
};
use numaperf_sim::SimMachine;

const PER_THREAD: u64 = 1_000_000;

/// Counts `PER_THREAD` from one thread per allowed CPU (`on_cpu` puts the thread there),
/// then prints what the counter and its memory say.
fn run<B>(
    title: &str,
    backend: B,
    on_cpu: impl Fn(usize, &dyn Fn()) + Sync,
) -> Result<(), NumaError>
where
    B: PlacementBackend + Clone + Send + Sync,
{
    println!("== {title}");
    let topo = Topology::of_backend(&backend)?;
    let counter = ShardedCounter::new_in(backend.clone(), &topo)?;
    // Which node each thread found local: one shard per memory node.
    let seen = NumaSharded::new_in(backend.clone(), &topo, |_| AtomicU64::new(0))?;
    let cpus: Vec<usize> = topo.allowed_cpus().iter().collect();
    std::thread::scope(|s| {
        for &cpu in &cpus {
            let (counter, seen, on_cpu) = (&counter, &seen, &on_cpu);
            s.spawn(move || {
                on_cpu(cpu, &|| {
                    seen.local_now().fetch_add(1, Ordering::Relaxed);
                    (0..PER_THREAD).for_each(|_| counter.increment());
                })
            });
        }
    });
    for (node, count) in counter.iter() {
        let mem = counter.memory(node).expect("a node with slots has memory");
        let layout = mem.layout();
        println!(
            "node {node}: {} CPU + {} thread slots, {} thread(s) local, count {count}; slots at {:p} ({} bytes, {}): {}",
            counter.slots_on(node).map_or(0, |s| s.0),
            counter.slots_on(node).map_or(0, |s| s.1),
            seen.get(node).map_or(0, |v| v.load(Ordering::Relaxed)),
            layout.as_ptr(),
            layout.mapped_len(),
            mem.enforcement(),
            mem.placement()?,
        );
    }
    for n in topo
        .nodes()
        .iter()
        .filter(|&n| counter.slots_on(n).is_none())
    {
        println!(
            "node {n}: no memory, its threads count on node {}",
            seen.local_node_for(n).map_or("-".into(), |m| m.to_string())
        );
    }
    println!(
        "sum {} = {} threads x {PER_THREAD}: {}",
        counter.sum(),
        cpus.len(),
        if counter.sum() == cpus.len() as u64 * PER_THREAD {
            "exact"
        } else {
            "WRONG"
        }
    );
    Ok(())
}

fn main() -> Result<(), NumaError> {
    let host = DefaultBackend::shared()?;
    let pin = host.clone();
    run("this host", host, move |cpu, f| {
        match pin_to_cpus(pin.clone(), &CpuSet::single(cpu)) {
            Ok(_guard) => f(),
            Err(e) => println!("cpu {cpu}: not pinned ({e})"),
        }
    })?;

    // Nodes 0 and 1 with two CPUs each, node 2 memory only, node 3 CPUs without memory.
    let sim = SimMachine::builder()
        .node(2, 64 << 20)
        .node(2, 64 << 20)
        .node(0, 64 << 20)
        .node(2, 0)
        .distance(3, 1, 12)
        .build()?;
    println!();
    run(
        "simulated: 2 nodes with CPUs, 1 memory-only, 1 CPU-only (nearest node 1)",
        &sim,
        |cpu, f| {
            if let Err(e) = sim.run_on_cpu(cpu, f) {
                println!("cpu {cpu}: {e}");
            }
        },
    )?;
    Ok(())
}
