//! Region create + drop, THP populate, placement() and discover(), each beside its raw
//! baseline (rustix + raw syscalls) in the same run. `examples/bench_report.rs` prints
//! the same cases as one table of medians and ratios.

#[cfg(target_os = "linux")]
mod common;
#[cfg(target_os = "linux")]
#[path = "regions/linux.rs"]
mod linux;

#[cfg(target_os = "linux")]
use linux::main;

#[cfg(not(target_os = "linux"))]
fn main() {
    println!(
        "SKIPPED: the regions bench compares with raw Linux system calls; this target is not Linux"
    );
}
