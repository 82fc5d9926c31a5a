//! The Linux backend on this host, checked by looking where pages went (move_pages), not
//! by return codes; and bad input, which must be a typed error with nothing left mapped.

use numaperf::{
    thread, Enforcement, HugePages, LinuxBackend, MemPolicy, NodeId, NodeMask, NodeWeights,
    NumaError, NumaRegion, OptionConflict, PlacementBackend, Prefault, RegionOptions, Topology,
    TopologyInfo,
};

const MIB: usize = 1 << 20;

fn node0() -> NodeMask {
    NodeMask::single(NodeId::new(0))
}

/// The first memory node of this host and how many pages a region of `len` has.
fn pages(len: usize) -> u64 {
    (len / rustix_page()) as u64
}

fn rustix_page() -> usize {
    LinuxBackend::shared().unwrap().base_page_size()
}

fn assert_all_on(r: &NumaRegion, node: NodeId) {
    let p = r.placement().unwrap();
    assert_eq!(p.on(node), pages(r.len()), "{:?}: {p}", r.policy());
    assert_eq!(p.total(), pages(r.len()));
}

#[test]
fn every_policy_places_every_page_on_node_0() {
    let policies = [
        MemPolicy::Local,
        MemPolicy::Bind(node0()),
        MemPolicy::Preferred(NodeId::new(0)),
        MemPolicy::Interleave(node0()),
        MemPolicy::PreferredMany(node0()),
    ];
    for policy in policies {
        for prefault in [Prefault::Touch, Prefault::Populate] {
            let r =
                NumaRegion::anon(4 * MIB, policy.clone(), Default::default(), prefault).unwrap();
            assert_eq!(r.enforcement(), Enforcement::Soft);
            assert_all_on(&r, NodeId::new(0));
        }
    }
}

#[test]
fn lazy_regions_have_no_pages_until_touched() {
    let mut r = NumaRegion::anon(
        MIB,
        MemPolicy::Bind(node0()),
        Default::default(),
        Prefault::None,
    )
    .unwrap();
    let p = r.placement().unwrap();
    assert_eq!(p.not_present(), pages(MIB));
    assert_eq!(p.present(), 0);
    r.as_mut_slice()[0] = 1;
    let p = r.placement().unwrap();
    assert_eq!((p.on(NodeId::new(0)), p.not_present()), (1, pages(MIB) - 1));
}

#[test]
fn weighted_interleave_works_on_this_kernel() {
    // Weight 1 is the kernel's default for node 0, so the global table is not changed.
    let w = NodeWeights::new().with(NodeId::new(0), 1);
    match NumaRegion::anon(
        MIB,
        MemPolicy::WeightedInterleave(w),
        Default::default(),
        Prefault::Populate,
    ) {
        Ok(r) => assert_all_on(&r, NodeId::new(0)),
        Err(NumaError::Unsupported { feature, .. }) => {
            println!("SKIPPED: this kernel lacks {feature}; the guest run on 6.1 checks the error")
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn hard_mode_is_reported_only_after_verification() {
    let r = NumaRegion::anon(
        2 * MIB,
        MemPolicy::Bind(node0()),
        RegionOptions::new().hard(),
        Prefault::None,
    )
    .unwrap();
    assert_eq!(r.enforcement(), Enforcement::Hard);
    // Hard populates even when asked for no prefault, and every page is where it should be.
    assert_all_on(&r, NodeId::new(0));
    let e = NumaRegion::anon(
        MIB,
        MemPolicy::Preferred(NodeId::new(0)),
        RegionOptions::new().hard(),
        Prefault::Touch,
    );
    assert!(
        matches!(
            e,
            Err(NumaError::IncompatibleOption(OptionConflict::HardNeedsBind))
        ),
        "{e:?}"
    );
}

#[test]
fn migrate_keeps_content_and_rebinds() {
    let mut r =
        NumaRegion::anon(MIB, MemPolicy::Local, Default::default(), Prefault::Touch).unwrap();
    r.as_mut_slice()
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8);
    r.migrate(&node0()).unwrap();
    assert_eq!(*r.policy(), MemPolicy::Bind(node0()));
    assert_all_on(&r, NodeId::new(0));
    assert!(r.as_slice().iter().enumerate().all(|(i, &b)| b == i as u8));
    assert!(matches!(
        r.migrate(&NodeMask::single(NodeId::new(9))),
        Err(NumaError::NodeNotFound(_))
    ));
}

#[test]
fn transparent_huge_pages_are_aligned_and_placed() {
    let r = NumaRegion::anon(
        4 * MIB,
        MemPolicy::Bind(node0()),
        RegionOptions::new().huge_pages(HugePages::Transparent),
        Prefault::Populate,
    )
    .unwrap();
    assert_eq!(r.as_ptr() as usize % (2 * MIB), 0);
    assert_all_on(&r, NodeId::new(0));
}

#[test]
fn explicit_huge_pages_without_a_reserve_are_a_clear_error() {
    let b = LinuxBackend::shared().unwrap();
    if b.free_memory(NodeId::new(0), HugePages::Explicit2M)
        .unwrap()
        > 0
    {
        println!("SKIPPED: this host has 2 MiB huge pages reserved");
        return;
    }
    for prefault in [Prefault::None, Prefault::Touch, Prefault::Populate] {
        let e = NumaRegion::anon(
            1,
            MemPolicy::Bind(node0()),
            RegionOptions::new().huge_pages(HugePages::Explicit2M),
            prefault,
        );
        match e {
            Err(NumaError::HugePagesUnavailable { page_size }) => assert_eq!(page_size, 2 * MIB),
            other => panic!("{prefault:?}: {other:?}"),
        }
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let d = RegionOptions::default();
    let t = Prefault::Touch;
    let cases: Vec<(MemPolicy, usize, Result<(), NumaError>)> = vec![
        (MemPolicy::Local, 0, Err(NumaError::ZeroSize)),
        (
            MemPolicy::Local,
            usize::MAX,
            Err(NumaError::SizeOverflow {
                len: usize::MAX,
                unit: 4096,
            }),
        ),
        (
            MemPolicy::Bind(NodeMask::single(NodeId::new(7))),
            MIB,
            Err(NumaError::NodeNotFound(NodeId::new(7))),
        ),
        (
            MemPolicy::Preferred(NodeId::new(1023)),
            MIB,
            Err(NumaError::NodeNotFound(NodeId::new(1023))),
        ),
        (
            MemPolicy::Preferred(NodeId::new(1024)),
            MIB,
            Err(NumaError::InvalidNode(1024)),
        ),
        (
            MemPolicy::Bind(NodeMask::new()),
            MIB,
            Err(NumaError::EmptyNodeMask),
        ),
        (
            MemPolicy::Interleave(NodeMask::new()),
            MIB,
            Err(NumaError::EmptyNodeMask),
        ),
    ];
    for (policy, len, want) in cases {
        let got = NumaRegion::anon(len, policy.clone(), d, t).map(drop);
        assert_eq!(got, want, "{policy:?} len {len}");
    }
    let mut huge = NodeMask::new();
    huge.add(NodeId::new(5000));
    assert_eq!(
        NumaRegion::anon(MIB, MemPolicy::Bind(huge), d, t).map(drop),
        Err(NumaError::InvalidNode(5000))
    );
}

#[test]
fn over_capacity_bind_is_refused_before_touching() {
    let b = LinuxBackend::shared().unwrap();
    let free = b.free_memory(NodeId::new(0), HugePages::None).unwrap() as usize;
    for prefault in [Prefault::Touch, Prefault::Populate] {
        let e = NumaRegion::anon(
            free + 64 * MIB,
            MemPolicy::Bind(node0()),
            Default::default(),
            prefault,
        );
        assert!(
            matches!(e, Err(NumaError::InsufficientMemory { .. })),
            "{e:?}"
        );
    }
    // Lazily it maps (nothing is touched; the size is within what the kernel's overcommit
    // heuristic lets one mapping have), and drops cleanly.
    let lazy = NumaRegion::anon(
        free + 64 * MIB,
        MemPolicy::Bind(node0()),
        Default::default(),
        Prefault::None,
    );
    assert!(lazy.is_ok());
}

#[test]
fn pinning_follows_and_restores() {
    let b = LinuxBackend::shared().unwrap();
    let before = b.thread_affinity().unwrap();
    let cpu = before.last().unwrap();
    {
        let _g = thread::pin_to_cpus(b.clone(), &numaperf::CpuSet::single(cpu)).unwrap();
        assert_eq!(thread::current_location(&b).unwrap().cpu, cpu);
        let _n = thread::pin_to_node(b.clone(), NodeId::new(0)).unwrap();
        assert_eq!(thread::current_location(&b).unwrap().node, NodeId::new(0));
    }
    assert_eq!(b.thread_affinity().unwrap(), before);
    assert!(matches!(
        thread::pin_to_node(b.clone(), NodeId::new(3)),
        Err(NumaError::NodeNotFound(_))
    ));
}

#[test]
fn regions_are_send_and_sync_and_share_through_arc() {
    fn check<T: Send + Sync>() {}
    check::<NumaRegion>();
    let table = std::sync::Arc::new(
        NumaRegion::anon(
            MIB,
            MemPolicy::Interleave(node0()),
            Default::default(),
            Prefault::Populate,
        )
        .unwrap(),
    );
    let sums: Vec<u64> = (0..2)
        .map(|_| {
            let t = table.clone();
            std::thread::spawn(move || t.as_slice().iter().map(|&b| b as u64).sum())
        })
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(sums, [0, 0]);
}

#[test]
fn topology_matches_the_backend() {
    let t = Topology::discover().unwrap();
    let b = LinuxBackend::shared().unwrap();
    assert_eq!(t.nodes(), *b.topology().nodes());
    assert_eq!(t.node_count(), t.numa_nodes().len());
    assert!(t
        .numa_nodes()
        .iter()
        .all(|n| n.mem_total() > 0 || n.cpus().count() > 0));
    assert_eq!(
        Topology::from_info(b.topology()).unwrap().nodes(),
        t.nodes()
    );
}

/// `MemFree` in bytes from a meminfo file (`/proc/meminfo` or a node's).
fn mem_free(path: &str) -> Option<u64> {
    numaperf::numa_core::sysfs::node_free_bytes(&std::fs::read_to_string(path).ok()?)
}

#[test]
fn the_only_memory_node_has_all_the_free_memory_the_kernel_reports() {
    // A kernel booted with `deferred_init=lazy` hands memory to a node's zones only when an
    // allocation needs it: node0/meminfo then shows a fraction of what /proc/meminfo shows
    // free, and a check based on the node's file refuses regions the kernel would serve.
    let b = LinuxBackend::shared().unwrap();
    let memory = *b.topology().memory_nodes();
    if memory.count() != 1 {
        println!(
            "SKIP: {} memory nodes; the per-node figure is the node's own",
            memory.count()
        );
        return;
    }
    let n = memory.first().unwrap();
    let system = mem_free("/proc/meminfo").unwrap();
    let ours = b.free_memory(n, HugePages::None).unwrap();
    assert!(
        ours.abs_diff(system) < 256 * MIB as u64,
        "free_memory({n}) = {ours}, /proc/meminfo MemFree = {system}"
    );
    let node_file = format!("/sys/devices/system/node/node{n}/meminfo");
    let Some(node) = mem_free(&node_file) else {
        println!("SKIP: no {node_file}; the system figure is the only one");
        return;
    };
    if system < node + (2 << 30) {
        println!(
            "the populate beyond {node_file}'s MemFree not run: the node already holds all \
             but {} MiB of the system's free memory (it runs on a freshly booted kernel \
             with deferred_init=lazy)",
            (system.saturating_sub(node)) >> 20
        );
        return;
    }
    // 1 GiB more than the node's file says is free: the kernel serves it, so must we.
    let len = (node as usize + (1 << 30)) & !(2 * MIB - 1);
    let r = NumaRegion::anon(
        len,
        MemPolicy::Bind(memory),
        Default::default(),
        Prefault::Populate,
    )
    .unwrap_or_else(|e| panic!("{} MiB bound to node {n}: {e}", len >> 20));
    assert_all_on(&r, n);
}
