//! What a machine looks like: online nodes, their CPUs and memory, the distances between
//! them, and what this process may use. One trait; a table that needs no allocator
//! ([`FixedTopology`]) and (with `alloc`) an owned one ([`OwnedTopology`]).

use crate::error::NumaError;
use crate::memattrs::MemoryAttributes;
use crate::node::{CpuSet, NodeId, NodeMask};

/// The queries policy logic needs from a topology.
pub trait TopologyInfo {
    /// Online nodes.
    fn nodes(&self) -> &NodeMask;
    /// Online nodes that have memory (the kernel's `N_MEMORY`).
    fn memory_nodes(&self) -> &NodeMask;
    /// Online nodes that have CPUs.
    fn cpu_nodes(&self) -> &NodeMask;
    /// Nodes this process may allocate from (`Mems_allowed`, intersected with online).
    fn allowed_nodes(&self) -> &NodeMask;
    /// CPUs this process may run on (`Cpus_allowed`).
    fn allowed_cpus(&self) -> &CpuSet;
    /// The online nodes' records, sorted by id.
    fn node_list(&self) -> &[NodeInfo];
    /// Distance between two online nodes (10 = local), as in the SLIT.
    fn distance(&self, from: NodeId, to: NodeId) -> Option<u8>;

    /// The record of one node (`None` if the node is not online).
    fn node(&self, id: NodeId) -> Option<&NodeInfo> {
        let list = self.node_list();
        list.binary_search_by_key(&id, |n| n.id)
            .ok()
            .map(|i| &list[i])
    }

    /// A node's CPUs (`None` if the node is not online).
    fn node_cpus(&self, node: NodeId) -> Option<&CpuSet> {
        self.node(node).map(|n| &n.cpus)
    }

    /// A node's total memory in bytes (`None` if the node is not online).
    fn node_memory(&self, node: NodeId) -> Option<u64> {
        self.node(node).map(|n| n.mem_total)
    }

    /// The node a CPU belongs to.
    fn cpu_node(&self, cpu: usize) -> Option<NodeId> {
        self.node_list()
            .iter()
            .find(|n| n.cpus.contains(cpu))
            .map(|n| n.id)
    }

    /// Number of online nodes.
    fn node_count(&self) -> usize {
        self.nodes().count()
    }

    /// What the firmware tells about a memory node's bandwidth and latency from its best
    /// initiators, and its memory tier (`None`: nothing known, always so for a
    /// [`FixedTopology`]). See [`crate::memattrs`] for the queries over them.
    fn memory_attributes(&self, node: NodeId) -> Option<&MemoryAttributes> {
        let _ = node;
        None
    }
}

/// One node's facts: its id, CPUs and memory. Distances live in the topology's matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    id: NodeId,
    cpus: CpuSet,
    mem_total: u64,
    mem_free: u64,
}

impl NodeInfo {
    /// A node record: `mem_total` bytes of which `mem_free` were free when it was read.
    pub const fn new(id: NodeId, cpus: CpuSet, mem_total: u64, mem_free: u64) -> Self {
        NodeInfo {
            id,
            cpus,
            mem_total,
            mem_free,
        }
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The node's CPUs (empty for a memory-only node).
    pub fn cpus(&self) -> &CpuSet {
        &self.cpus
    }

    /// Total memory in bytes (0 for a CPU-only node).
    pub fn mem_total(&self) -> u64 {
        self.mem_total
    }

    /// Free memory in bytes when the topology was read.
    pub fn mem_free(&self) -> u64 {
        self.mem_free
    }

    /// Whether the node has memory.
    pub fn has_memory(&self) -> bool {
        self.mem_total > 0
    }
}

/// The node sets a table derives from its records, checked once when it is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Summary {
    online: NodeMask,
    memory: NodeMask,
    with_cpus: NodeMask,
    allowed: NodeMask,
    allowed_cpus: CpuSet,
    fallback: bool,
}

impl Summary {
    /// Checks records (sorted by id, no duplicates, no CPU in two nodes, ids below 1024)
    /// and a row-major distance matrix of `distances` entries (0: unknown, else n x n).
    fn of(
        list: &[NodeInfo],
        distances: usize,
        allowed_nodes: Option<NodeMask>,
        allowed_cpus: Option<CpuSet>,
    ) -> Result<Self, NumaError> {
        if list.is_empty() {
            return Err(NumaError::InvalidTopology(
                "a topology needs at least one node",
            ));
        }
        if distances != 0 && Some(distances) != list.len().checked_mul(list.len()) {
            return Err(NumaError::InvalidTopology(
                "a distance matrix must have one row of one entry per online node",
            ));
        }
        let mut online = NodeMask::new();
        let mut memory = NodeMask::new();
        let mut with_cpus = NodeMask::new();
        let mut all_cpus = CpuSet::new();
        for (i, n) in list.iter().enumerate() {
            if !n.id.is_valid() {
                return Err(NumaError::InvalidNode(n.id.get()));
            }
            if i > 0 && list[i - 1].id >= n.id {
                return Err(NumaError::InvalidTopology(
                    "nodes must be sorted by id, without duplicates",
                ));
            }
            online.add(n.id);
            if n.has_memory() {
                memory.add(n.id);
            }
            if !n.cpus.is_empty() {
                with_cpus.add(n.id);
            }
            if !all_cpus.intersection(&n.cpus).is_empty() {
                return Err(NumaError::InvalidTopology("a CPU belongs to two nodes"));
            }
            all_cpus = all_cpus.union(&n.cpus);
        }
        Ok(Summary {
            allowed: allowed_nodes.map_or(online, |a| a.intersection(&online)),
            allowed_cpus: allowed_cpus.unwrap_or(all_cpus),
            online,
            memory,
            with_cpus,
            fallback: false,
        })
    }
}

/// The distance at row `from`, column `to` (positions in the node list) of a row-major
/// matrix with rows `stride` apart; an empty matrix is the kernel's assumption (10 to
/// itself, 20 to others).
fn matrix_distance(
    list: &[NodeInfo],
    matrix: &[u8],
    stride: usize,
    from: NodeId,
    to: NodeId,
) -> Option<u8> {
    let at = |id: NodeId| list.binary_search_by_key(&id, |n| n.id).ok();
    let (row, col) = (at(from)?, at(to)?);
    Some(match matrix.get(row * stride + col) {
        Some(&d) => d,
        None if from == to => 10,
        None => 20,
    })
}

/// Implements [`TopologyInfo`] for a table with `nodes`, `summary` and a `distance` fn.
macro_rules! topology_info {
    () => {
        fn nodes(&self) -> &NodeMask {
            &self.summary.online
        }
        fn memory_nodes(&self) -> &NodeMask {
            &self.summary.memory
        }
        fn cpu_nodes(&self) -> &NodeMask {
            &self.summary.with_cpus
        }
        fn allowed_nodes(&self) -> &NodeMask {
            &self.summary.allowed
        }
        fn allowed_cpus(&self) -> &CpuSet {
            &self.summary.allowed_cpus
        }
        fn node_list(&self) -> &[NodeInfo] {
            &self.nodes
        }
        fn distance(&self, from: NodeId, to: NodeId) -> Option<u8> {
            self.distance_at(from, to)
        }
    };
}

/// A topology of at most `N` nodes that needs no allocator: the form a kernel-adjacent
/// allocator or a unikernel keeps on its stack or in a static.
///
/// Its size on 64-bit targets is `1080 + N * (544 + N)` bytes, rounded up to a multiple
/// of 8: a [`NodeInfo`] (544 bytes, most of them its 4096-bit CPU set) and a row of the
/// distance matrix per node, plus the node and CPU sets derived from them. So
/// `FixedTopology<4>` is 3272 bytes and `FixedTopology<8>` 5496 (a unit test checks these
/// figures). Nothing in it is allocated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedTopology<const N: usize> {
    nodes: heapless::Vec<NodeInfo, N>,
    distances: [[u8; N]; N],
    summary: Summary,
}

impl<const N: usize> FixedTopology<N> {
    /// A table from node records, sorted by id without duplicates and with no CPU in two
    /// nodes, and their distance matrix: row-major, `distances[i * n + j]` from the i-th
    /// to the j-th record, or empty for "unknown" (10 to itself, 20 to others, as the
    /// kernel assumes).
    ///
    /// `allowed_nodes`/`allowed_cpus`: the process's cpuset (`None`: everything online).
    ///
    /// # Errors
    /// [`NumaError::InvalidTopology`] for no nodes or more than `N`, unsorted or
    /// duplicate ids, a matrix that is neither empty nor n x n, or a CPU in two nodes;
    /// [`NumaError::InvalidNode`] for an id beyond 1023.
    pub fn new(
        nodes: &[NodeInfo],
        distances: &[u8],
        allowed_nodes: Option<NodeMask>,
        allowed_cpus: Option<CpuSet>,
    ) -> Result<Self, NumaError> {
        let summary = Summary::of(nodes, distances.len(), allowed_nodes, allowed_cpus)?;
        let nodes: heapless::Vec<NodeInfo, N> = heapless::Vec::from_slice(nodes)
            .map_err(|_| NumaError::InvalidTopology("more than N nodes"))?;
        let n = nodes.len();
        let mut matrix = [[0u8; N]; N];
        for (i, row) in matrix.iter_mut().enumerate().take(n) {
            for (j, d) in row.iter_mut().enumerate().take(n) {
                *d = match distances.get(i * n + j) {
                    Some(&d) => d,
                    None if i == j => 10,
                    None => 20,
                };
            }
        }
        Ok(FixedTopology {
            nodes,
            distances: matrix,
            summary,
        })
    }

    /// A topology from firmware-style tables, the way a kernel-adjacent allocator knows
    /// its machine: node `i` (id `i`) has `cpus[i]`, `memory[i]` bytes, and the SLIT row
    /// `distances[i]`. No allocator is needed; the process may use everything.
    ///
    /// ```
    /// use numaperf_core::{CpuSet, FixedTopology, NodeId, TopologyInfo};
    /// let t = FixedTopology::<2>::from_tables(
    ///     [CpuSet::single(0), CpuSet::new()],      // node 1: memory only
    ///     [1 << 30, 4 << 30],
    ///     [[10, 31], [31, 10]],
    /// )?;
    /// assert_eq!(t.distance(NodeId::new(0), NodeId::new(1)), Some(31));
    /// assert!(t.node_cpus(NodeId::new(1)).unwrap().is_empty());
    /// # Ok::<(), numaperf_core::NumaError>(())
    /// ```
    ///
    /// # Errors
    /// As [`FixedTopology::new`] (a CPU in two nodes, ...).
    pub fn from_tables(
        cpus: [CpuSet; N],
        memory: [u64; N],
        distances: [[u8; N]; N],
    ) -> Result<Self, NumaError> {
        let mut nodes = heapless::Vec::<NodeInfo, N>::new();
        for i in 0..N {
            let node = NodeInfo::new(NodeId::new(i as u32), cpus[i], memory[i], memory[i]);
            nodes
                .push(node)
                .map_err(|_| NumaError::InvalidTopology("more than N nodes"))?;
        }
        let summary = Summary::of(&nodes, N * N, None, None)?;
        Ok(FixedTopology {
            nodes,
            distances,
            summary,
        })
    }

    /// The same table, marked as assumed rather than read (see
    /// [`OwnedTopology::into_fallback`]).
    pub fn into_fallback(mut self) -> Self {
        self.summary.fallback = true;
        self
    }

    /// Whether this table is an assumed one-node machine rather than what the system
    /// described; `false` for every table built in code.
    pub fn is_fallback(&self) -> bool {
        self.summary.fallback
    }

    fn distance_at(&self, from: NodeId, to: NodeId) -> Option<u8> {
        matrix_distance(&self.nodes, self.distances.as_flattened(), N, from, to)
    }
}

impl<const N: usize> TopologyInfo for FixedTopology<N> {
    topology_info!();
}

#[cfg(feature = "alloc")]
pub use owned::OwnedTopology;

#[cfg(feature = "alloc")]
mod owned {
    use super::{matrix_distance, NodeInfo, Summary, TopologyInfo};
    use crate::error::NumaError;
    use crate::memattrs::MemoryAttributes;
    use crate::node::{CpuSet, NodeId, NodeMask};
    use alloc::vec::Vec;

    /// A topology of any size, owned: what a backend reads from the system, with the
    /// memory attributes of the nodes that have any.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct OwnedTopology {
        nodes: Vec<NodeInfo>,
        distances: Vec<u8>,
        summary: Summary,
        /// Sorted by node id; only nodes with something known.
        attributes: Vec<(NodeId, MemoryAttributes)>,
    }

    impl OwnedTopology {
        /// A table from node records and their distance matrix, as
        /// [`FixedTopology::new`](super::FixedTopology::new) takes them.
        ///
        /// # Errors
        /// As [`FixedTopology::new`](super::FixedTopology::new), without its size limit.
        pub fn new(
            nodes: Vec<NodeInfo>,
            distances: Vec<u8>,
            allowed_nodes: Option<NodeMask>,
            allowed_cpus: Option<CpuSet>,
        ) -> Result<Self, NumaError> {
            let summary = Summary::of(&nodes, distances.len(), allowed_nodes, allowed_cpus)?;
            Ok(OwnedTopology {
                nodes,
                distances,
                summary,
                attributes: Vec::new(),
            })
        }

        /// The same table with these nodes' memory attributes (replacing any it had);
        /// entries with nothing known are dropped.
        ///
        /// # Errors
        /// [`NumaError::InvalidTopology`] for an attribute of a node that is not online or
        /// has no memory, a node given twice, or figures whose initiators are not online.
        pub fn with_memory_attributes(
            mut self,
            mut attributes: Vec<(NodeId, MemoryAttributes)>,
        ) -> Result<Self, NumaError> {
            attributes.retain(|(_, a)| !a.is_empty());
            attributes.sort_by_key(|(n, _)| *n);
            if attributes.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(NumaError::InvalidTopology(
                    "memory attributes given twice for a node",
                ));
            }
            for (node, attrs) in &attributes {
                if !self.summary.memory.contains(*node) {
                    return Err(NumaError::InvalidTopology(
                        "memory attributes for a node that is not an online memory node",
                    ));
                }
                let initiators_online = crate::memattrs::AccessClass::ALL
                    .into_iter()
                    .filter_map(|c| attrs.figures(c))
                    .all(|f| f.initiators.is_subset(&self.summary.online));
                if !initiators_online {
                    return Err(NumaError::InvalidTopology(
                        "memory attributes name an initiator that is not online",
                    ));
                }
            }
            self.attributes = attributes;
            Ok(self)
        }

        /// The same table, marked as assumed rather than read: a backend that found no
        /// NUMA description (a kernel without NUMA sysfs) describes the machine as one
        /// node holding every CPU and all memory, and says so with this mark.
        pub fn into_fallback(mut self) -> Self {
            self.summary.fallback = true;
            self
        }

        /// Whether this table is an assumed one-node machine rather than what the system
        /// described (see [`OwnedTopology::into_fallback`]); `false` for every table read
        /// from a node tree or built in code.
        pub fn is_fallback(&self) -> bool {
            self.summary.fallback
        }

        fn distance_at(&self, from: NodeId, to: NodeId) -> Option<u8> {
            matrix_distance(&self.nodes, &self.distances, self.nodes.len(), from, to)
        }
    }

    impl TopologyInfo for OwnedTopology {
        topology_info!();

        fn memory_attributes(&self, node: NodeId) -> Option<&MemoryAttributes> {
            let at = self.attributes.binary_search_by_key(&node, |(n, _)| *n);
            at.ok().map(|i| &self.attributes[i].1)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// A heapless topology for tests: `(id, cpus, MiB, row)` per node; every row empty
    /// (distances unknown) or all full.
    pub(crate) fn table(spec: &[(u32, &[usize], u64, &[u8])]) -> FixedTopology<8> {
        let nodes: Vec<NodeInfo> = spec
            .iter()
            .map(|(id, cpus, mib, _)| {
                let mem = mib << 20;
                NodeInfo::new(NodeId::new(*id), cpus.iter().copied().collect(), mem, mem)
            })
            .collect();
        let matrix: Vec<u8> = spec.iter().flat_map(|s| s.3.iter().copied()).collect();
        FixedTopology::new(&nodes, &matrix, None, None).unwrap()
    }

    fn node(id: u32, cpus: &[usize]) -> NodeInfo {
        NodeInfo::new(NodeId::new(id), cpus.iter().copied().collect(), 1, 1)
    }

    #[test]
    fn sparse_distance_rows_follow_the_online_list() {
        // Nodes {0, 2}: row index 1 is node 2, not node 1.
        let t = table(&[(0, &[0], 1024, &[10, 31]), (2, &[1], 1024, &[31, 10])]);
        assert_eq!(t.distance(NodeId::new(0), NodeId::new(2)), Some(31));
        assert_eq!(t.distance(NodeId::new(2), NodeId::new(2)), Some(10));
        assert_eq!(t.distance(NodeId::new(0), NodeId::new(1)), None);
        assert_eq!(t.cpu_node(1), Some(NodeId::new(2)));
        assert_eq!(t.node_count(), 2);
        assert_eq!(t.node(NodeId::new(2)).unwrap().mem_total(), 1 << 30);
        assert!(t.node(NodeId::new(1)).is_none());
    }

    #[test]
    fn memory_only_and_cpu_only_nodes() {
        let t = table(&[(0, &[0, 1], 0, &[]), (1, &[], 512, &[])]);
        assert_eq!(*t.memory_nodes(), NodeMask::single(NodeId::new(1)));
        assert_eq!(*t.cpu_nodes(), NodeMask::single(NodeId::new(0)));
        assert_eq!(t.distance(NodeId::new(0), NodeId::new(1)), Some(20));
        assert_eq!(t.distance(NodeId::new(1), NodeId::new(1)), Some(10));
    }

    #[test]
    fn bad_tables_are_errors() {
        let new = |nodes: &[NodeInfo], d: &[u8]| FixedTopology::<4>::new(nodes, d, None, None);
        assert!(new(&[node(1, &[]), node(0, &[])], &[]).is_err());
        assert!(new(&[], &[]).is_err());
        assert!(new(&[node(0, &[])], &[10, 20]).is_err());
        assert!(new(&[node(0, &[]), node(1, &[])], &[10, 20, 20]).is_err());
        let five: Vec<NodeInfo> = (0..5).map(|i| node(i, &[])).collect();
        assert_eq!(
            new(&five, &[]).unwrap_err(),
            NumaError::InvalidTopology("more than N nodes")
        );
        assert_eq!(
            new(&[node(0, &[0, 1]), node(1, &[1, 2])], &[]).unwrap_err(),
            NumaError::InvalidTopology("a CPU belongs to two nodes")
        );
        let t = new(&[node(0, &[0, 1]), node(1, &[2])], &[]).unwrap();
        assert!(!t.is_fallback() && t.into_fallback().is_fallback());
        assert_eq!(
            new(&[node(1024, &[])], &[]).unwrap_err(),
            NumaError::InvalidNode(1024)
        );
        let cpus = [CpuSet::single(0), CpuSet::single(0)];
        assert!(FixedTopology::<2>::from_tables(cpus, [1, 1], [[10, 20], [20, 10]]).is_err());
    }

    #[test]
    fn allowed_is_intersected_with_online() {
        let nodes = [node(0, &[0]), node(1, &[1])];
        let allowed: NodeMask = [1, 5].into_iter().map(NodeId::new).collect();
        let t = FixedTopology::<2>::new(&nodes, &[], Some(allowed), None).unwrap();
        assert_eq!(*t.allowed_nodes(), NodeMask::single(NodeId::new(1)));
        assert_eq!(t.allowed_cpus().count(), 2);
    }

    #[test]
    fn fixed_topology_size() {
        use core::mem::size_of;
        // The figures the rustdoc of `FixedTopology` gives, on 64-bit targets.
        if size_of::<usize>() == 8 {
            let formula = |n: usize| (1080 + n * (544 + n)).next_multiple_of(8);
            assert_eq!(size_of::<NodeInfo>(), 544);
            assert_eq!(size_of::<FixedTopology<1>>(), formula(1));
            assert_eq!(size_of::<FixedTopology<4>>(), formula(4));
            assert_eq!(size_of::<FixedTopology<4>>(), 3272);
            assert_eq!(size_of::<FixedTopology<8>>(), formula(8));
            assert_eq!(size_of::<FixedTopology<8>>(), 5496);
            assert_eq!(size_of::<FixedTopology<64>>(), formula(64));
        }
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn owned_and_fixed_answer_alike() {
        use std::vec;
        let nodes = vec![node(0, &[0]), node(3, &[1]), node(5, &[])];
        let d = vec![10, 21, 31, 21, 10, 17, 31, 17, 10];
        let owned = OwnedTopology::new(nodes.clone(), d.clone(), None, None).unwrap();
        let fixed = FixedTopology::<3>::new(&nodes, &d, None, None).unwrap();
        for a in owned.nodes().iter() {
            for b in owned.nodes().iter() {
                assert_eq!(owned.distance(a, b), fixed.distance(a, b));
            }
        }
        assert_eq!(owned.distance(NodeId::new(3), NodeId::new(5)), Some(17));
        assert_eq!(owned.node_list(), fixed.node_list());
        assert_eq!(owned.memory_nodes(), fixed.memory_nodes());
        let unknown = OwnedTopology::new(nodes, vec![], None, None).unwrap();
        assert_eq!(unknown.distance(NodeId::new(0), NodeId::new(5)), Some(20));
        assert_eq!(unknown.distance(NodeId::new(5), NodeId::new(5)), Some(10));
    }
}
