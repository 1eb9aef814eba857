//! Exit codes, one table for every subcommand:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | ok; also a broken pipe (`pytake ... \| head`): the reader has what it wanted |
//! | 1 | failure |
//! | 2 | usage: a bad flag, value or setting |
//! | 3 | cannot reach the server |
//! | 4 | unauthorized or forbidden |
//! | 99 | `loadtest` thresholds not met (k6's code) |
//! | 130 | `loadtest` interrupted by SIGINT (Ctrl-C) |
//! | 143 | `loadtest` interrupted by SIGTERM |
//!
//! An interrupted `loadtest` exits 128 + the signal's number, the shell's
//! convention for "stopped by signal N", rather than k6's 105: scripts,
//! `timeout(1)` and CI runners already read 130 and 143 as "cancelled", and
//! the code still says which signal it was. It wins over 99 and 1, because
//! a cut-short run proves nothing either way.

use std::process::ExitCode;

use crate::client::ClientError;
use crate::config::ConfigError;

pub const OK: u8 = 0;
pub const FAILURE: u8 = 1;
pub const USAGE: u8 = 2;
pub const UNREACHABLE: u8 = 3;
pub const UNAUTHORIZED: u8 = 4;

/// `loadtest` thresholds not met (k6's exit code).
pub const THRESHOLDS: u8 = 99;

/// `loadtest` stopped by SIGINT: 128 + 2.
pub const INTERRUPTED_SIGINT: u8 = 130;

/// `loadtest` stopped by SIGTERM: 128 + 15.
pub const INTERRUPTED_SIGTERM: u8 = 143;

/// A semantic usage error found after parsing, reported like clap's own.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Some `--threshold` failed; the message names them.
#[derive(Debug, thiserror::Error)]
#[error("thresholds not met: {0}")]
pub struct ThresholdsNotMet(pub String);

/// The signals that stop a command early, each with its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Interrupt,
    Terminate,
}

impl StopSignal {
    pub fn code(self) -> u8 {
        match self {
            StopSignal::Interrupt => INTERRUPTED_SIGINT,
            StopSignal::Terminate => INTERRUPTED_SIGTERM,
        }
    }
}

impl std::fmt::Display for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        })
    }
}

/// A command stopped by a signal; the message says what the user got.
#[derive(Debug, thiserror::Error)]
pub enum Interrupted {
    /// The first signal: the command wound down and reported what it had.
    #[error("interrupted by {0}: the summary covers the run until then")]
    WithSummary(StopSignal),
    /// Stopped before there was anything to report.
    #[error("interrupted by {0} before the load started")]
    BeforeLoad(StopSignal),
    /// A second signal while winding down: stopped at once.
    #[error("interrupted twice (last by {0}): stopped at once, without a summary")]
    Twice(StopSignal),
}

impl Interrupted {
    pub fn signal(&self) -> StopSignal {
        match self {
            Interrupted::WithSummary(s) | Interrupted::BeforeLoad(s) | Interrupted::Twice(s) => *s,
        }
    }
}

/// The exit code for an error, looking through its whole chain.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<ClientError>() {
            return match e {
                ClientError::Unreachable { .. } => UNREACHABLE,
                ClientError::Unauthorized(_)
                | ClientError::Forbidden(_)
                | ClientError::NoCredentials { .. }
                | ClientError::RemoteNeedsToken { .. } => UNAUTHORIZED,
                _ => FAILURE,
            };
        }
        if let Some(e) = cause.downcast_ref::<Interrupted>() {
            return e.signal().code();
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

/// Whether an error is, or was caused by, a write to a closed pipe
/// (`pytake tail | head`). Walks the `source()` chain and looks inside the
/// wrappers that hide their `io::Error` from it: `serde_json::Error`
/// (`to_writer`), and an `io::Error` made from another error.
pub fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::BrokenPipe
                || io.get_ref().is_some_and(|inner| is_broken_pipe(inner))
            {
                return true;
            }
        }
        if e.downcast_ref::<serde_json::Error>()
            .and_then(serde_json::Error::io_error_kind)
            == Some(std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Whether any error of an anyhow chain is a broken pipe.
pub fn is_broken_pipe_anyhow(err: &anyhow::Error) -> bool {
    err.chain().any(is_broken_pipe)
}

/// Prints the error (unless it is a broken pipe) and returns the exit code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    let code = code_for(err);
    if code != OK {
        eprintln!("error: {err:#}");
    }
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use std::io::{self, Write};

    use super::*;

    #[test]
    fn the_help_lists_every_exit_code() {
        let listed: Vec<u8> = crate::cli::EXIT_CODES
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        for code in [
            OK,
            FAILURE,
            USAGE,
            UNREACHABLE,
            UNAUTHORIZED,
            THRESHOLDS,
            INTERRUPTED_SIGINT,
        ] {
            assert!(listed.contains(&code), "{code} is not in EXIT_CODES");
        }
        assert!(crate::cli::EXIT_CODES.contains(&format!("{INTERRUPTED_SIGTERM}: by SIGTERM")));
    }

    /// A reader that has gone away.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_broken_pipe_inside_serde_json_is_success() {
        let err = serde_json::to_writer(ClosedPipe, &[1, 2]).unwrap_err();
        assert!(is_broken_pipe(&err));
        let err = anyhow::Error::from(err).context("cannot print the summary");
        assert!(is_broken_pipe_anyhow(&err));
        assert_eq!(code_for(&err), OK);
        // Wrapped in an io::Error, as a `Write` adapter would.
        let err = serde_json::to_writer(ClosedPipe, &[1, 2]).unwrap_err();
        assert!(is_broken_pipe(&io::Error::other(err)));
    }

    #[test]
    fn an_interrupted_run_exits_128_plus_the_signal() {
        let err = anyhow::Error::from(Interrupted::WithSummary(StopSignal::Terminate));
        assert_eq!(code_for(&err), 143);
        assert_eq!(
            err.to_string(),
            "interrupted by SIGTERM: the summary covers the run until then"
        );
        let err = anyhow::Error::from(Interrupted::Twice(StopSignal::Interrupt));
        assert_eq!(code_for(&err), 130);
    }

    #[test]
    fn other_errors_are_not_a_broken_pipe() {
        let err = serde_json::from_str::<u8>("x").unwrap_err();
        assert!(!is_broken_pipe(&err));
        let err = anyhow::Error::from(io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(code_for(&err), FAILURE);
    }
}
