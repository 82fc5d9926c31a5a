//! The portable backend on this host: real memory, one node, honest reports.

use super::*;
use numaperf_core::region::create_region;
use numaperf_core::{Enforcement, NodeWeights};

fn b() -> PortableBackend {
    PortableBackend::new().unwrap()
}

#[test]
fn one_node_with_the_machines_cpus_and_memory() {
    let b = b();
    let t = b.topology();
    assert_eq!(*t.nodes(), NodeMask::single(NODE0));
    assert_eq!(*t.memory_nodes(), NodeMask::single(NODE0));
    let n = std::thread::available_parallelism().unwrap().get();
    assert_eq!(t.allowed_cpus().count(), n, "the CPUs this process may use");
    assert!(t.node_memory(NODE0).unwrap() > 0);
    assert_eq!(t.distance(NODE0, NODE0), Some(10));
}

#[test]
fn policies_naming_node_0_are_soft_and_others_are_not_found() {
    let b = b();
    let node0 = NodeMask::single(NODE0);
    let w = NodeWeights::new().with(NODE0, 3);
    for p in [
        MemPolicy::Local,
        MemPolicy::Bind(node0),
        MemPolicy::Preferred(NODE0),
        MemPolicy::PreferredMany(node0),
        MemPolicy::Interleave(node0),
        MemPolicy::WeightedInterleave(w),
    ] {
        let (m, e) = create_region(&b, 3 * 4096 + 1, &p, &RegionOptions::new(), Prefault::Touch)
            .unwrap_or_else(|e| panic!("{p:?}: {e}"));
        assert_eq!(e, Enforcement::Soft);
        // The memory is real: write and read every byte.
        // SAFETY: the test owns the fresh mapping; no other reference exists.
        let s = unsafe { core::slice::from_raw_parts_mut(m.as_ptr(), m.len()) };
        s.iter_mut().enumerate().for_each(|(i, x)| *x = i as u8);
        assert!(s.iter().enumerate().all(|(i, &x)| x == i as u8));
        // Nothing made up: every page's place is unknown.
        let c = numaperf_core::backend::placement(&b, &m).unwrap();
        assert_eq!((c.unknown(), c.present()), (m.page_count() as u64, 0));
        assert!(c.to_string().contains("unknown="), "{c}");
        // SAFETY: `m` came from `b`; the slice above is dead.
        unsafe { b.unmap(&m) }.unwrap();
    }
    let one = NodeMask::single(NodeId::new(1));
    assert_eq!(
        create_region(
            &b,
            4096,
            &MemPolicy::Bind(one),
            &RegionOptions::new(),
            Prefault::None
        )
        .unwrap_err(),
        NumaError::NodeNotFound(NodeId::new(1))
    );
}

#[test]
fn hard_mode_and_hugetlb_say_what_is_missing() {
    let b = b();
    let bind0 = MemPolicy::Bind(NodeMask::single(NODE0));
    assert_eq!(
        create_region(
            &b,
            4096,
            &bind0,
            &RegionOptions::new().hard(),
            Prefault::Touch
        )
        .unwrap_err(),
        NO_HARD
    );
    let huge = RegionOptions::new().huge_pages(HugePages::Explicit2M);
    assert_eq!(
        create_region(&b, 4096, &bind0, &huge, Prefault::None).unwrap_err(),
        NumaError::HugePagesUnavailable { page_size: 2 << 20 }
    );
}

#[test]
fn pinning_is_checked_and_restored() {
    let b = b();
    let all = b.thread_affinity().unwrap();
    assert_eq!(
        b.set_thread_affinity(&CpuSet::new()),
        Err(NumaError::EmptyCpuSet)
    );
    let mut beyond = CpuSet::new();
    beyond.add(4000);
    assert_eq!(
        b.set_thread_affinity(&beyond),
        Err(NumaError::CpuNotAllowed(4000))
    );
    b.set_thread_affinity(&all).unwrap();
    assert_eq!(b.thread_affinity().unwrap(), all);
}
