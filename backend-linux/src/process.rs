//! Whole-process page migration: `migrate_pages(2)`, what `migratepages PID FROM TO` does.

use numaperf_core::{Errno, NodeMask, NumaError};

use crate::mempolicy as mp;

/// Moves the pages of process `pid` (0: the caller) that are on nodes `from` to nodes
/// `to`, keeping their relative position within the sets as the kernel does, and returns
/// how many pages could not be moved.
///
/// # Errors
/// [`NumaError::PermissionDenied`] for another user's process without `CAP_SYS_NICE`;
/// [`NumaError::Os`] with `ESRCH` for a process that does not exist (also a `pid` beyond
/// `i32::MAX`), `EINVAL` for a node the kernel does not know, and
/// [`NumaError::Unsupported`] for a kernel without NUMA (`ENOSYS`).
pub fn migrate_process(pid: u32, from: &NodeMask, to: &NodeMask) -> Result<usize, NumaError> {
    let pid =
        i32::try_from(pid).map_err(|_| NumaError::from_errno("migrate_pages", Errno::ESRCH))?;
    let (old, new) = (from.to_kernel(), to.to_kernel());
    // One maxnode for both masks; the full words cover any maxnode.
    let maxnode = old.maxnode().max(new.maxnode());
    mp::migrate_pages(pid, old.words(), new.words(), maxnode).map_err(|e| {
        if e == rustix::io::Errno::NOSYS {
            NumaError::Unsupported {
                feature: "migrate_pages",
                since: "a NUMA kernel",
            }
        } else {
            NumaError::from_errno("migrate_pages", Errno::from_raw(e.raw_os_error()))
        }
    })
}
