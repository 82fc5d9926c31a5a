//! Other processes' memory: [`migrate_process`], what `migratepages PID FROM TO` does.

use numaperf_core::{NodeMask, NumaError};

/// Moves the pages of process `pid` (0: this one) that are on nodes `from` to nodes `to`
/// (`migrate_pages(2)`; the kernel keeps each page's relative position within the sets)
/// and returns how many pages could not be moved (busy, pinned, or no room on `to`).
///
/// ```no_run
/// use numaperf::{NodeId, NodeMask};
/// let not_moved = numaperf::migrate_process(
///     4242,
///     &NodeMask::single(NodeId::new(0)),
///     &NodeMask::single(NodeId::new(1)),
/// )?;
/// # Ok::<(), numaperf::NumaError>(())
/// ```
///
/// # Errors
/// [`NumaError::PermissionDenied`] for another user's process without `CAP_SYS_NICE`;
/// [`NumaError::Os`] with `ESRCH` for a process that does not exist, `EINVAL` for a node
/// the kernel does not know; [`NumaError::Unsupported`] on a kernel without NUMA and
/// elsewhere than Linux.
pub fn migrate_process(pid: u32, from: &NodeMask, to: &NodeMask) -> Result<usize, NumaError> {
    #[cfg(target_os = "linux")]
    {
        numaperf_linux::migrate_process(pid, from, to)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (pid, from, to);
        Err(NumaError::Unsupported {
            feature: "migrate_pages",
            since: "Linux",
        })
    }
}
