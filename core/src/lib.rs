//! `numaperf-core`: the `no_std` heart of numaperf.
//!
//! Node and CPU sets ([`NodeMask`], [`CpuSet`]), policies ([`MemPolicy`]) and the pure logic
//! around them (validation, interleave order, fallback order by distance), parsers for the
//! kernel's text formats, one error type ([`NumaError`]), and the one trait a machine must
//! implement ([`PlacementBackend`]). Nothing here allocates; the `alloc` feature adds an
//! owned topology, `std` adds `std::error::Error`.
#![no_std]
#![deny(missing_docs)]
#![warn(clippy::missing_errors_doc)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;
// mockall's generated code needs std in tests.
#[cfg(all(test, not(feature = "std")))]
extern crate std;

pub mod backend;
pub mod byte_size;
pub mod capabilities;
pub mod cgroup;
pub mod device;
#[cfg(feature = "alloc")]
pub mod device_sysfs;
pub mod errno;
pub mod error;
pub mod existing;
#[cfg(feature = "alloc")]
pub mod locality;
#[cfg(feature = "alloc")]
pub mod locality_grade;
#[cfg(feature = "alloc")]
pub mod locality_parse;
pub mod memattrs;
#[cfg(feature = "alloc")]
pub mod memattrs_sysfs;
pub mod node;
pub mod options;
pub mod parse;
pub mod policy;
pub mod populate;
#[cfg(feature = "alloc")]
pub mod process_pages;
pub mod region;
pub mod shared;
pub mod shared_region;
#[cfg(feature = "alloc")]
pub mod sysfs;
#[cfg(feature = "std")]
pub mod sysfs_dir;
#[cfg(all(test, feature = "alloc"))]
mod sysfs_mem;
pub mod topology;
pub mod weighted;

/// The fixed-capacity collections the core's no-alloc types are built on, re-exported so
/// a `no_std` user need not match its version.
pub use heapless;

pub use backend::{
    placement, CpuLocation, Mapping, MappingInfo, PageCounts, PageLocation, PageRange,
    PlacementBackend,
};
#[cfg(feature = "alloc")]
pub use capabilities::{Capabilities, MemoryCgroup};
pub use capabilities::{FeatureSet, HardModeBlocker, KernelFeature, KernelVersion};
pub use cgroup::{CgroupVersion, MemoryLimit};
pub use device::{DevNumber, DeviceClass, DeviceKind, DeviceName, DeviceRef, Locality, PciAddress};
#[cfg(feature = "alloc")]
pub use device::{DeviceSource, DeviceTable, NamedDevice, PciDevice};
pub use errno::Errno;
pub use error::{FileProblem, NumaError, OptionConflict, SysfsFile};
pub use existing::{MemoryKind, ThreadPolicy};
pub use node::{CpuSet, IdSet, NodeId, NodeMask, MAX_CPUS, MAX_NUMNODES};
pub use options::{Enforcement, HugePages, NodeMode, Prefault, RegionOptions};
pub use parse::{DeviceSpec, ParseError, ParseErrorKind};
pub use policy::{MemPolicy, NodeWeights};
pub use region::create_region;
pub use shared::{SharedHandle, SharedKind, SharedObject};
#[cfg(feature = "alloc")]
pub use topology::OwnedTopology;
pub use topology::{FixedTopology, NodeInfo, TopologyInfo};
pub use weighted::KernelWeights;
