//! `pytake loadtest`: WebSocket load against a server (or one it spawns),
//! with thresholds that set the exit code for CI.

mod junit;
mod signals;
mod summary;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::exit::{is_broken_pipe_anyhow, Interrupted, ThresholdsNotMet, UsageError};
use super::fdlimit;
use super::output::OutputFormat;
use super::spawn::Spawned;
use crate::auth::Keys;
use crate::client::loadtest::{self, LoadConfig, LoadError, Model, Shared, Threshold};
use crate::client::TokenSource;
use crate::config::{duration, Settings};
use signals::Signals;

/// `loadtest --help`'s closing text: real command lines, and the exit codes
/// as `cli::exit` defines them.
const AFTER_HELP: &str = "\
Examples:
  # CI gate: a throwaway server; fail the job on loss or slow deliveries
  pytake loadtest --spawn --connections 1000 --rate 500 --duration 30s \\
      --threshold 'loss==0' --threshold 'p99<50ms' --junit loadtest.xml

  # Against a running server (token from PYTAKE_TOKEN), one CSV row per run
  pytake loadtest --server https://rt.example.com --output csv \\
      --connections 200 --rate 100 --duration 1m | tail -n +2 >> runs.csv

  # Three nodes of one cluster (one PostgreSQL, one Redis): connections and
  # publishers taken in turn, every event owed to its room's subscribers on
  # every node; the summary has each node's share
  pytake loadtest --server http://10.0.0.1:8080 --node http://10.0.0.2:8080 \\
      --node http://10.0.0.3:8080 --connections 3000 --rate 300 --duration 1m \\
      --threshold 'loss==0' --threshold 'duplicates==0'

Exit status:
  0    the run finished and every threshold was met
  1    the run failed, or is invalid (the generator fell behind its schedule)
  2    usage error
  3    cannot reach the server
  4    the token was refused
  99   a threshold was not met
  130  interrupted by SIGINT (Ctrl-C); 143 by SIGTERM: 128 + the signal, as shells
       report it. The summary so far is printed and a spawned server stopped;
       a second signal stops at once, without a summary.";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct LoadtestArgs {
    /// WebSocket connections: held for the whole run (closed model) or opened during it (--arrival-rate)
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub connections: usize,

    /// Time over which the connections are opened
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = duration::parse)]
    pub ramp: Duration,

    /// Events published per second (batched above 200/s)
    #[arg(long, value_name = "PER_S", default_value_t = 100.0)]
    pub rate: f64,

    /// How long events are published
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::parse_positive)]
    pub duration: Duration,

    /// Rooms the connections and events are spread over (per tenant)
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub rooms: usize,

    /// Tenants the connections and events are spread over
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub tenants: usize,

    /// Bytes of padding in each event's data
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    pub payload_bytes: usize,

    /// Concurrent POSTs in flight: enough that a slow server delays events
    /// (and shows it as latency) instead of capping the publish rate
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub publishers: usize,

    /// Open model: connections arrive at this many per second during the run
    #[arg(long, value_name = "PER_S")]
    pub arrival_rate: Option<f64>,

    /// Start a pytake serve on a free loopback port with a temporary data dir, test it, stop it
    /// (also on Ctrl-C or SIGTERM)
    #[arg(long)]
    pub spawn: bool,

    /// Another node of the server's cluster, repeatable: the load is spread over --server and every --node
    ///
    /// Connection i goes to target i % n and publisher j posts to target j % n, the targets being
    /// --server, then each --node in order. Loss and duplicates are counted across all of them: an
    /// event is owed to its room's subscribers on every node, whichever node took it. History is
    /// read from --server. Not with --spawn, which starts a single node.
    #[arg(long = "node", value_name = "URL", value_parser = parse_node, value_hint = clap::ValueHint::Url)]
    pub nodes: Vec<url::Url>,

    /// Pass/fail criterion, repeatable: 'p99<50ms', 'loss==0', 'connect_errors==0',
    /// 'deliveries_per_s>=100000'; an unmet one exits 99
    #[arg(long = "threshold", value_name = "EXPR", value_parser = parse_threshold)]
    pub thresholds: Vec<Threshold>,

    /// Also write the result as JUnit XML, for CI systems
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

fn parse_threshold(s: &str) -> Result<Threshold, String> {
    s.parse()
}

/// A node's URL: `http://` or `https://`, as `--server`.
fn parse_node(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s)
        .map_err(|e| format!("not a URL ({e}): write e.g. http://127.0.0.1:8080"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must start with http:// or https://, e.g. http://127.0.0.1:8080".into());
    }
    Ok(url)
}

impl LoadtestArgs {
    fn check(&self) -> Result<(), UsageError> {
        if self.spawn && !self.nodes.is_empty() {
            return Err(UsageError(
                "--node cannot be used with --spawn: the spawned server is a single node (SQLite and the \
                 in-process bus), so no other node sees its events; start the nodes with \
                 `pytake serve --store postgres://... --bus redis://...` and give them as --server and --node"
                    .into(),
            ));
        }
        let positive = [
            ("--rooms", self.rooms),
            ("--tenants", self.tenants),
            ("--publishers", self.publishers),
        ];
        for (flag, v) in positive {
            if v == 0 {
                return Err(UsageError(format!("{flag} must be at least 1")));
            }
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err(UsageError(
                "--rate must be 0 or more events per second".into(),
            ));
        }
        if self
            .arrival_rate
            .is_some_and(|r| !(r > 0.0 && r.is_finite()))
        {
            return Err(UsageError("--arrival-rate must be more than 0".into()));
        }
        let (soft, hard) = fdlimit::raise();
        let needed = self.connections as u64 + fdlimit::OVERHEAD;
        if soft > 0 && needed > soft {
            return Err(UsageError(format!(
                "--connections {} needs about {needed} open files, but this process may open at most {soft} \
                 (hard limit {hard}): raise it with `ulimit -n {needed}` as root, or LimitNOFILE= in a systemd unit",
                self.connections
            )));
        }
        Ok(())
    }

    /// Each target once: `server`, then every `--node`.
    fn check_targets(&self, server: &str) -> Result<(), UsageError> {
        let mut targets: Vec<url::Url> = url::Url::parse(server).into_iter().collect();
        for node in &self.nodes {
            if targets.contains(node) {
                return Err(UsageError(format!(
                    "--node {node} is already a target: give each node once (the first target is --server)"
                )));
            }
            targets.push(node.clone());
        }
        Ok(())
    }
}

/// Runs the load test and prints its summary; the error, if any, carries
/// the exit code (`cli::exit`). Installs SIGINT and SIGTERM handlers for the
/// run: the first signal winds it down, the second stops it at once.
pub async fn run(
    args: LoadtestArgs,
    settings: Settings,
    output: Option<OutputFormat>,
) -> anyhow::Result<()> {
    args.check()?;
    args.check_targets(settings.server_url())?;
    let format = OutputFormat::resolve(output);
    let signals = Signals::listen().context("cannot watch for SIGINT and SIGTERM")?;
    tokio::select! {
        // A run that has finished wins over a signal that came too late.
        biased;
        result = run_until_done(args, settings, format, &signals) => result,
        // Dropping the run kills and reaps a spawned server (`Spawned`'s Drop).
        signal = signals.second() => Err(Interrupted::Twice(signal).into()),
    }
}

async fn run_until_done(
    args: LoadtestArgs,
    settings: Settings,
    format: OutputFormat,
    signals: &Signals,
) -> anyhow::Result<()> {
    let spawned = match args.spawn {
        true => tokio::select! {
            spawned = Spawned::start(&[]) => Some(spawned?),
            signal = signals.first() => return Err(Interrupted::BeforeLoad(signal).into()),
        },
        false => None,
    };
    let (server, tokens) = match &spawned {
        Some(s) => (
            s.url.clone(),
            // The spawned server has the default token rules (none of
            // the caller's settings reach it).
            TokenSource::Local(Box::new(Keys::new(s.secret.as_bytes()))),
        ),
        None => (
            settings.server_url().to_string(),
            TokenSource::from_settings(&settings)?,
        ),
    };
    let cfg = LoadConfig {
        server: url::Url::parse(&server).with_context(|| format!("bad server URL {server}"))?,
        nodes: args.nodes.clone(),
        tokens,
        connections: args.connections,
        ramp: args.ramp,
        rate: args.rate,
        duration: args.duration,
        rooms: args.rooms,
        tenants: args.tenants,
        payload_bytes: args.payload_bytes,
        publishers: args.publishers,
        model: match args.arrival_rate {
            Some(per_second) => Model::Open { per_second },
            None => Model::Closed,
        },
    };
    let shared = loadtest::prepare(&cfg);
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| watch(shared.clone(), args.connections));
    let load = loadtest::run(&cfg, shared.clone());
    tokio::pin!(load);
    let result = tokio::select! {
        result = &mut load => result,
        _ = signals.first() => {
            shared.interrupt();
            load.await
        }
    };
    if let Some((bar, task)) = progress {
        task.abort();
        bar.finish_and_clear();
    }
    let stopped = match spawned {
        Some(s) => s.stop().await,
        None => Ok(()),
    };
    // Unwrapped, because `transparent` hides the ClientError (and with it
    // the exit code) from the error chain.
    let mut report = match result {
        Ok(report) => report,
        Err(LoadError::Client(e)) => return Err(e.into()),
        Err(e) => return Err(e.into()),
    };
    if let Err(log) = stopped {
        eprintln!("pytake loadtest: the spawned server did not stop cleanly; its log:\n{log}");
    }
    report.thresholds = args.thresholds.iter().map(|t| t.check(&report)).collect();
    // A reader that left (`| head`) has what it wanted; the exit code
    // still says how the run went.
    if let Err(e) = summary::write(&report, format, &mut std::io::stdout().lock()) {
        if !is_broken_pipe_anyhow(&e) {
            return Err(e.context("cannot print the summary"));
        }
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, junit::render(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if report.interrupted {
        let signal = signals
            .received()
            .unwrap_or(super::exit::StopSignal::Interrupt);
        return Err(Interrupted::WithSummary(signal).into());
    }
    if let Some(reason) = &report.invalid_reason {
        anyhow::bail!("the run is invalid: {reason}");
    }
    let failed: Vec<String> = report
        .thresholds
        .iter()
        .filter(|v| !v.ok)
        .map(|v| format!("{} (was {})", v.threshold, summary::number(v.actual)))
        .collect();
    if !failed.is_empty() {
        return Err(ThresholdsNotMet(failed.join(", ")).into());
    }
    Ok(())
}

/// A progress line on stderr, refreshed four times a second.
fn watch(shared: Arc<Shared>, connections: usize) -> (ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").expect("static template"),
    );
    let task = tokio::spawn({
        let bar = bar.clone();
        async move {
            loop {
                let p99 = shared.latency().value_at_quantile(0.99) as f64 / 1000.0;
                bar.set_message(format!(
                    "connected {}/{connections} (failed {})  published {}  delivered {}/{}  p99 {p99:.1} ms",
                    shared.connected.load(Ordering::Relaxed),
                    shared.failed.load(Ordering::Relaxed),
                    shared.published.load(Ordering::Relaxed),
                    shared.received.load(Ordering::Relaxed),
                    shared.expected(),
                ));
                bar.tick();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    });
    (bar, task)
}
