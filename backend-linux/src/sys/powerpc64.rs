//! powerpc64 system calls. Inline asm for PowerPC is not stable Rust yet
//! (`asm_experimental_arch`; rustix also uses the C library there), so the call goes
//! through the C library's `syscall(3)`, which every Linux C library (glibc, musl)
//! exports and which rustix's own backend already links on this architecture. The
//! kernel reports failure in `cr0.SO` and `syscall(3)` turns it into `-1` + `errno`;
//! this wrapper turns that back into the raw `-errno` the other architectures return.

use core::ffi::{c_int, c_long};

unsafe extern "C" {
    /// `long syscall(long number, ...)`.
    fn syscall(number: c_long, ...) -> c_long;
    /// The calling thread's `errno` (glibc and musl both export this name).
    fn __errno_location() -> *mut c_int;
}

/// A system call with up to six arguments; returns the raw result (`-errno` on failure).
///
/// # Safety
/// The arguments must be valid for system call `nr` (pointers to memory of the size and
/// mutability that call expects, or null where it allows).
#[inline]
pub unsafe fn syscall6(nr: usize, a: [usize; 6]) -> usize {
    let [a0, a1, a2, a3, a4, a5] = a.map(|x| x as c_long);
    // SAFETY: the caller guarantees the arguments suit `nr`; `syscall(3)` passes six
    // register-sized arguments to the kernel as the powerpc64 ABI requires.
    let ret = unsafe { syscall(nr as c_long, a0, a1, a2, a3, a4, a5) };
    if ret == -1 {
        // SAFETY: `__errno_location` returns the calling thread's valid errno slot.
        let errno = unsafe { *__errno_location() };
        (-(errno as isize)) as usize
    } else {
        ret as usize
    }
}
