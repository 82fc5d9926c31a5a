//! The behaviour suite, written once and run against every backend: the sim (several
//! topologies), the Linux backend on this host, and the Linux backend in multi-node guests.
//! Every case looks where pages went; a case that needs more than the machine has says so.

#![allow(dead_code)]

use numaperf::numa_core::policy::{
    fallback_order, interleave_index, interleave_node, weighted_interleave_node,
};
use numaperf::numa_core::weighted::WeightedChunks;
use numaperf::{
    thread, CpuSet, Enforcement, HugePages, MemPolicy, NodeId, NodeMask, NodeWeights, NumaError,
    NumaRegion, OptionConflict, PageLocation, PlacementBackend, Prefault, RegionOptions,
    TopologyInfo,
};
use numaperf_sim::{CallKind, SimMachine, Tracer};

#[cfg(target_os = "linux")]
mod devices;
#[cfg(target_os = "linux")]
pub mod linux;
mod ltp;
#[cfg(target_os = "linux")]
mod memattrs;
#[cfg(target_os = "linux")]
pub mod node_alloc;
pub mod shared;
pub mod thread_policy;
pub mod trials;
mod truth;

/// What a case found.
pub enum Outcome {
    /// It held; the detail says what was seen (histograms).
    Pass(String),
    /// It could not run here; the detail says why.
    Skip(String),
}

/// A case's result: an outcome, or what went wrong.
pub type CaseResult = Result<Outcome, String>;

/// One scenario. A case that cannot run on a machine (too few nodes, a kernel feature
/// missing) decides so first, cheaply, and returns `Outcome::Skip` with the reason, so
/// it never passes where it could not have failed.
pub struct Case<B> {
    /// Its name, as reports print it.
    pub name: &'static str,
    /// Runs it on a backend.
    pub run: fn(&B) -> CaseResult,
}

/// Runs a case.
pub fn run_case<B>(case: &Case<B>, b: &B) -> CaseResult {
    (case.run)(b)
}

/// What a backend's kernel holds as the policy of the page at an address: the policy
/// oracle of `ltp_mbind01`, asked independently of what the region recorded.
pub trait PolicyOracle: PlacementBackend {
    /// The policy of the page at `addr` (`None`: the default policy, no VMA policy).
    fn policy_at(&self, addr: *const u8) -> Result<Option<MemPolicy>, String>;
}

impl PolicyOracle for SimMachine {
    fn policy_at(&self, addr: *const u8) -> Result<Option<MemPolicy>, String> {
        SimMachine::policy_at(self, addr)
            .map(|(p, _)| Some(p))
            .ok_or_else(|| format!("{addr:?} is in no simulated mapping"))
    }
}

impl PolicyOracle for numaperf::PortableBackend {
    fn policy_at(&self, _addr: *const u8) -> Result<Option<MemPolicy>, String> {
        Err("the portable backend keeps no per-range policy to report".into())
    }
}

#[cfg(target_os = "linux")]
impl PolicyOracle for numaperf::LinuxBackend {
    fn policy_at(&self, addr: *const u8) -> Result<Option<MemPolicy>, String> {
        linux::kernel_policy_at(self, addr)
    }
}

/// Why a case that compares nodes cannot run on a machine with fewer than 2 memory nodes.
pub fn two_memory_nodes<B: PlacementBackend>(b: &B) -> Option<String> {
    let n = memory_nodes(b).count();
    (n < 2).then(|| {
        format!(
            "needs 2 memory nodes, this machine has {n} (every page would land there \
             whatever the policy)"
        )
    })
}

/// Why a case cannot run with fewer than 2 nodes that have both CPUs and memory.
pub fn two_local_nodes<B: PlacementBackend>(b: &B) -> Option<String> {
    let n = local_nodes(b).count();
    (n < 2).then(|| {
        format!(
            "needs 2 nodes with CPUs and memory, this machine has {n}: the local node \
             would be the same for every CPU"
        )
    })
}

/// The backend's base page size: every case sizes its regions and counts its pages in it
/// (4 KiB on most kernels, 64 KiB on Debian's 6.1 ppc64el).
fn page<B: PlacementBackend>(b: &B) -> usize {
    b.base_page_size()
}

/// The base page's shift, the unit of the kernel's interleave index.
fn page_shift<B: PlacementBackend>(b: &B) -> u32 {
    page(b).trailing_zeros()
}

/// The explicit 2 MiB huge page's size as the backend maps it.
fn huge_2m<B: PlacementBackend>(b: &B) -> usize {
    HugePages::Explicit2M.unit(page(b))
}

/// The alignment of a transparent-huge-page region (the library's promise).
const THP_ALIGN: usize = 2 << 20;

fn memory_nodes<B: PlacementBackend>(b: &B) -> NodeMask {
    b.topology()
        .allowed_nodes()
        .intersection(b.topology().memory_nodes())
}

/// Nodes with memory and CPUs this process may use.
fn local_nodes<B: PlacementBackend>(b: &B) -> NodeMask {
    memory_nodes(b).intersection(b.topology().cpu_nodes())
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

/// The first node of `mask` in the kernel's fallback order from `from` (its zonelist).
fn nearest_in<B: PlacementBackend>(b: &B, from: NodeId, mask: &NodeMask) -> Option<NodeId> {
    let mut order = [NodeId::new(0); 1024];
    let k = fallback_order(b.topology(), from, &mut order);
    order[..k].iter().copied().find(|&n| mask.contains(n))
}

fn bind_every_node<B: PlacementBackend>(b: &B) -> CaseResult {
    if let Some(why) = two_memory_nodes(b) {
        return Ok(Outcome::Skip(why));
    }
    let mut seen = Vec::new();
    for n in memory_nodes(b).iter() {
        let one = NodeMask::single(n);
        let r = NumaRegion::anon_in(
            b,
            64 * page(b),
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
    if let Some(why) = two_memory_nodes(b) {
        return Ok(Outcome::Skip(why));
    }
    let mut seen = Vec::new();
    for n in memory_nodes(b).iter() {
        let r = NumaRegion::anon_in(
            b,
            64 * page(b),
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
    if let Some(why) = two_local_nodes(b) {
        return Ok(Outcome::Skip(why));
    }
    let mut seen = Vec::new();
    for n in local_nodes(b).iter() {
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
            64 * page(b),
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
    if let Some(why) = two_memory_nodes(b) {
        return Ok(Outcome::Skip(why));
    }
    let all = memory_nodes(b);
    // 1024 pages (4 MiB of 4 KiB pages) always hold an aligned 2 MiB block: with THP
    // `always` (Debian's kernels) the unit must still be the base page asked for.
    let (page, shift) = (page(b), page_shift(b));
    let r = NumaRegion::anon_in(
        b,
        1024 * page,
        MemPolicy::Interleave(all),
        Default::default(),
        Prefault::Populate,
    )
    .map_err(err)?;
    let start = r.as_ptr() as usize;
    for (i, n) in page_nodes(&r)?.into_iter().enumerate() {
        let want = interleave_node(&all, interleave_index(start, start + i * page, shift, 0));
        check(n == want, || {
            format!("page {i} on {n:?}, round robin by virtual page says {want:?}")
        })?;
    }
    Ok(Outcome::Pass(r.placement().map_err(err)?.to_string()))
}

/// PreferredMany over nodes that exclude the thread's own: every page on the nearest of
/// them (Local would put them here, Interleave would spread them).
fn preferred_many<B: PlacementBackend>(b: &B) -> CaseResult {
    if let Some(why) = two_memory_nodes(b) {
        return Ok(Outcome::Skip(why));
    }
    // Where the thread runs decides which node comes first: pin it.
    let here = local_nodes(b)
        .first()
        .ok_or("no node with CPUs and memory")?;
    let others: NodeMask = memory_nodes(b)
        .iter()
        .filter(|&n| n != here)
        .take(2)
        .collect();
    let want = nearest_in(b, here, &others).ok_or("no fallback order")?;
    let _pin = thread::pin_to_node(b, here).map_err(err)?;
    match NumaRegion::anon_in(
        b,
        64 * page(b),
        MemPolicy::PreferredMany(others),
        Default::default(),
        Prefault::Touch,
    ) {
        Ok(r) => Ok(Outcome::Pass(format!(
            "from node {here}, {{{others}}}: {}",
            all_on(&r, &NodeMask::single(want))?
        ))),
        Err(NumaError::Unsupported { feature, since }) => Ok(Outcome::Skip(format!(
            "this kernel lacks {feature} ({since})"
        ))),
        Err(e) => Err(err(e)),
    }
}

/// Weighted interleave with the first node weighing 3 and the rest 1.
fn weighted_interleave<B: PlacementBackend>(b: &B) -> CaseResult {
    if let Some(why) = two_memory_nodes(b) {
        return Ok(Outcome::Skip(why));
    }
    let w = memory_nodes(b)
        .iter()
        .enumerate()
        .fold(NodeWeights::new(), |w, (i, n)| {
            w.with(n, if i == 0 { 3 } else { 1 })
        });
    weighted_as(b, w)
}

/// Why the kernel-mode case cannot run: one node, or a kernel without weighted interleave.
fn kernel_has_weights<B: PlacementBackend>(b: &B) -> Option<String> {
    two_memory_nodes(b).or_else(|| match b.kernel_weights() {
        Ok(Some(_)) => None,
        Ok(None) => Some("this kernel has no weighted interleave (Linux 6.9)".into()),
        Err(e) => Some(format!("the kernel's weights cannot be read: {e}")),
    })
}

/// Weighted interleave with exactly the kernel's own weights: the kernel's mode, page by
/// page as its weighted round robin says.
fn weighted_interleave_kernel_weights<B: PlacementBackend>(b: &B) -> CaseResult {
    if let Some(why) = kernel_has_weights(b) {
        return Ok(Outcome::Skip(why));
    }
    let k = b
        .kernel_weights()
        .map_err(err)?
        .ok_or("no kernel weights")?;
    let w = memory_nodes(b).iter().fold(NodeWeights::new(), |w, n| {
        w.with(n, k.weights.weight(n).max(1))
    });
    let out = weighted_as(b, w)?;
    if let Outcome::Pass(d) = &out {
        check(d.starts_with("kernel mode"), || {
            format!("the kernel's own weights were not used as the kernel's mode: {d}")
        })?;
    }
    Ok(out)
}

/// A weighted interleave of 600 pages with `w`, checked page by page.
fn weighted_as<B: PlacementBackend>(b: &B, w: NodeWeights) -> CaseResult {
    let nodes = memory_nodes(b);
    let (page, shift) = (page(b), page_shift(b));
    let r = match NumaRegion::anon_in(
        b,
        600 * page,
        MemPolicy::WeightedInterleave(w),
        Default::default(),
        Prefault::Populate,
    ) {
        Ok(r) => r,
        Err(NumaError::Unsupported { feature, since }) => {
            return Ok(Outcome::Skip(format!(
                "this kernel lacks {feature} ({since})"
            )))
        }
        Err(e) => return Err(err(e)),
    };
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
                    interleave_index(start, start + i * page, shift, 0),
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

fn migrate_every_page<B: PolicyOracle>(b: &B) -> CaseResult {
    if let Some(why) = two_memory_nodes(b) {
        return Ok(Outcome::Skip(why));
    }
    let nodes = memory_nodes(b);
    let (first, last) = (
        nodes.first().unwrap_or_default(),
        nodes.last().unwrap_or_default(),
    );
    let page = page(b);
    let mut r = NumaRegion::anon_in(
        b,
        64 * page,
        MemPolicy::Bind(NodeMask::single(first)),
        Default::default(),
        Prefault::Touch,
    )
    .map_err(err)?;
    r.as_mut_slice()
        .iter_mut()
        .enumerate()
        .for_each(|(i, x)| *x = (i / page) as u8);
    r.migrate(&NodeMask::single(last)).map_err(err)?;
    let seen = all_on(&r, &NodeMask::single(last))?;
    check(
        r.as_slice()
            .iter()
            .enumerate()
            .all(|(i, &x)| x == (i / page) as u8),
        || "content changed".into(),
    )?;
    // New faults follow the new binding too: the kernel holds Bind(last) for the range.
    let held = b.policy_at(r.as_ptr())?;
    let want = MemPolicy::Bind(NodeMask::single(last));
    check(held.as_ref() == Some(&want), || {
        format!("after migrate the kernel holds {held:?}, not {want:?}")
    })?;
    Ok(Outcome::Pass(format!("{first} -> {last}: {seen}")))
}

fn hard_mode_verified<B: PlacementBackend>(b: &B) -> CaseResult {
    let last = NodeMask::single(memory_nodes(b).last().unwrap_or_default());
    let r = NumaRegion::anon_in(
        b,
        64 * page(b),
        MemPolicy::Bind(last),
        RegionOptions::new().hard(),
        Prefault::None,
    )
    .map_err(err)?;
    check(r.enforcement() == Enforcement::Hard, || "not Hard".into())?;
    // Hard populates even when asked for no prefault: every page present, on the node.
    let seen = all_on(&r, &last)?;
    let soft = NumaRegion::anon_in(
        b,
        page(b),
        MemPolicy::Bind(last),
        Default::default(),
        Prefault::Touch,
    )
    .map_err(err)?;
    check(soft.enforcement() == Enforcement::Soft, || {
        "default options must give Soft".into()
    })?;
    let hard_needs_bind = NumaError::IncompatibleOption(OptionConflict::HardNeedsBind);
    for p in [
        MemPolicy::Interleave(last),
        MemPolicy::Preferred(last.first().unwrap_or_default()),
    ] {
        let bad = NumaRegion::anon_in(
            b,
            page(b),
            p.clone(),
            RegionOptions::new().hard(),
            Prefault::Touch,
        );
        check(matches!(bad, Err(e) if e == hard_needs_bind), || {
            format!("hard {p:?}: {bad:?}")
        })?;
    }
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

/// The smallest node id that is not online (the first absent node).
fn first_absent<B: PlacementBackend>(b: &B) -> Option<NodeId> {
    (0..1024)
        .map(NodeId::new)
        .find(|&n| !b.topology().nodes().contains(n))
}

fn bad_input<B: PlacementBackend>(b: &B) -> CaseResult {
    let t = Tracer::new(b);
    let absent = first_absent(b).ok_or("all 1024 node ids online")?;
    let highest_absent = (0..1024)
        .rev()
        .map(NodeId::new)
        .find(|&n| !b.topology().nodes().contains(n))
        .unwrap_or(absent);
    let mut huge = NodeMask::new();
    huge.add(NodeId::new(5000));
    let cases: [(MemPolicy, usize, RegionOptions, NumaError); 9] = [
        (MemPolicy::Local, 0, Default::default(), NumaError::ZeroSize),
        (
            MemPolicy::Local,
            usize::MAX - 5,
            Default::default(),
            NumaError::SizeOverflow {
                len: usize::MAX - 5,
                unit: page(b),
            },
        ),
        (
            MemPolicy::Bind(NodeMask::single(absent)),
            page(b),
            Default::default(),
            NumaError::NodeNotFound(absent),
        ),
        (
            MemPolicy::Preferred(highest_absent),
            page(b),
            Default::default(),
            NumaError::NodeNotFound(highest_absent),
        ),
        (
            MemPolicy::Preferred(NodeId::new(1024)),
            page(b),
            Default::default(),
            NumaError::InvalidNode(1024),
        ),
        (
            MemPolicy::Interleave(huge),
            page(b),
            Default::default(),
            NumaError::InvalidNode(5000),
        ),
        (
            MemPolicy::Bind(NodeMask::new()),
            page(b),
            Default::default(),
            NumaError::EmptyNodeMask,
        ),
        (
            MemPolicy::Interleave(NodeMask::new()),
            page(b),
            Default::default(),
            NumaError::EmptyNodeMask,
        ),
        (
            MemPolicy::Preferred(NodeId::new(0)),
            page(b),
            RegionOptions::new().hard(),
            NumaError::IncompatibleOption(OptionConflict::HardNeedsBind),
        ),
    ];
    let n = cases.len();
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
            page(b),
            MemPolicy::Bind(NodeMask::single(n)),
            Default::default(),
            Prefault::Touch,
        )
        .map(drop);
        check(got == Err(NumaError::NoMemoryOnNode(n)), || {
            format!("cpu-only node {n}: {got:?}")
        })?;
    }
    Ok(Outcome::Pass(format!(
        "{n} typed errors (absent nodes {absent} and {highest_absent}), no mmap"
    )))
}

fn drop_frees_everything<B: PlacementBackend>(b: &B) -> CaseResult {
    let t = Tracer::new(b);
    let nodes = memory_nodes(b);
    {
        let _a = NumaRegion::anon_in(
            &t,
            16 * page(b),
            MemPolicy::Interleave(nodes),
            Default::default(),
            Prefault::Touch,
        )
        .map_err(err)?;
        let _b = NumaRegion::anon_in(
            &t,
            16 * page(b),
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

/// Why the fallback case cannot run: one node, or a last node too big to fill.
fn fillable_last_node<B: PlacementBackend>(b: &B) -> Option<String> {
    two_memory_nodes(b).or_else(|| {
        let n = memory_nodes(b).last()?;
        match b.free_memory(n, Default::default()) {
            Ok(free) if free > 512 << 20 => Some(format!(
                "node {n} has {} MiB free: too big to fill in a test",
                free >> 20
            )),
            Ok(_) => None,
            Err(e) => Some(format!("free memory of node {n} unknown: {e}")),
        }
    })
}

fn preferred_falls_back_by_distance<B: PlacementBackend>(b: &B) -> CaseResult {
    if let Some(why) = fillable_last_node(b) {
        return Ok(Outcome::Skip(why));
    }
    let nodes = memory_nodes(b);
    let n = nodes.last().unwrap_or_default();
    let free = b.free_memory(n, Default::default()).map_err(err)? as usize;
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
    let pages = (free / page(b)) as u64;
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

/// Transparent huge pages: the region is 2 MiB-aligned, populated, on the bound node.
fn transparent_huge_pages_placed<B: PlacementBackend>(b: &B) -> CaseResult {
    let n = NodeMask::single(memory_nodes(b).last().ok_or("no memory node")?);
    let r = NumaRegion::anon_in(
        b,
        2 * THP_ALIGN,
        MemPolicy::Bind(n),
        RegionOptions::new().huge_pages(HugePages::Transparent),
        Prefault::Populate,
    )
    .map_err(err)?;
    check(r.as_ptr() as usize % THP_ALIGN == 0, || {
        format!("THP region at {:p}, not 2 MiB-aligned", r.as_ptr())
    })?;
    Ok(Outcome::Pass(all_on(&r, &n)?))
}

/// Memory nodes with and without free 2 MiB huge pages.
fn huge_page_nodes<B: PlacementBackend>(b: &B) -> Result<(NodeMask, NodeMask), String> {
    let (mut with, mut without) = (NodeMask::new(), NodeMask::new());
    for n in memory_nodes(b).iter() {
        if b.free_memory(n, HugePages::Explicit2M).map_err(err)? > 0 {
            with.add(n);
        } else {
            without.add(n);
        }
    }
    Ok((with, without))
}

fn some_nodes_have_huge_pages<B: PlacementBackend>(b: &B) -> Option<String> {
    match huge_page_nodes(b) {
        Err(e) => Some(e),
        Ok((with, _)) if with.is_empty() => {
            Some("no node has free 2 MiB huge pages (the guests reserve some on node 0)".into())
        }
        Ok((_, without)) if without.is_empty() => {
            Some("every memory node has free 2 MiB huge pages".into())
        }
        Ok(_) => None,
    }
}

/// Explicit huge pages bound to a node without free ones: a typed error (never a SIGBUS
/// at first touch, the hugetlb pools being global); bound to a node with some, every huge
/// page there and taken from that node's pool.
fn hugetlb_on_a_node_without_huge_pages<B: PlacementBackend>(b: &B) -> CaseResult {
    if let Some(why) = some_nodes_have_huge_pages(b) {
        return Ok(Outcome::Skip(why));
    }
    let (with, without) = huge_page_nodes(b)?;
    let (good, bad) = (
        with.first().ok_or("no node with huge pages")?,
        without.first().ok_or("no node without huge pages")?,
    );
    let opts = RegionOptions::new().huge_pages(HugePages::Explicit2M);
    let huge = huge_2m(b);
    for pf in [Prefault::None, Prefault::Touch, Prefault::Populate] {
        let got = NumaRegion::anon_in(b, huge, MemPolicy::Bind(NodeMask::single(bad)), opts, pf)
            .map(drop);
        check(
            got == Err(NumaError::HugePagesUnavailable { page_size: huge }),
            || format!("bound to node {bad} (no huge pages), {pf:?}: {got:?}"),
        )?;
    }
    let before = b.free_memory(good, HugePages::Explicit2M).map_err(err)?;
    let one = NodeMask::single(good);
    let mut r =
        NumaRegion::anon_in(b, huge, MemPolicy::Bind(one), opts, Prefault::None).map_err(err)?;
    check(r.layout().page_size() == huge, || {
        format!("page size {}", r.layout().page_size())
    })?;
    let seen = all_on(&r, &one)?;
    r.as_mut_slice().fill(7);
    let after = b.free_memory(good, HugePages::Explicit2M).map_err(err)?;
    check(after + huge as u64 == before, || {
        format!("node {good}'s free huge memory went from {before} to {after} bytes")
    })?;
    Ok(Outcome::Pass(format!(
        "node {bad}: HugePagesUnavailable; node {good}: {seen}"
    )))
}

fn no_node_has_huge_pages<B: PlacementBackend>(b: &B) -> Option<String> {
    match huge_page_nodes(b) {
        Err(e) => Some(e),
        Ok((with, _)) if !with.is_empty() => Some(format!(
            "nodes {{{with}}} have free 2 MiB huge pages (hugetlb_on_a_node_without_huge_pages \
             runs instead)"
        )),
        Ok(_) => None,
    }
}

/// No free explicit huge page anywhere: every prefault is a typed error, nothing mapped.
fn hugetlb_without_a_reserve<B: PlacementBackend>(b: &B) -> CaseResult {
    if let Some(why) = no_node_has_huge_pages(b) {
        return Ok(Outcome::Skip(why));
    }
    let t = Tracer::new(b);
    let n = NodeMask::single(memory_nodes(b).first().ok_or("no memory node")?);
    let opts = RegionOptions::new().huge_pages(HugePages::Explicit2M);
    for pf in [Prefault::None, Prefault::Touch, Prefault::Populate] {
        let got = NumaRegion::anon_in(&t, 1, MemPolicy::Bind(n), opts, pf).map(drop);
        check(
            got == Err(NumaError::HugePagesUnavailable {
                page_size: huge_2m(b),
            }),
            || format!("{pf:?}: {got:?}"),
        )?;
    }
    let c = t.calls();
    check(c.get(CallKind::Map) == c.get(CallKind::Unmap), || {
        format!("maps and unmaps differ: {c:?}")
    })?;
    Ok(Outcome::Pass("3 prefaults: HugePagesUnavailable".into()))
}

/// Every case, in the order reports list them.
pub fn cases<B: PolicyOracle>() -> Vec<Case<B>> {
    let mut all = vec![
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
            name: "weighted_interleave_kernel_weights",
            run: weighted_interleave_kernel_weights::<B>,
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
            name: "transparent_huge_pages_placed",
            run: transparent_huge_pages_placed::<B>,
        },
        Case {
            name: "hugetlb_on_a_node_without_huge_pages",
            run: hugetlb_on_a_node_without_huge_pages::<B>,
        },
        Case {
            name: "hugetlb_without_a_reserve",
            run: hugetlb_without_a_reserve::<B>,
        },
    ];
    all.extend(ltp::cases::<B>());
    all.extend(truth::cases::<B>());
    all.extend(thread_policy::cases::<B>());
    all.extend(shared::cases::<B>());
    all
}
