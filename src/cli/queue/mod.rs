//! `pytake queue`: the operator's view of the job queue and the hand on
//! it. The stats (depth, throughput, errors, dead letters, circuits), the
//! jobs and the dead letters as tables for people or the API's JSON and
//! CSV for scripts; one job in full; retrying dead jobs, purging finished
//! ones, and enqueueing a job to check the queue end to end. A request the
//! server refuses about a job (it does not exist, it is not dead) prints
//! the server's one-line reason and exits 1.

mod csv;
mod fetch;
pub(super) mod render;
#[cfg(test)]
mod tests;
mod values;

use std::io::Write;
use std::time::Duration;

use chrono::Utc;
use clap::{Args, Subcommand};
use serde_json::Value;

use self::fetch::{Listing, Reply};
pub use self::values::RunAt;
use self::values::{kind_parser, parse_job_id, parse_payload, parse_run_at, status_parser};
use super::exit::UsageError;
use super::output::{color_enabled, Output, OutputFormat, OutputWithCsv};
use super::values::Known;
use crate::client::{ApiClient, ClientError, TokenSource};
use crate::config::flags::ClientFlags;
use crate::config::{duration, Settings};
use crate::server::storage::jobs::{JobId, JobStatus};

const EXIT_STATUS: &str = "\
Exit status: 0 ok (Ctrl-C ends --watch with 0), 1 failure (a job that does not
exist, a retry of a job that is not dead, or another request the server refuses,
with its reason), 2 usage, 3 cannot reach the server, 4 unauthorized or forbidden
(the queue is for admin and operator tokens)";

fn queue_help() -> String {
    format!(
        "\
Examples:
  pytake queue                                  depth, throughput, errors, dead letters, circuits
  pytake queue stats --watch 2s                 the same, refreshed in place
  pytake queue dead                             the dead letters: kind, attempts, last error
  pytake queue show 42                          one job, with its whole last error and payload
  pytake queue retry 42                         run a dead job again
  pytake queue retry --all-dead --kind http     run every dead http job again
  pytake queue list --status retrying --kind http
  pytake queue purge --status done --older-than 7d
  pytake queue dead --output csv > dead.csv

Tables on a terminal, the API's JSON (one line) when piped. An operator token
sees its tenant's jobs; an admin token sees every tenant's and the platform's.

{EXIT_STATUS}"
    )
}

fn action_help(examples: &str) -> String {
    format!("Examples:\n{examples}\n\n{EXIT_STATUS}")
}

/// `pytake queue [ACTION]`: flags given without an action are the stats'.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, after_help = queue_help())]
pub struct QueueArgs {
    #[command(subcommand)]
    pub action: Option<Action>,
    #[command(flatten)]
    pub stats: StatsArgs,
}

/// The actions.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Depth by status, jobs done per second, error rate, oldest pending, dead by kind, circuits (the default)
    #[command(after_help = action_help("  pytake queue stats\n  pytake queue stats --watch 2s\n  pytake queue stats --output json | jq .depth.dead"))]
    Stats(StatsArgs),
    /// Jobs, newest first, with their attempts and last error
    #[command(after_help = action_help("  pytake queue list --status retrying\n  pytake queue list --kind http --limit 200 --output csv > http.csv\n  pytake queue list --before 1200                 the page after one that ended at job 1201\n\nCSV has every field of a job but its payload (see show, or --output json)."))]
    List(ListArgs),
    /// The dead letters: jobs out of attempts (or that can never run), with their last error
    #[command(after_help = action_help("  pytake queue dead\n  pytake queue dead --kind http\n  pytake queue dead --output json | jq -r '.jobs[].last_error'\n\nThen `pytake queue show ID` for a whole error, `pytake queue retry ID` or\n`pytake queue retry --all-dead` once the cause is fixed."))]
    Dead(DeadArgs),
    /// One job: its state, attempts, times, whole last error and payload
    #[command(after_help = action_help("  pytake queue show 42\n  pytake queue show 42 --output json | jq .payload"))]
    Show(ShowArgs),
    /// Run a dead job again from its first attempt, or every dead job (of a kind)
    #[command(after_help = action_help("  pytake queue retry 42\n  pytake queue retry --all-dead\n  pytake queue retry --all-dead --kind http\n\nOnly dead jobs can be retried: another job is already waiting or running."))]
    Retry(RetryArgs),
    /// Delete done or dead jobs last updated longer ago than a duration
    #[command(after_help = action_help("  pytake queue purge --status done --older-than 7d\n  pytake queue purge --status dead --older-than 30d\n  pytake queue purge --status done --older-than 0s    every done job\n\nWaiting and running jobs are never purged: that would lose work."))]
    Purge(PurgeArgs),
    /// Add a job (noop to check the queue end to end, http to deliver a request)
    #[command(after_help = action_help("  pytake queue enqueue --kind noop\n  pytake queue enqueue --kind http --payload '{\"url\":\"https://hooks.example.com/x\",\"body\":{\"a\":1}}'\n  pytake queue enqueue --kind http --payload @delivery.json --run-at 10m --max-attempts 5"))]
    Enqueue(EnqueueArgs),
}

/// `stats`, and `pytake queue` without an action.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Refresh every DURATION (2s, 1m) until Ctrl-C: in place on a terminal, one after another
    /// when piped
    #[arg(long, value_name = "DURATION", value_parser = duration::parse_positive)]
    pub watch: Option<Duration>,

    #[command(flatten)]
    pub client: ClientFlags,

    #[command(flatten)]
    pub output: Output,
}

/// The flags every listing shares.
#[derive(Debug, Args)]
pub struct Paging {
    /// Only jobs of this kind (noop, http, webhook.whatsapp, ...)
    #[arg(long, value_name = "KIND", value_parser = kind_parser(), hide_possible_values = true)]
    pub kind: Option<String>,

    /// Show the newest N
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,

    /// Only jobs with an id below ID: the next page
    #[arg(long, value_name = "ID", value_parser = parse_job_id)]
    pub before: Option<JobId>,

    #[command(flatten)]
    pub client: ClientFlags,

    #[command(flatten)]
    pub output: OutputWithCsv,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only jobs in this state
    #[arg(long, value_name = "STATUS", value_parser = status_parser(false))]
    pub status: Option<JobStatus>,

    #[command(flatten)]
    pub paging: Paging,
}

#[derive(Debug, Args)]
pub struct DeadArgs {
    #[command(flatten)]
    pub paging: Paging,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The job's id
    #[arg(value_name = "ID", value_parser = parse_job_id)]
    pub id: JobId,

    #[command(flatten)]
    pub client: ClientFlags,

    #[command(flatten)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The dead job to run again
    #[arg(value_name = "ID", value_parser = parse_job_id,
          required_unless_present = "all_dead", conflicts_with = "all_dead")]
    pub id: Option<JobId>,

    /// Every dead job instead of one
    #[arg(long)]
    pub all_dead: bool,

    /// With --all-dead: only dead jobs of this kind
    // `conflicts_with` rather than `requires = "all_dead"`: a flag's
    // default (false) counts as present for `requires`.
    #[arg(long, value_name = "KIND", conflicts_with = "id", value_parser = kind_parser(),
          hide_possible_values = true)]
    pub kind: Option<String>,

    #[command(flatten)]
    pub client: ClientFlags,

    #[command(flatten)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Which finished jobs: done or dead
    #[arg(long, value_name = "STATUS", required = true, value_parser = status_parser(true))]
    pub status: JobStatus,

    /// Only jobs last updated longer ago than this (7d, 12h; 0s: all of them)
    #[arg(long, value_name = "DURATION", required = true, value_parser = duration::parse)]
    pub older_than: Duration,

    #[command(flatten)]
    pub client: ClientFlags,

    #[command(flatten)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The handler that runs it
    #[arg(long, value_name = "KIND", required = true,
          value_parser = Known::new(&["noop", "http"], |s| Ok(s.to_string())))]
    pub kind: String,

    /// The job's payload: JSON, or @FILE to read it from a file (http: {"url", "method"?,
    /// "headers"?, "body"})
    #[arg(long, value_name = "JSON", default_value = "{}", value_parser = parse_payload)]
    pub payload: Value,

    /// Higher runs first [default: 0]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i32>,

    /// Not before this RFC 3339 time, or this long from now (10m) [default: now]
    #[arg(long, value_name = "TIME", value_parser = parse_run_at)]
    pub run_at: Option<RunAt>,

    /// Runs before it is dead [default: the server's [queue] max_attempts]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: Option<u32>,

    /// Ties the job to what caused it, for tracing (1 to 128 characters)
    #[arg(long, value_name = "ID")]
    pub correlation_id: Option<String>,

    #[command(flatten)]
    pub client: ClientFlags,

    #[command(flatten)]
    pub output: Output,
}

impl Action {
    /// The client flags of this action.
    pub fn client(&self) -> &ClientFlags {
        match self {
            Action::Stats(a) => &a.client,
            Action::List(a) => &a.paging.client,
            Action::Dead(a) => &a.paging.client,
            Action::Show(a) => &a.client,
            Action::Retry(a) => &a.client,
            Action::Purge(a) => &a.client,
            Action::Enqueue(a) => &a.client,
        }
    }

    fn output(&self) -> Option<OutputFormat> {
        match self {
            Action::Stats(a) => a.output.output,
            Action::List(a) => a.paging.output.output,
            Action::Dead(a) => a.paging.output.output,
            Action::Show(a) => a.output.output,
            Action::Retry(a) => a.output.output,
            Action::Purge(a) => a.output.output,
            Action::Enqueue(a) => a.output.output,
        }
    }
}

impl ListArgs {
    fn listing(&self) -> Listing {
        self.paging.listing(false, self.status)
    }
}

impl DeadArgs {
    fn listing(&self) -> Listing {
        self.paging.listing(true, None)
    }
}

impl Paging {
    fn listing(&self, dead: bool, status: Option<JobStatus>) -> Listing {
        Listing {
            dead,
            status,
            kind: self.kind.clone(),
            limit: self.limit,
            before: self.before,
        }
    }
}

impl QueueArgs {
    /// The client flags of the level the user typed them at.
    pub fn client(&self) -> &ClientFlags {
        match &self.action {
            Some(a) => a.client(),
            None => &self.stats.client,
        }
    }

    fn into_action(self) -> Action {
        self.action.unwrap_or(Action::Stats(self.stats))
    }
}

/// The server refused a request about a job because of that job: it does
/// not exist (404) or is not in a state for it (409). Its message says it
/// all (`job 12 is running, not dead: only dead jobs can be retried`), so
/// it is printed alone; exit 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// A client error, with a job's 404 and 409 as [`Refused`].
fn refused(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Api {
            status: 404 | 409,
            message,
            ..
        } => Refused(message).into(),
        e => e.into(),
    }
}

pub async fn run(args: QueueArgs, settings: Settings) -> anyhow::Result<()> {
    let action = args.into_action();
    let format = OutputFormat::resolve(action.output());
    let api = ApiClient::new(
        settings.server_url(),
        TokenSource::from_settings(&settings)?,
    )?;
    let color = format == OutputFormat::Table && color_enabled();
    match &action {
        Action::Stats(StatsArgs {
            watch: Some(every), ..
        }) => {
            super::watch::watch("pytake queue stats", format, color, *every, || async {
                let reply = Reply::fetch(&api, &action, Utc::now())
                    .await
                    .map_err(refused)?;
                bytes(&reply, format, color)
            })
            .await
        }
        _ => {
            let reply = Reply::fetch(&api, &action, Utc::now())
                .await
                .map_err(refused)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes(&reply, format, color)?)?;
            out.flush()?;
            Ok(())
        }
    }
}

/// A reply in `format`.
fn bytes(reply: &Reply, format: OutputFormat, color: bool) -> anyhow::Result<Vec<u8>> {
    Ok(match format {
        OutputFormat::Json => format!("{}\n", reply.json()).into_bytes(),
        OutputFormat::Csv => reply.csv().ok_or_else(|| {
            UsageError("only `list` and `dead` have a CSV form: use --output json".into())
        })?,
        OutputFormat::Table => reply.table(color, Utc::now()).into_bytes(),
    })
}
