//! The tables of `pytake metrics`: pure functions from the API's bodies to
//! text, so the tests can pin them exactly. Colour (a subsystem's or a
//! campaign's state) only when the caller says so, from `--color` and the
//! terminal (see [`crate::cli::output::color_enabled`]).

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Color, Table};

use crate::protocol::campaigns::{CampaignDashboard, CampaignMetrics, CampaignPerformance};
use crate::protocol::dashboard::{Overview, Series, Subsystem};

/// A table with the house style: no terminal probing (the output must not
/// depend on where it goes), styled only when colour is on.
fn table(header: &[&str], color: bool) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).force_no_tty();
    if color {
        t.enforce_styling();
    }
    if !header.is_empty() {
        t.set_header(header.to_vec());
    }
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

/// A figure: whole numbers without decimals, others with two.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// `12.50%`.
fn pct(v: f64) -> String {
    format!("{v:.2}%")
}

/// `1h05m`, `3m20s`, `45s`; the two largest units.
fn seconds(secs: i64) -> String {
    let s = secs.max(0) as u64;
    let coarse = match s {
        s if s >= 86_400 => s - s % 3_600,
        s if s >= 3_600 => s - s % 60,
        s => s,
    };
    crate::config::duration::format(std::time::Duration::from_secs(coarse))
}

/// `23.4 MiB`.
fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn scope(tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!("tenant {t}"),
        None => "every tenant".to_string(),
    }
}

fn state_color(status: &str) -> Option<Color> {
    match status {
        "ok" | "completed" | "excellent" | "good" => Some(Color::Green),
        "degraded" | "paused" | "moderate" => Some(Color::Yellow),
        "down" | "failed" | "poor" => Some(Color::Red),
        "running" => Some(Color::Cyan),
        _ => None,
    }
}

/// The KPIs, one line per area, then each subsystem.
pub fn overview(o: &Overview, color: bool) -> String {
    let k = &o.kpis;
    let mut t = table(&["area", "figures"], color);
    let mut row = |area: &str, figures: String| {
        t.add_row(vec![Cell::new(area), Cell::new(figures)]);
    };
    row(
        "messages",
        format!(
            "{} sent · {} received · {} failed · {} failing",
            k.messages_sent,
            k.messages_received,
            k.messages_failed,
            pct(k.message_failure_rate)
        ),
    );
    row(
        "conversations",
        format!(
            "{} active · {} started · {} ended",
            k.active_conversations, k.conversations_started, k.conversations_ended
        ),
    );
    row("tickets", format!("{} created", k.tickets_created));
    row(
        "campaigns",
        format!(
            "{} started · {} completed · {} messages sent · {} failed",
            k.campaigns_started,
            k.campaigns_completed,
            k.campaign_messages_sent,
            k.campaign_messages_failed
        ),
    );
    row(
        "calls",
        format!(
            "{} answered · {} busy · {} failed · {} converted · {} opt-outs",
            k.calls_answered, k.calls_busy, k.calls_failed, k.calls_converted, k.calls_opt_out
        ),
    );
    row(
        "ai",
        format!(
            "{} interactions · {} tokens",
            k.ai_interactions, k.ai_tokens
        ),
    );
    row(
        "erp",
        format!(
            "{} calls · {} errors · {} failing · p50 {} ms · p95 {} ms",
            k.erp_calls,
            k.erp_errors,
            pct(k.erp_error_rate),
            number(k.erp_latency_p50_ms),
            number(k.erp_latency_p95_ms)
        ),
    );
    row("alerts", format!("{} system alerts", k.system_alerts));
    row(
        "events",
        format!(
            "{} stored · {}/s · newest #{}",
            k.events_total,
            number(k.events_per_second),
            k.last_event_id
        ),
    );
    row(
        "websocket",
        format!("{} connections", k.websocket_connections),
    );
    row(
        "system",
        format!(
            "cpu {} · memory {}",
            pct(k.system_cpu_usage),
            pct(k.system_memory_usage)
        ),
    );
    format!(
        "{} · {} · rates over the last {}\n{t}\n{}\n",
        scope(o.tenant_id.as_deref()),
        o.generated_at,
        seconds(k.window_seconds),
        subsystems(&o.subsystems, color)
    )
}

/// Each subsystem's state and what it says about itself.
fn subsystems(list: &[Subsystem], color: bool) -> Table {
    let mut t = table(&["subsystem", "status", "detail"], color);
    for s in list {
        t.add_row(vec![
            Cell::new(&s.name),
            tinted(&s.status, state_color(&s.status), color),
            Cell::new(&s.detail),
        ]);
    }
    t
}

/// The machine and the process, then each subsystem.
pub fn system(o: &Overview, color: bool) -> String {
    let s = &o.system;
    let mut t = table(&["", "value"], color);
    let mut row = |k: &str, v: String| {
        t.add_row(vec![Cell::new(k), Cell::new(v)]);
    };
    row("cpu", pct(s.cpu_usage));
    row("memory", pct(s.memory_usage));
    row("rss", mebibytes(s.rss_bytes));
    row("connections", s.websocket_connections.to_string());
    row(
        "store pool",
        match &s.store_pool {
            Some(p) => format!(
                "{} in use · {} idle · {} open of {} at most",
                p.in_use, p.idle, p.size, p.max
            ),
            None => "none".into(),
        },
    );
    row(
        "queue depth",
        s.queue_depth
            .map_or_else(|| "no queue".into(), |d| d.to_string()),
    );
    row("uptime", seconds(s.uptime_seconds as i64));
    format!(
        "this node · {}\n{t}\n{}\n",
        o.generated_at,
        subsystems(&o.subsystems, color)
    )
}

/// One row per bucket: its start and each metric.
pub fn series(s: &Series, color: bool) -> String {
    let mut header = vec!["timestamp"];
    header.extend(s.metrics.iter().map(String::as_str));
    let mut t = table(&header, color);
    for p in &s.points {
        let mut cells = vec![Cell::new(&p.timestamp)];
        for m in &s.metrics {
            cells.push(right(number(p.values.get(m).copied().unwrap_or(0.0))));
        }
        t.add_row(cells);
    }
    format!(
        "{} · {} · {} buckets of {} from {} to {}\n{t}\n",
        scope(s.tenant_id.as_deref()),
        s.period,
        s.points.len(),
        seconds(s.bucket_seconds),
        s.from,
        s.to
    )
}

/// The tenant's summary, then one row per campaign.
pub fn campaigns(list: &[CampaignMetrics], d: &CampaignDashboard, color: bool) -> String {
    let sum = &d.summary;
    let mut t = table(
        &[
            "campaign", "name", "status", "progress", "sent", "errors", "success", "msg/min",
            "eta", "health",
        ],
        color,
    );
    for c in list {
        t.add_row(vec![
            Cell::new(&c.campaign_id),
            Cell::new(c.name.as_deref().unwrap_or("")),
            tinted(&c.status, state_color(&c.status), color),
            right(progress(c)),
            right(c.sent_count.to_string()),
            right(c.error_count.to_string()),
            right(pct(c.success_rate)),
            right(number(c.messages_per_minute)),
            right(c.estimated_seconds_remaining.map_or("-".into(), seconds)),
            tinted(
                &format!("{} {}", c.health_score, c.health),
                state_color(&c.health),
                color,
            ),
        ]);
    }
    format!(
        "{} · {} campaigns · {} running · {} completed · {} average success\n{t}\n",
        scope(d.tenant_id.as_deref()),
        sum.total_campaigns,
        sum.running_campaigns,
        sum.completed_campaigns,
        pct(sum.avg_success_rate)
    )
}

/// `40/100 (40.00%)`, or what was processed when the total is unknown.
fn progress(c: &CampaignMetrics) -> String {
    match c.total_contacts {
        Some(total) => format!("{}/{total} ({})", c.processed, pct(c.progress_percentage)),
        None => c.processed.to_string(),
    }
}

/// One campaign: its figures, its hours, its errors and its pace.
pub fn campaign(c: &CampaignMetrics, p: &CampaignPerformance, color: bool) -> String {
    let mut t = table(&["", "value"], color);
    let time = |t: &Option<String>| t.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<(&str, Cell)> = vec![
        ("name", Cell::new(c.name.as_deref().unwrap_or("-"))),
        ("status", tinted(&c.status, state_color(&c.status), color)),
        ("progress", Cell::new(progress(c))),
        (
            "sent",
            Cell::new(format!(
                "{} sent · {} failed · {} success · {} error rate",
                c.sent_count,
                c.error_count,
                pct(c.success_rate),
                pct(c.error_rate)
            )),
        ),
        (
            "pace",
            Cell::new(format!(
                "{} messages/min · eta {}",
                number(c.messages_per_minute),
                c.estimated_seconds_remaining.map_or("-".into(), seconds)
            )),
        ),
        (
            "health",
            tinted(
                &format!("{} {}", c.health_score, c.health),
                state_color(&c.health),
                color,
            ),
        ),
        (
            "calls",
            Cell::new(format!(
                "{} answered · {} busy · {} failed · {} converted · {} opt-outs · {} answer rate · {} conversion",
                c.outcomes.answered,
                c.outcomes.busy,
                c.outcomes.failed,
                c.outcomes.converted,
                c.outcomes.opt_outs,
                pct(c.answer_rate),
                pct(c.conversion_rate)
            )),
        ),
        (
            "times",
            Cell::new(format!(
                "created {} · started {} · completed {}",
                time(&c.created_at),
                time(&c.started_at),
                time(&c.completed_at)
            )),
        ),
        (
            "duration",
            Cell::new(c.duration_seconds.map_or("-".into(), seconds)),
        ),
    ];
    for (k, v) in rows {
        t.add_row(vec![Cell::new(k), v]);
    }
    let mut hours = table(&["hour", "total", "sent", "failed", "success"], color);
    for h in &p.hourly_analysis {
        hours.add_row(vec![
            Cell::new(&h.hour_start),
            right(h.total.to_string()),
            right(h.sent.to_string()),
            right(h.failed.to_string()),
            right(pct(h.success_rate)),
        ]);
    }
    let mut errors = table(&["error", "count", "share"], color);
    for e in &p.top_errors {
        errors.add_row(vec![
            Cell::new(&e.error_message),
            right(e.count.to_string()),
            right(pct(e.percentage)),
        ]);
    }
    let ts = &p.timing_stats;
    let timing = match (
        ts.avg_send_time_seconds,
        ts.min_send_time_seconds,
        ts.max_send_time_seconds,
    ) {
        (Some(avg), Some(min), Some(max)) => format!(
            "between sends: {}s on average, {}s to {}s, over {} intervals",
            number(avg),
            number(min),
            number(max),
            ts.intervals
        ),
        _ => "between sends: fewer than two sends so far".to_string(),
    };
    let mut out = format!(
        "campaign {} · tenant {} · updated {}\n{t}\n",
        c.campaign_id, c.tenant_id, c.updated_at
    );
    if p.hourly_analysis.is_empty() {
        out.push_str("hourly: no sends yet\n");
    } else {
        out.push_str(&format!("{hours}\n"));
    }
    if p.top_errors.is_empty() {
        out.push_str("top errors: none\n");
    } else {
        out.push_str(&format!("{errors}\n"));
    }
    out.push_str(&timing);
    out.push('\n');
    out
}
