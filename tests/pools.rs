//! Buffer pool and worker pool, on simulated multi-node machines and on this host.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use numaperf::pool::{
    BufferPoolConfig, JoinHandle, Scope, Shutdown, Steal, TaskError, WorkerPoolConfig,
};
use numaperf::{
    BufferPool, DefaultBackend, NodeId, NodeMask, NumaError, PlacementBackend, TopologyInfo,
    WorkerPool,
};
use numaperf_sim::SimMachine;

const MIB: u64 = 1 << 20;

/// Counts this thread's heap allocations (the pools' fast paths must make none).
struct Counting;

thread_local! {
    // Per thread, so the harness's and the workers' threads do not disturb a count.
    static ALLOCS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract is passed through.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: as above.
        unsafe { std::alloc::System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap allocations this thread made while running `f`.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(std::cell::Cell::get);
    f();
    ALLOCS.with(std::cell::Cell::get) - before
}

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

/// A worker pool with one worker per node with CPUs.
fn one_per_node(sim: Arc<SimMachine>, steal: Steal) -> WorkerPool<Arc<SimMachine>> {
    WorkerPool::new(
        sim,
        WorkerPoolConfig {
            workers_per_node: 1,
            steal,
        },
    )
    .unwrap()
}

/// `h.join()`, or a failure (instead of a hung test) when the task never finishes.
fn join_within<T: Send + 'static>(h: JoinHandle<T>, secs: u64) -> Result<T, TaskError> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(h.join()));
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("the task never finished: its worker is gone")
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

fn buffers_sit_on_their_node<B: PlacementBackend + Clone + 'static>(b: B) {
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
    buffers_sit_on_their_node(DefaultBackend::shared().unwrap());
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
        // Could never hand out a buffer: `get` would wait forever.
        BufferPoolConfig {
            initial_per_node: 0,
            grow: false,
            ..small(2, false)
        },
    ] {
        assert!(matches!(
            BufferPool::new(sim.clone(), bad),
            Err(NumaError::InvalidConfig { .. })
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
    stress(DefaultBackend::shared().unwrap(), 4000);
}

#[test]
#[cfg_attr(miri, ignore = "measures wall time")]
fn a_waiting_get_is_woken_by_the_put() {
    // One buffer, no growth, no fallback. Each round the holder tells the other thread
    // it holds the buffer, keeps it a little, and puts it back; the other thread's `get`
    // waits for that put. A put that forgot to wake its waiter would leave each round to
    // the 50 ms backstop: 200 rounds would take 10 s instead of milliseconds.
    let one = BufferPoolConfig {
        initial_per_node: 1,
        max_per_node: 1,
        grow: false,
        fallback: false,
        ..small(1, false)
    };
    let pool = BufferPool::on_nodes(cxl(), &NodeMask::single(NodeId::new(0)), one).unwrap();
    let (held_tx, held_rx) = mpsc::channel::<()>();
    let (taken_tx, taken_rx) = mpsc::channel::<()>();
    let started = Instant::now();
    let pool = &pool;
    std::thread::scope(|s| {
        s.spawn(move || {
            for _ in 0..200 {
                let b = pool.get(NodeId::new(0)).unwrap();
                held_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_micros(200));
                drop(b);
                taken_rx.recv().unwrap();
            }
        });
        s.spawn(move || {
            for _ in 0..200 {
                held_rx.recv().unwrap();
                let b = pool.get(NodeId::new(0)).unwrap();
                taken_tx.send(()).unwrap();
                drop(b);
            }
        });
    });
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "200 rounds took {took:?}");
    let st = pool.stats(NodeId::new(0)).unwrap();
    assert_eq!((st.in_use, st.free), (0, 1));
}

#[test]
fn workers_run_on_their_node_and_memory_only_nodes_are_routed() {
    let sim = cxl();
    // No stealing: a stolen task would rightly run on the other node.
    let pool = one_per_node(sim.clone(), Steal::Never);
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
        Err(NumaError::InvalidConfig {
            field: "workers_per_node",
            ..
        })
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
    let pool = one_per_node(sim.clone(), Steal::Never);
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

/// Three nodes with CPUs in a line: 0 -21- 1 -21- 2, and 0 to 2 at 31.
fn line() -> Arc<SimMachine> {
    let b = SimMachine::builder()
        .node(1, 16 * MIB)
        .node(1, 16 * MIB)
        .node(1, 16 * MIB)
        .distance(0, 1, 21)
        .distance(1, 2, 21)
        .distance(0, 2, 31);
    Arc::new(b.build().unwrap())
}

#[test]
fn stealing_follows_the_policy() {
    for steal in [Steal::Never, Steal::Nearest, Steal::Any] {
        // All work is queued on node 0. Node 1 is its nearest neighbour; node 2 is
        // farther from node 0 than from node 1, so only `Any` lets it steal from node 0.
        let pool = one_per_node(line(), steal);
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
        let (n0, n1, n2) = (
            st[&NodeId::new(0)],
            st[&NodeId::new(1)],
            st[&NodeId::new(2)],
        );
        assert_eq!(n0.local + n1.stolen + n2.stolen, 40, "{steal:?}: {st:?}");
        match steal {
            Steal::Never => assert_eq!((n1.stolen, n2.stolen), (0, 0), "{st:?}"),
            Steal::Nearest => {
                assert!(n1.stolen > 0, "{st:?}");
                assert_eq!(n2.stolen, 0, "node 2 is not nearest to node 0: {st:?}");
            }
            Steal::Any => assert!(n1.stolen > 0 && n2.stolen > 0, "{st:?}"),
        }
    }
}

/// Panics when dropped.
struct DropBomb;

impl Drop for DropBomb {
    fn drop(&mut self) {
        panic!("DropBomb dropped");
    }
}

#[test]
fn a_result_that_panics_when_dropped_leaves_its_worker_running() {
    let pool = one_per_node(cxl(), Steal::Never);
    let (open_tx, open_rx) = mpsc::channel::<()>();
    let gate = pool
        .spawn_on(NodeId::new(0), move || open_rx.recv().unwrap())
        .unwrap();
    // Its handle is gone before it runs, so the worker drops the result itself.
    drop(pool.spawn_on(NodeId::new(0), || DropBomb).unwrap());
    let after = pool.spawn_on(NodeId::new(0), || 5).unwrap();
    open_tx.send(()).unwrap();
    assert_eq!(join_within(gate, 30), Ok(()));
    assert_eq!(join_within(after, 30), Ok(5));
    assert_eq!(
        join_within(pool.spawn_on(NodeId::new(0), || 6).unwrap(), 30),
        Ok(6)
    );
}

#[test]
fn scope_waits_for_tasks_it_did_not_join_even_when_its_body_panics() {
    let pool = WorkerPool::new(cxl(), WorkerPoolConfig::default()).unwrap();
    let hits = AtomicU64::new(0);
    fn spawn_four<'scope>(s: &'scope Scope<'scope, '_, Arc<SimMachine>>, hits: &'scope AtomicU64) {
        for n in [0, 1, 0, 1] {
            s.spawn_on(NodeId::new(n), move || {
                std::thread::sleep(Duration::from_millis(20));
                hits.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
    }
    pool.scope(|s| spawn_four(s, &hits));
    assert_eq!(hits.load(Ordering::SeqCst), 4, "scope returned early");
    let r = catch_unwind(AssertUnwindSafe(|| {
        pool.scope(|s| {
            spawn_four(s, &hits);
            panic!("the scope's body panics");
        })
    }));
    assert!(r.is_err());
    assert_eq!(hits.load(Ordering::SeqCst), 8, "scope unwound early");
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

    let pool = one_per_node(cxl(), Steal::Never);
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
    let b = DefaultBackend::shared().unwrap();
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
    let (node, cpus) = pool
        .spawn_local(move || {
            let here = bb.current_cpu().unwrap().node;
            (here, bb.thread_affinity().unwrap())
        })
        .unwrap()
        .join()
        .unwrap();
    // Pinned to its node's CPUs (those of them this process may use), nothing else.
    let node_cpus = b.topology().node_cpus(node).unwrap();
    assert!(!cpus.is_empty());
    assert!(
        cpus.iter().all(|c| node_cpus.contains(c)),
        "worker of node {node} may run on {cpus}, node has {node_cpus}"
    );
}

#[test]
fn join_and_scope_inside_a_worker_run_other_tasks_instead_of_blocking() {
    // One worker per node, no stealing: the awaited task can only run on the waiting
    // worker itself. A blocking join would deadlock here.
    let pool = Arc::new(one_per_node(cxl(), Steal::Never));
    let p = pool.clone();
    let outer = pool
        .spawn_on(NodeId::new(0), move || {
            let inner = p.spawn_on(NodeId::new(0), || 20).unwrap();
            let data = [1u64, 2, 3];
            let scoped: u64 = p.scope(|s| {
                let hs: Vec<_> = data
                    .iter()
                    .map(|x| s.spawn_on(NodeId::new(0), move || *x * 2).unwrap())
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum()
            });
            inner.join().unwrap() + scoped
        })
        .unwrap();
    assert_eq!(join_within(outer, 30), Ok(32));
}

#[test]
fn scoped_tasks_spawn_scoped_tasks() {
    let pool = WorkerPool::new(cxl(), WorkerPoolConfig::default()).unwrap();
    let hits = AtomicU64::new(0);
    let hits = &hits;
    pool.scope(|s| {
        for n in [0, 1] {
            s.execute_on(NodeId::new(n), move || {
                for m in [0, 1] {
                    s.execute_on(NodeId::new(m), move || {
                        hits.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap();
                }
            })
            .unwrap();
        }
    });
    assert_eq!(
        hits.load(Ordering::SeqCst),
        4,
        "scope returned before nested tasks"
    );
}

#[test]
fn tasks_spawn_tasks_and_detached_tasks_run() {
    let pool = Arc::new(WorkerPool::new(cxl(), WorkerPoolConfig::default()).unwrap());
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    pool.execute_on(NodeId::new(1), move || {
        for i in 0..10u32 {
            let tx = tx.clone();
            p.execute_on(NodeId::new(i % 2), move || tx.send(i).unwrap())
                .unwrap();
        }
    })
    .unwrap();
    let mut got: Vec<u32> = (0..10)
        .map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap())
        .collect();
    got.sort();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

#[test]
fn dropping_the_last_pool_handle_inside_its_own_task_is_fine() {
    let pool = Arc::new(one_per_node(cxl(), Steal::Never));
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let p = pool.clone();
    let h = pool
        .spawn_on(NodeId::new(0), move || {
            go_rx.recv().unwrap();
            drop(p); // the last handle: the pool is dropped on its own worker
            7
        })
        .unwrap();
    drop(pool);
    go_tx.send(()).unwrap();
    assert_eq!(join_within(h, 30), Ok(7));
}

/// Set in the re-executed test binary that forks (so the fork happens in a process whose
/// only other threads are the pool's idle workers, not the test harness's).
#[cfg(unix)]
const FORK_CHILD: &str = "NUMAPERF_POOLS_FORK_CHILD";

#[cfg(all(unix, not(miri)))]
mod fork_ffi {
    extern "C" {
        pub fn fork() -> i32;
        pub fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
        pub fn _exit(code: i32) -> !;
    }
}

#[test]
#[cfg_attr(miri, ignore = "forks a process")]
#[cfg(unix)]
fn a_pool_in_a_forked_child_refuses_tasks_and_drops_quietly() {
    if std::env::var_os(FORK_CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_pool_in_a_forked_child_refuses_tasks_and_drops_quietly",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(FORK_CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "{text}");
        return;
    }
    #[cfg(not(miri))]
    {
        let pool = one_per_node(cxl(), Steal::Never);
        assert_eq!(pool.spawn_on(NodeId::new(0), || 1).unwrap().join(), Ok(1));
        // SAFETY: fork in a process whose other threads are the pool's idle workers;
        // the child only checks the pool and leaves with `_exit`.
        let pid = unsafe { fork_ffi::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let r = catch_unwind(AssertUnwindSafe(|| {
                let refused = matches!(
                    pool.spawn_on(NodeId::new(0), || 2),
                    Err(NumaError::PoolShutDown)
                );
                drop(pool); // must neither panic nor wait for the parent's threads
                refused
            }));
            // SAFETY: `_exit` ends the child without running the parent's atexit state.
            unsafe { fork_ffi::_exit(if matches!(r, Ok(true)) { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked; `status` is a valid out pointer.
        let waited = unsafe { fork_ffi::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert_eq!(
            status, 0,
            "the child's pool accepted a task or panicked on drop"
        );
        assert_eq!(pool.spawn_on(NodeId::new(0), || 3).unwrap().join(), Ok(3));
    }
}

/// `f()` on another thread, or a failure (instead of a hung test) when it never returns.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(f()));
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("it never returned (a get that waits for nothing?)")
}

#[test]
fn fallback_grows_the_nearest_node_within_its_cap() {
    // Node 0 holds two buffers' worth of memory; node 1 has plenty and may make 63 more
    // than its first. Falling back must grow node 1, not only take its free buffers.
    let sim = Arc::new(
        SimMachine::builder()
            .node(1, 2 * 4096)
            .node(1, 64 * MIB)
            .build()
            .unwrap(),
    );
    let cfg = BufferPoolConfig {
        buffer_size: 4096,
        initial_per_node: 1,
        max_per_node: 64,
        grow: true,
        fallback: true,
        hard: false,
    };
    let pool = BufferPool::new(sim, cfg).unwrap();
    let mut held: Vec<_> = (0..10)
        .map(|i| {
            pool.try_get(NodeId::new(0))
                .unwrap()
                .unwrap_or_else(|| panic!("try_get #{i} gave None"))
        })
        .collect();
    assert_eq!(
        held.iter().filter(|b| b.home() == NodeId::new(0)).count(),
        2
    );
    let p = pool.clone();
    held.push(within(30, move || p.get(NodeId::new(0)).unwrap()));
    assert_eq!(held.last().unwrap().home(), NodeId::new(1));
    let s = pool.stats(NodeId::new(0)).unwrap();
    assert_eq!((s.in_use, s.fallback_no_memory), (2, 9), "{s:?}");
    assert_eq!(pool.stats(NodeId::new(1)).unwrap().in_use, 9);
}

#[test]
fn get_returns_the_growth_error_when_there_is_nothing_to_wait_for() {
    let cfg = BufferPoolConfig {
        buffer_size: 1 << 40,
        initial_per_node: 0,
        max_per_node: 4,
        grow: true,
        fallback: true,
        hard: false,
    };
    let pool = BufferPool::new(cxl(), cfg).unwrap();
    let p = pool.clone();
    let r = within(30, move || p.get(NodeId::new(0)).map(|_| ()));
    assert!(
        matches!(r, Err(NumaError::InsufficientMemory { .. })),
        "{r:?}"
    );
    assert!(pool.try_get(NodeId::new(0)).unwrap().is_none());
}

#[test]
fn max_per_node_costs_nothing_until_used() {
    for max in [1 << 24, 1 << 40, usize::MAX] {
        let cfg = BufferPoolConfig {
            buffer_size: 64,
            initial_per_node: 1,
            max_per_node: max,
            grow: true,
            fallback: false,
            hard: false,
        };
        let pool = BufferPool::new(cxl(), cfg).unwrap();
        let bufs: Vec<_> = (0..100)
            .map(|_| pool.get(NodeId::new(1)).unwrap())
            .collect();
        assert!(bufs
            .iter()
            .all(|b| b.home() == NodeId::new(1) && b.len() == 64));
        drop(bufs);
        let s = pool.stats(NodeId::new(1)).unwrap();
        assert_eq!(s.in_use, 0, "max {max}: {s:?}");
    }
}

#[test]
fn on_nodes_names_the_node_it_cannot_use() {
    let one = Arc::new(SimMachine::builder().node(1, 16 * MIB).build().unwrap());
    let cfg = BufferPoolConfig {
        initial_per_node: 0,
        ..small(4, false)
    };
    let r = BufferPool::on_nodes(one.clone(), &NodeMask::single(NodeId::new(1)), cfg);
    assert!(
        matches!(r, Err(NumaError::NodeNotFound(n)) if n == NodeId::new(1)),
        "{:?}",
        r.err()
    );
    let r = BufferPool::on_nodes(one.clone(), &NodeMask::single(NodeId::new(5000)), cfg);
    assert!(
        matches!(r, Err(NumaError::InvalidNode(5000))),
        "{:?}",
        r.err()
    );
    // Node 2 of the CXL machine is memory-only, fine for buffers; an empty mask is not.
    assert!(BufferPool::on_nodes(cxl(), &NodeMask::single(NodeId::new(2)), cfg).is_ok());
    assert!(matches!(
        BufferPool::on_nodes(one, &NodeMask::new(), cfg),
        Err(NumaError::EmptyNodeMask)
    ));
}

#[test]
fn buffers_cached_by_a_thread_that_exits_come_back() {
    let pool = BufferPool::new(cxl(), small(64, false)).unwrap();
    let p = pool.clone();
    std::thread::spawn(move || {
        // Take and return buffers: the returns sit in this thread's cache.
        let held: Vec<_> = (0..20).map(|_| p.get(NodeId::new(0)).unwrap()).collect();
        drop(held);
        let s = p.stats(NodeId::new(0)).unwrap();
        assert_eq!((s.in_use, s.free), (0, 20), "cached buffers count as free");
    })
    .join()
    .unwrap();
    // The thread is gone: its cache went back to node 0's free list, and the main
    // thread can take all 64 (the 20 made plus growth).
    let all: Vec<_> = (0..64).map(|_| pool.get(NodeId::new(0)).unwrap()).collect();
    assert!(all.iter().all(|b| b.home() == NodeId::new(0)));
    assert_eq!(pool.stats(NodeId::new(0)).unwrap().in_use, 64);
    assert!(pool.try_get(NodeId::new(0)).unwrap().is_none());
}

#[test]
fn a_buffer_cached_by_an_idle_thread_serves_a_waiting_get() {
    // A pool large enough for caches; one thread takes everything and returns it into
    // its cache, then idles. A get on another thread must not wait for it forever.
    let cfg = BufferPoolConfig {
        initial_per_node: 16,
        max_per_node: 16,
        grow: false,
        ..small(16, false)
    };
    let pool = BufferPool::on_nodes(cxl(), &NodeMask::single(NodeId::new(0)), cfg).unwrap();
    let (idle_tx, idle_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let p = pool.clone();
    let idler = std::thread::spawn(move || {
        let held: Vec<_> = (0..16).map(|_| p.get(NodeId::new(0)).unwrap()).collect();
        drop(held);
        idle_tx.send(()).unwrap();
        done_rx.recv().unwrap();
    });
    idle_rx.recv().unwrap();
    let p = pool.clone();
    let got = within(30, move || {
        (0..16)
            .map(|_| p.get(NodeId::new(0)).unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(got.len(), 16);
    done_tx.send(()).unwrap();
    idler.join().unwrap();
}

#[test]
fn a_buffer_is_two_words() {
    // The handle is the bytes and the home node: it moves in registers, and an empty
    // `Option` of it costs nothing more.
    type Buf = numaperf::Buffer<Arc<SimMachine>>;
    assert_eq!(std::mem::size_of::<Buf>(), 2 * std::mem::size_of::<usize>());
    assert_eq!(
        std::mem::size_of::<Option<Buf>>(),
        std::mem::size_of::<Buf>()
    );
}

#[test]
fn small_and_large_detached_tasks_run_once_or_are_dropped_once() {
    // Small closures live inside their job, large ones are boxed: both paths must run
    // each task exactly once in a scope, and drop each cancelled one exactly once.
    let pool = one_per_node(cxl(), Steal::Never);
    let hits = AtomicU64::new(0);
    let big = [1u64; 8];
    pool.scope(|s| {
        for i in 0..50u64 {
            let hits = &hits;
            s.execute_on(NodeId::new((i % 2) as u32), move || {
                hits.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
            s.execute_on(NodeId::new((i % 2) as u32), move || {
                hits.fetch_add(big.iter().sum::<u64>() * 1000, Ordering::Relaxed);
            })
            .unwrap();
        }
    });
    assert_eq!(hits.load(Ordering::Relaxed), 50 + 50 * 8000);

    let token = Arc::new(());
    let ran = Arc::new(AtomicU64::new(0));
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let blocker = pool
        .spawn_on(NodeId::new(0), move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        })
        .unwrap();
    started_rx.recv().unwrap();
    for _ in 0..3 {
        let (t, r) = (token.clone(), ran.clone());
        pool.execute_on(NodeId::new(0), move || {
            drop(t);
            r.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        let (t, r) = (token.clone(), ran.clone());
        pool.execute_on(NodeId::new(0), move || {
            drop(t);
            r.fetch_add(big.iter().sum::<u64>(), Ordering::Relaxed);
        })
        .unwrap();
    }
    assert_eq!(Arc::strong_count(&token), 7);
    let stopper = std::thread::spawn(move || pool.shutdown(Shutdown::Cancel));
    // Cancel drains the queue before it waits for the running task.
    let t0 = Instant::now();
    while Arc::strong_count(&token) > 1 && t0.elapsed() < Duration::from_secs(30) {
        std::thread::yield_now();
    }
    release_tx.send(()).unwrap();
    assert_eq!(blocker.join(), Ok(()));
    stopper.join().unwrap();
    assert_eq!(
        Arc::strong_count(&token),
        1,
        "every cancelled closure dropped"
    );
    assert_eq!(ran.load(Ordering::Relaxed), 0, "no cancelled task ran");
}

#[test]
fn buffer_get_and_put_on_a_warm_thread_do_not_allocate() {
    let pool = BufferPool::new(cxl(), small(64, false)).unwrap();
    let n = NodeId::new(1);
    drop(pool.get(n).unwrap()); // this thread's cache of the pool is made here
    let made = allocations(|| {
        for i in 0..1000u32 {
            let mut b = pool.get(n).unwrap();
            b[0] = i as u8;
            drop(b);
        }
    });
    assert_eq!(made, 0, "the cached path allocates");
    assert_eq!(pool.stats(n).unwrap().in_use, 0);
}

#[test]
fn small_detached_tasks_are_not_allocated_one_by_one() {
    // A closure of a word lives inside its job; the injector allocates a block per 63
    // jobs. A box per task would make at least one allocation per task.
    let pool = one_per_node(cxl(), Steal::Never);
    let done = Arc::new(AtomicU64::new(0));
    let tasks: u64 = if cfg!(miri) { 200 } else { 5000 };
    let made = allocations(|| {
        for _ in 0..tasks {
            let d = done.clone();
            pool.execute_on(NodeId::new(0), move || {
                d.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        }
    });
    let t0 = Instant::now();
    while done.load(Ordering::Relaxed) < tasks && t0.elapsed() < Duration::from_secs(30) {
        std::thread::yield_now();
    }
    assert_eq!(done.load(Ordering::Relaxed), tasks);
    assert!(made < tasks / 16, "{made} allocations for {tasks} tasks");
}
