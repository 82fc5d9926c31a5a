//! Making a shared region on any backend: create the shared-memory object, then the life of
//! [`create_region`](crate::region::create_region) over a shared mapping of it; or open
//! another view of an existing object. On any error nothing stays mapped or open.

use crate::backend::{Mapping, PlacementBackend};
use crate::error::NumaError;
use crate::options::{Enforcement, Prefault, RegionOptions};
use crate::policy::MemPolicy;
use crate::region::{create_with, UnmapGuard};
use crate::shared::{SharedHandle, SharedObject};

/// Closes the object on drop unless disarmed.
struct CloseGuard<'a, B: PlacementBackend + ?Sized> {
    backend: &'a B,
    object: Option<SharedObject>,
}

impl<B: PlacementBackend + ?Sized> CloseGuard<'_, B> {
    fn object(&self) -> &SharedObject {
        // Invariant: `object` is Some until `disarm` consumes the guard.
        self.object.as_ref().unwrap_or_else(|| unreachable!())
    }

    fn disarm(mut self) -> SharedObject {
        self.object.take().unwrap_or_else(|| unreachable!())
    }
}

impl<B: PlacementBackend + ?Sized> Drop for CloseGuard<'_, B> {
    fn drop(&mut self) {
        if let Some(o) = self.object.take() {
            // SAFETY: `o` came from this backend's `create_shared`/`open_shared` and was
            // never handed out.
            let _ = unsafe { self.backend.close_shared(&o) };
        }
    }
}

/// Makes a shared region: a new object of `len` bytes (whole pages of
/// `opts.huge_pages`), mapped shared, given `policy` (which the object keeps for every
/// mapping of it), prefaulted, and verified in hard mode, as
/// [`create_region`](crate::region::create_region) does for private memory.
///
/// # Errors
/// As [`create_region`](crate::region::create_region), and the backend's
/// [`PlacementBackend::create_shared`] and [`PlacementBackend::map_shared`] errors.
pub fn create_shared_region<B: PlacementBackend + ?Sized>(
    b: &B,
    len: usize,
    policy: &MemPolicy,
    opts: &RegionOptions,
    prefault: Prefault,
) -> Result<(SharedObject, Mapping, Enforcement), NumaError> {
    let (m, closer, e) = create_with(b, len, policy, opts, prefault, || {
        let closer = CloseGuard {
            backend: b,
            object: Some(b.create_shared(len, opts.huge_pages)?),
        };
        let m = b.map_shared(closer.object(), len)?;
        Ok((m, closer))
    })?;
    Ok((closer.disarm(), m, e))
}

/// Opens another view of the object `handle` names: its own token and a shared mapping of
/// its first `len` bytes (`None`: all of it), prefaulted as `prefault` says (pages the
/// object lacks are allocated by the object's policy). No policy is applied: the object's
/// holds.
///
/// # Errors
/// [`NumaError::SharedObjectTooSmall`], [`NumaError::ZeroSize`], and the backend's
/// [`PlacementBackend::open_shared`], [`PlacementBackend::map_shared`] and prefault errors.
pub fn open_shared_region<B: PlacementBackend + ?Sized>(
    b: &B,
    handle: SharedHandle<'_>,
    len: Option<usize>,
    prefault: Prefault,
) -> Result<(SharedObject, Mapping), NumaError> {
    let closer = CloseGuard {
        backend: b,
        object: Some(b.open_shared(handle)?),
    };
    let obj = closer.object();
    let len = len.unwrap_or(obj.size());
    if len == 0 {
        return Err(NumaError::ZeroSize);
    }
    if len > obj.size() {
        return Err(NumaError::SharedObjectTooSmall {
            len,
            size: obj.size() as u64,
        });
    }
    let unmapper = UnmapGuard {
        backend: b,
        mapping: Some(b.map_shared(obj, len)?),
    };
    let m = unmapper.mapping();
    let how = if obj.page_size() > b.base_page_size() {
        // A lazy hugetlb page that cannot be had is a SIGBUS at first touch.
        Prefault::Populate
    } else {
        prefault
    };
    if how != Prefault::None {
        // SAFETY: `m` was just mapped and is owned by the guard; no reference to its
        // memory exists in this process.
        unsafe { b.prefault(m, m.all_pages(), how)? };
    }
    let m = unmapper.disarm();
    Ok((closer.disarm(), m))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::backend::MockPlacementBackend;
    use crate::node::{NodeId, NodeMask};
    use crate::shared::SharedKind;
    use crate::topology::{FixedTopology, NodeInfo};
    use core::ptr::NonNull;

    fn mock() -> MockPlacementBackend {
        let mut b = MockPlacementBackend::new();
        let node = |id: u32| {
            let cpus = crate::node::CpuSet::single(id as usize);
            NodeInfo::new(NodeId::new(id), cpus, 1 << 30, 1 << 30)
        };
        let t = FixedTopology::new(&[node(0), node(1)], &[10, 21, 21, 10], None, None).unwrap();
        b.expect_topology().return_const(t);
        b.expect_base_page_size().return_const(4096usize);
        b.expect_free_memory().returning(|_, _| Ok(1 << 30));
        b.expect_memory_limit().returning(|_| Ok(None));
        b.expect_create_shared().returning(|len, _| {
            // SAFETY: a made-up object number the mock never touches.
            Ok(unsafe { SharedObject::from_raw_parts(3, SharedKind::Object, len, 4096) })
        });
        b.expect_open_shared().returning(|h| {
            // SAFETY: as above.
            Ok(unsafe { SharedObject::from_raw_parts(h.raw(), h.kind(), 4 * 4096, 4096) })
        });
        b.expect_map_shared().returning(|_, len| {
            // SAFETY: a dangling but aligned address; the mock never touches memory.
            Ok(unsafe { Mapping::from_raw_parts(NonNull::dangling(), len, 4 * 4096, 4096) })
        });
        b
    }

    fn bind0() -> MemPolicy {
        MemPolicy::Bind(NodeMask::single(NodeId::new(0)))
    }

    #[test]
    fn a_policy_error_unmaps_and_closes() {
        let mut b = mock();
        b.expect_apply_policy().returning(|_, _, _, _, _| {
            Err(NumaError::Os {
                op: "mbind",
                errno: crate::Errno::EIO,
            })
        });
        b.expect_unmap().times(1).returning(|_| Ok(()));
        b.expect_close_shared().times(1).returning(|_| Ok(()));
        let r = create_shared_region(
            &b,
            4096,
            &bind0(),
            &RegionOptions::default(),
            Prefault::None,
        );
        assert!(matches!(r, Err(NumaError::Os { op: "mbind", .. })));
    }

    #[test]
    fn a_map_error_closes_and_bad_input_creates_nothing() {
        let mut b = mock();
        b.checkpoint();
        let mut b2 = mock();
        b2.checkpoint();
        let t = {
            let node = |id: u32| {
                NodeInfo::new(
                    NodeId::new(id),
                    crate::node::CpuSet::single(0),
                    1 << 30,
                    1 << 30,
                )
            };
            FixedTopology::<4>::new(&[node(0)], &[10], None, None).unwrap()
        };
        b.expect_topology().return_const(t.clone());
        b.expect_base_page_size().return_const(4096usize);
        b.expect_create_shared().returning(|len, _| {
            // SAFETY: a made-up object number the mock never touches.
            Ok(unsafe { SharedObject::from_raw_parts(3, SharedKind::Object, len, 4096) })
        });
        b.expect_map_shared()
            .returning(|_, _| Err(NumaError::HugePagesUnavailable { page_size: 2 << 20 }));
        b.expect_close_shared().times(1).returning(|_| Ok(()));
        b.expect_unmap().never();
        let o = RegionOptions::default();
        assert_eq!(
            create_shared_region(&b, 4096, &MemPolicy::Local, &o, Prefault::None).unwrap_err(),
            NumaError::HugePagesUnavailable { page_size: 2 << 20 }
        );
        b2.expect_topology().return_const(t);
        b2.expect_base_page_size().return_const(4096usize);
        b2.expect_create_shared().never();
        assert_eq!(
            create_shared_region(&b2, 0, &MemPolicy::Local, &o, Prefault::None).unwrap_err(),
            NumaError::ZeroSize
        );
        let absent = MemPolicy::Bind(NodeMask::single(NodeId::new(5)));
        assert_eq!(
            create_shared_region(&b2, 4096, &absent, &o, Prefault::None).unwrap_err(),
            NumaError::NodeNotFound(NodeId::new(5))
        );
    }

    #[test]
    fn opening_more_than_the_object_holds_closes_it() {
        let mut b = mock();
        b.expect_close_shared().times(1).returning(|_| Ok(()));
        b.expect_map_shared().never();
        // SAFETY: object 9 is made up; the mock never touches it.
        let h = unsafe { SharedHandle::borrow_raw(9, SharedKind::Object) };
        assert_eq!(
            open_shared_region(&b, h, Some(5 * 4096), Prefault::None).unwrap_err(),
            NumaError::SharedObjectTooSmall {
                len: 5 * 4096,
                size: 4 * 4096
            }
        );
        let mut b = mock();
        b.expect_close_shared().times(1).returning(|_| Ok(()));
        assert_eq!(
            open_shared_region(&b, h, Some(0), Prefault::None).unwrap_err(),
            NumaError::ZeroSize
        );
    }

    #[test]
    fn a_prefault_error_of_an_opened_view_unmaps_and_closes() {
        let mut b = mock();
        b.expect_prefault().returning(|_, _, _| {
            Err(NumaError::InsufficientMemory {
                requested: 1,
                available: 0,
            })
        });
        b.expect_unmap().times(1).returning(|_| Ok(()));
        b.expect_close_shared().times(1).returning(|_| Ok(()));
        // SAFETY: object 9 is made up; the mock never touches it.
        let h = unsafe { SharedHandle::borrow_raw(9, SharedKind::Object) };
        assert!(open_shared_region(&b, h, None, Prefault::Touch).is_err());
        let mut b = mock();
        b.expect_prefault().never();
        b.expect_unmap().never();
        b.expect_close_shared().never();
        let (o, m) = open_shared_region(&b, h, None, Prefault::None).unwrap();
        assert_eq!((o.size(), m.len()), (4 * 4096, 4 * 4096));
    }
}
