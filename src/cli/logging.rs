//! Log lines on stderr: the level from the command, `-v`/`-q` and
//! `RUST_LOG`; the format from `[server] log_format`.

use tracing_subscriber::EnvFilter;

use super::{Cli, Command};
use crate::config::{LogFormat, Settings};

/// Levels from quietest to loudest; a command starts at its default and
/// each `-v` or `-q` moves one step.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// The filter when `RUST_LOG` is not set. The server logs at info; the
/// client commands at warn, so their stdout and stderr stay readable.
fn level(cli: &Cli) -> &'static str {
    let start: i32 = match cli.command {
        Command::Serve { .. } => 3,
        _ => 2,
    };
    let i = (start + i32::from(cli.verbose) - i32::from(cli.quiet)).clamp(0, 5);
    LEVELS[i as usize]
}

pub fn init(cli: &Cli, settings: &Settings) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => {
            EnvFilter::try_new(v).unwrap_or_else(|_| EnvFilter::new(level(cli)))
        }
        _ => EnvFilter::new(level(cli)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = matches!(cli.command, Command::Serve { .. })
        && settings.server.log_format == LogFormat::Json;
    if json {
        builder.json().with_current_span(false).init();
    } else {
        builder
            .with_ansi(super::output::stderr_color_enabled())
            .init();
    }
}
