//! `NumaSharded` and `ShardedCounter` on a simulated 4-node machine (memory-only and
//! CPU-only nodes), and on this host's default backend. Runs under Miri on the simulator:
//! `MIRIFLAGS=-Zmiri-disable-isolation cargo +nightly miri test --test sharded`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use numaperf::numa_core::policy::fallback_order;
use numaperf::numa_core::MAX_NUMNODES;
use numaperf::{
    CachePadded, Enforcement, NodeId, NumaError, NumaSharded, PageLocation, ShardedCounter,
    Topology,
};
use numaperf_sim::SimMachine;

const MIB: u64 = 1 << 20;

/// Node 0: CPUs 0-1 and memory; node 1: CPUs 2-3 and memory; node 2: memory only;
/// node 3: CPU 4, no memory (CPU-only). Node 3 is nearer node 1 than node 0.
fn machine() -> SimMachine {
    SimMachine::builder()
        .node(2, 64 * MIB)
        .node(2, 64 * MIB)
        .node(0, 64 * MIB)
        .node(1, 0)
        .distance(3, 1, 12)
        .distance(3, 0, 20)
        .distance(3, 2, 30)
        .build()
        .expect("a 4-node machine")
}

fn node(n: u32) -> NodeId {
    NodeId::new(n)
}

#[test]
fn one_shard_per_memory_node_each_on_its_node_page_by_page() {
    let sim = machine();
    let topo = Topology::of_backend(&sim).unwrap();
    // Two pages per shard, so a shard's pages are checked one by one.
    let s = NumaSharded::new_in(&sim, &topo, |n| [u64::from(n.get()); 1024]).unwrap();
    assert_eq!(s.nodes().collect::<Vec<_>>(), [node(0), node(1), node(2)]);
    assert_eq!(s.len(), 3);
    assert_eq!(s.enforcement(), Enforcement::Hard);
    let mut starts = Vec::new();
    for (n, v) in s.iter() {
        assert!(v.iter().all(|&x| x == u64::from(n.get())));
        let mem = s.memory(n).unwrap();
        assert_eq!(mem.node(), n);
        assert_eq!(mem.enforcement(), Enforcement::Hard);
        let layout = mem.layout();
        assert_eq!(layout.page_count(), 2);
        let mut pages = vec![PageLocation::NotPresent; layout.page_count()];
        mem.page_locations(0, &mut pages).unwrap();
        assert!(
            pages.iter().all(|&p| p == PageLocation::Node(n)),
            "{pages:?}"
        );
        assert_eq!(mem.placement().unwrap().on(n), 2);
        // The value is in that region.
        let addr = v.as_ptr() as usize;
        let start = layout.as_ptr() as usize;
        assert!(addr >= start && addr + 8192 <= start + layout.mapped_len());
        starts.push(start);
    }
    starts.dedup();
    assert_eq!(starts.len(), 3, "one region per shard");
    drop(s);
    assert_eq!(sim.mapping_count(), 0);
}

#[test]
fn get_of_a_node_without_a_shard_is_none() {
    let sim = machine();
    let topo = Topology::of_backend(&sim).unwrap();
    let s = NumaSharded::new_in(&sim, &topo, |n| n).unwrap();
    assert_eq!(
        s.get(node(2)),
        Some(&node(2)),
        "memory-only nodes have shards"
    );
    assert_eq!(s.get(node(3)), None, "CPU-only node");
    assert_eq!(s.get(node(4)), None, "absent node");
    assert_eq!(s.get(NodeId::new(5000)), None, "out-of-range id");
    assert!(s.memory(node(3)).is_none());
}

/// The shard `local()` must give a thread on `cpu`'s node: its own, or for the CPU-only
/// node the first shard node in the kernel's fallback order.
fn expected_local(
    sim: &SimMachine,
    cpu_node: NodeId,
    has_shard: impl Fn(NodeId) -> bool,
) -> NodeId {
    use numaperf::PlacementBackend;
    let mut order = [NodeId::new(0); MAX_NUMNODES];
    let k = fallback_order(sim.topology(), cpu_node, &mut order);
    *order[..k].iter().find(|&&m| has_shard(m)).unwrap()
}

#[test]
fn local_follows_run_on_cpu_and_cpu_only_nodes_use_the_fallback_order() {
    let sim = machine();
    let topo = Topology::of_backend(&sim).unwrap();
    let s = NumaSharded::new_in(&sim, &topo, |n| n).unwrap();
    let want =
        |cpu: usize| expected_local(&sim, topo.cpu_node(cpu).unwrap(), |m| s.get(m).is_some());
    assert_eq!(
        want(4),
        node(1),
        "CPU-only node 3 falls back to node 1 (distance 12)"
    );
    assert_eq!(s.local_node_for(node(3)), Some(node(1)));
    assert_eq!(s.local_node_for(node(2)), Some(node(2)));
    for cpu in 0..5 {
        // A fresh thread reads its CPU on its first call.
        let got = std::thread::scope(|sc| {
            sc.spawn(|| sim.run_on_cpu(cpu, || *s.local()).unwrap())
                .join()
                .unwrap()
        });
        assert_eq!(got, want(cpu), "cpu {cpu}");
        // On one thread: `local_now` reads at once.
        assert_eq!(sim.run_on_cpu(cpu, || *s.local_now()).unwrap(), want(cpu));
    }
    // No thread is ever local to the memory-only node 2.
    assert!((0..5).all(|cpu| want(cpu) != node(2)));
}

#[test]
fn local_reads_the_cpu_once_per_refresh_period() {
    use numaperf_sim::CallKind;
    let sim = machine();
    let topo = Topology::of_backend(&sim).unwrap();
    let s = NumaSharded::new_in(&sim, &topo, |n| n).unwrap();
    let period = NumaSharded::<NodeId>::REFRESH_EVERY as usize;
    sim.run_on_cpu(0, || {
        let before = sim.calls().get(CallKind::CurrentCpu);
        assert_eq!(*s.local_now(), node(0));
        for _ in 0..period - 1 {
            assert_eq!(*s.local(), node(0));
        }
        assert_eq!(
            sim.calls().get(CallKind::CurrentCpu) - before,
            1,
            "one read"
        );
        // Moved to node 1: stale until the period ends, then node 1.
        sim.run_on_cpu(2, || {
            assert_eq!(*s.local(), node(1), "the period's last call reads again");
            for _ in 0..period - 2 {
                assert_eq!(*s.local(), node(1));
            }
            assert_eq!(sim.calls().get(CallKind::CurrentCpu) - before, 2);
        })
        .unwrap();
        // Back on CPU 0: stale for the period's last call, then read again.
        assert_eq!(*s.local(), node(1));
        assert_eq!(*s.local(), node(0));
        assert_eq!(sim.calls().get(CallKind::CurrentCpu) - before, 3);
    })
    .unwrap();
}

#[test]
fn counter_reads_the_cpu_once_per_refresh_period_and_follows_a_move() {
    use numaperf_sim::CallKind;
    let sim = machine();
    let topo = Topology::of_backend(&sim).unwrap();
    let c = ShardedCounter::new_in(&sim, &topo).unwrap();
    let period = u64::from(NumaSharded::<NodeId>::REFRESH_EVERY);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            sim.run_on_cpu(0, || {
                let before = sim.calls().get(CallKind::CurrentCpu);
                for _ in 0..period - 1 {
                    c.increment();
                }
                assert_eq!(
                    sim.calls().get(CallKind::CurrentCpu) - before,
                    1,
                    "one read"
                );
                // Moved to node 1: the add that crosses the period still lands on node 0,
                // the next one reads the CPU again and lands on node 1.
                sim.run_on_cpu(2, || {
                    c.increment();
                    assert_eq!(c.iter().collect::<Vec<_>>()[0], (node(0), period));
                    c.increment();
                    assert_eq!(sim.calls().get(CallKind::CurrentCpu) - before, 2);
                    assert_eq!(c.iter().collect::<Vec<_>>()[1], (node(1), 1));
                    // Large adds count as one call each: a period of them, one read.
                    for _ in 0..period {
                        c.add(period);
                    }
                    assert_eq!(sim.calls().get(CallKind::CurrentCpu) - before, 3);
                })
                .unwrap();
            })
            .unwrap();
        });
    });
    assert_eq!(c.sum(), period + 1 + period * period);
}

struct Counted<'a> {
    node: NodeId,
    drops: &'a Mutex<Vec<NodeId>>,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.drops.lock().unwrap().push(self.node);
    }
}

#[test]
fn drop_runs_each_values_drop_exactly_once_then_unmaps() {
    let sim = machine();
    let topo = Topology::of_backend(&sim).unwrap();
    let drops = Mutex::new(Vec::new());
    let s = NumaSharded::new_in(&sim, &topo, |node| Counted {
        node,
        drops: &drops,
    })
    .unwrap();
    assert_eq!(sim.mapping_count(), 3);
    assert!(drops.lock().unwrap().is_empty());
    drop(s);
    assert_eq!(*drops.lock().unwrap(), [node(0), node(1), node(2)]);
    assert_eq!(sim.mapping_count(), 0);
}

#[test]
fn a_panicking_constructor_drops_what_it_built_and_leaks_no_mapping() {
    let sim = machine();
    let topo = Topology::of_backend(&sim).unwrap();
    let drops = Mutex::new(Vec::new());
    let r = catch_unwind(AssertUnwindSafe(|| {
        NumaSharded::new_in(&sim, &topo, |node| {
            assert_ne!(node, NodeId::new(2), "no value for node 2");
            Counted {
                node,
                drops: &drops,
            }
        })
    }));
    assert!(r.is_err());
    assert_eq!(*drops.lock().unwrap(), [node(0), node(1)]);
    assert_eq!(sim.mapping_count(), 0);
}

#[test]
fn a_failing_region_drops_what_was_built() {
    let sim = machine();
    let topo = Topology::of_backend(&sim).unwrap();
    sim.fail_node_after(node(1), 0);
    let drops = Mutex::new(Vec::new());
    let r = NumaSharded::new_in(&sim, &topo, |node| Counted {
        node,
        drops: &drops,
    });
    assert!(r.is_err());
    assert_eq!(*drops.lock().unwrap(), [node(0)]);
    assert_eq!(sim.mapping_count(), 0);
}

#[test]
fn a_topology_of_another_machine_is_refused() {
    let sim = machine();
    let bigger = SimMachine::from_spec("5 nodes x 1 cpus x 16 MiB").unwrap();
    let topo = Topology::of_backend(&bigger).unwrap();
    assert_eq!(
        NumaSharded::new_in(&sim, &topo, |_| 0u8).unwrap_err(),
        NumaError::NodeNotFound(node(4))
    );
    // Node 3 has memory there, none here.
    let four = SimMachine::from_spec("4 nodes x 1 cpus x 16 MiB").unwrap();
    let topo = Topology::of_backend(&four).unwrap();
    assert_eq!(
        ShardedCounter::new_in(&sim, &topo).unwrap_err(),
        NumaError::NoMemoryOnNode(node(3))
    );
    assert_eq!(sim.mapping_count(), 0);
}

#[repr(align(8192))]
struct Big(u8);

#[test]
fn alignment_and_size_are_kept() {
    let sim = machine();
    let topo = Topology::of_backend(&sim).unwrap();
    let big = NumaSharded::new_in(&sim, &topo, |n| Big(n.get() as u8)).unwrap();
    for (n, v) in big.iter() {
        assert_eq!(v as *const Big as usize % 8192, 0);
        assert_eq!(v.0 as u32, n.get());
    }
    let zst = NumaSharded::new_in(&sim, &topo, |_| ()).unwrap();
    for n in zst.nodes() {
        // Even a zero-sized shard takes a cache line of its own (in a page of its own).
        assert!(zst.memory(n).unwrap().layout().len() >= size_of::<CachePadded<u8>>());
    }
    let padded = NumaSharded::new_in(&sim, &topo, |_| CachePadded::new(AtomicU64::new(0))).unwrap();
    for (_, v) in padded.iter() {
        assert_eq!(v as *const _ as usize % align_of::<CachePadded<u8>>(), 0);
    }
}

#[test]
fn sharded_values_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<NumaSharded<AtomicU64, &'static SimMachine>>();
    check::<ShardedCounter<&'static SimMachine>>();
    check::<NumaSharded<AtomicU64>>();
    check::<ShardedCounter>();
}

#[test]
fn counter_sums_are_exact_with_several_threads() {
    let sim = SimMachine::from_spec("4 nodes x 1 cpus x 64 MiB").unwrap();
    let topo = Topology::of_backend(&sim).unwrap();
    let c = ShardedCounter::new_in(&sim, &topo).unwrap();
    let per_thread: u64 = if cfg!(miri) { 300 } else { 20_000 };
    let threads = 8;
    std::thread::scope(|sc| {
        for t in 0..threads {
            let (c, sim) = (&c, &sim);
            sc.spawn(move || {
                sim.run_on_cpu(t % 4, || {
                    for i in 0..per_thread {
                        if i % 2 == 0 {
                            c.increment();
                        } else {
                            c.add(3);
                        }
                    }
                })
                .unwrap()
            });
        }
    });
    let each = per_thread / 2 * 4;
    assert_eq!(c.sum(), each * threads as u64);
    // Two threads per CPU, each node's CPU counted on its node.
    assert!(c.iter().all(|(_, n)| n == 2 * each), "{c:?}");
    assert!((0..4).all(|n| c.slots_on(node(n)) == Some((1, 8))));
    assert!(c.memory(node(0)).unwrap().enforcement() == Enforcement::Hard);
}

#[test]
fn counter_slots_per_cpu_and_cpu_only_nodes_count_on_their_fallback_node() {
    let sim = machine();
    let topo = Topology::of_backend(&sim).unwrap();
    let c = ShardedCounter::new_in(&sim, &topo).unwrap();
    // Node 1 serves CPUs 2, 3 and the CPU-only node's CPU 4; node 2 (memory only) none.
    assert_eq!(c.slots_on(node(0)), Some((2, 8)));
    assert_eq!(c.slots_on(node(1)), Some((3, 8)));
    assert_eq!(c.slots_on(node(2)), Some((1, 8)));
    assert_eq!(c.slots_on(node(3)), None);
    for cpu in 0..5 {
        std::thread::scope(|sc| {
            sc.spawn(|| sim.run_on_cpu(cpu, || c.add(1 << (8 * cpu))).unwrap());
        });
    }
    let per: Vec<_> = c.iter().collect();
    assert_eq!(
        per,
        [(node(0), 0x0101), (node(1), 0x01_0101_0000), (node(2), 0)]
    );
    assert_eq!(c.sum(), 0x01_0101_0101);
    drop(c);
    assert_eq!(sim.mapping_count(), 0);
}

#[test]
fn more_threads_than_thread_slots_share_cpu_slots_exactly() {
    use std::sync::Barrier;
    let sim = SimMachine::from_spec("1 nodes x 2 cpus x 16 MiB").unwrap();
    let topo = Topology::of_backend(&sim).unwrap();
    let c = ShardedCounter::new_in(&sim, &topo).unwrap();
    let (cpus, threads) = c.slots_on(node(0)).unwrap();
    assert_eq!((cpus, threads), (2, 8));
    let n = threads + 4;
    let per: u64 = if cfg!(miri) { 50 } else { 10_000 };
    for round in 1..=2u64 {
        // All alive at once: 8 lease a thread slot, 4 share the CPU slots. Then they
        // exit, release, and the next round leases the same slots again.
        let all = Barrier::new(n);
        std::thread::scope(|sc| {
            for t in 0..n {
                let (c, sim, all) = (&c, &sim, &all);
                sc.spawn(move || {
                    sim.run_on_cpu(t % 2, || {
                        c.increment();
                        all.wait();
                        (1..per).for_each(|_| c.increment());
                    })
                    .unwrap()
                });
            }
        });
        assert_eq!(c.sum(), round * n as u64 * per);
    }
}

#[test]
fn a_counter_dropped_before_its_threads_exit_is_fine() {
    use std::sync::{mpsc, Arc};
    // The backend is an `Arc`, so the thread can outlive the test's borrow of it.
    let sim = Arc::new(SimMachine::from_spec("1 nodes x 1 cpus x 16 MiB").unwrap());
    let topo = Topology::of_backend(&*sim).unwrap();
    let c = Arc::new(ShardedCounter::new_in(sim.clone(), &topo).unwrap());
    let (counted, wait_counted) = mpsc::channel::<()>();
    let (dropped, wait_dropped) = mpsc::channel::<()>();
    let t = {
        let (c, sim) = (c.clone(), sim.clone());
        std::thread::spawn(move || {
            c.increment();
            drop(c);
            counted.send(()).unwrap();
            // The thread still holds its lease of the (soon dropped) counter.
            wait_dropped.recv().unwrap();
            // A new counter on this thread after another one died works; then the
            // thread exits and releases into the dead counter's table.
            let d = ShardedCounter::new_in(&*sim, &Topology::of_backend(&*sim).unwrap()).unwrap();
            d.add(5);
            d.sum()
        })
    };
    wait_counted.recv().unwrap();
    let c = Arc::into_inner(c).expect("the only handle");
    assert_eq!(c.sum(), 1);
    drop(c);
    assert_eq!(sim.mapping_count(), 0);
    dropped.send(()).unwrap();
    assert_eq!(t.join().unwrap(), 5);
    assert_eq!(sim.mapping_count(), 0);
}

static HOST_DROPS: AtomicUsize = AtomicUsize::new(0);

struct HostValue(u64);

impl Drop for HostValue {
    fn drop(&mut self) {
        HOST_DROPS.fetch_add(1, Ordering::Relaxed);
    }
}

/// The default backend on this host: every memory node gets a shard on it, the counter
/// is exact.
#[test]
#[cfg_attr(miri, ignore = "system calls")]
fn on_this_host() {
    let topo = Topology::discover().unwrap();
    let s = NumaSharded::new(&topo, |n| HostValue(n.get().into())).unwrap();
    let nodes = topo.memory_nodes().intersection(&topo.allowed_nodes());
    assert_eq!(s.len(), nodes.count());
    for (n, v) in s.iter() {
        assert_eq!(v.0, u64::from(n.get()));
        let mem = s.memory(n).unwrap();
        let counts = mem.placement().unwrap();
        if cfg!(all(target_os = "linux", not(feature = "portable"))) {
            assert_eq!(mem.enforcement(), Enforcement::Hard);
            assert_eq!(counts.on(n), mem.layout().page_count() as u64);
        } else {
            assert_eq!(mem.enforcement(), Enforcement::Soft);
        }
    }
    let here = numaperf::thread::current_location(s.backend())
        .unwrap()
        .node;
    assert_eq!(
        s.local().0,
        u64::from(s.local_node_for(here).unwrap().get())
    );
    let shards = s.len();
    drop(s);
    assert_eq!(HOST_DROPS.load(Ordering::Relaxed), shards);

    let c = ShardedCounter::new(&topo).unwrap();
    std::thread::scope(|sc| {
        for _ in 0..4 {
            sc.spawn(|| (0..100_000).for_each(|_| c.increment()));
        }
    });
    assert_eq!(c.sum(), 400_000);
}
