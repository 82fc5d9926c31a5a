//! Real memory for simulated mappings, from the global allocator (not mmap) so that Miri
//! can run the simulator: zeroed, aligned to the mapping's page unit.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

use numaperf_core::NumaError;

/// An owned, zeroed, aligned block.
pub(crate) struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: a Block owns its allocation exclusively; the pointer is never shared by Block
// itself, so sending it to another thread moves ownership like a Box<[u8]>.
unsafe impl Send for Block {}

impl Block {
    /// `len` zeroed bytes aligned to `align` (a power of two).
    pub(crate) fn new(len: usize, align: usize) -> Result<Self, NumaError> {
        let layout = Layout::from_size_align(len, align)
            .map_err(|_| NumaError::SizeOverflow { len, unit: align })?;
        // SAFETY: `layout` has a non-zero size (callers round a non-zero length up).
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or(NumaError::Os {
            op: "mmap",
            errno: numaperf_core::Errno::ENOMEM,
        })?;
        Ok(Block { ptr, layout })
    }

    /// Start address.
    pub(crate) fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed(self.layout)` and is freed only here.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}
