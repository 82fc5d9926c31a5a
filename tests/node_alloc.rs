//! `NodeAlloc` on the simulator (any host, and under Miri): allocator-api2 `Vec` and `Box`
//! with their pages on the policy's nodes, frees from another thread, grow, bad input.

use std::alloc::Layout;

use allocator_api2::alloc::Allocator;
use allocator_api2::boxed::Box;
use allocator_api2::vec::Vec;
use numaperf::{MemPolicy, NodeAlloc, NodeId, NodeMask, NumaError};
use numaperf_sim::SimMachine;

/// Elements of the large vectors (smaller under Miri, which runs every store).
const N: usize = if cfg!(miri) { 20_000 } else { 200_000 };

fn sim() -> SimMachine {
    SimMachine::from_spec("2 nodes x 2 cpus x 64 MiB").unwrap()
}

fn bind(n: u32) -> MemPolicy {
    MemPolicy::Bind(NodeMask::single(NodeId::new(n)))
}

#[test]
fn a_vec_and_boxes_are_on_the_bound_node() {
    let sim = sim();
    let a = NodeAlloc::new_in(&sim, bind(1)).unwrap();
    let mut v: Vec<u64, _> = Vec::new_in(&a);
    v.extend(0..N as u64);
    sim.touch(v.as_ptr().cast(), v.len() * 8).unwrap();
    let pages = a.pages_of(&v).unwrap();
    assert!(pages.present() > 0);
    assert_eq!(pages.on(NodeId::new(1)), pages.total(), "{pages}");
    let boxes: std::vec::Vec<Box<[u8; 48], _>> =
        (0..500).map(|i| Box::new_in([i as u8; 48], &a)).collect();
    for b in &boxes {
        sim.touch(b.as_ptr(), 48).unwrap();
    }
    let slabs = a.placement().unwrap();
    assert!(slabs.present() > 0);
    assert_eq!(slabs.nodes(), &NodeMask::single(NodeId::new(1)), "{slabs}");
    assert!(boxes.iter().enumerate().all(|(i, b)| b[47] == i as u8));
}

#[test]
fn interleave_spreads_a_large_vec_evenly() {
    let sim = sim();
    let both = NodeMask::first_n(2);
    let a = NodeAlloc::new_in(&sim, MemPolicy::Interleave(both)).unwrap();
    let v: Vec<u8, _> = {
        let mut v = Vec::with_capacity_in(64 * 4096, &a);
        v.resize(64 * 4096, 1u8);
        v
    };
    sim.touch(v.as_ptr(), v.len()).unwrap();
    let p = a.pages_of(&v).unwrap();
    assert_eq!(
        (p.on(NodeId::new(0)), p.on(NodeId::new(1))),
        (32, 32),
        "{p}"
    );
}

#[test]
fn blocks_freed_on_another_thread_are_reused() {
    let sim = sim();
    let a = NodeAlloc::new_in(&sim, bind(0)).unwrap();
    let layout = Layout::from_size_align(64, 8).unwrap();
    let first: std::vec::Vec<_> = (0..300).map(|_| a.allocate(layout).unwrap()).collect();
    let slabs_before = a.placement().unwrap().total();
    let addrs: std::vec::Vec<usize> = first
        .iter()
        .map(|p| p.cast::<u8>().as_ptr() as usize)
        .collect();
    /// A block handed to another thread to free.
    struct Block(std::ptr::NonNull<[u8]>);
    // SAFETY: the block is owned by whoever holds this; the allocator is Sync.
    unsafe impl Send for Block {}
    let blocks: std::vec::Vec<Block> = first.into_iter().map(Block).collect();
    let shared = &a;
    std::thread::scope(|s| {
        s.spawn(move || {
            for b in blocks {
                // SAFETY: allocated above with `layout`, not used any more.
                unsafe { shared.deallocate(b.0.cast(), layout) };
            }
        });
    });
    let again: std::vec::Vec<_> = (0..300).map(|_| a.allocate(layout).unwrap()).collect();
    let mut reused: std::vec::Vec<usize> = again
        .iter()
        .map(|p| p.cast::<u8>().as_ptr() as usize)
        .collect();
    reused.sort_unstable();
    let mut expected = addrs;
    expected.sort_unstable();
    assert_eq!(reused, expected, "the freed blocks came back");
    assert_eq!(a.placement().unwrap().total(), slabs_before, "no new slab");
    for p in again {
        // SAFETY: as above.
        unsafe { a.deallocate(p.cast(), layout) };
    }
}

#[test]
fn grow_keeps_the_policy_and_the_content() {
    let sim = sim();
    let a = NodeAlloc::new_in(&sim, bind(1)).unwrap();
    let mut v: Vec<u32, _> = Vec::new_in(&a);
    for i in 0..(N as u32) {
        v.push(i);
    }
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32));
    sim.touch(v.as_ptr().cast(), v.len() * 4).unwrap();
    let p = a.pages_of(&v).unwrap();
    assert_eq!(p.on(NodeId::new(1)), p.total(), "{p}");
    // In place when the class or the mapping's pages suffice.
    let l = Layout::from_size_align(100, 8).unwrap();
    let b = a.allocate(l).unwrap();
    let l2 = Layout::from_size_align(110, 8).unwrap();
    // SAFETY: `b` was allocated with `l`; 110 <= its class (112).
    let g = unsafe { a.grow(b.cast(), l, l2) }.unwrap();
    assert_eq!(g.cast::<u8>(), b.cast::<u8>());
    // SAFETY: `g` is live with layout `l2`.
    unsafe { a.deallocate(g.cast(), l2) };
}

#[test]
fn bad_input_is_an_error_never_a_panic() {
    let sim = sim();
    let e = NodeAlloc::new_in(&sim, bind(7)).err();
    assert_eq!(e, Some(NumaError::NodeNotFound(NodeId::new(7))));
    let e = NodeAlloc::new_in(&sim, MemPolicy::Interleave(NodeMask::new())).err();
    assert_eq!(e, Some(NumaError::EmptyNodeMask));
    let a = NodeAlloc::new_in(&sim, bind(0)).unwrap();
    // Small, aligned beyond a page: no class has such blocks.
    let over = Layout::from_size_align(64, 8192).unwrap();
    assert!(a.allocate(over).is_err());
    // More than the machine has.
    let huge = Layout::from_size_align(isize::MAX as usize / 2, 8).unwrap();
    assert!(a.allocate(huge).is_err());
    // Zero size is fine (the Allocator rules).
    let zero = Layout::from_size_align(0, 64).unwrap();
    let z = a.allocate(zero).unwrap();
    assert_eq!((z.len(), z.cast::<u8>().as_ptr() as usize % 64), (0, 0));
    // SAFETY: the block of `zero`.
    unsafe { a.deallocate(z.cast(), zero) };
    assert_eq!(
        sim.mapping_count(),
        0,
        "nothing mapped for refused or empty blocks"
    );
}

#[test]
fn dropping_the_allocator_unmaps_everything() {
    let sim = sim();
    {
        let a = NodeAlloc::new_in(&sim, bind(0)).unwrap();
        let v: Vec<u8, _> = Vec::with_capacity_in(1 << 20, &a);
        let b = Box::new_in(5u64, &a);
        assert!(sim.mapping_count() >= 2);
        drop((v, b));
    }
    assert_eq!(sim.mapping_count(), 0);
    let free: u64 = sim.usage().iter().map(|u| u.free).sum();
    let total: u64 = sim.usage().iter().map(|u| u.total).sum();
    assert_eq!(free, total);
}

#[test]
fn slabs_on_pages_larger_than_a_slab_unmap_cleanly() {
    // 1 MiB base pages: a 256 KiB slab is mapped as one larger page.
    let sim = SimMachine::builder()
        .base_page_size(1 << 20)
        .node(1, 64 << 20)
        .build()
        .unwrap();
    {
        let a = NodeAlloc::new_in(&sim, bind(0)).unwrap();
        let b = Box::new_in(7u64, &a);
        assert_eq!(*b, 7);
        assert_eq!(sim.mapping_count(), 1);
    }
    assert_eq!(sim.mapping_count(), 0);
}

#[test]
fn node_alloc_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<NodeAlloc<&'static SimMachine>>();
    check::<NodeAlloc>();
}
