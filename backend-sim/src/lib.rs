//! `numaperf-sim`: a simulated multi-node machine behind `PlacementBackend`, so policy
//! logic is tested on a one-node laptop or CI box.
//!
//! [`SimMachine`] models nodes (CPUs, memory, distances, hugetlb pools), keeps real memory
//! (from the global allocator, so Miri can run it) and a per-page node table, and places
//! pages with the kernel's rules from `numaperf-core` (zonelist fallback order, interleave
//! by virtual page number, THP units). Fault injection and call tracing are wrappers over
//! *any* backend ([`FaultInjector`], [`Tracer`]), smoltcp-style.
#![deny(missing_docs)]
#![warn(clippy::missing_errors_doc)]

mod build;
mod calls;
mod capabilities;
mod capture;
mod devices;
mod fault;
mod hooked;
mod machine;
mod memattrs;
mod memory;
mod thread_policy;
mod threads;
mod tracer;
mod zonelists;

pub use build::SimBuilder;
pub use calls::{CallCounts, CallKind};
pub use devices::SimDevice;
pub use fault::{FaultInjector, Faults};
pub use hooked::{CallHook, Hooked};
pub use machine::{KernelFeature, NodeUsage, SimMachine, PAGE_SIZE};
pub use tracer::Tracer;

/// A small seeded xorshift64 generator: a failing run replays exactly, and no_std-friendly.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator; seed 0 is replaced by a fixed non-zero seed.
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next number.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}
