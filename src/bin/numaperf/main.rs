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

/// Parses `args` (the program name first) and runs the subcommand. Usage errors exit 2,
/// runtime errors 1 (127 for a command that cannot be found, as a shell does); both print
/// one line on stderr.
pub fn cli_main<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version print to stdout and succeed.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // A usage error: clap's message in one line (what it says before its usage
            // and hint paragraphs), exit 2.
            eprintln!("{}", one_line(&e.render().to_string()));
            return ExitCode::from(2);
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

/// The first paragraph of a multi-line message, its lines joined by spaces.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[allow(dead_code)] // unused where this file is included as a module (the guest payload)
fn main() -> ExitCode {
    cli_main(std::env::args_os())
}
