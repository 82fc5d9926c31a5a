//! Thread placement: pin the calling thread to a node's CPUs, or give it a default memory
//! policy (both restored on drop), and ask where it runs. Generic over the backend like
//! everything above the trait.

use core::marker::PhantomData;

use numaperf_core::{
    CpuLocation, CpuSet, MemPolicy, NodeId, NumaError, PlacementBackend, ThreadPolicy, TopologyInfo,
};

use crate::DefaultBackend;

/// Restores the thread's previous CPU affinity when dropped. Not `Send`: it must be
/// dropped on the thread it pinned.
#[must_use = "the thread is unpinned when the guard is dropped"]
pub struct PinGuard<B: PlacementBackend> {
    backend: B,
    previous: CpuSet,
    _not_send: PhantomData<*const ()>,
}

impl<B: PlacementBackend> PinGuard<B> {
    /// The affinity that will be restored.
    pub fn previous(&self) -> &CpuSet {
        &self.previous
    }
}

impl<B: PlacementBackend> Drop for PinGuard<B> {
    fn drop(&mut self) {
        let _ = self.backend.set_thread_affinity(&self.previous);
    }
}

/// The CPUs of `node` this process may run on; an error for an absent node or a node
/// without usable CPUs (a memory-only node).
///
/// # Errors
/// [`NumaError::InvalidNode`], [`NumaError::NodeNotFound`], [`NumaError::NoCpusOnNode`].
pub fn node_cpus<B: PlacementBackend>(backend: &B, node: NodeId) -> Result<CpuSet, NumaError> {
    let topo = backend.topology();
    if !node.is_valid() {
        return Err(NumaError::InvalidNode(node.get()));
    }
    let cpus = topo
        .node_cpus(node)
        .ok_or(NumaError::NodeNotFound(node))?
        .intersection(topo.allowed_cpus());
    if cpus.is_empty() {
        return Err(NumaError::NoCpusOnNode(node));
    }
    Ok(cpus)
}

/// Pins the calling thread to `node`'s CPUs until the guard drops.
///
/// # Errors
/// As [`node_cpus`] and [`pin_to_cpus`].
pub fn pin_to_node<B: PlacementBackend>(
    backend: B,
    node: NodeId,
) -> Result<PinGuard<B>, NumaError> {
    let cpus = node_cpus(&backend, node)?;
    pin_to_cpus(backend, &cpus)
}

/// Pins the calling thread to `cpus` until the guard drops.
///
/// # Errors
/// [`NumaError::EmptyCpuSet`], [`NumaError::InvalidCpu`], [`NumaError::CpuNotAllowed`],
/// and the backend's refusal.
pub fn pin_to_cpus<B: PlacementBackend>(
    backend: B,
    cpus: &CpuSet,
) -> Result<PinGuard<B>, NumaError> {
    if let Some(bad) = cpus.out_of_range() {
        return Err(NumaError::InvalidCpu(bad));
    }
    let previous = backend.thread_affinity()?;
    backend.set_thread_affinity(cpus)?;
    Ok(PinGuard {
        backend,
        previous,
        _not_send: PhantomData,
    })
}

/// Where the calling thread runs now (CPU and node).
///
/// # Errors
/// The backend's `getcpu` error.
pub fn current_location<B: PlacementBackend>(backend: &B) -> Result<CpuLocation, NumaError> {
    backend.current_cpu()
}

/// Restores the thread's previous memory policy when dropped. Not `Send`: it must be
/// dropped on the thread whose policy it set.
#[must_use = "the thread's policy is restored when the guard is dropped"]
pub struct PolicyGuard<B: PlacementBackend = DefaultBackend> {
    backend: B,
    previous: Option<ThreadPolicy>,
    _not_send: PhantomData<*const ()>,
}

impl<B: PlacementBackend> PolicyGuard<B> {
    /// The policy that will be restored (`None`: the default, local allocation).
    pub fn previous(&self) -> Option<&ThreadPolicy> {
        self.previous.as_ref()
    }
}

impl<B: PlacementBackend> Drop for PolicyGuard<B> {
    fn drop(&mut self) {
        let _ = self.backend.set_thread_policy(self.previous.take());
    }
}

/// Gives the calling thread a default memory policy until the guard drops: memory without
/// a policy of its own that this thread faults in (the heap, ordinary `mmap`s, a `Vec`'s
/// buffer) is placed by it; regions keep their own. What libnuma's `numa_set_membind`
/// (`Bind`), `numa_set_preferred` (`Preferred`) and `numa_set_interleave_mask`
/// (`Interleave`) do, but scoped.
///
/// ```no_run
/// use numaperf::{MemPolicy, NodeId, NodeMask};
/// let _guard = numaperf::thread::set_policy(MemPolicy::Interleave(NodeMask::first_n(2)))?;
/// let table = vec![0u64; 1 << 24]; // its pages are interleaved as they are touched
/// # drop(table);
/// # Ok::<(), numaperf::NumaError>(())
/// ```
///
/// # Errors
/// Validation errors of the policy ([`MemPolicy::validate`]: absent nodes, empty masks,
/// nodes without memory), [`NumaError::Unsupported`] for a mode the kernel lacks (and on
/// the portable backend), and the kernel's refusal.
pub fn set_policy(policy: MemPolicy) -> Result<PolicyGuard, NumaError> {
    set_policy_in(DefaultBackend::shared()?, ThreadPolicy::new(policy))
}

/// [`set_policy`] on an explicit backend, with the policy's node mode and balancing flag.
/// A `WeightedInterleave` takes the kernel's global weights (a thread policy has no
/// weights of its own).
///
/// # Errors
/// As [`set_policy`], and the backend's refusal to read the current policy.
pub fn set_policy_in<B: PlacementBackend>(
    backend: B,
    policy: ThreadPolicy,
) -> Result<PolicyGuard<B>, NumaError> {
    policy
        .policy
        .validate(&policy.options(), backend.topology())?;
    let previous = backend.thread_policy()?;
    backend.set_thread_policy(Some(policy))?;
    Ok(PolicyGuard {
        backend,
        previous,
        _not_send: PhantomData,
    })
}

/// The calling thread's own memory policy (`None`: the default, local allocation).
///
/// # Errors
/// The backend's refusal to read it.
pub fn current_policy<B: PlacementBackend>(backend: &B) -> Result<Option<ThreadPolicy>, NumaError> {
    backend.thread_policy()
}
