//! Measured locality: snapshots and reports on a simulated machine (whose counters are
//! exact) and on this host's kernel.

use std::sync::Arc;

use numaperf::locality::{PoolCounters, Recommendation};
use numaperf::{
    BufferPool, BufferPoolConfig, LocalityHealth, LocalityReport, LocalitySnapshot, MemPolicy,
    NodeId, NodeMask, NumaRegion, Prefault, WorkerPool, WorkerPoolConfig,
};
use numaperf_sim::SimMachine;

const MIB: u64 = 1 << 20;

fn n(i: u32) -> NodeId {
    NodeId::new(i)
}

/// Nodes 0 and 1 with a CPU each, 2 and 3 memory-only (CXL-like), 64 MiB each.
fn cxl() -> Arc<SimMachine> {
    let b = SimMachine::builder()
        .node(1, 64 * MIB)
        .node(1, 64 * MIB)
        .node(0, 64 * MIB)
        .node(0, 64 * MIB)
        .distance(0, 2, 31)
        .distance(0, 3, 31)
        .distance(1, 2, 31)
        .distance(1, 3, 31)
        .distance(2, 3, 41);
    Arc::new(b.build().unwrap())
}

fn bound(sim: &Arc<SimMachine>, node: u32, len: u64) -> NumaRegion<Arc<SimMachine>> {
    NumaRegion::anon_in(
        sim.clone(),
        len as usize,
        MemPolicy::Bind(NodeMask::single(n(node))),
        Default::default(),
        Prefault::Populate,
    )
    .unwrap()
}

#[test]
fn a_region_bound_away_from_its_tasks_is_reported() {
    let sim = cxl();
    let before = LocalitySnapshot::take_in(sim.clone()).unwrap();
    let (region, before) = sim
        .run_on_cpu(0, || {
            let r = bound(&sim, 2, MIB);
            let s = before.watch_region("cxl", &r).unwrap();
            (r, s)
        })
        .unwrap();
    let report = LocalityReport::since(&before).unwrap();
    let pages = region.layout().page_count() as u64;
    let s2 = report.numastat(n(2)).unwrap();
    // Meant for node 2 (bound there), placed there, by a task on node 0.
    assert_eq!(
        (s2.numa_hit, s2.other_node, s2.local_node, s2.numa_miss),
        (pages, pages, 0, 0)
    );
    assert_eq!(report.numastat(n(0)).unwrap(), Default::default());
    assert_eq!(report.health(), LocalityHealth::Poor);
    let away = report
        .recommendations()
        .iter()
        .find(|r| matches!(r, Recommendation::RegionAway { .. }))
        .expect("the region is named");
    assert_eq!(
        away,
        &Recommendation::RegionAway {
            region: "cxl".into(),
            used_from: n(0),
            node: n(2),
            pages,
            away: pages,
            resident: pages,
            node_has_cpus: false,
        }
    );
    let text = report.to_string();
    assert!(
        text.contains("100% of region cxl's pages are on node 2 while it is used from node 0"),
        "{text}"
    );
    assert!(text.contains("region cxl"), "{text}");
    assert!(
        text.contains(&format!(
            "100% of the allocations on node 2 came from tasks on other nodes \
             (other_node {pages} of {pages}): node 2 has no CPUs"
        )),
        "{text}"
    );
    assert!(!text.contains("run its tasks on node 2"), "{text}");
    let i = (0..report.mappings().len())
        .find(|&i| report.region_of(i) == Some("cxl"))
        .unwrap();
    assert_eq!(report.mappings()[i].policy, "bind:2");
    assert_eq!(
        report.process_bytes(),
        &[(n(2), pages * region.layout().page_size() as u64)]
    );
}

#[test]
fn a_full_node_shows_numa_miss_and_foreign() {
    // Node 0 has 64 pages; a 256-page local region from its CPU spills 192 to node 1.
    let sim = Arc::new(
        SimMachine::builder()
            .node(1, 256 << 10)
            .node(1, 64 * MIB)
            .build()
            .unwrap(),
    );
    let before = LocalitySnapshot::take_in(sim.clone()).unwrap();
    let r = sim
        .run_on_cpu(0, || {
            NumaRegion::anon_in(
                sim.clone(),
                MIB as usize,
                MemPolicy::Local,
                Default::default(),
                Prefault::Populate,
            )
        })
        .unwrap()
        .unwrap();
    let report = LocalityReport::since(&before).unwrap();
    let (s0, s1) = (
        report.numastat(n(0)).unwrap(),
        report.numastat(n(1)).unwrap(),
    );
    assert_eq!((s0.numa_hit, s0.numa_foreign, s0.local_node), (64, 192, 64));
    assert_eq!((s1.numa_miss, s1.other_node, s1.numa_hit), (192, 192, 0));
    let rec = report.recommendations();
    assert_eq!(
        rec[0],
        Recommendation::NodeShort {
            node: n(0),
            foreign: 192,
            meant: 256
        }
    );
    assert!(rec.contains(&Recommendation::MissedElsewhere {
        node: n(1),
        miss: 192,
        placed: 192
    }));
    let text = report.to_string();
    assert!(
        text.contains("node 0 ran short of free memory")
            && text.contains("numa_miss is 100% of allocations on node 1"),
        "{text}"
    );
    assert_eq!(report.health(), LocalityHealth::Poor);
    drop(r);
}

#[test]
fn local_work_is_excellent_and_nothing_is_unmeasured() {
    let sim = cxl();
    let idle = LocalitySnapshot::take_in(sim.clone()).unwrap();
    let nothing = LocalityReport::since(&idle).unwrap();
    assert_eq!(nothing.health(), LocalityHealth::Unmeasured);
    assert!(nothing.to_string().contains("Graded: nothing"));
    let (r, before) = sim
        .run_on_cpu(1, || {
            let before = LocalitySnapshot::take_in(sim.clone()).unwrap();
            let r = bound(&sim, 1, 4 * MIB);
            let before = before.watch_region("home", &r).unwrap();
            (r, before)
        })
        .unwrap();
    let report = LocalityReport::since(&before).unwrap();
    assert_eq!(report.health(), LocalityHealth::Excellent, "{report}");
    assert!(report.recommendations().is_empty(), "{report}");
    let pages = r.layout().page_count() as u64;
    assert_eq!(report.numastat(n(1)).unwrap().local_node, pages);
    assert!(report.measured().iter().all(|m| m.percent() == 100));
}

#[test]
fn pool_counters_are_compared_between_the_points() {
    let sim = cxl();
    let workers = WorkerPool::new(
        sim.clone(),
        WorkerPoolConfig {
            workers_per_node: 1,
            steal: numaperf::pool::Steal::Never,
        },
    )
    .unwrap();
    // Work before the snapshot is not counted.
    for _ in 0..10 {
        workers.spawn_on(n(0), || ()).unwrap().join().unwrap();
    }
    let buffers = BufferPool::new(
        sim.clone(),
        BufferPoolConfig {
            buffer_size: 4096,
            initial_per_node: 2,
            max_per_node: 2,
            grow: true,
            fallback: true,
            hard: false,
        },
    )
    .unwrap();
    let before = LocalitySnapshot::take_in(sim.clone())
        .unwrap()
        .watch_pool("workers", &workers)
        .watch_pool("buffers", &buffers);
    for _ in 0..100 {
        workers.spawn_on(n(1), || ()).unwrap().join().unwrap();
    }
    // Node 0 has two buffers: the third asked of it comes from elsewhere.
    let held: Vec<_> = (0..3).map(|_| buffers.get(n(0)).unwrap()).collect();
    assert!(held.iter().any(|b| b.home() != n(0)));
    let report = LocalityReport::since(&before).unwrap();
    let pools = &report.figures().pools;
    let w = &pools[0].nodes;
    let on = |node: u32| w.iter().find(|(k, _)| *k == n(node)).unwrap().1;
    assert_eq!(
        (on(1).tasks_local, on(0).tasks_local, on(1).tasks_stolen),
        (100, 0, 0)
    );
    let b0 = pools[1].nodes.iter().find(|(k, _)| *k == n(0)).unwrap().1;
    assert_eq!(b0.fallback_exhausted, 1);
    assert!(report
        .recommendations()
        .contains(&Recommendation::BufferFallbacks {
            pool: "buffers".into(),
            node: n(0),
            exhausted: 1,
            no_memory: 0
        }));
    // The pools fill the counters from their own statistics.
    assert_eq!(workers.pool_counters().len(), workers.stats().len());
}

#[cfg(all(target_os = "linux", not(feature = "portable")))]
mod host {
    use super::*;
    use numaperf::locality::DefaultLocality;
    use numaperf::{FileProblem, NumaError, SysfsFile};

    #[test]
    fn this_kernel_counts_a_populated_region() {
        let before = LocalitySnapshot::take().unwrap();
        let node = numaperf::Topology::discover()
            .unwrap()
            .memory_nodes()
            .first()
            .unwrap();
        let r = NumaRegion::anon(
            4 << 20,
            MemPolicy::Bind(NodeMask::single(node)),
            Default::default(),
            Prefault::Populate,
        )
        .unwrap();
        let before = before.watch_region("host", &r).unwrap();
        let report = LocalityReport::since(&before).unwrap();
        eprintln!("{report}");
        let pages = r.layout().page_count() as u64;
        // At least one allocation per 2 MiB (a transparent huge page counts once).
        let s = report.numastat(node).unwrap();
        assert!(s.numa_hit >= pages / 512, "{s:?}");
        let region = &report.figures().regions[0];
        assert_eq!((region.on(node), region.resident()), (pages, pages));
        assert!(report.to_string().contains("region host"));
    }

    #[test]
    fn a_missing_tree_is_named() {
        let mut l = DefaultLocality::new();
        l.node_root = "/nonexistent/numaperf".into();
        let e = LocalitySnapshot::take_in(l).err().unwrap();
        assert_eq!(e, SysfsFile::root("online").error(FileProblem::Missing));
        assert!(matches!(e, NumaError::Sysfs { .. }));
    }
}
