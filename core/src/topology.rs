//! What a machine looks like: online nodes, their CPUs and memory, distances, and what
//! this process may use. One generic table; a heapless form and (with `alloc`) an owned one.

use crate::error::NumaError;
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
    /// A node's CPUs (`None` if the node is not online).
    fn node_cpus(&self, node: NodeId) -> Option<&CpuSet>;
    /// A node's total memory in bytes (`None` if the node is not online).
    fn node_memory(&self, node: NodeId) -> Option<u64>;
    /// Distance between two online nodes (10 = local), as in the SLIT.
    fn distance(&self, from: NodeId, to: NodeId) -> Option<u8>;

    /// The node a CPU belongs to.
    fn cpu_node(&self, cpu: usize) -> Option<NodeId> {
        self.nodes()
            .iter()
            .find(|&n| self.node_cpus(n).is_some_and(|c| c.contains(cpu)))
    }

    /// Number of online nodes.
    fn node_count(&self) -> usize {
        self.nodes().count()
    }
}

/// One node's facts. `R` holds its distance row (ordered by the online node list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo<R> {
    id: NodeId,
    cpus: CpuSet,
    mem_total: u64,
    mem_free: u64,
    distances: R,
}

impl<R: AsRef<[u8]>> NodeInfo<R> {
    /// A node record. `distances[i]` is the distance to the i-th online node in id order;
    /// an empty row means "unknown" (10 to itself, 20 to others, as the kernel assumes).
    pub fn new(id: NodeId, cpus: CpuSet, mem_total: u64, mem_free: u64, distances: R) -> Self {
        NodeInfo {
            id,
            cpus,
            mem_total,
            mem_free,
            distances,
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

    /// The raw distance row, ordered by the online node list.
    pub fn distances(&self) -> &[u8] {
        self.distances.as_ref()
    }

    /// Whether the node has memory.
    pub fn has_memory(&self) -> bool {
        self.mem_total > 0
    }
}

/// A container of node records: a heapless or an owned vector, or a slice.
pub trait NodeList {
    /// The distance row type.
    type Row: AsRef<[u8]>;
    /// The records.
    fn records(&self) -> &[NodeInfo<Self::Row>];
}

impl<R: AsRef<[u8]>, const N: usize> NodeList for heapless::Vec<NodeInfo<R>, N> {
    type Row = R;
    fn records(&self) -> &[NodeInfo<R>] {
        self
    }
}

#[cfg(feature = "alloc")]
impl<R: AsRef<[u8]>> NodeList for alloc::vec::Vec<NodeInfo<R>> {
    type Row = R;
    fn records(&self) -> &[NodeInfo<R>] {
        self
    }
}

impl<R: AsRef<[u8]>> NodeList for &[NodeInfo<R>] {
    type Row = R;
    fn records(&self) -> &[NodeInfo<R>] {
        self
    }
}

/// A machine's topology: node records sorted by id, plus what this process may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeTable<C> {
    nodes: C,
    online: NodeMask,
    memory: NodeMask,
    with_cpus: NodeMask,
    allowed: NodeMask,
    allowed_cpus: CpuSet,
    fallback: bool,
}

/// A topology that needs no allocator: at most `N` nodes.
pub type FixedTopology<const N: usize> =
    NodeTable<heapless::Vec<NodeInfo<heapless::Vec<u8, N>>, N>>;

impl<const N: usize> FixedTopology<N> {
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
    /// As [`NodeTable::new`] (a CPU in two nodes, ...).
    pub fn from_tables(
        cpus: [CpuSet; N],
        memory: [u64; N],
        distances: [[u8; N]; N],
    ) -> Result<Self, NumaError> {
        let mut nodes = heapless::Vec::new();
        for i in 0..N {
            let row = heapless::Vec::from_slice(&distances[i])
                .map_err(|_| NumaError::InvalidTopology("a distance row longer than N"))?;
            let node = NodeInfo::new(NodeId::new(i as u32), cpus[i], memory[i], memory[i], row);
            nodes
                .push(node)
                .map_err(|_| NumaError::InvalidTopology("more than N nodes"))?;
        }
        NodeTable::new(nodes, None, None)
    }
}

/// A node record with an owned distance row.
#[cfg(feature = "alloc")]
pub type OwnedNodeInfo = NodeInfo<alloc::vec::Vec<u8>>;

/// A growable, owned topology.
#[cfg(feature = "alloc")]
pub type OwnedTopology = NodeTable<alloc::vec::Vec<OwnedNodeInfo>>;

impl<C: NodeList> NodeTable<C> {
    /// A table from node records, which must be sorted by id without duplicates, each with
    /// a distance row that is empty or as long as the node list, and no CPU in two nodes.
    ///
    /// `allowed_nodes`/`allowed_cpus`: the process's cpuset (`None`: everything online).
    ///
    /// # Errors
    /// [`NumaError::InvalidTopology`] for no nodes, unsorted or duplicate ids, a row of the
    /// wrong length or a CPU in two nodes; [`NumaError::InvalidNode`] for an id beyond 1023.
    pub fn new(
        nodes: C,
        allowed_nodes: Option<NodeMask>,
        allowed_cpus: Option<CpuSet>,
    ) -> Result<Self, NumaError> {
        let list = nodes.records();
        if list.is_empty() {
            return Err(NumaError::InvalidTopology(
                "a topology needs at least one node",
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
            let row = n.distances.as_ref().len();
            if row != 0 && row != list.len() {
                return Err(NumaError::InvalidTopology(
                    "a distance row must have one entry per online node",
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
        Ok(NodeTable {
            nodes,
            allowed: allowed_nodes.map_or(online, |a| a.intersection(&online)),
            allowed_cpus: allowed_cpus.unwrap_or(all_cpus),
            online,
            memory,
            with_cpus,
            fallback: false,
        })
    }

    /// The same table, marked as assumed rather than read: a backend that found no NUMA
    /// description (a kernel without NUMA sysfs) describes the machine as one node holding
    /// every CPU and all memory, and says so with this mark.
    pub fn into_fallback(mut self) -> Self {
        self.fallback = true;
        self
    }

    /// Whether this table is an assumed one-node machine rather than what the system
    /// described (see [`NodeTable::into_fallback`]); `false` for every table read from a
    /// node tree or built in code.
    pub fn is_fallback(&self) -> bool {
        self.fallback
    }

    /// The node records, sorted by id.
    pub fn node_list(&self) -> &[NodeInfo<C::Row>] {
        self.nodes.records()
    }

    /// The record of one node.
    pub fn node(&self, id: NodeId) -> Option<&NodeInfo<C::Row>> {
        self.position(id).map(|i| &self.nodes.records()[i])
    }

    fn position(&self, id: NodeId) -> Option<usize> {
        self.nodes
            .records()
            .binary_search_by_key(&id, |n| n.id)
            .ok()
    }
}

impl<C: NodeList> TopologyInfo for NodeTable<C> {
    fn nodes(&self) -> &NodeMask {
        &self.online
    }
    fn memory_nodes(&self) -> &NodeMask {
        &self.memory
    }
    fn cpu_nodes(&self) -> &NodeMask {
        &self.with_cpus
    }
    fn allowed_nodes(&self) -> &NodeMask {
        &self.allowed
    }
    fn allowed_cpus(&self) -> &CpuSet {
        &self.allowed_cpus
    }
    fn node_cpus(&self, node: NodeId) -> Option<&CpuSet> {
        self.node(node).map(|n| &n.cpus)
    }
    fn node_memory(&self, node: NodeId) -> Option<u64> {
        self.node(node).map(|n| n.mem_total)
    }
    fn distance(&self, from: NodeId, to: NodeId) -> Option<u8> {
        let row = self.node(from)?.distances.as_ref();
        let col = self.position(to)?;
        Some(match row.get(col) {
            Some(&d) => d,
            None if from == to => 10,
            None => 20,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;
    use super::*;
    use crate::node::IdSet;

    /// A heapless topology for tests: `(id, cpus, MiB, row)` per node.
    pub(crate) fn table(spec: &[(u32, &[usize], u64, &[u8])]) -> FixedTopology<8> {
        let mut nodes = heapless::Vec::new();
        for (id, cpus, mib, row) in spec {
            let cpus: CpuSet = cpus.iter().copied().collect();
            let row = heapless::Vec::from_slice(row).unwrap();
            let mem = mib << 20;
            nodes
                .push(NodeInfo::new(NodeId::new(*id), cpus, mem, mem, row))
                .ok()
                .unwrap();
        }
        NodeTable::new(nodes, None, None).unwrap()
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
    }

    #[test]
    fn memory_only_and_cpu_only_nodes() {
        let t = table(&[(0, &[0, 1], 0, &[]), (1, &[], 512, &[])]);
        assert_eq!(*t.memory_nodes(), NodeMask::single(NodeId::new(1)));
        assert_eq!(*t.cpu_nodes(), NodeMask::single(NodeId::new(0)));
        assert_eq!(t.distance(NodeId::new(0), NodeId::new(1)), Some(20));
    }

    #[test]
    fn bad_tables_are_errors() {
        let n = |id| {
            NodeInfo::new(
                NodeId::new(id),
                IdSet::new(),
                1,
                1,
                heapless::Vec::<u8, 4>::new(),
            )
        };
        let unsorted: heapless::Vec<_, 4> = [n(1), n(0)].into_iter().collect();
        assert!(NodeTable::new(unsorted, None, None).is_err());
        let empty: heapless::Vec<NodeInfo<heapless::Vec<u8, 4>>, 4> = heapless::Vec::new();
        assert!(NodeTable::new(empty, None, None).is_err());
        let bad_row: heapless::Vec<_, 4> = [NodeInfo::new(
            NodeId::new(0),
            IdSet::new(),
            1,
            1,
            heapless::Vec::<u8, 4>::from_slice(&[10, 20]).unwrap(),
        )]
        .into_iter()
        .collect();
        assert!(NodeTable::new(bad_row, None, None).is_err());
        let c = |id, cpus: &[usize]| {
            NodeInfo::new(
                NodeId::new(id),
                cpus.iter().copied().collect(),
                1,
                1,
                heapless::Vec::<u8, 4>::new(),
            )
        };
        let overlapping: heapless::Vec<_, 4> = [c(0, &[0, 1]), c(1, &[1, 2])].into_iter().collect();
        assert_eq!(
            NodeTable::new(overlapping, None, None).unwrap_err(),
            NumaError::InvalidTopology("a CPU belongs to two nodes")
        );
        let disjoint: heapless::Vec<_, 4> = [c(0, &[0, 1]), c(1, &[2])].into_iter().collect();
        let t = NodeTable::new(disjoint, None, None).unwrap();
        assert!(!t.is_fallback() && t.into_fallback().is_fallback());
        let too_big: heapless::Vec<_, 4> = [n(1024)].into_iter().collect();
        assert_eq!(
            NodeTable::new(too_big, None, None).unwrap_err(),
            NumaError::InvalidNode(1024)
        );
    }

    #[test]
    fn allowed_is_intersected_with_online() {
        let mut nodes: heapless::Vec<NodeInfo<heapless::Vec<u8, 2>>, 2> = heapless::Vec::new();
        for id in 0..2 {
            nodes
                .push(NodeInfo::new(
                    NodeId::new(id),
                    CpuSet::single(id as usize),
                    1,
                    1,
                    heapless::Vec::new(),
                ))
                .ok()
                .unwrap();
        }
        let allowed: NodeMask = [1, 5].into_iter().map(NodeId::new).collect();
        let t = NodeTable::new(nodes, Some(allowed), None).unwrap();
        assert_eq!(*t.allowed_nodes(), NodeMask::single(NodeId::new(1)));
        assert_eq!(t.allowed_cpus().count(), 2);
    }
}
