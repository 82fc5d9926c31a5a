//! Real memory for simulated mappings, from the global allocator (not mmap) so that Miri
//! can run the simulator: zeroed, aligned to the mapping's page unit.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

use numaperf_core::NumaError;

/// The largest alignment served lazily (a transparent huge page's 2 MiB): the block is
/// over-allocated at a small alignment and its start rounded up, which costs up to this
/// much address space but lets the allocator hand out untouched zero pages.
const LAZY_ALIGN: usize = 2 << 20;

/// An owned, zeroed, aligned block.
pub(crate) struct Block {
    /// The aligned start handed out.
    ptr: NonNull<u8>,
    /// What the allocator returned, and its layout.
    base: NonNull<u8>,
    layout: Layout,
}

// SAFETY: a Block owns its allocation exclusively; the pointer is never shared by Block
// itself, so sending it to another thread moves ownership like a Box<[u8]>.
unsafe impl Send for Block {}

impl Block {
    /// `len` zeroed bytes aligned to `align` (a power of two).
    ///
    /// Up to [`LAZY_ALIGN`] the block is `len + align` bytes at the alignment of a `u64`:
    /// `alloc_zeroed` then asks for calloc'd memory, whose large blocks are fresh pages the
    /// OS zeroes on first touch, so a simulated page nobody writes costs neither memory nor
    /// time (an over-aligned `alloc_zeroed` writes zeros over the whole block at once:
    /// 64 MiB took 0.15 s, most of the time a simulated populate took).
    pub(crate) fn new(len: usize, align: usize) -> Result<Self, NumaError> {
        let overflow = || NumaError::SizeOverflow { len, unit: align };
        if !align.is_power_of_two() {
            return Err(overflow());
        }
        let layout = if align <= LAZY_ALIGN {
            let size = len.checked_add(align).ok_or_else(overflow)?;
            Layout::from_size_align(size, std::mem::align_of::<u64>())
        } else {
            Layout::from_size_align(len, align)
        }
        .map_err(|_| overflow())?;
        // SAFETY: `layout` has a non-zero size (callers round a non-zero length up).
        let base = unsafe { alloc_zeroed(layout) };
        let base = NonNull::new(base).ok_or(NumaError::Os {
            op: "mmap",
            errno: numaperf_core::Errno::ENOMEM,
        })?;
        let skip = base.as_ptr().addr().next_multiple_of(align) - base.as_ptr().addr();
        // SAFETY: `skip < align` when lazy (then the block has `len + align` bytes), 0
        // otherwise: the start stays inside the allocation, `len` bytes before its end.
        let ptr = unsafe { base.add(skip) };
        Ok(Block { ptr, base, layout })
    }

    /// Start address.
    pub(crate) fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: `base` came from `alloc_zeroed(self.layout)` and is freed only here.
        unsafe { dealloc(self.base.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::Block;

    #[test]
    fn blocks_are_aligned_zeroed_and_writable() {
        for (len, align) in [
            (4096, 4096),
            (3 << 20, 2 << 20),
            (8192, 1 << 16),
            (1 << 21, 1 << 21),
        ] {
            let b = Block::new(len, align).unwrap();
            let p = b.ptr().as_ptr();
            assert_eq!(p.addr() % align, 0, "{len} bytes at {align}");
            // SAFETY: the block holds `len` bytes from `p`, and nothing else refers to them.
            let bytes = unsafe { std::slice::from_raw_parts_mut(p, len) };
            assert!(bytes.iter().step_by(4096).all(|&x| x == 0));
            bytes[len - 1] = 1;
        }
        assert!(Block::new(usize::MAX, 4096).is_err());
    }
}
