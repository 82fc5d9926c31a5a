//! Reads the live (or a captured) `/sys/devices/system/node` tree and `/proc/self/status`
//! through core's shared sysfs assembly; one node holding all CPUs where there is none.

use std::fs;
use std::path::Path;

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};

use numaperf_core::parse::parse_meminfo_kb;
use numaperf_core::sysfs::{parse_status, topology_from_sysfs, ProcessAllowed};
use numaperf_core::{CpuSet, NodeId, NodeMask, NumaError, OwnedNodeInfo, OwnedTopology};

/// Where the kernel publishes NUMA nodes.
pub const SYSFS_NODE_ROOT: &str = "/sys/devices/system/node";

/// Reads the topology under `root` (a node directory such as [`SYSFS_NODE_ROOT`] or a
/// captured copy), limited by this process's `Mems_allowed`/`Cpus_allowed` when `root`
/// is the live tree. Without an `online` file: one node 0 with every CPU and all memory.
pub fn read_topology(root: impl AsRef<Path>) -> Result<OwnedTopology, NumaError> {
    read_topology_at(root.as_ref()).map(|(t, _)| t)
}

/// [`read_topology`], also handing back `root` opened (`O_PATH`) when it held a node
/// tree, so the backend reads free memory relative to it without opening it again.
pub(crate) fn read_topology_at(root: &Path) -> Result<(OwnedTopology, Option<OwnedFd>), NumaError> {
    let allowed = if root == Path::new(SYSFS_NODE_ROOT) {
        match allowed_by_syscalls() {
            Some(a) => a,
            None => {
                let status = read_text(Path::new("/proc/self/status")).unwrap_or_default();
                parse_status(&status)?
            }
        }
    } else {
        ProcessAllowed::default()
    };
    // Files are opened relative to the opened root: two path components to walk per
    // file instead of six (kernfs revalidates each one).
    let flags = OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC;
    let Ok(dir) = rustix::fs::open(root, flags, Mode::empty()) else {
        return Ok((single_node(allowed)?, None));
    };
    match topology_from_sysfs(|p| read_text_at(dir.as_fd(), Path::new(p)), allowed)? {
        Some(t) => Ok((t, Some(dir))),
        None => Ok((single_node(allowed)?, None)),
    }
}

/// Core's CPU set from rustix's (at most [`rustix::thread::CpuSet::MAX_CPU`] CPUs).
pub(crate) fn cpuset_from(set: &rustix::thread::CpuSet) -> CpuSet {
    (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&c| set.is_set(c))
        .collect()
}

/// What `/proc/self/status` says in `Cpus_allowed_list` and `Mems_allowed_list`, asked of
/// the kernel directly: the process's (main thread's) affinity, and the cpuset's memory
/// nodes (`get_mempolicy(MPOL_F_MEMS_ALLOWED)`). Two syscalls instead of the status file,
/// which the kernel formats in full (~19 us here, a third of discovery). None when a call
/// fails (more than 1024 CPUs for rustix's set, or a kernel without mempolicy): then the
/// caller reads the status file.
fn allowed_by_syscalls() -> Option<ProcessAllowed> {
    let pid = rustix::process::getpid();
    let set = rustix::thread::sched_getaffinity(Some(pid)).ok()?;
    let cpus = cpuset_from(&set);
    let mut words = [0usize; numaperf_core::MAX_NUMNODES / usize::BITS as usize];
    let maxnode = numaperf_core::MAX_NUMNODES + 1;
    let mut mode = 0;
    crate::mempolicy::get_mempolicy(
        &mut mode,
        &mut words,
        maxnode,
        std::ptr::null(),
        crate::mempolicy::MPOL_F_MEMS_ALLOWED,
    )
    .ok()?;
    Some(ProcessAllowed {
        nodes: Some(NodeMask::from_kernel(&words, maxnode)),
        cpus: Some(cpus),
    })
}

/// Opens `path` relative to `dir` (an absolute `path` ignores `dir`) and reads it with
/// one `read` into `buf`, without touching the heap. Returns the file and the length read.
///
/// sysfs attributes and seq_file procfs files produce their whole text in one read when
/// the buffer holds it (sysfs `show` fills at most a page; seq_file fills the buffer
/// record by record), so a read shorter than `buf` is the end of the file; a full `buf`
/// may have more behind it. `fs::read_to_string` adds a statx, a read that returns 0
/// and, for procfs's zero st_size, a chain of growing reads, and each syscall on these
/// files costs microseconds here.
pub(crate) fn read_once<P: rustix::path::Arg>(
    dir: BorrowedFd<'_>,
    path: P,
    buf: &mut [u8],
) -> rustix::io::Result<(OwnedFd, usize)> {
    let fd = rustix::fs::openat(dir, path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    loop {
        match rustix::io::read(&fd, &mut *buf) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map(|n| (fd, n)),
        }
    }
}

/// Reads a small kernel text file whole: [`read_once`] into a stack buffer, and the
/// general path for the rest when the buffer fills (never for the files read here).
pub(crate) fn read_text(path: &Path) -> Option<String> {
    read_text_at(rustix::fs::CWD, path)
}

/// [`read_text`] of `path` relative to the directory `dir`.
fn read_text_at(dir: BorrowedFd<'_>, path: &Path) -> Option<String> {
    let mut buf = [0u8; 8192];
    let (fd, n) = read_once(dir, path, &mut buf).ok()?;
    let mut text = std::str::from_utf8(&buf[..n]).ok()?.to_owned();
    if n == buf.len() {
        std::io::Read::read_to_string(&mut fs::File::from(fd), &mut text).ok()?;
    }
    Some(text)
}

/// The fallback machine: node 0 with the CPUs from `/sys/devices/system/cpu/online` (or
/// the allowed CPUs) and the memory from `/proc/meminfo`.
fn single_node(allowed: ProcessAllowed) -> Result<OwnedTopology, NumaError> {
    let cpus: CpuSet = match read_text(Path::new("/sys/devices/system/cpu/online")) {
        Some(t) => numaperf_core::parse::parse_list(&t)?,
        None => allowed.cpus.unwrap_or_else(|| CpuSet::single(0)),
    };
    let meminfo = read_text(Path::new("/proc/meminfo")).unwrap_or_default();
    let total = parse_meminfo_kb(&meminfo, "MemTotal:").unwrap_or(0);
    let free = parse_meminfo_kb(&meminfo, "MemFree:").unwrap_or(0);
    let node = OwnedNodeInfo::new(NodeId::new(0), cpus, total, free, vec![10]);
    OwnedTopology::new(vec![node], None, allowed.cpus)
}

#[cfg(test)]
mod tests {
    use super::*;
    use numaperf_core::TopologyInfo;

    #[test]
    fn long_files_are_read_whole() {
        let path = std::env::temp_dir().join(format!("numaperf-long-{}", std::process::id()));
        let text: String = (0..3000).map(|i| format!("{i},")).collect();
        assert!(text.len() > 8192);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(read_text(&path).as_deref(), Some(text.as_str()));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(read_text(&path), None);
    }

    #[test]
    fn allowed_sets_from_syscalls_match_proc_self_status() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let from_status = parse_status(&status).unwrap();
        let from_calls = allowed_by_syscalls().expect("sched_getaffinity and get_mempolicy");
        assert_eq!(from_calls.nodes, from_status.nodes);
        assert_eq!(from_calls.cpus, from_status.cpus);
    }

    #[test]
    fn this_host_has_node_0_with_memory_and_cpus() {
        let t = read_topology(SYSFS_NODE_ROOT).unwrap();
        let n0 = NodeId::new(0);
        assert!(t.nodes().contains(n0));
        assert!(t.memory_nodes().contains(n0));
        assert!(!t.node_cpus(n0).unwrap().is_empty());
        assert_eq!(t.distance(n0, n0), Some(10));
        assert!(t.allowed_nodes().contains(n0));
    }

    #[test]
    fn absent_tree_falls_back_to_one_node() {
        let t = read_topology("/nonexistent/numaperf").unwrap();
        assert_eq!(t.node_count(), 1);
        assert!(t.node_memory(NodeId::new(0)).unwrap() > 0);
        assert!(!t.node_cpus(NodeId::new(0)).unwrap().is_empty());
    }

    #[test]
    fn the_root_is_kept_open_only_when_it_holds_a_node_tree() {
        let (t, fd) = read_topology_at(Path::new(SYSFS_NODE_ROOT)).unwrap();
        assert!(t.node_count() >= 1);
        assert!(fd.is_some());
        let dir = std::env::temp_dir().join(format!("numaperf-empty-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (t, fd) = read_topology_at(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(t.node_count(), 1);
        assert!(fd.is_none());
        assert!(read_topology_at(Path::new("/nonexistent/numaperf"))
            .unwrap()
            .1
            .is_none());
    }

    #[test]
    fn captured_tree_with_bad_content_is_a_typed_error() {
        let dir = std::env::temp_dir().join(format!("numaperf-bad-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("online"), "0-x\n").unwrap();
        let r = read_topology(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(r, Err(NumaError::Parse(_))));
    }
}
