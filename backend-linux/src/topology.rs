//! Reads the live (or a captured) `/sys/devices/system/node` tree and `/proc/self/status`
//! through core's shared sysfs assembly, strictly; one node holding all CPUs only where the
//! live kernel has no node tree at all (marked as a fallback).

use std::fs;
use std::path::{Path, PathBuf};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};

use numaperf_core::device_sysfs::SysfsTree;
use numaperf_core::memattrs_sysfs::memory_attributes_from_sysfs;
use numaperf_core::parse::{meminfo_field, parse_list};
use numaperf_core::sysfs::{parse_status, topology_from_sysfs, ProcessAllowed};
use numaperf_core::{
    CpuSet, FileProblem, NodeId, NodeInfo, NodeMask, NumaError, OwnedTopology, SysfsFile,
    TopologyInfo,
};

/// Where the kernel publishes NUMA nodes.
pub const SYSFS_NODE_ROOT: &str = "/sys/devices/system/node";

/// Where the kernel publishes memory tiers (Linux 6.1): `memory_tierN/nodelist`. A
/// captured node tree's tiers are read from the same place relative to it
/// (`<root>/../../virtual/memory_tiering`).
pub const SYSFS_TIERS_ROOT: &str = "/sys/devices/virtual/memory_tiering";

/// Reads the topology under `root` (a node directory such as [`SYSFS_NODE_ROOT`] or a
/// captured copy), limited by this process's `Mems_allowed`/`Cpus_allowed` when `root`
/// is the live tree.
///
/// The memory nodes' attributes come along (`nodeN/access0` and `access1` initiator
/// figures, and the memory tiers of `/sys/devices/virtual/memory_tiering`, or for a captured `root` of
/// `<root>/../../virtual/memory_tiering`): absent files are unknown, present ones that
/// cannot be read or do not parse are errors naming them (see
/// `numaperf_core::memattrs_sysfs::memory_attributes_from_sysfs`).
///
/// A tree that does not describe a machine is an error naming the file (see
/// `numaperf_core::sysfs::topology_from_sysfs`). One case only is not: the live root
/// absent as a whole (a kernel without NUMA sysfs). Then the machine is assumed to be one
/// node 0 with every online CPU and all of `/proc/meminfo`'s memory, and the table says so:
/// its `is_fallback()` is true.
///
/// # Errors
/// [`NumaError::Sysfs`] naming the file that is missing, unreadable, not text, malformed
/// or inconsistent with the rest of the tree (for a captured `root` that does not exist:
/// `online`, missing); [`NumaError::MemoryTierFile`] for a tier's bad `nodelist`.
pub fn read_topology(root: impl AsRef<Path>) -> Result<OwnedTopology, NumaError> {
    read_topology_at(root.as_ref()).map(|(t, _)| t)
}

/// [`read_topology`], also handing back `root` opened (`O_PATH`) when it held a node
/// tree, so the backend reads free memory relative to it without opening it again.
pub(crate) fn read_topology_at(root: &Path) -> Result<(OwnedTopology, Option<OwnedFd>), NumaError> {
    let live = root == Path::new(SYSFS_NODE_ROOT);
    let allowed = if live {
        match allowed_by_syscalls() {
            Some(a) => a,
            None => {
                let file = SysfsFile::root("/proc/self/status");
                let status = read_file_at(rustix::fs::CWD, Path::new(file.name))
                    .map_err(|p| file.error(p))?;
                parse_status(&status).map_err(|e| file.error(FileProblem::Malformed(e)))?
            }
        }
    } else {
        ProcessAllowed::default()
    };
    read_tree(root, allowed, live)
}

/// The tree under `root`; with `may_fall_back`, a `root` that does not exist is the
/// one-node fallback.
fn read_tree(
    root: &Path,
    allowed: ProcessAllowed,
    may_fall_back: bool,
) -> Result<(OwnedTopology, Option<OwnedFd>), NumaError> {
    // Files are opened relative to the opened root: two path components to walk per
    // file instead of six (kernfs revalidates each one).
    let flags = OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC;
    let dir = match rustix::fs::open(root, flags, Mode::empty()) {
        Ok(dir) => dir,
        Err(rustix::io::Errno::NOENT) if may_fall_back => {
            return Ok((single_node(allowed)?.into_fallback(), None))
        }
        Err(e) => return Err(SysfsFile::root("online").error(file_problem(e))),
    };
    let topology = topology_from_sysfs(|p| read_file_at(dir.as_fd(), Path::new(p)), allowed)?;
    // The tiers: where /sys has them, relative to the node tree (live: one absolute
    // path; a captured tree: two components up). Opened once, read relative to it.
    let tiers: PathBuf = if root == Path::new(SYSFS_NODE_ROOT) {
        PathBuf::from(SYSFS_TIERS_ROOT)
    } else {
        root.join("../../virtual/memory_tiering")
    };
    let tiers = match rustix::fs::open(&tiers, flags, Mode::empty()) {
        Ok(fd) => Some(fd),
        Err(rustix::io::Errno::NOENT) => None,
        Err(e) => return Err(SysfsFile::root("memory_tiering").error(file_problem(e))),
    };
    let attributes = memory_attributes_from_sysfs(
        &mut DirTree(Some(dir.as_fd())),
        &mut DirTree(tiers.as_ref().map(|t| t.as_fd())),
        topology.nodes(),
        topology.memory_nodes(),
    )?;
    Ok((topology.with_memory_attributes(attributes)?, Some(dir)))
}

/// A tree read relative to its opened root directory (`None`: there is no such tree),
/// for the memory-attribute files: few path components for kernfs to walk per file.
struct DirTree<'a>(Option<BorrowedFd<'a>>);

impl SysfsTree for DirTree<'_> {
    fn read(&mut self, path: &str) -> Result<String, FileProblem> {
        let dir = self.0.ok_or(FileProblem::Missing)?;
        read_file_at(dir, Path::new(path))
    }

    fn list(&mut self, path: &str) -> Result<Vec<String>, FileProblem> {
        let root = self.0.ok_or(FileProblem::Missing)?;
        let path = if path.is_empty() { "." } else { path };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(root, path, flags, Mode::empty()).map_err(file_problem)?;
        let mut dir = rustix::fs::Dir::new(fd).map_err(file_problem)?;
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(file_problem)?;
            let name = entry
                .file_name()
                .to_str()
                .map_err(|_| FileProblem::NotText)?;
            if name != "." && name != ".." {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    /// Not offered (the memory-attribute reader follows no links): `EOPNOTSUPP`.
    fn resolve(&mut self, _path: &str) -> Result<String, FileProblem> {
        Err(file_problem(rustix::io::Errno::OPNOTSUPP))
    }
}

/// What `/proc/self/status` says in `Cpus_allowed_list` and `Mems_allowed_list`, asked of
/// the kernel directly: the process's (main thread's) affinity, and the cpuset's memory
/// nodes (`get_mempolicy(MPOL_F_MEMS_ALLOWED)`). Two syscalls instead of the status file,
/// which the kernel formats in full (~19 us here, a third of discovery). None when a call
/// fails (a CPU beyond 4095, or a kernel without mempolicy): then the caller reads the
/// status file.
fn allowed_by_syscalls() -> Option<ProcessAllowed> {
    let cpus = crate::affinity::process_affinity().ok()?;
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
/// `None` for any problem (see [`read_file_at`] for which).
pub(crate) fn read_text(path: &Path) -> Option<String> {
    read_file_at(rustix::fs::CWD, path).ok()
}

/// What an errno from opening or reading a topology file means for it.
fn file_problem(e: rustix::io::Errno) -> FileProblem {
    if e == rustix::io::Errno::NOENT {
        FileProblem::Missing
    } else {
        FileProblem::Unreadable(numaperf_core::Errno::from_raw(e.raw_os_error()))
    }
}

/// The text of `path` relative to the directory `dir` (an absolute `path` ignores `dir`):
/// [`FileProblem::Missing`] when it does not exist, [`FileProblem::Unreadable`] when it
/// cannot be opened or read (a directory: `EISDIR`), [`FileProblem::NotText`] when it is
/// not UTF-8.
fn read_file_at(dir: BorrowedFd<'_>, path: &Path) -> Result<String, FileProblem> {
    let mut buf = [0u8; 8192];
    let (fd, n) = read_once(dir, path, &mut buf).map_err(file_problem)?;
    let bytes = if n == buf.len() {
        let mut all = buf.to_vec();
        std::io::Read::read_to_end(&mut fs::File::from(fd), &mut all).map_err(|e| {
            match e.raw_os_error() {
                Some(raw) => file_problem(rustix::io::Errno::from_raw_os_error(raw)),
                None => FileProblem::Unreadable(numaperf_core::Errno::EIO),
            }
        })?;
        all
    } else {
        buf[..n].to_vec()
    };
    String::from_utf8(bytes).map_err(|_| FileProblem::NotText)
}

/// The fallback machine: node 0 with the CPUs from `/sys/devices/system/cpu/online` (or,
/// without that file, the allowed CPUs) and the memory from `/proc/meminfo`.
fn single_node(allowed: ProcessAllowed) -> Result<OwnedTopology, NumaError> {
    let online = SysfsFile::root("/sys/devices/system/cpu/online");
    let cpus: CpuSet = match read_file_at(rustix::fs::CWD, Path::new(online.name)) {
        Ok(t) => parse_list(&t).map_err(|e| online.error(FileProblem::Malformed(e)))?,
        Err(FileProblem::Missing) => allowed.cpus.unwrap_or_else(|| CpuSet::single(0)),
        Err(p) => return Err(online.error(p)),
    };
    let file = SysfsFile::root("/proc/meminfo");
    let meminfo = read_file_at(rustix::fs::CWD, Path::new(file.name)).map_err(|p| file.error(p))?;
    let field = |key: &'static str| match meminfo_field(&meminfo, key) {
        None => Err(file.error(FileProblem::MissingField(key))),
        Some(r) => r.map_err(|e| file.error(FileProblem::Malformed(e))),
    };
    let (total, free) = (field("MemTotal:")?, field("MemFree:")?);
    let node = NodeInfo::new(NodeId::new(0), cpus, total, free);
    OwnedTopology::new(vec![node], vec![10], None, allowed.cpus)
}

#[cfg(test)]
mod tests {
    use super::*;
    use numaperf_core::memattrs::AccessClass;

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
    fn the_live_tree_is_a_machine() {
        let t = read_topology(SYSFS_NODE_ROOT).unwrap();
        assert!(!t.memory_nodes().is_empty() && !t.cpu_nodes().is_empty());
        for n in t.nodes().iter() {
            assert_eq!(t.distance(n, n), Some(10), "node {n} to itself");
        }
        let mem = t.memory_nodes().intersection(t.allowed_nodes());
        assert!(!mem.is_empty(), "this process may use some memory node");
        // Every CPU this process may run on belongs to exactly one node.
        for c in t.allowed_cpus().iter() {
            assert!(t.cpu_node(c).is_some(), "cpu {c} has no node");
        }
    }

    /// A two-node tree in a fresh temp directory named after `name`, with `edit` applied.
    fn captured(name: &str, edit: impl FnOnce(&Path)) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("numaperf-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("online"), "0-1\n").unwrap();
        for (n, cpus, row) in [(0, "0-1\n", "10 21\n"), (1, "2-3\n", "21 10\n")] {
            let node = dir.join(format!("node{n}"));
            fs::create_dir_all(&node).unwrap();
            fs::write(node.join("cpulist"), cpus).unwrap();
            let mem = format!("Node {n} MemTotal: 1024 kB\nNode {n} MemFree: 512 kB\n");
            fs::write(node.join("meminfo"), mem).unwrap();
            fs::write(node.join("distance"), row).unwrap();
        }
        edit(&dir);
        dir
    }

    /// Reads a captured tree (then removes it).
    fn read_captured(name: &str, edit: impl FnOnce(&Path)) -> Result<OwnedTopology, NumaError> {
        let dir = captured(name, edit);
        let r = read_topology(&dir);
        fs::remove_dir_all(&dir).unwrap();
        r
    }

    fn node1(name: &'static str, problem: FileProblem) -> Result<OwnedTopology, NumaError> {
        Err(SysfsFile::node(NodeId::new(1), name).error(problem))
    }

    #[test]
    fn a_whole_captured_tree_loads() {
        let t = read_captured("good", |_| {}).unwrap();
        assert_eq!(t.node_count(), 2);
        assert_eq!(t.distance(NodeId::new(1), NodeId::new(0)), Some(21));
        assert_eq!(t.node(NodeId::new(1)).unwrap().mem_free(), 512 * 1024);
        assert!(!t.is_fallback());
    }

    #[test]
    fn missing_distance_is_an_error_not_20() {
        let r = read_captured("no-distance", |d| {
            fs::remove_file(d.join("node1/distance")).unwrap()
        });
        assert_eq!(r, node1("distance", FileProblem::Missing));
    }

    #[test]
    fn a_directory_where_distance_should_be_is_eisdir() {
        let r = read_captured("dir-distance", |d| {
            fs::remove_file(d.join("node1/distance")).unwrap();
            fs::create_dir(d.join("node1/distance")).unwrap();
        });
        let eisdir = numaperf_core::Errno::EISDIR;
        assert_eq!(r, node1("distance", FileProblem::Unreadable(eisdir)));
    }

    #[test]
    fn non_utf8_distance_is_not_text() {
        let r = read_captured("binary-distance", |d| {
            fs::write(d.join("node1/distance"), b"21 \xff\xfe 10\n").unwrap()
        });
        assert_eq!(r, node1("distance", FileProblem::NotText));
    }

    #[test]
    fn garbage_or_missing_meminfo_is_an_error_not_0_bytes() {
        let r = read_captured("garbage-meminfo", |d| {
            fs::write(d.join("node1/meminfo"), "\u{1}garbage\n").unwrap()
        });
        assert_eq!(r, node1("meminfo", FileProblem::MissingField("MemTotal:")));
        let r = read_captured("bad-meminfo", |d| {
            let text = "Node 1 MemTotal: 12x4 kB\nNode 1 MemFree: 512 kB\n";
            fs::write(d.join("node1/meminfo"), text).unwrap()
        });
        assert!(
            matches!(r, Err(NumaError::Sysfs { file, problem: FileProblem::Malformed(_) })
                if file == SysfsFile::node(NodeId::new(1), "meminfo")),
            "{r:?}"
        );
        let r = read_captured("no-meminfo", |d| {
            fs::remove_file(d.join("node1/meminfo")).unwrap()
        });
        assert_eq!(r, node1("meminfo", FileProblem::Missing));
    }

    #[test]
    fn overlapping_cpulists_are_inconsistent() {
        let r = read_captured("overlap", |d| {
            fs::write(d.join("node1/cpulist"), "1-3\n").unwrap()
        });
        let why = "a CPU in this list is also in another node's cpulist";
        assert_eq!(r, node1("cpulist", FileProblem::Inconsistent(why)));
    }

    #[test]
    fn unreadable_online_is_an_error_not_one_node() {
        let online = SysfsFile::root("online");
        let dir = captured("online-dir", |d| {
            fs::remove_file(d.join("online")).unwrap();
            fs::create_dir(d.join("online")).unwrap();
        });
        let eisdir = FileProblem::Unreadable(numaperf_core::Errno::EISDIR);
        assert_eq!(read_topology(&dir), Err(online.error(eisdir)));
        assert_eq!(
            crate::LinuxBackend::with_sysfs_root(&dir).err(),
            Some(online.error(eisdir))
        );
        fs::remove_dir_all(&dir).unwrap();
        // A symlink loop cannot be opened by anyone (root included): ELOOP.
        let r = read_captured("online-loop", |d| {
            fs::remove_file(d.join("online")).unwrap();
            std::os::unix::fs::symlink("online", d.join("online")).unwrap();
        });
        let eloop = numaperf_core::Errno::from_raw(rustix::io::Errno::LOOP.raw_os_error());
        assert_eq!(r, Err(online.error(FileProblem::Unreadable(eloop))));
        let r = read_captured("online-missing", |d| {
            fs::remove_file(d.join("online")).unwrap()
        });
        assert_eq!(r, Err(online.error(FileProblem::Missing)));
    }

    #[test]
    fn only_an_absent_live_root_falls_back_to_one_node() {
        let absent = Path::new("/nonexistent/numaperf");
        let online = SysfsFile::root("online");
        assert_eq!(
            read_topology(absent),
            Err(online.error(FileProblem::Missing))
        );
        // What the live root gets when the kernel has no node tree.
        let (t, fd) = read_tree(absent, ProcessAllowed::default(), true).unwrap();
        assert!(fd.is_none());
        assert!(t.is_fallback());
        assert_eq!(t.node_count(), 1);
        assert!(t.node_memory(NodeId::new(0)).unwrap() > 0);
        assert!(!t.node_cpus(NodeId::new(0)).unwrap().is_empty());
        // A node directory that exists but is not a tree never falls back.
        let dir = std::env::temp_dir().join(format!("numaperf-empty-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let r = read_tree(&dir, ProcessAllowed::default(), true).map(|(t, _)| t);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(r, Err(online.error(FileProblem::Missing)));
    }

    #[test]
    fn the_root_is_kept_open_when_it_holds_a_node_tree() {
        let (t, fd) = read_topology_at(Path::new(SYSFS_NODE_ROOT)).unwrap();
        assert!(t.node_count() >= 1);
        assert!(fd.is_some());
        assert!(!t.is_fallback());
    }

    #[test]
    fn captured_tree_with_bad_content_is_a_typed_error() {
        let r = read_captured("bad-online", |d| {
            fs::write(d.join("online"), "0-x\n").unwrap()
        });
        assert!(
            matches!(r, Err(NumaError::Sysfs { file, problem: FileProblem::Malformed(_) })
                if file == SysfsFile::root("online")),
            "{r:?}"
        );
    }

    /// A two-node tree laid out as `/sys` is (`<dir>/devices/system/node`, tiers in
    /// `<dir>/devices/virtual/memory_tiering`): node 1's memory reached from node 0.
    fn with_attributes(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let sys =
            std::env::temp_dir().join(format!("numaperf-attrs-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&sys);
        let root = sys.join("devices/system/node");
        fs::create_dir_all(&root).unwrap();
        let tree = captured(&format!("tree-{name}"), |_| {});
        fs::remove_dir_all(&root).unwrap();
        fs::rename(&tree, &root).unwrap();
        let dir = root.join("node1/access1/initiators");
        fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("../../../node0", dir.join("node0")).unwrap();
        for (file, v) in [("read_bandwidth", "2048\n"), ("read_latency", "40\n")] {
            fs::write(dir.join(file), v).unwrap();
        }
        let tiers = sys.join("devices/virtual/memory_tiering");
        for (tier, list) in [(4, "0\n"), (22, "1\n")] {
            fs::create_dir_all(tiers.join(format!("memory_tier{tier}"))).unwrap();
            fs::write(tiers.join(format!("memory_tier{tier}/nodelist")), list).unwrap();
        }
        (sys, root)
    }

    #[test]
    fn captured_memory_attributes_and_tiers_load() {
        let (sys, root) = with_attributes("good");
        let t = read_topology(&root);
        fs::remove_dir_all(&sys).unwrap();
        let t = t.unwrap();
        let a = t.memory_attributes(NodeId::new(1)).unwrap();
        let f = a.figures(AccessClass::CpuInitiator).unwrap();
        assert_eq!(f.initiators, NodeMask::single(NodeId::new(0)));
        assert_eq!((f.read_bandwidth, f.read_latency), (Some(2048), Some(40)));
        assert_eq!((f.write_bandwidth, a.tier), (None, Some(22)));
        assert!(a.figures(AccessClass::AnyInitiator).is_none());
        let a0 = t.memory_attributes(NodeId::new(0)).unwrap();
        assert_eq!(
            (a0.tier, a0.figures(AccessClass::CpuInitiator)),
            (Some(4), None)
        );
        // A node tree without either: nothing known, no error.
        let plain = read_captured("no-attrs", |_| {}).unwrap();
        assert!(plain.memory_attributes(NodeId::new(1)).is_none());
    }

    #[test]
    fn corrupt_memory_attribute_files_are_named() {
        let (sys, root) = with_attributes("bad");
        fs::write(root.join("node1/access1/initiators/read_latency"), "4O\n").unwrap();
        let bad_figure = read_topology(&root);
        fs::write(root.join("node1/access1/initiators/read_latency"), "40\n").unwrap();
        let tier = sys.join("devices/virtual/memory_tiering/memory_tier22/nodelist");
        fs::write(&tier, "1-\n").unwrap();
        let bad_tier = read_topology(&root);
        fs::remove_dir_all(&sys).unwrap();
        let file = SysfsFile::node(NodeId::new(1), "access1/initiators/read_latency");
        assert!(
            matches!(bad_figure, Err(NumaError::Sysfs { file: f, problem: FileProblem::Malformed(_) }) if f == file),
            "{bad_figure:?}"
        );
        assert!(
            matches!(
                bad_tier,
                Err(NumaError::MemoryTierFile {
                    tier: 22,
                    problem: FileProblem::Malformed(_)
                })
            ),
            "{bad_tier:?}"
        );
    }

    #[test]
    fn live_tiers_match_the_tiering_tree() {
        let t = read_topology(SYSFS_NODE_ROOT).unwrap();
        let Ok(dir) = fs::read_dir(SYSFS_TIERS_ROOT) else {
            eprintln!("skipped: this kernel has no {SYSFS_TIERS_ROOT}");
            return;
        };
        let mut listed = 0;
        for e in dir.flatten() {
            let name = e.file_name().into_string().unwrap();
            let Some(tier) = numaperf_core::memattrs::parse_tier_dir(&name) else {
                continue;
            };
            let text = fs::read_to_string(e.path().join("nodelist")).unwrap();
            let nodes: NodeMask = parse_list(&text).unwrap();
            for n in nodes.iter() {
                let got = t.memory_attributes(n).and_then(|a| a.tier);
                assert_eq!(got, Some(tier), "node {n}");
                listed += 1;
            }
        }
        assert!(listed > 0, "the tiering tree lists no node");
    }
}
