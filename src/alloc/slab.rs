//! One size class's blocks: a free list of freed blocks and a bump range of never-used
//! ones in the class's current slab, behind a short spin lock (one atomic per operation;
//! the lock is held for a few loads and stores, or for the mapping of a new slab).

use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

/// A freed block: the link to the next freed block of its class, stored in the block.
struct Free {
    next: *mut Free,
}

/// The blocks of one class.
pub(crate) struct Class {
    locked: AtomicBool,
    inner: UnsafeCell<Blocks>,
}

struct Blocks {
    free: *mut Free,
    bump: *mut u8,
    end: *mut u8,
}

// SAFETY: the pointers are only read or written with `locked` held (see `Locked`), and the
// blocks they point to belong to the allocator, which is shared between threads.
unsafe impl Send for Class {}
// SAFETY: as above.
unsafe impl Sync for Class {}

impl Class {
    /// No blocks.
    pub(crate) const fn new() -> Self {
        Class {
            locked: AtomicBool::new(false),
            inner: UnsafeCell::new(Blocks {
                free: ptr::null_mut(),
                bump: ptr::null_mut(),
                end: ptr::null_mut(),
            }),
        }
    }

    /// The class's blocks, locked until the guard drops.
    pub(crate) fn lock(&self) -> Locked<'_> {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                spins += 1;
                if spins < 64 {
                    core::hint::spin_loop();
                } else {
                    // Another thread may be mapping a slab: give it the CPU.
                    std::thread::yield_now();
                }
            }
        }
        Locked { class: self }
    }
}

/// A class's blocks while its lock is held.
pub(crate) struct Locked<'a> {
    class: &'a Class,
}

impl Locked<'_> {
    fn blocks(&mut self) -> &mut Blocks {
        // SAFETY: the lock is held for the guard's life, so this is the only access.
        unsafe { &mut *self.class.inner.get() }
    }

    /// A block of `size` bytes: a freed one, else the next never-used one of the slab;
    /// `None` when the class needs a new slab.
    pub(crate) fn take(&mut self, size: usize) -> Option<*mut u8> {
        let b = self.blocks();
        if !b.free.is_null() {
            let block = b.free;
            // SAFETY: `block` is a freed block of this class (pushed by `give`), so it
            // holds a `Free` written there; nobody else owns it.
            b.free = unsafe { (*block).next };
            return Some(block.cast());
        }
        if (b.end as usize).wrapping_sub(b.bump as usize) >= size && !b.bump.is_null() {
            let block = b.bump;
            b.bump = b.bump.wrapping_add(size);
            return Some(block);
        }
        None
    }

    /// Gives back a block of this class.
    ///
    /// # Safety
    /// `block` was returned by `take` of this class (or is in a slab given to `refill`),
    /// at least 16 bytes and aligned to 16, and nobody uses it any more.
    pub(crate) unsafe fn give(&mut self, block: *mut u8) {
        let b = self.blocks();
        let f = block.cast::<Free>();
        // SAFETY: the block is this class's, unused, large and aligned enough for a `Free`.
        unsafe { f.write(Free { next: b.free }) };
        b.free = f;
    }

    /// Makes `start..end` (a fresh slab's blocks) the class's never-used blocks; what was
    /// left of the previous slab (less than a block) is abandoned.
    pub(crate) fn refill(&mut self, start: *mut u8, end: *mut u8) {
        let b = self.blocks();
        b.bump = start;
        b.end = end;
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.class.locked.store(false, Ordering::Release);
    }
}
