//! The cases the region benchmarks and `examples/bench_report.rs` share: each numaperf
//! operation and its raw baseline, written directly with rustix and the raw mempolicy
//! syscalls (no numaperf code on the baseline's path but the one-line syscall wrappers).

#![allow(dead_code)]

use std::hint::black_box;
use std::path::Path;

use numaperf::{
    HugePages, MemPolicy, NodeId, NodeMask, NumaRegion, Prefault, RegionOptions, Topology,
};
use numaperf_linux::mempolicy as mp;
use rustix::mm::{self, Advice, MapFlags, ProtFlags};

/// Region sizes the issue asks for.
pub const SIZES: [(usize, &str); 4] = [
    (64 << 10, "64K"),
    (2 << 20, "2M"),
    (64 << 20, "64M"),
    (1 << 30, "1G"),
];

/// The two policies measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// `MPOL_LOCAL`.
    Local,
    /// `MPOL_BIND` to node 0.
    Bind0,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::Local => "local",
            Policy::Bind0 => "bind0",
        }
    }

    fn numaperf(self) -> MemPolicy {
        match self {
            Policy::Local => MemPolicy::Local,
            Policy::Bind0 => MemPolicy::Bind(NodeMask::single(NodeId::new(0))),
        }
    }
}

pub fn prefault_name(p: Prefault) -> &'static str {
    match p {
        Prefault::None => "none",
        Prefault::Touch => "touch",
        Prefault::Populate => "populate",
    }
}

/// numaperf: create a region and drop it.
pub fn lib_region(size: usize, policy: Policy, prefault: Prefault, thp: bool) {
    let opts = if thp {
        RegionOptions::new().huge_pages(HugePages::Transparent)
    } else {
        RegionOptions::new()
    };
    let r = NumaRegion::anon(size, policy.numaperf(), opts, prefault).expect("region");
    black_box(r.as_ptr());
}

/// The raw baseline: mmap (THP: over-map, trim to 2 MiB alignment, MADV_HUGEPAGE), mbind,
/// then MADV_POPULATE_WRITE or a write per page, then munmap.
pub fn raw_region(size: usize, policy: Policy, prefault: Prefault, thp: bool) {
    const HUGE: usize = 2 << 20;
    let page = rustix::param::page_size();
    let len = size.div_ceil(page) * page;
    let (mode, mask, maxnode) = match policy {
        Policy::Local => (mp::MPOL_LOCAL, [0usize], 0),
        Policy::Bind0 => (mp::MPOL_BIND, [1usize], 2),
    };
    let map = |len| {
        // SAFETY: a fresh anonymous private mapping; nothing else refers to it.
        unsafe {
            mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .expect("mmap") as usize
    };
    let start = if thp {
        let raw = map(len + HUGE);
        let start = raw.next_multiple_of(HUGE);
        // SAFETY: trimming the unaligned head and tail of our own fresh mapping, then
        // advising the rest.
        unsafe {
            if start > raw {
                mm::munmap(raw as *mut _, start - raw).expect("munmap head");
            }
            let tail = raw + len + HUGE - (start + len);
            if tail > 0 {
                mm::munmap((start + len) as *mut _, tail).expect("munmap tail");
            }
            mm::madvise(start as *mut _, len, Advice::LinuxHugepage).expect("madvise");
        }
        start
    } else {
        map(len)
    };
    let used = if maxnode == 0 { &[][..] } else { &mask[..] };
    // SAFETY: our own mapping; mbind sets its policy only.
    unsafe { mp::mbind(start as *mut u8, len, mode, used, maxnode, 0) }.expect("mbind");
    match prefault {
        Prefault::None => {}
        // SAFETY: populating our own read-write mapping.
        Prefault::Populate => unsafe {
            mm::madvise(start as *mut _, len, Advice::LinuxPopulateWrite).expect("populate")
        },
        Prefault::Touch => {
            for off in (0..len).step_by(page) {
                // SAFETY: inside our own read-write mapping.
                unsafe { ((start + off) as *mut u8).write_volatile(0) };
            }
        }
    }
    black_box(start);
    // SAFETY: unmapping our own mapping, referenced by nothing.
    unsafe { mm::munmap(start as *mut _, len) }.expect("munmap");
}

/// numaperf: a region bound to node 0, populated with at most `threads` threads (0:
/// automatic), then dropped.
pub fn lib_populate_threads(size: usize, threads: usize) {
    let opts = RegionOptions::new().populate_threads(threads);
    let r =
        NumaRegion::anon(size, Policy::Bind0.numaperf(), opts, Prefault::Populate).expect("region");
    black_box(r.as_ptr());
}

/// The raw parallel baseline: mmap, mbind to node 0, then `MADV_POPULATE_WRITE` of
/// `threads` equal parts from as many threads (unpinned), then munmap.
pub fn raw_populate_split(size: usize, threads: usize) {
    let page = rustix::param::page_size();
    let len = size.div_ceil(page) * page;
    // SAFETY: a fresh anonymous private mapping; nothing else refers to it.
    let start = unsafe {
        mm::mmap_anonymous(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }
    .expect("mmap") as usize;
    // SAFETY: our own mapping; mbind sets its policy only.
    unsafe { mp::mbind(start as *mut u8, len, mp::MPOL_BIND, &[1], 2, 0) }.expect("mbind");
    let part = (len / threads).next_multiple_of(2 << 20);
    std::thread::scope(|s| {
        for i in 0..threads {
            let (from, to) = ((i * part).min(len), ((i + 1) * part).min(len));
            s.spawn(move || {
                if to > from {
                    // SAFETY: each thread populates its own disjoint part of our mapping.
                    unsafe {
                        mm::madvise(
                            (start + from) as *mut _,
                            to - from,
                            Advice::LinuxPopulateWrite,
                        )
                    }
                    .expect("populate");
                }
            });
        }
    });
    // SAFETY: unmapping our own mapping, referenced by nothing.
    unsafe { mm::munmap(start as *mut _, len) }.expect("munmap");
}

/// A populated region of `size` bytes bound to node 0 (what `placement()` is timed on).
pub fn bound_populated(size: usize) -> NumaRegion {
    NumaRegion::anon(
        size,
        Policy::Bind0.numaperf(),
        RegionOptions::new(),
        Prefault::Populate,
    )
    .expect("a populated region bound to node 0")
}

/// numaperf: discover the topology under `root` (None: the live machine).
pub fn lib_discover(root: Option<&Path>) {
    let t = match root {
        None => Topology::discover(),
        Some(r) => numaperf_linux::read_topology(r).map(Topology::from),
    };
    black_box(t.expect("discover").node_count());
}

/// The raw baseline: the kernel work discovery cannot avoid, and nothing else. For the
/// live tree the process's allowed CPUs and nodes (sched_getaffinity, get_mempolicy with
/// MPOL_F_MEMS_ALLOWED); then the root opened once and, relative to it, one read each of
/// `online` and every node's `cpulist`, `meminfo` and `distance` into a stack buffer, the
/// memory tiers' nodelists and the nodes' access figures (what `Topology` reports),
/// without parsing (numaperf's list parser names the nodes in `online`: nanoseconds).
pub fn raw_discover(root: &Path) {
    use rustix::fd::AsFd;
    use rustix::fs::{Mode, OFlags};
    if root == Path::new(numaperf_linux::SYSFS_NODE_ROOT) {
        let pid = rustix::process::getpid();
        black_box(rustix::thread::sched_getaffinity(Some(pid)).expect("sched_getaffinity"));
        let mut words = [0usize; 16];
        let mut mode = 0;
        mp::get_mempolicy(
            &mut mode,
            &mut words,
            1025,
            std::ptr::null(),
            mp::MPOL_F_MEMS_ALLOWED,
        )
        .expect("get_mempolicy");
        black_box(words);
    }
    let flags = OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC;
    let dir = rustix::fs::open(root, flags, Mode::empty()).expect("node root");
    let mut buf = [0u8; 8192];
    let read = |p: &str, buf: &mut [u8]| -> usize {
        let fd = rustix::fs::openat(
            dir.as_fd(),
            p,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("sysfs file");
        black_box(rustix::io::read(&fd, buf).expect("read"))
    };
    let n = read("online", &mut buf);
    let online = std::str::from_utf8(&buf[..n]).expect("text").to_owned();
    let nodes = numaperf::numa_core::parse::parse_list::<NodeId, 16>(&online).expect("online list");
    for n in nodes.iter() {
        for f in ["cpulist", "meminfo", "distance"] {
            read(&format!("node{n}/{f}"), &mut buf);
        }
    }
    // The memory tiers (the tiering directory listed, each tier's nodelist read) and, per
    // node, the access0/access1 initiator figures where the firmware gave any.
    let live = root == Path::new(numaperf_linux::SYSFS_NODE_ROOT);
    let tiers = if live {
        std::path::PathBuf::from("/sys/devices/virtual/memory_tiering")
    } else {
        root.join("../../virtual/memory_tiering")
    };
    let dir_flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    if let Ok(t) = rustix::fs::open(&tiers, dir_flags, Mode::empty()) {
        let names: Vec<String> = rustix::fs::Dir::read_from(&t)
            .expect("tier directory")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("memory_tier"))
            .collect();
        for name in names {
            let p = format!("{name}/nodelist");
            let fd = rustix::fs::openat(
                &t,
                p.as_str(),
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .expect("tier nodelist");
            black_box(rustix::io::read(&fd, &mut buf).expect("read"));
        }
    }
    for n in nodes.iter() {
        for a in ["access0", "access1"] {
            let p = format!("node{n}/{a}/initiators");
            let Ok(d) = rustix::fs::openat(dir.as_fd(), p.as_str(), dir_flags, Mode::empty())
            else {
                continue;
            };
            let files: Vec<String> = rustix::fs::Dir::read_from(&d)
                .expect("initiators directory")
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| f.ends_with("_bandwidth") || f.ends_with("_latency"))
                .collect();
            for f in files {
                let fd = rustix::fs::openat(
                    &d,
                    f.as_str(),
                    OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .expect("access figure");
                black_box(rustix::io::read(&fd, &mut buf).expect("read"));
            }
        }
    }
    if root == Path::new(numaperf_linux::SYSFS_NODE_ROOT) {
        // The kernel's weighted-interleave table, which `Topology` reports (read only).
        let weights = "/sys/kernel/mm/mempolicy/weighted_interleave";
        let open = |p: &str| {
            rustix::fs::openat(
                rustix::fs::CWD,
                p,
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        for n in nodes.iter() {
            if let Ok(fd) = open(&format!("{weights}/node{n}")) {
                black_box(rustix::io::read(&fd, &mut buf).expect("read"));
            }
        }
        for f in ["auto", "__auto_type"] {
            if let Ok(fd) = open(&format!("{weights}/{f}")) {
                black_box(rustix::io::read(&fd, &mut buf).expect("read"));
                break;
            }
        }
    }
}

/// Where the captured 8-node tree is.
pub fn eight_node_tree() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("backend-sim/testdata/8node-asym")
}
