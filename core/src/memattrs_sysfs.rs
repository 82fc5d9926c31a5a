//! Reads memory attributes from sysfs text through a caller's [`SysfsTree`]: each memory
//! node's `nodeN/access0` and `access1` initiator figures, and the memory tiers.

use alloc::format;
use alloc::vec::Vec;

use crate::device_sysfs::SysfsTree;
use crate::error::{FileProblem, NumaError, SysfsFile};
use crate::memattrs::{
    parse_access_figure, parse_tier_dir, AccessClass, AccessFigures, MemoryAttributes,
};
use crate::node::{NodeId, NodeMask};
use crate::parse::parse_list;

/// The four figure files of an `initiators` directory, as its entries name them.
const FIGURES: [&str; 4] = [
    "read_bandwidth",
    "write_bandwidth",
    "read_latency",
    "write_latency",
];

/// `accessN/initiators` and its files, as [`SysfsFile`] names them (static text).
const fn class_paths(class: AccessClass) -> (&'static str, [&'static str; 4]) {
    match class {
        AccessClass::AnyInitiator => (
            "access0/initiators",
            [
                "access0/initiators/read_bandwidth",
                "access0/initiators/write_bandwidth",
                "access0/initiators/read_latency",
                "access0/initiators/write_latency",
            ],
        ),
        AccessClass::CpuInitiator => (
            "access1/initiators",
            [
                "access1/initiators/read_bandwidth",
                "access1/initiators/write_bandwidth",
                "access1/initiators/read_latency",
                "access1/initiators/write_latency",
            ],
        ),
    }
}

/// The memory attributes of the online memory nodes `memory` (of the online nodes
/// `online`): `nodes` is the node tree (`/sys/devices/system/node`), `tiers` the tiering
/// tree (`/sys/devices/virtual/memory_tiering`). Nodes with nothing known are left out.
///
/// What a kernel or machine may lack is unknown, not an error: no `accessN/initiators`
/// (no HMAT or CDAT, or a kernel before 5.2), a figure file missing, no tiering tree
/// (before 6.1). A file that is there but cannot be read or does not parse is.
///
/// # Errors
/// [`NumaError::Sysfs`] naming the file (`nodeN/access0/initiators/read_bandwidth`) or
/// directory (`nodeN/access0/initiators`) that is unreadable, not text or malformed, or
/// whose initiator link names a node that is not online ([`FileProblem::Inconsistent`]);
/// [`NumaError::MemoryTierFile`] for a tier's `nodelist` that is unreadable, malformed, or
/// names a node that is not online or already in another tier; [`NumaError::Sysfs`] naming
/// `memory_tiering` when that directory exists but cannot be listed.
pub fn memory_attributes_from_sysfs(
    nodes: &mut impl SysfsTree,
    tiers: &mut impl SysfsTree,
    online: &NodeMask,
    memory: &NodeMask,
) -> Result<Vec<(NodeId, MemoryAttributes)>, NumaError> {
    let tier_of = read_tiers(tiers, online)?;
    let mut out = Vec::new();
    for node in memory.iter() {
        let mut attrs = MemoryAttributes::new();
        for class in AccessClass::ALL {
            if let Some(f) = read_class(nodes, node, class, online)? {
                attrs = attrs.with_figures(class, f);
            }
        }
        if let Some(&(_, tier)) = tier_of.iter().find(|(n, _)| *n == node) {
            attrs = attrs.with_tier(tier);
        }
        if !attrs.is_empty() {
            out.push((node, attrs));
        }
    }
    Ok(out)
}

/// One class's figures of `node` (`None`: the kernel has no such directory).
fn read_class(
    tree: &mut impl SysfsTree,
    node: NodeId,
    class: AccessClass,
    online: &NodeMask,
) -> Result<Option<AccessFigures>, NumaError> {
    let (dir_name, file_names) = class_paths(class);
    let dir = SysfsFile::node(node, dir_name);
    let entries = match tree.list(&format!("node{node}/{dir_name}")) {
        Ok(e) => e,
        Err(FileProblem::Missing) => return Ok(None),
        Err(p) => return Err(dir.error(p)),
    };
    let mut figures = AccessFigures::default();
    for name in &entries {
        if let Some(id) = name.strip_prefix("node") {
            let id: u32 = match id.parse() {
                Ok(id) => id,
                Err(_) => continue,
            };
            let id = NodeId::new(id);
            if !online.contains(id) {
                return Err(dir.error(FileProblem::Inconsistent(
                    "an initiator link names a node that is not online",
                )));
            }
            figures.initiators.add(id);
        }
    }
    for (i, short) in FIGURES.iter().enumerate() {
        if !entries.iter().any(|e| e == short) {
            continue;
        }
        let file = SysfsFile::node(node, file_names[i]);
        let value = match tree.read(&format!("node{node}/{}", file_names[i])) {
            Ok(text) => {
                parse_access_figure(&text).map_err(|e| file.error(FileProblem::Malformed(e)))?
            }
            // Listed but gone by now: unknown, as if never listed.
            Err(FileProblem::Missing) => continue,
            Err(p) => return Err(file.error(p)),
        };
        let slot = match i {
            0 => &mut figures.read_bandwidth,
            1 => &mut figures.write_bandwidth,
            2 => &mut figures.read_latency,
            _ => &mut figures.write_latency,
        };
        *slot = Some(value);
    }
    Ok(Some(figures))
}

/// `(node, tier)` for every node a tier lists.
fn read_tiers(
    tree: &mut impl SysfsTree,
    online: &NodeMask,
) -> Result<Vec<(NodeId, u32)>, NumaError> {
    let entries = match tree.list("") {
        Ok(e) => e,
        Err(FileProblem::Missing) => return Ok(Vec::new()),
        Err(p) => return Err(SysfsFile::root("memory_tiering").error(p)),
    };
    let mut tiers: Vec<u32> = entries.iter().filter_map(|e| parse_tier_dir(e)).collect();
    tiers.sort_unstable();
    let mut out: Vec<(NodeId, u32)> = Vec::new();
    let mut seen = NodeMask::new();
    for tier in tiers {
        let error = |problem| NumaError::MemoryTierFile { tier, problem };
        let text = match tree.read(&format!("memory_tier{tier}/nodelist")) {
            Ok(t) => t,
            Err(FileProblem::Missing) => continue,
            Err(p) => return Err(error(p)),
        };
        let list: NodeMask = parse_list(&text).map_err(|e| error(FileProblem::Malformed(e)))?;
        if !list.is_subset(online) {
            return Err(error(FileProblem::Inconsistent(
                "a node in this tier is not online",
            )));
        }
        if !list.intersection(&seen).is_empty() {
            return Err(error(FileProblem::Inconsistent(
                "a node in this tier is in another tier too",
            )));
        }
        seen = seen.union(&list);
        out.extend(list.iter().map(|n| (n, tier)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::parse::ParseErrorKind;
    use std::string::{String, ToString};
    use std::vec;

    use crate::sysfs_mem::MemTree as Tree;

    fn mask(ids: &[u32]) -> NodeMask {
        ids.iter().copied().map(NodeId::new).collect()
    }

    /// What QEMU's HMAT gave a 6.1 guest: node 2 (memory only) reached from node 0.
    fn guest() -> Tree {
        let mut t = Tree::default();
        for class in ["access0", "access1"] {
            for (node, from, bw, lat) in [(0, 0, "10240", "10"), (2, 0, "2048", "40")] {
                let dir = std::format!("node{node}/{class}/initiators");
                t = t
                    .file(&std::format!("{dir}/node{from}"), "")
                    .file(
                        &std::format!("{dir}/read_bandwidth"),
                        &std::format!("{bw}\n"),
                    )
                    .file(
                        &std::format!("{dir}/write_bandwidth"),
                        &std::format!("{bw}\n"),
                    )
                    .file(
                        &std::format!("{dir}/read_latency"),
                        &std::format!("{lat}\n"),
                    )
                    .file(
                        &std::format!("{dir}/write_latency"),
                        &std::format!("{lat}\n"),
                    );
            }
        }
        t
    }

    fn tiers() -> Tree {
        Tree::default()
            .file("memory_tier4/nodelist", "0-1\n")
            .file("memory_tier22/nodelist", "2\n")
            .file("power/uevent", "")
    }

    fn read(
        nodes: &mut Tree,
        tiers: &mut Tree,
    ) -> Result<Vec<(NodeId, MemoryAttributes)>, NumaError> {
        memory_attributes_from_sysfs(nodes, tiers, &mask(&[0, 1, 2]), &mask(&[0, 1, 2]))
    }

    #[test]
    fn a_guest_tree_reads() {
        let got = read(&mut guest(), &mut tiers()).unwrap();
        let ids: Vec<u32> = got.iter().map(|(n, _)| n.get()).collect();
        // Node 1 has only a tier.
        assert_eq!(ids, [0, 1, 2]);
        let node2 = &got[2].1;
        let f = node2.figures(AccessClass::AnyInitiator).unwrap();
        assert_eq!(f.initiators, mask(&[0]));
        assert_eq!((f.read_bandwidth, f.read_latency), (Some(2048), Some(40)));
        assert_eq!(node2.figures(AccessClass::CpuInitiator), Some(f));
        assert_eq!(node2.tier, Some(22));
        assert_eq!(got[1].1.tier, Some(4));
        assert!(got[1].1.figures(AccessClass::AnyInitiator).is_none());
    }

    #[test]
    fn absent_files_are_unknown() {
        assert_eq!(
            read(&mut Tree::default(), &mut Tree::default()).unwrap(),
            vec![]
        );
        // Only a latency, and a link: the bandwidths are unknown.
        let mut t = Tree::default()
            .file("node0/access0/initiators/node0", "")
            .file("node0/access0/initiators/read_latency", "7\n");
        let got = read(&mut t, &mut Tree::default()).unwrap();
        let f = got[0].1.figures(AccessClass::AnyInitiator).unwrap();
        assert_eq!((f.read_latency, f.read_bandwidth), (Some(7), None));
    }

    #[test]
    fn bad_files_are_named() {
        let mut t = guest().file("node2/access1/initiators/read_latency", "forty\n");
        let e = read(&mut t, &mut tiers()).unwrap_err();
        match e {
            NumaError::Sysfs {
                file,
                problem: FileProblem::Malformed(p),
            } => {
                assert_eq!(
                    file,
                    SysfsFile::node(NodeId::new(2), "access1/initiators/read_latency")
                );
                assert_eq!(p.kind, ParseErrorKind::UnexpectedChar('f'));
            }
            other => panic!("{other:?}"),
        }
        let eacces = FileProblem::Unreadable(crate::errno::Errno::from_raw(13));
        let mut t = guest().bad("node0/access0/initiators/write_bandwidth", eacces);
        assert_eq!(
            read(&mut t, &mut tiers()).unwrap_err(),
            SysfsFile::node(NodeId::new(0), "access0/initiators/write_bandwidth").error(eacces)
        );
        let mut t = guest().file("node0/access0/initiators/node7", "");
        assert_eq!(
            read(&mut t, &mut tiers()).unwrap_err(),
            SysfsFile::node(NodeId::new(0), "access0/initiators").error(FileProblem::Inconsistent(
                "an initiator link names a node that is not online"
            ))
        );
        let mut t = guest();
        t.bad_dirs
            .insert("node2/access0/initiators".to_string(), eacces);
        assert_eq!(
            read(&mut t, &mut tiers()).unwrap_err(),
            SysfsFile::node(NodeId::new(2), "access0/initiators").error(eacces)
        );
    }

    #[test]
    fn bad_tiers_are_named() {
        let tier_error = |tiers: &mut Tree| read(&mut guest(), tiers).unwrap_err();
        match tier_error(&mut tiers().file("memory_tier22/nodelist", "2-\n")) {
            NumaError::MemoryTierFile {
                tier: 22,
                problem: FileProblem::Malformed(_),
            } => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            tier_error(&mut tiers().file("memory_tier22/nodelist", "1-2\n")),
            NumaError::MemoryTierFile {
                tier: 22,
                problem: FileProblem::Inconsistent("a node in this tier is in another tier too")
            }
        );
        assert_eq!(
            tier_error(&mut tiers().file("memory_tier22/nodelist", "5\n")),
            NumaError::MemoryTierFile {
                tier: 22,
                problem: FileProblem::Inconsistent("a node in this tier is not online")
            }
        );
        let mut t = tiers();
        t.bad_dirs.insert(String::new(), FileProblem::NotText);
        assert_eq!(
            tier_error(&mut t),
            SysfsFile::root("memory_tiering").error(FileProblem::NotText)
        );
        assert_eq!(
            tier_error(&mut tiers().file("memory_tier22/nodelist", "2-\n")).to_string(),
            "memory_tiering/memory_tier22/nodelist: malformed: parse error at byte 2: expected a number"
        );
    }
}
