//! Reads what the kernel measured about locality: each node's `numastat`, NUMA balancing's
//! `/proc/vmstat` counters, and this process's `/proc/self/numa_maps` (parsed in core).

use std::path::{Path, PathBuf};

use numaperf_core::locality::{BalancingStat, LocalitySource, MappingPages, NumaStat};
use numaperf_core::locality_parse::{
    parse_balancing_mode, parse_numa_maps, parse_numastat, parse_vmstat_balancing,
};
use numaperf_core::parse::parse_list;
use numaperf_core::{Errno, FileProblem, NodeId, NodeMask, NumaError, SysfsFile};

use crate::topology::SYSFS_NODE_ROOT;

/// The kernel's locality counters, read from its files (or from captured copies: every
/// path is a field, so a test can point them at a tree of its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxLocality {
    /// The node directory (`/sys/devices/system/node`): `has_memory`, `nodeN/numastat`.
    pub node_root: PathBuf,
    /// `/proc/vmstat`.
    pub vmstat: PathBuf,
    /// `/proc/sys/kernel/numa_balancing`.
    pub balancing_mode: PathBuf,
    /// The process's `numa_maps`: `/proc/self/numa_maps`, or `/proc/<pid>/numa_maps` for
    /// another process ([`LinuxLocality::of_process`]).
    pub numa_maps: PathBuf,
}

impl Default for LinuxLocality {
    fn default() -> Self {
        LinuxLocality {
            node_root: PathBuf::from(SYSFS_NODE_ROOT),
            vmstat: PathBuf::from("/proc/vmstat"),
            balancing_mode: PathBuf::from("/proc/sys/kernel/numa_balancing"),
            numa_maps: PathBuf::from("/proc/self/numa_maps"),
        }
    }
}

/// The whole text of `path`, or what kept it from being read.
fn read(path: &Path) -> Result<String, FileProblem> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => FileProblem::Missing,
        _ => FileProblem::Unreadable(Errno::from_raw(e.raw_os_error().unwrap_or(5))),
    })?;
    String::from_utf8(bytes).map_err(|_| FileProblem::NotText)
}

impl LinuxLocality {
    /// The live kernel's files.
    pub fn new() -> Self {
        Self::default()
    }

    /// The live kernel's files, with the mappings of process `pid` (`/proc/<pid>/numa_maps`)
    /// instead of this process's: what `numaperf stat PID` and `numaperf run --verify` read.
    /// Reading another user's process needs the right to ptrace it.
    pub fn of_process(pid: u32) -> Self {
        LinuxLocality {
            numa_maps: PathBuf::from(format!("/proc/{pid}/numa_maps")),
            ..Self::default()
        }
    }

    /// The name errors give the `numa_maps` file.
    fn numa_maps_name(&self) -> &'static str {
        let other =
            self.numa_maps.starts_with("/proc") && !self.numa_maps.starts_with("/proc/self");
        if other {
            "/proc/<pid>/numa_maps"
        } else {
            "/proc/self/numa_maps"
        }
    }

    /// The memory nodes: `has_memory` (Linux 2.6.23), else `online`.
    fn memory_nodes(&self) -> Result<NodeMask, NumaError> {
        let (file, text) = match read(&self.node_root.join("has_memory")) {
            Ok(t) => (SysfsFile::root("has_memory"), t),
            Err(FileProblem::Missing) => {
                let f = SysfsFile::root("online");
                (
                    f,
                    read(&self.node_root.join("online")).map_err(|p| f.error(p))?,
                )
            }
            Err(p) => return Err(SysfsFile::root("has_memory").error(p)),
        };
        parse_list(&text).map_err(|e| file.error(FileProblem::Malformed(e)))
    }
}

impl LocalitySource for LinuxLocality {
    fn numastat(&self) -> Result<Vec<(NodeId, NumaStat)>, NumaError> {
        let nodes = self.memory_nodes()?;
        let mut out = Vec::with_capacity(nodes.count());
        for n in nodes.iter() {
            let file = SysfsFile::node(n, "numastat");
            let path = self.node_root.join(format!("node{n}/numastat"));
            let text = read(&path).map_err(|p| file.error(p))?;
            out.push((n, parse_numastat(&text).map_err(|p| file.error(p))?));
        }
        Ok(out)
    }

    fn balancing(&self) -> Result<Option<BalancingStat>, NumaError> {
        let mode_file = SysfsFile::root("/proc/sys/kernel/numa_balancing");
        let mode = match read(&self.balancing_mode) {
            Ok(t) => parse_balancing_mode(&t).map_err(|p| mode_file.error(p))?,
            // A kernel without CONFIG_NUMA_BALANCING has no such file.
            Err(FileProblem::Missing) => return Ok(None),
            Err(p) => return Err(mode_file.error(p)),
        };
        if mode == 0 {
            return Ok(None);
        }
        let file = SysfsFile::root("/proc/vmstat");
        let text = read(&self.vmstat).map_err(|p| file.error(p))?;
        parse_vmstat_balancing(&text, mode).map_err(|p| file.error(p))
    }

    fn mappings(&self) -> Result<Vec<MappingPages>, NumaError> {
        let file = SysfsFile::root(self.numa_maps_name());
        let text = read(&self.numa_maps).map_err(|p| file.error(p))?;
        parse_numa_maps(&text).map_err(|e| file.error(FileProblem::Malformed(e)))
    }

    fn cpu_nodes(&self) -> Result<Option<NodeMask>, NumaError> {
        let file = SysfsFile::root("has_cpu");
        match read(&self.node_root.join("has_cpu")) {
            Ok(t) => parse_list(&t)
                .map(Some)
                .map_err(|e| file.error(FileProblem::Malformed(e))),
            Err(FileProblem::Missing) => Ok(None),
            Err(p) => Err(file.error(p)),
        }
    }

    fn current_node(&self) -> Result<NodeId, NumaError> {
        let (_, node) = crate::mempolicy::getcpu()
            .map_err(|e| NumaError::from_errno("getcpu", Errno::from_raw(e.raw_os_error())))?;
        Ok(NodeId::new(node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use numaperf_core::parse::{ParseError, ParseErrorKind};
    use std::fs;

    const STAT: &str = "numa_hit 10\nnuma_miss 1\nnuma_foreign 2\ninterleave_hit 3\n\
        local_node 9\nother_node 2\n";

    /// A captured tree of two memory nodes, balancing on, one mapping.
    fn captured(name: &str) -> LinuxLocality {
        let dir =
            std::env::temp_dir().join(format!("numaperf-locality-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for n in 0..2 {
            fs::create_dir_all(dir.join(format!("node/node{n}"))).unwrap();
            fs::write(dir.join(format!("node/node{n}/numastat")), STAT).unwrap();
        }
        fs::write(dir.join("node/has_memory"), "0-1\n").unwrap();
        fs::write(dir.join("node/has_cpu"), "0\n").unwrap();
        fs::write(dir.join("mode"), "1\n").unwrap();
        fs::write(
            dir.join("vmstat"),
            "numa_pte_updates 5\nnuma_huge_pte_updates 0\nnuma_hint_faults 4\n\
             numa_hint_faults_local 3\nnuma_pages_migrated 1\n",
        )
        .unwrap();
        fs::write(
            dir.join("numa_maps"),
            "7f0000000000 bind:1 anon=4 dirty=4 N1=4 kernelpagesize_kB=4\n",
        )
        .unwrap();
        LinuxLocality {
            node_root: dir.join("node"),
            vmstat: dir.join("vmstat"),
            balancing_mode: dir.join("mode"),
            numa_maps: dir.join("numa_maps"),
        }
    }

    #[test]
    fn a_captured_tree_reads() {
        let l = captured("ok");
        let s = l.numastat().unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[1].0, s[1].1.numa_foreign), (NodeId::new(1), 2));
        let b = l.balancing().unwrap().unwrap();
        assert_eq!((b.mode, b.hint_faults_remote()), (1, 1));
        let m = l.mappings().unwrap();
        assert_eq!(m[0].on(NodeId::new(1)), 4);
        assert_eq!(
            l.cpu_nodes().unwrap(),
            Some(NodeMask::single(NodeId::new(0)))
        );
        fs::remove_file(l.node_root.join("has_cpu")).unwrap();
        assert_eq!(l.cpu_nodes().unwrap(), None);
        fs::write(&l.balancing_mode, "0\n").unwrap();
        assert_eq!(l.balancing().unwrap(), None);
        fs::remove_file(&l.balancing_mode).unwrap();
        assert_eq!(l.balancing().unwrap(), None);
    }

    #[test]
    fn bad_files_are_named() {
        let l = captured("bad");
        fs::write(l.node_root.join("node1/numastat"), "numa_hit 1\n").unwrap();
        assert_eq!(
            l.numastat().unwrap_err(),
            SysfsFile::node(NodeId::new(1), "numastat")
                .error(FileProblem::MissingField("numa_miss"))
        );
        fs::remove_file(l.node_root.join("node1/numastat")).unwrap();
        assert_eq!(
            l.numastat().unwrap_err(),
            SysfsFile::node(NodeId::new(1), "numastat").error(FileProblem::Missing)
        );
        fs::write(&l.numa_maps, "7f00 default N0=1\nzz\n").unwrap();
        assert_eq!(
            l.mappings().unwrap_err(),
            SysfsFile::root("/proc/self/numa_maps").error(FileProblem::Malformed(ParseError {
                kind: ParseErrorKind::UnexpectedChar('z'),
                pos: 18
            }))
        );
        fs::write(&l.balancing_mode, "x\n").unwrap();
        assert!(matches!(
            l.balancing().unwrap_err(),
            NumaError::Sysfs { file, problem: FileProblem::Malformed(_) }
                if file == SysfsFile::root("/proc/sys/kernel/numa_balancing")
        ));
        fs::write(&l.balancing_mode, "1\n").unwrap();
        fs::write(&l.vmstat, [0xff, 0xfe]).unwrap();
        assert_eq!(
            l.balancing().unwrap_err(),
            SysfsFile::root("/proc/vmstat").error(FileProblem::NotText)
        );
        fs::write(l.node_root.join("has_memory"), "0-q").unwrap();
        assert!(matches!(l.numastat().unwrap_err(),
            NumaError::Sysfs { file, .. } if file == SysfsFile::root("has_memory")));
        let _ = fs::remove_dir_all(l.node_root.parent().unwrap());
    }

    #[test]
    fn another_process_reads_and_a_missing_one_is_named() {
        let me = LinuxLocality::of_process(std::process::id());
        assert!(me.mappings().unwrap().iter().any(|m| m.resident() > 0));
        // Pid numbers stop at 2^22: this one is never a process.
        let gone = LinuxLocality::of_process(1 << 23);
        assert_eq!(
            gone.mappings().unwrap_err(),
            SysfsFile::root("/proc/<pid>/numa_maps").error(FileProblem::Missing)
        );
    }

    #[test]
    fn the_live_kernel_reads() {
        let l = LinuxLocality::new();
        if !Path::new(SYSFS_NODE_ROOT).exists() {
            eprintln!("skipped: this kernel has no {SYSFS_NODE_ROOT}");
            return;
        }
        let before = l.numastat().unwrap();
        assert!(!before.is_empty());
        // This process's own mappings: its stack and its code at least.
        let maps = l.mappings().unwrap();
        assert!(maps.iter().any(|m| m.resident() > 0), "{maps:?}");
        let _ = l.balancing().unwrap();
        // The balancing lines parse whatever the mode (they are there when the kernel has
        // CONFIG_NUMA_BALANCING, on or off).
        let vmstat = read(&l.vmstat).unwrap();
        let parsed = parse_vmstat_balancing(&vmstat, 1).unwrap();
        assert_eq!(parsed.is_some(), vmstat.contains("numa_hint_faults "));
        let here = l.current_node().unwrap();
        assert!(before.iter().any(|(n, _)| *n == here) || before.len() == 1);
    }
}
