//! Thread default policy (`thread::set_policy`): where memory without a policy of its own
//! lands when the thread faults it in, on every backend; the previous policy comes back.

use numaperf::numa_core::backend::placement;
use numaperf::{thread, HugePages, MemPolicy, NodeMask, PlacementBackend, Prefault, ThreadPolicy};

use super::{check, err, memory_nodes, page, two_memory_nodes, Case, CaseResult, Outcome};

/// The Linux case's `Vec`.
#[cfg(target_os = "linux")]
const VEC_BYTES: usize = 64 << 20;

/// Pages in a default-policy test mapping.
const PAGES: usize = 64;

/// Maps `PAGES` pages with no policy of their own (the heap's large allocations are such
/// `mmap`s), touches them from this thread, returns where they are.
fn default_mapping_pages<B: PlacementBackend>(b: &B) -> Result<numaperf::PageCounts, String> {
    let m = b.map(PAGES * page(b), HugePages::None).map_err(err)?;
    // SAFETY: `m` was just mapped here and nothing refers to its memory.
    let r = unsafe { b.prefault(&m, m.all_pages(), Prefault::Touch) }
        .map_err(err)
        .and_then(|()| placement(b, &m).map_err(err));
    // SAFETY: as above; unmapped once.
    unsafe { b.unmap(&m) }.map_err(err)?;
    r
}

/// Under each node's `Bind` thread policy, a default mapping's pages are all on that node;
/// the thread's policy is what it was after the guard drops.
fn thread_bind_places_default_memory<B: PlacementBackend>(b: &B) -> CaseResult {
    if let Some(why) = two_memory_nodes(b) {
        return Ok(Outcome::Skip(why));
    }
    let before = b.thread_policy().map_err(err)?;
    let mut seen = Vec::new();
    for n in memory_nodes(b).iter() {
        let mask = NodeMask::single(n);
        let guard =
            thread::set_policy_in(b, ThreadPolicy::new(MemPolicy::Bind(mask))).map_err(err)?;
        let p = default_mapping_pages(b)?;
        drop(guard);
        check(p.on(n) == PAGES as u64, || {
            format!("thread policy Bind({n}): expected {PAGES} pages on node {n}, got {p}")
        })?;
        seen.push(format!("bind {n}: {p}"));
    }
    let after = b.thread_policy().map_err(err)?;
    check(after == before, || {
        format!("the policy was {before:?} before and is {after:?} after the guards")
    })?;
    Ok(Outcome::Pass(seen.join("; ")))
}

/// An interleave thread policy spreads a default mapping evenly over its nodes.
fn thread_interleave_spreads_default_memory<B: PlacementBackend>(b: &B) -> CaseResult {
    if let Some(why) = two_memory_nodes(b) {
        return Ok(Outcome::Skip(why));
    }
    let nodes = memory_nodes(b);
    let _guard =
        thread::set_policy_in(b, ThreadPolicy::new(MemPolicy::Interleave(nodes))).map_err(err)?;
    let p = default_mapping_pages(b)?;
    let k = nodes.count() as u64;
    let even = nodes
        .iter()
        .all(|n| p.on(n).abs_diff(PAGES as u64 / k) <= 1);
    check(even && p.present() == PAGES as u64, || {
        format!(
            "interleave over {{{nodes}}}: expected about {} pages each, got {p}",
            PAGES as u64 / k
        )
    })?;
    Ok(Outcome::Pass(p.to_string()))
}

/// A region's own policy wins over the thread's: a region bound to the first node stays
/// there under a thread policy bound to the last.
fn region_policy_beats_thread_policy<B: PlacementBackend>(b: &B) -> CaseResult {
    if let Some(why) = two_memory_nodes(b) {
        return Ok(Outcome::Skip(why));
    }
    let nodes = memory_nodes(b);
    let zero = numaperf::NodeId::new(0);
    let (first, last) = (nodes.first().unwrap_or(zero), nodes.last().unwrap_or(zero));
    let _guard = thread::set_policy_in(
        b,
        ThreadPolicy::new(MemPolicy::Bind(NodeMask::single(last))),
    )
    .map_err(err)?;
    let r = numaperf::NumaRegion::anon_in(
        b,
        PAGES * page(b),
        MemPolicy::Bind(NodeMask::single(first)),
        Default::default(),
        Prefault::Touch,
    )
    .map_err(err)?;
    let p = r.placement().map_err(err)?;
    check(p.on(first) == PAGES as u64, || {
        format!("region bound to {first} under a thread bound to {last}: got {p}")
    })?;
    Ok(Outcome::Pass(p.to_string()))
}

/// An absent node is refused before the backend is asked, and nothing changes.
fn thread_policy_bad_input<B: PlacementBackend>(b: &B) -> CaseResult {
    let before = b.thread_policy().map_err(err)?;
    let Some(absent) = super::first_absent(b) else {
        return Ok(Outcome::Skip("every node id is present".into()));
    };
    let e = thread::set_policy_in(
        b,
        ThreadPolicy::new(MemPolicy::Bind(NodeMask::single(absent))),
    )
    .err();
    check(e == Some(numaperf::NumaError::NodeNotFound(absent)), || {
        format!("Bind({absent}) on a machine without it: {e:?}")
    })?;
    let empty =
        thread::set_policy_in(b, ThreadPolicy::new(MemPolicy::Interleave(NodeMask::new()))).err();
    check(empty == Some(numaperf::NumaError::EmptyNodeMask), || {
        format!("an empty interleave: {empty:?}")
    })?;
    let after = b.thread_policy().map_err(err)?;
    check(after == before, || format!("{before:?} became {after:?}"))?;
    Ok(Outcome::Pass(format!(
        "{absent} refused, empty mask refused"
    )))
}

/// The thread-policy cases, for `super::cases`.
pub fn cases<B: PlacementBackend>() -> Vec<Case<B>> {
    vec![
        Case {
            name: "thread_bind_places_default_memory",
            run: thread_bind_places_default_memory::<B>,
        },
        Case {
            name: "thread_interleave_spreads_default_memory",
            run: thread_interleave_spreads_default_memory::<B>,
        },
        Case {
            name: "region_policy_beats_thread_policy",
            run: region_policy_beats_thread_policy::<B>,
        },
        Case {
            name: "thread_policy_bad_input",
            run: thread_policy_bad_input::<B>,
        },
    ]
}

/// Linux: a real `Vec` above malloc's mmap threshold, touched under a thread policy, has
/// its pages where the policy says (asked of the kernel with `move_pages`).
#[cfg(target_os = "linux")]
pub fn vec_pages_follow_thread_policy(b: &numaperf::LinuxBackend) -> CaseResult {
    if let Some(why) = two_memory_nodes(b) {
        return Ok(Outcome::Skip(why));
    }
    let mut seen = Vec::new();
    for n in memory_nodes(b).iter() {
        let free = b.free_memory(n, HugePages::None).unwrap_or(0);
        if free < 2 * VEC_BYTES as u64 {
            continue;
        }
        let guard =
            thread::set_policy_in(b, ThreadPolicy::new(MemPolicy::Bind(NodeMask::single(n))))
                .map_err(err)?;
        // 64 MiB: above glibc's largest dynamic mmap threshold (32 MiB), so a fresh
        // mapping faulted under the thread's policy, never heap pages a previous round
        // freed (an 8 MiB block came back from the heap after one was freed).
        let mut v = vec![0u8; VEC_BYTES];
        v.iter_mut().step_by(page(b)).for_each(|x| *x = 1);
        drop(guard);
        let p = vec_placement(b, &mut v)?;
        check(
            p.nodes().count() == 1 && p.on(n) == p.present() && p.present() > 0,
            || format!("a Vec touched under Bind({n}): {p}"),
        )?;
        seen.push(format!("bind {n}: {p}"));
    }
    if seen.is_empty() {
        return Ok(Outcome::Skip(format!(
            "no memory node has {} bytes free",
            2 * VEC_BYTES
        )));
    }
    Ok(Outcome::Pass(seen.join("; ")))
}

/// Where the whole pages of a buffer the caller has are (`move_pages`, nothing faulted).
#[cfg(target_os = "linux")]
pub fn vec_placement(
    b: &numaperf::LinuxBackend,
    v: &mut [u8],
) -> Result<numaperf::PageCounts, String> {
    use numaperf::numa_core::existing::whole_pages;
    let (_, bytes, head, _) =
        whole_pages(v.as_mut_ptr() as usize, v.len(), page(b)).map_err(err)?;
    let addr = core::ptr::NonNull::new(v.as_mut_ptr().wrapping_add(head))
        .ok_or_else(|| "a null buffer".to_string())?;
    // SAFETY: whole pages inside `v`, which this function borrows exclusively; the token
    // is only queried and dropped.
    let m = unsafe { b.adopt(addr, bytes) }.map_err(err)?;
    placement(b, &m).map_err(err)
}
