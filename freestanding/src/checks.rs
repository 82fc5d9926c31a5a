//! The checks: regions with every policy made through the core's `create_region`, their
//! placement read back; bad input refused with typed errors; everything unmapped at the end.

use numaperf_core::backend::placement;
use numaperf_core::region::create_region;
use numaperf_core::{
    CpuSet, Enforcement, HugePages, Mapping, MemPolicy, NodeId, NodeMask, NodeMode, NodeWeights,
    NumaError, OptionConflict, PageCounts, PageLocation, PlacementBackend, Prefault, RegionOptions,
    TopologyInfo,
};

use crate::machine::{FirmwareMachine, NODES};
use crate::memmap::PAGE;
use crate::sys::Line;
use crate::Report;

/// Formats into a [`Line`].
macro_rules! text {
    ($($arg:tt)*) => {{
        let mut line = Line::new();
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!($($arg)*));
        line
    }};
}

/// The regions made so far, unmapped together at the end.
struct Live {
    maps: [Option<Mapping>; 32],
}

impl Live {
    fn keep(&mut self, b: &FirmwareMachine, m: Mapping) -> Result<usize, NumaError> {
        match self.maps.iter().position(Option::is_none) {
            Some(i) => {
                self.maps[i] = Some(m);
                Ok(i)
            }
            None => {
                // SAFETY: `m` came from `b` and was never handed out: nothing refers to it.
                unsafe { b.unmap(&m)? };
                Err(NumaError::LimitExceeded {
                    what: "live regions",
                    value: 33,
                    limit: 32,
                })
            }
        }
    }

    fn get(&self, i: usize) -> Result<&Mapping, NumaError> {
        self.maps[i].as_ref().ok_or(NumaError::ForeignMapping)
    }
}

/// A region of `pages` pages kept live; its index in `live`, its placement, enforcement.
fn make(
    b: &FirmwareMachine,
    live: &mut Live,
    pages: usize,
    policy: &MemPolicy,
    opts: &RegionOptions,
    prefault: Prefault,
) -> Result<(usize, PageCounts, Enforcement), NumaError> {
    let (m, e) = create_region(b, pages * PAGE, policy, opts, prefault)?;
    let i = live.keep(b, m)?;
    Ok((i, placement(b, live.get(i)?)?, e))
}

/// Reports a region check: `ok` judges the observed counts.
fn region(
    r: &mut Report,
    name: Line,
    res: Result<(usize, PageCounts, Enforcement), NumaError>,
    ok: impl FnOnce(&PageCounts, Enforcement) -> bool,
) {
    match res {
        Ok((_, c, e)) => r.check(name, ok(&c, e), text!("{c} {e:?}")),
        Err(e) => r.check(name, false, text!("error: {e}")),
    }
}

/// Reports a check that a region is refused with the expected error and leaves nothing
/// mapped; `maps` is how many `map` calls it may make (0: refused before mapping).
fn refused(
    r: &mut Report,
    b: &FirmwareMachine,
    (name, maps): (&str, u32),
    len: usize,
    policy: &MemPolicy,
    opts: &RegionOptions,
    want: impl FnOnce(&NumaError) -> bool,
) {
    let before = b.mapped_pages();
    let calls = b.map_calls();
    match create_region(b, len, policy, opts, Prefault::Touch) {
        Ok((m, _)) => {
            // SAFETY: `m` came from `b` just now and was never handed out.
            let _ = unsafe { b.unmap(&m) };
            r.check(name, false, "made a region");
        }
        Err(e) => {
            let after = b.mapped_pages();
            let calls = b.map_calls() - calls;
            r.check(
                name,
                want(&e) && after == before && calls == maps,
                text!(
                    "{e:?}: {e} ({calls} map calls; mapped pages {before} before, {after} after)"
                ),
            );
        }
    }
}

fn mask(ids: &[u32]) -> NodeMask {
    ids.iter().copied().map(NodeId::new).collect()
}

fn free_pages(b: &FirmwareMachine) -> Result<[u64; NODES], NumaError> {
    let mut out = [0; NODES];
    for (i, o) in out.iter_mut().enumerate() {
        *o = b.free_memory(NodeId::new(i as u32), HugePages::None)? / PAGE as u64;
    }
    Ok(out)
}

/// The memory node nearest to `from` by distance, other than `from`.
fn nearest(topo: &impl TopologyInfo, from: NodeId) -> Option<NodeId> {
    topo.memory_nodes()
        .iter()
        .filter(|&n| n != from)
        .min_by_key(|&n| topo.distance(from, n).unwrap_or(u8::MAX))
}

/// The first page whose node is not the successor (in `over`, cyclically) of the node of
/// the page before it; `Some(0)` if the first page is on no node of `over`.
fn rotation_break(locs: &[PageLocation], over: &NodeMask) -> Option<usize> {
    let count = over.count();
    let pos = |l: &PageLocation| match *l {
        PageLocation::Node(n) => over.iter().position(|x| x == n),
        _ => None,
    };
    let mut prev = pos(locs.first()?)?;
    for (i, l) in locs.iter().enumerate().skip(1) {
        match pos(l) {
            Some(p) if p == (prev + 1) % count => prev = p,
            _ => return Some(i),
        }
    }
    None
}

/// Pages per node over `over` match `weights` exactly for a whole number of cycles.
fn proportional(c: &PageCounts, weights: &NodeWeights, over: &NodeMask, pages: u64) -> bool {
    let total = weights.total(over);
    pages.is_multiple_of(total)
        && c.all_within(over)
        && over
            .iter()
            .all(|n| c.on(n) == weights.weight(n) as u64 * pages / total)
}

/// Runs every check, printing one line each.
pub fn run(b: &FirmwareMachine, r: &mut Report) -> Result<(), NumaError> {
    let o = RegionOptions::default();
    let start_free = free_pages(b)?;
    let mut live = Live {
        maps: [const { None }; 32],
    };

    // Local: the node of the CPU that faults the pages, pinned on node 0, then node 1.
    for cpu in [0usize, 2] {
        b.set_thread_affinity(&CpuSet::single(cpu))?;
        let here = b.current_cpu()?;
        let res = make(b, &mut live, 8, &MemPolicy::Local, &o, Prefault::Touch);
        let name = text!("local cpu{}-on-node{}", here.cpu, here.node);
        region(r, name, res, |c, _| {
            c.on(here.node) == 8 && c.all_within(&NodeMask::single(here.node))
        });
    }
    b.set_thread_affinity(&CpuSet::single(0))?;

    // Bind to each node, memory-only ones included.
    for id in 0..NODES as u32 {
        let n = NodeId::new(id);
        let policy = MemPolicy::Bind(NodeMask::single(n));
        let res = make(b, &mut live, 16, &policy, &o, Prefault::Populate);
        region(r, text!("bind node{n}"), res, |c, _| {
            c.on(n) == 16 && c.all_within(&NodeMask::single(n))
        });
    }

    // Interleave: exact round robin, page after page.
    let all = mask(&[0, 1, 2, 3]);
    let res = make(
        b,
        &mut live,
        16,
        &MemPolicy::Interleave(all),
        &o,
        Prefault::Populate,
    );
    match res {
        Ok((i, c, _)) => {
            let mut locs = [PageLocation::NotPresent; 16];
            b.page_locations(live.get(i)?, 0, &mut locs)?;
            let broken = rotation_break(&locs, &all);
            let even = all.iter().all(|n| c.on(n) == 4) && c.all_within(&all);
            let rotation = match broken {
                None => text!("round robin over every page"),
                Some(p) => text!("round robin broken at page {p}"),
            };
            r.check(
                text!("interleave nodes{all}"),
                even && broken.is_none(),
                text!("{c}, {rotation}"),
            );
        }
        Err(e) => r.check("interleave", false, text!("error: {e}")),
    }

    // Weighted interleave with the firmware table's weights: the machine's own mode (one
    // policy call); with other weights: the core lays out chunks (one call per chunk).
    let table = b.kernel_weights()?.map(|k| k.weights).unwrap_or_default();
    let other = NodeWeights::new()
        .with(NodeId::new(0), 3)
        .with(NodeId::new(2), 1);
    for (name, weights, over, pages, chunked) in [
        ("weighted-interleave table-weights", table, all, 12, false),
        (
            "weighted-interleave 0:3,2:1",
            other,
            mask(&[0, 2]),
            16,
            true,
        ),
    ] {
        let before = b.apply_calls();
        let policy = MemPolicy::WeightedInterleave(weights);
        let res = make(b, &mut live, pages, &policy, &o, Prefault::Populate);
        let calls = b.apply_calls() - before;
        match res {
            Ok((_, c, _)) => {
                let exact = proportional(&c, &weights, &over, pages as u64);
                let layout = if chunked { calls > 1 } else { calls == 1 };
                let how = if calls > 1 { "chunks" } else { "one policy" };
                r.check(
                    name,
                    exact && layout,
                    text!("{c}, {how} ({calls} apply_policy calls)"),
                );
            }
            Err(e) => r.check(name, false, text!("error: {e}")),
        }
    }

    // Preferred with room.
    let two = NodeId::new(2);
    let res = make(
        b,
        &mut live,
        8,
        &MemPolicy::Preferred(two),
        &o,
        Prefault::Touch,
    );
    region(r, text!("preferred node2"), res, |c, _| c.on(two) == 8);

    // Hard Bind: strict, populated, verified; it takes every free page of node 3.
    let three = NodeId::new(3);
    let left = b.free_memory(three, HugePages::None)? as usize / PAGE;
    let res = make(
        b,
        &mut live,
        left,
        &MemPolicy::Bind(NodeMask::single(three)),
        &o.hard(),
        Prefault::None,
    );
    let free3 = b.free_memory(three, HugePages::None)?;
    region(r, text!("hard-bind node3 fills it"), res, |c, e| {
        e == Enforcement::Hard && c.on(three) == left as u64 && free3 == 0
    });

    // Preferred on the full node falls back to its nearest node by the distance table.
    let near = nearest(b.topology(), three);
    let res = make(
        b,
        &mut live,
        8,
        &MemPolicy::Preferred(three),
        &o,
        Prefault::Touch,
    );
    let name = match near {
        Some(n) => text!("preferred node3-full falls-back-to-nearest node{n}"),
        None => text!("preferred node3-full falls-back-to-nearest none"),
    };
    region(r, name, res, |c, _| near.is_some_and(|n| c.on(n) == 8));

    // PreferredMany: the full node 3 is passed over for node 2, also preferred.
    let pm = mask(&[2, 3]);
    let res = make(
        b,
        &mut live,
        8,
        &MemPolicy::PreferredMany(pm),
        &o,
        Prefault::Touch,
    );
    region(
        r,
        text!("preferred-many nodes{pm} node3-full"),
        res,
        |c, _| c.all_within(&pm) && c.on(two) == 8,
    );

    // Bind to the full node: the fault fails, and the orchestration unmaps.
    refused(
        r,
        b,
        ("bind node3-full fault-fails-and-unmaps", 1),
        PAGE,
        &MemPolicy::Bind(NodeMask::single(three)),
        &o,
        |e| matches!(e, NumaError::InsufficientMemory { .. }),
    );

    // A lazy region: nothing present until it is faulted in.
    let one = NodeId::new(1);
    let res = make(
        b,
        &mut live,
        8,
        &MemPolicy::Bind(NodeMask::single(one)),
        &o,
        Prefault::None,
    );
    match res {
        Ok((i, lazy, _)) => {
            let m = live.get(i)?;
            // SAFETY: `m` is ours (kept in `live`) and no reference to its memory exists.
            unsafe { b.prefault(m, m.all_pages(), Prefault::Touch)? };
            let c = placement(b, m)?;
            r.check(
                "lazy bind node1 then prefault",
                lazy.not_present() == 8 && lazy.present() == 0 && c.on(one) == 8,
                text!("before: {lazy}; after: {c}"),
            );
        }
        Err(e) => r.check("lazy bind node1", false, text!("error: {e}")),
    }

    // Migrate a region from node 0 to node 2.
    let zero = NodeId::new(0);
    let res = make(
        b,
        &mut live,
        8,
        &MemPolicy::Bind(NodeMask::single(zero)),
        &o,
        Prefault::Populate,
    );
    match res {
        Ok((i, before, _)) => {
            let m = live.get(i)?;
            // SAFETY: `m` is ours (kept in `live`) and no reference to its memory exists.
            unsafe { b.migrate(m, &NodeMask::single(two), NodeMode::Default)? };
            let after = placement(b, m)?;
            r.check(
                "migrate node0-to-node2",
                before.on(zero) == 8
                    && after.on(two) == 8
                    && after.all_within(&NodeMask::single(two)),
                text!("before: {before}; after: {after}"),
            );
        }
        Err(e) => r.check("migrate", false, text!("error: {e}")),
    }

    // Bad input: typed errors, nothing mapped.
    refused(r, b, ("bad size-0", 0), 0, &MemPolicy::Local, &o, |e| {
        *e == NumaError::ZeroSize
    });
    let empty = MemPolicy::Bind(NodeMask::new());
    refused(r, b, ("bad empty-mask", 0), PAGE, &empty, &o, |e| {
        *e == NumaError::EmptyNodeMask
    });
    let absent = MemPolicy::Bind(NodeMask::single(NodeId::new(5)));
    refused(r, b, ("bad absent-node5", 0), PAGE, &absent, &o, |e| {
        *e == NumaError::NodeNotFound(NodeId::new(5))
    });
    let free1 = b.free_memory(one, HugePages::None)?;
    let bind1 = MemPolicy::Bind(NodeMask::single(one));
    let over = free1 as usize + PAGE;
    refused(
        r,
        b,
        ("bad over-capacity node1", 0),
        over,
        &bind1,
        &o,
        |e| {
            *e == NumaError::InsufficientMemory {
                requested: over as u64,
                available: free1,
            }
        },
    );
    let il = MemPolicy::Interleave(all);
    refused(
        r,
        b,
        ("bad hard-interleave", 0),
        PAGE,
        &il,
        &o.hard(),
        |e| *e == NumaError::IncompatibleOption(OptionConflict::HardNeedsBind),
    );

    // Unmap everything: every node's free memory is back where it started.
    let mut unmapped = 0;
    for m in live.maps.iter_mut().filter_map(Option::take) {
        // SAFETY: `m` came from `b`, is unmapped once (taken out of `live`), and no
        // reference to its memory exists.
        unsafe { b.unmap(&m)? };
        unmapped += 1;
    }
    let end_free = free_pages(b)?;
    let mapped = b.mapped_pages();
    r.check(
        "unmap-all free-memory-restored",
        end_free == start_free && mapped == 0,
        text!(
            "{unmapped} regions unmapped; free pages {end_free:?} (start {start_free:?}); {mapped} pages mapped"
        ),
    );
    Ok(())
}
