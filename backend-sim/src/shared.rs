//! Shared-memory objects of the simulated machine: one block of memory, one page table and
//! one policy per object (shmem keeps its policy on the object), seen by every mapping of
//! it. Views share the object's addresses, so they alias its bytes as a second mmap would.

use numaperf_core::region::round_to_unit;
use numaperf_core::{HugePages, Mapping, NumaError, SharedHandle, SharedKind, SharedObject};

use core::sync::atomic::{AtomicI32, Ordering};

use super::{release, SimMachine, State};

/// The last object number given out, by any machine of this process: a handle of one
/// machine's object names nothing on another (which then says `NotSharedMemory`).
static LAST_OBJECT: AtomicI32 = AtomicI32::new(0);

/// A number no object of any machine in this process has had.
fn new_object_id() -> Result<i32, NumaError> {
    LAST_OBJECT
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1))
        .map(|n| n + 1)
        .map_err(|_| NumaError::Unsupported {
            feature: "more than 2^31 - 1 shared objects in one simulator process",
            since: "never",
        })
}

impl SimMachine {
    /// A new object of `len` bytes in whole pages of `huge`, held by one token.
    pub(super) fn create_object(
        &self,
        len: usize,
        huge: HugePages,
    ) -> Result<SharedObject, NumaError> {
        let mut st = self.state();
        let id = new_object_id()?;
        let (addr, size, unit) = self.insert_mapping(&mut st, len, huge, Some(id))?;
        let start = addr.as_ptr() as usize;
        st.objects.insert(id, start);
        // SAFETY: `id` names the object just made, whose one reference this token holds.
        Ok(unsafe { SharedObject::from_raw_parts(id, SharedKind::Object, size, unit) })
    }

    /// Another token of the object `h` names.
    pub(super) fn open_object(&self, h: SharedHandle<'_>) -> Result<SharedObject, NumaError> {
        let mut st = self.state();
        let start = match h.kind() {
            SharedKind::Object => st.objects.get(&h.raw()).copied(),
            SharedKind::Fd => None,
        }
        .ok_or(NumaError::NotSharedMemory)?;
        let sm = st.maps.get_mut(&start).ok_or(NumaError::NotSharedMemory)?;
        sm.refs += 1;
        // SAFETY: the object lives while this token's reference does.
        Ok(unsafe {
            SharedObject::from_raw_parts(h.raw(), SharedKind::Object, sm.mapped_len, sm.unit)
        })
    }

    /// A view of the first `len` bytes of `obj`: the object's own addresses.
    pub(super) fn map_object(&self, obj: &SharedObject, len: usize) -> Result<Mapping, NumaError> {
        let mut st = self.state();
        let start = *st
            .objects
            .get(&obj.raw())
            .ok_or(NumaError::ForeignMapping)?;
        let sm = st.maps.get_mut(&start).ok_or(NumaError::ForeignMapping)?;
        let mapped = round_to_unit(len, sm.unit)?;
        if mapped > sm.mapped_len {
            return Err(NumaError::SharedObjectTooSmall {
                len,
                size: sm.mapped_len as u64,
            });
        }
        sm.refs += 1;
        // SAFETY: the object's block, kept while this view's reference is (dropped by
        // `unmap`); `unit` divides `mapped`, which is inside the block.
        Ok(unsafe { Mapping::from_raw_parts(sm.block.ptr(), len, mapped, sm.unit) })
    }

    /// Drops one reference of object `id` (a token or a view), freeing it with the last.
    pub(super) fn drop_object_ref(&self, st: &mut State, start: usize) {
        let State {
            nodes,
            maps,
            objects,
            ..
        } = st;
        let Some(sm) = maps.get_mut(&start) else {
            return;
        };
        sm.refs -= 1;
        if sm.refs > 0 {
            return;
        }
        if let Some(sm) = maps.remove(&start) {
            if let Some(id) = sm.object {
                objects.remove(&id);
            }
            for node in sm.pages.iter().flatten() {
                release(nodes, &sm, *node, 1);
            }
        }
    }

    /// Gives back a token of object `obj`.
    pub(super) fn close_object(&self, obj: &SharedObject) -> Result<(), NumaError> {
        let mut st = self.state();
        if obj.kind() != SharedKind::Object {
            return Err(NumaError::ForeignMapping);
        }
        let start = *st
            .objects
            .get(&obj.raw())
            .ok_or(NumaError::ForeignMapping)?;
        self.drop_object_ref(&mut st, start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use numaperf_core::region::create_region;
    use numaperf_core::shared_region::{create_shared_region, open_shared_region};
    use numaperf_core::{
        placement, HugePages, MemPolicy, NodeId, NodeMask, NumaError, PlacementBackend, Prefault,
        RegionOptions, SharedKind,
    };

    use crate::SimMachine;

    fn sim() -> SimMachine {
        SimMachine::from_spec("2 nodes x 1 cpus x 64 MiB").unwrap()
    }

    #[test]
    fn a_view_sees_the_objects_pages_and_policy() {
        let sim = sim();
        let free0 = sim.usage()[1].free;
        let bind1 = MemPolicy::Bind(NodeMask::single(NodeId::new(1)));
        let o = RegionOptions::default();
        let (obj, m, _) = create_shared_region(&sim, 8 * 4096, &bind1, &o, Prefault::None).unwrap();
        // The second view faults every page: each lands by the object's policy.
        let (obj2, m2) = open_shared_region(&sim, obj.handle(), None, Prefault::Touch).unwrap();
        assert_eq!(placement(&sim, &m2).unwrap().on(NodeId::new(1)), 8);
        assert_eq!(placement(&sim, &m).unwrap().on(NodeId::new(1)), 8);
        assert_eq!(sim.usage()[1].free, free0 - 8 * 4096);
        // SAFETY: the tokens were made above by `sim`; nothing refers to their memory.
        unsafe {
            sim.unmap(&m).unwrap();
            sim.close_shared(&obj).unwrap();
            // The object lives on in the second view and its token.
            assert_eq!(placement(&sim, &m2).unwrap().on(NodeId::new(1)), 8);
            sim.unmap(&m2).unwrap();
            assert_eq!(sim.mapping_count(), 1);
            sim.close_shared(&obj2).unwrap();
        }
        assert_eq!(sim.mapping_count(), 0);
        assert_eq!(sim.usage()[1].free, free0);
    }

    #[test]
    fn interleave_rotates_by_offset_in_the_object() {
        let sim = sim();
        let both = MemPolicy::Interleave(NodeMask::from_iter([NodeId::new(0), NodeId::new(1)]));
        let o = RegionOptions::default();
        let (obj, m, _) =
            create_shared_region(&sim, 8 * 4096, &both, &o, Prefault::Populate).unwrap();
        let c = placement(&sim, &m).unwrap();
        assert_eq!((c.on(NodeId::new(0)), c.on(NodeId::new(1))), (4, 4));
        // SAFETY: made above by `sim`; nothing refers to their memory.
        unsafe {
            sim.unmap(&m).unwrap();
            sim.close_shared(&obj).unwrap();
        }
    }

    #[test]
    fn every_failing_step_leaves_nothing_behind() {
        use crate::{CallKind, FaultInjector};
        use numaperf_core::Errno;
        let bind1 = MemPolicy::Bind(NodeMask::single(NodeId::new(1)));
        let o = RegionOptions::default().hard();
        // The object's creation, its policy, its populate, the hard check.
        for kind in [
            CallKind::Map,
            CallKind::ApplyPolicy,
            CallKind::Prefault,
            CallKind::PageLocations,
        ] {
            let f = FaultInjector::new(sim());
            f.fail_next(kind, 1, Errno::EIO);
            let r = create_shared_region(&f, 8 * 4096, &bind1, &o, Prefault::None);
            assert!(r.is_err(), "{kind:?} failing: {r:?}");
            assert_eq!(f.inner().mapping_count(), 0, "{kind:?} left a mapping");
            assert_eq!(f.inner().usage()[1].free, 64 << 20, "{kind:?} kept memory");
        }
        // The mapping of a created object.
        let f = FaultInjector::new(sim());
        let obj = f.create_shared(8 * 4096, HugePages::None).unwrap();
        f.fail_next(CallKind::Map, 1, Errno::EIO);
        assert!(f.map_shared(&obj, 8 * 4096).is_err());
        // SAFETY: made above by `f`, never mapped.
        unsafe { f.close_shared(&obj).unwrap() };
        assert_eq!(f.inner().mapping_count(), 0);
    }

    #[test]
    fn bad_handles_and_sizes_are_typed_errors() {
        let sim = sim();
        // SAFETY: 0 is only used as a (wrong) object number and a closed fd number.
        let (nothing, fd) = unsafe {
            (
                numaperf_core::SharedHandle::borrow_raw(999, SharedKind::Object),
                numaperf_core::SharedHandle::borrow_raw(0, SharedKind::Fd),
            )
        };
        assert_eq!(
            sim.open_shared(nothing).unwrap_err(),
            NumaError::NotSharedMemory
        );
        assert_eq!(sim.open_shared(fd).unwrap_err(), NumaError::NotSharedMemory);
        assert_eq!(
            sim.create_shared(0, HugePages::None).unwrap_err(),
            NumaError::ZeroSize
        );
        assert_eq!(
            sim.create_shared(4096, HugePages::Explicit2M).unwrap_err(),
            NumaError::HugePagesUnavailable { page_size: 2 << 20 }
        );
        let (r, _) = create_region(
            &sim,
            4096,
            &MemPolicy::Local,
            &RegionOptions::default(),
            Prefault::None,
        )
        .unwrap();
        let obj = sim.create_shared(4096, HugePages::None).unwrap();
        assert_eq!(
            sim.map_shared(&obj, 8192).unwrap_err(),
            NumaError::SharedObjectTooSmall {
                len: 8192,
                size: 4096
            }
        );
        // SAFETY: made above by `sim`; nothing refers to their memory.
        unsafe {
            sim.close_shared(&obj).unwrap();
            assert_eq!(
                sim.close_shared(&obj).unwrap_err(),
                NumaError::ForeignMapping
            );
            sim.unmap(&r).unwrap();
        }
    }

    #[test]
    fn another_machines_handle_opens_nothing_here() {
        let (a, b) = (sim(), sim());
        let on_b = b.create_shared(4096, HugePages::None).unwrap();
        let on_a = a.create_shared(2 * 4096, HugePages::None).unwrap();
        assert_ne!(on_a.raw(), on_b.raw());
        assert_eq!(
            b.open_shared(on_a.handle()).unwrap_err(),
            NumaError::NotSharedMemory
        );
        assert_eq!(
            a.open_shared(on_b.handle()).unwrap_err(),
            NumaError::NotSharedMemory
        );
        // SAFETY: made above, each by its own machine, never mapped.
        unsafe {
            a.close_shared(&on_a).unwrap();
            b.close_shared(&on_b).unwrap();
        }
    }
}
