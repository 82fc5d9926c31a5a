//! Shared regions (a memfd on Linux): the policy belongs to the object, so pages a second
//! mapping of it faults in (in this process or another) land where the policy says, and
//! every mapping sees the same bytes. The second-process case re-runs the test binary
//! with [`CHILD_ENV`] set; its `main` answers through [`child_if_asked`].

use numaperf::{
    Enforcement, HugePages, MemPolicy, NodeId, NodeMask, NumaError, PageCounts, PageLocation,
    PlacementBackend, Prefault, RegionOptions, SharedRegion,
};
use numaperf_sim::{CallKind, Tracer};

use super::{
    check, err, first_absent, huge_2m, huge_page_nodes, memory_nodes, page, two_memory_nodes, Case,
    CaseResult, Outcome,
};

/// Set in the environment of the second process: `pid fd len head mode nodes`.
pub const CHILD_ENV: &str = "NUMAPERF_SHARED_CHILD";

/// The byte the pattern has at offset `i`.
fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(7) + 3) as u8
}

/// The node of every page of a shared region's mapping, in order.
fn page_nodes<B: PlacementBackend>(r: &SharedRegion<B>) -> Result<Vec<Option<NodeId>>, String> {
    let mut locs = vec![PageLocation::NotPresent; r.layout().page_count()];
    r.page_locations(0, &mut locs).map_err(err)?;
    Ok(locs
        .iter()
        .map(|l| match l {
            PageLocation::Node(n) => Some(*n),
            _ => None,
        })
        .collect())
}

/// Every page of `r` present on `nodes`.
fn all_on<B: PlacementBackend>(
    r: &SharedRegion<B>,
    nodes: &NodeMask,
    who: &str,
) -> Result<PageCounts, String> {
    let p = r.placement().map_err(err)?;
    let pages = r.layout().page_count() as u64;
    check(p.all_within(nodes) && p.total() == pages, || {
        format!("{who}: expected every page on {{{nodes}}}, got {p}")
    })?;
    Ok(p)
}

/// Writes the pattern over the first quarter through `first` (faulting those pages in
/// through it), opens a second mapping that faults the rest in, and checks both see the
/// same bytes both ways.
fn second_view<'b, B: PlacementBackend>(
    b: &'b B,
    first: &SharedRegion<&'b B>,
) -> Result<SharedRegion<&'b B>, String> {
    let head: Vec<u8> = (0..first.len() / 4).map(pattern).collect();
    first.write_at(0, &head).map_err(err)?;
    let second = SharedRegion::open_in(b, first.handle(), None, Prefault::Touch).map_err(err)?;
    let mut back = vec![0; head.len()];
    second.read_at(0, &mut back).map_err(err)?;
    check(back == head, || {
        "the second mapping reads other bytes".into()
    })?;
    let last = first.len() - 1;
    second.write_at(last, &[0xA5]).map_err(err)?;
    let mut byte = [0];
    first.read_at(last, &mut byte).map_err(err)?;
    check(byte == [0xA5], || {
        "the first mapping does not see the second's write".into()
    })?;
    Ok(second)
}

fn shared_bind_every_node<B: PlacementBackend>(b: &B) -> CaseResult {
    let mut seen = Vec::new();
    for n in memory_nodes(b).iter() {
        let one = NodeMask::single(n);
        let mut first = SharedRegion::create_in(
            b,
            64 * page(b),
            MemPolicy::Bind(one),
            RegionOptions::default(),
            Prefault::None,
        )
        .map_err(err)?;
        let second = second_view(b, &first)?;
        let p = all_on(&second, &one, "second mapping")?;
        first.prefault(Prefault::Touch).map_err(err)?;
        all_on(&first, &one, "first mapping")?;
        seen.push(p.to_string());
    }
    Ok(Outcome::Pass(seen.join("; ")))
}

/// Interleave over every memory node: pages rotate through the mask by their offset in the
/// object (where the rotation starts depends on the object: shmem biases it by the inode
/// number), evenly, and both mappings see each page on the same node.
fn shared_interleave<B: PlacementBackend>(b: &B) -> CaseResult {
    if let Some(why) = two_memory_nodes(b) {
        return Ok(Outcome::Skip(why));
    }
    let all = memory_nodes(b);
    let order: Vec<NodeId> = all.iter().collect();
    let pages = 32 * order.len();
    let mut first = SharedRegion::create_in(
        b,
        pages * page(b),
        MemPolicy::Interleave(all),
        RegionOptions::default(),
        Prefault::None,
    )
    .map_err(err)?;
    let second = second_view(b, &first)?;
    let nodes = page_nodes(&second)?;
    for (i, w) in nodes.windows(2).enumerate() {
        let (Some(a), Some(z)) = (w[0], w[1]) else {
            return Err(format!("page {i} or {} absent: {nodes:?}", i + 1));
        };
        let at = order
            .iter()
            .position(|&n| n == a)
            .ok_or("a page off the mask")?;
        let next = order[(at + 1) % order.len()];
        check(z == next, || {
            format!(
                "page {} on {z}, after page {i} on {a} interleave gives {next}",
                i + 1
            )
        })?;
    }
    let p = all_on(&second, &all, "second mapping")?;
    check(order.iter().all(|&n| p.on(n) == 32), || {
        format!("uneven interleave: {p}")
    })?;
    first.prefault(Prefault::Touch).map_err(err)?;
    let mine = page_nodes(&first)?;
    check(mine == nodes, || {
        "the two mappings see pages on different nodes".into()
    })?;
    Ok(Outcome::Pass(p.to_string()))
}

fn shared_hard_bind<B: PlacementBackend>(b: &B) -> CaseResult {
    let n = memory_nodes(b).last().ok_or("no memory node")?;
    let one = NodeMask::single(n);
    let first = SharedRegion::create_in(
        b,
        64 * page(b),
        MemPolicy::Bind(one),
        RegionOptions::default().hard(),
        Prefault::None,
    )
    .map_err(err)?;
    check(first.enforcement() == Enforcement::Hard, || {
        format!("hard Bind reported {:?}", first.enforcement())
    })?;
    all_on(&first, &one, "hard region")?;
    let second = second_view(b, &first)?;
    check(
        second.enforcement() == Enforcement::Soft && second.policy().is_none(),
        || "an opened mapping claims a policy or Hard".into(),
    )?;
    Ok(Outcome::Pass(
        all_on(&second, &one, "second mapping")?.to_string(),
    ))
}

/// Explicit 2 MiB huge pages (a hugetlbfs memfd): bound to a node with free huge pages,
/// every huge page there, verified, and a second mapping sees them there; bound to a node
/// without, a typed error; the node's pool gets its page back when both are dropped.
fn shared_hugetlb<B: PlacementBackend>(b: &B) -> CaseResult {
    let (with, without) = huge_page_nodes(b)?;
    let Some(good) = with.first() else {
        return Ok(Outcome::Skip(
            "no node has free 2 MiB huge pages (the guests reserve some on node 0)".into(),
        ));
    };
    let huge = huge_2m(b);
    let opts = RegionOptions::default().huge_pages(HugePages::Explicit2M);
    let mut seen = Vec::new();
    if let Some(bad) = without.first() {
        let got = SharedRegion::create_in(
            b,
            huge,
            MemPolicy::Bind(NodeMask::single(bad)),
            opts,
            Prefault::None,
        )
        .map(drop);
        check(
            got == Err(NumaError::HugePagesUnavailable { page_size: huge }),
            || format!("bound to node {bad} (no huge pages): {got:?}"),
        )?;
        seen.push(format!("node {bad}: HugePagesUnavailable"));
    }
    let before = b.free_memory(good, HugePages::Explicit2M).map_err(err)?;
    let one = NodeMask::single(good);
    {
        let first =
            SharedRegion::create_in(b, huge, MemPolicy::Bind(one), opts.hard(), Prefault::None)
                .map_err(err)?;
        check(first.enforcement() == Enforcement::Hard, || {
            format!("hard Bind reported {:?}", first.enforcement())
        })?;
        let second = second_view(b, &first)?;
        check(second.layout().page_size() == huge, || {
            format!(
                "the second mapping's page size is {}",
                second.layout().page_size()
            )
        })?;
        seen.push(format!(
            "node {good}: {}",
            all_on(&second, &one, "second mapping")?
        ));
        let during = b.free_memory(good, HugePages::Explicit2M).map_err(err)?;
        check(during + huge as u64 == before, || {
            format!("node {good}'s free huge memory went from {before} to {during} bytes")
        })?;
    }
    let after = b.free_memory(good, HugePages::Explicit2M).map_err(err)?;
    check(after == before, || {
        format!("node {good}'s free huge memory is {after} bytes after drop, {before} before")
    })?;
    Ok(Outcome::Pass(seen.join("; ")))
}

fn shared_bad_input<B: PlacementBackend>(b: &B) -> CaseResult {
    let t = Tracer::new(b);
    let absent = first_absent(b).ok_or("all 1024 node ids online")?;
    let o = RegionOptions::default();
    let bad = [
        (MemPolicy::Local, 0, NumaError::ZeroSize),
        (
            MemPolicy::Bind(NodeMask::single(absent)),
            page(b),
            NumaError::NodeNotFound(absent),
        ),
        (
            MemPolicy::Preferred(NodeId::new(1024)),
            page(b),
            NumaError::InvalidNode(1024),
        ),
        (
            MemPolicy::Bind(NodeMask::new()),
            page(b),
            NumaError::EmptyNodeMask,
        ),
    ];
    let mut n = 0;
    for (p, len, want) in bad {
        let got = SharedRegion::create_in(&t, len, p.clone(), o, Prefault::Touch).map(drop);
        check(got == Err(want), || {
            format!("{p:?} len {len}: got {got:?}, want {want:?}")
        })?;
        n += 1;
    }
    // Explicit 1 GiB pages where no node has one: refused before anything is created.
    let gig = HugePages::Explicit1G.unit(page(b));
    let none_1g = memory_nodes(b)
        .iter()
        .all(|n| b.free_memory(n, HugePages::Explicit1G).unwrap_or(0) == 0);
    if none_1g {
        let got = SharedRegion::create_in(
            &t,
            page(b),
            MemPolicy::Local,
            o.huge_pages(HugePages::Explicit1G),
            Prefault::None,
        )
        .map(drop);
        let want = NumaError::HugePagesUnavailable { page_size: gig };
        check(got == Err(want), || format!("1 GiB pages: {got:?}"))?;
        n += 1;
    }
    check(t.calls().get(CallKind::Map) == 0, || {
        "bad input reached the object's creation".into()
    })?;
    // More than the object holds, and a descriptor that is no shared memory.
    let r = SharedRegion::create_in(b, 4 * page(b), MemPolicy::Local, o, Prefault::None)
        .map_err(err)?;
    let got = SharedRegion::open_in(b, r.handle(), Some(5 * page(b)), Prefault::None).map(drop);
    let want = NumaError::SharedObjectTooSmall {
        len: 5 * page(b),
        size: 4 * page(b) as u64,
    };
    check(got == Err(want), || format!("too small: {got:?}"))?;
    n += 1;
    // A file of procfs (any backend: it is no shared memory), and, where the object is a
    // file, a read-only descriptor of it (a mapping others write needs both).
    #[cfg(target_os = "linux")]
    {
        use numaperf::{SharedHandle, SharedKind};
        use std::os::fd::AsRawFd;
        let status = std::fs::File::open("/proc/self/status").map_err(|e| e.to_string())?;
        // SAFETY: `status` outlives the handle, which is used in the call below only.
        let h = unsafe { SharedHandle::borrow_raw(status.as_raw_fd(), SharedKind::Fd) };
        let got = SharedRegion::open_in(b, h, None, Prefault::None).map(drop);
        check(got == Err(NumaError::NotSharedMemory), || {
            format!("a procfs file: {got:?}")
        })?;
        n += 1;
        if let Some(fd) = r.fd() {
            let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
            let ro = std::fs::File::open(path).map_err(|e| e.to_string())?;
            // SAFETY: `ro` outlives the handle, which is used in the call below only.
            let h = unsafe { SharedHandle::borrow_raw(ro.as_raw_fd(), SharedKind::Fd) };
            let got = SharedRegion::open_in(b, h, None, Prefault::None).map(drop);
            check(
                matches!(got, Err(NumaError::PermissionDenied { .. })),
                || format!("a read-only descriptor: {got:?}"),
            )?;
            n += 1;
            // Nobody holding the object's descriptor can make it shorter under a mapping
            // (which would then fault): created objects are sealed (F_SEAL_SHRINK).
            let rw = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .map_err(|e| e.to_string())?;
            let got = rustix::fs::ftruncate(&rw, page(b) as u64);
            check(got == Err(rustix::io::Errno::PERM), || {
                format!("shrinking the object through another descriptor: {got:?}")
            })?;
            r.write_at(r.len() - 1, &[1]).map_err(err)?;
            n += 1;
            // ... and an unsealed memfd, which anyone could shrink, is refused.
            let memfd = rustix::fs::memfd_create("unsealed", rustix::fs::MemfdFlags::CLOEXEC)
                .map_err(|e| e.to_string())?;
            rustix::fs::ftruncate(&memfd, page(b) as u64).map_err(|e| e.to_string())?;
            // SAFETY: `memfd` outlives the handle, which is used in the call below only.
            let h = unsafe { SharedHandle::borrow_raw(memfd.as_raw_fd(), SharedKind::Fd) };
            let got = SharedRegion::open_in(b, h, None, Prefault::None).map(drop);
            check(got == Err(NumaError::SharedObjectUnsealed), || {
                format!("an unsealed memfd: {got:?}")
            })?;
            n += 1;
        }
    }
    Ok(Outcome::Pass(format!("{n} typed errors, nothing created")))
}

/// A second process maps the object by `/proc/<pid>/fd/<n>`, faults in the pages this
/// one did not, and checks in itself where they are (move_pages) and what policy its
/// mapping has (get_mempolicy(MPOL_F_ADDR)): the object's. Interleave over every memory
/// node (with 2 or more), and Bind to the last memory node (a memory-only CXL node in the
/// 4-node guests).
fn shared_second_process<B: PlacementBackend>(b: &B) -> CaseResult {
    let all = memory_nodes(b);
    let last = NodeMask::single(all.last().ok_or("no memory node")?);
    let mut runs = vec![(MemPolicy::Bind(last), "bind", last)];
    if all.count() >= 2 {
        runs.insert(0, (MemPolicy::Interleave(all), "interleave", all));
    }
    let mut seen = Vec::new();
    for (policy, mode, nodes) in runs {
        match in_second_process(b, policy, mode, nodes)? {
            Outcome::Pass(s) => seen.push(s),
            skip => return Ok(skip),
        }
    }
    Ok(Outcome::Pass(seen.join("; ")))
}

fn in_second_process<B: PlacementBackend>(
    b: &B,
    policy: MemPolicy,
    mode: &str,
    nodes: NodeMask,
) -> CaseResult {
    let len = 64 * memory_nodes(b).count() * page(b);
    let mut first =
        SharedRegion::create_in(b, len, policy, RegionOptions::default(), Prefault::None)
            .map_err(err)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let Some(fd) = first.fd() else {
            return Ok(Outcome::Skip(
                "this backend's shared objects are not files: no other process can map them".into(),
            ));
        };
        let head: Vec<u8> = (0..len / 4).map(pattern).collect();
        first.write_at(0, &head).map_err(err)?;
        let list: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
        let spec = format!(
            "{} {} {len} {} {mode} {}",
            std::process::id(),
            fd.as_raw_fd(),
            head.len(),
            list.join(",")
        );
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let out = std::process::Command::new(exe)
            .env(CHILD_ENV, spec)
            .output()
            .map_err(|e| format!("starting the second process: {e}"))?;
        let said = String::from_utf8_lossy(&out.stdout);
        let line = said
            .lines()
            .find(|l| l.starts_with("SHARED-CHILD"))
            .unwrap_or("(no answer)")
            .to_string();
        check(
            out.status.success() && line.starts_with("SHARED-CHILD ok"),
            || {
                format!(
                    "second process {}: {line} {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            },
        )?;
        let mut byte = [0];
        first.read_at(len - 1, &mut byte).map_err(err)?;
        check(byte == [0x5A], || {
            "the second process's write is not seen here".into()
        })?;
        first.prefault(Prefault::Touch).map_err(err)?;
        let p = all_on(&first, &nodes, "first mapping")?;
        Ok(Outcome::Pass(format!("{line}; here: {p}")))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (&mut first, mode, nodes);
        Ok(Outcome::Skip(
            "a second process maps a memfd on Linux only".into(),
        ))
    }
}

/// In the second process: runs its side of `shared_second_process` when [`CHILD_ENV`] is
/// set and returns the exit status (`None`: not asked). It prints one `SHARED-CHILD` line.
pub fn child_if_asked() -> Option<i32> {
    let spec = std::env::var(CHILD_ENV).ok()?;
    #[cfg(target_os = "linux")]
    let r = child(&spec);
    #[cfg(not(target_os = "linux"))]
    let r: Result<String, String> = Err(format!("not Linux: {spec}"));
    Some(match r {
        Ok(seen) => {
            println!("SHARED-CHILD ok {seen}");
            0
        }
        Err(why) => {
            println!("SHARED-CHILD fail {why}");
            1
        }
    })
}

#[cfg(target_os = "linux")]
fn child(spec: &str) -> Result<String, String> {
    use std::os::fd::AsFd;
    let f: Vec<&str> = spec.split(' ').collect();
    let [pid, fd, len, head, mode, list] = f[..] else {
        return Err(format!("bad spec {spec:?}"));
    };
    let num = |s: &str| s.parse::<usize>().map_err(|e| format!("{s}: {e}"));
    let (len, head) = (num(len)?, num(head)?);
    let mut nodes = NodeMask::new();
    for n in list.split(',') {
        nodes.add(NodeId::new(num(n)? as u32));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/fd/{fd}"))
        .map_err(|e| format!("opening /proc/{pid}/fd/{fd}: {e}"))?;
    let r = SharedRegion::open(file.as_fd(), Some(len), Prefault::Touch).map_err(err)?;
    let mut back = vec![0; head];
    r.read_at(0, &mut back).map_err(err)?;
    check(
        back.iter().enumerate().all(|(i, &x)| x == pattern(i)),
        || "the pattern reads otherwise here".into(),
    )?;
    let p = all_on(&r, &nodes, "second process")?;
    if mode == "interleave" {
        let even = p.present() / nodes.count() as u64;
        check(nodes.iter().all(|n| p.on(n) == even), || {
            format!("uneven interleave: {p}")
        })?;
    }
    let want = match mode {
        "interleave" => MemPolicy::Interleave(nodes),
        _ => MemPolicy::Bind(nodes),
    };
    let b = numaperf::LinuxBackend::shared().map_err(err)?;
    let held = super::linux::kernel_policy_at(&b, r.as_ptr())?;
    check(held.as_ref() == Some(&want), || {
        format!("get_mempolicy here says {held:?}, the object's is {want:?}")
    })?;
    r.write_at(len - 1, &[0x5A]).map_err(err)?;
    Ok(format!(
        "pid {}: {p}, policy {mode} {{{nodes}}}",
        std::process::id()
    ))
}

/// The shared-region cases.
pub fn cases<B: PlacementBackend>() -> Vec<Case<B>> {
    vec![
        Case {
            name: "shared_bind_every_node",
            run: shared_bind_every_node::<B>,
        },
        Case {
            name: "shared_interleave",
            run: shared_interleave::<B>,
        },
        Case {
            name: "shared_hard_bind",
            run: shared_hard_bind::<B>,
        },
        Case {
            name: "shared_hugetlb",
            run: shared_hugetlb::<B>,
        },
        Case {
            name: "shared_bad_input",
            run: shared_bad_input::<B>,
        },
        Case {
            name: "shared_second_process",
            run: shared_second_process::<B>,
        },
    ]
}
