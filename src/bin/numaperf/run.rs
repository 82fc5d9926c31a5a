//! `numaperf run`: a command under a memory policy and CPU binding, in numactl's syntax.
//! The policy is set on this thread with `set_mempolicy` and the CPUs with
//! `sched_setaffinity`, both inherited across `exec`; then numaperf becomes the command,
//! or with `--verify` runs it traced and reports where its pages were at its exit.

mod policy;
#[cfg(target_os = "linux")]
mod verify;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{ArgGroup, Args};
use numaperf::{DefaultBackend, PlacementBackend};

use crate::CliError;

/// Arguments of `numaperf run`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("memory").args([
    "membind", "preferred", "preferred_many", "interleave", "weighted_interleave", "localalloc"
])))]
#[command(group(ArgGroup::new("cpu").args(["cpunodebind", "physcpubind"])))]
#[command(
    after_help = "NODES is numactl's syntax: 0-3,5 (ranges), !1 (all but), +0-1 \
    (relative to the allowed nodes), all; or a device's nodes: netdev:eth0, block:nvme0n1, \
    pci:0000:3b:00.0, file:PATH.\n\
    Exit status: the command's (128+N when signal N killed it); 2 for bad arguments, \
    127 when the command is not found, 126 when it cannot be executed; with --verify, 1 \
    when a page was outside the policy's nodes."
)]
pub struct RunArgs {
    /// Allocate only on NODES (MPOL_BIND).
    #[arg(long, short = 'm', value_name = "NODES")]
    pub membind: Option<String>,
    /// Prefer NODE, fall back to others (MPOL_PREFERRED).
    #[arg(long, short = 'p', value_name = "NODE")]
    pub preferred: Option<String>,
    /// Prefer NODES, fall back to others (MPOL_PREFERRED_MANY, Linux 5.15).
    #[arg(long, short = 'P', value_name = "NODES")]
    pub preferred_many: Option<String>,
    /// Interleave pages over NODES (MPOL_INTERLEAVE).
    #[arg(long, short = 'i', value_name = "NODES")]
    pub interleave: Option<String>,
    /// Weighted interleave (Linux 6.9). Weights must be the kernel's own table (which
    /// numaperf never writes); an entry without :W takes the kernel's weight.
    #[arg(long, short = 'w', value_name = "NODES[:W],..")]
    pub weighted_interleave: Option<String>,
    /// Allocate on the node the allocating thread runs on (MPOL_LOCAL).
    #[arg(long, short = 'l')]
    pub localalloc: bool,
    /// Run only on the CPUs of NODES.
    #[arg(long, short = 'N', value_name = "NODES")]
    pub cpunodebind: Option<String>,
    /// Run only on CPUS (a list such as 0-3,8, or all).
    #[arg(long, short = 'C', value_name = "CPUS")]
    pub physcpubind: Option<String>,
    /// Let NUMA balancing migrate pages within the policy's nodes (MPOL_F_NUMA_BALANCING;
    /// with --membind, or --preferred on Linux 6.9).
    #[arg(long, short = 'b')]
    pub balancing: bool,
    /// Trace the command (and what it forks), report where their pages were just before
    /// each exited, and fail if any page under the policy was outside its nodes.
    #[arg(long)]
    pub verify: bool,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<OsString>,
}

/// Runs `numaperf run`.
///
/// # Errors
/// Usage errors for bad node lists, absent nodes, empty masks and conflicting flags;
/// runtime errors when the kernel refuses the policy; command-not-found.
pub fn exec(args: &RunArgs) -> Result<ExitCode, CliError> {
    let backend = DefaultBackend::shared()?;
    let policy = policy::memory_policy(args, &backend)?;
    let cpus = policy::cpus(args, &backend)?;
    if let Some(c) = &cpus {
        backend
            .set_thread_affinity(c)
            .map_err(|e| policy::classify("cpu binding", "", e))?;
    }
    if let Some(p) = &policy {
        let (flag, value) = policy::shown(args);
        backend
            .set_thread_policy(Some(p.clone()))
            .map_err(|e| policy::classify(flag, value, e))?;
    }
    if args.verify {
        #[cfg(target_os = "linux")]
        {
            let nodes = policy::verified_nodes(policy.as_ref(), cpus.as_ref(), &backend);
            return verify::run(&args.command, &nodes);
        }
        #[cfg(not(target_os = "linux"))]
        return Err(CliError::runtime(
            "--verify: needs Linux (ptrace and numa_maps)",
        ));
    }
    replace_with(&args.command)
}

/// Becomes `command` (exec), as numactl does; returns only when it cannot.
#[cfg(unix)]
fn replace_with(command: &[OsString]) -> Result<ExitCode, CliError> {
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(&command[0])
        .args(&command[1..])
        .exec();
    not_started(&command[0], &err)
}

#[cfg(not(unix))]
fn replace_with(_command: &[OsString]) -> Result<ExitCode, CliError> {
    Err(CliError::runtime(
        "run: needs a Unix system (a policy inherited across exec)",
    ))
}

/// Why `command` did not start, as a shell says it: not found is exit 127; found but not
/// executable (permissions, a bad format) is 126, printed here since `CliError` has no
/// such code.
#[cfg(unix)]
fn not_started(command: &OsString, err: &std::io::Error) -> Result<ExitCode, CliError> {
    let name = command.to_string_lossy();
    if err.kind() == std::io::ErrorKind::NotFound {
        return Err(CliError::CommandNotFound(format!(
            "{name}: command not found"
        )));
    }
    eprintln!("numaperf: {name}: cannot execute: {err}");
    Ok(ExitCode::from(126))
}
