//! The payload of the multi-node QEMU guests (tests/guest/run.sh). Runs the behaviour
//! suite on the guest kernel (LinuxBackend), then the same exact-placement scenarios on a
//! SimMachine replaying the guest's own sysfs tree, and fails on any histogram difference.
//! Prints `NUMAPERF-CASE`, `NUMAPERF-SYSFS` and `NUMAPERF-DONE` lines for the runner.
//!
//! Arguments: `full` (default) or `soft` (NUMA balancing on: checks only what Soft promises).

#[cfg(target_os = "linux")]
#[path = "../tests/behaviour/mod.rs"]
mod behaviour;
#[cfg(target_os = "linux")]
#[path = "guest_suite/linux.rs"]
mod linux;

#[cfg(target_os = "linux")]
use linux::main;

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("SKIPPED: guest_suite is the payload of the Linux guests; this target is not Linux");
}
