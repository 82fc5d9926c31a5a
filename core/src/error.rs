//! The one error type of numaperf, usable without std.
//! `Display` works everywhere; `std::error::Error` comes with the `std` feature.

use core::fmt;

use crate::node::NodeId;
use crate::parse::ParseError;

/// Everything that can go wrong when placing memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NumaError {
    /// The caller passed something that can never work (size 0, empty mask, ...).
    InvalidArgument(&'static str),
    /// A node id beyond 1023 (the kernel's `MAX_NUMNODES`).
    InvalidNode(u32),
    /// A CPU number beyond what a [`crate::CpuSet`] holds.
    InvalidCpu(u32),
    /// The node is not online on this machine.
    NodeNotFound(NodeId),
    /// The node exists, but this process may not use it (cpuset / cgroup `Mems_allowed`).
    NodeNotAllowed(NodeId),
    /// The node has no memory (a CPU-only node), so nothing can be placed there.
    NoMemoryOnNode(NodeId),
    /// This kernel lacks a feature; `feature` names it and `since` the first Linux that has it.
    Unsupported {
        /// The kernel feature, e.g. `"MPOL_WEIGHTED_INTERLEAVE"`.
        feature: &'static str,
        /// The first kernel version that has it, e.g. `"Linux 6.9"`.
        since: &'static str,
    },
    /// The nodes the policy allows lack the free memory the region needs.
    InsufficientMemory {
        /// Bytes the region needs.
        requested: u64,
        /// Bytes free on the allowed nodes when checked.
        available: u64,
    },
    /// The kernel refused the operation for lack of privilege (or a seccomp filter).
    PermissionDenied {
        /// The operation that was refused.
        op: &'static str,
    },
    /// Explicit huge pages of this size are not reserved (see `/proc/sys/vm/nr_hugepages`).
    HugePagesUnavailable {
        /// The huge page size in bytes.
        page_size: usize,
    },
    /// Hard enforcement found a page outside the allowed nodes, or not present.
    PlacementViolated {
        /// Index of the first offending page in the region.
        page: usize,
        /// Where that page was (`None`: not present).
        found: Option<NodeId>,
    },
    /// Text could not be parsed (sysfs content, a node list).
    Parse(ParseError),
    /// An operating-system call failed with this errno.
    Os {
        /// The call, e.g. `"mbind"`.
        op: &'static str,
        /// The positive errno value.
        errno: i32,
    },
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
    pub fn from_errno(op: &'static str, errno: i32) -> Self {
        match errno {
            1 | 13 => NumaError::PermissionDenied { op },
            _ => NumaError::Os { op, errno },
        }
    }

    /// The errno behind an [`NumaError::Os`] error.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NumaError::Os { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// The symbolic name of a Linux errno, for messages.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        7 => "E2BIG",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        18 => "EXDEV",
        19 => "ENODEV",
        22 => "EINVAL",
        38 => "ENOSYS",
        95 => "EOPNOTSUPP",
        _ => return None,
    })
}

impl fmt::Display for NumaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumaError::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            NumaError::InvalidNode(id) => {
                write!(f, "node id {id} is beyond the kernel's limit of 1023")
            }
            NumaError::InvalidCpu(id) => write!(f, "cpu {id} is beyond the supported 4095"),
            NumaError::NodeNotFound(n) => write!(f, "node {n} is not online on this machine"),
            NumaError::NodeNotAllowed(n) => {
                write!(f, "node {n} is outside this process's allowed nodes (cpuset)")
            }
            NumaError::NoMemoryOnNode(n) => write!(f, "node {n} has no memory"),
            NumaError::Unsupported { feature, since } => {
                write!(f, "{feature} is not supported by this kernel (needs {since})")
            }
            NumaError::InsufficientMemory {
                requested,
                available,
            } => write!(
                f,
                "insufficient memory on the allowed nodes: {requested} bytes requested, {available} free"
            ),
            NumaError::PermissionDenied { op } => write!(f, "{op}: permission denied"),
            NumaError::HugePagesUnavailable { page_size } => write!(
                f,
                "no huge pages of {} KiB are reserved",
                page_size / 1024
            ),
            NumaError::PlacementViolated { page, found } => match found {
                Some(n) => write!(f, "page {page} is on node {n}, outside the allowed nodes"),
                None => write!(f, "page {page} is not present"),
            },
            NumaError::Parse(e) => write!(f, "{e}"),
            NumaError::Os { op, errno } => match errno_name(*errno) {
                Some(name) => write!(f, "{op} failed: {name} (errno {errno})"),
                None => write!(f, "{op} failed: errno {errno}"),
            },
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for NumaError {}

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
            "MPOL_WEIGHTED_INTERLEAVE is not supported by this kernel (needs Linux 6.9)"
        );
        let e = NumaError::Os {
            op: "mbind",
            errno: 22,
        };
        assert_eq!(e.to_string(), "mbind failed: EINVAL (errno 22)");
        assert_eq!(
            NumaError::Os {
                op: "x",
                errno: 999
            }
            .to_string(),
            "x failed: errno 999"
        );
        assert!(NumaError::InvalidNode(2000).to_string().contains("2000"));
        assert_eq!(
            NumaError::from_errno("mbind", 1),
            NumaError::PermissionDenied { op: "mbind" }
        );
        assert_eq!(NumaError::from_errno("mbind", 22).errno(), Some(22));
    }
}
