//! The command's one error type: what went wrong in one line, and the exit code it means.

use std::fmt;

use numaperf::NumaError;

/// Why a subcommand failed; [`CliError::exit_code`] is what the process exits with.
#[derive(Debug)]
pub enum CliError {
    /// Bad arguments (a malformed node list, an absent node, an empty mask): exit 2.
    Usage(String),
    /// The work itself failed (a syscall, a file, a missing privilege): exit 1.
    Runtime(String),
    /// The command to run was not found or cannot be executed: exit 127, as a shell does.
    CommandNotFound(String),
}

impl CliError {
    /// A usage error (exit 2).
    pub fn usage(msg: impl Into<String>) -> Self {
        CliError::Usage(msg.into())
    }

    /// A runtime error (exit 1).
    pub fn runtime(msg: impl Into<String>) -> Self {
        CliError::Runtime(msg.into())
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Runtime(_) => 1,
            CliError::CommandNotFound(_) => 127,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Runtime(m) | CliError::CommandNotFound(m) => {
                f.write_str(m)
            }
        }
    }
}

impl From<NumaError> for CliError {
    fn from(e: NumaError) -> Self {
        CliError::Runtime(e.to_string())
    }
}
