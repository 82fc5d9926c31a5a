//! Builds a topology from the text of `/sys/devices/system/node` (and `/proc/self/status`),
//! read through a caller's closure: the Linux backend reads the live tree, the sim a capture.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{FileProblem, NumaError, SysfsFile};
use crate::node::{CpuSet, NodeId, NodeMask, MAX_NUMNODES};
use crate::parse::{meminfo_field, parse_distance_row, parse_list, parse_meminfo_kb, ParseError};
use crate::topology::{NodeInfo, OwnedTopology};

/// What this process may use, from `/proc/self/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessAllowed {
    /// `Mems_allowed_list`.
    pub nodes: Option<NodeMask>,
    /// `Cpus_allowed_list`.
    pub cpus: Option<CpuSet>,
}

/// Reads `Mems_allowed_list` and `Cpus_allowed_list` from `/proc/self/status` text.
///
/// # Errors
/// The [`ParseError`] of a list that does not parse.
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

/// Builds the topology from a sysfs node tree, strictly: a tree that does not describe a
/// machine is an error naming the file.
///
/// `read(path)` returns the text of a file relative to the node directory (`"online"`,
/// `"node0/cpulist"`, `"node0/meminfo"`, `"node0/distance"`), or what kept it from being
/// read: [`FileProblem::Missing`], [`FileProblem::Unreadable`] (a directory is `EISDIR`)
/// or [`FileProblem::NotText`]. Every online node must have all three files, as a
/// kernel writes them (a CPU-less node has an empty `cpulist`). Distance rows are
/// ordered by the online list.
///
/// # Errors
/// [`NumaError::Sysfs`] naming the file: the problem `read` reported, or
/// [`FileProblem::Malformed`] (a list, row or meminfo value that does not parse),
/// [`FileProblem::MissingField`] (`meminfo` without `MemTotal:` or `MemFree:`),
/// [`FileProblem::Inconsistent`] (no node online, a row without one entry per online
/// node, a CPU listed by two nodes).
pub fn topology_from_sysfs(
    mut read: impl FnMut(&str) -> Result<String, FileProblem>,
    allowed: ProcessAllowed,
) -> Result<OwnedTopology, NumaError> {
    let online_file = SysfsFile::root("online");
    let online = read("online").map_err(|p| online_file.error(p))?;
    let online: NodeMask =
        parse_list(&online).map_err(|e| online_file.error(FileProblem::Malformed(e)))?;
    if online.is_empty() {
        return Err(online_file.error(FileProblem::Inconsistent("no node is online")));
    }
    let count = online.count();
    let mut nodes = Vec::with_capacity(count);
    let mut distances = Vec::with_capacity(count * count);
    let mut all_cpus = CpuSet::new();
    let mut path = String::new();
    let mut file = |id: NodeId, name: &'static str| {
        use core::fmt::Write;
        path.clear();
        let _ = write!(path, "node{id}/{name}");
        let file = SysfsFile::node(id, name);
        read(&path)
            .map(|text| (file, text))
            .map_err(|p| file.error(p))
    };
    for id in online.iter() {
        let (f, text) = file(id, "cpulist")?;
        let cpus: CpuSet = parse_list(&text).map_err(|e| f.error(FileProblem::Malformed(e)))?;
        if !all_cpus.intersection(&cpus).is_empty() {
            return Err(f.error(FileProblem::Inconsistent(
                "a CPU in this list is also in another node's cpulist",
            )));
        }
        all_cpus = all_cpus.union(&cpus);

        let (f, text) = file(id, "meminfo")?;
        let field = |key: &'static str| match meminfo_field(&text, key) {
            None => Err(f.error(FileProblem::MissingField(key))),
            Some(r) => r.map_err(|e| f.error(FileProblem::Malformed(e))),
        };
        let total = field("MemTotal:")?;
        let free = field("MemFree:")?;

        let (f, text) = file(id, "distance")?;
        let mut buf = [0u8; MAX_NUMNODES];
        let n =
            parse_distance_row(&text, &mut buf).map_err(|e| f.error(FileProblem::Malformed(e)))?;
        if n != count {
            return Err(f.error(FileProblem::Inconsistent(
                "a distance row needs one entry per online node",
            )));
        }
        nodes.push(NodeInfo::new(id, cpus, total, free));
        distances.extend_from_slice(&buf[..n]);
    }
    OwnedTopology::new(nodes, distances, allowed.nodes, allowed.cpus)
}

/// Free bytes from a node's `meminfo` text (`MemFree:`).
pub fn node_free_bytes(meminfo: &str) -> Option<u64> {
    parse_meminfo_kb(meminfo, "MemFree:")
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::errno::Errno;
    use crate::parse::ParseErrorKind;
    use crate::topology::TopologyInfo;
    use std::collections::BTreeMap;
    use std::string::ToString;

    type Tree = BTreeMap<String, Result<String, FileProblem>>;

    fn tree(files: &[(&str, &str)]) -> Tree {
        files
            .iter()
            .map(|(k, v)| (k.to_string(), Ok(v.to_string())))
            .collect()
    }

    fn load(t: &Tree) -> Result<OwnedTopology, NumaError> {
        topology_from_sysfs(
            |p| t.get(p).cloned().unwrap_or(Err(FileProblem::Missing)),
            ProcessAllowed::default(),
        )
    }

    /// Nodes 0 and 1, one CPU and 4 kB each, distances 10/20.
    fn two_nodes() -> Tree {
        tree(&[
            ("online", "0-1\n"),
            ("node0/cpulist", "0\n"),
            (
                "node0/meminfo",
                "Node 0 MemTotal: 4 kB\nNode 0 MemFree: 4 kB\n",
            ),
            ("node0/distance", "10 20\n"),
            ("node1/cpulist", "1\n"),
            (
                "node1/meminfo",
                "Node 1 MemTotal: 4 kB\nNode 1 MemFree: 4 kB\n",
            ),
            ("node1/distance", "20 10\n"),
        ])
    }

    /// The error of the two-node tree with `path` replaced (`None`: removed).
    fn broken(path: &str, with: Option<Result<&str, FileProblem>>) -> NumaError {
        let mut t = two_nodes();
        match with {
            Some(r) => t.insert(path.to_string(), r.map(ToString::to_string)),
            None => t.remove(path),
        };
        load(&t).unwrap_err()
    }

    fn in_node1(name: &'static str, problem: FileProblem) -> NumaError {
        SysfsFile::node(NodeId::new(1), name).error(problem)
    }

    fn malformed(e: NumaError) -> ParseErrorKind {
        match e {
            NumaError::Sysfs {
                problem: FileProblem::Malformed(p),
                ..
            } => p.kind,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sparse_tree_rows_follow_online_order() {
        let t = load(&tree(&[
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
        ]))
        .unwrap();
        assert_eq!(t.node_count(), 2);
        assert_eq!(t.distance(NodeId::new(0), NodeId::new(2)), Some(32));
        assert!(t.node_cpus(NodeId::new(2)).unwrap().is_empty());
        assert_eq!(t.node_memory(NodeId::new(2)), Some(2048 * 1024));
        assert_eq!(t.node(NodeId::new(0)).unwrap().mem_free(), 512 * 1024);
        assert!(!t.is_fallback());
    }

    #[test]
    fn no_online_file_is_an_error_not_a_machine() {
        let online = SysfsFile::root("online");
        assert_eq!(
            load(&tree(&[])).unwrap_err(),
            online.error(FileProblem::Missing)
        );
        let e = broken("online", Some(Err(FileProblem::Unreadable(Errno::EACCES))));
        assert_eq!(e, online.error(FileProblem::Unreadable(Errno::EACCES)));
        assert_eq!(
            malformed(broken("online", Some(Ok("zz")))),
            ParseErrorKind::UnexpectedChar('z')
        );
        assert_eq!(
            broken("online", Some(Ok("\n"))),
            online.error(FileProblem::Inconsistent("no node is online"))
        );
    }

    #[test]
    fn a_missing_or_unreadable_distance_is_an_error_not_20() {
        assert_eq!(
            broken("node1/distance", None),
            in_node1("distance", FileProblem::Missing)
        );
        let eisdir = FileProblem::Unreadable(Errno::EISDIR);
        assert_eq!(
            broken("node1/distance", Some(Err(eisdir))),
            in_node1("distance", eisdir)
        );
        assert_eq!(
            broken("node1/distance", Some(Err(FileProblem::NotText))),
            in_node1("distance", FileProblem::NotText)
        );
        assert_eq!(
            malformed(broken("node1/distance", Some(Ok("20 x")))),
            ParseErrorKind::UnexpectedChar('x')
        );
        assert_eq!(
            malformed(broken("node1/distance", Some(Ok("\n")))),
            ParseErrorKind::Empty
        );
        assert_eq!(
            broken("node1/distance", Some(Ok("20"))),
            in_node1(
                "distance",
                FileProblem::Inconsistent("a distance row needs one entry per online node")
            )
        );
    }

    #[test]
    fn a_missing_or_garbage_meminfo_is_an_error_not_0_bytes() {
        assert_eq!(
            broken("node1/meminfo", None),
            in_node1("meminfo", FileProblem::Missing)
        );
        assert_eq!(
            broken("node1/meminfo", Some(Ok("garbage\n"))),
            in_node1("meminfo", FileProblem::MissingField("MemTotal:"))
        );
        assert_eq!(
            broken("node1/meminfo", Some(Ok("Node 1 MemTotal: 4 kB\n"))),
            in_node1("meminfo", FileProblem::MissingField("MemFree:"))
        );
        let e = broken(
            "node1/meminfo",
            Some(Ok("Node 1 MemTotal: lots kB\nNode 1 MemFree: 4 kB\n")),
        );
        assert!(matches!(
            e,
            NumaError::Sysfs { file, problem: FileProblem::Malformed(_) }
                if file == SysfsFile::node(NodeId::new(1), "meminfo")
        ));
    }

    #[test]
    fn cpulists_must_exist_parse_and_not_overlap() {
        assert_eq!(
            broken("node1/cpulist", None),
            in_node1("cpulist", FileProblem::Missing)
        );
        assert_eq!(
            malformed(broken("node1/cpulist", Some(Ok("4096")))),
            ParseErrorKind::NumberTooLarge
        );
        assert_eq!(
            broken("node1/cpulist", Some(Ok("0-1\n"))),
            in_node1(
                "cpulist",
                FileProblem::Inconsistent("a CPU in this list is also in another node's cpulist")
            )
        );
        // A CPU-less node has an empty list: fine.
        let t = {
            let mut t = two_nodes();
            t.insert("node1/cpulist".to_string(), Ok("\n".to_string()));
            load(&t).unwrap()
        };
        assert_eq!(*t.cpu_nodes(), NodeMask::single(NodeId::new(0)));
        assert_eq!(t.node_cpus(NodeId::new(0)).unwrap().count(), 1);
        let (n0, n1) = (NodeId::new(0), NodeId::new(1));
        assert_eq!(
            [Some(10), Some(20)],
            [t.distance(n0, n0), t.distance(n0, n1)]
        );
    }

    #[test]
    fn status_limits() {
        let s = "Name:\tx\nCpus_allowed_list:\t0-1\nMems_allowed_list:\t0\n";
        let a = parse_status(s).unwrap();
        assert_eq!(a.nodes, Some(NodeMask::single(NodeId::new(0))));
        assert_eq!(a.cpus.unwrap().count(), 2);
        let t = two_nodes();
        let t = topology_from_sysfs(
            |p| t.get(p).cloned().unwrap_or(Err(FileProblem::Missing)),
            a,
        )
        .unwrap();
        assert_eq!(*t.allowed_nodes(), NodeMask::single(NodeId::new(0)));
    }
}
