//! The `pytake` command line: clap definitions, one module per subcommand.
//! The only layer that prints.

mod completions;
pub mod docs;
pub mod exit;
mod fdlimit;
mod junit;
mod loadtest;
mod output;
mod serve;
mod spawn;
mod tail;
mod token;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Settings, Sources};
pub use output::OutputFormat;

/// pytake: realtime operations for WhatsApp Business platforms.
///
/// `pytake serve` runs the server; the other commands are the operator's
/// tools against it. Settings come from flags, then PYTAKE_* environment
/// variables, then the config file, then defaults.
#[derive(Debug, Parser)]
#[command(
    name = "pytake",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Server the client commands talk to [env: PYTAKE_SERVER] [default: http://127.0.0.1:8080]
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,

    /// Token for the client commands [env: PYTAKE_TOKEN] [default: minted from the local secret]
    #[arg(long, global = true, value_name = "JWT")]
    pub token: Option<String>,

    /// Config file [env: PYTAKE_CONFIG] [default: <config dir>/pytake/config.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Data dir: SQLite file and generated secret [env: PYTAKE_DATA_DIR] [default: <data dir>/pytake]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Output format [default: table on a terminal, json when piped]
    #[arg(long, global = true, value_enum)]
    pub output: Option<OutputFormat>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: event intake, WebSocket fan-out, history
    Serve(serve::ServeArgs),
    /// Stream events as they happen; reconnects and resumes without loss
    Tail(tail::TailArgs),
    /// WebSocket load against a server (or one it spawns), with thresholds for CI
    Loadtest(loadtest::LoadtestArgs),
    /// Create tokens
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Print a shell completion script
    Completions(completions::CompletionsArgs),
}

impl Cli {
    /// The settings sources with this command line's flags on top.
    fn sources(&self) -> Sources {
        let mut sources = Sources::from_process(self.config.clone());
        sources.flag("server", self.server.as_ref());
        sources.flag("token", self.token.as_ref());
        sources.flag(
            "data_dir",
            self.data_dir.as_ref().map(|d| d.display().to_string()),
        );
        if let Command::Serve(args) = &self.command {
            args.add_flags(&mut sources);
        }
        sources
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(&cli.sources())?;
    let output = cli.output;
    match cli.command {
        Command::Serve(args) => serve::run(args, settings).await,
        Command::Tail(args) => tail::run(args, settings, output).await,
        Command::Loadtest(args) => loadtest::run(args, settings, output).await,
        Command::Token(cmd) => token::run(cmd, settings, output),
        Command::Completions(args) => completions::run(args),
    }
}
