//! Thread placement: pin the calling thread to a node's CPUs (restored on drop), and
//! ask where it runs. Generic over the backend like everything above the trait.

use core::marker::PhantomData;

use numaperf_core::{CpuLocation, CpuSet, NodeId, NumaError, PlacementBackend, TopologyInfo};

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
