//! `pytake presence`: who of a tenant is online (seed 002's agent list),
//! as a table, JSON or CSV; `--watch` follows the `presence` room and
//! prints each join, leave and status change as it happens.

use std::io::Write;

use chrono::SecondsFormat;
use clap::Args;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};

use super::output::{color_enabled, OutputFormat};
use super::tail::presence_line;
use crate::client::{follow, ApiClient, StreamItem, StreamOptions, TokenSource};
use crate::config::Settings;
use crate::protocol::presence::{PresenceList, PRESENCE_ROOM};
use crate::protocol::rooms::validate_tenant;

const EXAMPLES: &str = "\
Examples:
  pytake presence                          the online users of the token's tenant
  pytake presence --tenant acme            an admin names the tenant (none: every tenant)
  pytake presence --tenant acme --watch    the list, then each join, leave and status change
  pytake presence --output csv > online.csv

Exit status: 0 ok (Ctrl-C ends --watch with 0), 1 failure, 2 usage, 3 cannot
reach the server, 4 unauthorized or forbidden (another tenant's presence)";

/// `pytake presence`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct PresenceArgs {
    /// The tenant (a tenant token sees only its own; an admin may name any, or none for all)
    #[arg(long, value_name = "TENANT", value_parser = tenant)]
    pub tenant: Option<String>,
    /// After the list, print each presence change as it happens (until Ctrl-C)
    #[arg(long)]
    pub watch: bool,
}

fn tenant(s: &str) -> Result<String, String> {
    validate_tenant(s).map(|()| s.to_string())
}

/// Prints the list, then (with `--watch`) the changes.
pub async fn run(
    args: PresenceArgs,
    settings: Settings,
    output: Option<OutputFormat>,
) -> anyhow::Result<()> {
    let format = OutputFormat::resolve(output);
    let tokens = TokenSource::from_settings(&settings)?;
    let api = ApiClient::new(settings.server_url(), tokens.clone())?;
    let list = api.presence(args.tenant.as_deref()).await?;
    let color = color_enabled();
    let mut out = std::io::stdout().lock();
    out.write_all(render(&list, format).as_bytes())?;
    out.flush()?;
    drop(out);
    if !args.watch {
        return Ok(());
    }
    let options = StreamOptions {
        rooms: vec![PRESENCE_ROOM.to_string()],
        tenant_id: args.tenant.clone(),
        fail_fast: true,
        ..StreamOptions::default()
    };
    let mut stream = follow(api.base(), tokens, options);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let item = tokio::select! {
            biased;
            _ = &mut interrupted => return Ok(()),
            item = stream.recv() => item,
        };
        let Some(item) = item else { return Ok(()) };
        let line = match item? {
            StreamItem::Presence(change) => match format {
                OutputFormat::Json => serde_json::to_string(&change)?,
                OutputFormat::Csv => csv_row(&[
                    &change.tenant_id,
                    &change.user_id,
                    change.status.as_str(),
                    &change.connections.to_string(),
                    &change.timestamp.to_rfc3339_opts(SecondsFormat::Secs, true),
                ]),
                OutputFormat::Table => presence_line(&change, color),
            },
            StreamItem::Disconnected { reason, retry_in } => {
                eprintln!(
                    "pytake presence: disconnected ({reason}); reconnecting in {:.1}s",
                    retry_in.as_secs_f64()
                );
                continue;
            }
            StreamItem::ServerError(e) => {
                eprintln!("pytake presence: server says {}: {}", e.code, e.message);
                continue;
            }
            StreamItem::Connected { .. } | StreamItem::Event(_) | StreamItem::Typing(_) => continue,
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
}

/// The list in `format`: a table with the count under it, the API's JSON
/// on one line, or CSV with a header (`tenant_id,user_id,status,
/// connections,since`).
pub fn render(list: &PresenceList, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => {
            format!(
                "{}\n",
                serde_json::to_string(list).expect("lists serialize")
            )
        }
        OutputFormat::Csv => {
            let mut text = csv_row(&["tenant_id", "user_id", "status", "connections", "since"]);
            text.push('\n');
            for u in &list.users {
                text.push_str(&csv_row(&[
                    &u.tenant_id,
                    &u.user_id,
                    u.status.as_str(),
                    &u.connections.to_string(),
                    &u.since.to_rfc3339_opts(SecondsFormat::Secs, true),
                ]));
                text.push('\n');
            }
            text
        }
        OutputFormat::Table => {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED).force_no_tty();
            t.set_header(vec!["TENANT", "USER", "STATUS", "CONNECTIONS", "SINCE"]);
            for u in &list.users {
                t.add_row(vec![
                    Cell::new(&u.tenant_id),
                    Cell::new(&u.user_id),
                    Cell::new(u.status.as_str()),
                    Cell::new(u.connections).set_alignment(CellAlignment::Right),
                    Cell::new(u.since.format("%Y-%m-%d %H:%M:%SZ")),
                ]);
            }
            let scope = list.tenant_id.as_deref().unwrap_or("every tenant");
            format!("{t}\n{} online ({scope})\n", list.online_count)
        }
    }
}

/// One CSV record: fields with a comma, quote or newline are quoted.
fn csv_row(fields: &[&str]) -> String {
    fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::presence::{OnlineUser, Status};

    fn list() -> PresenceList {
        let at = "2026-01-01T12:00:01Z".parse().unwrap();
        PresenceList {
            tenant_id: Some("acme".into()),
            online_count: 2,
            users: vec![
                OnlineUser {
                    tenant_id: "acme".into(),
                    user_id: "alice".into(),
                    status: Status::Online,
                    since: at,
                    connections: 2,
                },
                OnlineUser {
                    tenant_id: "acme".into(),
                    user_id: "bob, jr".into(),
                    status: Status::Away,
                    since: at,
                    connections: 1,
                },
            ],
        }
    }

    #[test]
    fn the_table_lists_users_and_the_count() {
        assert_eq!(
            render(&list(), OutputFormat::Table),
            "\
┌────────┬─────────┬────────┬─────────────┬──────────────────────┐
│ TENANT ┆ USER    ┆ STATUS ┆ CONNECTIONS ┆ SINCE                │
╞════════╪═════════╪════════╪═════════════╪══════════════════════╡
│ acme   ┆ alice   ┆ online ┆           2 ┆ 2026-01-01 12:00:01Z │
│ acme   ┆ bob, jr ┆ away   ┆           1 ┆ 2026-01-01 12:00:01Z │
└────────┴─────────┴────────┴─────────────┴──────────────────────┘
2 online (acme)
"
        );
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(
            render(&list(), OutputFormat::Csv),
            "\
tenant_id,user_id,status,connections,since
acme,alice,online,2,2026-01-01T12:00:01Z
acme,\"bob, jr\",away,1,2026-01-01T12:00:01Z
"
        );
    }
}
