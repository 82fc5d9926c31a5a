//! `place`: a policy for memory the caller already has. On the simulator (memory inside
//! its mappings) on any host; on Linux also a `Vec`'s buffer, a memfd and a file mapping.

#[cfg(target_os = "linux")]
use numaperf::PlacementBackend;
use numaperf::{
    place_in, MemPolicy, NodeId, NodeMask, NumaError, NumaRegion, PlaceFlags, Prefault,
};
use numaperf_sim::SimMachine;

const PAGE: usize = 4096;

fn bind(n: u32) -> MemPolicy {
    MemPolicy::Bind(NodeMask::single(NodeId::new(n)))
}

fn touched_region(sim: &SimMachine, pages: usize) -> NumaRegion<&SimMachine> {
    let mut r = NumaRegion::anon_in(
        sim,
        pages * PAGE,
        bind(0),
        Default::default(),
        Prefault::None,
    )
    .unwrap();
    r.prefault(Prefault::Touch).unwrap();
    r
}

#[test]
fn moving_places_present_pages_and_keeps_their_content() {
    let sim = SimMachine::from_spec("2 nodes x 1 cpus x 16 MiB").unwrap();
    let mut r = touched_region(&sim, 8);
    r.as_mut_slice()[5 * PAGE] = 7;
    assert_eq!(r.placement().unwrap().on(NodeId::new(0)), 8);
    let placed = place_in(&sim, r.as_mut_slice(), &bind(1), PlaceFlags::MovePages).unwrap();
    assert_eq!((placed.bytes, placed.head, placed.tail), (8 * PAGE, 0, 0));
    assert_eq!(placed.counts.on(NodeId::new(1)), 8, "{}", placed.counts);
    assert_eq!(r.placement().unwrap().on(NodeId::new(1)), 8);
    assert_eq!(r.as_slice()[5 * PAGE], 7);
}

#[test]
fn new_pages_only_leaves_present_pages_and_places_later_faults() {
    let sim = SimMachine::from_spec("2 nodes x 1 cpus x 16 MiB").unwrap();
    let mut r =
        NumaRegion::anon_in(&sim, 8 * PAGE, bind(0), Default::default(), Prefault::None).unwrap();
    // Half the pages present on node 0.
    sim.touch(r.as_ptr(), 4 * PAGE).unwrap();
    let placed = place_in(&sim, r.as_mut_slice(), &bind(1), PlaceFlags::NewPages).unwrap();
    let c = &placed.counts;
    assert_eq!((c.on(NodeId::new(0)), c.not_present()), (4, 4), "{c}");
    sim.touch(r.as_ptr(), 8 * PAGE).unwrap();
    let p = r.placement().unwrap();
    assert_eq!((p.on(NodeId::new(0)), p.on(NodeId::new(1))), (4, 4), "{p}");
}

#[test]
fn partial_pages_at_the_ends_are_left_alone_and_reported() {
    let sim = SimMachine::from_spec("2 nodes x 1 cpus x 16 MiB").unwrap();
    let mut r = touched_region(&sim, 4);
    let s = &mut r.as_mut_slice()[100..3 * PAGE + 50];
    let placed = place_in(&sim, s, &bind(1), PlaceFlags::MovePages).unwrap();
    assert_eq!(
        (placed.head, placed.bytes, placed.tail),
        (PAGE - 100, 2 * PAGE, 50)
    );
    let mut pages = [numaperf::PageLocation::NotPresent; 4];
    r.page_locations(0, &mut pages).unwrap();
    let n = |i: u32| numaperf::PageLocation::Node(NodeId::new(i));
    assert_eq!(
        pages,
        [n(0), n(1), n(1), n(0)],
        "only the whole pages moved"
    );
}

#[test]
fn bad_input_is_a_typed_error() {
    let sim = SimMachine::from_spec("2 nodes x 1 cpus x 16 MiB").unwrap();
    let mut r = touched_region(&sim, 2);
    let flags = PlaceFlags::MovePages;
    let e = place_in(&sim, &mut r.as_mut_slice()[10..PAGE + 100], &bind(1), flags);
    assert_eq!(
        e,
        Err(NumaError::NoWholePage {
            len: PAGE + 90,
            page_size: PAGE
        })
    );
    assert_eq!(
        place_in(&sim, &mut [], &bind(1), flags),
        Err(NumaError::NoWholePage {
            len: 0,
            page_size: PAGE
        })
    );
    let e = place_in(&sim, r.as_mut_slice(), &bind(5), flags);
    assert_eq!(e, Err(NumaError::NodeNotFound(NodeId::new(5))));
    // Memory the simulator did not map is not its to place.
    let mut v = vec![0u8; 16 * PAGE];
    let e = place_in(&sim, &mut v, &bind(1), flags);
    assert_eq!(e, Err(NumaError::ForeignMapping));
    // The one-node portable backend cannot place existing memory, and says so.
    let e = place_in(
        &numaperf::PortableBackend::new().unwrap(),
        &mut v,
        &MemPolicy::Local,
        flags,
    );
    assert!(matches!(e, Err(NumaError::Unsupported { .. })), "{e:?}");
    assert_eq!(
        r.placement().unwrap().on(NodeId::new(0)),
        2,
        "nothing moved"
    );
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use numaperf::LinuxBackend;
    use rustix::fs::{ftruncate, memfd_create, MemfdFlags};
    use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};

    fn backend() -> LinuxBackend {
        LinuxBackend::shared().unwrap()
    }

    fn first_node(b: &LinuxBackend) -> NodeId {
        use numaperf::TopologyInfo;
        b.topology()
            .memory_nodes()
            .intersection(b.topology().allowed_nodes())
            .first()
            .unwrap()
    }

    #[test]
    fn a_vec_buffer_moves_and_every_page_is_verified() {
        let b = backend();
        let node = first_node(&b);
        let mut v = vec![1u8; 8 << 20];
        let policy = MemPolicy::Bind(NodeMask::single(node));
        let placed = match place_in(&b, &mut v, &policy, PlaceFlags::MovePages) {
            Err(NumaError::Unsupported { .. }) => {
                return println!("SKIPPED: this kernel has no mempolicy calls");
            }
            r => r.unwrap(),
        };
        let whole = (placed.bytes / b.base_page_size()) as u64;
        assert!(whole >= (8 << 20) / b.base_page_size() as u64 - 1);
        assert_eq!(placed.counts.on(node), whole, "{}", placed.counts);
        assert!(v.iter().all(|&x| x == 1));
    }

    #[test]
    fn an_ordinary_file_mapping_is_refused() {
        let b = backend();
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("place-file");
        std::fs::write(&path, vec![0u8; 4 * PAGE]).unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        // `f_type` is a `long` of the architecture's width.
        #[allow(clippy::unnecessary_cast)]
        let shmem = rustix::fs::fstatfs(&f).unwrap().f_type as i64 == 0x0102_1994;
        let len = 4 * b.base_page_size();
        // SAFETY: a fresh shared mapping of our own file, unmapped below; no other
        // reference to it exists.
        let p = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &f,
                0,
            )
        }
        .unwrap();
        // SAFETY: the mapping is `len` bytes, readable and writable, ours alone.
        let s = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) };
        let e = place_in(&b, s, &MemPolicy::Local, PlaceFlags::NewPages);
        // SAFETY: the slice is dead; the mapping was made above.
        unsafe { munmap(p, len) }.unwrap();
        let _ = std::fs::remove_file(&path);
        if shmem {
            return println!("SKIPPED: the target dir is on tmpfs (shared memory keeps a policy)");
        }
        assert_eq!(e.map(|_| ()), Err(NumaError::FileBackedMemory));
    }

    #[test]
    fn a_memfd_mapping_is_shared_memory_and_placed() {
        let b = backend();
        let node = first_node(&b);
        let len = 16 * b.base_page_size();
        let fd = memfd_create("numaperf-place", MemfdFlags::CLOEXEC).unwrap();
        ftruncate(&fd, len as u64).unwrap();
        // SAFETY: a fresh shared mapping of our own memfd, unmapped below.
        let p = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .unwrap();
        // SAFETY: the mapping is `len` bytes, readable and writable, ours alone.
        let s = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) };
        let policy = MemPolicy::Bind(NodeMask::single(node));
        let r = place_in(&b, s, &policy, PlaceFlags::NewPages);
        if matches!(r, Err(NumaError::Unsupported { .. })) {
            // SAFETY: as below.
            unsafe { munmap(p, len) }.unwrap();
            return println!("SKIPPED: this kernel has no mempolicy calls");
        }
        let placed = r.unwrap();
        assert_eq!(placed.counts.not_present(), 16, "{}", placed.counts);
        s.fill(3);
        let placed = place_in(&b, s, &policy, PlaceFlags::NewPages).unwrap();
        assert_eq!(placed.counts.on(node), 16, "{}", placed.counts);
        // SAFETY: the slice is dead; the mapping was made above.
        unsafe { munmap(p, len) }.unwrap();
    }
}
