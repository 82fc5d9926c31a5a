//! Builds a topology from the text of `/sys/devices/system/node` (and `/proc/self/status`),
//! read through a caller's closure: the Linux backend reads the live tree, the sim a capture.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{FileProblem, NumaError, SysfsFile};
use crate::node::{CpuSet, NodeId, NodeMask, MAX_NUMNODES};
use crate::parse::{parse_distance_row, parse_list, parse_meminfo_kb, ParseError};
use crate::topology::{NodeInfo, NodeTable, OwnedTopology};

/// What this process may use, from `/proc/self/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessAllowed {
    /// `Mems_allowed_list`.
    pub nodes: Option<NodeMask>,
    /// `Cpus_allowed_list`.
    pub cpus: Option<CpuSet>,
}

/// Reads `Mems_allowed_list` and `Cpus_allowed_list` from `/proc/self/status` text.
pub fn parse_status(status: &str) -> Result<ProcessAllowed, ParseError> {
    let mut out = ProcessAllowed::default();
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("Mems_allowed_list:") {
            out.nodes = Some(parse_list(v.trim())?);
        } else if let Some(v) = line.strip_prefix("Cpus_allowed_list:") {
            out.cpus = Some(parse_list(v.trim())?);
        }
    }
    Ok(out)
}

/// Builds the topology from a sysfs node tree.
///
/// `read(path)` returns the content of a file relative to the node directory
/// (`"online"`, `"node0/cpulist"`, `"node0/meminfo"`, `"node0/distance"`), or `None` if
/// it is absent. Returns `Ok(None)` when there is no `online` file (no NUMA sysfs: the
/// caller falls back to one node). Distance rows are ordered by the online list.
pub fn topology_from_sysfs(
    mut read: impl FnMut(&str) -> Option<String>,
    allowed: ProcessAllowed,
) -> Result<Option<OwnedTopology>, NumaError> {
    let Some(online) = read("online") else {
        return Ok(None);
    };
    let online: NodeMask = parse_list(&online)?;
    let count = online.count();
    let mut nodes = Vec::with_capacity(count);
    let mut path = String::new();
    let mut file = |path: &mut String, id: NodeId, name: &str| {
        use core::fmt::Write;
        path.clear();
        let _ = write!(path, "node{id}/{name}");
        read(path)
    };
    for id in online.iter() {
        let cpus: CpuSet = match file(&mut path, id, "cpulist") {
            Some(t) => parse_list(&t)?,
            None => CpuSet::new(),
        };
        let meminfo = file(&mut path, id, "meminfo").unwrap_or_default();
        let total = parse_meminfo_kb(&meminfo, "MemTotal:").unwrap_or(0);
        let free = parse_meminfo_kb(&meminfo, "MemFree:").unwrap_or(0);
        let mut row = Vec::new();
        if let Some(t) = file(&mut path, id, "distance") {
            let mut buf = [0u8; MAX_NUMNODES];
            let n = parse_distance_row(&t, &mut buf)?;
            if n != count {
                return Err(
                    SysfsFile::node(id, "distance").error(FileProblem::Inconsistent(
                        "a distance row needs one entry per online node",
                    )),
                );
            }
            row.extend_from_slice(&buf[..n]);
        }
        nodes.push(NodeInfo::new(id, cpus, total, free, row));
    }
    NodeTable::new(nodes, allowed.nodes, allowed.cpus).map(Some)
}

/// Free bytes from a node's `meminfo` text (`MemFree:`).
pub fn node_free_bytes(meminfo: &str) -> Option<u64> {
    parse_meminfo_kb(meminfo, "MemFree:")
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::topology::TopologyInfo;
    use std::collections::BTreeMap;
    use std::string::ToString;

    fn tree(files: &[(&str, &str)]) -> impl FnMut(&str) -> Option<String> {
        let map: BTreeMap<String, String> = files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |p| map.get(p).cloned()
    }

    #[test]
    fn sparse_tree_rows_follow_online_order() {
        let t = topology_from_sysfs(
            tree(&[
                ("online", "0,2\n"),
                ("node0/cpulist", "0-1\n"),
                (
                    "node0/meminfo",
                    "Node 0 MemTotal: 1024 kB\nNode 0 MemFree: 512 kB\n",
                ),
                ("node0/distance", "10 32\n"),
                ("node2/cpulist", "\n"),
                (
                    "node2/meminfo",
                    "Node 2 MemTotal: 2048 kB\nNode 2 MemFree: 2048 kB\n",
                ),
                ("node2/distance", "32 10\n"),
            ]),
            ProcessAllowed::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.node_count(), 2);
        assert_eq!(t.distance(NodeId::new(0), NodeId::new(2)), Some(32));
        assert!(t.node_cpus(NodeId::new(2)).unwrap().is_empty());
        assert_eq!(t.node_memory(NodeId::new(2)), Some(2048 * 1024));
        assert_eq!(t.node(NodeId::new(0)).unwrap().mem_free(), 512 * 1024);
    }

    #[test]
    fn missing_tree_and_bad_rows() {
        assert!(topology_from_sysfs(tree(&[]), ProcessAllowed::default())
            .unwrap()
            .is_none());
        let r = topology_from_sysfs(
            tree(&[("online", "0-1"), ("node0/distance", "10")]),
            ProcessAllowed::default(),
        );
        assert!(r.is_err());
        assert!(topology_from_sysfs(tree(&[("online", "zz")]), ProcessAllowed::default()).is_err());
    }

    #[test]
    fn status_limits() {
        let s = "Name:\tx\nCpus_allowed_list:\t0-1\nMems_allowed_list:\t0\n";
        let a = parse_status(s).unwrap();
        assert_eq!(a.nodes, Some(NodeMask::single(NodeId::new(0))));
        assert_eq!(a.cpus.unwrap().count(), 2);
        let t = topology_from_sysfs(
            tree(&[
                ("online", "0-1"),
                ("node0/meminfo", "MemTotal: 4 kB"),
                ("node1/meminfo", "MemTotal: 4 kB"),
            ]),
            a,
        )
        .unwrap()
        .unwrap();
        assert_eq!(*t.allowed_nodes(), NodeMask::single(NodeId::new(0)));
    }
}
