//! aarch64 system call instructions: `x8` = number, args in x0..x5, result in x0,
//! `svc 0`. The only asm in numaperf besides x86_64.rs.

use core::arch::asm;

/// A system call with up to six arguments; returns the raw `x0` (`-errno` on failure).
///
/// # Safety
/// The arguments must be valid for system call `nr` (pointers to memory of the size and
/// mutability that call expects, or null where it allows).
#[inline]
pub unsafe fn syscall6(nr: usize, a: [usize; 6]) -> usize {
    let ret: usize;
    // SAFETY: the caller guarantees the arguments suit `nr`; the asm follows the aarch64
    // Linux syscall ABI (x0 is both the first argument and the result).
    unsafe {
        asm!(
            "svc 0",
            in("x8") nr,
            inlateout("x0") a[0] => ret,
            in("x1") a[1],
            in("x2") a[2],
            in("x3") a[3],
            in("x4") a[4],
            in("x5") a[5],
            options(nostack),
        );
    }
    ret
}
