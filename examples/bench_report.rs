//! The benchmark table: every region case of `benches/regions.rs` against its raw baseline
//! (rustix + raw syscalls) in the same run, runs interleaved, medians compared.
//!
//!     cargo run --release --example bench_report            # all sizes, 64 KiB .. 1 GiB
//!     cargo run --release --example bench_report -- --quick  # up to 64 MiB, fewer runs
//!
//! "speed" is raw median / numaperf median: 1.00 means numaperf costs nothing extra, and
//! the targets read as speed >= 0.95 for every populate case.

#[cfg(target_os = "linux")]
#[path = "../benches/common/mod.rs"]
mod common;
#[cfg(target_os = "linux")]
#[path = "bench_report/linux.rs"]
mod linux;

#[cfg(target_os = "linux")]
use linux::main;

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("SKIPPED: bench_report measures the Linux backend against raw Linux system calls; this target is not Linux");
}
