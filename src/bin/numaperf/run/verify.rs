//! `numaperf run --verify`: the command runs traced; just before it (and each process it
//! forks) exits, its `numa_maps` is read and its pages under the policy are checked
//! against the policy's nodes. The report goes to stderr; the command's exit status is
//! passed through unless a page was outside (exit 1).

use std::ffi::OsString;
use std::process::{Command, ExitCode};

use numaperf::locality::LocalitySource;
use numaperf::numa_core::locality::MappingPages;
use numaperf::numa_core::process_pages::PlacementCheck;
use numaperf::{NodeMask, NumaError};
use numaperf_linux::trace::{follow_to_exit, trace_on_exec, Ending};
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

/// Checks one exiting process's pages against `nodes` and reports it on stderr; returns
/// why it failed, if it did.
fn check(pid: u32, maps: Result<&[MappingPages], &NumaError>, nodes: &NodeMask) -> Option<String> {
    let maps = match maps {
        Ok(m) => m,
        Err(e) => return Some(format!("process {pid}: its pages could not be read: {e}")),
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
    (!check.passed()).then(|| {
        format!(
            "process {pid}: {} of {} pages on nodes {}, outside {nodes}",
            check.outside,
            check.total(),
            check.outside_nodes
        )
    })
}

/// The first [`Failures::KEPT`] failures and how many more there were.
#[derive(Default)]
struct Failures {
    kept: Vec<String>,
    more: u64,
}

impl Failures {
    const KEPT: usize = 8;

    fn push(&mut self, failure: String) {
        if self.kept.len() < Self::KEPT {
            self.kept.push(failure);
        } else {
            self.more += 1;
        }
    }

    fn into_vec(mut self) -> Vec<String> {
        if self.more > 0 {
            self.kept.push(format!("and {} more", self.more));
        }
        self.kept
    }
}

/// Runs `command` traced and checks every exiting process's pages against `nodes`.
///
/// # Errors
/// Command not found; `ptrace`/`waitpid` failures; a process whose pages could not be
/// read; and pages outside `nodes` (after the report).
pub fn run(command: &[OsString], nodes: &NodeMask) -> Result<ExitCode, CliError> {
    let mut cmd = Command::new(&command[0]);
    trace_on_exec(cmd.args(&command[1..]));
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
    // Each process is checked and reported as it exits; only the failures are kept (the
    // first few of them), so memory does not grow with the number of processes.
    eprintln!("numaperf: verify: pages checked against nodes {nodes}");
    let mut failures = Failures::default();
    let mut processes = 0u64;
    // No other thread here waits for children, as follow_to_exit requires.
    let ending = follow_to_exit(child.id(), |pid| {
        processes += 1;
        let maps = LinuxLocality::of_process(pid).mappings();
        if let Some(failure) = check(pid, maps.as_deref(), nodes) {
            failures.push(failure);
        }
    })
    .map_err(|e| CliError::runtime(format!("--verify: {e}")))?;
    if processes == 0 {
        failures.push("no process was seen exiting".into());
    }
    let failures = failures.into_vec();
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
