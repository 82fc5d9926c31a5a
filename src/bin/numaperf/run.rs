//! `numaperf run: a command under a memory policy and CPU binding`.

use std::process::ExitCode;

use clap::Args;

use crate::CliError;

/// Arguments of `numaperf run`.
#[derive(Args, Debug)]
pub struct RunArgs {}

/// Runs `numaperf run`.
pub fn exec(_args: &RunArgs) -> Result<ExitCode, CliError> {
    Err(CliError::runtime("numaperf run: not built yet"))
}
