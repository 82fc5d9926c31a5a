//! Placing memory the caller already has (a `Vec`'s buffer, a memmap2 mapping): a policy
//! for its whole pages, optionally moving the pages already there, verified by a query.

use numaperf_core::backend::placement;
use numaperf_core::existing::whole_pages;
use numaperf_core::region::verify_present_within;
use numaperf_core::{MemPolicy, NumaError, PageCounts, PlacementBackend, RegionOptions};

use crate::DefaultBackend;

/// How [`place_with`] treats pages that are already present.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PlaceFlags {
    /// Only pages faulted in later follow the policy; present pages stay (`mbind` flags 0).
    #[default]
    NewPages,
    /// Present pages move to where the policy says, content kept (`MPOL_MF_MOVE` with
    /// `MPOL_MF_STRICT`: a page that cannot move is an error); a `Bind` is then verified.
    MovePages,
}

/// What [`place`] did: the whole pages it placed and where they are now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Where the placed pages are, queried after placing (pages not touched yet are
    /// counted as not present).
    pub counts: PageCounts,
    /// Bytes placed (whole pages).
    pub bytes: usize,
    /// Bytes at the start of the slice left alone: they share a page with memory before it.
    pub head: usize,
    /// Bytes at the end left alone: they share a page with memory after it.
    pub tail: usize,
}

/// Gives the whole pages of `buf` a policy on this machine: pages faulted in later follow
/// it ([`place_with`] moves those already there). The partial pages at either end are left
/// alone (they hold other memory too) and reported in [`Placed::head`]/[`Placed::tail`].
///
/// ```no_run
/// use numaperf::{MemPolicy, NodeId, NodeMask};
/// let mut v = vec![0u8; 64 << 20];
/// let placed = numaperf::place(&mut v, &MemPolicy::Bind(NodeMask::single(NodeId::new(0))))?;
/// println!("{} bytes placed: {}", placed.bytes, placed.counts);
/// # Ok::<(), numaperf::NumaError>(())
/// ```
///
/// For a [`crate::NumaRegion`]'s own memory use its [`crate::NumaRegion::set_policy`] and
/// [`crate::NumaRegion::migrate`] instead: `place` on a region's slice changes the pages'
/// policy behind the region's back, so the policy and enforcement the region reports
/// (its `Hard` included) no longer describe them.
///
/// # Errors
/// [`NumaError::NoWholePage`] when `buf` holds no whole page, validation errors of the
/// policy ([`MemPolicy::validate`]), [`NumaError::FileBackedMemory`] for an ordinary file
/// mapping (its page-cache pages ignore policy: map it anonymously or from tmpfs/memfd),
/// [`NumaError::Unsupported`] where the backend cannot place existing memory (the portable
/// backend), and the kernel's refusals.
pub fn place(buf: &mut [u8], policy: &MemPolicy) -> Result<Placed, NumaError> {
    place_with(buf, policy, PlaceFlags::NewPages)
}

/// [`place`], saying what happens to the pages already present.
///
/// # Errors
/// As [`place`]; with [`PlaceFlags::MovePages`] also the kernel's `EIO` when pages could
/// not be moved, and [`NumaError::PlacementViolated`] when a `Bind`'s check finds a page
/// elsewhere.
pub fn place_with(
    buf: &mut [u8],
    policy: &MemPolicy,
    flags: PlaceFlags,
) -> Result<Placed, NumaError> {
    place_in(&DefaultBackend::shared()?, buf, policy, flags)
}

/// [`place_with`] on an explicit backend (the simulator places memory inside its own
/// mappings, such as a region's slice).
///
/// # Errors
/// As [`place_with`]; the simulator answers [`NumaError::ForeignMapping`] for memory
/// outside its mappings.
pub fn place_in<B: PlacementBackend + ?Sized>(
    backend: &B,
    buf: &mut [u8],
    policy: &MemPolicy,
    flags: PlaceFlags,
) -> Result<Placed, NumaError> {
    let page = backend.base_page_size();
    let (first, bytes, head, tail) = whole_pages(buf.as_mut_ptr() as usize, buf.len(), page)?;
    let opts = RegionOptions::default();
    let eff = policy.validate(&opts, backend.topology())?;
    // `first` lies inside `buf` (whole_pages), so it is not null.
    let addr = core::ptr::NonNull::new(buf.as_mut_ptr().wrapping_add(head))
        .ok_or(NumaError::ForeignMapping)?;
    debug_assert_eq!(addr.as_ptr() as usize, first);
    // SAFETY: `addr..addr + bytes` are whole pages inside `buf`, which this call borrows
    // exclusively: they stay mapped, and no other reference to them exists or is used
    // while the token lives (this function); the token is dropped, never unmapped.
    let m = unsafe { backend.adopt(addr, bytes)? };
    let strict = flags == PlaceFlags::MovePages;
    // SAFETY: as above; pages that move keep their content.
    unsafe { backend.apply_policy(&m, m.all_pages(), policy, &opts, strict)? };
    if strict && matches!(policy, MemPolicy::Bind(_)) {
        verify_present_within(backend, &m, &eff)?;
    }
    Ok(Placed {
        counts: placement(backend, &m)?,
        bytes,
        head,
        tail,
    })
}
