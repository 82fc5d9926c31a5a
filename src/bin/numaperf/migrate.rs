//! `numaperf migrate PID FROM TO`: a process's pages from some nodes to others, as
//! `migratepages` moves them (`migrate_pages(2)` through [`numaperf::migrate_process`]).

use std::process::ExitCode;

use clap::Args;
use numaperf::numa_core::parse::parse_node_spec;
use numaperf::{Errno, NodeMask, NumaError, Topology};

use super::{CliError, NODE_LIST_HELP};

/// Arguments of `numaperf migrate`.
#[derive(Args, Debug)]
#[command(after_long_help = NODE_LIST_HELP)]
pub struct MigrateArgs {
    /// The process whose pages move.
    pid: u32,
    /// The nodes to move pages from (a node list).
    from: String,
    /// The nodes to move them to (a node list); the kernel keeps each page's relative
    /// position: the n-th node of FROM maps to the n-th node of TO.
    to: String,
}

/// Runs `numaperf migrate`: prints how many pages could not be moved (busy, pinned,
/// shared with another process, no room), and succeeds as `migratepages` does; a process
/// that does not exist (or exited meanwhile) is a runtime error (exit 1).
pub fn exec(args: &MigrateArgs) -> Result<ExitCode, CliError> {
    let topo = Topology::discover()?;
    let allowed = topo.allowed_nodes();
    let from = nodes(&args.from, &allowed, "FROM")?;
    let to = nodes(&args.to, &allowed, "TO")?;
    let pid = args.pid;
    let not_moved = numaperf::migrate_process(pid, &from, &to).map_err(|e| match e {
        NumaError::PermissionDenied { .. } => CliError::runtime(format!(
            "migrate: not permitted to move the pages of process {pid} \
             (another user's process needs CAP_SYS_NICE)"
        )),
        e if e.errno() == Some(Errno::ESRCH) => {
            CliError::runtime(format!("migrate: no process with PID {pid}"))
        }
        e => CliError::runtime(format!("migrate: {e}")),
    })?;
    println!("pages not moved: {not_moved}");
    Ok(ExitCode::SUCCESS)
}

/// A node list within the allowed nodes, not empty.
fn nodes(text: &str, allowed: &NodeMask, which: &str) -> Result<NodeMask, CliError> {
    let m = parse_node_spec(text, allowed)
        .map_err(|e| CliError::usage(format!("migrate: {which} {text:?}: {e}")))?;
    if m.is_empty() {
        return Err(CliError::usage(format!(
            "migrate: {which} {text:?} names no node"
        )));
    }
    Ok(m)
}
