//! The one error type of numaperf, usable without std: one variant per condition a
//! caller would branch on. `Display` works everywhere; `std::error::Error` and
//! `From<NumaError> for std::io::Error` come with the `std` feature.

use core::fmt;

use crate::device::DeviceRef;
use crate::errno::Errno;
use crate::node::NodeId;
use crate::parse::ParseError;

/// Everything that can go wrong when placing memory.
///
/// ```
/// use numaperf_core::{CpuSet, FixedTopology, MemPolicy, NodeId, NodeInfo, NodeMask,
///     NumaError, RegionOptions};
/// // One node with CPU 0 and 1 GiB.
/// let nodes = [NodeInfo::new(NodeId::new(0), CpuSet::single(0), 1 << 30, 1 << 30)];
/// let topo = FixedTopology::<1>::new(&nodes, &[10], None, None)?;
/// let policy = MemPolicy::Bind(NodeMask::single(NodeId::new(3)));
/// match policy.validate(&RegionOptions::default(), &topo) {
///     Err(NumaError::NodeNotFound(n)) => assert_eq!(n, NodeId::new(3)),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), NumaError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NumaError {
    /// A region, buffer or allocation of 0 bytes was asked for.
    ZeroSize,
    /// `len` does not fit in `isize::MAX` once rounded up to whole `unit`s (or a product
    /// of sizes overflowed).
    SizeOverflow {
        /// The length asked for.
        len: usize,
        /// The unit it is rounded to (a page size), or the factor it was multiplied by.
        unit: usize,
    },
    /// A policy that needs nodes was given an empty mask.
    EmptyNodeMask,
    /// A node id beyond 1023 (the kernel's `MAX_NUMNODES`).
    InvalidNode(u32),
    /// A weighted-interleave weight outside 1..=255.
    InvalidWeight {
        /// The node the weight was given to.
        node: u32,
        /// The weight given.
        weight: u32,
    },
    /// The node is not online on this machine.
    NodeNotFound(NodeId),
    /// The node exists, but this process may not use it (cpuset / cgroup `Mems_allowed`).
    NodeNotAllowed(NodeId),
    /// The node has no memory (a CPU-only node), so nothing can be placed there.
    NoMemoryOnNode(NodeId),
    /// No node this process may use has memory (or, for a pool, no node was usable).
    NoUsableNode,
    /// A policy combined with an option it does not take.
    IncompatibleOption(OptionConflict),
    /// A CPU number beyond what a [`crate::CpuSet`] holds (4096).
    InvalidCpu(u32),
    /// An empty CPU set where CPUs are needed (pinning to no CPU).
    EmptyCpuSet,
    /// The CPU is not online, or not among the CPUs this process may run on.
    CpuNotAllowed(u32),
    /// The node has no CPU this thread may run on (a memory-only node, or a cpuset).
    NoCpusOnNode(NodeId),
    /// No node has a CPU this process may run on.
    NoUsableCpu,
    /// This kernel lacks a feature; `feature` names it and `since` the first Linux that has it.
    Unsupported {
        /// The kernel feature, e.g. `"MPOL_WEIGHTED_INTERLEAVE"`.
        feature: &'static str,
        /// The first kernel version that has it, e.g. `"Linux 6.9"`.
        since: &'static str,
    },
    /// The nodes the policy allows lack the free memory the region needs, or the
    /// process's memory cgroup (or an ancestor) lacks the headroom for it.
    InsufficientMemory {
        /// Bytes the region needs.
        requested: u64,
        /// Bytes free on the allowed nodes when checked, or the cgroup's headroom when
        /// that is what is short.
        available: u64,
    },
    /// Explicit huge pages of this size are not reserved (or none are free on the
    /// policy's nodes; see `/sys/devices/system/node/node*/hugepages`).
    HugePagesUnavailable {
        /// The huge page size in bytes.
        page_size: usize,
    },
    /// The kernel refused the operation for lack of privilege (or a seccomp filter).
    PermissionDenied {
        /// The operation that was refused.
        op: &'static str,
    },
    /// A page outside the allowed nodes, or not present, where every page must be placed.
    PlacementViolated {
        /// Index of the first offending page in the region.
        page: usize,
        /// Where that page was (`None`: not present).
        found: Option<NodeId>,
    },
    /// Text given by the caller could not be parsed (a node list).
    Parse(ParseError),
    /// A topology file (sysfs, procfs, or a captured copy) is missing or malformed.
    Sysfs {
        /// The file, relative to the tree's root.
        file: SysfsFile,
        /// What is wrong with it.
        problem: FileProblem,
    },
    /// A topology built in code is not a machine (no nodes, unsorted ids, bad rows).
    InvalidTopology(&'static str),
    /// A value beyond a documented limit.
    LimitExceeded {
        /// What was counted, e.g. `"cpus"`.
        what: &'static str,
        /// The value given (saturated at `u64::MAX`).
        value: u64,
        /// The largest value allowed.
        limit: u64,
    },
    /// A simulator spec string that does not read like `"2 nodes x 4 cpus x 1 GiB"`.
    InvalidSpec(&'static str),
    /// A mapping token this backend did not make (or has unmapped).
    ForeignMapping,
    /// Pages `first..first + count` are not all inside a mapping of `pages` pages.
    PageRangeOutOfBounds {
        /// First page asked for.
        first: usize,
        /// Pages asked for.
        count: usize,
        /// Pages in the mapping.
        pages: usize,
    },
    /// A pool configuration that cannot work.
    InvalidConfig {
        /// The field, e.g. `"max_per_node"`.
        field: &'static str,
        /// Why, e.g. `"must be > 0"`.
        reason: &'static str,
    },
    /// The pool is shutting down and takes no more work.
    PoolShutDown,
    /// A byte range to place that holds no whole page (placement works on whole pages).
    NoWholePage {
        /// Bytes in the range.
        len: usize,
        /// The page size.
        page_size: usize,
    },
    /// The range is (partly) an ordinary file mapping: its page-cache pages stay where the
    /// file was read, whatever policy the mapping is given.
    FileBackedMemory,
    /// A handle to open as a shared region that is not a shared-memory object (a memfd,
    /// tmpfs/shm or hugetlbfs file) of this backend: a policy would not hold for it.
    NotSharedMemory,
    /// A shared-memory file not sealed against shrinking (`F_SEAL_SHRINK`): anyone holding
    /// a descriptor of it could cut it short under a mapping, whose next access then
    /// faults (`SIGBUS`). numaperf's own memfds are sealed; tmpfs, `/dev/shm` and
    /// hugetlbfs files opened by path cannot be.
    SharedObjectUnsealed,
    /// A shared-memory object smaller than the length asked to map of it.
    SharedObjectTooSmall {
        /// Bytes asked for.
        len: usize,
        /// The object's size in bytes.
        size: u64,
    },
    /// Bytes `offset..offset + len` are not all inside a region of `size` bytes.
    ByteRangeOutOfBounds {
        /// First byte asked for.
        offset: usize,
        /// Bytes asked for.
        len: usize,
        /// Bytes in the region.
        size: usize,
    },
    /// No device of this name (a `netdev:`, `block:`, `pci:` or `file:` form's device).
    DeviceNotFound(DeviceRef),
    /// The device exists, but the kernel tells no node for it (not on PCI, or neither
    /// `numa_node` nor `local_cpulist` says).
    DeviceLocalityUnknown(DeviceRef),
    /// A device's sysfs file is missing, unreadable or malformed.
    DeviceFile {
        /// The device; its sysfs directory is `device.kind.sysfs_dir()/name`.
        device: DeviceRef,
        /// The file in that directory (`""`: the directory or link itself).
        file: &'static str,
        /// What is wrong with it.
        problem: FileProblem,
    },
    /// A memory tier's `nodelist` (`/sys/devices/virtual/memory_tiering/memory_tierN`)
    /// that is unreadable, malformed or names a node twice or not online.
    MemoryTierFile {
        /// The tier number `N`.
        tier: u32,
        /// What is wrong with it.
        problem: FileProblem,
    },
    /// An operating-system call failed with this errno.
    Os {
        /// The call, e.g. `"mbind"`.
        op: &'static str,
        /// The errno it returned.
        errno: Errno,
    },
}

/// Which combination of a policy and options cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionConflict {
    /// `NodeMode::Static` or `Relative` with `MemPolicy::Local` (which names no nodes).
    NodeModeOnLocal,
    /// `numa_balancing` with a policy other than `Bind` or `PreferredMany`.
    BalancingNeedsBindOrPreferredMany,
    /// `home_node` with a policy other than `Bind` or `PreferredMany`.
    HomeNodeNeedsBindOrPreferredMany,
    /// `hard` with a policy other than `Bind`.
    HardNeedsBind,
}

impl fmt::Display for OptionConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OptionConflict::NodeModeOnLocal => "Local takes no static/relative node flag",
            OptionConflict::BalancingNeedsBindOrPreferredMany => {
                "the NUMA balancing flag applies to Bind and PreferredMany only"
            }
            OptionConflict::HomeNodeNeedsBindOrPreferredMany => {
                "a home node applies to Bind and PreferredMany only"
            }
            OptionConflict::HardNeedsBind => "hard enforcement needs MemPolicy::Bind",
        })
    }
}

/// A topology file, named relative to the root of its tree: `node1/distance`, `online`,
/// or an absolute procfs path such as `/proc/self/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysfsFile {
    /// The node directory it is in (`None`: at the root, or an absolute path).
    pub node: Option<NodeId>,
    /// The file name (below the node directory when `node` is set).
    pub name: &'static str,
}

impl SysfsFile {
    /// A file at the root of the tree (or an absolute path).
    pub const fn root(name: &'static str) -> Self {
        SysfsFile { node: None, name }
    }

    /// A file in `node<id>/`.
    pub const fn node(node: NodeId, name: &'static str) -> Self {
        SysfsFile {
            node: Some(node),
            name,
        }
    }

    /// The error for this file with `problem`.
    pub const fn error(self, problem: FileProblem) -> NumaError {
        NumaError::Sysfs {
            file: self,
            problem,
        }
    }
}

impl fmt::Display for SysfsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node {
            Some(n) => write!(f, "node{n}/{}", self.name),
            None => f.write_str(self.name),
        }
    }
}

/// What is wrong with a topology file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileProblem {
    /// The file does not exist.
    Missing,
    /// It exists but could not be read (a directory gives `EISDIR`).
    Unreadable(Errno),
    /// Its content is not UTF-8 text, or longer than the reader's buffer.
    NotText,
    /// Its content does not parse.
    Malformed(ParseError),
    /// A line the file must have is absent (e.g. `"MemTotal:"`).
    MissingField(&'static str),
    /// It parses, but disagrees with the rest of the tree.
    Inconsistent(&'static str),
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileProblem::Missing => f.write_str("missing"),
            FileProblem::Unreadable(e) => write!(f, "unreadable ({e})"),
            FileProblem::NotText => f.write_str("not text, or too long"),
            FileProblem::Malformed(e) => write!(f, "malformed: {e}"),
            FileProblem::MissingField(name) => write!(f, "has no {name} line"),
            FileProblem::Inconsistent(why) => f.write_str(why),
        }
    }
}

impl From<ParseError> for NumaError {
    fn from(e: ParseError) -> Self {
        NumaError::Parse(e)
    }
}

impl NumaError {
    /// The typed error for a failed call's errno: `EPERM`/`EACCES` become
    /// [`NumaError::PermissionDenied`], everything else [`NumaError::Os`].
    /// (Callers that know more, such as "EINVAL here means the kernel lacks the mode",
    /// decide that before calling this.)
    pub const fn from_errno(op: &'static str, errno: Errno) -> Self {
        if errno.is_permission() {
            NumaError::PermissionDenied { op }
        } else {
            NumaError::Os { op, errno }
        }
    }

    /// The errno behind an [`NumaError::Os`] error.
    pub const fn errno(&self) -> Option<Errno> {
        match self {
            NumaError::Os { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

impl fmt::Display for NumaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumaError::ZeroSize => f.write_str("size 0"),
            NumaError::SizeOverflow { len, unit } => write!(
                f,
                "size {len} overflows when rounded to whole units of {unit} bytes"
            ),
            NumaError::EmptyNodeMask => f.write_str("empty node mask"),
            NumaError::InvalidNode(id) => {
                write!(f, "node id {id} is beyond the kernel's limit of 1023")
            }
            NumaError::InvalidWeight { node, weight } => write!(
                f,
                "node {node} has interleave weight {weight}; weights are 1..=255"
            ),
            NumaError::NodeNotFound(n) => write!(f, "node {n} is not online on this machine"),
            NumaError::NodeNotAllowed(n) => {
                write!(f, "node {n} is outside this process's allowed nodes (cpuset)")
            }
            NumaError::NoMemoryOnNode(n) => write!(f, "node {n} has no memory"),
            NumaError::NoUsableNode => {
                f.write_str("no node this process may use has memory for it")
            }
            NumaError::IncompatibleOption(c) => write!(f, "{c}"),
            NumaError::InvalidCpu(id) => write!(f, "cpu {id} is beyond the supported 4095"),
            NumaError::EmptyCpuSet => f.write_str("empty CPU set"),
            NumaError::CpuNotAllowed(c) => write!(
                f,
                "cpu {c} is not online or not among the CPUs this process may use"
            ),
            NumaError::NoCpusOnNode(n) => {
                write!(f, "node {n} has no CPU this thread may run on")
            }
            NumaError::NoUsableCpu => f.write_str("no node has a CPU this process may use"),
            NumaError::Unsupported { feature, since } => {
                write!(f, "{feature} is not supported here (needs {since})")
            }
            NumaError::InsufficientMemory {
                requested,
                available,
            } => write!(
                f,
                "insufficient memory: {requested} bytes requested, {available} available (free on the allowed nodes, or the memory cgroup's headroom)"
            ),
            NumaError::HugePagesUnavailable { page_size } => write!(
                f,
                "no huge pages of {} KiB are free on the policy's nodes",
                page_size / 1024
            ),
            NumaError::PermissionDenied { op } => write!(f, "{op}: permission denied"),
            NumaError::PlacementViolated { page, found } => match found {
                Some(n) => write!(f, "page {page} is on node {n}, outside the allowed nodes"),
                None => write!(f, "page {page} is not present"),
            },
            NumaError::Parse(e) => write!(f, "{e}"),
            NumaError::Sysfs { file, problem } => write!(f, "{file}: {problem}"),
            NumaError::InvalidTopology(why) => write!(f, "not a topology: {why}"),
            NumaError::LimitExceeded { what, value, limit } => {
                write!(f, "{value} {what} is beyond the limit of {limit}")
            }
            NumaError::InvalidSpec(why) => write!(
                f,
                "{why}; a spec reads like \"2 nodes x 4 cpus x 1 GiB\""
            ),
            NumaError::ForeignMapping => f.write_str("the mapping is not this backend's"),
            NumaError::PageRangeOutOfBounds {
                first,
                count,
                pages,
            } => write!(
                f,
                "pages {first}..{} are outside a mapping of {pages} pages",
                first.saturating_add(*count)
            ),
            NumaError::InvalidConfig { field, reason } => write!(f, "{field} {reason}"),
            NumaError::PoolShutDown => f.write_str("the pool is shutting down"),
            NumaError::NoWholePage { len, page_size } => write!(
                f,
                "{len} bytes hold no whole page of {page_size} bytes: nothing to place"
            ),
            NumaError::FileBackedMemory => f.write_str(
                "an ordinary file mapping: its page-cache pages ignore memory policy",
            ),
            NumaError::NotSharedMemory => f.write_str(
                "not a shared-memory object (memfd, tmpfs or hugetlbfs file) of this backend",
            ),
            NumaError::SharedObjectUnsealed => f.write_str(
                "the shared-memory file is not sealed against shrinking (F_SEAL_SHRINK), so \
                 a mapping of it could fault",
            ),
            NumaError::SharedObjectTooSmall { len, size } => write!(
                f,
                "the shared-memory object has {size} bytes, fewer than the {len} asked for"
            ),
            NumaError::ByteRangeOutOfBounds { offset, len, size } => write!(
                f,
                "bytes {offset}..+{len} are not inside the region's {size} bytes"
            ),
            NumaError::DeviceNotFound(d) => write!(f, "{d}: no such device"),
            NumaError::DeviceLocalityUnknown(d) => {
                write!(f, "{d}: the kernel tells no NUMA node for it")
            }
            NumaError::DeviceFile {
                device,
                file: "",
                problem,
            } => write!(f, "{device}: {problem}"),
            NumaError::DeviceFile {
                device,
                file,
                problem,
            } => write!(f, "{device}/{file}: {problem}"),
            NumaError::MemoryTierFile { tier, problem } => {
                write!(f, "memory_tiering/memory_tier{tier}/nodelist: {problem}")
            }
            NumaError::Os { op, errno } => write!(f, "{op} failed: {errno}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for NumaError {}

/// The `io::ErrorKind` that fits, with the `NumaError` kept as the source.
#[cfg(feature = "std")]
impl From<NumaError> for std::io::Error {
    fn from(e: NumaError) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e {
            NumaError::Os { errno, .. } => std::io::Error::from_raw_os_error(errno.raw()).kind(),
            NumaError::PermissionDenied { .. } => K::PermissionDenied,
            NumaError::NodeNotFound(_)
            | NumaError::ForeignMapping
            | NumaError::DeviceNotFound(_) => K::NotFound,
            NumaError::InsufficientMemory { .. } | NumaError::HugePagesUnavailable { .. } => {
                K::OutOfMemory
            }
            NumaError::Unsupported { .. } => K::Unsupported,
            NumaError::Sysfs { .. }
            | NumaError::Parse(_)
            | NumaError::DeviceFile { .. }
            | NumaError::MemoryTierFile { .. } => K::InvalidData,
            NumaError::PlacementViolated { .. } | NumaError::PoolShutDown => K::Other,
            _ => K::InvalidInput,
        };
        std::io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn messages_name_the_problem() {
        let e = NumaError::Unsupported {
            feature: "MPOL_WEIGHTED_INTERLEAVE",
            since: "Linux 6.9",
        };
        assert_eq!(
            e.to_string(),
            "MPOL_WEIGHTED_INTERLEAVE is not supported here (needs Linux 6.9)"
        );
        let e = NumaError::Os {
            op: "mbind",
            errno: Errno::EINVAL,
        };
        assert_eq!(e.to_string(), "mbind failed: EINVAL");
        assert!(NumaError::InvalidNode(2000).to_string().contains("2000"));
        assert_eq!(
            NumaError::from_errno("mbind", Errno::EPERM),
            NumaError::PermissionDenied { op: "mbind" }
        );
        assert_eq!(
            NumaError::from_errno("mbind", Errno::EINVAL).errno(),
            Some(Errno::EINVAL)
        );
        let f = SysfsFile::node(NodeId::new(1), "distance").error(FileProblem::Missing);
        assert_eq!(f.to_string(), "node1/distance: missing");
        let w = NumaError::InvalidWeight { node: 0, weight: 0 };
        assert_eq!(
            w.to_string(),
            "node 0 has interleave weight 0; weights are 1..=255"
        );
    }

    #[cfg(feature = "std")]
    #[test]
    fn io_errors_keep_the_kind_and_the_source() {
        use std::io::ErrorKind;
        let io: std::io::Error = NumaError::Os {
            op: "mbind",
            errno: Errno::ENOMEM,
        }
        .into();
        assert_eq!(io.kind(), ErrorKind::OutOfMemory);
        let inner = io.get_ref().and_then(|e| e.downcast_ref::<NumaError>());
        assert_eq!(
            inner,
            Some(&NumaError::Os {
                op: "mbind",
                errno: Errno::ENOMEM
            })
        );
        let io: std::io::Error = NumaError::NodeNotFound(NodeId::new(3)).into();
        assert_eq!(io.kind(), ErrorKind::NotFound);
        let io: std::io::Error = NumaError::EmptyNodeMask.into();
        assert_eq!(io.kind(), ErrorKind::InvalidInput);
    }
}
