//! Exit codes, one table for every subcommand: 0 ok, 1 failure, 2 usage,
//! 3 cannot reach the server, 4 unauthorized or forbidden, 99 thresholds not
//! met. A broken pipe is success.

use std::process::ExitCode;

use crate::client::ClientError;
use crate::config::ConfigError;

pub const OK: u8 = 0;
pub const FAILURE: u8 = 1;
pub const USAGE: u8 = 2;
pub const UNREACHABLE: u8 = 3;
pub const UNAUTHORIZED: u8 = 4;

/// A semantic usage error found after parsing, reported like clap's own.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code for an error, looking through its whole chain.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<ClientError>() {
            return match e {
                ClientError::Unreachable { .. } => UNREACHABLE,
                ClientError::Unauthorized(_)
                | ClientError::Forbidden(_)
                | ClientError::NoCredentials { .. } => UNAUTHORIZED,
                _ => FAILURE,
            };
        }
        if cause.downcast_ref::<ThresholdsNotMet>().is_some() {
            return THRESHOLDS;
        }
        if cause.downcast_ref::<ConfigError>().is_some()
            || cause.downcast_ref::<UsageError>().is_some()
        {
            return USAGE;
        }
        if is_broken_pipe(cause) {
            return OK;
        }
    }
    FAILURE
}

/// Whether an error is a write to a closed pipe (`pytake tail | head`).
pub fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Prints the error (unless it is a broken pipe) and returns the exit code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    let code = code_for(err);
    if code != OK {
        eprintln!("error: {err:#}");
    }
    ExitCode::from(code)
}

/// `loadtest` thresholds not met (k6's exit code).
pub const THRESHOLDS: u8 = 99;

/// Some `--threshold` failed; the message names them.
#[derive(Debug, thiserror::Error)]
#[error("thresholds not met: {0}")]
pub struct ThresholdsNotMet(pub String);
