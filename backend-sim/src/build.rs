//! Ways to make a `SimMachine`: a builder in code, a short spec string for tests
//! ("2 nodes x 4 cpus x 1 GiB"), or a captured sysfs tree replayed through core's reader.

use std::fs;
use std::path::Path;

use numaperf_core::memattrs::{AccessClass, AccessFigures, MemoryAttributes};
use numaperf_core::sysfs::{topology_from_sysfs, ProcessAllowed};
use numaperf_core::{
    CpuSet, Errno, FileProblem, HugePages, NodeId, NodeInfo, NodeMask, NumaError, OwnedTopology,
    MAX_CPUS, MAX_NUMNODES,
};

use crate::machine::{SimMachine, PAGE_SIZE};

/// Builds a [`SimMachine`] node by node.
#[derive(Clone, Debug, Default)]
pub struct SimBuilder {
    nodes: Vec<(NodeId, usize, u64)>,
    distances: Vec<(NodeId, NodeId, u8)>,
    huge: Vec<(NodeId, u64, u64)>,
    allowed: Option<NodeMask>,
    page_size: Option<usize>,
    /// Memory attributes and tiers by node, as given (see `memattrs.rs`).
    attributes: Vec<(NodeId, MemoryAttributes)>,
    /// Devices attached with `device` (see `devices.rs`).
    pub(crate) devices: Vec<crate::devices::SimDevice>,
}

impl SimBuilder {
    /// Adds the next node (id = one past the last one added) with `cpus` CPUs, numbered
    /// after the CPUs of earlier nodes, and `mem` bytes (0: a CPU-only node). After a node
    /// with id `u32::MAX` the next id saturates, and [`SimBuilder::build`] refuses both.
    pub fn node(self, cpus: usize, mem: u64) -> Self {
        let id = self.nodes.last().map_or(0, |n| n.0.get().saturating_add(1));
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

    /// Gives a memory node the figures the firmware would give for one access class
    /// (`access0`: best initiators of any kind, `access1`: best CPU initiators), as the
    /// kernel shows them in `nodeN/accessC/initiators` (replacing earlier figures of that
    /// class). [`SimBuilder::build`] refuses a node that is not a memory node, and
    /// initiators that are not nodes of the machine.
    pub fn access_figures(mut self, node: u32, class: AccessClass, figures: AccessFigures) -> Self {
        let a = self.attributes_of(NodeId::new(node));
        *a = a.with_figures(class, figures);
        self
    }

    /// Puts a memory node in a memory tier (`memory_tierN`; DRAM is 4 by default).
    pub fn memory_tier(mut self, node: u32, tier: u32) -> Self {
        let a = self.attributes_of(NodeId::new(node));
        *a = a.with_tier(tier);
        self
    }

    fn attributes_of(&mut self, node: NodeId) -> &mut MemoryAttributes {
        let at = match self.attributes.iter().position(|(n, _)| *n == node) {
            Some(i) => i,
            None => {
                self.attributes.push((node, MemoryAttributes::new()));
                self.attributes.len() - 1
            }
        };
        &mut self.attributes[at].1
    }

    /// Limits the nodes this process may use, as a cgroup cpuset would.
    pub fn allowed_nodes(mut self, nodes: NodeMask) -> Self {
        self.allowed = Some(nodes);
        self
    }

    /// Sets the base page size in bytes (default [`PAGE_SIZE`], 4 KiB): e.g. 64 KiB, as
    /// Debian's 6.1 ppc64el kernel has. [`SimBuilder::build`] checks it.
    pub fn base_page_size(mut self, bytes: usize) -> Self {
        self.page_size = Some(bytes);
        self
    }

    /// The machine. Every limit is checked before any work is done.
    ///
    /// # Errors
    /// [`NumaError::LimitExceeded`] for more than 1024 `"nodes"`, more than 4096 `"cpus"`
    /// in all, or more than [`SimMachine::MAX_MEMORY`] `"bytes of memory"` (all nodes and
    /// huge page pools together; a sum that overflows counts as `u64::MAX`);
    /// [`NumaError::InvalidNode`] for an id beyond 1023; [`NumaError::InvalidTopology`]
    /// for duplicate or out-of-order ids, or no nodes; [`NumaError::InvalidConfig`] for a
    /// base page size that is not a power of two from 4 KiB to 1 MiB.
    pub fn build(self) -> Result<SimMachine, NumaError> {
        let page_size = checked_page_size(self.page_size.unwrap_or(PAGE_SIZE))?;
        let saturated = |n: Option<u64>| n.unwrap_or(u64::MAX);
        within("nodes", self.nodes.len() as u64, MAX_NUMNODES as u64)?;
        if let Some(&(id, ..)) = self.nodes.iter().find(|n| !n.0.is_valid()) {
            return Err(NumaError::InvalidNode(id.get()));
        }
        let cpus = self.nodes.iter().try_fold(0u64, |sum, n| {
            u64::try_from(n.1).ok().and_then(|c| sum.checked_add(c))
        });
        within("cpus", saturated(cpus), MAX_CPUS as u64)?;
        let huge = self.huge.iter().try_fold(0u64, |sum, &(_, h2, h1)| {
            let bytes = h2
                .checked_mul(2 << 20)?
                .checked_add(h1.checked_mul(1 << 30)?)?;
            sum.checked_add(bytes)
        });
        let mem = huge.and_then(|h| self.nodes.iter().try_fold(h, |sum, n| sum.checked_add(n.2)));
        within("bytes of memory", saturated(mem), SimMachine::MAX_MEMORY)?;
        // Below the limits nothing overflows: at most 4096 CPUs, 1024 nodes, 2^60 bytes.
        let mut next_cpu = 0;
        let ids: Vec<NodeId> = self.nodes.iter().map(|n| n.0).collect();
        let infos = self
            .nodes
            .iter()
            .map(|&(id, cpus, mem)| {
                let set: CpuSet = (next_cpu..next_cpu + cpus).collect();
                next_cpu += cpus;
                NodeInfo::new(id, set, mem, mem)
            })
            .collect();
        let matrix = ids
            .iter()
            .flat_map(|&from| ids.iter().map(move |&to| (from, to)))
            .map(|(from, to)| {
                let given = self
                    .distances
                    .iter()
                    .rev()
                    .find(|d| (d.0, d.1) == (from, to) || (d.1, d.0) == (from, to));
                given.map_or(if to == from { 10 } else { 21 }, |d| d.2)
            })
            .collect();
        let topo = OwnedTopology::new(infos, matrix, self.allowed, None)?
            .with_memory_attributes(self.attributes.clone())?;
        let devices = crate::devices::device_table(&self.devices, &topo)?;
        let mut machine = SimMachine::new(topo, &self.huge, page_size);
        machine.devices = devices;
        Ok(machine)
    }
}

/// The largest base page size a simulated machine may have: half the smallest huge page
/// (2 MiB), so that a huge page is always several base pages.
const MAX_PAGE_SIZE: usize = 1 << 20;

/// `bytes` as a base page size: a power of two from 4 KiB to [`MAX_PAGE_SIZE`].
fn checked_page_size(bytes: usize) -> Result<usize, NumaError> {
    if bytes.is_power_of_two() && (PAGE_SIZE..=MAX_PAGE_SIZE).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(NumaError::InvalidConfig {
            field: "base_page_size",
            reason: "must be a power of two from 4096 to 1048576 bytes",
        })
    }
}

/// `value` of `what`, or [`NumaError::LimitExceeded`] when it is beyond `limit`.
fn within(what: &'static str, value: u64, limit: u64) -> Result<(), NumaError> {
    if value > limit {
        return Err(NumaError::LimitExceeded { what, value, limit });
    }
    Ok(())
}

/// A spec number: ASCII digits only; a value beyond `u64` saturates (a limit refuses it).
fn spec_number(text: &str) -> Result<u64, NumaError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumaError::InvalidSpec("a count must be a decimal number"));
    }
    Ok(text.parse().unwrap_or(u64::MAX))
}

impl SimMachine {
    /// The most memory a simulated machine may have, all nodes and huge page pools
    /// together: 1 EiB (2^60 bytes), so every byte count the simulator sums fits a `u64`.
    pub const MAX_MEMORY: u64 = 1 << 60;

    /// A builder.
    pub fn builder() -> SimBuilder {
        SimBuilder::default()
    }

    /// A machine from a short spec: `"<n> nodes x <c> cpus x <size> GiB|MiB"`, every node
    /// alike (`<c>` CPUs and `<size>` each), distances 10 local / 21 remote.
    ///
    /// # Errors
    /// [`NumaError::InvalidSpec`] for text that is not such a spec, or 0 nodes;
    /// [`NumaError::LimitExceeded`] for more than 1024 `"nodes"`, more than 4096 `"cpus"`
    /// in all (`<n>` times `<c>`), or more than [`SimMachine::MAX_MEMORY`] `"bytes of
    /// memory"` in all; a product (or a number) beyond `u64` counts as `u64::MAX`. The
    /// limits are checked before any node is made.
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
                [v, u] if unit.contains(u) => spec_number(v),
                _ => Err(BAD),
            }
        };
        let nodes = num(n, &["node", "nodes"])?;
        let cpus = num(c, &["cpu", "cpus"])?;
        let (size, unit) = match m.as_slice() {
            [v, "GiB"] => (spec_number(v)?, 1u64 << 30),
            [v, "MiB"] => (spec_number(v)?, 1u64 << 20),
            _ => return Err(BAD),
        };
        if nodes == 0 {
            return Err(NumaError::InvalidSpec("a machine needs at least one node"));
        }
        within("nodes", nodes, MAX_NUMNODES as u64)?;
        within("cpus", nodes.saturating_mul(cpus), MAX_CPUS as u64)?;
        let bytes = size.saturating_mul(unit);
        within(
            "bytes of memory",
            nodes.saturating_mul(bytes),
            Self::MAX_MEMORY,
        )?;
        // Within the limits: cpus <= 4096 and bytes <= 2^60, so the casts are exact.
        (0..nodes)
            .fold(Self::builder(), |b, _| b.node(cpus as usize, bytes))
            .build()
    }

    /// Replays a captured sysfs node tree (`online`, `nodeN/cpulist`, `nodeN/meminfo`,
    /// `nodeN/distance`) with the same strict reader the Linux backend uses, and the
    /// memory attributes it carries (`nodeN/access0` and `access1`; memory tiers in
    /// `<dir>/../../virtual/memory_tiering`, where `/sys` has them), absent ones unknown.
    ///
    /// # Errors
    /// [`NumaError::Sysfs`] naming the file that is missing (for a `dir` that does not
    /// exist: `online`), unreadable, not text, malformed or inconsistent with the tree;
    /// [`NumaError::MemoryTierFile`] for a tier's bad `nodelist`.
    pub fn from_sysfs_dir(dir: impl AsRef<Path>) -> Result<Self, NumaError> {
        Self::from_sysfs_dir_with_page_size(dir, PAGE_SIZE)
    }

    /// As [`SimMachine::from_sysfs_dir`], with base pages of `page_size` bytes (those of
    /// the kernel whose tree it is, for a replay that counts pages as that kernel does).
    ///
    /// # Errors
    /// As [`SimMachine::from_sysfs_dir`]; [`NumaError::InvalidConfig`] for a page size
    /// [`SimBuilder::base_page_size`] refuses, checked before any file is read.
    pub fn from_sysfs_dir_with_page_size(
        dir: impl AsRef<Path>,
        page_size: usize,
    ) -> Result<Self, NumaError> {
        let page_size = checked_page_size(page_size)?;
        let dir = dir.as_ref();
        let read = |p: &str| {
            let bytes = fs::read(dir.join(p)).map_err(|e| match e.raw_os_error() {
                _ if e.kind() == std::io::ErrorKind::NotFound => FileProblem::Missing,
                Some(raw) => FileProblem::Unreadable(Errno::from_raw(raw)),
                None => FileProblem::Unreadable(Errno::EIO),
            })?;
            String::from_utf8(bytes).map_err(|_| FileProblem::NotText)
        };
        let topo = topology_from_sysfs(read, ProcessAllowed::default())?;
        let attributes = crate::memattrs::read_attributes(dir, &topo)?;
        let topo = topo.with_memory_attributes(attributes)?;
        Ok(SimMachine::new(topo, &[], page_size))
    }
}
