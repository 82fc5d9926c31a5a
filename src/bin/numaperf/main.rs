//! The `numaperf` command: see, run, verify and measure NUMA placement without writing
//! code. Thin: every figure it prints comes from the library.
//!
//! Also compiled into the guests' payload (`examples/guest_suite.rs` includes this file
//! by path and calls [`cli_main`] when started as `numaperf`).

mod bench;
mod error;
mod info;
mod migrate;
mod run;
mod stat;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::CliError;

/// numaperf: explicit NUMA placement, verified.
#[derive(Parser, Debug)]
#[command(name = "numaperf", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the machine: nodes, CPUs, memory, distances, capabilities, devices, weights.
    Info(info::InfoArgs),
    /// Run a command under a memory policy and CPU binding (numactl's syntax).
    Run(run::RunArgs),
    /// Pages per node of processes, and the system's per-node counters (like numastat).
    Stat(stat::StatArgs),
    /// Move a process's pages from some nodes to others (like migratepages).
    Migrate(migrate::MigrateArgs),
    /// Measure idle latency and bandwidth between every CPU node and memory node.
    Bench(bench::BenchArgs),
}

/// The node-list syntax every subcommand takes (numactl's; see
/// `numaperf_core::parse::parse_node_spec`), for `--help` texts (`after_long_help`).
pub const NODE_LIST_HELP: &str = "\
NODE LISTS (numactl's syntax, read as libnuma 2.0.16 reads them):
  0-3,8      ids and ranges, comma-separated; a range takes the allowed nodes inside it
  all        every node this process may use (also as the last entry: 0,all)
  !1-2       a leading ! inverts the whole list within the allowed nodes
  +0-1       a leading + numbers the allowed nodes from 0 (cpuset-relative)
  0x10, 010  hexadecimal and octal, as C's strtoul reads them
  0, 1       whitespace is allowed right before a number, nowhere else
  \"\"         the empty list names no node (a command that needs one says so)
Signs (-1, +1 after a comma) and ids of 2^32 or more are errors (libnuma would negate or
truncate them); every named node must be one this process may use.";

/// Parses `args` (the program name first) and runs the subcommand. Usage errors exit 2,
/// runtime errors 1 (127 for a command that cannot be found, as a shell does); both print
/// one line on stderr.
pub fn cli_main<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // `numaperf stat | head` ends quietly, as C tools do, instead of a panic on EPIPE.
    #[cfg(target_os = "linux")]
    let _ = numaperf_linux::restore_default_sigpipe();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version print to stdout and succeed.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("numaperf: {}", one_line(&e));
            return ExitCode::from(CliError::usage("").exit_code());
        }
    };
    let result = match &cli.command {
        Command::Info(a) => info::exec(a),
        Command::Run(a) => run::exec(a),
        Command::Stat(a) => stat::exec(a),
        Command::Migrate(a) => migrate::exec(a),
        Command::Bench(a) => bench::exec(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("numaperf: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// clap's error in one line: its first line without the `error: ` prefix, and which
/// `--help` to read (the subcommand's when clap's usage line names one).
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return "a subcommand is required: info, run, stat, migrate or bench \
                (see numaperf --help)"
            .into();
    }
    let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
    let first = lines.next().unwrap_or("");
    let mut first = first
        .strip_prefix("error: ")
        .unwrap_or(first)
        .trim_end()
        .to_string();
    if first.ends_with(':') {
        // "the following required arguments were not provided:" and its indented list.
        for l in lines.take_while(|l| !l.trim().is_empty()) {
            first.push(' ');
            first.push_str(l.trim());
        }
    }
    // "Usage: numaperf migrate <PID> <FROM> <TO>" -> "numaperf migrate".
    let command: Vec<&str> = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("Usage: "))
        .map(|u| {
            u.split_whitespace()
                .take_while(|w| !w.starts_with(['<', '[', '-']))
                .collect()
        })
        .filter(|w: &Vec<&str>| !w.is_empty())
        .unwrap_or_else(|| vec!["numaperf"]);
    format!("{first} (see {} --help)", command.join(" "))
}

#[allow(dead_code)] // unused where this file is included as a module (the guest payload)
fn main() -> ExitCode {
    cli_main(std::env::args_os())
}
