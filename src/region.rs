//! `NumaRegion`: anonymous memory with an explicit placement policy, unmapped on drop.
//! Generic over the backend; `NumaRegion::anon` uses the process's Linux backend.

use core::fmt;

use numaperf_core::backend::placement;
use numaperf_core::region::{create_region, verify_placement};
use numaperf_core::{
    Enforcement, Mapping, MemPolicy, NodeMask, NumaError, PageCounts, PlacementBackend, Prefault,
    RegionOptions,
};
use numaperf_linux::LinuxBackend;

/// Anonymous memory placed by a [`MemPolicy`]; unmapped when dropped.
///
/// `B` is a backend handle: [`LinuxBackend`] (the default), `&SimMachine`, `Arc<...>`.
/// A region is `Send` and `Sync` when its backend handle is: shared read-only (for
/// example an interleaved table in an `Arc`) it hands out `&[u8]`; writing needs `&mut`.
pub struct NumaRegion<B: PlacementBackend = LinuxBackend> {
    backend: B,
    mapping: Mapping,
    policy: MemPolicy,
    options: RegionOptions,
    enforcement: Enforcement,
}

impl NumaRegion<LinuxBackend> {
    /// Maps `len` bytes on this machine with `policy`, then prefaults as asked.
    ///
    /// Errors (nothing stays mapped): size 0 or overflowing, absent or out-of-range nodes,
    /// empty masks, nodes without memory, not enough free memory on the allowed nodes for
    /// a prefaulted region, hard mode on a policy other than `Bind`, kernel refusals.
    pub fn anon(
        len: usize,
        policy: MemPolicy,
        options: RegionOptions,
        prefault: Prefault,
    ) -> Result<Self, NumaError> {
        Self::anon_in(LinuxBackend::shared()?, len, policy, options, prefault)
    }
}

impl<B: PlacementBackend> NumaRegion<B> {
    /// Like [`NumaRegion::anon`], on an explicit backend (a simulator, a wrapper).
    pub fn anon_in(
        backend: B,
        len: usize,
        policy: MemPolicy,
        options: RegionOptions,
        prefault: Prefault,
    ) -> Result<Self, NumaError> {
        let (mapping, enforcement) = create_region(&backend, len, &policy, &options, prefault)?;
        Ok(NumaRegion {
            backend,
            mapping,
            policy,
            options,
            enforcement,
        })
    }

    /// Length in bytes (as asked; the mapping is rounded up to whole pages).
    pub fn len(&self) -> usize {
        self.mapping.len()
    }

    /// Whether the length is 0 (never, for a region that was made).
    pub fn is_empty(&self) -> bool {
        self.mapping.is_empty()
    }

    /// The memory.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes, mapped for as long as `self` lives
        // (unmapped only in Drop); shared access matches `&self`.
        unsafe { core::slice::from_raw_parts(self.mapping.as_ptr(), self.mapping.len()) }
    }

    /// The memory, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only access.
        unsafe { core::slice::from_raw_parts_mut(self.mapping.as_ptr(), self.mapping.len()) }
    }

    /// Start address.
    pub fn as_ptr(&self) -> *const u8 {
        self.mapping.as_ptr()
    }

    /// Start address, for writing (the caller keeps Rust's aliasing rules).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.mapping.as_ptr()
    }

    /// What the region promises: `Hard` only after verified strict placement.
    pub fn enforcement(&self) -> Enforcement {
        self.enforcement
    }

    /// The region's policy (after `migrate`, `Bind` to the new nodes).
    pub fn policy(&self) -> &MemPolicy {
        &self.policy
    }

    /// The options the region was made with.
    pub fn options(&self) -> &RegionOptions {
        &self.options
    }

    /// The underlying mapping (address, mapped length, page size).
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// The backend the region lives on.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Where the pages are now: pages per node, and pages not yet present.
    /// Does not fault pages in.
    pub fn placement(&self) -> Result<PageCounts, NumaError> {
        placement(&self.backend, &self.mapping)
    }

    /// Moves every page onto `to`; the policy becomes `Bind(to)`. A `Hard` region is
    /// verified again and stays `Hard` only if every page is on `to`.
    pub fn migrate(&mut self, to: &NodeMask) -> Result<(), NumaError> {
        let policy = MemPolicy::Bind(*to);
        let mut opts = self.options;
        opts.home_node = None;
        opts.numa_balancing = false;
        let eff = policy.validate(&opts, self.backend.topology())?;
        self.backend.migrate(&self.mapping, to)?;
        self.policy = policy;
        self.options = opts;
        if self.enforcement == Enforcement::Hard {
            if let Err(e) = verify_placement(&self.backend, &self.mapping, &eff) {
                self.enforcement = Enforcement::Soft;
                return Err(e);
            }
        }
        Ok(())
    }
}

impl<B: PlacementBackend> Drop for NumaRegion<B> {
    fn drop(&mut self) {
        // SAFETY: the mapping came from this backend's `map` (in `create_region`), and
        // every borrow of its memory borrowed `self`, which is being dropped.
        let _ = unsafe { self.backend.unmap(&self.mapping) };
    }
}

impl<B: PlacementBackend> fmt::Debug for NumaRegion<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NumaRegion")
            .field("addr", &self.mapping.as_ptr())
            .field("len", &self.len())
            .field("policy", &self.policy)
            .field("enforcement", &self.enforcement)
            .finish()
    }
}
