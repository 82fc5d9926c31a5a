//! `numaperf-portable`: the one-node backend of numaperf for every OS.
//!
//! [`PortableBackend`] implements `PlacementBackend` with ordinary OS calls: real memory
//! (`mmap` through rustix on Unix, the global allocator with page alignment elsewhere), a
//! topology of one node holding the machine's CPUs and memory, policies that name node 0
//! (always `Soft`), and honest reports: it cannot observe where a page is, so
//! `page_locations` says [`PageLocation::Unknown`] for every page instead of inventing
//! "node0=N", and hard (verified) placement is `Unsupported`. It is what `numaperf` uses
//! where there is no Linux backend (macOS, Windows), and it is built and tested on Linux too.
#![deny(missing_docs)]
#![warn(clippy::missing_errors_doc)]

mod memory;
mod system;

use std::sync::{Arc, OnceLock};

use numaperf_core::region::round_to_unit;
use numaperf_core::{
    CpuLocation, CpuSet, HugePages, KernelWeights, Mapping, MemPolicy, NodeId, NodeInfo, NodeMask,
    NodeMode, NumaError, OwnedTopology, PageLocation, PageRange, PlacementBackend, Prefault,
    RegionOptions, TopologyInfo,
};

/// One node, real memory, nothing reported that was not observed. A cheap, cloneable
/// handle; the machine is read once at creation.
#[derive(Clone, Debug)]
pub struct PortableBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    topology: OwnedTopology,
    page_size: usize,
}

const NODE0: NodeId = NodeId::new(0);

impl PortableBackend {
    /// This machine as one node: every CPU this process may use (numbered `0..n`) and the
    /// machine's memory.
    ///
    /// # Errors
    /// [`NumaError::Unsupported`] where the OS tells neither the CPU count nor the memory.
    pub fn new() -> Result<Self, NumaError> {
        let cpus = system::allowed_cpus()?;
        let memory = system::memory()?;
        let node = NodeInfo::new(NODE0, cpus, memory.total, memory.free);
        let topology = OwnedTopology::new(vec![node], vec![10], None, Some(cpus))?;
        Ok(PortableBackend {
            inner: Arc::new(Inner {
                topology,
                page_size: memory::page_size(),
            }),
        })
    }

    /// The process-wide backend, created on first use.
    ///
    /// # Errors
    /// What [`PortableBackend::new`] returns on the first call.
    pub fn shared() -> Result<Self, NumaError> {
        static SHARED: OnceLock<PortableBackend> = OnceLock::new();
        if let Some(b) = SHARED.get() {
            return Ok(b.clone());
        }
        let b = Self::new()?;
        Ok(SHARED.get_or_init(|| b).clone())
    }
}

/// Hard placement needs a page-placement query this backend does not have.
const NO_HARD: NumaError = NumaError::Unsupported {
    feature: "hard (verified) placement",
    since: "a kernel that reports where pages are (the Linux backend)",
};

impl PlacementBackend for PortableBackend {
    type Topology = OwnedTopology;

    fn topology(&self) -> &OwnedTopology {
        &self.inner.topology
    }

    fn base_page_size(&self) -> usize {
        self.inner.page_size
    }

    /// Free memory of the machine (node 0). Where the OS does not say what is free
    /// (macOS), this is the total: the capacity check then refuses only what can never fit.
    fn free_memory(&self, node: NodeId, huge: HugePages) -> Result<u64, NumaError> {
        if node != NODE0 {
            return Err(NumaError::NodeNotFound(node));
        }
        if huge.is_explicit() {
            return Ok(0);
        }
        Ok(system::memory()?.free)
    }

    fn map(&self, len: usize, huge: HugePages) -> Result<Mapping, NumaError> {
        if huge.is_explicit() {
            return Err(NumaError::HugePagesUnavailable {
                page_size: huge.unit(self.inner.page_size),
            });
        }
        let page = self.inner.page_size;
        let mapped = round_to_unit(len, page)?;
        let addr = memory::map(mapped, page)?;
        // SAFETY: `addr..addr + mapped` is the fresh zeroed memory `memory::map` made; it
        // stays valid until `unmap` releases it with the same length; `page` divides it.
        Ok(unsafe { Mapping::from_raw_parts(addr, len, mapped, page) })
    }

    unsafe fn apply_policy(
        &self,
        m: &Mapping,
        pages: PageRange,
        policy: &MemPolicy,
        opts: &RegionOptions,
        strict: bool,
    ) -> Result<(), NumaError> {
        m.range(pages)?;
        if strict {
            return Err(NO_HARD);
        }
        // Every policy that validates here names node 0 (or folds onto it): with one node
        // there is nothing to apply.
        policy.validate(opts, &self.inner.topology).map(drop)
    }

    unsafe fn prefault(
        &self,
        m: &Mapping,
        pages: PageRange,
        how: Prefault,
    ) -> Result<(), NumaError> {
        let (addr, len) = m.range(pages)?;
        if how != Prefault::None {
            // SAFETY: the caller owns the range and nothing else accesses it (the trait's
            // mapping contract); it is mapped read-write.
            unsafe { numaperf_core::region::write_fault(addr, len, m.page_size()) };
        }
        Ok(())
    }

    /// Every page is [`PageLocation::Unknown`]: this backend has no way to observe where
    /// (or whether) a page is backed, and reports nothing it did not observe.
    fn page_locations(
        &self,
        m: &Mapping,
        first: usize,
        out: &mut [PageLocation],
    ) -> Result<(), NumaError> {
        m.range(PageRange {
            first,
            count: out.len(),
        })?;
        out.fill(PageLocation::Unknown);
        Ok(())
    }

    unsafe fn migrate(&self, _m: &Mapping, to: &NodeMask, mode: NodeMode) -> Result<(), NumaError> {
        let mut opts = RegionOptions::new();
        opts.node_mode = mode;
        // One node: a valid target is node 0 and nothing moves.
        MemPolicy::Bind(*to)
            .validate(&opts, &self.inner.topology)
            .map(drop)
    }

    unsafe fn unmap(&self, m: &Mapping) -> Result<(), NumaError> {
        // SAFETY: the caller guarantees `m` came from `map` and is no longer referenced;
        // `mapped_len` and the page size are what `map` used.
        unsafe { memory::unmap(m.addr(), m.mapped_len(), m.page_size()) }
    }

    fn kernel_weights(&self) -> Result<Option<KernelWeights>, NumaError> {
        Ok(None)
    }

    /// The one node and this process's CPUs; no kernel feature, no placement query (so
    /// no hard mode), no cgroup: nothing this backend cannot observe is claimed.
    fn capabilities(&self) -> numaperf_core::Capabilities {
        numaperf_core::Capabilities::from_topology("portable", &self.inner.topology)
    }

    fn current_cpu(&self) -> Result<CpuLocation, NumaError> {
        let cpu = system::current_cpu()?;
        Ok(CpuLocation { cpu, node: NODE0 })
    }

    fn thread_affinity(&self) -> Result<CpuSet, NumaError> {
        system::thread_affinity(self.inner.topology.allowed_cpus())
    }

    fn set_thread_affinity(&self, cpus: &CpuSet) -> Result<(), NumaError> {
        if let Some(bad) = cpus.out_of_range() {
            return Err(NumaError::InvalidCpu(bad));
        }
        if cpus.is_empty() {
            return Err(NumaError::EmptyCpuSet);
        }
        let allowed = self.inner.topology.allowed_cpus();
        if cpus.intersection(allowed).is_empty() {
            return Err(NumaError::CpuNotAllowed(cpus.first().unwrap_or(0) as u32));
        }
        system::set_thread_affinity(cpus, allowed)
    }
}

#[cfg(test)]
mod tests;
