//! Architectures without a raw system call layer: every call answers `ENOSYS`, which the
//! backend reports as `NumaError::Unsupported` instead of failing to build.

/// Always `-ENOSYS`.
///
/// # Safety
/// None needed (nothing is called); `unsafe` only to match the other layers.
#[inline]
pub unsafe fn syscall6(_nr: usize, _a: [usize; 6]) -> usize {
    (-(linux_raw_sys::errno::ENOSYS as isize)) as usize
}
