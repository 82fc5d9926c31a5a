//! The simulator against the kernel's rules: histograms per policy, interleave exactness
//! by virtual page number, fallback by distance, capacity, faults, and conservation.

use numaperf_core::backend::placement;
use numaperf_core::policy::{fallback_order, interleave_index, interleave_node};
use numaperf_core::region::create_region;
use numaperf_core::{
    Errno, HugePages, Mapping, MemPolicy, NodeId, NodeMask, NodeMode, NodeWeights, NumaError,
    PageCounts, PageLocation, PlacementBackend, Prefault, RegionOptions, TopologyInfo,
};
use numaperf_sim::{CallKind, FaultInjector, KernelFeature, SimMachine, Tracer};
use proptest::prelude::*;

const MIB: u64 = 1 << 20;

fn mask(ids: &[u32]) -> NodeMask {
    ids.iter().copied().map(NodeId::new).collect()
}

fn testdata(name: &str) -> SimMachine {
    SimMachine::from_sysfs_dir(format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn region<B: PlacementBackend>(
    b: &B,
    pages: usize,
    p: MemPolicy,
    o: RegionOptions,
    pf: Prefault,
) -> Result<Mapping, NumaError> {
    create_region(b, pages * 4096, &p, &o, pf).map(|(m, _)| m)
}

fn drop_region<B: PlacementBackend>(b: &B, m: Mapping) {
    // SAFETY: `m` came from `b` and nothing refers to its memory.
    unsafe { b.unmap(&m) }.unwrap();
}

fn counts(b: &SimMachine, m: &Mapping) -> PageCounts {
    placement(b, m).unwrap()
}

fn node_of(b: &SimMachine, m: &Mapping, page: usize) -> Option<NodeId> {
    let mut out = [PageLocation::NotPresent];
    b.page_locations(m, page, &mut out).unwrap();
    match out[0] {
        PageLocation::Node(n) => Some(n),
        _ => None,
    }
}

#[test]
fn interleave_follows_the_virtual_page_number() {
    let sim = SimMachine::from_spec("4 nodes x 1 cpus x 64 MiB").unwrap();
    let all = mask(&[0, 1, 2, 3]);
    let m = region(
        &sim,
        64,
        MemPolicy::Interleave(all),
        Default::default(),
        Prefault::Populate,
    )
    .unwrap();
    let start = m.as_ptr() as usize;
    for i in 0..64 {
        let ilx = interleave_index(start, start + i * 4096, 12, 0);
        assert_eq!(node_of(&sim, &m, i), interleave_node(&all, ilx), "page {i}");
    }
    let c = counts(&sim, &m);
    assert!(all.iter().all(|n| c.on(n) == 16), "{c}");
    drop_region(&sim, m);
}

#[test]
fn thp_interleaves_whole_2mib_pages() {
    let sim = SimMachine::from_spec("2 nodes x 1 cpus x 64 MiB").unwrap();
    let o = RegionOptions::new().huge_pages(HugePages::Transparent);
    let m = region(
        &sim,
        2048,
        MemPolicy::Interleave(mask(&[0, 1])),
        o,
        Prefault::Populate,
    )
    .unwrap();
    assert_eq!(m.as_ptr() as usize % (2 << 20), 0);
    for block in 0..4 {
        let first = node_of(&sim, &m, block * 512);
        assert!(
            (0..512).all(|i| node_of(&sim, &m, block * 512 + i) == first),
            "block {block}"
        );
    }
    let c = counts(&sim, &m);
    assert_eq!((c.on(NodeId::new(0)), c.on(NodeId::new(1))), (1024, 1024));
    drop_region(&sim, m);
}

#[test]
fn preferred_fills_its_node_then_falls_back_by_distance() {
    let sim = SimMachine::builder()
        .node(1, MIB)
        .node(1, MIB)
        .node(1, MIB)
        .distance(0, 1, 31)
        .distance(1, 2, 21)
        .distance(0, 2, 41)
        .build()
        .unwrap();
    let m = region(
        &sim,
        300,
        MemPolicy::Preferred(NodeId::new(0)),
        Default::default(),
        Prefault::Touch,
    )
    .unwrap();
    let c = counts(&sim, &m);
    let mut order = [NodeId::new(0); 3];
    fallback_order(sim.topology(), NodeId::new(0), &mut order);
    assert_eq!(
        order[1],
        NodeId::new(1),
        "node 1 is nearer to 0 than node 2"
    );
    assert_eq!(
        (
            c.on(NodeId::new(0)),
            c.on(NodeId::new(1)),
            c.on(NodeId::new(2))
        ),
        (256, 44, 0)
    );
    drop_region(&sim, m);
}

#[test]
fn over_capacity_bind_is_an_error_and_leaks_nothing() {
    let sim = SimMachine::from_spec("2 nodes x 1 cpus x 1 MiB").unwrap();
    let before = sim.usage();
    let e = region(
        &sim,
        300,
        MemPolicy::Bind(mask(&[1])),
        Default::default(),
        Prefault::Populate,
    );
    assert!(
        matches!(e, Err(NumaError::InsufficientMemory { .. })),
        "{e:?}"
    );
    // Lazily it maps; faulting past capacity is then an error, not a kill.
    let m = region(
        &sim,
        300,
        MemPolicy::Bind(mask(&[1])),
        Default::default(),
        Prefault::None,
    )
    .unwrap();
    assert!(matches!(
        // SAFETY: the test owns `m` and holds no reference to its memory.
        unsafe { sim.prefault(&m, m.all_pages(), Prefault::Touch) },
        Err(NumaError::InsufficientMemory { .. })
    ));
    assert_eq!(counts(&sim, &m).on(NodeId::new(1)), 256);
    drop_region(&sim, m);
    assert_eq!(sim.usage(), before);
    assert_eq!(sim.mapping_count(), 0);
}

#[test]
fn local_follows_the_simulated_cpu() {
    let sim = SimMachine::from_spec("2 nodes x 2 cpus x 16 MiB").unwrap();
    for cpu in 0..4 {
        let m = sim
            .run_on_cpu(cpu, || {
                region(
                    &sim,
                    8,
                    MemPolicy::Local,
                    Default::default(),
                    Prefault::Touch,
                )
            })
            .unwrap()
            .unwrap();
        assert_eq!(counts(&sim, &m).on(NodeId::new(cpu as u32 / 2)), 8);
        drop_region(&sim, m);
    }
    assert!(sim.run_on_cpu(9, || ()).is_err());
}

#[test]
fn pinning_moves_the_simulated_thread() {
    let sim = SimMachine::from_spec("2 nodes x 2 cpus x 16 MiB").unwrap();
    sim.set_thread_affinity(&[3].into_iter().collect()).unwrap();
    assert_eq!(sim.current_cpu().unwrap().node, NodeId::new(1));
    let m = region(
        &sim,
        4,
        MemPolicy::Local,
        Default::default(),
        Prefault::Touch,
    )
    .unwrap();
    assert_eq!(counts(&sim, &m).on(NodeId::new(1)), 4);
    drop_region(&sim, m);
}

#[test]
fn memory_only_nodes_and_captured_trees() {
    let sim = testdata("4node-cxl");
    assert_eq!(*sim.topology().cpu_nodes(), mask(&[0, 1]));
    let m = region(
        &sim,
        16,
        MemPolicy::Bind(mask(&[2, 3])),
        Default::default(),
        Prefault::Touch,
    )
    .unwrap();
    // From node 0 both CXL nodes are at 31: the lower id wins.
    assert_eq!(counts(&sim, &m).on(NodeId::new(2)), 16);
    drop_region(&sim, m);
    let sparse = testdata("sparse-0-2");
    assert_eq!(
        sparse.topology().distance(NodeId::new(0), NodeId::new(2)),
        Some(32)
    );
    let m = region(
        &sparse,
        8,
        MemPolicy::Interleave(mask(&[0, 2])),
        Default::default(),
        Prefault::Touch,
    )
    .unwrap();
    let c = counts(&sparse, &m);
    assert_eq!((c.on(NodeId::new(0)), c.on(NodeId::new(2))), (4, 4));
    drop_region(&sparse, m);
    for name in ["host-1node", "2socket", "8node-asym"] {
        assert!(testdata(name).topology().node_count() >= 1);
    }
}

#[test]
fn weighted_interleave_by_weights() {
    let sim = SimMachine::from_spec("4 nodes x 1 cpus x 64 MiB").unwrap();
    let w = (0..4).fold(NodeWeights::new(), |w, n| {
        w.with(NodeId::new(n), if n == 0 { 3 } else { 1 })
    });
    let m = region(
        &sim,
        600,
        MemPolicy::WeightedInterleave(w),
        Default::default(),
        Prefault::Populate,
    )
    .unwrap();
    let c = counts(&sim, &m);
    assert_eq!(
        [0, 1, 2, 3].map(|n| c.on(NodeId::new(n))),
        [300, 100, 100, 100]
    );
    drop_region(&sim, m);
    // A kernel without MPOL_WEIGHTED_INTERLEAVE still gets the proportion (in chunks).
    sim.kernel_lacks(KernelFeature::WeightedInterleave);
    let m = region(
        &sim,
        600,
        MemPolicy::WeightedInterleave(w),
        Default::default(),
        Prefault::Populate,
    )
    .unwrap();
    let c = counts(&sim, &m);
    assert_eq!(
        [0, 1, 2, 3].map(|n| c.on(NodeId::new(n))),
        [300, 100, 100, 100]
    );
    drop_region(&sim, m);
}

#[test]
fn injected_errors_are_typed_and_leak_nothing() {
    let sim = SimMachine::from_spec("2 nodes x 1 cpus x 16 MiB").unwrap();
    let f = FaultInjector::new(&sim);
    for (kind, errno, want) in [
        (
            CallKind::ApplyPolicy,
            Errno::EPERM,
            NumaError::PermissionDenied { op: "mbind" },
        ),
        (
            CallKind::Prefault,
            Errno::ENOMEM,
            NumaError::Os {
                op: "madvise",
                errno: Errno::ENOMEM,
            },
        ),
        (
            CallKind::Map,
            Errno::ENOMEM,
            NumaError::Os {
                op: "mmap",
                errno: Errno::ENOMEM,
            },
        ),
        (
            CallKind::PageLocations,
            Errno::EIO,
            NumaError::Os {
                op: "move_pages",
                errno: Errno::EIO,
            },
        ),
    ] {
        f.fail_next(kind, 1, errno);
        let e = region(
            &f,
            4,
            MemPolicy::Bind(mask(&[0])),
            RegionOptions::new().hard(),
            Prefault::Touch,
        );
        assert_eq!(e.unwrap_err(), want);
        assert_eq!(sim.mapping_count(), 0, "{kind:?}");
    }
    assert_eq!(f.injected(), 4);
    sim.deny_mempolicy_calls(true);
    let e = region(
        &sim,
        1,
        MemPolicy::Local,
        Default::default(),
        Prefault::None,
    );
    assert_eq!(e.unwrap_err(), NumaError::PermissionDenied { op: "mbind" });
    assert_eq!(sim.mapping_count(), 0);
}

#[test]
fn random_faults_replay_from_the_seed() {
    let run = |seed| {
        let sim = SimMachine::from_spec("2 nodes x 1 cpus x 16 MiB").unwrap();
        let f = FaultInjector::new(&sim);
        f.fail_randomly(seed, 3, Errno::EIO);
        let results: Vec<bool> = (0..20)
            .map(|_| {
                region(&f, 2, MemPolicy::Local, Default::default(), Prefault::Touch)
                    .map(|m| drop_region(&f, m))
                    .is_ok()
            })
            .collect();
        assert_eq!(sim.mapping_count(), 0);
        results
    };
    assert_eq!(run(7), run(7));
    assert!(run(7).contains(&false) && run(7).contains(&true));
}

#[test]
fn node_running_out_mid_region() {
    let sim = SimMachine::from_spec("2 nodes x 1 cpus x 16 MiB").unwrap();
    sim.fail_node_after(NodeId::new(0), 10);
    let m = region(
        &sim,
        20,
        MemPolicy::Preferred(NodeId::new(0)),
        Default::default(),
        Prefault::Touch,
    )
    .unwrap();
    let c = counts(&sim, &m);
    assert_eq!((c.on(NodeId::new(0)), c.on(NodeId::new(1))), (10, 10));
    drop_region(&sim, m);
    let e = region(
        &sim,
        1,
        MemPolicy::Bind(mask(&[0])),
        Default::default(),
        Prefault::Touch,
    );
    assert!(matches!(e, Err(NumaError::InsufficientMemory { .. })));
    assert_eq!(sim.mapping_count(), 0);
}

#[test]
fn soft_is_observably_soft_and_bind_stays() {
    let sim = SimMachine::from_spec("2 nodes x 1 cpus x 16 MiB").unwrap();
    let soft = region(
        &sim,
        64,
        MemPolicy::Preferred(NodeId::new(0)),
        Default::default(),
        Prefault::Touch,
    )
    .unwrap();
    let bound = region(
        &sim,
        64,
        MemPolicy::Bind(mask(&[0])),
        Default::default(),
        Prefault::Touch,
    )
    .unwrap();
    assert!(sim.balance(42) > 0);
    assert!(counts(&sim, &soft).on(NodeId::new(1)) > 0);
    assert_eq!(counts(&sim, &bound).on(NodeId::new(0)), 64);
    drop_region(&sim, soft);
    drop_region(&sim, bound);
}

#[test]
fn cgroup_limits_the_nodes() {
    let sim = SimMachine::builder()
        .node(1, 16 * MIB)
        .node(1, 16 * MIB)
        .allowed_nodes(mask(&[1]))
        .build()
        .unwrap();
    let e = region(
        &sim,
        1,
        MemPolicy::Bind(mask(&[0])),
        Default::default(),
        Prefault::None,
    );
    assert_eq!(e.unwrap_err(), NumaError::NodeNotAllowed(NodeId::new(0)));
    let m = region(
        &sim,
        4,
        MemPolicy::Interleave(mask(&[1])),
        Default::default(),
        Prefault::Touch,
    )
    .unwrap();
    assert_eq!(counts(&sim, &m).on(NodeId::new(1)), 4);
    drop_region(&sim, m);
}

#[test]
fn migrate_moves_every_page() {
    let sim = SimMachine::from_spec("3 nodes x 1 cpus x 16 MiB").unwrap();
    let m = region(
        &sim,
        32,
        MemPolicy::Interleave(mask(&[0, 1, 2])),
        Default::default(),
        Prefault::Touch,
    )
    .unwrap();
    // SAFETY: the test owns `m` and holds no reference to its memory.
    unsafe { sim.migrate(&m, &mask(&[2]), NodeMode::Default) }.unwrap();
    assert_eq!(counts(&sim, &m).on(NodeId::new(2)), 32);
    drop_region(&sim, m);
    assert!(sim.usage().iter().all(|u| u.free == u.total));
}

#[test]
fn explicit_huge_pages_come_from_the_pool() {
    let sim = SimMachine::builder()
        .node(1, 64 * MIB)
        .node(1, 64 * MIB)
        .huge_pages(1, HugePages::Explicit2M, 2)
        .build()
        .unwrap();
    let o = RegionOptions::new().huge_pages(HugePages::Explicit2M);
    let m = region(&sim, 1, MemPolicy::Bind(mask(&[1])), o, Prefault::Populate).unwrap();
    assert_eq!((m.page_size(), m.mapped_len()), (2 << 20, 2 << 20));
    assert_eq!(counts(&sim, &m).on(NodeId::new(1)), 1);
    let e = region(&sim, 1, MemPolicy::Bind(mask(&[0])), o, Prefault::Populate);
    assert_eq!(
        e.unwrap_err(),
        NumaError::HugePagesUnavailable { page_size: 2 << 20 }
    );
    drop_region(&sim, m);
    assert_eq!(
        sim.free_memory(NodeId::new(1), HugePages::Explicit2M)
            .unwrap(),
        4 << 20
    );
}

#[test]
fn tracer_counts_calls_per_region() {
    let sim = SimMachine::from_spec("2 nodes x 1 cpus x 16 MiB").unwrap();
    let t = Tracer::new(&sim);
    let m = region(
        &t,
        4,
        MemPolicy::Bind(mask(&[0])),
        Default::default(),
        Prefault::Populate,
    )
    .unwrap();
    drop_region(&t, m);
    let c = t.calls();
    let per_kind = [
        CallKind::Map,
        CallKind::ApplyPolicy,
        CallKind::Prefault,
        CallKind::Unmap,
    ]
    .map(|k| c.get(k));
    assert_eq!(per_kind, [1, 1, 1, 1]);
    assert_eq!(
        c.get(CallKind::FreeMemory),
        0,
        "4 pages are under 1/16 of the node: no capacity read"
    );
    // A region of 1/16 of its node (1 MiB of 16) is checked: one read for a one-node Bind.
    let m = region(
        &t,
        256,
        MemPolicy::Bind(mask(&[0])),
        Default::default(),
        Prefault::Populate,
    )
    .unwrap();
    drop_region(&t, m);
    assert_eq!(t.calls().get(CallKind::FreeMemory), 1);
}

#[test]
fn bad_specs_are_errors() {
    for spec in [
        "",
        "2 nodes",
        "x nodes x 1 cpus x 1 GiB",
        "2 nodes x 1 cpus x 1 TB",
        "0 nodes x 1 cpus x 1 GiB",
    ] {
        assert!(SimMachine::from_spec(spec).is_err(), "{spec:?}");
    }
    assert!(SimMachine::builder()
        .node_with_id(NodeId::new(2), 1, MIB)
        .node_with_id(NodeId::new(1), 1, MIB)
        .build()
        .is_err());
}

#[derive(Debug, Clone)]
enum Op {
    Map {
        pages: usize,
        policy: u8,
        node: u32,
        prefault: bool,
    },
    Unmap(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1usize..40, 0u8..4, 0u32..3, any::<bool>()).prop_map(|(pages, policy, node, prefault)| {
            Op::Map {
                pages,
                policy,
                node,
                prefault,
            }
        }),
        (0usize..8).prop_map(Op::Unmap),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 64 }, ..ProptestConfig::default() })]

    #[test]
    fn free_memory_is_conserved_and_bind_is_obeyed(ops in proptest::collection::vec(op(), 1..20)) {
        let sim = SimMachine::builder().node(1, 256 * 1024).node(1, 256 * 1024).node(0, 256 * 1024).build().unwrap();
        let total: u64 = sim.usage().iter().map(|u| u.total).sum();
        let mut live: Vec<(Mapping, Option<NodeMask>)> = Vec::new();
        for op in ops {
            match op {
                Op::Map { pages, policy, node, prefault } => {
                    let n = NodeId::new(node);
                    let p = match policy {
                        0 => MemPolicy::Local,
                        1 => MemPolicy::Bind(NodeMask::single(n)),
                        2 => MemPolicy::Preferred(n),
                        _ => MemPolicy::Interleave(mask(&[0, 1, 2])),
                    };
                    let bound = if let MemPolicy::Bind(m) = p { Some(m) } else { None };
                    let pf = if prefault { Prefault::Touch } else { Prefault::None };
                    if let Ok(m) = region(&sim, pages, p, Default::default(), pf) {
                        live.push((m, bound));
                    }
                }
                Op::Unmap(i) if i < live.len() => drop_region(&sim, live.remove(i).0),
                Op::Unmap(_) => {}
            }
            let present: u64 = live.iter().map(|(m, _)| counts(&sim, m).present()).sum();
            let free: u64 = sim.usage().iter().map(|u| u.free).sum();
            prop_assert_eq!(free + present * 4096, total);
            for (m, bound) in &live {
                if let Some(b) = bound {
                    prop_assert!(counts(&sim, m).nodes().is_subset(b));
                }
            }
        }
        for (m, _) in live {
            drop_region(&sim, m);
        }
        prop_assert_eq!(sim.usage().iter().map(|u| u.free).sum::<u64>(), total);
    }
}

#[test]
fn weighted_interleave_uses_the_kernels_table_and_never_writes_it() {
    use numaperf_core::policy::weighted_interleave_node;
    use numaperf_core::KernelWeights;
    let sim = SimMachine::from_spec("2 nodes x 1 cpus x 16 MiB").unwrap();
    let w = NodeWeights::new()
        .with(NodeId::new(0), 3)
        .with(NodeId::new(1), 1);
    // The kernel's table says 1:1: the region is laid out in chunks, 3/4 on node 0.
    let m = region(
        &sim,
        64,
        MemPolicy::WeightedInterleave(w),
        Default::default(),
        Prefault::Touch,
    )
    .unwrap();
    let c = counts(&sim, &m);
    assert_eq!((c.on(NodeId::new(0)), c.on(NodeId::new(1))), (48, 16));
    assert_eq!(node_of(&sim, &m, 0), Some(NodeId::new(0)));
    drop_region(&sim, m);
    let table = sim.kernel_weights().unwrap().unwrap();
    assert_eq!(table.weights.weight(NodeId::new(0)), 1, "never written");
    // The administrator set 3:1: the kernel's own mode places page by page.
    sim.set_kernel_weights(KernelWeights {
        weights: w,
        auto: Some(false),
    });
    let m = region(
        &sim,
        64,
        MemPolicy::WeightedInterleave(w),
        Default::default(),
        Prefault::Touch,
    )
    .unwrap();
    let start = m.as_ptr() as usize;
    for page in 0..64 {
        let ilx = interleave_index(start, start + page * 4096, 12, 0);
        assert_eq!(
            node_of(&sim, &m, page),
            weighted_interleave_node(&w, &mask(&[0, 1]), ilx),
            "page {page}"
        );
    }
    drop_region(&sim, m);
    // A kernel without weighted interleave still gets the proportion, in chunks.
    sim.kernel_lacks(KernelFeature::WeightedInterleave);
    assert_eq!(sim.kernel_weights(), Ok(None));
    let m = region(
        &sim,
        64,
        MemPolicy::WeightedInterleave(w),
        Default::default(),
        Prefault::Touch,
    )
    .unwrap();
    assert_eq!(counts(&sim, &m).on(NodeId::new(1)), 16);
    drop_region(&sim, m);
}

#[test]
fn policies_on_page_ranges_split_and_keep_the_rest() {
    let sim = SimMachine::from_spec("3 nodes x 1 cpus x 16 MiB").unwrap();
    let m = region(
        &sim,
        12,
        MemPolicy::Bind(mask(&[0])),
        Default::default(),
        Prefault::None,
    )
    .unwrap();
    let middle = numaperf_core::PageRange { first: 4, count: 4 };
    // SAFETY: the test owns `m` and holds no reference to its memory.
    unsafe {
        sim.apply_policy(
            &m,
            middle,
            &MemPolicy::Bind(mask(&[2])),
            &Default::default(),
            false,
        )
        .unwrap();
        sim.prefault(&m, m.all_pages(), Prefault::Touch).unwrap();
    }
    let nodes: Vec<_> = (0..12)
        .map(|p| node_of(&sim, &m, p).unwrap().get())
        .collect();
    assert_eq!(nodes, [0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0]);
    let outside = numaperf_core::PageRange {
        first: 10,
        count: 3,
    };
    // SAFETY: as above.
    let e = unsafe { sim.prefault(&m, outside, Prefault::Touch) };
    assert_eq!(
        e,
        Err(NumaError::PageRangeOutOfBounds {
            first: 10,
            count: 3,
            pages: 12
        })
    );
    drop_region(&sim, m);
}
