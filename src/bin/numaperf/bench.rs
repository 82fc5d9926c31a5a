//! `numaperf bench: idle latency and bandwidth matrices`.

use std::process::ExitCode;

use clap::Args;

use crate::CliError;

/// Arguments of `numaperf bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {}

/// Runs `numaperf bench`.
pub fn exec(_args: &BenchArgs) -> Result<ExitCode, CliError> {
    Err(CliError::runtime("numaperf bench: not built yet"))
}
