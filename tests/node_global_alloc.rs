//! `NodeGlobalAlloc` as this test binary's `#[global_allocator]` (Linux): the heap is bound
//! to the first node from the first allocation on, with no recursion into the allocator
//! while it starts; the kernel reports the bind policy on a `Vec`'s pages and on small
//! blocks' slabs, and blocks freed on other threads are fine.

#[cfg(target_os = "linux")]
mod linux {
    use numaperf::numa_core::node::KERNEL_MASK_WORDS;
    use numaperf::{MemPolicy, NodeGlobalAlloc, NodeMask};
    use numaperf_linux::mempolicy::{get_mempolicy, MPOL_BIND, MPOL_F_ADDR};

    /// Node 0 as a const mask (every Linux machine has a node 0 with memory... or the
    /// allocator says why not, and the tests check that it says so).
    const NODE0: NodeMask = NodeMask::from_words({
        let mut w = [0u64; 16];
        w[0] = 1;
        w
    });

    #[global_allocator]
    static HEAP: NodeGlobalAlloc = NodeGlobalAlloc::new(MemPolicy::Bind(NODE0));

    /// The kernel's policy mode at `addr` (the VMA's), or the errno.
    fn mode_at(addr: *const u8) -> Result<i32, rustix::io::Errno> {
        let mut mode = 0i32;
        let mut words = [0usize; KERNEL_MASK_WORDS];
        get_mempolicy(&mut mode, &mut words, 1025, addr, MPOL_F_ADDR)?;
        Ok(mode)
    }

    #[test]
    fn the_heap_is_bound_from_the_first_allocation() {
        let v = vec![1u64; 1 << 20];
        if let Some(e) = HEAP.error() {
            // The policy could not be used here (no NUMA kernel): said, not pretended.
            assert!(!HEAP.is_placing());
            return println!("SKIPPED: the heap is the system's here: {e}");
        }
        assert!(HEAP.is_placing());
        match mode_at(v.as_ptr().cast()) {
            Ok(m) => assert_eq!(m as u32 & 0xff, MPOL_BIND, "the Vec's pages are bound"),
            Err(rustix::io::Errno::NOSYS) => return println!("SKIPPED: no mempolicy calls"),
            Err(e) => panic!("get_mempolicy: {e}"),
        }
        let small: Vec<Box<u64>> = (0..2000).map(Box::new).collect();
        assert_eq!(
            mode_at((&*small[1999] as *const u64).cast()).unwrap() as u32 & 0xff,
            MPOL_BIND
        );
        // Freed from another thread.
        std::thread::spawn(move || drop(small)).join().unwrap();
        let again: Vec<Box<[u8; 32]>> = (0..2000).map(|i| Box::new([i as u8; 32])).collect();
        assert!(again.iter().enumerate().all(|(i, b)| b[31] == i as u8));
        // realloc keeps the content.
        let mut s = String::new();
        for i in 0..100_000 {
            s.push(char::from(b'a' + (i % 26) as u8));
        }
        assert!(s
            .bytes()
            .enumerate()
            .all(|(i, c)| c == b'a' + (i % 26) as u8));
    }
}
