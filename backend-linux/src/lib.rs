//! `numaperf-linux`: the Linux backend of numaperf.
//!
//! [`LinuxBackend`] implements `numaperf_core::PlacementBackend` on the real kernel: rustix
//! for mmap, madvise, affinity and sysfs, and a raw-syscall layer (`sys/`, one file per
//! architecture) for the mempolicy calls rustix lacks. No libc.
//!
//! The crate is compiled only for `target_os = "linux"`; elsewhere it is empty.
#![cfg(target_os = "linux")]
#![deny(missing_docs)]
#![warn(clippy::missing_errors_doc)]

mod affinity;
mod backend;
mod cache;
mod capabilities;
mod cgroup;
mod devices;
mod existing;
mod locality;
pub mod mempolicy;
mod process;
mod shared;
mod sigpipe;
mod sys;
mod topology;
pub mod trace;

pub use backend::{kernel_weights, LinuxBackend};
pub use cache::{last_level_cache, SYSFS_CPU_ROOT};
pub use devices::{file_device_number, read_devices, SYSFS_ROOT};
pub use locality::LinuxLocality;
pub use process::migrate_process;
pub use sigpipe::restore_default_sigpipe;
pub use topology::{read_topology, SYSFS_NODE_ROOT};
