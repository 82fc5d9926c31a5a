//! Buffer pool and worker pool, on simulated multi-node machines and on this host.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use numaperf::pool::{BufferPoolConfig, Shutdown, Steal, TaskError, WorkerPoolConfig};
use numaperf::{
    BufferPool, LinuxBackend, NodeId, NodeMask, NumaError, PlacementBackend, TopologyInfo,
    WorkerPool,
};
use numaperf_sim::SimMachine;

const MIB: u64 = 1 << 20;

fn cxl() -> Arc<SimMachine> {
    let b = SimMachine::builder()
        .node(1, 64 * MIB)
        .node(1, 64 * MIB)
        .node(0, 64 * MIB)
        .node(0, 64 * MIB);
    let b = b
        .distance(0, 2, 31)
        .distance(0, 3, 31)
        .distance(1, 2, 31)
        .distance(1, 3, 31)
        .distance(2, 3, 41);
    Arc::new(b.build().unwrap())
}

fn small(max: usize, fallback: bool) -> BufferPoolConfig {
    BufferPoolConfig {
        buffer_size: 4096,
        initial_per_node: 2,
        max_per_node: max,
        grow: true,
        fallback,
        hard: true,
    }
}

fn buffers_sit_on_their_node<B: PlacementBackend + Clone>(b: B) {
    let pool = BufferPool::new(b, small(8, false)).unwrap();
    for n in pool.nodes().iter() {
        let bufs: Vec<_> = (0..8).map(|_| pool.get(n).unwrap()).collect();
        assert!(bufs.iter().all(|x| x.home() == n && x.len() == 4096));
        let p = pool.placement(n).unwrap();
        assert!(
            p.all_within(&NodeMask::single(n)) && p.present() == 8,
            "node {n}: {p}"
        );
        assert_eq!(pool.stats(n).unwrap().in_use, 8);
    }
    assert!(pool
        .all_stats()
        .iter()
        .all(|(_, s)| s.in_use == 0 && s.free == 8));
}

#[test]
fn buffers_are_placed_on_their_node_sim() {
    buffers_sit_on_their_node(cxl());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "the Linux backend's raw syscalls do not run under Miri"
)]
fn buffers_are_placed_on_their_node_host() {
    buffers_sit_on_their_node(LinuxBackend::shared().unwrap());
}

#[test]
fn capacity_try_get_and_fallback_with_reasons() {
    let sim = cxl();
    let strict = BufferPool::new(sim.clone(), small(2, false)).unwrap();
    let (a, b) = (
        strict.get(NodeId::new(1)).unwrap(),
        strict.try_get(NodeId::new(1)).unwrap().unwrap(),
    );
    assert!(
        strict.try_get(NodeId::new(1)).unwrap().is_none(),
        "no third buffer without fallback"
    );
    drop(a);
    assert!(strict.try_get(NodeId::new(1)).unwrap().is_some());
    drop(b);
    let loose = BufferPool::new(sim.clone(), small(2, true)).unwrap();
    let held: Vec<_> = (0..2).map(|_| loose.get(NodeId::new(3)).unwrap()).collect();
    let extra = loose.get(NodeId::new(3)).unwrap();
    // Node 3's fallback order starts with a node at distance 31 (0 or 1), never node 2 (41).
    assert!(
        matches!(extra.home().get(), 0 | 1),
        "fell back to {}",
        extra.home()
    );
    assert_eq!(loose.stats(NodeId::new(3)).unwrap().fallback_exhausted, 1);
    drop((held, extra));
    assert!(matches!(
        loose.get(NodeId::new(7)),
        Err(NumaError::NodeNotFound(_))
    ));
    for bad in [
        BufferPoolConfig {
            buffer_size: 0,
            ..small(2, false)
        },
        BufferPoolConfig {
            max_per_node: 0,
            initial_per_node: 0,
            ..small(2, false)
        },
        BufferPoolConfig {
            initial_per_node: 3,
            ..small(2, false)
        },
    ] {
        assert!(matches!(
            BufferPool::new(sim.clone(), bad),
            Err(NumaError::InvalidArgument(_))
        ));
    }
}

#[test]
fn growth_stops_at_memory_with_a_reason() {
    let sim = Arc::new(
        SimMachine::builder()
            .node(1, 16 * 4096)
            .node(1, 64 * MIB)
            .build()
            .unwrap(),
    );
    let cfg = BufferPoolConfig {
        buffer_size: 4096,
        initial_per_node: 8,
        max_per_node: 64,
        grow: true,
        fallback: true,
        hard: false,
    };
    let pool = BufferPool::new(sim, cfg).unwrap();
    let held: Vec<_> = (0..24).map(|_| pool.get(NodeId::new(0)).unwrap()).collect();
    let s = pool.stats(NodeId::new(0)).unwrap();
    assert_eq!((s.in_use, s.fallback_no_memory), (16, 8), "{s:?}");
    assert_eq!(
        held.iter().filter(|b| b.home() == NodeId::new(1)).count(),
        8
    );
}

fn stress<B: PlacementBackend + Clone + Send + Sync + 'static>(b: B, rounds: usize) {
    // Each thread holds at most 4 buffers, so 8 per node never runs dry even on one node
    // (with fewer, both threads could hold some and wait for the rest: a test deadlock).
    let pool = BufferPool::new(b, small(8, true)).unwrap();
    let nodes: Vec<NodeId> = pool.nodes().iter().collect();
    let workers: Vec<_> = (0..2u8)
        .map(|t| {
            let (pool, nodes) = (pool.clone(), nodes.clone());
            std::thread::spawn(move || {
                let mut held = Vec::new();
                for i in 0..rounds {
                    let mut buf = pool.get(nodes[i % nodes.len()]).unwrap();
                    let mark = (t as usize * 131 + i) as u8;
                    buf.fill(mark);
                    held.push((buf, mark));
                    if held.len() > 3 {
                        let (buf, mark) = held.remove(i % held.len());
                        assert!(
                            buf.iter().all(|&x| x == mark),
                            "a buffer was handed out twice"
                        );
                    }
                }
                for (buf, mark) in held {
                    assert!(
                        buf.iter().all(|&x| x == mark),
                        "a buffer was handed out twice"
                    );
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().unwrap());
    for (n, s) in pool.all_stats() {
        assert_eq!(s.in_use, 0, "node {n}: {s:?}");
        assert!(s.free >= 2 && s.free <= 8, "node {n}: {s:?}");
    }
}

#[test]
fn two_threads_take_and_return_and_everything_is_accounted_for_sim() {
    // Miri runs this one too (the sim's memory is the global allocator's): no data race,
    // no aliasing &mut, no buffer handed out twice, nothing leaked.
    stress(cxl(), if cfg!(miri) { 60 } else { 4000 });
}

#[test]
#[cfg_attr(
    miri,
    ignore = "the Linux backend's raw syscalls do not run under Miri"
)]
fn two_threads_take_and_return_and_everything_is_accounted_for_host() {
    stress(LinuxBackend::shared().unwrap(), 4000);
}

#[test]
fn workers_run_on_their_node_and_memory_only_nodes_are_routed() {
    let sim = cxl();
    // No stealing: a stolen task would rightly run on the other node.
    let pool = WorkerPool::new(
        sim.clone(),
        WorkerPoolConfig {
            workers_per_node: 1,
            steal: Steal::Never,
        },
    )
    .unwrap();
    assert_eq!(
        pool.worker_nodes(),
        [0, 1].into_iter().map(NodeId::new).collect()
    );
    for n in 0..4 {
        let s = sim.clone();
        let ran_on = pool
            .spawn_on(NodeId::new(n), move || s.current_cpu().unwrap().node)
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(ran_on, pool.route(NodeId::new(n)).unwrap());
    }
    // Memory-only node 2 falls back (kernel order from 2) to node 0 first.
    assert_eq!(pool.route(NodeId::new(2)).unwrap(), NodeId::new(0));
    assert!(matches!(
        pool.spawn_on(NodeId::new(9), || ()),
        Err(NumaError::NodeNotFound(_))
    ));
    assert!(matches!(
        pool.spawn_on(NodeId::new(5000), || ()),
        Err(NumaError::InvalidNode(5000))
    ));
    assert!(matches!(
        WorkerPool::new(
            sim,
            WorkerPoolConfig {
                workers_per_node: 0,
                steal: Steal::Never
            }
        ),
        Err(NumaError::InvalidArgument(_))
    ));
}

#[test]
fn sparse_nodes_route_by_id() {
    let sim = Arc::new(
        SimMachine::builder()
            .node_with_id(NodeId::new(0), 1, 16 * MIB)
            .node_with_id(NodeId::new(2), 1, 16 * MIB)
            .build()
            .unwrap(),
    );
    // No stealing, so the task must run on node 2's own worker.
    let pool = WorkerPool::new(
        sim.clone(),
        WorkerPoolConfig {
            workers_per_node: 1,
            steal: Steal::Never,
        },
    )
    .unwrap();
    let s = sim.clone();
    assert_eq!(
        pool.spawn_on(NodeId::new(2), move || s.current_cpu().unwrap().node)
            .unwrap()
            .join(),
        Ok(NodeId::new(2))
    );
    assert!(matches!(
        pool.spawn_on(NodeId::new(1), || ()),
        Err(NumaError::NodeNotFound(_))
    ));
}

#[test]
fn panics_are_reported_and_the_pool_lives_on() {
    let pool = WorkerPool::new(cxl(), WorkerPoolConfig::default()).unwrap();
    let h = pool
        .spawn_on(NodeId::new(0), || -> u32 { panic!("boom") })
        .unwrap();
    assert_eq!(h.join(), Err(TaskError::Panicked("boom".into())));
    assert_eq!(pool.spawn_on(NodeId::new(0), || 7).unwrap().join(), Ok(7));
}

#[test]
fn scoped_tasks_borrow() {
    let pool = WorkerPool::new(cxl(), WorkerPoolConfig::default()).unwrap();
    let data: Vec<u64> = (0..1000).collect();
    let (left, right) = data.split_at(500);
    let sums = pool.scope(|s| {
        let a = s
            .spawn_on(NodeId::new(0), || left.iter().sum::<u64>())
            .unwrap();
        let b = s
            .spawn_on(NodeId::new(1), || right.iter().sum::<u64>())
            .unwrap();
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(sums.0 + sums.1, 999 * 1000 / 2);
}

#[test]
fn stealing_follows_the_policy() {
    for steal in [Steal::Never, Steal::Nearest] {
        let pool = WorkerPool::new(
            cxl(),
            WorkerPoolConfig {
                workers_per_node: 1,
                steal,
            },
        )
        .unwrap();
        let handles: Vec<_> = (0..40)
            .map(|_| {
                pool.spawn_on(NodeId::new(0), || {
                    std::thread::sleep(std::time::Duration::from_millis(2))
                })
                .unwrap()
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        let st = pool.stats();
        assert_eq!(st[&NodeId::new(0)].local + st[&NodeId::new(1)].stolen, 40);
        match steal {
            Steal::Never => assert_eq!(st[&NodeId::new(1)].stolen, 0),
            _ => assert!(st[&NodeId::new(1)].stolen > 0, "{st:?}"),
        }
    }
}

#[test]
fn drop_finishes_queued_work_and_cancel_cancels() {
    let done = Arc::new(AtomicU64::new(0));
    {
        let pool = WorkerPool::new(cxl(), WorkerPoolConfig::default()).unwrap();
        for i in 0..100 {
            let d = done.clone();
            pool.spawn_on(NodeId::new(i % 2), move || {
                d.fetch_add(1, Ordering::Relaxed)
            })
            .unwrap();
        }
    }
    assert_eq!(done.load(Ordering::Relaxed), 100);
    assert_eq!(
        Arc::strong_count(&done),
        1,
        "every task ran and was dropped; every worker joined"
    );

    let pool = WorkerPool::new(
        cxl(),
        WorkerPoolConfig {
            workers_per_node: 1,
            steal: Steal::Never,
        },
    )
    .unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let blocker = pool
        .spawn_on(NodeId::new(0), move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        })
        .unwrap();
    started_rx.recv().unwrap();
    let queued: Vec<_> = (0..3)
        .map(|i| pool.spawn_on(NodeId::new(0), move || i).unwrap())
        .collect();
    let stopper = std::thread::spawn(move || pool.shutdown(Shutdown::Cancel));
    for h in queued {
        assert_eq!(h.join(), Err(TaskError::Cancelled));
    }
    release_tx.send(()).unwrap();
    assert_eq!(blocker.join(), Ok(()));
    stopper.join().unwrap();
}

#[test]
#[cfg_attr(
    miri,
    ignore = "the Linux backend's raw syscalls do not run under Miri"
)]
fn host_pool_runs_on_node_0() {
    let b = LinuxBackend::shared().unwrap();
    let pool = WorkerPool::new(
        b.clone(),
        WorkerPoolConfig {
            workers_per_node: 2,
            steal: Steal::Any,
        },
    )
    .unwrap();
    assert_eq!(pool.thread_count(), 2 * b.topology().cpu_nodes().count());
    let bb = b.clone();
    let node = pool
        .spawn_on(NodeId::new(0), move || bb.current_cpu().unwrap().node)
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(node, NodeId::new(0));
    let bb = b.clone();
    assert!(
        pool.spawn_local(move || bb.thread_affinity().unwrap().count())
            .unwrap()
            .join()
            .unwrap()
            >= 1
    );
}
