//! [`Capabilities::detect`]: what this machine's kernel and this process let numaperf do,
//! for code (the fields, [`supports_hard_mode`](numaperf_core::Capabilities::supports_hard_mode))
//! and for people (`Display`).
//!
//! ```
//! let caps = numaperf::Capabilities::detect();
//! println!("{caps}");
//! if !caps.supports_hard_mode() {
//!     for why in caps.hard_mode_blockers() {
//!         println!("no hard mode: {why}");
//!     }
//! }
//! ```
//!
//! The same on the simulator: `Capabilities::of(&sim)` reports the simulated machine,
//! without the features it was told to lack (`SimMachine::kernel_lacks`, or a
//! `FaultInjector`'s `disable_feature` over any backend).

use std::fmt;
use std::ops::Deref;

pub use numaperf_core::capabilities::{
    FeatureSet, HardModeBlocker, HugePagePool, KernelFeature, KernelVersion, MemlockLimit,
    MempolicyCalls, NumaBalancing, ThpMode, ThpSize,
};
pub use numaperf_core::{CgroupVersion, MemoryCgroup, MemoryLimit};

use crate::{DefaultBackend, PlacementBackend};

/// What a machine's kernel and this process let numaperf do: the kernel release and each
/// feature numaperf uses, THP, huge pages per node and size, NUMA balancing, the cpuset's
/// nodes and CPUs, the memory cgroup's limit, `CAP_SYS_NICE`, `RLIMIT_MEMLOCK`, and
/// whether hard (verified) placement can be had, with the reasons when not.
///
/// It derefs to the findings ([`numaperf_core::Capabilities`]: public fields and the
/// verdicts). Detection has no side effects: kernel features are probed with system calls
/// on empty ranges, which change nothing, or looked up in sysfs (each
/// [`KernelFeature`] says which); no policy, weight or limit is ever written. Its one-time
/// cost is measured by `examples/bench_report`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities(numaperf_core::Capabilities);

impl Capabilities {
    /// This machine, through the [`DefaultBackend`] (the process-wide shared one). A
    /// backend that cannot be had (a node tree that is not a machine) gives capabilities
    /// that know nothing, with the error in `problems`.
    pub fn detect() -> Capabilities {
        match DefaultBackend::shared() {
            Ok(b) => Self::of(&b),
            Err(e) => Capabilities(numaperf_core::Capabilities::unknown("none", vec![e])),
        }
    }

    /// The machine behind `backend` (the simulator's, a wrapped backend's).
    pub fn of<B: PlacementBackend + ?Sized>(backend: &B) -> Capabilities {
        Capabilities(backend.capabilities())
    }

    /// The findings, owned.
    pub fn into_inner(self) -> numaperf_core::Capabilities {
        self.0
    }
}

impl Deref for Capabilities {
    type Target = numaperf_core::Capabilities;

    fn deref(&self) -> &numaperf_core::Capabilities {
        &self.0
    }
}

impl From<numaperf_core::Capabilities> for Capabilities {
    fn from(c: numaperf_core::Capabilities) -> Self {
        Capabilities(c)
    }
}

/// One topic per line, for people (see [`numaperf_core::Capabilities`]'s `Display`).
impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
