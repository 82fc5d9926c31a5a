//! Reads the live (or a captured) `/sys/devices/system/node` tree and `/proc/self/status`
//! through core's shared sysfs assembly; one node holding all CPUs where there is none.

use std::fs;
use std::path::Path;

use numaperf_core::parse::parse_meminfo_kb;
use numaperf_core::sysfs::{parse_status, topology_from_sysfs, ProcessAllowed};
use numaperf_core::{CpuSet, NodeId, NumaError, OwnedNodeInfo, OwnedTopology};

/// Where the kernel publishes NUMA nodes.
pub const SYSFS_NODE_ROOT: &str = "/sys/devices/system/node";

/// Reads the topology under `root` (a node directory such as [`SYSFS_NODE_ROOT`] or a
/// captured copy), limited by this process's `Mems_allowed`/`Cpus_allowed` when `root`
/// is the live tree. Without an `online` file: one node 0 with every CPU and all memory.
pub fn read_topology(root: impl AsRef<Path>) -> Result<OwnedTopology, NumaError> {
    let root = root.as_ref();
    let live = root == Path::new(SYSFS_NODE_ROOT);
    let allowed = if live {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        parse_status(&status)?
    } else {
        ProcessAllowed::default()
    };
    let read = |p: &str| fs::read_to_string(root.join(p)).ok();
    match topology_from_sysfs(read, allowed)? {
        Some(t) => Ok(t),
        None => single_node(allowed),
    }
}

/// The fallback machine: node 0 with the CPUs from `/sys/devices/system/cpu/online` (or
/// the allowed CPUs) and the memory from `/proc/meminfo`.
fn single_node(allowed: ProcessAllowed) -> Result<OwnedTopology, NumaError> {
    let cpus: CpuSet = match fs::read_to_string("/sys/devices/system/cpu/online") {
        Ok(t) => numaperf_core::parse::parse_list(&t)?,
        Err(_) => allowed.cpus.unwrap_or_else(|| CpuSet::single(0)),
    };
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = parse_meminfo_kb(&meminfo, "MemTotal:").unwrap_or(0);
    let free = parse_meminfo_kb(&meminfo, "MemFree:").unwrap_or(0);
    let node = OwnedNodeInfo::new(NodeId::new(0), cpus, total, free, vec![10]);
    OwnedTopology::new(vec![node], None, allowed.cpus)
}

#[cfg(test)]
mod tests {
    use super::*;
    use numaperf_core::TopologyInfo;

    #[test]
    fn this_host_has_node_0_with_memory_and_cpus() {
        let t = read_topology(SYSFS_NODE_ROOT).unwrap();
        let n0 = NodeId::new(0);
        assert!(t.nodes().contains(n0));
        assert!(t.memory_nodes().contains(n0));
        assert!(!t.node_cpus(n0).unwrap().is_empty());
        assert_eq!(t.distance(n0, n0), Some(10));
        assert!(t.allowed_nodes().contains(n0));
    }

    #[test]
    fn absent_tree_falls_back_to_one_node() {
        let t = read_topology("/nonexistent/numaperf").unwrap();
        assert_eq!(t.node_count(), 1);
        assert!(t.node_memory(NodeId::new(0)).unwrap() > 0);
        assert!(!t.node_cpus(NodeId::new(0)).unwrap().is_empty());
    }

    #[test]
    fn captured_tree_with_bad_content_is_a_typed_error() {
        let dir = std::env::temp_dir().join(format!("numaperf-bad-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("online"), "0-x\n").unwrap();
        let r = read_topology(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(r, Err(NumaError::Parse(_))));
    }
}
