//! `numaperf migrate: a process's pages from some nodes to others`.

use std::process::ExitCode;

use clap::Args;

use crate::CliError;

/// Arguments of `numaperf migrate`.
#[derive(Args, Debug)]
pub struct MigrateArgs {}

/// Runs `numaperf migrate`.
pub fn exec(_args: &MigrateArgs) -> Result<ExitCode, CliError> {
    Err(CliError::runtime("numaperf migrate: not built yet"))
}
