//! Cases for what a region promises: `Hard` is kept only while verified, a failed change
//! demotes it before the error returns, migration reads the mask with the region's node
//! mode the same way on every backend, and weighted interleave under relative node ids
//! lands where the plan says without touching the kernel's weights.

use numaperf::numa_core::weighted::{physical_weights, WeightedChunks};
use numaperf::{
    Enforcement, Errno, MemPolicy, NodeId, NodeMask, NodeMode, NodeWeights, NumaError, NumaRegion,
    PlacementBackend, Prefault, RegionOptions, TopologyInfo,
};
use numaperf_sim::{CallKind, FaultInjector};

use super::{
    all_on, check, err, memory_nodes, page, page_nodes, page_shift, Case, CaseResult, Outcome,
};

/// A hard region whose migrate fails (injected EIO from the move) is `Soft` when the
/// error returns, and its policy is still the one it had.
fn failed_migrate_demotes_hard<B: PlacementBackend>(b: &B) -> CaseResult {
    let f = FaultInjector::new(b);
    let nodes = memory_nodes(b);
    let (first, last) = (
        nodes.first().ok_or("no memory node")?,
        nodes.last().unwrap(),
    );
    let bind = MemPolicy::Bind(NodeMask::single(first));
    let mut r = NumaRegion::anon_in(
        &f,
        16 * page(b),
        bind.clone(),
        RegionOptions::new().hard(),
        Prefault::Populate,
    )
    .map_err(err)?;
    check(r.enforcement() == Enforcement::Hard, || "not Hard".into())?;
    f.fail_next(CallKind::Migrate, 1, Errno::EIO);
    let got = r.migrate(&NodeMask::single(last));
    check(
        got == Err(NumaError::Os {
            op: "mbind(MPOL_MF_MOVE)",
            errno: Errno::EIO,
        }),
        || format!("injected failure: {got:?}"),
    )?;
    check(r.enforcement() == Enforcement::Soft, || {
        "a failed migrate left the region Hard".into()
    })?;
    check(*r.policy() == bind, || {
        format!("policy became {:?}", r.policy())
    })?;
    // A successful migrate of the (Soft) region verifies nothing: it stays Soft.
    r.migrate(&NodeMask::single(last)).map_err(err)?;
    check(r.enforcement() == Enforcement::Soft, || {
        "a Soft region became Hard".into()
    })?;
    Ok(Outcome::Pass(all_on(&r, &NodeMask::single(last))?))
}

/// A hard region that migrates successfully is verified again and stays `Hard`; a new
/// policy makes it `Soft`.
fn hard_survives_only_verified_changes<B: PlacementBackend>(b: &B) -> CaseResult {
    let nodes = memory_nodes(b);
    let (first, last) = (
        nodes.first().ok_or("no memory node")?,
        nodes.last().unwrap(),
    );
    let mut r = NumaRegion::anon_in(
        b,
        16 * page(b),
        MemPolicy::Bind(NodeMask::single(first)),
        RegionOptions::new().hard(),
        Prefault::None,
    )
    .map_err(err)?;
    r.migrate(&NodeMask::single(last)).map_err(err)?;
    check(r.enforcement() == Enforcement::Hard, || {
        "a verified migrate must keep Hard".into()
    })?;
    let seen = all_on(&r, &NodeMask::single(last))?;
    r.prefault(Prefault::Touch).map_err(err)?;
    check(r.enforcement() == Enforcement::Hard, || {
        "prefaulting a populated region must keep Hard".into()
    })?;
    r.set_policy(MemPolicy::Local).map_err(err)?;
    check(r.enforcement() == Enforcement::Soft, || {
        "a new policy must demote to Soft".into()
    })?;
    check(*r.policy() == MemPolicy::Local, || {
        format!("{:?}", r.policy())
    })?;
    // An invalid policy changes nothing.
    let bad = r.set_policy(MemPolicy::Bind(NodeMask::new()));
    check(bad == Err(NumaError::EmptyNodeMask), || format!("{bad:?}"))?;
    check(*r.policy() == MemPolicy::Local, || {
        format!("{:?}", r.policy())
    })?;
    Ok(Outcome::Pass(seen))
}

/// `migrate` under `NodeMode::Relative` reads the mask as indices into the allowed memory
/// nodes, folded by their count as the kernel folds them: index `w + 1` (beyond every
/// node id here) is the second usable node (the first when there is one).
fn migrate_relative_mask<B: PlacementBackend>(b: &B) -> CaseResult {
    let usable = memory_nodes(b);
    let w = usable.count();
    let index = w as u32 + 1;
    let want = usable.nth(index as usize % w).ok_or("no memory node")?;
    let mut r = NumaRegion::anon_in(
        b,
        8 * page(b),
        MemPolicy::Bind(NodeMask::single(NodeId::new(0))),
        RegionOptions::new().relative_nodes(),
        Prefault::Touch,
    )
    .map_err(err)?;
    all_on(&r, &NodeMask::single(usable.first().unwrap()))?;
    r.migrate(&NodeMask::single(NodeId::new(index)))
        .map_err(err)?;
    let seen = all_on(&r, &NodeMask::single(want))?;
    Ok(Outcome::Pass(format!(
        "index {index} -> node {want}: {seen}"
    )))
}

/// `migrate` under `NodeMode::Static` reads physical ids: pages go to the node named.
fn migrate_static_mask<B: PlacementBackend>(b: &B) -> CaseResult {
    let usable = memory_nodes(b);
    let (first, last) = (
        usable.first().ok_or("no memory node")?,
        usable.last().unwrap(),
    );
    let mut r = NumaRegion::anon_in(
        b,
        8 * page(b),
        MemPolicy::Bind(NodeMask::single(first)),
        RegionOptions::new().static_nodes(),
        Prefault::Touch,
    )
    .map_err(err)?;
    r.migrate(&NodeMask::single(last)).map_err(err)?;
    let seen = all_on(&r, &NodeMask::single(last))?;
    // An id that is not online is refused before anything moves.
    let absent = (0..1024)
        .map(NodeId::new)
        .find(|n| !b.topology().nodes().contains(*n))
        .ok_or("every node id is online")?;
    let got = r.migrate(&NodeMask::single(absent));
    check(got == Err(NumaError::NodeNotFound(absent)), || {
        format!("absent node {absent}: {got:?}")
    })?;
    Ok(Outcome::Pass(seen))
}

/// Weighted interleave with relative node ids: weights are per index, folded onto the
/// allowed memory nodes; the pages land where the plan (or the kernel's own mode, when
/// its weights are the asked ones) says, and nothing global is written.
fn weighted_interleave_relative<B: PlacementBackend>(b: &B) -> CaseResult {
    let usable = memory_nodes(b);
    let w = NodeWeights::new()
        .with(NodeId::new(0), 3)
        .with(NodeId::new(1), 1);
    let policy = MemPolicy::WeightedInterleave(w);
    let opts = RegionOptions::new().relative_nodes();
    let r = NumaRegion::anon_in(b, 64 * page(b), policy.clone(), opts, Prefault::Populate)
        .map_err(err)?;
    let phys = physical_weights(&policy, NodeMode::Relative, b.topology());
    let nodes = phys.nodes();
    check(nodes.is_subset(&usable) && !nodes.is_empty(), || {
        format!("physical nodes {{{nodes}}} outside {{{usable}}}")
    })?;
    let found = page_nodes(&r)?;
    let native = b
        .kernel_weights()
        .map_err(err)?
        .is_some_and(|k| k.matches(&phys, &nodes));
    let p = r.placement().map_err(err)?;
    if !native {
        let want: Vec<_> = WeightedChunks::new(found.len(), &phys, &nodes)
            .flat_map(|(n, pages)| std::iter::repeat_n(Some(n), pages.count))
            .collect();
        check(found == want, || format!("pages {found:?}, plan {want:?}"))?;
    } else {
        check(p.all_within(&nodes), || format!("{p}"))?;
    }
    Ok(Outcome::Pass(format!(
        "{}: {p}",
        if native { "kernel mode" } else { "chunks" }
    )))
}

/// A populate large enough to be spread over threads places every page as one thread
/// would: interleave exact by virtual page, a bind on its node, `Local` on the caller's
/// node (the populating threads run there).
fn parallel_populate_keeps_placement<B: PlacementBackend>(b: &B) -> CaseResult {
    use numaperf::numa_core::policy::{interleave_index, interleave_node};
    use numaperf::numa_core::populate::POPULATE_PARALLEL_MIN;
    if let Some(why) = super::two_memory_nodes(b) {
        return Ok(Outcome::Skip(why));
    }
    let all = memory_nodes(b);
    let len = POPULATE_PARALLEL_MIN;
    let r = NumaRegion::anon_in(
        b,
        len,
        MemPolicy::Interleave(all),
        Default::default(),
        Prefault::Populate,
    )
    .map_err(err)?;
    let start = r.as_ptr() as usize;
    let found = page_nodes(&r)?;
    let (page, shift) = (page(b), page_shift(b));
    if let Some(i) = (0..found.len()).find(|&i| {
        found[i] != interleave_node(&all, interleave_index(start, start + i * page, shift, 0))
    }) {
        return Err(format!("interleave page {i} on {:?}", found[i]));
    }
    let il = r.placement().map_err(err)?;
    drop(r);
    let last = all.last().unwrap();
    let r = NumaRegion::anon_in(
        b,
        len,
        MemPolicy::Bind(NodeMask::single(last)),
        Default::default(),
        Prefault::Populate,
    )
    .map_err(err)?;
    let bound = all_on(&r, &NodeMask::single(last))?;
    drop(r);
    let here = b.current_cpu().map_err(err)?.node;
    let local = if b.topology().memory_nodes().contains(here) {
        let _pin = numaperf::thread::pin_to_node(b, here).map_err(err)?;
        let r = NumaRegion::anon_in(
            b,
            len,
            MemPolicy::Local,
            Default::default(),
            Prefault::Populate,
        )
        .map_err(err)?;
        all_on(&r, &NodeMask::single(here))?
    } else {
        format!("(node {here} has no memory: Local part skipped)")
    };
    Ok(Outcome::Pass(format!(
        "interleave {il}; bind {bound}; local {local}"
    )))
}

/// The soundness and truth cases.
pub fn cases<B: PlacementBackend>() -> Vec<Case<B>> {
    vec![
        Case {
            name: "failed_migrate_demotes_hard",
            run: failed_migrate_demotes_hard::<B>,
        },
        Case {
            name: "hard_survives_only_verified_changes",
            run: hard_survives_only_verified_changes::<B>,
        },
        Case {
            name: "migrate_relative_mask",
            run: migrate_relative_mask::<B>,
        },
        Case {
            name: "migrate_static_mask",
            run: migrate_static_mask::<B>,
        },
        Case {
            name: "weighted_interleave_relative",
            run: weighted_interleave_relative::<B>,
        },
        Case {
            name: "parallel_populate_keeps_placement",
            run: parallel_populate_keeps_placement::<B>,
        },
    ]
}
