//! `pytake metrics`: the dashboard's figures in a terminal (seed 000's
//! KPIs, the time series, seed 003's campaign analytics, the node's
//! health), as tables for people, or the API's JSON and CSV for scripts.
//! `--watch` refreshes in place like `watch(1)`, or appends one refresh
//! after another when the output is not a terminal, so a script can read
//! a stream of them.

mod csv;
mod fetch;
mod render;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand};

use self::fetch::{no_campaign_csv, Data};
use super::exit::UsageError;
use super::output::{color_enabled, OutputFormat, OutputWithCsv};
use crate::client::{ApiClient, TokenSource};
use crate::config::flags::ClientFlags;
use crate::config::{duration, Settings};
use crate::protocol::metrics::{valid_names, Period};
use crate::protocol::rooms::validate_tenant;

const EXIT_STATUS: &str = "\
Exit status: 0 ok (Ctrl-C ends --watch with 0), 1 failure (a request the server
refuses, such as an unknown metric, prints its reason), 2 usage, 3 cannot reach
the server, 4 unauthorized or forbidden (another tenant's figures)";

fn metrics_help() -> String {
    format!(
        "\
Examples:
  pytake metrics                                 the KPIs and each subsystem (overview)
  pytake metrics --tenant acme --watch 2s        acme's KPIs, refreshed in place
  pytake metrics series --period 1h --metric messages_sent,messages_failed
  pytake metrics campaigns --output csv > campaigns.csv
  pytake metrics campaign CAMP-42                progress, hours, top errors, pace
  pytake metrics system --output json | jq .system.cpu_usage

Tables on a terminal, the API's JSON (one line per refresh) when piped.

{EXIT_STATUS}"
    )
}

fn series_help() -> String {
    format!(
        "\
Examples:
  pytake metrics series                                 the dashboard's figures, last 24h
  pytake metrics series --period 1h --metric messages_sent --metric messages_failed
  pytake metrics series --period 7d --metric erp_latency_p95_ms --output csv > erp.csv

Periods and buckets: 1h (1-minute buckets), 24h (15 minutes), 7d (1 hour),
30d (6 hours). Metrics: {}

{EXIT_STATUS}",
        valid_names()
    )
}

fn view_help(examples: &str) -> String {
    format!("Examples:\n{examples}\n\n{EXIT_STATUS}")
}

/// `pytake metrics [VIEW]`: flags given without a view are the overview's.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, after_help = metrics_help())]
pub struct MetricsArgs {
    #[command(subcommand)]
    pub view: Option<View>,
    #[command(flatten)]
    pub common: Common,
}

/// The views.
#[derive(Debug, Subcommand)]
pub enum View {
    /// The KPIs (messages, conversations, campaigns, calls, AI, ERP, events) and each subsystem (the default)
    #[command(after_help = view_help("  pytake metrics overview --tenant acme\n  pytake metrics overview --output csv\n  pytake metrics overview --watch 5s --output json >> kpis.jsonl"))]
    Overview(Common),
    /// A time series: one row per bucket, one column per metric
    #[command(after_help = series_help())]
    Series(SeriesArgs),
    /// Every campaign's progress and health, with the tenant's summary
    #[command(after_help = view_help("  pytake metrics campaigns --tenant acme\n  pytake metrics campaigns --limit 10 --watch 2s\n  pytake metrics campaigns --output csv > campaigns.csv"))]
    Campaigns(CampaignsArgs),
    /// One campaign: progress, health, call outcomes, hourly analysis, top errors, send timing
    #[command(after_help = view_help("  pytake metrics campaign CAMP-42 --tenant acme\n  pytake metrics campaign CAMP-42 --output json | jq .performance.top_errors"))]
    Campaign(CampaignArgs),
    /// This node: CPU, memory, RSS, connections, the store's pool, uptime, subsystems
    #[command(after_help = view_help("  pytake metrics system\n  pytake metrics system --watch 1s"))]
    System(Common),
}

/// The flags of every view.
#[derive(Debug, Args)]
pub struct Common {
    /// Tenant (admin tokens; other tokens see their own) [default: every tenant, or the token's]
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,

    /// Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another
    /// when piped
    #[arg(long, value_name = "DURATION", value_parser = duration::parse_positive)]
    pub watch: Option<Duration>,

    #[command(flatten)]
    pub client: ClientFlags,

    #[command(flatten)]
    pub output: OutputWithCsv,
}

#[derive(Debug, Args)]
pub struct SeriesArgs {
    /// 1h, 24h, 7d or 30d [default: 24h]
    #[arg(long, value_name = "PERIOD", value_parser = period_parser())]
    pub period: Option<Period>,

    /// Metric to show, repeatable or comma-separated [default: the dashboard's figures]
    #[arg(
        long = "metric",
        visible_alias = "metrics",
        short = 'm',
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub metrics: Vec<String>,

    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct CampaignsArgs {
    /// Show the N most recent campaigns [default: 100]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,

    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct CampaignArgs {
    /// The campaign's id
    pub id: String,

    #[command(flatten)]
    pub common: Common,
}

/// `--period`, offering the four periods to completion.
pub(super) fn period_parser() -> impl TypedValueParser<Value = Period> {
    PossibleValuesParser::new(Period::ALL.map(Period::name))
        .map(|s| s.parse::<Period>().expect("a listed period"))
}

impl View {
    pub fn common(&self) -> &Common {
        match self {
            View::Overview(c) | View::System(c) => c,
            View::Series(a) => &a.common,
            View::Campaigns(a) => &a.common,
            View::Campaign(a) => &a.common,
        }
    }

    fn name(&self) -> String {
        match self {
            View::Overview(_) => "overview".into(),
            View::Series(_) => "series".into(),
            View::Campaigns(_) => "campaigns".into(),
            View::Campaign(a) => format!("campaign {}", a.id),
            View::System(_) => "system".into(),
        }
    }
}

impl MetricsArgs {
    /// The client flags of the level the user typed them at.
    pub fn client(&self) -> &ClientFlags {
        match &self.view {
            Some(v) => &v.common().client,
            None => &self.common.client,
        }
    }

    fn into_view(self) -> View {
        self.view.unwrap_or(View::Overview(self.common))
    }
}

pub async fn run(args: MetricsArgs, settings: Settings) -> anyhow::Result<()> {
    let view = args.into_view();
    let common = view.common();
    if let Some(t) = &common.tenant {
        validate_tenant(t).map_err(|e| UsageError(format!("--tenant: {e}")))?;
    }
    let format = OutputFormat::resolve(common.output.output);
    if format == OutputFormat::Csv && matches!(view, View::Campaign(_)) {
        return Err(no_campaign_csv().into());
    }
    let api = ApiClient::new(
        settings.server_url(),
        TokenSource::from_settings(&settings)?,
    )?;
    let color = format == OutputFormat::Table && color_enabled();
    match common.watch {
        None => {
            let data = Data::fetch(&api, &view).await?;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes(&data, format, color)?)?;
            out.flush()?;
            Ok(())
        }
        Some(every) => {
            let title = format!("pytake metrics {}", view.name());
            super::watch::watch(&title, format, color, every, || async {
                let data = Data::fetch(&api, &view).await?;
                bytes(&data, format, color)
            })
            .await
        }
    }
}

/// One refresh in `format`.
fn bytes(data: &Data, format: OutputFormat, color: bool) -> anyhow::Result<Vec<u8>> {
    Ok(match format {
        OutputFormat::Json => format!("{}\n", data.json()?).into_bytes(),
        OutputFormat::Csv => data.csv()?,
        OutputFormat::Table => data.table(color).into_bytes(),
    })
}
