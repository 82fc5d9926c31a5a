//! What the live kernel and this process let numaperf do, found without side effects:
//! system calls probed on empty ranges (nothing to change, so nothing changes) and files
//! of sysfs and procfs read; never a policy, weight or limit written.

use std::path::Path;

use numaperf_core::capabilities::{
    parse_cap_eff, HugePagePool, MemlockLimit, MempolicyCalls, NumaBalancing, ThpMode, ThpSize,
    CAP_SYS_NICE,
};
use numaperf_core::{
    Capabilities, FeatureSet, FileProblem, KernelFeature, KernelVersion, NodeId, NumaError,
    OwnedTopology, SysfsFile, TopologyInfo,
};
use rustix::fd::BorrowedFd;
use rustix::io::Errno;

use crate::cgroup::CgroupReader;
use crate::mempolicy as mp;
use crate::topology::read_once;

/// The transparent huge page settings.
const THP_DIR: &str = "/sys/kernel/mm/transparent_hugepage";
/// The system-wide hugetlb pools (their sizes; per node counts are under each node).
const HUGETLB_DIR: &str = "/sys/kernel/mm/hugepages";
/// The weighted-interleave table (Linux 6.9) and its auto-mode file (6.16).
const WEIGHTS_DIR: &str = "/sys/kernel/mm/mempolicy/weighted_interleave";
const BALANCING: SysfsFile = SysfsFile::root("/proc/sys/kernel/numa_balancing");

/// Whether `mbind` knows `mode` (with its flags): an `mbind` of the empty range at
/// address 0, which the kernel checks the mode of and then returns from before it looks
/// up any memory (`len == 0`). `EINVAL`: an unknown mode or flag.
pub(crate) fn mbind_knows(mode: u32) -> Result<bool, Errno> {
    // SAFETY: an empty range: the kernel validates the mode and flags and returns before
    // touching any mapping or policy (do_mbind returns 0 when start == end).
    match unsafe { mp::mbind(std::ptr::null_mut(), 0, mode, &[], 0, 0) } {
        Ok(()) => Ok(true),
        Err(Errno::INVAL) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Each probe's answer: the features, and whether the mempolicy calls answer at all.
fn probe_features(first_node: Option<NodeId>) -> (FeatureSet, MempolicyCalls) {
    let calls = match mbind_knows(mp::MPOL_BIND) {
        Ok(true) => match mp::move_pages_query(&[], &mut []) {
            Ok(()) => MempolicyCalls::Available,
            Err(Errno::PERM | Errno::ACCESS) => MempolicyCalls::Denied,
            Err(_) => MempolicyCalls::Missing,
        },
        Err(Errno::PERM | Errno::ACCESS) => MempolicyCalls::Denied,
        Ok(false) | Err(_) => MempolicyCalls::Missing,
    };
    let mut f = FeatureSet::EMPTY;
    if calls == MempolicyCalls::Available {
        let knows = |mode| mbind_knows(mode).unwrap_or(false);
        f = f
            .with(KernelFeature::PreferredMany, knows(mp::MPOL_PREFERRED_MANY))
            .with(
                KernelFeature::WeightedInterleave,
                knows(mp::MPOL_WEIGHTED_INTERLEAVE),
            )
            .with(
                KernelFeature::BalancingFlag,
                knows(mp::MPOL_BIND | mp::MPOL_F_NUMA_BALANCING),
            );
        // The home node must be an online node; an empty range changes nothing (the
        // call returns 0 once the node is checked; ENOSYS before 5.17).
        if let Some(node) = first_node {
            // SAFETY: an empty range: no policy is looked up or changed.
            let r = unsafe {
                mp::set_mempolicy_home_node(std::ptr::null_mut(), 0, node.get() as usize, 0)
            };
            f.insert_if(KernelFeature::HomeNode, r.is_ok());
        }
    }
    // SAFETY: an empty range at address 0: the kernel checks the advice and returns
    // before it looks at memory (madvise returns 0 when start == end).
    let populate = unsafe {
        rustix::mm::madvise(
            std::ptr::null_mut(),
            0,
            rustix::mm::Advice::LinuxPopulateWrite,
        )
    };
    f.insert_if(KernelFeature::PopulateWrite, populate.is_ok());
    let exists = |p: &str| Path::new(p).exists();
    f.insert_if(
        KernelFeature::WeightedInterleaveAuto,
        exists(&format!("{WEIGHTS_DIR}/auto")) || exists(&format!("{WEIGHTS_DIR}/__auto_type")),
    );
    (f, calls)
}

trait InsertIf {
    fn insert_if(&mut self, f: KernelFeature, on: bool);
}

impl InsertIf for FeatureSet {
    fn insert_if(&mut self, f: KernelFeature, on: bool) {
        *self = self.with(f, on);
    }
}

/// A small file relative to `dir` (an absolute `path` ignores it), as text.
fn read_small(dir: BorrowedFd<'_>, path: &str) -> Result<String, FileProblem> {
    let mut buf = [0u8; 256];
    let (_, n) = read_once(dir, path, &mut buf).map_err(|e| {
        if e == Errno::NOENT {
            FileProblem::Missing
        } else {
            FileProblem::Unreadable(numaperf_core::Errno::from_raw(e.raw_os_error()))
        }
    })?;
    String::from_utf8(buf[..n].to_vec()).map_err(|_| FileProblem::NotText)
}

/// The sizes, in kB, of the directories `<prefix><size>kB` in `dir` (sorted).
fn sized_dirs(dir: &str, prefix: &str) -> Vec<u64> {
    let mut sizes: Vec<u64> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name();
                    let kb = name.to_str()?.strip_prefix(prefix)?.strip_suffix("kB")?;
                    kb.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default();
    sizes.sort_unstable();
    sizes
}

/// The THP system mode and the multi-size THP sizes' modes.
fn thp(problems: &mut Vec<NumaError>) -> (Option<ThpMode>, Vec<ThpSize>) {
    let cwd = rustix::fs::CWD;
    let mode = match read_small(cwd, "/sys/kernel/mm/transparent_hugepage/enabled") {
        Ok(t) => ThpMode::parse(&t)
            .map_err(|e| {
                let file = SysfsFile::root("/sys/kernel/mm/transparent_hugepage/enabled");
                problems.push(file.error(FileProblem::Malformed(e)));
            })
            .ok(),
        Err(_) => None, // no THP in this kernel
    };
    let sizes = sized_dirs(THP_DIR, "hugepages-")
        .into_iter()
        .filter_map(|kb| {
            let t = read_small(cwd, &format!("{THP_DIR}/hugepages-{kb}kB/enabled")).ok()?;
            match ThpMode::parse(&t) {
                Ok(mode) => Some(ThpSize {
                    size: kb * 1024,
                    mode,
                }),
                Err(e) => {
                    let file = SysfsFile::root("transparent_hugepage/hugepages-*kB/enabled");
                    problems.push(file.error(FileProblem::Malformed(e)));
                    None
                }
            }
        })
        .collect();
    (mode, sizes)
}

/// Explicit huge pages per node and size: `node<N>/hugepages/hugepages-<kB>kB/` under the
/// node tree, or the system-wide pools without one.
fn huge_pages(
    topology: &OwnedTopology,
    node_root: Option<BorrowedFd<'_>>,
    problems: &mut Vec<NumaError>,
) -> Vec<HugePagePool> {
    let mut out = Vec::new();
    let count = |dir: BorrowedFd<'_>, path: String, problems: &mut Vec<NumaError>| {
        let file = SysfsFile::root("hugepages-*kB/{nr,free}_hugepages");
        match read_small(dir, &path) {
            Ok(t) => match t.trim().parse::<u64>() {
                Ok(v) => Some(v),
                Err(_) => {
                    problems.push(file.error(FileProblem::Inconsistent("not a page count")));
                    None
                }
            },
            Err(FileProblem::Missing) => None,
            Err(p) => {
                problems.push(file.error(p));
                None
            }
        }
    };
    for kb in sized_dirs(HUGETLB_DIR, "hugepages-") {
        let nodes: Vec<Option<NodeId>> = match node_root {
            Some(_) => topology.nodes().iter().map(Some).collect(),
            None => vec![None],
        };
        for node in nodes {
            let (dir, base) = match (node_root, node) {
                (Some(root), Some(n)) => (root, format!("node{n}/hugepages/hugepages-{kb}kB")),
                _ => (rustix::fs::CWD, format!("{HUGETLB_DIR}/hugepages-{kb}kB")),
            };
            let total = count(dir, format!("{base}/nr_hugepages"), problems);
            let free = count(dir, format!("{base}/free_hugepages"), problems);
            if let (Some(total), Some(free)) = (total, free) {
                out.push(HugePagePool {
                    node,
                    page_size: kb * 1024,
                    total,
                    free,
                });
            }
        }
    }
    out
}

fn numa_balancing(problems: &mut Vec<NumaError>) -> Option<NumaBalancing> {
    match read_small(rustix::fs::CWD, BALANCING.name) {
        Ok(t) => NumaBalancing::parse(&t)
            .map_err(|e| problems.push(BALANCING.error(FileProblem::Malformed(e))))
            .ok(),
        Err(FileProblem::Missing) => None, // no CONFIG_NUMA_BALANCING
        Err(p) => {
            problems.push(BALANCING.error(p));
            None
        }
    }
}

/// `CAP_SYS_NICE` in the effective set: `capget`, else `/proc/self/status`'s `CapEff`.
fn cap_sys_nice(problems: &mut Vec<NumaError>) -> Option<bool> {
    if let Ok(sets) = rustix::thread::capabilities(None) {
        return Some(
            sets.effective
                .contains(rustix::thread::CapabilitySet::SYS_NICE),
        );
    }
    let file = SysfsFile::root("/proc/self/status");
    let status = std::fs::read_to_string(file.name).ok()?;
    match parse_cap_eff(&status) {
        Some(Ok(caps)) => Some(caps & (1 << CAP_SYS_NICE) != 0),
        Some(Err(e)) => {
            problems.push(file.error(FileProblem::Malformed(e)));
            None
        }
        None => None,
    }
}

/// Everything, read now. `node_root` is the opened node tree (`None`: the one-node
/// fallback); the allowed nodes and CPUs are the topology's (read at backend creation).
pub(crate) fn detect(
    topology: &OwnedTopology,
    node_root: Option<BorrowedFd<'_>>,
    cgroup: &CgroupReader,
) -> Capabilities {
    let mut c = Capabilities::from_topology("linux", topology);
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy();
    match KernelVersion::parse(&release) {
        Ok(v) => c.kernel = Some(v),
        Err(e) => c
            .problems
            .push(SysfsFile::root("uname release").error(FileProblem::Malformed(e))),
    }
    let (features, calls) = probe_features(topology.nodes().first());
    let (mode, sizes) = thp(&mut c.problems);
    c.features = features.with(KernelFeature::MultiSizeThp, !sizes.is_empty());
    c.mempolicy = calls;
    c.placement_query = calls == MempolicyCalls::Available;
    c.thp = mode;
    c.thp_sizes = sizes;
    c.huge_pages = huge_pages(topology, node_root, &mut c.problems);
    c.numa_balancing = numa_balancing(&mut c.problems);
    match cgroup.describe() {
        Ok(m) => c.memory_cgroup = m,
        Err(e) => c.problems.push(e),
    }
    c.cap_sys_nice = cap_sys_nice(&mut c.problems);
    let r = rustix::process::getrlimit(rustix::process::Resource::Memlock);
    c.memlock = Some(MemlockLimit {
        soft: r.current,
        hard: r.maximum,
    });
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_agree_with_the_kernel_that_answers_regions() {
        // The probes change nothing: the thread's policy is the same after them.
        let policy = || {
            let (mut mode, mut words) = (-1i32, [0usize; 16]);
            mp::get_mempolicy(&mut mode, &mut words, 1025, std::ptr::null(), 0)
                .map(|_| (mode, words))
        };
        let before = policy();
        let (f, calls) = probe_features(Some(NodeId::new(0)));
        assert_eq!(policy(), before);
        assert_eq!(calls, MempolicyCalls::Available, "this host answers mbind");
        // An unknown mode is refused, so the probe can say no.
        assert_eq!(mbind_knows(mp::MPOL_WEIGHTED_INTERLEAVE + 10), Ok(false));
        // This host (Linux 6.18) has every probed feature; an older kernel's answers are
        // checked in the guests against their versions.
        let v = KernelVersion::parse(&rustix::system::uname().release().to_string_lossy()).unwrap();
        for feat in [
            KernelFeature::PreferredMany,
            KernelFeature::HomeNode,
            KernelFeature::WeightedInterleave,
            KernelFeature::PopulateWrite,
            KernelFeature::BalancingFlag,
        ] {
            assert_eq!(f.contains(feat), v >= feat.since(), "{feat} on {v}");
        }
    }
}
