//! `numaperf stat: pages per node of processes and the system's counters`.

use std::process::ExitCode;

use clap::Args;

use crate::CliError;

/// Arguments of `numaperf stat`.
#[derive(Args, Debug)]
pub struct StatArgs {}

/// Runs `numaperf stat`.
pub fn exec(_args: &StatArgs) -> Result<ExitCode, CliError> {
    Err(CliError::runtime("numaperf stat: not built yet"))
}
