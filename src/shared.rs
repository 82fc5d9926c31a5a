//! `SharedRegion`: a shared-memory object (a memfd on Linux) with a placement policy that
//! holds for every process mapping it, shareable by file descriptor; unmapped and closed on drop.
//!
//! # What is safe
//! Another mapping of the object (another process, or another `SharedRegion` of it in
//! this one) may write its bytes at any time, which no borrow here can exclude: a `&[u8]`
//! of them would be a data race in Rust's memory model. So safe code gets atomics
//! ([`SharedRegion::as_atomic`], [`SharedRegion::read_at`], [`SharedRegion::write_at`]:
//! byte-wise relaxed loads and stores, which are defined under concurrent access through
//! any mapping that uses atomics or the same protocol) and raw pointers; plain slices are
//! `unsafe fn`s whose caller promises that nobody writes (or, for `&mut`, accesses) the
//! bytes through another mapping while the slice lives.

use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::DefaultBackend;
use numaperf_core::backend::placement;
use numaperf_core::region::{apply_policy, verify_placement};
use numaperf_core::shared_region::{create_shared_region, open_shared_region};
use numaperf_core::{
    Enforcement, Mapping, MappingInfo, MemPolicy, NodeMask, NumaError, PageCounts, PageLocation,
    PlacementBackend, Prefault, RegionOptions, SharedHandle, SharedObject,
};

/// A shared-memory region: a memory object (a memfd sealed against shrinking,
/// `MFD_HUGETLB` for explicit huge pages) whose policy belongs to the object, so pages any process faults in through any
/// mapping of it land where the policy says; this handle owns one mapping of it and one
/// descriptor (or, on the simulator, object reference), both given back on drop.
///
/// Created with [`SharedRegion::memfd`] / [`SharedRegion::create_in`] (validation,
/// capacity check, policy, prefault and hard mode exactly as [`crate::NumaRegion`]), or
/// opened from another process's descriptor with [`SharedRegion::open`] /
/// [`SharedRegion::open_in`] (no policy applied: the object's holds).
///
/// `Hard` speaks for what this handle did and verified: another process can change the
/// object's policy (an `mbind` on its mapping) or move its pages later.
///
/// ```no_run
/// # fn main() -> Result<(), numaperf::NumaError> {
/// use numaperf::{MemPolicy, NodeId, NodeMask, Prefault, RegionOptions, SharedRegion};
///
/// let node1 = MemPolicy::Bind(NodeMask::single(NodeId::new(1)));
/// let r = SharedRegion::memfd(64 << 20, node1, RegionOptions::default(), Prefault::None)?;
/// r.write_at(0, b"hello")?;
/// // Another process gets this descriptor (over a Unix socket, or inherited) and opens it
/// // with `SharedRegion::open(fd.as_fd(), None, Prefault::Touch)`: the pages it faults in
/// // land on node 1 too.
/// let fd = r.try_clone_fd()?;
/// # drop(fd);
/// # Ok(())
/// # }
/// ```
///
/// Plain slices need `unsafe`, because another mapping may write the bytes meanwhile:
/// ```compile_fail,E0133
/// fn first_byte(r: &numaperf::SharedRegion) -> u8 {
///     r.as_slice()[0]
/// }
/// ```
pub struct SharedRegion<B: PlacementBackend = DefaultBackend> {
    backend: B,
    object: SharedObject,
    mapping: Mapping,
    /// The policy this handle gave the object (`None`: opened, the object's own).
    policy: Option<MemPolicy>,
    options: RegionOptions,
    enforcement: Enforcement,
}

impl SharedRegion<DefaultBackend> {
    /// A new memfd of `len` bytes with `policy`, on this process's backend.
    ///
    /// # Errors
    /// As [`SharedRegion::create_in`], and the backend's creation error.
    pub fn memfd(
        len: usize,
        policy: MemPolicy,
        options: RegionOptions,
        prefault: Prefault,
    ) -> Result<Self, NumaError> {
        Self::create_in(DefaultBackend::shared()?, len, policy, options, prefault)
    }

    /// Maps the shared-memory file `fd` (a memfd sealed against shrinking, such as one
    /// [`SharedRegion::memfd`] made; e.g. one another process passed or made reachable as
    /// `/proc/<pid>/fd/<n>`): its first `len` bytes, or all of it. The region keeps its own
    /// close-on-exec duplicate of `fd`.
    ///
    /// The file must carry `F_SEAL_SHRINK`: otherwise anyone holding a descriptor could
    /// cut it short and this region's safe accessors would fault (`SIGBUS`). So tmpfs,
    /// `/dev/shm` and hugetlbfs files opened by path (which cannot be sealed) and memfds
    /// without the seal are refused with [`NumaError::SharedObjectUnsealed`].
    ///
    /// # Errors
    /// As [`SharedRegion::open_in`].
    #[cfg(unix)]
    pub fn open(
        fd: std::os::fd::BorrowedFd<'_>,
        len: Option<usize>,
        prefault: Prefault,
    ) -> Result<Self, NumaError> {
        use std::os::fd::AsRawFd;
        // SAFETY: `fd` is borrowed for the handle's lifetime, which ends in this call.
        let h = unsafe { SharedHandle::borrow_raw(fd.as_raw_fd(), numaperf_core::SharedKind::Fd) };
        Self::open_in(DefaultBackend::shared()?, h, len, prefault)
    }
}

impl<B: PlacementBackend> SharedRegion<B> {
    /// A new shared object of `len` bytes on `backend`, mapped, given `policy` (the
    /// object's from now on, for every mapping of it), prefaulted; `Hard` as for
    /// [`crate::NumaRegion::anon_in`]. On error nothing stays mapped or open.
    ///
    /// # Errors
    /// Validation ([`NumaError::ZeroSize`], [`NumaError::NodeNotFound`], ...), capacity,
    /// [`NumaError::HugePagesUnavailable`], [`NumaError::Unsupported`] on a backend
    /// without shared memory, the backend's policy and prefault errors, and
    /// [`NumaError::PlacementViolated`] when hard verification finds a misplaced page.
    pub fn create_in(
        backend: B,
        len: usize,
        policy: MemPolicy,
        options: RegionOptions,
        prefault: Prefault,
    ) -> Result<Self, NumaError> {
        let (object, mapping, enforcement) =
            create_shared_region(&backend, len, &policy, &options, prefault)?;
        Ok(SharedRegion {
            backend,
            object,
            mapping,
            policy: Some(policy),
            options,
            enforcement,
        })
    }

    /// Another mapping of the object `handle` names (see [`SharedRegion::handle`], or a
    /// descriptor through [`SharedHandle::borrow_raw`]): its first `len` bytes (`None`:
    /// all), prefaulted as asked (pages the object lacks are allocated by the object's
    /// policy). `Soft`; [`SharedRegion::policy`] is `None`.
    ///
    /// # Errors
    /// [`NumaError::NotSharedMemory`] for a handle that is not a shared-memory object of
    /// this backend, [`NumaError::SharedObjectUnsealed`] for a file not sealed against
    /// shrinking, [`NumaError::SharedObjectTooSmall`], [`NumaError::ZeroSize`], the
    /// backend's mapping and prefault errors.
    pub fn open_in(
        backend: B,
        handle: SharedHandle<'_>,
        len: Option<usize>,
        prefault: Prefault,
    ) -> Result<Self, NumaError> {
        let (object, mapping) = open_shared_region(&backend, handle, len, prefault)?;
        let mut options = RegionOptions::default();
        if object.page_size() == 2 << 20 && object.page_size() > backend.base_page_size() {
            options.huge_pages = numaperf_core::HugePages::Explicit2M;
        } else if object.page_size() == 1 << 30 {
            options.huge_pages = numaperf_core::HugePages::Explicit1G;
        }
        Ok(SharedRegion {
            backend,
            object,
            mapping,
            policy: None,
            options,
            enforcement: Enforcement::Soft,
        })
    }

    /// A handle of the object, borrowed from this region, to open another mapping of it
    /// with [`SharedRegion::open_in`].
    pub fn handle(&self) -> SharedHandle<'_> {
        self.object.handle()
    }

    /// The object's file descriptor (`None` on a backend whose objects are not files).
    #[cfg(unix)]
    pub fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        (self.object.kind() == numaperf_core::SharedKind::Fd).then(|| {
            // SAFETY: the region owns this descriptor until drop; the borrow ends first.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(self.object.raw()) }
        })
    }

    /// A new close-on-exec descriptor of the object, to pass to another process (over a
    /// Unix socket, or inherited once its close-on-exec flag is cleared).
    ///
    /// # Errors
    /// [`NumaError::Unsupported`] on a backend whose objects are not files, and the
    /// system's refusal to duplicate the descriptor.
    #[cfg(unix)]
    pub fn try_clone_fd(&self) -> Result<std::os::fd::OwnedFd, NumaError> {
        let fd = self.fd().ok_or(NumaError::Unsupported {
            feature: "a file descriptor of a shared region",
            since: "a backend whose shared objects are files (Linux)",
        })?;
        fd.try_clone_to_owned().map_err(|e| {
            let errno = numaperf_core::Errno::from_raw(e.raw_os_error().unwrap_or(0));
            NumaError::from_errno("fcntl(F_DUPFD_CLOEXEC)", errno)
        })
    }

    /// Length asked for, in bytes.
    pub fn len(&self) -> usize {
        self.mapping.len()
    }

    /// Always false: a region has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.mapping.is_empty()
    }

    /// The object's size in bytes (whole pages; may exceed what this region maps).
    pub fn object_size(&self) -> usize {
        self.object.size()
    }

    /// The region's bytes as atomics: safe to read and write while other mappings of the
    /// object do (with atomics or a protocol of their own).
    pub fn as_atomic(&self) -> &[AtomicU8] {
        // SAFETY: `len` bytes mapped read-write for as long as `self` lives; `AtomicU8` has
        // the layout of `u8`, and every access through it is atomic, so concurrent access
        // through other mappings is no data race on our side.
        unsafe { core::slice::from_raw_parts(self.mapping.as_ptr().cast(), self.mapping.len()) }
    }

    /// Copies `out.len()` bytes from `offset` into `out` (byte-wise relaxed atomic loads).
    ///
    /// # Errors
    /// [`NumaError::ByteRangeOutOfBounds`] past the region's end.
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> Result<(), NumaError> {
        let src = self.bytes(offset, out.len())?;
        out.iter_mut()
            .zip(src)
            .for_each(|(o, b)| *o = b.load(Ordering::Relaxed));
        Ok(())
    }

    /// Copies `data` to `offset` (byte-wise relaxed atomic stores).
    ///
    /// # Errors
    /// [`NumaError::ByteRangeOutOfBounds`] past the region's end.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<(), NumaError> {
        let dst = self.bytes(offset, data.len())?;
        dst.iter()
            .zip(data)
            .for_each(|(b, &d)| b.store(d, Ordering::Relaxed));
        Ok(())
    }

    fn bytes(&self, offset: usize, len: usize) -> Result<&[AtomicU8], NumaError> {
        offset
            .checked_add(len)
            .and_then(|end| self.as_atomic().get(offset..end))
            .ok_or(NumaError::ByteRangeOutOfBounds {
                offset,
                len,
                size: self.len(),
            })
    }

    /// The memory as a byte slice.
    ///
    /// # Safety
    /// While the slice lives, no other mapping of the object (in any process) writes
    /// these bytes, and nothing in this process writes them through [`Self::as_atomic`].
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: mapped for as long as `self` lives; the caller excludes writers.
        unsafe { core::slice::from_raw_parts(self.mapping.as_ptr(), self.mapping.len()) }
    }

    /// The memory as a mutable byte slice.
    ///
    /// # Safety
    /// While the slice lives, no other mapping of the object (in any process) reads or
    /// writes these bytes.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: mapped for as long as `self` lives; `&mut self` excludes this handle's
        // other accesses and the caller excludes every other mapping's.
        unsafe { core::slice::from_raw_parts_mut(self.mapping.as_ptr(), self.mapping.len()) }
    }

    /// Start address (writes through it follow [`Self::as_mut_slice`]'s contract, or are
    /// atomic).
    pub fn as_ptr(&self) -> *mut u8 {
        self.mapping.as_ptr()
    }

    /// `Hard` when this handle's strict Bind was verified page by page; `Soft` otherwise.
    pub fn enforcement(&self) -> Enforcement {
        self.enforcement
    }

    /// The policy this handle gave the object (`None` for an opened view).
    pub fn policy(&self) -> Option<&MemPolicy> {
        self.policy.as_ref()
    }

    /// The options this handle's policy was applied with.
    pub fn options(&self) -> &RegionOptions {
        &self.options
    }

    /// Address and sizes of this mapping (a description, not the token).
    pub fn layout(&self) -> MappingInfo {
        self.mapping.info()
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Pages per node of this mapping, as this process sees them (pages of the object
    /// this mapping has not faulted in yet count as absent).
    ///
    /// # Errors
    /// The backend's query errors.
    pub fn placement(&self) -> Result<PageCounts, NumaError> {
        placement(&self.backend, &self.mapping)
    }

    /// Where pages `first..first + out.len()` of this mapping are.
    ///
    /// # Errors
    /// [`NumaError::PageRangeOutOfBounds`] and the backend's query errors.
    pub fn page_locations(&self, first: usize, out: &mut [PageLocation]) -> Result<(), NumaError> {
        self.backend.page_locations(&self.mapping, first, out)
    }

    /// Faults every page in through this mapping (pages the object has already are
    /// mapped, the rest allocated by the object's policy); contents are kept.
    ///
    /// # Errors
    /// The backend's prefault errors; the region is then `Soft`.
    pub fn prefault(&mut self, how: Prefault) -> Result<(), NumaError> {
        // SAFETY: `&mut self` excludes this handle's borrows of the memory; a Touch writes
        // only atomically (a compare-exchange of 0 with 0), populate changes no byte.
        let r = unsafe {
            self.backend
                .prefault(&self.mapping, self.mapping.all_pages(), how)
        };
        if r.is_err() {
            self.enforcement = Enforcement::Soft;
        }
        r
    }

    /// Gives the object's pages under this mapping a new policy: the object's, for every
    /// process mapping it. Pages already present stay where they are; the region is `Soft`.
    ///
    /// # Errors
    /// Validation errors, and the backend's; the previous policy is then restored where
    /// this handle knows it.
    pub fn set_policy(&mut self, policy: MemPolicy) -> Result<(), NumaError> {
        let mut opts = self.options;
        opts.hard = false;
        policy.validate(&opts, self.backend.topology())?;
        self.enforcement = Enforcement::Soft;
        // SAFETY: `&mut self` excludes this handle's borrows; a non-strict mbind moves no
        // page and changes no byte, so other mappings' accesses are unaffected.
        match unsafe { apply_policy(&self.backend, &self.mapping, &policy, &opts) } {
            Ok(()) => {
                self.policy = Some(policy);
                self.options = opts;
                Ok(())
            }
            Err(e) => {
                if let Some(old) = &self.policy {
                    // SAFETY: as above.
                    let _ = unsafe { apply_policy(&self.backend, &self.mapping, old, &opts) };
                }
                Err(e)
            }
        }
    }

    /// Moves this mapping's pages onto `to` and makes `Bind(to)` the object's policy
    /// there. On Linux pages other processes also map move only with `CAP_SYS_NICE`
    /// (`MPOL_MF_MOVE_ALL`, which numaperf does not ask for): check [`Self::placement`].
    /// A `Hard` region is verified again.
    ///
    /// # Errors
    /// Validation errors, the backend's (`EIO`: pages could not be moved), and
    /// [`NumaError::PlacementViolated`] when a hard region's check fails.
    pub fn migrate(&mut self, to: &NodeMask) -> Result<(), NumaError> {
        let policy = MemPolicy::Bind(*to);
        let mut opts = self.options;
        opts.home_node = None;
        opts.numa_balancing = false;
        let eff = policy.validate(&opts, self.backend.topology())?;
        let was_hard = self.enforcement == Enforcement::Hard;
        self.enforcement = Enforcement::Soft;
        // SAFETY: `&mut self` excludes this handle's borrows; moving a page keeps its
        // bytes, and the kernel (or simulator) keeps every mapping of it coherent.
        unsafe { self.backend.migrate(&self.mapping, to, opts.node_mode)? };
        self.policy = Some(policy);
        self.options = opts;
        if was_hard {
            verify_placement(&self.backend, &self.mapping, &eff)?;
            self.enforcement = Enforcement::Hard;
        }
        Ok(())
    }
}

impl<B: PlacementBackend> Drop for SharedRegion<B> {
    fn drop(&mut self) {
        // SAFETY: the mapping and the object came from this backend; every borrow of the
        // memory borrowed `self`, which is being dropped; neither token is used again.
        unsafe {
            let _ = self.backend.unmap(&self.mapping);
            let _ = self.backend.close_shared(&self.object);
        }
    }
}

impl<B: PlacementBackend> fmt::Debug for SharedRegion<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRegion")
            .field("addr", &self.mapping.as_ptr())
            .field("len", &self.len())
            .field("object", &self.object)
            .field("policy", &self.policy)
            .field("enforcement", &self.enforcement)
            .finish()
    }
}
