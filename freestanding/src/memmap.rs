//! The machine's memory as firmware describes it: physical ranges per node (an ACPI SRAT's
//! memory affinity entries) carved out of one static arena, and the frame allocator over them.
//!
//! A page's node is never stored: [`node_of`] finds the range that contains its address.

use core::cell::UnsafeCell;

use numaperf_core::NodeId;

/// Page (frame) size.
pub const PAGE: usize = 4096;
/// Frames in the physical arena (1 MiB).
pub const FRAMES: usize = 256;

/// Page-aligned static memory, accessed only through raw pointers.
#[repr(C, align(4096))]
pub struct Arena<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: the program has one thread, and the memory is reached only through raw
// pointers from `base`, by the one backend that owns it (see `FirmwareMachine::take`):
// no reference to its contents is ever made, so sharing the static cannot race.
unsafe impl<const N: usize> Sync for Arena<N> {}

impl<const N: usize> Arena<N> {
    /// Zeroed memory.
    pub const fn new() -> Self {
        Arena(UnsafeCell::new([0; N]))
    }

    /// The first byte's address.
    pub fn base(&self) -> usize {
        self.0.get() as usize
    }

    /// Whether `addr` is inside.
    pub fn contains(&self, addr: usize) -> bool {
        (self.base()..self.base() + N).contains(&addr)
    }
}

/// The "physical" memory of the machine.
static PHYS: Arena<{ FRAMES * PAGE }> = Arena::new();

/// One memory affinity entry: `len` bytes at `offset` from the arena's base belong to
/// `node`. (Firmware gives absolute addresses; here the linker places the arena, so the
/// table is relative to it.)
#[derive(Clone, Copy, Debug)]
pub struct MemRange {
    /// Proximity domain (node id).
    pub node: u32,
    /// Start, from the arena's base.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

const KIB: usize = 1024;

/// Four nodes of 256 KiB each; nodes 0 and 2 are split in two ranges, as firmware often
/// reports memory around holes, so that a node is found by range, not by arithmetic.
pub const SRAT: [MemRange; 6] = [
    MemRange {
        node: 0,
        offset: 0,
        len: 128 * KIB,
    },
    MemRange {
        node: 1,
        offset: 128 * KIB,
        len: 256 * KIB,
    },
    MemRange {
        node: 2,
        offset: 384 * KIB,
        len: 128 * KIB,
    },
    MemRange {
        node: 0,
        offset: 512 * KIB,
        len: 128 * KIB,
    },
    MemRange {
        node: 2,
        offset: 640 * KIB,
        len: 128 * KIB,
    },
    MemRange {
        node: 3,
        offset: 768 * KIB,
        len: 256 * KIB,
    },
];

/// Absolute `[start, end)` of an entry.
pub fn span(r: &MemRange) -> (usize, usize) {
    let start = PHYS.base() + r.offset;
    (start, start + r.len)
}

/// The node whose range holds physical address `addr`.
pub fn node_of(addr: usize) -> Option<NodeId> {
    SRAT.iter()
        .find(|r| {
            let (start, end) = span(r);
            (start..end).contains(&addr)
        })
        .map(|r| NodeId::new(r.node))
}

/// Bytes of memory the map gives `node`.
pub fn node_bytes(node: u32) -> u64 {
    SRAT.iter()
        .filter(|r| r.node == node)
        .map(|r| r.len as u64)
        .sum()
}

/// Which frames are in use; frames are named by their physical address.
pub struct Frames {
    used: [u64; FRAMES / 64],
}

impl Frames {
    /// All frames free. Only [`crate::machine::FirmwareMachine::take`] makes one (once per
    /// process), so every frame has one allocator.
    pub const fn new() -> Self {
        Frames {
            used: [0; FRAMES / 64],
        }
    }

    fn index(addr: usize) -> usize {
        (addr - PHYS.base()) / PAGE
    }

    fn is_used(&self, i: usize) -> bool {
        self.used[i / 64] & (1 << (i % 64)) != 0
    }

    /// Takes a free frame of `node`'s ranges and writes `owner` into its first word (as a
    /// kernel's page records its mapping); returns its physical address.
    pub fn take(&mut self, node: NodeId, owner: usize) -> Option<usize> {
        for r in SRAT.iter().filter(|r| r.node == node.get()) {
            let (start, end) = span(r);
            for addr in (start..end).step_by(PAGE) {
                let i = Self::index(addr);
                if !self.is_used(i) {
                    self.used[i / 64] |= 1 << (i % 64);
                    // SAFETY: `addr` is a page-aligned frame inside PHYS (an SRAT range),
                    // so a usize write is in bounds and aligned; the frame was free, so
                    // nothing else refers to it, and PHYS is only reached by raw pointer.
                    unsafe { (addr as *mut usize).write(owner) };
                    return Some(addr);
                }
            }
        }
        None
    }

    /// The owner word of a frame in use (`None`: not a frame in use).
    pub fn owner(&self, addr: usize) -> Option<usize> {
        if !PHYS.contains(addr) || !addr.is_multiple_of(PAGE) || !self.is_used(Self::index(addr)) {
            return None;
        }
        // SAFETY: a page-aligned address inside PHYS: an aligned, in-bounds usize read of
        // memory only ever reached by raw pointer.
        Some(unsafe { (addr as *const usize).read() })
    }

    /// Gives a frame back, clearing its owner word.
    pub fn release(&mut self, addr: usize) {
        if self.owner(addr).is_some() {
            let i = Self::index(addr);
            self.used[i / 64] &= !(1 << (i % 64));
            // SAFETY: as in `owner`; the frame was in use by the caller, who gives it up.
            unsafe { (addr as *mut usize).write(0) };
        }
    }

    /// Free frames in `node`'s ranges.
    pub fn free_on(&self, node: NodeId) -> u64 {
        SRAT.iter()
            .filter(|r| r.node == node.get())
            .map(|r| {
                let (start, end) = span(r);
                (start..end)
                    .step_by(PAGE)
                    .filter(|&a| !self.is_used(Self::index(a)))
                    .count() as u64
            })
            .sum()
    }
}
