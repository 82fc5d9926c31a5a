//! `numaperf run --verify`: the command runs traced; just before it (and each process it
//! forks) exits, its `numa_maps` is read and its pages under the policy are checked
//! against the policy's nodes. The report goes to stderr; the command's exit status is
//! passed through unless a page was outside (exit 1).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use numaperf::locality::LocalitySource;
use numaperf::numa_core::locality::MappingPages;
use numaperf::numa_core::process_pages::PlacementCheck;
use numaperf::{NodeMask, NumaError};
use numaperf_linux::trace::{follow_to_exit, trace_me, Ending};
use numaperf_linux::LinuxLocality;

use crate::CliError;

/// `node=pages` pairs (`N0=12 N3=4`), as numa_maps writes them.
fn per_node(pages: &[(numaperf::NodeId, u64)]) -> String {
    let parts: Vec<String> = pages.iter().map(|(n, p)| format!("N{n}={p}")).collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" ")
    }
}

/// Runs `command` traced and checks every exiting process's pages against `nodes`.
///
/// # Errors
/// Command not found; `ptrace`/`waitpid` failures; a process whose pages could not be
/// read; and pages outside `nodes` (after the report).
pub fn run(command: &[OsString], nodes: &NodeMask) -> Result<ExitCode, CliError> {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]);
    // SAFETY: the hook runs in the forked child before exec; it makes one system call
    // (ptrace(PTRACE_TRACEME)) and builds an io::Error from an errno, which allocates
    // nothing: async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            trace_me().map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        // exec says EACCES for a file it cannot run; EPERM is PTRACE_TRACEME's refusal.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => {
            return Err(CliError::runtime(format!(
                "--verify: the command cannot be traced (ptrace: {e}; seccomp or a \
                 container may forbid it)"
            )))
        }
        Err(e) => return super::not_started(&command[0], &e),
    };
    let mut seen: Vec<(u32, Result<Vec<MappingPages>, NumaError>)> = Vec::new();
    let ending = follow_to_exit(child.id(), |pid| {
        seen.push((pid, LinuxLocality::of_process(pid).mappings()));
    })
    .map_err(|e| CliError::runtime(format!("--verify: {e}")))?;
    eprintln!("numaperf: verify: pages checked against nodes {nodes}");
    let mut failures = Vec::new();
    for (pid, maps) in &seen {
        let maps = match maps {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("process {pid}: its pages could not be read: {e}"));
                continue;
            }
        };
        let check = PlacementCheck::of(maps, nodes);
        eprintln!(
            "numaperf: verify: process {pid}: {} pages: {}; outside: {}; not checked: {} \
             (files, shared memory, own policies)",
            check.total(),
            per_node(&check.checked),
            check.outside,
            check.unchecked
        );
        if !check.passed() {
            failures.push(format!(
                "process {pid}: {} of {} pages on nodes {}, outside {nodes}",
                check.outside,
                check.total(),
                check.outside_nodes
            ));
        }
    }
    if seen.is_empty() {
        failures.push("no process was seen exiting".into());
    }
    if !failures.is_empty() {
        return Err(CliError::runtime(format!(
            "verify failed: {}",
            failures.join("; ")
        )));
    }
    eprintln!("numaperf: verify: passed");
    Ok(match ending {
        Ending::Exited(code) => ExitCode::from(code as u8),
        Ending::Killed(sig) => ExitCode::from(128u8.saturating_add(sig as u8)),
    })
}
