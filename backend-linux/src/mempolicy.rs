//! Typed wrappers for the mempolicy system calls rustix lacks: mbind, set/get_mempolicy,
//! move_pages, migrate_pages, set_mempolicy_home_node, and getcpu (which gives the node).

use core::ptr;

use linux_raw_sys::mempolicy as k;
use rustix::io::Errno;

use crate::sys::{check, numbers as nr, syscall6};

/// `MPOL_DEFAULT`: use the thread's policy.
pub const MPOL_DEFAULT: u32 = k::MPOL_DEFAULT as u32;
/// `MPOL_PREFERRED`.
pub const MPOL_PREFERRED: u32 = k::MPOL_PREFERRED as u32;
/// `MPOL_BIND`.
pub const MPOL_BIND: u32 = k::MPOL_BIND as u32;
/// `MPOL_INTERLEAVE`.
pub const MPOL_INTERLEAVE: u32 = k::MPOL_INTERLEAVE as u32;
/// `MPOL_LOCAL` (Linux 3.8).
pub const MPOL_LOCAL: u32 = k::MPOL_LOCAL as u32;
/// `MPOL_PREFERRED_MANY` (Linux 5.15).
pub const MPOL_PREFERRED_MANY: u32 = k::MPOL_PREFERRED_MANY as u32;
/// `MPOL_WEIGHTED_INTERLEAVE` (Linux 6.9).
pub const MPOL_WEIGHTED_INTERLEAVE: u32 = k::MPOL_WEIGHTED_INTERLEAVE as u32;
/// Mode flag: node ids are physical and never remapped.
pub const MPOL_F_STATIC_NODES: u32 = k::MPOL_F_STATIC_NODES;
/// Mode flag: node ids are indices into the allowed nodes.
pub const MPOL_F_RELATIVE_NODES: u32 = k::MPOL_F_RELATIVE_NODES;
/// Mode flag: NUMA balancing may migrate within the nodes (Linux 5.12).
pub const MPOL_F_NUMA_BALANCING: u32 = k::MPOL_F_NUMA_BALANCING;
/// mbind flag: fail with EIO if pages do not follow the policy.
pub const MPOL_MF_STRICT: u32 = k::MPOL_MF_STRICT;
/// mbind/move_pages flag: move pages used only by this process.
pub const MPOL_MF_MOVE: u32 = k::MPOL_MF_MOVE;
/// get_mempolicy flag: return a node id instead of the mode.
pub const MPOL_F_NODE: u32 = k::MPOL_F_NODE;
/// get_mempolicy flag: look up the policy at an address.
pub const MPOL_F_ADDR: u32 = k::MPOL_F_ADDR;
/// get_mempolicy flag: return the allowed nodes.
pub const MPOL_F_MEMS_ALLOWED: u32 = k::MPOL_F_MEMS_ALLOWED;

/// A node mask argument: NULL for an empty slice.
fn mask_ptr(mask: &[usize]) -> usize {
    if mask.is_empty() {
        0
    } else {
        mask.as_ptr() as usize
    }
}

/// Checks that `maxnode - 1` bits fit in `mask` (the kernel reads that many).
fn check_mask(mask: &[usize], maxnode: usize) -> Result<(), Errno> {
    if maxnode.saturating_sub(1) > mask.len() * usize::BITS as usize {
        Err(Errno::INVAL)
    } else {
        Ok(())
    }
}

/// `mbind(addr, len, mode, nodemask, maxnode, flags)`.
///
/// # Errors
/// The kernel's errno (`EINVAL` also when the mask is shorter than `maxnode - 1` bits;
/// `EIO` for strict placement that could not be met).
///
/// # Safety
/// `addr..addr + len` must be memory the caller owns (with `MPOL_MF_MOVE` its pages may
/// move, content kept); no other code may rely on that range's policy.
pub unsafe fn mbind(
    addr: *mut u8,
    len: usize,
    mode: u32,
    nodemask: &[usize],
    maxnode: usize,
    flags: u32,
) -> Result<(), Errno> {
    check_mask(nodemask, maxnode)?;
    let args = [
        addr as usize,
        len,
        mode as usize,
        mask_ptr(nodemask),
        maxnode,
        flags as usize,
    ];
    // SAFETY: the mask is readable for `maxnode - 1` bits (checked); the range is the
    // caller's (this function's contract).
    check(unsafe { syscall6(nr::MBIND, args) }).map(drop)
}

/// `set_mempolicy(mode, nodemask, maxnode)` for the calling thread.
///
/// # Errors
/// The kernel's errno (`EINVAL` also when the mask is shorter than `maxnode - 1` bits).
pub fn set_mempolicy(mode: u32, nodemask: &[usize], maxnode: usize) -> Result<(), Errno> {
    check_mask(nodemask, maxnode)?;
    let args = [mode as usize, mask_ptr(nodemask), maxnode, 0, 0, 0];
    // SAFETY: the kernel only reads `maxnode - 1` bits of the mask, which fit (checked).
    check(unsafe { syscall6(nr::SET_MEMPOLICY, args) }).map(drop)
}

/// `get_mempolicy(&mode, nodemask, maxnode, addr, flags)`.
///
/// With `MPOL_F_NODE | MPOL_F_ADDR` it returns the node of the page at `addr` and
/// faults that page in (use `move_pages_query` to look without faulting).
///
/// # Errors
/// The kernel's errno (`EFAULT` for an unmapped `addr`; `EINVAL` also when the mask
/// is shorter than `maxnode - 1` bits).
pub fn get_mempolicy(
    mode: &mut i32,
    nodemask: &mut [usize],
    maxnode: usize,
    addr: *const u8,
    flags: u32,
) -> Result<(), Errno> {
    check_mask(nodemask, maxnode)?;
    let args = [
        mode as *mut i32 as usize,
        if nodemask.is_empty() {
            0
        } else {
            nodemask.as_mut_ptr() as usize
        },
        maxnode,
        addr as usize,
        flags as usize,
        0,
    ];
    // SAFETY: `mode` is a valid i32; the mask is writable for `maxnode - 1` bits
    // (checked). `addr` is only looked up; an unmapped address gives EFAULT.
    check(unsafe { syscall6(nr::GET_MEMPOLICY, args) }).map(drop)
}

/// `move_pages(0, n, pages, NULL, status, 0)`: where each page is, without faulting it
/// in. `status[i]` is a node id, or `-errno` (-ENOENT: not present).
///
/// # Errors
/// The kernel's errno (`EINVAL` also when the two slices differ in length).
pub fn move_pages_query(pages: &[*const u8], status: &mut [i32]) -> Result<(), Errno> {
    if pages.len() != status.len() {
        return Err(Errno::INVAL);
    }
    let args = [
        0,
        pages.len(),
        pages.as_ptr() as usize,
        0,
        status.as_mut_ptr() as usize,
        0,
    ];
    // SAFETY: `pages` and `status` hold `pages.len()` entries each; with nodes = NULL
    // the kernel only reads the page list and writes the status array.
    check(unsafe { syscall6(nr::MOVE_PAGES, args) }).map(drop)
}

/// `move_pages(0, n, pages, nodes, status, flags)`: moves each page to `nodes[i]`.
/// Returns the number of pages the kernel did not move (older kernels report 0 and
/// leave it to `status`).
///
/// # Errors
/// The kernel's errno (`EINVAL` also when the slices differ in length).
///
/// # Safety
/// The pages must belong to memory the caller owns; their content is kept.
pub unsafe fn move_pages_move(
    pages: &[*const u8],
    nodes: &[i32],
    status: &mut [i32],
    flags: u32,
) -> Result<usize, Errno> {
    if pages.len() != status.len() || pages.len() != nodes.len() {
        return Err(Errno::INVAL);
    }
    let args = [
        0,
        pages.len(),
        pages.as_ptr() as usize,
        nodes.as_ptr() as usize,
        status.as_mut_ptr() as usize,
        flags as usize,
    ];
    // SAFETY: the three arrays hold `pages.len()` entries; the caller owns the pages.
    check(unsafe { syscall6(nr::MOVE_PAGES, args) })
}

/// `migrate_pages(pid, maxnode, old, new)`: moves a process's pages from `old` to
/// `new` nodes; returns the number of pages that could not be moved.
///
/// # Errors
/// The kernel's errno (`EPERM` for another user's process without `CAP_SYS_NICE`;
/// `EINVAL` also when a mask is shorter than `maxnode - 1` bits).
pub fn migrate_pages(
    pid: i32,
    old: &[usize],
    new: &[usize],
    maxnode: usize,
) -> Result<usize, Errno> {
    check_mask(old, maxnode)?;
    check_mask(new, maxnode)?;
    let args = [pid as usize, maxnode, mask_ptr(old), mask_ptr(new), 0, 0];
    // SAFETY: both masks are readable for `maxnode - 1` bits (checked).
    check(unsafe { syscall6(nr::MIGRATE_PAGES, args) })
}

/// `set_mempolicy_home_node(addr, len, home_node, flags)` (Linux 5.17).
///
/// # Errors
/// The kernel's errno (`ENOSYS` before Linux 5.17, `EOPNOTSUPP` for a mode without a
/// home node).
///
/// # Safety
/// As for [`mbind`]: the range must be the caller's.
pub unsafe fn set_mempolicy_home_node(
    addr: *mut u8,
    len: usize,
    home_node: usize,
    flags: usize,
) -> Result<(), Errno> {
    let args = [addr as usize, len, home_node, flags, 0, 0];
    // SAFETY: no user memory is read or written; the range is the caller's.
    check(unsafe { syscall6(nr::SET_MEMPOLICY_HOME_NODE, args) }).map(drop)
}

/// `getcpu(&cpu, &node, NULL)`: the calling thread's CPU and node.
///
/// # Errors
/// The kernel's errno (in practice never).
pub fn getcpu() -> Result<(u32, u32), Errno> {
    let (mut cpu, mut node) = (0u32, 0u32);
    let args = [
        &mut cpu as *mut u32 as usize,
        &mut node as *mut u32 as usize,
        ptr::null_mut::<u8>() as usize,
        0,
        0,
        0,
    ];
    // SAFETY: both out-pointers are valid u32s; the third (the unused cache) may be NULL.
    check(unsafe { syscall6(nr::GETCPU, args) })?;
    Ok((cpu, node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::mm::{mmap_anonymous, munmap, MapFlags, ProtFlags};

    const PAGE: usize = 4096;

    struct Anon(*mut u8, usize);
    impl Anon {
        fn new(pages: usize) -> Self {
            // SAFETY: fresh anonymous mapping at a kernel-chosen address.
            let p = unsafe {
                mmap_anonymous(
                    ptr::null_mut(),
                    pages * PAGE,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::PRIVATE,
                )
            }
            .unwrap();
            Anon(p.cast(), pages * PAGE)
        }
        fn page(&self, i: usize) -> *mut u8 {
            self.0.wrapping_add(i * PAGE)
        }
    }
    impl Drop for Anon {
        fn drop(&mut self) {
            // SAFETY: our own mapping, unreferenced after drop.
            unsafe { munmap(self.0.cast(), self.1) }.unwrap();
        }
    }

    /// A node list file of this machine (`online`, `has_memory`, `possible`).
    fn node_list(name: &str) -> numaperf_core::NodeMask {
        let text = std::fs::read_to_string(format!("/sys/devices/system/node/{name}"))
            .unwrap_or_else(|_| "0".into());
        numaperf_core::parse::parse_list(text.trim()).unwrap()
    }

    /// The first node with memory, and a one-word mask of it (`maxnode` = id + 2).
    fn memory_node() -> (u32, [usize; 16], usize) {
        let n = node_list("has_memory").first().unwrap().get();
        let mut mask = [0usize; 16];
        mask[n as usize / 64] = 1 << (n % 64);
        (n, mask, n as usize + 2)
    }

    /// The lowest node id that is not online (but possible, when the kernel allows more).
    fn absent_node() -> u32 {
        let online = node_list("online");
        (0..1024)
            .find(|&i| !online.contains(numaperf_core::NodeId::new(i)))
            .unwrap()
    }

    fn query(a: &Anon, n: usize) -> Vec<i32> {
        let pages: Vec<*const u8> = (0..n).map(|i| a.page(i) as *const u8).collect();
        let mut status = vec![i32::MIN; n];
        move_pages_query(&pages, &mut status).unwrap();
        status
    }

    #[test]
    fn bind_to_a_memory_node_and_look_where_pages_went() {
        let (n, mask, maxnode) = memory_node();
        let a = Anon::new(8);
        // SAFETY: `a` is ours.
        unsafe { mbind(a.0, a.1, MPOL_BIND, &mask, maxnode, 0) }.unwrap();
        for i in 0..4 {
            // SAFETY: inside the mapping.
            unsafe { a.page(i).write_volatile(1) };
        }
        let s = query(&a, 8);
        assert_eq!(&s[..4], &[n as i32; 4]);
        for &x in &s[4..] {
            assert!(
                x == -libc_enoent() || x == -14,
                "untouched page reported {x}"
            );
        }
        let mut mode = -1;
        get_mempolicy(&mut mode, &mut [], 0, a.0, MPOL_F_ADDR).unwrap();
        assert_eq!(mode as u32, MPOL_BIND);
    }

    fn libc_enoent() -> i32 {
        Errno::NOENT.raw_os_error()
    }

    #[test]
    fn absent_node_is_einval_and_node_1023_is_read() {
        let a = Anon::new(1);
        let absent = absent_node() as usize;
        let mut one = [0usize; 16];
        one[absent / 64] = 1 << (absent % 64);
        // SAFETY: `a` is ours.
        assert_eq!(
            unsafe { mbind(a.0, a.1, MPOL_BIND, &one, absent + 2, 0) },
            Err(Errno::INVAL)
        );
        let mut mask = [0usize; 16];
        mask[15] = 1 << 63;
        // Node 1023 is read (maxnode 1025) and rejected: EINVAL, not EFAULT (absent where
        // the kernel has NODES_SHIFT=10; beyond MAX_NUMNODES, whose bits must be zero,
        // where it has fewer, e.g. arm64's NODES_SHIFT=4).
        // SAFETY: `a` is ours.
        assert_eq!(
            unsafe { mbind(a.0, a.1, MPOL_BIND, &mask, 1025, 0) },
            Err(Errno::INVAL)
        );
        // With maxnode 1024 the kernel drops bit 1023: an empty mask, also EINVAL for
        // Bind, but Preferred with an empty mask means local and succeeds.
        // SAFETY: `a` is ours.
        assert_eq!(
            unsafe { mbind(a.0, a.1, MPOL_PREFERRED, &mask, 1024, 0) },
            Ok(())
        );
        // SAFETY: `a` is ours.
        assert_eq!(
            unsafe { mbind(a.0, a.1, MPOL_PREFERRED, &mask, 1025, 0) },
            Err(Errno::INVAL)
        );
        // A mask too short for maxnode never reaches the kernel.
        // SAFETY: `a` is ours.
        assert_eq!(
            unsafe { mbind(a.0, a.1, MPOL_BIND, &[1], 200, 0) },
            Err(Errno::INVAL)
        );
    }

    #[test]
    fn thread_policy_round_trip() {
        let (_, want, maxnode) = memory_node();
        set_mempolicy(MPOL_INTERLEAVE, &want, maxnode).unwrap();
        let (mut mode, mut mask) = (-1, [0usize; 16]);
        // maxnode at least the kernel's possible nodes (`possible`), at most 1024 + 1.
        let possible = node_list("possible")
            .last()
            .map_or(1, |n| n.get() as usize + 1);
        get_mempolicy(
            &mut mode,
            &mut mask,
            (possible + 1).max(1025),
            ptr::null(),
            0,
        )
        .unwrap();
        set_mempolicy(MPOL_DEFAULT, &[], 0).unwrap();
        assert_eq!(mode as u32, MPOL_INTERLEAVE);
        assert_eq!(mask, want);
        let mut mode = -1;
        get_mempolicy(&mut mode, &mut [], 0, ptr::null(), 0).unwrap();
        assert_eq!(mode as u32, MPOL_DEFAULT);
    }

    #[test]
    fn move_pages_and_migrate_pages_to_a_memory_node() {
        let (n, mask, maxnode) = memory_node();
        let a = Anon::new(2);
        // SAFETY: inside our mapping.
        unsafe { a.page(0).write_volatile(7) };
        let pages = [a.page(0) as *const u8];
        let mut status = [i32::MIN];
        // SAFETY: the page is ours.
        assert_eq!(
            unsafe { move_pages_move(&pages, &[n as i32], &mut status, MPOL_MF_MOVE) },
            Ok(0)
        );
        assert_eq!(status, [n as i32]);
        // SAFETY: read back our own byte: migration keeps content.
        assert_eq!(unsafe { a.page(0).read_volatile() }, 7);
        let absent = absent_node() as i32;
        // SAFETY: the page is ours; `absent` is not online.
        let r = unsafe { move_pages_move(&pages, &[absent], &mut status, MPOL_MF_MOVE) };
        // ENODEV for a possible but offline node; EINVAL beyond the kernel's node ids.
        assert!(
            r == Err(Errno::NODEV) || r == Err(Errno::INVAL),
            "absent node {absent}: {r:?}"
        );
        assert_eq!(migrate_pages(0, &mask, &mask, maxnode), Ok(0));
        assert!(move_pages_query(&pages, &mut []).is_err());
    }

    #[test]
    fn getcpu_reports_the_cpus_node() {
        let (cpu, node) = getcpu().unwrap();
        let cpus = std::fs::read_to_string(format!("/sys/devices/system/node/node{node}/cpulist"))
            .unwrap();
        let cpus: numaperf_core::CpuSet = numaperf_core::parse::parse_list(cpus.trim()).unwrap();
        assert!(
            cpus.contains(cpu as usize),
            "cpu {cpu} is not in node {node}'s list"
        );
        assert!((cpu as usize) < rustix::thread::CpuSet::MAX_CPU);
        assert_eq!(rustix::thread::sched_getcpu(), cpu as usize);
    }

    #[test]
    fn home_node_on_a_bind_range() {
        let (n, mask, maxnode) = memory_node();
        let a = Anon::new(1);
        // SAFETY: `a` is ours.
        unsafe { mbind(a.0, a.1, MPOL_BIND, &mask, maxnode, 0) }.unwrap();
        let home = n as usize;
        // SAFETY: `a` is ours.
        assert_eq!(
            unsafe { set_mempolicy_home_node(a.0, a.1, home, 0) },
            Ok(())
        );
        // SAFETY: `a` is ours; an interleave range refuses a home node.
        unsafe { mbind(a.0, a.1, MPOL_INTERLEAVE, &mask, maxnode, 0) }.unwrap();
        // SAFETY: `a` is ours.
        assert_eq!(
            unsafe { set_mempolicy_home_node(a.0, a.1, home, 0) },
            Err(Errno::OPNOTSUPP)
        );
    }
}
