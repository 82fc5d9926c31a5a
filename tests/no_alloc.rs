//! No heap allocation on a `NumaRegion`'s map/unmap path (issue: the fast path must cost
//! nothing beyond the syscalls). A counting global allocator counts every allocation made
//! while regions of each kind are created and dropped.
#![cfg(target_os = "linux")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use numaperf::{
    HugePages, LinuxBackend, MemPolicy, NodeId, NodeMask, NumaRegion, PlacementBackend, Prefault,
    RegionOptions,
};

struct Counting;

thread_local! {
    // Counted per thread, so the test harness's own threads do not disturb the count.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract is passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

#[test]
fn creating_and_dropping_regions_does_not_allocate() {
    let backend = LinuxBackend::shared().unwrap();
    let node0 = NodeMask::single(NodeId::new(0));
    let thp = RegionOptions::new().huge_pages(HugePages::Transparent);
    let cases: Vec<(&str, MemPolicy, RegionOptions, Prefault, usize)> = vec![
        (
            "local none 64K",
            MemPolicy::Local,
            RegionOptions::new(),
            Prefault::None,
            64 << 10,
        ),
        (
            "local touch 2M",
            MemPolicy::Local,
            RegionOptions::new(),
            Prefault::Touch,
            2 << 20,
        ),
        (
            "bind populate 2M",
            MemPolicy::Bind(node0),
            RegionOptions::new(),
            Prefault::Populate,
            2 << 20,
        ),
        // Like 2M on a big node; on a node of 1 GiB or less it also runs the free-memory
        // check, which the next test covers on any host with a captured tree. One thread:
        // a parallel populate (64 MiB and more, several CPUs) starts threads, and starting
        // a thread allocates (std's thread handle and stack bookkeeping), by design.
        (
            "bind populate 64M",
            MemPolicy::Bind(node0),
            RegionOptions::new().populate_threads(1),
            Prefault::Populate,
            64 << 20,
        ),
        (
            "interleave populate 2M",
            MemPolicy::Interleave(node0),
            RegionOptions::new(),
            Prefault::Populate,
            2 << 20,
        ),
        (
            "bind thp populate 8M",
            MemPolicy::Bind(node0),
            thp,
            Prefault::Populate,
            8 << 20,
        ),
        (
            "bind hard 2M",
            MemPolicy::Bind(node0),
            RegionOptions::new().hard(),
            Prefault::Populate,
            2 << 20,
        ),
    ];
    // Warm up once: one-time probes (kernel features) may allocate on first use.
    for (_, policy, opts, prefault, len) in &cases {
        drop(NumaRegion::anon_in(&backend, *len, policy.clone(), *opts, *prefault).unwrap());
    }
    for (name, policy, opts, prefault, len) in &cases {
        let n = allocations(|| {
            let r = NumaRegion::anon_in(&backend, *len, policy.clone(), *opts, *prefault).unwrap();
            assert_eq!(r.len(), *len);
            drop(r);
        });
        assert_eq!(
            n, 0,
            "{name}: {n} heap allocations while creating and dropping the region"
        );
    }
}

#[test]
fn the_free_memory_check_does_not_allocate_either() {
    // The real kernel, with a node tree saying node 0 has 64 MiB (32 MiB free): a 16 MiB
    // populated region is a quarter of the node, so the check reads node0/meminfo.
    let dir = std::env::temp_dir().join(format!("numaperf-no-alloc-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("node0")).unwrap();
    for (f, text) in [
        ("online", "0\n"),
        ("possible", "0\n"),
        ("has_memory", "0\n"),
        ("has_cpu", "0\n"),
    ] {
        std::fs::write(dir.join(f), text).unwrap();
    }
    let cpus =
        std::fs::read_to_string("/sys/devices/system/node/node0/cpulist").unwrap_or("0\n".into());
    std::fs::write(dir.join("node0/cpulist"), cpus).unwrap();
    std::fs::write(dir.join("node0/distance"), "10\n").unwrap();
    let meminfo = "Node 0 MemTotal:   65536 kB\nNode 0 MemFree:    32768 kB\n";
    std::fs::write(dir.join("node0/meminfo"), meminfo).unwrap();
    let backend = LinuxBackend::with_sysfs_root(&dir).unwrap();
    let bind0 = || MemPolicy::Bind(NodeMask::single(NodeId::new(0)));
    let make = |len| {
        NumaRegion::anon_in(
            &backend,
            len,
            bind0(),
            RegionOptions::new(),
            Prefault::Populate,
        )
    };
    drop(make(16 << 20).unwrap());
    let n = allocations(|| drop(make(16 << 20).unwrap()));
    assert_eq!(n, 0, "{n} heap allocations with the free-memory check");
    // The check did run: 40 MiB is more than the tree's 32 MiB free.
    let n = allocations(|| {
        let err = make(40 << 20).unwrap_err();
        assert!(
            matches!(err, numaperf::NumaError::InsufficientMemory { .. }),
            "{err}"
        );
    });
    assert_eq!(n, 0, "{n} heap allocations on the refusal path");
    std::fs::remove_dir_all(&dir).unwrap();

    // The live kernel's free-memory reads (node0/meminfo, or /proc/meminfo when node 0 is
    // the only memory node) allocate nothing either.
    let live = LinuxBackend::new().unwrap();
    let n = allocations(|| {
        let free = live.free_memory(NodeId::new(0), HugePages::None).unwrap();
        assert!(free > 0);
    });
    assert_eq!(
        n, 0,
        "{n} heap allocations reading the live kernel's free memory"
    );
}

#[test]
fn the_counter_counts() {
    // A test that cannot fail is a defect: show the allocator does see allocations.
    assert!(allocations(|| drop(std::hint::black_box(vec![1u8; 10]))) >= 1);
}
