//! The payload of the multi-node QEMU guests (tests/guest/run.sh). Runs the behaviour
//! suite on the guest kernel (LinuxBackend), then the same exact-placement scenarios on a
//! SimMachine replaying the guest's own sysfs tree, and fails on any histogram difference.
//! Prints `NUMAPERF-CASE`, `NUMAPERF-SYSFS` and `NUMAPERF-DONE` lines for the runner.
//!
//! A multi-call binary: started as `numaperf` (the guests' `/bin/numaperf` links to it)
//! it is the `numaperf` command; as `placement-probe`, the probe program the `run` cases
//! start. Otherwise its arguments are `full` (default) or `soft` (NUMA balancing on:
//! checks only what Soft promises), or `hold-pages NODE` (a child of the CLI cases).

#[cfg(target_os = "linux")]
#[path = "../tests/behaviour/mod.rs"]
mod behaviour;
// The payload uses the command whole, through cli_main, not every item it exports.
#[allow(dead_code)]
#[path = "../src/bin/numaperf/main.rs"]
mod cli;
#[cfg(target_os = "linux")]
#[path = "guest_suite/linux.rs"]
mod linux;
#[cfg(target_os = "linux")]
#[path = "guest_suite/probe.rs"]
mod probe;

// The command's modules name their shared items `crate::...` as well as `super::...`.
#[allow(unused_imports)]
use cli::{CliError, NODE_LIST_HELP};

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    match name {
        "numaperf" => cli::cli_main(args),
        "placement-probe" => probe_main(&args),
        _ => suite(),
    }
}

#[cfg(target_os = "linux")]
fn probe_main(args: &[String]) -> ExitCode {
    ExitCode::from(probe::main(args).clamp(0, 255) as u8)
}

#[cfg(not(target_os = "linux"))]
fn probe_main(_args: &[String]) -> ExitCode {
    suite()
}

#[cfg(target_os = "linux")]
fn suite() -> ExitCode {
    linux::main();
    ExitCode::SUCCESS
}

#[cfg(not(target_os = "linux"))]
fn suite() -> ExitCode {
    println!("SKIPPED: guest_suite is the payload of the Linux guests; this target is not Linux");
    ExitCode::SUCCESS
}
