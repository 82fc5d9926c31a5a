//! `numaperf info: the machine as numactl --hardware and --show see it, and more`.

use std::process::ExitCode;

use clap::Args;

use crate::CliError;

/// Arguments of `numaperf info`.
#[derive(Args, Debug)]
pub struct InfoArgs {}

/// Runs `numaperf info`.
pub fn exec(_args: &InfoArgs) -> Result<ExitCode, CliError> {
    Err(CliError::runtime("numaperf info: not built yet"))
}
