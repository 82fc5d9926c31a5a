//! The behaviour suite, written once and run against every backend: the sim (several
//! topologies), the Linux backend on this host, and the Linux backend in multi-node guests.
//! Every case looks where pages went; a case that needs more than the machine has says so.

#![allow(dead_code)]

use numaperf::numa_core::policy::{
    fallback_order, interleave_index, interleave_node, weighted_interleave_node,
};
use numaperf::numa_core::weighted::WeightedChunks;
use numaperf::{
    thread, CpuSet, Enforcement, MemPolicy, NodeId, NodeMask, NodeWeights, NumaError, NumaRegion,
    OptionConflict, PageLocation, PlacementBackend, Prefault, RegionOptions, TopologyInfo,
};
use numaperf_sim::{CallKind, Tracer};

mod ltp;

/// What a case found.
pub enum Outcome {
    /// It held; the detail says what was seen (histograms).
    Pass(String),
    /// It could not run here; the detail says why.
    Skip(String),
}

/// A case's result: an outcome, or what went wrong.
pub type CaseResult = Result<Outcome, String>;

/// One scenario.
pub struct Case<B> {
    /// Its name, as reports print it.
    pub name: &'static str,
    /// Runs it on a backend.
    pub run: fn(&B) -> CaseResult,
}

const PAGE: usize = 4096;

fn memory_nodes<B: PlacementBackend>(b: &B) -> NodeMask {
    b.topology()
        .allowed_nodes()
        .intersection(b.topology().memory_nodes())
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn err(e: NumaError) -> String {
    format!("unexpected error: {e}")
}

fn all_on<B: PlacementBackend>(r: &NumaRegion<&B>, nodes: &NodeMask) -> Result<String, String> {
    let p = r.placement().map_err(err)?;
    let pages = r.layout().page_count() as u64;
    check(p.all_within(nodes) && p.total() == pages, || {
        format!("expected every page on {{{nodes}}}, got {p}")
    })?;
    Ok(p.to_string())
}

/// The node of every page of a region, in order.
fn page_nodes<B: PlacementBackend>(r: &NumaRegion<&B>) -> Result<Vec<Option<NodeId>>, String> {
    let mut locs = vec![PageLocation::NotPresent; r.layout().page_count()];
    r.page_locations(0, &mut locs).map_err(err)?;
    Ok(locs
        .iter()
        .map(|l| {
            if let PageLocation::Node(n) = l {
                Some(*n)
            } else {
                None
            }
        })
        .collect())
}

fn bind_every_node<B: PlacementBackend>(b: &B) -> CaseResult {
    let mut seen = Vec::new();
    for n in memory_nodes(b).iter() {
        let one = NodeMask::single(n);
        let r = NumaRegion::anon_in(
            b,
            64 * PAGE,
            MemPolicy::Bind(one),
            Default::default(),
            Prefault::Touch,
        )
        .map_err(err)?;
        seen.push(all_on(&r, &one)?);
    }
    Ok(Outcome::Pass(seen.join("; ")))
}

fn preferred_every_node<B: PlacementBackend>(b: &B) -> CaseResult {
    let mut seen = Vec::new();
    for n in memory_nodes(b).iter() {
        let r = NumaRegion::anon_in(
            b,
            64 * PAGE,
            MemPolicy::Preferred(n),
            Default::default(),
            Prefault::Populate,
        )
        .map_err(err)?;
        seen.push(all_on(&r, &NodeMask::single(n))?);
    }
    Ok(Outcome::Pass(seen.join("; ")))
}

fn local_follows_pinned_cpu<B: PlacementBackend>(b: &B) -> CaseResult {
    let mut seen = Vec::new();
    let nodes = b
        .topology()
        .cpu_nodes()
        .intersection(b.topology().memory_nodes());
    for n in nodes.iter() {
        let first = thread::node_cpus(b, n)
            .map_err(err)?
            .first()
            .ok_or("node without CPUs")?;
        let _pin = thread::pin_to_cpus(b, &CpuSet::single(first)).map_err(err)?;
        let here = thread::current_location(b).map_err(err)?;
        check(here.node == n, || {
            format!("pinned to node {n} but running on node {}", here.node)
        })?;
        let r = NumaRegion::anon_in(
            b,
            64 * PAGE,
            MemPolicy::Local,
            Default::default(),
            Prefault::Touch,
        )
        .map_err(err)?;
        seen.push(format!(
            "cpu{}: {}",
            here.cpu,
            all_on(&r, &NodeMask::single(n))?
        ));
    }
    Ok(Outcome::Pass(seen.join("; ")))
}

fn interleave_exact<B: PlacementBackend>(b: &B) -> CaseResult {
    let all = memory_nodes(b);
    // 4 MiB always holds an aligned 2 MiB block: with THP `always` (Debian's kernels) the
    // unit must still be the base page asked for.
    let r = NumaRegion::anon_in(
        b,
        1024 * PAGE,
        MemPolicy::Interleave(all),
        Default::default(),
        Prefault::Populate,
    )
    .map_err(err)?;
    let start = r.as_ptr() as usize;
    for (i, n) in page_nodes(&r)?.into_iter().enumerate() {
        let want = interleave_node(&all, interleave_index(start, start + i * PAGE, 12, 0));
        check(n == want, || {
            format!("page {i} on {n:?}, round robin by virtual page says {want:?}")
        })?;
    }
    Ok(Outcome::Pass(r.placement().map_err(err)?.to_string()))
}

fn preferred_many<B: PlacementBackend>(b: &B) -> CaseResult {
    let two: NodeMask = memory_nodes(b).iter().take(2).collect();
    // Where the thread runs decides which of the two comes first: pin it.
    let here = b
        .topology()
        .cpu_nodes()
        .first()
        .ok_or("no node with CPUs")?;
    let _pin = thread::pin_to_node(b, here).map_err(err)?;
    match NumaRegion::anon_in(
        b,
        64 * PAGE,
        MemPolicy::PreferredMany(two),
        Default::default(),
        Prefault::Touch,
    ) {
        Ok(r) => Ok(Outcome::Pass(all_on(&r, &two)?)),
        Err(NumaError::Unsupported { feature, .. }) => {
            Ok(Outcome::Pass(format!("unsupported: {feature}")))
        }
        Err(e) => Err(err(e)),
    }
}

fn weighted_interleave<B: PlacementBackend>(b: &B) -> CaseResult {
    let nodes = memory_nodes(b);
    let heavy = if nodes.count() > 1 { 3 } else { 1 };
    let w = nodes
        .iter()
        .enumerate()
        .fold(NodeWeights::new(), |w, (i, n)| {
            w.with(n, if i == 0 { heavy } else { 1 })
        });
    let r = NumaRegion::anon_in(
        b,
        600 * PAGE,
        MemPolicy::WeightedInterleave(w),
        Default::default(),
        Prefault::Populate,
    )
    .map_err(err)?;
    let start = r.as_ptr() as usize;
    let found = page_nodes(&r)?;
    // The kernel's own mode when its global weights are the asked ones; otherwise
    // chunks bound to single nodes in the asked proportion (the table is never written).
    let kernel = b.kernel_weights().map_err(err)?;
    let native = kernel.is_some_and(|k| k.matches(&w, &nodes));
    let want: Vec<_> = if native {
        (0..found.len())
            .map(|i| {
                weighted_interleave_node(
                    &w,
                    &nodes,
                    interleave_index(start, start + i * PAGE, 12, 0),
                )
            })
            .collect()
    } else {
        WeightedChunks::new(found.len(), &w, &nodes)
            .flat_map(|(n, pages)| std::iter::repeat_n(Some(n), pages.count))
            .collect()
    };
    if let Some(i) = (0..found.len()).find(|&i| found[i] != want[i]) {
        let show = |v: &[Option<NodeId>]| -> String {
            v.iter()
                .skip(i.saturating_sub(4))
                .take(16)
                .map(|n| n.map_or("-".into(), |n| n.to_string()))
                .collect()
        };
        return Err(format!(
            "page {i} (of region at {start:#x}, {}) on {:?}, weights say {:?}; found {} / want {}",
            if native { "kernel mode" } else { "chunks" },
            found[i],
            want[i],
            show(&found),
            show(&want)
        ));
    }
    // Per node, exactly the proportion: whole cycles of the weights, then the rest.
    let p = r.placement().map_err(err)?;
    if !native {
        let total = w.total(&nodes) as usize;
        let mut before = 0usize;
        for n in nodes.iter() {
            let wn = w.weight(n) as usize;
            let exact = (600 / total) * wn + (600 % total).saturating_sub(before).min(wn);
            before += wn;
            check(p.on(n) == exact as u64, || {
                format!(
                    "node {n}: {} pages, the proportion says {exact} ({p})",
                    p.on(n)
                )
            })?;
        }
    }
    Ok(Outcome::Pass(format!(
        "{}: {p}",
        if native { "kernel mode" } else { "chunks" }
    )))
}

fn migrate_every_page<B: PlacementBackend>(b: &B) -> CaseResult {
    let nodes = memory_nodes(b);
    let (first, last) = (
        nodes.first().unwrap_or_default(),
        nodes.last().unwrap_or_default(),
    );
    let mut r = NumaRegion::anon_in(
        b,
        64 * PAGE,
        MemPolicy::Bind(NodeMask::single(first)),
        Default::default(),
        Prefault::Touch,
    )
    .map_err(err)?;
    r.as_mut_slice()
        .iter_mut()
        .enumerate()
        .for_each(|(i, x)| *x = (i / PAGE) as u8);
    r.migrate(&NodeMask::single(last)).map_err(err)?;
    let seen = all_on(&r, &NodeMask::single(last))?;
    check(
        r.as_slice()
            .iter()
            .enumerate()
            .all(|(i, &x)| x == (i / PAGE) as u8),
        || "content changed".into(),
    )?;
    Ok(Outcome::Pass(format!("{first} -> {last}: {seen}")))
}

fn hard_mode_verified<B: PlacementBackend>(b: &B) -> CaseResult {
    let last = NodeMask::single(memory_nodes(b).last().unwrap_or_default());
    let r = NumaRegion::anon_in(
        b,
        64 * PAGE,
        MemPolicy::Bind(last),
        RegionOptions::new().hard(),
        Prefault::None,
    )
    .map_err(err)?;
    check(r.enforcement() == Enforcement::Hard, || "not Hard".into())?;
    let seen = all_on(&r, &last)?;
    let soft = NumaRegion::anon_in(
        b,
        PAGE,
        MemPolicy::Bind(last),
        Default::default(),
        Prefault::Touch,
    )
    .map_err(err)?;
    check(soft.enforcement() == Enforcement::Soft, || {
        "default options must give Soft".into()
    })?;
    let bad = NumaRegion::anon_in(
        b,
        PAGE,
        MemPolicy::Interleave(last),
        RegionOptions::new().hard(),
        Prefault::Touch,
    );
    let hard_needs_bind = NumaError::IncompatibleOption(OptionConflict::HardNeedsBind);
    check(matches!(bad, Err(e) if e == hard_needs_bind), || {
        format!("hard Interleave: {bad:?}")
    })?;
    Ok(Outcome::Pass(seen))
}

fn over_capacity_bind<B: PlacementBackend>(b: &B) -> CaseResult {
    let t = Tracer::new(b);
    let n = memory_nodes(b).last().unwrap_or_default();
    let free = b.free_memory(n, Default::default()).map_err(err)? as usize;
    for pf in [Prefault::Touch, Prefault::Populate] {
        let r = NumaRegion::anon_in(
            &t,
            free + (64 << 20),
            MemPolicy::Bind(NodeMask::single(n)),
            Default::default(),
            pf,
        );
        check(
            matches!(r, Err(NumaError::InsufficientMemory { .. })),
            || format!("{pf:?}: {r:?}"),
        )?;
    }
    let c = t.calls();
    check(c.get(CallKind::Map) == c.get(CallKind::Unmap), || {
        format!("maps and unmaps differ: {c:?}")
    })?;
    Ok(Outcome::Pass(format!(
        "node {n}: {} MiB free, refused before mapping",
        free >> 20
    )))
}

fn bad_input<B: PlacementBackend>(b: &B) -> CaseResult {
    let t = Tracer::new(b);
    let absent = (0..1024)
        .map(NodeId::new)
        .find(|&n| !b.topology().nodes().contains(n))
        .unwrap_or_default();
    let mut huge = NodeMask::new();
    huge.add(NodeId::new(5000));
    let cases: [(MemPolicy, usize, RegionOptions, NumaError); 7] = [
        (MemPolicy::Local, 0, Default::default(), NumaError::ZeroSize),
        (
            MemPolicy::Local,
            usize::MAX - 5,
            Default::default(),
            NumaError::SizeOverflow {
                len: usize::MAX - 5,
                unit: PAGE,
            },
        ),
        (
            MemPolicy::Bind(NodeMask::single(absent)),
            PAGE,
            Default::default(),
            NumaError::NodeNotFound(absent),
        ),
        (
            MemPolicy::Preferred(NodeId::new(1024)),
            PAGE,
            Default::default(),
            NumaError::InvalidNode(1024),
        ),
        (
            MemPolicy::Interleave(huge),
            PAGE,
            Default::default(),
            NumaError::InvalidNode(5000),
        ),
        (
            MemPolicy::Bind(NodeMask::new()),
            PAGE,
            Default::default(),
            NumaError::EmptyNodeMask,
        ),
        (
            MemPolicy::Preferred(NodeId::new(0)),
            PAGE,
            RegionOptions::new().hard(),
            NumaError::IncompatibleOption(OptionConflict::HardNeedsBind),
        ),
    ];
    for (p, len, o, want) in cases {
        let got = NumaRegion::anon_in(&t, len, p.clone(), o, Prefault::Touch).map(drop);
        check(got == Err(want), || {
            format!("{p:?} len {len}: got {got:?}, want {want:?}")
        })?;
    }
    check(t.calls().get(CallKind::Map) == 0, || {
        "bad input reached mmap".into()
    })?;
    // A node with CPUs but no memory, where the machine has one.
    let cpu_only = b
        .topology()
        .cpu_nodes()
        .difference(b.topology().memory_nodes())
        .first();
    if let Some(n) = cpu_only {
        let got = NumaRegion::anon_in(
            &t,
            PAGE,
            MemPolicy::Bind(NodeMask::single(n)),
            Default::default(),
            Prefault::Touch,
        )
        .map(drop);
        check(got == Err(NumaError::NoMemoryOnNode(n)), || {
            format!("cpu-only node {n}: {got:?}")
        })?;
    }
    Ok(Outcome::Pass("7 typed errors, no mmap".into()))
}

fn drop_frees_everything<B: PlacementBackend>(b: &B) -> CaseResult {
    let t = Tracer::new(b);
    let nodes = memory_nodes(b);
    {
        let _a = NumaRegion::anon_in(
            &t,
            16 * PAGE,
            MemPolicy::Interleave(nodes),
            Default::default(),
            Prefault::Touch,
        )
        .map_err(err)?;
        let _b = NumaRegion::anon_in(
            &t,
            16 * PAGE,
            MemPolicy::Local,
            RegionOptions::new(),
            Prefault::Populate,
        )
        .map_err(err)?;
        let _c = NumaRegion::anon_in(
            &t,
            1,
            MemPolicy::Bind(nodes),
            RegionOptions::new().hard(),
            Prefault::None,
        )
        .map_err(err)?;
    }
    let c = t.calls();
    check(
        c.get(CallKind::Map) == 3 && c.get(CallKind::Unmap) == 3,
        || format!("{c:?}"),
    )?;
    Ok(Outcome::Pass(format!("{c:?}")))
}

fn preferred_falls_back_by_distance<B: PlacementBackend>(b: &B) -> CaseResult {
    let nodes = memory_nodes(b);
    if nodes.count() < 2 {
        return Ok(Outcome::Skip(
            "needs 2 memory nodes; the sim and the guests run it".into(),
        ));
    }
    let n = nodes.last().unwrap_or_default();
    let free = b.free_memory(n, Default::default()).map_err(err)? as usize;
    if free > 512 << 20 {
        return Ok(Outcome::Skip(format!(
            "node {n} has {} MiB free: too big to fill in a test",
            free >> 20
        )));
    }
    let mut order = [NodeId::new(0); 1024];
    let k = fallback_order(b.topology(), n, &mut order);
    let next = *order[..k].get(1).ok_or("no fallback node")?;
    let spill = 32 << 20;
    let r = NumaRegion::anon_in(
        b,
        free + spill,
        MemPolicy::Preferred(n),
        Default::default(),
        Prefault::Populate,
    )
    .map_err(err)?;
    let p = r.placement().map_err(err)?;
    let pages = (free / PAGE) as u64;
    // The kernel keeps a reserve (watermarks), so "while it has room" is most of it.
    check(p.on(n) >= pages * 8 / 10, || {
        format!(
            "only {} of {pages} free pages used on node {n}: {p}",
            p.on(n)
        )
    })?;
    let spilled = p.iter().filter(|&(m, _)| m != n).max_by_key(|&(_, c)| c);
    check(spilled.map(|s| s.0) == Some(next), || {
        format!("spilled to {spilled:?}, fallback order says node {next}: {p}")
    })?;
    Ok(Outcome::Pass(p.to_string()))
}

/// Every case, in the order reports list them.
pub fn cases<B: PlacementBackend>() -> Vec<Case<B>> {
    vec![
        Case {
            name: "bind_every_node",
            run: bind_every_node::<B>,
        },
        Case {
            name: "preferred_every_node",
            run: preferred_every_node::<B>,
        },
        Case {
            name: "local_follows_pinned_cpu",
            run: local_follows_pinned_cpu::<B>,
        },
        Case {
            name: "interleave_exact",
            run: interleave_exact::<B>,
        },
        Case {
            name: "preferred_many",
            run: preferred_many::<B>,
        },
        Case {
            name: "weighted_interleave",
            run: weighted_interleave::<B>,
        },
        Case {
            name: "migrate_every_page",
            run: migrate_every_page::<B>,
        },
        Case {
            name: "hard_mode_verified",
            run: hard_mode_verified::<B>,
        },
        Case {
            name: "over_capacity_bind",
            run: over_capacity_bind::<B>,
        },
        Case {
            name: "bad_input",
            run: bad_input::<B>,
        },
        Case {
            name: "drop_frees_everything",
            run: drop_frees_everything::<B>,
        },
        Case {
            name: "preferred_falls_back_by_distance",
            run: preferred_falls_back_by_distance::<B>,
        },
        Case {
            name: "ltp_mbind01",
            run: ltp::ltp_mbind01::<B>,
        },
        Case {
            name: "ltp_mbind03",
            run: ltp::ltp_mbind03::<B>,
        },
        Case {
            name: "ltp_mbind04",
            run: ltp::ltp_mbind04::<B>,
        },
        Case {
            name: "ltp_set_mempolicy01",
            run: ltp::ltp_set_mempolicy01::<B>,
        },
        Case {
            name: "ltp_set_mempolicy02",
            run: ltp::ltp_set_mempolicy02::<B>,
        },
        Case {
            name: "ltp_move_pages01_04",
            run: ltp::ltp_move_pages01_04::<B>,
        },
        Case {
            name: "ltp_move_pages02_09",
            run: ltp::ltp_move_pages02_09::<B>,
        },
        Case {
            name: "ltp_move_pages06",
            run: ltp::ltp_move_pages06::<B>,
        },
    ]
}

/// Runs every case on `b`, printing one `NUMAPERF-CASE` line each; returns the failures.
pub fn run_all<B: PlacementBackend>(b: &B, label: &str) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases::<B>() {
        let (verdict, detail) = match (case.run)(b) {
            Ok(Outcome::Pass(d)) => ("PASS", d),
            Ok(Outcome::Skip(d)) => ("SKIP", d),
            Err(d) => {
                failures.push(format!("{label}/{}: {d}", case.name));
                ("FAIL", d)
            }
        };
        println!("NUMAPERF-CASE {label}/{} {verdict} {detail}", case.name);
    }
    failures
}
