//! The tables and lines of `pytake queue`: pure functions from the API's
//! bodies (and the time to count ages from) to text, so the tests can pin
//! them exactly. Colour (a job's status, a circuit's state) only when the
//! caller says so. In the style of `pytake metrics`: ages as `3m20s`,
//! times as RFC 3339 with their age beside them.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Color, Table};

use super::fetch::{Listing, Page, Purged, Stats};
use crate::config::duration;
use crate::server::storage::jobs::{Job, JobStatus, STATS_WINDOW};

/// Most characters of a last error in a listing: room for what failed
/// and the root cause of a chained error on one row of a wide terminal;
/// `show` and JSON have the rest.
pub const ERROR_WIDTH: usize = 90;

/// Most characters of a payload in `show`: a webhook's raw body can be
/// large, and `--output json` has all of it.
pub const PAYLOAD_WIDTH: usize = 500;

/// A table with the house style: no terminal probing (the output must not
/// depend on where it goes), styled only when colour is on.
fn table(header: &[&str], color: bool) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).force_no_tty();
    if color {
        t.enforce_styling();
    }
    t.set_header(header.to_vec());
    t
}

/// A right-aligned cell, for numbers.
fn right(text: impl Into<String>) -> Cell {
    Cell::new(text.into()).set_alignment(CellAlignment::Right)
}

/// A cell in `color` when colour is on.
fn tinted(text: &str, color: Option<Color>, on: bool) -> Cell {
    match color {
        Some(c) if on => Cell::new(text).fg(c),
        _ => Cell::new(text),
    }
}

fn status_color(status: JobStatus) -> Option<Color> {
    Some(match status {
        JobStatus::Pending => Color::Blue,
        JobStatus::Running => Color::Cyan,
        JobStatus::Retrying => Color::Yellow,
        JobStatus::Done => Color::Green,
        JobStatus::Dead => Color::Red,
    })
}

fn circuit_color(state: &str) -> Option<Color> {
    match state {
        "closed" => Some(Color::Green),
        "half_open" => Some(Color::Yellow),
        "open" => Some(Color::Red),
        _ => None,
    }
}

/// A figure: whole numbers without decimals, others with two.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A rate per second: as [`number`], but a quiet queue's few jobs over
/// the window (one in five minutes is 0.0033/s) do not show as 0.
pub fn rate(v: f64) -> String {
    if v > 0.0 && v < 0.1 {
        format!("{v:.4}")
    } else {
        number(v)
    }
}

/// `45s`, `3m20s`, `1h5m`, `2d3h`: seconds dropped past an hour and
/// minutes past a day, as `pytake metrics` shows uptimes.
pub fn span(secs: u64) -> String {
    let coarse = match secs {
        s if s >= 86_400 => s - s % 3_600,
        s if s >= 3_600 => s - s % 60,
        s => s,
    };
    duration::format(Duration::from_secs(coarse))
}

/// `3m20s ago`, `in 45s`, or `now`.
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds();
    match secs {
        0 => "now".into(),
        s if s > 0 => format!("{} ago", span(s.unsigned_abs())),
        s => format!("in {}", span(s.unsigned_abs())),
    }
}

/// A time as the API writes it (RFC 3339, UTC, fractions only when
/// there are some).
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `2026-12-03T10:37:12.120Z (3m ago)`.
fn dated(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ({})", time(t), relative(t, now))
}

/// `text` on one line and at most `width` characters. A chained error
/// (`what failed: context: ...: root cause`) keeps its first part and as
/// many of its last as fit, `…` standing for the rest; other text keeps
/// its start and its end.
pub fn clip(text: &str, width: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let n = line.chars().count();
    if n <= width {
        return line;
    }
    let parts: Vec<&str> = line.split(": ").collect();
    if let [head, rest @ ..] = &parts[..] {
        // The head, `: … `, then whole parts from the end while they fit.
        let mut used = head.chars().count() + 4;
        let mut kept = 0;
        for part in rest.iter().rev() {
            let cost = part.chars().count() + if kept > 0 { 2 } else { 0 };
            if used + cost > width {
                break;
            }
            used += cost;
            kept += 1;
        }
        if kept > 0 && kept < rest.len() {
            return format!("{head}: … {}", rest[rest.len() - kept..].join(": "));
        }
    }
    let head = width / 3;
    let tail = width - head - 1;
    let start: String = line.chars().take(head).collect();
    let end: String = line.chars().skip(n - tail).collect();
    format!("{start}…{end}")
}

/// `s` when `n` is not 1.
fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn tenant(t: &Option<String>) -> &str {
    t.as_deref().unwrap_or("-")
}

/// The figures, then this node's circuits.
pub fn stats(s: &Stats, color: bool) -> String {
    let q = &s.stats;
    let count = |status: JobStatus| q.depth.get(&status).copied().unwrap_or(0);
    let mut t = table(&["", "value"], color);
    let depth = JobStatus::ALL
        .iter()
        .map(|&status| format!("{} {status}", count(status)))
        .collect::<Vec<_>>()
        .join(" · ");
    let dead_by_kind = if q.dead_by_kind.is_empty() {
        "none".to_string()
    } else {
        q.dead_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect::<Vec<_>>()
            .join(" · ")
    };
    let oldest = match q.oldest_pending_seconds {
        s if s <= 0.0 => "none due".to_string(),
        s if s < 1.0 => "under 1s".to_string(),
        s => span(s as u64),
    };
    t.add_row(vec![Cell::new("depth"), Cell::new(depth)]);
    t.add_row(vec![
        Cell::new("processed"),
        Cell::new(format!("{} done/s", rate(q.processed_per_second))),
    ]);
    t.add_row(vec![
        Cell::new("error rate"),
        Cell::new(format!("{:.2}%", q.error_rate * 100.0)),
    ]);
    t.add_row(vec![Cell::new("oldest pending"), Cell::new(oldest)]);
    let dead_tint = (!q.dead_by_kind.is_empty()).then_some(Color::Red);
    t.add_row(vec![
        Cell::new("dead by kind"),
        tinted(&dead_by_kind, dead_tint, color),
    ]);
    let scope = match &s.tenant_id {
        Some(t) => format!("tenant {t}"),
        None => "every tenant".to_string(),
    };
    let mut out = format!(
        "{scope} · rates over the last {}\n{t}\n",
        duration::format(STATS_WINDOW)
    );
    if s.circuits.is_empty() {
        out.push_str("circuits: none on this node yet (one per host it delivered http jobs to)\n");
    } else {
        let mut c = table(&["host (this node's circuits)", "state"], color);
        for circuit in &s.circuits {
            c.add_row(vec![
                Cell::new(&circuit.host),
                tinted(
                    &circuit.state.replace('_', "-"),
                    circuit_color(&circuit.state),
                    color,
                ),
            ]);
        }
        out.push_str(&format!("{c}\n"));
    }
    out
}

/// A listing: `dead` as the dead-letter view (kind, attempts, last error,
/// updated), else every job with its status.
pub fn jobs(page: &Page, listing: &Listing, now: DateTime<Utc>, color: bool) -> String {
    let what = heading(listing, page.jobs.len() as u64);
    if page.jobs.is_empty() {
        return format!("no {what}\n");
    }
    let header: &[&str] = if listing.dead {
        &["id", "kind", "tenant", "attempts", "updated", "last error"]
    } else {
        &[
            "id",
            "status",
            "kind",
            "tenant",
            "attempts",
            "updated",
            "last error",
        ]
    };
    let mut t = table(header, color);
    for job in &page.jobs {
        let mut cells = vec![right(job.id.to_string())];
        if !listing.dead {
            cells.push(tinted(job.status.as_str(), status_color(job.status), color));
        }
        cells.extend([
            Cell::new(&job.kind),
            Cell::new(tenant(&job.tenant_id)),
            right(format!("{}/{}", job.attempts, job.max_attempts)),
            right(relative(job.updated_at, now)),
            Cell::new(clip(job.last_error.as_deref().unwrap_or(""), ERROR_WIDTH)),
        ]);
        t.add_row(cells);
    }
    let mut out = format!("{} {what}, newest first\n{t}\n", page.jobs.len());
    if let Some(next) = page.next_before {
        out.push_str(&format!(
            "older ones: {} --before {next}\n",
            command_line(listing)
        ));
    }
    out
}

/// `dead http jobs below #7`, `jobs (status done, kind noop)`.
fn heading(listing: &Listing, n: u64) -> String {
    let jobs = format!("job{}", plural(n));
    let below = listing
        .before
        .map(|b| format!(" below #{b}"))
        .unwrap_or_default();
    if listing.dead {
        let kind = listing
            .kind
            .as_deref()
            .map(|k| format!("{k} "))
            .unwrap_or_default();
        return format!("dead {kind}{jobs}{below}");
    }
    let mut filters = Vec::new();
    if let Some(s) = listing.status {
        filters.push(format!("status {s}"));
    }
    if let Some(k) = &listing.kind {
        filters.push(format!("kind {k}"));
    }
    if filters.is_empty() {
        format!("{jobs}{below}")
    } else {
        format!("{jobs}{below} ({})", filters.join(", "))
    }
}

/// The command that showed `listing`, to page on from.
fn command_line(listing: &Listing) -> String {
    let mut line = String::from(if listing.dead {
        "pytake queue dead"
    } else {
        "pytake queue list"
    });
    if let Some(s) = listing.status {
        line.push_str(&format!(" --status {s}"));
    }
    if let Some(k) = &listing.kind {
        line.push_str(&format!(" --kind {k}"));
    }
    if listing.limit != 50 {
        line.push_str(&format!(" --limit {}", listing.limit));
    }
    line
}

/// One job, all of it (the payload up to [`PAYLOAD_WIDTH`]).
pub fn job(j: &Job, now: DateTime<Utc>, color: bool) -> String {
    let mut t = table(&["", "value"], color);
    let payload = j.payload.to_string();
    let payload = if payload.chars().count() > PAYLOAD_WIDTH {
        let cut: String = payload.chars().take(PAYLOAD_WIDTH).collect();
        format!("{cut}… ({} bytes; --output json for all)", payload.len())
    } else {
        payload
    };
    let rows: Vec<(&str, Cell)> = vec![
        (
            "status",
            tinted(j.status.as_str(), status_color(j.status), color),
        ),
        ("kind", Cell::new(&j.kind)),
        ("queue", Cell::new(&j.queue)),
        (
            "tenant",
            Cell::new(j.tenant_id.as_deref().unwrap_or("- (a platform job)")),
        ),
        (
            "attempts",
            Cell::new(format!("{} of {}", j.attempts, j.max_attempts)),
        ),
        ("priority", Cell::new(j.priority.to_string())),
        ("run at", Cell::new(dated(j.run_at, now))),
        (
            "lease expires",
            Cell::new(j.lease_expires_at.map_or("-".into(), |t| dated(t, now))),
        ),
        ("created", Cell::new(dated(j.created_at, now))),
        ("updated", Cell::new(dated(j.updated_at, now))),
        (
            "correlation",
            Cell::new(j.correlation_id.as_deref().unwrap_or("-")),
        ),
        (
            "last error",
            Cell::new(j.last_error.as_deref().unwrap_or("-")),
        ),
        ("payload", Cell::new(payload)),
    ];
    for (k, v) in rows {
        t.add_row(vec![Cell::new(k), v]);
    }
    format!("job {} · {} · {}\n{t}\n", j.id, j.kind, j.status)
}

/// After `retry ID`.
pub fn retried(j: &Job) -> String {
    format!(
        "job {} ({}) is {} again, with {} attempt{}\n",
        j.id,
        j.kind,
        j.status,
        j.max_attempts,
        plural(u64::from(j.max_attempts))
    )
}

/// After `retry --all-dead`.
pub fn retried_dead(n: u64, kind: Option<&str>) -> String {
    let kind = kind.map(|k| format!("{k} ")).unwrap_or_default();
    match n {
        0 => format!("no dead {kind}jobs to retry\n"),
        n => format!(
            "{n} dead {kind}job{} pending again, each with its attempts anew\n",
            plural(n)
        ),
    }
}

/// After `purge`.
pub fn purged(p: &Purged, now: DateTime<Utc>) -> String {
    format!(
        "purged {} {} job{} last updated before {}\n",
        p.purged,
        p.status,
        plural(p.purged),
        dated(p.before, now)
    )
}

/// After `enqueue`.
pub fn enqueued(j: &Job, now: DateTime<Utc>) -> String {
    let tenant = match &j.tenant_id {
        Some(t) => format!("tenant {t}"),
        None => "a platform job".into(),
    };
    format!(
        "enqueued job {} ({}, {tenant}): {}, runs {}, at most {} attempt{}\n",
        j.id,
        j.kind,
        j.status,
        relative(j.run_at, now),
        j.max_attempts,
        plural(u64::from(j.max_attempts))
    )
}
