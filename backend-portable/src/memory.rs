//! Real memory for the portable backend: anonymous `mmap` on Unix (through rustix), the
//! global allocator with page alignment elsewhere. Zeroed, read-write, page-aligned.

use core::ptr::NonNull;

#[cfg(unix)]
use numaperf_core::Errno;
use numaperf_core::NumaError;

/// The base page size.
pub(crate) fn page_size() -> usize {
    #[cfg(unix)]
    {
        rustix::param::page_size()
    }
    #[cfg(not(unix))]
    {
        4096
    }
}

/// `len` zeroed bytes (a multiple of `page`), aligned to `page`.
pub(crate) fn map(len: usize, page: usize) -> Result<NonNull<u8>, NumaError> {
    #[cfg(unix)]
    {
        let _ = page;
        use rustix::mm::{mmap_anonymous, MapFlags, ProtFlags};
        // SAFETY: a fresh anonymous mapping at an address the kernel picks (null hint): it
        // cannot alias any existing Rust object.
        let p = unsafe {
            mmap_anonymous(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .map_err(|e| NumaError::from_errno("mmap", Errno::from_raw(e.raw_os_error())))?;
        NonNull::new(p.cast()).ok_or(NumaError::Os {
            op: "mmap",
            errno: Errno::EFAULT,
        })
    }
    #[cfg(not(unix))]
    {
        let layout = std::alloc::Layout::from_size_align(len, page)
            .map_err(|_| NumaError::SizeOverflow { len, unit: page })?;
        // SAFETY: `layout` has a non-zero size (callers round a non-zero length up).
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        NonNull::new(p).ok_or(NumaError::InsufficientMemory {
            requested: len as u64,
            available: 0,
        })
    }
}

/// Releases what [`map`] made.
///
/// # Errors
/// The OS's refusal of `munmap`.
///
/// # Safety
/// `addr`, `len` and `page` are exactly what [`map`] was given and returned, and nothing
/// refers to the memory any more.
pub(crate) unsafe fn unmap(addr: NonNull<u8>, len: usize, page: usize) -> Result<(), NumaError> {
    #[cfg(unix)]
    {
        let _ = page;
        // SAFETY: the caller's contract: our own mapping of `len` bytes, unreferenced.
        unsafe { rustix::mm::munmap(addr.as_ptr().cast(), len) }
            .map_err(|e| NumaError::from_errno("munmap", Errno::from_raw(e.raw_os_error())))
    }
    #[cfg(not(unix))]
    {
        // SAFETY: the caller's contract: allocated by `map` with this very layout (it
        // was valid then, so it is now).
        unsafe {
            std::alloc::dealloc(
                addr.as_ptr(),
                std::alloc::Layout::from_size_align_unchecked(len, page),
            )
        };
        Ok(())
    }
}
