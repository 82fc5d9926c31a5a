//! The simulated machine's capabilities: its kernel has every feature the simulator
//! models unless told to lack one ([`SimMachine::kernel_lacks`]; a [`crate::FaultInjector`]
//! can turn features off over any backend), its hugetlb pools, and its memory cgroup.

use numaperf_core::capabilities::{HugePagePool, MempolicyCalls, NumaBalancing, ThpMode};
use numaperf_core::{
    Capabilities, CgroupVersion, FeatureSet, KernelFeature, MemoryCgroup, MemoryLimit, NodeId,
    PlacementBackend,
};

use crate::machine::SimMachine;

/// What the machine's state says, read under its lock.
pub(crate) struct Facts {
    /// Features the simulated kernel was told to lack.
    pub(crate) lacks: FeatureSet,
    /// `(node, page size, total, free)` of every hugetlb pool.
    pub(crate) huge: Vec<(NodeId, u64, u64, u64)>,
    /// The simulated memory cgroup's limit and usage.
    pub(crate) memory_limit: Option<MemoryLimit>,
    /// Whether mempolicy calls are refused ([`SimMachine::deny_mempolicy_calls`]).
    pub(crate) denied: bool,
}

/// The simulated cgroup's path, as reports show it.
const SIM_CGROUP: &str = "/numaperf-sim";

/// The capabilities of `m`, from its facts. Multi-size THP is not modelled (the sim's
/// transparent huge pages are 2 MiB, taken only where advised: mode `madvise`); NUMA
/// balancing runs only when a test asks ([`SimMachine::balance`]), so it reads as off.
pub(crate) fn of_sim(m: &SimMachine, f: Facts) -> Capabilities {
    let mut c = Capabilities::from_topology("sim", m.topology());
    let auto = matches!(m.kernel_weights(), Ok(Some(k)) if k.auto.is_some());
    c.features = FeatureSet::ALL
        .with(KernelFeature::MultiSizeThp, false)
        .with(KernelFeature::WeightedInterleaveAuto, auto)
        .difference(f.lacks);
    c.mempolicy = if f.denied {
        MempolicyCalls::Denied
    } else {
        MempolicyCalls::Available
    };
    c.placement_query = !f.denied;
    c.thp = Some(ThpMode::Madvise);
    c.huge_pages = f
        .huge
        .into_iter()
        .map(|(node, page_size, total, free)| HugePagePool {
            node: Some(node),
            page_size,
            total,
            free,
        })
        .collect();
    c.numa_balancing = Some(NumaBalancing::default());
    c.memory_cgroup = f.memory_limit.map(|l| MemoryCgroup {
        version: CgroupVersion::V2,
        path: SIM_CGROUP.into(),
        limit: Some(l),
        limited_by: Some(SIM_CGROUP.into()),
    });
    c
}
