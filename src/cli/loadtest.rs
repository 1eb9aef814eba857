//! `pytake loadtest`: WebSocket load against a server (or one it spawns),
//! with thresholds that set the exit code for CI.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, Table};
use indicatif::{ProgressBar, ProgressStyle};

use super::exit::{ThresholdsNotMet, UsageError};
use super::output::OutputFormat;
use super::spawn::Spawned;
use super::{fdlimit, junit};
use crate::auth::Keys;
use crate::client::loadtest::{
    self,
    report::{LatencyReport, Report},
    LoadConfig, LoadError, Model, Shared, Threshold,
};
use crate::client::TokenSource;
use crate::config::Settings;

#[derive(Debug, Args)]
pub struct LoadtestArgs {
    /// WebSocket connections: held for the whole run (closed model) or opened during it (--arrival-rate)
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub connections: usize,

    /// Time over which the connections are opened
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub ramp: Duration,

    /// Events published per second (batched above 200/s)
    #[arg(long, value_name = "PER_S", default_value_t = 100.0)]
    pub rate: f64,

    /// How long events are published
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
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
    #[arg(long)]
    pub spawn: bool,

    /// Pass/fail criterion, repeatable: 'p99<50ms', 'loss==0', 'connect_errors==0',
    /// 'deliveries_per_s>=100000'; an unmet one exits 99
    #[arg(long = "threshold", value_name = "EXPR", value_parser = parse_threshold)]
    pub thresholds: Vec<Threshold>,

    /// Also write the result as JUnit XML, for CI systems
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration like 20s: {e}"))
}

fn parse_threshold(s: &str) -> Result<Threshold, String> {
    s.parse()
}

impl LoadtestArgs {
    fn check(&self) -> Result<(), UsageError> {
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
        if self.duration.is_zero() {
            return Err(UsageError("--duration must be longer than 0s".into()));
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
}

pub async fn run(
    args: LoadtestArgs,
    settings: Settings,
    output: Option<OutputFormat>,
) -> anyhow::Result<()> {
    args.check()?;
    let format = OutputFormat::resolve(output);
    let spawned = match args.spawn {
        true => Some(Spawned::start(&[]).await?),
        false => None,
    };
    let (server, tokens) = match &spawned {
        Some(s) => (
            s.url.clone(),
            // The spawned server inherits the PYTAKE_TOKEN_* settings.
            TokenSource::Local(Box::new(Keys::with_settings(
                s.secret.as_bytes(),
                &settings.tokens(),
            ))),
        ),
        None => (
            settings.server_url().to_string(),
            TokenSource::from_settings(&settings)?,
        ),
    };
    let cfg = LoadConfig {
        server: url::Url::parse(&server).with_context(|| format!("bad server URL {server}"))?,
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
    let result = loadtest::run(&cfg, shared).await;
    if let Some((bar, task)) = progress {
        task.abort();
        bar.finish_and_clear();
    }
    let stopped = match spawned {
        Some(s) => s.stop().await,
        None => Ok(()),
    };
    let mut report = match result {
        Ok(report) => report,
        Err(LoadError::Client(e)) => return Err(e.into()),
        Err(e) => return Err(e.into()),
    };
    if let Err(log) = stopped {
        eprintln!("pytake loadtest: the spawned server did not stop cleanly; its log:\n{log}");
    }
    report.thresholds = args.thresholds.iter().map(|t| t.check(&report)).collect();
    match format {
        OutputFormat::Json => {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer(&mut out, &report)?;
            writeln!(out)?;
        }
        _ => println!("{}", table(&report)),
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, junit::render(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(reason) = &report.invalid_reason {
        anyhow::bail!("the run is invalid: {reason}");
    }
    let failed: Vec<String> = report
        .thresholds
        .iter()
        .filter(|v| !v.ok)
        .map(|v| format!("{} (was {})", v.threshold, number(v.actual)))
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

/// A number without noise: integers as integers, others with 2 decimals.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

fn table(r: &Report) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(vec!["", "result"]);
    let mut row = |k: &str, v: String| {
        t.add_row(vec![Cell::new(k), Cell::new(v)]);
    };
    row(
        "run",
        if r.valid {
            "valid".into()
        } else {
            format!("INVALID: {}", r.invalid_reason.clone().unwrap_or_default())
        },
    );
    row(
        "load",
        format!(
            "{} connections ({}), {}/s for {}s, {} room(s) x {} tenant(s), {} B payload",
            r.config.connections,
            r.config.model,
            number(r.config.rate),
            number(r.config.duration_s),
            r.config.rooms,
            r.config.tenants,
            r.config.payload_bytes
        ),
    );
    row(
        "connections",
        format!(
            "{} established, {} failed, all in {:.2}s ({} source address(es))",
            r.connections.established,
            r.connections.failed,
            r.connections.time_to_connect_all_s,
            r.connections.source_addresses
        ),
    );
    row(
        "events",
        format!(
            "{} published, {} failed, {:.0}/s accepted",
            r.events.published, r.events.publish_failed, r.events.accepted_per_s
        ),
    );
    row(
        "deliveries",
        format!(
            "{} of {} expected, {} lost, {} duplicated, {:.0}/s",
            r.deliveries.received,
            r.deliveries.expected,
            r.deliveries.lost,
            r.deliveries.duplicated,
            r.deliveries.per_second
        ),
    );
    let percentiles = |l: &LatencyReport| {
        format!(
            "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.p99_9, l.max
        )
    };
    row("latency (ms)", percentiles(&r.latency_ms));
    if r.events.ack_latency_ms.samples > 0 {
        row("publish ack (ms)", percentiles(&r.events.ack_latency_ms));
    }
    if let Some(per) = r.server_memory.per_connection_bytes {
        row(
            "server memory",
            format!("{:.1} KiB per connection", per / 1024.0),
        );
    }
    row(
        "generator",
        format!(
            "max schedule lag {:.1} ms, backpressure {:.0} ms",
            r.generator.max_schedule_lag_ms, r.generator.backpressure_ms
        ),
    );
    if !r.errors.is_empty() {
        let errors: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        row("errors", errors.join(", "));
    }
    for v in &r.thresholds {
        row(
            &format!("threshold {}", v.threshold),
            format!(
                "{} (actual {})",
                if v.ok { "ok" } else { "FAILED" },
                number(v.actual)
            ),
        );
    }
    t
}
