//! `pytake alerts`: the on-call view of alerting and the hand on it. The
//! alerts (what fires, what is pending, what resolved), the incidents
//! that group them and their notifications, the rules and the silences as
//! tables for people or the API's JSON and CSV for scripts; acknowledging
//! an incident, adding, removing, enabling and disabling rules, silencing
//! and unsilencing. A request the server refuses about a rule, an alert
//! or a silence (it does not exist, a rule it cannot take) prints the
//! server's one-line reason, which names the field at fault, and exits 1.

mod csv;
mod fetch;
mod render;
mod rules;
#[cfg(test)]
mod tests;
mod values;

use std::io::Write;
use std::time::Duration;

use chrono::Utc;
use clap::{ArgGroup, Args, Subcommand};

use self::fetch::Reply;
use self::rules::RulesArgs;
use self::values::{parse_id, parse_since, parse_tenant, state_parser};
use super::exit::UsageError;
use super::output::{color_enabled, Output, OutputFormat, OutputWithCsv};
use super::tail::since::Since;
use crate::client::{ApiClient, ClientError, TokenSource};
use crate::config::flags::ClientFlags;
use crate::config::{duration, Settings};
use crate::protocol::alerts::AlertState;

const EXIT_STATUS: &str = "\
Exit status: 0 ok (Ctrl-C ends --watch with 0), 1 failure (a rule, alert or silence
that does not exist, a rule the server refuses, with the field at fault, or another
request it refuses, with its reason), 2 usage, 3 cannot reach the server, 4
unauthorized or forbidden (changes are for admin and operator tokens)";

fn alerts_help() -> String {
    format!(
        "\
Examples:
  pytake alerts                                  the last 24h's alerts and every open one
  pytake alerts list --state firing --watch 2s   what fires now, refreshed in place
  pytake alerts incidents                        open and recent incidents, their notifications
  pytake alerts ack alt_20261203101500a1b2c3d4   acknowledge its incident: the repeats stop
  pytake alerts rules                            the rules and their thresholds
  pytake alerts rules add --name 'Queue backlog' --condition QueueDepth --threshold 500
  pytake alerts rules disable cpu_usage
  pytake alerts silence --rule high_failure_rate --tenant acme --for 1h --reason 'carrier outage'
  pytake alerts silences
  pytake alerts list --since 7d --output csv > alerts.csv

Tables on a terminal, the API's JSON (one line) when piped. Every token reads its
tenant's alerts (an admin token every tenant's); changes take an admin or operator
token, and an operator changes only its tenant's rules and silences.

{EXIT_STATUS}"
    )
}

fn action_help(examples: &str) -> String {
    format!("Examples:\n{examples}\n\n{EXIT_STATUS}")
}

/// `pytake alerts [ACTION]`: flags given without an action are the list's.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, after_help = alerts_help())]
pub struct AlertsArgs {
    #[command(subcommand)]
    pub action: Option<Action>,
    #[command(flatten)]
    pub list: ListArgs,
}

/// The actions.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Alerts newest first: state, severity, tenant, rule, value against the threshold, times (the default)
    #[command(after_help = action_help("  pytake alerts list --state firing\n  pytake alerts list --tenant acme --since 2h\n  pytake alerts list --state firing --watch 2s\n  pytake alerts list --since 2026-12-01T00:00:00Z --output csv > alerts.csv\n\nWithout --since: the alerts of the last 24h and every one still pending or\nfiring. Then `pytake alerts ack ID` to stop an incident's repeats."))]
    List(ListArgs),
    /// Incidents, newest first: open ones and those resolved lately, with their alerts and notifications
    #[command(after_help = action_help("  pytake alerts incidents\n  pytake alerts incidents --tenant acme --since 7d\n  pytake alerts incidents --output json | jq '.incidents[].alert_ids'\n\nWithout --since: every open incident and those resolved in the last 24h."))]
    Incidents(IncidentsArgs),
    /// The rules, and one shown, added, removed, enabled or disabled
    Rules(Box<RulesArgs>),
    /// Acknowledge an incident, by its id or one of its alerts': its repeats stop
    #[command(after_help = action_help("  pytake alerts ack alt_20261203101500a1b2c3d4\n  pytake alerts ack inc_20261203101500e5f6a7b8\n\nThe incident and all its alerts are acknowledged; it is still notified once\nwhen its last alert resolves. A pending alert has no incident yet."))]
    Ack(AckArgs),
    /// Leave a rule's or a tenant's alerts out of notifications for a while
    #[command(after_help = action_help("  pytake alerts silence --rule high_failure_rate --for 1h\n  pytake alerts silence --tenant acme --for 30m --reason 'planned ERP maintenance'\n  pytake alerts silence --rule cpu_usage --tenant system --for 2h\n\nSilenced alerts still fire and are recorded (silenced: true); they are only left\nout of notifications. An operator's silence is for its tenant."))]
    Silence(SilenceArgs),
    /// The running silences (--all: ended ones too)
    #[command(after_help = action_help("  pytake alerts silences\n  pytake alerts silences --all --output csv > silences.csv"))]
    Silences(SilencesArgs),
    /// End a silence now
    #[command(after_help = action_help("  pytake alerts unsilence sil_20261203101500a1b2c3d4"))]
    Unsilence(UnsilenceArgs),
}

/// `list`, and `pytake alerts` without an action.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only alerts in this state
    #[arg(long, value_name = "STATE", value_parser = state_parser())]
    pub state: Option<AlertState>,

    /// Only this tenant's alerts (admin tokens; other tokens see their own) [default: every
    /// tenant, or the token's]
    #[arg(long, value_name = "ID", value_parser = parse_tenant)]
    pub tenant: Option<String>,

    /// Alerts pending or firing at any time since this long ago (10m, 2h) or this RFC 3339 time
    /// [default: 24h]
    #[arg(long, value_name = "DURATION|TIME", value_parser = parse_since)]
    pub since: Option<Since>,

    /// Show the newest N (up to 1000)
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,

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
pub struct IncidentsArgs {
    /// Only this tenant's incidents (admin tokens; other tokens see their own) [default: every
    /// tenant, or the token's]
    #[arg(long, value_name = "ID", value_parser = parse_tenant)]
    pub tenant: Option<String>,

    /// Resolved incidents too if they resolved since this long ago (10m, 2h) or this RFC 3339
    /// time [default: 24h]
    #[arg(long, value_name = "DURATION|TIME", value_parser = parse_since)]
    pub since: Option<Since>,

    /// Show the newest N (up to 1000)
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,

    #[command(flatten)]
    pub client: ClientFlags,

    #[command(flatten)]
    pub output: OutputWithCsv,
}

#[derive(Debug, Args)]
pub struct AckArgs {
    /// An alert's id (alt_...) or an incident's (inc_...)
    #[arg(value_name = "ID", value_parser = parse_id)]
    pub id: String,

    #[command(flatten)]
    pub client: ClientFlags,

    #[command(flatten)]
    pub output: Output,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").args(["rule", "tenant"]).required(true).multiple(true)))]
pub struct SilenceArgs {
    /// The rule to silence (with --tenant: for that tenant only)
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    pub rule: Option<String>,

    /// The tenant to silence (with --rule: that rule only)
    #[arg(long, value_name = "ID", value_parser = parse_tenant)]
    pub tenant: Option<String>,

    /// How long, from now (30m, 2h, 1d)
    #[arg(long = "for", value_name = "DURATION", required = true,
          value_parser = duration::parse_positive)]
    pub for_: Duration,

    /// Why, for whoever reads `pytake alerts silences`
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,

    #[command(flatten)]
    pub client: ClientFlags,

    #[command(flatten)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct SilencesArgs {
    /// Ended silences too, while the server keeps them
    #[arg(long)]
    pub all: bool,

    /// Only this tenant's silences and those of every tenant (admin tokens) [default: every
    /// tenant, or the token's]
    #[arg(long, value_name = "ID", value_parser = parse_tenant)]
    pub tenant: Option<String>,

    #[command(flatten)]
    pub client: ClientFlags,

    #[command(flatten)]
    pub output: OutputWithCsv,
}

#[derive(Debug, Args)]
pub struct UnsilenceArgs {
    /// The silence's id (sil_...)
    #[arg(value_name = "ID", value_parser = parse_id)]
    pub id: String,

    #[command(flatten)]
    pub client: ClientFlags,

    #[command(flatten)]
    pub output: Output,
}

impl Action {
    /// The client flags of this action.
    pub fn client(&self) -> &ClientFlags {
        match self {
            Action::List(a) => &a.client,
            Action::Incidents(a) => &a.client,
            Action::Rules(a) => a.client(),
            Action::Ack(a) => &a.client,
            Action::Silence(a) => &a.client,
            Action::Silences(a) => &a.client,
            Action::Unsilence(a) => &a.client,
        }
    }

    fn output(&self) -> Option<OutputFormat> {
        match self {
            Action::List(a) => a.output.output,
            Action::Incidents(a) => a.output.output,
            Action::Rules(a) => a.output(),
            Action::Ack(a) => a.output.output,
            Action::Silence(a) => a.output.output,
            Action::Silences(a) => a.output.output,
            Action::Unsilence(a) => a.output.output,
        }
    }
}

impl AlertsArgs {
    /// The client flags of the level the user typed them at.
    pub fn client(&self) -> &ClientFlags {
        match &self.action {
            Some(a) => a.client(),
            None => &self.list.client,
        }
    }

    fn into_action(self) -> Action {
        self.action.unwrap_or(Action::List(self.list))
    }
}

/// The server refused a request because of what it names: a rule, alert,
/// incident or silence that does not exist (404), one in no state for it
/// (409: a rule id taken, a pending alert with no incident to
/// acknowledge), or a rule or silence it cannot take (400, the message
/// naming the field: `window: must be from 1m to 1h`). The message says
/// it all, so it is printed alone; exit 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// A client error, with a 400, 404 or 409 as [`Refused`].
fn refused(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Api {
            status: 400 | 404 | 409,
            message,
            ..
        } => Refused(message).into(),
        e => e.into(),
    }
}

pub async fn run(args: AlertsArgs, settings: Settings) -> anyhow::Result<()> {
    let action = args.into_action();
    let format = OutputFormat::resolve(action.output());
    let api = ApiClient::new(
        settings.server_url(),
        TokenSource::from_settings(&settings)?,
    )?;
    let color = format == OutputFormat::Table && color_enabled();
    match &action {
        Action::List(ListArgs {
            watch: Some(every), ..
        }) => {
            super::watch::watch("pytake alerts list", format, color, *every, || async {
                let reply = Reply::fetch(&api, &action, Utc::now()).await?;
                bytes(&reply, format, color)
            })
            .await
        }
        _ => {
            let reply = Reply::fetch(&api, &action, Utc::now()).await?;
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
        // A delete answers 204 with no body: nothing to print but the exit
        // status.
        OutputFormat::Json => reply
            .json()
            .map(|json| format!("{json}\n").into_bytes())
            .unwrap_or_default(),
        OutputFormat::Csv => reply.csv().ok_or_else(|| {
            UsageError(
                "only list, incidents, rules and silences have a CSV form: use --output json"
                    .into(),
            )
        })?,
        OutputFormat::Table => reply.table(color, Utc::now()).into_bytes(),
    })
}
