//! A backend wrapper that runs a hook before every call and forwards it: the one
//! forwarding layer under `Tracer` (count) and `FaultInjector` (fail), over any backend.

use numaperf_core::{
    Capabilities, CpuLocation, CpuSet, FeatureSet, HugePages, KernelFeature, KernelWeights,
    Mapping, MemPolicy, MemoryLimit, NodeId, NodeMask, NodeMode, NumaError, PageLocation,
    PageRange, PlacementBackend, Prefault, RegionOptions, SharedHandle, SharedObject,
};

use crate::calls::CallKind;

/// Runs before each call; an error stops the call (the inner backend never sees it).
pub trait CallHook {
    /// Called before a call of `kind`. `unmap` ignores the result: a mapping is always
    /// released, so a wrapper can never leak one.
    ///
    /// # Errors
    /// An error stops the call with that error.
    fn before(&self, kind: CallKind) -> Result<(), NumaError>;

    /// Kernel features the wrapped backend is to seem to lack: its capabilities leave them
    /// out, and a region that needs one is `Unsupported`. The default: none.
    fn disabled_features(&self) -> FeatureSet {
        FeatureSet::EMPTY
    }
}

/// `B` with `H` run before every call. Itself a backend, so wrappers stack.
#[derive(Debug)]
pub struct Hooked<B, H> {
    pub(crate) inner: B,
    pub(crate) hook: H,
}

impl<B, H> Hooked<B, H> {
    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The hook.
    pub fn hook(&self) -> &H {
        &self.hook
    }
}

impl<B: PlacementBackend, H: CallHook> PlacementBackend for Hooked<B, H> {
    type Topology = B::Topology;

    fn topology(&self) -> &B::Topology {
        self.inner.topology()
    }
    fn base_page_size(&self) -> usize {
        self.inner.base_page_size()
    }
    fn free_memory(&self, node: NodeId, huge: HugePages) -> Result<u64, NumaError> {
        self.hook.before(CallKind::FreeMemory)?;
        self.inner.free_memory(node, huge)
    }
    fn map(&self, len: usize, huge: HugePages) -> Result<Mapping, NumaError> {
        self.hook.before(CallKind::Map)?;
        self.inner.map(len, huge)
    }
    unsafe fn apply_policy(
        &self,
        m: &Mapping,
        pages: PageRange,
        p: &MemPolicy,
        o: &RegionOptions,
        strict: bool,
    ) -> Result<(), NumaError> {
        self.hook.before(CallKind::ApplyPolicy)?;
        let wi = matches!(p, MemPolicy::WeightedInterleave(_));
        let needs = KernelFeature::required_by(p, o).with(KernelFeature::WeightedInterleave, wi);
        if let Some(f) = needs
            .intersection(self.hook.disabled_features())
            .iter()
            .next()
        {
            return Err(f.unsupported());
        }
        // SAFETY: our caller upholds the mapping contract; `m` is `self.inner`'s.
        unsafe { self.inner.apply_policy(m, pages, p, o, strict) }
    }
    unsafe fn prefault(
        &self,
        m: &Mapping,
        pages: PageRange,
        how: Prefault,
    ) -> Result<(), NumaError> {
        self.hook.before(CallKind::Prefault)?;
        // SAFETY: as above.
        unsafe { self.inner.prefault(m, pages, how) }
    }
    unsafe fn populate_parts(
        &self,
        m: &Mapping,
        plan: &numaperf_core::populate::PopulatePlan,
    ) -> Result<(), NumaError> {
        self.hook.before(CallKind::Prefault)?;
        // SAFETY: as above.
        unsafe { self.inner.populate_parts(m, plan) }
    }
    fn page_locations(
        &self,
        m: &Mapping,
        first: usize,
        out: &mut [PageLocation],
    ) -> Result<(), NumaError> {
        self.hook.before(CallKind::PageLocations)?;
        self.inner.page_locations(m, first, out)
    }
    unsafe fn migrate(&self, m: &Mapping, to: &NodeMask, mode: NodeMode) -> Result<(), NumaError> {
        self.hook.before(CallKind::Migrate)?;
        // SAFETY: as above.
        unsafe { self.inner.migrate(m, to, mode) }
    }
    fn kernel_weights(&self) -> Result<Option<KernelWeights>, NumaError> {
        let off = self.hook.disabled_features();
        if off.contains(KernelFeature::WeightedInterleave) {
            return Ok(None);
        }
        let mut k = self.inner.kernel_weights()?;
        if off.contains(KernelFeature::WeightedInterleaveAuto) {
            k.iter_mut().for_each(|k| k.auto = None);
        }
        Ok(k)
    }
    fn memory_limit(&self, fresh: bool) -> Result<Option<MemoryLimit>, NumaError> {
        self.inner.memory_limit(fresh)
    }
    fn capabilities(&self) -> Capabilities {
        let mut c = self.inner.capabilities();
        c.features = c.features.difference(self.hook.disabled_features());
        c
    }
    unsafe fn unmap(&self, m: &Mapping) -> Result<(), NumaError> {
        let _ = self.hook.before(CallKind::Unmap);
        // SAFETY: our caller upholds `unmap`'s contract; `m` came from `self.map`, which
        // is `self.inner.map`.
        unsafe { self.inner.unmap(m) }
    }
    // A shared object's creation, opening and mapping are counted (and failed) as maps,
    // its closing as an unmap, so a balanced trace holds as many of each.
    fn create_shared(&self, len: usize, huge: HugePages) -> Result<SharedObject, NumaError> {
        self.hook.before(CallKind::Map)?;
        self.inner.create_shared(len, huge)
    }
    fn open_shared<'a>(&self, handle: SharedHandle<'a>) -> Result<SharedObject, NumaError> {
        self.hook.before(CallKind::Map)?;
        self.inner.open_shared(handle)
    }
    fn map_shared(&self, obj: &SharedObject, len: usize) -> Result<Mapping, NumaError> {
        self.hook.before(CallKind::Map)?;
        self.inner.map_shared(obj, len)
    }
    unsafe fn close_shared(&self, obj: &SharedObject) -> Result<(), NumaError> {
        let _ = self.hook.before(CallKind::Unmap);
        // SAFETY: our caller upholds `close_shared`'s contract; `obj` is `self.inner`'s.
        unsafe { self.inner.close_shared(obj) }
    }
    fn current_cpu(&self) -> Result<CpuLocation, NumaError> {
        self.hook.before(CallKind::CurrentCpu)?;
        self.inner.current_cpu()
    }
    fn thread_affinity(&self) -> Result<CpuSet, NumaError> {
        self.hook.before(CallKind::Affinity)?;
        self.inner.thread_affinity()
    }
    fn set_thread_affinity(&self, cpus: &CpuSet) -> Result<(), NumaError> {
        self.hook.before(CallKind::Affinity)?;
        self.inner.set_thread_affinity(cpus)
    }
}
