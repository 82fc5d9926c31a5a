//! Ways to make a `SimMachine`: a builder in code, a short spec string for tests
//! ("2 nodes x 4 cpus x 1 GiB"), or a captured sysfs tree replayed through core's reader.

use std::fs;
use std::path::Path;

use numaperf_core::sysfs::{topology_from_sysfs, ProcessAllowed};
use numaperf_core::{CpuSet, HugePages, NodeId, NodeMask, NumaError, OwnedNodeInfo, OwnedTopology};

use crate::machine::SimMachine;

/// Builds a [`SimMachine`] node by node.
#[derive(Clone, Debug, Default)]
pub struct SimBuilder {
    nodes: Vec<(NodeId, usize, u64)>,
    distances: Vec<(NodeId, NodeId, u8)>,
    huge: Vec<(NodeId, u64, u64)>,
    allowed: Option<NodeMask>,
}

impl SimBuilder {
    /// Adds the next node (id = one past the highest so far) with `cpus` CPUs, numbered
    /// after the CPUs of earlier nodes, and `mem` bytes (0: a CPU-only node).
    pub fn node(self, cpus: usize, mem: u64) -> Self {
        let id = self.nodes.last().map_or(0, |n| n.0.get() + 1);
        self.node_with_id(NodeId::new(id), cpus, mem)
    }

    /// Adds a node with an explicit id (ids may be sparse, e.g. {0, 2}).
    pub fn node_with_id(mut self, id: NodeId, cpus: usize, mem: u64) -> Self {
        self.nodes.push((id, cpus, mem));
        self
    }

    /// Sets the distance between two nodes, both ways (default: 10 local, 21 remote).
    pub fn distance(mut self, a: u32, b: u32, d: u8) -> Self {
        self.distances.push((NodeId::new(a), NodeId::new(b), d));
        self
    }

    /// Reserves `count` explicit huge pages of a size on a node.
    pub fn huge_pages(mut self, node: u32, size: HugePages, count: u64) -> Self {
        let (h2, h1) = match size {
            HugePages::Explicit2M => (count, 0),
            HugePages::Explicit1G => (0, count),
            _ => (0, 0),
        };
        self.huge.push((NodeId::new(node), h2, h1));
        self
    }

    /// Limits the nodes this process may use, as a cgroup cpuset would.
    pub fn allowed_nodes(mut self, nodes: NodeMask) -> Self {
        self.allowed = Some(nodes);
        self
    }

    /// The machine; an error for duplicate or out-of-order ids, or no nodes.
    pub fn build(self) -> Result<SimMachine, NumaError> {
        let mut next_cpu = 0;
        let ids: Vec<NodeId> = self.nodes.iter().map(|n| n.0).collect();
        let infos = self
            .nodes
            .iter()
            .map(|&(id, cpus, mem)| {
                let set: CpuSet = (next_cpu..next_cpu + cpus).collect();
                next_cpu += cpus;
                let row = ids
                    .iter()
                    .map(|&to| {
                        let given = self
                            .distances
                            .iter()
                            .rev()
                            .find(|d| (d.0, d.1) == (id, to) || (d.1, d.0) == (id, to));
                        given.map_or(if to == id { 10 } else { 21 }, |d| d.2)
                    })
                    .collect();
                OwnedNodeInfo::new(id, set, mem, mem, row)
            })
            .collect();
        let topo = OwnedTopology::new(infos, self.allowed, None)?;
        Ok(SimMachine::new(topo, &self.huge))
    }
}

impl SimMachine {
    /// A builder.
    pub fn builder() -> SimBuilder {
        SimBuilder::default()
    }

    /// A machine from a short spec: `"<n> nodes x <c> cpus x <size> GiB|MiB"`, every node
    /// alike, distances 10 local / 21 remote.
    pub fn from_spec(spec: &str) -> Result<Self, NumaError> {
        const BAD: NumaError = NumaError::InvalidSpec("not a spec");
        let parts: Vec<Vec<&str>> = spec
            .split(" x ")
            .map(|p| p.split_whitespace().collect())
            .collect();
        let [n, c, m] = parts.as_slice() else {
            return Err(BAD);
        };
        let num = |p: &[&str], unit: &[&str]| -> Result<u64, NumaError> {
            match p {
                [v, u] if unit.contains(u) => v.parse().map_err(|_| BAD),
                _ => Err(BAD),
            }
        };
        let nodes = num(n, &["node", "nodes"])?;
        let cpus = num(c, &["cpu", "cpus"])?;
        let size = match m.as_slice() {
            [v, "GiB"] => v.parse::<u64>().map_err(|_| BAD)?.checked_mul(1 << 30),
            [v, "MiB"] => v.parse::<u64>().map_err(|_| BAD)?.checked_mul(1 << 20),
            _ => return Err(BAD),
        }
        .ok_or(BAD)?;
        if nodes == 0 || nodes > 1024 {
            return Err(BAD);
        }
        (0..nodes)
            .fold(Self::builder(), |b, _| b.node(cpus as usize, size))
            .build()
    }

    /// Replays a captured sysfs node tree (`online`, `nodeN/cpulist`, `nodeN/meminfo`,
    /// `nodeN/distance`) with the same reader the Linux backend uses.
    pub fn from_sysfs_dir(dir: impl AsRef<Path>) -> Result<Self, NumaError> {
        let dir = dir.as_ref();
        let read = |p: &str| fs::read_to_string(dir.join(p)).ok();
        let topo = topology_from_sysfs(read, ProcessAllowed::default())?.ok_or(
            numaperf_core::SysfsFile::root("online").error(numaperf_core::FileProblem::Missing),
        )?;
        Ok(SimMachine::new(topo, &[]))
    }
}
