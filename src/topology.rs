//! `Topology`: the machine's nodes, CPUs, memory and distances, owned and printable
//! the way `numactl --hardware` prints them.

use numaperf_core::memattrs::{self, BestTarget, MemoryAttributes, TargetMetric};
use numaperf_core::{
    CpuSet, KernelWeights, NodeId, NodeInfo, NodeMask, NodeWeights, NumaError, OwnedTopology,
    PlacementBackend, TopologyInfo,
};

/// One NUMA node of a [`Topology`]: its id, CPUs and memory (the core's [`NodeInfo`]).
pub type NumaNode = NodeInfo;

/// A snapshot of the machine's NUMA topology.
///
/// ```
/// use numaperf::Topology;
/// let topo = Topology::discover()?;
/// assert!(topo.node_count() >= 1);
/// for node in topo.numa_nodes() {
///     // Distances to itself are 10, the kernel's "local".
///     assert_eq!(topo.distance(node.id(), node.id()), Some(10));
/// }
/// println!("{topo}"); // the layout of `numactl --hardware`
/// # Ok::<(), numaperf::NumaError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    table: OwnedTopology,
    weights: Option<KernelWeights>,
}

impl Topology {
    /// Reads this machine's topology now (`/sys/devices/system/node`, `/proc/self/status`);
    /// one node holding all CPUs where the kernel has no NUMA sysfs. Elsewhere than Linux:
    /// one node with the machine's CPUs and memory, as the [`crate::PortableBackend`] sees it.
    ///
    /// # Errors
    /// [`NumaError::Sysfs`] naming the file when the kernel's tree cannot be read;
    /// elsewhere [`NumaError::Unsupported`] when the OS tells neither CPUs nor memory.
    pub fn discover() -> Result<Self, NumaError> {
        #[cfg(all(target_os = "linux", not(feature = "portable")))]
        {
            let table = numaperf_linux::read_topology(numaperf_linux::SYSFS_NODE_ROOT)?;
            let weights = numaperf_linux::kernel_weights(table.nodes())?;
            Ok(Topology { table, weights })
        }
        #[cfg(any(not(target_os = "linux"), feature = "portable"))]
        {
            Self::of_backend(&crate::DefaultBackend::shared()?)
        }
    }

    /// The topology a backend sees, with its kernel's weighted-interleave table.
    ///
    /// # Errors
    /// As [`Topology::from_info`], and the backend's errors reading the table.
    pub fn of_backend(backend: &(impl PlacementBackend + ?Sized)) -> Result<Self, NumaError> {
        let mut t = Self::from_info(backend.topology())?;
        t.weights = backend.kernel_weights()?;
        Ok(t)
    }

    /// The kernel's global weighted-interleave weights and whether they are in `auto`
    /// mode (`None`: a kernel without weighted interleave, or a topology not read from a
    /// kernel). numaperf reads them and never writes them: a region whose weights differ
    /// is laid out in chunks instead (see `MemPolicy::WeightedInterleave`).
    pub fn kernel_weights(&self) -> Option<&KernelWeights> {
        self.weights.as_ref()
    }

    /// A topology copied from anything that answers [`TopologyInfo`] (a backend's).
    ///
    /// # Errors
    /// [`NumaError::InvalidTopology`] when the source is not a machine.
    pub fn from_info(info: &(impl TopologyInfo + ?Sized)) -> Result<Self, NumaError> {
        let nodes = info.node_list();
        let distances = nodes
            .iter()
            .flat_map(|a| nodes.iter().map(move |b| (a.id(), b.id())))
            .map(|(a, b)| info.distance(a, b).unwrap_or(0))
            .collect();
        let attributes = nodes
            .iter()
            .filter_map(|n| info.memory_attributes(n.id()).map(|a| (n.id(), *a)))
            .collect();
        let table = OwnedTopology::new(
            nodes.to_vec(),
            distances,
            Some(*info.allowed_nodes()),
            Some(*info.allowed_cpus()),
        )?
        .with_memory_attributes(attributes)?;
        Ok(Topology {
            table,
            weights: None,
        })
    }

    /// Number of online nodes.
    pub fn node_count(&self) -> usize {
        self.table.node_count()
    }

    /// The online nodes, by id.
    pub fn numa_nodes(&self) -> &[NumaNode] {
        self.table.node_list()
    }

    /// One node.
    pub fn node(&self, id: NodeId) -> Option<&NumaNode> {
        self.table.node(id)
    }

    /// The set of online nodes.
    pub fn nodes(&self) -> NodeMask {
        *self.table.nodes()
    }

    /// Online nodes that have memory.
    pub fn memory_nodes(&self) -> NodeMask {
        *self.table.memory_nodes()
    }

    /// Nodes this process may allocate from.
    pub fn allowed_nodes(&self) -> NodeMask {
        *self.table.allowed_nodes()
    }

    /// CPUs this process may run on.
    pub fn allowed_cpus(&self) -> CpuSet {
        *self.table.allowed_cpus()
    }

    /// Distance between two nodes (10 = local).
    pub fn distance(&self, from: NodeId, to: NodeId) -> Option<u8> {
        self.table.distance(from, to)
    }

    /// The node a CPU belongs to.
    pub fn cpu_node(&self, cpu: usize) -> Option<NodeId> {
        self.table.cpu_node(cpu)
    }

    /// A memory node's bandwidth and latency figures from its best initiators and its
    /// memory tier, as the kernel tells them (`None`: nothing known).
    pub fn memory_attributes(&self, node: NodeId) -> Option<&MemoryAttributes> {
        self.table.memory_attributes(node)
    }

    /// The best memory node this process may use for work on `cpus`, by bandwidth,
    /// latency or capacity (hwloc's `get_best_target`; see
    /// [`numaperf_core::memattrs::best_target`] for the rules).
    ///
    /// ```
    /// use numaperf::numa_core::memattrs::{AccessClass, AccessFigures, TargetMetric};
    /// use numaperf::{CpuSet, NodeId, NodeMask, Topology};
    /// // DRAM node 0 with CPU 0; CXL node 1, four times larger, slower from node 0.
    /// let from0 = |bw, lat| AccessFigures {
    ///     initiators: NodeMask::single(NodeId::new(0)),
    ///     read_bandwidth: Some(bw), write_bandwidth: Some(bw),
    ///     read_latency: Some(lat), write_latency: Some(lat),
    /// };
    /// let sim = numaperf_sim::SimMachine::builder()
    ///     .node(1, 64 << 20)
    ///     .node(0, 256 << 20)
    ///     .access_figures(0, AccessClass::CpuInitiator, from0(10240, 10))
    ///     .access_figures(1, AccessClass::CpuInitiator, from0(2048, 40))
    ///     .build()?;
    /// let topo = Topology::of_backend(&sim)?;
    /// let cpu0 = CpuSet::single(0);
    /// assert_eq!(topo.best_target(&cpu0, TargetMetric::Bandwidth).unwrap().node, NodeId::new(0));
    /// assert_eq!(topo.best_target(&cpu0, TargetMetric::Latency).unwrap().value, 10);
    /// assert_eq!(topo.best_target(&cpu0, TargetMetric::Capacity).unwrap().node, NodeId::new(1));
    /// # Ok::<(), numaperf::NumaError>(())
    /// ```
    pub fn best_target(&self, cpus: &CpuSet, metric: TargetMetric) -> Option<BestTarget> {
        memattrs::best_target(&self.table, cpus, metric)
    }

    /// Weighted-interleave weights for the memory nodes of `nodes` in proportion to their
    /// bandwidth, as the kernel's `auto` mode derives its global table (see
    /// [`numaperf_core::memattrs::bandwidth_weights`]); for a region's
    /// `MemPolicy::WeightedInterleave`, which never touches the global table. `None` when
    /// no node of `nodes` has a bandwidth figure.
    pub fn bandwidth_weights(&self, nodes: &NodeMask) -> Option<NodeWeights> {
        memattrs::bandwidth_weights(&self.table, nodes)
    }

    /// The underlying table (implements [`TopologyInfo`]).
    pub fn table(&self) -> &OwnedTopology {
        &self.table
    }
}

impl From<OwnedTopology> for Topology {
    fn from(table: OwnedTopology) -> Self {
        Topology {
            table,
            weights: None,
        }
    }
}

impl TopologyInfo for Topology {
    fn nodes(&self) -> &NodeMask {
        self.table.nodes()
    }
    fn memory_nodes(&self) -> &NodeMask {
        self.table.memory_nodes()
    }
    fn cpu_nodes(&self) -> &NodeMask {
        self.table.cpu_nodes()
    }
    fn allowed_nodes(&self) -> &NodeMask {
        self.table.allowed_nodes()
    }
    fn allowed_cpus(&self) -> &CpuSet {
        self.table.allowed_cpus()
    }
    fn node_list(&self) -> &[NodeInfo] {
        self.table.node_list()
    }
    fn distance(&self, from: NodeId, to: NodeId) -> Option<u8> {
        self.table.distance(from, to)
    }
    fn memory_attributes(&self, node: NodeId) -> Option<&MemoryAttributes> {
        self.table.memory_attributes(node)
    }
}
