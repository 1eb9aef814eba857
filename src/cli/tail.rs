//! `pytake tail`: streams events; reconnects with backoff and resumes from
//! the last event printed, so a server restart loses nothing.

use std::io::Write;
use std::time::Duration;

use chrono::Utc;
use clap::Args;
use serde_json::Value;

use super::exit::UsageError;
use super::output::{color_enabled, paint, OutputFormat, Style};
use crate::client::{follow, ApiClient, HistoryParams, StreamItem, StreamOptions, TokenSource};
use crate::config::Settings;
use crate::protocol::events::validate_event_type;
use crate::protocol::rooms::{validate_room, validate_tenant};
use crate::protocol::{Event, EventId};

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Room to follow, repeatable: dashboard, conversations, campaigns, erp, ai, alerts, presence,
    /// campaign:ID, conversation:ID, user:ID [default: every room]
    #[arg(long = "room", short = 'r', value_name = "ROOM")]
    pub rooms: Vec<String>,

    /// Only events of this type, repeatable (MessageSent, ERPCall, ...)
    #[arg(long = "type", short = 't', value_name = "TYPE")]
    pub types: Vec<String>,

    /// Tenant to follow (admin tokens; others see their own tenant only) [default: every tenant]
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,

    /// Start after this event id, or this long ago (10m, 2h) [default: now]
    #[arg(long, value_name = "ID|DURATION")]
    pub since: Option<String>,

    /// Exit after printing N events
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,
}

/// Where `--since` starts.
#[derive(Debug, PartialEq)]
enum Since {
    Id(EventId),
    Ago(Duration),
}

fn parse_since(s: &str) -> Result<Since, UsageError> {
    if let Ok(id) = s.parse::<EventId>() {
        if id < 0 {
            return Err(UsageError(format!("--since: `{s}` is not an event id")));
        }
        return Ok(Since::Id(id));
    }
    humantime::parse_duration(s).map(Since::Ago).map_err(|_| {
        UsageError(format!(
            "--since: `{s}` is neither an event id nor a duration like 10m"
        ))
    })
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
    let tokens = TokenSource::from_settings(&settings)?;
    let api = ApiClient::new(settings.server_url(), tokens.clone())?;
    let since = match args.since.as_deref().map(parse_since).transpose()? {
        None => None,
        Some(Since::Id(id)) => Some(id),
        Some(Since::Ago(ago)) => {
            let start = chrono::Duration::from_std(ago)
                .ok()
                .and_then(|ago| Utc::now().checked_sub_signed(ago))
                .ok_or_else(|| {
                    UsageError("--since: that is before any event could exist".into())
                })?;
            let page = api
                .events(&HistoryParams {
                    rooms: args.rooms.clone(),
                    event_types: args.types.clone(),
                    tenant_id: args.tenant.clone(),
                    since_time: Some(start),
                    limit: Some(1),
                    ..HistoryParams::default()
                })
                .await?;
            Some(
                page.events
                    .first()
                    .map(|e| e.id - 1)
                    .unwrap_or(page.next_since),
            )
        }
    };
    let mut stream = follow(
        api.base(),
        tokens,
        StreamOptions {
            rooms: args.rooms.clone(),
            event_types: args.types.clone(),
            tenant_id: args.tenant.clone(),
            since,
            fail_fast: true,
        },
    );
    let color = format == OutputFormat::Table && color_enabled();
    let mut printed = 0u64;
    loop {
        let item = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            item = stream.recv() => item,
        };
        let Some(item) = item else { return Ok(()) };
        match item? {
            StreamItem::Event(event) => {
                let line = match format {
                    OutputFormat::Json => serde_json::to_string(&event)?,
                    _ => readable(&event, color),
                };
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}")?;
                out.flush()?;
                printed += 1;
                if args.count.is_some_and(|n| printed >= n) {
                    return Ok(());
                }
            }
            StreamItem::Connected { .. } => tracing::info!(server = %api.base(), "connected"),
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

/// Longest value shown in a readable line before it is cut.
const MAX_VALUE: usize = 48;

/// `12:00:01.123  #42  acme  dashboard  MessageSent  message_id=m1 to=+55...`
fn readable(e: &Event, color: bool) -> String {
    let style = match e.event_type.as_str() {
        t if t.contains("Failed") || t == "SystemAlert" => Style::Red,
        "MessageSent" | "MessageReceived" => Style::Green,
        "CampaignUpdate" | "CallEvent" => Style::Magenta,
        "ERPCall" | "AIInteraction" => Style::Yellow,
        _ => Style::Bold,
    };
    let time = e.timestamp.format("%H:%M:%S%.3f").to_string();
    let mut line = format!(
        "{}  {}  {}  {}  {}",
        paint(&time, Style::Dim, color),
        paint(&format!("#{}", e.id), Style::Dim, color),
        paint(&e.tenant_id, Style::Cyan, color),
        paint(&e.room, Style::Blue, color),
        paint(&e.event_type, style, color),
    );
    if let Value::Object(map) = &e.data {
        for (k, v) in map {
            let mut text = match v {
                Value::String(s) if !s.contains(char::is_whitespace) && !s.is_empty() => s.clone(),
                other => other.to_string(),
            };
            if text.chars().count() > MAX_VALUE {
                text = text.chars().take(MAX_VALUE - 1).collect::<String>() + "…";
            }
            line.push_str(&format!("  {}={text}", paint(k, Style::Dim, color)));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn since_is_an_id_or_a_duration() {
        assert_eq!(parse_since("42").unwrap(), Since::Id(42));
        assert_eq!(
            parse_since("10m").unwrap(),
            Since::Ago(Duration::from_secs(600))
        );
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("-1").is_err());
    }

    #[test]
    fn readable_lines_are_plain_without_colour() {
        let event = Event {
            id: 7,
            event_type: "MessageSent".into(),
            tenant_id: "acme".into(),
            room: "dashboard".into(),
            rooms: vec!["dashboard".into()],
            data: json!({"message_id": "m1", "status": "sent", "text": "olá mundo"}),
            timestamp: "2026-01-01T12:00:01.123Z".parse().unwrap(),
        };
        assert_eq!(
            readable(&event, false),
            "12:00:01.123  #7  acme  dashboard  MessageSent  message_id=m1  status=sent  text=\"olá mundo\""
        );
        assert!(readable(&event, true).contains("\x1b[32mMessageSent\x1b[0m"));
    }
}
