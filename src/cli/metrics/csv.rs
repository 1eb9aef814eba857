//! `pytake metrics --output csv`, for the views that are tables: a series
//! (a `timestamp` column and one per metric, cell for cell what
//! `pytake export --format csv` writes), the campaigns (a row each), and
//! the KPIs and the system as `name,value` rows. A campaign's view is
//! several tables, so it has no CSV form (see `pytake export campaign`).

use crate::protocol::campaigns::CampaignMetrics;
use crate::protocol::dashboard::{Overview, Series};
use crate::protocol::metrics::Kpis;

/// Writes records to memory, which cannot fail.
fn write(records: impl IntoIterator<Item = Vec<String>>) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in records {
        w.write_record(&r).expect("write to memory");
    }
    w.into_inner().expect("flush to memory")
}

/// The server's export format ([`Series::render`]).
pub fn series(s: &Series) -> Vec<u8> {
    s.render(crate::protocol::dashboard::ExportFormat::Csv)
}

/// The columns of a campaign row, as named in the API's JSON (the call
/// outcomes without their `outcomes.` prefix).
const CAMPAIGN_COLUMNS: [&str; 26] = [
    "campaign_id",
    "tenant_id",
    "name",
    "status",
    "total_contacts",
    "sent_count",
    "error_count",
    "processed",
    "success_rate",
    "error_rate",
    "progress_percentage",
    "messages_per_minute",
    "estimated_seconds_remaining",
    "health_score",
    "health",
    "answered",
    "busy",
    "failed",
    "converted",
    "opt_outs",
    "answer_rate",
    "conversion_rate",
    "created_at",
    "started_at",
    "completed_at",
    "updated_at",
];

/// One row per campaign; empty cells are values the server does not know.
pub fn campaigns(list: &[CampaignMetrics]) -> Vec<u8> {
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let rows = list.iter().map(|c| {
        vec![
            c.campaign_id.clone(),
            c.tenant_id.clone(),
            text(&c.name),
            c.status.clone(),
            opt(c.total_contacts),
            c.sent_count.to_string(),
            c.error_count.to_string(),
            c.processed.to_string(),
            c.success_rate.to_string(),
            c.error_rate.to_string(),
            c.progress_percentage.to_string(),
            c.messages_per_minute.to_string(),
            opt(c.estimated_seconds_remaining),
            c.health_score.to_string(),
            c.health.clone(),
            c.outcomes.answered.to_string(),
            c.outcomes.busy.to_string(),
            c.outcomes.failed.to_string(),
            c.outcomes.converted.to_string(),
            c.outcomes.opt_outs.to_string(),
            c.answer_rate.to_string(),
            c.conversion_rate.to_string(),
            text(&c.created_at),
            text(&c.started_at),
            text(&c.completed_at),
            c.updated_at.clone(),
        ]
    });
    let header = CAMPAIGN_COLUMNS.iter().map(|c| c.to_string()).collect();
    write(std::iter::once(header).chain(rows))
}

/// The KPIs as `name,value` rows, in the API's field order.
pub fn overview(o: &Overview) -> Vec<u8> {
    let k: &Kpis = &o.kpis;
    let rows: Vec<(&str, String)> = vec![
        ("tenant_id", k.tenant_id.clone().unwrap_or_default()),
        ("messages_sent", k.messages_sent.to_string()),
        ("messages_received", k.messages_received.to_string()),
        ("messages_failed", k.messages_failed.to_string()),
        ("message_failure_rate", k.message_failure_rate.to_string()),
        ("active_conversations", k.active_conversations.to_string()),
        ("conversations_started", k.conversations_started.to_string()),
        ("conversations_ended", k.conversations_ended.to_string()),
        ("tickets_created", k.tickets_created.to_string()),
        ("campaigns_started", k.campaigns_started.to_string()),
        ("campaigns_completed", k.campaigns_completed.to_string()),
        (
            "campaign_messages_sent",
            k.campaign_messages_sent.to_string(),
        ),
        (
            "campaign_messages_failed",
            k.campaign_messages_failed.to_string(),
        ),
        ("calls_answered", k.calls_answered.to_string()),
        ("calls_busy", k.calls_busy.to_string()),
        ("calls_failed", k.calls_failed.to_string()),
        ("calls_converted", k.calls_converted.to_string()),
        ("calls_opt_out", k.calls_opt_out.to_string()),
        ("ai_interactions", k.ai_interactions.to_string()),
        ("ai_tokens", k.ai_tokens.to_string()),
        ("erp_calls", k.erp_calls.to_string()),
        ("erp_errors", k.erp_errors.to_string()),
        ("erp_error_rate", k.erp_error_rate.to_string()),
        ("erp_latency_p50_ms", k.erp_latency_p50_ms.to_string()),
        ("erp_latency_p95_ms", k.erp_latency_p95_ms.to_string()),
        ("system_alerts", k.system_alerts.to_string()),
        ("events_total", k.events_total.to_string()),
        ("events_per_second", k.events_per_second.to_string()),
        ("websocket_connections", k.websocket_connections.to_string()),
        ("system_cpu_usage", k.system_cpu_usage.to_string()),
        ("system_memory_usage", k.system_memory_usage.to_string()),
        ("window_seconds", k.window_seconds.to_string()),
        ("last_event_id", k.last_event_id.to_string()),
        ("timestamp", k.timestamp.clone()),
    ];
    name_value(rows)
}

/// The node's figures as `name,value` rows, then one `subsystem.NAME` row
/// per subsystem with its status.
pub fn system(o: &Overview) -> Vec<u8> {
    let s = &o.system;
    let pool = s.store_pool.unwrap_or_default();
    let has_pool = s.store_pool.is_some();
    let pool_cell = |v: u32| {
        if has_pool {
            v.to_string()
        } else {
            String::new()
        }
    };
    let mut rows: Vec<(String, String)> = vec![
        ("cpu_usage".into(), s.cpu_usage.to_string()),
        ("memory_usage".into(), s.memory_usage.to_string()),
        ("rss_bytes".into(), s.rss_bytes.to_string()),
        (
            "websocket_connections".into(),
            s.websocket_connections.to_string(),
        ),
        ("store_pool.size".into(), pool_cell(pool.size)),
        ("store_pool.idle".into(), pool_cell(pool.idle)),
        ("store_pool.in_use".into(), pool_cell(pool.in_use)),
        ("store_pool.max".into(), pool_cell(pool.max)),
        (
            "queue_depth".into(),
            s.queue_depth.map(|d| d.to_string()).unwrap_or_default(),
        ),
        ("uptime_seconds".into(), s.uptime_seconds.to_string()),
    ];
    rows.extend(
        o.subsystems
            .iter()
            .map(|sub| (format!("subsystem.{}", sub.name), sub.status.clone())),
    );
    name_value(rows)
}

fn name_value<K: Into<String>>(rows: Vec<(K, String)>) -> Vec<u8> {
    let header = vec!["name".to_string(), "value".to_string()];
    write(std::iter::once(header).chain(rows.into_iter().map(|(k, v)| vec![k.into(), v])))
}
