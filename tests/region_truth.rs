//! A region's promises under partial failure, on the simulator (fault injection): a
//! migrate that fails half-way leaves the region `Soft` with its pages split, and says so.

use numaperf::{Enforcement, MemPolicy, NodeId, NodeMask, NumaError, NumaRegion, Prefault};
use numaperf_sim::SimMachine;

#[test]
fn a_migrate_that_fails_half_way_demotes_hard_to_soft() {
    let sim = SimMachine::from_spec("2 nodes x 1 cpus x 16 MiB").unwrap();
    let (n0, n1) = (NodeId::new(0), NodeId::new(1));
    let mut r = NumaRegion::anon_in(
        &sim,
        16 * 4096,
        MemPolicy::Bind(NodeMask::single(n0)),
        numaperf::RegionOptions::new().hard(),
        Prefault::Populate,
    )
    .unwrap();
    assert_eq!(r.enforcement(), Enforcement::Hard);
    // Node 1 takes 8 more pages, then is out of memory: the move stops half-way.
    sim.fail_node_after(n1, 8);
    let e = r.migrate(&NodeMask::single(n1));
    assert!(
        matches!(e, Err(NumaError::InsufficientMemory { .. })),
        "{e:?}"
    );
    let p = r.placement().unwrap();
    assert_eq!((p.on(n0), p.on(n1)), (8, 8), "the pages are split");
    assert_eq!(
        r.enforcement(),
        Enforcement::Soft,
        "split pages are not Hard"
    );
    // The region still says the policy it had; new faults follow it again.
    assert_eq!(*r.policy(), MemPolicy::Bind(NodeMask::single(n0)));
}

#[test]
fn set_policy_changes_future_faults_only_and_is_soft() {
    let sim = SimMachine::from_spec("2 nodes x 1 cpus x 16 MiB").unwrap();
    let (n0, n1) = (NodeId::new(0), NodeId::new(1));
    let mut r = NumaRegion::anon_in(
        &sim,
        8 * 4096,
        MemPolicy::Bind(NodeMask::single(n0)),
        numaperf::RegionOptions::new().hard(),
        Prefault::Populate,
    )
    .unwrap();
    r.set_policy(MemPolicy::Bind(NodeMask::single(n1))).unwrap();
    assert_eq!(r.enforcement(), Enforcement::Soft);
    // Present pages stay; the policy is what the simulated kernel now holds.
    assert_eq!(r.placement().unwrap().on(n0), 8);
    assert_eq!(
        sim.policy_at(r.as_ptr()).map(|(p, _)| p),
        Some(MemPolicy::Bind(NodeMask::single(n1)))
    );
}
