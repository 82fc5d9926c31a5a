//! riscv64 system call instructions: `a7` = number, args in a0..a5, result in a0,
//! `ecall`. The kernel may discard the vector state across a system call (the RISC-V
//! Linux ABI treats v0..v31 as clobbered), so they are declared clobbered, as rustix does.

use core::arch::asm;

/// A system call with up to six arguments; returns the raw `a0` (`-errno` on failure).
///
/// # Safety
/// The arguments must be valid for system call `nr` (pointers to memory of the size and
/// mutability that call expects, or null where it allows).
#[inline]
pub unsafe fn syscall6(nr: usize, a: [usize; 6]) -> usize {
    let ret: usize;
    // SAFETY: the caller guarantees the arguments suit `nr`; the asm follows the riscv64
    // Linux syscall ABI (a0 is both the first argument and the result) and declares every
    // register the kernel may change.
    unsafe {
        asm!(
            "ecall",
            in("a7") nr,
            inlateout("a0") a[0] => ret,
            in("a1") a[1],
            in("a2") a[2],
            in("a3") a[3],
            in("a4") a[4],
            in("a5") a[5],
            lateout("v0") _, lateout("v1") _, lateout("v2") _, lateout("v3") _,
            lateout("v4") _, lateout("v5") _, lateout("v6") _, lateout("v7") _,
            lateout("v8") _, lateout("v9") _, lateout("v10") _, lateout("v11") _,
            lateout("v12") _, lateout("v13") _, lateout("v14") _, lateout("v15") _,
            lateout("v16") _, lateout("v17") _, lateout("v18") _, lateout("v19") _,
            lateout("v20") _, lateout("v21") _, lateout("v22") _, lateout("v23") _,
            lateout("v24") _, lateout("v25") _, lateout("v26") _, lateout("v27") _,
            lateout("v28") _, lateout("v29") _, lateout("v30") _, lateout("v31") _,
            options(nostack),
        );
    }
    ret
}
