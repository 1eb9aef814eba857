//! `pytake export`: the dashboard's time series (the default), a time
//! range of events, or a campaign's report, to stdout or `-o FILE`.
//! Streamed: each chunk is written as it arrives, so an export of millions
//! of events takes no more memory than one of ten. A file appears only
//! once the export is whole (see [`sink`]).

mod sink;

use std::io::IsTerminal;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand};

use self::sink::{Progress, Sink};
use super::exit::UsageError;
use super::metrics::period_parser;
use super::tail::since::{parse_since, parse_until, Since, Until};
use crate::client::{ApiClient, BrokeOff, EventExport, ExportBody, TokenSource};
use crate::config::flags::ClientFlags;
use crate::config::Settings;
use crate::protocol::dashboard::{ExportFormat, ExportRequest};
use crate::protocol::events::validate_event_type;
use crate::protocol::metrics::Period;
use crate::protocol::rooms::{validate_room, validate_tenant};

const EXIT_STATUS: &str = "\
With -o FILE the export goes to a temporary file beside FILE, renamed to FILE
once complete: if it fails half-way, nothing is left at FILE (an older FILE
stays as it was) and the exit status says so.

Exit status: 0 ok, 1 failure (the export broke off, the server refused the
request, such as an unknown metric, with its reason printed), 2 usage,
3 cannot reach the server, 4 unauthorized or forbidden (another tenant)";

fn export_help() -> String {
    format!(
        "\
Examples:
  pytake export --period 7d --metrics messages_sent,messages_failed -o week.csv
  pytake export --format ndjson --period 1h --tenant acme | jq .messages_sent
  pytake export events --since 24h --type MessageFailed -o failures.ndjson
  pytake export events --since 2026-12-01T00:00:00Z --until 2026-12-02T00:00:00Z -o day.ndjson
  pytake export campaign CAMP-42 --tenant acme -o camp-42.json

{EXIT_STATUS}"
    )
}

fn sub_help(examples: &str) -> String {
    format!("Examples:\n{examples}\n\n{EXIT_STATUS}")
}

/// `pytake export [metrics|events|campaign]`: flags given without a kind
/// are the metrics export's.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, after_help = export_help())]
pub struct ExportArgs {
    #[command(subcommand)]
    pub what: Option<What>,
    #[command(flatten)]
    pub metrics: MetricsExport,
}

#[derive(Debug, Subcommand)]
pub enum What {
    /// The dashboard's time series: a row per bucket, a column per metric (the default)
    #[command(after_help = sub_help("  pytake export metrics --period 30d --format json -o month.json"))]
    Metrics(MetricsExport),
    /// Stored events of a time range, in id order, of any volume
    #[command(after_help = sub_help("  pytake export events --since 10m                     the last 10 minutes, NDJSON on stdout\n  pytake export events --since 7d --type CampaignUpdate --room campaign:CAMP-42 -o camp.ndjson\n  pytake export events --since 2026-12-01T00:00:00Z --until 2026-12-02T00:00:00Z -o day.ndjson\n\n--since and --until count by when the server received an event."))]
    Events(EventsExport),
    /// A campaign's report: its figures, its performance and its events, one JSON document
    #[command(after_help = sub_help("  pytake export campaign CAMP-42 --tenant acme -o camp-42.json"))]
    Campaign(CampaignExport),
}

/// Where the export goes.
#[derive(Debug, Args)]
pub struct Destination {
    /// Write to FILE (complete, or not at all) instead of stdout
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub file: Option<PathBuf>,

    #[command(flatten)]
    pub client: ClientFlags,
}

#[derive(Debug, Args)]
pub struct MetricsExport {
    /// csv, json or ndjson [default: csv]
    #[arg(long, value_name = "FORMAT", value_parser = format_parser(&["csv", "json", "ndjson"]))]
    pub format: Option<ExportFormat>,

    /// 1h, 24h, 7d or 30d
    #[arg(long, value_name = "PERIOD", default_value = "24h", value_parser = period_parser())]
    pub period: Period,

    /// Metric to export, repeatable or comma-separated [default: the dashboard's figures]
    #[arg(
        long = "metrics",
        visible_alias = "metric",
        short = 'm',
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub metrics: Vec<String>,

    /// Tenant (admin tokens; other tokens export their own) [default: every tenant, or the token's]
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,

    #[command(flatten)]
    pub to: Destination,
}

#[derive(Debug, Args)]
pub struct EventsExport {
    /// From what arrived this long ago (10m, 2h) or at this RFC 3339 time [default: the first event]
    #[arg(long, value_name = "DURATION|TIME", value_parser = parse_since_time)]
    pub since: Option<Since>,

    /// Up to what arrived this long ago or at this RFC 3339 time, excluded [default: now]
    #[arg(long, value_name = "DURATION|TIME", value_parser = parse_until)]
    pub until: Option<Until>,

    /// Only events of this type, repeatable (MessageSent, CampaignUpdate, ...)
    #[arg(long = "type", short = 't', value_name = "TYPE")]
    pub types: Vec<String>,

    /// Only events of this room, repeatable (alerts, campaign:ID, ...)
    #[arg(long = "room", short = 'r', value_name = "ROOM")]
    pub rooms: Vec<String>,

    /// Tenant (admin tokens; other tokens export their own) [default: every tenant, or the token's]
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,

    /// ndjson (an event per line), csv or json (one array)
    #[arg(long, value_name = "FORMAT", default_value = "ndjson",
          value_parser = format_parser(&["ndjson", "csv", "json"]))]
    pub format: ExportFormat,

    #[command(flatten)]
    pub to: Destination,
}

#[derive(Debug, Args)]
pub struct CampaignExport {
    /// The campaign's id
    pub id: String,

    /// The campaign's tenant (required with an admin token) [default: the token's]
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,

    #[command(flatten)]
    pub to: Destination,
}

fn format_parser(allowed: &'static [&'static str]) -> impl TypedValueParser<Value = ExportFormat> {
    PossibleValuesParser::new(allowed).map(|s| ExportFormat::parse(&s).expect("a listed format"))
}

/// `--since` of an export: a time, never an event id (the export's range
/// is of times).
fn parse_since_time(text: &str) -> Result<Since, String> {
    match parse_since(text)? {
        Since::Id(_) => Err(
            "expected a duration ago (10m, 2h) or an RFC 3339 time (2026-12-02T10:00:00Z); \
             an export's range is of times, not event ids"
                .into(),
        ),
        since => Ok(since),
    }
}

impl ExportArgs {
    /// The client flags of the level the user typed them at.
    pub fn client(&self) -> &ClientFlags {
        match &self.what {
            None => &self.metrics.to.client,
            Some(What::Metrics(m)) => &m.to.client,
            Some(What::Events(e)) => &e.to.client,
            Some(What::Campaign(c)) => &c.to.client,
        }
    }
}

fn check_tenant(tenant: &Option<String>) -> Result<(), UsageError> {
    match tenant {
        Some(t) => validate_tenant(t).map_err(|e| UsageError(format!("--tenant: {e}"))),
        None => Ok(()),
    }
}

pub async fn run(args: ExportArgs, settings: Settings) -> anyhow::Result<()> {
    let what = args.what.unwrap_or(What::Metrics(args.metrics));
    let api = || -> anyhow::Result<ApiClient> {
        Ok(ApiClient::new(
            settings.server_url(),
            TokenSource::from_settings(&settings)?,
        )?)
    };
    match what {
        What::Metrics(m) => {
            check_tenant(&m.tenant)?;
            let format = m.format.unwrap_or_default();
            let request = ExportRequest {
                format,
                period: m.period,
                metrics: m.metrics,
                tenant_id: m.tenant,
            };
            let api = api()?;
            stream(&m.to, format, api.export_metrics(&request)).await
        }
        What::Events(e) => {
            check_tenant(&e.tenant)?;
            for t in &e.types {
                validate_event_type(t).map_err(|err| UsageError(format!("--type: {err}")))?;
            }
            for r in &e.rooms {
                validate_room(r).map_err(|err| UsageError(format!("--room: {err}")))?;
            }
            let now = Utc::now();
            let since = e.since.as_ref().and_then(|s| s.time(now));
            let until = e.until.as_ref().map(|u| u.at(now));
            check_range(since, until)?;
            let params = EventExport {
                since,
                until,
                event_types: e.types,
                rooms: e.rooms,
                tenant_id: e.tenant,
                format: e.format,
            };
            let api = api()?;
            stream(&e.to, e.format, api.export_events(&params)).await
        }
        What::Campaign(c) => {
            check_tenant(&c.tenant)?;
            let api = api()?;
            stream(
                &c.to,
                ExportFormat::Json,
                api.export_campaign(&c.id, c.tenant.as_deref()),
            )
            .await
        }
    }
}

/// `--until` must come after `--since`, or the export could only be empty.
fn check_range(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<(), UsageError> {
    match (since, until) {
        (Some(s), Some(u)) if u <= s => Err(UsageError(format!(
            "--until {} is not after --since {}: the export would be empty",
            u.to_rfc3339(),
            s.to_rfc3339()
        ))),
        _ => Ok(()),
    }
}

/// Opens the destination, then the request, then copies chunk by chunk.
/// Ctrl-C stops it like a failure: the partial file is removed.
async fn stream(
    to: &Destination,
    format: ExportFormat,
    request: impl std::future::Future<Output = Result<ExportBody, crate::client::ClientError>>,
) -> anyhow::Result<()> {
    let mut sink = Sink::open(to.file.as_deref())?;
    let target = sink.describe();
    let copy = async {
        let mut body = request.await?;
        let show = to.file.is_some() && std::io::stderr().is_terminal();
        let mut progress = Progress::new(show, format, body.size());
        let copied = async {
            while let Some(chunk) = body.chunk().await? {
                sink.write(&chunk)?;
                progress.add(&chunk);
            }
            anyhow::Ok(())
        }
        .await;
        progress.clear();
        copied?;
        if show {
            let rows = if progress.counts_rows() {
                format!(" ({} rows)", progress.rows())
            } else {
                String::new()
            };
            eprintln!("wrote {} bytes{rows} to {target}", progress.bytes());
        }
        anyhow::Ok(())
    };
    let interrupted = tokio::signal::ctrl_c();
    let result = tokio::select! {
        biased;
        _ = interrupted => Err(anyhow::anyhow!("interrupted")),
        result = copy => result,
    };
    match result {
        Ok(()) => sink.finish(),
        // The temporary file goes with the sink.
        Err(e) if to.file.is_some() => Err(e.context(format!("nothing was written to {target}"))),
        Err(e) if e.chain().any(|c| c.is::<BrokeOff>()) => {
            Err(e.context("the export written to stdout is incomplete"))
        }
        Err(e) => Err(e),
    }
}
