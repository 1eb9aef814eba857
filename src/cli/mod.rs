//! The `pytake` command line: clap definitions, one module per subcommand.
//! The only layer that prints.

mod alerts;
mod completions;
mod config;
pub mod docs;
pub mod exit;
mod export;
mod fdlimit;
mod junit;
mod loadtest;
mod logging;
mod metrics;
pub mod output;
mod presence;
mod queue;
mod serve;
mod spawn;
mod status;
mod tail;
mod token;
mod values;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::flags::{
    AuthFlags, BusFlags, ClientFlags, CommandFlags, DataDirFlag, GatewayFlags, MetricsFlags,
    QueueFlags, ServerFlags, StoreFlags,
};
use crate::config::{Loaded, Sources};
pub use output::OutputFormat;
use output::{ColorWhen, Output, OutputWithCsv};

/// The exit codes, shown at the end of every command's help.
pub const EXIT_CODES: &str = "\
Exit status:
  0   ok
  1   failure
  2   usage: a bad flag, variable or config file
  3   cannot reach the server
  4   unauthorized or forbidden
  99  loadtest thresholds not met
  130 loadtest interrupted by SIGINT (143: by SIGTERM), summary printed
A broken pipe (`pytake tail | head`) is success.";

/// pytake: realtime operations for WhatsApp Business platforms.
///
/// `pytake serve` runs the server; the other commands are the operator's
/// tools against it. Settings come from flags, then PYTAKE_* environment
/// variables, then the config file, then defaults.
#[derive(Debug, Parser)]
#[command(
    name = "pytake",
    version = crate::build_info::VERSION_LINE,
    long_version = crate::build_info::long_version(),
    propagate_version = true,
    max_term_width = 100,
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Config file [env: PYTAKE_CONFIG] [default: <user config dir>/pytake/config.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub data_dir: DataDirFlag,

    /// Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it), always, never
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub color: ColorWhen,

    /// More log output on stderr, a level per -v (serve starts at info, the others at warn; RUST_LOG overrides)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less log output on stderr, a level per -q, down to none
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: event intake, WebSocket fan-out, history
    #[command(after_help = serve::AFTER_HELP)]
    Serve {
        #[command(flatten)]
        args: serve::ServeArgs,
        #[command(flatten)]
        server: ServerFlags,
        #[command(flatten)]
        auth: AuthFlags,
        #[command(flatten)]
        gateway: GatewayFlags,
        #[command(flatten)]
        store: StoreFlags,
        #[command(flatten)]
        bus: BusFlags,
        #[command(flatten)]
        metrics: MetricsFlags,
        #[command(flatten)]
        queue: QueueFlags,
    },
    /// Stream events as they happen; reconnects and resumes without loss
    Tail {
        #[command(flatten)]
        args: tail::TailArgs,
        #[command(flatten)]
        client: ClientFlags,
        #[command(flatten)]
        output: Output,
    },
    /// Who of a tenant is online (status, connections, since); --watch follows joins and leaves
    Presence {
        #[command(flatten)]
        args: presence::PresenceArgs,
        #[command(flatten)]
        client: ClientFlags,
        #[command(flatten)]
        output: OutputWithCsv,
    },
    /// One screen on a server's health: version, uptime, store, bus, connections, events/s
    Status {
        #[command(flatten)]
        args: status::StatusArgs,
        #[command(flatten)]
        client: ClientFlags,
        #[command(flatten)]
        output: Output,
    },
    /// Dashboard figures: KPIs, time series, campaigns, this node; tables, JSON or CSV
    Metrics(metrics::MetricsArgs),
    /// Export the time series, events or a campaign report, streamed to a file or stdout
    Export(export::ExportArgs),
    /// The job queue: stats, jobs, dead letters; retry, purge, enqueue
    Queue(queue::QueueArgs),
    /// Alerts: what fires, incidents, rules, silences; acknowledge, add, silence
    Alerts(alerts::AlertsArgs),
    /// WebSocket load against a server (or one it spawns), with thresholds for CI
    Loadtest {
        #[command(flatten)]
        args: loadtest::LoadtestArgs,
        #[command(flatten)]
        client: ClientFlags,
        #[command(flatten)]
        output: OutputWithCsv,
    },
    /// Create tokens
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Show, check and write the configuration
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Print a shell completion script
    #[command(after_help = "\
Examples:
  pytake completions bash > ~/.local/share/bash-completion/completions/pytake
  pytake completions zsh > ~/.zfunc/_pytake       # with fpath+=(~/.zfunc) in .zshrc
  pytake completions fish > ~/.config/fish/completions/pytake.fish

The same scripts are checked in under completions/, and man pages under man/.")]
    Completions(completions::CompletionsArgs),
}

impl Command {
    /// Commands that must work while the config file is broken: the ones
    /// that check it or write a new one, and completions.
    fn ignores_config_file(&self) -> bool {
        matches!(
            self,
            Command::Config(config::ConfigCommand::Check(_) | config::ConfigCommand::Init(_))
                | Command::Completions(_)
        )
    }

    /// The sections whose settings this command reads (their variables
    /// are parsed and their values checked; no others).
    fn sections(&self) -> &'static [&'static str] {
        match self {
            Command::Serve { .. } => &[
                "server", "auth", "gateway", "store", "bus", "metrics", "queue", "alerts",
                "webhooks", "slack", "smtp",
            ],
            // The data dir and [auth] for a token minted from the local secret.
            Command::Tail { .. }
            | Command::Presence { .. }
            | Command::Status { .. }
            | Command::Loadtest { .. }
            | Command::Metrics(_)
            | Command::Export(_)
            | Command::Queue(_)
            | Command::Alerts(_) => &["server", "auth", "client"],
            Command::Token(_) => &["server", "auth"],
            Command::Config(config::ConfigCommand::Show(_)) => &crate::config::ALL_SECTIONS,
            Command::Config(_) | Command::Completions(_) => &[],
        }
    }

    /// The settings flag groups this command has, for the loader.
    fn flags<'a>(&self, matches: &'a ArgMatches, global: &Cli) -> CommandFlags<'a> {
        let flags = CommandFlags::new(matches, self.sections()).group(&global.data_dir);
        match self {
            Command::Serve {
                server,
                auth,
                gateway,
                store,
                bus,
                metrics,
                queue,
                ..
            } => flags
                .group(server)
                .group(auth)
                .group(gateway)
                .group(store)
                .group(bus)
                .group(metrics)
                .group(queue),
            Command::Tail { client, .. }
            | Command::Presence { client, .. }
            | Command::Status { client, .. }
            | Command::Loadtest { client, .. } => flags.group(client),
            Command::Metrics(args) => flags.group(args.client()),
            Command::Export(args) => flags.group(args.client()),
            Command::Queue(args) => flags.group(args.client()),
            Command::Alerts(args) => flags.group(args.client()),
            Command::Token(cmd) => flags.group(cmd.auth()),
            Command::Config(_) | Command::Completions(_) => flags,
        }
    }
}

/// The clap model as users see it: every settings flag's variable and
/// default in its help. The variables themselves are read by the settings
/// loader alone (see [`crate::config::flags::for_users`]).
pub fn command() -> clap::Command {
    crate::config::flags::for_users(Cli::command())
}

/// The innermost subcommand's matches, where its flags (and the global
/// ones, which clap propagates) are.
fn leaf(matches: &ArgMatches) -> &ArgMatches {
    match matches.subcommand() {
        Some((_, sub)) => leaf(sub),
        None => matches,
    }
}

/// Everything `main` does: check the environment, parse, load settings,
/// set up colour and logs, run, and map the result to an exit code.
pub fn main() -> ExitCode {
    output::set_color(output::color_from_args(std::env::args_os()));
    let matches = command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    output::set_color(cli.color);
    let sources = Sources::from_process(cli.config.clone());
    let flags = cli.command.flags(leaf(&matches), &cli);
    let mut load_from = sources.clone();
    if cli.command.ignores_config_file() {
        load_from.file = None;
    }
    let loaded = match crate::config::load(&load_from, Some(&flags)) {
        Ok(loaded) => loaded,
        Err(e) => return exit::report(&e.into()),
    };
    logging::init(&cli, &loaded.settings);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(run(cli, loaded, sources)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => exit::report(&e),
    }
}

/// Runs the parsed command line with its settings.
pub async fn run(cli: Cli, loaded: Loaded, sources: Sources) -> anyhow::Result<()> {
    let settings = loaded.settings.clone();
    match cli.command {
        Command::Serve { args, .. } => serve::run(args, settings).await,
        Command::Tail { args, output, .. } => tail::run(args, settings, output.output).await,
        Command::Status { args, output, .. } => status::run(args, settings, output.output).await,
        Command::Presence { args, output, .. } => {
            presence::run(args, settings, output.output).await
        }
        Command::Loadtest { args, output, .. } => {
            loadtest::run(args, settings, output.output).await
        }
        Command::Metrics(args) => metrics::run(args, settings).await,
        Command::Export(args) => export::run(args, settings).await,
        Command::Queue(args) => queue::run(args, settings).await,
        Command::Alerts(args) => alerts::run(args, settings).await,
        Command::Token(cmd) => token::run(cmd, settings),
        Command::Config(cmd) => config::run(cmd, &loaded, &sources),
        Command::Completions(args) => completions::run(args),
    }
}
