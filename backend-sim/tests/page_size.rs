//! The simulator's base page size: 4 KiB unless the builder (or a sysfs replay) says
//! otherwise, validated, and used for every page count, capacity and interleave unit.

use numaperf_core::backend::placement;
use numaperf_core::policy::{interleave_index, interleave_node};
use numaperf_core::region::create_region;
use numaperf_core::{
    HugePages, Mapping, MemPolicy, NodeId, NodeMask, NumaError, PageLocation, PlacementBackend,
    Prefault, RegionOptions,
};
use numaperf_sim::{SimMachine, PAGE_SIZE};

const KIB: usize = 1 << 10;
const MIB: u64 = 1 << 20;

fn two_nodes(page: usize) -> SimMachine {
    SimMachine::builder()
        .node(1, 64 * MIB)
        .node(1, 64 * MIB)
        .base_page_size(page)
        .build()
        .unwrap()
}

fn both() -> NodeMask {
    [0, 1].into_iter().map(NodeId::new).collect()
}

fn node_of(b: &SimMachine, m: &Mapping, page: usize) -> Option<NodeId> {
    let mut out = [PageLocation::NotPresent];
    b.page_locations(m, page, &mut out).unwrap();
    match out[0] {
        PageLocation::Node(n) => Some(n),
        _ => None,
    }
}

fn drop_region(b: &SimMachine, m: Mapping) {
    // SAFETY: `m` came from `b` and nothing refers to its memory.
    unsafe { b.unmap(&m) }.unwrap();
}

#[test]
fn the_default_is_4_kib() {
    let sim = SimMachine::builder().node(1, 64 * MIB).build().unwrap();
    assert_eq!(sim.base_page_size(), PAGE_SIZE);
    assert_eq!(PAGE_SIZE, 4096);
    let spec = SimMachine::from_spec("2 nodes x 1 cpus x 64 MiB").unwrap();
    assert_eq!(spec.base_page_size(), 4096);
}

#[test]
fn page_sizes_that_are_not_a_power_of_two_from_4_kib_to_1_mib_are_refused() {
    let want = NumaError::InvalidConfig {
        field: "base_page_size",
        reason: "must be a power of two from 4096 to 1048576 bytes",
    };
    for bad in [0, 1, 2048, 4095, 4097, 12 * KIB, 65535, 2 << 20, usize::MAX] {
        let got = SimMachine::builder()
            .node(1, 64 * MIB)
            .base_page_size(bad)
            .build()
            .map(drop);
        assert_eq!(got, Err(want), "{bad}");
        // Checked before the tree is read: a missing directory does not hide it.
        let got = SimMachine::from_sysfs_dir_with_page_size("/nonexistent", bad).map(drop);
        assert_eq!(got, Err(want), "{bad}, replay");
    }
    for good in [4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, 1 << 20] {
        assert_eq!(two_nodes(good).base_page_size(), good);
    }
}

#[test]
fn capacity_and_rounding_follow_the_page_size() {
    let sim = two_nodes(64 * KIB);
    let n = NodeId::new(1);
    assert_eq!(sim.free_memory(n, HugePages::None).unwrap(), 64 * MIB);
    let (m, _) = create_region(
        &sim,
        1,
        &MemPolicy::Bind(NodeMask::single(n)),
        &Default::default(),
        Prefault::Touch,
    )
    .unwrap();
    assert_eq!(
        (m.mapped_len(), m.page_size(), m.page_count()),
        (64 * KIB, 64 * KIB, 1)
    );
    assert_eq!(m.as_ptr() as usize % (64 * KIB), 0);
    assert_eq!(
        sim.free_memory(n, HugePages::None).unwrap(),
        64 * MIB - 64 * KIB as u64
    );
    let used: Vec<u64> = sim.usage().iter().map(|u| u.total - u.free).collect();
    assert_eq!(used, [0, 64 * KIB as u64]);
    drop_region(&sim, m);
    assert!(sim.usage().iter().all(|u| u.free == u.total));
    // 64 MiB is 1024 pages of 64 KiB: one more does not fit.
    let over = create_region(
        &sim,
        64 * MIB as usize + 1,
        &MemPolicy::Bind(NodeMask::single(n)),
        &Default::default(),
        Prefault::Touch,
    );
    assert!(
        matches!(over, Err(NumaError::InsufficientMemory { .. })),
        "{over:?}"
    );
}

#[test]
fn interleave_goes_by_the_64_kib_page_number() {
    let sim = two_nodes(64 * KIB);
    let all = both();
    let (m, _) = create_region(
        &sim,
        40 * 64 * KIB,
        &MemPolicy::Interleave(all),
        &Default::default(),
        Prefault::Populate,
    )
    .unwrap();
    let start = m.as_ptr() as usize;
    for i in 0..40 {
        let ilx = interleave_index(start, start + i * 64 * KIB, 16, 0);
        assert_eq!(node_of(&sim, &m, i), interleave_node(&all, ilx), "page {i}");
    }
    let c = placement(&sim, &m).unwrap();
    assert_eq!(
        (c.on(NodeId::new(0)), c.on(NodeId::new(1))),
        (20, 20),
        "{c}"
    );
    drop_region(&sim, m);
}

#[test]
fn a_transparent_huge_page_is_still_2_mib_of_64_kib_pages() {
    let sim = two_nodes(64 * KIB);
    let o = RegionOptions::new().huge_pages(HugePages::Transparent);
    let (m, _) = create_region(
        &sim,
        8 << 20,
        &MemPolicy::Interleave(both()),
        &o,
        Prefault::Populate,
    )
    .unwrap();
    assert_eq!(m.as_ptr() as usize % (2 << 20), 0);
    assert_eq!(m.page_count(), 128);
    for block in 0..4 {
        let first = node_of(&sim, &m, block * 32);
        assert!(
            (0..32).all(|i| node_of(&sim, &m, block * 32 + i) == first),
            "block {block}"
        );
    }
    let c = placement(&sim, &m).unwrap();
    assert_eq!(
        (c.on(NodeId::new(0)), c.on(NodeId::new(1))),
        (64, 64),
        "{c}"
    );
    drop_region(&sim, m);
}

#[test]
fn a_replayed_tree_takes_the_page_size_given() {
    let dir = format!("{}/testdata/8node-asym", env!("CARGO_MANIFEST_DIR"));
    let four = SimMachine::from_sysfs_dir(&dir).unwrap();
    let big = SimMachine::from_sysfs_dir_with_page_size(&dir, 64 * KIB).unwrap();
    assert_eq!(
        (four.base_page_size(), big.base_page_size()),
        (4096, 64 * KIB)
    );
    // The same bytes (whole 64 KiB pages of them) on every node.
    for (a, b) in four.usage().iter().zip(big.usage()) {
        assert_eq!(a.node, b.node);
        assert_eq!(b.total, a.total / (64 * KIB as u64) * (64 * KIB as u64));
    }
}
