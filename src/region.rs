//! `NumaRegion`: anonymous memory with an explicit placement policy, unmapped on drop.
//! Generic over the backend; `NumaRegion::anon` uses the process's Linux backend.

use core::fmt;

use crate::DefaultBackend;
use numaperf_core::backend::placement;
use numaperf_core::region::{apply_policy, create_region, verify_placement};
use numaperf_core::{
    Enforcement, Mapping, MappingInfo, MemPolicy, NodeMask, NumaError, PageCounts, PageLocation,
    PlacementBackend, Prefault, RegionOptions,
};

/// Anonymous memory placed by a [`MemPolicy`]; unmapped when dropped.
///
/// `B` is a backend handle: [`DefaultBackend`] (the Linux backend on Linux),
/// `&SimMachine`, `Arc<...>`, `PortableBackend`.
/// A region is `Send` and `Sync` when its backend handle is: shared read-only (for
/// example an interleaved table in an `Arc`) it hands out `&[u8]`; writing needs `&mut`.
/// Everything that writes its memory or changes its policy takes `&mut self`, so it
/// cannot happen while a slice of it is alive; the mapping token never leaves the region
/// ([`NumaRegion::layout`] describes it).
///
/// On a simulated two-node machine (this works on any host):
/// ```
/// use numaperf::{Enforcement, MemPolicy, NodeId, NodeMask, NumaRegion, Prefault, RegionOptions};
/// use numaperf_sim::SimMachine;
///
/// let sim = SimMachine::from_spec("2 nodes x 2 cpus x 64 MiB")?;
/// let node1 = NodeMask::single(NodeId::new(1));
/// let mut r = NumaRegion::anon_in(
///     &sim,
///     1 << 20,
///     MemPolicy::Bind(node1),
///     RegionOptions::new().hard(),
///     Prefault::Populate,
/// )?;
/// // Hard: every page was verified on node 1.
/// assert_eq!(r.enforcement(), Enforcement::Hard);
/// assert_eq!(r.placement()?.on(NodeId::new(1)), 256);
/// r.as_mut_slice()[0] = 42;
/// // Moved, verified again, still Hard; the content moved with the pages.
/// r.migrate(&NodeMask::single(NodeId::new(0)))?;
/// assert_eq!((r.enforcement(), r.as_slice()[0]), (Enforcement::Hard, 42));
/// assert_eq!(r.placement()?.on(NodeId::new(0)), 256);
/// # Ok::<(), numaperf::NumaError>(())
/// ```
///
/// Safe code cannot change a region's memory or policy under a live slice:
/// ```compile_fail,E0502
/// use numaperf::{MemPolicy, NumaRegion, Prefault};
/// let sim = numaperf_sim::SimMachine::from_spec("1 nodes x 1 cpus x 16 MiB").unwrap();
/// let mut r = NumaRegion::anon_in(&sim, 4096, MemPolicy::Local, Default::default(), Prefault::None)
///     .unwrap();
/// let s = r.as_slice();
/// r.prefault(Prefault::Touch).unwrap(); // error: `r` is borrowed by `s`
/// assert_eq!(s[0], 0);
/// ```
/// and the backend's own prefault (which writes every page) is `unsafe`:
/// ```compile_fail,E0133
/// use numaperf::{HugePages, PlacementBackend, Prefault};
/// let sim = numaperf_sim::SimMachine::from_spec("1 nodes x 1 cpus x 16 MiB").unwrap();
/// let m = sim.map(4096, HugePages::None).unwrap();
/// let _ = sim.prefault(&m, m.all_pages(), Prefault::Touch); // error: call to unsafe fn
/// ```
pub struct NumaRegion<B: PlacementBackend = DefaultBackend> {
    backend: B,
    mapping: Mapping,
    policy: MemPolicy,
    options: RegionOptions,
    enforcement: Enforcement,
}

impl NumaRegion<DefaultBackend> {
    /// Maps `len` bytes on this machine with `policy`, then prefaults as asked.
    ///
    /// Errors (nothing stays mapped): size 0 or overflowing, absent or out-of-range nodes,
    /// empty masks, nodes without memory, not enough free memory on the allowed nodes for
    /// a prefaulted region, hard mode on a policy other than `Bind`, kernel refusals.
    ///
    /// # Errors
    /// Nothing stays mapped on any error: [`NumaError::ZeroSize`],
    /// [`NumaError::SizeOverflow`], validation errors ([`MemPolicy::validate`]: absent or
    /// out-of-range nodes, empty masks, nodes without memory, options the policy does not
    /// take), [`NumaError::InsufficientMemory`] for a prefaulted region larger than the
    /// allowed nodes' free memory, [`NumaError::HugePagesUnavailable`],
    /// [`NumaError::Unsupported`] for what the kernel lacks, [`NumaError::PlacementViolated`]
    /// when hard verification fails, and the kernel's refusals.
    pub fn anon(
        len: usize,
        policy: MemPolicy,
        options: RegionOptions,
        prefault: Prefault,
    ) -> Result<Self, NumaError> {
        Self::anon_in(DefaultBackend::shared()?, len, policy, options, prefault)
    }
}

impl<B: PlacementBackend> NumaRegion<B> {
    /// Like [`NumaRegion::anon`], on an explicit backend (a simulator, a wrapper).
    ///
    /// # Errors
    /// As [`NumaRegion::anon`].
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

    /// What the region promises: `Hard` only while every page has been verified on the
    /// policy's nodes since the last change; any failed or partial change demotes it to
    /// `Soft` before the error returns.
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

    /// Where the region is and how large (address, mapped length, page size): a `Copy`
    /// description, not the mapping itself, which the region keeps to itself.
    pub fn layout(&self) -> MappingInfo {
        self.mapping.info()
    }

    /// The backend the region lives on.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Where the pages are now: pages per node, and pages not yet present.
    /// Does not fault pages in.
    ///
    /// # Errors
    /// The backend's query errors (on Linux, `move_pages` refused, e.g. by seccomp).
    pub fn placement(&self) -> Result<PageCounts, NumaError> {
        placement(&self.backend, &self.mapping)
    }

    /// Where pages `first..first + out.len()` are, page by page, without faulting them in.
    ///
    /// # Errors
    /// [`NumaError::PageRangeOutOfBounds`] for pages outside the region, and the backend's
    /// query errors.
    pub fn page_locations(&self, first: usize, out: &mut [PageLocation]) -> Result<(), NumaError> {
        self.backend.page_locations(&self.mapping, first, out)
    }

    /// Faults every page in now, under the region's policy (`Touch` from this thread,
    /// `Populate` by the kernel). A `Hard` region stays `Hard` (its pages are present and
    /// verified already) unless this fails.
    ///
    /// # Errors
    /// The backend's prefault errors (an explicit huge page that cannot be had:
    /// [`NumaError::HugePagesUnavailable`]); the region is then `Soft`.
    pub fn prefault(&mut self, how: Prefault) -> Result<(), NumaError> {
        // SAFETY: `&mut self` excludes every borrow of the region's memory, and the token
        // never left the region; the policy is unchanged.
        let r = unsafe {
            self.backend
                .prefault(&self.mapping, self.mapping.all_pages(), how)
        };
        self.demote_on_error(r)
    }

    /// Gives the region a new policy for pages faulted from now on; pages already present
    /// stay where they are (use [`NumaRegion::migrate`] to move them). The region is
    /// `Soft` afterwards. Node ids are read as the region's `node_mode` says.
    ///
    /// # Errors
    /// Validation errors of the new policy with the region's options ([`MemPolicy::validate`],
    /// leaving the region unchanged), and the backend's: the old policy is then put back
    /// and the region is `Soft`.
    pub fn set_policy(&mut self, policy: MemPolicy) -> Result<(), NumaError> {
        let mut opts = self.options;
        opts.hard = false;
        policy.validate(&opts, self.backend.topology())?;
        self.enforcement = Enforcement::Soft;
        // SAFETY: `&mut self` excludes every borrow of the region's memory; the region
        // records the new policy below.
        match unsafe { apply_policy(&self.backend, &self.mapping, &policy, &opts) } {
            Ok(()) => {
                self.policy = policy;
                self.options = opts;
                Ok(())
            }
            Err(e) => {
                self.restore_policy();
                Err(e)
            }
        }
    }

    /// Moves every page onto `to`; the policy becomes `Bind(to)`. `to` is read as the
    /// region's `node_mode` reads ids (`Relative`: indices into the allowed memory nodes,
    /// folded as the kernel folds them; `Static`: physical ids), on every backend. A
    /// `Hard` region is verified again and is `Hard` afterwards only if every page is on
    /// `to`; while the move runs, and after any failure, it is `Soft`.
    ///
    /// # Errors
    /// Validation of `Bind(to)` (nothing changes); the backend's move errors and
    /// [`NumaError::PlacementViolated`] from verification leave the region `Soft`, its
    /// pages possibly split, and its previous policy restored for new faults.
    pub fn migrate(&mut self, to: &NodeMask) -> Result<(), NumaError> {
        let policy = MemPolicy::Bind(*to);
        let mut opts = self.options;
        opts.home_node = None;
        opts.numa_balancing = false;
        let eff = policy.validate(&opts, self.backend.topology())?;
        let was_hard = self.enforcement == Enforcement::Hard;
        self.enforcement = Enforcement::Soft;
        // SAFETY: `&mut self` excludes every borrow of the region's memory; the region
        // records the policy below.
        let moved = unsafe { self.backend.migrate(&self.mapping, to, opts.node_mode) };
        if let Err(e) = moved {
            self.restore_policy();
            return Err(e);
        }
        self.policy = policy;
        self.options = opts;
        if was_hard {
            verify_placement(&self.backend, &self.mapping, &eff)?;
            self.enforcement = Enforcement::Hard;
        }
        Ok(())
    }

    /// Puts the recorded policy back after a failed change (best effort: if the backend
    /// refuses again, the region stays `Soft` and says nothing more).
    fn restore_policy(&mut self) {
        let mut opts = self.options;
        opts.hard = false;
        // SAFETY: called from `&mut self` methods only: no borrow of the memory is live.
        let _ = unsafe { apply_policy(&self.backend, &self.mapping, &self.policy, &opts) };
    }

    fn demote_on_error(&mut self, r: Result<(), NumaError>) -> Result<(), NumaError> {
        if r.is_err() {
            self.enforcement = Enforcement::Soft;
        }
        r
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
