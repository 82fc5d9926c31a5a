//! x86_64 system call instructions: `rax` = number, args in rdi, rsi, rdx, r10, r8, r9;
//! the kernel clobbers rcx and r11. The only asm in numaperf besides aarch64.rs.

use core::arch::asm;

/// A system call with up to six arguments; returns the raw `rax` (`-errno` on failure).
///
/// # Safety
/// The arguments must be valid for system call `nr` (pointers to memory of the size and
/// mutability that call expects, or null where it allows).
#[inline]
pub unsafe fn syscall6(nr: usize, a: [usize; 6]) -> usize {
    let ret: usize;
    // SAFETY: the caller guarantees the arguments suit `nr`; the asm follows the x86_64
    // Linux syscall ABI and declares every register the instruction changes.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}
