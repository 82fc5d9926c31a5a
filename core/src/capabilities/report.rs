//! `Capabilities`: everything a backend found, the verdicts derived from it (features a
//! region needs, hard mode and its blockers), and a `Display` for people.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::{
    FeatureSet, HardModeBlocker, HugePagePool, KernelFeature, KernelVersion, MemlockLimit,
    MempolicyCalls, NumaBalancing, ThpMode, ThpSize,
};
use crate::cgroup::{CgroupVersion, MemoryLimit};
use crate::error::NumaError;
use crate::node::{CpuSet, NodeMask};
use crate::options::RegionOptions;
use crate::policy::MemPolicy;
use crate::topology::TopologyInfo;

/// The memory cgroup this process is in, and the limit that binds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryCgroup {
    /// The hierarchy with the memory controller.
    pub version: CgroupVersion,
    /// The process's cgroup, as `/proc/self/cgroup` names it.
    pub path: String,
    /// The tightest limit of the cgroup and its ancestors (`None`: no level has one).
    pub limit: Option<MemoryLimit>,
    /// The cgroup whose limit that is.
    pub limited_by: Option<String>,
}

/// What a machine's kernel and this process let numaperf do, as one backend found it.
///
/// Every field that could not be found out is `None` (or empty), and what kept it from
/// being found (an unreadable or malformed file) is in `problems`, named. Nothing in it
/// was assumed from the kernel version: each feature was probed or looked up (see
/// [`KernelFeature`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// The backend that answered (`"linux"`, `"sim"`, `"portable"`).
    pub backend: &'static str,
    /// The kernel release (`None`: not Linux, or simulated without one).
    pub kernel: Option<KernelVersion>,
    /// The features numaperf uses that this kernel has.
    pub features: FeatureSet,
    /// Whether `mbind` and `move_pages` answer.
    pub mempolicy: MempolicyCalls,
    /// Whether the backend can see which node each page is on (what hard mode verifies).
    pub placement_query: bool,
    /// The system-wide transparent huge page mode (`None`: no THP in this kernel).
    pub thp: Option<ThpMode>,
    /// The multi-size THP sizes and their modes (empty before Linux 6.8).
    pub thp_sizes: Vec<ThpSize>,
    /// Explicit huge pages per node and size (only sizes the kernel has pools of).
    pub huge_pages: Vec<HugePagePool>,
    /// Automatic NUMA balancing (`None`: the kernel has none, or it is unknown).
    pub numa_balancing: Option<NumaBalancing>,
    /// The nodes this process may allocate on (its cpuset's `mems`).
    pub allowed_nodes: NodeMask,
    /// The nodes with memory.
    pub memory_nodes: NodeMask,
    /// The CPUs this process may run on (its affinity, within its cpuset).
    pub allowed_cpus: CpuSet,
    /// The memory cgroup and its binding limit (`None`: no memory controller found).
    pub memory_cgroup: Option<MemoryCgroup>,
    /// Whether the process has `CAP_SYS_NICE` (needed only to move other processes'
    /// pages or shared pages, `MPOL_MF_MOVE_ALL`; numaperf's own regions do not need it).
    pub cap_sys_nice: Option<bool>,
    /// `RLIMIT_MEMLOCK`.
    pub memlock: Option<MemlockLimit>,
    /// What could not be read, each error naming its file.
    pub problems: Vec<NumaError>,
}

impl Capabilities {
    /// What any backend can tell without asking its kernel: the topology's nodes and
    /// CPUs; nothing else is known, and no placement query is promised.
    pub fn from_topology<T: TopologyInfo + ?Sized>(backend: &'static str, topology: &T) -> Self {
        Capabilities {
            allowed_nodes: *topology.allowed_nodes(),
            memory_nodes: *topology.memory_nodes(),
            allowed_cpus: *topology.allowed_cpus(),
            ..Self::unknown(backend, Vec::new())
        }
    }

    /// Capabilities that know nothing (no nodes, no CPUs, no features), with `problems`
    /// saying why: for a backend that could not be had.
    pub fn unknown(backend: &'static str, problems: Vec<NumaError>) -> Self {
        Capabilities {
            backend,
            kernel: None,
            features: FeatureSet::EMPTY,
            mempolicy: MempolicyCalls::NotApplicable,
            placement_query: false,
            thp: None,
            thp_sizes: Vec::new(),
            huge_pages: Vec::new(),
            numa_balancing: None,
            allowed_nodes: NodeMask::new(),
            memory_nodes: NodeMask::new(),
            allowed_cpus: CpuSet::new(),
            memory_cgroup: None,
            cap_sys_nice: None,
            memlock: None,
            problems,
        }
    }

    /// Whether the kernel has `feature`.
    pub fn supports(&self, feature: KernelFeature) -> bool {
        self.features.contains(feature)
    }

    /// Whether a region with `policy` and `opts` can be made here as far as kernel
    /// features go (node checks are `MemPolicy::validate`'s).
    ///
    /// # Errors
    /// [`NumaError::Unsupported`] naming the first feature it needs that is missing.
    pub fn check_region(&self, policy: &MemPolicy, opts: &RegionOptions) -> Result<(), NumaError> {
        match KernelFeature::required_by(policy, opts)
            .difference(self.features)
            .iter()
            .next()
        {
            Some(f) => Err(f.unsupported()),
            None => Ok(()),
        }
    }

    /// Why hard (verified) placement cannot be had here; empty when it can.
    ///
    /// Hard mode is a strict `mbind` (`MPOL_MF_STRICT | MPOL_MF_MOVE`), population, and a
    /// `move_pages` query of every page. It needs no privilege (`MPOL_MF_MOVE` moves only
    /// the process's own pages) and is not undone by NUMA balancing (which never moves
    /// a page out of a `Bind` policy's nodes), so neither is a blocker here.
    pub fn hard_mode_blockers(&self) -> Vec<HardModeBlocker> {
        let mut out = Vec::new();
        if !self.placement_query {
            out.push(HardModeBlocker::NoPlacementQuery);
        }
        match self.mempolicy {
            MempolicyCalls::Available => {}
            m @ (MempolicyCalls::Missing | MempolicyCalls::Denied) => {
                out.push(HardModeBlocker::MempolicyCalls(m))
            }
            MempolicyCalls::NotApplicable if self.placement_query => {}
            m @ MempolicyCalls::NotApplicable => out.push(HardModeBlocker::MempolicyCalls(m)),
        }
        if self
            .allowed_nodes
            .intersection(&self.memory_nodes)
            .is_empty()
        {
            out.push(HardModeBlocker::NoUsableMemoryNode);
        }
        out
    }

    /// Whether hard (verified) placement can be had here: [`Self::hard_mode_blockers`]
    /// is empty.
    pub fn supports_hard_mode(&self) -> bool {
        self.hard_mode_blockers().is_empty()
    }

    /// Bytes this process may still populate before its memory cgroup's limit (`None`: no
    /// limit known).
    pub fn memory_headroom(&self) -> Option<u64> {
        self.memory_cgroup
            .as_ref()
            .and_then(|c| c.limit)
            .map(|l| l.headroom())
    }
}

/// Bytes as people read them: `64 MiB`, `1.5 GiB`, `4096 B`.
struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [
            (1u64 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ];
        for (unit, name) in units {
            if self.0 >= unit {
                return if self.0 % unit == 0 {
                    write!(f, "{} {name}", self.0 / unit)
                } else {
                    write!(f, "{:.1} {name}", self.0 as f64 / unit as f64)
                };
            }
        }
        write!(f, "{} B", self.0)
    }
}

fn limit(l: Option<u64>) -> alloc::string::String {
    l.map_or_else(|| "unlimited".into(), |b| alloc::format!("{}", Bytes(b)))
}

/// Several lines, one topic each, for people (not for parsing):
///
/// ```text
/// backend          linux, kernel 6.18.0
/// MPOL_PREFERRED_MANY          yes   (Linux 5.15)
/// ...
/// hard mode        supported
/// ```
impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unknown = "unknown";
        match self.kernel {
            Some(k) => writeln!(f, "backend           {}, Linux {k}", self.backend)?,
            None => writeln!(f, "backend           {}, no kernel version", self.backend)?,
        }
        writeln!(f, "kernel features")?;
        for feat in KernelFeature::ALL {
            let has = if self.features.contains(feat) {
                "yes"
            } else {
                "no"
            };
            writeln!(
                f,
                "  {:<30} {has:<4} (Linux {}.{})",
                feat.name(),
                feat.since().major,
                feat.since().minor
            )?;
        }
        let calls = match self.mempolicy {
            MempolicyCalls::Available => "available",
            MempolicyCalls::Missing => "missing (ENOSYS)",
            MempolicyCalls::Denied => "refused (EPERM)",
            MempolicyCalls::NotApplicable => "none in this backend",
        };
        writeln!(f, "mempolicy calls   {calls}")?;
        let query = if self.placement_query { "yes" } else { "no" };
        writeln!(f, "placement query   {query}")?;
        match self.thp {
            Some(m) => write!(f, "THP               {}", m.name())?,
            None => write!(f, "THP               none")?,
        }
        if !self.thp_sizes.is_empty() {
            f.write_str("; sizes")?;
            for s in &self.thp_sizes {
                write!(f, " {}={}", Bytes(s.size), s.mode.name())?;
            }
        }
        writeln!(f)?;
        if self.huge_pages.is_empty() {
            writeln!(f, "huge pages        none reserved")?;
        } else {
            writeln!(f, "huge pages")?;
            for p in &self.huge_pages {
                let who = match p.node {
                    Some(n) => alloc::format!("node{n}"),
                    None => "system".into(),
                };
                let size = alloc::format!("{}", Bytes(p.page_size));
                writeln!(f, "  {who:<8} {size:>8}: {} free of {}", p.free, p.total)?;
            }
        }
        match self.numa_balancing {
            Some(b) => writeln!(f, "NUMA balancing    {b}")?,
            None => writeln!(f, "NUMA balancing    not in this kernel, or unknown")?,
        }
        writeln!(
            f,
            "allowed nodes     {} (with memory: {})",
            self.allowed_nodes,
            self.allowed_nodes.intersection(&self.memory_nodes)
        )?;
        writeln!(f, "allowed CPUs      {}", self.allowed_cpus)?;
        match &self.memory_cgroup {
            None => writeln!(f, "memory cgroup     none found")?,
            Some(c) => {
                write!(f, "memory cgroup     {} {}", c.version, c.path)?;
                match (c.limit, &c.limited_by) {
                    (Some(l), by) => writeln!(
                        f,
                        ": limit {} ({}), {} used ({} page cache), {} headroom",
                        Bytes(l.limit),
                        by.as_deref().unwrap_or("?"),
                        Bytes(l.usage),
                        Bytes(l.reclaimable),
                        Bytes(l.headroom())
                    )?,
                    (None, _) => writeln!(f, ": no limit")?,
                }
            }
        }
        let nice = self
            .cap_sys_nice
            .map_or(unknown, |c| if c { "yes" } else { "no" });
        writeln!(f, "CAP_SYS_NICE      {nice}")?;
        match self.memlock {
            Some(m) => writeln!(
                f,
                "RLIMIT_MEMLOCK    {} (hard {})",
                limit(m.soft),
                limit(m.hard)
            )?,
            None => writeln!(f, "RLIMIT_MEMLOCK    {unknown}")?,
        }
        for p in &self.problems {
            writeln!(f, "could not read    {p}")?;
        }
        let blockers = self.hard_mode_blockers();
        if blockers.is_empty() {
            write!(f, "hard mode         supported")
        } else {
            write!(f, "hard mode         not supported:")?;
            for b in blockers {
                write!(f, "\n  - {b}")?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::node::NodeId;
    use std::string::ToString;

    fn linux_like() -> Capabilities {
        let node0 = NodeMask::single(NodeId::new(0));
        Capabilities {
            backend: "linux",
            kernel: Some(KernelVersion::new(6, 1, 0)),
            features: FeatureSet::ALL
                .with(KernelFeature::WeightedInterleave, false)
                .with(KernelFeature::WeightedInterleaveAuto, false)
                .with(KernelFeature::MultiSizeThp, false),
            mempolicy: MempolicyCalls::Available,
            placement_query: true,
            thp: Some(ThpMode::Madvise),
            thp_sizes: Vec::new(),
            huge_pages: alloc::vec![HugePagePool {
                node: Some(NodeId::new(0)),
                page_size: 2 << 20,
                total: 4,
                free: 3
            }],
            numa_balancing: Some(NumaBalancing::default()),
            allowed_nodes: node0,
            memory_nodes: node0,
            allowed_cpus: CpuSet::single(0),
            memory_cgroup: Some(MemoryCgroup {
                version: CgroupVersion::V2,
                path: "/job".into(),
                limit: Some(MemoryLimit {
                    limit: 64 << 20,
                    usage: 20 << 20,
                    reclaimable: 4 << 20,
                }),
                limited_by: Some("/job".into()),
            }),
            cap_sys_nice: Some(false),
            memlock: Some(MemlockLimit {
                soft: Some(8 << 20),
                hard: None,
            }),
            problems: Vec::new(),
        }
    }

    #[test]
    fn hard_mode_needs_a_placement_query_calls_and_memory() {
        let c = linux_like();
        assert!(c.supports_hard_mode(), "{:?}", c.hard_mode_blockers());
        let mut portable = c.clone();
        portable.placement_query = false;
        portable.mempolicy = MempolicyCalls::NotApplicable;
        assert_eq!(
            portable.hard_mode_blockers(),
            [
                HardModeBlocker::NoPlacementQuery,
                HardModeBlocker::MempolicyCalls(MempolicyCalls::NotApplicable)
            ]
        );
        let mut seccomp = c.clone();
        seccomp.mempolicy = MempolicyCalls::Denied;
        assert_eq!(
            seccomp.hard_mode_blockers(),
            [HardModeBlocker::MempolicyCalls(MempolicyCalls::Denied)]
        );
        let mut cpuset = c.clone();
        cpuset.allowed_nodes = NodeMask::single(NodeId::new(1));
        assert_eq!(
            cpuset.hard_mode_blockers(),
            [HardModeBlocker::NoUsableMemoryNode]
        );
        // No privilege and NUMA balancing on block nothing (see hard_mode_blockers).
        let mut unprivileged = c;
        unprivileged.cap_sys_nice = Some(false);
        unprivileged.numa_balancing = Some(NumaBalancing {
            normal: true,
            memory_tiering: false,
        });
        assert!(unprivileged.supports_hard_mode());
    }

    #[test]
    fn regions_are_checked_against_the_features() {
        let c = linux_like().clone();
        let one = NodeMask::single(NodeId::new(0));
        assert_eq!(
            c.check_region(&MemPolicy::PreferredMany(one), &RegionOptions::new()),
            Ok(())
        );
        let mut old = c;
        old.features.remove(KernelFeature::HomeNode);
        assert_eq!(
            old.check_region(
                &MemPolicy::Bind(one),
                &RegionOptions::new().home_node(NodeId::new(0))
            ),
            Err(KernelFeature::HomeNode.unsupported())
        );
        assert_eq!(old.memory_headroom(), Some(48 << 20));
    }

    #[test]
    fn display_says_each_topic_and_the_verdict() {
        let text = linux_like().to_string();
        for want in [
            "backend           linux, Linux 6.1.0",
            "MPOL_WEIGHTED_INTERLEAVE       no   (Linux 6.9)",
            "MPOL_PREFERRED_MANY            yes  (Linux 5.15)",
            "THP               madvise",
            "  node0       2 MiB: 3 free of 4",
            "NUMA balancing    off",
            "memory cgroup     v2 /job: limit 64 MiB (/job), 20 MiB used (4 MiB page cache), 48 MiB headroom",
            "CAP_SYS_NICE      no",
            "RLIMIT_MEMLOCK    8 MiB (hard unlimited)",
            "hard mode         supported",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        let mut none = linux_like();
        none.placement_query = false;
        none.problems.push(NumaError::InvalidTopology("x"));
        let text = none.to_string();
        assert!(
            text.contains("hard mode         not supported:\n  - this backend cannot see"),
            "{text}"
        );
        assert!(
            text.contains("could not read    not a topology: x"),
            "{text}"
        );
        assert_eq!(Bytes(1536 << 20).to_string(), "1.5 GiB");
        assert_eq!(Bytes(1000).to_string(), "1000 B");
        assert_eq!(Bytes(4095).to_string(), "4.0 KiB");
    }
}
