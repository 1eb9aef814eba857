//! The tables and lines of `pytake alerts`: pure functions from the API's
//! bodies (and the time to count ages from) to text, so the tests can pin
//! them exactly. Colour (an alert's or incident's state, a critical
//! severity, a disabled rule) only when the caller says so. Ages as
//! `pytake queue` writes them (`3m20s ago`); the API's times, which it
//! writes as text, are shown as sent when they do not read as RFC 3339.

use chrono::{DateTime, Utc};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Color, Table};

use super::fetch::{AlertListing, AlertsPage, IncidentListing};
use crate::cli::queue::render::{relative, time};
use crate::config::duration;
use crate::protocol::alerts::{AlertRule, AlertState, Incident, Severity, Silence};

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

/// Firing red, pending yellow, resolved green: what needs a look first
/// stands out.
fn state_color(state: AlertState) -> Option<Color> {
    Some(match state {
        AlertState::Firing => Color::Red,
        AlertState::Pending => Color::Yellow,
        AlertState::Resolved => Color::Green,
    })
}

fn severity_color(severity: Severity) -> Option<Color> {
    (severity == Severity::Critical).then_some(Color::Red)
}

/// A figure: whole numbers without decimals, others with two.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A time of the API's as an age (`3m ago`); `-` for none.
fn age(at: Option<&str>, now: DateTime<Utc>) -> String {
    match at {
        None => "-".into(),
        Some(text) => match DateTime::parse_from_rfc3339(text) {
            Ok(t) => relative(t.with_timezone(&Utc), now),
            Err(_) => text.to_string(),
        },
    }
}

/// A time of the API's as sent, with its age: `2026-12-03T10:37:12.120Z
/// (3m ago)`.
fn dated(at: &str, now: DateTime<Utc>) -> String {
    match DateTime::parse_from_rfc3339(at) {
        Ok(t) => format!("{at} ({})", relative(t.with_timezone(&Utc), now)),
        Err(_) => at.to_string(),
    }
}

/// `s` when `n` is not 1.
fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `✓` for yes, nothing for no: the rows that need one stand out.
fn mark(yes: bool) -> &'static str {
    if yes {
        "✓"
    } else {
        ""
    }
}

/// The alerts, with what was asked above them.
pub fn alerts(
    page: &AlertsPage,
    listing: &AlertListing,
    now: DateTime<Utc>,
    color: bool,
) -> String {
    let n = page.alerts.len();
    let state = listing
        .state
        .map(|s| format!("{} ", s.name()))
        .unwrap_or_default();
    let tenant = listing
        .tenant
        .as_deref()
        .map(|t| format!(" of tenant {t}"))
        .unwrap_or_default();
    let since = dated(&page.since, now);
    if n == 0 {
        return format!("no {state}alerts{tenant} since {since}\n");
    }
    let mut t = table(
        &[
            "state", "severity", "tenant", "rule", "value", "since", "fired", "resolved", "ack",
            "silenced", "id",
        ],
        color,
    );
    for a in &page.alerts {
        t.add_row(vec![
            tinted(a.state.name(), state_color(a.state), color),
            tinted(a.severity.name(), severity_color(a.severity), color),
            Cell::new(&a.tenant_id),
            Cell::new(&a.rule_name),
            right(format!(
                "{} ({} {})",
                number(a.current_value),
                a.comparator.symbol(),
                number(a.threshold)
            )),
            right(age(Some(&a.pending_since), now)),
            right(age(a.fired_at.as_deref(), now)),
            right(age(a.resolved_at.as_deref(), now)),
            Cell::new(mark(a.acknowledged_at.is_some())).set_alignment(CellAlignment::Center),
            Cell::new(mark(a.silenced)).set_alignment(CellAlignment::Center),
            Cell::new(&a.id),
        ]);
    }
    let mut out = format!(
        "{n} {state}alert{}{tenant} since {since}, newest first\n{t}\n",
        plural(n)
    );
    if n == listing.limit as usize {
        out.push_str(&format!(
            "the newest {n} only: --limit up to 1000, or a later --since\n"
        ));
    }
    out
}

/// The incidents, newest first.
pub fn incidents(
    list: &[Incident],
    listing: &IncidentListing,
    now: DateTime<Utc>,
    color: bool,
) -> String {
    let tenant = listing
        .tenant
        .as_deref()
        .map(|t| format!(" of tenant {t}"))
        .unwrap_or_default();
    let since = match listing.since {
        Some(s) => format!("since {}", dated(&time(s), now)),
        None => "recently".into(),
    };
    if list.is_empty() {
        return format!("no incidents{tenant} open or resolved {since}\n");
    }
    let mut t = table(
        &[
            "id",
            "state",
            "tenant",
            "opened",
            "last fired",
            "resolved",
            "alerts",
            "acknowledged",
            "notifications",
        ],
        color,
    );
    for i in list {
        let acknowledged = match (&i.acknowledged_by, &i.acknowledged_at) {
            (Some(by), at) => format!("by {by} {}", age(at.as_deref(), now)),
            (None, Some(at)) => age(Some(at), now),
            (None, None) => "-".into(),
        };
        let notified = match &i.last_notified_at {
            Some(at) => format!("{}, last {}", i.notifications, age(Some(at), now)),
            None => i.notifications.to_string(),
        };
        t.add_row(vec![
            Cell::new(&i.id),
            tinted(i.state.name(), state_color(i.state), color),
            Cell::new(&i.tenant_id),
            right(age(Some(&i.opened_at), now)),
            right(age(Some(&i.last_fired_at), now)),
            right(age(i.resolved_at.as_deref(), now)),
            right(i.alert_ids.len().to_string()),
            Cell::new(acknowledged),
            Cell::new(notified),
        ]);
    }
    let open = list
        .iter()
        .filter(|i| i.state != AlertState::Resolved)
        .count();
    let mut out = format!(
        "{} incident{}{tenant}, newest first: {open} open, {} resolved {since}\n{t}\n",
        list.len(),
        plural(list.len()),
        list.len() - open,
    );
    if list.len() == listing.limit as usize {
        out.push_str(&format!(
            "the newest {} only: --limit up to 1000, or a later --since\n",
            list.len()
        ));
    }
    out
}

/// Who a rule is evaluated for: its tenant, each tenant on its own, or
/// the machine once for all.
fn rule_scope(r: &AlertRule) -> String {
    match &r.tenant_id {
        Some(t) => t.clone(),
        None if r.is_system() => "the machine".into(),
        None => "each tenant".into(),
    }
}

/// `ErpLatency p95`, `MessageFailureRate`.
fn measures(r: &AlertRule) -> String {
    match &r.metric {
        Some(m) => format!("{} {m}", r.condition),
        None => r.condition.to_string(),
    }
}

fn channels(r: &AlertRule) -> String {
    r.channels
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn enabled(r: &AlertRule, color: bool) -> Cell {
    if r.enabled {
        Cell::new("yes")
    } else {
        tinted("no", Some(Color::Yellow), color)
    }
}

/// The rules, by id.
pub fn rules(list: &[AlertRule], tenant: Option<&str>, color: bool) -> String {
    let applying = tenant
        .map(|t| format!(" that apply to tenant {t}"))
        .unwrap_or_default();
    if list.is_empty() {
        return format!("no rules{applying}\n");
    }
    let mut t = table(
        &[
            "id",
            "name",
            "condition",
            "fires at",
            "window",
            "for",
            "severity",
            "tenant",
            "channels",
            "enabled",
        ],
        color,
    );
    for r in list {
        t.add_row(vec![
            Cell::new(&r.id),
            Cell::new(&r.name),
            Cell::new(measures(r)),
            Cell::new(format!("{} {}", r.comparator.symbol(), number(r.threshold))),
            right(duration::format(r.window)),
            right(duration::format(r.for_)),
            tinted(r.severity.name(), severity_color(r.severity), color),
            Cell::new(rule_scope(r)),
            Cell::new(channels(r)),
            enabled(r, color),
        ]);
    }
    format!("{} rule{}{applying}\n{t}\n", list.len(), plural(list.len()))
}

/// One rule, all of it, under `what` (`rule`, `added rule`).
pub fn rule(r: &AlertRule, what: &str, color: bool) -> String {
    let mut t = table(&["", "value"], color);
    let scope = match &r.tenant_id {
        Some(t) => t.clone(),
        None if r.is_system() => "- (the machine's: evaluated once for every tenant)".into(),
        None => "- (each tenant on its own)".into(),
    };
    let rows: Vec<(&str, Cell)> = vec![
        ("condition", Cell::new(r.condition.name())),
        ("metric", Cell::new(r.metric.as_deref().unwrap_or("-"))),
        (
            "fires at",
            Cell::new(format!("{} {}", r.comparator.symbol(), number(r.threshold))),
        ),
        ("window", Cell::new(duration::format(r.window))),
        ("for", Cell::new(duration::format(r.for_))),
        (
            "severity",
            tinted(r.severity.name(), severity_color(r.severity), color),
        ),
        ("tenant", Cell::new(scope)),
        ("channels", Cell::new(channels(r))),
        ("enabled", enabled(r, color)),
    ];
    for (k, v) in rows {
        t.add_row(vec![Cell::new(k), v]);
    }
    let state = if r.enabled { "enabled" } else { "disabled" };
    format!("{what} {} · {} · {state}\n{t}\n", r.id, r.name)
}

/// After `rules enable` or `rules disable`.
pub fn toggled(r: &AlertRule) -> String {
    if r.enabled {
        format!("rule {} ({}) is enabled\n", r.id, r.name)
    } else {
        format!(
            "rule {} ({}) is disabled: its firing alerts resolve at the next evaluation\n",
            r.id, r.name
        )
    }
}

/// After `rules rm`.
pub fn removed(id: &str) -> String {
    format!(
        "deleted rule {id}: its firing alerts resolve at the next evaluation, fired ones stay \
         in history\n"
    )
}

/// After `ack`: the incident, and who acknowledged it first (a second
/// acknowledgement keeps the first's).
pub fn acked(i: &Incident, now: DateTime<Utc>) -> String {
    let n = i.alert_ids.len();
    let by = i
        .acknowledged_by
        .as_deref()
        .map(|b| format!(" by {b}"))
        .unwrap_or_default();
    format!(
        "incident {} ({}, {}, {n} alert{}) acknowledged{by} {}: its repeats stop\n",
        i.id,
        i.tenant_id,
        i.state.name(),
        plural(n),
        age(i.acknowledged_at.as_deref(), now),
    )
}

/// `rule R of tenant T`, `every rule of tenant T`, `rule R of every
/// tenant`.
fn covers(s: &Silence) -> String {
    let rule = match &s.rule_id {
        Some(r) => format!("rule {r}"),
        None => "every rule".into(),
    };
    let tenant = match &s.tenant_id {
        Some(t) => format!("tenant {t}"),
        None => "every tenant".into(),
    };
    format!("{rule} of {tenant}")
}

/// After `silence`: how long it lasts from the server's own two times,
/// not from this machine's clock, so a silence of 30m reads `30m`.
pub fn silenced(s: &Silence) -> String {
    let parse = |t: &str| DateTime::parse_from_rfc3339(t).ok();
    let lasting = match (parse(&s.starts_at), parse(&s.ends_at)) {
        (Some(start), Some(end)) => (end - start)
            .to_std()
            .map(|d| format!(" for {}", duration::format(d)))
            .unwrap_or_default(),
        _ => String::new(),
    };
    format!(
        "silenced {}{lasting}, until {}: {}\n",
        covers(s),
        s.ends_at,
        s.id
    )
}

/// The silences, by end.
pub fn silences(list: &[Silence], all: bool, now: DateTime<Utc>, color: bool) -> String {
    let which = if all { "" } else { "running " };
    if list.is_empty() {
        return format!("no {which}silences\n");
    }
    let mut t = table(
        &["id", "rule", "tenant", "started", "ends", "by", "reason"],
        color,
    );
    for s in list {
        t.add_row(vec![
            Cell::new(&s.id),
            Cell::new(s.rule_id.as_deref().unwrap_or("every rule")),
            Cell::new(s.tenant_id.as_deref().unwrap_or("every tenant")),
            right(age(Some(&s.starts_at), now)),
            right(age(Some(&s.ends_at), now)),
            Cell::new(&s.created_by),
            Cell::new(s.reason.as_deref().unwrap_or("")),
        ]);
    }
    let ended = if all { ", ended ones too" } else { "" };
    format!(
        "{} {which}silence{}{ended}\n{t}\n",
        list.len(),
        plural(list.len())
    )
}

/// After `unsilence`.
pub fn unsilenced(id: &str) -> String {
    format!("ended silence {id}\n")
}
