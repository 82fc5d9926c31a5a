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

// The payload is multi-call: started as `numaperf` it is the command-line tool, as
// `placement-probe` the CLI cases' probe (guest_suite/probe.rs), else the suite.
#[cfg(target_os = "linux")]
#[path = "../src/bin/numaperf/main.rs"]
mod cli;
#[cfg(target_os = "linux")]
#[path = "guest_suite/probe.rs"]
mod probe;
/// The CLI's modules name their error type `crate::CliError`.
#[cfg(target_os = "linux")]
use cli::CliError;

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let name = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string());
    match name.as_deref() {
        Some("numaperf") => cli::cli_main(args),
        Some("placement-probe") => std::process::ExitCode::from(probe::main(&args) as u8),
        _ => {
            linux::main();
            std::process::ExitCode::SUCCESS
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("SKIPPED: guest_suite is the payload of the Linux guests; this target is not Linux");
}
