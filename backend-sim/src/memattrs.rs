//! Memory attributes in captured sysfs trees: the simulator reads them with core's reader
//! when it replays a tree, and writes a machine's own as the kernel lays them out.

use std::fs;
use std::io;
use std::path::Path;

use numaperf_core::memattrs::{AccessClass, MemoryAttributes};
use numaperf_core::memattrs_sysfs::memory_attributes_from_sysfs;
use numaperf_core::sysfs_dir::SysfsDir;
use numaperf_core::{NodeId, NumaError, OwnedTopology, TopologyInfo};

/// Where a node tree's memory tiers are, relative to it (as in `/sys`).
const TIERS_FROM_NODE_TREE: &str = "../../virtual/memory_tiering";

/// The memory attributes a captured node tree at `dir` carries.
pub(crate) fn read_attributes(
    dir: &Path,
    topo: &OwnedTopology,
) -> Result<Vec<(NodeId, MemoryAttributes)>, NumaError> {
    memory_attributes_from_sysfs(
        &mut SysfsDir::new(dir),
        &mut SysfsDir::new(dir.join(TIERS_FROM_NODE_TREE)),
        topo.nodes(),
        topo.memory_nodes(),
    )
}

/// Writes `topo`'s memory attributes into the node tree at `dir` as the kernel shows
/// them: `nodeN/accessC/initiators/` with a `nodeM` link per initiator and a file per
/// known figure. The tiers go to `memory_tiering/memory_tierN/nodelist` beside the tree
/// as in `/sys`, only when `dir` is a `.../devices/system/node` directory (never outside
/// a tree that mirrors `/sys`).
///
/// # Errors
/// The [`io::Error`] of the first directory, file or link that could not be made.
pub(crate) fn write_attributes(topo: &OwnedTopology, dir: &Path) -> io::Result<()> {
    let mut tiers: Vec<(u32, numaperf_core::NodeMask)> = Vec::new();
    for node in topo.nodes().iter() {
        let Some(attrs) = topo.memory_attributes(node) else {
            continue;
        };
        if let Some(t) = attrs.tier {
            match tiers.iter_mut().find(|(tier, _)| *tier == t) {
                Some((_, m)) => m.add(node),
                None => tiers.push((t, numaperf_core::NodeMask::single(node))),
            }
        }
        for class in AccessClass::ALL {
            let Some(f) = attrs.figures(class) else {
                continue;
            };
            let initiators = dir.join(format!("node{node}/{}/initiators", class.dir_name()));
            fs::create_dir_all(&initiators)?;
            for from in f.initiators.iter() {
                let link = initiators.join(format!("node{from}"));
                if fs::symlink_metadata(&link).is_err() {
                    // The kernel's link to the initiator's node directory; where there
                    // are no symbolic links, an empty file of that name (the reader
                    // only lists the names).
                    #[cfg(unix)]
                    std::os::unix::fs::symlink(format!("../../../node{from}"), link)?;
                    #[cfg(not(unix))]
                    fs::write(link, "")?;
                }
            }
            let figures = [
                ("read_bandwidth", f.read_bandwidth),
                ("write_bandwidth", f.write_bandwidth),
                ("read_latency", f.read_latency),
                ("write_latency", f.write_latency),
            ];
            for (name, value) in figures {
                if let Some(v) = value {
                    fs::write(initiators.join(name), format!("{v}\n"))?;
                }
            }
        }
    }
    if !tiers.is_empty() && dir.ends_with("devices/system/node") {
        let root = dir.join(TIERS_FROM_NODE_TREE);
        for (tier, nodes) in tiers {
            let t = root.join(format!("memory_tier{tier}"));
            fs::create_dir_all(&t)?;
            fs::write(t.join("nodelist"), format!("{nodes}\n"))?;
        }
    }
    Ok(())
}
