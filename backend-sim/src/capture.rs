//! Writes a simulated machine out as a sysfs node tree, in the kernel's formats, so a
//! machine of any shape (1024 nodes, CPU-less nodes, sparse ids) becomes a captured tree
//! the Linux backend's reader (and [`SimMachine::from_sysfs_dir`]) can load.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

use numaperf_core::{NodeMask, PlacementBackend, TopologyInfo};

use crate::machine::SimMachine;

impl SimMachine {
    /// Writes this machine's node tree under `dir` (created if missing), as the kernel
    /// publishes `/sys/devices/system/node`: `online`, `possible`, `has_cpu`,
    /// `has_memory`, and per node `nodeN/cpulist`, `nodeN/meminfo` (total, free now and
    /// used, in kB) and `nodeN/distance` (one entry per online node, in id order); the
    /// memory attributes the machine has, as `nodeN/accessC/initiators/` (and its tiers
    /// beside the tree, when `dir` is a `.../devices/system/node` as in `/sys`).
    ///
    /// ```
    /// # use numaperf_core::{PlacementBackend, TopologyInfo};
    /// let sim = numaperf_sim::SimMachine::from_spec("4 nodes x 2 cpus x 64 MiB")?;
    /// let dir = std::env::temp_dir().join(format!("numaperf-doc-tree-{}", std::process::id()));
    /// sim.write_sysfs_tree(&dir)?;
    /// let again = numaperf_sim::SimMachine::from_sysfs_dir(&dir)?;
    /// assert_eq!(again.topology().node_count(), 4);
    /// std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The [`io::Error`] of the first directory or file that could not be created or
    /// written (files already there are overwritten).
    pub fn write_sysfs_tree(&self, dir: impl AsRef<Path>) -> io::Result<()> {
        let dir = dir.as_ref();
        let topo = self.topology();
        let online = *topo.nodes();
        let with_cpus: NodeMask = online
            .iter()
            .filter(|&n| topo.node_cpus(n).is_some_and(|c| !c.is_empty()))
            .collect();
        fs::create_dir_all(dir)?;
        let list = |m: &NodeMask| format!("{m}\n");
        fs::write(dir.join("online"), list(&online))?;
        fs::write(dir.join("possible"), list(&online))?;
        fs::write(dir.join("has_cpu"), list(&with_cpus))?;
        fs::write(dir.join("has_memory"), list(topo.memory_nodes()))?;
        let usage = self.usage();
        for n in online.iter() {
            let node = dir.join(format!("node{n}"));
            fs::create_dir_all(&node)?;
            let cpus = topo.node_cpus(n).copied().unwrap_or_default();
            fs::write(node.join("cpulist"), format!("{cpus}\n"))?;
            let (total, free) = usage
                .iter()
                .find(|u| u.node == n)
                .map_or((0, 0), |u| (u.total >> 10, u.free >> 10));
            let meminfo = format!(
                "Node {n} MemTotal:       {total} kB\nNode {n} MemFree:        {free} kB\n\
                 Node {n} MemUsed:        {} kB\n",
                total - free
            );
            fs::write(node.join("meminfo"), meminfo)?;
            let mut row = String::new();
            for m in online.iter() {
                let sep = if row.is_empty() { "" } else { " " };
                let _ = write!(row, "{sep}{}", topo.distance(n, m).unwrap_or(255));
            }
            row.push('\n');
            fs::write(node.join("distance"), row)?;
        }
        crate::memattrs::write_attributes(topo, dir)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::SimMachine;
    use numaperf_core::{NodeId, PlacementBackend, TopologyInfo};

    /// A machine with a CPU-less node, a sparse id and unequal distances comes back from
    /// its written tree as the same machine.
    #[test]
    #[cfg_attr(miri, ignore = "writes files (Miri's isolation forbids it)")]
    fn a_written_tree_reads_back_as_the_same_machine() {
        let sim = SimMachine::builder()
            .node(2, 64 << 20)
            .node(0, 32 << 20)
            .node_with_id(NodeId::new(5), 3, 16 << 20)
            .distance(0, 1, 31)
            .distance(1, 5, 17)
            .build()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("numaperf-sim-tree-{}", std::process::id()));
        sim.write_sysfs_tree(&dir).unwrap();
        let back = SimMachine::from_sysfs_dir(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let back = back.unwrap();
        let (a, b) = (sim.topology(), back.topology());
        assert_eq!(a.nodes(), b.nodes());
        assert_eq!(a.memory_nodes(), b.memory_nodes());
        assert_eq!(a.cpu_nodes(), b.cpu_nodes());
        for n in a.nodes().iter() {
            assert_eq!(a.node_cpus(n), b.node_cpus(n), "cpus of node {n}");
            assert_eq!(a.node_memory(n), b.node_memory(n), "memory of node {n}");
            for m in a.nodes().iter() {
                assert_eq!(a.distance(n, m), b.distance(n, m), "distance {n} -> {m}");
            }
        }
        assert_eq!(sim.usage(), back.usage());
    }
}
