//! `pytake tail`, like `kubectl logs`: history first (`--since`, `--tail`),
//! then live events until `--count`, `--until` or Ctrl-C, or history only
//! (`--no-follow`). Following reconnects with backoff and resumes from the
//! last event printed, so a server restart loses nothing.

mod history;
mod print;

pub use print::presence_line;
pub(super) mod since;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use tokio::sync::mpsc;
use tokio::time::Instant;

use self::history::{last_n, print_after, Pages, Rest};
use self::print::{Flow, Printer, UNTIL_GRACE};
use self::since::{Since, Until};
use super::exit::UsageError;
use super::output::{color_enabled, OutputFormat};
use crate::client::{
    follow, ApiClient, ClientError, HistoryParams, StreamItem, StreamOptions, TokenSource,
};
use crate::config::Settings;
use crate::protocol::events::validate_event_type;
use crate::protocol::rooms::{validate_room, validate_tenant};
use crate::protocol::Event;

const EXAMPLES: &str = "\
Examples:
  pytake tail --room alerts                         follow one room from now
  pytake tail --tail 20                             the last 20 events, then follow
  pytake tail --since 10m --type MessageFailed      the last 10 minutes' failures, then follow
  pytake tail --tail 100 --no-follow > last100.jsonl
  pytake tail --since 2026-12-02T10:00:00Z --until 2026-12-02T11:00:00Z --output json
  pytake tail --since 4200 --count 50               50 events after #4200, then exit

--since TIME and DURATION count by when the server received an event;
--until by the event's timestamp.

Exit status: 0 done (--count, --until, --no-follow, Ctrl-C), 1 failure,
2 usage, 3 cannot reach the server, 4 unauthorized or forbidden";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct TailArgs {
    /// Room to follow, repeatable: dashboard, conversations, campaigns, erp, ai, alerts, presence,
    /// campaign:ID, conversation:ID, user:ID [default: every room]
    #[arg(long = "room", short = 'r', value_name = "ROOM", hide_possible_values = true,
          value_parser = crate::cli::values::Known::new(&crate::protocol::rooms::ROOMS, |s| Ok(s.to_string())))]
    pub rooms: Vec<String>,

    /// Only events of this type, repeatable (MessageSent, ERPCall, ...)
    #[arg(long = "type", short = 't', value_name = "TYPE")]
    pub types: Vec<String>,

    /// Tenant to follow (admin tokens; others see their own tenant only) [default: every tenant]
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,

    /// Start after this event id, or at what arrived this long ago (10m, 2h) or since this
    /// RFC 3339 time (2026-12-02T10:00:00Z) [default: now]
    #[arg(long, value_name = "ID|DURATION|TIME", value_parser = since::parse_since)]
    pub since: Option<Since>,

    /// Print only events stamped up to this RFC 3339 time or this long ago (10m), then exit;
    /// a time already past implies --no-follow
    #[arg(long, value_name = "TIME|DURATION", value_parser = since::parse_until)]
    pub until: Option<Until>,

    /// Print the last N events first (0: only new ones) [default: 0]
    #[arg(long, value_name = "N", conflicts_with = "since")]
    pub tail: Option<u64>,

    /// Print what --since or --tail selects, then exit without waiting for new events
    #[arg(long)]
    pub no_follow: bool,

    /// Exit after printing N events
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,
}

impl TailArgs {
    fn check(&self) -> Result<(), UsageError> {
        for room in &self.rooms {
            validate_room(room).map_err(|e| UsageError(format!("--room: {e}")))?;
        }
        for t in &self.types {
            validate_event_type(t).map_err(|e| UsageError(format!("--type: {e}")))?;
        }
        if let Some(t) = &self.tenant {
            validate_tenant(t).map_err(|e| UsageError(format!("--tenant: {e}")))?;
        }
        if self.count == Some(0) {
            return Err(UsageError("--count must be at least 1".into()));
        }
        Ok(())
    }

    /// Whether there is history to print (`--since`, or `--tail` above 0).
    fn has_history(&self) -> bool {
        self.since.is_some() || self.tail.unwrap_or(0) > 0
    }
}

/// What a run does, decided from the arguments at the time `now`.
#[derive(Debug, PartialEq)]
struct Plan {
    /// The last time to print, from `--until`.
    until: Option<DateTime<Utc>>,
    /// Whether to wait for new events after the history.
    follow: bool,
}

impl Plan {
    /// `--until` in the past (beyond the grace) means nothing new can be
    /// printed, so it implies `--no-follow`. A run that would neither print
    /// history nor follow is a usage error, since it could only print
    /// nothing.
    fn new(args: &TailArgs, now: DateTime<Utc>) -> Result<Plan, UsageError> {
        let until = args.until.as_ref().map(|u| u.at(now));
        let grace = chrono::Duration::from_std(UNTIL_GRACE).expect("a few seconds");
        let past = until.is_some_and(|t| t + grace <= now);
        if let (Some(start), Some(end)) = (args.since.as_ref().and_then(|s| s.time(now)), until) {
            if end < start {
                return Err(UsageError(format!(
                    "--until {} is before --since {}: nothing could be printed",
                    rfc3339(end),
                    rfc3339(start)
                )));
            }
        }
        if !args.has_history() && args.no_follow {
            return Err(UsageError(
                "--no-follow prints history, so it needs --since or --tail (e.g. --tail 100)"
                    .into(),
            ));
        }
        if !args.has_history() && past {
            return Err(UsageError(format!(
                "--until {} is in the past, so there is nothing to follow: add --since or \
                 --tail to print the history up to it",
                rfc3339(until.unwrap_or(now))
            )));
        }
        Ok(Plan {
            until,
            follow: !args.no_follow && !past,
        })
    }
}

pub async fn run(
    args: TailArgs,
    settings: Settings,
    output: Option<OutputFormat>,
) -> anyhow::Result<()> {
    args.check()?;
    let format = OutputFormat::resolve(output);
    if format == OutputFormat::Csv {
        return Err(UsageError(
            "tail prints `table` (readable lines) or `json` (one event per line)".into(),
        )
        .into());
    }
    let now = Utc::now();
    let plan = Plan::new(&args, now)?;
    let tokens = TokenSource::from_settings(&settings)?;
    let api = ApiClient::new(settings.server_url(), tokens.clone())?;
    let pages = Rest {
        api: &api,
        filter: HistoryParams {
            rooms: args.rooms.clone(),
            event_types: args.types.clone(),
            tenant_id: args.tenant.clone(),
            ..HistoryParams::default()
        },
    };
    let color = format == OutputFormat::Table && color_enabled();
    let mut printer = Printer::new(std::io::stdout(), format, color, args.count, plan.until);

    // Where the stream starts: after `--tail`'s events (which are printed
    // here), or where `--since` says.
    let tail = usize::try_from(args.tail.unwrap_or(0)).unwrap_or(usize::MAX);
    let start = if tail > 0 {
        let head = pages.head().await?;
        let keep = |e: &Event| plan.until.is_none_or(|u| e.timestamp <= u);
        for event in last_n(&pages, tail, head, keep).await? {
            if printer.event(&event)? == Flow::Done {
                return Ok(());
            }
        }
        Some(head)
    } else {
        match &args.since {
            None => None,
            Some(Since::Id(id)) => Some(*id),
            Some(since) => {
                let time = since.time(now).unwrap_or(now);
                Some(pages.id_before(time).await?)
            }
        }
    };
    // History over REST up to the head: all of it without a WebSocket
    // (`--tail` has printed already), and before following with `--until`,
    // so that the clock that ends following starts once the history is
    // out, however long it takes to print.
    let mut start = start;
    if !plan.follow || plan.until.is_some() {
        if let Some(after) = start.filter(|_| tail == 0) {
            let (flow, head) = print_after(&pages, after, &mut printer).await?;
            if flow == Flow::Done || !plan.follow {
                return Ok(());
            }
            start = Some(head);
        }
        if !plan.follow {
            return Ok(());
        }
    }
    let stream = follow(
        api.base(),
        tokens,
        StreamOptions {
            rooms: args.rooms.clone(),
            event_types: args.types.clone(),
            tenant_id: args.tenant.clone(),
            since: start,
            fail_fast: true,
        },
    );
    // Once the clock is past `--until` (and its grace), nothing more can be
    // printed: stop even if the stream is quiet.
    let deadline = plan.until.map(|t| {
        let left = (t + chrono::Duration::from_std(UNTIL_GRACE).expect("a few seconds")
            - Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
        Instant::now() + left
    });
    follow_events(stream, &mut printer, deadline).await
}

/// Prints the stream's events until the printer is done, `deadline`
/// passes, the stream fails for good, or Ctrl-C; says on stderr when the
/// connection drops and where it resumed.
async fn follow_events<W: std::io::Write>(
    mut stream: mpsc::Receiver<Result<StreamItem, ClientError>>,
    printer: &mut Printer<W>,
    deadline: Option<Instant>,
) -> anyhow::Result<()> {
    let end = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(end);
    // One listener for the whole run: a new one per event would leave
    // moments (a write blocked on a full pipe) when Ctrl-C reaches nobody.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        // Ctrl-C first; then events before the clock, so a backlog that
        // is ready is printed rather than cut off.
        let item = tokio::select! {
            biased;
            _ = &mut interrupted => return Ok(()),
            item = stream.recv() => item,
            _ = &mut end => return Ok(()),
        };
        let Some(item) = item else { return Ok(()) };
        match item? {
            StreamItem::Event(event) => {
                if printer.event(&event)? == Flow::Done {
                    return Ok(());
                }
            }
            StreamItem::Presence(change) => {
                if printer.presence(&change)? == Flow::Done {
                    return Ok(());
                }
            }
            StreamItem::Typing(change) => {
                if printer.typing(&change, Utc::now())? == Flow::Done {
                    return Ok(());
                }
            }
            StreamItem::Connected {
                resumed_from: Some(id),
                ..
            } => eprintln!("pytake tail: resumed from #{id}"),
            StreamItem::Connected { connection_id, .. } => {
                tracing::info!(%connection_id, "connected")
            }
            StreamItem::Disconnected { reason, retry_in } => {
                eprintln!(
                    "pytake tail: disconnected ({reason}); reconnecting in {:.1}s",
                    retry_in.as_secs_f64()
                );
            }
            StreamItem::ServerError(e) => {
                eprintln!("pytake tail: server says {}: {}", e.code, e.message)
            }
        }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests;
