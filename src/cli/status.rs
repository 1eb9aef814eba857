//! `pytake status`: one screen on a server's health, from `/health`, in
//! the manner of `systemctl status` and `kubectl cluster-info`: what runs
//! where, whether each part answers, and how busy it is. The exit code says
//! the verdict, so a script can use it without reading the screen.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::output::{color_enabled, paint, OutputFormat, Style};
use crate::client::{ApiClient, ClientError, TokenSource};
use crate::config::Settings;
use crate::protocol::api::{CheckStatus, Health, HealthStatus};

const EXAMPLES: &str = "\
Examples:
  pytake status                                   the server on this machine
  pytake status --server https://rt.example.com   another server
  pytake status --output json | jq .events        the /health body, for scripts

Exit status:
  0  the server is ok
  1  it is degraded (the store or the bus fails or is slow) or shutting down
  3  it cannot be reached
  4  it refused the token (from --token, PYTAKE_TOKEN or the local secret)";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct StatusArgs {}

/// How the server took this client's credentials. `/health` needs none, so
/// a machine without any still gets the screen.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenCheck {
    /// No `--token`, `PYTAKE_TOKEN` or local secret: not checked.
    None,
    Accepted,
    Refused,
    /// Not checked: the server is not `ok` (a history request could hang
    /// on its store), or it answered neither yes nor no.
    Unchecked,
}

/// What `--output json` prints: the `/health` body plus where it came from
/// and how the token fared.
#[derive(Debug, Serialize)]
struct Report<'a> {
    server: &'a str,
    token: &'a TokenCheck,
    #[serde(flatten)]
    health: &'a Health,
}

/// The server is up but not well: exit code 1, after the screen.
#[derive(Debug, thiserror::Error)]
#[error("the server is {status}{why}")]
pub struct Unhealthy {
    status: &'static str,
    /// `: store slow (no answer within 1s)`, or empty.
    why: String,
}

/// Prints the screen (or the JSON report) for the server in `settings`,
/// then returns its verdict: `Unhealthy` (exit 1), `Unreachable` (3, with
/// nothing printed), `Unauthorized` (4) for a refused token.
pub async fn run(
    _args: StatusArgs,
    settings: Settings,
    output: Option<OutputFormat>,
) -> anyhow::Result<()> {
    let format = OutputFormat::resolve(output);
    let (api, token_from) = match TokenSource::from_settings(&settings) {
        Ok(tokens) => {
            let from = describe(&tokens);
            (ApiClient::new(settings.server_url(), tokens)?, Some(from))
        }
        Err(ClientError::NoCredentials { .. } | ClientError::RemoteNeedsToken { .. }) => {
            (ApiClient::without_token(settings.server_url())?, None)
        }
        Err(e) => return Err(e.into()),
    };
    let health = api.health().await?;
    let mut refused = None;
    let token = match token_from {
        None => TokenCheck::None,
        Some(_) if health.status != HealthStatus::Ok => TokenCheck::Unchecked,
        Some(from) => match api.check_token(health.last_event_id).await {
            Ok(()) => TokenCheck::Accepted,
            Err(ClientError::Unauthorized(why)) => {
                refused = Some(
                    anyhow::Error::new(ClientError::Unauthorized(why))
                        .context(format!("the server refused the token {from}")),
                );
                TokenCheck::Refused
            }
            Err(e) => {
                tracing::debug!(error = %e, "status: the token check did not answer");
                TokenCheck::Unchecked
            }
        },
    };
    let server = api.base().as_str();
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => {
            // Serialized first, so a closed pipe surfaces as the io::Error
            // it is (serde_json's writer error hides it).
            let report = Report {
                server,
                token: &token,
                health: &health,
            };
            out.write_all(format!("{}\n", serde_json::to_string(&report)?).as_bytes())?;
        }
        _ => out.write_all(render(server, &health, &token, color_enabled()).as_bytes())?,
    }
    out.flush()?;
    verdict(&health)?;
    match refused {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Where the token comes from, for the refusal message.
fn describe(tokens: &TokenSource) -> &'static str {
    match tokens {
        TokenSource::Static(_) => "given (--token, PYTAKE_TOKEN)",
        TokenSource::Local(_) => "minted from the local secret",
    }
}

/// `Ok` for a healthy server; otherwise what is wrong, naming each
/// component that is not `ok`.
pub fn verdict(health: &Health) -> Result<(), Unhealthy> {
    if health.status == HealthStatus::Ok {
        return Ok(());
    }
    let mut problems = Vec::new();
    if let Some(c) = &health.components {
        if c.store.status != CheckStatus::Ok {
            problems.push(problem("store", c.store.status, c.store.error.as_deref()));
        }
        if c.bus.status != CheckStatus::Ok {
            problems.push(problem("bus", c.bus.status, c.bus.error.as_deref()));
        }
    }
    Err(Unhealthy {
        status: match health.status {
            HealthStatus::Degraded => "degraded",
            HealthStatus::ShuttingDown => "shutting down",
            _ => "in an unknown state",
        },
        why: if problems.is_empty() {
            String::new()
        } else {
            format!(": {}", problems.join(", "))
        },
    })
}

fn problem(name: &str, status: CheckStatus, error: Option<&str>) -> String {
    match error {
        Some(e) => format!("{name} {} ({e})", status.as_str()),
        None => format!("{name} {}", status.as_str()),
    }
}

/// The screen: aligned `key  value` lines, the verdict first.
pub fn render(server: &str, h: &Health, token: &TokenCheck, color: bool) -> String {
    let status_style = |ok: bool| if ok { Style::Green } else { Style::Red };
    let mut rows: Vec<(&str, String)> = vec![
        ("server", server.to_string()),
        (
            "status",
            paint(
                h.status.as_str(),
                status_style(h.status == HealthStatus::Ok),
                color,
            ),
        ),
        (
            "version",
            format!("{} (rev {}, built {})", h.version, h.revision, h.build_date),
        ),
        ("uptime", uptime(h.uptime_seconds)),
    ];
    match &h.components {
        Some(c) => {
            let store = &c.store;
            let detail = match (store.latency_ms, &store.error) {
                (_, Some(error)) => error.clone(),
                (Some(ms), None) => format!("ping {ms} ms"),
                (None, None) => String::new(),
            };
            let check =
                |s: CheckStatus| paint(s.as_str(), status_style(s == CheckStatus::Ok), color);
            rows.push((
                "store",
                format!("{}  {} ({detail})", check(store.status), store.url),
            ));
            let bus = &c.bus;
            let place = if bus.url.is_empty() || bus.url == bus.kind {
                bus.kind.clone()
            } else {
                bus.url.clone()
            };
            rows.push(("bus", format!("{}  {place}", check(bus.status))));
        }
        None => {
            rows.push(("store", h.store.clone()));
            rows.push(("bus", h.bus.clone()));
        }
    }
    let ws = &h.websocket;
    let mut connections = format!("{} ({} authenticated)", ws.total, ws.authenticated);
    if ws.slow_consumers_closed > 0 {
        let _ = write!(connections, ", {} closed as slow", ws.slow_consumers_closed);
    }
    rows.push(("connections", connections));
    rows.push(("rooms", ws.rooms.to_string()));
    rows.push((
        "events",
        match &h.events {
            Some(e) => format!(
                "{}/s over the last {}s, {} since start, newest #{}",
                e.per_second, e.window_seconds, e.total, h.last_event_id
            ),
            None => format!("newest #{}", h.last_event_id),
        },
    ));
    rows.push(("long polls", h.long_polls.to_string()));
    rows.push(("memory", mebibytes(h.process.rss_bytes)));
    rows.push((
        "token",
        match token {
            TokenCheck::None => "none (status needs none; other commands do)".into(),
            TokenCheck::Accepted => "accepted".into(),
            TokenCheck::Refused => paint("refused", Style::Red, color),
            TokenCheck::Unchecked => "not checked".into(),
        },
    ));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 2;
    let mut screen = String::new();
    for (key, value) in rows {
        let _ = writeln!(screen, "{key:<width$}{value}");
    }
    screen
}

/// Uptime to the two largest units (`3h12m`, `2d5h`, `4m10s`): seconds
/// stop mattering after an hour.
fn uptime(secs: u64) -> String {
    let coarse = match secs {
        s if s >= 86_400 => s - s % 3_600,
        s if s >= 3_600 => s - s % 60,
        s => s,
    };
    crate::config::duration::format(Duration::from_secs(coarse))
}

/// `23.4 MiB`.
fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::exit;
    use crate::protocol::api::{
        BusCheck, Components, ConnectionStats, EventRates, ProcessStats, StoreCheck,
    };

    /// A server whose store stopped answering, with some traffic.
    fn degraded() -> Health {
        Health {
            status: HealthStatus::Degraded,
            version: "0.1.0".into(),
            revision: "1a2b3c4d5e6f-dirty".into(),
            build_date: "2026-12-02".into(),
            uptime_seconds: 2 * 86_400 + 5 * 3_600 + 59,
            store: "sqlite".into(),
            bus: "memory".into(),
            last_event_id: 4211,
            websocket: ConnectionStats {
                total: 12,
                authenticated: 10,
                rooms: 4,
                slow_consumers_closed: 2,
            },
            long_polls: 1,
            process: ProcessStats {
                rss_bytes: 24_536_678,
            },
            events: Some(EventRates {
                total: 1204,
                per_second: 2.5,
                window_seconds: 10,
            }),
            components: Some(Components {
                store: StoreCheck {
                    status: CheckStatus::Slow,
                    kind: "sqlite".into(),
                    url: "sqlite:///var/lib/pytake/pytake.db".into(),
                    latency_ms: None,
                    error: Some("no answer within 1s".into()),
                },
                bus: BusCheck {
                    status: CheckStatus::Ok,
                    kind: "memory".into(),
                    url: "memory".into(),
                    error: None,
                },
            }),
            system: None,
            alerts: None,
            caps: None,
        }
    }

    #[test]
    fn a_degraded_server_reads_as_such_on_one_screen() {
        assert_eq!(
            render("http://db1:8080/", &degraded(), &TokenCheck::Refused, false),
            "\
server       http://db1:8080/
status       degraded
version      0.1.0 (rev 1a2b3c4d5e6f-dirty, built 2026-12-02)
uptime       2d5h
store        slow  sqlite:///var/lib/pytake/pytake.db (no answer within 1s)
bus          ok  memory
connections  12 (10 authenticated), 2 closed as slow
rooms        4
events       2.5/s over the last 10s, 1204 since start, newest #4211
long polls   1
memory       23.4 MiB
token        refused
"
        );
    }

    #[test]
    fn the_verdict_names_what_is_wrong_and_exits_1() {
        let err = verdict(&degraded()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the server is degraded: store slow (no answer within 1s)"
        );
        assert_eq!(exit::code_for(&err.into()), exit::FAILURE);

        let mut stopping = degraded();
        stopping.status = HealthStatus::ShuttingDown;
        stopping.components.as_mut().unwrap().store.status = CheckStatus::Ok;
        stopping.components.as_mut().unwrap().store.error = None;
        assert_eq!(
            verdict(&stopping).unwrap_err().to_string(),
            "the server is shutting down"
        );

        stopping.status = HealthStatus::Ok;
        assert!(verdict(&stopping).is_ok());
    }

    /// A body from a server that predates `components` and `events` is
    /// still read, and shown with what it has.
    #[test]
    fn an_older_server_still_gets_a_screen() {
        let old = r#"{"status":"ok","version":"0.0.9","uptime_seconds":42,"store":"sqlite",
            "bus":"memory","last_event_id":3,"process":{"rss_bytes":0},
            "websocket":{"total":0,"authenticated":0,"rooms":0,"slow_consumers_closed":0}}"#;
        let health: Health = serde_json::from_str(old).unwrap();
        assert!(verdict(&health).is_ok());
        assert_eq!(
            render("http://old:8080/", &health, &TokenCheck::None, false),
            "\
server       http://old:8080/
status       ok
version      0.0.9 (rev unknown, built unknown)
uptime       42s
store        sqlite
bus          memory
connections  0 (0 authenticated)
rooms        0
events       newest #3
long polls   0
memory       0.0 MiB
token        none (status needs none; other commands do)
"
        );
    }

    #[test]
    fn uptime_keeps_the_two_largest_units() {
        assert_eq!(uptime(0), "0s");
        assert_eq!(uptime(59), "59s");
        assert_eq!(uptime(4 * 60 + 10), "4m10s");
        assert_eq!(uptime(3 * 3_600 + 12 * 60 + 5), "3h12m");
        assert_eq!(uptime(3 * 3_600 + 5), "3h");
        assert_eq!(uptime(86_400 + 60), "1d");
    }
}
