//! The one-node portable backend on this host, as a macOS or Windows user gets it: the
//! seed's calls, the pools, and honest reports (no page placement is made up).

use numaperf::pool::BufferPoolConfig;
use numaperf::{
    BufferPool, Enforcement, MemPolicy, NodeId, NodeMask, NumaError, NumaRegion, PlacementBackend,
    PortableBackend, Prefault, RegionOptions, Topology, TopologyInfo, WorkerPool, WorkerPoolConfig,
};

fn b() -> PortableBackend {
    PortableBackend::shared().unwrap()
}

#[test]
fn the_seeds_regions_are_soft_and_real() {
    let node0 = NodeMask::single(NodeId::new(0));
    for (p, how) in [
        (MemPolicy::Local, Prefault::Touch),
        (MemPolicy::Bind(node0), Prefault::Touch),
        (MemPolicy::Preferred(NodeId::new(0)), Prefault::Populate),
        (MemPolicy::Interleave(node0), Prefault::None),
    ] {
        let mut r = NumaRegion::anon_in(b(), 1 << 20, p.clone(), Default::default(), how).unwrap();
        assert_eq!(r.enforcement(), Enforcement::Soft, "{p:?}");
        let s = r.as_mut_slice();
        s.iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = (i % 256) as u8);
        let sum: u64 = s.iter().map(|&x| x as u64).sum();
        let want: u64 = (0..1u64 << 20).map(|i| i % 256).sum();
        assert_eq!(sum, want, "the memory keeps what was written");
        let c = r.placement().unwrap();
        assert_eq!(c.unknown(), 256, "{c}");
        assert_eq!(c.present(), 0, "nothing observed, nothing reported: {c}");
    }
}

#[test]
fn bad_input_is_typed() {
    let absent = MemPolicy::Bind(NodeMask::single(NodeId::new(1)));
    let e = NumaRegion::anon_in(b(), 4096, absent, Default::default(), Prefault::None);
    assert_eq!(e.unwrap_err(), NumaError::NodeNotFound(NodeId::new(1)));
    let e = NumaRegion::anon_in(b(), 0, MemPolicy::Local, Default::default(), Prefault::None);
    assert_eq!(e.unwrap_err(), NumaError::ZeroSize);
    let hard = NumaRegion::anon_in(
        b(),
        4096,
        MemPolicy::Bind(NodeMask::single(NodeId::new(0))),
        RegionOptions::new().hard(),
        Prefault::Touch,
    );
    assert!(
        matches!(hard, Err(NumaError::Unsupported { .. })),
        "{hard:?}"
    );
}

#[test]
fn the_topology_is_one_node_with_the_machines_cpus() {
    let t = Topology::of_backend(&b()).unwrap();
    assert_eq!(t.node_count(), 1);
    assert_eq!(
        t.allowed_cpus().count(),
        std::thread::available_parallelism().unwrap().get()
    );
    assert!(t.kernel_weights().is_none());
    assert!(t.to_string().starts_with("available: 1 nodes (0)"), "{t}");
}

#[test]
fn pools_work_on_the_portable_backend() {
    let config = BufferPoolConfig {
        buffer_size: 4096,
        initial_per_node: 4,
        ..Default::default()
    };
    let pool = BufferPool::new(b(), config).unwrap();
    let mut buf = pool.get(NodeId::new(0)).unwrap();
    buf[0] = 1;
    drop(buf);
    assert_eq!(pool.stats(NodeId::new(0)).unwrap().free, 4);
    let workers = WorkerPool::new(b(), WorkerPoolConfig::default()).unwrap();
    let h = workers.spawn_on(NodeId::new(0), || 6 * 7).unwrap();
    assert_eq!(h.join(), Ok(42));
    assert_eq!(b().topology().nodes().count(), 1);
}

#[test]
fn shared_regions_are_unsupported_and_bad_input_still_typed() {
    let r = numaperf::SharedRegion::create_in(
        b(),
        1 << 20,
        MemPolicy::Local,
        RegionOptions::default(),
        Prefault::None,
    );
    assert!(matches!(r, Err(NumaError::Unsupported { .. })), "{r:?}");
    let r = numaperf::SharedRegion::create_in(
        b(),
        0,
        MemPolicy::Local,
        RegionOptions::default(),
        Prefault::None,
    );
    assert_eq!(r.map(drop), Err(NumaError::ZeroSize));
}
