//! numaperf: explicit NUMA memory placement that is verified, not hoped for.
//!
//! ```no_run
//! use numaperf::{MemPolicy, NodeId, NodeMask, NumaRegion, Prefault};
//! let region = NumaRegion::anon(
//!     1 << 20,
//!     MemPolicy::Bind(NodeMask::single(NodeId::new(0))),
//!     Default::default(),
//!     Prefault::Populate,
//! )?;
//! println!("{}", region.placement()?);
//! # Ok::<(), numaperf::NumaError>(())
//! ```
//!
//! Everything above the [`PlacementBackend`] trait is generic: [`NumaRegion::anon`] uses
//! the [`DefaultBackend`] (the Linux backend on Linux, the one-node [`PortableBackend`]
//! elsewhere); [`NumaRegion::anon_in`] takes any backend, such as the simulator in
//! `numaperf-sim`.
#![deny(missing_docs)]
#![warn(clippy::missing_errors_doc)]

mod alloc;
pub mod capabilities;
mod devices;
pub mod locality;
pub mod membench;
mod place;
pub mod pool;
mod process;
mod region;
mod sharded;
mod shared;
pub mod thread;
mod topology;
mod topology_text;

pub use alloc::{NodeAlloc, NodeGlobalAlloc};
pub use capabilities::{Capabilities, HardModeBlocker, KernelFeature, KernelVersion};
/// Pads and aligns a value to the cache line (128 bytes on x86_64, aarch64 and powerpc64):
/// crossbeam-utils' type, re-exported.
pub use crossbeam_utils::CachePadded;
pub use devices::DeviceMap;
pub use locality::{LocalityHealth, LocalityReport, LocalitySnapshot};
pub use numaperf_core::{
    CpuLocation, CpuSet, Enforcement, Errno, FileProblem, HugePages, KernelWeights, Mapping,
    MappingInfo, MemPolicy, NodeId, NodeMask, NodeMode, NodeWeights, NumaError, OptionConflict,
    PageCounts, PageLocation, PageRange, ParseError, PlacementBackend, Prefault, RegionOptions,
    SharedHandle, SharedKind, SysfsFile, ThreadPolicy, TopologyInfo,
};
pub use numaperf_core::{
    DevNumber, DeviceClass, DeviceKind, DeviceRef, DeviceSource, DeviceSpec, DeviceTable, Locality,
    NamedDevice, PciAddress, PciDevice,
};
#[cfg(target_os = "linux")]
pub use numaperf_linux::LinuxBackend;
pub use numaperf_portable::PortableBackend;
pub use place::{place, place_in, place_with, PlaceFlags, Placed};
pub use pool::{Buffer, BufferPool, BufferPoolConfig, WorkerPool, WorkerPoolConfig};
pub use process::migrate_process;
pub use region::NumaRegion;
pub use sharded::{NumaSharded, ShardMemory, ShardedCounter};
pub use shared::SharedRegion;
pub use topology::{NumaNode, Topology};
pub use topology_text::{TopologyPart, TopologyText};

/// The `no_std` core crate (`numaperf-core`): parsers and pure policy logic. Named so
/// that `use numaperf::*;` does not shadow the language's `core` crate.
pub use numaperf_core as numa_core;

/// The backend `NumaRegion::anon` and `Topology::discover` use: the Linux backend on
/// Linux, the one-node [`PortableBackend`] everywhere else.
#[cfg(all(target_os = "linux", not(feature = "portable")))]
pub type DefaultBackend = LinuxBackend;
/// The backend `NumaRegion::anon` and `Topology::discover` use: the Linux backend on
/// Linux, the one-node [`PortableBackend`] everywhere else.
#[cfg(any(not(target_os = "linux"), feature = "portable"))]
pub type DefaultBackend = PortableBackend;
