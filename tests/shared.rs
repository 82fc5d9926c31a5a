//! `SharedRegion` on the simulator (Miri runs it): two mappings of one object alias its
//! bytes, atomic access through both, drop in any order, and the object's policy applies
//! to pages either mapping faults in.

use std::sync::atomic::Ordering;

use numaperf::{MemPolicy, NodeId, NodeMask, Prefault, RegionOptions, SharedRegion};
use numaperf_sim::SimMachine;

fn sim() -> SimMachine {
    SimMachine::from_spec("2 nodes x 1 cpus x 16 MiB").unwrap()
}

#[test]
fn two_mappings_share_bytes_and_either_may_go_first() {
    let sim = sim();
    let bind1 = MemPolicy::Bind(NodeMask::single(NodeId::new(1)));
    for first_goes_first in [true, false] {
        let a = SharedRegion::create_in(
            &sim,
            3 * 4096,
            bind1.clone(),
            RegionOptions::default(),
            Prefault::None,
        )
        .unwrap();
        let b = SharedRegion::open_in(&sim, a.handle(), None, Prefault::Touch).unwrap();
        assert_eq!((b.len(), b.object_size()), (3 * 4096, 3 * 4096));
        a.write_at(4095, &[1, 2, 3]).unwrap();
        let mut got = [0; 3];
        b.read_at(4095, &mut got).unwrap();
        assert_eq!(got, [1, 2, 3]);
        b.as_atomic()[0].store(9, Ordering::Relaxed);
        assert_eq!(a.as_atomic()[0].load(Ordering::Relaxed), 9);
        // SAFETY: nothing writes the object while this slice lives (single thread, no
        // atomic access below until it is dropped).
        let sum: u32 = unsafe { a.as_slice() }.iter().map(|&x| u32::from(x)).sum();
        assert_eq!(sum, 9 + 1 + 2 + 3);
        assert_eq!(b.placement().unwrap().on(NodeId::new(1)), 3);
        assert!(a.write_at(3 * 4096 - 1, &[0, 0]).is_err());
        if first_goes_first {
            drop(a);
            assert_eq!(b.as_atomic()[4096].load(Ordering::Relaxed), 2);
            drop(b);
        } else {
            drop(b);
            drop(a);
        }
        assert_eq!(sim.mapping_count(), 0);
    }
}
