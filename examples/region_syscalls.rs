//! Prints a marker line (one `write(2)` each) around the creation and drop of one region of
//! each kind, so `strace -f` output can be cut into per-region syscall lists. Used by
//! `tests/syscall_count.sh`; see README ("Performance").

use numaperf::{
    HugePages, MemPolicy, NodeId, NodeMask, NumaRegion, Prefault, RegionOptions, Topology,
};

/// One `write(2)` per marker (eprintln! may split a line into several writes).
fn mark(what: &str, name: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("NUMAPERF-MARK {what} {name}\n").as_bytes());
}

fn main() -> Result<(), numaperf::NumaError> {
    let bind0 = MemPolicy::Bind(NodeMask::single(NodeId::new(0)));
    let thp = RegionOptions::new().huge_pages(HugePages::Transparent);
    // One populating thread: the count is the region's own calls. The parallel case adds
    // getcpu and, per thread, std's thread start, sched_setaffinity and its madvise.
    let one_thread = RegionOptions::new().populate_threads(1);
    let cases = [
        (
            "64K local none",
            MemPolicy::Local,
            RegionOptions::new(),
            Prefault::None,
            64 << 10,
        ),
        (
            "2M local populate",
            MemPolicy::Local,
            RegionOptions::new(),
            Prefault::Populate,
            2 << 20,
        ),
        (
            "2M bind populate",
            bind0.clone(),
            RegionOptions::new(),
            Prefault::Populate,
            2 << 20,
        ),
        (
            "64M bind populate",
            bind0.clone(),
            one_thread,
            Prefault::Populate,
            64 << 20,
        ),
        (
            "64M interleave populate",
            MemPolicy::Interleave(NodeMask::single(NodeId::new(0))),
            one_thread,
            Prefault::Populate,
            64 << 20,
        ),
        (
            "64M bind populate THP",
            bind0.clone(),
            thp.populate_threads(1),
            Prefault::Populate,
            64 << 20,
        ),
        (
            "64M bind populate parallel",
            bind0.clone(),
            RegionOptions::new(),
            Prefault::Populate,
            64 << 20,
        ),
        (
            "2M bind touch",
            bind0.clone(),
            RegionOptions::new(),
            Prefault::Touch,
            2 << 20,
        ),
    ];
    // Warm up: the backend is created and kernel features probed once per process.
    for (_, policy, opts, prefault, len) in &cases {
        drop(NumaRegion::anon(*len, policy.clone(), *opts, *prefault)?);
    }
    for (name, policy, opts, prefault, len) in cases {
        mark("begin", name);
        let r = NumaRegion::anon(len, policy, opts, prefault)?;
        drop(r);
        mark("end", name);
    }
    mark("begin", "discover");
    let t = Topology::discover()?;
    mark("end", "discover");
    std::hint::black_box(t);
    Ok(())
}
