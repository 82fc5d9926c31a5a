//! `NodeAlloc` on the real kernel (run by the host suite and in the multi-node guests):
//! a 64 MiB `Vec<u64, &NodeAlloc>` and 2000 small `Box`es bound to a node have every page
//! there; an interleaving allocator spreads a vector's pages evenly.

use allocator_api2::boxed::Box;
use allocator_api2::vec::Vec;
use numaperf::{LinuxBackend, MemPolicy, NodeAlloc, NodeMask, PlacementBackend};

use super::{check, err, memory_nodes, two_memory_nodes, CaseResult, Outcome};

/// The vector's size.
const VEC_BYTES: usize = 64 << 20;

/// Why a node cannot take the vector (with room to spare), if it cannot.
fn too_small(b: &LinuxBackend, node: numaperf::NodeId) -> Option<String> {
    let free = b.free_memory(node, numaperf::HugePages::None).unwrap_or(0);
    (free < 2 * VEC_BYTES as u64).then(|| {
        format!(
            "node {node} has {free} bytes free, the case needs {}",
            2 * VEC_BYTES
        )
    })
}

/// The last memory node bound: the vector's and the boxes' pages are all on it.
pub fn node_alloc_bound_vec_and_boxes(b: &LinuxBackend) -> CaseResult {
    if let Some(why) = two_memory_nodes(b) {
        return Ok(Outcome::Skip(why));
    }
    let Some(node) = memory_nodes(b).last() else {
        return Ok(Outcome::Skip("no memory node".into()));
    };
    if let Some(why) = too_small(b, node) {
        return Ok(Outcome::Skip(why));
    }
    let a = NodeAlloc::new_in(b.clone(), MemPolicy::Bind(NodeMask::single(node))).map_err(err)?;
    let mut v: Vec<u64, &NodeAlloc<LinuxBackend>> = Vec::new_in(&a);
    v.resize(VEC_BYTES / 8, 7);
    let boxes: std::vec::Vec<Box<[u64; 4], &NodeAlloc<LinuxBackend>>> =
        (0..2000u64).map(|i| Box::new_in([i; 4], &a)).collect();
    let vp = a.pages_of(&v).map_err(err)?;
    check(vp.on(node) == vp.total() && vp.total() > 0, || {
        format!("a 64 MiB Vec bound to node {node}: {vp}")
    })?;
    let sp = a.placement().map_err(err)?;
    check(
        sp.nodes() == &NodeMask::single(node) && sp.present() > 0,
        || format!("2000 boxes bound to node {node}: their slabs hold {sp}"),
    )?;
    check(
        boxes.iter().enumerate().all(|(i, b)| b[3] == i as u64),
        || "a box lost its value".into(),
    )?;
    Ok(Outcome::Pass(format!("vec: {vp}; boxes' slabs: {sp}")))
}

/// Interleaved over every memory node: a 16 MiB vector's pages spread evenly.
pub fn node_alloc_interleave_spreads(b: &LinuxBackend) -> CaseResult {
    if let Some(why) = two_memory_nodes(b) {
        return Ok(Outcome::Skip(why));
    }
    let nodes = memory_nodes(b);
    let a = NodeAlloc::new_in(b.clone(), MemPolicy::Interleave(nodes)).map_err(err)?;
    let mut v: Vec<u8, &NodeAlloc<LinuxBackend>> = Vec::new_in(&a);
    v.resize(16 << 20, 1);
    let p = a.pages_of(&v).map_err(err)?;
    let each = p.total() / nodes.count() as u64;
    let even = nodes.iter().all(|n| p.on(n).abs_diff(each) <= 1);
    check(even && p.present() == p.total(), || {
        format!("interleave over {{{nodes}}}: expected about {each} pages each, got {p}")
    })?;
    Ok(Outcome::Pass(p.to_string()))
}
